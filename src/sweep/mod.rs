//! Sweeps: expand a sweep definition into jobs, lay out the sweep directory, and hand the
//! jobs to a launcher. Architecture invariant (Hydra's seam): expansion knows nothing about
//! processes; launchers know nothing about expansion.

pub mod expand;
pub mod record;
pub mod run;
pub mod spec;
