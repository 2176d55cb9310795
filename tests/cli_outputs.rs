//! What a run hands to other tools: a causal-LM checkpoint Hugging Face can load (config with
//! the vocabulary's own special-token ids, `tokenizer.json` that encodes like the run's
//! tokenizer).

mod common;
use common::*;
use std::path::Path;

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
