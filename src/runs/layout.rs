//! The names inside a run directory that more than one module reads or writes, in one place:
//! the checkpoint's files (written by training, read by evaluation and resume), the RLHF
//! held-out set and completions, the evaluation's traces and pictures, and the seed label of
//! model initialisation. The top-level files (`config.yaml`, `meta.json`, `metrics.csv`, …)
//! are named by [`super::RunDir`]'s methods.

/// The checkpoint folder of a run.
pub const CHECKPOINT_DIR: &str = "checkpoint";
/// Model weights (safetensors; Hugging Face's name, so a causal-LM checkpoint loads in
/// `transformers`).
pub const MODEL_WEIGHTS: &str = "model.safetensors";
/// A causal LM's Hugging Face GPT-2 `config.json`.
pub const MODEL_CONFIG: &str = "config.json";
/// AdamW's moments and step count.
pub const OPTIMIZER_STATE: &str = "optimizer.safetensors";
/// Step, RNG states and the rest of the trainer's state; its presence marks a whole checkpoint.
pub const TRAINER_STATE: &str = "state.json";
/// The tokenizer of a causal-LM run (and of a BPE cache).
pub const TOKENIZER_FILE: &str = "tokenizer.json";
/// Hugging Face's tokenizer settings (special tokens), written beside `tokenizer.json`.
pub const TOKENIZER_CONFIG: &str = "tokenizer_config.json";
/// The ids of the RLHF runs training held out, which evaluation holds out too.
pub const HELD_OUT_RUNS: &str = "held_out_runs.json";
/// Every completion an RLHF evaluation wrote.
pub const COMPLETIONS: &str = "completions.jsonl";
/// The model's traced evaluation episodes, one JSON object per line.
pub const TRACES: &str = "traces.jsonl";
/// Pictures of a run (visitation maps, lander episodes, source learning curves).
pub const PLOTS_DIR: &str = "plots";

/// The seed label of model initialisation: training and evaluation build the same model from
/// `seed::rng(seed, MODEL_INIT_SEED, &[])` before loading weights.
pub const MODEL_INIT_SEED: &str = "model-init";
