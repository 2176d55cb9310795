//! Reading TRLx rollout logs into [`RlhfRun`]s.
//!
//! Texts come from `query_text`/`response_text` when the log has them, else from decoding the
//! ids with [`ImportOptions::tokenizer`]. Ids come from `query_tensor`/`response_tensor`, else
//! from encoding the texts with the tokenizer (text-only logs), else they are empty.
//!
//! Left padding: TRLx logs `query_tensor` as the padded batch row, so leading ids equal to the
//! pad id are stripped. The pad id is [`ImportOptions::pad_id`] if set, else the tokenizer's
//! pad id (its end-of-text token, e.g. GPT-2's 50256); with neither, nothing is stripped.

use super::errors::TrlxError;
use super::layout;
use super::schema::RawRollout;
use crate::rlhf::{RlhfEpoch, RlhfRun, Rollout};
use crate::tokenizer::TextTokenizer;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// How to read logs. The default reads decoded logs (with texts) leniently, skipping bad runs.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Decodes ids when a log has no texts (and encodes texts when it has no ids).
    pub tokenizer: Option<TextTokenizer>,
    /// The first bad run is an error, instead of being skipped with a warning.
    pub strict: bool,
    /// The id stripped from the left of `query_tensor`; default: the tokenizer's pad id.
    pub pad_id: Option<u32>,
}

impl ImportOptions {
    /// The left-padding id in effect: `pad_id`, else the tokenizer's, else none.
    pub fn effective_pad_id(&self) -> Option<u32> {
        self.pad_id
            .or_else(|| self.tokenizer.as_ref().map(TextTokenizer::pad_id))
    }
}

/// What [`read_logs`] found: the runs it read and the ones it skipped.
#[derive(Debug, Clone)]
pub struct Import {
    /// Sorted by directory name.
    pub runs: Vec<RlhfRun>,
    pub skipped: Vec<SkippedRun>,
}

/// A run directory that could not be read, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct SkippedRun {
    pub dir: PathBuf,
    pub error: String,
}

/// Reads every `run-*` directory under `dir` (or `dir` itself if it is a run directory).
///
/// A run that cannot be read is skipped with a warning (or, with `opts.strict`, is the
/// error); if no run can be read, the error lists them all. A run without `config.json` gets
/// `config: null` and a warning: the rollouts are the history, the config only its metadata.
pub fn read_logs(dir: &Path, opts: &ImportOptions) -> Result<Import> {
    let mut runs = Vec::new();
    let mut skipped = Vec::new();
    for run_dir in layout::run_dirs(dir)? {
        match read_run(&run_dir, opts) {
            Ok(run) => runs.push(run),
            Err(e) if opts.strict => return Err(e),
            Err(e) => {
                tracing::warn!("skipping run {}: {e:#}", run_dir.display());
                skipped.push(SkippedRun {
                    dir: run_dir,
                    error: format!("{e:#}"),
                });
            }
        }
    }
    if runs.is_empty() {
        return Err(TrlxError::AllRunsFailed {
            dir: dir.to_path_buf(),
            errors: skipped.into_iter().map(|s| s.error).collect(),
        }
        .into());
    }
    Ok(Import { runs, skipped })
}

/// Reads one run directory: `config.json` and its epochs in chronological order.
pub fn read_run(run_dir: &Path, opts: &ImportOptions) -> Result<RlhfRun> {
    let id = layout::run_id(run_dir).unwrap_or_else(|| {
        run_dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    });
    let config = read_config(&run_dir.join(layout::CONFIG_FILE))?;
    let files = layout::epoch_files(run_dir)?;
    if files.is_empty() {
        return Err(TrlxError::EmptyRun {
            dir: run_dir.to_path_buf(),
            reason: "no epoch-<time>.json files",
        }
        .into());
    }
    let mut epochs = Vec::with_capacity(files.len());
    for (timestamp, path) in files {
        epochs.push(RlhfEpoch {
            timestamp,
            rollouts: read_epoch(&path, opts)?,
        });
    }
    if epochs.iter().all(|e| e.rollouts.is_empty()) {
        return Err(TrlxError::EmptyRun {
            dir: run_dir.to_path_buf(),
            reason: "every epoch file is an empty list",
        }
        .into());
    }
    Ok(RlhfRun { id, config, epochs })
}

fn read_config(path: &Path) -> Result<serde_json::Value> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            tracing::warn!("{}: missing; the run's config is null", path.display());
            return Ok(serde_json::Value::Null);
        }
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    serde_json::from_slice(&bytes).map_err(|e| TrlxError::json(path.to_path_buf(), &e).into())
}

/// Reads one `epoch-<time>.json` file.
pub fn read_epoch(path: &Path, opts: &ImportOptions) -> Result<Vec<Rollout>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let raw: Vec<RawRollout> =
        serde_json::from_slice(&bytes).map_err(|e| TrlxError::json(path.to_path_buf(), &e))?;
    drop(bytes);
    let first = raw.first().map(Present::of);
    raw.into_iter()
        .enumerate()
        .map(|(i, r)| {
            if let Some(first) = &first {
                first.check(&Present::of(&r), path, i)?;
            }
            to_rollout(r, path, i, opts)
        })
        .collect()
}

/// Which optional per-rollout arrays a rollout has. Within one file every rollout must have
/// the same ones: a rollout without one is more likely a broken log than a different format.
#[derive(Debug, PartialEq)]
struct Present([bool; 5]);

const CHECKED: [&str; 5] = [
    "query_tensor",
    "response_tensor",
    "logprobs",
    "values",
    "rewards",
];

impl Present {
    fn of(r: &RawRollout) -> Present {
        Present([
            r.query_tensor.is_some(),
            r.response_tensor.is_some(),
            r.logprobs.is_some(),
            r.values.is_some(),
            r.rewards.is_some(),
        ])
    }

    fn check(&self, other: &Present, file: &Path, index: usize) -> Result<(), TrlxError> {
        for (k, field) in CHECKED.iter().enumerate() {
            if self.0[k] && !other.0[k] {
                return Err(missing(file, index, field, "rollout 0 of this file has it"));
            }
            if !self.0[k] && other.0[k] {
                return Err(missing(file, 0, field, &format!("rollout {index} has it")));
            }
        }
        Ok(())
    }
}

fn missing(file: &Path, index: usize, field: &'static str, why: &str) -> TrlxError {
    TrlxError::MissingField {
        file: file.to_path_buf(),
        index,
        field,
        why: why.to_string(),
    }
}

/// Removes the leading `pad` ids.
pub fn strip_left_padding(mut ids: Vec<u32>, pad: Option<u32>) -> Vec<u32> {
    if let Some(pad) = pad {
        let n = ids.iter().take_while(|&&id| id == pad).count();
        ids.drain(..n);
    }
    ids
}

fn to_rollout(r: RawRollout, file: &Path, index: usize, opts: &ImportOptions) -> Result<Rollout> {
    let query_tensor = r.query_tensor.map(|t| t.0);
    let response_tensor = r.response_tensor.map(|t| t.0);
    match (&query_tensor, &response_tensor) {
        (Some(_), None) => {
            return Err(missing(file, index, "response_tensor", "query_tensor is present").into())
        }
        (None, Some(_)) => {
            return Err(missing(file, index, "query_tensor", "response_tensor is present").into())
        }
        _ => {}
    }
    let per_token = [
        ("logprobs", r.logprobs.map(|t| t.0)),
        ("values", r.values.map(|t| t.0)),
        ("rewards", r.rewards.map(|t| t.0)),
    ];
    for (field, values) in &per_token {
        let Some(values) = values else { continue };
        let Some(response) = &response_tensor else {
            let why = format!("`{field}` has one value per token of it");
            return Err(missing(file, index, "response_tensor", &why).into());
        };
        if values.len() != response.len() {
            return Err(TrlxError::LengthMismatch {
                file: file.to_path_buf(),
                index,
                field,
                len: values.len(),
                response_len: response.len(),
            }
            .into());
        }
    }
    let [(_, logprobs), (_, values), (_, rewards)] = per_token;
    let score = match r.score.map(|t| t.0) {
        None => None,
        Some(s) if s.len() == 1 => Some(s[0]),
        Some(s) => {
            return Err(TrlxError::BadScore {
                file: file.to_path_buf(),
                index,
                len: s.len(),
            }
            .into())
        }
    };
    let query_ids = query_tensor.map(|q| strip_left_padding(q, opts.effective_pad_id()));
    let (query_text, query_ids) =
        text_and_ids(r.query_text, query_ids, "query", file, index, opts)?;
    let (response_text, response_ids) = text_and_ids(
        r.response_text,
        response_tensor,
        "response",
        file,
        index,
        opts,
    )?;
    Ok(Rollout {
        query_ids,
        response_ids,
        query_text,
        response_text,
        logprobs,
        values,
        rewards,
        score,
    })
}

/// The text (logged, or decoded from the ids) and the ids (logged, or encoded from the text
/// when there is a tokenizer, or empty) of a query or a response.
fn text_and_ids(
    text: Option<String>,
    ids: Option<Vec<u32>>,
    which: &str,
    file: &Path,
    index: usize,
    opts: &ImportOptions,
) -> Result<(String, Vec<u32>)> {
    let at = || format!("{}: rollout {index}: {which}", file.display());
    match (text, ids, &opts.tokenizer) {
        (Some(text), Some(ids), _) => Ok((text, ids)),
        (Some(text), None, Some(tok)) => {
            let ids = tok.encode(&text).with_context(at)?;
            Ok((text, ids))
        }
        (Some(text), None, None) => Ok((text, Vec::new())),
        (None, Some(ids), Some(tok)) => Ok((tok.decode(&ids).with_context(at)?, ids)),
        (None, Some(_), None) => Err(TrlxError::NeedTokenizer {
            file: file.to_path_buf(),
            index,
        }
        .into()),
        (None, None, _) => {
            let (field, why) = match which {
                "query" => ("query_text", "a rollout needs query_text or query_tensor"),
                _ => (
                    "response_text",
                    "a rollout needs response_text or response_tensor",
                ),
            };
            Err(missing(file, index, field, why).into())
        }
    }
}

/// Checks that every rollout of every run has per-token rewards (needed to train reward
/// prediction); the error names the first run without them.
pub fn require_rewards(runs: &[RlhfRun]) -> Result<()> {
    for run in runs {
        if run.rollouts().any(|(_, r)| r.rewards.is_none()) {
            return Err(TrlxError::TextOnly {
                run: run.id.clone(),
            }
            .into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn put(root: &Path, rel: &str, text: &str) -> PathBuf {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }

    fn put_json(root: &Path, rel: &str, value: serde_json::Value) -> PathBuf {
        put(root, rel, &value.to_string())
    }

    /// A fork-format rollout with tensors and texts.
    fn rollout(q: &str, r: &str, reward: f32) -> serde_json::Value {
        let n = r.len();
        let mut rewards = vec![-0.01; n];
        rewards[n - 1] = reward;
        let query: Vec<u32> = [256, 256]
            .into_iter()
            .chain(q.bytes().map(u32::from))
            .collect();
        json!({
            "query_tensor": query,
            "response_tensor": r.bytes().map(u32::from).collect::<Vec<_>>(),
            "query_text": q, "response_text": r,
            "logprobs": vec![-1.5; n], "values": vec![0.25; n], "rewards": rewards,
        })
    }

    fn err_of(dir: &Path, opts: &ImportOptions) -> String {
        format!("{:#}", read_logs(dir, opts).unwrap_err())
    }

    fn strict() -> ImportOptions {
        ImportOptions {
            strict: true,
            ..Default::default()
        }
    }

    #[test]
    fn reads_decoded_logs_in_numeric_epoch_order_with_config() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        put_json(
            root,
            "run-a/config.json",
            json!({"method": {"init_kl_coef": 0.05}}),
        );
        put_json(
            root,
            "run-a/epoch-1000.json",
            json!([rollout("b", "yy", 2.0)]),
        );
        put_json(
            root,
            "run-a/epoch-999.json",
            json!([rollout("a", "x", 1.0)]),
        );
        put_json(
            root,
            "run-a/epoch-1000.5.json",
            json!([rollout("c", "z", 3.0)]),
        );
        let import = read_logs(root, &ImportOptions::default()).unwrap();
        assert!(import.skipped.is_empty());
        let run = &import.runs[0];
        assert_eq!(run.id, "a");
        assert_eq!(run.config["method"]["init_kl_coef"], json!(0.05));
        let times: Vec<f64> = run.epochs.iter().map(|e| e.timestamp).collect();
        assert_eq!(times, [999.0, 1000.0, 1000.5]);
        let texts: Vec<&str> = run.rollouts().map(|(_, r)| r.query_text.as_str()).collect();
        assert_eq!(texts, ["a", "b", "c"]);
        let r = &run.epochs[1].rollouts[0];
        assert_eq!(r.rewards.as_deref(), Some(&[-0.01, 2.0][..]));
        assert_eq!(r.total_reward(), Some(1.99));
        // No tokenizer and no pad id: nothing is stripped.
        assert_eq!(r.query_ids, [256, 256, u32::from(b'b')]);
        require_rewards(&import.runs).unwrap();
    }

    #[test]
    fn tensors_only_logs_decode_with_a_tokenizer_and_strip_left_padding() {
        let d = tempfile::tempdir().unwrap();
        let mut r = rollout("hi", "yo", 1.0);
        r.as_object_mut().unwrap().remove("query_text");
        r.as_object_mut().unwrap().remove("response_text");
        // A batch dimension of one, and float ids, as `tensor.tolist()` may give.
        r["query_tensor"] = json!([[256.0, 256.0, 104.0, 105.0]]);
        r["logprobs"] = json!([[-1, -2]]);
        put_json(d.path(), "run-x/epoch-1.json", json!([r]));
        let err = err_of(d.path(), &strict());
        assert!(err.contains("epoch-1.json: rollout 0"), "{err}");
        assert!(err.contains("--tokenizer tokenizer.json"), "{err}");

        let opts = ImportOptions {
            tokenizer: Some(TextTokenizer::byte()),
            ..Default::default()
        };
        let run = &read_logs(d.path(), &opts).unwrap().runs[0];
        let r = &run.epochs[0].rollouts[0];
        assert_eq!(
            (r.query_text.as_str(), r.response_text.as_str()),
            ("hi", "yo")
        );
        assert_eq!(r.query_ids, [104, 105]);
        assert_eq!(r.logprobs.as_deref(), Some(&[-1.0, -2.0][..]));

        // An explicit pad id wins over the tokenizer's.
        let opts = ImportOptions {
            pad_id: Some(7),
            ..opts
        };
        let run = &read_logs(d.path(), &opts).unwrap().runs[0];
        assert_eq!(run.epochs[0].rollouts[0].query_ids, [256, 256, 104, 105]);
    }

    #[test]
    fn text_only_logs_read_without_rewards_and_cannot_train_reward_prediction() {
        let d = tempfile::tempdir().unwrap();
        put_json(
            d.path(),
            "run-new/epoch-5.json",
            json!([{"query_text": "ab", "response_text": "c"}]),
        );
        let import = read_logs(d.path(), &strict()).unwrap();
        let r = &import.runs[0].epochs[0].rollouts[0];
        assert_eq!((r.rewards.as_ref(), r.query_ids.len()), (None, 0));
        let err = require_rewards(&import.runs).unwrap_err().to_string();
        assert!(
            err.contains("run new") && err.contains("text-only"),
            "{err}"
        );
        assert!(err.contains("cannot train reward prediction"), "{err}");

        let opts = ImportOptions {
            tokenizer: Some(TextTokenizer::byte()),
            ..Default::default()
        };
        let r = read_logs(d.path(), &opts).unwrap().runs[0].epochs[0].rollouts[0].clone();
        assert_eq!((r.query_ids, r.response_ids), (vec![97, 98], vec![99]));
    }

    #[test]
    fn malformed_json_names_file_line_and_column() {
        let d = tempfile::tempdir().unwrap();
        let path = put(
            d.path(),
            "run-a/epoch-1.json",
            "[\n  {\"query_text\": \"a\",,}\n]",
        );
        let err = err_of(d.path(), &strict());
        let want = format!("{}:2:22: malformed JSON", path.display());
        assert!(err.contains(&want), "{err}");
        // A bad config.json is located the same way.
        put_json(
            d.path(),
            "run-b/epoch-1.json",
            json!([rollout("a", "b", 1.0)]),
        );
        let cfg = put(d.path(), "run-b/config.json", "{\"lr\": }");
        let err = format!(
            "{:#}",
            read_run(&d.path().join("run-b"), &strict()).unwrap_err()
        );
        assert!(err.contains(&format!("{}:1:8", cfg.display())), "{err}");
    }

    #[test]
    fn missing_fields_name_file_rollout_and_field() {
        let d = tempfile::tempdir().unwrap();
        let mut bad = rollout("q", "r", 1.0);
        bad.as_object_mut().unwrap().remove("values");
        let path = put_json(
            d.path(),
            "run-a/epoch-1.json",
            json!([rollout("q", "r", 1.0), rollout("q", "r", 1.0), bad]),
        );
        let err = err_of(d.path(), &strict());
        let want = format!("{}: rollout 2: missing field `values`", path.display());
        assert!(err.contains(&want), "{err}");

        put_json(d.path(), "run-a/epoch-1.json", json!([{"query_text": "q"}]));
        let err = err_of(d.path(), &strict());
        assert!(
            err.contains("rollout 0: missing field `response_text`"),
            "{err}"
        );

        put_json(
            d.path(),
            "run-a/epoch-1.json",
            json!([{"query_tensor": [1], "query_text": "q", "response_text": "r"}]),
        );
        let err = err_of(d.path(), &strict());
        assert!(
            err.contains("rollout 0: missing field `response_tensor`"),
            "{err}"
        );
    }

    #[test]
    fn per_token_lengths_must_match_the_response() {
        let d = tempfile::tempdir().unwrap();
        let mut bad = rollout("q", "abc", 1.0);
        bad["rewards"] = json!([0.0, 1.0]);
        let path = put_json(
            d.path(),
            "run-a/epoch-1.json",
            json!([rollout("q", "r", 1.0), bad]),
        );
        let err = err_of(d.path(), &strict());
        let want = format!(
            "{}: rollout 1: `rewards` has 2 values but `response_tensor` has 3 tokens",
            path.display()
        );
        assert!(err.contains(&want), "{err}");
    }

    #[test]
    fn empty_runs_and_empty_directories_are_errors_that_say_so() {
        let d = tempfile::tempdir().unwrap();
        let err = err_of(d.path(), &ImportOptions::default());
        assert!(err.contains("no TRLx run directories (`run-*`)"), "{err}");

        put(d.path(), "run-a/config.json", "{}");
        let err = err_of(d.path(), &strict());
        let want = format!(
            "{}: empty run: no epoch-<time>.json files",
            d.path().join("run-a").display()
        );
        assert!(err.contains(&want), "{err}");

        put(d.path(), "run-a/epoch-1.json", "[]");
        put(d.path(), "run-a/epoch-2.json", "[]");
        let err = err_of(d.path(), &strict());
        assert!(
            err.contains("run-a: empty run: every epoch file is an empty list"),
            "{err}"
        );
    }

    #[test]
    fn a_bad_run_is_skipped_unless_strict_and_every_run_is_used() {
        let d = tempfile::tempdir().unwrap();
        // Ids that do not start with "e" count like any other.
        put_json(
            d.path(),
            "run-a1/epoch-1.json",
            json!([rollout("q", "r", 1.0)]),
        );
        put(d.path(), "run-b2/epoch-1.json", "[{");
        put_json(
            d.path(),
            "run-e3/epoch-1.json",
            json!([rollout("q", "r", 2.0)]),
        );
        let import = read_logs(d.path(), &ImportOptions::default()).unwrap();
        let ids: Vec<&str> = import.runs.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["a1", "e3"]);
        assert_eq!(import.skipped.len(), 1);
        assert_eq!(import.skipped[0].dir, d.path().join("run-b2"));
        assert!(import.skipped[0].error.contains("malformed JSON"));
        // No config.json: null config.
        assert_eq!(import.runs[0].config, serde_json::Value::Null);

        let err = err_of(d.path(), &strict());
        assert!(err.contains("run-b2/epoch-1.json:1:2"), "{err}");

        put(d.path(), "run-a1/epoch-1.json", "nope");
        put(d.path(), "run-e3/epoch-1.json", "[]");
        let err = err_of(d.path(), &ImportOptions::default());
        assert!(err.contains("none of its 3 runs could be read"), "{err}");
        assert!(err.contains("run-a1") && err.contains("run-b2") && err.contains("run-e3"));
    }

    #[test]
    fn scores_are_numbers_or_one_element_tensors() {
        let d = tempfile::tempdir().unwrap();
        let mut a = rollout("q", "r", 1.0);
        a["score"] = json!(0.5);
        let mut b = rollout("q", "r", 1.0);
        b["score"] = json!([[0.75]]);
        put_json(d.path(), "run-a/epoch-1.json", json!([a, b]));
        let run = read_run(&d.path().join("run-a"), &strict()).unwrap();
        assert_eq!(run.score_curve(), [Some(0.625)]);
        let mut c = rollout("q", "r", 1.0);
        c["score"] = json!([1, 2]);
        put_json(d.path(), "run-a/epoch-1.json", json!([c]));
        let err = format!(
            "{:#}",
            read_run(&d.path().join("run-a"), &strict()).unwrap_err()
        );
        assert!(err.contains("rollout 0: `score` has 2 values"), "{err}");
    }
}
