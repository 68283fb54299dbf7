//! The `fleet-drain` command: plan, run, inspect and steer a drain
//! described in a TOML file. See the crate README, "The fleet-drain
//! command", for the file and the exit codes.

mod adapter;
mod commands;
mod config;
mod control;
mod metrics;
mod sim_adapter;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit codes (documented in the README).
pub(crate) mod exit {
    /// Done (or the command's answer printed).
    pub(crate) const OK: u8 = 0;
    /// An error; a one-line message on stderr.
    pub(crate) const ERROR: u8 = 1;
    /// Bad command line (clap's own code).
    pub(crate) const USAGE: u8 = 2;
    /// The drain was aborted (by the health gate or an operator), now or
    /// earlier (the journal says so).
    pub(crate) const ABORTED: u8 = 3;
    /// `pause`/`resume`/`abort`: no controller is running for this config.
    pub(crate) const NOT_RUNNING: u8 = 4;
}

/// What went wrong; each maps to one exit code and one line on stderr.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CliError {
    #[error("config: {0}")]
    Config(String),
    #[error("adapter: {0}")]
    Adapter(String),
    #[error("{0}")]
    Io(String),
    #[error(transparent)]
    Drain(#[from] fleet_drain::DrainError),
    #[error(transparent)]
    Journal(#[from] fleet_drain::JournalError),
    #[error("aborted: {0}")]
    Aborted(String),
    #[error("{0}")]
    NotRunning(String),
}

impl CliError {
    fn code(&self) -> u8 {
        match self {
            CliError::Aborted(_) | CliError::Drain(fleet_drain::DrainError::Aborted { .. }) => {
                exit::ABORTED
            }
            CliError::NotRunning(_) => exit::NOT_RUNNING,
            _ => exit::ERROR,
        }
    }
}

/// Bounded, health-gated drains of a fleet (see the fleet-drain README).
#[derive(Debug, Parser)]
#[command(name = "fleet-drain", version, about)]
pub(crate) struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the waves the drain would run (dry run: nothing is changed).
    Plan(Args),
    /// Run the drain to completion, printing progress; resumes from the
    /// journal after a crash.
    Run(Args),
    /// Show the drain's progress (from the running controller, else the
    /// journal).
    Status(Args),
    /// Hold the running controller's new moves (starts in progress finish).
    Pause(Args),
    /// Let a paused controller go on.
    Resume(Args),
    /// Stop the running controller and journal the abort.
    Abort(Args),
}

#[derive(Debug, clap::Args)]
struct Args {
    /// The drain's TOML file.
    #[arg(long, short)]
    config: PathBuf,
}

/// Runs the command line; the process's exit code.
pub(crate) fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return ExitCode::from(if error.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            });
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("fleet-drain: cannot start the async runtime: {error}");
            return ExitCode::from(exit::ERROR);
        }
    };
    match runtime.block_on(dispatch(cli.command)) {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            let line = error.to_string().replace('\n', " ");
            eprintln!("fleet-drain: {line}");
            ExitCode::from(error.code())
        }
    }
}

async fn dispatch(command: Command) -> Result<u8, CliError> {
    match command {
        Command::Plan(args) => commands::plan(&config::CliConfig::load(&args.config)?).await,
        Command::Run(args) => commands::run(config::CliConfig::load(&args.config)?).await,
        Command::Status(args) => commands::status(&config::CliConfig::load(&args.config)?).await,
        Command::Pause(args) => {
            commands::steer(&config::CliConfig::load(&args.config)?, "pause").await
        }
        Command::Resume(args) => {
            commands::steer(&config::CliConfig::load(&args.config)?, "resume").await
        }
        Command::Abort(args) => {
            commands::steer(&config::CliConfig::load(&args.config)?, "abort").await
        }
    }
}
