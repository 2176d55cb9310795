//! The text of single fields of a step — state values, action symbols, rewards — and the
//! inverse (reading a reward or a number back). Kept apart from the template so the trainer
//! and the evaluator can format or parse one field without rendering a whole step.

use crate::tasks::{EnvSpec, RewardKind, StateSpace};

/// A short symbol per action: the first letter of every name when those letters are all
/// distinct (`up` → `u`), otherwise the action's index for all actions (`arm3` → `3`), so
/// symbols are always unique within an environment.
pub fn action_symbols(action_names: &[String]) -> Vec<String> {
    let firsts: Vec<String> = action_names
        .iter()
        .map(|n| n.chars().next().map(String::from).unwrap_or_default())
        .collect();
    let mut sorted = firsts.clone();
    sorted.sort();
    sorted.dedup();
    if sorted.len() == firsts.len() && firsts.iter().all(|s| !s.is_empty()) {
        firsts
    } else {
        (0..action_names.len()).map(|i| i.to_string()).collect()
    }
}

/// Formats a continuous value with `precision` decimals, writing negative zero as zero
/// (`-0.00` would be a distinct token sequence for the same number).
pub fn format_decimal(x: f32, precision: usize) -> String {
    let s = format!("{x:.precision$}");
    match s.strip_prefix('-') {
        Some(rest) if rest.bytes().all(|b| b == b'0' || b == b'.') => rest.to_string(),
        _ => s,
    }
}

/// How rewards are written: whole values of a discrete reward set without decimals (`1`),
/// everything else with `precision` decimals (`0.25`).
#[derive(Debug, Clone)]
pub struct RewardText {
    discrete: bool,
    precision: usize,
}

impl RewardText {
    pub fn new(spec: &EnvSpec, precision: usize) -> RewardText {
        RewardText {
            discrete: matches!(spec.reward, RewardKind::Discrete { .. }),
            precision,
        }
    }

    /// Rewards always written with `precision` decimals (continuous rewards, e.g. RLHF).
    pub fn decimal(precision: usize) -> RewardText {
        RewardText {
            discrete: false,
            precision,
        }
    }

    pub fn format(&self, reward: f32) -> String {
        if self.discrete && reward.fract() == 0.0 && reward.abs() < 1e9 {
            format!("{}", reward as i64)
        } else {
            format_decimal(reward, self.precision)
        }
    }

    /// Reads a reward text back (`None` if it is not a number).
    pub fn parse(&self, text: &str) -> Option<f32> {
        let t = text.trim();
        if t.is_empty() || scan_number(t, None) != Some(t.len()) {
            return None;
        }
        t.parse::<f32>().ok()
    }

    /// Whether `text` reads as `logged` at the format's precision: what reward accuracy counts.
    pub fn matches(&self, text: &str, logged: f32) -> bool {
        match self.parse(text) {
            Some(v) => (v - logged).abs() <= self.tolerance(),
            None => false,
        }
    }

    /// Half a unit in the last written decimal (plus float slack).
    pub fn tolerance(&self) -> f32 {
        0.5 * 10f32.powi(-(self.precision as i32)) + 1e-6
    }
}

/// The template's `state_names`.
pub fn state_names(spec: &EnvSpec) -> Vec<String> {
    match &spec.state {
        StateSpace::Discrete { coord_names, .. } => coord_names.clone(),
        StateSpace::Continuous { feature_names, .. } => feature_names.clone(),
    }
}

/// Length of the number at the start of `text`: `-?\d+` then, with `decimals = Some(p)`,
/// exactly `.` and `p` digits (p = 0: none), or with `None` an optional `.\d+`. Fixed
/// decimals let adjacent numbers without a delimiter (`0.12-0.03`) be read unambiguously.
pub fn scan_number(text: &str, decimals: Option<usize>) -> Option<usize> {
    let b = text.as_bytes();
    let mut i = usize::from(b.first() == Some(&b'-'));
    let int_start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    if i == int_start {
        return None;
    }
    let digits_after = |from: usize| b[from..].iter().take_while(|c| c.is_ascii_digit()).count();
    match decimals {
        Some(0) => Some(i),
        Some(p) => (b.get(i) == Some(&b'.') && digits_after(i + 1) >= p).then_some(i + 1 + p),
        None => {
            if b.get(i) == Some(&b'.') && digits_after(i + 1) > 0 {
                Some(i + 1 + digits_after(i + 1))
            } else {
                Some(i)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbols_are_first_letters_when_unique_else_indices() {
        let names = |xs: &[&str]| xs.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            action_symbols(&names(&["noop", "up", "right", "down", "left"])),
            ["n", "u", "r", "d", "l"]
        );
        assert_eq!(action_symbols(&names(&["arm0", "arm1"])), ["0", "1"]);
    }

    #[test]
    fn decimals_drop_negative_zero_and_numbers_scan_with_fixed_precision() {
        assert_eq!(format_decimal(-0.001, 2), "0.00");
        assert_eq!(format_decimal(-0.013, 2), "-0.01");
        assert_eq!(scan_number("0.12-0.03", Some(2)), Some(4));
        assert_eq!(scan_number("-0.03x", Some(2)), Some(5));
        assert_eq!(scan_number("12;", Some(0)), Some(2));
        assert_eq!(scan_number("1.5;", None), Some(3));
        assert_eq!(scan_number("x", None), None);
        assert_eq!(scan_number("1.", Some(2)), None);
    }
}
