//! `adlab import-trlx` on TRLx logs written by the tests: the fork's tensors-only format (with
//! a tokenizer), decoded logs, newer TRLx's text-only logs, broken files, `--strict`, `--out`.

mod common;

use common::{stderr_of_failure, stdout_of, Scratch};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// A word-level tokenizer: `<|endoftext|>` is id 0 (the padding), words are 2..
const TOKENIZER: &str = r#"{"version":"1.0","truncation":null,"padding":null,
  "added_tokens":[{"id":0,"content":"<|endoftext|>","single_word":false,"lstrip":false,
    "rstrip":false,"normalized":false,"special":true}],
  "normalizer":null,"pre_tokenizer":{"type":"Whitespace"},"post_processor":null,"decoder":null,
  "model":{"type":"WordLevel","vocab":{"<|endoftext|>":0,"[UNK]":1,"the":2,"movie":3,"was":4,
    "great":5,"bad":6},"unk_token":"[UNK]"}}"#;

fn put(path: &Path, value: &Value) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, value.to_string()).unwrap();
}

/// Fork-format rollouts with tensors only: query "the movie" left-padded, response "was great".
fn tensors_only(score: f32) -> Value {
    json!([{
        "query_tensor": [[0, 0, 2, 3]],
        "response_tensor": [[4, 5]],
        "logprobs": [[-1.0, -2.0]],
        "values": [[0.1, 0.2]],
        "rewards": [[-0.01, score]],
    }])
}

fn decoded(score: f32) -> Value {
    json!([
        {"query_tensor": [2, 3], "response_tensor": [4, 6], "query_text": "the movie",
         "response_text": "was bad", "logprobs": [-1, -2], "values": [0, 0],
         "rewards": [0, score], "score": score},
        {"query_tensor": [2, 3], "response_tensor": [4, 5], "query_text": "the movie",
         "response_text": "was great", "logprobs": [-1, -2], "values": [0, 0],
         "rewards": [0, score + 1.0], "score": score + 1.0},
    ])
}

fn tokenizer(s: &Scratch) -> PathBuf {
    let path = s.path().join("tokenizer.json");
    std::fs::write(&path, TOKENIZER).unwrap();
    path
}

#[test]
fn help_shows_an_example() {
    let s = Scratch::new();
    let out = stdout_of(s.adlab().args(["import-trlx", "--help"]));
    assert!(out.contains("adlab import-trlx logs/"), "{out}");
    assert!(out.contains("--tokenizer"), "{out}");
}

#[test]
fn tensors_only_logs_need_the_tokenizer_and_out_writes_logs_that_read_without_it() {
    let s = Scratch::new();
    let logs = s.path().join("logs");
    put(
        &logs.join("run-7f3a/config.json"),
        &json!({"method": {"init_kl_coef": 0.05}}),
    );
    put(
        &logs.join("run-7f3a/epoch-1669812345.json"),
        &tensors_only(1.0),
    );
    put(
        &logs.join("run-7f3a/epoch-1669812400.5.json"),
        &tensors_only(3.0),
    );

    let err = stderr_of_failure(s.adlab().arg("import-trlx").arg(&logs));
    assert!(err.contains("rollout 0"), "{err}");
    assert!(err.contains("pass --tokenizer tokenizer.json"), "{err}");

    let tok = tokenizer(&s);
    let out_dir = s.path().join("normalised");
    let out = stdout_of(
        s.adlab()
            .arg("import-trlx")
            .arg(&logs)
            .arg("--tokenizer")
            .arg(&tok)
            .arg("--out")
            .arg(&out_dir),
    );
    let row = out
        .lines()
        .find(|l| l.starts_with("7f3a"))
        .unwrap_or_else(|| panic!("{out}"));
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        cells,
        ["7f3a", "2", "2", "yes", "total", "reward", "0.9900", "2.9900"],
        "{out}"
    );
    assert!(out.contains("wrote 1 normalised run(s)"), "{out}");

    // Texts filled in, padding stripped, readable without a tokenizer.
    let epoch = out_dir.join("run-7f3a/epoch-1669812400.5.json");
    let written: Value = serde_json::from_str(&std::fs::read_to_string(&epoch).unwrap()).unwrap();
    assert_eq!(written[0]["query_text"], "the movie");
    assert_eq!(written[0]["response_text"], "was great");
    assert_eq!(written[0]["query_tensor"], json!([2, 3]));
    let again = stdout_of(s.adlab().arg("import-trlx").arg(&out_dir));
    assert!(again.contains(row), "{again}");
}

#[test]
fn decoded_logs_summarise_scores_and_the_swept_config_keys() {
    let s = Scratch::new();
    let logs = s.path().join("logs");
    for (id, kl, scores) in [("a1", 0.05, [0.0, 1.0]), ("b2", 0.1, [0.5, 2.0])] {
        put(
            &logs.join(format!("run-{id}/config.json")),
            &json!({"method": {"init_kl_coef": kl}, "model": "gpt2"}),
        );
        put(
            &logs.join(format!("run-{id}/epoch-999.json")),
            &decoded(scores[0]),
        );
        put(
            &logs.join(format!("run-{id}/epoch-1000.json")),
            &decoded(scores[1]),
        );
    }
    let out = stdout_of(s.adlab().arg("import-trlx").arg(&logs));
    assert!(out.contains("2 runs read"), "{out}");
    let row = |id: &str| {
        let l = out.lines().find(|l| l.starts_with(id)).unwrap();
        l.split_whitespace().map(str::to_string).collect::<Vec<_>>()
    };
    // Epochs in numeric order: 999 before 1000.
    assert_eq!(
        row("a1"),
        ["a1", "2", "4", "yes", "score", "0.5000", "1.5000"]
    );
    assert_eq!(
        row("b2"),
        ["b2", "2", "4", "yes", "score", "1.0000", "2.5000"]
    );
    assert!(
        out.contains("method.init_kl_coef: a1=0.05, b2=0.1"),
        "{out}"
    );
    assert!(!out.contains("model:"), "{out}");
}

#[test]
fn text_only_logs_read_and_the_summary_says_they_have_no_rewards() {
    let s = Scratch::new();
    let logs = s.path().join("logs");
    put(
        &logs.join("run-new/epoch-1.json"),
        &json!([{"query_text": "the movie", "response_text": "was great"}]),
    );
    let out = stdout_of(s.adlab().arg("import-trlx").arg(&logs));
    let row = out.lines().find(|l| l.starts_with("new")).unwrap();
    assert_eq!(
        row.split_whitespace().collect::<Vec<_>>(),
        ["new", "1", "1", "no", "-", "-", "-"]
    );
    assert!(out.contains("no rewards in new: text-only logs"), "{out}");
    assert!(out.contains("cannot train reward prediction"), "{out}");
}

#[test]
fn a_malformed_file_is_skipped_by_default_and_fails_with_strict() {
    let s = Scratch::new();
    let logs = s.path().join("logs");
    put(&logs.join("run-good/epoch-1.json"), &decoded(1.0));
    let bad = logs.join("run-bad/epoch-1.json");
    std::fs::create_dir_all(bad.parent().unwrap()).unwrap();
    std::fs::write(
        &bad,
        "[\n  {\"query_text\": \"a\" \"response_text\": \"b\"}\n]\n",
    )
    .unwrap();
    let where_ = format!("{}:2:22: malformed JSON", bad.display());

    let out = stdout_of(s.adlab().arg("import-trlx").arg(&logs));
    assert!(out.contains("1 run read"), "{out}");
    assert!(out.contains("skipped 1 run(s):"), "{out}");
    assert!(out.contains(&where_), "{out}");

    let err = stderr_of_failure(s.adlab().arg("import-trlx").arg(&logs).arg("--strict"));
    assert!(err.contains(&where_), "{err}");

    // Nothing to read at all.
    let err = stderr_of_failure(s.adlab().arg("import-trlx").arg(s.path()));
    assert!(err.contains("no TRLx run directories"), "{err}");
}

#[test]
fn out_that_is_or_contains_the_input_is_refused_and_the_logs_stay_untouched() {
    let s = Scratch::new();
    let logs = s.path().join("logs");
    put(&logs.join("run-a/epoch-1.json"), &decoded(0.5));
    put(&logs.join("run-a/epoch-2.json"), &decoded(1.5));
    let files = [
        logs.join("run-a/epoch-1.json"),
        logs.join("run-a/epoch-2.json"),
    ];
    let before: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
    // --out equal to the input, spelled two ways; the input's parent given a run directory.
    let cases: [(&Path, PathBuf); 3] = [
        (&logs, logs.clone()),
        (&logs, logs.join("run-a/..")),
        (&logs.join("run-a"), logs.clone()),
    ];
    for (input, out) in &cases {
        let err = stderr_of_failure(
            s.adlab()
                .arg("import-trlx")
                .arg(input)
                .arg("--out")
                .arg(out),
        );
        assert!(
            err.contains("--out") && err.contains("overwrite"),
            "{input:?} -> {out:?}: {err}"
        );
    }
    let after: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
    assert!(before == after, "the original logs were rewritten");
    let entries = std::fs::read_dir(logs.join("run-a")).unwrap().count();
    assert_eq!(entries, 2, "nothing may be added to the input");
}
