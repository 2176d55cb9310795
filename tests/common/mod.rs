//! Shared helpers for the CLI tests: a scratch directory and an `adlab` command that uses the
//! repository's conf tree and writes runs and data into the scratch directory.
#![allow(dead_code)]

pub mod slurm;

use assert_cmd::Command;
use std::path::{Path, PathBuf};

pub struct Scratch {
    pub dir: tempfile::TempDir,
}

impl Default for Scratch {
    fn default() -> Self {
        Self::new()
    }
}

impl Scratch {
    pub fn new() -> Scratch {
        Scratch {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn runs(&self) -> PathBuf {
        self.path().join("runs")
    }

    pub fn data(&self) -> PathBuf {
        self.path().join("data")
    }

    /// `adlab` run from the scratch dir, with the repo's conf tree.
    pub fn adlab(&self) -> Command {
        let mut cmd = Command::new(bin());
        cmd.current_dir(self.path())
            .env("ADLAB_CONFIG_DIR", conf_dir())
            .env_remove("RUST_LOG");
        cmd
    }

    /// `adlab SUB ARGS... paths.runs=<scratch>/runs paths.data=<scratch>/data`.
    pub fn adlab_with_paths(&self, sub: &str, args: &[&str]) -> Command {
        let mut cmd = self.adlab();
        cmd.arg(sub).args(args);
        cmd.arg(format!("paths.runs={}", self.runs().display()));
        cmd.arg(format!("paths.data={}", self.data().display()));
        cmd
    }

    /// Every run directory under `runs/<name>/`.
    pub fn run_dirs(&self, name: &str) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = std::fs::read_dir(self.runs().join(name))
            .map(|rd| rd.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        out.sort();
        out
    }
}

pub fn conf_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("conf")
}

pub fn stdout_of(mut cmd: impl std::borrow::BorrowMut<Command>) -> String {
    let out = cmd.borrow_mut().output().unwrap();
    assert!(
        out.status.success(),
        "command failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

pub fn stderr_of_failure(mut cmd: impl std::borrow::BorrowMut<Command>) -> String {
    let out = cmd.borrow_mut().output().unwrap();
    assert!(!out.status.success(), "command unexpectedly succeeded");
    String::from_utf8(out.stderr).unwrap()
}

pub fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The path of the `adlab` binary built for these tests.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_adlab"))
}

/// Overrides for a tiny, fast run: a small RL-heads model on bandit histories, no evaluation.
pub const TINY_RUN: &[&str] = &[
    "task=bandit",
    "model.d_model=16",
    "model.n_layers=1",
    "model.n_heads=1",
    "model.d_ff=32",
    "model.context_steps=8",
    "train.batch_size=2",
    "train.steps=4",
    "train.log_every=2",
    "train.eval_every=0",
    "train.val_batches=1",
    "eval.enabled=false",
];

/// `base` followed by `extra`.
pub fn with(base: &[&str], extra: &[&str]) -> Vec<String> {
    base.iter().chain(extra).map(|s| s.to_string()).collect()
}
