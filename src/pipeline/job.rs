//! One run, start to finish: create (or reuse) its directory, record config and overrides,
//! keep `meta.json` true through the lifecycle, and run the pipeline. A failure or an
//! interrupt is recorded in `meta.json`, never lost.

use crate::logging::RunLogSlot;
use crate::runs::{RunDir, RunMeta, RunStatus};
use crate::schema::LoadedConfig;
use anyhow::{Context, Result};
use std::path::PathBuf;

/// Where a run's directory comes from.
#[derive(Debug, Clone)]
pub enum RunLocation {
    /// A fresh `runs/<name>/<stamp>_<id>/`.
    Fresh,
    /// A given directory (a sweep job, or a run being resumed).
    At(PathBuf),
}

/// The end of a run as the caller sees it.
#[derive(Debug)]
pub struct RunOutcome {
    pub dir: RunDir,
    pub status: RunStatus,
    pub error: Option<String>,
}

/// Runs one job with a real lifecycle. Returns the outcome even when the job failed (the
/// failure is recorded); returns `Err` only when the run directory itself cannot be written.
pub fn run(loaded: &LoadedConfig, location: RunLocation, log: &RunLogSlot) -> Result<RunOutcome> {
    let cfg = &loaded.typed;
    // An existing directory (a sweep job, a run being resumed) continues from its checkpoint.
    let (dir, resume) = match location {
        RunLocation::Fresh => (RunDir::create(&cfg.paths.runs, &cfg.name)?, false),
        RunLocation::At(p) => (RunDir::at(p)?, true),
    };
    // Before the first write: a second process on this directory must fail here, untouched.
    let _lock = crate::runs::lock::RunLock::acquire(&dir.path)?;
    log.attach(&dir.log_path())
        .with_context(|| format!("opening {}", dir.log_path().display()))?;
    let previous = dir.read_meta().ok().flatten();
    let mut meta = RunMeta::start(Some(cfg.device.clone()));
    if let Some(prev) = &previous {
        meta.attempts = prev.attempts + 1;
    }
    // The record first: a process killed before its config is written still leaves a
    // directory that `--run-dir` knows as adlab's, and starts again (`classify_run_dir`).
    dir.write_meta(&meta)?;
    crate::fsutil::write_atomic(&dir.config_path(), loaded.yaml().as_bytes())?;
    let overrides: Vec<String> = loaded.overrides.iter().map(|o| o.text.clone()).collect();
    crate::fsutil::write_atomic(
        &dir.overrides_path(),
        serde_yaml_ng::to_string(&overrides)?.as_bytes(),
    )?;
    tracing::info!("run directory: {}", dir.path.display());
    // A second Ctrl-C exits at once; the run must not stay `running` behind it.
    let forced = dir.clone();
    crate::interrupt::on_forced_exit(Box::new(move || {
        if let Ok(Some(mut m)) = forced.read_meta() {
            m.finish(
                RunStatus::Interrupted,
                Some(
                    "interrupted by a second signal: stopped at once, after the last checkpoint"
                        .into(),
                ),
            );
            let _ = forced.write_meta(&m);
        }
    }));

    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        super::run_pipeline(loaded, &dir, &mut meta, resume)
    }));
    let (status, error) = match result {
        Ok(Ok(())) => (RunStatus::Completed, None),
        Ok(Err(e)) if e.downcast_ref::<crate::interrupt::Interrupted>().is_some() => {
            (RunStatus::Interrupted, Some(format!("{e:#}")))
        }
        Ok(Err(e)) => {
            // Backtraces (candle adds one when RUST_BACKTRACE is set) go to adlab.log only.
            let full = format!("{e:#}");
            let (message, backtrace) = split_backtrace(&full);
            if let Some(bt) = backtrace {
                log.write_raw(&format!("error backtrace:\n{bt}\n"));
            }
            (RunStatus::Failed, Some(message))
        }
        Err(panic) => {
            let text = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into());
            (
                RunStatus::Failed,
                Some(format!("internal error (panic): {text}")),
            )
        }
    };
    meta.finish(status, error.clone());
    match &error {
        None => tracing::info!("run {status}: {}", dir.path.display()),
        Some(e) => tracing::error!("run {status}: {e}"),
    }
    crate::interrupt::clear_forced_exit();
    dir.write_meta(&meta)?;
    log.detach();
    Ok(RunOutcome { dir, status, error })
}

/// Splits an error text into its message chain and the backtrace lines inside it (frames
/// `  12: path::to::fn`, `at file.rs:3:4`, and `stack backtrace:` headers).
pub fn split_backtrace(text: &str) -> (String, Option<String>) {
    fn is_frame(line: &str) -> bool {
        let t = line.trim_start();
        let numbered = t
            .split_once(": ")
            .is_some_and(|(n, _)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        (numbered && line.starts_with(' '))
            || (t.starts_with("at ") && line.starts_with("  "))
            || t == "stack backtrace:"
            || t == "Stack backtrace:"
    }
    let (mut msg, mut bt) = (Vec::new(), Vec::new());
    for line in text.lines() {
        if is_frame(line) {
            bt.push(line);
        } else {
            msg.push(line);
        }
    }
    let message = msg.join("\n").trim_end().to_string();
    (message, (!bt.is_empty()).then(|| bt.join("\n")))
}

#[cfg(test)]
mod tests {
    #[test]
    fn backtraces_are_split_from_the_message() {
        let text = "training: matmul failed\n   0: candle_core::error::Error::bt\n             at /src/error.rs:10:5\n   1: adlab::main\nshape mismatch";
        let (m, bt) = super::split_backtrace(text);
        assert_eq!(m, "training: matmul failed\nshape mismatch");
        assert_eq!(bt.unwrap().lines().count(), 3);
        let (m, bt) = super::split_backtrace("plain: error 1: two");
        assert_eq!(m, "plain: error 1: two");
        assert!(bt.is_none());
    }
}
