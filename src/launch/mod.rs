//! Launchers: where the jobs of a sweep run (local child processes or a SLURM array).
pub mod config;
