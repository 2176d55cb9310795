//! Hydra's defaults list: each config file may start with `defaults:` naming, in order, the
//! group options (and `_self_`) it is composed from. This module turns the lists into a
//! defaults tree, applying group choices decided elsewhere (command line, `override`
//! entries, `auto` resolution); it does not merge any values.

use super::error::ConfigError;
use super::node::{Node, Value};
use super::repo::ConfigRepo;
use super::yaml::ConfigFile;
use indexmap::IndexMap;
use std::path::PathBuf;

/// The choice made for a group: an option, or nothing (`null` / deleted).
#[derive(Debug, Clone, PartialEq)]
pub enum Choice {
    Option(String),
    Null,
}

/// A group choice decided outside the defaults lists, with where it came from.
#[derive(Debug, Clone)]
pub struct ChoiceOverride {
    pub choice: Choice,
    pub origin: String,
}

/// One parsed entry of a defaults list.
#[derive(Debug, Clone, PartialEq)]
pub enum DefaultsEntry {
    SelfRef,
    /// `group: option` (with `optional`, `override`, `@package` modifiers).
    Group {
        group: String,
        choice: Choice,
        package: Option<String>,
        optional: bool,
        is_override: bool,
    },
    /// A plain config file of the same folder (`- base`).
    Config {
        path: String,
    },
}

/// A node of the defaults tree: one loaded config file and the configs it is composed from.
#[derive(Debug, Clone)]
pub struct DefaultsNode {
    /// `None` for the primary config and plain config entries.
    pub group: Option<String>,
    /// The option asked for before `auto` resolution (e.g. `auto`), if it differs.
    pub requested: Option<String>,
    pub option: Option<String>,
    /// Dotted package the file's body lands in ("" = the root).
    pub package: String,
    pub file: Option<PathBuf>,
    pub body: Option<Node>,
    /// Children and `_self_` in composition order.
    pub items: Vec<TreeItem>,
    /// An `optional` entry whose option does not exist.
    pub missing_optional: bool,
    /// For `auto` options: the key whose value picks the real option, and the mapping.
    pub auto: Option<AutoRule>,
}

#[derive(Debug, Clone)]
pub enum TreeItem {
    SelfBody,
    Child(Box<DefaultsNode>),
}

/// `_auto_: {key: model.kind, choices: {rl_heads: rl, ...}}` in an option file. `key` may be
/// a list (`[task.kind, model.kind]`); the choices are then keyed by the values joined with
/// `/` (`rl/causal_lm: coords`).
#[derive(Debug, Clone, PartialEq)]
pub struct AutoRule {
    pub keys: Vec<String>,
    pub choices: IndexMap<String, String>,
}

impl AutoRule {
    /// The keys as written in messages: `model.kind` or `task.kind/model.kind`.
    pub fn key_text(&self) -> String {
        self.keys.join("/")
    }
}

/// Everything tree building needs from outside.
pub struct BuildContext<'a> {
    pub repo: &'a ConfigRepo,
    /// Group choices that win over the defaults lists (command line, `auto` resolution).
    pub forced: &'a IndexMap<String, ChoiceOverride>,
    /// Group choices from `override` entries found in a previous pass.
    pub config_overrides: &'a IndexMap<String, ChoiceOverride>,
    /// `+group=option` additions for the primary config.
    pub appended: &'a [(String, Choice, Option<String>, String)],
    /// `override` entries seen while building (collected for the next pass).
    pub seen_overrides: Vec<(String, ChoiceOverride)>,
    /// Groups that appear in the tree (to check that overrides target something).
    pub seen_groups: Vec<String>,
}

/// Parses the `defaults:` list out of a config body (removing it from the body).
pub fn take_defaults(body: &mut Node, file: &str) -> Result<Vec<DefaultsEntry>, ConfigError> {
    let Some(map) = body.as_map_mut() else {
        return Ok(Vec::new());
    };
    let Some(list) = map.shift_remove("defaults") else {
        return Ok(Vec::new());
    };
    let bad = |message: String| ConfigError::Defaults {
        file: file.to_string(),
        message,
    };
    let items = match list.value {
        Value::List(items) => items,
        Value::Null => return Ok(Vec::new()),
        other => {
            return Err(bad(format!(
                "`defaults` must be a list, found a {}",
                other.type_name()
            )))
        }
    };
    let mut out = Vec::new();
    for item in items {
        match item.value {
            Value::Str(s) if s == "_self_" => out.push(DefaultsEntry::SelfRef),
            Value::Str(s) => out.push(DefaultsEntry::Config { path: s }),
            Value::Map(m) if m.len() == 1 => {
                let (raw_key, v) = m.into_iter().next().expect("one entry");
                let mut key = raw_key.trim();
                let mut optional = false;
                let mut is_override = false;
                loop {
                    if let Some(rest) = key.strip_prefix("optional ") {
                        optional = true;
                        key = rest.trim();
                    } else if let Some(rest) = key.strip_prefix("override ") {
                        is_override = true;
                        key = rest.trim();
                    } else {
                        break;
                    }
                }
                let (group, package) = match key.split_once('@') {
                    Some((g, p)) => (g.to_string(), Some(p.to_string())),
                    None => (key.to_string(), None),
                };
                let choice = match v.value {
                    Value::Str(s) => Choice::Option(s),
                    Value::Null => Choice::Null,
                    other => {
                        return Err(bad(format!(
                            "entry `{raw_key}` must name one option (a string) or null, found `{}`",
                            other.to_inline()
                        )))
                    }
                };
                out.push(DefaultsEntry::Group {
                    group,
                    choice,
                    package,
                    optional,
                    is_override,
                });
            }
            other => {
                return Err(bad(format!(
                    "each entry must be `_self_`, a config name, or `group: option`; found `{}`",
                    other.to_inline()
                )))
            }
        }
    }
    Ok(out)
}

/// How a command-line group choice names a defaults entry: `db`, or `db@backup` for the
/// entry with package `backup` (Hydra: `db@backup=x` changes only that package).
pub fn choice_key(group: &str, package: Option<&str>) -> String {
    match package {
        Some(p) => format!("{group}@{p}"),
        None => group.to_string(),
    }
}

/// `group: ???` in a defaults list: the group must be chosen on the command line.
const MANDATORY: &str = "???";

/// Hydra's checks on one defaults list: a group (with its package) appears once, and an
/// `override` entry comes after the entry of the group it overrides, not before it.
fn check_entry_order(
    entries: &[DefaultsEntry],
    containing_group: &str,
    file: &str,
) -> Result<(), ConfigError> {
    let mut seen: Vec<(String, Option<String>)> = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let DefaultsEntry::Group {
            group,
            package,
            is_override,
            ..
        } = e
        else {
            continue;
        };
        let abs = absolute_group(containing_group, group);
        if *is_override {
            let later = entries[i + 1..].iter().any(|l| {
                matches!(l, DefaultsEntry::Group { group: g, is_override: false, .. }
                    if absolute_group(containing_group, g) == abs)
            });
            if later {
                return Err(ConfigError::Defaults {
                    file: file.to_string(),
                    message: format!(
                        "`override {group}` comes before the entry for group `{abs}` it \
                         overrides; put override entries at the end of the defaults list"
                    ),
                });
            }
            continue;
        }
        let key = (abs.clone(), package.clone());
        if seen.contains(&key) {
            return Err(ConfigError::Defaults {
                file: file.to_string(),
                message: format!(
                    "config group `{abs}` appears twice in the defaults list; to change its \
                     option use `override {group}: OPTION`"
                ),
            });
        }
        seen.push(key);
    }
    Ok(())
}

/// Resolves a group path written in a defaults list relative to the containing config's group.
fn absolute_group(containing_group: &str, group: &str) -> String {
    if let Some(abs) = group.strip_prefix('/') {
        abs.to_string()
    } else if containing_group.is_empty() {
        group.to_string()
    } else {
        format!("{containing_group}/{group}")
    }
}

/// The package a group option's body lands in (Hydra 1.1): the entry's `@package`, else the
/// option file's `# @package` header, else the group path as written in the defaults list —
/// each relative to the package of the config whose defaults list holds the entry, so nested
/// defaults follow their parent (including a parent moved by its own header or `@package`).
/// `_global_` anywhere makes what follows it absolute; `_group_` is the group path.
fn package_for(
    parent_package: &str,
    written_group: &str,
    entry_package: Option<&str>,
    header: Option<&str>,
) -> String {
    let relative_group = written_group
        .strip_prefix('/')
        .unwrap_or(written_group)
        .replace('/', ".");
    let own = match entry_package.or(header) {
        Some("_group_") | None => relative_group,
        Some(p) => p.to_string(),
    };
    let joined = match (parent_package.is_empty(), own.is_empty()) {
        (true, _) => own,
        (false, true) => parent_package.to_string(),
        (false, false) => format!("{parent_package}.{own}"),
    };
    match joined.rfind("_global_") {
        Some(i) => joined[i + "_global_".len()..]
            .trim_start_matches('.')
            .to_string(),
        None => joined,
    }
}

/// Reads `_auto_` out of an option body.
fn take_auto(body: &mut Node, file: &str) -> Result<Option<AutoRule>, ConfigError> {
    let Some(map) = body.as_map_mut() else {
        return Ok(None);
    };
    let Some(auto) = map.shift_remove("_auto_") else {
        return Ok(None);
    };
    let bad = |m: &str| ConfigError::Defaults {
        file: file.to_string(),
        message: format!("`_auto_` {m}"),
    };
    let keys = match auto.get("key").map(|n| &n.value) {
        Some(Value::Str(s)) => vec![s.clone()],
        Some(Value::List(items)) if !items.is_empty() => items
            .iter()
            .map(|n| match &n.value {
                Value::Str(s) => Ok(s.clone()),
                _ => Err(bad("`key:` lists config keys (strings)")),
            })
            .collect::<Result<Vec<_>, _>>()?,
        _ => {
            return Err(bad(
                "needs `key:` naming the config key (or keys) that pick the option",
            ))
        }
    };
    let mut choices = IndexMap::new();
    match auto.get("choices").and_then(Node::as_map) {
        Some(m) => {
            for (k, v) in m {
                match &v.value {
                    Value::Str(s) => {
                        choices.insert(k.clone(), s.clone());
                    }
                    _ => return Err(bad("choices must map values to option names")),
                }
            }
        }
        None => return Err(bad("needs `choices:` mapping values of the key to options")),
    }
    Ok(Some(AutoRule { keys, choices }))
}

/// Builds the tree of a loaded config file.
pub fn build_node(
    ctx: &mut BuildContext<'_>,
    mut file: ConfigFile,
    path: PathBuf,
    group: Option<String>,
    option: Option<String>,
    package: String,
    is_primary: bool,
) -> Result<DefaultsNode, ConfigError> {
    let file_label = path.display().to_string();
    let mut entries = take_defaults(&mut file.body, &file_label)?;
    let auto = take_auto(&mut file.body, &file_label)?;
    // Before `+group=option` additions, whose clashes compose reports itself.
    check_entry_order(&entries, group.as_deref().unwrap_or_default(), &file_label)?;
    if is_primary {
        for (g, choice, pkg, _origin) in ctx.appended.iter() {
            entries.push(DefaultsEntry::Group {
                group: format!("/{g}"),
                choice: choice.clone(),
                package: pkg.clone(),
                optional: false,
                is_override: false,
            });
        }
    }
    if !entries.contains(&DefaultsEntry::SelfRef) {
        // Hydra >= 1.1: a config's own values override its defaults unless `_self_` says otherwise.
        entries.push(DefaultsEntry::SelfRef);
    }
    let containing_group = group.clone().unwrap_or_default();
    // Plain config entries live in the folder of the containing file.
    let folder = match &group {
        Some(g) => g.clone(),
        None => path
            .parent()
            .and_then(|p| p.strip_prefix(ctx.repo.root()).ok())
            .map(|p| p.to_string_lossy().to_string())
            .unwrap_or_default(),
    };
    let mut items = Vec::new();
    for entry in entries {
        match entry {
            DefaultsEntry::SelfRef => items.push(TreeItem::SelfBody),
            DefaultsEntry::Config { path: name } => {
                let (dir, stem) = match name.strip_prefix('/') {
                    Some(abs) => match abs.rsplit_once('/') {
                        Some((d, s)) => (d.to_string(), s.to_string()),
                        None => (String::new(), abs.to_string()),
                    },
                    None => (folder.clone(), name.clone()),
                };
                let p = ctx.repo.file_path(&dir, &stem);
                let f = super::yaml::read_config_file(&p).map_err(|e| match e {
                    ConfigError::Io { .. } => ConfigError::Defaults {
                        file: file_label.clone(),
                        message: format!("entry `{name}`: no config file {}", p.display()),
                    },
                    other => other,
                })?;
                let child = build_node(ctx, f, p, None, None, package.clone(), false)?;
                items.push(TreeItem::Child(Box::new(child)));
            }
            DefaultsEntry::Group {
                group: g,
                choice,
                package: pkg,
                optional,
                is_override,
            } => {
                let abs = absolute_group(&containing_group, &g);
                if is_override {
                    ctx.seen_overrides.push((
                        abs,
                        ChoiceOverride {
                            choice,
                            origin: format!("`override` entry in {file_label}"),
                        },
                    ));
                    continue;
                }
                // `group@pkg=option` on the command line targets only that package's entry.
                let key = choice_key(&abs, pkg.as_deref());
                ctx.seen_groups.push(abs.clone());
                if key != abs {
                    ctx.seen_groups.push(key.clone());
                }
                let origin_default = format!("defaults list of {file_label}");
                let (choice, origin) = if let Some(f) = ctx.forced.get(&key) {
                    (f.choice.clone(), f.origin.clone())
                } else if let Some(o) = ctx.config_overrides.get(&abs) {
                    (o.choice.clone(), o.origin.clone())
                } else {
                    (choice, origin_default)
                };
                let Choice::Option(opt) = choice else {
                    continue;
                };
                if opt == MANDATORY {
                    let options = ctx.repo.options(&abs);
                    return Err(ConfigError::Defaults {
                        file: file_label.clone(),
                        message: format!(
                            "config group `{abs}` has no default (`???`): choose one with \
                             `{abs}=<OPTION>` (options: {})",
                            if options.is_empty() {
                                "none".to_string()
                            } else {
                                options.join(", ")
                            }
                        ),
                    });
                }
                if optional && !ctx.repo.has_option(&abs, &opt) {
                    items.push(TreeItem::Child(Box::new(DefaultsNode {
                        group: Some(abs),
                        requested: None,
                        option: Some(opt),
                        package: String::new(),
                        file: None,
                        body: None,
                        items: Vec::new(),
                        missing_optional: true,
                        auto: None,
                    })));
                    continue;
                }
                let (f, p) = ctx.repo.load_option(&abs, &opt, &origin)?;
                let pkg = package_for(&package, &g, pkg.as_deref(), f.package.as_deref());
                let child = build_node(ctx, f, p, Some(abs), Some(opt), pkg, false)?;
                items.push(TreeItem::Child(Box::new(child)));
            }
        }
    }
    Ok(DefaultsNode {
        group,
        requested: None,
        option,
        package,
        file: Some(path),
        body: Some(file.body),
        items,
        missing_optional: false,
        auto,
    })
}

impl DefaultsNode {
    /// Merges the tree's bodies into one config, in composition order.
    pub fn compose_into(&self, root: &mut Node) {
        for item in &self.items {
            match item {
                TreeItem::SelfBody => {
                    if let Some(body) = &self.body {
                        merge_at(root, &self.package, body.clone());
                    }
                }
                TreeItem::Child(child) => child.compose_into(root),
            }
        }
    }

    /// The `auto` options of the tree: (group, rule).
    pub fn auto_rules(&self) -> Vec<(String, AutoRule)> {
        let mut out = Vec::new();
        if let (Some(g), Some(rule)) = (&self.group, &self.auto) {
            out.push((g.clone(), rule.clone()));
        }
        for item in &self.items {
            if let TreeItem::Child(c) = item {
                out.extend(c.auto_rules());
            }
        }
        out
    }

    /// The chosen option of every group in the tree.
    pub fn choices(&self) -> IndexMap<String, String> {
        let mut out = IndexMap::new();
        if let (Some(g), Some(o)) = (&self.group, &self.option) {
            if !self.missing_optional {
                out.insert(g.clone(), o.clone());
            }
        }
        for item in &self.items {
            if let TreeItem::Child(c) = item {
                out.extend(c.choices());
            }
        }
        out
    }

    /// Marks the nodes of `group` as resolved from `requested` (for `--info`).
    pub fn mark_requested(&mut self, group: &str, requested: &str) {
        if self.group.as_deref() == Some(group) {
            self.requested = Some(requested.to_string());
        }
        for item in &mut self.items {
            if let TreeItem::Child(c) = item {
                c.mark_requested(group, requested);
            }
        }
    }

    /// The tree as indented text, each node with its file.
    pub fn render(&self, root: &std::path::Path) -> String {
        let mut out = String::new();
        self.render_into(&mut out, "", root);
        out
    }

    fn render_into(&self, out: &mut String, indent: &str, root: &std::path::Path) {
        let rel = |p: &PathBuf| {
            p.strip_prefix(root.parent().unwrap_or(root))
                .unwrap_or(p)
                .display()
                .to_string()
        };
        let label = match (&self.group, &self.option) {
            (Some(g), Some(o)) => match &self.requested {
                Some(r) if r != o => format!("{g}: {r} -> {o}"),
                _ => format!("{g}: {o}"),
            },
            _ => self
                .file
                .as_ref()
                .and_then(|f| f.file_stem())
                .map(|s| s.to_string_lossy().to_string())
                .unwrap_or_default(),
        };
        let where_ = if self.missing_optional {
            "(optional, not found)".to_string()
        } else {
            self.file.as_ref().map(rel).unwrap_or_default()
        };
        let pkg = if self.package.is_empty() && self.group.is_some() {
            "  @package _global_".to_string()
        } else {
            String::new()
        };
        out.push_str(&format!("{indent}{label}  ({where_}){pkg}\n"));
        let child_indent = format!("{indent}  ");
        for item in &self.items {
            match item {
                TreeItem::SelfBody => {
                    if self.items.len() > 1 {
                        out.push_str(&format!("{child_indent}_self_\n"));
                    }
                }
                TreeItem::Child(c) => c.render_into(out, &child_indent, root),
            }
        }
    }
}

/// Merges `body` into `root` under the dotted `package` ("" = the root).
pub fn merge_at(root: &mut Node, package: &str, body: Node) {
    if package.is_empty() {
        root.merge_from(body);
        return;
    }
    let mut wrapped = body;
    for part in package.rsplit('.') {
        let mut m = IndexMap::new();
        let src = wrapped.source.clone();
        m.insert(part.to_string(), wrapped);
        wrapped = Node::new(Value::Map(m), src);
    }
    root.merge_from(wrapped);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::node::Source;
    use std::sync::Arc;

    #[test]
    fn parses_entries_with_modifiers() {
        let src = Arc::new(Source::Builtin("t"));
        let mut body = crate::config::yaml::parse_inline(
            "{defaults: [_self_, base, {task: darkroom}, {optional extra: x}, {override /model: lm}, {db@backup: pg}, {fmt: null}], a: 1}",
            &src,
        )
        .unwrap();
        let entries = take_defaults(&mut body, "f.yaml").unwrap();
        assert_eq!(entries[0], DefaultsEntry::SelfRef);
        assert_eq!(
            entries[1],
            DefaultsEntry::Config {
                path: "base".into()
            }
        );
        assert!(matches!(
            &entries[3],
            DefaultsEntry::Group { optional: true, .. }
        ));
        assert!(
            matches!(&entries[4], DefaultsEntry::Group { is_override: true, group, .. } if group == "/model")
        );
        assert!(
            matches!(&entries[5], DefaultsEntry::Group { package: Some(p), .. } if p == "backup")
        );
        assert!(matches!(
            &entries[6],
            DefaultsEntry::Group {
                choice: Choice::Null,
                ..
            }
        ));
        assert!(body.get("defaults").is_none());
        assert!(body.get("a").is_some());
    }

    #[test]
    fn packages_follow_hydra_rules() {
        assert_eq!(package_for("", "task", None, None), "task");
        assert_eq!(package_for("task", "source", None, None), "task.source");
        assert_eq!(package_for("", "experiment", None, Some("_global_")), "");
        assert_eq!(
            package_for("", "db", Some("backup"), Some("_global_")),
            "backup"
        );
        assert_eq!(package_for("", "db", Some("_group_"), None), "db");
        // Nested defaults are relative to the parent's package, wherever that moved.
        assert_eq!(package_for("backend", "db", None, None), "backend.db");
        assert_eq!(package_for("", "/db", None, None), "db");
        assert_eq!(package_for("server", "db", Some("_global_.x"), None), "x");
        assert_eq!(package_for("server", "db", None, Some("_global_")), "");
        assert_eq!(absolute_group("task", "source"), "task/source");
        assert_eq!(absolute_group("task", "/model"), "model");
    }
}
