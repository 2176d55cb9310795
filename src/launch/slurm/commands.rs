//! Running SLURM's client commands (`sbatch`, `squeue`, `scancel`) and reading their output.
//! Every failure names the command and carries its stderr, and a missing command says that
//! this machine is not a SLURM submit host.

use anyhow::{anyhow, bail, Context, Result};
use std::collections::HashMap;
use std::process::{Command, Output};

/// Runs a SLURM client command and returns its output, whatever the exit status.
fn run(program: &str, args: &[String]) -> Result<Output> {
    Command::new(program).args(args).output().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            anyhow!(
                "`{program}` was not found on PATH: the slurm launcher must run on a SLURM \
                 submit host (it needs sbatch, squeue and scancel); use `launcher=local` elsewhere"
            )
        } else {
            anyhow!(e).context(format!("starting `{program}`"))
        }
    })
}

fn describe(program: &str, args: &[String], out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let text = if stderr.trim().is_empty() {
        stdout.trim()
    } else {
        stderr.trim()
    };
    format!(
        "`{program} {}` failed ({}): {}",
        args.join(" "),
        out.status,
        if text.is_empty() { "no output" } else { text }
    )
}

/// `sbatch ARGS... SCRIPT` with `--parsable`: returns the job (array) id.
pub fn sbatch(args: &[String]) -> Result<String> {
    let out = run("sbatch", args)?;
    if !out.status.success() {
        bail!("{}", describe("sbatch", args, &out));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    // `--parsable` prints `id` or `id;cluster`.
    let id = stdout
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .and_then(|l| l.split(';').next())
        .unwrap_or("")
        .to_string();
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) {
        bail!("sbatch printed no job id (stdout: {:?})", stdout.trim());
    }
    Ok(id)
}

/// What squeue says about one array task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueEntry {
    /// SLURM's job state: `PENDING`, `RUNNING`, `COMPLETED`, `CANCELLED`, `TIMEOUT`, ...
    pub state: String,
    /// Why it is pending (`Resources`, `JobArrayTaskLimit`, ...), or `None`.
    pub reason: String,
}

/// The tasks of array `array_id` that slurmctld still knows about (finished tasks stay listed
/// for `MinJobAge` seconds, then disappear), by task id.
pub fn squeue(array_id: &str) -> Result<HashMap<usize, QueueEntry>> {
    let args: Vec<String> = [
        "--noheader",
        "--array",
        "--states=all",
        &format!("--jobs={array_id}"),
        "--format=%K|%T|%r",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let out = run("squeue", &args)?;
    if !out.status.success() {
        // An array that slurmctld has forgotten (all tasks ended long enough ago).
        if String::from_utf8_lossy(&out.stderr).contains("Invalid job id") {
            return Ok(HashMap::new());
        }
        bail!("{}", describe("squeue", &args, &out));
    }
    Ok(parse_squeue(&String::from_utf8_lossy(&out.stdout)))
}

/// Parses `%K|%T|%r` lines; lines that are not one task (a pending range that squeue did not
/// expand) are skipped.
pub fn parse_squeue(text: &str) -> HashMap<usize, QueueEntry> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.trim().splitn(3, '|');
            let task = parts.next()?.trim().parse::<usize>().ok()?;
            let state = parts.next()?.trim().to_string();
            let reason = parts.next().unwrap_or("").trim().to_string();
            Some((task, QueueEntry { state, reason }))
        })
        .collect()
}

/// `scancel ARRAY_ID`; an array slurmctld no longer knows is already over, not an error.
pub fn scancel(array_id: &str) -> Result<()> {
    let args = vec![array_id.to_string()];
    let out = run("scancel", &args).context("cancelling the job array")?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stderr.contains("Invalid job id") || stderr.contains("already completing or completed") {
        return Ok(());
    }
    if !out.status.success() {
        bail!("{}", describe("scancel", &args, &out));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_command_says_this_is_not_a_slurm_host() {
        let e = run("adlab-test-no-such-sbatch", &[])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("not found on PATH") && e.contains("launcher=local"),
            "{e}"
        );
    }

    #[test]
    fn a_failing_command_shows_its_stderr() {
        let args = vec![
            "-c".to_string(),
            "echo 'sbatch: error: Invalid partition' >&2; exit 1".into(),
        ];
        let out = run("bash", &args).unwrap();
        let e = describe("sbatch", &args, &out);
        assert!(
            e.contains("Invalid partition") && e.contains("exit status: 1"),
            "{e}"
        );
    }

    #[test]
    fn squeue_lines_map_task_ids_to_states() {
        let got = parse_squeue("0|RUNNING|None\n1|PENDING|JobArrayTaskLimit\n[2-5%2]|PENDING|x\n");
        assert_eq!(got.len(), 2);
        assert_eq!(got[&0].state, "RUNNING");
        assert_eq!(got[&1].reason, "JobArrayTaskLimit");
    }
}
