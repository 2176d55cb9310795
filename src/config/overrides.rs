//! The command-line override grammar (Hydra's): `key=value`, `group=option`, `+key=value`,
//! `++key=value`, `~key[=value]`, typed values, and sweep values (`a,b`, `choice()`,
//! `range()`, `glob()`, and random-search distributions) parsed into a structure the sweep
//! engine consumes. Parsing knows nothing about the config tree.

use super::error::ConfigError;
use super::node::{Node, Source, Value};
use indexmap::IndexMap;
use std::fmt;
use std::sync::Arc;

/// What an override does to its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverrideKind {
    /// `key=value`: the key must exist.
    Change,
    /// `+key=value`: the key must not exist.
    Add,
    /// `++key=value`: add or replace.
    ForceAdd,
    /// `~key` or `~key=value`: delete (only if the value matches, when given).
    Delete,
}

/// One parsed override.
#[derive(Debug, Clone, PartialEq)]
pub struct Override {
    pub kind: OverrideKind,
    /// Dotted key or group path (`optimizer.lr`, `model`, `task/source`).
    pub key: String,
    /// `@package` suffix of a group override.
    pub package: Option<String>,
    pub value: Option<OverrideValue>,
    /// The override as the user wrote it, for provenance.
    pub text: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum OverrideValue {
    Single(Node),
    Sweep(Sweep),
}

/// A sweep over one key. Expansion into jobs is the sweep engine's business.
#[derive(Debug, Clone, PartialEq)]
pub enum Sweep {
    /// `a,b,c` or `choice(a, b, c)`.
    Choice(Vec<Node>),
    /// `range(start, stop[, step])`, stop exclusive, like Python's.
    Range { start: f64, stop: f64, step: f64 },
    /// `glob(pattern)` or `glob(include=[..], exclude=[..])` over a group's options.
    Glob {
        include: Vec<String>,
        exclude: Vec<String>,
    },
    /// A distribution for random search.
    Distribution(Distribution),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Distribution {
    Uniform {
        low: f64,
        high: f64,
    },
    LogUniform {
        low: f64,
        high: f64,
    },
    /// Integers in `[low, high]` inclusive.
    Int {
        low: i64,
        high: i64,
    },
}

impl Override {
    /// The single value, or an error telling the user to use a multirun.
    pub fn single_value(&self) -> Result<Option<&Node>, ConfigError> {
        match &self.value {
            None => Ok(None),
            Some(OverrideValue::Single(n)) => Ok(Some(n)),
            Some(OverrideValue::Sweep(_)) => Err(ConfigError::SweepOutsideMultirun {
                text: self.text.clone(),
            }),
        }
    }

    pub fn is_sweep(&self) -> bool {
        matches!(self.value, Some(OverrideValue::Sweep(_)))
    }

    /// The same override with one concrete value (used when a sweep expands into jobs).
    pub fn with_value(&self, value: Node) -> Override {
        let prefix = match self.kind {
            OverrideKind::Change => "",
            OverrideKind::Add => "+",
            OverrideKind::ForceAdd => "++",
            OverrideKind::Delete => "~",
        };
        let pkg = self
            .package
            .as_ref()
            .map(|p| format!("@{p}"))
            .unwrap_or_default();
        let text = format!("{prefix}{}{pkg}={}", self.key, render_value(&value.value));
        let source = Arc::new(Source::Override(text.clone()));
        let mut value = value;
        value.set_source_deep(&source);
        Override {
            kind: self.kind,
            key: self.key.clone(),
            package: self.package.clone(),
            value: Some(OverrideValue::Single(value)),
            text,
        }
    }
}

impl fmt::Display for Override {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Parses one override as written on the command line.
pub fn parse_override(text: &str) -> Result<Override, ConfigError> {
    let bad = |message: String| ConfigError::BadOverride {
        text: text.to_string(),
        message,
    };
    let (kind, rest) = if let Some(r) = text.strip_prefix("++") {
        (OverrideKind::ForceAdd, r)
    } else if let Some(r) = text.strip_prefix('+') {
        (OverrideKind::Add, r)
    } else if let Some(r) = text.strip_prefix('~') {
        (OverrideKind::Delete, r)
    } else {
        (OverrideKind::Change, text)
    };
    let (key_part, value_part) = match rest.split_once('=') {
        Some((k, v)) => (k, Some(v)),
        None => (rest, None),
    };
    if value_part.is_none() && kind != OverrideKind::Delete {
        return Err(bad(
            "expected `key=value` (or `~key` to delete a key)".to_string()
        ));
    }
    let (key, package) = match key_part.split_once('@') {
        Some((k, p)) => (k.trim(), Some(p.trim().to_string())),
        None => (key_part.trim(), None),
    };
    if key.is_empty() {
        return Err(bad("the key is empty".into()));
    }
    if let Some(c) = key
        .chars()
        .find(|c| !(c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '/')))
    {
        return Err(bad(format!(
            "the key `{key}` contains `{c}`; keys are letters, digits, `_`, `-`, `.` and `/`"
        )));
    }
    if key.split(['.', '/']).any(str::is_empty) {
        return Err(bad(format!("the key `{key}` has an empty segment")));
    }
    let source = Arc::new(Source::Override(text.to_string()));
    let value = match value_part {
        None => None,
        Some(v) => Some(parse_value(v, &source).map_err(bad)?),
    };
    Ok(Override {
        kind,
        key: key.to_string(),
        package,
        value,
        text: text.to_string(),
    })
}

/// Parses the right-hand side of an override: a single value or a sweep.
pub fn parse_value(text: &str, source: &Arc<Source>) -> Result<OverrideValue, String> {
    let mut p = Parser {
        chars: text.chars().collect(),
        pos: 0,
        source: source.clone(),
    };
    p.skip_ws();
    if p.at_end() {
        return Ok(OverrideValue::Single(Node::new(
            Value::Str(String::new()),
            source.clone(),
        )));
    }
    if let Some(sweep) = p.try_function()? {
        p.skip_ws();
        if !p.at_end() {
            return Err(format!(
                "unexpected `{}` after the sweep function",
                p.rest()
            ));
        }
        return Ok(OverrideValue::Sweep(sweep));
    }
    let first = p.element(Context::TopLevel)?;
    p.skip_ws();
    if p.at_end() {
        return Ok(OverrideValue::Single(first));
    }
    let mut items = vec![first];
    while p.eat(',') {
        items.push(p.element(Context::TopLevel)?);
        p.skip_ws();
    }
    if !p.at_end() {
        return Err(format!("unexpected `{}`", p.rest()));
    }
    Ok(OverrideValue::Sweep(Sweep::Choice(items)))
}

/// Where a primitive is being read: decides which characters end it.
#[derive(Clone, Copy, PartialEq)]
enum Context {
    TopLevel,
    InList,
    DictKey,
    DictValue,
}

struct Parser {
    chars: Vec<char>,
    pos: usize,
    source: Arc<Source>,
}

impl Parser {
    fn at_end(&self) -> bool {
        self.pos >= self.chars.len()
    }
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }
    fn rest(&self) -> String {
        self.chars[self.pos..].iter().collect()
    }
    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }
    fn eat(&mut self, c: char) -> bool {
        self.skip_ws();
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }
    fn expect(&mut self, c: char) -> Result<(), String> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(match self.peek() {
                Some(found) => format!("expected `{c}`, found `{found}`"),
                None => format!("expected `{c}` before the end"),
            })
        }
    }
    fn node(&self, value: Value) -> Node {
        Node::new(value, self.source.clone())
    }

    /// `name(args)` for the sweep functions; `None` (position unchanged) if not a call.
    fn try_function(&mut self) -> Result<Option<Sweep>, String> {
        let start = self.pos;
        let mut name = String::new();
        while let Some(c) = self.peek() {
            if c.is_ascii_alphanumeric() || c == '_' {
                name.push(c);
                self.pos += 1;
            } else {
                break;
            }
        }
        if name.is_empty() || self.peek() != Some('(') {
            self.pos = start;
            return Ok(None);
        }
        self.pos += 1;
        let (positional, named) = self.arguments()?;
        let sweep = build_sweep(&name, positional, named)?;
        Ok(Some(sweep))
    }

    /// Call arguments up to the closing `)`: positional values and `name=value` pairs.
    #[allow(clippy::type_complexity)]
    fn arguments(&mut self) -> Result<(Vec<Node>, IndexMap<String, Node>), String> {
        let mut positional = Vec::new();
        let mut named = IndexMap::new();
        self.skip_ws();
        if self.eat(')') {
            return Ok((positional, named));
        }
        loop {
            self.skip_ws();
            let save = self.pos;
            let mut ident = String::new();
            while let Some(c) = self.peek() {
                if c.is_ascii_alphanumeric() || c == '_' {
                    ident.push(c);
                    self.pos += 1;
                } else {
                    break;
                }
            }
            self.skip_ws();
            if !ident.is_empty() && self.peek() == Some('=') {
                self.pos += 1;
                let v = self.element(Context::InList)?;
                named.insert(ident, v);
            } else {
                self.pos = save;
                positional.push(self.element(Context::InList)?);
            }
            if self.eat(')') {
                return Ok((positional, named));
            }
            self.expect(',')?;
        }
    }

    fn element(&mut self, ctx: Context) -> Result<Node, String> {
        self.skip_ws();
        match self.peek() {
            Some('[') => {
                self.pos += 1;
                let mut items = Vec::new();
                if self.eat(']') {
                    return Ok(self.node(Value::List(items)));
                }
                loop {
                    items.push(self.element(Context::InList)?);
                    if self.eat(']') {
                        return Ok(self.node(Value::List(items)));
                    }
                    self.expect(',')?;
                }
            }
            Some('{') => {
                self.pos += 1;
                let mut map = IndexMap::new();
                if self.eat('}') {
                    return Ok(self.node(Value::Map(map)));
                }
                loop {
                    let key = self.element(Context::DictKey)?;
                    let key = match key.value {
                        Value::Str(s) => s,
                        other => other.to_inline(),
                    };
                    self.expect(':')?;
                    let v = self.element(Context::DictValue)?;
                    map.insert(key, v);
                    if self.eat('}') {
                        return Ok(self.node(Value::Map(map)));
                    }
                    self.expect(',')?;
                }
            }
            Some(q @ ('\'' | '"')) => {
                self.pos += 1;
                let mut s = String::new();
                loop {
                    match self.peek() {
                        None => return Err(format!("unterminated string (missing closing {q})")),
                        // Hydra: inside quotes only backslashes before a quote escape
                        // (`\'` is a quote, `\\'` a backslash then the closing quote);
                        // any other backslash is literal (`'C:\data'`).
                        Some('\\') => {
                            let run = self.chars[self.pos..]
                                .iter()
                                .take_while(|&&c| c == '\\')
                                .count();
                            self.pos += run;
                            if self.peek() == Some(q) {
                                s.extend(std::iter::repeat_n('\\', run / 2));
                                if run % 2 == 1 {
                                    s.push(q);
                                    self.pos += 1;
                                }
                            } else {
                                s.extend(std::iter::repeat_n('\\', run));
                            }
                        }
                        Some(c) if c == q => {
                            self.pos += 1;
                            break;
                        }
                        Some(c) => {
                            s.push(c);
                            self.pos += 1;
                        }
                    }
                }
                Ok(self.node(Value::Str(s)))
            }
            _ => self.primitive(ctx),
        }
    }

    /// An unquoted value, typed the YAML way (int, float, bool, null, else string).
    fn primitive(&mut self, ctx: Context) -> Result<Node, String> {
        let mut raw = String::new();
        let mut escaped = false;
        while let Some(c) = self.peek() {
            // `${...}` interpolations may contain any delimiter.
            if c == '$' && self.chars.get(self.pos + 1) == Some(&'{') {
                let mut depth = 0;
                while let Some(c) = self.peek() {
                    raw.push(c);
                    self.pos += 1;
                    match c {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                if depth != 0 {
                    return Err("unterminated `${...}` interpolation".into());
                }
                continue;
            }
            let stop = match ctx {
                Context::TopLevel => matches!(c, ',' | '[' | ']' | '{' | '}' | '\'' | '"'),
                Context::InList => matches!(c, ',' | '[' | ']' | '{' | '}' | '(' | ')'),
                Context::DictKey => matches!(c, ':' | ',' | '[' | ']' | '{' | '}'),
                Context::DictValue => matches!(c, ',' | '[' | ']' | '{' | '}'),
            };
            if stop {
                break;
            }
            // Hydra: outside quotes a backslash escapes the next special character
            // (`a\,b` is the string `a,b`).
            if c == '\\' {
                if let Some(&next) = self.chars.get(self.pos + 1) {
                    if "\\,[]{}()'\":= ".contains(next) {
                        raw.push(next);
                        self.pos += 2;
                        escaped = true;
                        continue;
                    }
                }
            }
            raw.push(c);
            self.pos += 1;
        }
        let raw = if escaped { raw.as_str() } else { raw.trim() };
        if raw.is_empty() {
            return Err(match self.peek() {
                Some(c) => format!("expected a value, found `{c}`"),
                None => "expected a value".into(),
            });
        }
        Ok(self.node(if ctx == Context::DictKey || escaped {
            Value::Str(raw.to_string())
        } else {
            type_primitive(raw)
        }))
    }
}

/// Types an unquoted scalar: `null`, bools, ints, floats (incl. `1e-3`, `inf`, `nan`), strings.
pub fn type_primitive(raw: &str) -> Value {
    match raw.to_ascii_lowercase().as_str() {
        "null" | "~" => return Value::Null,
        "true" => return Value::Bool(true),
        "false" => return Value::Bool(false),
        "inf" | "+inf" | ".inf" => return Value::Float(f64::INFINITY),
        "-inf" | "-.inf" => return Value::Float(f64::NEG_INFINITY),
        "nan" | ".nan" => return Value::Float(f64::NAN),
        _ => {}
    }
    let digits = raw.trim_start_matches(['+', '-']);
    if !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit()) {
        if let Ok(i) = raw.parse::<i64>() {
            return Value::Int(i);
        }
    }
    let looks_numeric = raw
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'))
        && raw.chars().any(|c| c.is_ascii_digit());
    if looks_numeric {
        if let Ok(x) = raw.parse::<f64>() {
            return Value::Float(x);
        }
    }
    Value::Str(raw.to_string())
}

fn number(node: &Node, what: &str) -> Result<f64, String> {
    match node.value {
        Value::Int(i) => Ok(i as f64),
        Value::Float(x) => Ok(x),
        _ => Err(format!(
            "{what} must be a number, got `{}`",
            node.value.to_inline()
        )),
    }
}

fn integer(node: &Node, what: &str) -> Result<i64, String> {
    match node.value {
        Value::Int(i) => Ok(i),
        _ => Err(format!(
            "{what} must be an integer, got `{}`",
            node.value.to_inline()
        )),
    }
}

fn strings(node: &Node, what: &str) -> Result<Vec<String>, String> {
    match &node.value {
        Value::Str(s) => Ok(vec![s.clone()]),
        Value::List(items) => items
            .iter()
            .map(|i| match &i.value {
                Value::Str(s) => Ok(s.clone()),
                other => Err(format!(
                    "{what} patterns must be strings, got `{}`",
                    other.to_inline()
                )),
            })
            .collect(),
        other => Err(format!(
            "{what} must be a pattern or a list of patterns, got `{}`",
            other.to_inline()
        )),
    }
}

/// Builds a sweep from a function call, checking its arguments.
fn build_sweep(
    name: &str,
    positional: Vec<Node>,
    named: IndexMap<String, Node>,
) -> Result<Sweep, String> {
    // Positional and named arguments, in the function's parameter order.
    let args = |params: &[&str]| -> Result<Vec<Option<Node>>, String> {
        if positional.len() > params.len() {
            return Err(format!("{name}() takes at most {} arguments", params.len()));
        }
        let mut out: Vec<Option<Node>> = params.iter().map(|_| None).collect();
        for (i, v) in positional.iter().enumerate() {
            out[i] = Some(v.clone());
        }
        for (k, v) in &named {
            let i = params.iter().position(|p| p == k).ok_or_else(|| {
                format!(
                    "{name}() has no argument `{k}` (it takes {})",
                    params.join(", ")
                )
            })?;
            out[i] = Some(v.clone());
        }
        Ok(out)
    };
    let required = |v: &Option<Node>, what: &str| -> Result<Node, String> {
        v.clone().ok_or_else(|| format!("{name}() needs `{what}`"))
    };
    match name {
        "choice" => {
            if !named.is_empty() {
                return Err("choice() takes only values".into());
            }
            if positional.is_empty() {
                return Err("choice() needs at least one value".into());
            }
            Ok(Sweep::Choice(positional))
        }
        "range" => {
            let a = args(&["start", "stop", "step"])?;
            let (start, stop) = match (&a[0], &a[1]) {
                (Some(s), None) if named.is_empty() => (0.0, number(s, "range stop")?),
                _ => (
                    number(&required(&a[0], "start")?, "range start")?,
                    number(&required(&a[1], "stop")?, "range stop")?,
                ),
            };
            let step = match &a[2] {
                Some(s) => number(s, "range step")?,
                None => 1.0,
            };
            if step == 0.0 {
                return Err("range() step must not be 0".into());
            }
            Ok(Sweep::Range { start, stop, step })
        }
        "glob" => {
            let a = args(&["include", "exclude"])?;
            let include = strings(&required(&a[0], "include")?, "glob include")?;
            let exclude = match &a[1] {
                Some(e) => strings(e, "glob exclude")?,
                None => Vec::new(),
            };
            Ok(Sweep::Glob { include, exclude })
        }
        "uniform" | "loguniform" => {
            let a = args(&["low", "high"])?;
            let low = number(&required(&a[0], "low")?, "low")?;
            let high = number(&required(&a[1], "high")?, "high")?;
            if low >= high {
                return Err(format!("{name}() needs low < high, got {low} and {high}"));
            }
            if name == "loguniform" {
                if low <= 0.0 {
                    return Err("loguniform() needs low > 0".into());
                }
                Ok(Sweep::Distribution(Distribution::LogUniform { low, high }))
            } else {
                Ok(Sweep::Distribution(Distribution::Uniform { low, high }))
            }
        }
        "randint" | "int" => {
            let a = args(&["low", "high"])?;
            let low = integer(&required(&a[0], "low")?, "low")?;
            let high = integer(&required(&a[1], "high")?, "high")?;
            if low > high {
                return Err(format!("{name}() needs low <= high, got {low} and {high}"));
            }
            Ok(Sweep::Distribution(Distribution::Int { low, high }))
        }
        other => Err(format!(
            "unknown function `{other}()`; sweep functions are choice, range, glob, uniform, loguniform, int"
        )),
    }
}

/// `s` in single quotes, escaped the way the parser reads quotes: a quote becomes `\'`, and
/// a run of backslashes is doubled only where a quote follows it (inside or closing).
fn quote(s: &str) -> String {
    let mut out = String::from("'");
    let mut pending = 0usize;
    for c in s.chars() {
        match c {
            '\\' => pending += 1,
            '\'' => {
                out.extend(std::iter::repeat_n('\\', 2 * pending + 1));
                out.push('\'');
                pending = 0;
            }
            other => {
                out.extend(std::iter::repeat_n('\\', pending));
                out.push(other);
                pending = 0;
            }
        }
    }
    out.extend(std::iter::repeat_n('\\', 2 * pending));
    out.push('\'');
    out
}

/// Renders a value so that [`parse_value`] reads it back as the same value.
pub fn render_value(value: &Value) -> String {
    match value {
        Value::Str(s) => {
            let plain = matches!(type_primitive(s), Value::Str(_))
                && !s.is_empty()
                && s.trim() == s
                && !s.contains([',', '[', ']', '{', '}', '(', ')', '\'', '"', ':', '\\', '='])
                && !s.contains("${");
            if plain {
                s.clone()
            } else {
                quote(s)
            }
        }
        Value::List(items) => {
            let inner: Vec<String> = items.iter().map(|n| render_value(&n.value)).collect();
            format!("[{}]", inner.join(","))
        }
        Value::Map(map) => {
            let inner: Vec<String> = map
                .iter()
                .map(|(k, n)| {
                    format!(
                        "{}:{}",
                        render_value(&Value::Str(k.clone())),
                        render_value(&n.value)
                    )
                })
                .collect();
            format!("{{{}}}", inner.join(","))
        }
        Value::Float(x) => {
            if x.is_nan() {
                "nan".into()
            } else if x.is_infinite() {
                if *x > 0.0 { "inf" } else { "-inf" }.into()
            } else {
                let s = format!("{x:?}");
                if s.contains(['.', 'e', 'E']) {
                    s
                } else {
                    format!("{s}.0")
                }
            }
        }
        other => other.to_inline(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn single(text: &str) -> Value {
        match parse_override(text).unwrap().value.unwrap() {
            OverrideValue::Single(n) => n.value,
            OverrideValue::Sweep(s) => panic!("unexpected sweep {s:?}"),
        }
    }

    fn sweep(text: &str) -> Sweep {
        match parse_override(text).unwrap().value.unwrap() {
            OverrideValue::Sweep(s) => s,
            OverrideValue::Single(n) => panic!("unexpected single {n:?}"),
        }
    }

    #[test]
    fn prefixes_set_the_kind() {
        assert_eq!(parse_override("a=1").unwrap().kind, OverrideKind::Change);
        assert_eq!(parse_override("+a=1").unwrap().kind, OverrideKind::Add);
        assert_eq!(
            parse_override("++a=1").unwrap().kind,
            OverrideKind::ForceAdd
        );
        let del = parse_override("~eval").unwrap();
        assert_eq!(del.kind, OverrideKind::Delete);
        assert_eq!(del.key, "eval");
        assert!(del.value.is_none());
    }

    #[test]
    fn values_are_typed() {
        assert_eq!(single("a=1"), Value::Int(1));
        assert_eq!(single("a=-3"), Value::Int(-3));
        assert_eq!(single("a=1e-3"), Value::Float(0.001));
        assert_eq!(single("a=1.5"), Value::Float(1.5));
        assert_eq!(single("a=.5"), Value::Float(0.5));
        assert_eq!(single("a=true"), Value::Bool(true));
        assert_eq!(single("a=False"), Value::Bool(false));
        assert_eq!(single("a=null"), Value::Null);
        assert_eq!(single("a=abc"), Value::Str("abc".into()));
        assert_eq!(single("a='1'"), Value::Str("1".into()));
        assert_eq!(single("a=\"x, y\""), Value::Str("x, y".into()));
        assert_eq!(single("a="), Value::Str(String::new()));
        assert_eq!(single("device=cuda:0"), Value::Str("cuda:0".into()));
        assert_eq!(single("a=1.2.3"), Value::Str("1.2.3".into()));
        assert_eq!(
            single("a=${model.name}-x"),
            Value::Str("${model.name}-x".into())
        );
    }

    #[test]
    fn lists_and_dicts_nest() {
        let v = single("a=[1, 'b', [2.0, null], {x: 1, y: [z]}]");
        assert_eq!(v.to_inline(), "[1, b, [2.0, null], {x: 1, y: [z]}]");
        let d = single("a={lr: 1e-3, betas: [0.9, 0.95]}");
        match d {
            Value::Map(m) => {
                assert_eq!(m["lr"].value, Value::Float(0.001));
                assert_eq!(m["betas"].value.to_inline(), "[0.9, 0.95]");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn sweeps_are_recognised() {
        match sweep("lr=1e-3,1e-4") {
            Sweep::Choice(v) => assert_eq!(v.len(), 2),
            other => panic!("{other:?}"),
        }
        match sweep("lr=choice(0.1, 0.01)") {
            Sweep::Choice(v) => assert_eq!(v[1].value, Value::Float(0.01)),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            sweep("seed=range(3)"),
            Sweep::Range {
                start: 0.0,
                stop: 3.0,
                step: 1.0
            }
        );
        assert_eq!(
            sweep("seed=range(1, 10, step=2)"),
            Sweep::Range {
                start: 1.0,
                stop: 10.0,
                step: 2.0
            }
        );
        assert_eq!(
            sweep("task=glob(dark*, exclude=[darkroom_hard])"),
            Sweep::Glob {
                include: vec!["dark*".into()],
                exclude: vec!["darkroom_hard".into()]
            }
        );
        assert_eq!(
            sweep("lr=loguniform(1e-5, 1e-2)"),
            Sweep::Distribution(Distribution::LogUniform {
                low: 1e-5,
                high: 1e-2
            })
        );
        assert!(parse_override("a=[1,2],[3]").unwrap().is_sweep());
    }

    #[test]
    fn single_value_refuses_sweeps_with_advice() {
        let o = parse_override("optimizer.lr=1e-3,1e-4").unwrap();
        let msg = o.single_value().unwrap_err().to_string();
        assert!(msg.contains("-m") && msg.contains("adlab sweep"), "{msg}");
    }

    #[test]
    fn malformed_overrides_are_errors() {
        for bad in [
            "a",
            "=1",
            "a=[1,2",
            "a={x 1}",
            "a b=1",
            "a=foo(1)",
            "a='x",
            "a..b=1",
            "a=range(1,2,0)",
        ] {
            assert!(parse_override(bad).is_err(), "{bad} should fail");
        }
    }

    #[test]
    fn package_suffix_is_split_off() {
        let o = parse_override("model@extra=causal_lm").unwrap();
        assert_eq!(o.key, "model");
        assert_eq!(o.package.as_deref(), Some("extra"));
    }

    fn arb_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::Int),
            (-1e9f64..1e9).prop_map(Value::Float),
            "[a-zA-Z0-9 _.:,'=-]{0,12}".prop_map(Value::Str),
        ];
        leaf.prop_recursive(3, 16, 4, |inner| {
            let src = Arc::new(Source::Builtin("prop"));
            let src2 = src.clone();
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(move |v| Value::List(
                    v.into_iter().map(|x| Node::new(x, src.clone())).collect()
                )),
                prop::collection::vec(("[a-z][a-z0-9_]{0,5}", inner), 0..4).prop_map(move |kv| {
                    Value::Map(
                        kv.into_iter()
                            .map(|(k, v)| (k, Node::new(v, src2.clone())))
                            .collect(),
                    )
                }),
            ]
        })
    }

    #[test]
    fn backslashes_follow_hydra_quoting() {
        // Inside quotes only a backslash before a quote escapes.
        assert_eq!(single(r"k='C:\data'"), Value::Str(r"C:\data".into()));
        assert_eq!(single(r"k='it\'s'"), Value::Str("it's".into()));
        assert_eq!(single(r"k='end\\'"), Value::Str(r"end\".into()));
        assert_eq!(single(r#"k="a\"b""#), Value::Str(r#"a"b"#.into()));
        // Outside quotes a backslash escapes a special character.
        assert_eq!(single(r"k=a\,b"), Value::Str("a,b".into()));
        assert_eq!(single(r"k=a\ b"), Value::Str("a b".into()));
        for s in [r"C:\data", r"x\", r"a\'b", r"\\'", "it's"] {
            let v = Value::Str(s.into());
            assert_eq!(single(&format!("k={}", render_value(&v))), v, "{s}");
        }
    }

    proptest! {
        #[test]
        fn rendered_values_parse_back(v in arb_value()) {
            let text = format!("k={}", render_value(&v));
            let parsed = parse_override(&text);
            prop_assert!(parsed.is_ok(), "{} failed: {:?}", text, parsed);
            match parsed.unwrap().value.unwrap() {
                OverrideValue::Single(n) => prop_assert_eq!(n.value, v),
                OverrideValue::Sweep(s) => prop_assert!(false, "{} parsed as sweep {:?}", text, s),
            }
        }

        #[test]
        fn comma_lists_parse_as_choices(vs in prop::collection::vec(any::<i64>(), 2..6)) {
            let text = format!("k={}", vs.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(","));
            match parse_override(&text).unwrap().value.unwrap() {
                OverrideValue::Sweep(Sweep::Choice(items)) => {
                    let got: Vec<Value> = items.into_iter().map(|n| n.value).collect();
                    let want: Vec<Value> = vs.into_iter().map(Value::Int).collect();
                    prop_assert_eq!(got, want);
                }
                other => prop_assert!(false, "{:?}", other),
            }
        }

        #[test]
        fn parser_never_panics(s in "\\PC{0,30}") {
            let _ = parse_override(&s);
        }
    }
}
