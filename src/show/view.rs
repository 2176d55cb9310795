//! A learning history as a model reads it — steps made of tokens, each token marked as
//! context, state, action or reward — and its printing: a few steps from the start, middle
//! and end, token boundaries visible, targets highlighted (ANSI colour) or marked
//! (`[a:…]`, `[r:…]`), with token counts per step and per episode and how much of the
//! history one training window covers.

use std::fmt::Write as _;

/// What a token is to the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Read, predicted, but not an action or reward (template text, prompts, states in text).
    Context,
    /// An RL-format state token.
    State,
    /// A token of the action: action accuracy is measured on these.
    Action,
    /// A token of the reward: reward accuracy is measured on these.
    Reward,
}

impl Role {
    fn marker(self) -> Option<&'static str> {
        match self {
            Role::Context => None,
            Role::State => Some("s"),
            Role::Action => Some("a"),
            Role::Reward => Some("r"),
        }
    }

    /// ANSI SGR: black on green (action), on yellow (reward), on cyan (state).
    fn colour(self) -> Option<&'static str> {
        match self {
            Role::Context => None,
            Role::State => Some("30;46"),
            Role::Action => Some("30;42"),
            Role::Reward => Some("30;43"),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    pub text: String,
    pub role: Role,
}

/// One step (an RL step, or an RLHF rollout) as tokens.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// The episode (or PPO epoch) it belongs to.
    pub group: u32,
    /// e.g. `episode 3, step 4`.
    pub label: String,
    pub tokens: Vec<Token>,
}

/// How long one training window is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    /// `model.context_tokens` tokens of whole steps (causal LM).
    Tokens(usize),
    /// `model.context_steps` steps of `tokens_per_step` tokens each (RL heads).
    Steps {
        steps: usize,
        tokens_per_step: usize,
    },
}

/// A history ready to print.
#[derive(Debug, Clone)]
pub struct Shown {
    /// Lines describing the task, history and format.
    pub header: Vec<String>,
    /// What a step is called (`step`, `rollout`).
    pub step_noun: &'static str,
    /// What groups steps (`episode`, `PPO epoch`).
    pub group_noun: &'static str,
    pub steps: Vec<Step>,
    pub context: Context,
    /// Whether tokens are text (boundaries and whitespace worth showing) or RL fields.
    pub text: bool,
}

#[derive(Debug, Clone, Copy)]
pub struct Style {
    pub colour: bool,
    /// Steps printed from each of the start, middle and end.
    pub per_section: usize,
}

/// min, mean, max.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    pub min: f64,
    pub mean: f64,
    pub max: f64,
}

impl Spread {
    fn of(values: impl IntoIterator<Item = f64>) -> Option<Spread> {
        let (mut n, mut sum, mut min, mut max) = (0usize, 0.0, f64::INFINITY, f64::NEG_INFINITY);
        for v in values {
            n += 1;
            sum += v;
            min = min.min(v);
            max = max.max(v);
        }
        (n > 0).then(|| Spread {
            min,
            mean: sum / n as f64,
            max,
        })
    }

    /// `9` when constant, else `9–11 (mean 9.6)`.
    fn describe(&self) -> String {
        if self.min == self.max {
            trim(self.min)
        } else {
            format!(
                "{}–{} (mean {})",
                trim(self.min),
                trim(self.max),
                trim(self.mean)
            )
        }
    }
}

/// A number with at most 2 decimals, trailing zeros dropped.
fn trim(x: f64) -> String {
    let s = format!("{x:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_string()
}

/// Token counts of a history and what one window covers.
#[derive(Debug, Clone, PartialEq)]
pub struct Stats {
    pub per_step: Spread,
    /// Tokens per episode (whole episodes only: the last may be cut off by the history's end).
    pub per_group: Spread,
    pub steps_per_group: Spread,
    /// Whole steps in one window, over windows that the history's end does not cut short.
    /// `None` when the whole history fits in one window.
    pub window_steps: Option<Spread>,
    /// Episodes one window spans: each step counts as 1 / (steps in its episode).
    pub window_groups: Option<Spread>,
    pub total_tokens: usize,
    pub n_groups: usize,
}

/// At most this many window starts are measured (evenly spaced).
const WINDOW_SAMPLES: usize = 2000;

impl Shown {
    fn step_tokens(&self, s: &Step) -> usize {
        match self.context {
            Context::Tokens(_) => s.tokens.len(),
            Context::Steps {
                tokens_per_step, ..
            } => tokens_per_step,
        }
    }

    pub fn stats(&self) -> Option<Stats> {
        let counts: Vec<usize> = self.steps.iter().map(|s| self.step_tokens(s)).collect();
        let per_step = Spread::of(counts.iter().map(|&c| c as f64))?;
        // Runs of steps with the same group, in order.
        let mut runs: Vec<(usize, usize)> = Vec::new(); // (first step, len)
        for (i, s) in self.steps.iter().enumerate() {
            match runs.last_mut() {
                Some((first, len)) if self.steps[*first].group == s.group => *len += 1,
                _ => runs.push((i, 1)),
            }
        }
        let group_len: Vec<usize> = runs
            .iter()
            .flat_map(|&(_, len)| std::iter::repeat_n(len, len))
            .collect();
        let whole = if runs.len() > 1 {
            &runs[..runs.len() - 1]
        } else {
            &runs[..]
        };
        let per_group = Spread::of(
            whole
                .iter()
                .map(|&(f, len)| counts[f..f + len].iter().sum::<usize>() as f64),
        )?;
        let steps_per_group = Spread::of(whole.iter().map(|&(_, len)| len as f64))?;

        // Whole steps from each start while they fit; starts whose window reaches the end
        // of the history are left out (their windows are short for want of steps).
        let n = counts.len();
        let window_at = |start: usize| -> Option<(usize, f64)> {
            let (mut used, mut steps, mut groups) = (0usize, 0usize, 0.0);
            for (i, &c) in counts.iter().enumerate().skip(start) {
                let fits = match self.context {
                    Context::Tokens(budget) => used + c <= budget,
                    Context::Steps { steps: budget, .. } => steps < budget,
                };
                if !fits {
                    return Some((steps, groups));
                }
                used += c;
                steps += 1;
                groups += 1.0 / group_len[i] as f64;
            }
            None
        };
        let stride = n.div_ceil(WINDOW_SAMPLES).max(1);
        let windows: Vec<(usize, f64)> = (0..n).step_by(stride).map_while(window_at).collect();
        Some(Stats {
            per_step,
            per_group,
            steps_per_group,
            window_steps: Spread::of(windows.iter().map(|w| w.0 as f64)),
            window_groups: Spread::of(windows.iter().map(|w| w.1)),
            total_tokens: counts.iter().sum(),
            n_groups: runs.len(),
        })
    }

    /// The whole printout.
    pub fn render(&self, style: Style) -> String {
        let mut out = String::new();
        for line in &self.header {
            let _ = writeln!(out, "{line}");
        }
        if let Some(stats) = self.stats() {
            self.render_stats(&mut out, &stats);
        }
        let _ = writeln!(out, "{}", self.legend(style));
        let n = self.steps.len();
        let k = style.per_section.max(1);
        let sections: Vec<(&str, usize)> = if n <= 3 * k {
            vec![("all", 0)]
        } else {
            vec![("start", 0), ("middle", (n - k) / 2), ("end", n - k)]
        };
        let mut shown_to = 0;
        for (name, from) in sections {
            let to = if name == "all" { n } else { from + k };
            if from > shown_to {
                let _ = writeln!(
                    out,
                    "\n  … {} {}s not shown …",
                    from - shown_to,
                    self.step_noun
                );
            }
            let _ = writeln!(
                out,
                "\n── {name}: {}s {}–{} of {n} ──",
                self.step_noun,
                from,
                to - 1
            );
            for (i, step) in self.steps[from..to].iter().enumerate() {
                self.render_step(&mut out, from + i, step, style);
            }
            shown_to = to;
        }
        out
    }

    fn render_stats(&self, out: &mut String, s: &Stats) {
        let (step, group) = (self.step_noun, self.group_noun);
        let _ = writeln!(
            out,
            "tokens: {} per {step}, {} per {group} ({} {step}s per {group}); {} in all, {} {group}s",
            s.per_step.describe(),
            s.per_group.describe(),
            s.steps_per_group.describe(),
            s.total_tokens,
            s.n_groups
        );
        let budget = match self.context {
            Context::Tokens(t) => format!("model.context_tokens = {t}"),
            Context::Steps {
                steps,
                tokens_per_step,
            } => format!(
                "model.context_steps = {steps} ({} tokens)",
                steps * tokens_per_step
            ),
        };
        let _ = match (&s.window_steps, &s.window_groups) {
            (Some(ws), Some(wg)) => writeln!(
                out,
                "context: {budget}: one training window holds {} whole {step}s = {} {group}s",
                ws.describe(),
                wg.describe()
            ),
            _ => writeln!(
                out,
                "context: {budget}: the whole history ({} {step}s, {} {group}s) fits in one window",
                self.steps.len(),
                s.n_groups
            ),
        };
    }

    fn legend(&self, style: Style) -> String {
        let roles: &[(Role, &str)] = if self.text {
            &[(Role::Action, "action"), (Role::Reward, "reward")]
        } else {
            &[
                (Role::State, "state"),
                (Role::Action, "action"),
                (Role::Reward, "reward"),
            ]
        };
        let mut parts: Vec<String> = roles
            .iter()
            .map(|&(role, what)| format!("{} {what} tokens", mark(role, "…", style.colour)))
            .collect();
        if self.text {
            let sep = if style.colour { "\x1b[2m|\x1b[0m" } else { "|" };
            parts.push(format!("{sep} token boundary, ⏎ newline, · space"));
        }
        format!("marks: {}", parts.join(", "))
    }

    fn render_step(&self, out: &mut String, index: usize, step: &Step, style: Style) {
        let _ = writeln!(
            out,
            "{} {index} · {} · {} tokens",
            self.step_noun,
            step.label,
            self.step_tokens(step)
        );
        if self.text {
            let text: String = step.tokens.iter().map(|t| t.text.as_str()).collect();
            for line in text.trim_end_matches('\n').split('\n') {
                let _ = writeln!(out, "    │ {line}");
            }
            let _ = writeln!(
                out,
                "    tokens: {}",
                token_line(&step.tokens, style.colour)
            );
        } else {
            let fields: Vec<String> = step
                .tokens
                .iter()
                .map(|t| mark(t.role, &t.text, style.colour))
                .collect();
            let _ = writeln!(out, "    {}", fields.join(" "));
        }
    }
}

/// `[a:text]` or `text` in the role's colour; context text as is.
fn mark(role: Role, text: &str, colour: bool) -> String {
    match (role.marker(), role.colour(), colour) {
        (Some(_), Some(c), true) => format!("\x1b[{c}m{text}\x1b[0m"),
        (Some(m), _, false) => format!("[{m}:{text}]"),
        _ => text.to_string(),
    }
}

/// Whitespace made visible, so a token boundary next to a space or newline can be seen.
fn visible(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\n' => '⏎',
            ' ' => '·',
            '\t' => '⇥',
            c => c,
        })
        .collect()
}

/// Tokens with `|` between them; a run of action (reward) tokens is one marked group.
fn token_line(tokens: &[Token], colour: bool) -> String {
    let sep = if colour { "\x1b[2m|\x1b[0m" } else { "|" };
    let mut out = String::new();
    let mut i = 0;
    while i < tokens.len() {
        let role = tokens[i].role;
        let run = tokens[i..].iter().take_while(|t| t.role == role).count();
        let inner: Vec<String> = tokens[i..i + run]
            .iter()
            .map(|t| visible(&t.text))
            .collect();
        if !out.is_empty() {
            out.push_str(sep);
        }
        if role == Role::Context {
            out.push_str(&inner.join(sep));
        } else {
            // Inside a coloured run the boundary must not reset the colour.
            let joined = if colour {
                inner.join("|")
            } else {
                inner.join(sep)
            };
            out.push_str(&mark(role, &joined, colour));
        }
        i += run;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tok(text: &str, role: Role) -> Token {
        Token {
            text: text.into(),
            role,
        }
    }

    /// `(1,2) up 0\n` per step as byte-ish tokens, episodes of `len` steps.
    fn shown(n: usize, len: usize, context: Context) -> Shown {
        let steps = (0..n)
            .map(|i| Step {
                group: (i / len) as u32,
                label: format!("episode {}, step {}", i / len, i % len),
                tokens: vec![
                    tok("(1,2)", Role::Context),
                    tok(" ", Role::Context),
                    tok("u", Role::Action),
                    tok("p", Role::Action),
                    tok(" ", Role::Context),
                    tok("0", Role::Reward),
                    tok("\n", Role::Context),
                ],
            })
            .collect();
        Shown {
            header: vec!["header".into()],
            step_noun: "step",
            group_noun: "episode",
            steps,
            context,
            text: true,
        }
    }

    #[test]
    fn tokens_are_separated_and_targets_marked_without_colour() {
        let s = shown(1, 1, Context::Tokens(70));
        let line = token_line(&s.steps[0].tokens, false);
        assert_eq!(line, "(1,2)|·|[a:u|p]|·|[r:0]|⏎");
        let coloured = token_line(&s.steps[0].tokens, true);
        assert!(coloured.contains("\x1b[30;42mu|p\x1b[0m"), "{coloured:?}");
        assert!(!coloured.contains("[a:"));
    }

    #[test]
    fn windows_are_measured_in_whole_steps_and_episodes() {
        // 7 tokens per step, 4 steps per episode, 30 tokens per window: 4 whole steps = 1 episode.
        let s = shown(40, 4, Context::Tokens(30));
        let st = s.stats().unwrap();
        assert_eq!(st.per_step.mean, 7.0);
        assert_eq!((st.per_group.min, st.per_group.max), (28.0, 28.0));
        assert_eq!(st.n_groups, 10);
        assert_eq!(st.total_tokens, 280);
        let ws = st.window_steps.unwrap();
        assert_eq!((ws.min, ws.max), (4.0, 4.0));
        assert_eq!(st.window_groups.unwrap().mean, 1.0);

        // RL steps: 3 tokens each, 8 steps per window = 2 episodes.
        let s = shown(
            40,
            4,
            Context::Steps {
                steps: 8,
                tokens_per_step: 3,
            },
        );
        let st = s.stats().unwrap();
        assert_eq!(st.per_step.mean, 3.0);
        assert_eq!(st.window_groups.unwrap().mean, 2.0);

        // A history shorter than the window.
        let st = shown(3, 4, Context::Tokens(1000)).stats().unwrap();
        assert!(st.window_steps.is_none());
    }

    #[test]
    fn the_printout_shows_start_middle_and_end() {
        let s = shown(100, 10, Context::Tokens(64));
        let text = s.render(Style {
            colour: false,
            per_section: 2,
        });
        assert!(text.contains("── start: steps 0–1 of 100 ──"), "{text}");
        assert!(text.contains("── middle: steps 49–50 of 100 ──"), "{text}");
        assert!(text.contains("── end: steps 98–99 of 100 ──"), "{text}");
        assert!(text.contains("… 47 steps not shown …"), "{text}");
        assert!(
            text.contains("step 99 · episode 9, step 9 · 7 tokens"),
            "{text}"
        );
        assert!(text.contains("    │ (1,2) up 0"), "{text}");
        assert!(
            text.contains("one training window holds 9 whole steps = 0.9 episodes"),
            "{text}"
        );
        assert!(!text.contains('\x1b'));
    }
}
