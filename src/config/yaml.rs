//! YAML in and out of the config tree: reading a config file (with its `# @package`
//! header) into [`Node`]s that remember the file, and printing a tree back as YAML.

use super::error::ConfigError;
use super::node::{Node, Source, Value};
use indexmap::IndexMap;
use serde_yaml_ng as yaml;
use std::path::Path;
use std::sync::Arc;

/// A parsed config file.
#[derive(Debug, Clone)]
pub struct ConfigFile {
    pub body: Node,
    /// The `# @package ...` header, if any (`_global_`, `_group_`, or a dotted path).
    pub package: Option<String>,
}

/// Reads and parses a YAML config file.
pub fn read_config_file(path: &Path) -> Result<ConfigFile, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    parse_config_text(&text, path)
}

/// Parses YAML text; `path` is used for provenance and error messages.
pub fn parse_config_text(text: &str, path: &Path) -> Result<ConfigFile, ConfigError> {
    let package = package_header(text);
    let parsed: yaml::Value = yaml::from_str(text).map_err(|e| {
        let (line, column) = e
            .location()
            .map(|l| (Some(l.line()), Some(l.column())))
            .unwrap_or((None, None));
        ConfigError::Syntax {
            path: path.to_path_buf(),
            line,
            column,
            message: e.to_string(),
        }
    })?;
    let source = Arc::new(Source::File {
        path: path.to_path_buf(),
        line: None,
    });
    let body = match parsed {
        yaml::Value::Null => Node::empty_map(source.clone()),
        other => from_yaml(other, &source),
    };
    if body.as_map().is_none() {
        return Err(ConfigError::Syntax {
            path: path.to_path_buf(),
            line: Some(1),
            column: None,
            message: format!(
                "a config file must be a mapping of keys to values, found a {}",
                body.value.type_name()
            ),
        });
    }
    Ok(ConfigFile { body, package })
}

/// Finds `# @package X` among the leading comment lines.
fn package_header(text: &str) -> Option<String> {
    text.lines()
        .map(str::trim)
        .take_while(|l| l.is_empty() || l.starts_with('#'))
        .find_map(|l| {
            l.trim_start_matches('#')
                .trim()
                .strip_prefix("@package")
                .map(|rest| rest.trim().to_string())
        })
}

/// Converts a parsed YAML value into a config node owned by `source`.
pub fn from_yaml(value: yaml::Value, source: &Arc<Source>) -> Node {
    let v = match value {
        yaml::Value::Null => Value::Null,
        yaml::Value::Bool(b) => Value::Bool(b),
        yaml::Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::Int(i)
            } else if let Some(u) = n.as_u64() {
                // Larger than i64: keep the magnitude as a float rather than wrapping.
                Value::Float(u as f64)
            } else {
                Value::Float(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        yaml::Value::String(s) => Value::Str(s),
        yaml::Value::Sequence(items) => {
            Value::List(items.into_iter().map(|i| from_yaml(i, source)).collect())
        }
        yaml::Value::Mapping(map) => {
            let mut out = IndexMap::new();
            for (k, v) in map {
                out.insert(key_to_string(k), from_yaml(v, source));
            }
            Value::Map(out)
        }
        yaml::Value::Tagged(tagged) => return from_yaml(tagged.value, source),
    };
    Node::new(v, source.clone())
}

fn key_to_string(key: yaml::Value) -> String {
    match key {
        yaml::Value::String(s) => s,
        yaml::Value::Bool(b) => b.to_string(),
        yaml::Value::Number(n) => n.to_string(),
        yaml::Value::Null => "null".into(),
        other => yaml::to_string(&other)
            .unwrap_or_default()
            .trim()
            .to_string(),
    }
}

/// Converts a node back into a YAML value (provenance is dropped).
pub fn to_yaml(node: &Node) -> yaml::Value {
    match &node.value {
        Value::Null => yaml::Value::Null,
        Value::Bool(b) => yaml::Value::Bool(*b),
        Value::Int(i) => yaml::Value::Number((*i).into()),
        Value::Float(x) => yaml::Value::Number((*x).into()),
        Value::Str(s) => yaml::Value::String(s.clone()),
        Value::List(items) => yaml::Value::Sequence(items.iter().map(to_yaml).collect()),
        Value::Map(map) => {
            let mut out = yaml::Mapping::new();
            for (k, v) in map {
                out.insert(yaml::Value::String(k.clone()), to_yaml(v));
            }
            yaml::Value::Mapping(out)
        }
    }
}

/// Prints a tree as a YAML document.
pub fn to_yaml_string(node: &Node) -> String {
    yaml::to_string(&to_yaml(node)).unwrap_or_else(|e| format!("# cannot print config: {e}\n"))
}

/// Parses a YAML scalar or flow collection written inline (used by overrides for `[..]`/`{..}`).
pub fn parse_inline(text: &str, source: &Arc<Source>) -> Result<Node, String> {
    let v: yaml::Value = yaml::from_str(text).map_err(|e| e.to_string())?;
    Ok(from_yaml(v, source))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn reads_package_header_and_values() {
        let text = "# @package _global_\n# comment\nlr: 1e-3\nn: 3\nname: x\nl: [1, 2.5]\n";
        let f = parse_config_text(text, Path::new("e.yaml")).unwrap();
        assert_eq!(f.package.as_deref(), Some("_global_"));
        assert_eq!(f.body.get("lr").unwrap().value, Value::Float(0.001));
        assert_eq!(f.body.get("n").unwrap().value, Value::Int(3));
        assert_eq!(f.body.get("l.1").unwrap().value, Value::Float(2.5));
        assert_eq!(
            *f.body.get("n").unwrap().source,
            Source::File {
                path: PathBuf::from("e.yaml"),
                line: None
            }
        );
    }

    #[test]
    fn syntax_error_names_file_and_line() {
        let err = parse_config_text("a: 1\nb: [1, 2\nc: 3\n", Path::new("bad.yaml")).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("bad.yaml"), "{msg}");
        assert!(msg.contains("line"), "{msg}");
    }

    #[test]
    fn a_scalar_document_is_rejected() {
        assert!(parse_config_text("42\n", Path::new("x.yaml")).is_err());
    }

    #[test]
    fn empty_file_is_an_empty_mapping() {
        let f = parse_config_text("# nothing\n", Path::new("x.yaml")).unwrap();
        assert!(f.body.as_map().unwrap().is_empty());
    }
}
