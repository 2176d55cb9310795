//! Carries out a parsed command line. Returns the process exit code.

use crate::cli::{Cli, Command};
use crate::config::{self, ComposeOptions, ConfigRepo};
use crate::logging::plural;
use crate::logging::RunLogSlot;
use crate::pipeline::job::{self, RunLocation};
use crate::pipeline::resume::RunDirRequest;
use crate::runs::RunStatus;
use crate::sweep::run::{resume_sweep, run_sweep, SweepOutcome, SweepRequest};
use crate::sweep::spec::SweepSpec;
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
        Command::Run {
            overrides,
            run_dir,
            multirun: true,
            dry_run,
            fail_fast,
        } => {
            if run_dir.is_some() {
                anyhow::bail!("--run-dir names one run; it cannot be combined with -m");
            }
            let req = SweepRequest {
                name: "multirun",
                spec: SweepSpec::default(),
                cli: config::parse_overrides(&overrides)?,
                config_dir: &config_dir,
                dry_run,
                fail_fast,
            };
            crate::interrupt::install();
            Ok(finish_sweep(run_sweep(req)?))
        }
        Command::Sweep {
            name,
            overrides,
            dry_run,
            resume,
            fail_fast,
            sweeps_dir,
        } => {
            crate::interrupt::install();
            if let Some(dir) = resume {
                return Ok(finish_sweep(Some(resume_sweep(&dir, fail_fast)?)));
            }
            let name = name.expect("clap requires a name without --resume");
            let sweeps_dir = sweeps_dir.unwrap_or_else(|| {
                config_dir
                    .parent()
                    .map(|p| p.join("sweeps"))
                    .unwrap_or_else(|| "sweeps".into())
            });
            let req = SweepRequest {
                name: &name,
                spec: SweepSpec::load(&sweeps_dir, &name)?,
                cli: config::parse_overrides(&overrides)?,
                config_dir: &config_dir,
                dry_run,
                fail_fast,
            };
            Ok(finish_sweep(run_sweep(req)?))
        }
        Command::Run {
            overrides, run_dir, ..
        } => {
            let ovs = config::parse_overrides(&overrides)?;
            // `--run-dir`: a new or empty directory gets a new run; an adlab run directory is
            // continued with its own saved config; anything else is refused untouched.
            let (loaded, location) = match run_dir {
                Some(d) => match crate::pipeline::resume::classify_run_dir(&d)? {
                    RunDirRequest::Fresh(p) => {
                        (crate::schema::load(&config_dir, &ovs)?, RunLocation::At(p))
                    }
                    RunDirRequest::Continue(run) => {
                        let loaded =
                            crate::pipeline::resume::continued_config(&run, &ovs, &config_dir)?;
                        tracing::info!("continuing {} with its saved config", run.path.display());
                        (loaded, RunLocation::At(run.path))
                    }
                },
                None => {
                    let loaded = crate::schema::load(&config_dir, &ovs)?;
                    let location = if loaded.typed.train.resume {
                        resumable_location(&loaded)?
                    } else {
                        RunLocation::Fresh
                    };
                    (loaded, location)
                }
            };
            // Before the first tensor op: candle reads its thread settings once.
            crate::models::set_compute_threads(loaded.typed.train.compute_threads());
            crate::interrupt::install();
            let outcome = job::run(&loaded, location, log)?;
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
            if cfg.task.is_rlhf() {
                crate::models::set_compute_threads(cfg.train.compute_threads());
                let data = crate::pipeline::rlhf_run::rlhf_dataset(
                    &cfg.task,
                    &cfg.paths.data,
                    std::io::stderr().is_terminal(),
                )?;
                println!(
                    "{} ({} source runs, {} rollouts) in {:.2}s",
                    data.cache_dir.display(),
                    data.runs.len(),
                    data.runs.iter().map(|r| r.n_rollouts()).sum::<usize>(),
                    started.elapsed().as_secs_f64()
                );
                return Ok(0);
            }
            let info = crate::tasks::cache::ensure(
                cfg.task.rl()?,
                &cfg.paths.data,
                std::io::stderr().is_terminal(),
            )?;
            if info.reused {
                // A reused cache is read in full and range-checked: a truncated or damaged
                // one must not be reported as fine.
                crate::tasks::cache::check::load_checked(&info.dir)?;
            }
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
        Command::Show {
            overrides,
            history,
            steps,
            color,
        } => {
            let colour = match color {
                clap::ColorChoice::Always => true,
                clap::ColorChoice::Never => false,
                clap::ColorChoice::Auto => {
                    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
                }
            };
            let req = crate::show::ShowRequest {
                overrides,
                history,
                steps,
                colour,
            };
            print!("{}", crate::show::show(&config_dir, &req)?);
            Ok(0)
        }
        Command::Eval { run_dir, overrides } => {
            let ovs = config::parse_overrides(&overrides)?;
            let cfg = crate::pipeline::evaluate::run_config(&run_dir, &ovs)?;
            crate::models::set_compute_threads(cfg.train.compute_threads());
            crate::interrupt::install();
            let dir = crate::runs::RunDir::at(&run_dir)?;
            let summary = crate::pipeline::evaluate::evaluate_run(&cfg, &dir)?;
            print!("{}", crate::eval::summary::table(&summary));
            println!(
                "wrote {} and {}",
                dir.eval_path().display(),
                dir.summary_path().display()
            );
            Ok(0)
        }
        Command::Report {
            paths,
            group_by,
            metrics,
            sort_by,
            out,
        } => {
            let report = crate::report::write_report(crate::report::ReportRequest {
                paths,
                group_by,
                metrics,
                sort_by,
                out,
            })?;
            print!("{}", report.markdown);
            eprintln!("report written to {}", report.out.display());
            Ok(0)
        }
        Command::ImportTrlx {
            dir,
            tokenizer,
            pad_id,
            strict,
            out,
        } => {
            use crate::rlhf::trlx;
            if let Some(out) = &out {
                crate::fsutil::refuse_overlap(&dir, out, "--out", "the logs being imported")?;
            }
            let tokenizer = tokenizer
                .map(|p| crate::tokenizer::TextTokenizer::from_file(&p))
                .transpose()?;
            let opts = trlx::ImportOptions {
                tokenizer,
                strict,
                pad_id,
            };
            let import = trlx::read_logs(&dir, &opts)?;
            print!("{}", trlx::summary::render(&import));
            if let Some(out) = out {
                for run in &import.runs {
                    trlx::write_run(&out, run)?;
                }
                println!(
                    "wrote {} normalised run(s) to {}",
                    import.runs.len(),
                    out.display()
                );
            }
            Ok(0)
        }
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "adlab", &mut std::io::stdout());
            Ok(0)
        }
    }
}

/// Where `train.resume=true` continues: the newest unfinished run with this very config (see
/// [`crate::pipeline::resume::find_resumable`]), else a new run, saying why each candidate was passed over.
fn resumable_location(loaded: &crate::schema::LoadedConfig) -> Result<RunLocation> {
    let (found, skipped) = crate::pipeline::resume::find_resumable(loaded)?;
    for s in &skipped {
        tracing::warn!(
            "train.resume: not continuing {}: {}",
            s.dir.display(),
            s.why
        );
    }
    Ok(match found {
        Some(d) => {
            tracing::info!("train.resume: continuing {}", d.display());
            RunLocation::At(d)
        }
        None if skipped.is_empty() => {
            tracing::info!("train.resume: no unfinished run with a checkpoint; starting a new run");
            RunLocation::Fresh
        }
        None => {
            tracing::warn!(
                "train.resume: none of the {} unfinished run(s) has this config; starting a new run",
                skipped.len()
            );
            RunLocation::Fresh
        }
    })
}

/// Prints the end of a sweep and returns the exit code (non-zero if any job did not complete).
fn finish_sweep(outcome: Option<SweepOutcome>) -> i32 {
    let Some(outcome) = outcome else { return 0 };
    let failures = outcome.failures();
    println!("{}", outcome.dir.display());
    // The report reads what the jobs left behind; it cannot change how the sweep ended.
    match crate::report::report_sweep(&outcome.dir) {
        Ok(report) => println!("\n{}", report.markdown),
        Err(e) => tracing::warn!("report of {}: {e:#}", outcome.dir.display()),
    }
    eprintln!(
        "sweep finished: {}, {} completed, {} not completed",
        plural(outcome.results.len(), "job"),
        outcome.results.len() - failures.len(),
        failures.len()
    );
    for f in &failures {
        eprintln!(
            "  [{:03}] {}: {} (log: {})",
            f.index,
            f.status,
            f.error.as_deref().unwrap_or("no error recorded"),
            f.log.display()
        );
    }
    if failures.is_empty() {
        0
    } else {
        1
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn counts_read_as_english() {
        assert_eq!(super::plural(1, "job"), "1 job");
        assert_eq!(super::plural(0, "job"), "0 jobs");
        assert_eq!(super::plural(2, "job"), "2 jobs");
    }
}
