//! Config errors. Each names the full key, the offending value, what was expected, where the
//! value came from, and — when one is close — the nearest valid key or option.

use std::fmt;
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq)]
pub enum ConfigError {
    Io {
        path: PathBuf,
        message: String,
    },
    Syntax {
        path: PathBuf,
        line: Option<usize>,
        column: Option<usize>,
        message: String,
    },
    /// An override grammar error.
    BadOverride {
        text: String,
        message: String,
    },
    /// Sweep syntax outside a multirun.
    SweepOutsideMultirun {
        text: String,
    },
    /// `key=value` for a key that does not exist.
    NoSuchKey {
        key: String,
        origin: String,
        suggestion: Option<String>,
        hint: Option<String>,
    },
    /// `+key=value` for a key that already exists.
    KeyExists {
        key: String,
        origin: String,
        defined_at: String,
    },
    UnknownOption {
        group: String,
        option: String,
        origin: String,
        available: Vec<String>,
        suggestion: Option<String>,
    },
    UnknownGroup {
        group: String,
        origin: String,
        available: Vec<String>,
        suggestion: Option<String>,
    },
    Defaults {
        file: String,
        message: String,
    },
    Interpolation {
        key: String,
        message: String,
    },
    /// A value of the wrong type or out of range for the schema.
    InvalidValue {
        key: String,
        value: String,
        expected: String,
        origin: String,
    },
    /// A key the schema does not know.
    UnknownKey {
        key: String,
        origin: String,
        suggestion: Option<String>,
    },
    MissingKey {
        key: String,
        origin: String,
    },
    /// A constraint between keys, checked after typing; `message` names the key(s).
    Constraint {
        message: String,
        origin: String,
    },
}

fn did_you_mean(f: &mut fmt::Formatter<'_>, suggestion: &Option<String>) -> fmt::Result {
    match suggestion {
        Some(s) => write!(f, "\n  did you mean `{s}`?"),
        None => Ok(()),
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use ConfigError::*;
        match self {
            Io { path, message } => write!(f, "cannot read config file {}: {message}", path.display()),
            Syntax {
                path,
                line,
                column,
                message,
            } => {
                write!(f, "YAML syntax error in {}", path.display())?;
                if let Some(l) = line {
                    write!(f, " at line {l}")?;
                    if let Some(c) = column {
                        write!(f, ", column {c}")?;
                    }
                }
                write!(f, ": {message}")
            }
            BadOverride { text, message } => write!(f, "cannot parse override `{text}`: {message}"),
            SweepOutsideMultirun { text } => write!(
                f,
                "override `{text}` is a sweep (several values); sweeps run only in a multirun: \
                 use `adlab run -m ...` or `adlab sweep NAME ...`"
            ),
            NoSuchKey {
                key,
                origin,
                suggestion,
                hint,
            } => {
                write!(f, "cannot override `{key}`: no such key in the config\n  from: {origin}")?;
                did_you_mean(f, suggestion)?;
                if let Some(h) = hint {
                    write!(f, "\n  {h}")?;
                }
                Ok(())
            }
            KeyExists {
                key,
                origin,
                defined_at,
            } => write!(
                f,
                "cannot add `{key}`: the key already exists (defined in {defined_at})\n  from: {origin}\n  \
                 use `{key}=...` to change it or `++{key}=...` to add-or-replace"
            ),
            UnknownOption {
                group,
                option,
                origin,
                available,
                suggestion,
            } => {
                write!(
                    f,
                    "no option `{option}` in config group `{group}`\n  from: {origin}\n  available options: {}",
                    available.join(", ")
                )?;
                did_you_mean(f, suggestion)
            }
            UnknownGroup {
                group,
                origin,
                available,
                suggestion,
            } => {
                write!(
                    f,
                    "no config group `{group}`\n  from: {origin}\n  available groups: {}",
                    available.join(", ")
                )?;
                did_you_mean(f, suggestion)
            }
            Defaults { file, message } => write!(f, "bad defaults list in {file}: {message}"),
            Interpolation { key, message } => write!(f, "cannot resolve `{key}`: {message}"),
            InvalidValue {
                key,
                value,
                expected,
                origin,
            } => write!(
                f,
                "invalid value for `{key}`: `{value}`; expected {expected}\n  from: {origin}"
            ),
            UnknownKey {
                key,
                origin,
                suggestion,
            } => {
                write!(f, "unknown config key `{key}`\n  from: {origin}")?;
                did_you_mean(f, suggestion)
            }
            MissingKey { key, origin } => {
                write!(f, "missing required config key `{key}`\n  in: {origin}")
            }
            Constraint { message, origin } => write!(f, "{message}\n  from: {origin}"),
        }
    }
}

impl std::error::Error for ConfigError {}

/// The candidate closest to `word` if it is close enough to be a plausible typo.
pub fn nearest<'a, I>(word: &str, candidates: I) -> Option<String>
where
    I: IntoIterator<Item = &'a str>,
{
    let leaf = |s: &str| s.rsplit('.').next().unwrap_or(s).to_string();
    candidates
        .into_iter()
        .map(|c| {
            // Compare whole paths, and leaf names when the prefixes match, so that
            // `optimizer.lrr` finds `optimizer.lr` and `lrr` finds `lr`.
            let whole = strsim::normalized_damerau_levenshtein(word, c);
            let leafs = strsim::normalized_damerau_levenshtein(&leaf(word), &leaf(c));
            (c, whole.max(leafs * 0.9))
        })
        .filter(|(_, score)| *score >= 0.5)
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(c, _)| c.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_finds_typos_and_rejects_strangers() {
        let keys = ["optimizer.lr", "optimizer.betas", "train.steps"];
        assert_eq!(
            nearest("optimizer.lrr", keys).as_deref(),
            Some("optimizer.lr")
        );
        assert_eq!(nearest("train.step", keys).as_deref(), Some("train.steps"));
        assert_eq!(nearest("zzzzzzzz", keys), None);
    }
}
