//! Algorithm distillation end to end, at the smallest scale where it reliably emerges: a 7×7
//! Dark Room (39 training goals, 10 held out) with noise-distillation histories that explore
//! until the goal is found, a 2-layer d=32 model with coordinate state embeddings, 1000
//! steps. On goals it never trained on, the model playing from an empty context must beat the
//! random policy by a clear margin and improve over its own episodes. A broken window, loss
//! mask, decoder or evaluation protocol leaves it at the random level.

mod common;

use common::{read_json, stdout_of, Scratch};

const SMALL_AD: &[&str] = &[
    "task=darkroom_noise_distill",
    "task.env.size=7",
    "task.env.episode_len=14",
    "task.histories.per_task=30",
    "task.histories.episodes=30",
    "model.layout=fused",
    "model.state_embedding=coords",
    "model.d_model=32",
    "model.n_layers=2",
    "model.n_heads=2",
    "model.d_ff=64",
    "model.context_steps=56",
    "model.dropout=0",
    "model.loss_weights.logprob=0",
    "optimizer.lr=3e-3",
    "optimizer.warmup_steps=50",
    "train.steps=1000",
    "train.batch_size=32",
    "train.eval_every=500",
    "eval.episodes=30",
    "eval.tasks=10",
    "eval.train_tasks=0",
    "eval.temperature=1.0",
    "eval.summary_k=5",
];

#[test]
fn ad_beats_random_on_held_out_dark_room_goals() {
    let s = Scratch::new();
    stdout_of(s.adlab_with_paths("run", SMALL_AD));
    let dir = &s.run_dirs("darkroom_noise_distill-rl_heads")[0];
    let summary = read_json(&dir.join("summary.json"));
    let test = &summary["splits"]["test"]["policies"];
    let last = |p: &str| test[p]["last_k_return"].as_f64().unwrap();
    let first = |p: &str| test[p]["first_k_return"].as_f64().unwrap();
    // Random ≈ 0.3 per episode, optimum 11.9; measured with seeds 0, 1, 2 the model goes
    // from ≈ 1 to 3.7–6.2 over its 30 episodes.
    assert!(
        last("model") > last("random") + 2.0,
        "model {} vs random {}: {test}",
        last("model"),
        last("random")
    );
    assert!(
        last("model") > first("model") + 1.0,
        "no in-context gain: {test}"
    );
}
