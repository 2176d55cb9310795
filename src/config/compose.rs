//! Composition: primary config + defaults tree + command-line overrides + `auto` options +
//! interpolation = one config tree, with the defaults tree kept for `--info`.
//! Architecture invariant: composition knows nothing of what the keys mean; typing and
//! validation happen afterwards in `schema`.

use super::defaults::{build_node, BuildContext, Choice, ChoiceOverride, DefaultsNode};
use super::error::{nearest, ConfigError};
use super::interpolate::resolve_interpolations;
use super::node::{Node, Source, Value};
use super::overrides::{Override, OverrideKind};
use super::repo::ConfigRepo;
use super::yaml::read_config_file;
use indexmap::IndexMap;
use std::sync::Arc;

/// The result of composing a config.
#[derive(Debug, Clone)]
pub struct Composed {
    /// The composed, interpolated config.
    pub config: Node,
    /// The defaults tree, for `adlab config --info`.
    pub tree: DefaultsNode,
    /// The option chosen for every group (`model` -> `causal_lm`).
    pub choices: IndexMap<String, String>,
}

/// Options for [`compose`].
#[derive(Debug, Clone, Copy)]
pub struct ComposeOptions {
    /// Resolve `${...}` interpolations (off for `adlab config` without `--resolve`).
    pub resolve: bool,
}

impl Default for ComposeOptions {
    fn default() -> Self {
        ComposeOptions { resolve: true }
    }
}

const MAX_OVERRIDE_PASSES: usize = 8;

/// Composes the primary config of `repo` with `overrides` (single values only).
pub fn compose(
    repo: &ConfigRepo,
    overrides: &[Override],
    opts: ComposeOptions,
) -> Result<Composed, ConfigError> {
    let (group_ovs, value_ovs): (Vec<&Override>, Vec<&Override>) =
        overrides.iter().partition(|o| repo.is_group(&o.key));
    for o in overrides {
        o.single_value()?;
    }

    let mut forced: IndexMap<String, ChoiceOverride> = IndexMap::new();
    let mut appended: Vec<(String, Choice, Option<String>, String)> = Vec::new();
    let mut must_exist: Vec<&Override> = Vec::new();
    for o in &group_ovs {
        let choice = group_choice(o)?;
        let origin = format!("command-line override `{}`", o.text);
        match o.kind {
            OverrideKind::Change | OverrideKind::Delete => {
                let choice = if o.kind == OverrideKind::Delete {
                    Choice::Null
                } else {
                    choice
                };
                forced.insert(target(o), ChoiceOverride { choice, origin });
                must_exist.push(o);
            }
            OverrideKind::Add => appended.push((o.key.clone(), choice, o.package.clone(), origin)),
            OverrideKind::ForceAdd => {
                forced.insert(target(o), ChoiceOverride { choice, origin });
            }
        }
    }

    // Which groups the defaults lists name, before any `+group=option` is appended.
    let present = build_tree(repo, &forced, &[])?.1;
    // With the `+group=option` additions: a group an added config's defaults bring in (as
    // `+experiment=X` does) can be chosen on the same command line.
    let (mut tree, present_with_added) = build_tree(repo, &forced, &appended)?;
    // `++group=option` for a group the defaults do not name: append it instead.
    let mut rebuild = false;
    for o in &group_ovs {
        if o.kind == OverrideKind::ForceAdd && !present.contains(&target(o)) {
            forced.shift_remove(&target(o));
            appended.push((
                o.key.clone(),
                group_choice(o)?,
                o.package.clone(),
                o.text.clone(),
            ));
            rebuild = true;
        }
        if o.kind == OverrideKind::Add && present.contains(&target(o)) {
            return Err(ConfigError::KeyExists {
                key: o.key.clone(),
                origin: format!("command-line override `{}`", o.text),
                defined_at: "the defaults list".into(),
            });
        }
    }
    // `~group=option` deletes only when that option is the one chosen (Hydra).
    for o in group_ovs.iter().filter(|o| o.kind == OverrideKind::Delete) {
        if let Choice::Option(asked) = group_choice(o)? {
            let mut without = forced.clone();
            without.shift_remove(&target(o));
            let actual = build_tree(repo, &without, &appended)?
                .0
                .choices()
                .get(&o.key)
                .cloned();
            if actual.as_deref() != Some(asked.as_str()) {
                return Err(ConfigError::InvalidValue {
                    key: o.key.clone(),
                    value: actual.unwrap_or_else(|| "(no option)".into()),
                    expected: format!(
                        "`{asked}`: `~{}={asked}` deletes the group only when that option is chosen",
                        o.key
                    ),
                    origin: format!("command-line override `{}`", o.text),
                });
            }
        }
    }
    for o in must_exist {
        if !present_with_added.contains(&target(o)) {
            let option = match &o.value {
                Some(_) => o.text.split_once('=').map(|(_, v)| v).unwrap_or(""),
                None => "OPTION",
            };
            return Err(ConfigError::NoSuchKey {
                key: o.key.clone(),
                origin: format!("command-line override `{}`", o.text),
                suggestion: None,
                hint: Some(format!(
                    "config group `{}` is not in the defaults list; to add it use `+{}={option}`",
                    o.key, o.key
                )),
            });
        }
    }
    if rebuild {
        tree = build_tree(repo, &forced, &appended)?.0;
    }

    // `auto` options pick their real option from a key of the composed config.
    let rules = tree.auto_rules();
    if !rules.is_empty() {
        let mut first = Node::empty_map(Arc::new(Source::Builtin("composition")));
        tree.compose_into(&mut first);
        for (group, rule) in &rules {
            let mut values = Vec::new();
            for key in &rule.keys {
                let Some(v) = first.get(key).map(|n| n.value.to_inline()) else {
                    return Err(ConfigError::Defaults {
                        file: format!("{group}/auto"),
                        message: format!(
                            "`_auto_` reads `{key}`, which the composed config does not have"
                        ),
                    });
                };
                values.push(v);
            }
            let value = values.join("/");
            let Some(option) = rule.choices.get(&value) else {
                return Err(ConfigError::Defaults {
                    file: format!("{group}/auto"),
                    message: format!(
                        "`_auto_` has no option for {} = `{value}` (it knows: {}); choose one with `{group}=OPTION`",
                        rule.key_text(),
                        rule.choices.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                });
            };
            forced.insert(
                group.clone(),
                ChoiceOverride {
                    choice: Choice::Option(option.clone()),
                    origin: format!("auto option of `{group}` ({} = {value})", rule.key_text()),
                },
            );
        }
        tree = build_tree(repo, &forced, &appended)?.0;
        for (group, _) in &rules {
            tree.mark_requested(group, "auto");
        }
        if !tree.auto_rules().is_empty() {
            return Err(ConfigError::Defaults {
                file: "auto".into(),
                message: "an `auto` option resolved to another `auto` option".into(),
            });
        }
    }

    let mut config = Node::empty_map(Arc::new(Source::Builtin("composition")));
    tree.compose_into(&mut config);
    for o in value_ovs {
        apply_value_override(&mut config, o)?;
    }
    if opts.resolve {
        config = resolve_interpolations(&config)?;
    }
    let choices = tree.choices();
    Ok(Composed {
        config,
        tree,
        choices,
    })
}

/// The defaults entry a group override targets: `db`, or `db@pkg` with a package.
fn target(o: &Override) -> String {
    super::defaults::choice_key(&o.key, o.package.as_deref())
}

fn group_choice(o: &Override) -> Result<Choice, ConfigError> {
    match o.single_value()? {
        None => Ok(Choice::Null),
        Some(n) => match &n.value {
            Value::Str(s) => Ok(Choice::Option(s.clone())),
            Value::Null => Ok(Choice::Null),
            other => Err(ConfigError::InvalidValue {
                key: o.key.clone(),
                value: other.to_inline(),
                expected: format!("the name of an option of config group `{}`", o.key),
                origin: format!("command-line override `{}`", o.text),
            }),
        },
    }
}

/// Builds the defaults tree, iterating until the `override` entries found in configs are
/// stable (an experiment's `override /model: x` must re-select a group named earlier).
fn build_tree(
    repo: &ConfigRepo,
    forced: &IndexMap<String, ChoiceOverride>,
    appended: &[(String, Choice, Option<String>, String)],
) -> Result<(DefaultsNode, Vec<String>), ConfigError> {
    let primary_path = repo.file_path("", "config");
    let mut config_overrides: IndexMap<String, ChoiceOverride> = IndexMap::new();
    for _ in 0..MAX_OVERRIDE_PASSES {
        let mut ctx = BuildContext {
            repo,
            forced,
            config_overrides: &config_overrides,
            appended,
            seen_overrides: Vec::new(),
            seen_groups: Vec::new(),
        };
        let file = read_config_file(&primary_path)?;
        let tree = build_node(
            &mut ctx,
            file,
            primary_path.clone(),
            None,
            None,
            String::new(),
            true,
        )?;
        let mut found: IndexMap<String, ChoiceOverride> = IndexMap::new();
        for (g, o) in ctx.seen_overrides {
            found.insert(g, o);
        }
        let stable = found.len() == config_overrides.len()
            && found.iter().all(|(g, o)| {
                config_overrides
                    .get(g)
                    .is_some_and(|p| p.choice == o.choice)
            });
        if stable {
            for (g, o) in &found {
                if !ctx.seen_groups.contains(g) {
                    let groups = ctx.seen_groups.clone();
                    return Err(ConfigError::Defaults {
                        file: o.origin.clone(),
                        message: format!(
                            "`override {g}` names a group that is not in the defaults list{}",
                            nearest(g, groups.iter().map(String::as_str))
                                .map(|s| format!(" (did you mean `{s}`?)"))
                                .unwrap_or_default()
                        ),
                    });
                }
            }
            return Ok((tree, ctx.seen_groups));
        }
        config_overrides = found;
    }
    Err(ConfigError::Defaults {
        file: primary_path.display().to_string(),
        message: "`override` entries keep changing the defaults tree (a cycle between configs?)"
            .into(),
    })
}

/// Applies one `key=value`, `+key=value`, `++key=value` or `~key` to the composed tree.
pub fn apply_value_override(config: &mut Node, o: &Override) -> Result<(), ConfigError> {
    let origin = format!("command-line override `{}`", o.text);
    let source = Arc::new(Source::Override(o.text.clone()));
    let key = o.key.replace('/', ".");
    let existing = config.get(&key).cloned();
    let snapshot = config.clone();
    let blocked = |prefix: String| ConfigError::InvalidValue {
        key: prefix.clone(),
        value: snapshot
            .get(&prefix)
            .map(|n| n.value.to_inline())
            .unwrap_or_default(),
        expected: format!("a mapping, to hold `{key}`"),
        origin: origin.clone(),
    };
    match o.kind {
        OverrideKind::Change => {
            if existing.is_none() {
                let paths = config.all_paths();
                return Err(ConfigError::NoSuchKey {
                    key: key.clone(),
                    origin,
                    suggestion: nearest(&key, paths.iter().map(String::as_str)),
                    hint: Some(format!("to add a new key use `+{}`", o.text)),
                });
            }
            let value = o
                .single_value()?
                .cloned()
                .expect("change overrides carry a value");
            set_or_merge(config, &key, value, &source).map_err(blocked)
        }
        OverrideKind::Add => {
            if let Some(e) = existing {
                return Err(ConfigError::KeyExists {
                    key,
                    origin,
                    defined_at: e.source.to_string(),
                });
            }
            let value = o
                .single_value()?
                .cloned()
                .expect("add overrides carry a value");
            config.set(&key, value, &source).map_err(blocked)
        }
        OverrideKind::ForceAdd => {
            let value = o
                .single_value()?
                .cloned()
                .expect("add overrides carry a value");
            set_or_merge(config, &key, value, &source).map_err(blocked)
        }
        OverrideKind::Delete => {
            let Some(e) = existing else {
                let paths = config.all_paths();
                return Err(ConfigError::NoSuchKey {
                    key: key.clone(),
                    origin,
                    suggestion: nearest(&key, paths.iter().map(String::as_str)),
                    hint: None,
                });
            };
            if let Some(expected) = o.single_value()? {
                if e.value != expected.value {
                    return Err(ConfigError::InvalidValue {
                        key,
                        value: e.value.to_inline(),
                        expected: format!(
                            "`{}` (the value `~key=value` deletes only on a match)",
                            expected.value.to_inline()
                        ),
                        origin,
                    });
                }
            }
            config.remove(&key);
            Ok(())
        }
    }
}

/// `key={a: 1}` on an existing mapping merges into it (Hydra/OmegaConf); anything else
/// replaces the value.
fn set_or_merge(
    config: &mut Node,
    key: &str,
    value: Node,
    source: &Arc<Source>,
) -> Result<(), String> {
    if let Some(existing) = config.get_mut(key) {
        if existing.as_map().is_some() && value.as_map().is_some() {
            existing.merge_from(value);
            return Ok(());
        }
    }
    config.set(key, value, source)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::overrides::parse_override;
    use std::path::Path;

    /// Writes a conf tree from (relative path, YAML) pairs.
    fn conf(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (rel, text) in files {
            let p = dir.path().join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        dir
    }

    fn compose_with(dir: &Path, ovs: &[&str]) -> Result<Composed, ConfigError> {
        let repo = ConfigRepo::new(dir)?;
        let ovs: Vec<Override> = ovs.iter().map(|o| parse_override(o).unwrap()).collect();
        compose(&repo, &ovs, ComposeOptions::default())
    }

    fn get(c: &Composed, key: &str) -> String {
        c.config
            .get(key)
            .map(|n| n.value.to_inline())
            .unwrap_or_else(|| "<missing>".into())
    }

    #[test]
    fn self_position_decides_who_wins() {
        let last = conf(&[
            (
                "config.yaml",
                "defaults: [{db: a}, _self_]\ndb: {port: 1}\n",
            ),
            ("db/a.yaml", "port: 2\nhost: x\n"),
        ]);
        assert_eq!(
            get(&compose_with(last.path(), &[]).unwrap(), "db.port"),
            "1"
        );
        let first = conf(&[
            (
                "config.yaml",
                "defaults: [_self_, {db: a}]\ndb: {port: 1}\n",
            ),
            ("db/a.yaml", "port: 2\n"),
        ]);
        assert_eq!(
            get(&compose_with(first.path(), &[]).unwrap(), "db.port"),
            "2"
        );
        // Without `_self_`, the config's own values win (Hydra >= 1.1).
        let implicit = conf(&[
            ("config.yaml", "defaults: [{db: a}]\ndb: {port: 1}\n"),
            ("db/a.yaml", "port: 2\n"),
        ]);
        assert_eq!(
            get(&compose_with(implicit.path(), &[]).unwrap(), "db.port"),
            "1"
        );
    }

    #[test]
    fn later_defaults_win_and_nested_defaults_compose_in_their_group() {
        let c = conf(&[
            ("config.yaml", "defaults: [{a: one}, {b: two}]\n"),
            ("a/one.yaml", "v: 1\nw: 1\n"),
            ("b/two.yaml", "# @package _global_\na: {v: 2}\n"),
        ]);
        let out = compose_with(c.path(), &[]).unwrap();
        assert_eq!(get(&out, "a.v"), "2");
        assert_eq!(get(&out, "a.w"), "1");

        let nested = conf(&[
            ("config.yaml", "defaults: [{task: t}]\n"),
            (
                "task/t.yaml",
                "defaults: [{source: q}, _self_]\nname: t\nsource: {lr: 9}\n",
            ),
            ("task/source/q.yaml", "algo: q\nlr: 1\n"),
            ("task/source/ppo.yaml", "algo: ppo\nlr: 2\n"),
        ]);
        let out = compose_with(nested.path(), &[]).unwrap();
        assert_eq!(get(&out, "task.source.algo"), "q");
        assert_eq!(get(&out, "task.source.lr"), "9");
        let out = compose_with(nested.path(), &["task/source=ppo"]).unwrap();
        assert_eq!(get(&out, "task.source.algo"), "ppo");
        assert_eq!(out.choices["task/source"], "ppo");
    }

    #[test]
    fn experiments_override_groups_and_values_but_the_command_line_wins() {
        let c = conf(&[
            (
                "config.yaml",
                "defaults: [{model: small}, _self_]\nsteps: 10\n",
            ),
            ("model/small.yaml", "d: 1\n"),
            ("model/big.yaml", "d: 2\n"),
            ("model/huge.yaml", "d: 3\n"),
            (
                "experiment/e.yaml",
                "# @package _global_\ndefaults: [{override /model: big}]\nsteps: 99\n",
            ),
        ]);
        let out = compose_with(c.path(), &["+experiment=e"]).unwrap();
        assert_eq!(get(&out, "model.d"), "2");
        assert_eq!(get(&out, "steps"), "99");
        let out = compose_with(c.path(), &["+experiment=e", "model=huge", "steps=5"]).unwrap();
        assert_eq!(get(&out, "model.d"), "3");
        assert_eq!(get(&out, "steps"), "5");
        // An experiment must be added, not changed.
        let msg = compose_with(c.path(), &["experiment=e"])
            .unwrap_err()
            .to_string();
        assert!(msg.contains("+experiment=e"), "{msg}");
    }

    #[test]
    fn null_and_optional_entries() {
        let c = conf(&[
            (
                "config.yaml",
                "defaults: [{a: null}, {optional b: missing}, {optional c: here}]\n",
            ),
            ("a/x.yaml", "v: 1\n"),
            ("b/other.yaml", "v: 1\n"),
            ("c/here.yaml", "v: 3\n"),
        ]);
        let out = compose_with(c.path(), &[]).unwrap();
        assert_eq!(get(&out, "a"), "<missing>");
        assert_eq!(get(&out, "b"), "<missing>");
        assert_eq!(get(&out, "c.v"), "3");
        let out = compose_with(c.path(), &["a=x"]).unwrap();
        assert_eq!(get(&out, "a.v"), "1");
        // A non-optional missing option is an error listing what exists.
        let bad = conf(&[
            ("config.yaml", "defaults: [{b: missing}]\n"),
            ("b/other.yaml", "v: 1\n"),
        ]);
        let msg = compose_with(bad.path(), &[]).unwrap_err().to_string();
        assert!(msg.contains("missing") && msg.contains("other"), "{msg}");
    }

    #[test]
    fn deleting_a_group_removes_its_values() {
        let c = conf(&[
            ("config.yaml", "defaults: [{a: x}]\n"),
            ("a/x.yaml", "v: 1\n"),
        ]);
        let out = compose_with(c.path(), &["~a"]).unwrap();
        assert_eq!(get(&out, "a"), "<missing>");
    }

    #[test]
    fn auto_options_follow_another_key() {
        let c = conf(&[
            ("config.yaml", "defaults: [{format: auto}, {model: m1}]\n"),
            (
                "format/auto.yaml",
                "_auto_: {key: model.kind, choices: {k1: f1, k2: f2}}\n",
            ),
            ("format/f1.yaml", "kind: one\n"),
            ("format/f2.yaml", "kind: two\n"),
            ("model/m1.yaml", "kind: k1\n"),
            ("model/m2.yaml", "kind: k2\n"),
        ]);
        assert_eq!(
            get(&compose_with(c.path(), &[]).unwrap(), "format.kind"),
            "one"
        );
        let out = compose_with(c.path(), &["model=m2"]).unwrap();
        assert_eq!(get(&out, "format.kind"), "two");
        // Several keys: the choices are keyed by their values joined with `/`.
        std::fs::write(
            c.path().join("format/auto.yaml"),
            "_auto_: {key: [task.kind, model.kind], choices: {a/k1: f1, a/k2: f2, b/k1: f2}}\n",
        )
        .unwrap();
        std::fs::create_dir_all(c.path().join("task")).unwrap();
        std::fs::write(c.path().join("task/a.yaml"), "kind: a\n").unwrap();
        std::fs::write(c.path().join("task/b.yaml"), "kind: b\n").unwrap();
        std::fs::write(
            c.path().join("config.yaml"),
            "defaults: [{format: auto}, {model: m1}, {task: a}]\n",
        )
        .unwrap();
        let kind = |ovs: &[&str]| get(&compose_with(c.path(), ovs).unwrap(), "format.kind");
        assert_eq!(kind(&["task=b"]), "two");
        assert_eq!(kind(&[]), "one");
        let err = compose_with(c.path(), &["task=b", "model=m2"]).unwrap_err();
        assert!(
            format!("{err}").contains("task.kind/model.kind = `b/k2`"),
            "{err}"
        );
        std::fs::write(
            c.path().join("format/auto.yaml"),
            "_auto_: {key: model.kind, choices: {k1: f1, k2: f2}}\n",
        )
        .unwrap();
        std::fs::write(
            c.path().join("config.yaml"),
            "defaults: [{format: auto}, {model: m1}]\n",
        )
        .unwrap();
        assert!(out.tree.render(c.path()).contains("format: auto -> f2"));
        assert_eq!(
            get(
                &compose_with(c.path(), &["model=m2", "format=f1"]).unwrap(),
                "format.kind"
            ),
            "one"
        );
    }

    #[test]
    fn value_overrides_follow_hydra_rules() {
        let c = conf(&[("config.yaml", "a: {b: 1}\nlist: [1, 2]\n")]);
        let out = compose_with(c.path(), &["a.b=2", "+a.c=x", "++a.d={k: 1}", "~list"]).unwrap();
        assert_eq!(get(&out, "a.b"), "2");
        assert_eq!(get(&out, "a.c"), "x");
        assert_eq!(get(&out, "a.d.k"), "1");
        assert_eq!(get(&out, "list"), "<missing>");
        assert!(compose_with(c.path(), &["+a.b=3"]).is_err());
        assert!(compose_with(c.path(), &["a.zz=3"]).is_err());
        assert!(compose_with(c.path(), &["~nothing"]).is_err());
        assert!(
            compose_with(c.path(), &["~a.b=7"]).is_err(),
            "delete with a non-matching value"
        );
        assert_eq!(
            get(&compose_with(c.path(), &["~a.b=1"]).unwrap(), "a.b"),
            "<missing>"
        );
        let msg = compose_with(c.path(), &["a.b.c=1"])
            .unwrap_err()
            .to_string();
        assert!(msg.contains("a.b.c"), "{msg}");
    }

    #[test]
    fn overrides_interpolate_after_composition() {
        let c = conf(&[
            ("config.yaml", "defaults: [{m: x}]\nname: ${m.name}-run\n"),
            ("m/x.yaml", "name: x\n"),
            ("m/y.yaml", "name: y\n"),
        ]);
        assert_eq!(
            get(&compose_with(c.path(), &["m=y"]).unwrap(), "name"),
            "y-run"
        );
    }

    #[test]
    fn override_entries_must_target_a_group_in_the_tree() {
        let c = conf(&[
            (
                "config.yaml",
                "defaults: [{model: a}, {override modle: b}]\n",
            ),
            ("model/a.yaml", "d: 1\n"),
            ("model/b.yaml", "d: 2\n"),
        ]);
        let msg = compose_with(c.path(), &[]).unwrap_err().to_string();
        assert!(msg.contains("modle") && msg.contains("model"), "{msg}");
    }

    #[test]
    fn yaml_errors_in_option_files_name_the_file_and_line() {
        let c = conf(&[
            ("config.yaml", "defaults: [{m: x}]\n"),
            ("m/x.yaml", "a: 1\nb: [1,\nc: 2\n"),
        ]);
        let msg = compose_with(c.path(), &[]).unwrap_err().to_string();
        assert!(msg.contains("x.yaml") && msg.contains("line"), "{msg}");
    }

    // Hydra semantics, each as Hydra documents it.

    #[test]
    fn a_mapping_value_merges_into_an_existing_mapping() {
        let c = conf(&[("config.yaml", "eval: {enabled: true, episodes: 10}\n")]);
        let out = compose_with(c.path(), &["eval={episodes: 5}"]).unwrap();
        assert_eq!(get(&out, "eval.enabled"), "true");
        assert_eq!(get(&out, "eval.episodes"), "5");
        let out = compose_with(c.path(), &["++eval={tasks: 2}"]).unwrap();
        assert_eq!(get(&out, "eval.episodes"), "10");
        assert_eq!(get(&out, "eval.tasks"), "2");
    }

    #[test]
    fn deleting_a_list_item_by_index() {
        let c = conf(&[("config.yaml", "list: [a, b, c]\n")]);
        let out = compose_with(c.path(), &["~list.0"]).unwrap();
        assert_eq!(get(&out, "list"), "[b, c]");
        assert!(compose_with(c.path(), &["~list.5"]).is_err());
    }

    #[test]
    fn mandatory_defaults_name_the_override_to_give() {
        let c = conf(&[
            ("config.yaml", "defaults:\n  - db: ???\n"),
            ("db/mysql.yaml", "port: 1\n"),
        ]);
        let msg = compose_with(c.path(), &[]).unwrap_err().to_string();
        assert!(
            msg.contains("db=<OPTION>") && msg.contains("mysql"),
            "{msg}"
        );
        assert_eq!(
            get(&compose_with(c.path(), &["db=mysql"]).unwrap(), "db.port"),
            "1"
        );
    }

    #[test]
    fn defaults_list_errors_hydra_gives() {
        let files = |defaults: &'static str| {
            conf(&[
                ("config.yaml", defaults),
                ("db/a.yaml", "x: 1\n"),
                ("db/b.yaml", "x: 2\n"),
            ])
        };
        let twice = files("defaults: [{db: a}, {db: b}]\n");
        let msg = compose_with(twice.path(), &[]).unwrap_err().to_string();
        assert!(msg.contains("twice") && msg.contains("db"), "{msg}");
        let early = files("defaults: [{override db: b}, {db: a}]\n");
        let msg = compose_with(early.path(), &[]).unwrap_err().to_string();
        assert!(msg.contains("before") && msg.contains("db"), "{msg}");
        let ok = files("defaults: [{db: a}, {override db: b}]\n");
        assert_eq!(get(&compose_with(ok.path(), &[]).unwrap(), "db.x"), "2");
        // `~db=b` deletes only when `b` is the chosen option.
        let msg = compose_with(ok.path(), &["~db=a"]).unwrap_err().to_string();
        assert!(msg.contains("db") && msg.contains("`a`"), "{msg}");
        assert_eq!(
            get(&compose_with(ok.path(), &["~db=b"]).unwrap(), "db"),
            "<missing>"
        );
    }

    #[test]
    fn a_group_an_added_config_brings_in_can_be_chosen_on_the_same_command_line() {
        let c = conf(&[
            (
                "config.yaml",
                "defaults: [_self_]
a: 1\n",
            ),
            (
                "experiment/x.yaml",
                "# @package _global_\ndefaults: [{/db: a}]\n",
            ),
            ("db/a.yaml", "x: 1\n"),
            ("db/b.yaml", "x: 2\n"),
        ]);
        let out = compose_with(c.path(), &["+experiment=x", "db=b"]).unwrap();
        assert_eq!(get(&out, "db.x"), "2");
    }

    #[test]
    fn option_names_cannot_leave_the_conf_tree() {
        let outer = tempfile::tempdir().unwrap();
        let c = outer.path().join("conf");
        std::fs::create_dir_all(c.join("db")).unwrap();
        std::fs::write(c.join("config.yaml"), "defaults: [{db: a}]\n").unwrap();
        std::fs::write(c.join("db/a.yaml"), "x: 1\n").unwrap();
        std::fs::write(outer.path().join("evil.yaml"), "x: 666\n").unwrap();
        let msg = compose_with(&c, &["db=../../evil"])
            .unwrap_err()
            .to_string();
        assert!(msg.contains("db") && msg.contains("../../evil"), "{msg}");
    }

    #[test]
    fn a_package_override_changes_only_that_package() {
        let c = conf(&[
            ("config.yaml", "defaults: [{db: a}, {db@backup: a}]\n"),
            ("db/a.yaml", "x: 1\n"),
            ("db/b.yaml", "x: 2\n"),
        ]);
        let out = compose_with(c.path(), &["db@backup=b"]).unwrap();
        assert_eq!(get(&out, "db.x"), "1");
        assert_eq!(get(&out, "backup.x"), "2");
        let out = compose_with(c.path(), &["db=b"]).unwrap();
        assert_eq!(get(&out, "db.x"), "2");
        assert_eq!(get(&out, "backup.x"), "1");
    }

    #[test]
    fn nested_defaults_follow_their_parents_package() {
        let c = conf(&[
            (
                "config.yaml",
                "defaults: [{server: apache}, {server@backup: apache}]\n",
            ),
            (
                "server/apache.yaml",
                "defaults: [{db: mysql}, _self_]\nport: 80\n",
            ),
            ("server/db/mysql.yaml", "driver: mysql\n"),
            ("exp/x.yaml", "# @package _global_\ndefaults: [{db2: a}]\n"),
            ("exp/db2/a.yaml", "v: 1\n"),
        ]);
        let out = compose_with(c.path(), &[]).unwrap();
        assert_eq!(get(&out, "server.db.driver"), "mysql");
        assert_eq!(get(&out, "backup.port"), "80");
        assert_eq!(get(&out, "backup.db.driver"), "mysql");
        // The header moves the file, and its nested defaults with it.
        let out = compose_with(c.path(), &["+exp=x"]).unwrap();
        assert_eq!(get(&out, "db2.v"), "1");
    }
}
