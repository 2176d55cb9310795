//! What a run hands to other tools: a causal-LM checkpoint Hugging Face can load (config with
//! the vocabulary's own special-token ids, `tokenizer.json` that encodes like the run's
//! tokenizer) and TensorBoard event files that TensorBoard's own reader reads back as
//! `metrics.csv` says (when the `tensorboard` Python package is importable).

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command as Process;

/// A tiny bandit run: 6 steps, logged every 2, validated at 4, evaluated for 6 episodes.
const TINY: &[&str] = &[
    "task=bandit",
    "train.steps=6",
    "train.log_every=2",
    "train.eval_every=4",
    "optimizer.lr=2e-3",
    "model.d_model=16",
    "model.n_layers=1",
    "model.n_heads=2",
    "model.d_ff=32",
    "eval.episodes=6",
    "eval.tasks=3",
    "eval.train_tasks=2",
    "eval.summary_k=2",
];

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn event_files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("events.out.tfevents.")
        })
        .collect();
    out.sort();
    out
}

#[test]
fn a_causal_lm_checkpoint_carries_its_tokenizer_and_special_token_ids() {
    let s = Scratch::new();
    let mut args = TINY.to_vec();
    args.extend(["model=causal_lm", "model.context_tokens=48"]);
    stdout_of(s.adlab_with_paths("run", &args));
    let ckpt = s.run_dirs("bandit-causal_lm")[0].join("checkpoint");
    let config = read_json(&ckpt.join("config.json"));
    // The byte tokenizer: 256 bytes and end-of-text (256), not GPT-2's 50256.
    assert_eq!(config["vocab_size"], 257, "{config}");
    for key in ["bos_token_id", "eos_token_id", "pad_token_id"] {
        assert_eq!(config[key], 256, "{key}: {config}");
    }
    let tok_config = read_json(&ckpt.join("tokenizer_config.json"));
    assert_eq!(tok_config["eos_token"], "<|endoftext|>");
    assert_eq!(tok_config["model_max_length"], 48);

    // tokenizer.json, read by the `tokenizers` crate, encodes text byte by byte as training
    // did, with end-of-text where config.json says.
    let hf = tokenizers::Tokenizer::from_file(ckpt.join("tokenizer.json")).unwrap();
    let text = "0 1 0.00\n###\n3 é";
    let ids = hf.encode(text, false).unwrap().get_ids().to_vec();
    let bytes: Vec<u32> = text.bytes().map(u32::from).collect();
    assert_eq!(ids, bytes);
    assert_eq!(hf.token_to_id("<|endoftext|>"), Some(256));
    assert_eq!(hf.decode(&ids, true).unwrap(), text);
}

/// TensorBoard's `EventAccumulator` over a run directory, as JSON: `scalars` by tag as
/// `[step, value]` lists, and the HParams plugin's session-start hyperparameters.
const READER: &str = r#"
import json, sys
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2
ea = EventAccumulator(sys.argv[1], size_guidance={"scalars": 0})
ea.Reload()
scalars = {t: [[e.step, e.value] for e in ea.Scalars(t)] for t in ea.Tags()["scalars"]}
hparams = {}
for content in ea.PluginTagToContent("hparams").values():
    data = plugin_data_pb2.HParamsPluginData.FromString(content)
    for k, v in data.session_start_info.hparams.items():
        hparams[k] = v.string_value or v.number_value or v.bool_value
print(json.dumps({"scalars": scalars, "hparams": hparams}))
"#;

/// `ADLAB_PYTHON`, else `python3`, if it can import tensorboard.
fn python_with_tensorboard() -> Option<String> {
    let python = std::env::var("ADLAB_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = Process::new(&python)
        .args(["-c", "import tensorboard"])
        .output()
        .is_ok_and(|o| o.status.success());
    ok.then_some(python)
}

#[test]
fn event_files_read_back_in_tensorboard_as_metrics_csv_says() {
    let s = Scratch::new();
    stdout_of(s.adlab_with_paths("run", TINY));
    let dir = &s.run_dirs("bandit-rl_heads")[0];
    let files = event_files(dir);
    assert_eq!(
        files.len(),
        2,
        "a training and an evaluation file: {files:?}"
    );
    assert!(files
        .iter()
        .any(|f| f.to_string_lossy().ends_with(".train")));
    assert!(files.iter().any(|f| f.to_string_lossy().ends_with(".eval")));

    let Some(python) = python_with_tensorboard() else {
        eprintln!(
            "note: the `tensorboard` Python package is not importable (set ADLAB_PYTHON or \
             `pip install tensorboard`); the event files were not read back"
        );
        return;
    };
    let out = Process::new(&python)
        .args(["-c", READER, dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let scalars = read["scalars"].as_object().unwrap();

    // Every value of metrics.csv, under `<split>/<column>` at its step.
    let mut csv = csv::Reader::from_path(dir.join("metrics.csv")).unwrap();
    let header = csv.headers().unwrap().clone();
    let mut expected = 0;
    for row in csv.records() {
        let row = row.unwrap();
        let step: u64 = row[0].parse().unwrap();
        for (col, cell) in header.iter().zip(row.iter()).skip(2) {
            if cell.is_empty() || col == "elapsed_s" {
                continue;
            }
            let want: f64 = cell.parse().unwrap();
            let tag = format!("{}/{col}", &row[1]);
            let points = scalars[&tag].as_array().unwrap_or_else(|| panic!("{tag}"));
            let got = points
                .iter()
                .find(|p| p[0] == step)
                .unwrap_or_else(|| panic!("{tag} at step {step}: {points:?}"))[1]
                .as_f64()
                .unwrap();
            assert!(
                (got - want).abs() <= 1e-6 * want.abs().max(1.0),
                "{tag} at {step}: {got} vs {want}"
            );
            expected += 1;
        }
    }
    assert!(expected >= 10, "{expected} values compared");
    for tag in [
        "train/loss",
        "train/lr",
        "train/grad_norm",
        "train/tokens_per_s",
        "val/action_acc",
    ] {
        assert!(scalars.contains_key(tag), "{tag}: {:?}", scalars.keys());
    }
    // The in-context curve: one point per episode, as summary.json has it.
    let summary = read_json(&dir.join("summary.json"));
    let curve = summary["splits"]["test"]["policies"]["model"]["curve"]
        .as_array()
        .unwrap();
    let points = scalars["in_context/test/model"].as_array().unwrap();
    assert_eq!(points.len(), curve.len());
    for (p, c) in points.iter().zip(curve) {
        assert!((p[1].as_f64().unwrap() - c.as_f64().unwrap()).abs() < 1e-5);
    }
    // The overridden keys as hyperparameters, with their composed values.
    let hp = &read["hparams"];
    assert_eq!(hp["task"], "bandit", "{hp}");
    assert_eq!(hp["optimizer.lr"], 2e-3, "{hp}");
    assert_eq!(hp["train.steps"], 6.0, "{hp}");
}
