//! [`HttpFleet`]: the [`DrainFleet`] of a platform that implements the HTTP contract.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, PoisonError};

use async_trait::async_trait;
use resilience_core::ConfigError;
use resilience_core::clock::{SharedClock, SystemClock};
use resilience_core::retry::RetryStats;

use super::client::{Client, new_request_id};
use super::config::HttpFleetConfig;
use super::errors::CallError;
use super::wire::{WireApp, WireHost, is_valid_name};
use crate::error::FleetError;
use crate::fleet::{App, DrainFleet, FleetSnapshot, Host};
use crate::ids::{AppId, AppState, HostId, HostState};
use crate::names::NameMap;

/// A fleet run by a platform that implements the JSON-over-HTTP contract of
/// `docs/http-contract.md`. A drain-only adapter: the controller places
/// apps ([`Placement::Controller`](crate::fleet::Placement), the default)
/// and the contract has no rollouts.
///
/// Host and app names are mapped to ids through a [`NameMap`] (assigned on
/// first sight). Give it the map restored from the drain's journal
/// ([`HttpFleet::with_names`]) and hand the same map to the controller
/// (`DrainController::with_names`), so the ids stay the same across
/// controller restarts.
#[derive(Debug)]
pub struct HttpFleet {
    client: Client,
    names: NameMap,
    /// The last answer seen per host (capacity and state for error
    /// messages).
    last_hosts: Mutex<HashMap<HostId, WireHost>>,
    /// Request ids of migrates whose outcome is unknown (the platform
    /// could not be reached or did not answer, even after retries): the
    /// controller's next migrate of the same app to the same host reuses
    /// it, so the platform answers the first operation's outcome instead
    /// of starting the app again.
    unsettled: Mutex<HashMap<(AppId, HostId), String>>,
}

impl HttpFleet {
    /// An adapter for the platform `config` describes (validated: an invalid
    /// config is an error naming the field). Needs a tokio runtime when
    /// called.
    pub fn from_config(config: &HttpFleetConfig) -> Result<Self, ConfigError> {
        Self::with_clock(config, SharedClock::new(SystemClock))
    }

    /// Like [`HttpFleet::from_config`], with the retry budget, backoff and
    /// `Retry-After` waits on `clock` (a `ManualClock` in tests). Network
    /// timeouts (`connect_timeout`, `request_timeout`, `migrate_timeout`)
    /// run on tokio's timer.
    pub fn with_clock(config: &HttpFleetConfig, clock: SharedClock) -> Result<Self, ConfigError> {
        Ok(HttpFleet {
            client: Client::new(config, clock)?,
            names: NameMap::new(),
            last_hosts: Mutex::new(HashMap::new()),
            unsettled: Mutex::new(HashMap::new()),
        })
    }

    /// Uses `names` (e.g. `NameMap::from_records` of the drain's journal)
    /// to map the platform's names to ids.
    #[must_use]
    pub fn with_names(mut self, names: NameMap) -> Self {
        self.names = names;
        self
    }

    /// The map of names to ids this adapter uses (a shared handle).
    pub fn names(&self) -> NameMap {
        self.names.clone()
    }

    /// The platform's base URL.
    pub fn url(&self) -> String {
        self.client.url()
    }

    /// Counters of the adapter's retry policy (calls, attempts, retries).
    pub fn retry_stats(&self) -> RetryStats {
        self.client.policy().stats()
    }

    /// The platform's name of a host this adapter has seen.
    pub fn host_name(&self, id: HostId) -> Option<String> {
        self.names.host_name(id)
    }

    /// The platform's name of an app this adapter has seen.
    pub fn app_name(&self, id: AppId) -> Option<String> {
        self.names.app_name(id)
    }

    /// The id of a host name this adapter has seen.
    pub fn host_id(&self, name: &str) -> Option<HostId> {
        self.names.find_host(name)
    }

    /// The id of an app name this adapter has seen.
    pub fn app_id(&self, name: &str) -> Option<AppId> {
        self.names.find_app(name)
    }

    fn last_host(&self, id: HostId) -> Option<WireHost> {
        self.last_hosts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&id)
            .cloned()
    }

    fn remember_host(&self, id: HostId, host: WireHost) {
        self.last_hosts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, host);
    }

    fn host_name_or_err(&self, id: HostId) -> Result<String, FleetError> {
        self.host_name(id).ok_or(FleetError::UnknownHost(id))
    }

    fn app_name_or_err(&self, id: AppId) -> Result<String, FleetError> {
        self.app_name(id).ok_or(FleetError::UnknownApp(id))
    }

    fn bad(&self, endpoint: &str, reason: String) -> FleetError {
        FleetError::BadResponse {
            endpoint: format!("{endpoint} at {}", self.url()),
            reason,
        }
    }

    fn to_hosts(&self, wire: Vec<WireHost>) -> Result<Vec<Host>, FleetError> {
        let mut seen = HashSet::with_capacity(wire.len());
        for host in &wire {
            if !is_valid_name(&host.name) {
                return Err(self.bad(
                    "GET /v1/hosts",
                    format!("host name `{}` is not a valid name of the contract ([A-Za-z0-9._:-], 1 to 253 bytes)", host.name.escape_debug()),
                ));
            }
            if !seen.insert(host.name.as_str()) {
                return Err(self.bad(
                    "GET /v1/hosts",
                    format!("host `{}` is listed twice", host.name),
                ));
            }
        }
        wire.into_iter()
            .map(|w| {
                let id = self
                    .names
                    .host_id(&w.name)
                    .map_err(|e| self.bad("GET /v1/hosts", e.to_string()))?;
                let host = Host {
                    id,
                    capacity: w.capacity,
                    state: w.state,
                    version: w.version.clone(),
                };
                self.remember_host(id, w);
                Ok(host)
            })
            .collect()
    }

    fn to_app(&self, endpoint: &str, w: &WireApp) -> Result<App, FleetError> {
        if !is_valid_name(&w.name) {
            return Err(self.bad(
                endpoint,
                format!(
                    "app name `{}` is not a valid name of the contract",
                    w.name.escape_debug()
                ),
            ));
        }
        let host = self.host_id(&w.host).ok_or_else(|| {
            self.bad(
                endpoint,
                format!(
                    "app `{}` is on host `{}`, which GET /v1/hosts does not list",
                    w.name,
                    w.host.escape_debug()
                ),
            )
        })?;
        let id = self
            .names
            .app_id(&w.name)
            .map_err(|e| self.bad(endpoint, e.to_string()))?;
        Ok(App {
            id,
            host,
            state: w.state,
        })
    }

    /// A refusal of a call on `host` and/or `app` as the fleet error the
    /// contract maps its code to.
    fn refused(
        &self,
        error: CallError,
        host: Option<(HostId, HostState)>,
        app: Option<AppId>,
    ) -> FleetError {
        let CallError::Refused {
            endpoint,
            code,
            message,
            ..
        } = &error
        else {
            return error.into_fleet_error();
        };
        let last = |id: HostId| self.last_host(id);
        match (code.as_str(), host, app) {
            ("unknown_host", Some((id, _)), _) => FleetError::UnknownHost(id),
            ("unknown_app", _, Some(id)) => FleetError::UnknownApp(id),
            ("busy", _, Some(id)) => FleetError::Busy { app: id },
            ("start_failed", Some((host, _)), Some(app)) => FleetError::StartFailed {
                app,
                host,
                reason: message.clone(),
            },
            ("no_capacity", Some((id, _)), _) => FleetError::NoCapacity {
                host: id,
                capacity: last(id).map_or(0, |h| h.capacity),
            },
            ("not_accepting", Some((id, _)), _) => FleetError::NotAccepting {
                host: id,
                state: last(id).map_or(HostState::Cordoned, |h| h.state),
            },
            ("invalid_transition", Some((id, to)), _) => FleetError::InvalidTransition {
                host: id,
                from: last(id).map_or(to, |h| h.state),
                to,
                hint: format!(": {message}"),
            },
            ("invalid_request" | "request_id_conflict", _, _) => {
                FleetError::InvalidArgument(format!("{endpoint}: {code}: {message}"))
            }
            _ => error.into_fleet_error(),
        }
    }
}

#[async_trait]
impl DrainFleet for HttpFleet {
    async fn hosts(&self) -> Result<Vec<Host>, FleetError> {
        let wire = self
            .client
            .hosts()
            .await
            .map_err(CallError::into_fleet_error)?;
        self.to_hosts(wire)
    }

    async fn apps(&self) -> Result<Vec<App>, FleetError> {
        let wire = self
            .client
            .apps()
            .await
            .map_err(CallError::into_fleet_error)?;
        // Apps may sit on hosts this handle has not listed yet.
        if wire.iter().any(|a| self.host_id(&a.host).is_none()) {
            self.hosts().await?;
        }
        let mut seen = HashSet::with_capacity(wire.len());
        wire.iter()
            .map(|w| {
                if !seen.insert(w.name.as_str()) {
                    return Err(
                        self.bad("GET /v1/apps", format!("app `{}` is listed twice", w.name))
                    );
                }
                self.to_app("GET /v1/apps", w)
            })
            .collect()
    }

    async fn snapshot(&self) -> Result<FleetSnapshot, FleetError> {
        let hosts = self.hosts().await?;
        let apps = self.apps().await?;
        FleetSnapshot::new(hosts, apps)
    }

    async fn set_host_state(&self, host: HostId, state: HostState) -> Result<(), FleetError> {
        let name = self.host_name_or_err(host)?;
        let endpoint = format!("PUT /v1/hosts/{name}/state");
        let answer = self
            .client
            .set_host_state(&name, state)
            .await
            .map_err(|e| self.refused(e, Some((host, state)), None))?;
        if answer.name != name || answer.state != state {
            return Err(self.bad(
                &endpoint,
                format!(
                    "answered host `{}` in state {} for host `{name}` set to {state}",
                    answer.name, answer.state
                ),
            ));
        }
        tracing::info!(host = %name, state = %state, "host state set");
        self.remember_host(host, answer);
        Ok(())
    }

    async fn migrate(&self, app: AppId, to: HostId) -> Result<(), FleetError> {
        let app_name = self.app_name_or_err(app)?;
        let host_name = self.host_name_or_err(to)?;
        let endpoint = format!("POST /v1/apps/{app_name}/migrate");
        let request_id = self
            .unsettled
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&(app, to))
            .unwrap_or_else(new_request_id);
        let answer = match self
            .client
            .migrate(&app_name, &host_name, &request_id)
            .await
        {
            Ok(answer) => answer,
            Err(error) => {
                if error.outcome_unknown() {
                    tracing::info!(app = %app_name, to = %host_name, request_id, "migrate outcome unknown: the next migrate to the same host reuses its request_id");
                    self.unsettled
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .insert((app, to), request_id);
                }
                return Err(self.refused(error, Some((to, HostState::Active)), Some(app)));
            }
        };
        if answer.name != app_name || answer.host != host_name {
            return Err(self.bad(
                &endpoint,
                format!(
                    "answered app `{}` on host `{}` for app `{app_name}` migrated to `{host_name}`",
                    answer.name, answer.host
                ),
            ));
        }
        match answer.state {
            AppState::Running => {
                tracing::info!(app = %app_name, to = %host_name, "app migrated");
                Ok(())
            }
            other => Err(self.bad(
                &endpoint,
                format!(
                    "answered 200 with state {other}; a successful migrate answers `running` \
                     and a failed start 422 `start_failed`"
                ),
            )),
        }
    }

    async fn app_health(&self, app: AppId) -> Result<AppState, FleetError> {
        let name = self.app_name_or_err(app)?;
        let endpoint = format!("GET /v1/apps/{name}");
        let answer = self
            .client
            .app(&name)
            .await
            .map_err(|e| self.refused(e, None, Some(app)))?;
        if answer.name != name {
            return Err(self.bad(
                &endpoint,
                format!("answered app `{}` for app `{name}`", answer.name),
            ));
        }
        Ok(answer.state)
    }
}
