//! RLHF histories as RL steps, token by token, so the RL-heads transformer can learn them too:
//! within a rollout, step `t` generates response token `t` — state = the token before it (the
//! prompt's last token for `t = 0`) and its position in the response, action = the generated
//! token id, reward = the logged per-token reward (KL penalty, plus the score on the last
//! token), logprob = the logged log-probability; a rollout is an episode.
//!
//! States are discrete: `token · positions + min(t, positions − 1)`, so the state table grows
//! with the vocabulary; a GPT-2-sized vocabulary needs few `positions` (`format.positions`).

use super::RlhfRun;
use crate::tasks::{EnvSpec, LearningHistory, RewardKind, Split, StateSpace};
use anyhow::{bail, Result};

/// Largest state table accepted (vocabulary × positions).
const MAX_STATES: usize = 4_000_000;

/// The environment spec and one learning history per run.
pub fn token_histories(
    runs: &[RlhfRun],
    splits: &[Split],
    positions: usize,
) -> Result<(EnvSpec, Vec<LearningHistory>)> {
    if positions == 0 {
        bail!("format.positions must be at least 1");
    }
    let mut vocab = 0usize;
    let mut longest = 0usize;
    for run in runs {
        for (epoch, r) in run.rollouts() {
            if r.response_ids.is_empty() || r.rewards.is_none() || r.logprobs.is_none() {
                bail!(
                    "run `{}`, epoch {epoch}: a rollout without token ids, rewards or logprobs \
                     cannot be an RL history (text-only logs need format=rlhf_text)",
                    run.id
                );
            }
            let max = r.query_ids.iter().chain(&r.response_ids).max().copied();
            vocab = vocab.max(max.unwrap_or(0) as usize + 1);
            longest = longest.max(r.response_ids.len());
        }
    }
    let n_states = vocab * positions;
    if n_states > MAX_STATES {
        bail!(
            "{vocab} token ids × {positions} positions = {n_states} states: too many for the \
             RL-heads state table (at most {MAX_STATES}); lower format.positions"
        );
    }
    let spec = EnvSpec {
        kind: "rlhf_tokens".into(),
        state: StateSpace::Discrete {
            n_states,
            coord_names: vec!["token".into(), "position".into()],
            coords: (0..n_states)
                .map(|s| vec![(s / positions) as i32, (s % positions) as i32])
                .collect(),
        },
        action_names: (0..vocab).map(|i| i.to_string()).collect(),
        reward: RewardKind::Continuous,
        max_episode_steps: longest,
    };
    let histories = runs
        .iter()
        .zip(splits)
        .enumerate()
        .map(|(i, (run, split))| {
            let mut h = LearningHistory::new(0);
            h.task_index = i as u32;
            h.split = *split;
            for (episode, (_, r)) in run.rollouts().enumerate() {
                let rewards = r.rewards.as_ref().expect("checked above");
                let logprobs = r.logprobs.as_ref().expect("checked above");
                let mut prev = r.query_ids.last().copied().unwrap_or(0);
                let n = r.response_ids.len();
                for (t, &tok) in r.response_ids.iter().enumerate() {
                    let state = prev as usize * positions + t.min(positions - 1);
                    h.push_step(
                        state as u32,
                        &[],
                        tok,
                        rewards[t],
                        logprobs[t],
                        t + 1 == n,
                        episode as u32,
                    );
                    prev = tok;
                }
            }
            h
        })
        .collect();
    Ok((spec, histories))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rlhf::{RlhfEpoch, Rollout};

    fn rollout(query: &[u32], response: &[u32], score: f32) -> Rollout {
        let n = response.len();
        let mut rewards = vec![-0.01; n];
        rewards[n - 1] += score;
        Rollout {
            query_ids: query.to_vec(),
            response_ids: response.to_vec(),
            query_text: String::new(),
            response_text: String::new(),
            logprobs: Some((0..n).map(|t| -(t as f32) - 1.0).collect()),
            values: None,
            rewards: Some(rewards),
            score: Some(score),
        }
    }

    #[test]
    fn every_generated_token_is_a_step_with_its_context_state() {
        let run = RlhfRun {
            id: "a".into(),
            config: serde_json::Value::Null,
            epochs: vec![
                RlhfEpoch {
                    timestamp: 1.0,
                    rollouts: vec![rollout(&[5, 6], &[7, 8, 9], 0.5)],
                },
                RlhfEpoch {
                    timestamp: 2.0,
                    rollouts: vec![rollout(&[4], &[3], 1.0)],
                },
            ],
        };
        let (spec, h) = token_histories(&[run], &[Split::Test], 2).unwrap();
        assert_eq!(spec.n_actions(), 10);
        let h = &h[0];
        assert_eq!(h.split, Split::Test);
        assert_eq!(h.actions, vec![7, 8, 9, 3]);
        // (prev token, position capped at 1): (6,0) (7,1) (8,1) | (4,0).
        assert_eq!(h.states, vec![12, 15, 17, 8]);
        assert_eq!(h.dones, vec![false, false, true, true]);
        assert_eq!(h.episodes, vec![0, 0, 0, 1]);
        assert_eq!(h.rewards, vec![-0.01, -0.01, 0.49, 0.99]);
        assert_eq!(h.logprobs, vec![-1.0, -2.0, -3.0, -1.0]);

        let text_only = RlhfRun {
            id: "t".into(),
            config: serde_json::Value::Null,
            epochs: vec![RlhfEpoch {
                timestamp: 1.0,
                rollouts: vec![Rollout {
                    rewards: None,
                    ..rollout(&[1], &[2], 0.0)
                }],
            }],
        };
        let err = token_histories(&[text_only], &[Split::Train], 2).unwrap_err();
        assert!(format!("{err}").contains("rlhf_text"), "{err}");
    }
}
