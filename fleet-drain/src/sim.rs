//! An in-memory fleet with a host model, and a driver that runs async code
//! on simulated time.
//!
//! # Why a simulated fleet?
//!
//! In February 2019 apps migrated in a surge onto the remaining hosts, and
//! the per-host component that prepares an app's start (its `node_modules`)
//! corrupted starts once too many ran at once. [`SimFleet`] models exactly
//! that: an app start takes [`SimConfig::start_duration`] of (injected)
//! clock time, and its failure probability rises with the number of
//! concurrent starts on the receiving host beyond
//! [`SimConfig::safe_concurrent_starts`]:
//!
//! ```text
//! p(fail) = min(max_failure_probability,
//!               base_failure_probability
//!               + failure_probability_per_extra_start * max(0, concurrent - safe_concurrent_starts))
//! ```
//!
//! where `concurrent` counts the starts in progress on that host including
//! the new one. Randomness is a seeded [`fastrand::Rng`], so a simulation is
//! reproducible. A version can be marked bad
//! ([`SimFleet::set_version_healthy`]): apps on hosts running it while it
//! receives traffic report [`AppState::Unhealthy`].
//!
//! [`run`] drives a future on a [`ManualClock`]: it polls until the future
//! is stuck on timers, then advances the clock to the next deadline, so
//! thousands of concurrent starts run in simulated time at memory speed.
//!
//! # Example
//!
//! ```
//! use fleet_drain::fleet::Fleet;
//! use fleet_drain::sim::{self, SimConfig, SimFleet};
//! use resilience_core::clock::ManualClock;
//! use std::time::Duration;
//!
//! let clock = ManualClock::new();
//! let config = SimConfig { start_duration: Duration::from_secs(20), ..SimConfig::default() };
//! let fleet = SimFleet::with_clock(config, clock.clone())?;
//! let hosts = fleet.add_hosts(2, 10, "v1");
//! let apps = fleet.add_apps(hosts[0], 3)?;
//! sim::run(&clock, async {
//!     // Three concurrent starts: they overlap in simulated time.
//!     let starts = apps.iter().map(|&app| fleet.migrate(app, hosts[1]));
//!     futures::future::join_all(starts).await
//! })?;
//! assert_eq!(clock.elapsed(), Duration::from_secs(20));
//! assert_eq!(fleet.stats().peak_concurrent_starts, 3);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use resilience_core::ConfigError;
use resilience_core::clock::{Clock, ManualClock, SharedClock};
use serde::{Deserialize, Serialize};

use crate::fleet::{App, AppId, AppState, Fleet, FleetError, Host, HostId, HostState};

/// Parameters of the [`SimFleet`] host model. `Default`: starts take 20 s;
/// up to 4 concurrent starts per host are safe; each start beyond adds 10 %
/// failure probability, capped at 90 %; no failures otherwise; seed 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimConfig {
    /// How long an app start takes on the clock. Must be > 0.
    #[serde(with = "humantime_serde")]
    pub start_duration: Duration,
    /// Concurrent starts per host that never add failures. Must be >= 1.
    pub safe_concurrent_starts: u32,
    /// Failure probability added by each concurrent start beyond
    /// `safe_concurrent_starts`. In `0..=1`.
    pub failure_probability_per_extra_start: f64,
    /// Cap on the failure probability. In `0..=1`.
    pub max_failure_probability: f64,
    /// Failure probability of any start. In `0..=max_failure_probability`.
    pub base_failure_probability: f64,
    /// Seed of the random source.
    pub seed: u64,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            start_duration: Duration::from_secs(20),
            safe_concurrent_starts: 4,
            failure_probability_per_extra_start: 0.1,
            max_failure_probability: 0.9,
            base_failure_probability: 0.0,
            seed: 1,
        }
    }
}

impl SimConfig {
    /// Checks every field; the error names the first invalid one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.start_duration.is_zero() {
            return Err(ConfigError::new(
                "start_duration",
                "must be greater than zero",
            ));
        }
        if self.safe_concurrent_starts == 0 {
            return Err(ConfigError::new(
                "safe_concurrent_starts",
                "must be at least 1",
            ));
        }
        for (field, value) in [
            (
                "failure_probability_per_extra_start",
                self.failure_probability_per_extra_start,
            ),
            ("max_failure_probability", self.max_failure_probability),
            ("base_failure_probability", self.base_failure_probability),
        ] {
            if !(0.0..=1.0).contains(&value) {
                return Err(ConfigError::new(
                    field,
                    format!("must be a probability in 0..=1, got {value}"),
                ));
            }
        }
        if self.base_failure_probability > self.max_failure_probability {
            return Err(ConfigError::new(
                "base_failure_probability",
                format!(
                    "must not exceed `max_failure_probability` ({}), got {}",
                    self.max_failure_probability, self.base_failure_probability
                ),
            ));
        }
        Ok(())
    }

    /// The failure probability of a start with `concurrent` starts
    /// (itself included) in progress on its host.
    pub fn failure_probability(&self, concurrent: u32) -> f64 {
        let extra = f64::from(concurrent.saturating_sub(self.safe_concurrent_starts));
        (self.base_failure_probability + self.failure_probability_per_extra_start * extra)
            .min(self.max_failure_probability)
    }
}

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
}

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
    /// fails).
    pending: BinaryHeap<Reverse<(Instant, AppId, HostId, bool)>>,
}

impl SimState {
    fn host_mut(&mut self, id: HostId) -> Result<&mut SimHost, FleetError> {
        self.hosts
            .get_mut(id.0 as usize)
            .ok_or(FleetError::UnknownHost(id))
    }

    fn app_state(&self, app: SimApp) -> AppState {
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

/// An in-memory [`Fleet`] with the start-concurrency host model described
/// in the [module docs](self). Cheap to clone (shared state).
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
        while let Some(Reverse((deadline, app, host, fails))) = state.pending.peek().copied() {
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
    /// [`Fleet::shift_traffic`].
    pub fn traffic(&self, version: &str) -> Option<f64> {
        self.lock().traffic.get(version).copied()
    }

    /// Counters of the simulation so far.
    pub fn stats(&self) -> SimStats {
        self.lock().stats.clone()
    }

    fn hosts_now(&self) -> Vec<Host> {
        self.lock().hosts.iter().map(|h| h.host.clone()).collect()
    }

    fn apps_now(&self) -> Vec<App> {
        let state = self.lock();
        state
            .apps
            .iter()
            .enumerate()
            .map(|(i, a)| App {
                id: AppId(u32::try_from(i).unwrap_or(u32::MAX)),
                host: HostId(a.host),
                state: state.app_state(*a),
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
        }
        let counters = &mut state.stats;
        counters.starts += 1;
        counters.peak_concurrent_starts = counters.peak_concurrent_starts.max(concurrent);
        counters.peak_starts_per_host_per_minute =
            counters.peak_starts_per_host_per_minute.max(per_minute);
        let p = (self.config.failure_probability(concurrent) + extra_failure).min(1.0);
        let fails = p > 0.0 && state.rng.f64() < p;
        state.pending.push(Reverse((deadline, app, to, fails)));
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
impl Fleet for SimFleet {
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

    async fn app_health(&self, app: AppId) -> Result<AppState, FleetError> {
        let state = self.lock();
        let entry = state
            .apps
            .get(app.0 as usize)
            .ok_or(FleetError::UnknownApp(app))?;
        Ok(state.app_state(*entry))
    }
}

/// The simulated future could not finish.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SimError {
    /// Nothing can make progress: the future waits, but on no timer of the
    /// clock.
    #[error("simulation stalled: the future is pending but no timer is armed on the clock")]
    Stalled,
    /// The step limit of [`run_steps`] was reached; the future was dropped
    /// (a simulated crash).
    #[error("simulation stopped after the step limit; the future was dropped")]
    StepLimit,
}

struct Flag(AtomicBool);

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::Release);
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.store(true, Ordering::Release);
    }
}

/// Runs `future` to completion on simulated time: polls it while it makes
/// progress and, whenever it waits only on timers, advances `clock` to the
/// earliest one.
///
/// The future must not depend on a tokio runtime (spawned tasks, tokio
/// timers or I/O); everything concurrent inside it should be joined
/// futures, as in the controllers of this crate.
pub fn run<F: Future>(clock: &ManualClock, future: F) -> Result<F::Output, SimError> {
    run_steps(clock, future, u64::MAX)
}

/// Like [`run`], but drops the future after `max_steps` polls (a simulated
/// crash) and returns [`SimError::StepLimit`].
pub fn run_steps<F: Future>(
    clock: &ManualClock,
    future: F,
    max_steps: u64,
) -> Result<F::Output, SimError> {
    let flag = Arc::new(Flag(AtomicBool::new(false)));
    let waker = Waker::from(Arc::clone(&flag));
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    let mut steps = 0u64;
    if max_steps == 0 {
        return Err(SimError::StepLimit);
    }
    loop {
        steps += 1;
        flag.0.store(false, Ordering::Release);
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return Ok(output);
        }
        if steps >= max_steps {
            // Dropped right after its last poll: time has not moved on.
            return Err(SimError::StepLimit);
        }
        if flag.0.load(Ordering::Acquire) {
            continue;
        }
        if !clock.advance_to_next_deadline() {
            return Err(SimError::Stalled);
        }
    }
}

/// Parameters of the naive, capacity-gated drain of February 2019 (the
/// baseline, not a recommendation). `Default`: 30 hosts at a time, drain
/// more whenever receiver capacity use is below 80 %, checked every 30 s,
/// failed starts retried at once up to 5 attempts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NaiveDrainConfig {
    /// Hosts drained per batch. Must be >= 1.
    pub hosts_at_once: u32,
    /// Another batch starts whenever receiver capacity use is below this
    /// share. In `(0, 1]`.
    pub capacity_gate: f64,
    /// How often capacity is checked. Must be > 0.
    #[serde(with = "humantime_serde")]
    pub check_interval: Duration,
    /// Attempts per app (immediate retries). Must be >= 1.
    pub max_attempts: u32,
}

impl Default for NaiveDrainConfig {
    fn default() -> Self {
        NaiveDrainConfig {
            hosts_at_once: 30,
            capacity_gate: 0.8,
            check_interval: Duration::from_secs(30),
            max_attempts: 5,
        }
    }
}

impl NaiveDrainConfig {
    /// Checks every field; the error names the first invalid one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.hosts_at_once == 0 {
            return Err(ConfigError::new("hosts_at_once", "must be at least 1"));
        }
        if !(self.capacity_gate > 0.0 && self.capacity_gate <= 1.0) {
            return Err(ConfigError::new(
                "capacity_gate",
                format!("must be in (0, 1], got {}", self.capacity_gate),
            ));
        }
        if self.check_interval.is_zero() {
            return Err(ConfigError::new(
                "check_interval",
                "must be greater than zero",
            ));
        }
        if self.max_attempts == 0 {
            return Err(ConfigError::new("max_attempts", "must be at least 1"));
        }
        Ok(())
    }
}

/// What a naive drain did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NaiveDrainReport {
    /// App starts that failed (each retry counts).
    pub failed_starts: u64,
    /// Apps still failed after all attempts.
    pub apps_left_failed: u64,
    /// Hosts drained.
    pub hosts_drained: usize,
    /// Simulated time taken.
    #[serde(with = "humantime_serde")]
    pub elapsed: Duration,
}

/// The naive drain: batches of `hosts_at_once` hosts, every app of a batch
/// started at once on the least loaded receiver, the next batch whenever
/// receiver capacity use is below the gate. No health gate, no per-host
/// start limit — the February 2019 procedure.
pub async fn naive_drain(
    fleet: &dyn Fleet,
    clock: &dyn Clock,
    targets: &[HostId],
    config: &NaiveDrainConfig,
) -> Result<NaiveDrainReport, FleetError> {
    config
        .validate()
        .map_err(|e| FleetError::InvalidArgument(e.to_string()))?;
    let started = clock.now();
    let target_set: HashSet<HostId> = targets.iter().copied().collect();
    let hosts = fleet.hosts().await?;
    let receivers: Vec<Host> = hosts
        .into_iter()
        .filter(|h| h.state.accepts_apps() && !target_set.contains(&h.id))
        .collect();
    let receiver_capacity: u64 = receivers.iter().map(|h| u64::from(h.capacity)).sum();
    if receivers.is_empty() {
        return Err(FleetError::InvalidArgument("no receivers".into()));
    }
    // (id, capacity, load) of every receiver.
    let mut load: Vec<(HostId, u32, u32)> =
        receivers.iter().map(|h| (h.id, h.capacity, 0)).collect();
    let position: HashMap<HostId, usize> = load.iter().enumerate().map(|(i, r)| (r.0, i)).collect();
    for app in fleet.apps().await? {
        if let Some(r) = position.get(&app.host).and_then(|&i| load.get_mut(i)) {
            r.2 += 1;
        }
    }
    let mut report = NaiveDrainReport::default();
    let mut pending: VecDeque<HostId> = targets.iter().copied().collect();
    let mut in_flight = FuturesUnordered::new();
    let mut batches: Vec<(HostId, usize)> = Vec::new();
    loop {
        let placed: u64 = load.iter().map(|r| u64::from(r.2)).sum();
        let use_share = placed as f64 / receiver_capacity as f64;
        if !pending.is_empty() && use_share < config.capacity_gate {
            let batch: Vec<HostId> = (0..config.hosts_at_once)
                .filter_map(|_| pending.pop_front())
                .collect();
            tracing::info!(
                hosts = batch.len(),
                capacity_use = use_share,
                "naive: draining batch"
            );
            let apps = fleet.apps().await?;
            for host in &batch {
                fleet.set_host_state(*host, HostState::Draining).await?;
                let mut count = 0;
                for app in apps.iter().filter(|a| a.host == *host) {
                    let Some(to) = load
                        .iter_mut()
                        .filter(|r| r.2 < r.1)
                        .min_by_key(|r| (r.2, r.0))
                        .map(|r| {
                            r.2 += 1;
                            r.0
                        })
                    else {
                        break;
                    };
                    count += 1;
                    let app = app.id;
                    in_flight.push(async move {
                        let mut failures = 0u64;
                        for _ in 0..config.max_attempts {
                            match fleet.migrate(app, to).await {
                                Ok(()) => return (failures, false),
                                Err(FleetError::StartFailed { .. }) => failures += 1,
                                Err(_) => return (failures, true),
                            }
                        }
                        (failures, true)
                    });
                }
                batches.push((*host, count));
            }
        }
        if pending.is_empty() && in_flight.is_empty() {
            break;
        }
        let tick = clock.sleep(config.check_interval);
        let mut tick = pin!(tick);
        loop {
            let next = futures::future::select(in_flight.next(), tick.as_mut()).await;
            match next {
                futures::future::Either::Left((Some((failures, left_failed)), _)) => {
                    report.failed_starts += failures;
                    report.apps_left_failed += u64::from(left_failed);
                }
                futures::future::Either::Left((None, _)) => {
                    tick.as_mut().await;
                    break;
                }
                futures::future::Either::Right(((), _)) => break,
            }
        }
    }
    for (host, _) in batches {
        if fleet.set_host_state(host, HostState::Drained).await.is_ok() {
            report.hosts_drained += 1;
        }
    }
    report.elapsed = clock.now().saturating_duration_since(started);
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fleet(config: SimConfig) -> (ManualClock, SimFleet) {
        let clock = ManualClock::new();
        let fleet = SimFleet::with_clock(config, clock.clone()).unwrap();
        (clock, fleet)
    }

    #[test]
    fn invalid_configs_name_the_field() {
        let bad = [
            (
                SimConfig {
                    start_duration: Duration::ZERO,
                    ..SimConfig::default()
                },
                "start_duration",
            ),
            (
                SimConfig {
                    safe_concurrent_starts: 0,
                    ..SimConfig::default()
                },
                "safe_concurrent_starts",
            ),
            (
                SimConfig {
                    failure_probability_per_extra_start: f64::NAN,
                    ..SimConfig::default()
                },
                "failure_probability_per_extra_start",
            ),
            (
                SimConfig {
                    max_failure_probability: 1.5,
                    ..SimConfig::default()
                },
                "max_failure_probability",
            ),
            (
                SimConfig {
                    base_failure_probability: -0.1,
                    ..SimConfig::default()
                },
                "base_failure_probability",
            ),
            (
                SimConfig {
                    base_failure_probability: 0.5,
                    max_failure_probability: 0.4,
                    ..SimConfig::default()
                },
                "base_failure_probability",
            ),
        ];
        for (config, field) in bad {
            assert_eq!(SimFleet::new(config).unwrap_err().field(), field);
        }
    }

    #[test]
    fn failure_probability_rises_beyond_the_safe_concurrency() {
        let c = SimConfig::default();
        assert_eq!(c.failure_probability(4), 0.0);
        assert!((c.failure_probability(6) - 0.2).abs() < 1e-9);
        assert_eq!(c.failure_probability(100), 0.9);
    }

    #[test]
    fn starts_take_time_and_overlap() {
        let (clock, fleet) = fleet(SimConfig::default());
        let [a, b] = [fleet.add_host(10, "v1"), fleet.add_host(10, "v1")];
        let apps = fleet.add_apps(a, 3).unwrap();
        let results = run(&clock, async {
            futures::future::join_all(apps.iter().map(|&app| fleet.migrate(app, b))).await
        })
        .unwrap();
        assert!(results.iter().all(Result::is_ok));
        assert_eq!(clock.elapsed(), Duration::from_secs(20));
        assert_eq!(fleet.load(a), 0);
        assert_eq!(fleet.load(b), 3);
        let stats = fleet.stats();
        assert_eq!(stats.peak_concurrent_starts, 3);
        assert_eq!(stats.peak_starts_per_host_per_minute, 3);
        assert_eq!(stats.failed_starts, 0);
    }

    #[test]
    fn concurrent_starts_beyond_the_threshold_fail() {
        let (clock, fleet) = fleet(SimConfig {
            safe_concurrent_starts: 1,
            failure_probability_per_extra_start: 1.0,
            max_failure_probability: 1.0,
            ..SimConfig::default()
        });
        let [a, b] = [fleet.add_host(10, "v1"), fleet.add_host(10, "v1")];
        let apps = fleet.add_apps(a, 3).unwrap();
        let results = run(&clock, async {
            futures::future::join_all(apps.iter().map(|&app| fleet.migrate(app, b))).await
        })
        .unwrap();
        assert!(results[0].is_ok());
        assert!(matches!(results[1], Err(FleetError::StartFailed { .. })));
        assert_eq!(fleet.stats().failed_starts, 2);
        // The failed apps are on the receiver, failed, and can be restarted there.
        let state = run(&clock, fleet.app_health(apps[1])).unwrap().unwrap();
        assert_eq!(state, AppState::Failed);
        run(&clock, fleet.migrate(apps[1], b)).unwrap().unwrap();
    }

    #[test]
    fn migrations_respect_capacity_and_host_state() {
        let (clock, fleet) = fleet(SimConfig::default());
        let [a, b] = [fleet.add_host(10, "v1"), fleet.add_host(1, "v1")];
        let apps = fleet.add_apps(a, 2).unwrap();
        run(&clock, fleet.migrate(apps[0], b)).unwrap().unwrap();
        let err = run(&clock, fleet.migrate(apps[1], b)).unwrap().unwrap_err();
        assert_eq!(
            err,
            FleetError::NoCapacity {
                host: b,
                capacity: 1
            }
        );
        run(&clock, fleet.cordon(a)).unwrap().unwrap();
        let err = run(&clock, fleet.migrate(apps[0], a)).unwrap().unwrap_err();
        assert!(matches!(err, FleetError::NotAccepting { .. }));
        let err = run(&clock, fleet.set_host_state(a, HostState::Drained))
            .unwrap()
            .unwrap_err();
        assert!(err.to_string().contains("still has 1 apps"));
    }

    #[test]
    fn an_abandoned_start_completes_in_the_background() {
        let (clock, fleet) = fleet(SimConfig::default());
        let [a, b] = [fleet.add_host(10, "v1"), fleet.add_host(10, "v1")];
        let app = fleet.add_app(a).unwrap();
        assert_eq!(
            run_steps(&clock, fleet.migrate(app, b), 1).unwrap_err(),
            SimError::StepLimit
        );
        assert_eq!(fleet.stats().abandoned_starts, 1);
        let health = |fleet: &SimFleet| run(&clock, fleet.app_health(app)).unwrap().unwrap();
        assert_eq!(health(&fleet), AppState::Starting);
        assert_eq!(fleet.load(b), 1);
        clock.advance(Duration::from_secs(20));
        assert_eq!(health(&fleet), AppState::Running);
    }

    #[test]
    fn a_bad_version_makes_apps_unhealthy_only_with_traffic() {
        let (clock, fleet) = fleet(SimConfig::default());
        let host = fleet.add_host(10, "v1");
        let app = fleet.add_app(host).unwrap();
        fleet.set_version_healthy("v2", false);
        let health = |fleet: &SimFleet| run(&clock, fleet.app_health(app)).unwrap().unwrap();
        run(&clock, fleet.start_version(host, "v2", false))
            .unwrap()
            .unwrap();
        assert_eq!(health(&fleet), AppState::Running);
        run(&clock, fleet.shift_traffic("v2", 10.0))
            .unwrap()
            .unwrap();
        assert_eq!(health(&fleet), AppState::Unhealthy);
        run(&clock, fleet.stop_version(host, "v2"))
            .unwrap()
            .unwrap();
        assert_eq!(health(&fleet), AppState::Running);
        assert_eq!(fleet.host(host).unwrap().version, "v1");
    }

    #[test]
    fn concurrent_starts_share_one_clock_timer_per_deadline() {
        let (clock, fleet) = fleet(SimConfig::default());
        let [a, b] = [fleet.add_host(1000, "v1"), fleet.add_host(1000, "v1")];
        let apps = fleet.add_apps(a, 1000).unwrap();
        let mut starts: FuturesUnordered<_> =
            apps.iter().map(|&app| fleet.migrate(app, b)).collect();
        // Poll every start once: they all wait, on a single clock sleeper.
        let polled = run_steps(&clock, starts.next(), 1);
        assert_eq!(polled.unwrap_err(), SimError::StepLimit);
        assert_eq!(clock.sleepers(), 1);
        let done = run(&clock, async {
            let mut n = 0;
            while starts.next().await.is_some() {
                n += 1;
            }
            n
        })
        .unwrap();
        assert_eq!(done, 1000);
        assert_eq!(fleet.load(b), 1000);
        assert_eq!(clock.elapsed(), Duration::from_secs(20));
    }

    #[test]
    fn a_holder_dropped_early_hands_the_timer_over() {
        let (clock, fleet) = fleet(SimConfig::default());
        let [a, b] = [fleet.add_host(10, "v1"), fleet.add_host(10, "v1")];
        let apps = fleet.add_apps(a, 2).unwrap();
        let mut first = Box::pin(fleet.migrate(apps[0], b));
        let mut second = Box::pin(fleet.migrate(apps[1], b));
        assert!(run_steps(&clock, first.as_mut(), 1).is_err());
        assert!(run_steps(&clock, second.as_mut(), 1).is_err());
        drop(first);
        run(&clock, second).unwrap().unwrap();
        assert_eq!(clock.elapsed(), Duration::from_secs(20));
    }

    #[test]
    fn a_future_waiting_on_nothing_is_reported_stalled() {
        let clock = ManualClock::new();
        assert_eq!(
            run(&clock, futures::future::pending::<()>()).unwrap_err(),
            SimError::Stalled
        );
    }

    #[test]
    fn sim_fleet_is_send_and_sync() {
        fn bounds<T: Send + Sync + Clone + 'static>() {}
        bounds::<SimFleet>();
    }
}
