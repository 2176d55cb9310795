//! The SLURM launcher against a real cluster: a one-node slurmctld + slurmd on localhost,
//! started by `.ci/slurm-cluster.sh` when it is not already up. These tests fail (they never
//! skip) when no cluster can be reached: the launcher is only tested if SLURM really runs it.

mod common;
use adlab::launch::config::SlurmLauncherConfig;
use adlab::launch::slurm::{self, JobStatus, SlurmArray};
use common::slurm::*;
use common::*;
use std::time::{Duration, Instant};

#[test]
fn a_sweep_array_runs_real_training_jobs_and_reports_the_failed_one() {
    cluster();
    let s = Scratch::new();
    let sweep = s.path().join("sweep");
    // A subset of a sweep (as a resume submits): array tasks 0,1,2 run jobs 0, 2 and 5.
    // Job 2's name has what a shell would mangle: quotes, parentheses, `$`, spaces.
    let hostile_name = "tiny (slurm) \"$HOME\" `id`; it's";
    let jobs = vec![
        job(&s, 0, &["seed=1"]),
        job(
            &s,
            2,
            &[
                "seed=2",
                &format!("name='{}'", hostile_name.replace('\'', "\\'")),
            ],
        ),
        job(&s, 5, &["device=cuda:0"]),
        job(&s, 6, &["model.d_modle=32"]),
    ];
    let array = slurm::submit(&launcher(), &jobs, &sweep, &command(&s)).unwrap();
    assert!(array.array_id.chars().all(|c| c.is_ascii_digit()));
    assert_eq!(
        std::fs::read_to_string(sweep.join("slurm/array_id"))
            .unwrap()
            .trim(),
        array.array_id
    );

    let states = wait_at_most(&array, Duration::from_secs(300));
    if std::env::var("KEEPDBG").is_ok() {
        let _ = std::process::Command::new("cp")
            .arg("-a")
            .arg(s.path())
            .arg("/tmp/slurmdbg")
            .status();
    }
    let summary: Vec<_> = states.iter().map(|j| (j.index, j.status)).collect();
    assert_eq!(
        summary,
        [
            (0, JobStatus::Completed),
            (2, JobStatus::Completed),
            (5, JobStatus::Failed),
            (6, JobStatus::Failed)
        ],
        "{states:#?}"
    );
    for j in &states[..2] {
        let csv = std::fs::read_to_string(j.run_dir.join("metrics.csv")).unwrap();
        assert!(csv.lines().count() > 1, "{csv}");
        assert_eq!(
            read_json(&j.run_dir.join("meta.json"))["status"],
            "completed"
        );
    }
    let config = std::fs::read_to_string(states[1].run_dir.join("config.yaml")).unwrap();
    let name_line = config.lines().find(|l| l.starts_with("name:")).unwrap();
    let name: String = serde_yaml_ng::from_str::<serde_json::Value>(name_line).unwrap()["name"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(name, hostile_name);

    let failed = &states[2];
    let error = failed.error.as_deref().unwrap();
    assert!(error.contains("cuda:0"), "{error}");
    assert_eq!(
        read_json(&failed.run_dir.join("meta.json"))["status"],
        "failed"
    );
    assert!(failed.log.exists(), "{}", failed.log.display());
    assert!(failed.log.starts_with(sweep.join("slurm/logs")));

    // A bad override stops adlab before the run starts; its complaint is the error.
    let error = states[3].error.as_deref().unwrap();
    assert!(
        error.contains("d_modle") && error.contains("_3.err"),
        "{error}"
    );

    // Re-opened from its files, the array tells the same story.
    let reopened = SlurmArray::open(&sweep).unwrap();
    assert_eq!(reopened.poll().unwrap(), states);

    // A resume submits only what did not complete: job 5 again, now on the CPU. Its run
    // directory still says `failed` from the first array; that is not the new task's state.
    let again = slurm::submit(
        &launcher(),
        &[job(&s, 5, &["device=cpu"])],
        &sweep,
        &command(&s),
    )
    .unwrap();
    assert_ne!(again.array_id, array.array_id);
    let first_look = again.poll().unwrap();
    assert_ne!(first_look[0].status, JobStatus::Failed, "{first_look:#?}");
    let states = wait_at_most(&again, Duration::from_secs(300));
    assert_eq!(
        (states[0].task, states[0].index, states[0].status),
        (0, 5, JobStatus::Completed),
        "{states:#?}"
    );
    assert_eq!(SlurmArray::open(&sweep).unwrap().array_id, again.array_id);
}

#[test]
fn cancelling_stops_the_running_job_and_the_queued_ones() {
    cluster();
    let s = Scratch::new();
    let sweep = s.path().join("sweep");
    let cfg = SlurmLauncherConfig {
        array_parallelism: Some(1), // the second job stays queued behind the first
        ..launcher()
    };
    let jobs = vec![
        job(&s, 0, &["train.steps=1000000"]),
        job(&s, 1, &["train.steps=1000000"]),
    ];
    let array = slurm::submit(&cfg, &jobs, &sweep, &command(&s)).unwrap();

    // Wait until the first job really trains (its run has a meta.json of its own).
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let states = array.poll().unwrap();
        if states[0].status == JobStatus::Running && states[0].run_dir.join("meta.json").exists() {
            assert_eq!(states[1].status, JobStatus::Pending, "{states:#?}");
            break;
        }
        assert!(Instant::now() < deadline, "never started: {states:#?}");
        std::thread::sleep(Duration::from_millis(300));
    }

    // A second array for the same sweep while this one runs would race it for the run dirs.
    let err = slurm::submit(&cfg, &jobs, &sweep, &command(&s)).unwrap_err();
    assert!(err.to_string().contains("still has"), "{err:#}");

    array.cancel().unwrap();
    let states = wait_at_most(&array, Duration::from_secs(120));
    assert!(
        states.iter().all(|j| j.status == JobStatus::Interrupted),
        "{states:#?}"
    );
    assert_eq!(
        read_json(&states[0].run_dir.join("meta.json"))["status"],
        "interrupted"
    );
    assert_eq!(
        states[1].error.as_deref(),
        Some("cancelled before it started")
    );
}

/// Long after an array ended, slurmctld forgets it (`MinJobAge`): the state then comes from the
/// files alone, and a task that never recorded its end is `lost`, pointing at its log.
#[test]
fn an_array_slurm_has_forgotten_is_read_from_its_files() {
    cluster();
    let s = Scratch::new();
    let dir = s.path().join("sweep/slurm");
    std::fs::create_dir_all(dir.join("tasks")).unwrap();
    let run_dir = |i: usize| s.path().join(format!("sweep/{i:03}"));
    let array = SlurmArray {
        array_id: "987654321".into(), // no such job
        dir: dir.clone(),
        tasks: (0..2)
            .map(|i| slurm::ArrayTask {
                task: i,
                index: i,
                run_dir: run_dir(i),
                args: vec![],
            })
            .collect(),
    };
    // Task 0 ran to the end; task 1 left no trace.
    std::fs::write(dir.join("tasks/987654321_0.started"), "").unwrap();
    std::thread::sleep(Duration::from_millis(20));
    std::fs::create_dir_all(run_dir(0)).unwrap();
    std::fs::write(
        run_dir(0).join("meta.json"),
        serde_json::to_string(&adlab::runs::RunMeta {
            status: adlab::runs::RunStatus::Completed,
            ..adlab::runs::RunMeta::start(None)
        })
        .unwrap(),
    )
    .unwrap();
    std::fs::write(dir.join("tasks/987654321_0.exit"), "0\n").unwrap();

    let states = array.poll().unwrap();
    assert_eq!(states[0].status, JobStatus::Completed, "{states:#?}");
    assert_eq!(states[1].status, JobStatus::Lost, "{states:#?}");
    let error = states[1].error.as_deref().unwrap();
    assert!(error.contains("987654321_1.err"), "{error}");
}

#[test]
fn adlab_sweep_with_the_slurm_launcher_runs_the_jobs_as_an_array() {
    cluster();
    let s = Scratch::new();
    let mut args: Vec<String> = vec![
        "run".into(),
        "-m".into(),
        "launcher=slurm".into(),
        "launcher.poll_seconds=0.2".into(),
    ];
    args.push("device=cpu,cuda:0".into());
    args.extend(TINY_RUN.iter().map(|a| a.to_string()));
    let out = s
        .adlab_with_paths(
            &args[0],
            &args[1..].iter().map(String::as_str).collect::<Vec<_>>(),
        )
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        !out.status.success(),
        "one job fails, so the sweep exits non-zero: {err}"
    );
    assert!(err.contains("SLURM job array"), "{err}");
    assert!(err.contains("1 completed, 1 not completed"), "{err}");
    let sweeps = s.runs().join("sweeps/multirun");
    let sweep = std::fs::read_dir(&sweeps)
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    assert!(sweep.join("slurm/array_id").is_file());
    let mut statuses = Vec::new();
    for e in std::fs::read_dir(&sweep).unwrap().flatten() {
        let meta = e.path().join("meta.json");
        if meta.is_file() {
            let m = read_json(&meta);
            if m["status"] == "completed" {
                assert!(e.path().join("metrics.csv").is_file());
            }
            statuses.push(m["status"].as_str().unwrap().to_string());
        }
    }
    statuses.sort();
    assert_eq!(statuses, vec!["completed", "failed"]);
}
