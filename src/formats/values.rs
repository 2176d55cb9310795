//! How a language format writes continuous state values (`format.values`), and the inverse:
//! reading a value back from text, as the parser and the next-state prediction metrics do.
//!
//! The ways are the candidates of the moonlander serialisation study: fixed-precision
//! decimals (`0.42`), scaled integers (`42`), and the feature's typical range cut into equal
//! bins, each bin written as a label (`k`, or a word such as `high`). Discrete (grid) states are
//! always written as their integer coordinates.

use super::fields::{format_decimal, scan_number};
use crate::tasks::{EnvSpec, StateSpace};
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

/// `format.values`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ValueText {
    /// Decimals with `format.precision` places: `-0.42`.
    #[default]
    Decimal,
    /// `round(x · scale)` as an integer: `-42` for scale 100.
    ScaledInt { scale: f32 },
    /// The feature's typical range (`EnvSpec`) cut into `labels.len()` equal bins, or `count`
    /// bins labelled `a`, `b`, … when `labels` is empty; values outside the range fall into
    /// the end bins. Read back as the bin's centre.
    Bins {
        #[serde(default)]
        count: usize,
        #[serde(default)]
        labels: Vec<String>,
    },
}

impl ValueText {
    pub fn is_decimal(&self) -> bool {
        matches!(self, ValueText::Decimal)
    }
}

/// The codec of one format's continuous state values.
#[derive(Debug, Clone)]
pub struct StateText {
    kind: Codec,
}

#[derive(Debug, Clone)]
enum Codec {
    Decimal {
        precision: usize,
    },
    ScaledInt {
        scale: f32,
    },
    Bins {
        labels: Vec<String>,
        ranges: Vec<[f32; 2]>,
    },
}

const VALUES_KEY: &str = "format.values";

impl StateText {
    /// Checks `values` against the environment: bins need continuous states with a typical
    /// range per feature, labels must be distinct and non-empty.
    pub fn new(values: &ValueText, precision: usize, spec: &EnvSpec) -> Result<StateText> {
        let kind = match values {
            ValueText::Decimal => Codec::Decimal { precision },
            ValueText::ScaledInt { scale } => {
                if !(scale.is_finite() && *scale > 0.0) {
                    bail!("{VALUES_KEY}.scale = {scale}: expected a positive number");
                }
                Codec::ScaledInt { scale: *scale }
            }
            ValueText::Bins { count, labels } => Codec::Bins {
                labels: bin_labels(*count, labels)?,
                ranges: ranges_of(spec)?,
            },
        };
        if !values.is_decimal() && matches!(spec.state, StateSpace::Discrete { .. }) {
            bail!(
                "{VALUES_KEY}: `{}` applies to continuous states; environment `{}` has discrete \
                 states (written as grid coordinates): use a format with `values: {{kind: decimal}}`",
                kind_name(values),
                spec.kind
            );
        }
        Ok(StateText { kind })
    }

    /// Feature `i`'s value `x` as text.
    pub fn format(&self, i: usize, x: f32) -> String {
        match &self.kind {
            Codec::Decimal { precision } => format_decimal(x, *precision),
            Codec::ScaledInt { scale } => {
                let v = (x * scale).round();
                // `-0` would be a second text for zero.
                format!("{}", if v == 0.0 { 0.0 } else { v })
            }
            Codec::Bins { labels, ranges } => labels[bin_of(x, ranges[i], labels.len())].clone(),
        }
    }

    /// Every way a value of feature `i` can be read at the start of `text`: `(bytes, value)`.
    /// Decimals need exactly `precision` places so adjacent values need no delimiter;
    /// `lenient` reads any number (`0.2` where `0.20` was due), as a person would where
    /// values are delimited.
    pub fn scan(&self, i: usize, text: &str, lenient: bool) -> Vec<(usize, f32)> {
        let number = |decimals: usize| {
            scan_number(text, (!lenient).then_some(decimals))
                .and_then(|n| text[..n].parse::<f32>().ok().map(|v| (n, v)))
        };
        match &self.kind {
            Codec::Decimal { precision } => number(*precision).into_iter().collect(),
            Codec::ScaledInt { scale } => {
                number(0).map(|(n, v)| (n, v / scale)).into_iter().collect()
            }
            Codec::Bins { labels, ranges } => {
                let Some(&[lo, hi]) = ranges.get(i) else {
                    return Vec::new();
                };
                let width = (hi - lo) / labels.len() as f32;
                labels
                    .iter()
                    .enumerate()
                    .filter(|(_, l)| text.starts_with(l.as_str()))
                    .map(|(b, l)| (l.len(), lo + (b as f32 + 0.5) * width))
                    .collect()
            }
        }
    }

    /// The largest error a perfect writer makes on feature `i` (half a unit of the last place,
    /// or half a bin): what the parser's round trip is checked against.
    pub fn resolution(&self, i: usize) -> f32 {
        match &self.kind {
            Codec::Decimal { precision } => 0.5 * 10f32.powi(-(*precision as i32)),
            Codec::ScaledInt { scale } => 0.5 / scale,
            Codec::Bins { labels, ranges } => ranges.get(i).map_or(f32::INFINITY, |[lo, hi]| {
                0.5 * (hi - lo) / labels.len() as f32
            }),
        }
    }
}

/// The state's values as the template's `state` list: grid coordinates for discrete states,
/// features as `values` writes them for continuous ones. `None` for an unknown state id.
pub fn state_values(
    spec: &EnvSpec,
    state: u32,
    features: &[f32],
    values: &StateText,
) -> Option<Vec<String>> {
    match &spec.state {
        StateSpace::Discrete { coords, .. } => coords
            .get(state as usize)
            .map(|c| c.iter().map(|v| v.to_string()).collect()),
        StateSpace::Continuous { .. } => Some(
            features
                .iter()
                .enumerate()
                .map(|(i, &x)| values.format(i, x))
                .collect(),
        ),
    }
}

fn kind_name(values: &ValueText) -> &'static str {
    match values {
        ValueText::Decimal => "decimal",
        ValueText::ScaledInt { .. } => "scaled_int",
        ValueText::Bins { .. } => "bins",
    }
}

fn bin_labels(count: usize, labels: &[String]) -> Result<Vec<String>> {
    let labels: Vec<String> = if labels.is_empty() {
        if !(2..=26).contains(&count) {
            bail!(
                "{VALUES_KEY}.count = {count}: expected 2 to 26 bins labelled a-z, or a list of \
                 `labels`"
            );
        }
        (b'a'..b'a' + count as u8)
            .map(|c| (c as char).to_string())
            .collect()
    } else {
        if count != 0 && count != labels.len() {
            bail!(
                "{VALUES_KEY}: count = {count} but {} labels are given (leave `count` out)",
                labels.len()
            );
        }
        labels.to_vec()
    };
    if labels.len() < 2 {
        bail!("{VALUES_KEY}.labels: at least 2 bins are needed");
    }
    for (i, l) in labels.iter().enumerate() {
        if l.is_empty() || l.chars().any(|c| c.is_ascii_digit() || c.is_whitespace()) {
            bail!(
                "{VALUES_KEY}.labels.{i} = {l:?}: a label must be non-empty, without digits or \
                 spaces (it would be confused with numbers or delimiters)"
            );
        }
        if labels[..i].contains(l) {
            bail!("{VALUES_KEY}.labels.{i} = {l:?} appears twice: bins must be told apart");
        }
    }
    Ok(labels)
}

fn ranges_of(spec: &EnvSpec) -> Result<Vec<[f32; 2]>> {
    match &spec.state {
        StateSpace::Continuous {
            feature_names,
            feature_ranges,
        } => {
            if feature_ranges.len() != feature_names.len() {
                bail!(
                    "{VALUES_KEY}: bins need a typical range for each of the {} features of \
                     `{}`, and it states {}",
                    feature_names.len(),
                    spec.kind,
                    feature_ranges.len()
                );
            }
            Ok(feature_ranges.clone())
        }
        StateSpace::Discrete { .. } => Ok(Vec::new()),
    }
}

fn bin_of(x: f32, [lo, hi]: [f32; 2], bins: usize) -> usize {
    let b = ((x - lo) / (hi - lo) * bins as f32).floor();
    if b.is_nan() {
        0
    } else {
        (b.max(0.0) as usize).min(bins - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> EnvSpec {
        crate::tasks::env::lander::Lander::spec(10)
    }

    #[test]
    fn each_kind_writes_and_reads_back_within_its_resolution() {
        let words: Vec<String> = ["low", "mid", "high"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let kinds = [
            ValueText::Decimal,
            ValueText::ScaledInt { scale: 100.0 },
            ValueText::Bins {
                count: 16,
                labels: vec![],
            },
            ValueText::Bins {
                count: 0,
                labels: words,
            },
        ];
        for kind in kinds {
            let st = StateText::new(&kind, 2, &spec()).unwrap();
            for (i, x) in [(0, -0.734f32), (1, 1.2), (3, -0.05), (6, 1.0)] {
                let text = st.format(i, x);
                let read = st.scan(i, &format!("{text},"), false);
                assert_eq!(read.len(), 1, "{kind:?}: {text}");
                assert_eq!(read[0].0, text.len());
                assert!(
                    (read[0].1 - x).abs() <= st.resolution(i) + 1e-5,
                    "{kind:?} {x} {text}"
                );
            }
        }
    }

    #[test]
    fn scaled_ints_and_bins_write_what_the_study_expects() {
        let st = StateText::new(&ValueText::ScaledInt { scale: 100.0 }, 2, &spec()).unwrap();
        assert_eq!(
            (st.format(0, -0.734), st.format(0, -0.001)),
            ("-73".into(), "0".into())
        );
        let st = StateText::new(
            &ValueText::Bins {
                count: 4,
                labels: vec![],
            },
            2,
            &spec(),
        )
        .unwrap();
        // x spans [-1, 1]: bins of 0.5; out-of-range values land in the end bins.
        assert_eq!(st.format(0, -0.9), "a");
        assert_eq!(st.format(0, 0.1), "c");
        assert_eq!(st.format(0, 7.0), "d");
        assert_eq!(st.format(0, -7.0), "a");
        assert_eq!(st.scan(0, "c)", false), vec![(1, 0.25)]);
        let st = StateText::new(&ValueText::Decimal, 2, &spec()).unwrap();
        assert_eq!(st.scan(0, "0.2,", false), vec![]);
        assert_eq!(st.scan(0, "0.2,", true), vec![(3, 0.2)]);
    }

    #[test]
    fn bad_values_settings_are_errors_naming_the_key() {
        let bad = [
            (ValueText::ScaledInt { scale: 0.0 }, "format.values.scale"),
            (
                ValueText::Bins {
                    count: 40,
                    labels: vec![],
                },
                "format.values.count",
            ),
            (
                ValueText::Bins {
                    count: 0,
                    labels: vec!["lo".into(), "lo".into()],
                },
                "appears twice",
            ),
            (
                ValueText::Bins {
                    count: 0,
                    labels: vec!["a1".into(), "b".into()],
                },
                "without digits",
            ),
        ];
        for (kind, want) in bad {
            let err = format!("{:#}", StateText::new(&kind, 2, &spec()).unwrap_err());
            assert!(err.contains(want), "{err}");
        }
        let grid = crate::tasks::env::grid::DarkRoom::spec(9, 20);
        let err = StateText::new(
            &ValueText::Bins {
                count: 4,
                labels: vec![],
            },
            2,
            &grid,
        )
        .unwrap_err();
        assert!(format!("{err}").contains("discrete"), "{err}");
    }
}
