//! The RL-heads transformer as an [`InContextPolicy`]: its action head's logits, decoded step
//! by step with the KV cache of [`RlDecoder`] (a step costs attention over the context only).
//! When the context holds `model.context_steps` steps the decoder slides it, keeping the most
//! recent `eval.context_kept` fraction (see `models::rl_decode`).

use super::policy::{InContextPolicy, StepOutcome, StepStates};
use crate::models::{RlDecoder, RlHeadsModel, StateSpace, StateStep};
use anyhow::Result;

pub struct RlHeadsPolicy<'m> {
    model: &'m RlHeadsModel,
    decoder: RlDecoder,
    rows: usize,
}

impl<'m> RlHeadsPolicy<'m> {
    /// A policy acting in `rows` environments with an empty history.
    pub fn new(model: &'m RlHeadsModel, rows: usize, context_kept: f64) -> Self {
        Self {
            model,
            decoder: RlDecoder::new(model, rows, context_kept),
            rows,
        }
    }

    /// Index (in the steps taken so far) of the first step the model conditions on.
    pub fn window_start(&self) -> usize {
        self.decoder.window_start()
    }
}

impl InContextPolicy for RlHeadsPolicy<'_> {
    fn rows(&self) -> usize {
        self.rows
    }

    fn n_actions(&self) -> usize {
        self.model.spaces.n_actions
    }

    fn action_logits(&mut self, states: StepStates) -> Result<Vec<f32>> {
        let step = match self.model.spaces.states {
            StateSpace::Discrete { .. } => StateStep::Discrete(states.ids),
            StateSpace::Continuous { .. } => StateStep::Continuous(states.features),
        };
        let logits = self.decoder.observe_state(self.model, step)?;
        Ok(logits.flatten_all()?.to_vec1::<f32>()?)
    }

    fn observe_outcome(&mut self, outcome: StepOutcome) -> Result<()> {
        // The model has no episode-boundary token: as in AD's training windows, episodes
        // simply follow one another in the context.
        self.decoder.observe_outcome(
            self.model,
            outcome.actions,
            outcome.rewards,
            outcome.logprobs,
        )
    }
}
