//! Training checkpoints: everything needed to resume bit-identically, in one directory.
//!
//! ```text
//! checkpoint/
//!   model.safetensors       parameters by name (for causal_lm: the Hugging Face GPT-2 layout,
//!   config.json             and with its config.json the directory is a loadable HF GPT-2)
//!   optimizer.safetensors   AdamW moments: exp_avg.<param>, exp_avg_sq.<param>
//!   state.json              step, AdamW step, named RNG states (seed, stream, word position)
//! ```
//!
//! Saving writes a sibling temporary directory and swaps it in by renames, so a crash never
//! leaves a half-written `checkpoint/`: at worst the previous one survives as
//! `checkpoint.old/`, which [`load`] falls back to.

use crate::fsutil::{write_atomic, write_json_atomic};
use crate::models::params::{read_safetensors, safetensors_bytes};
use crate::models::ParamSet;
use crate::optim::AdamW;
use anyhow::{bail, Context, Result};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A ChaCha8 stream's exact position (seed, stream id, word position): restoring it continues
/// the stream where it was saved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RngState {
    pub seed: String,
    pub stream: u64,
    /// u128 as a decimal string (JSON numbers cannot hold it).
    pub word_pos: String,
}

impl RngState {
    pub fn capture(rng: &ChaCha8Rng) -> Self {
        Self {
            seed: hex::encode(rng.get_seed()),
            stream: rng.get_stream(),
            word_pos: rng.get_word_pos().to_string(),
        }
    }

    pub fn restore(&self) -> Result<ChaCha8Rng> {
        let bytes = hex::decode(&self.seed).context("RNG seed is not hex")?;
        let seed: [u8; 32] = bytes
            .try_into()
            .map_err(|_| anyhow::anyhow!("RNG seed must be 32 bytes"))?;
        let mut rng = ChaCha8Rng::from_seed(seed);
        rng.set_stream(self.stream);
        rng.set_word_pos(
            self.word_pos
                .parse()
                .context("RNG word_pos is not an integer")?,
        );
        Ok(rng)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointState {
    /// Training steps completed.
    pub step: u64,
    pub optimizer_step: u64,
    pub rngs: BTreeMap<String, RngState>,
}

/// What a checkpoint restores besides the weights and optimizer moments.
#[derive(Debug, Clone)]
pub struct Resumed {
    pub step: u64,
    pub rngs: BTreeMap<String, ChaCha8Rng>,
}

fn sibling(dir: &Path, suffix: &str) -> Result<PathBuf> {
    let name = dir
        .file_name()
        .with_context(|| format!("checkpoint path {} has no final component", dir.display()))?;
    let mut s = name.to_os_string();
    s.push(suffix);
    Ok(dir.with_file_name(s))
}

/// Saves a checkpoint into `dir` (e.g. `<run>/checkpoint`), replacing any previous one.
/// `extra_files` are written beside the weights (e.g. `config.json` for a GPT-2).
pub fn save(
    dir: &Path,
    params: &ParamSet,
    optimizer: &AdamW,
    step: u64,
    rngs: &[(&str, &ChaCha8Rng)],
    extra_files: &[(&str, Vec<u8>)],
) -> Result<()> {
    let tmp = sibling(dir, &format!(".tmp-{}", std::process::id()))?;
    let old = sibling(dir, ".old")?;
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp)
            .with_context(|| format!("removing stale {}", tmp.display()))?;
    }
    let mut meta = std::collections::HashMap::new();
    meta.insert("format".to_string(), "pt".to_string());
    write_atomic(
        &tmp.join(crate::runs::layout::MODEL_WEIGHTS),
        &safetensors_bytes(&params.named_tensors(), Some(meta))?,
    )?;
    write_atomic(
        &tmp.join(crate::runs::layout::OPTIMIZER_STATE),
        &safetensors_bytes(&optimizer.state_tensors(params)?, None)?,
    )?;
    for (name, bytes) in extra_files {
        write_atomic(&tmp.join(name), bytes)?;
    }
    let state = CheckpointState {
        step,
        optimizer_step: optimizer.step,
        rngs: rngs
            .iter()
            .map(|(n, r)| (n.to_string(), RngState::capture(r)))
            .collect(),
    };
    write_json_atomic(&tmp.join(crate::runs::layout::TRAINER_STATE), &state)?;
    if old.exists() {
        std::fs::remove_dir_all(&old).with_context(|| format!("removing {}", old.display()))?;
    }
    if dir.exists() {
        std::fs::rename(dir, &old).with_context(|| format!("moving {} aside", dir.display()))?;
    }
    std::fs::rename(&tmp, dir)
        .with_context(|| format!("renaming {} to {}", tmp.display(), dir.display()))?;
    if old.exists() {
        std::fs::remove_dir_all(&old).with_context(|| format!("removing {}", old.display()))?;
    }
    Ok(())
}

/// Loads the checkpoint in `dir` (or `dir.old` if a crash interrupted the swap) into
/// `params` and `optimizer`, which must be freshly built with the same configuration.
pub fn load(dir: &Path, params: &ParamSet, optimizer: &mut AdamW) -> Result<Resumed> {
    let dir = if dir.join(crate::runs::layout::TRAINER_STATE).exists() {
        dir.to_path_buf()
    } else {
        let old = sibling(dir, ".old")?;
        if !old.join(crate::runs::layout::TRAINER_STATE).exists() {
            bail!("no checkpoint in {} (state.json missing)", dir.display());
        }
        old
    };
    let state_path = dir.join(crate::runs::layout::TRAINER_STATE);
    let state: CheckpointState = serde_json::from_str(
        &std::fs::read_to_string(&state_path)
            .with_context(|| format!("reading {}", state_path.display()))?,
    )
    .with_context(|| format!("parsing {}", state_path.display()))?;
    let model_path = dir.join(crate::runs::layout::MODEL_WEIGHTS);
    params.load_named(&read_safetensors(&model_path)?, &model_path)?;
    let opt_path = dir.join(crate::runs::layout::OPTIMIZER_STATE);
    optimizer.load_state(
        &read_safetensors(&opt_path)?,
        state.optimizer_step,
        &opt_path.display().to_string(),
    )?;
    let rngs = state
        .rngs
        .iter()
        .map(|(n, r)| {
            r.restore()
                .with_context(|| format!("{}: RNG `{n}`", state_path.display()))
                .map(|rng| (n.clone(), rng))
        })
        .collect::<Result<_>>()?;
    Ok(Resumed {
        step: state.step,
        rngs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::rl_heads::{PositionEmbedding, TokenLayout};
    use crate::models::tests::{discrete_spaces, random_rl_batch, tiny_rl_config};
    use crate::models::RlHeadsModel;
    use crate::optim::clip::clip_global_norm;
    use crate::optim::schedule::LrSchedule;
    use crate::optim::{Gradients, OptimizerConfig, ScheduleKind};
    use crate::seed;

    fn optimizer_config() -> OptimizerConfig {
        OptimizerConfig {
            name: "adamw".into(),
            lr: 3e-3,
            betas: [0.9, 0.95],
            eps: 1e-8,
            weight_decay: 0.1,
            decay_embeddings: false,
            schedule: ScheduleKind::Cosine,
            warmup_steps: 2,
            min_lr: 1e-4,
            grad_clip: 0.5,
        }
    }

    /// A miniature training loop: fresh batch from `data_rng`, dropout from `dropout_rng`,
    /// clipping, scheduled AdamW.
    fn train(
        model: &RlHeadsModel,
        opt: &mut AdamW,
        from: u64,
        to: u64,
        data_rng: &mut ChaCha8Rng,
        dropout_rng: &mut ChaCha8Rng,
    ) {
        let params = model.params();
        let schedule = LrSchedule::new(&optimizer_config(), 6);
        for step in from..to {
            let batch = random_rl_batch(&model.spaces, 2, model.cfg.context_steps, data_rng);
            let out = model.forward(&batch, Some(dropout_rng)).unwrap();
            let loss = model.loss(&out, &batch).unwrap();
            let mut grads =
                Gradients::from_store(&loss.total.backward().unwrap(), &params).unwrap();
            clip_global_norm(&mut grads, 0.5);
            opt.step(&params, &grads, schedule.lr_at(step)).unwrap();
        }
    }

    fn fresh() -> (RlHeadsModel, AdamW, ChaCha8Rng, ChaCha8Rng) {
        let cfg = tiny_rl_config(TokenLayout::Sar, PositionEmbedding::PerToken);
        let model = RlHeadsModel::new(&cfg, &discrete_spaces(), seed::rng(0, "init", &[])).unwrap();
        let opt = AdamW::new(&optimizer_config(), &model.params()).unwrap();
        (
            model,
            opt,
            seed::rng(0, "data", &[]),
            seed::rng(0, "dropout", &[]),
        )
    }

    fn weights(model: &RlHeadsModel) -> Vec<Vec<f32>> {
        model
            .params()
            .vars
            .iter()
            .map(|v| v.flatten_all().unwrap().to_vec1::<f32>().unwrap())
            .collect()
    }

    #[test]
    fn resume_is_bit_identical() {
        let (model, mut opt, mut data, mut drop) = fresh();
        train(&model, &mut opt, 0, 6, &mut data, &mut drop);
        let straight = weights(&model);

        let dir = tempfile::tempdir().unwrap();
        let ckpt = dir.path().join("checkpoint");
        let (model, mut opt, mut data, mut drop) = fresh();
        train(&model, &mut opt, 0, 3, &mut data, &mut drop);
        save(
            &ckpt,
            &model.params(),
            &opt,
            3,
            &[("data", &data), ("dropout", &drop)],
            &[],
        )
        .unwrap();
        // Saving again replaces the checkpoint and leaves no temporaries.
        save(
            &ckpt,
            &model.params(),
            &opt,
            3,
            &[("data", &data), ("dropout", &drop)],
            &[],
        )
        .unwrap();
        let entries: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(entries.len(), 1);
        drop_all(model, opt);

        let (model, mut opt, _, _) = fresh();
        let resumed = load(&ckpt, &model.params(), &mut opt).unwrap();
        assert_eq!((resumed.step, opt.step), (3, 3));
        let mut data = resumed.rngs["data"].clone();
        let mut drop = resumed.rngs["dropout"].clone();
        train(&model, &mut opt, 3, 6, &mut data, &mut drop);
        assert!(
            straight == weights(&model),
            "resumed run diverged from the straight run"
        );
    }

    fn drop_all(model: RlHeadsModel, opt: AdamW) {
        drop(model);
        drop(opt);
    }

    #[test]
    fn load_falls_back_to_the_previous_checkpoint_after_a_crash_mid_swap() {
        let (model, opt, data, _) = fresh();
        let dir = tempfile::tempdir().unwrap();
        let ckpt = dir.path().join("checkpoint");
        save(&ckpt, &model.params(), &opt, 7, &[("data", &data)], &[]).unwrap();
        std::fs::rename(&ckpt, dir.path().join("checkpoint.old")).unwrap();
        let (model, mut opt, _, _) = fresh();
        assert_eq!(load(&ckpt, &model.params(), &mut opt).unwrap().step, 7);
        let err = load(&dir.path().join("nothing"), &model.params(), &mut opt).unwrap_err();
        assert!(err.to_string().contains("no checkpoint"), "{err}");
    }

    #[test]
    fn causal_lm_checkpoint_is_a_loadable_hf_gpt2() {
        let cfg = crate::models::tests::tiny_lm_config();
        let model = crate::models::CausalLm::new(&cfg, 11, seed::rng(0, "init", &[])).unwrap();
        let opt = AdamW::new(&optimizer_config(), &model.params()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let ckpt = dir.path().join("checkpoint");
        let config = model.hf_config_json().unwrap();
        save(
            &ckpt,
            &model.params(),
            &opt,
            0,
            &[],
            &[("config.json", config)],
        )
        .unwrap();
        let again =
            crate::models::CausalLm::from_pretrained(&ckpt, &cfg, seed::rng(1, "init", &[]))
                .unwrap();
        let ids = candle_core::Tensor::new(&[[1u32, 2, 3]], &candle_core::Device::Cpu).unwrap();
        let (a, b) = (
            model.forward(&ids, None).unwrap(),
            again.forward(&ids, None).unwrap(),
        );
        let diff = (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap();
        assert_eq!(diff.to_scalar::<f32>().unwrap(), 0.0);
    }
}
