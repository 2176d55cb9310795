//! The `adlab` binary: parse the command line, set up logging, run, report errors.

use clap::Parser;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    adlab::models::keep_freed_memory();
    let cli = adlab::cli::Cli::parse();
    let log = adlab::logging::init(cli.verbosity());
    match adlab::app::execute(cli, &log) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(2);
        }
    }
}
