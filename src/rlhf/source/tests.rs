//! End-to-end tests of the source: PPO learns, runs are deterministic, every parameter learns.

use super::config::SentimentRlhfConfig;
use super::policy::{pretrain, Policy};
use super::ppo::{ppo_loss, run_ppo, Experience, RunInputs};
use super::*;
use crate::optim::Gradients;

pub(crate) fn small_config() -> SentimentRlhfConfig {
    let mut cfg =
        SentimentRlhfConfig::from_yaml(include_str!("../../../conf/task/sentiment_rlhf.yaml"))
            .unwrap();
    cfg.corpus.prompts = 200;
    cfg.runs = 1;
    cfg.search.clear(); // the tests set the hyperparameters they measure
    cfg
}

fn mean(xs: &[Option<f32>]) -> f32 {
    xs.iter().map(|x| x.unwrap()).sum::<f32>() / xs.len() as f32
}

/// Small enough for the test profile: a narrower policy, shorter pretraining and fewer epochs.
fn test_config() -> SentimentRlhfConfig {
    let mut cfg = small_config();
    cfg.policy.d_model = 32;
    cfg.policy.n_heads = 2;
    cfg.policy.d_ff = 64;
    cfg.policy.pretrain_steps = 150;
    cfg.ppo.lr = 2e-3;
    cfg.ppo.epochs = 20;
    cfg.ppo.num_rollouts = 32;
    cfg.ppo.batch_size = 16;
    cfg
}

#[test]
fn ppo_learns_to_write_positive_continuations() {
    let cfg = test_config();
    let t0 = std::time::Instant::now();
    let runs = generate_runs(&cfg, 0, false).unwrap();
    let curve = runs[0].score_curve();
    let (first, last) = (mean(&curve[..2]), mean(&curve[curve.len() - 3..]));
    eprintln!("score curve {curve:?} in {:?}", t0.elapsed());
    // The pretrained policy is sentiment-balanced (score about 0; one epoch's mean of 32
    // scores has a standard error near 0.1, so a non-learning policy's last-3 minus first-2
    // difference has one near 0.09). Seeds 0, 1, 2 measured: first 0.08, 0.01, -0.08; last
    // 0.68, 0.69, 0.59.
    assert!(
        first.abs() < 0.25,
        "pretrained policy is not balanced: {curve:?}"
    );
    assert!(
        last > first + 0.4 && last > 0.45,
        "PPO did not learn: {curve:?}"
    );
}

#[test]
fn same_seed_same_runs() {
    let mut cfg = test_config();
    cfg.policy.pretrain_steps = 10;
    cfg.ppo.epochs = 2;
    cfg.ppo.num_rollouts = 8;
    cfg.ppo.chunk_size = 4;
    cfg.ppo.batch_size = 4;
    cfg.ppo.ppo_epochs = 1;
    cfg.runs = 2;
    cfg.search
        .insert("lr".into(), config::SearchSpace::uniform(1e-4, 1e-3));
    let a = generate_runs(&cfg, 5, false).unwrap();
    let b = generate_runs(&cfg, 5, false).unwrap();
    assert_eq!(a, b);
    assert_ne!(a[0].id, a[1].id);
    assert_eq!(a[0].id.len(), 36);
    assert_ne!(
        a[0].config["lr"], a[1].config["lr"],
        "the search varies lr per run"
    );
    assert_eq!(a[0].config["cliprange"], 0.2);
    let stamps: Vec<f64> = a[0].epochs.iter().map(|e| e.timestamp).collect();
    assert_eq!(stamps, [ppo::BASE_TIMESTAMP, ppo::BASE_TIMESTAMP + 1.0]);
    let c = generate_runs(&cfg, 6, false).unwrap();
    assert_ne!(a[0].epochs, c[0].epochs);
    // Logged rollouts are consistent: one logprob, value and reward per response token, the
    // score inside the last reward, the texts decoding the ids.
    let tok = tokenizer().unwrap();
    for (_, r) in a[0].rollouts() {
        let n = r.response_ids.len();
        assert!(n >= 1 && n <= cfg.gen.max_new_tokens);
        for v in [&r.logprobs, &r.values, &r.rewards] {
            assert_eq!(v.as_ref().unwrap().len(), n);
        }
        assert!(r.logprobs.as_ref().unwrap().iter().all(|&l| l <= 0.0));
        assert_eq!(tok.decode(&r.response_ids).unwrap(), r.response_text);
        assert_eq!(tok.decode(&r.query_ids).unwrap(), r.query_text);
        assert!(
            !r.query_ids.contains(&tok.end_of_text_id()),
            "prompt padding stripped"
        );
    }
}

#[test]
fn one_ppo_backward_reaches_every_policy_and_value_parameter() {
    let mut cfg = test_config();
    cfg.policy.pretrain_steps = 0;
    let tok = tokenizer().unwrap();
    let policy = Policy::new(&cfg.policy, tok.vocab_size(), 0).unwrap();
    let r = cfg.gen.max_new_tokens;
    let eos = tok.end_of_text_id();
    let prompt = tok.encode("the old fisherman walked to the").unwrap();
    let response = tok.encode("harbor and felt happy").unwrap();
    let mut ids = policy::pad_prompt(&prompt, eos).unwrap();
    ids.extend(&response);
    ids.push(eos);
    ids.resize(story::PROMPT_TOKENS + r, eos);
    let n = response.len() + 1;
    let exp = Experience {
        ids,
        n,
        logprobs: vec![-3.0; n],
        values: vec![0.1; n],
        advantages: (0..n).map(|i| i as f32 - 1.5).collect(),
        returns: vec![0.8; n],
    };
    let batch = [&exp, &exp];
    let loss = ppo_loss(&policy, &batch, &cfg.ppo, r).unwrap();
    assert!(loss.pg_loss.is_finite() && loss.vf_loss > 0.0);
    let params = policy.params();
    assert!(params.names.iter().any(|n| n.starts_with("v_head.")));
    let grads = Gradients::from_store(&loss.loss.backward().unwrap(), &params).unwrap();
    let dead: Vec<&String> = params
        .names
        .iter()
        .zip(&grads.per_param)
        .filter(|(_, g)| g.iter().all(|x| *x == 0.0))
        .map(|(n, _)| n)
        .collect();
    assert!(dead.is_empty(), "parameters without gradient: {dead:?}");
}

#[test]
#[ignore = "manual: times the default config (cargo test --lib measure_default -- --ignored --nocapture)"]
fn measure_default_config() {
    crate::models::set_compute_threads(1);
    let cfg =
        SentimentRlhfConfig::from_yaml(include_str!("../../../conf/task/sentiment_rlhf.yaml"))
            .unwrap();
    // One run on one thread, phase by phase.
    let t0 = std::time::Instant::now();
    let tokenizer = tokenizer().unwrap();
    let base = Policy::new(&cfg.policy, tokenizer.vocab_size(), cfg.seed).unwrap();
    let loss = pretrain(&base, &tokenizer, &cfg.policy, cfg.seed).unwrap();
    let t_pretrain = t0.elapsed();
    let prompts = story::prompts(cfg.seed, PROMPT_LABEL, cfg.corpus.prompts);
    let inputs = RunInputs {
        cfg: &cfg,
        seed: cfg.seed,
        tokenizer: &tokenizer,
        prompts: &prompts,
        base: &base,
    };
    let t1 = std::time::Instant::now();
    run_ppo(&inputs, 0, |_| ()).unwrap();
    let t_ppo = t1.elapsed();
    eprintln!(
        "pretraining {t_pretrain:?} (loss {loss:.3}); one PPO run {t_ppo:?} = {:?} per epoch",
        t_ppo / cfg.ppo.epochs as u32
    );
    let t0 = std::time::Instant::now();
    let runs = generate_runs(&cfg, cfg.seed, false).unwrap();
    eprintln!("default config: {} runs in {:?}", runs.len(), t0.elapsed());
    for run in &runs {
        let curve = run.score_curve();
        eprintln!(
            "run {}: first epoch {:.3}, last epoch {:.3}",
            run.id,
            curve[0].unwrap(),
            curve.last().unwrap().unwrap()
        );
    }
}
