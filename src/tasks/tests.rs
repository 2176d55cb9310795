//! Cross-module tests: config files, task suites, generation determinism and the cache.

use super::*;
use std::path::{Path, PathBuf};

fn conf_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("conf/task")
}

fn conf(name: &str) -> TaskConfig {
    let path = conf_dir().join(format!("{name}.yaml"));
    let text = std::fs::read_to_string(&path).unwrap();
    TaskConfig::from_yaml(&text).unwrap()
}

/// A darkroom config small enough for cache tests.
fn small_darkroom(seed: u64) -> TaskConfig {
    let mut cfg = conf("darkroom");
    cfg.seed = seed;
    cfg.split.max_tasks = Some(6);
    cfg.histories.per_task = 2;
    cfg.histories.episodes = 30;
    cfg
}

#[test]
fn every_task_yaml_parses_validates_and_names_itself_after_its_file() {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(conf_dir()).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        if !text.lines().any(|l| l == "kind: rl") {
            continue; // the RLHF task kinds have tests of their own (rlhf::)
        }
        let cfg =
            TaskConfig::from_yaml(&text).unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
        assert_eq!(
            Some(cfg.name.as_str()),
            path.file_stem().and_then(|s| s.to_str())
        );
        TaskSuite::from_config(&cfg).unwrap();
        names.push(cfg.name);
    }
    names.sort();
    assert_eq!(
        names,
        [
            "bandit",
            "cartpole",
            "darkroom",
            "darkroom_hard",
            "darkroom_noise_distill",
            "frozenlake",
            "key_to_door",
            "lunar_lander"
        ]
    );
}

#[test]
fn unknown_keys_are_rejected_at_every_level_including_inside_variants() {
    let good = std::fs::read_to_string(conf_dir().join("darkroom.yaml")).unwrap();
    TaskConfig::from_yaml(&good).unwrap();
    for (from, to) in [
        ("seed: 0", "seed: 0\nsede: 1"),
        ("sparse: false", "sparse: false, sparce: true"),
        ("epsilon_end: 0.01", "epsilon_end: 0.01, epsilon_ned: 0.1"),
        ("keep_every: 1", "keep_every: 1, keep_evry: 2"),
        ("test_fraction: 0.2", "test_fraction: 0.2, test_frac: 0.1"),
    ] {
        let bad = good.replacen(from, to, 1);
        assert_ne!(bad, good);
        let err = format!("{:#}", TaskConfig::from_yaml(&bad).unwrap_err());
        assert!(err.contains("unknown field"), "{to}: {err}");
    }
    let bad_kind = good.replacen("kind: darkroom", "kind: darkrom", 1);
    assert!(
        format!("{:#}", TaskConfig::from_yaml(&bad_kind).unwrap_err()).contains("unknown variant")
    );
}

#[test]
fn semantic_errors_name_the_key() {
    let mut cfg = conf("darkroom");
    cfg.split.test_fraction = 1.0;
    assert!(format!("{:#}", cfg.validate().unwrap_err()).contains("task.split.test_fraction"));

    let mut cfg = conf("darkroom");
    cfg.source = conf("bandit").source;
    let err = format!("{:#}", cfg.validate().unwrap_err());
    assert!(
        err.contains("task.source.algo") && err.contains("ucb") && err.contains("darkroom"),
        "{err}"
    );

    let mut cfg = conf("cartpole");
    cfg.source = conf("darkroom").source;
    assert!(format!("{:#}", cfg.validate().unwrap_err()).contains("task.source.algo"));

    let mut cfg = conf("bandit");
    cfg.split.max_tasks = None;
    assert!(format!("{:#}", cfg.validate().unwrap_err()).contains("task.split.max_tasks"));

    let mut cfg = conf("darkroom");
    cfg.histories.keep_every = 0;
    assert!(format!("{:#}", cfg.validate().unwrap_err()).contains("task.histories.keep_every"));
}

#[test]
fn darkroom_suite_has_one_task_per_goal_and_a_seeded_split() {
    let cfg = conf("darkroom");
    let suite = TaskSuite::from_config(&cfg).unwrap();
    assert_eq!(suite.len(), 81);
    assert_eq!(suite.test_tasks().len(), 16); // round(81 * 0.2)
    assert_eq!(suite.tasks()[10], TaskParams::Darkroom { goal: [1, 1] });
    let same = TaskSuite::from_config(&cfg).unwrap();
    assert_eq!(suite.test_tasks(), same.test_tasks());
    let other = TaskSuite::from_config(&TaskConfig { seed: 1, ..cfg }).unwrap();
    assert_ne!(suite.test_tasks(), other.test_tasks());
    assert!(suite.make_env(81).is_err());
}

#[test]
fn key_to_door_and_bandit_suites_follow_their_caps_and_splits() {
    let suite = TaskSuite::from_config(&conf("key_to_door")).unwrap();
    assert_eq!(suite.len(), 200);
    for t in suite.tasks() {
        let TaskParams::KeyToDoor { key, door } = t else {
            panic!("{t:?}")
        };
        assert_ne!(key, door);
    }
    assert!(suite.optimal_returns().iter().all(|&r| r == 2.0));

    let suite = TaskSuite::from_config(&conf("bandit")).unwrap();
    assert_eq!(
        (suite.train_tasks().len(), suite.test_tasks().len()),
        (200, 50)
    );
    let odd_best = |tasks: Vec<usize>| {
        tasks
            .iter()
            .filter(|&&i| match &suite.tasks()[i] {
                TaskParams::Bandit { means } => env::bandit::argmax(means) % 2 == 1,
                _ => false,
            })
            .count() as f64
    };
    assert!(odd_best(suite.train_tasks()) / 200.0 > 0.85);
    assert!(odd_best(suite.test_tasks()) / 50.0 < 0.2);
}

#[test]
fn keep_every_records_only_every_kth_episode_but_keeps_the_whole_curve() {
    let mut cfg = small_darkroom(0);
    cfg.histories.keep_every = 3;
    let suite = TaskSuite::from_config(&cfg).unwrap();
    let hists = generate::generate(&suite, false).unwrap();
    assert_eq!(hists.len(), 12);
    for h in &hists {
        assert_eq!(h.episode_returns.len(), 30);
        assert!(h.episodes.iter().all(|e| e % 3 == 0));
        assert_eq!(h.len(), 10 * 20);
        let recorded: f32 = h.rewards.iter().sum();
        let curve: f32 = h.episode_returns.iter().step_by(3).sum();
        assert_eq!(recorded, curve);
        assert_eq!(h.dones.iter().filter(|&&d| d).count(), 10);
    }
}

fn dir_bytes(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

#[test]
fn same_seed_gives_byte_identical_caches_and_other_seeds_differ() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let ia = cache::ensure(&small_darkroom(0), a.path(), false).unwrap();
    let ib = cache::ensure(&small_darkroom(0), b.path(), false).unwrap();
    assert_eq!(ia.dir.file_name(), ib.dir.file_name());
    let (fa, fb) = (dir_bytes(&ia.dir), dir_bytes(&ib.dir));
    assert_eq!(
        fa.iter().map(|f| &f.0).collect::<Vec<_>>(),
        ["histories.safetensors", "meta.json"]
    );
    assert!(fa == fb, "same config and seed produced different bytes");

    let ic = cache::ensure(&small_darkroom(1), a.path(), false).unwrap();
    assert_ne!(ic.dir, ia.dir);
    let fc = dir_bytes(&ic.dir);
    assert_ne!(
        fa[0].1, fc[0].1,
        "different seeds produced identical histories"
    );
}

#[test]
fn cache_round_trips_and_is_reused() {
    let root = tempfile::tempdir().unwrap();
    let cfg = small_darkroom(3);
    let first = cache::ensure(&cfg, root.path(), false).unwrap();
    assert!(!first.reused);
    assert_eq!(first.n_histories, 12);
    assert_eq!(first.n_steps, 12 * 30 * 20);
    assert!(first
        .dir
        .file_name()
        .unwrap()
        .to_string_lossy()
        .starts_with("darkroom-"));
    let second = cache::ensure(&cfg, root.path(), false).unwrap();
    assert!(second.reused);
    assert_eq!(second.dir, first.dir);

    let data = cache::load(&first.dir).unwrap();
    let suite = TaskSuite::from_config(&cfg).unwrap();
    let fresh = generate::generate(&suite, false).unwrap();
    assert_eq!(data.histories, fresh);
    assert_eq!(data.meta.test_tasks, suite.test_tasks());
    assert_eq!(data.meta.task, cfg);
    assert_eq!(
        data.histories_in(Split::Test).count(),
        2 * suite.test_tasks().len()
    );
}

#[test]
fn continuous_features_survive_the_cache() {
    let root = tempfile::tempdir().unwrap();
    let mut cfg = conf("cartpole");
    cfg.split.max_tasks = Some(2);
    cfg.histories.episodes = 3;
    let info = cache::ensure(&cfg, root.path(), false).unwrap();
    let data = cache::load(&info.dir).unwrap();
    assert_eq!(data.meta.feature_dim, 4);
    let h = &data.histories[1];
    assert_eq!(h.features.len(), 4 * h.len());
    assert!(
        h.features_at(0).iter().all(|v| v.abs() <= 0.05),
        "reset state: {:?}",
        h.features_at(0)
    );
}

#[test]
fn concurrent_ensure_builds_one_valid_cache() {
    let root = tempfile::tempdir().unwrap();
    let cfg = small_darkroom(7);
    let infos: Vec<CacheInfo> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..2)
            .map(|_| s.spawn(|| cache::ensure(&cfg, root.path(), false).unwrap()))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(infos[0].dir, infos[1].dir);
    assert_eq!(
        infos.iter().filter(|i| i.reused).count(),
        1,
        "exactly one thread generates"
    );
    let entries: Vec<String> = std::fs::read_dir(root.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        entries.len(),
        2,
        "cache dir + lock file only, no temporaries: {entries:?}"
    );
    cache::load(&infos[0].dir).unwrap();
}

#[test]
fn corrupt_cache_files_are_named_in_the_error() {
    let root = tempfile::tempdir().unwrap();
    let info = cache::ensure(&small_darkroom(0), root.path(), false).unwrap();
    let file = info.dir.join(cache::HISTORIES_FILE);
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..bytes.len() / 2]).unwrap();
    let err = format!("{:#}", cache::load(&info.dir).unwrap_err());
    assert!(err.contains("histories.safetensors"), "{err}");
    std::fs::write(info.dir.join(cache::META_FILE), "{").unwrap();
    let err = format!("{:#}", cache::load(&info.dir).unwrap_err());
    assert!(err.contains("meta.json"), "{err}");
}

#[test]
fn recorded_steps_are_consistent_for_every_family() {
    for name in [
        "darkroom_hard",
        "key_to_door",
        "bandit",
        "frozenlake",
        "lunar_lander",
    ] {
        let mut cfg = conf(name);
        cfg.histories.episodes = 20;
        let suite = TaskSuite::from_config(&cfg).unwrap();
        let h = source::run_source(&cfg, &suite, 0, 0, 20).unwrap();
        assert!(h.is_consistent(), "{name}");
        assert_eq!(h.dones.iter().filter(|&&d| d).count(), 20, "{name}");
        assert_eq!(h.episode_returns.len(), 20);
        let n_actions = suite.spec().n_actions() as u32;
        assert!(h.actions.iter().all(|&a| a < n_actions), "{name}");
        assert!(
            h.logprobs.iter().all(|&l| l <= 0.0 && l.is_finite()),
            "{name}"
        );
        let steps: f32 = h.rewards.iter().sum();
        let returns: f32 = h.episode_returns.iter().sum();
        assert!(
            (steps - returns).abs() <= 1e-3 * returns.abs().max(1.0),
            "{name}"
        );
    }
}

#[test]
fn lander_tasks_come_from_their_splits_ranges_with_a_heuristic_optimum() {
    let cfg = conf("lunar_lander");
    let suite = TaskSuite::from_config(&cfg).unwrap();
    let EnvConfig::LunarLander(env) = &cfg.env else {
        panic!("lunar_lander is a lander config")
    };
    assert_eq!(suite.len(), 16);
    assert_eq!(suite.test_tasks(), [12, 13, 14, 15]);
    for (i, task) in suite.tasks().iter().enumerate() {
        let ranges = match suite.split(i).unwrap() {
            Split::Train => &env.train,
            Split::Test => &env.test,
        };
        let TaskParams::LunarLander {
            gravity,
            pad_offset,
            ..
        } = *task
        else {
            panic!("task {i}: {task:?}")
        };
        let within = |v: f64, [lo, hi]: [f64; 2]| lo <= v && v <= hi;
        assert!(within(gravity.into(), ranges.gravity), "task {i}: {task:?}");
        let [lo, hi] = ranges.pad_offset;
        assert!((lo..=hi).contains(&i32::from(pad_offset)), "task {i}");
        // The heuristic lands on the easier training tasks; the optimum is what it scores.
        let optimum = suite.optimal_return(i).unwrap();
        assert!(
            optimum.is_finite() && optimum > -100.0,
            "task {i}: {optimum}"
        );
    }
    // Same config, same tasks and optima; another seed, other tasks.
    let again = TaskSuite::from_config(&cfg).unwrap();
    assert_eq!(again.tasks(), suite.tasks());
    assert_eq!(again.optimal_returns(), suite.optimal_returns());
    let mut other = cfg.clone();
    other.seed = 1;
    assert_ne!(
        TaskSuite::from_config(&other).unwrap().tasks(),
        suite.tasks()
    );
}

#[test]
fn lander_ranges_are_checked_and_must_hold_the_test_tasks_apart() {
    let lander = |edit: &dyn Fn(&mut config::LunarLanderConfig)| {
        let mut cfg = conf("lunar_lander");
        let EnvConfig::LunarLander(env) = &mut cfg.env else {
            unreachable!()
        };
        edit(env);
        format!("{:#}", cfg.validate().unwrap_err())
    };
    let err = lander(&|e| e.test = e.train.clone());
    assert!(
        err.contains("task.env.test") && err.contains("disjoint"),
        "{err}"
    );
    let err = lander(&|e| e.train.gravity = [-5.0, -13.0]);
    assert!(err.contains("task.env.train.gravity"), "{err}");
    let err = lander(&|e| e.test.gravity = [-3.0, 0.0]);
    assert!(err.contains("task.env.test.gravity"), "{err}");
    let err = lander(&|e| e.test.pad_offset = [2, 4]);
    assert!(err.contains("task.env.test.pad_offset"), "{err}");
    let err = lander(&|e| e.optimum_episodes = 0);
    assert!(err.contains("task.env.optimum_episodes"), "{err}");

    let mut cfg = conf("lunar_lander");
    cfg.source = conf("darkroom").source;
    let err = format!("{:#}", cfg.validate().unwrap_err());
    assert!(
        err.contains("task.source.algo") && err.contains("lunar_lander"),
        "{err}"
    );
}

#[test]
fn default_tabular_sources_show_learning_in_their_histories() {
    // AD needs histories in which the source visibly improves; check each shipped config.
    let mut results = Vec::new();
    for (name, tasks) in [
        ("darkroom_hard", [0, 100, 200]),
        ("key_to_door", [0, 50, 100]),
        ("frozenlake", [0, 1, 2]),
    ] {
        let cfg = conf(name);
        let suite = TaskSuite::from_config(&cfg).unwrap();
        let e = cfg.histories.episodes;
        let mean = |r: &[f32]| r.iter().sum::<f32>() / r.len() as f32;
        let (mut first, mut last, mut optimal) = (0.0, 0.0, 0.0);
        for task in tasks {
            let h = source::run_source(&cfg, &suite, task, 0, e).unwrap();
            first += mean(&h.episode_returns[..e / 10]) / 3.0;
            last += mean(&h.episode_returns[e - e / 10..]) / 3.0;
            optimal += suite.optimal_return(task).unwrap() / 3.0;
        }
        eprintln!("{name}: first 10% {first:.2}, last 10% {last:.2}, optimal {optimal:.2}");
        results.push((name, first, last, optimal));
    }
    for (name, first, last, optimal) in results {
        assert!(
            last > first + 0.25 * optimal,
            "{name}: first {first}, last {last}, optimal {optimal}"
        );
        assert!(
            last >= 0.6 * optimal,
            "{name}: last {last} vs optimal {optimal}"
        );
    }
}

#[test]
fn environments_work_as_trait_objects_with_identical_results() {
    // Evaluation may hold a `Box<dyn Environment>`; it must behave exactly like the enum.
    let cfg = conf("key_to_door");
    let suite = TaskSuite::from_config(&cfg).unwrap();
    let length = source::RunLength {
        episodes: 30,
        keep_every: 1,
        max_steps: None,
    };
    let fresh = || {
        let algo = Source::new(&cfg.source, suite.spec(), 0).unwrap();
        (
            algo,
            crate::seed::rng(1, "e", &[]),
            crate::seed::rng(1, "s", &[]),
        )
    };
    let mut boxed: Box<dyn Environment> = Box::new(suite.make_env(3).unwrap());
    let (mut algo, mut er, mut sr) = fresh();
    let via_dyn = source::run_episodes(boxed.as_mut(), &mut algo, 0, length, &mut er, &mut sr);
    let mut concrete: TaskEnv = suite.make_env(3).unwrap();
    let (mut algo, mut er, mut sr) = fresh();
    let via_enum = source::run_episodes(&mut concrete, &mut algo, 0, length, &mut er, &mut sr);
    assert_eq!(via_dyn, via_enum);
    assert!(via_dyn.len() > 30);
}

#[test]
fn ppo_histories_on_the_lander_rise_from_random_level() {
    // AD needs the source to improve within a history: from crashing (about −200) toward
    // landing. One training task, 300 episodes (a few seconds).
    let mut cfg = conf("lunar_lander");
    cfg.histories.episodes = 300;
    let suite = TaskSuite::from_config(&cfg).unwrap();
    let h = source::run_source(&cfg, &suite, 0, 0, 300).unwrap();
    let mean = |r: &[f32]| r.iter().sum::<f32>() / r.len() as f32;
    let (first, last) = (
        mean(&h.episode_returns[..50]),
        mean(&h.episode_returns[250..]),
    );
    assert!(first < -120.0, "first 50 episodes: {first}");
    assert!(last > first + 80.0, "first 50: {first}, last 50: {last}");
}
