//! `adlab report` on run directories built by the test: the CSV columns and values, grouping,
//! broken runs (failed, still running, truncated or empty metrics), plots and options.

mod common;
use common::*;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// A hand-made run directory.
struct FakeRun<'a> {
    status: &'a str,
    error: Option<&'a str>,
    lr: &'a str,
    seed: u32,
    /// `(step, val loss, val action_acc)`; a train row with loss + 1 is written beside each.
    val: &'a [(u64, f64, f64)],
    /// The test-task return of the model per episode (two tasks: r and r + 1).
    model_returns: &'a [f64],
}

impl FakeRun<'_> {
    fn write(&self, dir: &Path) -> PathBuf {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(
            dir.join("config.yaml"),
            format!(
                "name: bandit-rl_heads\nseed: {}\npaths:\n  runs: {}\n  data: data\noptimizer:\n  name: adamw\n  lr: {}\ntask:\n  name: bandit\n  arms: [1, 2]\n",
                self.seed,
                dir.display(),
                self.lr
            ),
        )
        .unwrap();
        let meta = serde_json::json!({
            "adlab_version": "0.1.0", "git_commit": null, "host": "h", "pid": 1,
            "command": ["adlab"], "cwd": "/", "device": "cpu",
            "start_time": "2026-11-23T10:00:00.000+00:00",
            "end_time": if self.status == "running" { None } else { Some("2026-11-23T10:01:30.500+00:00") },
            "status": self.status, "error": self.error, "attempts": 1
        });
        std::fs::write(dir.join("meta.json"), meta.to_string()).unwrap();
        let mut csv = String::from("step,split,loss,action_acc,reward_acc,state_acc,logprob_mse,lr,grad_norm,tokens_per_s,elapsed_s\n");
        for (i, &(step, loss, acc)) in self.val.iter().enumerate() {
            let tps = 100.0 * (i + 1) as f64;
            csv.push_str(&format!(
                "{step},train,{},,,,,0.001,1.0,{tps},1.0\n",
                loss + 1.0
            ));
            csv.push_str(&format!("{step},val,{loss},{acc},,,,,,,1.0\n"));
        }
        std::fs::write(dir.join("metrics.csv"), csv).unwrap();
        if !self.model_returns.is_empty() {
            let mut e = String::from("task,split,episode,return,steps,policy\n");
            for (ep, r) in self.model_returns.iter().enumerate() {
                for (task, off) in [(7, 0.0), (8, 1.0)] {
                    e.push_str(&format!("{task},test,{ep},{},10,model\n", r + off));
                    e.push_str(&format!("{task},test,{ep},0.5,10,random\n"));
                    e.push_str(&format!("{task},test,{ep},{},10,source\n", ep as f64));
                }
            }
            for task in [7, 8] {
                e.push_str(&format!("{task},test,0,9,,optimal\n"));
            }
            std::fs::write(dir.join("eval.csv"), e).unwrap();
            let last = self.model_returns.last().unwrap() + 0.5;
            let summary = serde_json::json!({
                "episodes": self.model_returns.len(), "k": 1,
                "splits": {"test": {"tasks": [7, 8], "policies": {"model": {
                    "last_k_return": last, "curve": [1.0, 2.0], "last_k_score": null}}}}
            });
            std::fs::write(dir.join("summary.json"), summary.to_string()).unwrap();
        }
        dir.to_path_buf()
    }
}

const DONE: FakeRun<'static> = FakeRun {
    status: "completed",
    error: None,
    lr: "0.001",
    seed: 0,
    val: &[],
    model_returns: &[],
};

/// Two learning rates × two seeds, all completed, with evaluation results.
fn grid(root: &Path) {
    let runs = [
        (
            "0.001",
            0,
            [(10, 2.0, 0.2), (20, 1.0, 0.5), (30, 1.5, 0.4)],
            [1.0, 2.0, 3.0],
        ),
        (
            "0.001",
            1,
            [(10, 2.0, 0.2), (20, 1.2, 0.3), (30, 1.1, 0.6)],
            [1.0, 3.0, 5.0],
        ),
        (
            "0.01",
            0,
            [(10, 3.0, 0.1), (20, 2.5, 0.1), (30, 2.0, 0.2)],
            [0.0, 0.0, 1.0],
        ),
        (
            "0.01",
            1,
            [(10, 3.0, 0.1), (20, 2.6, 0.1), (30, 2.2, 0.1)],
            [0.0, 1.0, 1.0],
        ),
    ];
    for (i, (lr, seed, val, rets)) in runs.iter().enumerate() {
        FakeRun {
            lr,
            seed: *seed,
            val,
            model_returns: rets,
            ..DONE
        }
        .write(&root.join(format!("sweep/{i:03}_lr={lr},seed={seed}")));
    }
}

/// `report.csv` (or any CSV) as a header and rows of `column -> cell`.
fn read_csv(path: &Path) -> (Vec<String>, Vec<HashMap<String, String>>) {
    let mut r = csv::Reader::from_path(path).unwrap();
    let header: Vec<String> = r.headers().unwrap().iter().map(String::from).collect();
    let rows = r
        .records()
        .map(|rec| {
            let rec = rec.unwrap();
            header
                .iter()
                .cloned()
                .zip(rec.iter().map(String::from))
                .collect()
        })
        .collect();
    (header, rows)
}

fn num(row: &HashMap<String, String>, col: &str) -> f64 {
    row.get(col)
        .unwrap_or_else(|| panic!("no column {col}"))
        .parse()
        .unwrap_or_else(|_| panic!("{col} = {:?}", row[col]))
}

fn report(s: &Scratch, args: &[&str]) -> String {
    let mut cmd = s.adlab();
    cmd.arg("report").args(args);
    stdout_of(cmd)
}

#[test]
fn one_row_per_run_with_differing_keys_and_final_and_best_figures() {
    let s = Scratch::new();
    grid(s.path());
    let md = report(&s, &["sweep", "--out", "out"]);
    let (header, rows) = read_csv(&s.path().join("out/report.csv"));
    // Differing keys: the learning rate and the seed; `paths.runs` and `name` are ignored,
    // keys equal everywhere (task.arms) are not columns.
    assert_eq!(
        &header[..5],
        ["run", "status", "error", "optimizer.lr", "seed"]
    );
    assert!(!header
        .iter()
        .any(|h| h.starts_with("paths.") || h == "name" || h == "task.arms"));
    assert_eq!(rows.len(), 4);
    let r0 = &rows[0];
    assert!(r0["run"].ends_with("000_lr=0.001,seed=0"), "{}", r0["run"]);
    assert_eq!(r0["status"], "completed");
    assert_eq!(num(r0, "val.loss.final"), 1.5);
    assert_eq!(num(r0, "val.loss.best"), 1.0);
    assert_eq!(num(r0, "val.action_acc.final"), 0.4);
    assert_eq!(num(r0, "val.action_acc.best"), 0.5);
    assert_eq!(num(r0, "train.loss.best"), 2.0);
    assert_eq!(num(r0, "train.tokens_per_s.mean"), 200.0);
    assert_eq!(num(r0, "wall_time_s"), 90.5);
    assert_eq!(num(r0, "splits.test.policies.model.last_k_return"), 3.5);
    assert!(!header
        .iter()
        .any(|h| h.contains("curve") || h.contains("tasks")));
    // No final/best for optimisation diagnostics.
    assert!(!header
        .iter()
        .any(|h| h.starts_with("train.lr.") || h.contains("grad_norm")));

    // Grouped over seeds: by learning rate, mean / sample std / count.
    let (gh, groups) = read_csv(&s.path().join("out/report_grouped.csv"));
    assert_eq!(&gh[..3], ["optimizer.lr", "runs", "completed"]);
    assert_eq!(groups.len(), 2);
    let g = groups
        .iter()
        .find(|g| g["optimizer.lr"] == "0.001")
        .unwrap();
    assert_eq!((g["runs"].as_str(), g["completed"].as_str()), ("2", "2"));
    assert!((num(g, "val.action_acc.final.mean") - 0.5).abs() < 1e-12);
    assert!((num(g, "val.action_acc.final.std") - 0.02f64.sqrt()).abs() < 1e-12);
    assert_eq!(g["val.action_acc.final.count"], "2");

    // Markdown: best validation action accuracy first, written beside the CSVs.
    assert_eq!(
        std::fs::read_to_string(s.path().join("out/report.md")).unwrap(),
        md
    );
    assert!(md.contains("Sorted by `val.action_acc.final`"), "{md}");
    let first = md.lines().find(|l| l.starts_with("| 0.")).unwrap();
    // Mean ± standard error (0.1414 / √2), at the error's two significant figures.
    assert!(first.starts_with("| 0.001 | 2 | 0.50 ± 0.10 |"), "{md}");
}

#[test]
fn failed_running_truncated_and_empty_runs_are_reported_not_fatal() {
    let s = Scratch::new();
    let root = s.path().join("mixed");
    let val: &[(u64, f64, f64)] = &[(10, 2.0, 0.2), (20, 1.0, 0.5)];
    FakeRun { val, ..DONE }.write(&root.join("a_ok"));
    FakeRun {
        status: "failed",
        error: Some("training diverged: loss is NaN at step 12\n  at trainer.rs"),
        lr: "0.1",
        val,
        ..DONE
    }
    .write(&root.join("b_failed"));
    FakeRun {
        status: "running",
        lr: "0.2",
        val,
        ..DONE
    }
    .write(&root.join("c_running"));
    let truncated = FakeRun {
        lr: "0.3",
        val,
        ..DONE
    }
    .write(&root.join("d_truncated"));
    // A crash mid-write: the last row has no newline and too few cells.
    let mut text = std::fs::read_to_string(truncated.join("metrics.csv")).unwrap();
    text.push_str("30,val,0.1");
    std::fs::write(truncated.join("metrics.csv"), text).unwrap();
    let empty = FakeRun { lr: "0.4", ..DONE }.write(&root.join("e_empty"));
    std::fs::write(empty.join("metrics.csv"), "").unwrap();
    let bare = root.join("f_config_only");
    std::fs::create_dir_all(&bare).unwrap();
    std::fs::write(bare.join("config.yaml"), "seed: 0\noptimizer:\n  lr: 0.5\n").unwrap();

    let md = report(&s, &[root.to_str().unwrap(), "--out", "out"]);
    let (_, rows) = read_csv(&s.path().join("out/report.csv"));
    let by = |suffix: &str| rows.iter().find(|r| r["run"].ends_with(suffix)).unwrap();
    assert_eq!(rows.len(), 6);
    assert_eq!(num(by("a_ok"), "val.loss.final"), 1.0);
    let failed = by("b_failed");
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["error"], "training diverged: loss is NaN at step 12");
    assert_eq!(failed["val.loss.final"], "");
    let running = by("c_running");
    assert_eq!(running["status"], "running");
    assert_eq!(running["val.loss.final"], "");
    assert_eq!(running["wall_time_s"], "");
    assert_eq!(
        num(by("d_truncated"), "val.loss.final"),
        1.0,
        "the partial row is skipped"
    );
    assert_eq!(by("e_empty")["status"], "completed");
    assert_eq!(by("e_empty")["val.loss.final"], "");
    assert_eq!(by("f_config_only")["status"], "unknown");

    assert!(md.contains("Runs that did not complete"), "{md}");
    assert!(
        md.contains("**failed**: training diverged: loss is NaN at step 12"),
        "{md}"
    );
    assert!(md.contains("**running**"), "{md}");
}

/// `<polyline>` elements (lines and legend samples) drawn `width` px wide.
fn svg_lines_with_width(svg: &str, width: u32) -> usize {
    let attr = format!("stroke-width=\"{width}\"");
    svg.split("<polyline")
        .skip(1)
        .filter(|el| el.split('>').next().unwrap_or("").contains(&attr))
        .count()
}

fn assert_png(path: &Path) {
    let bytes = std::fs::read(path).unwrap();
    assert!(
        bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
        "{}",
        path.display()
    );
    let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    let reader = decoder.read_info().unwrap();
    let info = reader.info();
    assert!(info.width > 500 && info.height > 300);
}

#[test]
fn plots_have_one_series_per_group_as_svg_and_png() {
    let s = Scratch::new();
    grid(s.path());
    report(&s, &["sweep", "--out", "out"]);
    let plots = s.path().join("out/plots");
    for stem in [
        "train_loss",
        "val_loss",
        "val_action_acc",
        "in_context_test",
    ] {
        let svg = std::fs::read_to_string(plots.join(format!("{stem}.svg"))).unwrap();
        assert!(svg.len() > 1000, "{stem}.svg is nearly empty");
        // Each group: its mean line and its legend sample, both 2 px wide.
        assert_eq!(svg_lines_with_width(&svg, 2), 2 * 2, "{stem}");
        // Groups are named by their values, the key once in the legend's title.
        assert!(
            svg.contains("legend: optimizer.lr"),
            "{stem}.svg: no legend title"
        );
        let prefix = if stem == "in_context_test" {
            "model: "
        } else {
            ""
        };
        for value in ["0.001", "0.01"] {
            let label = format!(">\n{prefix}{value}\n<");
            assert!(
                svg.contains(&label),
                "{stem}.svg lacks the legend label {label}"
            );
        }
        assert!(svg.contains("<polygon"), "{stem}.svg has no min–max band");
        assert_png(&plots.join(format!("{stem}.png")));
    }
    let ic = std::fs::read_to_string(plots.join("in_context_test.svg")).unwrap();
    for baseline in [">\nsource\n<", ">\nrandom\n<", ">\noptimal\n<"] {
        assert!(ic.contains(baseline), "in-context plot lacks {baseline}");
    }
    assert!(ic.contains("episode") && ic.contains("mean return"));
}

#[test]
fn options_group_sort_metrics_and_default_output() {
    let s = Scratch::new();
    grid(s.path());
    // Grouping by seed instead, sorted by loss (lower first), only loss figures shown.
    let md = report(
        &s,
        &[
            "sweep",
            "--group-by",
            "seed",
            "--sort-by",
            "val.loss.best",
            "--metrics",
            "val.loss",
        ],
    );
    assert!(
        s.path().join("report/report.csv").is_file(),
        "default --out is ./report"
    );
    assert!(
        md.contains("| `seed` | runs | `val.loss.final` | `val.loss.best` |"),
        "{md}"
    );
    assert!(!md.contains("action_acc"), "{md}");
    let rows: Vec<&str> = md
        .lines()
        .filter(|l| l.starts_with("| 0") || l.starts_with("| 1"))
        .collect();
    assert!(rows[0].starts_with("| 0 | 2 |"), "{md}");

    let err = stderr_of_failure(
        s.adlab()
            .args(["report", "sweep", "--group-by", "optimizer.rl"]),
    );
    assert!(err.contains("did you mean `optimizer.lr`"), "{err}");
    let err = stderr_of_failure(s.adlab().args(["report", "no/such/dir"]));
    assert!(err.contains("no/such/dir"), "{err}");
}
