//! The errors of reading TRLx logs. Each names the file or directory and, inside a file, the
//! rollout and field, so a user can open the log at the right place.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum TrlxError {
    #[error(
        "{}: no TRLx run directories (`run-*`) in it; expected DIR/run-<id>/epoch-<unix time>.json",
        dir.display()
    )]
    NoRuns { dir: PathBuf },

    #[error("{}:{line}:{column}: malformed JSON: {message}", file.display())]
    Json {
        file: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },

    #[error("{}: rollout {index}: missing field `{field}` ({why})", file.display())]
    MissingField {
        file: PathBuf,
        index: usize,
        field: &'static str,
        why: String,
    },

    #[error(
        "{}: rollout {index}: `{field}` has {} but `response_tensor` has {} (one value per \
         response token expected)",
        file.display(),
        count(*.len, "value"),
        count(*.response_len, "token")
    )]
    LengthMismatch {
        file: PathBuf,
        index: usize,
        field: &'static str,
        len: usize,
        response_len: usize,
    },

    #[error("{}: rollout {index}: `score` has {len} values, expected one", file.display())]
    BadScore {
        file: PathBuf,
        index: usize,
        len: usize,
    },

    #[error(
        "{}: rollout {index}: no `query_text`/`response_text` and no tokenizer to decode \
         `query_tensor`/`response_tensor`; pass --tokenizer tokenizer.json (the policy's tokenizer)",
        file.display()
    )]
    NeedTokenizer { file: PathBuf, index: usize },

    #[error(
        "{}: epoch file name does not hold a unix time: expected epoch-<time>.json, e.g. \
         epoch-1669812345.json or epoch-1669812345.123.json",
        file.display()
    )]
    BadEpochName { file: PathBuf },

    #[error("{}: empty run: {reason}", dir.display())]
    EmptyRun { dir: PathBuf, reason: &'static str },

    #[error(
        "run {run} has no per-token rewards: its logs are text-only (newer TRLx versions log only \
         query_text/response_text), so they cannot train reward prediction; use logs with \
         tensors and rewards (TRLx's rollout-logging fork, or adlab's built-in PPO source)"
    )]
    TextOnly { run: String },

    #[error(
        "{}: none of its {} runs could be read:\n  {}",
        dir.display(),
        errors.len(),
        errors.join("\n  ")
    )]
    AllRunsFailed { dir: PathBuf, errors: Vec<String> },
}

/// `1 value`, `2 values`.
fn count(n: usize, noun: &str) -> String {
    format!("{n} {noun}{}", if n == 1 { "" } else { "s" })
}

impl TrlxError {
    /// A serde_json error as file:line:column; serde_json appends the position to its message,
    /// which is dropped here so it is not said twice.
    pub fn json(file: PathBuf, e: &serde_json::Error) -> TrlxError {
        let (line, column) = (e.line(), e.column());
        let text = e.to_string();
        let suffix = format!(" at line {line} column {column}");
        let message = text.strip_suffix(&suffix).unwrap_or(&text).to_string();
        TrlxError::Json {
            file,
            line,
            column,
            message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_errors_say_file_line_and_column_once() {
        let e = serde_json::from_str::<Vec<u32>>("[1,\n 2,,]").unwrap_err();
        let msg = TrlxError::json("e.json".into(), &e).to_string();
        assert!(msg.starts_with("e.json:2:4: malformed JSON: "), "{msg}");
        assert!(!msg.contains("at line"), "{msg}");
    }
}
