//! What fleet to run: the command line, validated.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The command line of `local-fleet`.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "local-fleet",
    about = "A fleet of real Node processes on this machine, behind fleet-drain's HTTP contract (docs/http-contract.md)"
)]
pub struct Args {
    /// Hosts to drain (`old-1` ... `old-N`), each running `--apps-per-host` apps.
    #[arg(long, default_value_t = 4)]
    pub hosts: usize,
    /// Empty receiving hosts (`new-1` ... `new-M`).
    #[arg(long, default_value_t = 4)]
    pub receivers: usize,
    /// Apps on each host to drain.
    #[arg(long, default_value_t = 10)]
    pub apps_per_host: usize,
    /// Capacity of each receiver (default: twice an even share of all apps).
    #[arg(long)]
    pub receiver_capacity: Option<u32>,
    /// Where the contract is served; port 0 picks one (printed as `listening on ADDR`).
    #[arg(long, default_value = "127.0.0.1:7070")]
    pub listen: SocketAddr,
    /// Working directory: one sub-directory per host (its store and apps).
    #[arg(long)]
    pub dir: PathBuf,
    /// `APP@HOST`: this app's starts on this host fail (the process exits at once);
    /// `*@HOST`: every start on the host fails. Repeatable.
    #[arg(long = "fail-start", value_name = "APP@HOST")]
    pub fail_start: Vec<String>,
    /// The `node` binary.
    #[arg(long, default_value = "node")]
    pub node: String,
    /// How long a start may take to print its port, and then to answer `/healthz`.
    #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
    pub start_timeout: Duration,
    /// Initial apps started at once while the fleet comes up.
    #[arg(long, default_value_t = 8)]
    pub boot_concurrency: usize,
}

/// A start that is made to fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailStart {
    /// The app, or `None` for every app.
    pub app: Option<String>,
    /// The host.
    pub host: String,
}

/// The validated fleet to run.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Hosts to drain.
    pub hosts: usize,
    /// Receivers.
    pub receivers: usize,
    /// Apps per host to drain.
    pub apps_per_host: usize,
    /// Capacity of each receiver.
    pub receiver_capacity: u32,
    /// Working directory.
    pub dir: PathBuf,
    /// Starts made to fail.
    pub fail_starts: Vec<FailStart>,
    /// The `node` binary.
    pub node: String,
    /// Start timeout (port, then health).
    pub start_timeout: Duration,
    /// Initial starts at once.
    pub boot_concurrency: usize,
}

/// A command line that cannot run.
#[derive(Debug, thiserror::Error)]
#[error("invalid `--{flag}`: {reason}")]
pub struct SpecError {
    flag: &'static str,
    reason: String,
}

impl Spec {
    /// Validates `args`.
    pub fn from_args(args: &Args) -> Result<Spec, SpecError> {
        let err = |flag, reason: &str| SpecError {
            flag,
            reason: reason.to_owned(),
        };
        if args.hosts == 0 || args.hosts > 1000 {
            return Err(err("hosts", "must be in 1..=1000"));
        }
        if args.receivers == 0 || args.receivers > 1000 {
            return Err(err("receivers", "must be in 1..=1000"));
        }
        if args.apps_per_host == 0 || args.apps_per_host > 1000 {
            return Err(err("apps-per-host", "must be in 1..=1000"));
        }
        if args.start_timeout.is_zero() {
            return Err(err("start-timeout", "must be greater than zero"));
        }
        if args.boot_concurrency == 0 {
            return Err(err("boot-concurrency", "must be at least 1"));
        }
        let total = args.hosts * args.apps_per_host;
        let share = total.div_ceil(args.receivers);
        let receiver_capacity = match args.receiver_capacity {
            Some(0) => return Err(err("receiver-capacity", "must be at least 1")),
            Some(c) => c,
            None => u32::try_from(share * 2).unwrap_or(u32::MAX),
        };
        let fail_starts = args
            .fail_start
            .iter()
            .map(|s| match s.split_once('@') {
                Some((app, host)) if !app.is_empty() && !host.is_empty() => Ok(FailStart {
                    app: (app != "*").then(|| app.to_owned()),
                    host: host.to_owned(),
                }),
                _ => Err(SpecError {
                    flag: "fail-start",
                    reason: format!("`{s}` is not APP@HOST (or *@HOST)"),
                }),
            })
            .collect::<Result<_, _>>()?;
        Ok(Spec {
            hosts: args.hosts,
            receivers: args.receivers,
            apps_per_host: args.apps_per_host,
            receiver_capacity,
            dir: args.dir.clone(),
            fail_starts,
            node: args.node.clone(),
            start_timeout: args.start_timeout,
            boot_concurrency: args.boot_concurrency,
        })
    }

    /// Whether `app`'s start on `host` is made to fail.
    pub fn fails(&self, app: &str, host: &str) -> bool {
        self.fail_starts
            .iter()
            .any(|f| f.host == host && f.app.as_deref().is_none_or(|a| a == app))
    }
}
