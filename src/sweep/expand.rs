//! Expansion: a sweep spec plus command-line overrides -> the list of jobs, each a list of
//! concrete overrides. Grid axes multiply, zipped lists advance together, random search draws
//! `num_samples` seeded samples. Knows nothing about processes or run directories.

use super::spec::SweepSpec;
use crate::config::node::{Node, Source, Value};
use crate::config::overrides::{
    parse_override, parse_value, Distribution, Override, OverrideValue, Sweep,
};
use crate::config::ConfigRepo;
use anyhow::{bail, Context, Result};
use rand::Rng;
use std::sync::Arc;

/// One job of a sweep.
#[derive(Debug, Clone, PartialEq)]
pub struct ExpandedJob {
    /// Every override of the job, fixed ones first.
    pub overrides: Vec<String>,
    /// Only the swept ones (what distinguishes this job), for its directory name.
    pub swept: Vec<String>,
}

/// One axis of the product: each element is the overrides one choice contributes.
type Axis = Vec<Vec<Override>>;

/// Expands `spec` with `cli` overrides (command line wins over the file for the same key).
pub fn expand(spec: &SweepSpec, cli: &[Override], repo: &ConfigRepo) -> Result<Vec<ExpandedJob>> {
    let cli_keys: Vec<&str> = cli.iter().map(|o| o.key.as_str()).collect();
    let mut fixed: Vec<Override> = Vec::new();
    for text in &spec.overrides {
        let o =
            parse_override(text).with_context(|| format!("sweep `overrides` entry `{text}`"))?;
        if o.is_sweep() {
            bail!("sweep `overrides` entry `{text}` has several values; put it under `grid:`");
        }
        if !cli_keys.contains(&o.key.as_str()) {
            fixed.push(o);
        }
    }
    let mut axes: Vec<Axis> = Vec::new();
    for (key, value) in &spec.grid {
        if cli_keys.contains(&key.trim_start_matches('+')) {
            continue;
        }
        axes.push(grid_axis(key, value, repo).with_context(|| format!("sweep grid key `{key}`"))?);
    }
    for (i, entry) in spec.zip.iter().enumerate() {
        axes.push(zip_axis(entry).with_context(|| format!("sweep zip entry {i}"))?);
    }
    if let Some(r) = &spec.random {
        axes.push(random_axis(r).context("sweep random search")?);
    }
    for o in cli {
        match &o.value {
            Some(OverrideValue::Sweep(s)) => {
                axes.push(sweep_axis(o, s, repo).with_context(|| format!("override `{}`", o.text))?)
            }
            _ => fixed.push(o.clone()),
        }
    }
    let mut jobs = vec![ExpandedJob {
        overrides: fixed.iter().map(|o| o.text.clone()).collect(),
        swept: Vec::new(),
    }];
    for axis in &axes {
        if axis.is_empty() {
            bail!("a sweep axis has no values");
        }
        let mut next = Vec::with_capacity(jobs.len() * axis.len());
        for job in &jobs {
            for choice in axis {
                let mut j = job.clone();
                for o in choice {
                    j.overrides.push(o.text.clone());
                    j.swept.push(o.text.clone());
                }
                next.push(j);
            }
        }
        jobs = next;
    }
    Ok(jobs)
}

/// An override for `key_text` (which may carry `+`/`++`) without a value, to be filled.
fn base(key_text: &str) -> Result<Override> {
    parse_override(&format!("{key_text}=_")).map_err(anyhow::Error::msg)
}

fn single_choices(o: &Override, values: Vec<Node>) -> Axis {
    values.into_iter().map(|v| vec![o.with_value(v)]).collect()
}

fn grid_axis(key: &str, value: &serde_yaml_ng::Value, repo: &ConfigRepo) -> Result<Axis> {
    let o = base(key)?;
    let src = Arc::new(Source::Builtin("sweep file"));
    match value {
        serde_yaml_ng::Value::Sequence(items) => Ok(single_choices(
            &o,
            items
                .iter()
                .map(|v| crate::config::yaml::from_yaml(v.clone(), &src))
                .collect(),
        )),
        serde_yaml_ng::Value::String(text) => {
            match parse_value(text, &src).map_err(anyhow::Error::msg)? {
                OverrideValue::Sweep(s) => sweep_axis(&o, &s, repo),
                OverrideValue::Single(n) => Ok(vec![vec![o.with_value(n)]]),
            }
        }
        other => {
            Ok(vec![vec![o.with_value(crate::config::yaml::from_yaml(
                other.clone(),
                &src,
            ))]])
        }
    }
}

fn number_node(x: f64, integral: bool) -> Node {
    let src = Arc::new(Source::Builtin("sweep"));
    if integral {
        Node::new(Value::Int(x.round() as i64), src)
    } else {
        Node::new(Value::Float(x), src)
    }
}

fn sweep_axis(o: &Override, sweep: &Sweep, repo: &ConfigRepo) -> Result<Axis> {
    match sweep {
        Sweep::Choice(values) => Ok(single_choices(o, values.clone())),
        Sweep::Range { start, stop, step } => {
            let integral = [start, stop, step].iter().all(|x| x.fract() == 0.0);
            let mut values = Vec::new();
            let mut x = *start;
            while (*step > 0.0 && x < *stop - 1e-12) || (*step < 0.0 && x > *stop + 1e-12) {
                values.push(number_node(x, integral));
                x += step;
                if values.len() > 100_000 {
                    bail!("range() yields more than 100000 values");
                }
            }
            if values.is_empty() {
                bail!("range({start}, {stop}, {step}) is empty");
            }
            Ok(single_choices(o, values))
        }
        Sweep::Glob { include, exclude } => {
            if !repo.is_group(&o.key) {
                bail!("glob() selects options of a config group, and `{}` is not one", o.key);
            }
            let pats = |ps: &[String]| -> Result<Vec<glob::Pattern>> {
                ps.iter()
                    .map(|p| glob::Pattern::new(p).with_context(|| format!("glob pattern `{p}`")))
                    .collect()
            };
            let (inc, exc) = (pats(include)?, pats(exclude)?);
            let options: Vec<Node> = repo
                .options(&o.key)
                .into_iter()
                .filter(|opt| inc.iter().any(|p| p.matches(opt)) && !exc.iter().any(|p| p.matches(opt)))
                .map(|opt| Node::new(Value::Str(opt), Arc::new(Source::Builtin("glob"))))
                .collect();
            if options.is_empty() {
                bail!("glob() matches no option of group `{}` (options: {})", o.key, repo.options(&o.key).join(", "));
            }
            Ok(single_choices(o, options))
        }
        Sweep::Distribution(_) => bail!(
            "`{}` is a distribution; distributions belong to random search (`random.params` in a sweep file)",
            o.text
        ),
    }
}

fn zip_axis(entry: &indexmap::IndexMap<String, Vec<serde_yaml_ng::Value>>) -> Result<Axis> {
    let len = entry.values().next().map(Vec::len).unwrap_or(0);
    if let Some((k, v)) = entry.iter().find(|(_, v)| v.len() != len) {
        bail!(
            "zipped lists must have the same length: `{k}` has {} values, others {len}",
            v.len()
        );
    }
    let src = Arc::new(Source::Builtin("sweep file"));
    let mut axis = vec![Vec::new(); len];
    for (key, values) in entry {
        let o = base(key)?;
        for (i, v) in values.iter().enumerate() {
            axis[i].push(o.with_value(crate::config::yaml::from_yaml(v.clone(), &src)));
        }
    }
    Ok(axis)
}

fn random_axis(r: &super::spec::RandomSearch) -> Result<Axis> {
    if r.num_samples == 0 {
        bail!("random.num_samples must be at least 1");
    }
    let src = Arc::new(Source::Builtin("random search"));
    let mut params = Vec::new();
    for (key, value) in &r.params {
        let o = base(key)?;
        let sampler = match value {
            serde_yaml_ng::Value::Sequence(items) => {
                Sweep::Choice(items.iter().map(|v| crate::config::yaml::from_yaml(v.clone(), &src)).collect())
            }
            serde_yaml_ng::Value::String(text) => match parse_value(text, &src).map_err(anyhow::Error::msg)? {
                OverrideValue::Sweep(s @ (Sweep::Distribution(_) | Sweep::Choice(_))) => s,
                _ => bail!("random.params.{key}: expected uniform(a, b), loguniform(a, b), int(a, b), choice(...) or a list"),
            },
            _ => bail!("random.params.{key}: expected a distribution or a list"),
        };
        params.push((o, sampler));
    }
    let mut rng = crate::seed::rng(r.seed, "sweep-random", &[]);
    let mut axis = Vec::with_capacity(r.num_samples);
    for _ in 0..r.num_samples {
        let mut sample = Vec::new();
        for (o, sampler) in &params {
            let node = match sampler {
                Sweep::Choice(values) => values[rng.random_range(0..values.len())].clone(),
                Sweep::Distribution(Distribution::Uniform { low, high }) => {
                    Node::new(Value::Float(rng.random_range(*low..*high)), src.clone())
                }
                Sweep::Distribution(Distribution::LogUniform { low, high }) => {
                    let x = rng.random_range(low.ln()..high.ln()).exp();
                    Node::new(Value::Float(x), src.clone())
                }
                Sweep::Distribution(Distribution::Int { low, high }) => {
                    Node::new(Value::Int(rng.random_range(*low..=*high)), src.clone())
                }
                _ => unreachable!("checked above"),
            };
            sample.push(o.with_value(node));
        }
        axis.push(sample);
    }
    Ok(axis)
}

/// Hydra's `override_dirname`: the swept overrides, sorted, joined by `,`, made path-safe.
pub fn override_dirname(swept: &[String]) -> String {
    let mut parts: Vec<String> = swept.to_vec();
    parts.sort();
    let joined = parts.join(",");
    let safe: String = joined
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._=,+-~".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut out: String = safe.chars().take(120).collect();
    if out.is_empty() {
        out.push_str("job");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo() -> (tempfile::TempDir, ConfigRepo) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.yaml"), "a: 1\n").unwrap();
        std::fs::create_dir_all(dir.path().join("task")).unwrap();
        for t in ["darkroom", "darkroom_hard", "bandit"] {
            std::fs::write(dir.path().join(format!("task/{t}.yaml")), "name: x\n").unwrap();
        }
        let r = ConfigRepo::new(dir.path()).unwrap();
        (dir, r)
    }

    fn spec(yaml: &str) -> SweepSpec {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    fn cli(texts: &[&str]) -> Vec<Override> {
        texts.iter().map(|t| parse_override(t).unwrap()).collect()
    }

    #[test]
    fn grid_is_a_cartesian_product() {
        let (_d, r) = repo();
        let jobs = expand(
            &spec("overrides: [x=1]\ngrid: {a: [1, 2, 3], b: 'p,q'}\n"),
            &[],
            &r,
        )
        .unwrap();
        assert_eq!(jobs.len(), 6);
        assert_eq!(jobs[0].overrides, vec!["x=1", "a=1", "b=p"]);
        assert_eq!(jobs[5].swept, vec!["a=3", "b=q"]);
    }

    #[test]
    fn zip_advances_together() {
        let (_d, r) = repo();
        let jobs = expand(
            &spec("zip: [{lr: [0.1, 0.01], wd: [0, 1]}]\ngrid: {s: [1, 2]}\n"),
            &[],
            &r,
        )
        .unwrap();
        assert_eq!(jobs.len(), 4);
        assert!(jobs.iter().all(|j| {
            let lr = j.swept.iter().any(|o| o == "lr=0.1");
            let wd = j.swept.iter().any(|o| o == "wd=0");
            lr == wd
        }));
        assert!(expand(&spec("zip: [{a: [1, 2], b: [1]}]\n"), &[], &r).is_err());
    }

    #[test]
    fn random_search_is_seeded_and_in_range() {
        let (_d, r) = repo();
        let text = "random: {num_samples: 20, seed: 3, params: {lr: 'loguniform(1e-5, 1e-2)', kl: 'uniform(0, 0.2)', n: 'int(1, 3)', m: [a, b]}}\n";
        let a = expand(&spec(text), &[], &r).unwrap();
        let b = expand(&spec(text), &[], &r).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.len(), 20);
        let other = expand(&spec(&text.replace("seed: 3", "seed: 4")), &[], &r).unwrap();
        assert_ne!(a, other);
        for j in &a {
            let get = |k: &str| {
                j.swept
                    .iter()
                    .find_map(|o| o.strip_prefix(&format!("{k}=")))
                    .unwrap()
                    .to_string()
            };
            let lr: f64 = get("lr").parse().unwrap();
            assert!((1e-5..1e-2).contains(&lr), "{lr}");
            let kl: f64 = get("kl").parse().unwrap();
            assert!((0.0..0.2).contains(&kl));
            let n: i64 = get("n").parse().unwrap();
            assert!((1..=3).contains(&n));
            assert!(["a", "b"].contains(&get("m").as_str()));
        }
    }

    #[test]
    fn ranges_globs_and_cli_combine() {
        let (_d, r) = repo();
        let jobs = expand(
            &spec("grid: {seed: 'range(0, 3)'}\n"),
            &cli(&["task=glob(dark*)", "x=5"]),
            &r,
        )
        .unwrap();
        assert_eq!(jobs.len(), 6);
        assert!(jobs
            .iter()
            .all(|j| j.overrides.contains(&"x=5".to_string())));
        assert!(jobs
            .iter()
            .any(|j| j.swept.contains(&"task=darkroom_hard".to_string())));
        assert!(!jobs
            .iter()
            .any(|j| j.swept.contains(&"task=bandit".to_string())));
        let floats = expand(
            &SweepSpec::default(),
            &cli(&["lr=range(0.5, 1.5, 0.5)"]),
            &r,
        )
        .unwrap();
        assert_eq!(
            floats
                .iter()
                .map(|j| j.swept[0].clone())
                .collect::<Vec<_>>(),
            vec!["lr=0.5", "lr=1.0"]
        );
    }

    #[test]
    fn command_line_wins_over_the_file() {
        let (_d, r) = repo();
        let s = spec("overrides: [steps=10]\ngrid: {lr: [1, 2, 3]}\n");
        let jobs = expand(&s, &cli(&["lr=7", "steps=20"]), &r).unwrap();
        assert_eq!(jobs.len(), 1);
        assert_eq!(jobs[0].overrides, vec!["lr=7", "steps=20"]);
        let jobs = expand(&s, &cli(&["lr=8,9"]), &r).unwrap();
        assert_eq!(jobs.len(), 2);
    }

    #[test]
    fn distributions_outside_random_search_are_refused() {
        let (_d, r) = repo();
        let err = expand(&SweepSpec::default(), &cli(&["lr=uniform(0, 1)"]), &r).unwrap_err();
        assert!(format!("{err:#}").contains("random"), "{err:#}");
    }

    #[test]
    fn dirnames_are_sorted_and_path_safe() {
        assert_eq!(
            override_dirname(&["b=2".into(), "a=x/y".into()]),
            "a=x_y,b=2"
        );
        assert_eq!(override_dirname(&[]), "job");
    }
}
