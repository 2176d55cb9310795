//! `adlab config`: composition, overrides and the error messages a user meets.

mod common;
use common::*;

/// The value printed for a dotted key, read back through a YAML parser.
fn yaml_get(text: &str, key: &str) -> serde_yaml_ng::Value {
    let mut v: serde_yaml_ng::Value = serde_yaml_ng::from_str(text).unwrap();
    for part in key.split('.') {
        v = v.get(part).cloned().unwrap_or(serde_yaml_ng::Value::Null);
    }
    v
}

#[test]
fn default_config_has_every_contract_key() {
    let s = Scratch::new();
    let out = stdout_of(s.adlab().args(["config", "--resolve"]));
    for key in [
        "task.name",
        "model.name",
        "model.kind",
        "format.kind",
        "format.name",
        "optimizer.name",
        "optimizer.lr",
        "launcher.name",
        "train.steps",
        "train.batch_size",
        "seed",
    ] {
        assert!(!yaml_get(&out, key).is_null(), "{key} missing from:\n{out}");
    }
    assert_eq!(yaml_get(&out, "model.kind").as_str(), Some("rl_heads"));
    assert_eq!(yaml_get(&out, "format.kind").as_str(), Some("rl"));
    assert_eq!(yaml_get(&out, "name").as_str(), Some("darkroom-rl_heads"));
}

#[test]
fn overrides_change_groups_values_and_add_keys() {
    let s = Scratch::new();
    let out = stdout_of(s.adlab().args([
        "config",
        "model=causal_lm",
        "optimizer.lr=1e-3",
        "+train.note=hello",
    ]));
    assert_eq!(yaml_get(&out, "model.kind").as_str(), Some("causal_lm"));
    assert_eq!(yaml_get(&out, "optimizer.lr").as_f64(), Some(0.001));
    assert_eq!(yaml_get(&out, "train.note").as_str(), Some("hello"));
    assert_eq!(
        yaml_get(&out, "format.kind").as_str(),
        Some("language"),
        "format auto follows the model"
    );
}

#[test]
fn unknown_key_suggests_the_nearest() {
    let s = Scratch::new();
    let err = stderr_of_failure(s.adlab().args(["config", "optimizer.lrr=1"]));
    assert!(err.contains("optimizer.lrr"), "{err}");
    assert!(err.contains("did you mean `optimizer.lr`"), "{err}");
}

#[test]
fn unknown_option_lists_the_options() {
    let s = Scratch::new();
    let err = stderr_of_failure(s.adlab().args(["config", "model=nosuch"]));
    assert!(
        err.contains("nosuch") && err.contains("causal_lm") && err.contains("rl_heads"),
        "{err}"
    );
}

#[test]
fn a_format_that_cannot_write_the_tasks_states_is_refused_before_any_data() {
    // Bins are for continuous states: on a grid the config is rejected up front, naming the
    // key and the file it came from; on the lander it composes.
    let s = Scratch::new();
    let args = [
        "config",
        "task=darkroom",
        "model=causal_lm",
        "format=bins_tokens",
    ];
    let err = stderr_of_failure(s.adlab().args(args));
    for part in ["format.values", "discrete", "conf/format/bins_tokens.yaml"] {
        assert!(err.contains(part), "missing {part:?} in {err}");
    }
    assert!(!s.path().join("data").exists());
    let lander = [
        "config",
        "task=lunar_lander",
        "model=causal_lm",
        "format=bins_tokens",
    ];
    let yaml = stdout_of(s.adlab().args(lander));
    assert!(yaml.contains("kind: bins"), "{yaml}");
}

#[test]
fn type_error_names_key_value_type_and_origin() {
    let s = Scratch::new();
    let err = stderr_of_failure(s.adlab().args(["config", "optimizer.lr=abc"]));
    for part in [
        "optimizer.lr",
        "`abc`",
        "number",
        "command-line override `optimizer.lr=abc`",
    ] {
        assert!(err.contains(part), "missing {part:?} in {err}");
    }
}

#[test]
fn unknown_key_in_a_file_names_the_file() {
    let s = Scratch::new();
    let conf = s.path().join("conf");
    copy_dir(&conf_dir(), &conf);
    let model = conf.join("model/rl_heads.yaml");
    let text = std::fs::read_to_string(&model)
        .unwrap()
        .replace("n_heads: 4", "n_haeds: 4");
    std::fs::write(&model, text).unwrap();
    let err = stderr_of_failure(s.adlab().env("ADLAB_CONFIG_DIR", &conf).arg("config"));
    assert!(err.contains("model.n_haeds"), "{err}");
    assert!(err.contains("rl_heads.yaml"), "{err}");
    assert!(err.contains("model.n_heads"), "{err}");
}

#[test]
fn yaml_syntax_error_names_file_and_line() {
    let s = Scratch::new();
    let conf = s.path().join("conf");
    copy_dir(&conf_dir(), &conf);
    std::fs::write(
        conf.join("optimizer/broken.yaml"),
        "name: adamw\nlr: [0.1,\nbetas: 2\n",
    )
    .unwrap();
    let err = stderr_of_failure(s.adlab().args([
        "--config-dir",
        conf.to_str().unwrap(),
        "config",
        "optimizer=broken",
    ]));
    assert!(err.contains("broken.yaml"), "{err}");
    assert!(err.contains(" line "), "{err}");
}

#[test]
fn sweeps_are_refused_outside_multiruns() {
    let s = Scratch::new();
    let err = stderr_of_failure(s.adlab().args(["config", "optimizer.lr=1e-3,1e-4"]));
    assert!(err.contains("-m") && err.contains("adlab sweep"), "{err}");
}

#[test]
fn add_force_add_and_delete() {
    let s = Scratch::new();
    let err = stderr_of_failure(s.adlab().args(["config", "+seed=3"]));
    assert!(
        err.contains("seed") && err.contains("already exists"),
        "{err}"
    );
    let out = stdout_of(s.adlab().args(["config", "++seed=3"]));
    assert_eq!(yaml_get(&out, "seed").as_i64(), Some(3));
    let out = stdout_of(s.adlab().args(["config", "~eval"]));
    assert!(yaml_get(&out, "eval").is_null(), "{out}");
    assert!(!out.contains("\neval:"), "{out}");
}

#[test]
fn info_shows_the_defaults_tree_with_files() {
    let s = Scratch::new();
    let out = stdout_of(s.adlab().args(["config", "--info", "model=causal_lm"]));
    assert!(out.contains("model: causal_lm"), "{out}");
    assert!(out.contains("conf/model/causal_lm.yaml"), "{out}");
    assert!(out.contains("format: auto -> coords"), "{out}");
}

#[test]
fn unresolved_output_keeps_interpolations() {
    let s = Scratch::new();
    let raw = stdout_of(s.adlab().args(["config"]));
    assert_eq!(
        yaml_get(&raw, "name").as_str(),
        Some("${task.name}-${model.name}")
    );
    let resolved = stdout_of(s.adlab().args(["config", "--resolve", "task=bandit"]));
    assert_eq!(
        yaml_get(&resolved, "name").as_str(),
        Some("bandit-rl_heads")
    );
}

#[test]
fn config_dir_that_has_no_primary_config_is_explained() {
    let s = Scratch::new();
    let err =
        stderr_of_failure(
            s.adlab()
                .args(["--config-dir", s.path().to_str().unwrap(), "config"]),
        );
    assert!(
        err.contains("config.yaml") && err.contains("--config-dir"),
        "{err}"
    );
}

#[test]
fn completions_and_help_work() {
    let s = Scratch::new();
    let out = stdout_of(s.adlab().args(["completions", "bash"]));
    assert!(out.contains("adlab"));
    for sub in ["config", "run", "generate", "completions"] {
        let help = stdout_of(s.adlab().args([sub, "--help"]));
        assert!(help.contains("Example"), "{sub} --help has no examples");
    }
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            copy_dir(&p, &to.join(e.file_name()));
        } else {
            std::fs::copy(&p, to.join(e.file_name())).unwrap();
        }
    }
}
