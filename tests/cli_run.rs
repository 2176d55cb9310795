//! `adlab run` and `adlab generate`: run directories, lifecycle, caches.

mod common;
use common::*;

#[test]
fn run_writes_a_complete_run_directory() {
    let s = Scratch::new();
    let args = with(TINY_RUN, &["seed=4"]);
    let out =
        stdout_of(s.adlab_with_paths("run", &args.iter().map(String::as_str).collect::<Vec<_>>()));
    let dirs = s.run_dirs("bandit-rl_heads");
    assert_eq!(dirs.len(), 1);
    assert_eq!(out.trim(), dirs[0].display().to_string());
    for f in ["config.yaml", "overrides.yaml", "meta.json", "adlab.log"] {
        assert!(dirs[0].join(f).is_file(), "{f} missing");
    }
    let meta = read_json(&dirs[0].join("meta.json"));
    assert_eq!(meta["status"], "completed");
    assert!(meta["end_time"].is_string());
    assert_eq!(meta["device"], "cpu");
    let config = std::fs::read_to_string(dirs[0].join("config.yaml")).unwrap();
    assert!(config.contains("seed: 4"), "{config}");
    assert!(
        !config.contains("${"),
        "config.yaml must be resolved: {config}"
    );
    let overrides = std::fs::read_to_string(dirs[0].join("overrides.yaml")).unwrap();
    assert!(overrides.contains("seed=4"), "{overrides}");
    let log = std::fs::read_to_string(dirs[0].join("adlab.log")).unwrap();
    assert!(log.contains("learning histories"), "{log}");
}

#[test]
fn a_failing_run_is_recorded_as_failed_with_its_error() {
    let s = Scratch::new();
    let out = s
        .adlab_with_paths("run", &["task=bandit", "device=cuda:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let dirs = s.run_dirs("bandit-rl_heads");
    assert_eq!(dirs.len(), 1);
    let meta = read_json(&dirs[0].join("meta.json"));
    assert_eq!(meta["status"], "failed");
    assert!(meta["error"].as_str().unwrap().contains("cuda"), "{meta}");
}

#[test]
fn bad_config_creates_no_run_directory() {
    let s = Scratch::new();
    let out = s
        .adlab_with_paths("run", &["train.steps=abc"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(!s.runs().exists() || s.run_dirs("darkroom-rl_heads").is_empty());
}

#[test]
fn runs_started_together_get_distinct_directories() {
    let s = Scratch::new();
    let children: Vec<_> = (0..3)
        .map(|_| {
            let mut c = std::process::Command::new(bin());
            c.current_dir(s.path())
                .env("ADLAB_CONFIG_DIR", conf_dir())
                .arg("run")
                .args(TINY_RUN)
                .arg(format!("paths.runs={}", s.runs().display()))
                .arg(format!("paths.data={}", s.data().display()))
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null());
            c.spawn().unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    assert_eq!(s.run_dirs("bandit-rl_heads").len(), 3);
}

#[test]
fn generate_reports_the_cache_and_reuses_it() {
    let s = Scratch::new();
    let first = stdout_of(s.adlab_with_paths("generate", &["task=darkroom"]));
    assert!(first.starts_with("generated"), "{first}");
    assert!(
        first.contains("darkroom-") && first.contains("steps"),
        "{first}"
    );
    let second = stdout_of(s.adlab_with_paths("generate", &["task=darkroom"]));
    assert!(second.starts_with("reused"), "{second}");
}
