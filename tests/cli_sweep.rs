//! Sweeps: expansion (`--dry-run`), scheduling on slots, failures, and resume after a crash.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn sweep_cmd(s: &Scratch, args: &[&str]) -> std::process::Command {
    let mut c = std::process::Command::new(bin());
    c.current_dir(s.path())
        .env("ADLAB_CONFIG_DIR", conf_dir())
        .env_remove("RUST_LOG")
        .args(args)
        .args(TINY_RUN)
        .arg(format!("paths.runs={}", s.runs().display()))
        .arg(format!("paths.data={}", s.data().display()));
    c
}

fn job_dirs(sweep_dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(sweep_dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.is_dir() && p.file_name().unwrap().to_string_lossy().as_bytes()[0].is_ascii_digit()
        })
        .collect();
    v.sort();
    v
}

fn sweep_dirs(s: &Scratch, name: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(s.runs().join("sweeps").join(name))
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

fn parse_time(t: &str) -> chrono::DateTime<chrono::FixedOffset> {
    chrono::DateTime::parse_from_rfc3339(t).unwrap()
}

#[test]
fn dry_run_lists_every_job_and_its_directory() {
    let s = Scratch::new();
    let out = s
        .adlab()
        .args(["sweep", "quickstart", "--dry-run", "seed=0,1"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("6 jobs"), "{text}");
    assert_eq!(
        text.lines().filter(|l| l.starts_with('[')).count(),
        6,
        "{text}"
    );
    assert!(
        text.contains("+experiment=quickstart_causal_lm") && text.contains("format=coords"),
        "{text}"
    );
    assert!(text.contains("sweeps/quickstart/"), "{text}");
    assert!(
        text.contains("000_+experiment=quickstart_rl_heads,format=rl,seed=0"),
        "{text}"
    );
    assert!(
        !s.runs().join("sweeps").exists(),
        "a dry run must not create anything"
    );
}

#[test]
fn unknown_sweep_lists_the_sweeps() {
    let s = Scratch::new();
    let out = s.adlab().args(["sweep", "quickstrat"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("did you mean `quickstart`"), "{err}");
}

#[test]
fn a_bad_job_config_stops_the_sweep_before_anything_runs() {
    let s = Scratch::new();
    let out = sweep_cmd(&s, &["run", "-m", "seed=0,1", "train.stepz=3"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("train.stepz") && err.contains("job 0"),
        "{err}"
    );
    assert!(!s.runs().join("sweeps").exists());
}

#[test]
fn slots_bound_concurrency_and_are_all_used() {
    let s = Scratch::new();
    let out = sweep_cmd(
        &s,
        &[
            "run",
            "-m",
            "seed=0,1,2,3,4,5",
            "launcher.devices=[cpu]",
            "launcher.runs_per_device=2",
        ],
    )
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sweep = &sweep_dirs(&s, "multirun")[0];
    let jobs = job_dirs(sweep);
    assert_eq!(jobs.len(), 6);
    let mut events = Vec::new();
    for j in &jobs {
        let meta = read_json(&j.join("meta.json"));
        assert_eq!(meta["status"], "completed", "{}", j.display());
        events.push((parse_time(meta["start_time"].as_str().unwrap()), 1i32));
        events.push((parse_time(meta["end_time"].as_str().unwrap()), -1i32));
    }
    events.sort();
    let (mut now, mut max) = (0, 0);
    for (_, d) in events {
        now += d;
        max = max.max(now);
    }
    assert!(max <= 2, "more than 2 jobs ran at once ({max})");
    assert_eq!(max, 2, "the second slot was never used");
    let record = std::fs::read_to_string(sweep.join("sweep.yaml")).unwrap();
    assert!(record.contains("seed=5"), "{record}");
}

#[test]
fn a_failing_job_does_not_stop_the_others() {
    let s = Scratch::new();
    let out = sweep_cmd(&s, &["run", "-m", "device=cpu,cuda:0", "seed=0,1"])
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "a sweep with failures exits non-zero"
    );
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("2 completed, 2 not completed"), "{err}");
    assert!(err.contains("cuda"), "{err}");
    let sweep = &sweep_dirs(&s, "multirun")[0];
    let statuses: Vec<String> = job_dirs(sweep)
        .iter()
        .map(|j| {
            read_json(&j.join("meta.json"))["status"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        statuses.iter().filter(|st| *st == "completed").count(),
        2,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|st| *st == "failed").count(),
        2,
        "{statuses:?}"
    );
    // The end-of-sweep report: in the sweep directory, grouped by device (seeds averaged),
    // the failed jobs listed with their error.
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("| `device` | runs |"), "{stdout}");
    assert!(stdout.contains("**failed**"), "{stdout}");
    let report = std::fs::read_to_string(sweep.join("report.csv")).unwrap();
    assert_eq!(report.lines().count(), 1 + 4, "{report}");
    let grouped = std::fs::read_to_string(sweep.join("report_grouped.csv")).unwrap();
    assert_eq!(grouped.lines().count(), 1 + 2, "{grouped}");
    assert!(sweep.join("plots/train_loss.svg").is_file());
}

#[test]
fn fail_fast_stops_launching() {
    let s = Scratch::new();
    let out = sweep_cmd(
        &s,
        &[
            "run",
            "-m",
            "--fail-fast",
            "device=cuda:0,cpu,cpu,cpu",
            "launcher.runs_per_device=1",
            "launcher.devices=[cpu]",
        ],
    )
    .output()
    .unwrap();
    assert!(!out.status.success());
    let sweep = &sweep_dirs(&s, "multirun")[0];
    let started = job_dirs(sweep)
        .iter()
        .filter(|j| j.join("meta.json").exists())
        .count();
    assert_eq!(started, 1, "no job may start after the first failure");
}

#[test]
fn a_killed_sweep_resumes_without_rerunning_completed_jobs() {
    use std::os::unix::process::CommandExt;
    let s = Scratch::new();
    let mut c = sweep_cmd(
        &s,
        &[
            "run",
            "-m",
            "train.steps=5,1500",
            "seed=0,1",
            "launcher.devices=[cpu]",
            "launcher.runs_per_device=1",
        ],
    );
    c.process_group(0)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let child = c.spawn().unwrap();
    let pgid = child.id() as i32;
    // Wait until the first job completed, then kill the sweep and its jobs like a crash.
    let deadline = std::time::Instant::now() + Duration::from_secs(300);
    let sweep = loop {
        assert!(
            std::time::Instant::now() < deadline,
            "the first job never completed"
        );
        if let Some(d) = sweep_dirs(&s, "multirun").first() {
            let done = job_dirs(d).iter().any(|j| {
                j.join("meta.json").exists()
                    && read_json(&j.join("meta.json"))["status"] == "completed"
            });
            if done {
                break d.clone();
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    unsafe {
        libc_kill(-pgid, 9);
    }
    let mut child = child;
    child.wait().unwrap();
    let before: Vec<(PathBuf, Option<String>)> = job_dirs(&sweep)
        .into_iter()
        .map(|j| {
            let start = j.join("meta.json").exists().then(|| {
                let m = read_json(&j.join("meta.json"));
                format!("{}|{}", m["status"], m["start_time"])
            });
            (j, start)
        })
        .collect();
    // Job directories appear as jobs start, so a job not yet started has none: count against
    // the four jobs the grid expands to, not against the directories that happen to exist.
    let completed = before
        .iter()
        .filter(|(_, m)| m.as_deref().is_some_and(|m| m.starts_with("\"completed\"")))
        .count();
    assert!(completed < 4, "the sweep finished before it was killed");

    let out = std::process::Command::new(bin())
        .current_dir(s.path())
        .env("ADLAB_CONFIG_DIR", conf_dir())
        .args(["sweep", "--resume", sweep.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(job_dirs(&sweep).len(), 4, "every job of the grid has run");
    for (j, m) in before {
        let meta = read_json(&j.join("meta.json"));
        assert_eq!(meta["status"], "completed", "{}", j.display());
        if let Some(m) = m.filter(|m| m.starts_with("\"completed\"")) {
            let now = format!("{}|{}", meta["status"], meta["start_time"]);
            assert_eq!(now, m, "a completed job was run again: {}", j.display());
            assert_eq!(meta["attempts"], 1);
        }
    }
}

extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}
