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

use super::corpus::{step_texts, StepText};
use super::language::LanguageFormat;
use super::starts::{StartTable, WindowStart};
use super::windows::Windows;
use crate::tasks::{LearningHistory, Split};
use crate::tokenizer::TextTokenizer;
use anyhow::{bail, Result};
use std::collections::HashMap;
use std::ops::Range;

/// One rendered step as tokens, encoded segment by segment (see [`super::corpus`]) so the
/// action and reward are whole tokens; ranges index `tokens`. The evaluator must encode its
/// context the same way for the model to see what it was trained on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepTokens {
    pub tokens: Vec<u32>,
    pub action: Range<usize>,
    pub reward: Range<usize>,
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
    /// The text before the action: the state, where the template shows it there.
    pub before_action: Range<usize>,
    pub action: Range<usize>,
    pub reward: Range<usize>,
    pub action_id: u32,
    /// The step's index in its history.
    pub index: usize,
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

/// Tokenises steps one history at a time, interning repeated step texts.
struct Builder<'t> {
    tokenizer: &'t TextTokenizer,
    context_tokens: usize,
    kinds: Vec<StepTokens>,
    interned: HashMap<(String, [usize; 4]), u32>,
    segment_cache: HashMap<String, Vec<u32>>,
    histories: Vec<TokenizedHistory>,
    splits: Vec<Split>,
}

impl<'t> Builder<'t> {
    fn new(tokenizer: &'t TextTokenizer, context_tokens: usize) -> Self {
        Builder {
            tokenizer,
            context_tokens,
            kinds: Vec::new(),
            interned: HashMap::new(),
            segment_cache: HashMap::new(),
            histories: Vec::new(),
            splits: Vec::new(),
        }
    }

    fn start_history(&mut self, split: Split) {
        self.histories.push(TokenizedHistory {
            offsets: vec![0],
            ..Default::default()
        });
        self.splits.push(split);
    }

    /// Appends a step to the history begun last.
    fn push_step(&mut self, step: StepText, action: u32, reward: f32) -> Result<()> {
        let key = (step.text, step.edges);
        let id = match self.interned.get(&key) {
            Some(&id) => id,
            None => {
                let st =
                    StepTokens::encode(&key.0, key.1, self.tokenizer, &mut self.segment_cache)?;
                if st.tokens.len() > self.context_tokens {
                    let text: String = key.0.chars().take(80).collect();
                    bail!(
                        "one step is {} tokens but the context holds {}: raise \
                         `model.context_tokens` or use a shorter format (the step begins {text:?})",
                        st.tokens.len(),
                        self.context_tokens,
                    );
                }
                self.kinds.push(st);
                let id = (self.kinds.len() - 1) as u32;
                self.interned.insert(key, id);
                id
            }
        };
        let th = self.histories.last_mut().expect("start_history first");
        let total = th.offsets.last().copied().unwrap_or(0);
        th.offsets
            .push(total + self.kinds[id as usize].tokens.len() as u64);
        th.kinds.push(id);
        th.actions.push(action);
        th.rewards.push(reward);
        Ok(())
    }

    fn finish(self) -> LmWindows {
        let budget = self.context_tokens as u64;
        let table = |split: Split| {
            StartTable::new(
                self.histories
                    .iter()
                    .zip(&self.splits)
                    .enumerate()
                    .filter(|(_, (th, s))| **s == split && !th.kinds.is_empty())
                    .map(|(i, (th, _))| {
                        // Starts past the first one whose window reaches the end would only
                        // give windows contained in that one.
                        let end = *th.offsets.last().unwrap_or(&0);
                        let last = th.offsets.partition_point(|&o| end - o > budget);
                        (i, last.min(th.kinds.len() - 1) + 1)
                    }),
            )
        };
        LmWindows {
            context_tokens: self.context_tokens,
            end_of_text: self.tokenizer.end_of_text_id(),
            train: table(Split::Train),
            test: table(Split::Test),
            kinds: self.kinds,
            histories: self.histories,
        }
    }
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
        let mut b = Builder::new(tokenizer, context_tokens);
        for h in histories {
            b.start_history(h.split);
            step_texts(format, h, |t, step| {
                b.push_step(step, h.actions[t], h.rewards[t])
            })?;
        }
        Ok(b.finish())
    }

    /// Windows over histories already rendered step by step (e.g. RLHF rollouts): per history
    /// its split and its steps with their action id and logged reward.
    pub fn from_steps(
        histories: impl IntoIterator<Item = (Split, Vec<(StepText, u32, f32)>)>,
        tokenizer: &TextTokenizer,
        context_tokens: usize,
    ) -> Result<LmWindows> {
        let mut b = Builder::new(tokenizer, context_tokens);
        for (split, steps) in histories {
            b.start_history(split);
            for (step, action, reward) in steps {
                b.push_step(step, action, reward)?;
            }
        }
        Ok(b.finish())
    }

    pub fn context_tokens(&self) -> usize {
        self.context_tokens
    }

    /// Mean tokens per step over all histories (0 without steps).
    pub fn tokens_per_step(&self) -> f64 {
        let (tokens, steps) = self.histories.iter().fold((0u64, 0usize), |(t, s), h| {
            (
                t + h.offsets.last().copied().unwrap_or(0),
                s + h.kinds.len(),
            )
        });
        if steps == 0 {
            0.0
        } else {
            tokens as f64 / steps as f64
        }
    }

    /// Number of distinct step texts seen (a measure of how repetitive the corpus is).
    pub fn distinct_steps(&self) -> usize {
        self.kinds.len()
    }

    /// Window starts that cover every step of every `split` history exactly once, each
    /// window as full as whole steps allow (every step predicted once, with context).
    pub fn tiling(&self, split: Split) -> Vec<WindowStart> {
        let table = match split {
            Split::Train => &self.train,
            Split::Test => &self.test,
        };
        let budget = self.context_tokens as u64;
        let mut out = Vec::new();
        for history in table.histories() {
            let th = &self.histories[history];
            let mut start = 0;
            while start < th.kinds.len() {
                out.push(WindowStart { history, start });
                let end = th.offsets[start] + budget;
                // The first step that no longer fits (at least one step per window).
                let next = th.offsets.partition_point(|&o| o <= end) - 1;
                start = next.max(start + 1);
            }
        }
        out
    }
}

impl Windows for LmWindows {
    type Batch = LmWindowBatch;

    fn tables(&self) -> (&StartTable, &StartTable) {
        (&self.train, &self.test)
    }

    /// The windows starting at `starts`: as many whole steps from each start as fit.
    fn batch(&self, starts: &[WindowStart]) -> LmWindowBatch {
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
                        before_action: n..n + kind.action.start,
                        action: shift(&kind.action),
                        reward: shift(&kind.reward),
                        action_id: h.actions[s],
                        index: s,
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
    /// Encodes one step (as [`step_texts`] or [`super::corpus::StepText::from_spans`] give).
    pub fn from_step(step: &StepText, tokenizer: &TextTokenizer) -> Result<StepTokens> {
        StepTokens::encode(&step.text, step.edges, tokenizer, &mut HashMap::new())
    }

    fn encode(
        text: &str,
        edges: [usize; 4],
        tokenizer: &TextTokenizer,
        cache: &mut HashMap<String, Vec<u32>>,
    ) -> Result<StepTokens> {
        let [a, b, c, d] = edges;
        let segments = [
            &text[..a],
            &text[a..b],
            &text[b..c],
            &text[c..d],
            &text[d..],
        ];
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::corpus::bpe_corpus;
    use crate::formats::testdata::{dataset, language};
    use crate::seed;

    /// Checks every row against the rendered history: whole steps from the start, as many as
    /// fit, shifted inputs, and masks exactly on the action and reward tokens.
    fn check_rows(
        f: &LanguageFormat,
        tok: &TextTokenizer,
        histories: &[LearningHistory],
        b: &LmWindowBatch,
    ) {
        let t = b.seq_len;
        for (row, w) in b.starts.iter().enumerate() {
            let r = f.render_history(&histories[w.history]).unwrap();
            let (ids, targets) = (&b.input_ids[row * t..][..t], &b.targets[row * t..][..t]);
            let real = b.loss_mask[row * t..][..t]
                .iter()
                .filter(|&&m| m == 1.0)
                .count();
            let steps = &b.steps[row];
            let last = w.start + steps.len() - 1;
            let text = &r.text[r.steps[w.start].step.start..r.steps[last].end];
            assert_eq!(tok.decode(&targets[..real]).unwrap(), text, "row {row}");
            assert_eq!(ids[0], tok.end_of_text_id());
            assert_eq!(&ids[1..real], &targets[..real - 1]);
            if last + 1 < r.steps.len() {
                let next = &r.text[r.steps[last + 1].step.start..r.steps[last + 1].end];
                assert!(
                    real + tok.encode(next).unwrap().len() > t,
                    "window is not maximal"
                );
            }
            // The evaluator's per-step encoding gives the same tokens as the windows.
            let first = StepText::from_spans(&r.text, &r.steps[w.start]);
            let first = StepTokens::from_step(&first, tok).unwrap();
            assert_eq!(&targets[..first.tokens.len()], &first.tokens[..]);
            assert_eq!(first.action, steps[0].action);
            let mut action_positions = 0;
            let mut reward_positions = 0;
            for (k, st) in steps.iter().enumerate() {
                let spans = &r.steps[w.start + k];
                let decode = |range: &Range<usize>| tok.decode(&targets[range.clone()]).unwrap();
                assert_eq!(decode(&st.action), r.text[spans.action.clone()]);
                assert_eq!(decode(&st.reward), r.text[spans.reward.clone()]);
                assert_eq!(f.parse_action(&decode(&st.action)), Some(st.action_id));
                assert!(f.rewards().matches(&decode(&st.reward), st.reward_value));
                action_positions += st.action.len();
                reward_positions += st.reward.len();
                assert!(st.action.clone().all(|i| b.action_mask[row * t + i] == 1.0));
                assert!(st.reward.clone().all(|i| b.reward_mask[row * t + i] == 1.0));
            }
            let ones = |m: &[f32]| m[row * t..][..t].iter().filter(|&&x| x == 1.0).count();
            assert_eq!(ones(&b.action_mask), action_positions);
            assert_eq!(ones(&b.reward_mask), reward_positions);
        }
    }

    #[test]
    fn windows_are_whole_steps_with_aligned_masks_for_byte_and_bpe() {
        let (spec, histories) = dataset("darkroom", 3, 4);
        for name in ["coords", "verbose"] {
            let f = LanguageFormat::new(&language(name), &spec).unwrap();
            let bpe = TextTokenizer::train_bpe(
                bpe_corpus(&f, &histories, 10_000).unwrap().into_iter(),
                300,
            )
            .unwrap();
            for tok in [TextTokenizer::byte(), bpe] {
                let w = LmWindows::new(&f, &tok, &histories, 64).unwrap();
                let b = w.sample_train(&mut seed::rng(0, "lm", &[]), 8).unwrap();
                assert!(b
                    .starts
                    .iter()
                    .all(|s| histories[s.history].split == Split::Train));
                check_rows(&f, &tok, &histories, &b);
                let v = w.validation_starts(Split::Test, 6).unwrap();
                assert!(v.iter().all(|s| histories[s.history].split == Split::Test));
                check_rows(&f, &tok, &histories, &w.batch(&v));
            }
        }
    }

    #[test]
    fn a_tiling_predicts_every_held_out_step_once_in_full_windows() {
        let (spec, histories) = dataset("darkroom", 3, 4);
        let f = LanguageFormat::new(&language("coords"), &spec).unwrap();
        let tok = TextTokenizer::byte();
        let w = LmWindows::new(&f, &tok, &histories, 64).unwrap();
        let tiles = w.tiling(Split::Test);
        let b = w.batch(&tiles);
        let mut covered: Vec<(usize, usize)> = Vec::new();
        for (row, start) in tiles.iter().enumerate() {
            covered.extend((0..b.steps[row].len()).map(|k| (start.history, start.start + k)));
        }
        let mut want: Vec<(usize, usize)> = histories
            .iter()
            .enumerate()
            .filter(|(_, h)| h.split == Split::Test)
            .flat_map(|(i, h)| (0..h.len()).map(move |t| (i, t)))
            .collect();
        want.sort_unstable();
        assert_eq!(covered, want);
    }

    #[test]
    fn sampling_is_seeded_and_short_histories_are_padded() {
        let (spec, histories) = dataset("darkroom", 3, 2);
        let f = LanguageFormat::new(&language("coords"), &spec).unwrap();
        let tok = TextTokenizer::byte();
        let w = LmWindows::new(&f, &tok, &histories, 64).unwrap();
        let draw = |s| w.sample_train(&mut seed::rng(s, "lm", &[]), 8).unwrap();
        assert_eq!(draw(1), draw(1));
        assert_ne!(draw(1).starts, draw(2).starts);
        assert_eq!(
            w.validation_starts(Split::Test, 4).unwrap(),
            w.validation_starts(Split::Test, 4).unwrap()
        );

        // The whole 40-step history fits in 1000 tokens: one window, padded.
        let w = LmWindows::new(&f, &tok, &histories, 1000).unwrap();
        let b = w.batch(&w.validation_starts(Split::Test, 10).unwrap());
        assert_eq!(b.batch, 1);
        assert_eq!(b.steps[0].len(), histories[b.starts[0].history].len());
        let real = b.loss_mask.iter().filter(|&&m| m == 1.0).count();
        assert!(real < 1000 && b.loss_mask[real..].iter().all(|&m| m == 0.0));
        assert!(b.targets[real..].iter().all(|&x| x == tok.pad_id()));

        let err = LmWindows::new(&f, &tok, &histories, 5).unwrap_err();
        assert!(format!("{err:#}").contains("context holds 5"), "{err:#}");
    }
}
