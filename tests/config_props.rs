//! Property test of composition: random override sequences against the real conf tree never
//! panic, and every error names a key or a file the user can act on.

mod common;

use adlab::config::parse_override;
use proptest::prelude::*;

const KEYS: &[&str] = &[
    "seed",
    "name",
    "device",
    "train.steps",
    "train.batch_size",
    "train.grad_accum",
    "train.note",
    "train",
    "eval",
    "eval.episodes",
    "eval.summary_k",
    "optimizer.lr",
    "optimizer.grad_clip",
    "model.d_model",
    "model.n_heads",
    "model.dropout",
    "model.loss_weights",
    "task.split.test_fraction",
    "task.histories",
    "paths.runs",
    "train.foo",
    "modle.d_model",
    "eval.tasks.0",
];
const GROUPS: &[&str] = &[
    "task",
    "model",
    "optimizer",
    "format",
    "launcher",
    "experiment",
];
const OPTIONS: &[&str] = &[
    "darkroom",
    "bandit",
    "causal_lm",
    "rl_heads",
    "adamw",
    "auto",
    "local",
    "bandit_ad",
    "nope",
    "../x",
    "???",
];
const VALUES: &[&str] = &[
    "1",
    "0",
    "-1",
    "1e-3",
    "inf",
    "nan",
    "true",
    "null",
    "abc",
    "''",
    "[1, 2]",
    "{a: 1}",
    "{episodes: 5}",
    "'x y'",
    "a\\,b",
    "${seed}",
    "${nope}",
    "[]",
    "{}",
];

fn arb_override() -> impl Strategy<Value = String> {
    let prefix = prop::sample::select(vec!["", "+", "++"]);
    let value = (
        prefix,
        prop::sample::select(KEYS.to_vec()),
        prop::sample::select(VALUES.to_vec()),
    )
        .prop_map(|(p, k, v)| format!("{p}{k}={v}"));
    let group = (
        prop::sample::select(vec!["", "+", "++", "~"]),
        prop::sample::select(GROUPS.to_vec()),
        prop::sample::select(OPTIONS.to_vec()),
    )
        .prop_map(|(p, g, o)| format!("{p}{g}={o}"));
    let delete = prop::sample::select(KEYS.to_vec()).prop_map(|k| format!("~{k}"));
    prop_oneof![3 => value, 2 => group, 1 => delete]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn composition_never_panics_and_errors_name_a_key_or_a_file(
        texts in prop::collection::vec(arb_override(), 0..5)
    ) {
        let Ok(ovs) = texts.iter().map(|t| parse_override(t)).collect::<Result<Vec<_>, _>>()
        else {
            return Ok(());
        };
        let result = std::panic::catch_unwind(|| {
            adlab::schema::load(&common::conf_dir(), &ovs).map(|_| ())
        });
        prop_assert!(result.is_ok(), "composition panicked on {:?}", texts);
        if let Err(e) = result.unwrap() {
            let msg = e.to_string();
            let names_key = ovs.iter().any(|o| {
                let key = o.key.replace('/', ".");
                msg.contains(&key) || key.split('.').next().is_some_and(|top| msg.contains(top))
            });
            let names_file = msg.contains(".yaml");
            // Constraints between keys may name the other key (`format.kind` for a model).
            let names_config_key = [
                "seed", "name", "device", "paths.", "task.", "format.", "model.", "optimizer.",
                "launcher.", "train.", "eval.",
            ]
            .iter()
            .any(|k| msg.contains(k));
            prop_assert!(
                names_key || names_file || names_config_key,
                "{:?}: the error names neither a key nor a file: {}", texts, msg
            );
        }
    }
}
