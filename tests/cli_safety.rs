//! Nothing lost, nothing overwritten: `--run-dir` and `train.resume` only continue a run with
//! its own config, a killed sweep's jobs die with it and are never run twice at once, damaged
//! caches and absurd sizes fail cleanly, and a dead run shows as `lost`.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// A tiny run that lasts until it is stopped (a checkpoint every 20 steps).
fn endless(extra: &[&str]) -> Vec<String> {
    with(
        TINY_RUN,
        &[&["train.steps=10000000", "train.ckpt_every=20"], extra].concat(),
    )
}

fn wait_for(what: &str, secs: u64, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn meta_of(dir: &Path) -> Option<serde_json::Value> {
    let text = std::fs::read_to_string(dir.join("meta.json")).ok()?;
    serde_json::from_str(&text).ok()
}

fn has_checkpoint(dir: &Path) -> bool {
    dir.join("checkpoint/state.json").is_file()
}

fn pid_alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !matches!(
            stat.rsplit_once(')')
                .and_then(|(_, r)| r.split_whitespace().next()),
            Some("Z") | Some("X")
        ),
        Err(_) => false,
    }
}

fn signal(pid: i32, sig: i32) {
    unsafe {
        libc_kill(pid, sig);
    }
}

extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

const SIGINT: i32 = 2;
const SIGKILL: i32 = 9;
const SIGTERM: i32 = 15;

/// Kills a process when the test ends, however it ends.
struct KillOnDrop(Vec<i32>);
impl Drop for KillOnDrop {
    fn drop(&mut self) {
        for &pid in &self.0 {
            if pid_alive(pid) {
                signal(pid, SIGKILL);
            }
        }
    }
}

// ---------------------------------------------------------------- 1. --run-dir anywhere

#[test]
fn run_dir_refuses_a_directory_that_is_not_an_adlab_run() {
    let s = Scratch::new();
    let conf = s.path().join("myconf");
    std::fs::create_dir(&conf).unwrap();
    std::fs::write(conf.join("config.yaml"), "precious: true\n").unwrap();
    let mut args = vec!["--run-dir".to_string(), conf.display().to_string()];
    args.extend(with(TINY_RUN, &[]));
    let err = stderr_of_failure(s.adlab_with_paths("run", &strs(&args)));
    assert!(
        err.contains("not empty") && err.contains("myconf"),
        "the error must name the directory and why: {err}"
    );
    assert_eq!(
        std::fs::read_to_string(conf.join("config.yaml")).unwrap(),
        "precious: true\n"
    );
    let left: Vec<_> = std::fs::read_dir(&conf).unwrap().collect();
    assert_eq!(left.len(), 1, "nothing may be written into the directory");

    // `--run-dir .`: the working directory, with the user's files in it.
    std::fs::write(s.path().join("notes.txt"), "mine").unwrap();
    let mut args = vec!["--run-dir".to_string(), ".".to_string()];
    args.extend(with(TINY_RUN, &[]));
    stderr_of_failure(s.adlab_with_paths("run", &strs(&args)));
    assert!(!s.path().join("config.yaml").exists());
    assert!(!s.path().join("meta.json").exists());

    // An empty directory is fine: a new run goes there.
    let empty = s.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let mut args = vec!["--run-dir".to_string(), empty.display().to_string()];
    args.extend(with(TINY_RUN, &[]));
    stdout_of(s.adlab_with_paths("run", &strs(&args)));
    assert_eq!(meta_of(&empty).unwrap()["status"], "completed");
}

// ---------------------------------------------------------- 2. --run-dir and saved config

#[test]
fn run_dir_continues_a_run_with_its_saved_config() {
    let s = Scratch::new();
    let out = stdout_of(s.adlab_with_paths("run", &strs(&with(TINY_RUN, &[]))));
    let run = PathBuf::from(out.trim());
    let config_before = std::fs::read_to_string(run.join("config.yaml")).unwrap();
    assert!(config_before.contains("name: bandit-rl_heads"));

    // The README's command: no overrides at all. It must keep bandit, not compose Dark Room.
    let out = s
        .adlab()
        .args(["run", "--run-dir", run.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{stderr}");
    assert!(
        !stderr.contains('\u{1b}'),
        "colour codes on a non-terminal stderr: {stderr:?}"
    );
    assert_eq!(
        std::fs::read_to_string(run.join("config.yaml")).unwrap(),
        config_before
    );
    let meta = meta_of(&run).unwrap();
    assert_eq!(meta["status"], "completed");
    assert_eq!(meta["attempts"], 2);
    let caches: Vec<String> = std::fs::read_dir(s.data())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| !n.ends_with(".lock"))
        .collect();
    assert_eq!(caches.len(), 1, "only the bandit cache: {caches:?}");
    assert!(caches[0].starts_with("bandit-"), "{caches:?}");

    // Extending is allowed and recorded.
    stdout_of(
        s.adlab()
            .args(["run", "--run-dir", run.to_str().unwrap(), "train.steps=6"]),
    );
    let config = std::fs::read_to_string(run.join("config.yaml")).unwrap();
    assert!(config.contains("steps: 6"), "{config}");
    assert!(config.contains("name: bandit-rl_heads"), "{config}");

    // Changing what is trained is refused, naming the key, and leaves the run alone.
    for bad in ["optimizer.lr=0.01", "model=causal_lm", "train.steps=2"] {
        let err =
            stderr_of_failure(
                s.adlab()
                    .args(["run", "--run-dir", run.to_str().unwrap(), bad]),
            );
        let key = bad.split('=').next().unwrap();
        assert!(err.contains(key), "{bad}: {err}");
        assert_eq!(
            std::fs::read_to_string(run.join("config.yaml")).unwrap(),
            config,
            "{bad} changed the saved config"
        );
        assert_eq!(meta_of(&run).unwrap()["status"], "completed", "{bad}");
    }
}

// ----------------------------------------------------- 3. train.resume takes over any run

#[test]
fn train_resume_continues_only_a_run_with_the_same_config() {
    let s = Scratch::new();
    let base = with(TINY_RUN, &["train.steps=10"]);
    stdout_of(s.adlab_with_paths("run", &strs(&base)));
    let first = s.run_dirs("bandit-rl_heads")[0].clone();
    // Leave it unfinished, as a crash would.
    let mut meta = meta_of(&first).unwrap();
    meta["status"] = "running".into();
    std::fs::write(first.join("meta.json"), meta.to_string()).unwrap();
    let config = std::fs::read_to_string(first.join("config.yaml")).unwrap();

    for (extra, key) in [
        (&["model.d_model=32"][..], "model.d_model"),
        (&["train.steps=4", "optimizer.lr=0.01"][..], "optimizer.lr"),
    ] {
        let mut args = base.clone();
        args.push("train.resume=true".into());
        args.extend(extra.iter().map(|s| s.to_string()));
        let out = s.adlab_with_paths("run", &strs(&args)).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        let new_dir = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert_ne!(
            new_dir,
            first.display().to_string(),
            "{extra:?} took over the run"
        );
        assert!(
            stderr.contains("not continuing") && stderr.contains(key),
            "say why the run was passed over: {stderr}"
        );
        assert_eq!(
            std::fs::read_to_string(first.join("config.yaml")).unwrap(),
            config
        );
        assert_eq!(meta_of(&first).unwrap()["status"], "running");
    }
    // The same config (with more steps) does continue it.
    let mut args = with(TINY_RUN, &["train.steps=12", "train.resume=true"]);
    args.retain(|a| a != "train.steps=4");
    let out = stdout_of(s.adlab_with_paths("run", &strs(&args)));
    assert_eq!(out.trim(), first.display().to_string());
    assert_eq!(meta_of(&first).unwrap()["status"], "completed");
}

// ----------------------------------------------------------- 4. killed sweeps and orphans

fn sweep(s: &Scratch, args: &[&str]) -> Command {
    let mut c = Command::new(bin());
    c.current_dir(s.path())
        .env("ADLAB_CONFIG_DIR", conf_dir())
        .env_remove("RUST_LOG")
        .args(args)
        .arg(format!("paths.runs={}", s.runs().display()))
        .arg(format!("paths.data={}", s.data().display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    c
}

/// Starts a one-job multirun that trains until stopped; returns the process, its job
/// directory and the job's pid, once the job has written a checkpoint.
fn start_endless_sweep(s: &Scratch) -> (std::process::Child, PathBuf, i32) {
    let mut args = vec!["run".to_string(), "-m".to_string()];
    args.extend(endless(&[
        "launcher.devices=[cpu]",
        "launcher.runs_per_device=1",
    ]));
    let child = sweep(s, &strs(&args)).spawn().unwrap();
    let mut job = None;
    wait_for("the sweep's job to checkpoint", 300, || {
        let sweeps = s.runs().join("sweeps/multirun");
        let found = std::fs::read_dir(&sweeps)
            .into_iter()
            .flatten()
            .flatten()
            .flat_map(|d| std::fs::read_dir(d.path()).into_iter().flatten().flatten())
            .map(|e| e.path())
            .find(|p| p.is_dir() && has_checkpoint(p));
        job = found;
        job.is_some()
    });
    let job = job.unwrap();
    let pid = meta_of(&job).unwrap()["pid"].as_i64().unwrap() as i32;
    (child, job, pid)
}

#[test]
fn a_killed_sweeps_job_stops_with_it_and_ends_interrupted() {
    let s = Scratch::new();
    let (mut sweep_proc, job, pid) = start_endless_sweep(&s);
    let _cleanup = KillOnDrop(vec![pid]);
    signal(sweep_proc.id() as i32, SIGKILL);
    sweep_proc.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while pid_alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        !pid_alive(pid),
        "the job (pid {pid}) kept running after its sweep was killed"
    );
    assert_eq!(meta_of(&job).unwrap()["status"], "interrupted");
}

#[test]
fn sweep_resume_never_starts_a_job_whose_run_is_alive() {
    let s = Scratch::new();
    let (mut sweep_proc, job, pid) = start_endless_sweep(&s);
    let _cleanup = KillOnDrop(vec![pid, sweep_proc.id() as i32]);
    let sweep_dir = job.parent().unwrap().to_path_buf();
    let mut resume = Command::new(bin())
        .current_dir(s.path())
        .env("ADLAB_CONFIG_DIR", conf_dir())
        .args(["sweep", "--resume", sweep_dir.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _cleanup_resume = KillOnDrop(vec![resume.id() as i32]);
    let deadline = Instant::now() + Duration::from_secs(120);
    while resume.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "the resume is running the live job a second time"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = resume.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("not started again") && stderr.contains("still running"),
        "{stderr}"
    );
    let meta = meta_of(&job).unwrap();
    assert_eq!(meta["attempts"], 1, "the job was started a second time");
    assert_eq!(meta["pid"].as_i64().unwrap() as i32, pid);
    assert!(pid_alive(pid));
    // Stop the sweep as Ctrl-C would; its job ends interrupted.
    signal(sweep_proc.id() as i32, SIGTERM);
    sweep_proc.wait().unwrap();
}

#[test]
fn a_second_run_on_a_live_run_directory_is_refused() {
    let s = Scratch::new();
    let dir = s.path().join("live");
    let mut args = vec!["--run-dir".to_string(), dir.display().to_string()];
    args.extend(endless(&[]));
    let mut first = Command::new(bin())
        .current_dir(s.path())
        .env("ADLAB_CONFIG_DIR", conf_dir())
        .arg("run")
        .args(&args)
        .arg(format!("paths.runs={}", s.runs().display()))
        .arg(format!("paths.data={}", s.data().display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _cleanup = KillOnDrop(vec![first.id() as i32]);
    wait_for("the first run to checkpoint", 300, || has_checkpoint(&dir));
    // A second writer must be refused at once, not train beside the first.
    let mut second = Command::new(bin())
        .current_dir(s.path())
        .env("ADLAB_CONFIG_DIR", conf_dir())
        .arg("run")
        .args(&args)
        .arg(format!("paths.runs={}", s.runs().display()))
        .arg(format!("paths.data={}", s.data().display()))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _cleanup_second = KillOnDrop(vec![second.id() as i32]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while second.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "a second process is training in the live run directory"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = second.wait_with_output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("in use by another adlab process"), "{err}");
    let meta = meta_of(&dir).unwrap();
    assert_eq!(meta["attempts"], 1);
    assert_eq!(meta["status"], "running");
    // A second Ctrl-C exits at once, and the run still records how it ended.
    // Two different signals, back to back: the kernel would merge two pending SIGINTs.
    signal(first.id() as i32, SIGINT);
    signal(first.id() as i32, SIGTERM);
    first.wait().unwrap();
    assert_eq!(meta_of(&dir).unwrap()["status"], "interrupted");
}

// ------------------------------------------------------------------- 5. damaged caches

/// The byte range of tensor `name` in a safetensors file.
fn tensor_range(path: &Path, name: &str) -> (usize, usize) {
    let bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let off = &header[name]["data_offsets"];
    (
        8 + n + off[0].as_u64().unwrap() as usize,
        8 + n + off[1].as_u64().unwrap() as usize,
    )
}

fn cache_dir(s: &Scratch) -> PathBuf {
    std::fs::read_dir(s.data())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.is_dir() && p.join("meta.json").is_file())
        .unwrap()
}

#[test]
fn a_corrupt_cache_fails_the_run_naming_the_directory_to_delete() {
    let s = Scratch::new();
    stdout_of(s.adlab_with_paths("generate", &["task=bandit"]));
    let cache = cache_dir(&s);
    let file = cache.join("histories.safetensors");
    let (start, _) = tensor_range(&file, "actions");
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[start..start + 4].copy_from_slice(&[0xff; 4]);
    std::fs::write(&file, &bytes).unwrap();

    let out = s
        .adlab_with_paths("run", &strs(&with(TINY_RUN, &[])))
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "a corrupt cache trained to completion"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let name = cache.file_name().unwrap().to_string_lossy().to_string();
    assert!(
        stderr.contains("actions") && stderr.contains(&name) && stderr.contains("delete"),
        "{stderr}"
    );
    let meta = meta_of(&s.run_dirs("bandit-rl_heads")[0]).unwrap();
    assert_eq!(meta["status"], "failed");
}

#[test]
fn generate_detects_a_truncated_cache_instead_of_reusing_it() {
    let s = Scratch::new();
    stdout_of(s.adlab_with_paths("generate", &["task=bandit"]));
    let cache = cache_dir(&s);
    let file = cache.join("histories.safetensors");
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..bytes.len() / 2]).unwrap();
    let err = stderr_of_failure(s.adlab_with_paths("generate", &["task=bandit"]));
    let name = cache.file_name().unwrap().to_string_lossy().to_string();
    assert!(err.contains(&name) && err.contains("delete"), "{err}");
}

// ---------------------------------------------------------------- 7. sizes and `lost`

/// `adlab run ARGS` under an address-space limit of 4 GiB, so a runaway allocation fails
/// inside the process instead of calling the OOM killer.
fn run_limited(s: &Scratch, args: &[String]) -> std::process::Output {
    let mut cmd = format!("ulimit -v 4194304; exec '{}' run", bin().display());
    for a in args {
        cmd.push_str(&format!(" '{a}'"));
    }
    cmd.push_str(&format!(
        " 'paths.runs={}' 'paths.data={}'",
        s.runs().display(),
        s.data().display()
    ));
    Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .current_dir(s.path())
        .env("ADLAB_CONFIG_DIR", conf_dir())
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

#[test]
fn absurd_model_sizes_fail_cleanly_before_allocating() {
    let s = Scratch::new();
    for (extra, key) in [
        (
            vec!["model.d_model=1048576", "model.n_heads=1"],
            "model.d_model",
        ),
        (vec!["model.context_steps=100000"], "model.context_steps"),
    ] {
        let before = s.run_dirs("bandit-rl_heads");
        let out = run_limited(&s, &with(TINY_RUN, &extra));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{extra:?}: {stderr}");
        assert!(stderr.contains(key), "{extra:?}: {stderr}");
        let dir = s
            .run_dirs("bandit-rl_heads")
            .into_iter()
            .find(|d| !before.contains(d))
            .unwrap();
        let meta = meta_of(&dir).unwrap();
        assert_eq!(meta["status"], "failed", "{extra:?}");
        assert!(meta["error"].as_str().unwrap().contains(key));
    }
}

#[test]
fn a_run_whose_process_died_reports_as_lost() {
    let s = Scratch::new();
    let dir = s.path().join("doomed");
    let mut child = Command::new(bin())
        .current_dir(s.path())
        .env("ADLAB_CONFIG_DIR", conf_dir())
        .arg("run")
        .arg("--run-dir")
        .arg(&dir)
        .args(endless(&[]))
        .arg(format!("paths.runs={}", s.runs().display()))
        .arg(format!("paths.data={}", s.data().display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _cleanup = KillOnDrop(vec![child.id() as i32]);
    wait_for("the run to checkpoint", 300, || has_checkpoint(&dir));
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(meta_of(&dir).unwrap()["status"], "running");
    let report = s.path().join("report");
    let out = s
        .adlab()
        .arg("report")
        .arg(&dir)
        .arg("--out")
        .arg(&report)
        .output()
        .unwrap();
    assert!(out.status.success());
    let csv = std::fs::read_to_string(report.join("report.csv")).unwrap();
    assert!(csv.contains(",lost,"), "{csv}");
}

// ------------------------------------------------------------------ lesser problems

#[test]
fn values_that_would_fail_later_are_refused_at_composition_naming_the_key() {
    let s = Scratch::new();
    for (ov, key) in [
        ("optimizer.lr=inf", "optimizer.lr"),
        ("optimizer.grad_clip=-1", "optimizer.grad_clip"),
        ("model.n_heads=3", "model.n_heads"),
        ("model.dropout=1.0", "model.dropout"),
        ("model.attn_dropout=-0.1", "model.attn_dropout"),
        ("eval.summary_k=0", "eval.summary_k"),
        ("eval.context_kept=1.0", "eval.context_kept"),
        ("task.split.test_fraction=0", "task.split.test_fraction"),
        ("name=a\nb", "name"),
    ] {
        let err = stderr_of_failure(s.adlab().args(["config", ov]));
        assert!(err.contains(key), "{ov}: {err}");
    }
    // Held-out evaluation off: a split without held-out tasks is fine for generation.
    stdout_of(
        s.adlab()
            .args(["config", "task.split.test_fraction=0", "eval.enabled=false"]),
    );
}

#[test]
fn unknown_keys_are_named_once_with_their_override() {
    let s = Scratch::new();
    let err = stderr_of_failure(s.adlab().args(["config", "+train.foo=1"]));
    assert!(err.contains("`train.foo`"), "{err}");
    assert!(!err.contains("train.foo.foo"), "{err}");
    assert!(err.contains("+train.foo=1"), "blame the override: {err}");
    // An unknown key in a file is named once too, with the file.
    let conf = s.path().join("conf");
    copy_dir(&conf_dir(), &conf);
    let primary = std::fs::read_to_string(conf.join("config.yaml")).unwrap();
    let edited = primary.replacen("\ntrain:\n", "\ntrain:\n  bar: 3\n", 1);
    assert_ne!(edited, primary);
    std::fs::write(conf.join("config.yaml"), edited).unwrap();
    let err = stderr_of_failure(s.adlab().env("ADLAB_CONFIG_DIR", &conf).arg("config"));
    assert!(
        err.contains("`train.bar`") && err.contains("config.yaml"),
        "{err}"
    );
    assert!(!err.contains("train.bar.bar"), "{err}");
    // A mapping value merges into the mapping it replaces (Hydra), so a partial one is fine.
    let out = stdout_of(s.adlab().args([
        "config",
        "--resolve",
        "model.loss_weights={action: 2.0}",
        "eval={episodes: 5}",
    ]));
    assert!(
        out.contains("action: 2.0") && out.contains("episodes: 5"),
        "{out}"
    );
}

#[test]
fn option_and_sweep_names_cannot_leave_their_folders() {
    let s = Scratch::new();
    // A conf tree inside the scratch dir, and a valid task file outside it.
    let conf = s.path().join("conf");
    copy_dir(&conf_dir(), &conf);
    std::fs::write(
        s.path().join("x.yaml"),
        std::fs::read_to_string(conf.join("task/bandit.yaml")).unwrap(),
    )
    .unwrap();
    let err = stderr_of_failure(
        s.adlab()
            .env("ADLAB_CONFIG_DIR", &conf)
            .args(["config", "task=../../x"]),
    );
    assert!(err.contains("task") && err.contains("../../x"), "{err}");

    std::fs::create_dir(s.path().join("sweeps")).unwrap();
    std::fs::write(s.path().join("x.yaml"), "grid: {seed: [0, 1]}\n").unwrap();
    let err = stderr_of_failure(s.adlab().args([
        "sweep",
        "../x",
        "--dry-run",
        "--sweeps-dir",
        s.path().join("sweeps").to_str().unwrap(),
    ]));
    assert!(err.contains("sweep name"), "{err}");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}
