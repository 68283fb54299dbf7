//! `[adapter] kind = "sim"`: a [`SimFleet`] on the system clock whose state
//! is saved to a JSON file after every change, so a command killed mid-run
//! and started again finds the platform as it was (like a real one). An
//! app caught mid-start by a crash comes back stopped; the resumed drain
//! restarts it in place.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::CliError;
use super::config::SimAdapterConfig;
use fleet_drain::fleet::{
    App, AppId, AppState, DrainFleet, FleetError, Host, HostId, HostState, Placement,
};
use fleet_drain::sim::{SimConfig, SimFleet};

/// The saved platform.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct SimState {
    pub(crate) hosts: Vec<SimHost>,
    pub(crate) apps: Vec<SimApp>,
}

/// One saved host.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct SimHost {
    pub(crate) name: String,
    pub(crate) capacity: u32,
    pub(crate) state: HostState,
    /// How many times it entered `draining` (a host drained twice shows 2).
    pub(crate) drains: u32,
}

/// One saved app.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct SimApp {
    pub(crate) host: u32,
    pub(crate) state: AppState,
}

/// The simulated platform behind the command.
#[derive(Debug)]
pub(crate) struct SimAdapter {
    sim: SimFleet,
    path: PathBuf,
    names: Vec<String>,
    drains: Mutex<Vec<u32>>,
}

fn io_error(path: &Path, e: &dyn std::fmt::Display) -> CliError {
    CliError::Adapter(format!("sim state {}: {e}", path.display()))
}

impl SimAdapter {
    /// Opens the platform saved at `config.state`, or creates it.
    pub(crate) fn open(config: &SimAdapterConfig) -> Result<Self, CliError> {
        let path = config.state.clone();
        let state = if path.exists() {
            let text = std::fs::read_to_string(&path).map_err(|e| io_error(&path, &e))?;
            serde_json::from_str(&text).map_err(|e| io_error(&path, &e))?
        } else {
            let mut hosts = Vec::new();
            for i in 0..config.old_hosts {
                hosts.push(SimHost {
                    name: format!("old-{i}"),
                    capacity: config.apps_per_host.max(1),
                    state: HostState::Active,
                    drains: 0,
                });
            }
            for i in 0..config.new_hosts {
                hosts.push(SimHost {
                    name: format!("new-{i}"),
                    capacity: config.new_capacity,
                    state: HostState::Active,
                    drains: 0,
                });
            }
            let apps = (0..config.old_hosts)
                .flat_map(|h| {
                    (0..config.apps_per_host).map(move |_| SimApp {
                        host: h,
                        state: AppState::Running,
                    })
                })
                .collect();
            SimState { hosts, apps }
        };
        let sim = SimFleet::new(SimConfig {
            start_duration: config.start_duration,
            failure_probability_per_extra_start: 0.0,
            max_failure_probability: 0.0,
            ..SimConfig::default()
        })
        .map_err(|e| CliError::Config(format!("[adapter]: {e}")))?;
        sim.set_placement(config.placement);
        for host in &state.hosts {
            sim.add_host(host.capacity, "v1");
        }
        for (i, app) in state.apps.iter().enumerate() {
            let id = sim
                .add_app(HostId(app.host))
                .map_err(|e| io_error(&path, &e))?;
            debug_assert_eq!(id.0 as usize, i);
            // A start cut short by a crash: the app is not running.
            let app_state = match app.state {
                AppState::Starting => AppState::Stopped,
                other => other,
            };
            sim.set_app_state(id, app_state)
                .map_err(|e| io_error(&path, &e))?;
        }
        for (i, host) in state.hosts.iter().enumerate() {
            let id = HostId(u32::try_from(i).unwrap_or(u32::MAX));
            futures::executor::block_on(sim.set_host_state(id, host.state))
                .map_err(|e| io_error(&path, &e))?;
        }
        let adapter = SimAdapter {
            sim,
            names: state.hosts.iter().map(|h| h.name.clone()).collect(),
            drains: Mutex::new(state.hosts.iter().map(|h| h.drains).collect()),
            path,
        };
        adapter.save()?;
        Ok(adapter)
    }

    /// The id of the host named `name`.
    pub(crate) fn host_id(&self, name: &str) -> Option<HostId> {
        self.names
            .iter()
            .position(|n| n == name)
            .and_then(|i| u32::try_from(i).ok())
            .map(HostId)
    }

    /// The name of host `id`.
    pub(crate) fn host_name(&self, id: HostId) -> String {
        self.names
            .get(id.0 as usize)
            .cloned()
            .unwrap_or_else(|| id.to_string())
    }

    /// Writes the platform's state (atomically: a temporary file renamed).
    fn save(&self) -> Result<(), CliError> {
        let hosts =
            futures::executor::block_on(self.sim.hosts()).map_err(|e| io_error(&self.path, &e))?;
        let apps =
            futures::executor::block_on(self.sim.apps()).map_err(|e| io_error(&self.path, &e))?;
        let drains = self.drains.lock().unwrap_or_else(PoisonError::into_inner);
        let state = SimState {
            hosts: hosts
                .iter()
                .enumerate()
                .map(|(i, h)| SimHost {
                    name: self.names.get(i).cloned().unwrap_or_default(),
                    capacity: h.capacity,
                    state: h.state,
                    drains: drains.get(i).copied().unwrap_or(0),
                })
                .collect(),
            apps: apps
                .iter()
                .map(|a| SimApp {
                    host: a.host.0,
                    state: a.state,
                })
                .collect(),
        };
        let json = serde_json::to_vec_pretty(&state).map_err(|e| io_error(&self.path, &e))?;
        let mut tmp = self.path.clone().into_os_string();
        tmp.push(".tmp");
        std::fs::write(&tmp, json).map_err(|e| io_error(&self.path, &e))?;
        std::fs::rename(&tmp, &self.path).map_err(|e| io_error(&self.path, &e))?;
        Ok(())
    }

    fn saved(&self) -> Result<(), FleetError> {
        self.save()
            .map_err(|e| FleetError::Unavailable(e.to_string()))
    }
}

#[async_trait]
impl DrainFleet for SimAdapter {
    async fn hosts(&self) -> Result<Vec<Host>, FleetError> {
        self.sim.hosts().await
    }

    async fn apps(&self) -> Result<Vec<App>, FleetError> {
        self.sim.apps().await
    }

    async fn set_host_state(&self, host: HostId, state: HostState) -> Result<(), FleetError> {
        let before = self.sim.host(host).map(|h| h.state);
        self.sim.set_host_state(host, state).await?;
        if state == HostState::Draining && before != Some(HostState::Draining) {
            let mut drains = self.drains.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(count) = drains.get_mut(host.0 as usize) {
                *count += 1;
            }
        }
        self.saved()
    }

    async fn migrate(&self, app: AppId, to: HostId) -> Result<(), FleetError> {
        let result = self.sim.migrate(app, to).await;
        self.saved()?;
        result
    }

    async fn app_health(&self, app: AppId) -> Result<AppState, FleetError> {
        self.sim.app_health(app).await
    }

    fn placement(&self) -> Placement {
        self.sim.placement()
    }

    async fn evict(&self, app: AppId) -> Result<HostId, FleetError> {
        let result = self.sim.evict(app).await;
        self.saved()?;
        result
    }
}
