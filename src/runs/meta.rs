//! `meta.json`: who ran what, where, when, and how it ended. Status moves
//! `running` -> `completed` | `failed` | `interrupted`; a failure keeps its error text.
//! `lost` is never written: readers show it for a `running` run whose process is gone
//! (see [`super::lock::effective_status`]).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Running,
    Completed,
    Failed,
    Interrupted,
    /// Recorded as `running`, but the process died without recording its end (SIGKILL, the
    /// OOM killer, a power cut).
    Lost,
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self {
            RunStatus::Running => "running",
            RunStatus::Completed => "completed",
            RunStatus::Failed => "failed",
            RunStatus::Interrupted => "interrupted",
            RunStatus::Lost => "lost",
        };
        f.write_str(s)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunMeta {
    pub adlab_version: String,
    pub git_commit: Option<String>,
    pub host: String,
    pub pid: u32,
    pub command: Vec<String>,
    pub cwd: String,
    pub device: Option<String>,
    pub start_time: String,
    pub end_time: Option<String>,
    pub status: RunStatus,
    pub error: Option<String>,
    /// How many times this run directory was (re)started.
    #[serde(default)]
    pub attempts: u32,
}

impl RunMeta {
    /// A new `running` record for this process.
    pub fn start(device: Option<String>) -> RunMeta {
        let cwd = std::env::current_dir().unwrap_or_default();
        RunMeta {
            adlab_version: env!("CARGO_PKG_VERSION").to_string(),
            git_commit: git_commit(&cwd),
            host: hostname::get()
                .map(|h| h.to_string_lossy().to_string())
                .unwrap_or_default(),
            pid: std::process::id(),
            command: std::env::args().collect(),
            cwd: cwd.display().to_string(),
            device,
            start_time: now(),
            end_time: None,
            status: RunStatus::Running,
            error: None,
            attempts: 1,
        }
    }

    /// Marks the end of the run.
    pub fn finish(&mut self, status: RunStatus, error: Option<String>) {
        self.status = status;
        self.error = error;
        self.end_time = Some(now());
    }
}

pub fn now() -> String {
    chrono::Local::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, false)
}

/// The commit of the git checkout at `dir`, if there is one (and git is installed).
fn git_commit(dir: &std::path::Path) -> Option<String> {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["rev-parse", "HEAD"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
}
