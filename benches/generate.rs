//! Source-algorithm throughput (environment steps per second on one thread, including
//! recording) for every task config in `conf/task`, the environments alone (random actions),
//! then the one-thread time to generate each config's full dataset. Run with `cargo bench --bench generate [-- SECONDS_PER_CASE]`.

use adlab::tasks::bench::{generation_time, measure, measure_env, standard_cases};
use adlab::tasks::config::{EnvConfig, LunarLanderConfig};
use adlab::tasks::TaskConfig;
use std::path::Path;

fn main() -> anyhow::Result<()> {
    let seconds: f64 = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .and_then(|a| a.parse().ok())
        .unwrap_or(2.0);
    let conf = Path::new(env!("CARGO_MANIFEST_DIR")).join("conf/task");
    let cases = standard_cases(&conf)?;
    println!(
        "{:<24} {:>14} {:>10} {:>16}",
        "source throughput", "steps", "seconds", "steps/s"
    );
    for (case, cfg) in &cases {
        let t = measure(case, cfg, seconds)?;
        println!(
            "{:<24} {:>14} {:>10.2} {:>16.0}",
            t.case, t.steps, t.seconds, t.steps_per_sec
        );
    }
    println!();
    println!(
        "{:<24} {:>14} {:>10} {:>16}",
        "environment alone", "steps", "seconds", "steps/s"
    );
    let mut seen = std::collections::BTreeSet::new();
    for (_, cfg) in &cases {
        if !seen.insert(cfg.name.clone()) {
            continue;
        }
        let mut variants = vec![(format!("{}/random", cfg.name), cfg.clone())];
        if let EnvConfig::LunarLander(c) = &cfg.env {
            // The faster physics setting, side by side with the default.
            let mut fast = cfg.clone();
            fast.env = EnvConfig::LunarLander(LunarLanderConfig {
                solver_iterations: 3,
                ..c.clone()
            });
            variants.push((format!("{}/random, 3 substeps", cfg.name), fast));
        }
        for (case, cfg) in &variants {
            let t = measure_env(case, cfg, seconds)?;
            println!(
                "{:<24} {:>14} {:>10.2} {:>16.0}",
                t.case, t.steps, t.seconds, t.steps_per_sec
            );
        }
    }
    println!();
    println!(
        "{:<24} {:>10} {:>10} {:>16} {:>12} {:>10} {:>10} {:>10}",
        "default dataset",
        "histories",
        "steps",
        "seconds (1 core)",
        "cache MiB",
        "bytes/step",
        "write s",
        "load s"
    );
    // The first case of each name is the config file itself; the rest are source variants.
    let mut defaults: Vec<&TaskConfig> = cases.iter().map(|(_, cfg)| cfg).collect();
    defaults.dedup_by(|a, b| a.name == b.name);
    for cfg in defaults {
        let g = generation_time(cfg)?;
        println!(
            "{:<24} {:>10} {:>10} {:>16.2} {:>12.1} {:>10.1} {:>10.2} {:>10.2}",
            g.name,
            g.histories,
            g.steps,
            g.seconds,
            g.cache_bytes as f64 / (1024.0 * 1024.0),
            g.cache_bytes as f64 / g.steps.max(1) as f64,
            g.write_seconds,
            g.load_seconds
        );
    }
    Ok(())
}
