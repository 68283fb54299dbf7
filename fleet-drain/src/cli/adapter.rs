//! Builds the adapter named in `[adapter]`, and translates the operator's
//! host names to ids and back.

use std::sync::Arc;

use super::CliError;
use super::config::AdapterConfig;
use super::sim_adapter::SimAdapter;
use fleet_drain::fleet::{DrainFleet, HostId};
use fleet_drain::journal::JournalRecord;
use fleet_drain::names::NameMap;

type HostIdFn = Box<dyn Fn(&str) -> Option<HostId> + Send + Sync>;
type HostNameFn = Box<dyn Fn(HostId) -> String + Send + Sync>;

/// The fleet, with its names.
pub(crate) struct Adapter {
    pub(crate) fleet: Arc<dyn DrainFleet>,
    host_id: HostIdFn,
    host_name: HostNameFn,
    /// The journaled names (adapters that map names through a [`NameMap`]).
    pub(crate) names: Option<NameMap>,
}

impl std::fmt::Debug for Adapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Adapter").finish_non_exhaustive()
    }
}

impl Adapter {
    /// The adapter of `config`; `records` (the journal so far) restore the
    /// names of adapters that journal them.
    pub(crate) fn build(
        config: &AdapterConfig,
        records: &[JournalRecord],
    ) -> Result<Self, CliError> {
        match config {
            AdapterConfig::Sim(sim) => {
                let _ = records;
                let sim = Arc::new(SimAdapter::open(sim)?);
                let (by_name, by_id) = (Arc::clone(&sim), Arc::clone(&sim));
                Ok(Adapter {
                    fleet: sim,
                    host_id: Box::new(move |name| by_name.host_id(name)),
                    host_name: Box::new(move |id| by_id.host_name(id)),
                    names: None,
                })
            }
            #[cfg(feature = "http")]
            AdapterConfig::Http(table) => {
                let config: fleet_drain::http::HttpFleetConfig =
                    toml::Value::Table(table.clone())
                        .try_into()
                        .map_err(|e| CliError::Config(format!("[adapter] (http): {e}")))?;
                let names = NameMap::from_records(records)
                    .map_err(|e| CliError::Adapter(format!("names in the journal: {e}")))?;
                let fleet = fleet_drain::http::HttpFleet::from_config(&config)
                    .map_err(|e| CliError::Config(format!("[adapter] (http): {e}")))?
                    .with_names(names.clone());
                let (by_name, by_id) = (names.clone(), names.clone());
                Ok(Adapter {
                    fleet: Arc::new(fleet),
                    host_id: Box::new(move |name| by_name.find_host(name)),
                    host_name: Box::new(move |id| {
                        by_id.host_name(id).unwrap_or_else(|| id.to_string())
                    }),
                    names: Some(names),
                })
            }
            #[cfg(not(feature = "http"))]
            AdapterConfig::Http(_) => {
                Err(CliError::Config(
                    "[adapter] kind = \"http\": this fleet-drain was built without the `http` feature; rebuild with `--features cli,http`".into(),
                ))
            }
        }
    }

    /// The ids of the named hosts, in order (after listing the fleet, so
    /// adapters that name hosts on first sight know them all).
    pub(crate) async fn resolve(&self, names: &[String]) -> Result<Vec<HostId>, CliError> {
        let hosts = self
            .fleet
            .hosts()
            .await
            .map_err(|e| CliError::Adapter(format!("listing hosts: {e}")))?;
        names
            .iter()
            .map(|name| {
                (self.host_id)(name)
                    .filter(|id| hosts.iter().any(|h| h.id == *id))
                    .ok_or_else(|| {
                        CliError::Config(format!(
                            "target `{name}` is not a host of the fleet ({} hosts listed)",
                            hosts.len()
                        ))
                    })
            })
            .collect()
    }

    /// The operator's name of `host`.
    pub(crate) fn name(&self, host: HostId) -> String {
        (self.host_name)(host)
    }
}
