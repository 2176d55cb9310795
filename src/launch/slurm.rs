//! The SLURM launcher: a list of jobs becomes one SLURM job array whose task `i` runs
//! `adlab run` for the `i`-th job, and the state of every job is read back from files.
//!
//! Everything lives in `SWEEP_DIR/slurm/`:
//!
//! ```text
//! jobs.json            array task -> job index, run directory, arguments
//! job.sbatch           the batch script (a `case` on $SLURM_ARRAY_TASK_ID)
//! submit.txt           the sbatch command line
//! array_id             the id sbatch returned
//! logs/<A>_<a>.out     stdout / stderr of array A, task a (sbatch --output/--error)
//! logs/<A>_<a>.err
//! tasks/<A>_<a>.started   written by the task before the job starts
//! tasks/<A>_<a>.exit      the job's exit status, written by the task after it ends
//! tasks/<A>.cancelled     written by `cancel()`
//! ```
//!
//! Job state comes from those markers, the run directory's `meta.json` and `squeue` (clusters
//! often run without accounting, so `sacct` is not used). Markers are named by array id, so a
//! resubmission of the same sweep (resume) never reads a previous array's files, and a run
//! directory's `meta.json` counts only when it is newer than the task's start marker.

mod commands;
pub mod script;

use super::{JobCommand, JobResult, JobSpec, Launcher};
use crate::launch::config::SlurmLauncherConfig;
use crate::runs::{RunMeta, RunStatus};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use commands::QueueEntry;

/// One task of the array: which sweep job it runs, and with which `adlab` arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArrayTask {
    /// `$SLURM_ARRAY_TASK_ID`.
    pub task: usize,
    /// The job's index in the sweep.
    pub index: usize,
    /// The job's run directory (absolute).
    pub run_dir: PathBuf,
    /// `adlab` arguments (`run --config-dir ... --run-dir ... OVERRIDES...`).
    pub args: Vec<String>,
}

/// Where a job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Queued, not started.
    Pending,
    Running,
    Completed,
    Failed,
    /// Cancelled (scancel, Ctrl-C) or stopped by a signal; resumable.
    Interrupted,
    /// Left the queue without recording how it ended (node failure, killed script).
    Lost,
}

impl JobStatus {
    /// Whether the job has ended (for good, for this array).
    pub fn is_final(self) -> bool {
        !matches!(self, JobStatus::Pending | JobStatus::Running)
    }
}

impl std::fmt::Display for JobStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            JobStatus::Pending => "pending",
            JobStatus::Running => "running",
            JobStatus::Completed => "completed",
            JobStatus::Failed => "failed",
            JobStatus::Interrupted => "interrupted",
            JobStatus::Lost => "lost",
        })
    }
}

/// The state of one job of the array.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobState {
    /// The job's index in the sweep.
    pub index: usize,
    /// Its array task id.
    pub task: usize,
    pub run_dir: PathBuf,
    pub status: JobStatus,
    /// Why it failed, was interrupted or was lost; for a pending job, SLURM's reason.
    pub error: Option<String>,
    /// The task's stderr file (stdout is beside it, `.out`).
    pub log: PathBuf,
}

/// A submitted job array (or one re-opened from its sweep directory).
#[derive(Debug, Clone)]
pub struct SlurmArray {
    pub array_id: String,
    /// `SWEEP_DIR/slurm`.
    pub dir: PathBuf,
    /// Task `i` of the array is `tasks[i]`.
    pub tasks: Vec<ArrayTask>,
}

#[derive(Serialize, Deserialize)]
struct JobsFile {
    tasks: Vec<ArrayTask>,
}

/// How long `wait` keeps polling after it cancelled the array on an interrupt.
const CANCEL_GRACE: Duration = Duration::from_secs(60);
/// Consecutive failed polls (slurmctld restarting, a network hiccup) that `wait` rides out.
const MAX_POLL_FAILURES: u32 = 10;

/// Submits `jobs` as one job array. Writes `jobs.json`, `job.sbatch` and `submit.txt` into
/// `sweep_dir/slurm/`, runs `sbatch --parsable --array=0-(N-1)[%K] ...` and records the array
/// id in `sweep_dir/slurm/array_id`. `jobs` may be any subset of the sweep (a resume submits
/// only the jobs not completed): task `i` runs `jobs[i]`.
pub fn submit(
    cfg: &SlurmLauncherConfig,
    jobs: &[JobSpec],
    sweep_dir: &Path,
    cmd: &JobCommand,
) -> Result<SlurmArray> {
    if jobs.is_empty() {
        bail!("no jobs to submit");
    }
    let dir = absolute(&sweep_dir.join("slurm"))?;
    if let Ok(previous) = SlurmArray::open(sweep_dir) {
        let active = previous
            .poll()
            .map(|states| states.iter().filter(|s| !s.status.is_final()).count());
        if let Ok(n) = active {
            if n > 0 {
                bail!(
                    "job array {} of this sweep still has {n} job(s) queued or running; \
                     wait for it or cancel it (`scancel {}`) before submitting again",
                    previous.array_id,
                    previous.array_id
                );
            }
        }
    }
    let logs = dir.join("logs");
    let state_dir = dir.join("tasks");
    for d in [&logs, &state_dir] {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    // `array_id` + `jobs.json` describe one array: never the old id with the new jobs.
    let id_path = dir.join("array_id");
    if id_path.exists() {
        std::fs::remove_file(&id_path)
            .with_context(|| format!("removing {}", id_path.display()))?;
    }
    let cwd = absolute(&cmd.cwd)?;
    let exe = if cmd.exe.components().count() > 1 {
        absolute(&cmd.exe)?
    } else {
        cmd.exe.clone() // a bare name is looked up on the node's PATH
    };
    let tasks: Vec<ArrayTask> = jobs
        .iter()
        .enumerate()
        .map(|(task, job)| ArrayTask {
            task,
            index: job.index,
            run_dir: cwd.join(&job.run_dir),
            args: cmd.args(job),
        })
        .collect();
    crate::fsutil::write_json_atomic(
        &dir.join("jobs.json"),
        &JobsFile {
            tasks: tasks.clone(),
        },
    )?;

    // `runs/sweeps/<sweep>/<stamp>` -> `adlab-<sweep>-<stamp>`, what squeue shows.
    let name_of = |p: Option<&Path>| {
        p.and_then(Path::file_name)
            .map(|n| n.to_string_lossy().to_string())
    };
    let job_name = match (name_of(sweep_dir.parent()), name_of(Some(sweep_dir))) {
        (Some(sweep), Some(stamp)) => format!("adlab-{sweep}-{stamp}"),
        (None, Some(name)) => format!("adlab-{name}"),
        _ => "adlab-sweep".to_string(),
    };
    let script_path = dir.join("job.sbatch");
    let mut args = script::sbatch_args(cfg, tasks.len(), &job_name, &logs)?;
    args.push(script_path.display().to_string());
    let submit_line = std::iter::once("sbatch".to_string())
        .chain(args.iter().map(|a| script::shell_quote(a)))
        .collect::<Vec<_>>()
        .join(" ");
    let text = script::batch_script(
        &script::ScriptParams {
            exe: &exe,
            cwd: &cwd,
            state_dir: &state_dir,
            setup: &cfg.setup,
            submit_line: &submit_line,
        },
        &tasks,
    );
    crate::fsutil::write_atomic(&script_path, text.as_bytes())?;
    crate::fsutil::write_atomic(
        &dir.join("submit.txt"),
        format!("{submit_line}\n").as_bytes(),
    )?;

    let array_id = commands::sbatch(&args).context("submitting the sweep as a SLURM job array")?;
    crate::fsutil::write_atomic(&id_path, format!("{array_id}\n").as_bytes())?;
    tracing::info!(
        "submitted {} job(s) as SLURM array {array_id} (logs: {})",
        tasks.len(),
        logs.display()
    );
    Ok(SlurmArray {
        array_id,
        dir,
        tasks,
    })
}

/// One SLURM job array; without `launcher.wait`, the jobs are reported `running` once
/// submitted.
impl Launcher for SlurmLauncherConfig {
    fn launch(
        &self,
        jobs: &[JobSpec],
        cmd: &JobCommand,
        sweep_dir: &Path,
        _fail_fast: bool,
    ) -> Result<Vec<JobResult>> {
        let array = submit(self, jobs, sweep_dir, cmd)?;
        eprintln!(
            "submitted {} as SLURM job array {}",
            crate::logging::plural(jobs.len(), "job"),
            array.array_id
        );
        if !self.wait {
            eprintln!(
                "not waiting (launcher.wait=false); check later with `adlab sweep --resume {}` \
                 (completed jobs are not re-run)",
                sweep_dir.display()
            );
            return Ok(jobs
                .iter()
                .map(|j| JobResult {
                    index: j.index,
                    status: RunStatus::Running,
                    error: Some("submitted to SLURM; not waited for".into()),
                    log: array.dir.clone(),
                })
                .collect());
        }
        let mut reported = std::collections::HashSet::new();
        let states = array.wait(self.poll_seconds, |states| {
            for st in states.iter().filter(|st| st.status.is_final()) {
                if reported.insert(st.index) {
                    eprintln!("[{:03}] {:?} {}", st.index, st.status, st.run_dir.display());
                }
            }
        })?;
        Ok(states
            .into_iter()
            .map(|st| JobResult {
                index: st.index,
                status: match st.status {
                    JobStatus::Completed => RunStatus::Completed,
                    JobStatus::Interrupted => RunStatus::Interrupted,
                    JobStatus::Pending | JobStatus::Running => RunStatus::Running,
                    JobStatus::Failed | JobStatus::Lost => RunStatus::Failed,
                },
                error: st.error,
                log: st.log,
            })
            .collect())
    }
}

impl SlurmArray {
    /// Re-opens the array last submitted for `sweep_dir` from its files.
    pub fn open(sweep_dir: &Path) -> Result<SlurmArray> {
        let dir = absolute(&sweep_dir.join("slurm"))?;
        let id_path = dir.join("array_id");
        let array_id = std::fs::read_to_string(&id_path)
            .with_context(|| format!("reading {}", id_path.display()))?
            .trim()
            .to_string();
        let jobs_path = dir.join("jobs.json");
        let text = std::fs::read_to_string(&jobs_path)
            .with_context(|| format!("reading {}", jobs_path.display()))?;
        let jobs: JobsFile = serde_json::from_str(&text)
            .with_context(|| format!("parsing {}", jobs_path.display()))?;
        Ok(SlurmArray {
            array_id,
            dir,
            tasks: jobs.tasks,
        })
    }

    /// The stderr file of a task (stdout: same name, `.out`).
    pub fn log_path(&self, task: usize) -> PathBuf {
        self.dir
            .join("logs")
            .join(format!("{}_{task}.err", self.array_id))
    }

    fn marker(&self, task: usize, ext: &str) -> PathBuf {
        self.dir
            .join("tasks")
            .join(format!("{}_{task}.{ext}", self.array_id))
    }

    fn cancel_marker(&self) -> PathBuf {
        self.dir
            .join("tasks")
            .join(format!("{}.cancelled", self.array_id))
    }

    /// The state of every job, in task order.
    pub fn poll(&self) -> Result<Vec<JobState>> {
        // squeue first, files second: a task that is gone from the queue wrote its exit marker
        // before it left, so reading the files afterwards cannot miss it.
        let queue = commands::squeue(&self.array_id)
            .with_context(|| format!("asking SLURM about job array {}", self.array_id))?;
        let cancelled = self.cancel_marker().exists();
        Ok(self
            .tasks
            .iter()
            .map(|t| self.task_state(t, queue.get(&t.task), cancelled))
            .collect())
    }

    fn task_state(&self, t: &ArrayTask, queued: Option<&QueueEntry>, cancelled: bool) -> JobState {
        let log = self.log_path(t.task);
        let started = std::fs::metadata(self.marker(t.task, "started"))
            .and_then(|m| m.modified())
            .ok();
        let exit_code = std::fs::read_to_string(self.marker(t.task, "exit"))
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok());
        // Only a meta.json written after this task started is this task's.
        let meta = started.and_then(|since| fresh_meta(&t.run_dir, since));
        let (status, error) = classify(
            &Observed {
                started: started.is_some(),
                exit_code,
                meta: meta.as_ref().map(|m| (m.status, m.error.clone())),
                queued,
                cancelled,
                last_words: exit_code
                    .filter(|c| *c != 0 && meta.is_none())
                    .and_then(|_| last_words(&log)),
            },
            &log,
        );
        JobState {
            index: t.index,
            task: t.task,
            run_dir: t.run_dir.clone(),
            status,
            error,
            log,
        }
    }

    /// Polls every `poll_seconds` until all jobs have ended and returns their states;
    /// `on_update` sees the states after every poll that changed them. On an interrupt
    /// (`crate::interrupt::requested()`) it cancels the array and returns once the tasks are
    /// gone (or after a grace period), with the jobs that were stopped `interrupted`.
    pub fn wait(
        &self,
        poll_seconds: f64,
        mut on_update: impl FnMut(&[JobState]),
    ) -> Result<Vec<JobState>> {
        let period = Duration::from_secs_f64(poll_seconds.max(0.1));
        let mut last: Option<Vec<JobState>> = None;
        let mut failures = 0;
        let mut cancelled_at: Option<Instant> = None;
        loop {
            match self.poll() {
                Ok(states) => {
                    failures = 0;
                    if last.as_ref() != Some(&states) {
                        on_update(&states);
                    }
                    if states.iter().all(|s| s.status.is_final()) {
                        return Ok(states);
                    }
                    last = Some(states);
                }
                Err(e) if failures < MAX_POLL_FAILURES => {
                    failures += 1;
                    tracing::warn!("polling SLURM failed ({failures}/{MAX_POLL_FAILURES}): {e:#}");
                }
                Err(e) => return Err(e),
            }
            if cancelled_at.is_none() && crate::interrupt::requested() {
                tracing::warn!("interrupted: cancelling SLURM job array {}", self.array_id);
                self.cancel()?;
                cancelled_at = Some(Instant::now());
            }
            if let Some(t) = cancelled_at {
                if t.elapsed() > CANCEL_GRACE {
                    return last.context("SLURM did not answer after the array was cancelled");
                }
            }
            sleep_unless_interrupted(period, cancelled_at.is_none());
        }
    }

    /// Cancels every task of the array that has not ended (`scancel ARRAY_ID`). Running jobs
    /// get SIGTERM and end `interrupted`; pending ones never start.
    pub fn cancel(&self) -> Result<()> {
        crate::fsutil::write_atomic(&self.cancel_marker(), b"cancelled by adlab\n")?;
        commands::scancel(&self.array_id)
    }
}

/// What the launcher can see of one task.
struct Observed<'a> {
    started: bool,
    exit_code: Option<i32>,
    /// `meta.json` of the run directory, if written since the task started.
    meta: Option<(RunStatus, Option<String>)>,
    queued: Option<&'a QueueEntry>,
    cancelled: bool,
    /// The end of the task's stderr (what adlab said before it gave up).
    last_words: Option<String>,
}

/// Job status from what is observed (pure, so each case is tested).
fn classify(o: &Observed, log: &Path) -> (JobStatus, Option<String>) {
    let see = |what: String| Some(format!("{what} (see {})", log.display()));
    let from_meta =
        |status: RunStatus, error: &Option<String>| -> Option<(JobStatus, Option<String>)> {
            match status {
                RunStatus::Completed => Some((JobStatus::Completed, None)),
                RunStatus::Failed => Some((
                    JobStatus::Failed,
                    error.clone().or_else(|| see("failed".into())),
                )),
                RunStatus::Interrupted => Some((
                    JobStatus::Interrupted,
                    error.clone().or_else(|| Some("interrupted".into())),
                )),
                RunStatus::Running | RunStatus::Lost => None,
            }
        };
    if let Some(code) = o.exit_code {
        return match &o.meta {
            Some((RunStatus::Completed, _)) if code != 0 => (
                JobStatus::Failed,
                see(format!(
                    "the run completed but adlab exited with status {code}"
                )),
            ),
            Some((status, error)) if from_meta(*status, error).is_some() => {
                from_meta(*status, error).unwrap()
            }
            // Cancelled before adlab recorded an end (or before it even wrote meta.json).
            _ if o.cancelled => (
                JobStatus::Interrupted,
                Some("cancelled before adlab could record the end of the run".into()),
            ),
            Some((RunStatus::Running, _)) => (
                JobStatus::Failed,
                see(format!(
                    "adlab was killed (exit status {code}) while the run was going"
                )),
            ),
            _ if code == 0 => (
                JobStatus::Failed,
                see("adlab exited successfully without recording the run in meta.json".into()),
            ),
            _ => (
                JobStatus::Failed,
                see(format!(
                    "adlab exited with status {code} before the run started{}",
                    o.last_words
                        .as_deref()
                        .map(|w| format!(": {w}"))
                        .unwrap_or_default()
                )),
            ),
        };
    }
    let ended_state = match o.queued {
        Some(q) => match q.state.as_str() {
            "PENDING" | "CONFIGURING" | "REQUEUED" | "REQUEUE_HOLD" | "REQUEUE_FED"
            | "RESV_DEL_HOLD" | "SPECIAL_EXIT" => {
                let reason = (q.reason != "None" && !q.reason.is_empty())
                    .then(|| format!("pending: {}", q.reason));
                return (JobStatus::Pending, reason);
            }
            "RUNNING" | "COMPLETING" | "SUSPENDED" | "STOPPED" | "SIGNALING" | "STAGE_OUT"
            | "RESIZING" => return (JobStatus::Running, None),
            other => Some(other),
        },
        None => None,
    };
    // The task is no longer running and recorded no exit status: its shell was killed.
    if let Some((status, error)) = &o.meta {
        if let Some(r) = from_meta(*status, error) {
            return r;
        }
    }
    if o.cancelled || ended_state == Some("CANCELLED") {
        let when = if o.started {
            "while running"
        } else {
            "before it started"
        };
        return (JobStatus::Interrupted, Some(format!("cancelled {when}")));
    }
    match ended_state {
        Some("TIMEOUT") => (
            JobStatus::Failed,
            see("SLURM time limit reached (launcher.time_limit)".into()),
        ),
        Some("OUT_OF_MEMORY") => (
            JobStatus::Failed,
            see("out of memory (launcher.mem)".into()),
        ),
        Some(state) => (
            JobStatus::Lost,
            see(format!("SLURM ended the task as {state}")),
        ),
        None => (
            JobStatus::Lost,
            see("the task left the SLURM queue without recording an exit status".into()),
        ),
    }
}

/// The last non-empty line of a log, without terminal colour codes, at most 500 characters.
fn last_words(log: &Path) -> Option<String> {
    let text = std::fs::read_to_string(log).ok()?;
    let line = text.lines().rev().find(|l| !l.trim().is_empty())?;
    let mut plain = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // A CSI sequence: ESC [ parameters final-letter.
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    Some(plain.trim().chars().take(500).collect())
}

/// The run's `meta.json` if it was written at or after `since`.
fn fresh_meta(run_dir: &Path, since: std::time::SystemTime) -> Option<RunMeta> {
    let path = run_dir.join("meta.json");
    let modified = std::fs::metadata(&path).and_then(|m| m.modified()).ok()?;
    if modified < since {
        return None;
    }
    serde_json::from_str(&std::fs::read_to_string(&path).ok()?).ok()
}

fn absolute(p: &Path) -> Result<PathBuf> {
    if p.is_absolute() {
        Ok(p.to_path_buf())
    } else {
        Ok(std::env::current_dir()
            .context("reading the current directory")?
            .join(p))
    }
}

/// Sleeps `d`, waking early on an interrupt when `interruptible`.
fn sleep_unless_interrupted(d: Duration, interruptible: bool) {
    let end = Instant::now() + d;
    while Instant::now() < end {
        if interruptible && crate::interrupt::requested() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100).min(end - Instant::now()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(state: &str, reason: &str) -> QueueEntry {
        QueueEntry {
            state: state.into(),
            reason: reason.into(),
        }
    }

    fn obs<'a>(
        started: bool,
        exit_code: Option<i32>,
        meta: Option<RunStatus>,
        queued: Option<&'a QueueEntry>,
    ) -> Observed<'a> {
        Observed {
            started,
            exit_code,
            meta: meta.map(|s| (s, (s == RunStatus::Failed).then(|| "boom".to_string()))),
            queued,
            cancelled: false,
            last_words: None,
        }
    }

    #[test]
    fn last_words_are_the_last_line_without_colours() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("1_0.err");
        std::fs::write(&log, "first\n\u{1b}[31mERROR\u{1b}[0m bad key `x`\n\n").unwrap();
        assert_eq!(last_words(&log).unwrap(), "ERROR bad key `x`");
        assert_eq!(last_words(&dir.path().join("missing")), None);
    }

    fn status(o: &Observed) -> (JobStatus, Option<String>) {
        classify(o, Path::new("/s/slurm/logs/7_0.err"))
    }

    #[test]
    fn queued_tasks_are_pending_or_running() {
        let p = q("PENDING", "JobArrayTaskLimit");
        assert_eq!(
            status(&obs(false, None, None, Some(&p))),
            (
                JobStatus::Pending,
                Some("pending: JobArrayTaskLimit".into())
            )
        );
        let r = q("RUNNING", "None");
        assert_eq!(
            status(&obs(true, None, None, Some(&r))).0,
            JobStatus::Running
        );
        // A previous attempt's meta.json is not read for a task that has not started.
        assert_eq!(
            status(&obs(false, None, None, Some(&p))).0,
            JobStatus::Pending
        );
    }

    #[test]
    fn the_run_record_decides_how_an_ended_task_went() {
        assert_eq!(
            status(&obs(true, Some(0), Some(RunStatus::Completed), None)),
            (JobStatus::Completed, None)
        );
        assert_eq!(
            status(&obs(true, Some(1), Some(RunStatus::Failed), None)),
            (JobStatus::Failed, Some("boom".into()))
        );
        assert_eq!(
            status(&obs(true, Some(130), Some(RunStatus::Interrupted), None)).0,
            JobStatus::Interrupted
        );
        // Killed hard while the run was going.
        let (s, e) = status(&obs(true, Some(137), Some(RunStatus::Running), None));
        assert_eq!(s, JobStatus::Failed);
        assert!(e.unwrap().contains("7_0.err"));
        // ... unless we cancelled it, even before adlab wrote its meta.json.
        for meta in [Some(RunStatus::Running), None] {
            let mut o = obs(true, Some(143), meta, None);
            o.cancelled = true;
            assert_eq!(status(&o).0, JobStatus::Interrupted);
        }
        // A bad override: adlab stops before it writes meta.json, saying why on stderr.
        let mut o = obs(true, Some(2), None, None);
        o.last_words = Some("error: unknown key `model.d_modle`".into());
        let (s, e) = status(&o);
        assert_eq!(s, JobStatus::Failed);
        let e = e.unwrap();
        assert!(e.contains("status 2") && e.contains("model.d_modle"), "{e}");
    }

    #[test]
    fn tasks_that_vanish_are_lost_cancelled_or_timed_out() {
        let (s, e) = status(&obs(true, None, None, None));
        assert_eq!(s, JobStatus::Lost);
        assert!(e.unwrap().contains("/s/slurm/logs/7_0.err"));
        let c = q("CANCELLED", "None");
        assert_eq!(
            status(&obs(false, None, None, Some(&c))).0,
            JobStatus::Interrupted
        );
        let mut o = obs(false, None, None, None);
        o.cancelled = true;
        assert_eq!(
            status(&o),
            (
                JobStatus::Interrupted,
                Some("cancelled before it started".into())
            )
        );
        let t = q("TIMEOUT", "None");
        assert_eq!(
            status(&obs(true, None, None, Some(&t))).0,
            JobStatus::Failed
        );
        let n = q("NODE_FAIL", "None");
        assert_eq!(status(&obs(true, None, None, Some(&n))).0, JobStatus::Lost);
    }
}
