//! Carries out a parsed command line. Returns the process exit code.

use crate::cli::{Cli, Command};
use crate::config::{self, ComposeOptions, ConfigRepo};
use crate::job::{self, RunLocation};
use crate::logging::RunLogSlot;
use crate::runs::RunStatus;
use anyhow::Result;
use clap::CommandFactory;
use std::io::IsTerminal;

pub fn execute(cli: Cli, log: &RunLogSlot) -> Result<i32> {
    let config_dir = config::config_dir(cli.config_dir.clone());
    match cli.command {
        Command::Config {
            overrides,
            resolve,
            info,
        } => {
            let ovs = config::parse_overrides(&overrides)?;
            // Always validate the resolved config; print the unresolved one unless asked.
            let loaded = crate::schema::load(&config_dir, &ovs)?;
            if info {
                print!("{}", loaded.composed.tree.render(&config_dir));
            } else if resolve {
                print!("{}", loaded.yaml());
            } else {
                let repo = ConfigRepo::new(&config_dir)?;
                let raw = config::compose(&repo, &ovs, ComposeOptions { resolve: false })?;
                print!("{}", config::yaml::to_yaml_string(&raw.config));
            }
            Ok(0)
        }
        Command::Run { overrides } => {
            let ovs = config::parse_overrides(&overrides)?;
            let loaded = crate::schema::load(&config_dir, &ovs)?;
            // Before the first tensor op: candle reads its thread settings once.
            crate::models::set_compute_threads(loaded.typed.train.threads);
            crate::interrupt::install();
            let outcome = job::run(&loaded, RunLocation::Fresh, log)?;
            println!("{}", outcome.dir.path.display());
            Ok(match outcome.status {
                RunStatus::Completed => 0,
                RunStatus::Interrupted => 130,
                _ => 1,
            })
        }
        Command::Generate { overrides } => {
            let ovs = config::parse_overrides(&overrides)?;
            let loaded = crate::schema::load(&config_dir, &ovs)?;
            let cfg = &loaded.typed;
            let started = std::time::Instant::now();
            let info = crate::tasks::cache::ensure(
                &cfg.task,
                &cfg.paths.data,
                std::io::stderr().is_terminal(),
            )?;
            println!(
                "{} {} ({} histories, {} steps) in {:.2}s",
                if info.reused { "reused" } else { "generated" },
                info.dir.display(),
                info.n_histories,
                info.n_steps,
                started.elapsed().as_secs_f64()
            );
            Ok(0)
        }
        Command::Eval { run_dir, overrides } => {
            let ovs = config::parse_overrides(&overrides)?;
            let cfg = crate::eval::evaluate::run_config(&run_dir, &ovs)?;
            crate::models::set_compute_threads(cfg.train.threads);
            crate::interrupt::install();
            let dir = crate::runs::RunDir::at(&run_dir)?;
            let summary = crate::eval::evaluate_run(&cfg, &dir)?;
            print!("{}", crate::eval::summary::table(&summary));
            println!(
                "wrote {} and {}",
                dir.eval_path().display(),
                dir.summary_path().display()
            );
            Ok(0)
        }
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "adlab", &mut std::io::stdout());
            Ok(0)
        }
    }
}
