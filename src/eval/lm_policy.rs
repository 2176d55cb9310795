//! The causal LM as an [`InContextPolicy`]: each row's history is rendered in the run's
//! language format as it grows, and the action is chosen by **constrained decoding** — the
//! score of action `a` is the log-probability of its text (all of its tokens) after the
//! context and the step's prompt, so the chosen action is always one of the format's action
//! strings. What the unconstrained model would have written is still measured: a step is
//! *off-format* when greedy decoding would leave every action string (see [`DecodingStats`]).
//!
//! Cost per environment step and row: one cached forward over the new tokens (the last
//! step's outcome and this step's prompt) and, when some action is longer than one token,
//! one batched forward of every action's continuation on copies of the KV cache.
//!
//! Window: contexts are encoded exactly as training windows are — end-of-text, then whole
//! steps, each encoded segment by segment (see `formats::corpus`). When the next step would
//! overflow `context_tokens`, the row's decoder is rebuilt from end-of-text and the most
//! recent whole steps filling half the context (a window never starts mid-step, as in
//! training), so each rebuild buys many cheap steps.

pub use super::policy::DecodingStats;
use super::policy::{InContextPolicy, StepOutcome, StepStates};
use super::sampler::log_softmax;
use crate::formats::language::{LanguageFormat, StateRef, StepFrame, StepPosition};
use crate::models::{CausalLm, LmDecoder};
use crate::tasks::StateSpace;
use crate::tokenizer::TextTokenizer;
use anyhow::{bail, Result};
use candle_core::Tensor;
use std::collections::{HashMap, VecDeque};

impl DecodingStats {
    fn record(&mut self, off_format: bool) {
        self.steps += 1;
        self.off_format += usize::from(off_format);
        self.off_format_rate = self.off_format as f64 / self.steps as f64;
    }
}

/// One row's decoding state.
struct Row {
    decoder: LmDecoder,
    /// Tokens of the completed steps the decoder's window may still need after a rebuild.
    steps: VecDeque<Vec<u32>>,
    steps_tokens: usize,
    /// Tokens of the current step fed or to be fed: prompt, then (after the outcome) the rest.
    current: Vec<u32>,
    /// Tokens of the last outcome, fed together with the next prompt.
    pending: Vec<u32>,
    frame: Option<StepFrame>,
    pos: StepPosition,
}

pub struct LmPolicy<'m> {
    model: &'m CausalLm,
    format: &'m LanguageFormat,
    tokenizer: &'m TextTokenizer,
    rows: Vec<Row>,
    /// Each action's tokens (encoded as its own segment, as in training).
    action_tokens: Vec<Vec<u32>>,
    longest_action: usize,
    segments: HashMap<String, Vec<u32>>,
    stats: DecodingStats,
    /// Fraction of the context kept (in whole steps) when a row's window is rebuilt.
    context_kept: f64,
}

impl<'m> LmPolicy<'m> {
    /// A policy acting in `rows` environments with empty histories.
    pub fn new(
        model: &'m CausalLm,
        format: &'m LanguageFormat,
        tokenizer: &'m TextTokenizer,
        rows: usize,
        context_kept: f64,
    ) -> Result<Self> {
        let action_tokens = format
            .action_texts()
            .iter()
            .map(|t| tokenizer.encode(t))
            .collect::<Result<Vec<_>>>()?;
        if let Some(i) = action_tokens.iter().position(Vec::is_empty) {
            bail!("action {i} of the format renders to no tokens");
        }
        let longest_action = action_tokens.iter().map(Vec::len).max().unwrap_or(1);
        let rows = (0..rows)
            .map(|_| Row {
                decoder: LmDecoder::new(model, 1),
                steps: VecDeque::new(),
                steps_tokens: 0,
                current: Vec::new(),
                pending: Vec::new(),
                frame: None,
                pos: StepPosition::default(),
            })
            .collect();
        Ok(Self {
            model,
            format,
            tokenizer,
            rows,
            action_tokens,
            longest_action,
            segments: HashMap::new(),
            stats: DecodingStats::default(),
            context_kept,
        })
    }

    pub fn stats(&self) -> DecodingStats {
        self.stats
    }

    /// The tokens row `r`'s model currently conditions on.
    pub fn window(&self, r: usize) -> Vec<u32> {
        self.rows[r].decoder.window().swap_remove(0)
    }

    fn encode_segment(&mut self, text: &str) -> Result<Vec<u32>> {
        if text.is_empty() {
            return Ok(Vec::new());
        }
        if let Some(ids) = self.segments.get(text) {
            return Ok(ids.clone());
        }
        let ids = self.tokenizer.encode(text)?;
        self.segments.insert(text.to_string(), ids.clone());
        Ok(ids)
    }

    /// Feeds row `r`'s pending outcome and `prompt`, rebuilding the window first if the
    /// prompt and the action continuations would not fit; returns the log-probabilities of
    /// the next token.
    fn feed_prompt(&mut self, r: usize, prompt: &[u32]) -> Result<Vec<f32>> {
        let ctx = self.model.cfg.context_tokens;
        let fork = self.longest_action - 1;
        let row = &mut self.rows[r];
        let fresh = row.decoder.history_len() == 0;
        let need = row.pending.len() + prompt.len() + fork;
        let logits = if fresh || row.decoder.cached_len() + need > ctx {
            let fixed = 1 + prompt.len() + fork;
            if fixed > ctx {
                bail!(
                    "one step's prompt and action ({fixed} tokens) do not fit model.context_tokens = {ctx}"
                );
            }
            // Keep the most recent whole steps within the kept fraction of the context (or
            // what is left).
            let kept = (ctx as f64 * self.context_kept) as usize;
            let budget = kept.min(ctx - fixed);
            while row.steps_tokens > budget {
                let old = row.steps.pop_front().expect("steps_tokens > 0");
                row.steps_tokens -= old.len();
            }
            let mut ids = vec![self.tokenizer.end_of_text_id()];
            ids.extend(row.steps.iter().flatten());
            ids.extend_from_slice(prompt);
            row.decoder = LmDecoder::new(self.model, 1);
            row.decoder.feed(self.model, &[ids])?
        } else {
            let mut ids = std::mem::take(&mut row.pending);
            ids.extend_from_slice(prompt);
            row.decoder.feed(self.model, &[ids])?
        };
        row.pending.clear();
        Ok(log_softmax(&logits.flatten_all()?.to_vec1::<f32>()?))
    }

    /// Scores every action of row `r` after its prompt: `first` are the log-probabilities
    /// of the first action token. Also reports whether greedy decoding would go off-format.
    fn score_actions(&self, r: usize, first: &[f32]) -> Result<(Vec<f32>, bool)> {
        let k = self.longest_action - 1;
        // Log-probabilities after each action's j-th token (j < k), per action.
        let later: Vec<Vec<Vec<f32>>> = if k == 0 {
            vec![Vec::new(); self.action_tokens.len()]
        } else {
            let eot = self.tokenizer.end_of_text_id();
            let continuations: Vec<Vec<u32>> = self
                .action_tokens
                .iter()
                .map(|t| {
                    let mut c: Vec<u32> = t.iter().copied().take(k).collect();
                    c.resize(k, eot); // positions past the action are never read
                    c
                })
                .collect();
            let logits: Tensor = self.rows[r]
                .decoder
                .fork_logits(self.model, &continuations)?;
            logits
                .to_vec3::<f32>()?
                .into_iter()
                .map(|rows| rows.iter().map(|l| log_softmax(l)).collect())
                .collect()
        };
        let scores = self
            .action_tokens
            .iter()
            .zip(&later)
            .map(|(toks, lp)| {
                toks.iter()
                    .enumerate()
                    .map(|(j, &t)| {
                        if j == 0 {
                            first[t as usize]
                        } else {
                            lp[j - 1][t as usize]
                        }
                    })
                    .sum()
            })
            .collect();
        Ok((scores, self.greedy_off_format(first, &later)))
    }

    /// Walks greedy decoding through the action strings' prefix tree: off-format when the
    /// argmax token continues no action before one is complete.
    fn greedy_off_format(&self, first: &[f32], later: &[Vec<Vec<f32>>]) -> bool {
        let mut prefix: Vec<u32> = Vec::new();
        loop {
            let j = prefix.len();
            let live: Vec<usize> = (0..self.action_tokens.len())
                .filter(|&a| self.action_tokens[a].starts_with(&prefix))
                .collect();
            let Some(&via) = live.first() else {
                return true;
            };
            let lp = if j == 0 { first } else { &later[via][j - 1] };
            let tok = super::sampler::argmax(lp) as u32;
            prefix.push(tok);
            let live: Vec<usize> = live
                .into_iter()
                .filter(|&a| self.action_tokens[a].get(j) == Some(&tok))
                .collect();
            if live.is_empty() {
                return true;
            }
            if live.iter().any(|&a| self.action_tokens[a].len() == j + 1) {
                return false;
            }
        }
    }
}

impl InContextPolicy for LmPolicy<'_> {
    fn rows(&self) -> usize {
        self.rows.len()
    }

    fn n_actions(&self) -> usize {
        self.action_tokens.len()
    }

    fn action_logits(&mut self, states: StepStates) -> Result<Vec<f32>> {
        let n = self.rows.len();
        let dim = states.features.len() / n.max(1);
        let discrete = matches!(self.format.spec().state, StateSpace::Discrete { .. });
        let mut out = Vec::with_capacity(n * self.action_tokens.len());
        for r in 0..n {
            let state = if discrete {
                StateRef::Id(states.ids[r])
            } else {
                StateRef::Features(&states.features[r * dim..(r + 1) * dim])
            };
            let frame = self.format.frame(state, self.rows[r].pos)?.into_owned();
            let prompt = self.encode_segment(&frame.before_action)?;
            let first = self.feed_prompt(r, &prompt)?;
            let (scores, off_format) = self.score_actions(r, &first)?;
            self.stats.record(off_format);
            let row = &mut self.rows[r];
            row.current = prompt;
            row.frame = Some(frame);
            out.extend(scores);
        }
        Ok(out)
    }

    fn observe_outcome(&mut self, outcome: StepOutcome) -> Result<()> {
        let separator = self.format.config().episode_separator.clone();
        for r in 0..self.rows.len() {
            let Some(frame) = self.rows[r].frame.take() else {
                bail!("observe_outcome without action_logits");
            };
            let action = outcome.actions[r] as usize;
            let done = outcome.dones[r];
            let mut rest = self.action_tokens[action].clone();
            rest.extend(self.encode_segment(&frame.between)?);
            let reward = self.format.reward_text(outcome.rewards[r]);
            rest.extend(self.encode_segment(&reward)?);
            let mut after = frame.after_reward;
            if done {
                after.push_str(&separator);
            }
            rest.extend(self.encode_segment(&after)?);
            let row = &mut self.rows[r];
            let mut step = std::mem::take(&mut row.current);
            step.extend_from_slice(&rest);
            row.steps_tokens += step.len();
            row.steps.push_back(step);
            // Only what fits a context can ever be re-encoded.
            while row.steps_tokens > self.model.cfg.context_tokens {
                let old = row.steps.pop_front().expect("steps_tokens > 0");
                row.steps_tokens -= old.len();
            }
            row.pending = rest;
            row.pos = row.pos.after(done);
        }
        Ok(())
    }

    fn decoding_stats(&self) -> Option<DecodingStats> {
        Some(self.stats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::rollout::{roll_out, Acting};
    use crate::formats::testdata::language;
    use crate::models::tests::tiny_lm_config;
    use crate::models::CausalLmConfig;
    use crate::tasks::{TaskConfig, TaskSuite};
    use candle_core::Device;

    fn darkroom_suite() -> TaskSuite {
        let text = include_str!("../../conf/task/darkroom.yaml");
        let mut cfg = TaskConfig::from_yaml(text).unwrap();
        cfg.split.max_tasks = Some(4);
        TaskSuite::from_config(&cfg).unwrap()
    }

    fn lm(vocab: usize, context_tokens: usize) -> CausalLm {
        let cfg = CausalLmConfig {
            context_tokens,
            dropout: 0.0,
            attn_dropout: 0.0,
            init_std: 0.5, // far from uniform, so a wrong context shows in the scores
            ..tiny_lm_config()
        };
        CausalLm::new(&cfg, vocab, crate::seed::rng(3, "init", &[])).unwrap()
    }

    /// Log-probability of `continuation` after `context`, from one uncached forward.
    fn full_logprob(model: &CausalLm, context: &[u32], continuation: &[u32]) -> f32 {
        let ids: Vec<u32> = context.iter().chain(continuation).copied().collect();
        let t = ids.len();
        let x = Tensor::from_vec(ids.clone(), (1, t), &Device::Cpu).unwrap();
        let logits = model.forward(&x, None).unwrap().squeeze(0).unwrap();
        let rows = logits.to_vec2::<f32>().unwrap();
        (0..continuation.len())
            .map(|j| log_softmax(&rows[context.len() + j - 1])[ids[context.len() + j] as usize])
            .sum()
    }

    /// Wraps the policy to check, at every step, its scores against an uncached forward and
    /// its window against the history rendered independently.
    struct Checked<'m> {
        inner: LmPolicy<'m>,
        model: &'m CausalLm,
        format: &'m LanguageFormat,
        tokenizer: &'m TextTokenizer,
        checked: usize,
        /// Per row: the rendered history, its step boundaries, the last state, the position.
        rendered: Vec<(String, Vec<usize>, u32, StepPosition)>,
    }

    impl InContextPolicy for Checked<'_> {
        fn rows(&self) -> usize {
            self.inner.rows()
        }
        fn n_actions(&self) -> usize {
            self.inner.n_actions()
        }
        fn action_logits(&mut self, states: StepStates) -> Result<Vec<f32>> {
            let scores = self.inner.action_logits(states)?;
            let n = self.n_actions();
            for r in 0..self.rows() {
                let window = self.inner.window(r);
                let (text, bounds, state, pos) = &mut self.rendered[r];
                *state = states.ids[r];
                let prompt = self.format.action_prompt(StateRef::Id(*state), *pos)?;
                let expected = format!("{text}{prompt}");
                assert_eq!(window[0], self.tokenizer.end_of_text_id());
                let seen = self.tokenizer.decode(&window[1..])?;
                let at = expected.len() - seen.len();
                assert_eq!(
                    &expected[at..],
                    seen,
                    "row {r}: the window is not the history"
                );
                assert!(bounds.contains(&at), "row {r}: the window starts mid-step");
                for (a, toks) in self.inner.action_tokens.iter().enumerate() {
                    let want = full_logprob(self.model, &window, toks);
                    let got = scores[r * n + a];
                    assert!(
                        (want - got).abs() < 1e-3,
                        "row {r} action {a}: {got} vs {want}"
                    );
                }
                self.checked += 1;
            }
            Ok(scores)
        }
        fn observe_outcome(&mut self, outcome: StepOutcome) -> Result<()> {
            for (r, (text, bounds, state, pos)) in self.rendered.iter_mut().enumerate() {
                let (a, rew, done) = (outcome.actions[r], outcome.rewards[r], outcome.dones[r]);
                self.format
                    .render_step(text, StateRef::Id(*state), a, rew, *pos, done)?;
                bounds.push(text.len());
                *pos = pos.after(done);
            }
            self.inner.observe_outcome(outcome)
        }
    }

    #[test]
    fn cached_and_forked_scores_equal_an_uncached_forward_across_window_rebuilds() {
        let suite = darkroom_suite();
        let format = LanguageFormat::new(&language("verbose"), suite.spec()).unwrap();
        let tokenizer = TextTokenizer::byte();
        // Multi-token actions ("up", "right", …) exercise the forked continuations; a
        // 96-token context (≈3 verbose steps) forces many rebuilds over 2 episodes of 20.
        // Rendering uses discrete state ids: darkroom is discrete.
        let model = lm(tokenizer.vocab_size(), 96);
        let tasks = suite.test_tasks();
        let inner = LmPolicy::new(&model, &format, &tokenizer, tasks.len(), 0.5).unwrap();
        let mut policy = Checked {
            inner,
            model: &model,
            format: &format,
            tokenizer: &tokenizer,
            checked: 0,
            rendered: vec![(String::new(), vec![0], 0, StepPosition::default()); tasks.len()],
        };
        let acting = Acting {
            temperature: 1.0,
            seed: 4,
            label: "eval",
        };
        let episodes = roll_out(&mut policy, &suite, &tasks, 2, acting).unwrap();
        assert_eq!(episodes.len(), 2 * tasks.len());
        assert!(policy.checked >= 40 * tasks.len());
        // The window was rebuilt: it no longer starts at the beginning of the history.
        assert!(policy.inner.window(0).len() < 96);
    }

    #[test]
    fn constrained_decoding_only_yields_actions_and_counts_off_format_output() {
        let suite = darkroom_suite();
        let format = LanguageFormat::new(&language("coords"), suite.spec()).unwrap();
        let tokenizer = TextTokenizer::byte();
        // An untrained LM writes random bytes: unconstrained, it is almost never an action.
        let model = lm(tokenizer.vocab_size(), 64);
        let tasks = suite.test_tasks();
        let mut policy = LmPolicy::new(&model, &format, &tokenizer, tasks.len(), 0.5).unwrap();
        let n = policy.n_actions();
        let mut states_seen = 0;
        for step in 0..30u32 {
            let ids: Vec<u32> = (0..tasks.len() as u32).map(|r| (r + step) % 81).collect();
            let scores = policy
                .action_logits(StepStates {
                    ids: &ids,
                    features: &[],
                })
                .unwrap();
            assert_eq!(scores.len(), tasks.len() * n);
            // Scores are log-probabilities of whole action strings: finite and negative.
            assert!(scores.iter().all(|s| s.is_finite() && *s < 0.0));
            let actions: Vec<u32> = (0..tasks.len())
                .map(|r| crate::eval::sampler::argmax(&scores[r * n..(r + 1) * n]) as u32)
                .collect();
            assert!(actions.iter().all(|&a| (a as usize) < n));
            policy
                .observe_outcome(StepOutcome {
                    actions: &actions,
                    rewards: &vec![0.0; tasks.len()],
                    logprobs: &vec![0.0; tasks.len()],
                    dones: &vec![step % 20 == 19; tasks.len()],
                })
                .unwrap();
            states_seen += tasks.len();
        }
        let stats = policy.decoding_stats().unwrap();
        assert_eq!(stats.steps, states_seen);
        assert!(stats.off_format > states_seen / 2, "{stats:?}");
    }

    #[test]
    fn greedy_walk_follows_the_action_prefix_tree() {
        let suite = darkroom_suite();
        let format = LanguageFormat::new(&language("coords"), suite.spec()).unwrap();
        let tokenizer = TextTokenizer::byte();
        let model = lm(tokenizer.vocab_size(), 64);
        let mut policy = LmPolicy::new(&model, &format, &tokenizer, 1, 0.5).unwrap();
        // Two actions sharing a first token: "ab" and "ac" (ids 97, 98, 99).
        policy.action_tokens = vec![vec![97, 98], vec![97, 99]];
        let v = tokenizer.vocab_size();
        let peaked = |tok: usize| {
            let mut l = vec![-10.0f32; v];
            l[tok] = 0.0;
            l
        };
        let later = |second: usize| vec![vec![peaked(second)], vec![peaked(second)]];
        assert!(!policy.greedy_off_format(&peaked(97), &later(99)));
        assert!(policy.greedy_off_format(&peaked(97), &later(100)));
        assert!(policy.greedy_off_format(&peaked(96), &later(98)));
    }
}
