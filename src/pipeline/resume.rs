//! Continuing a run without losing or corrupting it: which directories `--run-dir` may name,
//! which config a continued run uses, and which earlier run `train.resume=true` may take over.
//!
//! A continued run keeps its saved, resolved `config.yaml`; overrides may only change keys
//! that cannot change the trained model ([`may_change`]): `train.steps` to extend it, and
//! where or how fast it runs. Anything else is refused, naming the key and both values.

use crate::config::{self, ConfigRepo, Node, Override};
use crate::runs::lock::{liveness, Liveness};
use crate::runs::{RunDir, RunMeta, RunStatus};
use crate::schema::LoadedConfig;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// Files a launcher (or a run that died before its first record) leaves in a job's directory
/// before `meta.json` exists; a directory holding only these counts as empty.
pub const LAUNCHER_FILES: &[&str] = &["launcher.log", "adlab.log", crate::runs::lock::LOCK_FILE];

/// What a `--run-dir` names.
#[derive(Debug)]
pub enum RunDirRequest {
    /// Absent or empty: a new run goes there.
    Fresh(PathBuf),
    /// An adlab run (its `meta.json` and `config.yaml`): continue it.
    Continue(RunDir),
}

/// Decides what `--run-dir path` means, refusing any directory that is neither empty nor a
/// run adlab made: `--run-dir conf` must not replace `conf/config.yaml`.
pub fn classify_run_dir(path: &Path) -> Result<RunDirRequest> {
    if !path.exists() {
        return Ok(RunDirRequest::Fresh(path.to_path_buf()));
    }
    if !path.is_dir() {
        bail!(
            "--run-dir {}: not a directory; give a run directory to continue, or a new or empty \
             directory for a new run",
            path.display()
        );
    }
    let run = RunDir {
        path: path.to_path_buf(),
    };
    if run.meta_path().exists() {
        run.read_meta().with_context(|| {
            format!(
                "--run-dir {}: its meta.json is not an adlab run record, so this is not a run \
                 directory to continue",
                path.display()
            )
        })?;
        if !run.config_path().is_file() && !run.checkpoint_dir().exists() {
            // adlab's record of a run killed before it wrote its config: nothing was
            // trained, so it starts again with the config given now.
            return Ok(RunDirRequest::Fresh(path.to_path_buf()));
        }
        if !run.config_path().is_file() {
            bail!(
                "--run-dir {}: the run has no config.yaml, so it cannot be continued with its own \
                 config",
                path.display()
            );
        }
        return Ok(RunDirRequest::Continue(run));
    }
    let mut others: Vec<String> = std::fs::read_dir(path)
        .with_context(|| format!("reading {}", path.display()))?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| !LAUNCHER_FILES.contains(&n.as_str()))
        .collect();
    if !others.is_empty() {
        others.sort();
        let shown: Vec<&str> = others.iter().take(3).map(String::as_str).collect();
        bail!(
            "--run-dir {}: the directory is not empty ({}{}) and is not an adlab run (no \
             meta.json); a new run needs a new or empty directory, and only a run directory \
             adlab made can be continued",
            path.display(),
            shown.join(", "),
            if others.len() > 3 { ", ..." } else { "" }
        );
    }
    Ok(RunDirRequest::Fresh(path.to_path_buf()))
}

/// Keys whose value a continued run may change: none of them changes what is trained.
/// `train.steps` may only grow (checked in [`check_changes`]).
pub fn may_change(key: &str) -> bool {
    const KEYS: &[&str] = &[
        "train.steps",
        "train.threads",
        "train.resume",
        "train.ckpt_every",
        "device",
    ];
    const PREFIXES: &[&str] = &["paths.", "launcher."];
    KEYS.contains(&key) || PREFIXES.iter().any(|p| key.starts_with(p))
}

/// One key whose value differs between two configs.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub key: String,
    /// The value in the saved run (`None`: absent there).
    pub saved: Option<String>,
    /// The value asked for now.
    pub now: Option<String>,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "(absent)".into());
        write!(
            f,
            "`{}` is {} in the run, {} now",
            self.key,
            show(&self.saved),
            show(&self.now)
        )
    }
}

/// Every leaf key whose value differs between `saved` and `now`.
pub fn changes(saved: &Node, now: &Node) -> Vec<Change> {
    let mut keys = saved.leaf_paths();
    for k in now.leaf_paths() {
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    keys.into_iter()
        .filter(|k| !k.is_empty())
        .filter_map(|key| {
            let (a, b) = (saved.get(&key), now.get(&key));
            let same = match (a, b) {
                (Some(a), Some(b)) => a == b || a.value.to_inline() == b.value.to_inline(),
                (None, None) => true,
                _ => false,
            };
            (!same).then(|| Change {
                saved: a.map(|n| n.value.to_inline()),
                now: b.map(|n| n.value.to_inline()),
                key,
            })
        })
        .collect()
}

/// The changes that would alter the trained model (or shrink it), as readable reasons.
pub fn forbidden_changes(saved: &Node, now: &Node) -> Vec<String> {
    changes(saved, now)
        .into_iter()
        .filter_map(|c| {
            if c.key == "train.steps" {
                let n = |v: &Option<String>| v.as_deref().and_then(|s| s.parse::<u64>().ok());
                return match (n(&c.saved), n(&c.now)) {
                    (Some(a), Some(b)) if b >= a => None,
                    _ => Some(format!("{c} (train.steps can only grow, to extend a run)")),
                };
            }
            (!may_change(&c.key)).then(|| c.to_string())
        })
        .collect()
}

/// The config of a continued run: the run's saved `config.yaml`, with those command-line
/// overrides applied that the run was not started with. Refuses group choices and changes
/// that would alter the trained model.
pub fn continued_config(run: &RunDir, cli: &[Override], config_dir: &Path) -> Result<LoadedConfig> {
    let saved_texts = saved_overrides(run)?;
    let saved_tree = config::yaml::read_config_file(&run.config_path())?.body;
    let repo = ConfigRepo::new(config_dir).ok();
    let mut tree = saved_tree.clone();
    let mut all = config::parse_overrides(&saved_texts).unwrap_or_default();
    for o in cli.iter().filter(|o| !saved_texts.contains(&o.text)) {
        if o.is_sweep() {
            bail!(
                "`{}`: sweep values cannot continue one run (use `adlab sweep` or `-m`)",
                o.text
            );
        }
        let key = o.key.replace('.', "/");
        if o.package.is_some() || repo.as_ref().is_some_and(|r| r.is_group(&key)) {
            bail!(
                "--run-dir {}: `{}` chooses a config group option, which would change the run; \
                 a continued run keeps its saved config.yaml. Start a new run instead (without \
                 --run-dir)",
                run.path.display(),
                o.text
            );
        }
        config::compose::apply_value_override(&mut tree, o)?;
        all.push(o.clone());
    }
    let forbidden = forbidden_changes(&saved_tree, &tree);
    if !forbidden.is_empty() {
        bail!(
            "--run-dir {}: a continued run keeps its saved config, and these overrides would \
             change what it trains: {}. Only train.steps (to extend), train.threads, \
             train.ckpt_every, device, paths.* and launcher.* may change; start a new run \
             (without --run-dir) for anything else",
            run.path.display(),
            forbidden.join("; ")
        );
    }
    let typed = crate::schema::typed_config(&tree)?;
    let composed = config::Composed {
        config: tree,
        // `adlab config --info` of a continued run: one file, the saved config.
        tree: config::defaults::DefaultsNode {
            group: None,
            requested: None,
            option: None,
            package: String::new(),
            file: Some(run.config_path()),
            body: None,
            items: Vec::new(),
            missing_optional: false,
            auto: None,
        },
        choices: Default::default(),
    };
    Ok(LoadedConfig {
        composed,
        typed,
        overrides: all,
        config_dir: config_dir.to_path_buf(),
    })
}

/// The override texts a run was started with (`overrides.yaml`; none if it has no file).
fn saved_overrides(run: &RunDir) -> Result<Vec<String>> {
    let path = run.overrides_path();
    if !path.exists() {
        return Ok(Vec::new());
    }
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let list: Option<Vec<String>> = serde_yaml_ng::from_str(&text)
        .with_context(|| format!("parsing {} (a list of overrides)", path.display()))?;
    Ok(list.unwrap_or_default())
}

/// Why `train.resume=true` passed over a run.
#[derive(Debug, Clone)]
pub struct Skipped {
    pub dir: PathBuf,
    pub why: String,
}

/// The newest unfinished run of this config's name that `train.resume=true` may continue: it
/// has a checkpoint, its process is not alive, and its saved config equals `loaded`'s except
/// for keys that [`may_change`]. Also returns why every other unfinished run was passed over.
pub fn find_resumable(loaded: &LoadedConfig) -> Result<(Option<PathBuf>, Vec<Skipped>)> {
    let parent = loaded.typed.paths.runs.join(&loaded.typed.name);
    let Ok(entries) = std::fs::read_dir(&parent) else {
        return Ok((None, Vec::new()));
    };
    let mut dirs: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    // Directory names start with the start time, so name order is time order.
    dirs.sort();
    let mut skipped = Vec::new();
    for d in dirs.into_iter().rev() {
        let run = RunDir { path: d.clone() };
        let Ok(Some(meta)) = run.read_meta() else {
            continue;
        };
        if meta.status == RunStatus::Completed
            || !crate::train::trainer::has_checkpoint(&run.checkpoint_dir())
        {
            continue;
        }
        let skip = |why: String| Skipped {
            dir: d.clone(),
            why,
        };
        if let Some(why) = alive_reason(&d, &meta) {
            skipped.push(skip(why));
            continue;
        }
        let saved = match config::yaml::read_config_file(&run.config_path()) {
            Ok(f) => f.body,
            Err(e) => {
                skipped.push(skip(format!("its config.yaml cannot be read: {e}")));
                continue;
            }
        };
        let forbidden = forbidden_changes(&saved, &loaded.composed.config);
        if forbidden.is_empty() {
            return Ok((Some(d), skipped));
        }
        let n = forbidden.len();
        let shown: Vec<String> = forbidden.into_iter().take(3).collect();
        skipped.push(skip(format!(
            "its config differs: {}{}",
            shown.join("; "),
            if n > 3 {
                format!(" (and {} more)", n - 3)
            } else {
                String::new()
            }
        )));
    }
    Ok((None, skipped))
}

/// `Some(reason)` when the run's process may still be running it.
pub fn alive_reason(dir: &Path, meta: &RunMeta) -> Option<String> {
    match (meta.status, liveness(dir, meta)) {
        (_, Liveness::Alive) => Some(format!(
            "it is still running (pid {} on {})",
            meta.pid, meta.host
        )),
        (RunStatus::Running, Liveness::Unknown) => Some(format!(
            "it may still be running on host {} (pid {}), which this host cannot check",
            meta.host, meta.pid
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn tree(yaml: &str) -> Node {
        let v: serde_yaml_ng::Value = serde_yaml_ng::from_str(yaml).unwrap();
        config::yaml::from_yaml(v, &Arc::new(config::Source::Override("t".into())))
    }

    #[test]
    fn only_keys_that_cannot_change_the_model_may_change() {
        let saved = tree("train: {steps: 100, threads: 1}\noptimizer: {lr: 0.001}\ndevice: cpu");
        let ok = tree("train: {steps: 200, threads: 2}\noptimizer: {lr: 0.001}\ndevice: auto");
        assert!(forbidden_changes(&saved, &ok).is_empty());
        let lr = tree("train: {steps: 100, threads: 1}\noptimizer: {lr: 0.01}\ndevice: cpu");
        let f = forbidden_changes(&saved, &lr);
        assert_eq!(f.len(), 1);
        assert!(
            f[0].contains("optimizer.lr") && f[0].contains("0.01"),
            "{f:?}"
        );
        let shorter = tree("train: {steps: 50, threads: 1}\noptimizer: {lr: 0.001}\ndevice: cpu");
        let f = forbidden_changes(&saved, &shorter);
        assert!(
            f[0].contains("train.steps") && f[0].contains("only grow"),
            "{f:?}"
        );
        let added =
            tree("train: {steps: 100, threads: 1, x: 1}\noptimizer: {lr: 0.001}\ndevice: cpu");
        assert!(forbidden_changes(&saved, &added)[0].contains("train.x"));
    }

    #[test]
    fn run_dir_must_be_new_empty_or_an_adlab_run() {
        let d = tempfile::tempdir().unwrap();
        let new = d.path().join("new");
        assert!(matches!(
            classify_run_dir(&new).unwrap(),
            RunDirRequest::Fresh(_)
        ));
        std::fs::create_dir(&new).unwrap();
        std::fs::write(new.join("launcher.log"), "").unwrap();
        assert!(matches!(
            classify_run_dir(&new).unwrap(),
            RunDirRequest::Fresh(_)
        ));
        std::fs::write(new.join("config.yaml"), "precious: true").unwrap();
        let e = format!("{:#}", classify_run_dir(&new).unwrap_err());
        assert!(e.contains("not empty") && e.contains("config.yaml"), "{e}");
        std::fs::write(new.join("meta.json"), "{\"format_version\": 1}").unwrap();
        let e = format!("{:#}", classify_run_dir(&new).unwrap_err());
        assert!(e.contains("not an adlab run record"), "{e}");
    }

    #[test]
    fn a_run_killed_before_writing_its_config_starts_again() {
        let d = tempfile::tempdir().unwrap();
        let run = RunDir::at(d.path().join("job")).unwrap();
        run.write_meta(&RunMeta::start(Some("cpu".into()))).unwrap();
        assert!(matches!(
            classify_run_dir(&run.path).unwrap(),
            RunDirRequest::Fresh(_)
        ));
        std::fs::write(run.config_path(), "seed: 0\n").unwrap();
        assert!(matches!(
            classify_run_dir(&run.path).unwrap(),
            RunDirRequest::Continue(_)
        ));
    }
}
