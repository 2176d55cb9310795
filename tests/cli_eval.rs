//! `adlab eval` and the evaluation stage of `adlab run`: eval.csv, summary.json, seeding.

mod common;
use common::*;

const TINY: &[&str] = &[
    "task=bandit",
    "train.steps=3",
    "model.d_model=16",
    "model.n_layers=1",
    "model.n_heads=2",
    "model.d_ff=32",
    "eval.episodes=6",
    "eval.tasks=3",
    "eval.train_tasks=2",
    "eval.summary_k=2",
];

#[test]
fn a_run_ends_with_an_evaluation_beside_its_baselines() {
    let s = Scratch::new();
    stdout_of(s.adlab_with_paths("run", TINY));
    let dir = &s.run_dirs("bandit-rl_heads")[0];
    let csv = std::fs::read_to_string(dir.join("eval.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("task,split,episode,return,steps,policy"));
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    // (3 test + 2 train tasks) x 6 episodes x 4 policies.
    assert_eq!(rows.len(), 5 * 6 * 4, "{csv}");
    for split in ["test", "train"] {
        for policy in ["model", "source", "random", "optimal"] {
            let n = rows
                .iter()
                .filter(|r| r[1] == split && r[5] == policy)
                .count();
            let tasks = if split == "test" { 3 } else { 2 };
            assert_eq!(n, tasks * 6, "{split} {policy}");
        }
    }
    // Bandit episodes are one pull; the optimal rows are reference values, not played.
    assert!(rows
        .iter()
        .all(|r| r[4] == if r[5] == "optimal" { "" } else { "1" }));

    let summary = read_json(&dir.join("summary.json"));
    assert_eq!(summary["episodes"], 6);
    assert_eq!(summary["k"], 2);
    let test = &summary["splits"]["test"];
    assert_eq!(test["tasks"].as_array().unwrap().len(), 3);
    for policy in ["model", "source", "random", "optimal"] {
        let p = &test["policies"][policy];
        for key in ["first_k_return", "last_k_return", "improvement"] {
            assert!(p[key].is_number(), "{policy}.{key}: {p}");
        }
        assert_eq!(p["curve"].as_array().unwrap().len(), 6);
        assert_eq!(p["score_curve"].as_array().unwrap().len(), 6);
    }
    assert_eq!(test["policies"]["optimal"]["last_k_score"], 1.0);
    assert!(summary["splits"]["train"]["policies"]["model"].is_object());
    let log = std::fs::read_to_string(dir.join("adlab.log")).unwrap();
    assert!(log.contains("eval test (3 tasks"), "{log}");
    assert_eq!(read_json(&dir.join("meta.json"))["status"], "completed");
}

#[test]
fn a_causal_lm_run_is_evaluated_by_constrained_decoding_with_its_own_tokenizer() {
    let s = Scratch::new();
    let mut args: Vec<&str> = TINY.to_vec();
    args.extend([
        "model=causal_lm",
        "format=coords",
        "format.tokenizer={kind: bpe, vocab_size: 300}",
        "model.context_tokens=48",
    ]);
    stdout_of(s.adlab_with_paths("run", &args));
    let dir = &s.run_dirs("bandit-causal_lm")[0];
    assert!(dir.join("checkpoint/tokenizer.json").is_file());
    let csv = std::fs::read_to_string(dir.join("eval.csv")).unwrap();
    for policy in ["model", "source", "random", "optimal"] {
        let n = csv
            .lines()
            .filter(|l| l.ends_with(&format!(",{policy}")))
            .count();
        assert_eq!(n, 5 * 6, "{policy}: {csv}");
    }
    let summary = read_json(&dir.join("summary.json"));
    // Bandit episodes are one step: 3 held-out tasks x 6 episodes decoded.
    let decoding = &summary["splits"]["test"]["decoding"];
    assert_eq!(decoding["steps"], 18, "{summary}");
    assert!(decoding["off_format"].as_u64().unwrap() <= 18);
    assert_eq!(summary["splits"]["train"]["decoding"]["steps"], 12);

    // Re-evaluating with sampling reads the same checkpoint and tokenizer.
    stdout_of(
        s.adlab()
            .args(["eval", dir.to_str().unwrap(), "eval.temperature=1.0"]),
    );
    assert_eq!(read_json(&dir.join("summary.json"))["temperature"], 1.0);
}

#[test]
fn eval_rewrites_a_runs_results_with_overrides_and_seeded_sampling() {
    let s = Scratch::new();
    let mut args = TINY.to_vec();
    args.push("eval.enabled=false");
    stdout_of(s.adlab_with_paths("run", &args));
    let dir = s.run_dirs("bandit-rl_heads")[0].clone();
    assert!(
        !dir.join("eval.csv").exists(),
        "eval.enabled=false still evaluated"
    );

    let eval = |extra: &[&str]| {
        let mut cmd = s.adlab();
        cmd.arg("eval").arg(&dir).args(extra);
        let out = stdout_of(cmd);
        (out, std::fs::read_to_string(dir.join("eval.csv")).unwrap())
    };
    let (table, first) = eval(&["eval.temperature=1.0", "eval.episodes=4"]);
    assert!(
        table.contains("policy") && table.contains("model"),
        "{table}"
    );
    assert!(table.contains("wrote"), "{table}");
    assert_eq!(first.lines().count(), 1 + 5 * 4 * 4);
    let (_, again) = eval(&["eval.temperature=1.0", "eval.episodes=4"]);
    assert_eq!(first, again, "same seed, different eval.csv");
    let (_, other) = eval(&["eval.temperature=1.0", "eval.episodes=4", "seed=1"]);
    assert_ne!(first, other);
}

#[test]
fn eval_of_a_directory_that_is_not_a_run_says_so() {
    let s = Scratch::new();
    let mut cmd = s.adlab();
    cmd.arg("eval").arg(s.path());
    let err = stderr_of_failure(cmd);
    assert!(err.contains("not a run directory"), "{err}");
}

#[test]
fn every_shipped_experiment_composes_and_validates() {
    let s = Scratch::new();
    for entry in std::fs::read_dir(conf_dir().join("experiment")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_str().unwrap().to_string();
        let mut cmd = s.adlab();
        cmd.args(["config", "--resolve", &format!("+experiment={name}")]);
        let yaml = stdout_of(cmd);
        assert!(yaml.contains("eval:"), "{name}: {yaml}");
    }
}

/// A picture file as it should be: a PNG with a plausible size, or an SVG with `needles`.
fn check_picture(plots: &std::path::Path, stem: &str, needles: &[&str]) {
    let png = std::fs::read(plots.join(format!("{stem}.png")))
        .unwrap_or_else(|e| panic!("{stem}.png: {e}"));
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "{stem}.png is not a PNG");
    assert_eq!(&png[12..16], b"IHDR");
    let side = |i: usize| u32::from_be_bytes(png[i..i + 4].try_into().unwrap());
    assert!(
        side(16) >= 600 && side(20) >= 300,
        "{stem}.png is {}x{}",
        side(16),
        side(20)
    );
    let svg = std::fs::read_to_string(plots.join(format!("{stem}.svg"))).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"),
        "{stem}.svg"
    );
    assert_eq!(svg.matches("<text").count(), svg.matches("</text>").count());
    for n in needles {
        assert!(svg.contains(n), "{stem}.svg has no {n}");
    }
}

#[test]
fn a_grid_run_traces_episodes_and_draws_visitation_maps_and_source_curves() {
    let s = Scratch::new();
    let args = [
        "task=darkroom",
        "++task.split.max_tasks=10",
        "task.histories.episodes=30",
        "train.steps=3",
        "model.d_model=16",
        "model.n_layers=1",
        "model.n_heads=2",
        "model.d_ff=32",
        "eval.episodes=6",
        "eval.tasks=1",
        "eval.train_tasks=1",
        "eval.summary_k=2",
        "eval.trace_episodes=2",
    ];
    stdout_of(s.adlab_with_paths("run", &args));
    let dir = &s.run_dirs("darkroom-rl_heads")[0];
    let text = std::fs::read_to_string(dir.join("traces.jsonl")).unwrap();
    let traces: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // Episodes 1, 2, 5 and 6 of each of the two tasks, held-out first.
    assert_eq!(traces.len(), 8, "{text}");
    let episodes: Vec<u64> = traces
        .iter()
        .map(|t| t["episode"].as_u64().unwrap())
        .collect();
    assert_eq!(episodes, [0, 1, 4, 5, 0, 1, 4, 5]);
    assert!(traces[..4].iter().all(|t| t["split"] == "test"));
    assert!(traces[4..].iter().all(|t| t["split"] == "train"));
    let task = traces[0]["task"].as_u64().unwrap();
    let eval_csv = std::fs::read_to_string(dir.join("eval.csv")).unwrap();
    for t in &traces {
        assert_eq!(t["params"]["kind"], "darkroom");
        let steps = t["actions"].as_array().unwrap().len();
        assert_eq!(t["states"].as_array().unwrap().len(), steps);
        // Dark Room episodes run to the time limit, as eval.csv says.
        let row = format!(
            "{},{},{},",
            t["task"],
            t["split"].as_str().unwrap(),
            t["episode"]
        );
        let line = eval_csv
            .lines()
            .find(|l| l.starts_with(&row) && l.ends_with(",model"))
            .unwrap();
        assert!(
            line.contains(&format!(",{steps},model")),
            "{line} vs {steps} steps"
        );
    }
    let plots = dir.join("plots");
    check_picture(
        &plots,
        &format!("visitation_test_task{task}"),
        &["held-out task", "early", "late", "goal", "visits / episode"],
    );
    check_picture(
        &plots,
        "source_curves",
        &["q_learning", "training tasks", "held-out tasks", "optimum"],
    );
    // The pictures are redrawn by `adlab eval`.
    std::fs::remove_dir_all(&plots).unwrap();
    stdout_of(s.adlab().arg("eval").arg(dir));
    assert!(plots
        .join(format!("visitation_test_task{task}.png"))
        .is_file());
    assert!(plots.join("source_curves.svg").is_file());
    assert_eq!(
        std::fs::read_to_string(dir.join("traces.jsonl")).unwrap(),
        text
    );
}

#[test]
fn both_learners_train_and_act_on_the_lunar_lander() {
    // The continuous-state, continuous-reward family end to end: PPO histories, an RL-heads
    // model and a causal LM reading coordinates, each evaluated in context.
    let s = Scratch::new();
    let lander = [
        "task=lunar_lander",
        "task.histories.episodes=8",
        "task.split.max_tasks=4",
        "train.steps=4",
        "train.eval_every=4",
        "model.d_model=16",
        "model.n_layers=1",
        "model.n_heads=2",
        "model.d_ff=32",
        "eval.episodes=2",
        "eval.tasks=1",
        "eval.train_tasks=1",
        "eval.summary_k=1",
    ];
    for (model, kind) in [
        (vec!["model=rl_heads"], "lunar_lander-rl_heads"),
        (
            vec![
                "model=causal_lm",
                "format=coords",
                "model.context_tokens=512",
            ],
            "lunar_lander-causal_lm",
        ),
    ] {
        let args: Vec<&str> = lander.iter().copied().chain(model).collect();
        stdout_of(s.adlab_with_paths("run", &args));
        let dir = &s.run_dirs(kind)[0];
        let summary = read_json(&dir.join("summary.json"));
        let test = &summary["splits"]["test"]["policies"];
        for policy in ["model", "source", "random", "optimal"] {
            let r = test[policy]["last_k_return"].as_f64();
            assert!(r.is_some_and(f64::is_finite), "{kind} {policy}: {summary}");
        }
        // The optimum is the heuristic controller's estimate: far above random play.
        let (opt, random) = (
            test["optimal"]["last_k_return"].as_f64().unwrap(),
            test["random"]["last_k_return"].as_f64().unwrap(),
        );
        assert!(
            opt > random + 50.0,
            "{kind}: optimal {opt}, random {random}"
        );
        // Held-out reward and next-state prediction, and what a step costs in tokens.
        let p = &summary["prediction"];
        assert!(p["reward"]["n"].as_u64() > Some(0), "{kind}: {summary}");
        assert!(p["state"]["n"].as_u64() > Some(0), "{kind}: {summary}");
        let tokens = summary["tokens_per_step"].as_f64().unwrap();
        let expected = if kind.ends_with("rl_heads") {
            3.0..=3.0
        } else {
            40.0..=80.0
        };
        assert!(
            expected.contains(&tokens),
            "{kind}: {tokens} tokens per step"
        );
        // Its first and last episodes on the held-out task (the last of 4), drawn.
        let traces = std::fs::read_to_string(dir.join("traces.jsonl")).unwrap();
        let first: serde_json::Value =
            serde_json::from_str(traces.lines().next().unwrap()).unwrap();
        assert_eq!(first["params"]["kind"], "lunar_lander");
        assert_eq!(first["features"][0].as_array().unwrap().len(), 8);
        assert_eq!(first["final_features"].as_array().unwrap().len(), 8);
        check_picture(
            &dir.join("plots"),
            "lander_test_task3",
            &[
                "Lunar lander",
                "early: episode 1",
                "late: episode 2",
                "main engine",
                "<polygon",
            ],
        );
        check_picture(
            &dir.join("plots"),
            "source_curves",
            &["ppo", "held-out tasks"],
        );
    }
}
