//! `incident-replay`: replays the November 2019 and February 2019 incidents
//! on a deterministic simulation, naive policies vs Breakwater's, and prints
//! a side-by-side table, writes SVG charts and optionally JSON.
//!
//! ```sh
//! cargo run --release -p breakwater-examples --bin incident-replay
//! cargo run --release -p breakwater-examples --bin incident-replay -- --scenario nov-2019 --seed 7 --json
//! cargo run --release -p breakwater-examples --bin incident-replay -- --set nov.servers=20 --set nov.client_rps=2000
//! ```

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use breakwater_examples::replay::{self, ReplayOptions, ScenarioChoice};
use clap::{Parser, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Scenario {
    #[value(name = "nov-2019")]
    Nov2019,
    #[value(name = "feb-2019")]
    Feb2019,
    All,
}

/// Replay both incidents, naive vs Breakwater.
#[allow(clippy::struct_excessive_bools)] // independent command-line flags
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    /// Which incident to replay.
    #[arg(long, value_enum, default_value = "all")]
    scenario: Scenario,
    /// Seed of every random choice; the same seed gives the same output.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print one JSON document on stdout instead of the tables.
    #[arg(long)]
    json: bool,
    /// Directory for the SVG charts.
    #[arg(long, default_value = "target/incident-replay")]
    out: PathBuf,
    /// Override a scenario parameter, e.g. `--set nov.servers=20` (repeatable;
    /// `--list-params` shows them all).
    #[arg(long = "set", value_name = "SCENARIO.PARAM=VALUE")]
    set: Vec<String>,
    /// Skip the ablation runs (naive plus one mechanism at a time).
    #[arg(long)]
    no_ablation: bool,
    /// Do not write charts.
    #[arg(long)]
    no_charts: bool,
    /// Print every scenario parameter with its value and exit.
    #[arg(long)]
    list_params: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: &Cli) -> Result<(), replay::ReplayError> {
    let mut options = ReplayOptions {
        scenario: match cli.scenario {
            Scenario::Nov2019 => ScenarioChoice::Nov2019,
            Scenario::Feb2019 => ScenarioChoice::Feb2019,
            Scenario::All => ScenarioChoice::All,
        },
        seed: cli.seed,
        ablation: !cli.no_ablation,
        ..ReplayOptions::default()
    };
    for assignment in &cli.set {
        options.set(assignment)?;
    }
    options.validate()?;
    if cli.list_params {
        let flat = |params: serde_json::Result<serde_json::Value>| {
            params.map(|v| serde_json::Value::Object(replay::flatten(&v)))
        };
        let params = serde_json::json!({
            "nov": flat(serde_json::to_value(&options.nov)).unwrap_or_default(),
            "feb": flat(serde_json::to_value(&options.feb)).unwrap_or_default(),
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&params).unwrap_or_default()
        );
        return Ok(());
    }
    let started = Instant::now();
    let bar = if std::io::stderr().is_terminal() {
        let bar = ProgressBar::new(options.runs() as u64);
        if let Ok(style) =
            ProgressStyle::with_template("{spinner} replaying [{bar:30}] {pos}/{len} runs {msg}")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        Some(bar)
    } else {
        None
    };
    let progress = |name: &str| {
        if let Some(bar) = &bar {
            bar.set_message(name.to_owned());
            bar.inc(1);
        }
    };
    let report = replay::run(&options, &progress)?;
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    if cli.json {
        println!("{}", report.to_json());
    } else {
        println!("{}", report.to_table());
    }
    if !cli.no_charts {
        for path in report.write_charts(&cli.out)? {
            eprintln!("chart: {}", path.display());
        }
    }
    eprintln!("replayed in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}
