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
    log.attach(&dir.log_path())
        .with_context(|| format!("opening {}", dir.log_path().display()))?;
    let previous = dir.read_meta().ok().flatten();
    let mut meta = RunMeta::start(Some(cfg.device.clone()));
    if let Some(prev) = &previous {
        meta.attempts = prev.attempts + 1;
    }
    crate::fsutil::write_atomic(&dir.config_path(), loaded.yaml().as_bytes())?;
    let overrides: Vec<String> = loaded.overrides.iter().map(|o| o.text.clone()).collect();
    crate::fsutil::write_atomic(
        &dir.overrides_path(),
        serde_yaml_ng::to_string(&overrides)?.as_bytes(),
    )?;
    dir.write_meta(&meta)?;
    tracing::info!("run directory: {}", dir.path.display());

    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        crate::pipeline::run_pipeline(loaded, &dir, &mut meta, resume)
    }));
    let (status, error) = match result {
        Ok(Ok(())) => (RunStatus::Completed, None),
        Ok(Err(e)) if e.downcast_ref::<crate::interrupt::Interrupted>().is_some() => {
            (RunStatus::Interrupted, Some(format!("{e:#}")))
        }
        Ok(Err(e)) => (RunStatus::Failed, Some(format!("{e:#}"))),
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
    dir.write_meta(&meta)?;
    log.detach();
    Ok(RunOutcome { dir, status, error })
}
