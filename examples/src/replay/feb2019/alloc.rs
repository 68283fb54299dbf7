//! The `node_modules` allocator of each receiving host, modelled in front
//! of fleet-drain's `SimFleet`: the February 2019 root cause.
//!
//! # Model
//!
//! [`AllocFleet`] wraps a `SimFleet` (which places apps and makes a start
//! take `start_s`) and implements `Fleet` itself, so the drain controller,
//! the naive procedure and the platform's restarts all start apps through
//! it. Every start first allocates the app's `node_modules` on its host:
//!
//! - **corruption** (hidden, [`FebWorld`](super::params::FebWorld)): a start
//!   that begins with `c` allocations in progress on its host (itself
//!   included) is silently corrupted with probability
//!   `min(max_failure_probability, failure_per_extra_start × max(0, c − S))`.
//!   The start succeeds; the app reports `Unhealthy` from
//!   `corruption_visible_after_s` after the start ended until it is started
//!   again (by a probation repair, or by the platform's periodic restart at
//!   a uniformly random moment of the `restart_period_s` after the start).
//!   This is fleet-drain's silent-failure curve, applied here rather than
//!   in `SimFleet` so that it can be capped and so that it counts the
//!   allocations the allocator admits, not the starts a caller asked for.
//! - **admission** (Breakwater's allocator, node-modules-alloc's design):
//!   a resilience-core `ConcurrencyLimit` per host — at most
//!   `alloc_max_concurrent` allocations at once, `alloc_max_queued` waiting
//!   (FIFO, shed after `alloc_queue_timeout_s`), everyone else shed at once
//!   with `Overloaded`, which the caller sees as a failed start
//!   (`StartFailed`, retryable). The incident's allocator has no limit.
//!
//! What it leaves out: disk space reservations and the store's templates
//! (node-modules-alloc's admission also reserves bytes), and restarts of
//! healthy apps (only corrupted apps' periodic restarts are simulated).

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use fleet_drain::fleet::{
    App, AppId, AppState, DrainFleet, FleetError, Host, HostId, HostState, RolloutFleet,
};
use fleet_drain::sim::SimFleet;
use resilience_core::clock::{Clock, ManualClock};
use resilience_core::limit::{ConcurrencyLimit, ConcurrencyLimitConfig};

use crate::replay::error::ReplayError;
use crate::replay::prometheus::build_named;

/// The hidden corruption curve and the platform's restart period.
#[derive(Debug, Clone, PartialEq)]
pub struct AllocModel {
    /// Allocations at once that never corrupt (hidden S).
    pub safe_concurrent: u32,
    /// Corruption probability per allocation beyond `safe_concurrent`.
    pub per_extra: f64,
    /// Cap on the corruption probability.
    pub max_probability: f64,
    /// Delay between a corrupted start's end and its app turning unhealthy.
    pub visible_after: Duration,
    /// The platform restarts every app once per period.
    pub restart_period: Duration,
    /// Breakwater's allocator admission; `None`: the incident's (unbounded).
    pub limit: Option<ConcurrencyLimitConfig>,
    /// Seed of the corruption draws and restart moments.
    pub seed: u64,
}

impl AllocModel {
    /// The corruption probability of an allocation with `concurrent`
    /// allocations (itself included) in progress on its host.
    pub fn corruption_probability(&self, concurrent: u32) -> f64 {
        let extra = f64::from(concurrent.saturating_sub(self.safe_concurrent));
        (self.per_extra * extra).min(self.max_probability)
    }
}

#[derive(Debug, Clone, Copy)]
struct Corruption {
    visible_at: Instant,
    repair_at: Instant,
    counted: bool,
}

/// Counters of the allocator model.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllocStats {
    /// Starts that were corrupted.
    pub corruptions: u64,
    /// Corrupted apps started again successfully (by anyone).
    pub repairs: u64,
    /// Allocations shed by the admission limit.
    pub shed: u64,
    /// Apps corrupted now (visible or not yet).
    pub corrupted_now: u64,
    /// Most allocations in progress on one host at once.
    pub peak_concurrent: u32,
}

#[derive(Debug)]
struct AllocState {
    rng: fastrand::Rng,
    in_flight: Vec<u32>,
    corrupted: BTreeMap<u32, Corruption>,
    stats: AllocStats,
    last_repair: Option<Instant>,
    uncounted_visible: u64,
}

/// A `Fleet` whose starts go through a per-host allocator model (see the
/// [module docs](self)). Cheap to clone (shared state).
#[derive(Debug, Clone)]
pub struct AllocFleet {
    inner: SimFleet,
    clock: ManualClock,
    model: Arc<AllocModel>,
    limits: Arc<Vec<ConcurrencyLimit>>,
    state: Arc<Mutex<AllocState>>,
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

impl AllocFleet {
    /// Wraps `inner`, whose hosts `0..hosts` each get an allocator.
    pub fn new(
        inner: SimFleet,
        clock: ManualClock,
        model: AllocModel,
        hosts: usize,
    ) -> Result<Self, ReplayError> {
        let mut limits = Vec::new();
        if let Some(config) = &model.limit {
            for _ in 0..hosts {
                // One name for every host's allocator limit: a per-host label is a cardinality trap.
                limits.push(build_named(
                    "feb2019.breakwater.alloc-limit",
                    || ConcurrencyLimit::with_clock(config.clone(), clock.clone()),
                    ConcurrencyLimit::named,
                )?);
            }
        }
        Ok(AllocFleet {
            inner,
            clock,
            state: Arc::new(Mutex::new(AllocState {
                rng: fastrand::Rng::with_seed(model.seed ^ 0xA110_C470_2019),
                in_flight: vec![0; hosts],
                corrupted: BTreeMap::new(),
                stats: AllocStats::default(),
                last_repair: None,
                uncounted_visible: 0,
            })),
            model: Arc::new(model),
            limits: Arc::new(limits),
        })
    }

    fn lock(&self) -> MutexGuard<'_, AllocState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The wrapped fleet.
    pub fn sim(&self) -> &SimFleet {
        &self.inner
    }

    /// Counters so far.
    pub fn stats(&self) -> AllocStats {
        let state = self.lock();
        AllocStats {
            corrupted_now: state.corrupted.len() as u64,
            ..state.stats.clone()
        }
    }

    /// When a corrupted app was last started again successfully.
    pub fn last_repair(&self) -> Option<Instant> {
        self.lock().last_repair
    }

    /// Corrupted apps that turned visibly unhealthy since the last call
    /// (each counted once, repaired or not).
    pub fn take_newly_visible(&self) -> u64 {
        let now = self.clock.now();
        let mut state = self.lock();
        let mut n = std::mem::take(&mut state.uncounted_visible);
        for c in state.corrupted.values_mut() {
            if !c.counted && c.visible_at <= now {
                c.counted = true;
                n += 1;
            }
        }
        n
    }

    /// Corrupted apps whose periodic restart is due; their next restart
    /// moves a period later (if this one fails, the next period retries).
    pub fn due_restarts(&self) -> Vec<AppId> {
        let now = self.clock.now();
        let period = self.model.restart_period;
        let mut state = self.lock();
        let mut due = Vec::new();
        for (&id, c) in &mut state.corrupted {
            if c.repair_at <= now {
                c.repair_at += period;
                due.push(AppId(id));
            }
        }
        due
    }

    async fn allocate_and_start(&self, app: AppId, to: HostId) -> Result<(), FleetError> {
        let index = to.0 as usize;
        let _permit = match self.limits.get(index) {
            Some(limit) => match limit.acquire().await {
                Ok(permit) => Some(permit),
                Err(overloaded) => {
                    self.lock().stats.shed += 1;
                    return Err(FleetError::StartFailed {
                        app,
                        host: to,
                        reason: format!("node_modules allocator overloaded: {overloaded}"),
                    });
                }
            },
            None => None,
        };
        let corrupt = {
            let mut state = self.lock();
            let concurrent = match state.in_flight.get_mut(index) {
                Some(slot) => {
                    *slot += 1;
                    *slot
                }
                None => 1,
            };
            state.stats.peak_concurrent = state.stats.peak_concurrent.max(concurrent);
            let p = self.model.corruption_probability(concurrent);
            p > 0.0 && state.rng.f64() < p
        };
        let result = self.inner.migrate(app, to).await;
        let now = self.clock.now();
        let mut state = self.lock();
        if let Some(slot) = state.in_flight.get_mut(index) {
            *slot = slot.saturating_sub(1);
        }
        if result.is_ok() {
            if let Some(old) = state.corrupted.remove(&app.0) {
                state.stats.repairs += 1;
                state.last_repair = Some(now);
                if !old.counted && old.visible_at <= now {
                    state.uncounted_visible += 1;
                }
            }
            if corrupt {
                let offset = self.model.restart_period.mul_f64(state.rng.f64());
                state.corrupted.insert(
                    app.0,
                    Corruption {
                        visible_at: now + self.model.visible_after,
                        repair_at: now + offset,
                        counted: false,
                    },
                );
                state.stats.corruptions += 1;
            }
        }
        result
    }

    fn visible_state(&self, app: u32, state: AppState, now: Instant) -> AppState {
        let corrupted = self
            .lock()
            .corrupted
            .get(&app)
            .is_some_and(|c| c.visible_at <= now);
        if corrupted && state == AppState::Running {
            AppState::Unhealthy
        } else {
            state
        }
    }
}

// `DrainFleet` and `RolloutFleet` are `async_trait`s; their methods are written out desugared here
// (the examples crate does not depend on `async-trait`).
impl DrainFleet for AllocFleet {
    fn hosts<'life0, 'async_trait>(
        &'life0 self,
    ) -> BoxFuture<'async_trait, Result<Vec<Host>, FleetError>>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        self.inner.hosts()
    }

    fn apps<'life0, 'async_trait>(
        &'life0 self,
    ) -> BoxFuture<'async_trait, Result<Vec<App>, FleetError>>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move {
            let mut apps = self.inner.apps().await?;
            let now = self.clock.now();
            let state = self.lock();
            for (&id, c) in &state.corrupted {
                if c.visible_at <= now
                    && let Some(a) = apps.get_mut(id as usize)
                    && a.id.0 == id
                    && a.state == AppState::Running
                {
                    a.state = AppState::Unhealthy;
                }
            }
            Ok(apps)
        })
    }

    fn set_host_state<'life0, 'async_trait>(
        &'life0 self,
        host: HostId,
        state: HostState,
    ) -> BoxFuture<'async_trait, Result<(), FleetError>>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        self.inner.set_host_state(host, state)
    }

    fn migrate<'life0, 'async_trait>(
        &'life0 self,
        app: AppId,
        to: HostId,
    ) -> BoxFuture<'async_trait, Result<(), FleetError>>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(self.allocate_and_start(app, to))
    }

    fn app_health<'life0, 'async_trait>(
        &'life0 self,
        app: AppId,
    ) -> BoxFuture<'async_trait, Result<AppState, FleetError>>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move {
            let state = self.inner.app_health(app).await?;
            Ok(self.visible_state(app.0, state, self.clock.now()))
        })
    }
}

impl RolloutFleet for AllocFleet {
    fn start_version<'life0, 'life1, 'async_trait>(
        &'life0 self,
        host: HostId,
        version: &'life1 str,
        traffic: bool,
    ) -> BoxFuture<'async_trait, Result<(), FleetError>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        self.inner.start_version(host, version, traffic)
    }

    fn stop_version<'life0, 'life1, 'async_trait>(
        &'life0 self,
        host: HostId,
        version: &'life1 str,
    ) -> BoxFuture<'async_trait, Result<(), FleetError>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        self.inner.stop_version(host, version)
    }

    fn shift_traffic<'life0, 'life1, 'async_trait>(
        &'life0 self,
        version: &'life1 str,
        percent: f64,
    ) -> BoxFuture<'async_trait, Result<(), FleetError>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        self.inner.shift_traffic(version, percent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleet_drain::sim::{self, SimConfig};

    fn fleet(
        limit: Option<ConcurrencyLimitConfig>,
    ) -> (ManualClock, AllocFleet, Vec<AppId>, HostId) {
        let clock = ManualClock::new();
        let sim = SimFleet::with_clock(
            SimConfig {
                failure_probability_per_extra_start: 0.0,
                max_failure_probability: 0.0,
                ..SimConfig::default()
            },
            clock.clone(),
        )
        .unwrap();
        let old = sim.add_host(100, "v1");
        let new = sim.add_host(100, "v1");
        let apps = sim.add_apps(old, 40).unwrap();
        let model = AllocModel {
            safe_concurrent: 4,
            per_extra: 1.0,
            max_probability: 1.0,
            visible_after: Duration::from_secs(60),
            restart_period: Duration::from_secs(3_600),
            limit,
            seed: 1,
        };
        let fleet = AllocFleet::new(sim, clock.clone(), model, 2).unwrap();
        (clock, fleet, apps, new)
    }

    #[test]
    fn a_surge_past_the_safe_number_corrupts_silently_until_visible() {
        let (clock, fleet, apps, new) = fleet(None);
        let results = sim::run(&clock, async {
            let starts = apps.iter().map(|&a| fleet.migrate(a, new));
            futures::future::join_all(starts).await
        })
        .unwrap();
        assert!(results.iter().all(Result::is_ok), "starts succeed");
        // The 5th to the 40th concurrent allocation are corrupted (p = 1).
        assert_eq!(fleet.stats().corruptions, 36);
        assert_eq!(fleet.stats().peak_concurrent, 40);
        let health = |fleet: &AllocFleet| sim::run(&clock, fleet.apps()).unwrap().unwrap();
        assert!(health(&fleet).iter().all(|a| a.state == AppState::Running));
        clock.advance(Duration::from_secs(60));
        let unhealthy = health(&fleet)
            .iter()
            .filter(|a| a.state == AppState::Unhealthy)
            .count();
        assert_eq!(unhealthy, 36);
        assert_eq!(fleet.take_newly_visible(), 36);
    }

    #[test]
    fn the_admission_limit_queues_and_sheds_so_no_allocation_is_corrupted() {
        let (clock, fleet, apps, new) = fleet(Some(ConcurrencyLimitConfig {
            max_concurrent: 4,
            max_queued: 20,
            queue_timeout: Some(Duration::from_secs(300)),
            ..ConcurrencyLimitConfig::default()
        }));
        let results = sim::run(&clock, async {
            let starts = apps.iter().map(|&a| fleet.migrate(a, new));
            futures::future::join_all(starts).await
        })
        .unwrap();
        let ok = results.iter().filter(|r| r.is_ok()).count();
        // 4 run, 20 queue, 16 are shed at once.
        assert_eq!(ok, 24);
        assert_eq!(fleet.stats().shed, 16);
        assert_eq!(fleet.stats().corruptions, 0);
        assert_eq!(fleet.stats().peak_concurrent, 4);
        assert!(results.iter().any(|r| matches!(
            r,
            Err(FleetError::StartFailed { reason, .. }) if reason.contains("overloaded")
        )));
    }
}
