//! What a trained model predicts for the steps of held-out learning histories, under teacher
//! forcing: the reward of each step and, for continuous states, the next state. The learners
//! fill it from their own outputs (heads, or text read back); `eval` summarises it.

/// `(predicted, logged)` pairs; a prediction is `None` when the model's text does not read
/// back as a value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StepPredictions {
    /// Windows the pairs come from.
    pub windows: usize,
    pub rewards: Vec<(Option<f32>, f32)>,
    /// Next states, for steps whose successor is in the same episode and window (continuous
    /// states only).
    pub states: Vec<(Option<Vec<f32>>, Vec<f32>)>,
    /// The state each of `states` follows: what "the state does not change" predicts.
    pub states_before: Vec<Vec<f32>>,
    /// Next states that read back only leniently (numbers off the format's precision).
    pub states_off_format: usize,
}

/// Where a step's successor can be predicted from: it exists, and the step did not end its
/// episode (the next state would be a reset, which no transition tells).
pub fn has_successor(dones: &[bool], index: usize) -> bool {
    index + 1 < dones.len() && !dones[index]
}
