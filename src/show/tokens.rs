//! Steps of a learning history as the model's tokens: text steps encoded exactly as the LM
//! windows encode them (segment by segment, [`StepTokens`]), RL steps as their state, action
//! and reward fields.

use super::view::{Role, Step, Token};
use crate::formats::corpus::{step_texts, StepText};
use crate::formats::language::LanguageFormat;
use crate::formats::lm_window::StepTokens;
use crate::formats::rlhf_text::RlhfTextFormat;
use crate::rlhf::RlhfRun;
use crate::tasks::{EnvSpec, LearningHistory, StateSpace};
use crate::tokenizer::TextTokenizer;
use anyhow::Result;
use std::collections::HashMap;

/// Encodes steps, reusing the tokens of repeated step texts and of repeated ids.
struct Encoder<'t> {
    tokenizer: &'t TextTokenizer,
    steps: HashMap<StepText, StepTokens>,
    texts: HashMap<u32, String>,
}

impl<'t> Encoder<'t> {
    fn new(tokenizer: &'t TextTokenizer) -> Self {
        Encoder {
            tokenizer,
            steps: HashMap::new(),
            texts: HashMap::new(),
        }
    }

    fn step(&mut self, text: StepText, group: u32, label: String) -> Result<Step> {
        if !self.steps.contains_key(&text) {
            let st = StepTokens::from_step(&text, self.tokenizer)?;
            self.steps.insert(text.clone(), st);
        }
        let st = &self.steps[&text];
        let mut tokens = Vec::with_capacity(st.tokens.len());
        for (i, &id) in st.tokens.iter().enumerate() {
            let text = match self.texts.get(&id) {
                Some(t) => t.clone(),
                None => {
                    let t = self.tokenizer.decode(&[id])?;
                    self.texts.insert(id, t.clone());
                    t
                }
            };
            let role = if st.action.contains(&i) {
                Role::Action
            } else if st.reward.contains(&i) {
                Role::Reward
            } else {
                Role::Context
            };
            tokens.push(Token { text, role });
        }
        Ok(Step {
            group,
            label,
            tokens,
        })
    }
}

/// Every step of `history` rendered by `format` and tokenised as training does.
pub fn language_steps(
    format: &LanguageFormat,
    tokenizer: &TextTokenizer,
    history: &LearningHistory,
) -> Result<Vec<Step>> {
    let mut enc = Encoder::new(tokenizer);
    let mut out = Vec::with_capacity(history.len());
    let mut in_episode = 0u32;
    step_texts(format, history, |t, text| {
        let episode = history.episodes[t];
        out.push(enc.step(
            text,
            episode,
            format!("episode {episode}, step {in_episode}"),
        )?);
        in_episode = if history.dones[t] { 0 } else { in_episode + 1 };
        Ok(())
    })?;
    Ok(out)
}

/// Every rollout of `run`, in the order training packs them, as a step grouped by PPO epoch.
pub fn rlhf_steps(
    format: &RlhfTextFormat,
    tokenizer: &TextTokenizer,
    run: &RlhfRun,
) -> Result<Vec<Step>> {
    let rendered = format.render_run(run)?;
    let mut enc = Encoder::new(tokenizer);
    let positions = run
        .epochs
        .iter()
        .enumerate()
        .flat_map(|(e, ep)| (0..ep.rollouts.len()).map(move |i| (e, i)));
    rendered
        .into_iter()
        .zip(positions)
        .map(|((text, _, _), (epoch, i))| {
            enc.step(text, epoch as u32, format!("epoch {epoch}, rollout {i}"))
        })
        .collect()
}

/// Every step of `history` as the RL format's fields: state, action, reward tokens (the
/// logprob and episode end in the label). `group_noun` names what an episode is.
pub fn rl_steps(spec: &EnvSpec, history: &LearningHistory, group_noun: &str) -> Vec<Step> {
    let mut out = Vec::with_capacity(history.len());
    let mut in_episode = 0u32;
    for t in 0..history.len() {
        let state = match &spec.state {
            StateSpace::Discrete { coords, .. } => match coords.get(history.states[t] as usize) {
                Some(c) => format!(
                    "({})",
                    c.iter().map(i32::to_string).collect::<Vec<_>>().join(",")
                ),
                None => history.states[t].to_string(),
            },
            StateSpace::Continuous { .. } => format!(
                "[{}]",
                history
                    .features_at(t)
                    .iter()
                    .map(|x| format!("{x:.2}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let a = history.actions[t] as usize;
        let action = spec
            .action_names
            .get(a)
            .cloned()
            .unwrap_or_else(|| a.to_string());
        let done = if history.dones[t] { ", done" } else { "" };
        let episode = history.episodes[t];
        out.push(Step {
            group: episode,
            label: format!(
                "{group_noun} {episode}, step {in_episode}, logprob {:.2}{done}",
                history.logprobs[t]
            ),
            tokens: vec![
                Token {
                    text: state,
                    role: Role::State,
                },
                Token {
                    text: action,
                    role: Role::Action,
                },
                Token {
                    text: format!("{}", history.rewards[t]),
                    role: Role::Reward,
                },
            ],
        });
        in_episode = if history.dones[t] { 0 } else { in_episode + 1 };
    }
    out
}
