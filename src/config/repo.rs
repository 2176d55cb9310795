//! The conf tree on disk: which config groups exist (folders) and which options each has
//! (YAML files). Lookups fail with the list of what does exist.

use super::error::{nearest, ConfigError};
use super::yaml::{read_config_file, ConfigFile};
use std::path::{Path, PathBuf};

/// A name that stays in its folder: not empty, no separator, not `.` or `..`, no control
/// characters. Option and sweep names must be one, so `task=../../x` cannot read outside
/// `conf/`.
pub fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains(['/', '\\'])
        && !name.chars().any(char::is_control)
}

/// A relative slash path (a nested group, `task/source`) made of plain names only.
fn stays_inside(path: &str) -> bool {
    path.split('/').all(is_plain_name)
}

/// A conf directory (`conf/` by default).
#[derive(Debug, Clone)]
pub struct ConfigRepo {
    root: PathBuf,
}

impl ConfigRepo {
    pub fn new(root: impl Into<PathBuf>) -> Result<Self, ConfigError> {
        let root = root.into();
        if !root.join("config.yaml").is_file() {
            return Err(ConfigError::Io {
                path: root.join("config.yaml"),
                message: "no primary config here; pass --config-dir DIR (or set ADLAB_CONFIG_DIR) \
                          to a folder holding config.yaml"
                    .into(),
            });
        }
        Ok(ConfigRepo { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The path of `<group>/<name>.yaml` (group "" = the conf root).
    pub fn file_path(&self, group: &str, name: &str) -> PathBuf {
        let mut p = self.root.clone();
        if !group.is_empty() {
            p.push(group);
        }
        p.push(format!("{name}.yaml"));
        p
    }

    pub fn is_group(&self, group: &str) -> bool {
        !group.is_empty() && stays_inside(group) && self.root.join(group).is_dir()
    }

    /// All config groups, as slash paths (`task`, `task/source`), sorted.
    pub fn groups(&self) -> Vec<String> {
        fn walk(dir: &Path, prefix: &str, out: &mut Vec<String>) {
            let Ok(entries) = std::fs::read_dir(dir) else {
                return;
            };
            for e in entries.flatten() {
                if e.path().is_dir() {
                    let name = e.file_name().to_string_lossy().to_string();
                    if name.starts_with('.') {
                        continue;
                    }
                    let p = if prefix.is_empty() {
                        name
                    } else {
                        format!("{prefix}/{name}")
                    };
                    out.push(p.clone());
                    walk(&e.path(), &p, out);
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.root, "", &mut out);
        out.sort();
        out
    }

    /// The options of a group (YAML file stems), sorted.
    pub fn options(&self, group: &str) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.root.join(group)) else {
            return Vec::new();
        };
        let mut out: Vec<String> = entries
            .flatten()
            .filter_map(|e| {
                let p = e.path();
                let is_yaml =
                    matches!(p.extension().and_then(|x| x.to_str()), Some("yaml" | "yml"));
                if p.is_file() && is_yaml {
                    p.file_stem().map(|s| s.to_string_lossy().to_string())
                } else {
                    None
                }
            })
            .collect();
        out.sort();
        out
    }

    /// Loads option `name` of `group`, or fails listing the group's options.
    pub fn load_option(
        &self,
        group: &str,
        name: &str,
        origin: &str,
    ) -> Result<(ConfigFile, PathBuf), ConfigError> {
        if !self.is_group(group) {
            let groups = self.groups();
            return Err(ConfigError::UnknownGroup {
                group: group.to_string(),
                origin: origin.to_string(),
                suggestion: nearest(group, groups.iter().map(String::as_str)),
                available: groups,
            });
        }
        if !is_plain_name(name) {
            return Err(ConfigError::InvalidValue {
                key: group.replace('/', "."),
                value: name.to_string(),
                expected: format!(
                    "the name of an option in {} (a file name without `/`, `\\` or `..`)",
                    self.root.join(group).display()
                ),
                origin: origin.to_string(),
            });
        }
        for ext in ["yaml", "yml"] {
            let path = self.root.join(group).join(format!("{name}.{ext}"));
            if path.is_file() {
                return Ok((read_config_file(&path)?, path));
            }
        }
        let options = self.options(group);
        Err(ConfigError::UnknownOption {
            group: group.to_string(),
            option: name.to_string(),
            origin: origin.to_string(),
            suggestion: nearest(name, options.iter().map(String::as_str)),
            available: options,
        })
    }

    /// Whether option `name` exists in `group` (for `optional` defaults entries).
    pub fn has_option(&self, group: &str, name: &str) -> bool {
        is_plain_name(name)
            && self.is_group(group)
            && ["yaml", "yml"].iter().any(|ext| {
                self.root
                    .join(group)
                    .join(format!("{name}.{ext}"))
                    .is_file()
            })
    }
}
