//! Reading rendered text back into steps — the inverse of [`LanguageFormat::render_history`],
//! used to check formats round-trip and to read what a model wrote.
//!
//! A step is matched against patterns built from step frames: for discrete states one pattern
//! per state (its frame around the action and reward), for continuous states one pattern whose
//! state values are holes (the frame rendered with a sentinel per feature), read as the format
//! writes them (`formats::values`: numbers with exactly `precision` decimals, so adjacent
//! values need no delimiter, integers, or bin labels read as the bin's centre). Actions are
//! matched against every action text and rewards against every value of a discrete reward set
//! (or as a number), with backtracking; a step that matches in two different ways is an
//! error (the format is ambiguous), as is one that matches in none.
//!
//! Assumptions: `episode` counts up by one per episode from `first_episode` (true for
//! histories recorded with `keep_every: 1`), and a non-empty episode separator never starts a
//! step's text (otherwise episode ends are read as separators). With an empty separator
//! episode ends cannot be seen and every parsed step has `done = false`.

use super::fields::scan_number;
use super::language::{LanguageFormat, StateRef, StepFrame, StepPosition, STATE_SENTINEL};
use crate::tasks::StateSpace;
use anyhow::{bail, Result};

/// One step read back from text.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedStep {
    /// Discrete state id (0 for continuous states).
    pub state: u32,
    /// Continuous features as written (empty for discrete states).
    pub features: Vec<f32>,
    pub action: u32,
    pub reward: f32,
    /// The step was followed by the episode separator.
    pub done: bool,
}

#[derive(Debug, Clone, PartialEq)]
enum Item {
    Literal(String),
    Feature(usize),
    Action,
    Reward,
}

#[derive(Debug, Clone, PartialEq)]
struct Match {
    end: usize,
    action: u32,
    reward: f32,
    features: Vec<f32>,
}

fn frame_items(frame: &StepFrame, holes: bool) -> Vec<Item> {
    let mut items = Vec::new();
    let push_text = |items: &mut Vec<Item>, s: &str| {
        let mut lit = String::new();
        for c in s.chars() {
            let code = c as u32;
            if holes && (STATE_SENTINEL..STATE_SENTINEL + 0x100).contains(&code) {
                if !lit.is_empty() {
                    items.push(Item::Literal(std::mem::take(&mut lit)));
                }
                items.push(Item::Feature((code - STATE_SENTINEL) as usize));
            } else {
                lit.push(c);
            }
        }
        if !lit.is_empty() {
            items.push(Item::Literal(lit));
        }
    };
    push_text(&mut items, &frame.before_action);
    items.push(Item::Action);
    push_text(&mut items, &frame.between);
    items.push(Item::Reward);
    push_text(&mut items, &frame.after_reward);
    items
}

struct Matcher<'a> {
    format: &'a LanguageFormat,
    text: &'a str,
    reward_texts: Option<Vec<(f32, String)>>,
    feature_dim: usize,
    /// Numbers of any precision (see `StateText::scan`).
    lenient: bool,
}

impl Matcher<'_> {
    fn run(&self, items: &[Item], pos: usize, partial: &mut Match, out: &mut Vec<Match>) {
        let rest = &self.text[pos..];
        let Some((item, tail)) = items.split_first() else {
            partial.end = pos;
            out.push(partial.clone());
            return;
        };
        match item {
            Item::Literal(s) => {
                if rest.starts_with(s.as_str()) {
                    self.run(tail, pos + s.len(), partial, out);
                }
            }
            Item::Feature(i) if *i < self.feature_dim => {
                for (n, v) in self.format.state_text().scan(*i, rest, self.lenient) {
                    partial.features[*i] = v;
                    self.run(tail, pos + n, partial, out);
                }
            }
            Item::Feature(_) => {}
            Item::Action => {
                for (a, t) in self.format.action_texts().iter().enumerate() {
                    if rest.starts_with(t.as_str()) {
                        partial.action = a as u32;
                        self.run(tail, pos + t.len(), partial, out);
                    }
                }
            }
            Item::Reward => match &self.reward_texts {
                Some(texts) => {
                    for (v, t) in texts {
                        if rest.starts_with(t.as_str()) {
                            partial.reward = *v;
                            self.run(tail, pos + t.len(), partial, out);
                        }
                    }
                }
                None => {
                    if let Some(n) = scan_number(rest, None) {
                        if let Some(v) = self.format.parse_reward(&rest[..n]) {
                            partial.reward = v;
                            self.run(tail, pos + n, partial, out);
                        }
                    }
                }
            },
        }
    }
}

/// Patterns for one step position: `(state id, items)` per candidate state.
fn patterns(format: &LanguageFormat, pos: StepPosition) -> Result<Vec<(u32, Vec<Item>)>> {
    match &format.spec().state {
        StateSpace::Discrete { n_states, .. } => (0..*n_states as u32)
            .map(|s| {
                Ok((
                    s,
                    frame_items(format.frame(StateRef::Id(s), pos)?.as_ref(), false),
                ))
            })
            .collect(),
        StateSpace::Continuous { feature_names, .. } => {
            if feature_names.len() > 0x100 {
                bail!("cannot parse states with more than 256 features");
            }
            let holes: Vec<String> = (0..feature_names.len() as u32)
                .filter_map(|i| char::from_u32(STATE_SENTINEL + i).map(String::from))
                .collect();
            let (frame, _) = format.sentinel_frame_with(&holes, pos)?;
            let items = frame_items(&frame, true);
            for (i, name) in feature_names.iter().enumerate() {
                if !items.contains(&Item::Feature(i)) {
                    bail!("format.step does not show state feature `{name}`: text cannot be parsed back");
                }
            }
            Ok(vec![(0, items)])
        }
    }
}

/// Reads the state of a continuous-state step from the text before its action (what a model
/// writes where the next state goes): the features, or `None` if `text` is not exactly one
/// state of this format (with `lenient`, numbers may have any precision). `Ok(None)` too for
/// discrete-state formats (nothing to read).
pub fn parse_state(
    format: &LanguageFormat,
    text: &str,
    pos: StepPosition,
    lenient: bool,
) -> Result<Option<Vec<f32>>> {
    let feature_dim = format.spec().state.feature_dim();
    if feature_dim == 0 {
        return Ok(None);
    }
    let items = patterns(format, pos)?.swap_remove(0).1;
    let before_action = items.split(|i| *i == Item::Action).next().unwrap_or(&[]);
    if (0..feature_dim).any(|i| !before_action.contains(&Item::Feature(i))) {
        return Ok(None);
    }
    let matcher = Matcher {
        format,
        text,
        reward_texts: None,
        feature_dim,
        lenient,
    };
    let mut partial = Match {
        end: 0,
        action: 0,
        reward: 0.0,
        features: vec![0.0; feature_dim],
    };
    let mut out = Vec::new();
    matcher.run(before_action, 0, &mut partial, &mut out);
    out.retain(|m| m.end == text.len());
    Ok(match out.len() {
        1 => Some(out.swap_remove(0).features),
        _ => None,
    })
}

/// Parses a rendered history (as written by [`LanguageFormat::render_history`]) back into
/// steps; `first_episode` is the episode index of its first step.
pub fn parse_history(
    format: &LanguageFormat,
    text: &str,
    first_episode: u32,
) -> Result<Vec<ParsedStep>> {
    let feature_dim = format.spec().state.feature_dim();
    let matcher = Matcher {
        format,
        text,
        reward_texts: format.discrete_reward_values().map(|vs| {
            vs.iter()
                .map(|&v| (v, format.reward_text(v)))
                .collect::<Vec<_>>()
        }),
        feature_dim,
        lenient: false,
    };
    let separator = format.config().episode_separator.as_str();
    let mut pos = StepPosition {
        step: 0,
        episode: first_episode,
    };
    let cached = if format.uses_position() {
        None
    } else {
        Some(patterns(format, pos)?)
    };
    let mut at = 0;
    let mut steps = Vec::new();
    while at < text.len() {
        let owned;
        let candidates = match &cached {
            Some(p) => p,
            None => {
                owned = patterns(format, pos)?;
                &owned
            }
        };
        let mut found: Vec<(u32, Match)> = Vec::new();
        for (state, items) in candidates {
            let mut partial = Match {
                end: at,
                action: 0,
                reward: 0.0,
                features: vec![0.0; feature_dim],
            };
            let mut out = Vec::new();
            matcher.run(items, at, &mut partial, &mut out);
            found.extend(out.into_iter().map(|m| (*state, m)));
        }
        let snippet: String = text[at..].chars().take(40).collect();
        let (state, m) = match found.len() {
            0 => bail!("byte {at}: no step of this format matches {snippet:?}"),
            1 => found.swap_remove(0),
            n => bail!("byte {at}: {n} different steps match {snippet:?}: the format is ambiguous"),
        };
        at = m.end;
        let done = !separator.is_empty() && text[at..].starts_with(separator);
        if done {
            at += separator.len();
        }
        steps.push(ParsedStep {
            state,
            features: m.features,
            action: m.action,
            reward: m.reward,
            done,
        });
        pos = pos.after(done);
    }
    Ok(steps)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::testdata::{dataset, language, language_formats};
    use crate::tasks::LearningHistory;

    fn first_episode(h: &LearningHistory) -> u32 {
        h.episodes.first().copied().unwrap_or(0)
    }

    #[test]
    fn every_shipped_format_round_trips_discrete_tasks() {
        for (task, tasks, episodes) in [
            ("darkroom", 3, 4),
            ("key_to_door", 3, 3),
            ("bandit", 3, 30),
            ("frozenlake", 3, 10),
        ] {
            let (spec, histories) = dataset(task, tasks, episodes);
            // Scaled or binned values are for continuous states only.
            for cfg in language_formats()
                .into_iter()
                .filter(|c| c.values.is_decimal())
            {
                let f = LanguageFormat::new(&cfg, &spec).unwrap();
                for h in &histories {
                    let rendered = f.render_history(h).unwrap();
                    let parsed = parse_history(&f, &rendered.text, first_episode(h))
                        .unwrap_or_else(|e| panic!("{task}/{}: {e:#}", cfg.name));
                    let ctx = format!("{task}/{}", cfg.name);
                    assert_eq!(parsed.len(), h.len(), "{ctx}");
                    for (t, p) in parsed.iter().enumerate() {
                        assert_eq!(
                            (p.state, p.action, p.reward, p.done),
                            (h.states[t], h.actions[t], h.rewards[t], h.dones[t]),
                            "{ctx} step {t}"
                        );
                    }
                }
            }
        }
    }

    fn inside(spec: &crate::tasks::EnvSpec, i: usize, x: f32) -> bool {
        match &spec.state {
            StateSpace::Continuous { feature_ranges, .. } => {
                let [lo, hi] = feature_ranges[i];
                (lo..=hi).contains(&x)
            }
            StateSpace::Discrete { .. } => true,
        }
    }

    #[test]
    fn continuous_states_parse_back_within_each_formats_resolution() {
        for task in ["cartpole", "lunar_lander"] {
            let (spec, histories) = dataset(task, 3, 2);
            for cfg in language_formats() {
                let f = LanguageFormat::new(&cfg, &spec).unwrap();
                let ctx = format!("{task}/{}", cfg.name);
                let h = &histories[0];
                let rendered = f.render_history(h).unwrap();
                let parsed = parse_history(&f, &rendered.text, first_episode(h))
                    .unwrap_or_else(|e| panic!("{ctx}: {e:#}"));
                assert_eq!(parsed.len(), h.len(), "{ctx}");
                for (t, p) in parsed.iter().enumerate() {
                    assert_eq!((p.action, p.done), (h.actions[t], h.dones[t]), "{ctx}");
                    assert!((p.reward - h.rewards[t]).abs() <= f.rewards().tolerance());
                    for (i, (x, y)) in p.features.iter().zip(h.features_at(t)).enumerate() {
                        let tol = f.state_text().resolution(i) + 1e-4;
                        // Bins read back as their centre; values beyond the range sit in the
                        // end bins, so only values inside it are held to half a bin.
                        if f.config().values.is_decimal() || inside(&spec, i, *y) {
                            assert!((x - y).abs() <= tol, "{ctx} feature {i}: {x} vs {y}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn a_state_reads_back_from_the_text_before_its_action() {
        let (spec, histories) = dataset("lunar_lander", 3, 1);
        let h = &histories[0];
        for cfg in language_formats() {
            let f = LanguageFormat::new(&cfg, &spec).unwrap();
            let rendered = f.render_history(h).unwrap();
            let t = h.len() / 2;
            let s = &rendered.steps[t];
            let pos = StepPosition {
                step: t as u32,
                episode: h.episodes[t],
            };
            let before = &rendered.text[s.step.start..s.action.start];
            let state = parse_state(&f, before, pos, false)
                .unwrap()
                .unwrap_or_else(|| panic!("{}: {before:?} does not read back", cfg.name));
            let again: Vec<String> = state
                .iter()
                .enumerate()
                .map(|(i, &x)| f.state_text().format(i, x))
                .collect();
            let logged: Vec<String> = h
                .features_at(t)
                .iter()
                .enumerate()
                .map(|(i, &x)| f.state_text().format(i, x))
                .collect();
            assert_eq!(again, logged, "{}", cfg.name);
            // A truncated or extended state is not a state.
            let short = &before[..before.len() - 2];
            assert_eq!(
                parse_state(&f, short, pos, false).unwrap(),
                None,
                "{}",
                cfg.name
            );
            let long = format!("{before}x");
            assert_eq!(
                parse_state(&f, &long, pos, false).unwrap(),
                None,
                "{}",
                cfg.name
            );
            assert_eq!(
                parse_state(&f, &long, pos, true).unwrap(),
                None,
                "{}",
                cfg.name
            );
        }
        // A number short of the precision reads only leniently.
        let f = LanguageFormat::new(&language("coords"), &spec).unwrap();
        let off = "(0.2,1.40,0.1,-0.20,0.00,0.00,0.00,1.00) ";
        let pos = StepPosition::default();
        assert_eq!(parse_state(&f, off, pos, false).unwrap(), None);
        let read = parse_state(&f, off, pos, true).unwrap().unwrap();
        assert_eq!(read, vec![0.2, 1.4, 0.1, -0.2, 0.0, 0.0, 0.0, 1.0]);
        {}
        let (grid, _) = dataset("darkroom", 3, 1);
        let f = LanguageFormat::new(&language("coords"), &grid).unwrap();
        assert_eq!(
            parse_state(&f, "(4,4) ", StepPosition::default(), true).unwrap(),
            None
        );
    }

    #[test]
    fn ambiguous_or_foreign_text_is_an_error() {
        let (spec, _) = dataset("darkroom", 3, 1);
        let f = LanguageFormat::new(&language("coords"), &spec).unwrap();
        let err = parse_history(&f, "(4,4) jump 0\n", 0).unwrap_err();
        assert!(format!("{err}").contains("no step"), "{err}");
        let mut cfg = language("coords");
        cfg.step = "{{ action }} {{ reward }}\n".into();
        let f = LanguageFormat::new(&cfg, &spec).unwrap();
        let err = parse_history(&f, "up 0\n", 0).unwrap_err();
        assert!(format!("{err}").contains("ambiguous"), "{err}");
    }

    #[test]
    fn templates_using_step_and_episode_round_trip() {
        let (spec, histories) = dataset("darkroom", 3, 3);
        let mut cfg = language("coords");
        cfg.step =
            "{{ episode }}.{{ step }} ({{ state | join(',') }}) {{ action }} {{ reward }}\n".into();
        let f = LanguageFormat::new(&cfg, &spec).unwrap();
        let h = &histories[0];
        let rendered = f.render_history(h).unwrap();
        assert!(
            rendered.text.starts_with("0.0 (4,4) "),
            "{}",
            &rendered.text[..20]
        );
        let parsed = parse_history(&f, &rendered.text, 0).unwrap();
        let actions: Vec<u32> = parsed.iter().map(|p| p.action).collect();
        assert_eq!(actions, h.actions);
    }
}
