//! The adapter between fleet-drain's [`Rollout`] and the simulated API
//! servers: the rollout sees each server as a host with one app (the API
//! process), its `start_version`/`stop_version` calls become commands the
//! simulation applies (the server restarts on the bad or the good release),
//! and its health gate reads the app states the simulation publishes.
//!
//! The rollout is an async state machine on the simulation's `ManualClock`;
//! [`StagedDeploy::poll`] polls it once (between events, after the clock
//! has been moved to the current event's time), so its bakes and health
//! checks happen at simulated times.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use fleet_drain::RolloutError;
use fleet_drain::fleet::{
    App, AppId, AppState, DrainFleet, FleetError, Host, HostId, HostState, RolloutFleet,
};
use fleet_drain::rollout::{Rollout, RolloutConfig, RolloutReport, RolloutStep};
use futures::task::noop_waker_ref;
use resilience_core::InstanceName;
use resilience_core::clock::ManualClock;

use super::params::StagedPolicy;
use crate::replay::error::ReplayError;

/// The staged side's rollout, as named in its logs and metrics.
pub const ROLLOUT_NAME: &str = "nov2019.staged.rollout";

/// The version name of the bad release.
pub const BAD_VERSION: &str = "ng-logger";
/// The version name of the release before it.
pub const GOOD_VERSION: &str = "previous";

/// What the rollout asked the fleet to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Restart server `0` on the bad release.
    Start(usize),
    /// Restart server `0` on the release before.
    Stop(usize),
}

#[derive(Debug, Default)]
struct View {
    bad: Vec<bool>,
    states: Vec<AppState>,
    commands: Vec<Command>,
}

/// The servers as fleet-drain's [`Fleet`](fleet_drain::fleet::Fleet) sees them.
#[derive(Debug, Clone)]
pub struct SimFleet {
    view: Arc<Mutex<View>>,
}

impl SimFleet {
    fn new(servers: usize) -> Self {
        SimFleet {
            view: Arc::new(Mutex::new(View {
                bad: vec![false; servers],
                states: vec![AppState::Running; servers],
                commands: Vec::new(),
            })),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut View) -> R) -> R {
        let mut view = self.view.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut view)
    }

    fn index(&self, host: HostId) -> Result<usize, FleetError> {
        let i = usize::try_from(host.0).map_err(|_| FleetError::UnknownHost(host))?;
        if self.with(|v| i < v.bad.len()) {
            Ok(i)
        } else {
            Err(FleetError::UnknownHost(host))
        }
    }
}

type FleetFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, FleetError>> + Send + 'a>>;

fn ready<'a, T: Send + 'a>(value: Result<T, FleetError>) -> FleetFuture<'a, T> {
    Box::pin(std::future::ready(value))
}

fn id(i: usize) -> u32 {
    u32::try_from(i).unwrap_or(u32::MAX)
}

// `Fleet` is declared with `async_trait`; these are the signatures it
// expands to, written out so the examples need no macro crate.
impl DrainFleet for SimFleet {
    fn hosts<'s, 'a>(&'s self) -> FleetFuture<'a, Vec<Host>>
    where
        's: 'a,
        Self: 'a,
    {
        let hosts = self.with(|v| {
            v.bad
                .iter()
                .enumerate()
                .map(|(i, &bad)| Host {
                    id: HostId(id(i)),
                    capacity: 1,
                    state: HostState::Active,
                    version: if bad { BAD_VERSION } else { GOOD_VERSION }.to_owned(),
                })
                .collect()
        });
        ready(Ok(hosts))
    }

    fn apps<'s, 'a>(&'s self) -> FleetFuture<'a, Vec<App>>
    where
        's: 'a,
        Self: 'a,
    {
        let apps = self.with(|v| {
            v.states
                .iter()
                .enumerate()
                .map(|(i, &state)| App {
                    id: AppId(id(i)),
                    host: HostId(id(i)),
                    state,
                })
                .collect()
        });
        ready(Ok(apps))
    }

    fn set_host_state<'s, 'a>(&'s self, _host: HostId, _state: HostState) -> FleetFuture<'a, ()>
    where
        's: 'a,
        Self: 'a,
    {
        ready(Ok(()))
    }

    fn migrate<'s, 'a>(&'s self, _app: AppId, _to: HostId) -> FleetFuture<'a, ()>
    where
        's: 'a,
        Self: 'a,
    {
        ready(Err(FleetError::InvalidArgument(
            "API servers are not migrated in this model".to_owned(),
        )))
    }

    fn app_health<'s, 'a>(&'s self, app: AppId) -> FleetFuture<'a, AppState>
    where
        's: 'a,
        Self: 'a,
    {
        let state = usize::try_from(app.0)
            .ok()
            .and_then(|i| self.with(|v| v.states.get(i).copied()))
            .ok_or(FleetError::UnknownApp(app));
        ready(state)
    }
}

impl RolloutFleet for SimFleet {
    fn start_version<'s, 'v, 'a>(
        &'s self,
        host: HostId,
        version: &'v str,
        _traffic: bool,
    ) -> FleetFuture<'a, ()>
    where
        's: 'a,
        'v: 'a,
        Self: 'a,
    {
        let bad = version == BAD_VERSION;
        let result = self.index(host).map(|i| {
            self.with(|v| {
                if let Some(b) = v.bad.get_mut(i) {
                    *b = bad;
                }
                if let Some(s) = v.states.get_mut(i) {
                    *s = AppState::Starting;
                }
                v.commands.push(if bad {
                    Command::Start(i)
                } else {
                    Command::Stop(i)
                });
            });
        });
        ready(result)
    }

    fn stop_version<'s, 'v, 'a>(&'s self, host: HostId, _version: &'v str) -> FleetFuture<'a, ()>
    where
        's: 'a,
        'v: 'a,
        Self: 'a,
    {
        let result = self.index(host).map(|i| {
            self.with(|v| {
                if let Some(b) = v.bad.get_mut(i) {
                    *b = false;
                }
                if let Some(s) = v.states.get_mut(i) {
                    *s = AppState::Starting;
                }
                v.commands.push(Command::Stop(i));
            });
        });
        ready(result)
    }

    fn shift_traffic<'s, 'v, 'a>(&'s self, _version: &'v str, _percent: f64) -> FleetFuture<'a, ()>
    where
        's: 'a,
        'v: 'a,
        Self: 'a,
    {
        ready(Ok(()))
    }
}

type RolloutFuture = Pin<Box<dyn Future<Output = Result<RolloutReport, RolloutError>> + Send>>;

/// The bad release going out through a [`Rollout`], stepped by the simulation.
pub struct StagedDeploy {
    fleet: SimFleet,
    future: Option<RolloutFuture>,
    /// The rollout's result, once it finished.
    pub outcome: Option<Result<RolloutReport, RolloutError>>,
}

impl std::fmt::Debug for StagedDeploy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StagedDeploy")
            .field("running", &self.future.is_some())
            .field("outcome", &self.outcome)
            .finish_non_exhaustive()
    }
}

/// The rollout's configuration: canary, bake, first wave, bake, everyone,
/// bake; the library's default health gate. Built from the staged policy
/// only.
pub fn rollout_config(policy: &StagedPolicy) -> RolloutConfig {
    let bake = RolloutStep::Bake {
        duration: Duration::from_secs(policy.bake_s),
    };
    RolloutConfig {
        version: BAD_VERSION.to_owned(),
        steps: vec![
            RolloutStep::Canary {
                hosts: policy.canary_hosts,
            },
            bake.clone(),
            RolloutStep::Wave {
                percent: policy.first_wave_percent,
            },
            bake.clone(),
            RolloutStep::Wave { percent: 100.0 },
            bake,
        ],
        check_interval: Duration::from_secs(policy.health_check_interval_s),
        ..RolloutConfig::default()
    }
}

impl StagedDeploy {
    /// A rollout of the bad release over `servers` servers on `clock`; it
    /// starts when first polled.
    pub fn new(
        policy: &StagedPolicy,
        servers: usize,
        clock: &ManualClock,
    ) -> Result<Self, ReplayError> {
        let fleet = SimFleet::new(servers);
        let hosts = (0..servers).map(|i| HostId(id(i))).collect();
        let mut rollout = Rollout::with_clock(
            rollout_config(policy),
            Arc::new(fleet.clone()),
            hosts,
            clock.clone(),
        )?
        .named(InstanceName::new(ROLLOUT_NAME).unwrap_or_default());
        let future: RolloutFuture = Box::pin(async move { rollout.run().await });
        Ok(StagedDeploy {
            fleet,
            future: Some(future),
            outcome: None,
        })
    }

    /// Polls the rollout once; returns the commands it issued.
    pub fn poll(&mut self) -> Vec<Command> {
        if let Some(future) = &mut self.future {
            let mut cx = Context::from_waker(noop_waker_ref());
            if let Poll::Ready(outcome) = future.as_mut().poll(&mut cx) {
                self.outcome = Some(outcome);
                self.future = None;
            }
        }
        self.fleet.with(|v| std::mem::take(&mut v.commands))
    }

    /// Whether the rollout is still running.
    pub fn running(&self) -> bool {
        self.future.is_some()
    }

    /// Publishes server `i`'s health as its app state.
    pub fn set_state(&self, i: usize, state: AppState) {
        self.fleet.with(|v| {
            if let Some(s) = v.states.get_mut(i) {
                *s = state;
            }
        });
    }
}
