//! Ctrl-C / SIGTERM handling. The first signal asks long-running work to stop at its next
//! check point (so the run can be marked `interrupted` and files stay whole); a second one
//! exits at once.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, Once};

static REQUESTED: AtomicBool = AtomicBool::new(false);
static SIGNALS: AtomicUsize = AtomicUsize::new(0);
static INSTALL: Once = Once::new();
/// What to record before a forced exit (the current run's `meta.json`).
pub type ForcedExitHook = Box<dyn Fn() + Send>;
static ON_FORCED_EXIT: Mutex<Option<ForcedExitHook>> = Mutex::new(None);

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
                // The handler runs on its own thread (ctrlc), so file I/O is fine here.
                if let Ok(hook) = ON_FORCED_EXIT.lock() {
                    if let Some(f) = hook.as_ref() {
                        f();
                    }
                }
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

/// Runs `hook` before a forced exit (second signal), replacing any earlier hook.
pub fn on_forced_exit(hook: ForcedExitHook) {
    if let Ok(mut g) = ON_FORCED_EXIT.lock() {
        *g = Some(hook);
    }
}

/// Removes the forced-exit hook.
pub fn clear_forced_exit() {
    if let Ok(mut g) = ON_FORCED_EXIT.lock() {
        *g = None;
    }
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
