//! [`SimFleet`]: the in-memory [`Fleet`] whose starts follow the
//! [host model](super::SimConfig) and take time on an injected clock.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use resilience_core::ConfigError;
use resilience_core::clock::{Clock, SharedClock};
use serde::{Deserialize, Serialize};

use super::host_model::SimConfig;
use crate::fleet::{
    App, AppId, AppState, DrainFleet, FleetError, Host, HostId, HostState, Placement, RolloutFleet,
};

/// What happened in a simulation so far.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimStats {
    /// App starts begun.
    pub starts: u64,
    /// Starts that failed.
    pub failed_starts: u64,
    /// Starts whose caller dropped the operation (e.g. a crashed
    /// controller); they still complete, in the background.
    pub abandoned_starts: u64,
    /// Most starts in progress on one host at once.
    pub peak_concurrent_starts: u32,
    /// Most starts begun on one host within any 60 s window.
    pub peak_starts_per_host_per_minute: u32,
    /// How many times any single host entered [`HostState::Draining`]
    /// (1 when every host was drained at most once).
    pub max_drains_per_host: u32,
    /// Most hosts in [`HostState::Draining`] at once.
    pub peak_draining_hosts: u32,
    /// Starts that succeeded with a silently corrupted app
    /// ([`SimConfig::silent_failures`](super::SimConfig::silent_failures)).
    #[serde(default)]
    pub silent_corruptions: u64,
}

#[derive(Debug)]
struct SimHost {
    host: Host,
    load: u32,
    starting: u32,
    serving: bool,
    previous_versions: Vec<String>,
    drains: u32,
    recent_starts: VecDeque<Instant>,
    extra_failure: f64,
}

#[derive(Debug, Clone, Copy)]
struct SimApp {
    host: u32,
    state: AppState,
    /// A corrupted start of this app: when the corruption shows.
    corrupt_at: Option<Instant>,
}

/// A start in progress: (deadline, app, host, fails, corrupted silently).
type PendingStart = (Instant, AppId, HostId, bool, bool);

#[derive(Debug)]
struct SimState {
    rng: fastrand::Rng,
    hosts: Vec<SimHost>,
    apps: Vec<SimApp>,
    bad_versions: HashSet<String>,
    traffic: HashMap<String, f64>,
    stats: SimStats,
    /// Starts waiting for each deadline: one clock sleep per distinct
    /// deadline (held by one of them), the others parked here.
    timers: HashMap<Instant, TimerGroup>,
    /// Starts in progress, earliest deadline first: (deadline, app, host,
    /// fails, corrupted silently).
    pending: BinaryHeap<Reverse<PendingStart>>,
    /// How long a silent corruption stays hidden.
    visible_after: Duration,
    /// Who picks receivers ([`SimFleet::set_placement`]).
    placement: Placement,
}

impl SimState {
    fn host_mut(&mut self, id: HostId) -> Result<&mut SimHost, FleetError> {
        self.hosts
            .get_mut(id.0 as usize)
            .ok_or(FleetError::UnknownHost(id))
    }

    fn app_state(&self, app: SimApp, now: Instant) -> AppState {
        if app.state == AppState::Running && app.corrupt_at.is_some_and(|at| at <= now) {
            return AppState::Unhealthy;
        }
        if app.state == AppState::Running
            && let Some(host) = self.hosts.get(app.host as usize)
            && self.bad_versions.contains(&host.host.version)
            && (host.serving
                || self
                    .traffic
                    .get(&host.host.version)
                    .is_some_and(|p| *p > 0.0))
        {
            return AppState::Unhealthy;
        }
        app.state
    }
}

/// An in-memory [`Fleet`](crate::fleet::Fleet) with the start-concurrency host model described
/// in the [module docs](crate::sim). Cheap to clone (shared state).
///
/// Host ids are `0..n` in creation order; app ids likewise.
#[derive(Debug, Clone)]
pub struct SimFleet {
    config: Arc<SimConfig>,
    clock: SharedClock,
    state: Arc<Mutex<SimState>>,
}

impl SimFleet {
    /// An empty fleet on the system clock.
    pub fn new(config: SimConfig) -> Result<Self, ConfigError> {
        Self::with_clock(config, SharedClock::system())
    }

    /// An empty fleet whose starts take time on `clock`.
    pub fn with_clock(config: SimConfig, clock: impl Clock) -> Result<Self, ConfigError> {
        config.validate()?;
        let rng = fastrand::Rng::with_seed(config.seed);
        let visible_after = config
            .silent_failures
            .as_ref()
            .map_or(Duration::ZERO, |s| s.visible_after);
        Ok(SimFleet {
            config: Arc::new(config),
            clock: clock.into_shared(),
            state: Arc::new(Mutex::new(SimState {
                rng,
                hosts: Vec::new(),
                apps: Vec::new(),
                bad_versions: HashSet::new(),
                traffic: HashMap::new(),
                stats: SimStats::default(),
                pending: BinaryHeap::new(),
                visible_after,
                placement: Placement::Controller,
                timers: HashMap::new(),
            })),
        })
    }

    /// The model parameters.
    pub fn config(&self) -> &SimConfig {
        &self.config
    }

    fn lock(&self) -> MutexGuard<'_, SimState> {
        // Every mutation keeps the state consistent before any point that
        // could panic, so a poisoned lock is still usable.
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        Self::settle(&mut state, self.clock.now());
        state
    }

    /// Completes every start whose duration has elapsed, whether or not
    /// its caller still waits for it (a real host does not stop starting
    /// an app because the controller crashed).
    fn settle(state: &mut SimState, now: Instant) {
        while let Some(Reverse((deadline, app, host, fails, corrupt))) =
            state.pending.peek().copied()
        {
            if deadline > now {
                break;
            }
            state.pending.pop();
            if let Some(h) = state.hosts.get_mut(host.0 as usize) {
                h.starting = h.starting.saturating_sub(1);
            }
            if let Some(entry) = state.apps.get_mut(app.0 as usize) {
                entry.state = if fails {
                    AppState::Failed
                } else {
                    AppState::Running
                };
                entry.corrupt_at = (corrupt && !fails).then(|| deadline + state.visible_after);
            }
            if corrupt && !fails {
                state.stats.silent_corruptions += 1;
            }
            if fails {
                state.stats.failed_starts += 1;
            }
        }
    }

    /// Adds an active host running `version` and serving traffic.
    pub fn add_host(&self, capacity: u32, version: &str) -> HostId {
        let mut state = self.lock();
        let id = HostId(u32::try_from(state.hosts.len()).unwrap_or(u32::MAX));
        state.hosts.push(SimHost {
            host: Host {
                id,
                capacity,
                state: HostState::Active,
                version: version.to_owned(),
            },
            load: 0,
            starting: 0,
            serving: true,
            previous_versions: Vec::new(),
            drains: 0,
            recent_starts: VecDeque::new(),
            extra_failure: 0.0,
        });
        id
    }

    /// Adds `count` hosts like [`SimFleet::add_host`].
    pub fn add_hosts(&self, count: u32, capacity: u32, version: &str) -> Vec<HostId> {
        (0..count)
            .map(|_| self.add_host(capacity, version))
            .collect()
    }

    /// Places a running app on `host` (setup, takes no time).
    pub fn add_app(&self, host: HostId) -> Result<AppId, FleetError> {
        let mut state = self.lock();
        let id = AppId(u32::try_from(state.apps.len()).unwrap_or(u32::MAX));
        let h = state.host_mut(host)?;
        if h.load >= h.host.capacity {
            return Err(FleetError::NoCapacity {
                host,
                capacity: h.host.capacity,
            });
        }
        h.load += 1;
        state.apps.push(SimApp {
            host: host.0,
            state: AppState::Running,
            corrupt_at: None,
        });
        Ok(id)
    }

    /// Places `count` running apps on `host`.
    pub fn add_apps(&self, host: HostId, count: u32) -> Result<Vec<AppId>, FleetError> {
        (0..count).map(|_| self.add_app(host)).collect()
    }

    /// Marks `version` good or bad: apps on hosts running a bad version
    /// report [`AppState::Unhealthy`] while it receives traffic.
    pub fn set_version_healthy(&self, version: &str, healthy: bool) {
        let mut state = self.lock();
        if healthy {
            state.bad_versions.remove(version);
        } else {
            state.bad_versions.insert(version.to_owned());
        }
    }

    /// Adds `probability` (in `0..=1`) to the failure probability of every
    /// start on `host` (a broken host), on top of the model.
    pub fn set_host_failure_probability(
        &self,
        host: HostId,
        probability: f64,
    ) -> Result<(), FleetError> {
        if !(0.0..=1.0).contains(&probability) {
            return Err(FleetError::InvalidArgument(format!(
                "probability must be in 0..=1, got {probability}"
            )));
        }
        self.lock().host_mut(host)?.extra_failure = probability;
        Ok(())
    }

    /// Forces one app's state (e.g. to inject a crash).
    pub fn set_app_state(&self, app: AppId, app_state: AppState) -> Result<(), FleetError> {
        let mut state = self.lock();
        let entry = state
            .apps
            .get_mut(app.0 as usize)
            .ok_or(FleetError::UnknownApp(app))?;
        entry.state = app_state;
        Ok(())
    }

    /// A copy of one host.
    pub fn host(&self, id: HostId) -> Option<Host> {
        self.lock().hosts.get(id.0 as usize).map(|h| h.host.clone())
    }

    /// Apps placed on `host` (starting, running or failed).
    pub fn load(&self, id: HostId) -> u32 {
        self.lock().hosts.get(id.0 as usize).map_or(0, |h| h.load)
    }

    /// Whether `host` is receiving traffic.
    pub fn is_serving(&self, id: HostId) -> bool {
        self.lock()
            .hosts
            .get(id.0 as usize)
            .is_some_and(|h| h.serving)
    }

    /// The traffic share last set for `version` with
    /// [`RolloutFleet::shift_traffic`].
    pub fn traffic(&self, version: &str) -> Option<f64> {
        self.lock().traffic.get(version).copied()
    }

    /// Who picks receivers: [`Placement::Controller`] (default; the
    /// controller calls `migrate`) or [`Placement::Platform`] (the
    /// controller calls `evict` and this fleet picks the active host with
    /// the fewest apps, like a scheduler spreading by allocation, regardless
    /// of the starts already in progress there).
    pub fn set_placement(&self, placement: Placement) {
        self.lock().placement = placement;
    }

    /// Counters of the simulation so far.
    pub fn stats(&self) -> SimStats {
        self.lock().stats.clone()
    }

    fn hosts_now(&self) -> Vec<Host> {
        self.lock().hosts.iter().map(|h| h.host.clone()).collect()
    }

    /// Apps whose current start was silently corrupted (visible yet or
    /// not) and that were not restarted since.
    pub fn corrupted_apps(&self) -> Vec<AppId> {
        let state = self.lock();
        state
            .apps
            .iter()
            .enumerate()
            .filter(|(_, a)| a.corrupt_at.is_some())
            .map(|(i, _)| AppId(u32::try_from(i).unwrap_or(u32::MAX)))
            .collect()
    }

    fn apps_now(&self) -> Vec<App> {
        let now = self.clock.now();
        let state = self.lock();
        state
            .apps
            .iter()
            .enumerate()
            .map(|(i, a)| App {
                id: AppId(u32::try_from(i).unwrap_or(u32::MAX)),
                host: HostId(a.host),
                state: state.app_state(*a, now),
            })
            .collect()
    }

    /// Validates a start and books it; returns whether it will fail and
    /// when it ends.
    fn begin_start(&self, app: AppId, to: HostId) -> Result<(bool, Instant), FleetError> {
        let now = self.clock.now();
        let deadline = now + self.config.start_duration;
        let mut guard = self.lock();
        let state = &mut *guard;
        let current = *state
            .apps
            .get(app.0 as usize)
            .ok_or(FleetError::UnknownApp(app))?;
        if current.state == AppState::Starting {
            return Err(FleetError::Busy { app });
        }
        let moving = current.host != to.0;
        let target = state.host_mut(to)?;
        if moving {
            if !target.host.state.accepts_apps() {
                return Err(FleetError::NotAccepting {
                    host: to,
                    state: target.host.state,
                });
            }
            if target.load >= target.host.capacity {
                return Err(FleetError::NoCapacity {
                    host: to,
                    capacity: target.host.capacity,
                });
            }
            target.load += 1;
        }
        target.starting += 1;
        let concurrent = target.starting;
        let extra_failure = target.extra_failure;
        target.recent_starts.push_back(now);
        while target
            .recent_starts
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= Duration::from_secs(60))
        {
            target.recent_starts.pop_front();
        }
        let per_minute = u32::try_from(target.recent_starts.len()).unwrap_or(u32::MAX);
        if moving && let Some(source) = state.hosts.get_mut(current.host as usize) {
            source.load = source.load.saturating_sub(1);
        }
        if let Some(entry) = state.apps.get_mut(app.0 as usize) {
            entry.host = to.0;
            entry.state = AppState::Starting;
            entry.corrupt_at = None;
        }
        let counters = &mut state.stats;
        counters.starts += 1;
        counters.peak_concurrent_starts = counters.peak_concurrent_starts.max(concurrent);
        counters.peak_starts_per_host_per_minute =
            counters.peak_starts_per_host_per_minute.max(per_minute);
        let p = (self.config.failure_probability(concurrent) + extra_failure).min(1.0);
        let fails = p > 0.0 && state.rng.f64() < p;
        // Drawn only when the mode is on: seeded runs without it are
        // unchanged.
        let corrupt = self.config.silent_failures.as_ref().is_some_and(|s| {
            let p = s.corruption_probability(concurrent);
            p > 0.0 && state.rng.f64() < p
        });
        state
            .pending
            .push(Reverse((deadline, app, to, fails, corrupt)));
        tracing::trace!(%app, host = %to, concurrent, p, fails, "sim: start begun");
        Ok((fails, deadline))
    }
}

#[derive(Debug, Default)]
struct TimerGroup {
    has_holder: bool,
    waiters: Vec<Waker>,
}

/// Waits until `deadline` on the fleet's clock. Starts ending at the same
/// instant share one clock sleep (held by the first of them to wait), so a
/// simulation with thousands of concurrent starts registers a handful of
/// timers, not thousands.
struct StartWait<'a> {
    fleet: &'a SimFleet,
    deadline: Instant,
    sleep: Option<resilience_core::clock::Sleep>,
    done: bool,
}

impl StartWait<'_> {
    fn finish(&mut self) -> Poll<()> {
        self.done = true;
        if self.sleep.take().is_some() {
            let group = self.fleet.lock().timers.remove(&self.deadline);
            for waker in group.map(|g| g.waiters).unwrap_or_default() {
                waker.wake();
            }
        }
        Poll::Ready(())
    }
}

impl Future for StartWait<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.fleet.clock.now() >= self.deadline {
            return self.finish();
        }
        if let Some(sleep) = self.sleep.as_mut() {
            return match sleep.as_mut().poll(cx) {
                Poll::Ready(()) => self.finish(),
                Poll::Pending => Poll::Pending,
            };
        }
        let hold = {
            let mut state = self.fleet.lock();
            let group = state.timers.entry(self.deadline).or_default();
            if group.has_holder {
                group.waiters.push(cx.waker().clone());
                false
            } else {
                group.has_holder = true;
                true
            }
        };
        if !hold {
            return Poll::Pending;
        }
        let mut sleep = self.fleet.clock.sleep_until(self.deadline);
        let ready = sleep.as_mut().poll(cx).is_ready();
        self.sleep = Some(sleep);
        if ready { self.finish() } else { Poll::Pending }
    }
}

impl Drop for StartWait<'_> {
    fn drop(&mut self) {
        if self.done || self.sleep.is_none() {
            return;
        }
        // The holder leaves early: wake the waiters; the first to poll
        // takes the timer over, the others park again.
        let waiters = self
            .fleet
            .lock()
            .timers
            .remove(&self.deadline)
            .map(|g| g.waiters)
            .unwrap_or_default();
        for waker in waiters {
            waker.wake();
        }
    }
}

/// Counts a start as abandoned if the migrate future is dropped mid-start.
struct StartGuard<'a> {
    fleet: &'a SimFleet,
    armed: bool,
}

impl Drop for StartGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.fleet.lock().stats.abandoned_starts += 1;
        }
    }
}

#[async_trait]
impl DrainFleet for SimFleet {
    async fn hosts(&self) -> Result<Vec<Host>, FleetError> {
        Ok(self.hosts_now())
    }

    async fn apps(&self) -> Result<Vec<App>, FleetError> {
        Ok(self.apps_now())
    }

    async fn set_host_state(&self, host: HostId, to: HostState) -> Result<(), FleetError> {
        let mut guard = self.lock();
        let state = &mut *guard;
        let h = state.host_mut(host)?;
        let from = h.host.state;
        if from == to {
            return Ok(());
        }
        if to == HostState::Drained && h.load > 0 {
            return Err(FleetError::InvalidTransition {
                host,
                from,
                to,
                hint: format!(": it still has {} apps", h.load),
            });
        }
        if to == HostState::Draining {
            h.drains += 1;
            let drains = h.drains;
            state.stats.max_drains_per_host = state.stats.max_drains_per_host.max(drains);
        }
        if let Ok(h) = state.host_mut(host) {
            h.host.state = to;
        }
        if to == HostState::Draining {
            let draining = state
                .hosts
                .iter()
                .filter(|h| h.host.state == HostState::Draining)
                .count();
            let draining = u32::try_from(draining).unwrap_or(u32::MAX);
            state.stats.peak_draining_hosts = state.stats.peak_draining_hosts.max(draining);
        }
        tracing::debug!(%host, %from, %to, "sim: host state changed");
        Ok(())
    }

    async fn migrate(&self, app: AppId, to: HostId) -> Result<(), FleetError> {
        let (fails, deadline) = self.begin_start(app, to)?;
        let mut guard = StartGuard {
            fleet: self,
            armed: true,
        };
        StartWait {
            fleet: self,
            deadline,
            sleep: None,
            done: false,
        }
        .await;
        guard.armed = false;
        // Settles this start (and any other due one).
        drop(self.lock());
        if fails {
            Err(FleetError::StartFailed {
                app,
                host: to,
                reason: "app start corrupted under concurrent starts".into(),
            })
        } else {
            Ok(())
        }
    }

    async fn app_health(&self, app: AppId) -> Result<AppState, FleetError> {
        let state = self.lock();
        let entry = state
            .apps
            .get(app.0 as usize)
            .ok_or(FleetError::UnknownApp(app))?;
        Ok(state.app_state(*entry, self.clock.now()))
    }

    fn placement(&self) -> Placement {
        self.lock().placement
    }

    /// The platform's choice ([`Placement::Platform`]): the active host
    /// with the fewest apps (lowest id on ties), which may already have
    /// starts in progress; the app's own host when it is active (a restart
    /// in place). The start completes on the clock like a migration's.
    async fn evict(&self, app: AppId) -> Result<HostId, FleetError> {
        let to = {
            let state = self.lock();
            if state.placement != Placement::Platform {
                return Err(FleetError::Unsupported(format!(
                    "evicting {app}: this SimFleet places apps by the controller; call `SimFleet::set_placement(Placement::Platform)` first"
                )));
            }
            let current = state
                .apps
                .get(app.0 as usize)
                .ok_or(FleetError::UnknownApp(app))?
                .host;
            let own = state
                .hosts
                .get(current as usize)
                .filter(|h| h.host.state.accepts_apps())
                .map(|h| h.host.id);
            own.or_else(|| {
                state
                    .hosts
                    .iter()
                    .filter(|h| h.host.state.accepts_apps() && h.load < h.host.capacity)
                    .min_by_key(|h| (h.load, h.host.id))
                    .map(|h| h.host.id)
            })
            .ok_or_else(|| {
                FleetError::Unavailable(format!(
                    "no active host with room for {app}: the platform cannot place it"
                ))
            })?
        };
        self.begin_start(app, to)?;
        Ok(to)
    }
}

#[async_trait]
impl RolloutFleet for SimFleet {
    async fn start_version(
        &self,
        host: HostId,
        version: &str,
        traffic: bool,
    ) -> Result<(), FleetError> {
        let mut state = self.lock();
        let h = state.host_mut(host)?;
        let previous = std::mem::replace(&mut h.host.version, version.to_owned());
        h.previous_versions.push(previous);
        h.serving = traffic;
        tracing::debug!(%host, version, traffic, "sim: version started");
        Ok(())
    }

    async fn stop_version(&self, host: HostId, version: &str) -> Result<(), FleetError> {
        let mut state = self.lock();
        let h = state.host_mut(host)?;
        if h.host.version != version {
            return Err(FleetError::VersionNotRunning {
                host,
                version: version.to_owned(),
            });
        }
        let previous = h.previous_versions.pop().ok_or_else(|| {
            FleetError::InvalidArgument(format!("{host} has no version to go back to"))
        })?;
        h.host.version = previous;
        h.serving = true;
        tracing::debug!(%host, version, "sim: version stopped");
        Ok(())
    }

    async fn shift_traffic(&self, version: &str, percent: f64) -> Result<(), FleetError> {
        if !(0.0..=100.0).contains(&percent) {
            return Err(FleetError::InvalidArgument(format!(
                "traffic percent must be in 0..=100, got {percent}"
            )));
        }
        let mut state = self.lock();
        state.traffic.insert(version.to_owned(), percent);
        for h in &mut state.hosts {
            if h.host.version == version {
                h.serving = percent > 0.0;
            }
        }
        Ok(())
    }
}
