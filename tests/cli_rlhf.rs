//! The RLHF chain from the command line: the built-in PPO source's logs read back by
//! `adlab import-trlx`, `adlab run +experiment=rlhf_ad` end to end (reward prediction and
//! the in-context RLHF curve), `task=trlx_logs` on logs on disk, and clear errors for
//! text-only logs and mismatched formats.

mod common;
use common::*;
use std::path::PathBuf;

/// `rlhf_ad` shrunk to seconds: 3 source runs of 4 PPO epochs, a tiny LM, 3 eval points.
const TINY_RLHF: &[&str] = &[
    "+experiment=rlhf_ad",
    "task.runs=3",
    "task.ppo.epochs=4",
    "task.ppo.num_rollouts=8",
    "task.ppo.chunk_size=8",
    "task.ppo.batch_size=8",
    "task.policy.pretrain_steps=20",
    "format.tokenizer={kind: byte}",
    "model.d_model=16",
    "model.n_layers=1",
    "model.n_heads=2",
    "model.d_ff=32",
    "model.context_tokens=256",
    "train.steps=6",
    "train.batch_size=2",
    "train.eval_every=0",
    "train.log_every=2",
    "train.threads=1",
    "eval.rlhf.context_epochs=[0,2,4]",
    "eval.rlhf.prompts=3",
    "eval.rlhf.max_new_tokens=8",
];

fn logs_dir(s: &Scratch) -> PathBuf {
    let data: Vec<PathBuf> = std::fs::read_dir(s.data())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("trlx").is_dir())
        .collect();
    assert_eq!(data.len(), 1, "{data:?}");
    data[0].join("trlx")
}

#[test]
fn the_built_in_sources_logs_read_back_through_import_trlx() {
    let s = Scratch::new();
    let out = stdout_of(s.adlab_with_paths("generate", TINY_RLHF));
    assert!(out.contains("3 source runs, 96 rollouts"), "{out}");
    let logs = logs_dir(&s);
    let runs: Vec<_> = std::fs::read_dir(&logs).unwrap().flatten().collect();
    assert_eq!(runs.len(), 3);
    let summary = stdout_of(s.adlab().args(["import-trlx", logs.to_str().unwrap()]));
    // Every run, with its 4 epochs of 8 rollouts and their scores, and the searched
    // hyperparameters.
    assert!(summary.starts_with("3 runs read"), "{summary}");
    let run_lines: Vec<Vec<&str>> = summary
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|w| w.len() == 7 && w[3] == "yes")
        .collect();
    assert_eq!(run_lines.len(), 3, "{summary}");
    assert!(run_lines
        .iter()
        .all(|w| w[1] == "4" && w[2] == "32" && w[4] == "score"));
    for key in ["lr", "init_kl_coef"] {
        assert!(summary.contains(key), "{summary}");
    }
    // Generating again reuses the logs byte for byte.
    let before = std::fs::read_dir(&logs).unwrap().count();
    stdout_of(s.adlab_with_paths("generate", TINY_RLHF));
    assert_eq!(std::fs::read_dir(&logs).unwrap().count(), before);
}

#[test]
fn rlhf_ad_runs_end_to_end_with_reward_prediction_and_an_in_context_curve() {
    let s = Scratch::new();
    stdout_of(s.adlab_with_paths("run", TINY_RLHF));
    let dir = &s.run_dirs("sentiment_rlhf-causal_lm")[0];
    assert_eq!(read_json(&dir.join("meta.json"))["status"], "completed");
    let metrics = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    assert!(metrics.lines().any(|l| l.contains(",val,")), "{metrics}");

    // The held-out runs are recorded, so a later evaluation holds out the same ones.
    let held_out = read_json(&dir.join("held_out_runs.json"));
    assert_eq!(held_out.as_array().unwrap().len(), 1, "{held_out}");
    let summary = read_json(&dir.join("summary.json"));
    let rlhf = &summary["rlhf"];
    assert_eq!(rlhf["context_epochs"], serde_json::json!([0, 2, 4]));
    // One held-out run of 4 epochs x 8 rollouts, every reward predicted once.
    assert_eq!(rlhf["reward_prediction"]["n"], 32, "{rlhf}");
    let model = &summary["splits"]["test"]["policies"]["model"];
    assert_eq!(model["curve"].as_array().unwrap().len(), 3, "{summary}");
    assert!(summary["splits"]["test"]["policies"]["source"].is_object());

    let csv = std::fs::read_to_string(dir.join("eval.csv")).unwrap();
    let rows: Vec<&str> = csv.lines().skip(1).collect();
    // Held-out and train run, 3 points each, for the model; the source has epochs 0 and 2.
    assert_eq!(
        rows.iter().filter(|r| r.ends_with(",model")).count(),
        6,
        "{csv}"
    );
    assert_eq!(
        rows.iter().filter(|r| r.ends_with(",source")).count(),
        4,
        "{csv}"
    );
    let completions = std::fs::read_to_string(dir.join("completions.jsonl")).unwrap();
    assert_eq!(completions.lines().count(), 6 * 3);
    for line in completions.lines() {
        let c: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(
            c["score"].is_number() && c["completion"].is_string(),
            "{line}"
        );
        assert!(!c["completion"].as_str().unwrap().contains('\n'));
    }

    // `adlab eval` redoes the evaluation from the run directory.
    stdout_of(
        s.adlab()
            .args(["eval", dir.to_str().unwrap(), "eval.rlhf.prompts=2"]),
    );
    let again = std::fs::read_to_string(dir.join("completions.jsonl")).unwrap();
    assert_eq!(again.lines().count(), 6 * 2);
}

#[test]
fn trlx_logs_on_disk_train_and_text_only_logs_say_why_they_cannot() {
    let s = Scratch::new();
    stdout_of(s.adlab_with_paths("generate", TINY_RLHF));
    let logs = logs_dir(&s);
    let mut args: Vec<String> = TINY_RLHF.iter().map(|a| a.to_string()).collect();
    args.extend([
        "task=trlx_logs".to_string(),
        format!("task.path={}", logs.display()),
        "task.reward={kind: lexicon, target: positive}".to_string(),
    ]);
    // Keys of the built-in source have no meaning for trlx_logs.
    args.retain(|a| {
        !a.starts_with("task.runs") && !a.starts_with("task.ppo") && !a.starts_with("task.policy")
    });
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    stdout_of(s.adlab_with_paths("run", &argv));
    let dir = &s.run_dirs("trlx_logs-causal_lm")[0];
    let summary = read_json(&dir.join("summary.json"));
    assert_eq!(summary["rlhf"]["reward_prediction"]["n"], 32, "{summary}");
    assert!(summary["splits"]["test"]["policies"]["model"].is_object());

    // The same logs with texts only (newer TRLx): no rewards to learn.
    let text_only = s.path().join("text_only/run-abc");
    std::fs::create_dir_all(&text_only).unwrap();
    std::fs::write(
        text_only.join("epoch-100.json"),
        r#"[{"query_text": "the cat sat", "response_text": "happily"}]"#,
    )
    .unwrap();
    let mut args = argv.clone();
    let path = format!("task.path={}", s.path().join("text_only").display());
    args.retain(|a| !a.starts_with("task.path"));
    args.push(&path);
    let err = stderr_of_failure(s.adlab_with_paths("run", &args));
    assert!(err.contains("text-only") && err.contains("reward"), "{err}");
}

#[test]
fn an_rlhf_task_needs_the_rlhf_text_format_and_says_so() {
    let s = Scratch::new();
    // format=auto (the default) picks rlhf_text for a causal LM on an RLHF task…
    let out = stdout_of(
        s.adlab()
            .args(["config", "task=sentiment_rlhf", "model=causal_lm"]),
    );
    assert!(out.contains("kind: rlhf_text"), "{out}");
    // …and an explicit RL-history text format is refused.
    let err = stderr_of_failure(s.adlab().args([
        "config",
        "task=sentiment_rlhf",
        "model=causal_lm",
        "format=coords",
    ]));
    assert!(
        err.contains("format.kind") && err.contains("rlhf_text"),
        "{err}"
    );
    let err = stderr_of_failure(s.adlab().args([
        "config",
        "task=trlx_logs",
        "format=rlhf_text",
        "model=causal_lm",
    ]));
    assert!(err.contains("task.path"), "{err}");
}

#[test]
fn rl_heads_learns_rlhf_histories_token_by_token() {
    let s = Scratch::new();
    let mut args: Vec<&str> = TINY_RLHF
        .iter()
        .copied()
        .filter(|a| {
            !a.starts_with("model.")
                && !a.starts_with("format.")
                && !a.starts_with("eval.")
                && !a.starts_with("+experiment")
        })
        .collect();
    args.extend([
        "task=sentiment_rlhf",
        "model=rl_heads", // format=auto gives rl
        "format.positions=4",
        "model.d_model=16",
        "model.n_layers=1",
        "model.n_heads=2",
        "model.d_ff=32",
        "model.context_steps=16",
    ]);
    stdout_of(s.adlab_with_paths("run", &args));
    let dir = &s.run_dirs("sentiment_rlhf-rl_heads")[0];
    assert_eq!(read_json(&dir.join("meta.json"))["status"], "completed");
    let metrics = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    let last = metrics.lines().last().unwrap();
    let cells: Vec<&str> = last.split(',').collect();
    assert!(
        cells[3].parse::<f64>().is_ok(),
        "action accuracy: {metrics}"
    );
    let log = std::fs::read_to_string(dir.join("adlab.log")).unwrap();
    assert!(log.contains("needs model=causal_lm"), "{log}");
}
