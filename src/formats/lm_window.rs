//! Language-model context windows: runs of whole rendered steps (a window never starts or
//! ends mid-step) of at most `context_tokens` tokens, each preceded by the end-of-text token,
//! with next-token targets and masks marking the action and reward tokens. Training windows
//! are drawn uniformly over (train history, start step); validation windows are a fixed,
//! evenly spaced set over test-split histories.
//!
//! Layout of a row: tokens `W = [eot, s0, s1, …, s(n−1)]` of the window's steps;
//! `input_ids = W[..n]`, `targets = W[1..]`, padded to `context_tokens` with the pad id and
//! `loss_mask` 0. So target position `k` is the window's `k`-th step token, and the token
//! ranges in [`LmStepTargets`] index targets (and the logits predicting them) directly.
//!
//! Steps are tokenised once each and interned (discrete tasks repeat a few hundred distinct
//! step texts), so a history costs a step-kind id and a token offset per step.

use super::corpus::step_texts;
use super::language::LanguageFormat;
use super::starts::{StartTable, WindowStart};
use super::tokenizer::TextTokenizer;
use crate::tasks::{LearningHistory, Split};
use anyhow::{bail, Result};
use rand::Rng;
use std::collections::HashMap;
use std::ops::Range;

/// One distinct rendered step as tokens; ranges index `tokens`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct StepTokens {
    tokens: Vec<u32>,
    action: Range<usize>,
    reward: Range<usize>,
}

#[derive(Debug, Clone, Default)]
struct TokenizedHistory {
    /// Step-kind id of each step.
    kinds: Vec<u32>,
    /// Token offset of each step, plus the total at the end.
    offsets: Vec<u64>,
    actions: Vec<u32>,
    rewards: Vec<f32>,
}

/// A step inside a window: where its action and reward tokens are among the row's targets.
#[derive(Debug, Clone, PartialEq)]
pub struct LmStepTargets {
    pub action: Range<usize>,
    pub reward: Range<usize>,
    pub action_id: u32,
    /// The logged reward, for reward accuracy via [`super::fields::RewardText::matches`].
    pub reward_value: f32,
}

/// A batch of LM windows, row-major `[batch, seq_len]`.
#[derive(Debug, Clone, PartialEq)]
pub struct LmWindowBatch {
    pub batch: usize,
    /// `context_tokens`.
    pub seq_len: usize,
    pub input_ids: Vec<u32>,
    pub targets: Vec<u32>,
    /// 1 on every real target, 0 on padding.
    pub loss_mask: Vec<f32>,
    /// 1 on targets that are tokens of an action text.
    pub action_mask: Vec<f32>,
    /// 1 on targets that are tokens of a reward text.
    pub reward_mask: Vec<f32>,
    /// Per row, its steps in order.
    pub steps: Vec<Vec<LmStepTargets>>,
    pub starts: Vec<WindowStart>,
}

/// Tokenised histories of a dataset, ready to cut windows from.
#[derive(Debug)]
pub struct LmWindows {
    context_tokens: usize,
    end_of_text: u32,
    kinds: Vec<StepTokens>,
    /// By dataset history index (both splits).
    histories: Vec<TokenizedHistory>,
    train: StartTable,
    test: StartTable,
}

impl LmWindows {
    /// Renders and tokenises `histories` (the dataset's full list). Errors if one step alone
    /// exceeds `context_tokens`.
    pub fn new(
        format: &LanguageFormat,
        tokenizer: &TextTokenizer,
        histories: &[LearningHistory],
        context_tokens: usize,
    ) -> Result<LmWindows> {
        let mut kinds: Vec<StepTokens> = Vec::new();
        let mut interned: HashMap<(String, [usize; 4]), u32> = HashMap::new();
        let mut segment_cache: HashMap<String, Vec<u32>> = HashMap::new();
        let mut tokenized = Vec::with_capacity(histories.len());
        for h in histories {
            let mut th = TokenizedHistory {
                kinds: Vec::with_capacity(h.len()),
                offsets: Vec::with_capacity(h.len() + 1),
                actions: h.actions.clone(),
                rewards: h.rewards.clone(),
            };
            let mut total = 0u64;
            step_texts(format, h, |_, step| {
                let key = (step.text, step.edges);
                let id = match interned.get(&key) {
                    Some(&id) => id,
                    None => {
                        let st = StepTokens::encode(&key.0, key.1, tokenizer, &mut segment_cache)?;
                        if st.tokens.len() > context_tokens {
                            bail!(
                                "one step is {} tokens but the context holds {context_tokens}: \
                                 increase the model's context or use a shorter format ({:?})",
                                st.tokens.len(),
                                key.0
                            );
                        }
                        kinds.push(st);
                        let id = (kinds.len() - 1) as u32;
                        interned.insert(key, id);
                        id
                    }
                };
                th.offsets.push(total);
                th.kinds.push(id);
                total += kinds[id as usize].tokens.len() as u64;
                Ok(())
            })?;
            th.offsets.push(total);
            tokenized.push(th);
        }
        let budget = context_tokens as u64;
        let table = |split: Split| {
            StartTable::new(
                histories
                    .iter()
                    .zip(&tokenized)
                    .enumerate()
                    .filter(|(_, (h, _))| h.split == split && !h.is_empty())
                    .map(|(i, (_, th))| {
                        // Starts past the first one whose window reaches the end would only
                        // give windows contained in that one.
                        let end = *th.offsets.last().unwrap_or(&0);
                        let last = th.offsets.partition_point(|&o| end - o > budget);
                        (i, last.min(th.kinds.len() - 1) + 1)
                    }),
            )
        };
        Ok(LmWindows {
            context_tokens,
            end_of_text: tokenizer.end_of_text_id(),
            kinds,
            train: table(Split::Train),
            test: table(Split::Test),
            histories: tokenized,
        })
    }

    pub fn context_tokens(&self) -> usize {
        self.context_tokens
    }

    /// Number of distinct step texts seen (a measure of how repetitive the corpus is).
    pub fn distinct_steps(&self) -> usize {
        self.kinds.len()
    }

    /// A training batch of windows drawn uniformly over (train history, start step).
    pub fn sample_train(&self, rng: &mut impl Rng, batch_size: usize) -> Result<LmWindowBatch> {
        let starts: Option<Vec<WindowStart>> =
            (0..batch_size).map(|_| self.train.sample(rng)).collect();
        match starts {
            Some(s) => Ok(self.batch(&s)),
            None => bail!("no train-split history has any step to train on"),
        }
    }

    /// The fixed validation set: `n` window starts evenly spaced over test-split histories.
    pub fn validation_starts(&self, n: usize) -> Result<Vec<WindowStart>> {
        if self.test.is_empty() {
            bail!("no test-split histories: validation needs held-out tasks (task.split.test_fraction > 0)");
        }
        Ok(self.test.evenly_spaced(n))
    }

    /// The windows starting at `starts`: as many whole steps from each start as fit.
    pub fn batch(&self, starts: &[WindowStart]) -> LmWindowBatch {
        let (b, t) = (starts.len(), self.context_tokens);
        let mut out = LmWindowBatch {
            batch: b,
            seq_len: t,
            input_ids: vec![self.end_of_text; b * t],
            targets: vec![self.end_of_text; b * t],
            loss_mask: vec![0.0; b * t],
            action_mask: vec![0.0; b * t],
            reward_mask: vec![0.0; b * t],
            steps: Vec::with_capacity(b),
            starts: starts.to_vec(),
        };
        for (row, w) in starts.iter().enumerate() {
            let mut steps = Vec::new();
            if let Some(h) = self.histories.get(w.history) {
                let targets = &mut out.targets[row * t..(row + 1) * t];
                let mut n = 0;
                for s in w.start..h.kinds.len() {
                    let kind = &self.kinds[h.kinds[s] as usize];
                    if n + kind.tokens.len() > t {
                        break;
                    }
                    targets[n..n + kind.tokens.len()].copy_from_slice(&kind.tokens);
                    let shift = |r: &Range<usize>| r.start + n..r.end + n;
                    steps.push(LmStepTargets {
                        action: shift(&kind.action),
                        reward: shift(&kind.reward),
                        action_id: h.actions[s],
                        reward_value: h.rewards[s],
                    });
                    n += kind.tokens.len();
                }
                let at = row * t;
                out.input_ids[at + 1..at + n.max(1)].copy_from_slice(&targets[..n.max(1) - 1]);
                out.loss_mask[at..at + n].fill(1.0);
                for st in &steps {
                    out.action_mask[at + st.action.start..at + st.action.end].fill(1.0);
                    out.reward_mask[at + st.reward.start..at + st.reward.end].fill(1.0);
                }
            }
            out.steps.push(steps);
        }
        out
    }
}

impl StepTokens {
    fn encode(
        text: &str,
        edges: [usize; 4],
        tokenizer: &TextTokenizer,
        cache: &mut HashMap<String, Vec<u32>>,
    ) -> Result<StepTokens> {
        let [a, b, c, d] = edges;
        let segments = [&text[..a], &text[a..b], &text[b..c], &text[c..d], &text[d..]];
        let mut tokens = Vec::new();
        let mut bounds = [0usize; 5];
        for (i, seg) in segments.iter().enumerate() {
            if !seg.is_empty() {
                let ids = match cache.get(*seg) {
                    Some(ids) => ids,
                    None => cache
                        .entry(seg.to_string())
                        .or_insert(tokenizer.encode(seg)?),
                };
                tokens.extend_from_slice(ids);
            }
            bounds[i] = tokens.len();
        }
        if bounds[1] == bounds[0] || bounds[3] == bounds[2] {
            bail!("the action or reward of step {text:?} encodes to no tokens");
        }
        Ok(StepTokens {
            tokens,
            action: bounds[0]..bounds[1],
            reward: bounds[2]..bounds[3],
        })
    }
}
