//! Ctrl-C / SIGTERM handling. The first signal asks long-running work to stop at its next
//! check point (so the run can be marked `interrupted` and files stay whole); a second one
//! exits at once.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Once;

static REQUESTED: AtomicBool = AtomicBool::new(false);
static SIGNALS: AtomicUsize = AtomicUsize::new(0);
static INSTALL: Once = Once::new();

/// The error returned by [`check`] once a stop was requested.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("interrupted by signal")]
pub struct Interrupted;

/// Installs the signal handler (idempotent).
pub fn install() {
    INSTALL.call_once(|| {
        let result = ctrlc::set_handler(|| {
            REQUESTED.store(true, Ordering::SeqCst);
            if SIGNALS.fetch_add(1, Ordering::SeqCst) >= 1 {
                eprintln!("adlab: second interrupt, exiting now");
                std::process::exit(130);
            }
            eprintln!(
                "adlab: interrupt received, stopping at the next safe point (again to force)"
            );
        });
        if let Err(e) = result {
            tracing::warn!("cannot install the interrupt handler: {e}");
        }
    });
}

/// Whether a stop was requested.
pub fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}

/// Fails with [`Interrupted`] once a stop was requested.
pub fn check() -> Result<(), Interrupted> {
    if requested() {
        Err(Interrupted)
    } else {
        Ok(())
    }
}

/// Asks for a stop as a signal would (used by tests and by parents of in-process jobs).
pub fn request() {
    REQUESTED.store(true, Ordering::SeqCst);
}
