//! Running a sweep: expand, check every job's config before anything starts, lay out the
//! sweep directory, launch, summarise. Also resumes a sweep directory (only jobs that did not
//! complete run again, continuing from their checkpoints).

use super::expand::{expand, override_dirname};
use super::record::{create_sweep_dir, job_dir, SweepRecord};
use super::spec::SweepSpec;
use crate::config::{ConfigRepo, Override};
use crate::launch::{JobCommand, JobResult, JobSpec};
use crate::runs::{RunDir, RunStatus};
use crate::schema::{self, LauncherConfig};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// What to sweep and how.
pub struct SweepRequest<'a> {
    pub name: &'a str,
    pub spec: SweepSpec,
    pub cli: Vec<Override>,
    pub config_dir: &'a Path,
    pub dry_run: bool,
    pub fail_fast: bool,
}

/// How a sweep ended.
#[derive(Debug)]
pub struct SweepOutcome {
    pub dir: PathBuf,
    pub results: Vec<JobResult>,
}

impl SweepOutcome {
    pub fn failures(&self) -> Vec<&JobResult> {
        self.results
            .iter()
            .filter(|r| r.status != RunStatus::Completed)
            .collect()
    }
}

/// Expands and runs a new sweep (or prints it, with `dry_run`).
pub fn run_sweep(req: SweepRequest<'_>) -> Result<Option<SweepOutcome>> {
    let repo = ConfigRepo::new(req.config_dir)?;
    let expanded = expand(&req.spec, &req.cli, &repo)?;
    // Compose every job now: a typo in job 17 must not surface after 16 jobs ran.
    let mut configs = Vec::with_capacity(expanded.len());
    for (i, job) in expanded.iter().enumerate() {
        let ovs = crate::config::parse_overrides(&job.overrides)?;
        let loaded = schema::load(req.config_dir, &ovs)
            .with_context(|| format!("job {i} ({})", job.overrides.join(" ")))?;
        configs.push(loaded.typed);
    }
    let first = configs.first().context("the sweep expands to no jobs")?;
    let launcher = first.launcher.clone();
    if configs.iter().any(|c| c.launcher.name() != launcher.name()) {
        bail!("every job of a sweep must use the same launcher");
    }
    let runs_root = first.paths.runs.clone();
    let dirnames: Vec<String> = expanded
        .iter()
        .map(|j| override_dirname(&j.swept))
        .collect();

    if req.dry_run {
        let base = runs_root
            .join("sweeps")
            .join(req.name)
            .join("<YYYY-MM-DD_HH-MM-SS>");
        println!(
            "sweep `{}`: {}, launcher {}",
            req.name,
            crate::logging::plural(expanded.len(), "job"),
            launcher.name()
        );
        if let Some(d) = &req.spec.description {
            println!("  {d}");
        }
        for (i, job) in expanded.iter().enumerate() {
            println!("[{i:03}] {}", job.overrides.join(" "));
            println!("      -> {}", job_dir(&base, i, &dirnames[i]).display());
        }
        return Ok(None);
    }

    let dir = create_sweep_dir(&runs_root, req.name)?;
    let jobs: Vec<JobSpec> = expanded
        .iter()
        .enumerate()
        .map(|(i, j)| JobSpec {
            index: i,
            run_dir: absolute(&job_dir(&dir, i, &dirnames[i])),
            overrides: j.overrides.clone(),
        })
        .collect();
    let record = SweepRecord {
        sweep: req.name.to_string(),
        description: req.spec.description.clone(),
        created: crate::runs::meta::now(),
        command: std::env::args().collect(),
        cwd: std::env::current_dir()?,
        config_dir: absolute(req.config_dir),
        launcher: launcher.name().to_string(),
        report: req.spec.report.clone(),
        jobs,
    };
    record.write(&dir)?;
    tracing::info!("sweep directory: {}", dir.display());
    let results = launch(&record, &dir, &record.jobs, &launcher, req.fail_fast)?;
    Ok(Some(SweepOutcome { dir, results }))
}

/// Runs the jobs of `sweep_dir` that did not complete; completed jobs are never re-run.
pub fn resume_sweep(sweep_dir: &Path, fail_fast: bool) -> Result<SweepOutcome> {
    let record = SweepRecord::read(sweep_dir)?;
    let mut todo = Vec::new();
    let mut done = Vec::new();
    let mut alive = Vec::new();
    for job in &record.jobs {
        let dir = RunDir {
            path: job.run_dir.clone(),
        };
        let meta = dir.read_meta().ok().flatten();
        match meta {
            Some(m) if m.status == RunStatus::Completed => done.push(JobResult {
                index: job.index,
                status: RunStatus::Completed,
                error: None,
                log: job.run_dir.join("launcher.log"),
            }),
            // Its process still runs it (an orphan of a killed sweep, or another resume):
            // starting it again would put two writers on one run.
            Some(m) => match crate::pipeline::resume::alive_reason(&job.run_dir, &m) {
                Some(why) => alive.push(JobResult {
                    index: job.index,
                    status: RunStatus::Running,
                    error: Some(format!("not started again: {why}")),
                    log: job.run_dir.join("launcher.log"),
                }),
                None => {
                    if m.status == RunStatus::Running {
                        tracing::info!(
                            "[{:03}] lost: its process (pid {} on {}) died without recording an \
                             end; running it again from its checkpoint",
                            job.index,
                            m.pid,
                            m.host
                        );
                    }
                    todo.push(job.clone())
                }
            },
            None => todo.push(job.clone()),
        }
    }
    tracing::info!(
        "resuming {}: {} completed, {} still running elsewhere, {} to run",
        sweep_dir.display(),
        crate::logging::plural(done.len(), "job"),
        alive.len(),
        todo.len()
    );
    for a in &alive {
        tracing::warn!(
            "[{:03}] {}",
            a.index,
            a.error.as_deref().unwrap_or("still running")
        );
    }
    let first = todo
        .first()
        .or(record.jobs.first())
        .context("the sweep has no jobs")?;
    let ovs = crate::config::parse_overrides(&first.overrides)?;
    let launcher = schema::load(&record.config_dir, &ovs)?.typed.launcher;
    let mut results = if todo.is_empty() {
        Vec::new()
    } else {
        launch(&record, sweep_dir, &todo, &launcher, fail_fast)?
    };
    results.extend(done);
    results.extend(alive);
    results.sort_by_key(|r| r.index);
    Ok(SweepOutcome {
        dir: sweep_dir.to_path_buf(),
        results,
    })
}

fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|c| c.join(p))
            .unwrap_or_else(|_| p.to_path_buf())
    }
}

fn launch(
    record: &SweepRecord,
    sweep_dir: &Path,
    jobs: &[JobSpec],
    launcher: &LauncherConfig,
    fail_fast: bool,
) -> Result<Vec<JobResult>> {
    let cmd = JobCommand {
        exe: std::env::current_exe().context("locating the adlab executable")?,
        config_dir: record.config_dir.clone(),
        cwd: record.cwd.clone(),
    };
    crate::launch::launcher(launcher).launch(jobs, &cmd, sweep_dir, fail_fast)
}
