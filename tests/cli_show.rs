//! `adlab show`: a learning history printed as the format presents it to the model — Dark Room
//! in the `coords` text format and in the RL format, and RLHF rollouts in `rlhf_text` —
//! with token boundaries, marked targets, token counts and the window's reach.

mod common;
use common::*;

/// The built-in RLHF source shrunk to seconds (as in cli_rlhf.rs).
const TINY_RLHF: &[&str] = &[
    "+experiment=rlhf_ad",
    "task.runs=3",
    "task.ppo.epochs=4",
    "task.ppo.num_rollouts=8",
    "task.ppo.chunk_size=8",
    "task.ppo.batch_size=8",
    "task.policy.pretrain_steps=20",
];

fn show(s: &Scratch, args: &[&str]) -> String {
    stdout_of(s.adlab_with_paths("show", args))
}

/// The token line of the first printed step.
fn first_tokens(out: &str) -> &str {
    out.lines()
        .find_map(|l| l.strip_prefix("    tokens: "))
        .unwrap_or_else(|| panic!("no token line in:\n{out}"))
}

#[test]
fn darkroom_in_coords_shows_byte_tokens_with_marked_actions_and_rewards() {
    let s = Scratch::new();
    let out = show(&s, &["task=darkroom", "format=coords"]);
    assert!(
        out.starts_with(
            "task darkroom (env darkroom): history 0 of 81 — task 0, train split, 8000 steps"
        ),
        "{out}"
    );
    assert!(
        out.contains("format coords (language), byte tokenizer, vocabulary 257 tokens"),
        "{out}"
    );
    // A text format with the default model is shown as the causal LM reads it.
    assert!(
        out.contains("model causal_lm (causal_lm) — model=causal_lm"),
        "{out}"
    );
    for section in [
        "── start: steps 0–2 of 8000 ──",
        "── middle: steps 3998–4000 of 8000 ──",
        "── end: steps 7997–7999 of 8000 ──",
    ] {
        assert!(out.contains(section), "{section}\n{out}");
    }
    // Step 0 starts at the centre, (4,4); every byte is a token; the action's tokens and the
    // reward's are marked; the separator is visible.
    assert!(out.contains("step 0 · episode 0, step 0 · "), "{out}");
    assert!(out.contains("    │ (4,4) "), "{out}");
    let tokens = first_tokens(&out);
    assert!(tokens.starts_with("(|4|,|4|)|·|[a:"), "{tokens}");
    let action = tokens
        .split("[a:")
        .nth(1)
        .and_then(|t| t.split(']').next())
        .unwrap();
    assert!(
        ["u|p", "d|o|w|n", "l|e|f|t", "r|i|g|h|t", "s|t|a|y"].contains(&action),
        "{tokens}"
    );
    assert!(tokens.ends_with("]|·|[r:0]|⏎"), "{tokens}");
    // An episode's last step carries the separator.
    assert!(out.contains("|#|#|#|⏎"), "{out}");
    // 20 steps per episode, 256 tokens of context: about 20 steps, one episode.
    assert!(
        out.contains("per step, ") && out.contains(" per episode (20 steps per episode); "),
        "{out}"
    );
    let context = out
        .lines()
        .find(|l| l.starts_with("context: model.context_tokens = 256: one training window holds"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(context.ends_with("episodes"), "{context}");
    assert!(
        !out.contains('\x1b'),
        "no colour when stdout is not a terminal"
    );

    // On request, colour replaces the markers.
    let coloured = show(
        &s,
        &[
            "task=darkroom",
            "format=coords",
            "--color",
            "always",
            "--steps",
            "1",
        ],
    );
    assert!(coloured.contains("\x1b[30;42m"), "{coloured}");
    assert!(coloured.contains("\x1b[30;43m0\x1b[0m"), "{coloured}");
    assert!(!first_tokens(&coloured).contains("[a:"));
}

#[test]
fn darkroom_in_the_rl_format_shows_state_action_reward_tokens() {
    let s = Scratch::new();
    let out = show(&s, &["task=darkroom", "--steps", "2", "--history", "1"]);
    assert!(out.contains("history 1 of 81"), "{out}");
    assert!(
        out.contains("format rl (rl): 3 tokens per step: state, action, reward"),
        "{out}"
    );
    assert!(out.contains("model rl_heads (rl_heads)\n"), "{out}");
    assert!(
        out.contains("context: model.context_steps = 64 (192 tokens): one training window holds 64 whole steps = 3.2 episodes"),
        "{out}"
    );
    assert!(
        out.contains("tokens: 3 per step, 60 per episode (20 steps per episode)"),
        "{out}"
    );
    let first = out
        .lines()
        .find(|l| l.starts_with("    [s:"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(first.starts_with("    [s:(4,4)] [a:"), "{first}");
    assert!(first.ends_with("] [r:0]"), "{first}");
    assert!(out.contains("step 19 · episode 0, step 19, logprob") || out.contains(", done"));
}

#[test]
fn rlhf_ad_shows_rollouts_with_the_completion_and_reward_marked() {
    let s = Scratch::new();
    let out = show(&s, TINY_RLHF);
    assert!(out.starts_with("task sentiment_rlhf: source run "), "{out}");
    assert!(out.contains("4 PPO epochs, 32 rollouts"), "{out}");
    assert!(
        out.contains("format rlhf_text (rlhf_text), BPE tokenizer"),
        "{out}"
    );
    assert!(out.contains("── start: rollouts 0–2 of 32 ──"), "{out}");
    assert!(out.contains("── end: rollouts 29–31 of 32 ──"), "{out}");
    assert!(out.contains("rollout 0 · epoch 0, rollout 0 · "), "{out}");
    assert!(out.contains("    │ prompt: "), "{out}");
    assert!(out.contains("    │ completion: "), "{out}");
    assert!(out.contains("    │ reward: "), "{out}");
    let tokens = first_tokens(&out);
    assert!(tokens.contains("[a:"), "{tokens}");
    assert!(tokens.contains("[r:"), "{tokens}");
    // The completion is marked after `completion:` and the reward after `reward:`.
    let a = tokens.find("[a:").unwrap();
    let r = tokens.find("[r:").unwrap();
    assert!(a < r, "{tokens}");
    assert!(out.contains(" per rollout, "), "{out}");
    assert!(
        out.contains(" per PPO epoch (8 rollouts per PPO epoch)"),
        "{out}"
    );
    assert!(
        out.contains("context: model.context_tokens = 384: one training window holds"),
        "{out}"
    );

    // The same histories in the RL format: a step per generated token.
    let mut args = vec!["task=sentiment_rlhf", "model=rl_heads"];
    args.extend(&TINY_RLHF[1..]);
    args.extend(["--steps", "1"]);
    let out = show(&s, &args);
    assert!(out.contains("format rl (rl): 3 tokens per step"), "{out}");
    assert!(out.contains("a rollout is an episode"), "{out}");
    assert!(out.contains("    [s:("), "{out}");
    assert!(out.contains("rollout 0, step 0, logprob"), "{out}");
}

#[test]
fn bad_requests_say_what_is_wrong() {
    let s = Scratch::new();
    let out = s
        .adlab_with_paths("show", &["task=bandit", "--history", "100000"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--history 100000: the task has"), "{err}");

    let out = s
        .adlab_with_paths("show", &["task=darkroom", "format=rlhf_text"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("rlhf_text"), "{err}");
}
