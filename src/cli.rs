//! The command line (clap): subcommands, their arguments and help with examples.

use clap::{ArgAction, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "adlab",
    version,
    about = "Algorithm distillation experiments: RL and RLHF learning histories, RL-heads transformers and causal LMs",
    long_about = None,
    after_help = "Overrides use Hydra's grammar: key=value, group=option, +key=value (add), \
                  ++key=value (add or replace), ~key (delete).\n\
                  Examples:\n  adlab config model=causal_lm optimizer.lr=1e-3\n  adlab run task=darkroom train.steps=300\n  adlab generate task=bandit"
)]
pub struct Cli {
    /// More output (-v debug, -vv trace). RUST_LOG, when set, wins.
    #[arg(short, long, action = ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Less output (-q warnings only, -qq errors only).
    #[arg(short, long, action = ArgAction::Count, global = true)]
    pub quiet: u8,
    /// The conf directory (default: ./conf).
    #[arg(long, global = true, env = "ADLAB_CONFIG_DIR", value_name = "DIR")]
    pub config_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the composed config as YAML, or the defaults tree.
    #[command(
        after_help = "Examples:\n  adlab config\n  adlab config model=causal_lm optimizer.lr=1e-3 +train.note=hello\n  adlab config --info +experiment=bandit_ad\n  adlab config --resolve name"
    )]
    Config {
        /// Overrides (key=value, group=option, +key=value, ++key=value, ~key).
        overrides: Vec<String>,
        /// Print with `${...}` interpolations resolved.
        #[arg(long)]
        resolve: bool,
        /// Print the defaults tree (which file each part came from) instead of the config.
        #[arg(long)]
        info: bool,
    },
    /// Run one job: generate or load the learning histories, train, evaluate.
    #[command(
        after_help = "Examples:\n  adlab run\n  adlab run task=darkroom model=rl_heads train.steps=300\n  adlab run +experiment=bandit_ad seed=3"
    )]
    Run {
        /// Overrides (key=value, group=option, +key=value, ++key=value, ~key).
        overrides: Vec<String>,
        /// Use this run directory instead of a fresh one. A new or empty DIR gets a new run;
        /// an adlab run directory is continued from its checkpoint with its saved config
        /// (overrides may only extend train.steps or change threads, device, paths,
        /// launcher); any other directory is refused.
        #[arg(long, value_name = "DIR")]
        run_dir: Option<PathBuf>,
        /// Multirun: overrides may hold sweep values (`a=1,2`, `choice()`, `range()`, `glob()`);
        /// the jobs run as a sweep named `multirun`.
        #[arg(short = 'm', long)]
        multirun: bool,
        /// With -m: print the jobs and exit.
        #[arg(long, requires = "multirun")]
        dry_run: bool,
        /// With -m: stop at the first failed job.
        #[arg(long, requires = "multirun")]
        fail_fast: bool,
    },
    /// Run a sweep: `sweeps/NAME.yaml` expanded into jobs (grid, zip, random search).
    #[command(
        after_help = "Examples:\n  adlab sweep quickstart\n  adlab sweep quickstart --dry-run\n  adlab sweep quickstart seed=0,1,2 train.steps=100\n  adlab sweep --resume runs/sweeps/quickstart/2026-11-23_21-00-00"
    )]
    Sweep {
        /// The sweep: `sweeps/NAME.yaml`.
        #[arg(required_unless_present = "resume")]
        name: Option<String>,
        /// Overrides for every job; sweep values add grid axes (command line wins).
        overrides: Vec<String>,
        /// Print every job with its overrides and run directory, then exit.
        #[arg(long)]
        dry_run: bool,
        /// Run the jobs of an existing sweep directory that did not complete.
        #[arg(long, value_name = "SWEEP_DIR", conflicts_with_all = ["name", "dry_run"])]
        resume: Option<PathBuf>,
        /// Stop at the first failed job (default: keep going and list failures at the end).
        #[arg(long)]
        fail_fast: bool,
        /// Where sweep files live (default: `sweeps/` beside the conf directory).
        #[arg(long, value_name = "DIR")]
        sweeps_dir: Option<PathBuf>,
    },
    /// Compare runs: report.csv, report_grouped.csv, report.md (printed) and plots/.
    #[command(
        after_help = "PATH is a run directory, a sweep directory, or a folder of them (searched recursively).\n\
                      Examples:\n  adlab report runs/sweeps/quickstart/2026-11-23_21-00-00\n  \
                      adlab report runs/bandit-rl_heads --group-by optimizer.lr --sort-by val.loss.final\n  \
                      adlab report runs/sweeps/a runs/sweeps/b --metrics val.action_acc last_k_return --out cmp/"
    )]
    Report {
        /// Run directories, sweep directories, or folders of them.
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
        /// Config keys to group runs by (default: the keys that differ between runs, except seeds).
        #[arg(long, value_name = "KEY", num_args = 1.., value_delimiter = ',')]
        group_by: Option<Vec<String>>,
        /// Figures in the markdown table, matched by dotted parts (`loss`, `val.action_acc`,
        /// `last_k_return`); the CSV files always hold every figure.
        #[arg(long, value_name = "M", num_args = 1.., value_delimiter = ',')]
        metrics: Vec<String>,
        /// The figure groups are sorted on, best first (default: val.action_acc.final, else
        /// val.loss.final).
        #[arg(long, value_name = "M")]
        sort_by: Option<String>,
        /// Output directory (default: the sweep directory when one sweep is given, else ./report).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
    /// Print one learning history as the composed format shows it to the model: token
    /// boundaries, action and reward tokens marked, tokens per step and per episode, and the
    /// part of the history one training window covers.
    #[command(
        after_help = "A text format with the default model shows it as model=causal_lm reads it.\n\
                      Examples:\n  adlab show task=darkroom format=coords\n  adlab show +experiment=rlhf_ad\n  \
                      adlab show task=bandit --steps 5 --history 3"
    )]
    Show {
        /// Overrides (key=value, group=option, +experiment=NAME, ...).
        overrides: Vec<String>,
        /// Which history (RLHF: which source run), by index (default: the first training one).
        #[arg(long, value_name = "N")]
        history: Option<usize>,
        /// Steps printed from each of the start, middle and end of the history.
        #[arg(long, value_name = "K", default_value_t = 3)]
        steps: usize,
        /// Colour the action and reward tokens (auto: when stdout is a terminal and NO_COLOR
        /// is unset); without colour they are marked `[a:...]`, `[r:...]`.
        #[arg(long, value_enum, default_value_t = clap::ColorChoice::Auto)]
        color: clap::ColorChoice,
    },
    /// Build (or reuse) the learning-history cache of a task config.
    #[command(
        after_help = "Examples:\n  adlab generate task=darkroom\n  adlab generate task=bandit task.seed=1 paths.data=/scratch/data"
    )]
    Generate {
        /// Overrides (key=value, group=option, ...).
        overrides: Vec<String>,
    },
    /// In-context evaluation of a trained run: writes eval.csv and summary.json into RUN_DIR.
    #[command(
        after_help = "Loads RUN_DIR/config.yaml (with the overrides applied), the checkpoint and the data cache.\n\
                      Examples:\n  adlab eval runs/bandit-rl_heads/2026-11-23_21-30-00_1a2b3c\n  adlab eval RUN_DIR eval.episodes=100 eval.temperature=1.0"
    )]
    Eval {
        /// The run directory (holding config.yaml and checkpoint/).
        run_dir: PathBuf,
        /// Overrides of the run's config (key=value, +key=value, ++key=value, ~key).
        overrides: Vec<String>,
    },
    /// Read TRLx rollout logs (DIR/run-<id>/epoch-<time>.json) and summarise them per run.
    #[command(
        after_help = "Every run-* directory under DIR is read; a bad run is skipped with its error \
                      (--strict: it is the error). Logs without query_text/response_text need the \
                      policy's tokenizer to decode their ids.\n\
                      Examples:\n  adlab import-trlx logs/ppo_sentiments\n  \
                      adlab import-trlx logs/ppo_sentiments --tokenizer gpt2/tokenizer.json --out data/trlx/sentiments"
    )]
    ImportTrlx {
        /// The directory holding the run-<id>/ directories (or one run directory).
        dir: PathBuf,
        /// A Hugging Face tokenizer.json, to decode logs that hold ids only (and encode
        /// text-only logs); its end-of-text id is the default padding id.
        #[arg(long, value_name = "FILE")]
        tokenizer: Option<PathBuf>,
        /// The padding id stripped from the left of query_tensor (default: the tokenizer's
        /// end-of-text id; without a tokenizer, nothing is stripped).
        #[arg(long, value_name = "ID")]
        pad_id: Option<u32>,
        /// Fail on the first bad run instead of skipping it.
        #[arg(long)]
        strict: bool,
        /// Write the normalised logs here (texts filled in, padding stripped), readable
        /// without a tokenizer.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
    /// Print a shell completion script.
    #[command(
        after_help = "Example:\n  adlab completions bash > ~/.local/share/bash-completion/completions/adlab"
    )]
    Completions { shell: clap_complete::Shell },
}

impl Cli {
    /// `-v` count minus `-q` count.
    pub fn verbosity(&self) -> i8 {
        self.verbose.min(10) as i8 - self.quiet.min(10) as i8
    }
}
