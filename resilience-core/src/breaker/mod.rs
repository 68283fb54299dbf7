//! Circuit breaker: stop sending load to a dependency that keeps failing.
//!
//! # Why a circuit breaker?
//!
//! Clients that keep sending full load, plus retries, to a dependency that
//! is crash-looping never let it stay up long enough to recover (see the
//! [crate docs](crate)). A breaker in each client notices the failures,
//! fails calls fast instead of forwarding them, gives the dependency room to
//! come back, then lets traffic return gradually through a few probe calls.
//!
//! A [`CircuitBreaker`] is **closed** while the dependency is healthy and
//! records the outcome of every call. It **opens** (trips) on
//! - `consecutive_failures` failures in a row (optional), or
//! - a failure rate of at least `failure_rate_threshold` over a sliding
//!   window (the last N calls, or the last D seconds in buckets), or
//! - a slow-call rate of at least `slow_call_rate_threshold`, where a call is
//!   slow when it took longer than `slow_call_duration` between
//!   [`CircuitBreaker::try_acquire`] and its record,
//!
//! the rate rules applying only once the window holds `minimum_calls` calls.
//! While open it rejects calls with [`BreakerOpen`] carrying a `retry_after`.
//! After the open wait (which grows with every trip in a row, following the
//! `open_wait` [`Backoff`]) the next `try_acquire` moves it to **half-open**:
//! at most `half_open_probes` probe calls are in flight at a time; after that
//! many probe successes it closes (and the wait growth resets), and one probe
//! failure (or, when slow calls are tracked, one slow probe) reopens it.
//!
//! Permits never leak: every admitted call holds a [`BreakerPermit`], and a
//! permit dropped without a record (a cancelled future, an early return) is
//! *cancelled*: it frees its probe slot and counts as neither success nor
//! failure. Outcomes that say nothing about the dependency (client errors) are
//! recorded as [`Outcome::Ignored`]. (resilience4j #903 and opossum #119 are
//! breakers that got stuck half-open because of leaked probes.)
//!
//! The synchronous `try_acquire` → record API is the primary one (it is what
//! the Node bindings drive); [`CircuitBreaker::call`] wraps a future.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use resilience_core::backoff::BackoffConfig;
//! use resilience_core::breaker::{BreakerConfig, BreakerState, CircuitBreaker};
//! use resilience_core::clock::ManualClock;
//!
//! let clock = ManualClock::new();
//! let breaker = CircuitBreaker::with_clock(
//!     BreakerConfig {
//!         consecutive_failures: Some(3),
//!         open_wait: BackoffConfig {
//!             base: Duration::from_secs(10),
//!             ..BreakerConfig::default().open_wait
//!         },
//!         half_open_probes: 1,
//!         ..BreakerConfig::default()
//!     },
//!     clock.clone(),
//! )?;
//!
//! for _ in 0..3 {
//!     breaker.try_acquire()?.record_failure();
//! }
//! assert_eq!(breaker.state(), BreakerState::Open);
//! let rejected = breaker.try_acquire().unwrap_err();
//! assert_eq!(rejected.retry_after, Duration::from_secs(10));
//!
//! clock.advance(Duration::from_secs(10));
//! let probe = breaker.try_acquire()?; // the wait is over: one probe goes through
//! assert_eq!(breaker.state(), BreakerState::HalfOpen);
//! assert!(breaker.try_acquire().is_err()); // only one probe at a time
//! probe.record_success();
//! assert_eq!(breaker.state(), BreakerState::Closed);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # State changes
//!
//! Every transition emits a `tracing` event (`warn` when opening, `info` when
//! half-opening or closing) and is sent to the
//! [`tokio::sync::broadcast`] receivers returned by
//! [`CircuitBreaker::subscribe`], in order. The receiver also works without a
//! runtime (`try_recv`); it keeps the last 64 changes, a receiver that falls
//! further behind gets `RecvError::Lagged`.
//!
//! # Performance
//!
//! In the closed state [`CircuitBreaker::try_acquire`] and recording a fast
//! success are lock-free (successes are counted per thread and folded into
//! the window by the next operation that takes the lock); other records take
//! one short critical section, without allocating.

mod config;
mod error;
mod state;
mod tally;
mod window;

use std::fmt;
use std::future::Future;
use std::sync::PoisonError;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::broadcast;

pub use config::{BreakerConfig, MAX_WINDOW_BUCKETS, MAX_WINDOW_CALLS, MIN_BUCKET, WindowConfig};
pub use error::{BreakerError, BreakerOpen};
pub use state::{BreakerState, Outcome, StateChange};

use crate::backoff::Backoff;
use crate::clock::{Clock, SharedClock, nanos_since, saturating_add};
use crate::error::ConfigError;
use crate::name::{InstanceName, Named};
use crate::obs::{Counter, Gauge};
use crate::sync::{Arc, AtomicU64, Mutex, MutexGuard};
use tally::Tally;
use window::Window;

use crate::stripe::{self, Padded};

/// How many state changes a [`CircuitBreaker::subscribe`] receiver buffers.
pub const EVENT_CAPACITY: usize = 64;

const STATE_MASK: u64 = 0b11;
const CLOSED_BITS: u64 = 0;
/// Epochs wrap within the 62 bits the state word has room for.
const EPOCH_MASK: u64 = u64::MAX >> 2;

fn pack(epoch: u64, state: BreakerState) -> u64 {
    (epoch << 2) | state.to_bits()
}

/// A circuit breaker. Cheap to clone: clones share one breaker.
///
/// See the [module documentation](self) for the state machine.
#[derive(Clone)]
pub struct CircuitBreaker {
    inner: Arc<Inner>,
    /// What permits hold (see [`Cell`]); one per stripe.
    cells: Box<[Arc<Padded<Cell>>]>,
}

/// The reference to the breaker a permit keeps. Cloning the breaker's one
/// `Arc` for every permit made every thread write the same reference count
/// twice per call; each cell has its own count on its own cache line, and a
/// thread clones the cell of its stripe.
struct Cell {
    inner: Arc<Inner>,
}

fn cells(inner: &Arc<Inner>) -> Box<[Arc<Padded<Cell>>]> {
    (0..stripe::stripe_count())
        .map(|_| {
            Arc::new(Padded(Cell {
                inner: Arc::clone(inner),
            }))
        })
        .collect()
}

// # Memory ordering
//
// All breaker state lives behind one mutex (short critical sections, no
// allocation). Two paths are lock-free in the closed state: recording a fast
// success (counted per thread, folded in under the lock by the next locked
// operation; see `tally.rs`), and `try_acquire`: a single `AtomicU64` holds
// `epoch << 2 | state`, written (with `Release`) only while the mutex is held,
// on every transition, and read with `Acquire`. A permit remembers the epoch
// it was issued in, and its record is checked against the current epoch
// under the mutex, so nothing else is read from the atomic; a permit taken
// just before a concurrent trip is counted in the metrics but does not
// affect the new state. (`Relaxed` would suffice for that; `Acquire` costs
// nothing on x86 and pairs with the `Release` store.)
struct Inner {
    /// `epoch << 2 | state`; see "Memory ordering" above.
    word: AtomicU64,
    clock: SharedClock,
    slow_call_duration: Option<Duration>,
    /// The clock must be read when recording (time window or slow calls).
    clock_on_record: bool,
    /// Call times come from [`Clock::now_coarse`]: every duration the breaker
    /// times (the slow-call threshold, a time window's buckets) is at least
    /// [`COARSE_CLOCK_FROM`], so a scheduler tick of error does not matter.
    coarse: bool,
    /// Time line of the breaker's call times (see [`Inner::call_nanos`]):
    /// [`Clock::now`] and [`Clock::now_coarse_nanos`] when it was built.
    origin: Instant,
    origin_coarse: u64,
    /// Bucket width of a time window (the tally's tags name the bucket).
    bucket_nanos: Option<u64>,
    /// Closed-state successes not yet folded into `core`.
    tally: Tally,
    config: BreakerConfig,
    events: broadcast::Sender<StateChange>,
    core: Mutex<Core>,
    name: InstanceName,
    obs: BreakerObs,
}

/// The metric handles of a breaker.
#[derive(Debug)]
struct BreakerObs {
    state: Gauge,
    to_open: Counter,
    to_half_open: Counter,
    to_closed: Counter,
    successes: Counter,
    failures: Counter,
    ignored: Counter,
    cancelled: Counter,
    slow: Counter,
    rejected: Counter,
}

impl BreakerObs {
    fn register(name: &InstanceName, state: BreakerState) -> Self {
        const TRANSITIONS: &str = "breakwater_breaker_transitions_total";
        const CALLS: &str = "breakwater_breaker_calls_total";
        let obs = BreakerObs {
            state: Gauge::register("breakwater_breaker_state", name, &[]),
            to_open: Counter::register(TRANSITIONS, name, &[("to", "open")]),
            to_half_open: Counter::register(TRANSITIONS, name, &[("to", "half_open")]),
            to_closed: Counter::register(TRANSITIONS, name, &[("to", "closed")]),
            successes: Counter::register(CALLS, name, &[("outcome", "success")]),
            failures: Counter::register(CALLS, name, &[("outcome", "failure")]),
            ignored: Counter::register(CALLS, name, &[("outcome", "ignored")]),
            cancelled: Counter::register(CALLS, name, &[("outcome", "cancelled")]),
            slow: Counter::register("breakwater_breaker_slow_calls_total", name, &[]),
            rejected: Counter::register("breakwater_breaker_rejected_total", name, &[]),
        };
        obs.state.set(state_value(state));
        obs
    }
}

/// The value of the `breakwater_breaker_state` gauge.
fn state_value(state: BreakerState) -> f64 {
    match state {
        BreakerState::Closed => 0.0,
        BreakerState::Open => 1.0,
        BreakerState::HalfOpen => 2.0,
    }
}

/// Everything behind the mutex.
#[derive(Debug)]
struct Core {
    state: BreakerState,
    epoch: u64,
    window: Window,
    consecutive_failures: u32,
    open_until: Instant,
    open_wait: Backoff,
    probes_in_flight: u32,
    probe_successes: u32,
    counters: Counters,
    /// The epoch the tally's stripes were last tagged with.
    tally_epoch: u64,
}

#[derive(Debug, Clone, Copy, Default)]
struct Counters {
    successes: u64,
    failures: u64,
    slow_calls: u64,
    ignored: u64,
    cancelled: u64,
    rejections: u64,
    trips: u64,
}

/// Why a breaker opened (for the `tracing` event).
#[derive(Debug, Clone, Copy)]
enum TripReason {
    ConsecutiveFailures(u32),
    FailureRate(f64),
    SlowCallRate(f64),
    ProbeFailed,
    ProbeSlow,
}

impl TripReason {
    fn as_str(self) -> &'static str {
        match self {
            TripReason::ConsecutiveFailures(_) => "consecutive failures",
            TripReason::FailureRate(_) => "failure rate over threshold",
            TripReason::SlowCallRate(_) => "slow-call rate over threshold",
            TripReason::ProbeFailed => "half-open probe failed",
            TripReason::ProbeSlow => "half-open probe was slow",
        }
    }
}

/// A transition that happened inside the critical section, logged after it.
#[derive(Debug, Clone, Copy)]
struct Transition {
    change: StateChange,
    reason: Option<TripReason>,
    wait: Duration,
    trips_in_a_row: u32,
}

/// A snapshot of a breaker's counters, for dashboards.
///
/// Counters are cumulative since creation; `calls` counts permits that have
/// completed (with any outcome, cancellations included), so permits still in
/// flight are not in it yet.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakerMetrics {
    /// The current state.
    pub state: BreakerState,
    /// Completed permits: `successes + failures + ignored + cancelled`.
    pub calls: u64,
    /// Calls recorded as [`Outcome::Success`] (slow ones included).
    pub successes: u64,
    /// Calls recorded as [`Outcome::Failure`].
    pub failures: u64,
    /// Successes and failures that were slow.
    pub slow_calls: u64,
    /// Calls recorded as [`Outcome::Ignored`].
    pub ignored: u64,
    /// Permits dropped without a record.
    pub cancelled: u64,
    /// Calls rejected with [`BreakerOpen`].
    pub rejections: u64,
    /// Transitions to open.
    pub trips: u64,
    /// Calls currently in the sliding window (closed state).
    pub window_calls: u32,
    /// Failure rate over the window (0 when empty).
    pub window_failure_rate: f64,
    /// Slow-call rate over the window (0 when empty).
    pub window_slow_call_rate: f64,
}

impl CircuitBreaker {
    /// A breaker on the [`SystemClock`](crate::clock::SystemClock).
    pub fn new(config: BreakerConfig) -> Result<Self, ConfigError> {
        Self::with_clock(config, SharedClock::system())
    }

    /// A breaker built from a [`Named`] configuration (a config file's
    /// section with an optional `name` key), on `clock`.
    ///
    /// ```
    /// use resilience_core::Named;
    /// use resilience_core::breaker::{BreakerConfig, CircuitBreaker};
    /// use resilience_core::clock::ManualClock;
    ///
    /// let config: Named<BreakerConfig> = serde_json::from_str(r#"{ "name": "users-db" }"#)?;
    /// let breaker = CircuitBreaker::from_named(config, ManualClock::new())?;
    /// assert_eq!(breaker.name().as_str(), "users-db");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_named(
        config: Named<BreakerConfig>,
        clock: impl Clock,
    ) -> Result<Self, ConfigError> {
        let name = config.instance_name()?;
        let config = config.config;
        let open_wait = Backoff::new(config.open_wait.clone()).map_err(|e| e.nested("open_wait"));
        Self::build(config, clock.into_shared(), open_wait, name)
    }

    /// Names the breaker: the `name` field of its tracing events and the
    /// `name` label of its metrics. Call it right after construction, before
    /// cloning the breaker: a breaker that already has clones keeps its name
    /// (and logs a warning), since the clones share it.
    #[must_use]
    pub fn named(mut self, name: InstanceName) -> Self {
        // Without clones or permits, this handle's cells hold the only other
        // references to `inner`.
        self.cells = Box::default();
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            let state = BreakerState::from_bits(inner.word.load(Ordering::Acquire) & STATE_MASK);
            inner.obs = BreakerObs::register(&name, state);
            inner.name = name;
        } else {
            tracing::warn!(
                name = %self.inner.name,
                new_name = %name,
                "CircuitBreaker::named on a breaker that has clones: the name is unchanged; name it before cloning"
            );
        }
        self.cells = cells(&self.inner);
        self
    }

    /// The instance name (`""` when unnamed).
    pub fn name(&self) -> &InstanceName {
        &self.inner.name
    }

    /// A breaker on the given clock (a [`ManualClock`](crate::clock::ManualClock)
    /// in tests and simulations).
    pub fn with_clock(config: BreakerConfig, clock: impl Clock) -> Result<Self, ConfigError> {
        let open_wait = Backoff::new(config.open_wait.clone()).map_err(|e| e.nested("open_wait"));
        Self::build(
            config,
            clock.into_shared(),
            open_wait,
            InstanceName::unnamed(),
        )
    }

    /// Like [`CircuitBreaker::with_clock`], with the open-wait jitter drawn
    /// from a generator seeded with `seed`, for reproducible simulations.
    pub fn with_clock_and_seed(
        config: BreakerConfig,
        clock: impl Clock,
        seed: u64,
    ) -> Result<Self, ConfigError> {
        let open_wait =
            Backoff::with_seed(config.open_wait.clone(), seed).map_err(|e| e.nested("open_wait"));
        Self::build(
            config,
            clock.into_shared(),
            open_wait,
            InstanceName::unnamed(),
        )
    }

    fn build(
        config: BreakerConfig,
        clock: SharedClock,
        open_wait: Result<Backoff, ConfigError>,
        name: InstanceName,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        let open_wait = open_wait?;
        let now = clock.now();
        let origin_coarse = clock.now_coarse_nanos();
        let window = Window::new(config.window);
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        let inner = Arc::new(Inner {
            word: AtomicU64::new(pack(0, BreakerState::Closed)),
            slow_call_duration: config.slow_call_duration,
            clock_on_record: config.slow_call_duration.is_some() || window.needs_clock(),
            coarse: coarse_enough(&config),
            origin: now,
            origin_coarse,
            bucket_nanos: window.bucket_nanos(),
            tally: Tally::new(tally::LOCKED),
            clock,
            config,
            events,
            core: Mutex::new(Core {
                state: BreakerState::Closed,
                epoch: 0,
                window,
                consecutive_failures: 0,
                open_until: now,
                open_wait,
                probes_in_flight: 0,
                probe_successes: 0,
                counters: Counters::default(),
                tally_epoch: 0,
            }),
            obs: BreakerObs::register(&name, BreakerState::Closed),
            name,
        });
        Ok(CircuitBreaker {
            cells: cells(&inner),
            inner,
        })
    }

    /// A permit's reference to the breaker: the calling thread's cell.
    fn cell(&self) -> Arc<Padded<Cell>> {
        match self.cells.get(stripe::index(self.cells.len())) {
            Some(cell) => Arc::clone(cell),
            // Unreachable (`cells` is never empty), but a fresh cell is
            // always a correct one.
            None => Arc::new(Padded(Cell {
                inner: Arc::clone(&self.inner),
            })),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &BreakerConfig {
        &self.inner.config
    }

    /// Asks to make one call. `Ok` holds a permit to record the outcome with;
    /// `Err` means the breaker is open (or half-open with every probe slot
    /// taken) and the call must not be made.
    ///
    /// In the closed state this is lock-free and reads the clock only if slow
    /// calls are tracked. When open, the first call after the wait moves the
    /// breaker to half-open and becomes a probe.
    pub fn try_acquire(&self) -> Result<BreakerPermit, BreakerOpen> {
        let word = self.inner.word.load(Ordering::Acquire);
        if word & STATE_MASK == CLOSED_BITS {
            let started = self
                .inner
                .slow_call_duration
                .map(|_| self.inner.call_nanos());
            return Ok(BreakerPermit::new(self.cell(), word >> 2, false, started));
        }
        self.acquire_contended()
    }

    /// `try_acquire` outside the closed fast path: under the mutex.
    fn acquire_contended(&self) -> Result<BreakerPermit, BreakerOpen> {
        let now = self.inner.clock.now();
        let started = self
            .inner
            .slow_call_duration
            .map(|_| self.inner.call_nanos());
        let mut core = self.inner.lock();
        self.inner.fold(&mut core);
        let mut transition = None;
        if core.state == BreakerState::Open {
            if now < core.open_until {
                core.counters.rejections += 1;
                let retry_after = core.open_until - now;
                drop(core);
                self.inner.obs.rejected.inc();
                tracing::trace!(name = %self.inner.name, ?retry_after, "call rejected by open circuit breaker");
                return Err(BreakerOpen { retry_after });
            }
            transition = Some(
                self.inner
                    .transition(&mut core, BreakerState::HalfOpen, now, None),
            );
        }
        let result = match core.state {
            BreakerState::Closed => Ok(BreakerPermit::new(self.cell(), core.epoch, false, started)),
            BreakerState::HalfOpen
                if core.probes_in_flight.saturating_add(core.probe_successes)
                    < self.inner.config.half_open_probes =>
            {
                core.probes_in_flight += 1;
                Ok(BreakerPermit::new(self.cell(), core.epoch, true, started))
            }
            BreakerState::HalfOpen | BreakerState::Open => {
                core.counters.rejections += 1;
                Err(BreakerOpen {
                    retry_after: self.inner.config.open_wait.base,
                })
            }
        };
        let in_flight = core.probes_in_flight;
        drop(core);
        if let Some(transition) = transition {
            transition.log(&self.inner.name);
        }
        if result.is_err() {
            self.inner.obs.rejected.inc();
            tracing::trace!(
                name = %self.inner.name,
                probes_in_flight = in_flight,
                "call rejected: every half-open probe slot is taken"
            );
        }
        result
    }

    /// The current state.
    ///
    /// An open breaker whose wait has elapsed still reports `Open` until the
    /// next [`CircuitBreaker::try_acquire`] moves it to half-open.
    pub fn state(&self) -> BreakerState {
        BreakerState::from_bits(self.inner.word.load(Ordering::Acquire) & STATE_MASK)
    }

    /// A receiver of every state change from now on, in order. See "State
    /// changes" in the module docs.
    pub fn subscribe(&self) -> broadcast::Receiver<StateChange> {
        self.inner.events.subscribe()
    }

    /// A snapshot of the counters and the current window.
    pub fn metrics(&self) -> BreakerMetrics {
        let now = self.inner.clock_on_record.then(|| self.inner.call_nanos());
        let mut core = self.inner.lock();
        self.inner.fold(&mut core);
        let totals = core.window.totals(now);
        self.inner.fold(&mut core);
        let c = core.counters;
        BreakerMetrics {
            state: core.state,
            calls: c.successes + c.failures + c.ignored + c.cancelled,
            successes: c.successes,
            failures: c.failures,
            slow_calls: c.slow_calls,
            ignored: c.ignored,
            cancelled: c.cancelled,
            rejections: c.rejections,
            trips: c.trips,
            window_calls: totals.calls,
            window_failure_rate: totals.failure_rate(),
            window_slow_call_rate: totals.slow_rate(),
        }
    }

    /// Runs `fut` if the breaker admits it and records `Ok` as a success and
    /// `Err` as a failure. A rejected `fut` is dropped without being polled.
    /// If the returned future is dropped before `fut` completes, the call
    /// counts as cancelled.
    ///
    /// ```
    /// # use resilience_core::breaker::{BreakerConfig, BreakerError, CircuitBreaker};
    /// # use resilience_core::clock::ManualClock;
    /// # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
    /// let breaker = CircuitBreaker::with_clock(BreakerConfig::default(), ManualClock::new())?;
    /// let value = breaker.call(async { Ok::<_, std::io::Error>(42) }).await?;
    /// assert_eq!(value, 42);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn call<F, T, E>(&self, fut: F) -> Result<T, BreakerError<E>>
    where
        F: Future<Output = Result<T, E>>,
    {
        self.call_with(fut, |result| {
            if result.is_ok() {
                Outcome::Success
            } else {
                Outcome::Failure
            }
        })
        .await
    }

    /// Like [`CircuitBreaker::call`] with a classifier deciding the outcome,
    /// e.g. [`Outcome::Ignored`] for client errors.
    pub async fn call_with<F, T, E, C>(&self, fut: F, classify: C) -> Result<T, BreakerError<E>>
    where
        F: Future<Output = Result<T, E>>,
        C: FnOnce(&Result<T, E>) -> Outcome,
    {
        let permit = self.try_acquire()?;
        let result = fut.await;
        permit.record(classify(&result));
        result.map_err(BreakerError::Inner)
    }

    /// Completes a permit (`outcome` `None`: dropped without a record).
    fn complete(inner: &Inner, permit: &BreakerPermit, outcome: Option<Outcome>) {
        let now = if outcome.is_some() && inner.clock_on_record {
            Some(inner.call_nanos())
        } else {
            None
        };
        let slow = match (inner.slow_call_duration, permit.started, now, outcome) {
            (Some(limit), Some(started), Some(now), Some(Outcome::Success | Outcome::Failure)) => {
                Duration::from_nanos(now.saturating_sub(started)) > limit
            }
            _ => false,
        };
        if outcome == Some(Outcome::Success)
            && !slow
            && !permit.probe
            && inner.try_count_success(permit.epoch, now)
        {
            inner.obs.successes.inc();
            return;
        }

        match outcome {
            Some(Outcome::Success) => inner.obs.successes.inc(),
            Some(Outcome::Failure) => inner.obs.failures.inc(),
            Some(Outcome::Ignored) => inner.obs.ignored.inc(),
            None => inner.obs.cancelled.inc(),
        }
        if slow {
            inner.obs.slow.inc();
        }
        let mut core = inner.lock();
        inner.fold(&mut core);
        match outcome {
            Some(Outcome::Success) => core.counters.successes += 1,
            Some(Outcome::Failure) => core.counters.failures += 1,
            Some(Outcome::Ignored) => core.counters.ignored += 1,
            None => core.counters.cancelled += 1,
        }
        if slow {
            core.counters.slow_calls += 1;
        }
        if permit.epoch != core.epoch {
            // Issued before the last transition: history, not evidence about
            // the current state.
            return;
        }
        let mut transition = None;
        match core.state {
            BreakerState::Closed => {
                let failed = match outcome {
                    Some(Outcome::Success) => false,
                    Some(Outcome::Failure) => true,
                    Some(Outcome::Ignored) | None => return,
                };
                core.consecutive_failures = if failed {
                    core.consecutive_failures.saturating_add(1)
                } else {
                    0
                };
                core.window.record(now, failed, slow);
                if let Some(reason) = inner.trip_reason(&mut core) {
                    let at = inner.clock.now();
                    transition =
                        Some(inner.transition(&mut core, BreakerState::Open, at, Some(reason)));
                } else {
                    // Publish the bucket the record may have rolled to.
                    inner.fold(&mut core);
                }
            }
            BreakerState::HalfOpen => {
                core.probes_in_flight = core.probes_in_flight.saturating_sub(1);
                let reason = match outcome {
                    Some(Outcome::Success) if slow => Some(TripReason::ProbeSlow),
                    Some(Outcome::Success) => {
                        core.probe_successes += 1;
                        None
                    }
                    Some(Outcome::Failure) => Some(TripReason::ProbeFailed),
                    Some(Outcome::Ignored) | None => None,
                };
                if reason.is_some() {
                    let at = inner.clock.now();
                    transition = Some(inner.transition(&mut core, BreakerState::Open, at, reason));
                } else if core.probe_successes >= inner.config.half_open_probes {
                    let at = inner.clock.now();
                    transition = Some(inner.transition(&mut core, BreakerState::Closed, at, None));
                }
            }
            BreakerState::Open => {}
        }
        drop(core);
        if let Some(transition) = transition {
            transition.log(&inner.name);
        }
    }
}

/// The shortest timed duration (slow-call threshold, time-window bucket) for
/// which the breaker reads call times from the cheaper [`Clock::now_coarse`]
/// (one scheduler tick, 1–10 ms, of error) instead of [`Clock::now`].
pub const COARSE_CLOCK_FROM: Duration = Duration::from_millis(100);

fn coarse_enough(config: &BreakerConfig) -> bool {
    let slow_ok = config
        .slow_call_duration
        .is_none_or(|d| d >= COARSE_CLOCK_FROM);
    let window_ok = match config.window {
        WindowConfig::Count { .. } => true,
        WindowConfig::Time { duration, buckets } => duration / buckets.max(1) >= COARSE_CLOCK_FROM,
    };
    slow_ok && window_ok
}

impl Inner {
    /// The time of a call's start or end, in nanoseconds since the breaker
    /// was built, from the coarse clock when [`Inner::coarse`].
    fn call_nanos(&self) -> u64 {
        if self.coarse {
            self.clock
                .now_coarse_nanos()
                .saturating_sub(self.origin_coarse)
        } else {
            nanos_since(self.origin, self.clock.now())
        }
    }

    /// The lock-free record of a fast closed-state success (see `tally.rs`):
    /// `false` when the breaker is no longer closed in the permit's epoch or
    /// the success belongs to a bucket the window has not rolled to yet.
    fn try_count_success(&self, epoch: u64, now: Option<u64>) -> bool {
        if self.word.load(Ordering::Acquire) != pack(epoch, BreakerState::Closed) {
            return false;
        }
        let bucket = match (self.bucket_nanos, now) {
            (Some(width), Some(now)) => now / width.max(1),
            _ => 0,
        };
        self.tally.try_count(tally::tag(epoch, bucket))
    }

    /// Folds the successes counted without the lock into `core` and tags the
    /// stripes with the current epoch and bucket (or [`tally::LOCKED`]).
    /// Every locked operation calls it first (so it sees every success
    /// recorded before it), and again after it changes the epoch, the
    /// window's head or how many calls it holds.
    fn fold(&self, core: &mut Core) {
        // A success may skip the lock only once the window is warm: below
        // `minimum_calls` one more success can bring the rate rules into
        // force and trip the breaker. (Within a bucket the window only
        // grows; rolling it and clearing it happen under the lock, which
        // folds again.)
        let tag = if core.state == BreakerState::Closed
            && core.window.calls() >= self.config.minimum_calls
        {
            tally::tag(core.epoch, core.window.head())
        } else {
            tally::LOCKED
        };
        let taken = self.tally.take(tag);
        if taken > 0 {
            core.counters.successes += taken;
            // Counted in the closed state of this epoch (a count that raced
            // a transition is history, like any record of an older epoch).
            if core.state == BreakerState::Closed && core.epoch == core.tally_epoch {
                core.window.add_successes(taken);
                core.consecutive_failures = 0;
            }
        }
        core.tally_epoch = core.epoch;
    }

    fn lock(&self) -> MutexGuard<'_, Core> {
        // Every critical section leaves `Core` consistent (plain field
        // updates, no user code), so a poisoned lock is still usable.
        self.core.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether the closed breaker must open after the last record.
    fn trip_reason(&self, core: &mut Core) -> Option<TripReason> {
        let config = &self.config;
        if let Some(limit) = config.consecutive_failures
            && core.consecutive_failures >= limit
        {
            return Some(TripReason::ConsecutiveFailures(core.consecutive_failures));
        }
        // The window was rolled to the record's time just before.
        let totals = core.window.totals(None);
        if totals.calls < config.minimum_calls {
            return None;
        }
        let calls = f64::from(totals.calls);
        if f64::from(totals.failures) >= config.failure_rate_threshold * calls {
            return Some(TripReason::FailureRate(totals.failure_rate()));
        }
        if self.slow_call_duration.is_some()
            && f64::from(totals.slow) >= config.slow_call_rate_threshold * calls
        {
            return Some(TripReason::SlowCallRate(totals.slow_rate()));
        }
        None
    }

    /// Moves to `to` (under the lock): bumps the epoch, publishes the state
    /// word and the event, and resets what the new state starts from.
    fn transition(
        &self,
        core: &mut Core,
        to: BreakerState,
        at: Instant,
        reason: Option<TripReason>,
    ) -> Transition {
        self.fold(core);
        let from = core.state;
        core.state = to;
        core.epoch = core.epoch.wrapping_add(1) & EPOCH_MASK;
        core.probes_in_flight = 0;
        core.probe_successes = 0;
        let mut wait = Duration::ZERO;
        match to {
            BreakerState::Open => {
                wait = core
                    .open_wait
                    .next_delay()
                    .unwrap_or(self.config.open_wait.max);
                core.open_until = saturating_add(at, wait);
                core.counters.trips += 1;
            }
            BreakerState::Closed => {
                core.window.clear();
                core.consecutive_failures = 0;
                core.open_wait.reset();
            }
            BreakerState::HalfOpen => {}
        }
        self.word.store(pack(core.epoch, to), Ordering::Release);
        self.fold(core);
        self.obs.state.set(state_value(to));
        match to {
            BreakerState::Open => self.obs.to_open.inc(),
            BreakerState::HalfOpen => self.obs.to_half_open.inc(),
            BreakerState::Closed => self.obs.to_closed.inc(),
        }
        let change = StateChange { from, to, at };
        // No receivers is fine; `send` never blocks.
        let _ = self.events.send(change);
        Transition {
            change,
            reason,
            wait,
            trips_in_a_row: core.open_wait.retries(),
        }
    }
}

impl Transition {
    fn log(self, name: &InstanceName) {
        let StateChange { from, to, .. } = self.change;
        match to {
            BreakerState::Open => tracing::warn!(
                %name,
                %from,
                reason = self.reason.map_or("", TripReason::as_str),
                consecutive_failures = match self.reason {
                    Some(TripReason::ConsecutiveFailures(n)) => n,
                    _ => 0,
                },
                rate = match self.reason {
                    Some(TripReason::FailureRate(r) | TripReason::SlowCallRate(r)) => r,
                    _ => 0.0,
                },
                wait = ?self.wait,
                trips_in_a_row = self.trips_in_a_row,
                "circuit breaker opened: rejecting calls to give the dependency time to recover"
            ),
            BreakerState::HalfOpen => tracing::info!(
                %name,
                %from,
                "circuit breaker half-open: letting probe calls through"
            ),
            BreakerState::Closed => {
                tracing::info!(%name, %from, "circuit breaker closed: calls flow again");
            }
        }
    }
}

impl fmt::Debug for CircuitBreaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("name", &self.inner.name)
            .field("state", &self.state())
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

/// Permission to make one call through a [`CircuitBreaker`].
///
/// Record how the call ended with [`record_success`](Self::record_success),
/// [`record_failure`](Self::record_failure),
/// [`record_ignored`](Self::record_ignored) or [`record`](Self::record).
/// Dropping it without a record means the call was cancelled: it frees its
/// half-open probe slot and counts as neither success nor failure.
#[must_use = "a permit is for one call: record its outcome (dropping it counts as cancelled)"]
pub struct BreakerPermit {
    cell: Option<Arc<Padded<Cell>>>,
    epoch: u64,
    probe: bool,
    /// [`Inner::call_nanos`] at acquire, when slow calls are tracked.
    started: Option<u64>,
}

impl BreakerPermit {
    fn new(cell: Arc<Padded<Cell>>, epoch: u64, probe: bool, started: Option<u64>) -> Self {
        BreakerPermit {
            cell: Some(cell),
            epoch,
            probe,
            started,
        }
    }

    /// Whether this is a half-open probe call.
    pub fn is_probe(&self) -> bool {
        self.probe
    }

    /// Records how the call ended.
    pub fn record(mut self, outcome: Outcome) {
        if let Some(cell) = self.cell.take() {
            CircuitBreaker::complete(&cell.0.inner, &self, Some(outcome));
        }
    }

    /// Records a success (a slow one counts towards the slow-call rate).
    pub fn record_success(self) {
        self.record(Outcome::Success);
    }

    /// Records a failure of the dependency.
    pub fn record_failure(self) {
        self.record(Outcome::Failure);
    }

    /// Records an outcome that says nothing about the dependency's health
    /// (e.g. a client error): not counted.
    pub fn record_ignored(self) {
        self.record(Outcome::Ignored);
    }
}

impl Drop for BreakerPermit {
    fn drop(&mut self) {
        if let Some(cell) = self.cell.take() {
            CircuitBreaker::complete(&cell.0.inner, self, None);
        }
    }
}

impl fmt::Debug for BreakerPermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BreakerPermit")
            .field("probe", &self.probe)
            .field("epoch", &self.epoch)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_word_round_trips_state_and_epoch() {
        for state in [
            BreakerState::Closed,
            BreakerState::Open,
            BreakerState::HalfOpen,
        ] {
            for epoch in [0, 1, 12_345, EPOCH_MASK] {
                let word = pack(epoch, state);
                assert_eq!(BreakerState::from_bits(word & STATE_MASK), state);
                assert_eq!(word >> 2, epoch);
            }
        }
        assert_eq!(pack(7, BreakerState::Closed) & STATE_MASK, CLOSED_BITS);
        // Epochs wrap inside the mask, so a permit's epoch (read from the
        // word) always compares equal to the core's.
        assert_eq!(EPOCH_MASK.wrapping_add(1) & EPOCH_MASK, 0);
    }
}
