//! The `train` section: how long and how a run trains. `train::train` takes it with the
//! `optimizer` section and the run seed, never the whole config.

use serde::{Deserialize, Serialize};

/// The `train` section.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Optimizer steps.
    pub steps: u64,
    /// Sequences per optimizer step (split into `grad_accum` micro-batches).
    pub batch_size: usize,
    #[serde(default = "one")]
    pub grad_accum: usize,
    /// Validation (held-out tasks) every this many steps; 0 = only at the end.
    pub eval_every: u64,
    /// Validation batches per evaluation.
    #[serde(default = "default_val_batches")]
    pub val_batches: usize,
    /// Training metrics every this many steps.
    pub log_every: u64,
    /// Checkpoint every this many steps (and always at the end); 0 = only at the end.
    pub ckpt_every: u64,
    /// Compute threads of this run: a number, or `auto` (see [`Threads`]).
    pub threads: Threads,
    /// Continue from the run directory's last checkpoint.
    #[serde(default)]
    pub resume: bool,
    /// A free-form note recorded with the run (shows up in reports).
    #[serde(default)]
    pub note: Option<String>,
}

/// `train.threads`: how many threads one run computes with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Threads {
    Count(usize),
    /// `auto`: every CPU this process may run on (its affinity mask, which is what a SLURM
    /// allocation or `taskset` gives it): all cores for a lone `adlab run`. The local sweep
    /// launcher sets `train.threads` of each packed job to `launcher.threads_per_run`.
    #[serde(with = "auto")]
    Auto,
}

/// (De)serialises [`Threads::Auto`] as the string `auto`.
mod auto {
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("auto")
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<(), D::Error> {
        match String::deserialize(d)?.as_str() {
            "auto" => Ok(()),
            other => Err(D::Error::custom(format!(
                "`{other}`: expected a number of threads or `auto`"
            ))),
        }
    }
}

impl Threads {
    /// The number of threads this process should use.
    pub fn resolve(self) -> usize {
        match self {
            Threads::Count(n) => n,
            Threads::Auto => std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

impl TrainConfig {
    /// Micro-batches computed side by side: one per thread, up to `grad_accum` (each
    /// micro-batch's result does not depend on it, see `Learner::train_micro_batches`).
    pub fn workers(&self) -> usize {
        self.threads.resolve().min(self.grad_accum).max(1)
    }

    /// Threads each worker's tensor ops use (candle's setting, process-wide): the run's
    /// threads shared out among its workers.
    pub fn compute_threads(&self) -> usize {
        (self.threads.resolve() / self.workers()).max(1)
    }
}

fn one() -> usize {
    1
}

fn default_val_batches() -> usize {
    4
}

#[cfg(test)]
mod tests {
    use super::Threads;

    #[test]
    fn threads_are_a_number_or_auto() {
        let n: Threads = serde_yaml_ng::from_str("3").unwrap();
        assert_eq!(n, Threads::Count(3));
        assert_eq!(n.resolve(), 3);
        let auto: Threads = serde_yaml_ng::from_str("auto").unwrap();
        assert_eq!(auto, Threads::Auto);
        assert!(auto.resolve() >= 1);
        assert_eq!(serde_yaml_ng::to_string(&auto).unwrap().trim(), "auto");
        assert_eq!(serde_yaml_ng::to_string(&n).unwrap().trim(), "3");
        assert!(serde_yaml_ng::from_str::<Threads>("many").is_err());
    }
}
