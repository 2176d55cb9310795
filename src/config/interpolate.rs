//! `${a.b}` interpolation after composition, plus the resolvers `${now:FORMAT}` and
//! `${oc.env:VAR[,default]}`. A whole-string reference keeps the target's type; a reference
//! inside a longer string is spliced in as text. Missing targets and cycles name the chain.

use super::error::ConfigError;
use super::node::{Node, Value};
use std::collections::HashMap;

/// Resolves every interpolation in `config`, returning the resolved tree.
pub fn resolve_interpolations(config: &Node) -> Result<Node, ConfigError> {
    let now = chrono::Local::now();
    let mut r = Resolver {
        root: config,
        now,
        done: HashMap::new(),
    };
    let mut out = config.clone();
    for path in config.leaf_paths() {
        if let Some(node) = config.get(&path) {
            if needs_resolution(node) {
                let resolved = r.resolve_path(&path, &mut Vec::new())?;
                *out.get_mut(&path).expect("path exists") = resolved;
            }
        }
    }
    Ok(out)
}

fn needs_resolution(node: &Node) -> bool {
    match &node.value {
        Value::Str(s) => s.contains("${"),
        Value::List(items) => items.iter().any(needs_resolution),
        Value::Map(m) => m.values().any(needs_resolution),
        _ => false,
    }
}

struct Resolver<'a> {
    root: &'a Node,
    now: chrono::DateTime<chrono::Local>,
    done: HashMap<String, Node>,
}

impl Resolver<'_> {
    fn resolve_path(&mut self, path: &str, chain: &mut Vec<String>) -> Result<Node, ConfigError> {
        if let Some(n) = self.done.get(path) {
            return Ok(n.clone());
        }
        if chain.iter().any(|p| p == path) {
            chain.push(path.to_string());
            return Err(ConfigError::Interpolation {
                key: chain[0].clone(),
                message: format!("interpolation cycle: {}", chain.join(" -> ")),
            });
        }
        let Some(node) = self.root.get(path) else {
            let via = if chain.is_empty() {
                String::new()
            } else {
                format!(" (via {})", chain.join(" -> "))
            };
            return Err(ConfigError::Interpolation {
                key: chain.first().cloned().unwrap_or_else(|| path.to_string()),
                message: format!("`${{{path}}}` refers to a key that does not exist{via}"),
            });
        };
        chain.push(path.to_string());
        let resolved = self.resolve_node(node, path, chain)?;
        chain.pop();
        self.done.insert(path.to_string(), resolved.clone());
        Ok(resolved)
    }

    fn resolve_node(
        &mut self,
        node: &Node,
        path: &str,
        chain: &mut Vec<String>,
    ) -> Result<Node, ConfigError> {
        match &node.value {
            Value::Str(s) if s.contains("${") => self.resolve_string(s, node, path, chain),
            Value::List(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    out.push(self.resolve_node(item, &format!("{path}.{i}"), chain)?);
                }
                Ok(Node::new(Value::List(out), node.source.clone()))
            }
            Value::Map(m) => {
                let mut out = m.clone();
                for (k, v) in m {
                    out.insert(
                        k.clone(),
                        self.resolve_node(v, &format!("{path}.{k}"), chain)?,
                    );
                }
                Ok(Node::new(Value::Map(out), node.source.clone()))
            }
            _ => Ok(node.clone()),
        }
    }

    fn resolve_string(
        &mut self,
        s: &str,
        node: &Node,
        path: &str,
        chain: &mut Vec<String>,
    ) -> Result<Node, ConfigError> {
        let pieces = split_interpolations(s).map_err(|m| ConfigError::Interpolation {
            key: path.to_string(),
            message: m,
        })?;
        if let [Piece::Expr(expr)] = pieces.as_slice() {
            let mut n = self.evaluate(expr, path, chain)?;
            // A whole-string reference keeps the target's type but the referring key's provenance.
            n.source = node.source.clone();
            return Ok(n);
        }
        let mut out = String::new();
        for piece in pieces {
            match piece {
                Piece::Text(t) => out.push_str(&t),
                Piece::Expr(expr) => {
                    let n = self.evaluate(&expr, path, chain)?;
                    match &n.value {
                        Value::Map(_) | Value::List(_) => {
                            return Err(ConfigError::Interpolation {
                                key: path.to_string(),
                                message: format!(
                                    "`${{{expr}}}` is a {} and cannot be spliced into a string",
                                    n.value.type_name()
                                ),
                            })
                        }
                        v => out.push_str(&v.to_inline()),
                    }
                }
            }
        }
        Ok(Node::new(Value::Str(out), node.source.clone()))
    }

    fn evaluate(
        &mut self,
        expr: &str,
        path: &str,
        chain: &mut Vec<String>,
    ) -> Result<Node, ConfigError> {
        let src = || std::sync::Arc::new(super::node::Source::Builtin("interpolation"));
        if let Some(fmt) = expr.strip_prefix("now:") {
            let mut text = String::new();
            use std::fmt::Write;
            write!(text, "{}", self.now.format(fmt)).map_err(|_| ConfigError::Interpolation {
                key: path.to_string(),
                message: format!("`${{now:{fmt}}}`: not a valid strftime format"),
            })?;
            return Ok(Node::new(Value::Str(text), src()));
        }
        if let Some(arg) = expr.strip_prefix("oc.env:") {
            let (var, default) = match arg.split_once(',') {
                Some((v, d)) => (v.trim(), Some(d.trim())),
                None => (arg.trim(), None),
            };
            return match (std::env::var(var), default) {
                (Ok(v), _) => Ok(Node::new(super::overrides::type_primitive(&v), src())),
                (Err(_), Some(d)) => Ok(Node::new(super::overrides::type_primitive(d), src())),
                (Err(_), None) => Err(ConfigError::Interpolation {
                    key: path.to_string(),
                    message: format!("environment variable `{var}` is not set (give a default: `${{oc.env:{var},DEFAULT}}`)"),
                }),
            };
        }
        if let Some((resolver, _)) = expr.split_once(':') {
            return Err(ConfigError::Interpolation {
                key: path.to_string(),
                message: format!("unknown resolver `{resolver}` (known: now, oc.env)"),
            });
        }
        self.resolve_path(expr.trim(), chain)
    }
}

#[derive(Debug, PartialEq)]
enum Piece {
    Text(String),
    Expr(String),
}

/// Splits `a-${x.y}-b` into text and expressions; `\${` is a literal `${`.
fn split_interpolations(s: &str) -> Result<Vec<Piece>, String> {
    let mut out = Vec::new();
    let mut text = String::new();
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '\\' && chars.get(i + 1) == Some(&'$') && chars.get(i + 2) == Some(&'{') {
            text.push_str("${");
            i += 3;
            continue;
        }
        if chars[i] == '$' && chars.get(i + 1) == Some(&'{') {
            let start = i + 2;
            let mut j = start;
            while j < chars.len() && chars[j] != '}' {
                j += 1;
            }
            if j == chars.len() {
                return Err(format!("unterminated `${{` in `{s}`"));
            }
            if !text.is_empty() {
                out.push(Piece::Text(std::mem::take(&mut text)));
            }
            let expr: String = chars[start..j].iter().collect();
            if expr.trim().is_empty() {
                return Err(format!("empty `${{}}` in `{s}`"));
            }
            out.push(Piece::Expr(expr));
            i = j + 1;
            continue;
        }
        text.push(chars[i]);
        i += 1;
    }
    if !text.is_empty() || out.is_empty() {
        out.push(Piece::Text(text));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::node::Source;
    use std::sync::Arc;

    fn tree(yaml: &str) -> Node {
        crate::config::yaml::parse_inline(yaml, &Arc::new(Source::Builtin("t"))).unwrap()
    }

    #[test]
    fn references_keep_types_and_splice_into_strings() {
        let t = tree("{a: {b: 3, c: x}, n: '${a.b}', s: '${a.c}-${a.b}', m: '${a}'}");
        let r = resolve_interpolations(&t).unwrap();
        assert_eq!(r.get("n").unwrap().value, Value::Int(3));
        assert_eq!(r.get("s").unwrap().value, Value::Str("x-3".into()));
        assert_eq!(r.get("m.b").unwrap().value, Value::Int(3));
    }

    #[test]
    fn chains_resolve() {
        let t = tree("{a: '${b}', b: '${c}', c: 1}");
        assert_eq!(
            resolve_interpolations(&t).unwrap().get("a").unwrap().value,
            Value::Int(1)
        );
    }

    #[test]
    fn cycles_name_the_chain() {
        let t = tree("{a: '${b}', b: '${a}'}");
        let msg = resolve_interpolations(&t).unwrap_err().to_string();
        assert!(msg.contains("a -> b -> a"), "{msg}");
    }

    #[test]
    fn missing_targets_name_the_key() {
        let t = tree("{name: '${task.nme}-x', task: {name: d}}");
        let msg = resolve_interpolations(&t).unwrap_err().to_string();
        assert!(msg.contains("task.nme") && msg.contains("name"), "{msg}");
    }

    #[test]
    fn now_and_env_resolvers() {
        let t = tree("{d: '${now:%Y}', e: '${oc.env:ADLAB_SURELY_UNSET_VAR,7}'}");
        let r = resolve_interpolations(&t).unwrap();
        assert_eq!(r.get("d").unwrap().value.to_inline().len(), 4);
        assert_eq!(r.get("e").unwrap().value, Value::Int(7));
    }

    #[test]
    fn escaped_dollar_is_literal() {
        let t = tree(r"{a: '\${b}'}");
        assert_eq!(
            resolve_interpolations(&t).unwrap().get("a").unwrap().value,
            Value::Str("${b}".into())
        );
    }
}
