//! Hydra-style config composition: a conf tree of groups and options, defaults lists,
//! command-line overrides, `${...}` interpolation, and typed extraction with errors that say
//! where a bad value came from.
//!
//! Architecture invariant: this module knows nothing about tasks, models or training; it
//! composes untyped trees. What the keys mean lives in `crate::schema`.

pub mod compose;
pub mod defaults;
pub mod error;
pub mod extract;
pub mod interpolate;
pub mod node;
pub mod overrides;
pub mod repo;
pub mod yaml;

pub use compose::{compose, ComposeOptions, Composed};
pub use error::ConfigError;
pub use node::{Node, Source, Value};
pub use overrides::{parse_override, Override, OverrideKind, OverrideValue, Sweep};
pub use repo::ConfigRepo;

use std::path::PathBuf;

/// Environment variable naming the conf directory (like `--config-dir`).
pub const CONFIG_DIR_ENV: &str = "ADLAB_CONFIG_DIR";

/// The conf directory: `--config-dir`, else `$ADLAB_CONFIG_DIR`, else `./conf`.
pub fn config_dir(cli: Option<PathBuf>) -> PathBuf {
    cli.or_else(|| std::env::var_os(CONFIG_DIR_ENV).map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("conf"))
}

/// Parses a list of override strings.
pub fn parse_overrides<S: AsRef<str>>(texts: &[S]) -> Result<Vec<Override>, ConfigError> {
    texts.iter().map(|t| parse_override(t.as_ref())).collect()
}
