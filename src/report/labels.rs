//! How a report names things for a reader: a group by the short values of the keys that
//! differ (`causal_lm / coords`), a figure column by the shortest unambiguous tail of its
//! JSON path (with the full paths listed once below the table), and a mean with its standard
//! error at the error's two significant figures (`0.47090 ± 0.00053`).

/// A group's legend label: its values of the grouping keys, joined by ` / ` (the keys go in
/// the legend's title, once). Never shortened: two groups always read differently.
pub fn group_label(values: &[String]) -> String {
    if values.is_empty() {
        return "all runs".into();
    }
    values.join(" / ")
}

/// The legend's title: the grouping keys in the order their values appear in labels.
pub fn group_title(keys: &[String]) -> String {
    if keys.is_empty() {
        String::new()
    } else {
        keys.join(" / ")
    }
}

/// Parts that only say how a value was aggregated; a short name keeps the part before them.
const AGGREGATES: [&str; 3] = ["final", "best", "mean"];

/// Paths of this many parts or fewer (`val.loss.final`) are short already and keep their split.
const SHORT_ENOUGH: usize = 3;

/// Short names of `columns`: a long path (a `summary.json` figure) becomes the fewest
/// trailing dotted parts (more than an aggregate alone) that no other column ends with the
/// same way. Same order as `columns`.
pub fn short_names(columns: &[String]) -> Vec<String> {
    let parts: Vec<Vec<&str>> = columns.iter().map(|c| c.split('.').collect()).collect();
    let tail = |p: &[&str], n: usize| p[p.len().saturating_sub(n)..].join(".");
    parts
        .iter()
        .map(|p| {
            if p.len() <= SHORT_ENOUGH {
                return p.join(".");
            }
            let min = if p.last().is_some_and(|l| AGGREGATES.contains(l)) {
                2
            } else {
                1
            };
            (min..=p.len())
                .map(|n| tail(p, n))
                .find(|cand| {
                    let dotted = format!(".{cand}");
                    columns
                        .iter()
                        .filter(|c| *c == cand || c.ends_with(&dotted))
                        .count()
                        == 1
                })
                .unwrap_or_else(|| p.join("."))
        })
        .collect()
}

/// `mean ± se` with both rounded to the standard error's two significant figures; a mean
/// without an error (one run) or with a zero error keeps four significant figures.
pub fn mean_with_error(mean: f64, se: Option<f64>) -> String {
    let Some(se) = se.filter(|s| *s > 0.0 && s.is_finite() && mean.is_finite()) else {
        return num(mean);
    };
    // The place of the error's second significant digit.
    let place = se.log10().floor() as i32 - 1;
    if place >= 0 {
        let unit = 10f64.powi(place);
        let round = |x: f64| format!("{:.0}", (x / unit).round() * unit);
        format!("{} ± {}", round(mean), round(se))
    } else {
        let d = (-place) as usize;
        format!("{mean:.d$} ± {se:.d$}")
    }
}

/// Four significant digits, without exponent for everyday magnitudes.
pub fn num(x: f64) -> String {
    if x == 0.0 || !x.is_finite() {
        return format!("{x}");
    }
    let mag = x.abs().log10().floor() as i32;
    if !(-4..6).contains(&mag) {
        return format!("{x:.3e}");
    }
    let decimals = (3 - mag).max(0) as usize;
    format!("{x:.decimals$}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_keep_four_significant_digits() {
        assert_eq!(num(0.123456), "0.1235");
        assert_eq!(num(12.3456), "12.35");
        assert_eq!(num(12345.6), "12346");
        assert_eq!(num(1e-7), "1.000e-7");
    }

    fn strings(xs: &[&str]) -> Vec<String> {
        xs.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn groups_are_named_by_their_values() {
        assert_eq!(
            group_label(&strings(&["causal_lm", "coords"])),
            "causal_lm / coords"
        );
        assert_eq!(group_label(&[]), "all runs");
        assert_eq!(
            group_title(&strings(&["model.name", "format.name"])),
            "model.name / format.name"
        );
    }

    #[test]
    fn columns_get_the_shortest_unambiguous_tail() {
        let cols = strings(&[
            "val.loss.final",
            "train.loss.final",
            "val.action_acc.best",
            "splits.test.policies.model.first_k_return",
            "splits.test.policies.source.first_k_return",
            "splits.test.in_context_improvement",
            "wall_time_s",
        ]);
        assert_eq!(
            short_names(&cols),
            strings(&[
                "val.loss.final",
                "train.loss.final",
                "val.action_acc.best",
                "model.first_k_return",
                "source.first_k_return",
                "splits.test.in_context_improvement",
                "wall_time_s",
            ])
        );
        // `loss.final` is not a tail of `x.val_loss.final`: parts, not characters.
        assert_eq!(
            short_names(&strings(&["s.a.x.loss.final", "s.b.x.val_loss.final"])),
            strings(&["loss.final", "val_loss.final"])
        );
        // Both splits of one figure keep what tells them apart.
        assert_eq!(
            short_names(&strings(&[
                "splits.test.policies.model.first_k_return",
                "splits.train.policies.model.first_k_return",
            ])),
            strings(&[
                "test.policies.model.first_k_return",
                "train.policies.model.first_k_return",
            ])
        );
    }

    #[test]
    fn means_are_rounded_to_two_significant_figures_of_their_error() {
        assert_eq!(
            mean_with_error(0.4709, Some(0.0005294)),
            "0.47090 ± 0.00053"
        );
        assert_eq!(mean_with_error(0.1101, Some(0.001608)), "0.1101 ± 0.0016");
        assert_eq!(mean_with_error(0.5, Some(0.1414)), "0.50 ± 0.14");
        assert_eq!(mean_with_error(12345.6, Some(234.5)), "12350 ± 230");
        assert_eq!(mean_with_error(3.0, Some(15.0)), "3 ± 15");
        assert_eq!(mean_with_error(0.123456, None), "0.1235");
        assert_eq!(mean_with_error(0.25, Some(0.0)), "0.2500");
    }
}
