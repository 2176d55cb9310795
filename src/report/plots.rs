//! Plots (SVG and PNG, with plotters): learning curves from `metrics.csv` and in-context curves
//! from `eval.csv`, one line per group (the mean over its completed runs) with the runs'
//! min–max as a band (in-context curves: ± one standard error over the tasks played), and the
//! memorisation gap (validation on held-out beside training tasks). Each chart is drawn once
//! per backend from the same `Chart` value.

use super::collect::RunRecord;
use super::labels::{group_label, group_title};
use super::table::GroupTable;
use crate::pictures::font::FAMILY;
use crate::pictures::render::Picture;
use anyhow::{anyhow, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The plot's own size; a legend below it makes the image taller.
const SIZE: (u32, u32) = (1100, 520);
const LEGEND_WIDTH: u32 = 340;
/// Longest label (characters) that fits the legend beside the plot; longer ones go below it,
/// whole: a cut label can make two groups read the same.
const SIDE_LABEL_MAX: usize = 32;
/// Longest label for two legend columns below the plot.
const TWO_COLUMN_MAX: usize = 55;
const LEGEND_ROW: i32 = 24;

/// One line: the mean at each x, and the band (min, max) around it.
#[derive(Debug, Clone)]
pub struct Series {
    pub label: String,
    /// `(x, mean, low, high)`, sorted by x.
    pub points: Vec<(f64, f64, f64, f64)>,
    pub color: RGBColor,
    /// Baselines are thin and carry no band.
    pub baseline: bool,
}

/// A chart ready to draw.
#[derive(Debug, Clone)]
pub struct Chart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    /// What the group labels are values of (`model.name / format.name`).
    pub legend_title: String,
    pub series: Vec<Series>,
}

/// Where the legend goes and how big the image is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Legend {
    Beside,
    Below { columns: usize, rows: usize },
}

fn legend_layout(chart: &Chart) -> (Legend, (u32, u32)) {
    let longest = chart
        .series
        .iter()
        .map(|s| s.label.chars().count())
        .chain([chart.legend_title.chars().count().saturating_sub(8)])
        .max()
        .unwrap_or(0);
    if longest <= SIDE_LABEL_MAX {
        return (Legend::Beside, SIZE);
    }
    let columns = if longest <= TWO_COLUMN_MAX { 2 } else { 1 };
    let rows = chart.series.len().div_ceil(columns);
    let height = SIZE.1 + 50 + LEGEND_ROW as u32 * rows as u32;
    (Legend::Below { columns, rows }, (SIZE.0, height))
}

fn group_color(i: usize) -> RGBColor {
    let c = Palette99::pick(i).to_rgba();
    RGBColor(c.0, c.1, c.2)
}

/// Mean and min–max over runs of a per-run curve `x -> value`.
fn aggregate(curves: &[BTreeMap<u64, f64>]) -> Vec<(f64, f64, f64, f64)> {
    let mut by_x: BTreeMap<u64, Vec<f64>> = BTreeMap::new();
    for c in curves {
        for (&x, &v) in c {
            if v.is_finite() {
                by_x.entry(x).or_default().push(v);
            }
        }
    }
    by_x.into_iter()
        .map(|(x, vs)| {
            let mean = vs.iter().sum::<f64>() / vs.len() as f64;
            let lo = vs.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = vs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            (x as f64, mean, lo, hi)
        })
        .collect()
}

fn completed_members<'a>(runs: &'a [RunRecord], members: &[usize]) -> Vec<&'a RunRecord> {
    members
        .iter()
        .map(|&i| &runs[i])
        .filter(|r| r.completed())
        .collect()
}

/// `split`/`metric` from `metrics.csv` against step, a line per group.
pub fn learning_curve(
    runs: &[RunRecord],
    groups: &GroupTable,
    split: &str,
    metric: &str,
) -> Option<Chart> {
    let mut series = Vec::new();
    for (gi, g) in groups.groups.iter().enumerate() {
        let curves: Vec<BTreeMap<u64, f64>> = completed_members(runs, &g.members)
            .iter()
            .map(|r| {
                r.metrics
                    .iter()
                    .filter(|p| p.split == split)
                    .filter_map(|p| p.values.get(metric).map(|&v| (p.step, v)))
                    .collect()
            })
            .collect();
        let points = aggregate(&curves);
        if !points.is_empty() {
            series.push(Series {
                label: group_label(&g.key_values),
                points,
                color: group_color(gi),
                baseline: false,
            });
        }
    }
    let split_name = match split {
        "val" => "validation",
        "val_train" => "validation on training tasks",
        "train" => "training",
        other => other,
    };
    (!series.is_empty()).then(|| Chart {
        title: format!(
            "{split_name} {} (band: min–max over runs)",
            metric.replace('_', " ")
        ),
        x_label: "training step".into(),
        y_label: format!("{split} {metric}"),
        legend_title: group_title(&groups.keys),
        series,
    })
}

/// The memorisation gap: `metric` on held-out-task windows (`val`) beside the same on
/// training-task windows (`val_train`), a pair of lines per group. Lines that part while
/// training shows the model recalling its training tasks rather than learning to learn.
pub fn memorisation_gap(runs: &[RunRecord], groups: &GroupTable, metric: &str) -> Option<Chart> {
    let held = learning_curve(runs, groups, "val", metric)?;
    let train = learning_curve(runs, groups, "val_train", metric)?;
    let n = groups.groups.len();
    let mut series = Vec::new();
    for (i, mut s) in held.series.into_iter().enumerate() {
        s.label = format!("{} · held-out tasks", s.label);
        series.push(s);
        if let Some(mut t) = train.series.get(i).cloned() {
            t.label = format!("{} · training tasks", t.label);
            t.color = group_color(i + n.max(1));
            series.push(t);
        }
    }
    Some(Chart {
        title: format!(
            "memorisation gap: validation {} on held-out vs training tasks",
            metric.replace('_', " ")
        ),
        x_label: "training step".into(),
        y_label: format!("validation {metric}"),
        legend_title: held.legend_title,
        series,
    })
}

/// Mean return per episode on `split` tasks (`test` = held out): the model once per group,
/// then the source algorithm, random and optimal policies pooled over all completed runs.
pub fn in_context_curve(runs: &[RunRecord], groups: &GroupTable, split: &str) -> Option<Chart> {
    // One curve per run and policy: episode -> mean return over that run's tasks.
    let curve = |r: &RunRecord, policy: &str| -> BTreeMap<u64, f64> {
        let mut acc: BTreeMap<u64, (f64, usize)> = BTreeMap::new();
        for p in r
            .eval
            .iter()
            .filter(|p| p.split == split && p.policy == policy)
        {
            let e = acc.entry(p.episode).or_insert((0.0, 0));
            e.0 += p.ret;
            e.1 += 1;
        }
        acc.into_iter()
            .map(|(k, (s, n))| (k, s / n as f64))
            .collect()
    };
    let mut series = Vec::new();
    for (gi, g) in groups.groups.iter().enumerate() {
        let members = completed_members(runs, &g.members);
        let points = spread_over_tasks(&members, split);
        if !points.is_empty() {
            series.push(Series {
                label: format!("model: {}", group_label(&g.key_values)),
                points,
                color: group_color(gi),
                baseline: false,
            });
        }
    }
    if series.is_empty() {
        return None;
    }
    let (x_min, x_max) = x_range(&series);
    let done: Vec<&RunRecord> = runs.iter().filter(|r| r.completed()).collect();
    for (policy, color) in [
        ("model_reset", RGBColor(148, 103, 189)),
        ("source", RGBColor(120, 72, 0)),
        ("random", RGBColor(128, 128, 128)),
        ("optimal", RGBColor(0, 0, 0)),
        ("marginal", RGBColor(23, 150, 160)),
    ] {
        let curves: Vec<_> = done.iter().map(|r| curve(r, policy)).collect();
        let mut points = aggregate(&curves);
        // A reference value recorded once per task is drawn across the whole axis.
        if points.len() == 1 {
            let (_, m, _, _) = points[0];
            points = vec![(x_min, m, m, m), (x_max, m, m, m)];
        }
        if !points.is_empty() {
            series.push(Series {
                label: policy.into(),
                points,
                color,
                baseline: true,
            });
        }
    }
    Some(Chart {
        title: format!("in-context return on {split} tasks (model band: ± 1 s.e. over tasks)"),
        x_label: "episode".into(),
        y_label: "mean return over tasks".into(),
        legend_title: group_title(&groups.keys),
        series,
    })
}

/// The model's mean return per episode over every (run, task) of `runs`, with a band of one
/// standard error of that mean over the tasks: how far the curve can be trusted given how the
/// tasks spread (in Dark Room some goals are found at once and others late).
fn spread_over_tasks(runs: &[&RunRecord], split: &str) -> Vec<(f64, f64, f64, f64)> {
    let mut by_episode: BTreeMap<u64, Vec<f64>> = BTreeMap::new();
    for r in runs {
        for p in r
            .eval
            .iter()
            .filter(|p| p.split == split && p.policy == "model")
        {
            by_episode.entry(p.episode).or_default().push(p.ret);
        }
    }
    by_episode
        .into_iter()
        .map(|(e, v)| {
            let n = v.len() as f64;
            let mean = v.iter().sum::<f64>() / n;
            let var = if v.len() > 1 {
                v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)
            } else {
                0.0
            };
            let se = (var / n).sqrt();
            (e as f64, mean, mean - se, mean + se)
        })
        .collect()
}

fn x_range(series: &[Series]) -> (f64, f64) {
    let xs = series.iter().flat_map(|s| s.points.iter().map(|p| p.0));
    let (lo, hi) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
        (a.min(x), b.max(x))
    });
    if lo.is_finite() {
        (lo, hi)
    } else {
        (0.0, 1.0)
    }
}

fn y_range(series: &[Series]) -> (f64, f64) {
    let ys = series
        .iter()
        .flat_map(|s| s.points.iter().flat_map(|p| [p.2, p.3]));
    let (lo, hi) = ys.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), y| {
        (a.min(y), b.max(y))
    });
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let pad = if hi > lo { (hi - lo) * 0.05 } else { 0.5 };
    (lo - pad, hi + pad)
}

/// Tick labels: integers without a fraction, everything else with four significant digits.
fn axis_number(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e9 {
        format!("{x:.0}")
    } else {
        let s = super::labels::num(x);
        if s.contains('.') && !s.contains('e') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    }
}

fn draw<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, chart: &Chart) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow!("drawing a plot: {e:?}");
    root.fill(&WHITE).map_err(err)?;
    let (legend, _) = legend_layout(chart);
    let (plot_area, legend_area) = match legend {
        Legend::Beside => root.split_horizontally(SIZE.0 - LEGEND_WIDTH),
        Legend::Below { .. } => root.split_vertically(SIZE.1),
    };
    let (mut x0, mut x1) = x_range(&chart.series);
    if x1 <= x0 {
        x0 -= 0.5;
        x1 += 0.5;
    }
    let (y0, y1) = y_range(&chart.series);
    let mut ctx = ChartBuilder::on(&plot_area)
        .caption(&chart.title, (FAMILY, 24))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(90)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(err)?;
    ctx.configure_mesh()
        .x_desc(chart.x_label.as_str())
        .y_desc(chart.y_label.as_str())
        .x_label_formatter(&|x| axis_number(*x))
        .y_label_formatter(&|y| axis_number(*y))
        .label_style((FAMILY, 15))
        .axis_desc_style((FAMILY, 17))
        .light_line_style(TRANSPARENT)
        .bold_line_style(RGBColor(225, 225, 225))
        .draw()
        .map_err(err)?;
    for s in &chart.series {
        if !s.baseline && s.points.len() > 1 && s.points.iter().any(|p| p.2 != p.3) {
            let band: Vec<(f64, f64)> = s
                .points
                .iter()
                .map(|p| (p.0, p.3))
                .chain(s.points.iter().rev().map(|p| (p.0, p.2)))
                .collect();
            ctx.draw_series(std::iter::once(Polygon::new(
                band,
                s.color.mix(0.18).filled(),
            )))
            .map_err(err)?;
        }
    }
    for s in &chart.series {
        let width = if s.baseline { 1 } else { 2 };
        ctx.draw_series(LineSeries::new(
            s.points.iter().map(|p| (p.0, p.1)),
            s.color.stroke_width(width),
        ))
        .map_err(err)?;
        if s.points.len() == 1 {
            let p = s.points[0];
            ctx.draw_series(std::iter::once(Circle::new(
                (p.0, p.1),
                3,
                s.color.filled(),
            )))
            .map_err(err)?;
        }
    }
    // The legend sits beside or below the plot, so it never hides a curve.
    let title = if chart.legend_title.is_empty() {
        "legend".to_string()
    } else {
        format!("legend: {}", chart.legend_title)
    };
    legend_area
        .draw(&Text::new(
            title,
            (10, 30),
            (FAMILY, 17).into_font().style(FontStyle::Bold),
        ))
        .map_err(err)?;
    let (columns, rows) = match legend {
        Legend::Beside => (1, chart.series.len().max(1)),
        Legend::Below { columns, rows } => (columns, rows.max(1)),
    };
    let column_width = (SIZE.0 as i32 - 20) / columns as i32;
    for (i, s) in chart.series.iter().enumerate() {
        let (col, row) = (i / rows, i % rows);
        let (x, y) = (10 + col as i32 * column_width, 60 + LEGEND_ROW * row as i32);
        let width = if s.baseline { 1 } else { 2 };
        legend_area
            .draw(&PathElement::new(
                vec![(x, y), (x + 30, y)],
                s.color.stroke_width(width),
            ))
            .map_err(err)?;
        legend_area
            .draw(&Text::new(
                s.label.clone(),
                (x + 38, y - 8),
                (FAMILY, 16).into_font(),
            ))
            .map_err(err)?;
    }
    Ok(())
}

/// A chart is drawn at its size with the legend beside or below it; `pictures::render`
/// writes it as SVG and PNG.
impl Picture for Chart {
    fn size(&self) -> (u32, u32) {
        legend_layout(self).1
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()>
    where
        DB::ErrorType: 'static,
    {
        draw(root.clone(), self)
    }
}

/// Writes `<dir>/<stem>.svg` and `<dir>/<stem>.png`; returns their paths.
pub fn write_chart(dir: &Path, stem: &str, chart: &Chart) -> Result<Vec<PathBuf>> {
    crate::pictures::render::write(dir, stem, chart)
}

/// Every plot the runs have data for, into `dir`: `train_loss`, `val_loss`, `val_action_acc`,
/// `memorisation_gap`, `in_context_test`.
pub fn write_all(dir: &Path, runs: &[RunRecord], groups: &GroupTable) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for (split, metric) in [("train", "loss"), ("val", "loss"), ("val", "action_acc")] {
        if let Some(c) = learning_curve(runs, groups, split, metric) {
            written.extend(write_chart(dir, &format!("{split}_{metric}"), &c)?);
        }
    }
    if let Some(c) = memorisation_gap(runs, groups, "action_acc") {
        written.extend(write_chart(dir, "memorisation_gap", &c)?);
    }
    if let Some(c) = in_context_curve(runs, groups, "test") {
        written.extend(write_chart(dir, "in_context_test", &c)?);
    }
    Ok(written)
}
