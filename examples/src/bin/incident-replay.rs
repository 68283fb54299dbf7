//! `incident-replay`: replays the November 2019 and February 2019 incidents
//! on a deterministic simulation, naive policies vs Breakwater's, and prints
//! a side-by-side table, writes SVG charts and optionally JSON.
//!
//! ```sh
//! cargo run --release -p breakwater-examples --bin incident-replay
//! cargo run --release -p breakwater-examples --bin incident-replay -- --scenario nov-2019 --seed 7 --json
//! cargo run --release -p breakwater-examples --bin incident-replay -- --set nov.servers=20 --set nov.client_rps=2000
//! cargo run --release -p breakwater-examples --bin incident-replay -- --sweep feb.safe_concurrent_starts=2,4,8,16 --sweep-seeds 3
//! cargo run --release -p breakwater-examples --bin incident-replay -- --metrics-out target/breakwater.prom
//! ```

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use breakwater_examples::replay::prometheus::MetricsCapture;
use breakwater_examples::replay::sweep::{self, SweepOptions};
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
    /// Run a grid over parameters instead of one replay:
    /// `SCENARIO.PARAM=a,b,c[,SCENARIO.PARAM2=x,y]` (repeatable; one
    /// scenario per sweep). Prints medians and spreads over the seeds and
    /// draws heatmaps into `--out`.
    #[arg(long = "sweep", value_name = "SCENARIO.PARAM=a,b,c")]
    sweep: Vec<String>,
    /// Seeds per sweep cell: `--seed`, `--seed + 1`, ...
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=1000))]
    sweep_seeds: u64,
    /// Write the final values of the Breakwater side's metrics to FILE in Prometheus text
    /// format (series labelled `name`, e.g. `feb2019.drain`, `nov2019.staged.rollout`).
    /// Recorded only on the Breakwater and staged sides, not naive or ablation runs; the
    /// same seed writes the same file. Not with `--sweep`.
    #[arg(long, value_name = "FILE", conflicts_with = "sweep")]
    metrics_out: Option<PathBuf>,
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
    if !cli.sweep.is_empty() {
        return sweep(cli, options, started);
    }
    let bar = progress_bar(options.runs(), "replaying");
    let progress = |name: &str| {
        if let Some(bar) = &bar {
            bar.set_message(name.to_owned());
            bar.inc(1);
        }
    };
    let capture = cli.metrics_out.as_ref().map(|_| MetricsCapture::new());
    let report = replay::run_recorded(
        &options,
        &progress,
        capture.as_ref().and_then(MetricsCapture::recording),
    )?;
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
    if let (Some(path), Some(capture)) = (&cli.metrics_out, &capture) {
        write_metrics(path, &capture.render())?;
        eprintln!("metrics: {}", path.display());
    }
    eprintln!("replayed in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

fn sweep(cli: &Cli, base: ReplayOptions, started: Instant) -> Result<(), replay::ReplayError> {
    let options = SweepOptions {
        base,
        axes: sweep::parse(&cli.sweep)?,
        seeds: (0..cli.sweep_seeds)
            .map(|i| cli.seed.saturating_add(i))
            .collect(),
    };
    let bar = progress_bar(options.runs(), "sweeping");
    let progress = |_: &str| {
        if let Some(bar) = &bar {
            bar.inc(1);
        }
    };
    let report = sweep::run(&options, &progress)?;
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    if cli.json {
        println!("{}", report.to_json());
    } else {
        println!("{}", report.to_table());
    }
    if !cli.no_charts {
        let path = report.write_heatmap(&cli.out)?;
        eprintln!("heatmap: {}", path.display());
    }
    eprintln!(
        "swept {} runs in {:.1} s",
        options.runs(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Writes the rendered metrics to `path`, creating its directory.
fn write_metrics(path: &Path, text: &str) -> Result<(), replay::ReplayError> {
    let io = |source| replay::ReplayError::Io {
        path: path.display().to_string(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    std::fs::write(path, text).map_err(io)
}

/// A progress bar on stderr when it is a terminal.
fn progress_bar(len: usize, verb: &str) -> Option<ProgressBar> {
    if std::io::stderr().is_terminal() {
        let bar = ProgressBar::new(len as u64);
        if let Ok(style) = ProgressStyle::with_template(&format!(
            "{{spinner}} {verb} [{{bar:30}}] {{pos}}/{{len}} runs {{eta}} {{msg}}"
        )) {
            bar.set_style(style.progress_chars("=> "));
        }
        Some(bar)
    } else {
        None
    }
}
