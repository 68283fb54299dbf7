//! The world a drain controller acts on: hosts, apps and the fleet traits
//! ([`DrainFleet`], [`RolloutFleet`], and [`Fleet`], both together).
//!
//! # Why a trait?
//!
//! The decisions a drain gets wrong (how many hosts at once, where the apps
//! go, when to pause) do not depend on *how* an app is moved. The
//! controller, the planner and the rollout therefore talk to a small async
//! traits: [`DrainFleet`] lists hosts and apps, changes a host's state
//! (cordon/uncordon, draining, drained), moves an app (placed by the
//! controller, or by the platform: [`Placement`]) and reports an app's
//! health; [`RolloutFleet`] adds starting and stopping versions and
//! shifting traffic. [`Fleet`] is both. `sim::SimFleet` (feature `sim`)
//! implements them in memory for tests and simulations; an orchestrator
//! adapter implements [`DrainFleet`] (and [`RolloutFleet`] if it runs
//! rollouts) in production: see the adapters guide ([`crate::adapters`]).
//!
//! Operations fail with a typed [`FleetError`]; callers retry the
//! [retryable](FleetError::is_retryable) ones with a
//! [`resilience_core::backoff::Backoff`], never in a tight loop.
//!
//! # Example
//!
//! ```
//! use fleet_drain::fleet::{AppState, DrainFleet, HostState};
//! use fleet_drain::sim::{self, SimConfig, SimFleet};
//! use resilience_core::clock::ManualClock;
//!
//! let clock = ManualClock::new();
//! let fleet = SimFleet::with_clock(SimConfig::default(), clock.clone())?;
//! let old = fleet.add_host(10, "v1");
//! let new = fleet.add_host(10, "v1");
//! let app = fleet.add_app(old)?;
//!
//! let result = sim::run(&clock, async {
//!     fleet.cordon(old).await?;
//!     fleet.migrate(app, new).await?; // takes `start_duration` of simulated time
//!     fleet.app_health(app).await
//! })?;
//! assert_eq!(result?, AppState::Running);
//! assert_eq!(fleet.host(old).map(|h| h.state), Some(HostState::Cordoned));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::HashMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use crate::error::FleetError;
pub use crate::ids::{AppId, AppState, HostId, HostState};

/// A host as seen by the controller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Host {
    /// Its id.
    pub id: HostId,
    /// How many apps it can run.
    pub capacity: u32,
    /// Scheduling state.
    pub state: HostState,
    /// The software version it runs.
    pub version: String,
}

/// An app as seen by the controller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct App {
    /// Its id.
    pub id: AppId,
    /// The host it is placed on.
    pub host: HostId,
    /// Its state.
    pub state: AppState,
}

/// Who picks the host an evicted app starts on.
///
/// See [`DrainFleet::placement`] and the adapters guide
/// ([`crate::adapters`]) for what the controller does in each mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Placement {
    /// The controller picks a receiver for every app and calls
    /// [`DrainFleet::migrate`] (the default).
    #[default]
    Controller,
    /// The platform's scheduler picks (Kubernetes eviction, Nomad drain):
    /// the controller calls [`DrainFleet::evict`] and watches where the app
    /// lands.
    Platform,
}

impl std::fmt::Display for Placement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Placement::Controller => "controller",
            Placement::Platform => "platform",
        })
    }
}

/// What a drain controller needs from a fleet: list hosts and apps, change
/// a host's state, move an app, read an app's health.
///
/// A drain-only adapter implements this trait alone; the adapters guide
/// ([`crate::adapters`]) walks through one.
///
/// Implementations must be cancel-safe: a controller may be dropped in the
/// middle of any call (a crash), and a restarted controller must find the
/// fleet in a state it can read back with [`DrainFleet::hosts`] and
/// [`DrainFleet::apps`].
#[async_trait]
pub trait DrainFleet: Send + Sync {
    /// Every host.
    async fn hosts(&self) -> Result<Vec<Host>, FleetError>;

    /// Every app.
    async fn apps(&self) -> Result<Vec<App>, FleetError>;

    /// Hosts and apps together, indexed for planning.
    async fn snapshot(&self) -> Result<FleetSnapshot, FleetError> {
        let hosts = self.hosts().await?;
        let apps = self.apps().await?;
        FleetSnapshot::new(hosts, apps)
    }

    /// Moves a host to `state`. Setting the state a host already has is a
    /// no-op; a host can only become [`HostState::Drained`] once it is empty.
    async fn set_host_state(&self, host: HostId, state: HostState) -> Result<(), FleetError>;

    /// Stops new apps from being placed on `host`.
    async fn cordon(&self, host: HostId) -> Result<(), FleetError> {
        self.set_host_state(host, HostState::Cordoned).await
    }

    /// Lets `host` accept apps again.
    async fn uncordon(&self, host: HostId) -> Result<(), FleetError> {
        self.set_host_state(host, HostState::Active).await
    }

    /// Starts `app` on host `to` (stopping it where it ran before) and
    /// resolves once the start has succeeded or failed. Migrating an app to
    /// the host it is already on restarts it there (a retry).
    ///
    /// Called only with [`Placement::Controller`].
    async fn migrate(&self, app: AppId, to: HostId) -> Result<(), FleetError>;

    /// The current state of one app.
    async fn app_health(&self, app: AppId) -> Result<AppState, FleetError>;

    /// Who picks the receiver of a moved app. Default:
    /// [`Placement::Controller`] (the controller calls
    /// [`DrainFleet::migrate`]).
    fn placement(&self) -> Placement {
        Placement::Controller
    }

    /// With [`Placement::Platform`]: asks the platform to move `app` off
    /// its host (or to restart it, if it is failed on an active host) and
    /// resolves once the platform has *placed* it, with the host its start
    /// began on. The controller then follows the start through
    /// [`DrainFleet::app_health`] ([`AppState::Starting`] until it ends).
    /// A start the platform reports failed at once is
    /// [`FleetError::StartFailed`] naming that host.
    ///
    /// Default: [`FleetError::Unsupported`] (a controller-placed adapter
    /// never receives this call).
    async fn evict(&self, app: AppId) -> Result<HostId, FleetError> {
        Err(FleetError::Unsupported(format!(
            "evicting {app}: this adapter places apps itself (placement = controller); implement `DrainFleet::evict` and return `Placement::Platform` from `placement` to let the platform choose receivers"
        )))
    }
}

/// What a rollout needs on top of [`DrainFleet`]: start and stop versions,
/// shift traffic.
#[async_trait]
pub trait RolloutFleet: DrainFleet {
    /// Makes `host` run `version`, with or without receiving traffic.
    async fn start_version(
        &self,
        host: HostId,
        version: &str,
        traffic: bool,
    ) -> Result<(), FleetError>;

    /// Stops `version` on `host`, going back to the version it ran before.
    async fn stop_version(&self, host: HostId, version: &str) -> Result<(), FleetError>;

    /// Sends `percent` (0..=100) of the traffic to the hosts running
    /// `version`.
    async fn shift_traffic(&self, version: &str, percent: f64) -> Result<(), FleetError>;
}

/// Every capability: [`DrainFleet`] and [`RolloutFleet`]. Implemented for
/// every type implementing both, so `Arc<dyn Fleet>` works wherever an
/// `Arc<dyn DrainFleet>` or `Arc<dyn RolloutFleet>` is expected (trait
/// upcasting).
pub trait Fleet: DrainFleet + RolloutFleet {}

impl<T: DrainFleet + RolloutFleet + ?Sized> Fleet for T {}

/// Hosts and their apps, indexed by host: the input of planning and health
/// aggregation.
#[derive(Debug, Clone, Default)]
pub struct FleetSnapshot {
    hosts: Vec<Host>,
    healthy: Vec<bool>,
    index: HashMap<HostId, usize>,
    apps: Vec<Vec<App>>,
    total_apps: usize,
}

impl FleetSnapshot {
    /// Indexes `apps` by their host. An app on an unknown host is an error.
    pub fn new(hosts: Vec<Host>, apps: Vec<App>) -> Result<Self, FleetError> {
        let index: HashMap<HostId, usize> =
            hosts.iter().enumerate().map(|(i, h)| (h.id, i)).collect();
        let mut by_host: Vec<Vec<App>> = hosts
            .iter()
            .map(|h| Vec::with_capacity(h.capacity as usize))
            .collect();
        let total_apps = apps.len();
        for app in apps {
            let slot = index
                .get(&app.host)
                .and_then(|&i| by_host.get_mut(i))
                .ok_or(FleetError::UnknownHost(app.host))?;
            slot.push(app);
        }
        let healthy = vec![true; hosts.len()];
        Ok(FleetSnapshot {
            hosts,
            healthy,
            index,
            apps: by_host,
            total_apps,
        })
    }

    /// Every host, in the order given.
    pub fn hosts(&self) -> &[Host] {
        &self.hosts
    }

    /// One host.
    pub fn host(&self, id: HostId) -> Option<&Host> {
        self.position(id).and_then(|i| self.hosts.get(i))
    }

    /// The position of `id` in [`FleetSnapshot::hosts`].
    pub fn position(&self, id: HostId) -> Option<usize> {
        self.index.get(&id).copied()
    }

    /// The apps placed on `host` (empty for an unknown host).
    pub fn apps_on(&self, host: HostId) -> &[App] {
        self.position(host)
            .and_then(|i| self.apps.get(i))
            .map_or(&[], Vec::as_slice)
    }

    /// The apps on the host at `position`.
    pub fn apps_at(&self, position: usize) -> &[App] {
        self.apps.get(position).map_or(&[], Vec::as_slice)
    }

    /// Every app.
    pub fn apps(&self) -> impl Iterator<Item = &App> {
        self.apps.iter().flatten()
    }

    /// Number of apps.
    pub fn total_apps(&self) -> usize {
        self.total_apps
    }

    /// Whether the host is considered healthy enough to receive apps
    /// (default `true`; see [`FleetSnapshot::set_host_healthy`]).
    pub fn is_host_healthy(&self, host: HostId) -> bool {
        self.position(host)
            .and_then(|i| self.healthy.get(i))
            .copied()
            .unwrap_or(false)
    }

    /// Whether the host at `position` is healthy.
    pub fn is_healthy_at(&self, position: usize) -> bool {
        self.healthy.get(position).copied().unwrap_or(false)
    }

    /// Marks a host healthy or not (e.g. from
    /// [`crate::health::FleetHealth::host`]); unhealthy hosts receive no
    /// apps. Returns `false` for an unknown host.
    pub fn set_host_healthy(&mut self, host: HostId, healthy: bool) -> bool {
        match self.position(host).and_then(|i| self.healthy.get_mut(i)) {
            Some(flag) => {
                *flag = healthy;
                true
            }
            None => false,
        }
    }

    /// Changes a host's state in the snapshot (for what-if planning).
    /// Returns `false` for an unknown host.
    pub fn set_host_state(&mut self, host: HostId, state: HostState) -> bool {
        match self.position(host).and_then(|i| self.hosts.get_mut(i)) {
            Some(h) => {
                h.state = state;
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(id: u32, state: HostState) -> Host {
        Host {
            id: HostId(id),
            capacity: 4,
            state,
            version: "v1".into(),
        }
    }

    #[test]
    fn snapshot_groups_apps_by_host() {
        let apps = vec![
            App {
                id: AppId(1),
                host: HostId(2),
                state: AppState::Running,
            },
            App {
                id: AppId(2),
                host: HostId(1),
                state: AppState::Failed,
            },
            App {
                id: AppId(3),
                host: HostId(2),
                state: AppState::Running,
            },
        ];
        let snap = FleetSnapshot::new(
            vec![host(1, HostState::Active), host(2, HostState::Draining)],
            apps,
        )
        .unwrap();
        assert_eq!(snap.apps_on(HostId(2)).len(), 2);
        assert_eq!(snap.apps_on(HostId(1))[0].id, AppId(2));
        assert_eq!(snap.total_apps(), 3);
        assert!(snap.apps_on(HostId(9)).is_empty());
    }

    #[test]
    fn snapshot_refuses_apps_on_unknown_hosts() {
        let err = FleetSnapshot::new(
            vec![host(1, HostState::Active)],
            vec![App {
                id: AppId(1),
                host: HostId(7),
                state: AppState::Running,
            }],
        )
        .unwrap_err();
        assert_eq!(err, FleetError::UnknownHost(HostId(7)));
    }

    #[test]
    fn ids_display_with_their_kind() {
        assert_eq!(HostId(3).to_string(), "host-3");
        assert_eq!(AppId(4).to_string(), "app-4");
        assert!(HostState::Active.accepts_apps());
        assert!(!HostState::Cordoned.accepts_apps());
        assert!(AppState::Running.is_healthy());
        assert!(!AppState::Unhealthy.is_healthy());
    }
}
