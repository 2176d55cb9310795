//! Helpers of the SLURM tests: the local cluster, a launcher config, tiny training jobs.

use super::*;
use adlab::launch::config::SlurmLauncherConfig;
use adlab::launch::slurm::{JobState, SlurmArray};
use adlab::launch::{JobCommand, JobSpec};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

/// A tiny RL-heads model on bandit histories: a few seconds per job.
pub const TINY: &[&str] = &[
    "task=bandit",
    "model.d_model=32",
    "model.n_layers=1",
    "model.n_heads=2",
    "model.d_ff=64",
    "model.context_steps=16",
    "train.batch_size=4",
    "train.steps=10",
    "train.log_every=5",
    "eval.enabled=false",
];

/// Starts the local cluster once per test binary (the script is idempotent and locked).
pub fn cluster() {
    static UP: OnceLock<Result<(), String>> = OnceLock::new();
    let up = UP.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join(".ci/slurm-cluster.sh");
        let out = std::process::Command::new("bash")
            .arg(&script)
            .arg("start")
            .output()
            .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{} start failed:\n{}{}",
                script.display(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    });
    if let Err(e) = up {
        panic!(
            "no SLURM cluster: {e}\n(these tests need Debian's slurm-wlm and root; `.ci/run` \
             installs it)"
        );
    }
}

pub fn launcher() -> SlurmLauncherConfig {
    SlurmLauncherConfig {
        partition: None,
        time_limit: "00:10:00".into(),
        cpus_per_task: 1,
        mem: Some("500M".into()),
        gpus_per_task: None,
        gres: None,
        account: None,
        qos: None,
        array_parallelism: None,
        additional_parameters: Default::default(),
        setup: vec!["export ADLAB_TEST_SETUP=ran".into()],
        wait: true,
        poll_seconds: 0.5,
    }
}

pub fn command(s: &Scratch) -> JobCommand {
    JobCommand {
        exe: bin(),
        config_dir: conf_dir(),
        cwd: s.path().to_path_buf(),
    }
}

/// A job of the sweep in `s`: run directory `sweep/<index>`, the tiny model plus `extra`.
pub fn job(s: &Scratch, index: usize, extra: &[&str]) -> JobSpec {
    let mut overrides: Vec<String> = TINY.iter().chain(extra).map(|o| o.to_string()).collect();
    overrides.push(format!("paths.runs={}", s.runs().display()));
    overrides.push(format!("paths.data={}", s.data().display()));
    JobSpec {
        index,
        run_dir: PathBuf::from(format!("sweep/{index:03}")),
        overrides,
    }
}

/// `array.wait`, but a hung cluster fails the test (after cancelling) instead of hanging it.
/// Checks that `on_update` saw the final states.
pub fn wait_at_most(array: &SlurmArray, limit: Duration) -> Vec<JobState> {
    let (tx, rx) = std::sync::mpsc::channel();
    let waiter = array.clone();
    std::thread::spawn(move || {
        let mut seen: Vec<Vec<JobState>> = vec![];
        let result = waiter.wait(0.5, |states| seen.push(states.to_vec()));
        let _ = tx.send(result.map(|states| (states, seen)));
    });
    match rx.recv_timeout(limit) {
        Ok(result) => {
            let (states, seen) = result.expect("waiting for the array");
            assert_eq!(seen.last(), Some(&states), "on_update missed the end");
            states
        }
        Err(_) => {
            let states = array.poll();
            let _ = array.cancel();
            panic!(
                "array {} did not finish in {limit:?}: {states:#?}",
                array.array_id
            )
        }
    }
}
