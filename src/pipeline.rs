//! The stages of one run: resolve the device, generate or load the learning histories,
//! train, evaluate. Each stage checks for an interrupt before it starts.

use crate::runs::{RunDir, RunMeta};
use crate::schema::LoadedConfig;
use anyhow::Result;
use std::io::IsTerminal;

pub fn run_pipeline(loaded: &LoadedConfig, dir: &RunDir, meta: &mut RunMeta) -> Result<()> {
    let cfg = &loaded.typed;
    crate::interrupt::check()?;
    let request = crate::device::DeviceRequest::parse(&cfg.device).map_err(anyhow::Error::msg)?;
    let device = request.resolve()?;
    meta.device = Some(crate::device::describe(&device));
    dir.write_meta(meta)?;

    crate::interrupt::check()?;
    let progress = std::io::stderr().is_terminal();
    let cache = crate::tasks::cache::ensure(&cfg.task, &cfg.paths.data, progress)?;
    tracing::info!(
        "learning histories: {} ({} histories, {} steps{})",
        cache.dir.display(),
        cache.n_histories,
        cache.n_steps,
        if cache.reused { ", reused" } else { "" }
    );
    crate::interrupt::check()?;
    Ok(())
}
