//! The command's TOML file: the drain's own settings (the keys and
//! sections of [`DrainConfig`], as in `examples/drain.toml`) plus the
//! command's sections: `targets`, `[adapter]`, `[journal]`, `[control]`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::CliError;
use fleet_drain::drain::DrainConfig;
use fleet_drain::fleet::Placement;

/// The whole file.
#[derive(Debug)]
pub(crate) struct CliConfig {
    /// Hosts to drain, by their adapter names, in order.
    pub(crate) targets: Vec<String>,
    pub(crate) adapter: AdapterConfig,
    pub(crate) journal: JournalConfig,
    pub(crate) control: ControlConfig,
    pub(crate) metrics: Option<MetricsConfig>,
    pub(crate) drain: DrainConfig,
}

/// `[metrics]`: the Prometheus endpoint of `run`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MetricsConfig {
    /// Address to serve the metrics on (`127.0.0.1:9184`; port 0: any,
    /// printed at start).
    pub(crate) listen: std::net::SocketAddr,
}

/// `[adapter]`: the fleet to drain.
#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub(crate) enum AdapterConfig {
    /// The built-in simulated platform, to try the command.
    Sim(SimAdapterConfig),
    /// A platform implementing the HTTP contract (feature `http`).
    #[allow(dead_code)] // read only when built with the `http` feature
    Http(toml::Table),
}

/// `[adapter] kind = "sim"`: a simulated platform whose state lives in a
/// JSON file (created on first use), so a restarted command finds it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SimAdapterConfig {
    /// The platform's state file (relative to the config file).
    pub(crate) state: PathBuf,
    /// Hosts named `old-0`, `old-1`, ... with `apps_per_host` apps each.
    pub(crate) old_hosts: u32,
    pub(crate) apps_per_host: u32,
    /// Empty hosts named `new-0`, ... of `new_capacity` slots.
    pub(crate) new_hosts: u32,
    pub(crate) new_capacity: u32,
    /// How long an app start takes.
    #[serde(with = "humantime_serde", default = "default_start_duration")]
    pub(crate) start_duration: Duration,
    /// Who picks receivers (`controller` or `platform`).
    #[serde(default)]
    pub(crate) placement: Placement,
}

fn default_start_duration() -> Duration {
    Duration::from_secs(2)
}

/// `[journal]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct JournalConfig {
    /// The journal file (relative to the config file).
    pub(crate) file: PathBuf,
}

/// `[control]`: where `pause`/`resume`/`abort`/`status` reach a running
/// controller.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ControlConfig {
    /// The Unix socket (relative to the config file). Default: the journal
    /// file's path with `.sock` appended.
    pub(crate) socket: Option<PathBuf>,
    /// How often `run` prints a progress line. Default: `check_interval`.
    #[serde(with = "humantime_serde::option", default)]
    pub(crate) progress_interval: Option<Duration>,
}

impl CliConfig {
    /// Reads and validates the file at `path`.
    pub(crate) fn load(path: &Path) -> Result<Self, CliError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| CliError::Config(format!("cannot read {}: {e}", path.display())))?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::parse(&text, base)
    }

    /// Parses `text`; relative paths are taken from `base`.
    pub(crate) fn parse(text: &str, base: &Path) -> Result<Self, CliError> {
        let bad = |e: &dyn std::fmt::Display| CliError::Config(e.to_string());
        let mut table: toml::Table = toml::from_str(text).map_err(|e| bad(&e))?;
        let mut take = |key: &str| {
            table.remove(key).ok_or_else(|| {
                CliError::Config(format!(
                    "missing `{key}`: see the fleet-drain README, \"The fleet-drain command\""
                ))
            })
        };
        let targets: Vec<String> = take("targets")?
            .try_into()
            .map_err(|e| CliError::Config(format!("`targets`: {e}")))?;
        let adapter: AdapterConfig = take("adapter")?
            .try_into()
            .map_err(|e| CliError::Config(format!("[adapter]: {e}")))?;
        let mut journal: JournalConfig = take("journal")?
            .try_into()
            .map_err(|e| CliError::Config(format!("[journal]: {e}")))?;
        let mut control: ControlConfig = match table.remove("control") {
            Some(value) => value
                .try_into()
                .map_err(|e| CliError::Config(format!("[control]: {e}")))?,
            None => ControlConfig::default(),
        };
        let metrics: Option<MetricsConfig> = match table.remove("metrics") {
            Some(value) => Some(
                value
                    .try_into()
                    .map_err(|e| CliError::Config(format!("[metrics]: {e}")))?,
            ),
            None => None,
        };
        let drain: DrainConfig = toml::Value::Table(table)
            .try_into()
            .map_err(|e| CliError::Config(format!("drain settings: {e}")))?;
        drain
            .validate()
            .map_err(|e| CliError::Config(format!("drain settings: {e}")))?;
        if targets.is_empty() {
            return Err(CliError::Config(
                "`targets` is empty: name at least one host to drain".into(),
            ));
        }
        journal.file = base.join(&journal.file);
        control.socket = Some(if let Some(socket) = control.socket.take() {
            base.join(socket)
        } else {
            let mut socket = journal.file.clone().into_os_string();
            socket.push(".sock");
            PathBuf::from(socket)
        });
        let adapter = match adapter {
            AdapterConfig::Sim(mut sim) => {
                sim.state = base.join(&sim.state);
                if sim.start_duration.is_zero() {
                    return Err(CliError::Config(
                        "[adapter] start_duration must be > 0".into(),
                    ));
                }
                AdapterConfig::Sim(sim)
            }
            other @ AdapterConfig::Http(_) => other,
        };
        Ok(CliConfig {
            targets,
            adapter,
            journal,
            control,
            metrics,
            drain,
        })
    }

    /// The control socket's path.
    pub(crate) fn socket(&self) -> PathBuf {
        self.control.socket.clone().unwrap_or_default()
    }

    /// How often `run` prints progress.
    pub(crate) fn progress_interval(&self) -> Duration {
        self.control
            .progress_interval
            .unwrap_or(self.drain.check_interval)
    }
}
