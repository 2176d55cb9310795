//! Tests of both models: every parameter learns, cached decoding equals full forward, HF
//! GPT-2 checkpoints round-trip, and a few dozen steps overfit a fixed batch.

use super::*;
use crate::models::rl_heads::{LossWeights, PositionEmbedding, TokenLayout};
use crate::optim::{AdamW, Gradients, OptimizerConfig, ScheduleKind};
use crate::seed;
use candle_core::{Device, Tensor};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

// The shipped config files (paths relative to this source file).
const RL_HEADS_YAML: &str = include_str!("../../conf/model/rl_heads.yaml");
const CAUSAL_LM_YAML: &str = include_str!("../../conf/model/causal_lm.yaml");

pub(crate) fn tiny_rl_config(layout: TokenLayout, position: PositionEmbedding) -> RlHeadsConfig {
    RlHeadsConfig {
        name: "rl_heads".into(),
        d_model: 16,
        n_layers: 2,
        n_heads: 2,
        d_ff: 32,
        context_steps: 6,
        min_context: 0,
        layout,
        state_embedding: StateEmbeddingKind::Table,
        position,
        activation: Activation::Gelu,
        dropout: 0.1,
        attn_dropout: 0.1,
        token_mask_prob: 0.0,
        label_smoothing: 0.0,
        embed_logprob: false,
        loss_weights: LossWeights {
            action: 1.0,
            reward: 1.0,
            next_state: 1.0,
            logprob: 1.0,
        },
        reward_tolerance: 0.05,
        state_tolerance: 0.05,
        layer_norm_eps: 1e-5,
        init_std: 0.02,
    }
}

pub(crate) fn tiny_lm_config() -> CausalLmConfig {
    CausalLmConfig {
        name: "causal_lm".into(),
        d_model: 16,
        n_layers: 2,
        n_heads: 2,
        d_ff: 32,
        context_tokens: 12,
        activation: Activation::Gelu,
        dropout: 0.1,
        attn_dropout: 0.1,
        layer_norm_eps: 1e-5,
        init_std: 0.02,
        init_from: None,
    }
}

pub(crate) fn discrete_spaces() -> RlSpaces {
    RlSpaces {
        states: StateSpace::Discrete { n: 5 },
        state_coords: None,
        n_actions: 3,
        rewards: RewardSpace::Classes(vec![0.0, 1.0]),
    }
}

/// `discrete_spaces` with coordinates: five cells of a 3-wide grid, (0,0) (1,0) (2,0) (0,1)
/// (1,1).
fn grid_spaces() -> RlSpaces {
    RlSpaces {
        state_coords: Some(vec![
            vec![0, 0],
            vec![1, 0],
            vec![2, 0],
            vec![0, 1],
            vec![1, 1],
        ]),
        ..discrete_spaces()
    }
}

fn continuous_spaces() -> RlSpaces {
    RlSpaces {
        states: StateSpace::Continuous { dim: 3 },
        state_coords: None,
        n_actions: 3,
        rewards: RewardSpace::Continuous,
    }
}

/// A random batch of `b` windows of `t` steps in `spaces`.
pub(crate) fn random_rl_batch(
    spaces: &RlSpaces,
    b: usize,
    t: usize,
    rng: &mut ChaCha8Rng,
) -> RlBatch {
    let dev = Device::Cpu;
    let n = b * t;
    let states = match spaces.states {
        StateSpace::Discrete { n: ns } => {
            let v: Vec<u32> = (0..n).map(|_| rng.random_range(0..ns as u32)).collect();
            StateInput::Discrete(Tensor::from_vec(v, (b, t), &dev).unwrap())
        }
        StateSpace::Continuous { dim } => {
            let v: Vec<f32> = (0..n * dim).map(|_| rng.random_range(-1.0..1.0)).collect();
            StateInput::Continuous(Tensor::from_vec(v, (b, t, dim), &dev).unwrap())
        }
    };
    let actions: Vec<u32> = (0..n)
        .map(|_| rng.random_range(0..spaces.n_actions as u32))
        .collect();
    let rewards = match &spaces.rewards {
        RewardSpace::Classes(values) => {
            let v: Vec<u32> = (0..n)
                .map(|_| rng.random_range(0..values.len() as u32))
                .collect();
            RewardInput::Classes(Tensor::from_vec(v, (b, t), &dev).unwrap())
        }
        RewardSpace::Continuous => {
            let v: Vec<f32> = (0..n).map(|_| rng.random_range(-1.0..1.0)).collect();
            RewardInput::Values(Tensor::from_vec(v, (b, t), &dev).unwrap())
        }
    };
    let logprobs: Vec<f32> = (0..n).map(|_| rng.random_range(-2.0..0.0)).collect();
    RlBatch {
        states,
        actions: Tensor::from_vec(actions, (b, t), &dev).unwrap(),
        rewards,
        logprobs: Tensor::from_vec(logprobs, (b, t), &dev).unwrap(),
        loss_mask: Tensor::ones((b, t), candle_core::DType::F32, &dev).unwrap(),
    }
}

fn random_ids(b: usize, t: usize, vocab: u32, rng: &mut ChaCha8Rng) -> Tensor {
    let v: Vec<u32> = (0..b * t).map(|_| rng.random_range(0..vocab)).collect();
    Tensor::from_vec(v, (b, t), &Device::Cpu).unwrap()
}

fn assert_every_param_has_grad(params: &ParamSet, grads: &Gradients, what: &str) {
    let dead: Vec<&str> = params
        .names
        .iter()
        .zip(&grads.per_param)
        .filter(|(_, g)| g.iter().all(|x| *x == 0.0))
        .map(|(n, _)| n.as_str())
        .collect();
    assert!(
        dead.is_empty(),
        "{what}: parameters with zero gradient: {dead:?}"
    );
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

#[test]
fn model_config_parses_by_kind_and_rejects_unknown_keys() {
    let rl: ModelConfig = serde_yaml_ng::from_str(RL_HEADS_YAML).unwrap();
    assert_eq!((rl.name(), rl.kind()), ("rl_heads", "rl_heads"));
    let lm: ModelConfig = serde_yaml_ng::from_str(CAUSAL_LM_YAML).unwrap();
    assert_eq!((lm.name(), lm.kind()), ("causal_lm", "causal_lm"));
    let mut text = serde_yaml_ng::to_string(&lm).unwrap();
    text.push_str("d_modle: 3\n");
    let err = serde_yaml_ng::from_str::<ModelConfig>(&text)
        .unwrap_err()
        .to_string();
    assert!(err.contains("d_modle"), "{err}");
}

#[test]
fn coordinate_state_embeddings_are_the_sum_of_each_coordinates_vector() {
    let cfg = RlHeadsConfig {
        state_embedding: StateEmbeddingKind::Coords,
        ..tiny_rl_config(TokenLayout::Fused, PositionEmbedding::PerToken)
    };
    let spaces = grid_spaces();
    let model = RlHeadsModel::new(&cfg, &spaces, seed::rng(0, "init", &[])).unwrap();
    let ids = Tensor::new(&[[0u32, 1, 3, 4]], &Device::Cpu).unwrap();
    let e = model
        .embed_states(&StateInput::Discrete(ids))
        .unwrap()
        .squeeze(0)
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    // (0,0) + (1,1) = (1,0) + (0,1), coordinate by coordinate.
    for (((a, b), c), d) in e[0].iter().zip(&e[3]).zip(&e[1]).zip(&e[2]) {
        assert!((a + b - c - d).abs() < 1e-6);
    }
    assert!(e[0] != e[1]);
    let table_only = RlSpaces {
        state_coords: None,
        ..discrete_spaces()
    };
    let err = RlHeadsModel::new(&cfg, &table_only, seed::rng(0, "init", &[]))
        .err()
        .unwrap();
    assert!(format!("{err:#}").contains("no coordinates"), "{err:#}");
}

#[test]
fn rl_heads_every_parameter_gets_a_gradient() {
    let cases = [
        (
            tiny_rl_config(TokenLayout::Sar, PositionEmbedding::PerToken),
            discrete_spaces(),
        ),
        (
            RlHeadsConfig {
                token_mask_prob: 0.2,
                embed_logprob: true,
                label_smoothing: 0.1,
                ..tiny_rl_config(TokenLayout::Fused, PositionEmbedding::PerStep)
            },
            continuous_spaces(),
        ),
        (
            RlHeadsConfig {
                token_mask_prob: 0.2,
                ..tiny_rl_config(TokenLayout::Sar, PositionEmbedding::PerStep)
            },
            continuous_spaces(),
        ),
        (
            RlHeadsConfig {
                state_embedding: StateEmbeddingKind::Coords,
                ..tiny_rl_config(TokenLayout::Fused, PositionEmbedding::PerToken)
            },
            grid_spaces(),
        ),
    ];
    for (cfg, spaces) in cases {
        let model = RlHeadsModel::new(&cfg, &spaces, seed::rng(0, "init", &[])).unwrap();
        let mut rng = seed::rng(0, "data", &[]);
        let batch = random_rl_batch(&spaces, 3, cfg.context_steps, &mut rng);
        let out = model.forward(&batch, Some(&mut rng)).unwrap();
        let loss = model.loss(&out, &batch).unwrap();
        let params = model.params();
        let grads = Gradients::from_store(&loss.total.backward().unwrap(), &params).unwrap();
        assert_every_param_has_grad(
            &params,
            &grads,
            &format!("{:?}/{:?}", cfg.layout, cfg.position),
        );
        assert!(loss.metrics.reward_acc.is_some() && loss.metrics.state_acc.is_some());
    }
}

/// The shipped YAML defaults (dropout, masking, heads), shrunk to test size.
fn yaml_defaults(kind: &str) -> ModelConfig {
    let text = if kind == "rl_heads" {
        RL_HEADS_YAML
    } else {
        CAUSAL_LM_YAML
    };
    let mut cfg: ModelConfig = serde_yaml_ng::from_str(text).unwrap();
    match &mut cfg {
        ModelConfig::RlHeads(c) => {
            (c.d_model, c.n_layers, c.n_heads, c.d_ff, c.context_steps) = (16, 2, 2, 32, 6);
        }
        ModelConfig::CausalLm(c) => {
            (c.d_model, c.n_layers, c.n_heads, c.d_ff, c.context_tokens) = (16, 2, 2, 32, 12);
        }
    }
    cfg
}

#[test]
fn yaml_default_models_give_every_parameter_a_gradient() {
    let ModelConfig::RlHeads(rl) = yaml_defaults("rl_heads") else {
        unreachable!()
    };
    let spaces = discrete_spaces();
    let model = RlHeadsModel::new(&rl, &spaces, seed::rng(0, "init", &[])).unwrap();
    let mut rng = seed::rng(0, "data", &[]);
    let batch = random_rl_batch(&spaces, 3, rl.context_steps, &mut rng);
    let loss = model
        .loss(&model.forward(&batch, Some(&mut rng)).unwrap(), &batch)
        .unwrap();
    let params = model.params();
    let grads = Gradients::from_store(&loss.total.backward().unwrap(), &params).unwrap();
    assert_every_param_has_grad(&params, &grads, "rl_heads.yaml");

    let ModelConfig::CausalLm(lm) = yaml_defaults("causal_lm") else {
        unreachable!()
    };
    let model = CausalLm::new(&lm, 11, seed::rng(0, "init", &[])).unwrap();
    let ids = random_ids(2, 12, 11, &mut rng);
    let mask = Tensor::ones((2, 12), candle_core::DType::F32, &Device::Cpu).unwrap();
    let loss = model
        .loss(&model.forward(&ids, Some(&mut rng)).unwrap(), &ids, &mask)
        .unwrap();
    let params = model.params();
    let grads = Gradients::from_store(&loss.loss.backward().unwrap(), &params).unwrap();
    assert_every_param_has_grad(&params, &grads, "causal_lm.yaml");
}

#[test]
fn causal_lm_every_parameter_gets_a_gradient() {
    let cfg = tiny_lm_config();
    let model = CausalLm::new(&cfg, 11, seed::rng(0, "init", &[])).unwrap();
    let mut rng = seed::rng(0, "data", &[]);
    let ids = random_ids(2, 12, 11, &mut rng);
    let logits = model.forward(&ids, Some(&mut rng)).unwrap();
    let mask = Tensor::ones((2, 12), candle_core::DType::F32, &Device::Cpu).unwrap();
    let loss = model.loss(&logits, &ids, &mask).unwrap();
    let params = model.params();
    let grads = Gradients::from_store(&loss.loss.backward().unwrap(), &params).unwrap();
    assert_every_param_has_grad(&params, &grads, "causal_lm");
}

#[test]
fn same_seed_same_init_and_dropout() {
    let cfg = tiny_lm_config();
    let run = || {
        let model = CausalLm::new(&cfg, 11, seed::rng(3, "init", &[])).unwrap();
        let mut rng = seed::rng(3, "dropout", &[]);
        let ids = random_ids(2, 12, 11, &mut seed::rng(3, "data", &[]));
        model.forward(&ids, Some(&mut rng)).unwrap()
    };
    assert_eq!(max_abs_diff(&run(), &run()), 0.0);
}

#[test]
fn rl_decoder_matches_full_forward_including_slides() {
    // Kept fractions 0.5 (rebuild every other step) and 0.99 (slide by one step each time).
    for (layout, kept) in [
        (TokenLayout::Sar, 0.5),
        (TokenLayout::Fused, 0.5),
        (TokenLayout::Fused, 0.99),
    ] {
        for (position, spaces) in [
            (PositionEmbedding::PerToken, discrete_spaces()),
            (PositionEmbedding::PerStep, continuous_spaces()),
        ] {
            let cfg = RlHeadsConfig {
                context_steps: 4,
                ..tiny_rl_config(layout, position)
            };
            let model = RlHeadsModel::new(&cfg, &spaces, seed::rng(1, "init", &[])).unwrap();
            let b = 2;
            let steps = 11;
            let history = random_rl_batch(&spaces, b, steps, &mut seed::rng(1, "data", &[]));
            let mut decoder = RlDecoder::new(&model, b, kept);
            let mut slid = false;
            for t in 0..steps {
                let step = history.narrow_steps(t, 1).unwrap();
                let state_values;
                let state_ids;
                let state = match &step.states {
                    StateInput::Discrete(s) => {
                        state_ids = s.flatten_all().unwrap().to_vec1::<u32>().unwrap();
                        StateStep::Discrete(&state_ids)
                    }
                    StateInput::Continuous(s) => {
                        state_values = s.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                        StateStep::Continuous(&state_values)
                    }
                };
                let cached = decoder.observe_state(&model, state).unwrap();
                let start = decoder.window_start();
                slid |= start > 0;
                let window = history.narrow_steps(start, t + 1 - start).unwrap();
                let full = model.forward(&window, None).unwrap().action_logits;
                let last = full.narrow(1, t - start, 1).unwrap().squeeze(1).unwrap();
                let diff = max_abs_diff(&cached, &last);
                assert!(
                    diff < 1e-4,
                    "{layout:?}/{position:?} step {t}: cached vs full differ by {diff}"
                );
                let actions = step
                    .actions
                    .flatten_all()
                    .unwrap()
                    .to_vec1::<u32>()
                    .unwrap();
                let rewards: Vec<f32> = match (&step.rewards, &spaces.rewards) {
                    (RewardInput::Classes(ids), RewardSpace::Classes(values)) => ids
                        .flatten_all()
                        .unwrap()
                        .to_vec1::<u32>()
                        .unwrap()
                        .iter()
                        .map(|&i| values[i as usize])
                        .collect(),
                    (RewardInput::Values(v), _) => {
                        v.flatten_all().unwrap().to_vec1::<f32>().unwrap()
                    }
                    _ => unreachable!(),
                };
                let logprobs = step
                    .logprobs
                    .flatten_all()
                    .unwrap()
                    .to_vec1::<f32>()
                    .unwrap();
                decoder
                    .observe_outcome(&model, &actions, &rewards, &logprobs)
                    .unwrap();
            }
            assert!(slid, "the window never slid");
        }
    }
}

#[test]
fn lm_decoder_matches_full_forward_including_slides() {
    let cfg = tiny_lm_config();
    let model = CausalLm::new(&cfg, 11, seed::rng(2, "init", &[])).unwrap();
    let b = 2;
    let mut rng = seed::rng(2, "data", &[]);
    let mut decoder = LmDecoder::new(&model, b);
    // A 3-token prompt, then single tokens well past the 12-token context.
    let mut chunks: Vec<usize> = vec![3];
    chunks.extend(std::iter::repeat_n(1, 20));
    chunks.push(4);
    let mut slid = false;
    for k in chunks {
        let ids = random_ids(b, k, 11, &mut rng);
        let rows: Vec<Vec<u32>> = ids.to_vec2::<u32>().unwrap();
        let cached = decoder.feed(&model, &rows).unwrap();
        let window = decoder.window();
        slid |= window[0].len() < decoder_history_len(&decoder);
        let t = window[0].len();
        let full_ids = Tensor::from_vec(window.concat(), (b, t), &Device::Cpu).unwrap();
        let full = model.forward(&full_ids, None).unwrap();
        let last = full.narrow(1, t - 1, 1).unwrap().squeeze(1).unwrap();
        assert!(max_abs_diff(&cached, &last) < 1e-4);
    }
    assert!(slid);
}

fn decoder_history_len(d: &LmDecoder) -> usize {
    d.history_len()
}

#[test]
fn gpt2_hf_checkpoint_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = CausalLmConfig {
        activation: Activation::GeluTanh,
        ..tiny_lm_config()
    };
    let model = CausalLm::new(&cfg, 11, seed::rng(4, "init", &[])).unwrap();
    let ids = random_ids(2, 7, 11, &mut seed::rng(4, "data", &[]));
    let expected = model.forward(&ids, None).unwrap();

    // 1. Our own save (GPT2LMHeadModel names, `transformer.` prefix).
    let saved = dir.path().join("saved");
    model.save_hf(&saved).unwrap();
    let hf: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(saved.join("config.json")).unwrap()).unwrap();
    assert_eq!(hf["activation_function"], "gelu_new");
    assert_eq!(hf["n_embd"], 16);
    let tensors = params::read_safetensors(&saved.join("model.safetensors")).unwrap();
    assert_eq!(
        tensors["transformer.h.0.attn.c_attn.weight"].dims(),
        &[16, 48]
    );
    assert_eq!(tensors["transformer.wte.weight"].dims(), &[11, 16]);

    // 2. A checkpoint in the bare GPT2Model naming, with HF's causal-mask buffers, written the
    //    way the Hub stores it; sizes in the YAML config are overridden by config.json.
    let bare = dir.path().join("bare");
    let mut named: Vec<(String, Tensor)> = tensors
        .iter()
        .map(|(k, v)| {
            (
                k.strip_prefix("transformer.").unwrap().to_string(),
                v.clone(),
            )
        })
        .collect();
    named.push((
        "h.0.attn.bias".into(),
        Tensor::ones((1, 1, 12, 12), candle_core::DType::F32, &Device::Cpu).unwrap(),
    ));
    named.sort_by(|a, b| a.0.cmp(&b.0));
    crate::fsutil::write_atomic(
        &bare.join("model.safetensors"),
        &params::safetensors_bytes(&named, None).unwrap(),
    )
    .unwrap();
    std::fs::copy(saved.join("config.json"), bare.join("config.json")).unwrap();

    for path in [&saved, &bare] {
        let yaml_cfg = CausalLmConfig {
            d_model: 64,
            n_layers: 1,
            init_from: Some(path.clone()),
            ..tiny_lm_config()
        };
        let loaded = CausalLm::new(&yaml_cfg, 999, seed::rng(9, "init", &[])).unwrap();
        assert_eq!(loaded.vocab_size, 11);
        let got = loaded.forward(&ids, None).unwrap();
        assert_eq!(max_abs_diff(&got, &expected), 0.0, "{}", path.display());
    }

    // 3. A missing tensor is named, with the file.
    named.retain(|(k, _)| k != "h.1.mlp.c_fc.bias");
    crate::fsutil::write_atomic(
        &bare.join("model.safetensors"),
        &params::safetensors_bytes(&named, None).unwrap(),
    )
    .unwrap();
    let err = CausalLm::from_pretrained(&bare, &tiny_lm_config(), seed::rng(0, "init", &[]))
        .err()
        .unwrap();
    let msg = format!("{err:#}");
    assert!(
        msg.contains("h.1.mlp.c_fc.bias") && msg.contains("model.safetensors"),
        "{msg}"
    );
}

fn overfit_optimizer() -> OptimizerConfig {
    OptimizerConfig {
        name: "adamw".into(),
        lr: 1e-2,
        betas: [0.9, 0.95],
        eps: 1e-8,
        weight_decay: 0.0,
        decay_embeddings: false,
        schedule: ScheduleKind::Constant,
        warmup_steps: 0,
        min_lr: 0.0,
        grad_clip: 1.0,
    }
}

#[test]
fn rl_heads_overfits_a_fixed_batch() {
    let cfg = RlHeadsConfig {
        dropout: 0.0,
        attn_dropout: 0.0,
        ..tiny_rl_config(TokenLayout::Sar, PositionEmbedding::PerToken)
    };
    let spaces = discrete_spaces();
    let model = RlHeadsModel::new(&cfg, &spaces, seed::rng(5, "init", &[])).unwrap();
    let batch = random_rl_batch(&spaces, 4, 6, &mut seed::rng(5, "data", &[]));
    let params = model.params();
    let mut opt = AdamW::new(&overfit_optimizer(), &params).unwrap();
    let mut first = None;
    let mut last = RlMetrics::default();
    for _ in 0..40 {
        let loss = model
            .loss(&model.forward(&batch, None).unwrap(), &batch)
            .unwrap();
        first.get_or_insert(loss.metrics.clone());
        last = loss.metrics.clone();
        let mut grads = Gradients::from_store(&loss.total.backward().unwrap(), &params).unwrap();
        crate::optim::clip::clip_global_norm(&mut grads, 1.0);
        opt.step(&params, &grads, 1e-2).unwrap();
    }
    // Saved weights load into a fresh model and give the same predictions.
    let dir = tempfile::tempdir().unwrap();
    model
        .save_weights(&dir.path().join("w.safetensors"))
        .unwrap();
    let fresh = RlHeadsModel::new(&cfg, &spaces, seed::rng(77, "init", &[])).unwrap();
    fresh
        .load_weights(&dir.path().join("w.safetensors"))
        .unwrap();
    let (a, b) = (
        model.forward(&batch, None).unwrap(),
        fresh.forward(&batch, None).unwrap(),
    );
    assert_eq!(max_abs_diff(&a.action_logits, &b.action_logits), 0.0);
    let first = first.unwrap();
    assert!(
        last.action_loss < 0.3 * first.action_loss,
        "{first:?} -> {last:?}"
    );
    assert!(last.action_acc > 0.9, "{last:?}");
    assert!(
        last.reward_loss.unwrap() < 0.5 * first.reward_loss.unwrap(),
        "{first:?} -> {last:?}"
    );
}

#[test]
fn causal_lm_overfits_a_fixed_batch() {
    let cfg = CausalLmConfig {
        dropout: 0.0,
        attn_dropout: 0.0,
        ..tiny_lm_config()
    };
    let model = CausalLm::new(&cfg, 11, seed::rng(6, "init", &[])).unwrap();
    let mut rng = seed::rng(6, "data", &[]);
    let tokens = random_ids(4, 13, 11, &mut rng);
    let inputs = tokens.narrow(1, 0, 12).unwrap();
    let targets = tokens.narrow(1, 1, 12).unwrap().contiguous().unwrap();
    let mask = Tensor::ones((4, 12), candle_core::DType::F32, &Device::Cpu).unwrap();
    let params = model.params();
    let mut opt = AdamW::new(&overfit_optimizer(), &params).unwrap();
    let (mut first, mut last) = (None, 0.0);
    for _ in 0..40 {
        let loss = model
            .loss(&model.forward(&inputs, None).unwrap(), &targets, &mask)
            .unwrap();
        first.get_or_insert(loss.loss_value);
        last = loss.loss_value;
        let grads = Gradients::from_store(&loss.loss.backward().unwrap(), &params).unwrap();
        opt.step(&params, &grads, 1e-2).unwrap();
    }
    assert!(last < 0.3 * first.unwrap(), "{first:?} -> {last}");
}
