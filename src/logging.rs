//! Logging: human-readable events on stderr (level from `-v`/`-q` or `RUST_LOG`), and the
//! same events, without colour, in the current run's `adlab.log` once a run directory exists.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Where file events go: nowhere until a run attaches its log file.
#[derive(Clone, Default)]
pub struct RunLogSlot(Arc<Mutex<Option<File>>>);

pub struct SlotWriter(Arc<Mutex<Option<File>>>);

impl Write for SlotWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.0.lock() {
            Ok(mut guard) => match guard.as_mut() {
                Some(f) => f.write(buf),
                None => Ok(buf.len()),
            },
            Err(_) => Ok(buf.len()),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self.0.lock() {
            Ok(mut guard) => guard.as_mut().map(|f| f.flush()).unwrap_or(Ok(())),
            Err(_) => Ok(()),
        }
    }
}

impl<'a> MakeWriter<'a> for RunLogSlot {
    type Writer = SlotWriter;
    fn make_writer(&'a self) -> Self::Writer {
        SlotWriter(self.0.clone())
    }
}

impl RunLogSlot {
    /// Sends subsequent events to `path` (appending, so a resumed run keeps its history).
    pub fn attach(&self, path: &Path) -> io::Result<()> {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        if let Ok(mut g) = self.0.lock() {
            *g = Some(f);
        }
        Ok(())
    }

    /// Writes `text` to the run's log file only (not the console); nothing without a run.
    pub fn write_raw(&self, text: &str) {
        if let Ok(mut g) = self.0.lock() {
            if let Some(f) = g.as_mut() {
                let _ = f.write_all(text.as_bytes());
            }
        }
    }

    pub fn detach(&self) {
        if let Ok(mut g) = self.0.lock() {
            if let Some(f) = g.as_mut() {
                let _ = f.flush();
            }
            *g = None;
        }
    }
}

/// The console level for a `-v` count minus a `-q` count (0 = info).
pub fn level_for(verbosity: i8) -> &'static str {
    match verbosity {
        i8::MIN..=-2 => "error",
        -1 => "warn",
        0 => "info",
        1 => "debug",
        _ => "trace",
    }
}

/// Colour on the console only on a terminal, and never with `NO_COLOR` set (no-color.org).
pub fn console_colour() -> bool {
    use std::io::IsTerminal;
    colour_allowed(
        std::env::var_os("NO_COLOR").as_deref(),
        io::stderr().is_terminal(),
    )
}

fn colour_allowed(no_color: Option<&std::ffi::OsStr>, terminal: bool) -> bool {
    terminal && no_color.is_none_or(|v| v.is_empty())
}

/// Installs the global subscriber. `RUST_LOG`, when set, wins over `-v`/`-q`.
pub fn init(verbosity: i8) -> RunLogSlot {
    let slot = RunLogSlot::default();
    let console_filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("adlab={}", level_for(verbosity))));
    let file_level = if verbosity > 0 {
        level_for(verbosity)
    } else {
        "info"
    };
    let file_filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("adlab={file_level}")));
    let console = tracing_subscriber::fmt::layer()
        .with_writer(io::stderr)
        .with_ansi(console_colour())
        .with_target(false)
        .without_time()
        .with_filter(console_filter);
    let file = tracing_subscriber::fmt::layer()
        .with_writer(slot.clone())
        .with_ansi(false)
        .with_target(false)
        .with_filter(file_filter);
    let _ = tracing_subscriber::registry()
        .with(console)
        .with(file)
        .try_init();
    slot
}

/// `1 job`, `2 jobs`.
pub fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("{n} {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(colour_allowed(None, true));
        assert!(!colour_allowed(None, false));
        assert!(!colour_allowed(Some(std::ffi::OsStr::new("1")), true));
        // NO_COLOR set but empty does not disable colour (no-color.org).
        assert!(colour_allowed(Some(std::ffi::OsStr::new("")), true));
    }
}
