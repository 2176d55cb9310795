//! The pure half of the SLURM launcher: sbatch flags from the launcher config, shell quoting,
//! and the batch script that maps an array task to its job. No process is started here, so
//! all of it is unit-tested.

use super::ArrayTask;
use crate::launch::config::SlurmLauncherConfig;
use anyhow::{bail, Result};
use std::path::Path;

/// Quotes one word for bash so that it reaches the program byte for byte: words made only of
/// characters that the shell never interprets stay as they are; anything else is put in single
/// quotes (where nothing is special except `'` itself, written `'\''`).
pub fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word.chars().all(|c| {
            c.is_ascii_alphanumeric()
                || matches!(c, '_' | '-' | '.' | '/' | ':' | '=' | '@' | '+' | ',' | '%')
        });
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// `dir/file_pattern` for sbatch's `--output`: `%` in `dir` is escaped (sbatch replaces `%A`,
/// `%a`, ...), the pattern's own `%A_%a` is kept.
fn log_pattern(dir: &Path, file_pattern: &str) -> String {
    let dir = dir.display().to_string().replace('%', "%%");
    format!("{}/{file_pattern}", dir.trim_end_matches('/'))
}

/// The sbatch flags for an array of `n_tasks` tasks (without the script path).
/// `log_dir` receives `%A_%a.out` / `%A_%a.err` (array id, task id).
pub fn sbatch_args(
    cfg: &SlurmLauncherConfig,
    n_tasks: usize,
    job_name: &str,
    log_dir: &Path,
) -> Result<Vec<String>> {
    if n_tasks == 0 {
        bail!("a SLURM job array needs at least one job");
    }
    let mut array = format!("--array=0-{}", n_tasks - 1);
    match cfg.array_parallelism {
        Some(0) => bail!("launcher.array_parallelism must be at least 1 (or null for no limit)"),
        Some(k) => array.push_str(&format!("%{k}")),
        None => {}
    }
    let mut args = vec![
        "--parsable".to_string(),
        array,
        format!("--job-name={job_name}"),
        format!("--output={}", log_pattern(log_dir, "%A_%a.out")),
        format!("--error={}", log_pattern(log_dir, "%A_%a.err")),
        format!("--time={}", cfg.time_limit),
        format!("--cpus-per-task={}", cfg.cpus_per_task),
    ];
    let optional = [
        ("partition", cfg.partition.clone()),
        ("mem", cfg.mem.clone()),
        ("gres", cfg.gres.clone()),
        ("gpus-per-task", cfg.gpus_per_task.map(|g| g.to_string())),
        ("account", cfg.account.clone()),
        ("qos", cfg.qos.clone()),
    ];
    for (flag, value) in optional {
        if let Some(v) = value {
            args.push(format!("--{flag}={v}"));
        }
    }
    for (key, value) in &cfg.additional_parameters {
        // submitit's convention: `{mail_type: END}` -> `--mail-type=END`.
        let flag = key.replace('_', "-");
        if flag.is_empty() || flag.starts_with('-') {
            bail!("launcher.additional_parameters: `{key}` is not an sbatch option name");
        }
        match value {
            serde_json::Value::Null | serde_json::Value::Bool(false) => {}
            serde_json::Value::Bool(true) => args.push(format!("--{flag}")),
            serde_json::Value::String(s) => args.push(format!("--{flag}={s}")),
            serde_json::Value::Number(n) => args.push(format!("--{flag}={n}")),
            other => bail!(
                "launcher.additional_parameters.{key}: expected a string, number or bool, got `{other}`"
            ),
        }
    }
    Ok(args)
}

/// What the batch script needs to know besides the tasks.
pub struct ScriptParams<'a> {
    /// The adlab executable the tasks run.
    pub exe: &'a Path,
    /// Directory each task `cd`s into before running.
    pub cwd: &'a Path,
    /// Where the task writes its `<array>_<task>.started` / `.exit` markers.
    pub state_dir: &'a Path,
    /// Shell lines run before the job (`module load ...`).
    pub setup: &'a [String],
    /// The sbatch command line, recorded in a comment for whoever reads the script.
    pub submit_line: &'a str,
}

/// The batch script of the array: task `$SLURM_ARRAY_TASK_ID` runs `exe ARGS...` of its job,
/// with markers before and after so that the launcher knows it started and how it ended.
pub fn batch_script(p: &ScriptParams, tasks: &[ArrayTask]) -> String {
    let q = |s: &str| shell_quote(s);
    let mut s = String::new();
    s.push_str("#!/bin/bash\n");
    s.push_str("# One task of an adlab sweep job array, written by adlab.\n");
    s.push_str("# Array task -> sweep job: the case below, and jobs.json next to this file.\n");
    s.push_str(&format!(
        "# Submitted with: {}\n",
        p.submit_line.replace('\n', " ")
    ));
    s.push_str("set -u\n");
    s.push_str(&format!(
        "state_dir={}\n",
        q(&p.state_dir.display().to_string())
    ));
    s.push_str("task=${SLURM_ARRAY_TASK_ID:?this script runs as a task of a SLURM job array}\n");
    s.push_str("marker=\"$state_dir/${SLURM_ARRAY_JOB_ID:?}_$task\"\n");
    s.push_str("case \"$task\" in\n");
    // Always quoted: a bare `a=b` as a command's first word would be an assignment.
    let exe = format!("'{}'", p.exe.display().to_string().replace('\'', r"'\''"));
    for t in tasks {
        let words: Vec<String> = t.args.iter().map(|a| q(a)).collect();
        s.push_str(&format!(
            "{}) job={}; cmd=({} {}) ;;\n",
            t.task,
            t.index,
            exe,
            words.join(" ")
        ));
    }
    s.push_str("*) echo \"adlab: array task $task has no job in this sweep\" >&2; exit 2 ;;\n");
    s.push_str("esac\n");
    s.push_str(
        "printf 'job=%s\\nhost=%s\\nslurm_job_id=%s\\nstart=%s\\n' \"$job\" \"$(hostname)\" \"${SLURM_JOB_ID:-}\" \"$(date -Is)\" >\"$marker.started\"\n",
    );
    if !p.setup.is_empty() {
        s.push_str("# launcher.setup\n");
        for line in p.setup {
            s.push_str(line);
            s.push('\n');
        }
    }
    s.push_str(
        "# scancel and the time limit send SIGTERM to every process of the task: adlab marks its\n\
         # run `interrupted` and exits; the shell waits for it so that its exit status is kept.\n",
    );
    s.push_str("trap 'echo \"adlab: SIGTERM received, waiting for the job to stop\" >&2' TERM\n");
    s.push_str(&format!(
        "if cd {}; then\n    \"${{cmd[@]}}\"\n    code=$?\nelse\n    code=1\nfi\n",
        q(&p.cwd.display().to_string())
    ));
    s.push_str("printf '%s\\n' \"$code\" >\"$marker.exit.tmp\" && mv -f \"$marker.exit.tmp\" \"$marker.exit\"\n");
    s.push_str("exit \"$code\"\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    fn cfg() -> SlurmLauncherConfig {
        SlurmLauncherConfig {
            partition: None,
            time_limit: "01:00:00".into(),
            cpus_per_task: 1,
            mem: None,
            gpus_per_task: None,
            gres: None,
            account: None,
            qos: None,
            array_parallelism: None,
            additional_parameters: BTreeMap::new(),
            setup: vec![],
            wait: true,
            poll_seconds: 2.0,
        }
    }

    #[test]
    fn minimal_config_gives_array_logs_time_and_cpus() {
        let args = sbatch_args(&cfg(), 3, "adlab-x", Path::new("/s/slurm/logs")).unwrap();
        assert_eq!(
            args,
            [
                "--parsable",
                "--array=0-2",
                "--job-name=adlab-x",
                "--output=/s/slurm/logs/%A_%a.out",
                "--error=/s/slurm/logs/%A_%a.err",
                "--time=01:00:00",
                "--cpus-per-task=1",
            ]
        );
    }

    #[test]
    fn every_config_key_maps_to_its_flag() {
        let mut c = cfg();
        c.partition = Some("gpu".into());
        c.mem = Some("4G".into());
        c.gres = Some("gpu:a100:1".into());
        c.gpus_per_task = Some(2);
        c.account = Some("lab".into());
        c.qos = Some("high".into());
        c.cpus_per_task = 8;
        c.time_limit = "2-00:00:00".into();
        c.array_parallelism = Some(4);
        c.additional_parameters = BTreeMap::from([
            ("constraint".to_string(), serde_json::json!("v100|a100")),
            ("mail_type".to_string(), serde_json::json!("END")),
            ("nice".to_string(), serde_json::json!(10)),
            ("exclusive".to_string(), serde_json::json!(true)),
            ("requeue".to_string(), serde_json::json!(false)),
            ("comment".to_string(), serde_json::Value::Null),
        ]);
        let args = sbatch_args(&c, 10, "n", Path::new("/l")).unwrap();
        for want in [
            "--array=0-9%4",
            "--partition=gpu",
            "--mem=4G",
            "--gres=gpu:a100:1",
            "--gpus-per-task=2",
            "--account=lab",
            "--qos=high",
            "--cpus-per-task=8",
            "--time=2-00:00:00",
            "--constraint=v100|a100",
            "--mail-type=END",
            "--nice=10",
            "--exclusive",
        ] {
            assert!(
                args.iter().any(|a| a == want),
                "{want} missing from {args:?}"
            );
        }
        assert!(!args
            .iter()
            .any(|a| a.contains("requeue") || a.contains("comment")));
    }

    #[test]
    fn bad_configs_are_errors_not_odd_flags() {
        let mut c = cfg();
        c.array_parallelism = Some(0);
        assert!(sbatch_args(&c, 2, "n", Path::new("/l")).is_err());
        assert!(sbatch_args(&cfg(), 0, "n", Path::new("/l")).is_err());
        let mut c = cfg();
        c.additional_parameters
            .insert("x".into(), serde_json::json!(["a"]));
        let e = sbatch_args(&c, 1, "n", Path::new("/l")).unwrap_err();
        assert!(e.to_string().contains("additional_parameters.x"), "{e}");
    }

    #[test]
    fn percent_in_the_log_dir_is_not_a_pattern() {
        let args = sbatch_args(&cfg(), 1, "n", Path::new("/a%b")).unwrap();
        assert!(
            args.contains(&"--output=/a%%b/%A_%a.out".to_string()),
            "{args:?}"
        );
    }

    #[test]
    fn quoting_leaves_plain_words_and_wraps_the_rest() {
        assert_eq!(shell_quote("model.d_model=32"), "model.d_model=32");
        assert_eq!(shell_quote("+key=a,b"), "+key=a,b");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote("$HOME"), "'$HOME'");
        assert_eq!(shell_quote("~x"), "'~x'");
        assert_eq!(shell_quote("[0]=x"), "'[0]=x'");
    }

    /// The generated script, run by bash as SLURM would, hands every argument over unchanged
    /// and records start and exit markers.
    #[test]
    fn the_script_passes_hostile_arguments_through_bash_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("argv");
        // A stand-in for adlab that writes its arguments NUL-separated.
        let exe = dir.path().join("fake adlab's $exe");
        std::fs::write(
            &exe,
            format!(
                "#!/bin/bash\nprintf '%s\\0' \"$@\" > {}\nexit 3\n",
                shell_quote(&out.display().to_string())
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        let hostile: Vec<String> = [
            "name='quoted value'",
            "note=\"double\" and spaces",
            "x=$(touch /tmp/adlab-pwned)",
            "y=`id` ; rm -rf / & |",
            "z=choice(a, b)",
            "w=a\nnewline\ttab",
            "~tilde",
            "[1]=notindex",
            "*glob?",
            "back\\slash",
            "",
            "ünïcødé",
            "!history",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let mut args = vec!["run".to_string(), "--run-dir".into(), "/r/0".into()];
        args.extend(hostile);
        let tasks = vec![
            ArrayTask {
                task: 0,
                index: 7,
                run_dir: PathBuf::from("/r/7"),
                args: vec!["run".into()],
            },
            ArrayTask {
                task: 1,
                index: 9,
                run_dir: PathBuf::from("/r/9"),
                args: args.clone(),
            },
        ];
        let state = dir.path().join("state dir");
        std::fs::create_dir(&state).unwrap();
        let setup = vec!["export ADLAB_SETUP_RAN=1".to_string()];
        let script = batch_script(
            &ScriptParams {
                exe: &exe,
                cwd: dir.path(),
                state_dir: &state,
                setup: &setup,
                submit_line: "sbatch ...",
            },
            &tasks,
        );
        let path = dir.path().join("job.sbatch");
        std::fs::write(&path, &script).unwrap();
        let status = std::process::Command::new("bash")
            .arg(&path)
            .env("SLURM_ARRAY_TASK_ID", "1")
            .env("SLURM_ARRAY_JOB_ID", "55")
            .status()
            .unwrap();
        assert_eq!(status.code(), Some(3), "{script}");
        let got = std::fs::read(&out).unwrap();
        let got: Vec<String> = got
            .split(|b| *b == 0)
            .map(|s| String::from_utf8(s.to_vec()).unwrap())
            .collect();
        assert_eq!(&got[..got.len() - 1], &args[..]);
        assert_eq!(
            std::fs::read_to_string(state.join("55_1.exit")).unwrap(),
            "3\n"
        );
        let started = std::fs::read_to_string(state.join("55_1.started")).unwrap();
        assert!(started.starts_with("job=9\n"), "{started}");

        // A task id with no job fails loudly instead of running something else.
        let status = std::process::Command::new("bash")
            .arg(&path)
            .env("SLURM_ARRAY_TASK_ID", "2")
            .env("SLURM_ARRAY_JOB_ID", "55")
            .status()
            .unwrap();
        assert_eq!(status.code(), Some(2));
    }
}
