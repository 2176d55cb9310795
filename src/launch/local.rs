//! The local launcher: runs jobs as child processes (so a panic, OOM or abort in one job
//! cannot take down the sweep), packing them onto device slots — on a CPU-only machine, one
//! single-threaded job per core by default. Keeps going past failures unless told not to.

use super::config::LocalLauncherConfig;
use super::{JobCommand, JobResult, JobSpec, Launcher};
use crate::runs::{RunDir, RunStatus};
use anyhow::{bail, Context, Result};
use std::collections::VecDeque;
use std::io::IsTerminal;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

/// Where one job may run: a device and the thread count it gets.
#[derive(Debug, Clone, PartialEq)]
pub struct Slot {
    /// `cpu` or `cuda:N`.
    pub device: String,
}

/// Events for progress displays.
#[derive(Debug)]
pub enum LaunchEvent<'a> {
    Started {
        job: &'a JobSpec,
        slot: &'a Slot,
    },
    Finished {
        job: &'a JobSpec,
        result: &'a JobResult,
    },
}

/// The slots of `cfg` on this machine.
pub fn slots(cfg: &LocalLauncherConfig) -> Result<Vec<Slot>> {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let devices: Vec<String> = match &cfg.devices {
        serde_json::Value::String(s) if s == "auto" => vec!["cpu".into()],
        serde_json::Value::String(s) => vec![s.clone()],
        serde_json::Value::Array(items) => items
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .context("launcher.devices: expected `auto` or a list of devices like [cpu] or [cuda:0, cuda:1]")?,
        other => bail!("launcher.devices: expected `auto` or a list of devices, got {other}"),
    };
    if devices.is_empty() {
        bail!("launcher.devices is an empty list");
    }
    let mut out = Vec::new();
    for d in devices {
        crate::device::DeviceRequest::parse(&d)
            .map_err(|e| anyhow::anyhow!("launcher.devices: {e}"))?;
        let per = match cfg.runs_per_device {
            Some(n) if n > 0 => n,
            Some(_) => bail!("launcher.runs_per_device must be at least 1"),
            None if d == "cpu" => (cores / cfg.threads_per_run.max(1)).max(1),
            None => 1,
        };
        out.extend((0..per).map(|_| Slot { device: d.clone() }));
    }
    if let Some(max) = cfg.max_parallel {
        out.truncate(max.max(1));
    }
    Ok(out)
}

struct Running {
    job: JobSpec,
    slot_index: usize,
    child: Child,
    log: std::path::PathBuf,
}

/// Local child processes, a job per slot, with a progress bar (or a line per finished job
/// when stderr is not a terminal).
impl Launcher for LocalLauncherConfig {
    fn launch(
        &self,
        jobs: &[JobSpec],
        cmd: &JobCommand,
        _sweep_dir: &Path,
        fail_fast: bool,
    ) -> Result<Vec<JobResult>> {
        let total = jobs.len();
        let bar = if std::io::stderr().is_terminal() {
            indicatif::ProgressBar::new(total as u64)
        } else {
            indicatif::ProgressBar::hidden()
        };
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "sweep {bar:30} {pos}/{len} [{elapsed_precise}<{eta_precise}] {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        let (mut running, mut failed) = (0usize, 0usize);
        let results = run_jobs(self, jobs, cmd, fail_fast, |event| match event {
            LaunchEvent::Started { .. } => {
                running += 1;
                bar.set_message(format!("running {running}, failed {failed}"));
            }
            LaunchEvent::Finished { job, result } => {
                running -= 1;
                if result.status != RunStatus::Completed {
                    failed += 1;
                }
                bar.inc(1);
                bar.set_message(format!("running {running}, failed {failed}"));
                let line = format!(
                    "[{:03}] {} {}",
                    job.index,
                    result.status,
                    job.run_dir.display()
                );
                if bar.is_hidden() {
                    eprintln!("{line}");
                } else {
                    bar.println(line);
                }
            }
        })?;
        bar.finish_and_clear();
        Ok(results)
    }
}

/// Runs `jobs` on the slots of `cfg`; returns one result per job, in job order.
pub fn run_jobs(
    cfg: &LocalLauncherConfig,
    jobs: &[JobSpec],
    cmd: &JobCommand,
    fail_fast: bool,
    mut on_event: impl FnMut(LaunchEvent<'_>),
) -> Result<Vec<JobResult>> {
    let slots = slots(cfg)?;
    let mut free: VecDeque<usize> = (0..slots.len()).collect();
    let mut queue: VecDeque<&JobSpec> = jobs.iter().collect();
    let mut running: Vec<Running> = Vec::new();
    let mut results: Vec<JobResult> = Vec::new();
    let mut stop_launching = false;
    loop {
        if crate::interrupt::requested() && !stop_launching {
            stop_launching = true;
            for r in &running {
                terminate(&r.child);
            }
        }
        while !stop_launching && !queue.is_empty() && !free.is_empty() {
            let job = queue.pop_front().expect("non-empty");
            let slot_index = free.pop_front().expect("non-empty");
            let slot = &slots[slot_index];
            let (child, log) = spawn(job, slot, cfg.threads_per_run, cmd)?;
            on_event(LaunchEvent::Started { job, slot });
            running.push(Running {
                job: job.clone(),
                slot_index,
                child,
                log,
            });
        }
        if running.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
        let mut i = 0;
        while i < running.len() {
            if let Some(exit) = running[i].child.try_wait()? {
                let r = running.swap_remove(i);
                free.push_back(r.slot_index);
                let result = outcome(&r.job, exit, r.log);
                if fail_fast && result.status != RunStatus::Completed && !stop_launching {
                    stop_launching = true;
                    for other in &running {
                        terminate(&other.child);
                    }
                }
                on_event(LaunchEvent::Finished {
                    job: &r.job,
                    result: &result,
                });
                results.push(result);
            } else {
                i += 1;
            }
        }
    }
    results.sort_by_key(|r| r.index);
    Ok(results)
}

fn spawn(
    job: &JobSpec,
    slot: &Slot,
    threads: usize,
    cmd: &JobCommand,
) -> Result<(Child, std::path::PathBuf)> {
    std::fs::create_dir_all(&job.run_dir)
        .with_context(|| format!("creating {}", job.run_dir.display()))?;
    let log = job.run_dir.join("launcher.log");
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .with_context(|| format!("opening {}", log.display()))?;
    let err = out.try_clone()?;
    let mut c = std::process::Command::new(&cmd.exe);
    c.current_dir(&cmd.cwd)
        .args(cmd.args(job))
        .arg(format!("train.threads={threads}"));
    if let Some(n) = slot.device.strip_prefix("cuda:") {
        // The job sees only its GPU, as device 0.
        c.env("CUDA_VISIBLE_DEVICES", n).arg("device=cuda:0");
    }
    c.env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err));
    die_with_parent(&mut c);
    let child = c
        .spawn()
        .with_context(|| format!("starting {}", cmd.exe.display()))?;
    Ok((child, log))
}

/// A job must not outlive its sweep: when the sweep process dies (even by SIGKILL), the kernel
/// sends the job SIGTERM, so it checkpoints and ends `interrupted` instead of running on as
/// an orphan that a resume would start a second time.
#[cfg(target_os = "linux")]
fn die_with_parent(c: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the closure runs in the forked child before exec and only makes async-signal-safe
    // system calls (prctl, getppid).
    unsafe {
        c.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM as libc::c_ulong) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent died between fork and prctl: the signal will never come.
            if libc::getppid() != parent {
                return Err(std::io::Error::other("the sweep process has already ended"));
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn die_with_parent(_c: &mut std::process::Command) {}

/// Asks a child to stop gracefully (it checkpoints and marks itself `interrupted`).
fn terminate(child: &Child) {
    // SAFETY: plain kill(2) on a pid we spawned and have not reaped yet.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
}

/// The job's status from its own `meta.json`; a child that died without one failed.
fn outcome(job: &JobSpec, exit: std::process::ExitStatus, log: std::path::PathBuf) -> JobResult {
    let meta = RunDir {
        path: job.run_dir.clone(),
    }
    .read_meta()
    .ok()
    .flatten();
    let (status, error) = match meta {
        Some(m) if m.status != RunStatus::Running => (m.status, m.error),
        Some(_) => (
            RunStatus::Failed,
            Some(format!(
                "the job process ended ({exit}) while its run was still `running`; see {}",
                log.display()
            )),
        ),
        None => (
            RunStatus::Failed,
            Some(format!(
                "the job process ended ({exit}) before starting its run; see {}",
                log.display()
            )),
        ),
    };
    JobResult {
        index: job.index,
        status,
        error,
        log,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(
        devices: serde_json::Value,
        per: Option<usize>,
        max: Option<usize>,
    ) -> LocalLauncherConfig {
        LocalLauncherConfig {
            devices,
            runs_per_device: per,
            threads_per_run: 1,
            max_parallel: max,
        }
    }

    #[test]
    fn slots_pack_cores_and_gpus() {
        let cores = std::thread::available_parallelism().unwrap().get();
        assert_eq!(slots(&cfg("auto".into(), None, None)).unwrap().len(), cores);
        let gpus = slots(&cfg(serde_json::json!(["cuda:0", "cuda:1"]), Some(2), None)).unwrap();
        assert_eq!(gpus.len(), 4);
        assert_eq!(gpus[2].device, "cuda:1");
        assert_eq!(
            slots(&cfg(serde_json::json!(["cpu"]), Some(8), Some(3)))
                .unwrap()
                .len(),
            3
        );
        assert!(slots(&cfg(serde_json::json!(["gpu"]), None, None)).is_err());
    }
}
