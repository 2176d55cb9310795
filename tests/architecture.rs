//! The architecture invariants of ARCHITECTURE.md, checked on the source (a "tidy" test, as in
//! rust-analyzer): every `crate::`/`super::`/`self::` path under `src/` is read, and the test
//! fails on
//! * an import that points up the stack of modules ([`LAYERS`]) or sideways within a layer;
//! * an import that crosses a stated boundary ([`BOUNDARIES`]);
//! * a loop between the files of one module (`a.rs` uses `b.rs` and `b.rs` uses `a.rs`);
//! * a module of `src/lib.rs` that the stack does not place.
//!
//! Test code (`#[cfg(test)]` modules and files) may reach further to build fixtures and is not
//! checked. The reader is a small path scanner (comments and literals stripped, `use` trees
//! expanded), not a Rust parser: it sees every path, in `use` lines and inline.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The stack, bottom first. A module may import modules of lower layers only; modules of one
/// layer never import one another.
const LAYERS: &[&[&str]] = &[
    &["fsutil", "seed", "interrupt", "device"],
    &["logging", "tensorboard"],
    &["config"],
    &["runs"],
    &["launch"],
    &["tokenizer"],
    &["tasks"],
    &["models"],
    &["optim"],
    &["rlhf"],
    &["formats"],
    &["train", "eval"],
    &["pictures"],
    &["schema_checks"],
    &["schema"],
    &["pipeline"],
    &["sweep", "show"],
    &["report"],
    &["cli"],
    &["app"],
];

/// Boundaries beyond the stack: `(module, modules it must not import, why)`.
const BOUNDARIES: &[(&str, &[&str], &str)] = &[
    (
        "report",
        &[
            "pipeline", "train", "eval", "models", "optim", "formats", "rlhf", "tasks", "launch",
        ],
        "a report only reads run directories and sweep records",
    ),
    (
        "sweep",
        &[
            "train", "eval", "models", "optim", "formats", "rlhf", "tasks",
        ],
        "a sweep knows configs, jobs and launchers, never a stage of a run",
    ),
    (
        "sweep",
        &["launch::local", "launch::slurm"],
        "a sweep sees launchers only through the `Launcher` trait",
    ),
    (
        "config",
        &["schema", "tasks", "models", "formats", "train", "eval"],
        "composition knows nothing of what keys mean",
    ),
];

/// One source file: its module path (`["eval", "lm_policy"]`) and its non-test code.
struct SourceFile {
    rel: String,
    module: Vec<String>,
    code: String,
}

#[test]
fn imports_point_down_the_stack() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    read_tree(&root, &root, &mut files);
    assert!(
        files.len() > 50,
        "read only {} files under src/",
        files.len()
    );
    let lib = std::fs::read_to_string(root.join("lib.rs")).unwrap();
    let violations = check(&files, &lib);
    assert!(
        violations.is_empty(),
        "{} architecture violation(s) (see ARCHITECTURE.md):\n  {}",
        violations.len(),
        violations.join("\n  ")
    );
}

#[test]
fn an_upward_import_is_caught() {
    let files = [
        ("tasks/mod.rs", "pub mod cache;\n"),
        ("tasks/cache.rs", "use crate::train::trainer::train;\n"),
        (
            "train/mod.rs",
            "pub mod trainer;\nuse crate::tasks::cache;\n",
        ),
        ("train/trainer.rs", "pub fn train() {}\n"),
    ];
    let v = check_texts(&files, "pub mod tasks;\npub mod train;\n");
    assert_eq!(v.len(), 1, "{v:?}");
    assert!(
        v[0].contains("tasks/cache.rs") && v[0].contains("crate::train"),
        "{v:?}"
    );
}

#[test]
fn a_sideways_import_a_boundary_and_a_loop_are_caught() {
    let files = [
        ("eval/mod.rs", "pub mod a;\npub mod b;\n"),
        ("eval/a.rs", "use super::b::B;\nuse crate::train::Learner;\npub struct A;\n"),
        (
            "eval/b.rs",
            "pub struct B;\nfn f() -> super::a::A { todo!() }\n#[cfg(test)]\nmod tests {\n use crate::app::x;\n}\n",
        ),
        ("train/mod.rs", "pub struct Learner;\n"),
        ("report/mod.rs", "use crate::{fsutil, models::M};\n"),
    ];
    let v = check_texts(
        &files,
        "pub mod eval;\npub mod train;\npub mod report;\npub mod nowhere;\n",
    );
    let all = v.join("\n");
    assert!(
        all.contains("eval/a.rs") && all.contains("crate::train"),
        "{all}"
    );
    assert!(
        all.contains("report/mod.rs") && all.contains("only reads run"),
        "{all}"
    );
    assert!(all.contains("eval/a.rs -> eval/b.rs -> eval/a.rs"), "{all}");
    assert!(all.contains("`nowhere`"), "{all}");
    assert!(
        !all.contains("crate::app"),
        "test code is not checked: {all}"
    );
    assert_eq!(v.len(), 4, "{all}");
}

fn check_texts(files: &[(&str, &str)], lib: &str) -> Vec<String> {
    let parsed: Vec<SourceFile> = files
        .iter()
        .map(|(rel, text)| source_file(rel, text))
        .collect();
    let test_only = test_only_modules(files.iter().map(|(r, t)| (module_of(r), *t)));
    let kept: Vec<SourceFile> = parsed
        .into_iter()
        .filter(|f| !is_under(&f.module, &test_only))
        .collect();
    check(&kept, lib)
}

fn read_tree(root: &Path, dir: &Path, out: &mut Vec<SourceFile>) {
    let mut raw = Vec::new();
    collect(root, dir, &mut raw);
    let test_only = test_only_modules(raw.iter().map(|(r, t)| (module_of(r), t.as_str())));
    for (rel, text) in &raw {
        let f = source_file(rel, text);
        if !is_under(&f.module, &test_only) && !f.module.is_empty() {
            out.push(f);
        }
    }
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<(String, String)>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            collect(root, &path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            if rel != "lib.rs" && rel != "main.rs" {
                out.push((rel, std::fs::read_to_string(&path).unwrap()));
            }
        }
    }
}

/// `eval/lm_policy.rs` → `["eval", "lm_policy"]`; `eval/mod.rs` → `["eval"]`.
fn module_of(rel: &str) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .trim_end_matches(".rs")
        .split('/')
        .map(String::from)
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts
}

fn is_under(module: &[String], roots: &BTreeSet<Vec<String>>) -> bool {
    (1..=module.len()).any(|n| roots.contains(&module[..n]))
}

/// Modules declared `#[cfg(test)] mod name;`: whole files of test code.
fn test_only_modules<'a>(
    files: impl Iterator<Item = (Vec<String>, &'a str)>,
) -> BTreeSet<Vec<String>> {
    let mut out = BTreeSet::new();
    for (module, text) in files {
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        for w in lines.windows(2) {
            if w[0] == "#[cfg(test)]" {
                if let Some(name) = declared_module(w[1]) {
                    let mut m = module.clone();
                    m.push(name);
                    out.insert(m);
                }
            }
        }
    }
    out
}

/// `pub(crate) mod name;` → `name` (a declaration, not an inline module).
fn declared_module(line: &str) -> Option<String> {
    let rest = line
        .strip_prefix("pub(crate) ")
        .or_else(|| line.strip_prefix("pub "))
        .unwrap_or(line);
    let name = rest.strip_prefix("mod ")?.strip_suffix(';')?;
    Some(name.trim().to_string())
}

fn source_file(rel: &str, text: &str) -> SourceFile {
    let code = strip(text);
    // Test modules sit at the end of a file, by convention and by clippy's
    // `items_after_test_module`: cut there.
    let lines: Vec<&str> = code.lines().collect();
    let mut cut = lines.len();
    for (i, l) in lines.iter().enumerate() {
        if l.trim() == "#[cfg(test)]" {
            let next = lines[i + 1..].iter().find(|l| !l.trim().is_empty());
            if next.is_some_and(|n| n.contains("mod ") && n.trim_end().ends_with('{')) {
                cut = i;
                break;
            }
        }
    }
    SourceFile {
        rel: rel.to_string(),
        module: module_of(rel),
        code: lines[..cut].join("\n"),
    }
}

/// The code without comments, string and char literals (kept as empty literals).
fn strip(text: &str) -> String {
    let c: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < c.len() {
        if c[i] == '/' && c.get(i + 1) == Some(&'/') {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if c[i] == '/' && c.get(i + 1) == Some(&'*') {
            i += 2;
            while i + 1 < c.len() && !(c[i] == '*' && c[i + 1] == '/') {
                i += 1;
            }
            i += 2;
        } else if c[i] == 'r'
            && matches!(c.get(i + 1), Some('"') | Some('#'))
            && !ident_before(&c, i)
        {
            let mut j = i + 1;
            let mut hashes = 0;
            while c.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if c.get(j) != Some(&'"') {
                out.push(c[i]);
                i += 1;
                continue;
            }
            j += 1;
            loop {
                if j >= c.len() {
                    break;
                }
                if c[j] == '"' && (0..hashes).all(|k| c.get(j + 1 + k) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            out.push_str("\"\"");
            i = j;
        } else if c[i] == '"' {
            i += 1;
            while i < c.len() && c[i] != '"' {
                i += if c[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if c[i] == '\'' && c.get(i + 1) == Some(&'\\') {
            // '\n', '\'', '\\', '\u{..}'
            let mut j = i + 3;
            while j < c.len() && c[j] != '\'' {
                j += 1;
            }
            out.push_str("' '");
            i = j + 1;
        } else if c[i] == '\'' && c.get(i + 2) == Some(&'\'') {
            out.push_str("' '");
            i += 3;
        } else {
            out.push(c[i]);
            i += 1;
        }
    }
    out
}

fn ident_before(c: &[char], i: usize) -> bool {
    i > 0 && (c[i - 1].is_alphanumeric() || c[i - 1] == '_')
}

/// Every path the code names from `crate`, `super`, `self` or one of `children` (its own
/// submodules), with `use` trees expanded: `use crate::{a::X, b}` → `crate::a::X`, `crate::b`.
fn paths(code: &str, children: &BTreeSet<String>) -> Vec<Vec<String>> {
    let tokens = tokenize(code);
    let mut out = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let t = tokens[i].as_str();
        let starts = (t == "crate" || t == "super" || t == "self" || children.contains(t))
            && tokens.get(i + 1).is_some_and(|n| n == "::")
            && !(i > 0 && (tokens[i - 1] == "::" || tokens[i - 1] == "."));
        if starts {
            let (trees, next) = parse_tree(&tokens, i);
            out.extend(trees);
            i = next;
        } else {
            i += 1;
        }
    }
    out
}

fn tokenize(code: &str) -> Vec<String> {
    let c: Vec<char> = code.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < c.len() {
        if c[i].is_alphanumeric() || c[i] == '_' {
            let s = i;
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                i += 1;
            }
            out.push(c[s..i].iter().collect());
        } else if c[i] == ':' && c.get(i + 1) == Some(&':') {
            out.push("::".into());
            i += 2;
        } else {
            if !c[i].is_whitespace() {
                out.push(c[i].to_string());
            }
            i += 1;
        }
    }
    out
}

/// Parses `seg (:: seg)* (:: { tree, ... })?` from `i`; returns the expanded paths and the
/// index after the tree.
fn parse_tree(tokens: &[String], mut i: usize) -> (Vec<Vec<String>>, usize) {
    let mut prefix = Vec::new();
    loop {
        let t = &tokens[i];
        if t == "{" {
            let mut out = Vec::new();
            i += 1;
            while i < tokens.len() && tokens[i] != "}" {
                if tokens[i] == "," {
                    i += 1;
                    continue;
                }
                let (sub, next) = parse_tree(tokens, i);
                for s in sub {
                    let mut p = prefix.clone();
                    p.extend(s);
                    out.push(p);
                }
                i = next.max(i + 1);
            }
            return (out, i + 1);
        }
        if t == "*" {
            return (vec![prefix], i + 1);
        }
        if !(t.chars().all(|ch| ch.is_alphanumeric() || ch == '_')) {
            return (vec![prefix], i);
        }
        prefix.push(t.clone());
        if tokens.get(i + 1).is_some_and(|n| n == "::") {
            i += 2;
            if i >= tokens.len() {
                return (vec![prefix], i);
            }
        } else {
            return (vec![prefix], i + 1);
        }
    }
}

/// `path` named in `module` as an absolute module path (without `crate`).
fn absolute(module: &[String], path: &[String]) -> Vec<String> {
    let mut base: Vec<String> = Vec::new();
    let mut rest = path;
    match path.first().map(String::as_str) {
        Some("crate") => rest = &path[1..],
        Some("self") => {
            base = module.to_vec();
            rest = &path[1..];
        }
        Some("super") => {
            base = module.to_vec();
            while rest.first().is_some_and(|s| s == "super") {
                base.pop();
                rest = &rest[1..];
            }
        }
        _ => base = module.to_vec(), // a child module, named bare
    }
    base.extend(rest.iter().cloned());
    base
}

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

fn check(files: &[SourceFile], lib: &str) -> Vec<String> {
    let mut violations = Vec::new();
    for line in lib.lines() {
        if let Some(name) = declared_module(line.trim()) {
            if layer_of(&name).is_none() {
                violations.push(format!(
                    "src/lib.rs: module `{name}` has no place in the stack (LAYERS in \
                     tests/architecture.rs, and ARCHITECTURE.md)"
                ));
            }
        }
    }
    let by_module: BTreeMap<Vec<String>, &SourceFile> =
        files.iter().map(|f| (f.module.clone(), f)).collect();
    // Edges between the files of one top-level module, for the loop check.
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in files {
        let top = f.module[0].as_str();
        let children: BTreeSet<String> = f
            .code
            .lines()
            .filter_map(|l| declared_module(l.trim()))
            .collect();
        let mut reported = BTreeSet::new();
        for p in paths(&f.code, &children) {
            let abs = absolute(&f.module, &p);
            let Some(target) = abs.first() else { continue };
            if target != top {
                if by_module.keys().all(|m| &m[0] != target) && layer_of(target).is_none() {
                    continue; // not a module of this crate (e.g. a macro's `crate::` of a dep)
                }
                let shown = format!("crate::{}", abs.join("::"));
                for (m, banned, why) in BOUNDARIES {
                    let crosses = banned.iter().any(|b| {
                        let segs: Vec<&str> = b.split("::").collect();
                        abs.len() >= segs.len() && abs.iter().zip(&segs).all(|(a, s)| a == s)
                    });
                    if *m == top && crosses && reported.insert(format!("{m}:{why}")) {
                        violations.push(format!(
                            "src/{}: `{shown}` crosses a boundary: {why}",
                            f.rel
                        ));
                    }
                }
                if !reported.insert(target.clone()) {
                    continue;
                }
                let (from, to) = (layer_of(top), layer_of(target));
                match (from, to) {
                    (Some(a), Some(b)) if b < a => {}
                    (Some(a), Some(b)) => violations.push(format!(
                        "src/{}: `{shown}` points {} the stack: `{top}` (layer {a}) may only \
                         import modules below it",
                        f.rel,
                        if a == b { "sideways in" } else { "up" },
                    )),
                    _ => {} // an unplaced module is reported once, above
                }
            } else {
                // The longest prefix that is a file of this crate is the file used.
                let file = (1..=abs.len()).rev().find_map(|n| by_module.get(&abs[..n]));
                if let Some(t) = file {
                    if t.rel != f.rel && !f.module.starts_with(&t.module) {
                        edges
                            .entry(f.rel.clone())
                            .or_default()
                            .insert(t.rel.clone());
                    }
                }
            }
        }
    }
    violations.extend(loops(&edges));
    violations
}

/// One line per loop between files: `a.rs -> b.rs -> a.rs`.
fn loops(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    let mut found: BTreeSet<Vec<String>> = BTreeSet::new();
    for start in edges.keys() {
        // Shortest loop back to `start`, by breadth-first search.
        let mut prev: BTreeMap<&String, &String> = BTreeMap::new();
        let mut queue = std::collections::VecDeque::from([start]);
        let mut seen = BTreeSet::from([start]);
        'search: while let Some(n) = queue.pop_front() {
            for m in edges.get(n).into_iter().flatten() {
                if m == start {
                    let mut cycle = vec![start.clone()];
                    let mut at = n;
                    while at != start {
                        cycle.push(at.clone());
                        at = prev[at];
                    }
                    cycle.reverse();
                    // Canonical rotation: the smallest file first.
                    let k = (0..cycle.len()).min_by_key(|&i| &cycle[i]).unwrap();
                    cycle.rotate_left(k);
                    found.insert(cycle);
                    break 'search;
                }
                if seen.insert(m) {
                    prev.insert(m, n);
                    queue.push_back(m);
                }
            }
        }
    }
    found
        .into_iter()
        .map(|c| {
            format!(
                "src/: files of one module use each other in a loop: {} -> {}",
                c.join(" -> "),
                c[0]
            )
        })
        .collect()
}
