//! A lunar-lander episode as people look at it: the task's terrain and pad (rebuilt from its
//! parameters by `tasks::env::lander::scene`), the lander's path, every engine firing marked
//! on it (main engine and the two side engines apart), the lander's outline at a few moments
//! (tilted by its angle) and how the episode ended. The first traced episode of a held-out
//! task is drawn beside the last, so learning in context shows as a crash turning into a
//! landing.

use super::render::{bold, de, label, text, Picture};
use crate::eval::trace::Trace;
use crate::tasks::env::lander::{body_position, scene, Scene};
use crate::tasks::suite::lander_params;
use crate::tasks::{TaskParams, TaskSuite};
use anyhow::Result;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};

/// How an episode ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Came to rest with the hull off the ground (+100), on the pad or beside it.
    Landed { on_pad: bool },
    /// The hull touched the ground (−100).
    Crashed,
    /// Left the screen sideways (−100).
    FlewOff,
    /// The step limit ended it in the air (or still moving).
    Timeout,
}

impl Outcome {
    pub fn of(trace: &Trace, pad: (f32, f32)) -> Outcome {
        if !trace.terminated {
            return Outcome::Timeout;
        }
        let last = trace.rewards.last().copied().unwrap_or(0.0);
        let end = &trace.final_features;
        if last > 0.0 {
            let x = if end.len() >= 2 {
                body_position(end).0
            } else {
                f32::NAN
            };
            Outcome::Landed {
                on_pad: x >= pad.0 && x <= pad.1,
            }
        } else if end.first().is_some_and(|x| x.abs() >= 1.0) {
            Outcome::FlewOff
        } else {
            Outcome::Crashed
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Outcome::Landed { on_pad: true } => "landed on the pad",
            Outcome::Landed { on_pad: false } => "landed beside the pad",
            Outcome::Crashed => "crashed",
            Outcome::FlewOff => "flew off the screen",
            Outcome::Timeout => "still flying at the step limit",
        }
    }

    fn color(self) -> RGBColor {
        match self {
            Outcome::Landed { .. } => RGBColor(0, 150, 60),
            Outcome::Crashed | Outcome::FlewOff => RGBColor(210, 30, 30),
            Outcome::Timeout => RGBColor(230, 140, 0),
        }
    }
}

/// One episode ready to draw.
#[derive(Debug, Clone)]
pub struct Flight {
    pub heading: String,
    /// `(x, y, angle)` in world metres and radians: the state each action was taken in, then
    /// the final state.
    pub path: Vec<(f32, f32, f32)>,
    pub actions: Vec<u32>,
    pub outcome: Outcome,
}

/// The picture of one held-out task: its first traced episode beside its last.
#[derive(Debug, Clone)]
pub struct LanderPicture {
    pub task: usize,
    pub title: String,
    pub scene: Scene,
    pub flights: Vec<Flight>,
}

impl LanderPicture {
    /// The file name without extension: `lander_test_task<k>`.
    pub fn stem(&self) -> String {
        format!("lander_test_task{}", self.task)
    }
}

fn flight(name: &str, t: &Trace, scene: &Scene) -> Flight {
    let path: Vec<(f32, f32, f32)> = t
        .features
        .iter()
        .chain([&t.final_features])
        .filter(|f| f.len() >= 5)
        .map(|f| {
            let (x, y) = body_position(f);
            (x, y, f[4])
        })
        .collect();
    let outcome = Outcome::of(t, (scene.pad.0, scene.pad.1));
    Flight {
        heading: format!(
            "{name}: episode {} · return {:.1} · {} after {} steps",
            t.episode + 1,
            t.ret,
            outcome.describe(),
            t.steps()
        ),
        path,
        actions: t.actions.clone(),
        outcome,
    }
}

/// The pictures of the first `max_tasks` held-out lander tasks with traces (none for other
/// families).
pub fn pictures(suite: &TaskSuite, traces: &[Trace], max_tasks: usize) -> Vec<LanderPicture> {
    if suite.spec().kind != "lunar_lander" {
        return Vec::new();
    }
    super::early_late(traces, max_tasks)
        .into_iter()
        .filter_map(|(early, late)| picture(&early, &late))
        .collect()
}

/// The picture of one task: the first of its `early` traces beside the last of its `late` ones.
pub fn picture(early: &[&Trace], late: &[&Trace]) -> Option<LanderPicture> {
    let first = *early.first()?;
    let params = lander_params(&first.params)?;
    let scene = scene(&params);
    let mut flights = vec![flight("early", first, &scene)];
    if let Some(last) = late.last() {
        flights.push(flight("late", last, &scene));
    }
    let TaskParams::LunarLander {
        gravity,
        wind_power,
        turbulence_power,
        pad_offset,
        ..
    } = first.params
    else {
        return None;
    };
    Some(LanderPicture {
        task: first.task,
        title: format!(
            "Lunar lander, held-out task {} (gravity {gravity:.1}, wind {wind_power:.1}, \
             turbulence {turbulence_power:.2}, pad {pad_offset:+}): the model's first and last \
             traced episodes",
            first.task
        ),
        scene,
        flights,
    })
}

/// A point of the image, in pixels.
type Pixel = (i32, i32);

const PANEL_W: i32 = 600;
const LEFT: i32 = 30;
const GAP: i32 = 40;
const TOP: i32 = 100;
/// The view's height above the ground line, in screen heights (the lander starts at the top).
const HEADROOM: f32 = 1.08;
/// Outlines drawn along a path.
const OUTLINES: usize = 6;

const MAIN: RGBColor = RGBColor(240, 120, 0);
const LEFT_ENGINE: RGBColor = RGBColor(30, 100, 220);
const RIGHT_ENGINE: RGBColor = RGBColor(150, 40, 170);

impl LanderPicture {
    fn panel_h(&self) -> i32 {
        (PANEL_W as f32 * self.scene.height * HEADROOM / self.scene.width).round() as i32
    }

    /// World metres to pixels of the panel whose left edge is `x0`.
    fn px(&self, x0: i32, (x, y): (f32, f32)) -> (i32, i32) {
        let s = &self.scene;
        let top = s.height * HEADROOM;
        let x = x.clamp(-0.02 * s.width, 1.02 * s.width);
        let y = y.clamp(-0.02 * top, top);
        (
            x0 + (x / s.width * PANEL_W as f32).round() as i32,
            TOP + ((top - y) / top * self.panel_h() as f32).round() as i32,
        )
    }

    /// The hull (and two legs) at `(x, y)` tilted by `angle`, in pixels.
    fn outline(&self, x0: i32, (x, y, angle): (f32, f32, f32)) -> (Vec<Pixel>, [[Pixel; 2]; 2]) {
        let (sin, cos) = angle.sin_cos();
        let at =
            |(dx, dy): (f32, f32)| self.px(x0, (x + dx * cos - dy * sin, y + dx * sin + dy * cos));
        let hull = self.scene.hull.iter().map(|&p| at(p)).collect();
        let legs = [-1.0f32, 1.0].map(|side| [at((side * 0.45, -0.15)), at((side * 0.75, -0.85))]);
        (hull, legs)
    }

    fn draw_panel<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        x0: i32,
        f: &Flight,
    ) -> Result<()>
    where
        DB::ErrorType: 'static,
    {
        let s = &self.scene;
        let ph = self.panel_h();
        let black = RGBColor(30, 30, 30);
        label(
            root,
            &f.heading,
            (x0 + PANEL_W / 2, TOP - 18),
            &text(15.0, f.outcome.color(), (HPos::Center, VPos::Center)),
        )?;
        root.draw(&Rectangle::new(
            [(x0, TOP), (x0 + PANEL_W, TOP + ph)],
            RGBColor(236, 240, 250).filled(),
        ))
        .map_err(de)?;
        // The ground: the surface polyline closed along the bottom.
        let mut ground: Vec<(i32, i32)> = s.surface.iter().map(|&p| self.px(x0, p)).collect();
        ground.push(self.px(x0, (s.width, 0.0)));
        ground.push(self.px(x0, (0.0, 0.0)));
        root.draw(&Polygon::new(ground, RGBColor(150, 150, 158).filled()))
            .map_err(de)?;
        // The pad and its flags.
        let (a, b, h) = s.pad;
        let pad_color = RGBColor(235, 190, 0);
        root.draw(&PathElement::new(
            vec![self.px(x0, (a, h)), self.px(x0, (b, h))],
            pad_color.stroke_width(4),
        ))
        .map_err(de)?;
        for fx in [a, b] {
            let foot = self.px(x0, (fx, h));
            let top = self.px(x0, (fx, h + 50.0 / 30.0));
            root.draw(&PathElement::new(vec![foot, top], WHITE.stroke_width(2)))
                .map_err(de)?;
            root.draw(&PathElement::new(vec![foot, top], black.stroke_width(1)))
                .map_err(de)?;
            root.draw(&Polygon::new(
                vec![top, (top.0 + 14, top.1 + 5), (top.0, top.1 + 10)],
                pad_color.filled(),
            ))
            .map_err(de)?;
        }
        // The path.
        let pts: Vec<(i32, i32)> = f
            .path
            .iter()
            .map(|&(x, y, _)| self.px(x0, (x, y)))
            .collect();
        root.draw(&PathElement::new(
            pts.clone(),
            RGBColor(70, 70, 70).stroke_width(1),
        ))
        .map_err(de)?;
        // Engine firings at the state they were fired in.
        for (t, &a) in f.actions.iter().enumerate() {
            let Some(&p) = pts.get(t) else { break };
            match a {
                2 => root.draw(&Circle::new(p, 3, MAIN.filled())).map_err(de)?,
                1 => root
                    .draw(&Polygon::new(side_mark(p, -1), LEFT_ENGINE.filled()))
                    .map_err(de)?,
                3 => root
                    .draw(&Polygon::new(side_mark(p, 1), RIGHT_ENGINE.filled()))
                    .map_err(de)?,
                _ => {}
            }
        }
        // Outlines at a few moments, the last in the colour of the outcome.
        let n = f.path.len();
        if n > 0 {
            let mut at: Vec<usize> = (0..OUTLINES)
                .map(|k| k * (n - 1) / (OUTLINES - 1))
                .collect();
            at.dedup();
            for (i, &k) in at.iter().enumerate() {
                let last = i + 1 == at.len();
                let color = if last { f.outcome.color() } else { black };
                let (hull, legs) = self.outline(x0, f.path[k]);
                root.draw(&Polygon::new(hull.clone(), WHITE.mix(0.85).filled()))
                    .map_err(de)?;
                let mut ring = hull;
                ring.push(ring[0]);
                root.draw(&PathElement::new(ring, color.stroke_width(2)))
                    .map_err(de)?;
                for leg in legs {
                    root.draw(&PathElement::new(leg.to_vec(), color.stroke_width(2)))
                        .map_err(de)?;
                }
            }
            let (sx, sy) = pts[0];
            label(
                root,
                "start",
                (sx + 22, sy + 4),
                &text(13.0, black, (HPos::Left, VPos::Center)),
            )?;
        }
        root.draw(&Rectangle::new(
            [(x0, TOP), (x0 + PANEL_W, TOP + ph)],
            black.stroke_width(1),
        ))
        .map_err(de)?;
        Ok(())
    }
}

/// A small triangle pointing left (`dir` −1) or right (+1) at `p`.
fn side_mark((x, y): (i32, i32), dir: i32) -> Vec<(i32, i32)> {
    vec![(x + 4 * dir, y), (x - 3 * dir, y - 4), (x - 3 * dir, y + 4)]
}

impl Picture for LanderPicture {
    fn size(&self) -> (u32, u32) {
        let panels = self.flights.len().max(1) as i32;
        (
            (LEFT * 2 + panels * PANEL_W + (panels - 1) * GAP) as u32,
            (TOP + self.panel_h() + 70) as u32,
        )
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()>
    where
        DB::ErrorType: 'static,
    {
        root.fill(&WHITE).map_err(de)?;
        let (w, _) = self.size();
        let black = RGBColor(30, 30, 30);
        label(
            root,
            &self.title,
            (w as i32 / 2, 24),
            &bold(17.0, black, (HPos::Center, VPos::Center)),
        )?;
        label(
            root,
            "the lander's path over the task's terrain; marks where an engine fired; its outline \
             at six moments, the last coloured by how the episode ended",
            (w as i32 / 2, 50),
            &text(14.0, RGBColor(80, 80, 80), (HPos::Center, VPos::Center)),
        )?;
        for (i, f) in self.flights.iter().enumerate() {
            self.draw_panel(root, LEFT + i as i32 * (PANEL_W + GAP), f)?;
        }
        // Legend.
        let y = TOP + self.panel_h() + 35;
        let style = text(15.0, black, (HPos::Left, VPos::Center));
        let mut x = LEFT + 10;
        root.draw(&PathElement::new(
            vec![(x, y), (x + 26, y)],
            RGBColor(70, 70, 70).stroke_width(1),
        ))
        .map_err(de)?;
        label(root, "path", (x + 34, y), &style)?;
        x += 100;
        root.draw(&Circle::new((x + 8, y), 4, MAIN.filled()))
            .map_err(de)?;
        label(root, "main engine", (x + 20, y), &style)?;
        x += 140;
        root.draw(&Polygon::new(
            side_mark((x + 8, y), -1),
            LEFT_ENGINE.filled(),
        ))
        .map_err(de)?;
        label(root, "left engine", (x + 20, y), &style)?;
        x += 130;
        root.draw(&Polygon::new(
            side_mark((x + 8, y), 1),
            RIGHT_ENGINE.filled(),
        ))
        .map_err(de)?;
        label(root, "right engine", (x + 20, y), &style)?;
        x += 150;
        root.draw(&PathElement::new(
            vec![(x, y), (x + 26, y)],
            RGBColor(235, 190, 0).stroke_width(4),
        ))
        .map_err(de)?;
        label(root, "landing pad", (x + 34, y), &style)?;
        x += 150;
        for (name, color) in [
            ("landed", Outcome::Landed { on_pad: true }.color()),
            ("crashed", Outcome::Crashed.color()),
            ("step limit", Outcome::Timeout.color()),
        ] {
            root.draw(&Rectangle::new(
                [(x, y - 6), (x + 14, y + 6)],
                color.stroke_width(2),
            ))
            .map_err(de)?;
            label(root, name, (x + 20, y), &style)?;
            x += 110;
        }
        Ok(())
    }
}
