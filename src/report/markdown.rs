//! The grouped report as a markdown table (`report.md`, and stdout): one row per group,
//! `mean ± s.e.` per chosen figure under a short column name (the full JSON paths listed once
//! below the table), best group first; runs that did not complete are listed below with their
//! error line.

use super::labels::{mean_with_error, short_names};
use super::table::{higher_is_better, GroupTable, RunTable};
use std::fmt::Write;

/// Renders the report. `columns` are the figure columns to show, `sort_by` the one sorted on.
pub fn render(
    runs: &RunTable,
    groups: &GroupTable,
    columns: &[String],
    sort_by: Option<&str>,
) -> String {
    let mut s = String::new();
    let completed = runs.rows.iter().filter(|r| r.status == "completed").count();
    let _ = writeln!(
        s,
        "# Report: {} runs, {} completed, {} groups",
        runs.rows.len(),
        completed,
        groups.groups.len()
    );
    s.push('\n');
    if let Some(f) = sort_by {
        let order = if higher_is_better(f) {
            "higher is better"
        } else {
            "lower is better"
        };
        let _ = writeln!(
            s,
            "Sorted by `{f}` ({order}); cells are mean ± standard error over the completed runs \
             of a group, rounded to the error's two significant figures.\n"
        );
    }
    let mut header: Vec<String> = groups.keys.iter().map(|k| format!("`{k}`")).collect();
    header.push("runs".into());
    let short = short_names(columns);
    header.extend(short.iter().map(|c| format!("`{c}`")));
    let _ = writeln!(s, "| {} |", header.join(" | "));
    let _ = writeln!(
        s,
        "|{}|",
        header.iter().map(|_| "---").collect::<Vec<_>>().join("|")
    );
    for g in &groups.groups {
        let mut cells: Vec<String> = g.key_values.iter().map(|v| escape(v)).collect();
        cells.push(if g.completed == g.members.len() {
            g.members.len().to_string()
        } else {
            format!("{}/{}", g.completed, g.members.len())
        });
        for c in columns {
            cells.push(match g.stats.get(c) {
                Some(st) => {
                    let se = st.std.map(|sd| sd / (st.count as f64).sqrt());
                    mean_with_error(st.mean, se)
                }
                None => String::new(),
            });
        }
        let _ = writeln!(s, "| {} |", cells.join(" | "));
    }
    let renamed: Vec<String> = columns
        .iter()
        .zip(&short)
        .filter(|(full, short)| full != short)
        .map(|(full, short)| format!("`{short}` = `{full}`"))
        .collect();
    if !renamed.is_empty() {
        let _ = writeln!(s, "\nColumns: {}.", renamed.join("; "));
    }
    let unfinished: Vec<_> = runs
        .rows
        .iter()
        .filter(|r| r.status != "completed")
        .collect();
    if !unfinished.is_empty() {
        let _ = writeln!(s, "\nRuns that did not complete:\n");
        for r in unfinished {
            let _ = write!(s, "- `{}` **{}**", r.path, r.status);
            if let Some(e) = &r.error {
                let _ = write!(s, ": {}", escape(e));
            }
            s.push('\n');
        }
    }
    s
}

fn escape(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}
