//! Typed extraction: the composed tree is deserialised (through figment) into the typed
//! structs of `schema`, and figment's errors are turned into [`ConfigError`]s that name the
//! full key, the value, the expected type, the provenance and the nearest valid key.

use super::error::{nearest, ConfigError};
use super::node::{Node, Source, Value};
use figment::value::{Dict, Empty, Num, Tag, Value as FValue};
use figment::{Figment, Metadata, Profile, Provider};
use serde::de::DeserializeOwned;

/// A figment provider serving a composed config tree.
struct TreeProvider<'a>(&'a Node);

impl Provider for TreeProvider<'_> {
    fn metadata(&self) -> Metadata {
        Metadata::named("composed adlab config")
    }

    fn data(&self) -> figment::Result<figment::value::Map<Profile, Dict>> {
        let dict = match to_figment(self.0) {
            FValue::Dict(_, d) => d,
            _ => Dict::new(),
        };
        Ok(Profile::Default.collect(dict))
    }
}

fn to_figment(node: &Node) -> FValue {
    let tag = Tag::Default;
    match &node.value {
        Value::Null => FValue::Empty(tag, Empty::None),
        Value::Bool(b) => FValue::Bool(tag, *b),
        Value::Int(i) => FValue::Num(tag, Num::I64(*i)),
        Value::Float(x) => FValue::Num(tag, Num::F64(*x)),
        Value::Str(s) => FValue::String(tag, s.clone()),
        Value::List(items) => FValue::Array(tag, items.iter().map(to_figment).collect()),
        Value::Map(m) => FValue::Dict(
            tag,
            m.iter().map(|(k, v)| (k.clone(), to_figment(v))).collect(),
        ),
    }
}

/// Deserialises the tree at `path` ("" = the whole config) into `T`.
pub fn extract_at<T: DeserializeOwned>(config: &Node, path: &str) -> Result<T, ConfigError> {
    let figment = Figment::from(TreeProvider(config));
    let result = if path.is_empty() {
        figment.extract::<T>()
    } else {
        figment.extract_inner::<T>(path)
    };
    result.map_err(|e| {
        let first = e.into_iter().next().expect("figment errors are non-empty");
        let mut key_path: Vec<String> = Vec::new();
        if !path.is_empty() {
            key_path.extend(path.split('.').map(String::from));
        }
        key_path.extend(first.path.iter().cloned());
        map_error(config, key_path, first.kind)
    })
}

/// Deserialises the whole config into `T`.
pub fn extract<T: DeserializeOwned>(config: &Node) -> Result<T, ConfigError> {
    extract_at(config, "")
}

fn origin_of(config: &Node, key: &str) -> String {
    // The node itself, or the nearest existing ancestor (for missing keys).
    let mut k = key.to_string();
    loop {
        if let Some(n) = config.get(&k) {
            return n.source.to_string();
        }
        match k.rsplit_once('.') {
            Some((parent, _)) => k = parent.to_string(),
            None => return Source::Builtin("the composed config").to_string(),
        }
    }
}

fn join(path: &[String]) -> String {
    path.join(".")
}

fn map_error(config: &Node, mut path: Vec<String>, kind: figment::error::Kind) -> ConfigError {
    use figment::error::Kind;
    match kind {
        Kind::UnknownField(field, expected) => {
            // figment's path may already end with the unknown field itself.
            if path.last() != Some(&field) {
                path.push(field.clone());
            }
            let key = join(&path);
            let parent = join(&path[..path.len() - 1]);
            unknown_key(config, &key, &parent, expected.iter().copied())
        }
        Kind::MissingField(field) => {
            let origin = origin_of(config, &join(&path));
            path.push(field.to_string());
            ConfigError::MissingKey {
                key: join(&path),
                origin,
            }
        }
        Kind::InvalidType(_, expected) | Kind::InvalidValue(_, expected) => {
            let key = join(&path);
            invalid(config, &key, &humanize_expected(&expected))
        }
        Kind::UnknownVariant(value, expected) => {
            let key = join(&path);
            let mut exp = format!("one of {}", expected.join(", "));
            if let Some(s) = nearest(&value, expected.iter().copied()) {
                exp.push_str(&format!(" (did you mean `{s}`?)"));
            }
            invalid(config, &key, &exp)
        }
        Kind::InvalidLength(len, expected) => invalid(
            config,
            &join(&path),
            &format!("{expected} (got {len} items)"),
        ),
        Kind::Message(msg) => from_message(config, &path, &msg),
        other => ConfigError::InvalidValue {
            key: join(&path),
            value: config
                .get(&join(&path))
                .map(|n| n.value.to_inline())
                .unwrap_or_default(),
            expected: other.to_string(),
            origin: origin_of(config, &join(&path)),
        },
    }
}

fn invalid(config: &Node, key: &str, expected: &str) -> ConfigError {
    ConfigError::InvalidValue {
        key: key.to_string(),
        value: config
            .get(key)
            .map(|n| n.value.to_inline())
            .unwrap_or_default(),
        expected: expected.to_string(),
        origin: origin_of(config, key),
    }
}

fn unknown_key<'a>(
    config: &Node,
    key: &str,
    parent: &str,
    expected: impl Iterator<Item = &'a str>,
) -> ConfigError {
    let candidates: Vec<String> = expected
        .map(|f| {
            if parent.is_empty() {
                f.to_string()
            } else {
                format!("{parent}.{f}")
            }
        })
        .collect();
    ConfigError::UnknownKey {
        key: key.to_string(),
        origin: origin_of(config, key),
        suggestion: nearest(key, candidates.iter().map(String::as_str)),
    }
}

/// serde's type names in plain words (`f64` -> `a number`).
fn humanize_expected(expected: &str) -> String {
    let e = expected.trim();
    let word = match e {
        "f64" | "f32" => "a number (float)",
        "u8" | "u16" | "u32" | "u64" | "usize" => "a non-negative integer",
        "i8" | "i16" | "i32" | "i64" | "isize" => "an integer",
        "a boolean" | "bool" => "a boolean (true/false)",
        _ => return e.to_string(),
    };
    format!("{word} ({e})")
}

/// Errors that serde's buffering (internally tagged enums) reports as plain messages,
/// e.g. "unknown field `x`, expected one of `a`, `b`": recover the key from the text.
fn from_message(config: &Node, path: &[String], msg: &str) -> ConfigError {
    let parent = join(path);
    let ticked: Vec<&str> = msg.split('`').skip(1).step_by(2).collect();
    if let Some(rest) = msg.strip_prefix("unknown field `") {
        let field = rest.split('`').next().unwrap_or_default();
        let key = if parent.is_empty() {
            field.to_string()
        } else {
            format!("{parent}.{field}")
        };
        return unknown_key(config, &key, &parent, ticked.iter().skip(1).copied());
    }
    if let Some(rest) = msg.strip_prefix("missing field `") {
        let field = rest.split('`').next().unwrap_or_default();
        // Inside an internally tagged enum serde reports only the enum's path: find the
        // mapping that lost the field, which an override replaced (its source differs).
        let holder = replaced_map_without(config, &parent, field).unwrap_or(parent.clone());
        return ConfigError::MissingKey {
            key: if holder.is_empty() {
                field.to_string()
            } else {
                format!("{holder}.{field}")
            },
            origin: origin_of(config, &holder),
        };
    }
    if let Some(rest) = msg.strip_prefix("unknown variant `") {
        let value = rest.split('`').next().unwrap_or_default();
        // Find which key under `parent` holds this value.
        let key = find_leaf_with_value(config, &parent, value).unwrap_or(parent.clone());
        let options: Vec<&str> = ticked.iter().skip(1).copied().collect();
        let mut expected = format!("one of {}", options.join(", "));
        if let Some(s) = nearest(value, options.iter().copied()) {
            expected.push_str(&format!(" (did you mean `{s}`?)"));
        }
        return invalid(config, &key, &expected);
    }
    if let Some(rest) = msg.strip_prefix("invalid type: ") {
        // "invalid type: string \"abc\", expected f64"
        let (actual, expected) = rest
            .split_once(", expected ")
            .unwrap_or((rest, "another type"));
        let literal = actual
            .split_once(' ')
            .map(|(_, v)| v.trim_matches('"'))
            .unwrap_or("");
        let key = find_leaf_with_value(config, &parent, literal).unwrap_or(parent.clone());
        return invalid(config, &key, &humanize_expected(expected));
    }
    ConfigError::InvalidValue {
        key: parent.clone(),
        value: config
            .get(&parent)
            .map(|n| n.value.to_inline())
            .unwrap_or_default(),
        expected: msg.to_string(),
        origin: origin_of(config, &parent),
    }
}

/// The one mapping under `under` (at any depth below it) that lacks `field` and came from a
/// different source than `under` itself: a mapping an override replaced.
fn replaced_map_without(config: &Node, under: &str, field: &str) -> Option<String> {
    let root = config.get(under)?;
    let mut hits = Vec::new();
    for path in root.all_paths() {
        let Some(node) = root.get(&path) else {
            continue;
        };
        if let Some(map) = node.as_map() {
            if !map.contains_key(field) && !same_file(&node.source, &root.source) {
                hits.push(if under.is_empty() {
                    path
                } else {
                    format!("{under}.{path}")
                });
            }
        }
    }
    (hits.len() == 1).then(|| hits.remove(0))
}

/// Whether two sources are the same file (lines aside) or otherwise equal.
fn same_file(a: &Source, b: &Source) -> bool {
    match (a, b) {
        (Source::File { path: p, .. }, Source::File { path: q, .. }) => p == q,
        _ => a == b,
    }
}

fn find_leaf_with_value(config: &Node, under: &str, literal: &str) -> Option<String> {
    let node = config.get(under)?;
    let hits: Vec<String> = node
        .leaf_paths()
        .into_iter()
        .filter(|p| node.get(p).is_some_and(|n| n.value.to_inline() == literal))
        .map(|p| {
            if under.is_empty() {
                p
            } else {
                format!("{under}.{p}")
            }
        })
        .collect();
    (hits.len() == 1).then(|| hits[0].clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use std::sync::Arc;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Opt {
        lr: f64,
        steps: u32,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Root {
        optimizer: Opt,
        kind: Kind,
    }

    #[derive(Debug, Deserialize)]
    #[serde(tag = "kind", rename_all = "snake_case")]
    #[allow(dead_code)]
    enum Kind {
        A(Inner),
        B(Inner),
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        size: u32,
    }

    fn tree(yaml: &str, src: Source) -> Node {
        crate::config::yaml::parse_inline(yaml, &Arc::new(src)).unwrap()
    }

    #[test]
    fn type_errors_name_key_value_type_and_origin() {
        let mut t = tree(
            "{optimizer: {lr: 0.1, steps: 3}, kind: {kind: a, size: 1}}",
            Source::Builtin("file"),
        );
        let o = crate::config::overrides::parse_override("optimizer.lr=abc").unwrap();
        crate::config::compose::apply_value_override(&mut t, &o).unwrap();
        let msg = extract::<Root>(&t).unwrap_err().to_string();
        for part in [
            "optimizer.lr",
            "abc",
            "number",
            "command-line override `optimizer.lr=abc`",
        ] {
            assert!(msg.contains(part), "missing {part:?} in {msg}");
        }
    }

    #[test]
    fn unknown_keys_inside_tagged_enums_are_located() {
        let t = tree(
            "{optimizer: {lr: 0.1, steps: 3}, kind: {kind: a, sise: 1}}",
            Source::Builtin("file"),
        );
        let err = extract::<Root>(&t).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("kind.sise"), "{msg}");
        assert!(msg.contains("kind.size"), "{msg}");
    }

    #[test]
    fn unknown_variant_suggests() {
        let t = tree(
            "{optimizer: {lr: 0.1, steps: 3}, kind: {kind: c, size: 1}}",
            Source::Builtin("file"),
        );
        let msg = extract::<Root>(&t).unwrap_err().to_string();
        assert!(msg.contains("kind.kind") && msg.contains("a, b"), "{msg}");
    }

    #[test]
    fn missing_keys_are_named() {
        let t = tree(
            "{optimizer: {lr: 0.1}, kind: {kind: a, size: 1}}",
            Source::Builtin("file"),
        );
        let msg = extract::<Root>(&t).unwrap_err().to_string();
        assert!(msg.contains("optimizer.steps"), "{msg}");
    }

    #[test]
    fn ints_are_accepted_for_floats() {
        let t = tree(
            "{optimizer: {lr: 1, steps: 3}, kind: {kind: b, size: 1}}",
            Source::Builtin("file"),
        );
        let r: Root = extract(&t).unwrap();
        assert_eq!(r.optimizer.lr, 1.0);
    }
}
