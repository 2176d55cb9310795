//! The language format: learning histories as text, one step at a time through a minijinja
//! template the researcher writes in `format.step`, with `format.episode_separator` after each
//! episode's last step.
//!
//! **Where the action and reward are.** Accuracy metrics and constrained decoding need the
//! exact bytes of the action and reward inside the text. The template is rendered once with
//! *sentinels* (private-use characters) in place of `action`/`action_symbol`/`action_id` and
//! `reward`; the sentinels split the output into a [`StepFrame`] — the text before the action,
//! between action and reward, and after the reward. A step's text is then
//! `before + action text + between + reward text + after`, so the spans are exact by
//! construction. Assumptions (checked when the format is built, with an error naming
//! `format.step` otherwise): the action is shown exactly once and the reward exactly once,
//! the action before the reward, both as-is (no filters, no conditions on their values; a
//! probe render of every action and reward compares the real text with the composed one).
//!
//! Frames depend only on the state (and on `step`/`episode` if the template uses them), so
//! for discrete states without positions they are rendered once per state and reused.
//!
//! Template variables: `state` (list of strings), `state_names`, `action`, `action_id`,
//! `action_symbol`, `reward` (formatted), `step` (index of the step within its episode, from
//! 0), `episode` (the history's episode index).

use super::config::LanguageFormatConfig;
use super::fields::{action_symbols, state_names, RewardText};
use super::values::{state_values, StateText};
use crate::tasks::{EnvSpec, LearningHistory, RewardKind, StateSpace};
use anyhow::{anyhow, bail, Result};
use minijinja::{Environment, UndefinedBehavior, Value};
use serde::Serialize;
use std::borrow::Cow;
use std::ops::Range;

/// The config key every template error names.
pub const STEP_KEY: &str = "format.step";
const VARIABLES: [&str; 8] = [
    "state",
    "state_names",
    "action",
    "action_id",
    "action_symbol",
    "reward",
    "step",
    "episode",
];
/// minijinja's global functions, which `undeclared_variables` also lists.
const GLOBALS: [&str; 5] = ["range", "dict", "namespace", "debug", "loop"];
const ACTION_NAME_SENTINEL: char = '\u{E000}';
const ACTION_SYMBOL_SENTINEL: char = '\u{E001}';
const ACTION_ID_SENTINEL: char = '\u{E002}';
const REWARD_SENTINEL: char = '\u{E003}';
/// State value `i` is rendered as `STATE_SENTINEL + i` when building a parse pattern.
pub(crate) const STATE_SENTINEL: u32 = 0xE100;

/// Which variable the template shows the action through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionField {
    Name,
    Symbol,
    Id,
}

/// A state as the renderer takes it: a discrete id or a continuous feature vector.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum StateRef<'a> {
    Id(u32),
    Features(&'a [f32]),
}

/// Where a step sits in its history (the template's `step` and `episode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StepPosition {
    pub step: u32,
    pub episode: u32,
}

impl StepPosition {
    /// The position of the next step: the first of a new episode after a `done` step.
    pub fn after(self, done: bool) -> StepPosition {
        if done {
            StepPosition {
                step: 0,
                episode: self.episode + 1,
            }
        } else {
            StepPosition {
                step: self.step + 1,
                ..self
            }
        }
    }
}

/// A step's text around its action and reward.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StepFrame {
    pub before_action: String,
    pub between: String,
    pub after_reward: String,
}

/// Byte spans of one rendered step inside a rendered string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepSpans {
    /// The template's output for the step.
    pub step: Range<usize>,
    pub action: Range<usize>,
    pub reward: Range<usize>,
    /// End of the step's text including the episode separator written after it (if it ended
    /// its episode): where the next step starts.
    pub end: usize,
}

/// A rendered learning history.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderedHistory {
    pub text: String,
    pub steps: Vec<StepSpans>,
}

#[derive(Serialize)]
struct StepVars<'a> {
    state: &'a [String],
    state_names: &'a [String],
    action: &'a str,
    action_id: Value,
    action_symbol: &'a str,
    reward: &'a str,
    step: u32,
    episode: u32,
}

/// A compiled language format for one environment family.
#[derive(Debug)]
pub struct LanguageFormat {
    config: LanguageFormatConfig,
    spec: EnvSpec,
    env: Environment<'static>,
    state_names: Vec<String>,
    action_names: Vec<String>,
    symbols: Vec<String>,
    action_field: ActionField,
    /// What each action looks like in the text, by action id.
    action_texts: Vec<String>,
    reward_text: RewardText,
    /// How continuous state values are written and read back.
    state_text: StateText,
    /// The template reads `step` or `episode`, so frames cannot be shared across steps.
    uses_position: bool,
    /// Frames by discrete state id (empty if `uses_position` or continuous states).
    frames: Vec<StepFrame>,
}

/// A minijinja error as a config error: names the key, quotes the template, and explains
/// strict undefined (the usual surprise).
fn template_error(e: minijinja::Error, template: &str) -> anyhow::Error {
    let mut msg = format!("{STEP_KEY}: {e}");
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        msg.push_str(&format!(": {s}"));
        source = s.source();
    }
    if e.kind() == minijinja::ErrorKind::UndefinedError {
        msg.push_str(" (every variable, index and attribute used must exist)");
    }
    anyhow!("{msg}; template: {template:?}")
}

impl LanguageFormat {
    /// Compiles `config.step` and checks it against `spec` (variables, action and reward shown
    /// exactly once and as-is).
    pub fn new(config: &LanguageFormatConfig, spec: &EnvSpec) -> Result<LanguageFormat> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        // A step template usually ends in "\n": minijinja would drop it by default.
        env.set_keep_trailing_newline(true);
        env.add_template_owned(STEP_KEY, config.step.clone())
            .map_err(|e| template_error(e, &config.step))?;
        let used = env
            .get_template(STEP_KEY)
            .map_err(|e| template_error(e, &config.step))?
            .undeclared_variables(false);
        let mut unknown: Vec<&String> = used
            .iter()
            .filter(|v| !VARIABLES.contains(&v.as_str()) && !GLOBALS.contains(&v.as_str()))
            .collect();
        if !unknown.is_empty() {
            unknown.sort();
            bail!(
                "{STEP_KEY}: unknown template variable(s) {}; available: {}",
                unknown
                    .iter()
                    .map(|v| format!("`{v}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
                VARIABLES.join(", ")
            );
        }
        if spec.action_names.is_empty() {
            bail!("environment `{}` has no actions to render", spec.kind);
        }
        let symbols = action_symbols(&spec.action_names);
        let mut format = LanguageFormat {
            config: config.clone(),
            spec: spec.clone(),
            env,
            state_names: state_names(spec),
            action_names: spec.action_names.clone(),
            symbols,
            action_field: ActionField::Name,
            action_texts: Vec::new(),
            reward_text: RewardText::new(spec, config.precision),
            state_text: StateText::new(&config.values, config.precision, spec)?,
            uses_position: used.contains("step") || used.contains("episode"),
            frames: Vec::new(),
        };
        let probe_features = vec![0.0; spec.state.feature_dim()];
        let probe_state = match spec.state {
            StateSpace::Discrete { .. } => StateRef::Id(0),
            StateSpace::Continuous { .. } => StateRef::Features(&probe_features),
        };
        let (_, field) = format.sentinel_frame(probe_state, StepPosition::default())?;
        format.action_field = field;
        format.action_texts = (0..spec.n_actions())
            .map(|a| match field {
                ActionField::Name => format.action_names[a].clone(),
                ActionField::Symbol => format.symbols[a].clone(),
                ActionField::Id => a.to_string(),
            })
            .collect();
        format.check_fields_render_as_is(probe_state)?;
        if let (StateSpace::Discrete { n_states, .. }, false) = (&spec.state, format.uses_position)
        {
            format.frames = (0..*n_states as u32)
                .map(|s| {
                    format
                        .sentinel_frame(StateRef::Id(s), StepPosition::default())
                        .map(|(f, _)| f)
                })
                .collect::<Result<_>>()?;
            if let Some((a, b)) = format.indistinguishable_states() {
                tracing::warn!(
                    "format `{}`: states {a} and {b} of `{}` render the same text; a model \
                     reading this format cannot tell them apart",
                    config.name,
                    spec.kind
                );
            }
        }
        Ok(format)
    }

    /// Two discrete states whose steps render identically (e.g. `join('')` of coordinates on
    /// a grid wider than 10: (1,12) and (11,2) both give `112`), if any. Only checked for
    /// templates that do not use `step`/`episode`.
    pub fn indistinguishable_states(&self) -> Option<(u32, u32)> {
        let mut seen: std::collections::HashMap<&StepFrame, u32> = Default::default();
        for (s, f) in self.frames.iter().enumerate() {
            if let Some(&first) = seen.get(f) {
                return Some((first, s as u32));
            }
            seen.insert(f, s as u32);
        }
        None
    }

    pub fn config(&self) -> &LanguageFormatConfig {
        &self.config
    }

    pub fn spec(&self) -> &EnvSpec {
        &self.spec
    }

    pub fn action_field(&self) -> ActionField {
        self.action_field
    }

    /// The text of each action (by action id): the only strings a model may emit where a
    /// step's action goes. Independent of the state and the context.
    pub fn action_texts(&self) -> &[String] {
        &self.action_texts
    }

    /// The action whose text is exactly `text`.
    pub fn parse_action(&self, text: &str) -> Option<u32> {
        self.action_texts
            .iter()
            .position(|t| t == text)
            .map(|a| a as u32)
    }

    pub fn state_text(&self) -> &StateText {
        &self.state_text
    }

    pub fn rewards(&self) -> &RewardText {
        &self.reward_text
    }

    pub fn reward_text(&self, reward: f32) -> String {
        self.reward_text.format(reward)
    }

    /// Reads a reward text (e.g. a model's greedy decoding) back as a number.
    pub fn parse_reward(&self, text: &str) -> Option<f32> {
        self.reward_text.parse(text)
    }

    pub(crate) fn uses_position(&self) -> bool {
        self.uses_position
    }

    pub(crate) fn discrete_reward_values(&self) -> Option<&[f32]> {
        match &self.spec.reward {
            RewardKind::Discrete { values } => Some(values),
            RewardKind::Continuous => None,
        }
    }

    fn state_strings(&self, state: StateRef) -> Result<Vec<String>> {
        let (id, features) = match state {
            StateRef::Id(id) => (id, &[][..]),
            StateRef::Features(f) => (0, f),
        };
        if let (StateSpace::Continuous { feature_names, .. }, StateRef::Features(f)) =
            (&self.spec.state, state)
        {
            if f.len() != feature_names.len() {
                bail!(
                    "state has {} features, environment `{}` has {}",
                    f.len(),
                    self.spec.kind,
                    feature_names.len()
                );
            }
        }
        state_values(&self.spec, id, features, &self.state_text)
            .ok_or_else(|| anyhow!("state id {id} is outside environment `{}`", self.spec.kind))
    }

    pub(crate) fn render_raw(
        &self,
        state: &[String],
        action: (&str, &str, Value),
        reward: &str,
        pos: StepPosition,
    ) -> Result<String> {
        let vars = StepVars {
            state,
            state_names: &self.state_names,
            action: action.0,
            action_symbol: action.1,
            action_id: action.2,
            reward,
            step: pos.step,
            episode: pos.episode,
        };
        self.env
            .get_template(STEP_KEY)
            .and_then(|t| t.render(&vars))
            .map_err(|e| template_error(e, &self.config.step))
    }

    /// Renders with sentinels for action and reward and splits the text around them.
    pub(crate) fn sentinel_frame_with(
        &self,
        state: &[String],
        pos: StepPosition,
    ) -> Result<(StepFrame, ActionField)> {
        let text = self.render_raw(
            state,
            (
                &ACTION_NAME_SENTINEL.to_string(),
                &ACTION_SYMBOL_SENTINEL.to_string(),
                Value::from(ACTION_ID_SENTINEL.to_string()),
            ),
            &REWARD_SENTINEL.to_string(),
            pos,
        )?;
        let count = |c: char| text.matches(c).count();
        let shown: Vec<(ActionField, char)> = [
            (ActionField::Name, ACTION_NAME_SENTINEL),
            (ActionField::Symbol, ACTION_SYMBOL_SENTINEL),
            (ActionField::Id, ACTION_ID_SENTINEL),
        ]
        .into_iter()
        .filter(|&(_, c)| count(c) > 0)
        .collect();
        let total: usize = shown.iter().map(|&(_, c)| count(c)).sum();
        if total != 1 {
            bail!(
                "{STEP_KEY}: the action must appear exactly once (as `action`, `action_symbol` \
                 or `action_id`), found {total} times"
            );
        }
        if count(REWARD_SENTINEL) != 1 {
            bail!(
                "{STEP_KEY}: `reward` must appear exactly once, found {} times",
                count(REWARD_SENTINEL)
            );
        }
        let (field, a_char) = shown[0];
        let a = text.find(a_char).unwrap_or(0);
        let r = text.find(REWARD_SENTINEL).unwrap_or(0);
        if r < a {
            bail!("{STEP_KEY}: the action must come before the reward (a step is acted, then rewarded)");
        }
        let frame = StepFrame {
            before_action: text[..a].to_string(),
            between: text[a + a_char.len_utf8()..r].to_string(),
            after_reward: text[r + REWARD_SENTINEL.len_utf8()..].to_string(),
        };
        Ok((frame, field))
    }

    fn sentinel_frame(
        &self,
        state: StateRef,
        pos: StepPosition,
    ) -> Result<(StepFrame, ActionField)> {
        self.sentinel_frame_with(&self.state_strings(state)?, pos)
    }

    /// A real render of every action and of sample rewards must equal the frame composition:
    /// otherwise the template transforms or branches on them and spans would be wrong.
    fn check_fields_render_as_is(&self, state: StateRef) -> Result<()> {
        let values = self.state_strings(state)?;
        let pos = StepPosition::default();
        let (frame, _) = self.sentinel_frame_with(&values, pos)?;
        let rewards: Vec<f32> = match &self.spec.reward {
            RewardKind::Discrete { values } => values.clone(),
            RewardKind::Continuous => vec![0.0, -1.25, 3.5],
        };
        for a in 0..self.spec.n_actions() {
            for &r in &rewards {
                let rt = self.reward_text(r);
                let real = self.render_raw(
                    &values,
                    (
                        &self.action_names[a],
                        &self.symbols[a],
                        Value::from(a as u32),
                    ),
                    &rt,
                    pos,
                )?;
                let composed = compose(&frame, &self.action_texts[a], &rt);
                if real != composed {
                    bail!(
                        "{STEP_KEY}: the action and reward must be written as-is (no filters or \
                         conditions on them); action `{}` with reward {rt} rendered {real:?}, \
                         expected {composed:?}",
                        self.action_names[a]
                    );
                }
            }
        }
        Ok(())
    }

    /// The frame of a step in `state` at `pos` (shared per state when possible).
    pub fn frame(&self, state: StateRef, pos: StepPosition) -> Result<Cow<'_, StepFrame>> {
        if let StateRef::Id(id) = state {
            if let Some(f) = self.frames.get(id as usize) {
                return Ok(Cow::Borrowed(f));
            }
        }
        Ok(Cow::Owned(self.sentinel_frame(state, pos)?.0))
    }

    /// The text a model reads before it acts in `state`: what follows the context so far.
    /// The model's action must then be one of [`Self::action_texts`].
    pub fn action_prompt(&self, state: StateRef, pos: StepPosition) -> Result<String> {
        Ok(self.frame(state, pos)?.before_action.clone())
    }

    /// Appends one step (and the episode separator if `done`) to `out`; returns its spans.
    pub fn render_step(
        &self,
        out: &mut String,
        state: StateRef,
        action: u32,
        reward: f32,
        pos: StepPosition,
        done: bool,
    ) -> Result<StepSpans> {
        let frame = self.frame(state, pos)?;
        let action_text = self.action_texts.get(action as usize).ok_or_else(|| {
            anyhow!(
                "action {action} is outside environment `{}` ({} actions)",
                self.spec.kind,
                self.spec.n_actions()
            )
        })?;
        let start = out.len();
        out.push_str(&frame.before_action);
        let a = out.len();
        out.push_str(action_text);
        let a_end = out.len();
        out.push_str(&frame.between);
        let r = out.len();
        out.push_str(&self.reward_text(reward));
        let r_end = out.len();
        out.push_str(&frame.after_reward);
        let step_end = out.len();
        if done {
            out.push_str(&self.config.episode_separator);
        }
        Ok(StepSpans {
            step: start..step_end,
            action: a..a_end,
            reward: r..r_end,
            end: out.len(),
        })
    }

    /// Renders a whole history.
    pub fn render_history(&self, history: &LearningHistory) -> Result<RenderedHistory> {
        let mut text = String::new();
        let mut steps = Vec::with_capacity(history.len());
        let mut step_in_episode = 0u32;
        for t in 0..history.len() {
            let state = match self.spec.state {
                StateSpace::Discrete { .. } => StateRef::Id(history.states[t]),
                StateSpace::Continuous { .. } => StateRef::Features(history.features_at(t)),
            };
            let pos = StepPosition {
                step: step_in_episode,
                episode: history.episodes[t],
            };
            let done = history.dones[t];
            steps.push(self.render_step(
                &mut text,
                state,
                history.actions[t],
                history.rewards[t],
                pos,
                done,
            )?);
            step_in_episode = if done { 0 } else { step_in_episode + 1 };
        }
        Ok(RenderedHistory { text, steps })
    }
}

pub(crate) fn compose(frame: &StepFrame, action: &str, reward: &str) -> String {
    format!(
        "{}{action}{}{reward}{}",
        frame.before_action, frame.between, frame.after_reward
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::testdata::{darkroom_spec, language};

    fn render_one(name: &str, state: u32, action: u32, reward: f32, done: bool) -> String {
        let f = LanguageFormat::new(&language(name), &darkroom_spec()).unwrap();
        let mut out = String::new();
        f.render_step(
            &mut out,
            StateRef::Id(state),
            action,
            reward,
            StepPosition::default(),
            done,
        )
        .unwrap();
        out
    }

    #[test]
    fn shipped_formats_render_a_known_darkroom_step() {
        // State 40 of a 9x9 grid is (4,4); action 1 is `up`.
        assert_eq!(render_one("coords", 40, 1, 0.0, false), "(4,4) up 0\n");
        assert_eq!(render_one("coords", 40, 1, 1.0, true), "(4,4) up 1\n###\n");
        assert_eq!(
            render_one("verbose", 40, 1, 0.0, false),
            "state: x=4 y=4 action: up reward: 0\n"
        );
        assert_eq!(render_one("symbols", 40, 1, 0.0, false), "44u0;");
        assert_eq!(render_one("symbols", 10, 4, 1.0, true), "11l1;|\n");
    }

    #[test]
    fn spans_point_at_the_step_its_action_and_its_reward() {
        let f = LanguageFormat::new(&language("verbose"), &darkroom_spec()).unwrap();
        let mut out = String::from("prefix\n");
        let s = f
            .render_step(
                &mut out,
                StateRef::Id(40),
                2,
                1.0,
                StepPosition::default(),
                true,
            )
            .unwrap();
        assert_eq!(
            &out[s.step.clone()],
            "state: x=4 y=4 action: right reward: 1\n"
        );
        assert_eq!(&out[s.action], "right");
        assert_eq!(&out[s.reward], "1");
        assert_eq!(&out[s.step.end..s.end], "###\n");
        assert_eq!(s.end, out.len());
        assert_eq!(
            f.action_prompt(StateRef::Id(40), StepPosition::default())
                .unwrap(),
            "state: x=4 y=4 action: "
        );
        assert_eq!(f.action_texts(), ["noop", "up", "right", "down", "left"]);
        assert_eq!(f.parse_action("left"), Some(4));
    }

    #[test]
    fn continuous_states_and_rewards_use_the_precision() {
        let spec = crate::tasks::env::cartpole::CartPole::spec(500);
        let mut cfg = language("coords");
        cfg.step =
            "{{ state | join(' ') }} {{ action_symbol }} {{ reward }} e{{ episode }}s{{ step }}\n"
                .into();
        let f = LanguageFormat::new(&cfg, &spec).unwrap();
        let mut out = String::new();
        let pos = StepPosition {
            step: 3,
            episode: 7,
        };
        f.render_step(
            &mut out,
            StateRef::Features(&[0.123, -0.001, -1.5, 2.0]),
            1,
            1.0,
            pos,
            false,
        )
        .unwrap();
        assert_eq!(out, "0.12 0.00 -1.50 2.00 r 1 e7s3\n");
        let dense = RewardText::new(
            &EnvSpec {
                reward: RewardKind::Continuous,
                ..spec
            },
            2,
        );
        assert_eq!(dense.format(1.0), "1.00");
        assert!(dense.matches("0.25", 0.2549));
        assert!(!dense.matches("0.25", 0.26));
        assert!(!dense.matches("x", 0.0));
    }

    #[test]
    fn states_rendering_alike_are_found() {
        let wide = crate::tasks::env::grid::DarkRoom::spec(17, 50);
        let symbols = LanguageFormat::new(&language("symbols"), &wide).unwrap();
        let (a, b) = symbols.indistinguishable_states().unwrap();
        let text = |s| {
            symbols
                .action_prompt(StateRef::Id(s), StepPosition::default())
                .unwrap()
        };
        assert_eq!(text(a), text(b));
        assert_ne!(a, b);
        let coords = LanguageFormat::new(&language("coords"), &wide).unwrap();
        assert_eq!(coords.indistinguishable_states(), None);
    }

    #[test]
    fn template_errors_name_format_step() {
        let spec = darkroom_spec();
        let cases = [
            (
                "({{ state | join(',') }} {{ action }} {{ reward }\n",
                "syntax",
            ),
            ("{{ state }} {{ acton }} {{ reward }}\n", "acton"),
            (
                "{{ state }} {{ reward }}\n",
                "action must appear exactly once",
            ),
            (
                "{{ action }} {{ action_symbol }} {{ reward }}\n",
                "action must appear exactly once",
            ),
            (
                "{{ state }} {{ action }}\n",
                "`reward` must appear exactly once",
            ),
            ("{{ reward }} {{ action }}\n", "before the reward"),
            ("{{ action | upper }} {{ reward }}\n", "as-is"),
            ("{{ action }} {{ reward }} {{ state[7] }}\n", "must exist"),
        ];
        for (step, expected) in cases {
            let mut cfg = language("coords");
            cfg.step = step.into();
            let err = format!("{:#}", LanguageFormat::new(&cfg, &spec).unwrap_err());
            assert!(err.contains("format.step"), "{step:?}: {err}");
            assert!(err.contains(expected), "{step:?}: {err}");
        }
    }
}
