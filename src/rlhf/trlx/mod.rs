//! TRLx rollout logs: `DIR/run-<uuid>/config.json` (the PPO config) and one
//! `epoch-<unix time>.json` per PPO epoch, each a JSON list of rollouts.
//!
//! `schema` holds the serde types of a rollout (lenient about how tensors and numbers are
//! written), `layout` the file and directory names, `read` turns a directory of runs into
//! [`RlhfRun`](crate::rlhf::RlhfRun)s with precise errors, `write` writes a run back in the
//! same layout (how the built-in PPO source logs, and `adlab import-trlx --out` normalises),
//! and `summary` is what `adlab import-trlx` prints.

pub mod errors;
pub mod layout;
pub mod read;
pub mod schema;
pub mod summary;
pub mod write;

pub use errors::TrlxError;
pub use read::{read_logs, read_run, require_rewards, Import, ImportOptions, SkippedRun};
pub use write::write_run;
