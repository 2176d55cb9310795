//! Training through `adlab run`: metrics, checkpoints, resume after a crash, failure on NaN.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A tiny RL-heads model on bandit histories: seconds per run.
const TINY: &[&str] = &[
    "task=bandit",
    "model.d_model=32",
    "model.n_layers=1",
    "model.n_heads=2",
    "model.d_ff=64",
    "model.context_steps=16",
    "train.batch_size=4",
    "train.log_every=5",
    "train.eval_every=20",
    "eval.enabled=false",
];

fn tiny(extra: &[&str]) -> Vec<String> {
    TINY.iter().chain(extra).map(|s| s.to_string()).collect()
}

fn run_in(s: &Scratch, dir: &Path, extra: &[&str]) -> std::process::Command {
    let mut c = std::process::Command::new(bin());
    c.current_dir(s.path())
        .env("ADLAB_CONFIG_DIR", conf_dir())
        .arg("run")
        .arg("--run-dir")
        .arg(dir)
        .args(tiny(extra))
        .arg(format!("paths.runs={}", s.runs().display()))
        .arg(format!("paths.data={}", s.data().display()))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    c
}

fn checkpoint_step(dir: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(dir.join("checkpoint/state.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v["step"].as_u64()
}

/// Training-loss column of metrics.csv (timing columns differ between runs by nature).
fn train_losses(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("metrics.csv"))
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split(',').take(7).collect::<Vec<_>>().join(","))
        .collect()
}

#[test]
fn metrics_and_checkpoint_are_written_with_the_contract_columns() {
    let s = Scratch::new();
    stdout_of(
        s.adlab_with_paths(
            "run",
            &tiny(&["train.steps=20"])
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
        ),
    );
    let dir = &s.run_dirs("bandit-rl_heads")[0];
    let csv = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    assert_eq!(
        csv.lines().next().unwrap(),
        "step,split,loss,action_acc,reward_acc,state_acc,logprob_mse,lr,grad_norm,tokens_per_s,elapsed_s"
    );
    assert!(csv.lines().any(|l| l.starts_with("20,val,")), "{csv}");
    assert_eq!(
        csv.lines().filter(|l| l.contains(",train,")).count(),
        4,
        "{csv}"
    );
    assert!(dir.join("checkpoint/model.safetensors").is_file());
    assert_eq!(checkpoint_step(dir), Some(20));
}

#[test]
fn same_seed_gives_the_same_metrics() {
    let s = Scratch::new();
    let args: Vec<String> = tiny(&["train.steps=10"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    stdout_of(s.adlab_with_paths("run", &args));
    stdout_of(s.adlab_with_paths("run", &args));
    let dirs = s.run_dirs("bandit-rl_heads");
    assert_eq!(train_losses(&dirs[0]), train_losses(&dirs[1]));
    let mut other: Vec<&str> = args.clone();
    other.push("seed=1");
    stdout_of(s.adlab_with_paths("run", &other));
    // Run directories sort by start second, then a random suffix: find the new one by set.
    let seed1: Vec<PathBuf> = s
        .run_dirs("bandit-rl_heads")
        .into_iter()
        .filter(|d| !dirs.contains(d))
        .collect();
    assert_eq!(seed1.len(), 1);
    assert_ne!(
        train_losses(&seed1[0]),
        train_losses(&dirs[0]),
        "a different seed must change the metrics"
    );
}

#[test]
fn micro_batches_on_two_threads_give_the_numbers_of_one_thread() {
    let s = Scratch::new();
    let run = |threads: &str| -> Vec<String> {
        let args = tiny(&[
            "train.steps=10",
            "train.grad_accum=2",
            "model.dropout=0.1",
            threads,
        ]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let dir = PathBuf::from(stdout_of(s.adlab_with_paths("run", &args)).trim());
        train_losses(&dir)
    };
    let one = run("train.threads=1");
    assert!(one.len() >= 2, "{one:?}");
    assert_eq!(one, run("train.threads=2"));
    assert_eq!(one, run("train.threads=auto"));
}

#[test]
fn a_killed_run_resumes_to_the_same_weights_as_an_uninterrupted_one() {
    let s = Scratch::new();
    // Long enough that the poll below (every 5 ms) sees step 40 well before the end.
    let extra = ["train.steps=1200", "train.ckpt_every=20"];
    let straight = s.path().join("straight");
    assert!(run_in(&s, &straight, &extra).status().unwrap().success());

    let killed = s.path().join("killed");
    let mut child = run_in(&s, &killed, &extra).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(300);
    while checkpoint_step(&killed).is_none_or(|st| st < 40) {
        assert!(Instant::now() < deadline, "no checkpoint appeared");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let at_kill = checkpoint_step(&killed).unwrap();
    assert!(
        at_kill < 1200,
        "the run finished before it could be killed; make it longer"
    );
    let meta = read_json(&killed.join("meta.json"));
    assert_eq!(
        meta["status"], "running",
        "SIGKILL leaves the status as it was"
    );

    assert!(run_in(&s, &killed, &extra).status().unwrap().success());
    let meta = read_json(&killed.join("meta.json"));
    assert_eq!(meta["status"], "completed");
    assert_eq!(meta["attempts"], 2);
    let a = std::fs::read(straight.join("checkpoint/model.safetensors")).unwrap();
    let b = std::fs::read(killed.join("checkpoint/model.safetensors")).unwrap();
    assert!(
        a == b,
        "resumed weights differ from the uninterrupted run's"
    );
    assert_eq!(train_losses(&straight), train_losses(&killed));
}

#[test]
fn a_diverging_run_fails_naming_the_step() {
    let s = Scratch::new();
    let args = tiny(&[
        "train.steps=200",
        "optimizer.lr=1e12",
        "optimizer.min_lr=0",
        "optimizer.warmup_steps=0",
        "optimizer.grad_clip=0",
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = s.adlab_with_paths("run", &args).output().unwrap();
    assert!(!out.status.success());
    let dir = &s.run_dirs("bandit-rl_heads")[0];
    let meta = read_json(&dir.join("meta.json"));
    assert_eq!(meta["status"], "failed");
    let err = meta["error"].as_str().unwrap();
    assert!(
        err.contains("step")
            && (err.contains("NaN") || err.contains("inf") || err.contains("finite")),
        "{err}"
    );
}

#[test]
fn resume_flag_continues_the_latest_unfinished_run() {
    let s = Scratch::new();
    let args = tiny(&["train.steps=10"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    stdout_of(s.adlab_with_paths("run", &args));
    let first = s.run_dirs("bandit-rl_heads")[0].clone();
    // Mark it unfinished, as a crash would leave it.
    let mut meta = read_json(&first.join("meta.json"));
    meta["status"] = "running".into();
    std::fs::write(first.join("meta.json"), meta.to_string()).unwrap();
    let mut more = args.clone();
    more.push("train.resume=true");
    let out = stdout_of(s.adlab_with_paths("run", &more));
    assert_eq!(out.trim(), first.display().to_string());
    assert_eq!(s.run_dirs("bandit-rl_heads").len(), 1);
    assert_eq!(read_json(&first.join("meta.json"))["status"], "completed");
}
