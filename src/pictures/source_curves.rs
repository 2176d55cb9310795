//! What the model was asked to distil: the source algorithm's return per episode over the
//! cached learning histories (mean ± one standard error across histories), the histories of
//! training tasks and of held-out tasks as two lines, with each split's mean optimum as a
//! dashed reference. Long histories are smoothed by a trailing moving mean first (said in the
//! title).

use super::render::{bold, de, label, text, Picture};
use crate::tasks::{LearningHistory, Split, TaskSuite};
use anyhow::Result;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};

/// One split's curve: `(episode, mean, mean − s.e., mean + s.e.)`.
#[derive(Debug, Clone)]
pub struct Curve {
    pub label: String,
    pub color: RGBColor,
    pub points: Vec<(f64, f64, f64, f64)>,
    /// The split's mean optimal return, drawn dashed.
    pub optimum: Option<f64>,
}

#[derive(Debug, Clone)]
pub struct SourceCurves {
    pub title: String,
    pub subtitle: String,
    pub x_label: String,
    pub y_label: String,
    pub curves: Vec<Curve>,
}

/// The height of one legend row.
const LEGEND_ROW: u32 = 26;

/// Distinct colours for many curves (one per reward function).
const PALETTE: [RGBColor; 12] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
    RGBColor(57, 59, 121),
    RGBColor(99, 121, 57),
    RGBColor(140, 109, 49),
];

/// PPO's learning curve on each reward function of an RLHF task: the mean score per epoch
/// (± s.e. across that reward's runs); held-out rewards in red shades, dashed in the legend
/// text. `None` without scores.
pub fn rlhf_chart(
    task: &str,
    runs: &[crate::rlhf::RlhfRun],
    names: &[Option<String>],
    splits: &[Split],
) -> Option<SourceCurves> {
    let mut by_reward: std::collections::BTreeMap<(bool, String), Vec<Vec<f32>>> =
        std::collections::BTreeMap::new();
    for ((run, name), split) in runs.iter().zip(names).zip(splits) {
        let curve: Vec<f32> = run.score_curve().into_iter().map_while(|s| s).collect();
        if curve.is_empty() {
            continue;
        }
        let name = name.clone().unwrap_or_else(|| "reward".into());
        by_reward
            .entry((*split == Split::Test, name))
            .or_default()
            .push(curve);
    }
    if by_reward.is_empty() {
        return None;
    }
    let held_out_colors = [
        RGBColor(214, 39, 40),
        RGBColor(255, 90, 90),
        RGBColor(150, 0, 0),
    ];
    let (mut train_i, mut test_i) = (0, 0);
    let curves = by_reward
        .into_iter()
        .map(|((held_out, name), curves)| {
            let color = if held_out {
                test_i += 1;
                held_out_colors[(test_i - 1) % held_out_colors.len()]
            } else {
                train_i += 1;
                PALETTE[(train_i - 1) % PALETTE.len()]
            };
            let returns: Vec<&[f32]> = curves.iter().map(Vec::as_slice).collect();
            Curve {
                label: format!(
                    "{name}{} ({} runs)",
                    if held_out { ", held out" } else { "" },
                    curves.len()
                ),
                color,
                points: mean_se(&returns, 1),
                optimum: None,
            }
        })
        .collect();
    Some(SourceCurves {
        title: format!("what the model distils: PPO learning each reward of {task}"),
        subtitle: "mean reward-model score of each epoch's rollouts; band ± 1 s.e. across the \
                   reward's runs"
            .into(),
        x_label: "PPO epoch".into(),
        y_label: "mean score".into(),
        curves,
    })
}

const SIZE: (u32, u32) = (1100, 600);

/// The moving-mean window for curves of `episodes` episodes: 1 up to 100 episodes, then about
/// a hundredth of the curve.
pub fn window(episodes: usize) -> usize {
    if episodes > 100 {
        episodes / 100
    } else {
        1
    }
}

/// Mean ± s.e. across `returns` (one curve per history) at each episode, after a trailing
/// moving mean over `w` episodes of each curve.
pub fn mean_se(returns: &[&[f32]], w: usize) -> Vec<(f64, f64, f64, f64)> {
    let longest = returns.iter().map(|r| r.len()).max().unwrap_or(0);
    let w = w.max(1);
    let smoothed: Vec<Vec<f64>> = returns
        .iter()
        .map(|r| {
            let mut sum = 0.0;
            (0..r.len())
                .map(|e| {
                    sum += f64::from(r[e]);
                    if e >= w {
                        sum -= f64::from(r[e - w]);
                    }
                    sum / (e + 1).min(w) as f64
                })
                .collect()
        })
        .collect();
    (0..longest)
        .map(|e| {
            let v: Vec<f64> = smoothed.iter().filter_map(|s| s.get(e).copied()).collect();
            let n = v.len() as f64;
            let mean = v.iter().sum::<f64>() / n;
            let se = if v.len() > 1 {
                (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0) / n).sqrt()
            } else {
                0.0
            };
            (e as f64, mean, mean - se, mean + se)
        })
        .collect()
}

/// The chart of a suite's histories; `None` without histories.
pub fn chart(suite: &TaskSuite, histories: &[LearningHistory]) -> Option<SourceCurves> {
    let longest = histories
        .iter()
        .map(|h| h.episode_returns.len())
        .max()
        .unwrap_or(0);
    if longest == 0 {
        return None;
    }
    let w = window(longest);
    let mut curves = Vec::new();
    for (split, name, color) in [
        (Split::Train, "training tasks", RGBColor(31, 119, 180)),
        (Split::Test, "held-out tasks", RGBColor(214, 39, 40)),
    ] {
        let mine: Vec<&LearningHistory> = histories.iter().filter(|h| h.split == split).collect();
        if mine.is_empty() {
            continue;
        }
        let returns: Vec<&[f32]> = mine.iter().map(|h| h.episode_returns.as_slice()).collect();
        let mut tasks: Vec<usize> = mine.iter().map(|h| h.task_index as usize).collect();
        tasks.sort_unstable();
        tasks.dedup();
        let optima: Vec<f64> = tasks
            .iter()
            .filter_map(|&t| suite.optimal_returns().get(t).map(|&o| f64::from(o)))
            .collect();
        let optimum =
            (!optima.is_empty()).then(|| optima.iter().sum::<f64>() / optima.len() as f64);
        curves.push(Curve {
            label: format!("{name} ({} histories of {} tasks)", mine.len(), tasks.len()),
            color,
            points: mean_se(&returns, w),
            optimum,
        });
    }
    let cfg = suite.config();
    Some(SourceCurves {
        x_label: "episode of the source's learning history".into(),
        y_label: "return".into(),
        title: format!(
            "what the model distils: {} learning {}",
            cfg.source.algo_name(),
            cfg.name
        ),
        subtitle: if w > 1 {
            format!(
                "source return per episode of its learning histories, moving mean over {w} \
                 episodes; band ± 1 s.e. across histories"
            )
        } else {
            "source return per episode of its learning histories; band ± 1 s.e. across \
             histories"
                .into()
        },
        curves,
    })
}

impl Picture for SourceCurves {
    fn size(&self) -> (u32, u32) {
        SIZE
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()>
    where
        DB::ErrorType: 'static,
    {
        root.fill(&WHITE).map_err(de)?;
        let black = RGBColor(30, 30, 30);
        label(
            root,
            &self.title,
            (SIZE.0 as i32 / 2, 24),
            &bold(20.0, black, (HPos::Center, VPos::Center)),
        )?;
        label(
            root,
            &self.subtitle,
            (SIZE.0 as i32 / 2, 50),
            &text(15.0, RGBColor(80, 80, 80), (HPos::Center, VPos::Center)),
        )?;
        let (_, body) = root.split_vertically(64);
        let entries =
            self.curves.len() + self.curves.iter().filter(|c| c.optimum.is_some()).count();
        // Three entries a row when the labels are short (one curve per reward), else two.
        let columns = if self.curves.iter().all(|c| c.label.len() <= 36) {
            3
        } else {
            2
        };
        let legend_h = 18 + LEGEND_ROW * entries.div_ceil(columns) as u32;
        let (plot, legend) = body.split_vertically(SIZE.1 - 64 - legend_h);
        let xs = self
            .curves
            .iter()
            .flat_map(|c| c.points.iter().map(|p| p.0));
        let x1 = xs.fold(1.0f64, f64::max);
        let ys = self
            .curves
            .iter()
            .flat_map(|c| c.points.iter().flat_map(|p| [p.2, p.3]).chain(c.optimum));
        let (lo, hi) = ys.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), y| {
            (a.min(y), b.max(y))
        });
        let (lo, hi) = if lo.is_finite() { (lo, hi) } else { (0.0, 1.0) };
        let pad = if hi > lo { (hi - lo) * 0.05 } else { 0.5 };
        let mut chart = ChartBuilder::on(&plot)
            .margin(14)
            .x_label_area_size(45)
            .y_label_area_size(80)
            .build_cartesian_2d(0.0..x1, (lo - pad)..(hi + pad))
            .map_err(de)?;
        chart
            .configure_mesh()
            .x_desc(&self.x_label)
            .y_desc(&self.y_label)
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_label_formatter(&|y| super::visitation::short(*y))
            .label_style((super::font::FAMILY, 15))
            .axis_desc_style((super::font::FAMILY, 17))
            .light_line_style(TRANSPARENT)
            .bold_line_style(RGBColor(225, 225, 225))
            .draw()
            .map_err(de)?;
        for c in &self.curves {
            if c.points.iter().any(|p| p.2 != p.3) {
                let band: Vec<(f64, f64)> = c
                    .points
                    .iter()
                    .map(|p| (p.0, p.3))
                    .chain(c.points.iter().rev().map(|p| (p.0, p.2)))
                    .collect();
                chart
                    .draw_series(std::iter::once(Polygon::new(
                        band,
                        c.color.mix(0.2).filled(),
                    )))
                    .map_err(de)?;
            }
            if let Some(o) = c.optimum {
                chart
                    .draw_series(DashedLineSeries::new(
                        [(0.0, o), (x1, o)],
                        8,
                        6,
                        c.color.stroke_width(1),
                    ))
                    .map_err(de)?;
            }
            chart
                .draw_series(LineSeries::new(
                    c.points.iter().map(|p| (p.0, p.1)),
                    c.color.stroke_width(2),
                ))
                .map_err(de)?;
        }
        // Legend below the plot, in rows: a line per curve, a dashed one per optimum.
        let style = text(15.0, black, (HPos::Left, VPos::Center));
        let column = (SIZE.0 as i32 - 80) / columns as i32;
        let mut slot = 0usize;
        let mut place = || {
            let (row, col) = (slot / columns, slot % columns);
            slot += 1;
            (
                60 + col as i32 * column,
                20 + row as i32 * LEGEND_ROW as i32,
            )
        };
        for c in &self.curves {
            let (x, y) = place();
            legend
                .draw(&PathElement::new(
                    vec![(x, y), (x + 30, y)],
                    c.color.stroke_width(2),
                ))
                .map_err(de)?;
            label(&legend, &c.label, (x + 38, y), &style)?;
            if let Some(o) = c.optimum {
                let (x, y) = place();
                for k in 0..3 {
                    legend
                        .draw(&PathElement::new(
                            vec![(x + k * 11, y), (x + k * 11 + 7, y)],
                            c.color.stroke_width(1),
                        ))
                        .map_err(de)?;
                }
                let what = c.label.split(" (").next().unwrap_or("");
                label(
                    &legend,
                    &format!("optimum, {what} (mean {})", super::visitation::short(o)),
                    (x + 38, y),
                    &style,
                )?;
            }
        }
        Ok(())
    }
}
