//! The untyped config tree. Every node remembers where it was defined (a file, a
//! command-line override, an interpolation) so errors can say where a bad value came from —
//! the provenance cargo's config has and adlab's users need.

use indexmap::IndexMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

/// Where a config value was defined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A YAML file, with the 1-based line of the value when known.
    File { path: PathBuf, line: Option<usize> },
    /// A command-line override, kept verbatim (`optimizer.lr=abc`).
    Override(String),
    /// Produced by adlab itself (e.g. an empty node created to hold an added key).
    Builtin(&'static str),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::File {
                path,
                line: Some(l),
            } => write!(f, "{}:{}", path.display(), l),
            Source::File { path, line: None } => write!(f, "{}", path.display()),
            Source::Override(text) => write!(f, "command-line override `{text}`"),
            Source::Builtin(what) => write!(f, "{what}"),
        }
    }
}

/// A config value plus its provenance.
#[derive(Debug, Clone)]
pub struct Node {
    pub value: Value,
    pub source: Arc<Source>,
}

/// The value of a config node. Maps keep insertion order so printed configs read like the files.
#[derive(Debug, Clone)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    List(Vec<Node>),
    Map(IndexMap<String, Node>),
}

impl PartialEq for Node {
    /// Equality compares values only; provenance is metadata.
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value
    }
}

impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        use Value::*;
        match (self, other) {
            (Null, Null) => true,
            (Bool(a), Bool(b)) => a == b,
            (Int(a), Int(b)) => a == b,
            (Float(a), Float(b)) => a == b || (a.is_nan() && b.is_nan()),
            (Str(a), Str(b)) => a == b,
            (List(a), List(b)) => a == b,
            (Map(a), Map(b)) => a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y),
            _ => false,
        }
    }
}

impl Value {
    /// A short name of the value's type, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "string",
            Value::List(_) => "list",
            Value::Map(_) => "mapping",
        }
    }

    /// The value as it would be written in an override (`0.001`, `[1, 2]`, `{a: 1}`).
    pub fn to_inline(&self) -> String {
        match self {
            Value::Null => "null".into(),
            Value::Bool(b) => b.to_string(),
            Value::Int(i) => i.to_string(),
            Value::Float(x) => format_float(*x),
            Value::Str(s) => s.clone(),
            Value::List(items) => {
                let inner: Vec<String> = items.iter().map(|n| n.value.to_inline()).collect();
                format!("[{}]", inner.join(", "))
            }
            Value::Map(map) => {
                let inner: Vec<String> = map
                    .iter()
                    .map(|(k, n)| format!("{k}: {}", n.value.to_inline()))
                    .collect();
                format!("{{{}}}", inner.join(", "))
            }
        }
    }
}

/// Formats a float so it reads back as a float (`1.0`, not `1`).
pub fn format_float(x: f64) -> String {
    if x.is_nan() {
        ".nan".into()
    } else if x.is_infinite() {
        if x > 0.0 { ".inf" } else { "-.inf" }.into()
    } else if x == x.trunc() && x.abs() < 1e16 {
        format!("{x:.1}")
    } else {
        format!("{x}")
    }
}

impl Node {
    pub fn new(value: Value, source: Arc<Source>) -> Self {
        Node { value, source }
    }

    pub fn empty_map(source: Arc<Source>) -> Self {
        Node::new(Value::Map(IndexMap::new()), source)
    }

    pub fn as_map(&self) -> Option<&IndexMap<String, Node>> {
        match &self.value {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    pub fn as_map_mut(&mut self) -> Option<&mut IndexMap<String, Node>> {
        match &mut self.value {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    /// The node at a dotted path (`optimizer.lr`; list items by index: `eval.tasks.0`).
    pub fn get(&self, path: &str) -> Option<&Node> {
        if path.is_empty() {
            return Some(self);
        }
        let mut node = self;
        for part in path.split('.') {
            node = match &node.value {
                Value::Map(m) => m.get(part)?,
                Value::List(l) => l.get(part.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        Some(node)
    }

    pub fn get_mut(&mut self, path: &str) -> Option<&mut Node> {
        if path.is_empty() {
            return Some(self);
        }
        let mut node = self;
        for part in path.split('.') {
            node = match &mut node.value {
                Value::Map(m) => m.get_mut(part)?,
                Value::List(l) => l.get_mut(part.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        Some(node)
    }

    /// Sets the node at `path`, creating intermediate maps (owned by `source`) as needed.
    /// Fails (returning the blocking prefix) when a non-map value is in the way.
    pub fn set(&mut self, path: &str, value: Node, source: &Arc<Source>) -> Result<(), String> {
        let parts: Vec<&str> = path.split('.').collect();
        let (last, parents) = parts.split_last().expect("split yields at least one part");
        let mut node = self;
        let mut walked = String::new();
        for part in parents {
            if !walked.is_empty() {
                walked.push('.');
            }
            walked.push_str(part);
            if matches!(node.value, Value::Null) {
                node.value = Value::Map(IndexMap::new());
            }
            let map = match &mut node.value {
                Value::Map(m) => m,
                _ => return Err(walked),
            };
            node = map
                .entry((*part).to_string())
                .or_insert_with(|| Node::empty_map(source.clone()));
        }
        if matches!(node.value, Value::Null) {
            node.value = Value::Map(IndexMap::new());
        }
        match &mut node.value {
            Value::Map(m) => {
                m.insert((*last).to_string(), value);
                Ok(())
            }
            _ => Err(walked),
        }
    }

    /// Removes the node at `path` (a map key, or a list item by index), returning it.
    pub fn remove(&mut self, path: &str) -> Option<Node> {
        let (parent, last) = match path.rsplit_once('.') {
            Some((p, l)) => (p, l),
            None => ("", path),
        };
        match &mut self.get_mut(parent)?.value {
            Value::Map(m) => m.shift_remove(last),
            Value::List(items) => {
                let i = last.parse::<usize>().ok()?;
                (i < items.len()).then(|| items.remove(i))
            }
            _ => None,
        }
    }

    /// Deep merge (OmegaConf semantics): maps merge key by key, anything else is replaced.
    pub fn merge_from(&mut self, other: Node) {
        match (&mut self.value, other.value) {
            (Value::Map(mine), Value::Map(theirs)) => {
                for (k, v) in theirs {
                    match mine.get_mut(&k) {
                        Some(existing) => existing.merge_from(v),
                        None => {
                            mine.insert(k, v);
                        }
                    }
                }
            }
            (_, value) => {
                self.value = value;
                self.source = other.source;
            }
        }
    }

    /// All dotted leaf paths (maps are walked; lists and scalars are leaves).
    pub fn leaf_paths(&self) -> Vec<String> {
        let mut out = Vec::new();
        fn walk(node: &Node, prefix: &str, out: &mut Vec<String>) {
            match &node.value {
                Value::Map(m) if !m.is_empty() => {
                    for (k, v) in m {
                        let p = if prefix.is_empty() {
                            k.clone()
                        } else {
                            format!("{prefix}.{k}")
                        };
                        walk(v, &p, out);
                    }
                }
                _ => out.push(prefix.to_string()),
            }
        }
        walk(self, "", &mut out);
        out
    }

    /// All dotted paths of map keys (inner nodes too), for "did you mean" suggestions.
    pub fn all_paths(&self) -> Vec<String> {
        let mut out = Vec::new();
        fn walk(node: &Node, prefix: &str, out: &mut Vec<String>) {
            if let Value::Map(m) = &node.value {
                for (k, v) in m {
                    let p = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    out.push(p.clone());
                    walk(v, &p, out);
                }
            }
        }
        walk(self, "", &mut out);
        out
    }

    /// Sets the provenance of this node and everything below it.
    pub fn set_source_deep(&mut self, source: &Arc<Source>) {
        self.source = source.clone();
        match &mut self.value {
            Value::Map(m) => m.values_mut().for_each(|n| n.set_source_deep(source)),
            Value::List(l) => l.iter_mut().for_each(|n| n.set_source_deep(source)),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src() -> Arc<Source> {
        Arc::new(Source::Builtin("test"))
    }

    fn int(i: i64) -> Node {
        Node::new(Value::Int(i), src())
    }

    #[test]
    fn set_creates_parents_and_get_finds_them() {
        let mut root = Node::empty_map(src());
        root.set("a.b.c", int(1), &src()).unwrap();
        assert_eq!(root.get("a.b.c").unwrap().value, Value::Int(1));
        assert!(root.get("a.x").is_none());
        assert_eq!(root.set("a.b.c.d", int(2), &src()), Err("a.b.c".into()));
    }

    #[test]
    fn merge_is_deep_for_maps_and_replaces_scalars() {
        let mut a = Node::empty_map(src());
        a.set("x.y", int(1), &src()).unwrap();
        a.set("x.z", int(2), &src()).unwrap();
        let mut b = Node::empty_map(src());
        b.set("x.y", int(10), &src()).unwrap();
        b.set("w", int(3), &src()).unwrap();
        a.merge_from(b);
        assert_eq!(a.get("x.y").unwrap().value, Value::Int(10));
        assert_eq!(a.get("x.z").unwrap().value, Value::Int(2));
        assert_eq!(a.get("w").unwrap().value, Value::Int(3));
    }

    #[test]
    fn remove_returns_removed_node() {
        let mut a = Node::empty_map(src());
        a.set("x.y", int(1), &src()).unwrap();
        assert!(a.remove("x.y").is_some());
        assert!(a.get("x.y").is_none());
        assert!(a.get("x").is_some());
    }

    #[test]
    fn floats_print_as_floats() {
        assert_eq!(format_float(1.0), "1.0");
        assert_eq!(format_float(0.001), "0.001");
        assert_eq!(format_float(1e-5), "0.00001");
    }
}
