//! Rendered steps cut into the five segments tokenisation works on — before the action, the
//! action, between, the reward, after the reward (with the episode separator) — and the
//! training corpus for BPE built from them.
//!
//! Why segments: a BPE token may not straddle the action's or reward's edges, or token ranges
//! would not line up with the byte spans accuracy needs. Encoding segment by segment makes
//! every edge a token boundary, at the cost of merges that would have crossed an edge (a few
//! more tokens per step than encoding the whole text; none for the byte tokenizer). The BPE
//! is trained on the same segments, so it learns no merge it could never use.

use super::language::{LanguageFormat, StateRef, StepPosition, StepSpans};
use crate::tasks::{LearningHistory, Split, StateSpace};
use anyhow::Result;

/// One step's text and the byte offsets (relative to the step's start) of its segment edges:
/// `text[..edges[0]]` before the action, `[edges[0]..edges[1]]` the action,
/// `[edges[1]..edges[2]]` between, `[edges[2]..edges[3]]` the reward, `[edges[3]..]` the rest.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StepText {
    pub text: String,
    pub edges: [usize; 4],
}

impl StepText {
    /// The step `spans` locates in `rendered` (e.g. one the evaluator just rendered).
    pub fn from_spans(rendered: &str, spans: &StepSpans) -> StepText {
        let at = spans.step.start;
        StepText {
            text: rendered[at..spans.end].to_string(),
            edges: [
                spans.action.start - at,
                spans.action.end - at,
                spans.reward.start - at,
                spans.reward.end - at,
            ],
        }
    }

    pub fn segments(&self) -> [&str; 5] {
        let [a, b, c, d] = self.edges;
        let t = &self.text;
        [&t[..a], &t[a..b], &t[b..c], &t[c..d], &t[d..]]
    }
}

/// Renders each step of `history` on its own (text includes the episode separator after an
/// episode's last step).
pub fn step_texts(
    format: &LanguageFormat,
    history: &LearningHistory,
    mut each: impl FnMut(usize, StepText) -> Result<()>,
) -> Result<()> {
    let discrete = matches!(format.spec().state, StateSpace::Discrete { .. });
    let mut step_in_episode = 0u32;
    let mut buf = String::new();
    for t in 0..history.len() {
        let state = if discrete {
            StateRef::Id(history.states[t])
        } else {
            StateRef::Features(history.features_at(t))
        };
        let pos = StepPosition {
            step: step_in_episode,
            episode: history.episodes[t],
        };
        let done = history.dones[t];
        buf.clear();
        let spans = format.render_step(
            &mut buf,
            state,
            history.actions[t],
            history.rewards[t],
            pos,
            done,
        )?;
        each(t, StepText::from_spans(&buf, &spans))?;
        step_in_episode = if done { 0 } else { step_in_episode + 1 };
    }
    Ok(())
}

/// The BPE training corpus: segments of train-split steps, evenly subsampled to at most
/// `max_steps` steps in total (learning histories change from random to expert, so a prefix
/// would not be representative). Empty segments are left out.
pub fn bpe_corpus(
    format: &LanguageFormat,
    histories: &[LearningHistory],
    max_steps: usize,
) -> Result<Vec<String>> {
    let train: Vec<&LearningHistory> = histories
        .iter()
        .filter(|h| h.split == Split::Train)
        .collect();
    let total: usize = train.iter().map(|h| h.len()).sum();
    let every = total.div_ceil(max_steps.max(1)).max(1);
    let mut corpus = Vec::new();
    let mut global = 0usize;
    for h in train {
        let offset = global;
        step_texts(format, h, |t, step| {
            if (offset + t).is_multiple_of(every) {
                corpus.extend(
                    step.segments()
                        .iter()
                        .filter(|s| !s.is_empty())
                        .map(|s| s.to_string()),
                );
            }
            Ok(())
        })?;
        global += h.len();
    }
    Ok(corpus)
}
