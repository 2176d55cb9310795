//! Visitation maps of grid tasks (Dark Room, Key-to-Door, FrozenLake): for a held-out task,
//! how often the model stood on each cell per episode in its early traced episodes, beside its
//! late ones, on one colour scale. Exploration turning into exploitation shows as a spread-out
//! early map and a late map concentrated on the path to the goal. The goal (key and door;
//! FrozenLake's holes and goal) and a fixed start are marked.

use super::render::{bold, de, label, text, Picture};
use crate::eval::trace::Trace;
use crate::tasks::env::frozenlake::MAP;
use crate::tasks::env::grid::DarkRoom;
use crate::tasks::{StateSpace, TaskParams, TaskSuite};
use anyhow::Result;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};

/// What a marked cell is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkKind {
    Start,
    Goal,
    Key,
    Door,
    Hole,
}

impl MarkKind {
    fn letter(self) -> &'static str {
        match self {
            MarkKind::Start => "S",
            MarkKind::Goal => "G",
            MarkKind::Key => "K",
            MarkKind::Door => "D",
            MarkKind::Hole => "H",
        }
    }
    fn name(self) -> &'static str {
        match self {
            MarkKind::Start => "start",
            MarkKind::Goal => "goal",
            MarkKind::Key => "key",
            MarkKind::Door => "door",
            MarkKind::Hole => "hole",
        }
    }
    fn color(self) -> RGBColor {
        match self {
            MarkKind::Start => RGBColor(0, 140, 60),
            MarkKind::Goal => RGBColor(215, 25, 28),
            MarkKind::Key => RGBColor(230, 150, 0),
            MarkKind::Door => RGBColor(150, 60, 160),
            MarkKind::Hole => RGBColor(40, 40, 40),
        }
    }
}

/// One map: a held-out task's early and late visits.
#[derive(Debug, Clone)]
pub struct VisitationMap {
    pub task: usize,
    pub title: String,
    /// Grid columns and rows.
    pub width: usize,
    pub height: usize,
    /// Mean visits per episode of each cell (row-major, `y * width + x`): early, late.
    pub early: Vec<f64>,
    pub late: Vec<f64>,
    pub early_title: String,
    pub late_title: String,
    pub marks: Vec<((usize, usize), MarkKind)>,
}

impl VisitationMap {
    /// The file name without extension: `visitation_test_task<k>`.
    pub fn stem(&self) -> String {
        format!("visitation_test_task{}", self.task)
    }
}

fn family(kind: &str) -> Option<&'static str> {
    match kind {
        "darkroom" => Some("Dark Room"),
        "key_to_door" => Some("Key-to-Door"),
        "frozenlake" => Some("FrozenLake"),
        _ => None,
    }
}

/// The maps of the first `max_tasks` held-out tasks with traces; none for a task family that
/// is not a grid.
pub fn maps(suite: &TaskSuite, traces: &[Trace], max_tasks: usize) -> Vec<VisitationMap> {
    let spec = suite.spec();
    let (Some(family), StateSpace::Discrete { coords, .. }) = (family(&spec.kind), &spec.state)
    else {
        return Vec::new();
    };
    let width = coords.iter().map(|c| c[0] + 1).max().unwrap_or(1).max(1) as usize;
    let height = coords.iter().map(|c| c[1] + 1).max().unwrap_or(1).max(1) as usize;
    let cell_of = |s: u32| {
        coords
            .get(s as usize)
            .map(|c| (c[0].max(0) as usize, c[1].max(0) as usize))
    };
    let visits = |group: &[&Trace]| {
        let mut v = vec![0.0f64; width * height];
        for t in group {
            for &s in t.states.iter().chain([&t.final_state]) {
                if let Some((x, y)) = cell_of(s).filter(|&(x, y)| x < width && y < height) {
                    v[y * width + x] += 1.0;
                }
            }
        }
        let n = group.len().max(1) as f64;
        v.iter_mut().for_each(|x| *x /= n);
        v
    };
    let panel_title = |name: &str, group: &[&Trace]| {
        let mean = group.iter().map(|t| f64::from(t.ret)).sum::<f64>() / group.len().max(1) as f64;
        if group.is_empty() {
            format!("{name}: no episodes traced")
        } else {
            format!(
                "{name}: {} · mean return {}",
                super::episode_span(group),
                short(mean)
            )
        }
    };
    super::early_late(traces, max_tasks)
        .into_iter()
        .map(|(early, late)| {
            let first = early[0];
            let mut marks = Vec::new();
            let mut what = String::new();
            match &first.params {
                TaskParams::Darkroom { goal } => {
                    let start = DarkRoom::start(width.min(255) as u8);
                    marks.push(((start.0 as usize, start.1 as usize), MarkKind::Start));
                    marks.push(((goal[0] as usize, goal[1] as usize), MarkKind::Goal));
                    what = format!(", goal ({}, {})", goal[0], goal[1]);
                }
                TaskParams::KeyToDoor { key, door } => {
                    marks.push(((key[0] as usize, key[1] as usize), MarkKind::Key));
                    marks.push(((door[0] as usize, door[1] as usize), MarkKind::Door));
                    what = format!(
                        ", key ({}, {}), door ({}, {}), random start",
                        key[0], key[1], door[0], door[1]
                    );
                }
                TaskParams::FrozenLake => {
                    for (y, row) in MAP.iter().enumerate() {
                        for (x, c) in row.iter().enumerate() {
                            let kind = match c {
                                b'S' => MarkKind::Start,
                                b'G' => MarkKind::Goal,
                                b'H' => MarkKind::Hole,
                                _ => continue,
                            };
                            marks.push(((x, y), kind));
                        }
                    }
                }
                _ => {}
            }
            VisitationMap {
                task: first.task,
                title: format!(
                    "{family} {width}×{height}, held-out task {}{what}: where the model went",
                    first.task
                ),
                width,
                height,
                early: visits(&early),
                late: visits(&late),
                early_title: panel_title("early", &early),
                late_title: panel_title("late", &late),
                marks,
            }
        })
        .collect()
}

/// A number for a label: at most two decimals, no trailing zeros.
pub(crate) fn short(x: f64) -> String {
    let s = format!("{x:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.to_string()
    }
}

/// White → dark blue, `t` in [0, 1].
pub(crate) fn heat(t: f64) -> RGBColor {
    const STOPS: [(u8, u8, u8); 5] = [
        (255, 255, 255),
        (198, 219, 239),
        (107, 174, 214),
        (33, 113, 181),
        (8, 48, 107),
    ];
    let t = t.clamp(0.0, 1.0) * (STOPS.len() - 1) as f64;
    let i = (t.floor() as usize).min(STOPS.len() - 2);
    let f = t - i as f64;
    let mix = |a: u8, b: u8| (f64::from(a) + (f64::from(b) - f64::from(a)) * f).round() as u8;
    let (a, b) = (STOPS[i], STOPS[i + 1]);
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

const PANEL: u32 = 380;
const LEFT: i32 = 50;
const GAP: i32 = 80;
const TOP: i32 = 120;
const BAR: i32 = 130;

impl VisitationMap {
    fn cell(&self) -> i32 {
        (PANEL / self.width.max(self.height) as u32).max(4) as i32
    }
    fn grid_px(&self) -> (i32, i32) {
        let c = self.cell();
        (c * self.width as i32, c * self.height as i32)
    }
    fn vmax(&self) -> f64 {
        self.early
            .iter()
            .chain(&self.late)
            .copied()
            .fold(0.0, f64::max)
            .max(1e-9)
    }

    fn draw_panel<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        x0: i32,
        title: &str,
        visits: &[f64],
    ) -> Result<()>
    where
        DB::ErrorType: 'static,
    {
        let c = self.cell();
        let (gw, gh) = self.grid_px();
        let black = RGBColor(30, 30, 30);
        label(
            root,
            title,
            (x0 + gw / 2, TOP - 30),
            &text(17.0, black, (HPos::Center, VPos::Center)),
        )?;
        let vmax = self.vmax();
        for y in 0..self.height {
            for x in 0..self.width {
                let (px, py) = (x0 + x as i32 * c, TOP + y as i32 * c);
                let v = visits[y * self.width + x];
                root.draw(&Rectangle::new(
                    [(px, py), (px + c, py + c)],
                    heat(v / vmax).filled(),
                ))
                .map_err(de)?;
                root.draw(&Rectangle::new(
                    [(px, py), (px + c, py + c)],
                    RGBColor(215, 215, 215).stroke_width(1),
                ))
                .map_err(de)?;
            }
        }
        root.draw(&Rectangle::new(
            [(x0, TOP), (x0 + gw, TOP + gh)],
            black.stroke_width(1),
        ))
        .map_err(de)?;
        // Coordinates: x along the bottom, y down the left side (y grows downwards).
        let small = text(12.0, RGBColor(90, 90, 90), (HPos::Center, VPos::Center));
        let every = (self.width.max(self.height) / 10).max(1);
        for x in (0..self.width).step_by(every) {
            label(
                root,
                &x.to_string(),
                (x0 + x as i32 * c + c / 2, TOP + gh + 12),
                &small,
            )?;
        }
        for y in (0..self.height).step_by(every) {
            label(
                root,
                &y.to_string(),
                (x0 - 12, TOP + y as i32 * c + c / 2),
                &small,
            )?;
        }
        for &((x, y), kind) in &self.marks {
            if x >= self.width || y >= self.height {
                continue;
            }
            let (px, py) = (x0 + x as i32 * c, TOP + y as i32 * c);
            draw_mark(root, kind, (px, py), c, visits[y * self.width + x] / vmax)?;
        }
        Ok(())
    }
}

/// A mark: an outline in the mark's colour and its letter, white on a dark cell.
fn draw_mark<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    kind: MarkKind,
    (px, py): (i32, i32),
    c: i32,
    shade: f64,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let color = kind.color();
    let inset = (c / 10).max(1);
    let stroke = if c >= 24 { 3 } else { 2 };
    if kind == MarkKind::Start {
        root.draw(&Circle::new(
            (px + c / 2, py + c / 2),
            c / 2 - inset,
            color.stroke_width(stroke),
        ))
        .map_err(de)?;
    } else {
        root.draw(&Rectangle::new(
            [(px + inset, py + inset), (px + c - inset, py + c - inset)],
            color.stroke_width(stroke),
        ))
        .map_err(de)?;
    }
    let letter_color = if shade > 0.55 { WHITE } else { color };
    label(
        root,
        kind.letter(),
        (px + c / 2, py + c / 2),
        &bold(
            (f64::from(c) * 0.5).max(9.0),
            letter_color,
            (HPos::Center, VPos::Center),
        ),
    )
}

impl Picture for VisitationMap {
    fn size(&self) -> (u32, u32) {
        let (gw, gh) = self.grid_px();
        (
            (LEFT + gw + GAP + gw + 40 + BAR) as u32,
            (TOP + gh + 90) as u32,
        )
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()>
    where
        DB::ErrorType: 'static,
    {
        root.fill(&WHITE).map_err(de)?;
        let (w, _) = self.size();
        let (gw, gh) = self.grid_px();
        let black = RGBColor(30, 30, 30);
        label(
            root,
            &self.title,
            (w as i32 / 2, 26),
            &bold(20.0, black, (HPos::Center, VPos::Center)),
        )?;
        label(
            root,
            "state visits per episode of the model's in-context run, early beside late \
             (one colour scale)",
            (w as i32 / 2, 54),
            &text(15.0, RGBColor(80, 80, 80), (HPos::Center, VPos::Center)),
        )?;
        self.draw_panel(root, LEFT, &self.early_title, &self.early)?;
        self.draw_panel(root, LEFT + gw + GAP, &self.late_title, &self.late)?;

        // Colour bar.
        let bx = LEFT + 2 * gw + GAP + 40;
        let steps = 64;
        for i in 0..steps {
            let y0 = TOP + gh - (gh * (i + 1)) / steps;
            let y1 = TOP + gh - (gh * i) / steps;
            root.draw(&Rectangle::new(
                [(bx, y0), (bx + 22, y1)],
                heat((f64::from(i) + 0.5) / f64::from(steps)).filled(),
            ))
            .map_err(de)?;
        }
        root.draw(&Rectangle::new(
            [(bx, TOP), (bx + 22, TOP + gh)],
            black.stroke_width(1),
        ))
        .map_err(de)?;
        let vmax = self.vmax();
        let tick = text(13.0, black, (HPos::Left, VPos::Center));
        for f in [0.0, 0.5, 1.0] {
            let y = TOP + gh - (f * f64::from(gh)).round() as i32;
            root.draw(&PathElement::new(
                vec![(bx + 22, y), (bx + 27, y)],
                black.stroke_width(1),
            ))
            .map_err(de)?;
            label(root, &short(f * vmax), (bx + 30, y), &tick)?;
        }
        label(
            root,
            "visits / episode",
            (bx - 6, TOP - 30),
            &text(14.0, black, (HPos::Left, VPos::Center)),
        )?;

        // Legend of the marks.
        let mut kinds: Vec<MarkKind> = Vec::new();
        for &(_, k) in &self.marks {
            if !kinds.contains(&k) {
                kinds.push(k);
            }
        }
        let y = TOP + gh + 50;
        let mut x = LEFT;
        for k in kinds {
            draw_mark(root, k, (x, y - 12), 24, 0.0)?;
            let name = match k {
                MarkKind::Start => "start (every episode)",
                _ => k.name(),
            };
            label(
                root,
                name,
                (x + 32, y),
                &text(15.0, black, (HPos::Left, VPos::Center)),
            )?;
            x += 40 + 9 * name.chars().count() as i32 + 24;
        }
        Ok(())
    }
}
