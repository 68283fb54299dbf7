//! [`AdaptiveLimit`]: a [`ConcurrencyLimit`] whose limit follows the
//! observed latency and drops (AIMD or Gradient2).

use std::fmt;
use std::sync::PoisonError;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::clock::{Clock, SharedClock};
use crate::error::ConfigError;
use crate::name::{InstanceName, Named};
use crate::obs::{Counter, Gauge};
use crate::sync::{Arc, Mutex};

use super::aimd::{Aimd, AimdConfig};
use super::concurrency::ConcurrencyLimit;
use super::config::ConcurrencyLimitConfig;
use super::error::Overloaded;
use super::gradient::{Gradient2, Gradient2Config};
use super::permit::ConcurrencyPermit;
use super::sample::Sample;

/// Which algorithm adapts the limit, with its parameters.
///
/// Serialized externally tagged: `{"gradient2": {...}}` in JSON,
/// `[algorithm.aimd]` in TOML.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitAlgorithm {
    /// Additive increase, multiplicative decrease: simple, reacts to drops
    /// and to a latency threshold.
    Aimd(AimdConfig),
    /// Long-term vs short-term latency gradient: reacts to queueing before
    /// requests fail. The default.
    Gradient2(Gradient2Config),
}

impl Default for LimitAlgorithm {
    fn default() -> Self {
        LimitAlgorithm::Gradient2(Gradient2Config::default())
    }
}

impl LimitAlgorithm {
    fn validate(&self) -> Result<(), ConfigError> {
        match self {
            LimitAlgorithm::Aimd(config) => config.validate().map_err(|e| e.nested("aimd")),
            LimitAlgorithm::Gradient2(config) => {
                config.validate().map_err(|e| e.nested("gradient2"))
            }
        }
    }

    fn initial_limit(&self) -> usize {
        match self {
            LimitAlgorithm::Aimd(config) => config.initial_limit,
            LimitAlgorithm::Gradient2(config) => config.initial_limit,
        }
    }
}

/// Configuration of an [`AdaptiveLimit`]: the algorithm plus the queueing
/// and shedding parameters of the underlying [`ConcurrencyLimit`] (whose
/// `max_concurrent` starts at the algorithm's `initial_limit`).
///
/// `Default`: Gradient2 with its defaults and the queue of
/// [`ConcurrencyLimitConfig::default`].
///
/// ```
/// use resilience_core::limit::{AdaptiveLimitConfig, LimitAlgorithm};
///
/// let config: AdaptiveLimitConfig = toml::from_str(
///     r#"
///     max_queued = 50
///     queue_timeout = "200ms"
///     [algorithm.aimd]
///     initial_limit = 10
///     max_limit = 100
///     latency_threshold = "250ms"
///     "#,
/// )?;
/// assert!(matches!(config.algorithm, LimitAlgorithm::Aimd(_)));
/// config.validate()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdaptiveLimitConfig {
    /// The adaptation algorithm.
    pub algorithm: LimitAlgorithm,
    /// See [`ConcurrencyLimitConfig::max_queued`].
    pub max_queued: usize,
    /// See [`ConcurrencyLimitConfig::queue_timeout`].
    #[serde(with = "humantime_serde::option")]
    pub queue_timeout: Option<Duration>,
    /// See [`ConcurrencyLimitConfig::min_retry_after`].
    #[serde(with = "humantime_serde")]
    pub min_retry_after: Duration,
    /// See [`ConcurrencyLimitConfig::max_retry_after`].
    #[serde(with = "humantime_serde")]
    pub max_retry_after: Duration,
}

impl Default for AdaptiveLimitConfig {
    fn default() -> Self {
        let limit = ConcurrencyLimitConfig::default();
        AdaptiveLimitConfig {
            algorithm: LimitAlgorithm::default(),
            max_queued: limit.max_queued,
            queue_timeout: limit.queue_timeout,
            min_retry_after: limit.min_retry_after,
            max_retry_after: limit.max_retry_after,
        }
    }
}

impl AdaptiveLimitConfig {
    /// Checks every field; the error names the first invalid one
    /// (`algorithm.aimd.backoff_ratio`, `queue_timeout`, ...).
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.algorithm
            .validate()
            .map_err(|e| e.nested("algorithm"))?;
        self.limit_config().validate()
    }

    fn limit_config(&self) -> ConcurrencyLimitConfig {
        ConcurrencyLimitConfig {
            max_concurrent: self.algorithm.initial_limit(),
            max_queued: self.max_queued,
            queue_timeout: self.queue_timeout,
            min_retry_after: self.min_retry_after,
            max_retry_after: self.max_retry_after,
        }
    }
}

#[derive(Debug)]
enum Algorithm {
    Aimd(Aimd),
    Gradient2(Gradient2),
}

impl Algorithm {
    fn on_sample(&mut self, sample: Sample, now: Instant) -> usize {
        match self {
            Algorithm::Aimd(a) => a.on_sample(sample, now),
            Algorithm::Gradient2(g) => g.on_sample(sample),
        }
    }
}

/// A concurrency limit that adapts itself to the dependency it protects.
///
/// Each request holds an [`AdaptivePermit`] and reports how it went
/// ([`AdaptivePermit::record_success`] or
/// [`AdaptivePermit::record_dropped`]); the latency is measured on the
/// injected clock from acquisition to the report. The algorithm turns the
/// samples into a new limit, applied to the underlying
/// [`ConcurrencyLimit`] at once (an `info` event logs each change). A
/// permit dropped without a report is ignored (neither success nor drop),
/// e.g. for a request cancelled by its caller.
///
/// Cheap to clone; clones share the limit. Sampling takes one short lock.
///
/// ```
/// use std::time::Duration;
/// use resilience_core::clock::ManualClock;
/// use resilience_core::limit::{AdaptiveLimit, AdaptiveLimitConfig, AimdConfig, LimitAlgorithm};
///
/// let clock = ManualClock::new();
/// let limit = AdaptiveLimit::with_clock(
///     AdaptiveLimitConfig {
///         algorithm: LimitAlgorithm::Aimd(AimdConfig {
///             initial_limit: 4,
///             latency_threshold: Duration::from_millis(100),
///             ..AimdConfig::default()
///         }),
///         ..AdaptiveLimitConfig::default()
///     },
///     clock.clone(),
/// )?;
/// let permits: Vec<_> = (0..4).map(|_| limit.try_acquire()).collect::<Result<_, _>>()?;
/// clock.advance(Duration::from_millis(20));
/// for permit in permits {
///     permit.record_success(); // fast and busy: +1 each
/// }
/// assert_eq!(limit.current_limit(), 8);
///
/// let permit = limit.try_acquire()?;
/// clock.advance(Duration::from_millis(500));
/// permit.record_success(); // slower than the threshold: x0.9
/// assert_eq!(limit.current_limit(), 7);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct AdaptiveLimit {
    inner: Arc<AdaptiveInner>,
}

struct AdaptiveInner {
    limit: ConcurrencyLimit,
    algorithm: Mutex<Algorithm>,
    clock: SharedClock,
    name: InstanceName,
    obs: AdaptiveObs,
}

/// The metric handles of an adaptive limit (its concurrency limit records
/// the `breakwater_limit_*` series under the same name).
#[derive(Debug)]
struct AdaptiveObs {
    current: Gauge,
    successes: Counter,
    dropped: Counter,
}

impl AdaptiveObs {
    fn register(name: &InstanceName, current: usize) -> Self {
        const SAMPLES: &str = "breakwater_adaptive_limit_samples_total";
        let obs = AdaptiveObs {
            current: Gauge::register("breakwater_adaptive_limit_current", name, &[]),
            successes: Counter::register(SAMPLES, name, &[("outcome", "success")]),
            dropped: Counter::register(SAMPLES, name, &[("outcome", "dropped")]),
        };
        obs.current.set(current as f64);
        obs
    }
}

impl AdaptiveLimit {
    /// An adaptive limit on the system clock.
    pub fn new(config: AdaptiveLimitConfig) -> Result<Self, ConfigError> {
        Self::with_clock(config, SharedClock::system())
    }

    /// An adaptive limit built from a [`Named`] configuration, on `clock`.
    pub fn from_named(
        config: Named<AdaptiveLimitConfig>,
        clock: impl Clock,
    ) -> Result<Self, ConfigError> {
        let name = config.instance_name()?;
        Self::build(config.config, clock, name)
    }

    /// Names the limit (and its underlying [`ConcurrencyLimit`]): the `name`
    /// field of its tracing events and the `name` label of its metrics. Call
    /// it right after construction, before cloning: a limit that already has
    /// clones keeps its name (and logs a warning).
    #[must_use]
    pub fn named(mut self, name: InstanceName) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.limit.rename(name.clone());
            inner.obs = AdaptiveObs::register(&name, inner.limit.max_concurrent());
            inner.name = name;
        } else {
            tracing::warn!(
                name = %self.inner.name,
                new_name = %name,
                "AdaptiveLimit::named on a limit that has clones: the name is unchanged; name it before cloning"
            );
        }
        self
    }

    /// The instance name (`""` when unnamed).
    pub fn name(&self) -> &InstanceName {
        &self.inner.name
    }

    /// An adaptive limit measuring latency (and queue timeouts) on `clock`.
    pub fn with_clock(config: AdaptiveLimitConfig, clock: impl Clock) -> Result<Self, ConfigError> {
        Self::build(config, clock, InstanceName::unnamed())
    }

    fn build(
        config: AdaptiveLimitConfig,
        clock: impl Clock,
        name: InstanceName,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        let clock = clock.into_shared();
        let limit = ConcurrencyLimit::build(config.limit_config(), clock.clone(), name.clone())?;
        let algorithm = match config.algorithm {
            LimitAlgorithm::Aimd(c) => Algorithm::Aimd(Aimd::new(c)),
            LimitAlgorithm::Gradient2(c) => Algorithm::Gradient2(Gradient2::new(c)),
        };
        Ok(AdaptiveLimit {
            inner: Arc::new(AdaptiveInner {
                obs: AdaptiveObs::register(&name, limit.max_concurrent()),
                name,
                limit,
                algorithm: Mutex::new(algorithm),
                clock,
            }),
        })
    }

    /// Like [`ConcurrencyLimit::try_acquire`]: never waits.
    pub fn try_acquire(&self) -> Result<AdaptivePermit, Overloaded> {
        let permit = self.inner.limit.try_acquire()?;
        Ok(self.wrap(permit))
    }

    /// Like [`ConcurrencyLimit::acquire`]: waits in the bounded FIFO queue
    /// (the time spent queueing is not part of the latency sample).
    /// Cancellation-safe.
    pub async fn acquire(&self) -> Result<AdaptivePermit, Overloaded> {
        let permit = self.inner.limit.acquire().await?;
        Ok(self.wrap(permit))
    }

    fn wrap(&self, permit: ConcurrencyPermit) -> AdaptivePermit {
        AdaptivePermit {
            permit: Some(permit),
            owner: self.inner.clone(),
            started: self.inner.clock.now(),
            in_flight: self.inner.limit.in_flight(),
        }
    }

    /// The limit now in force.
    pub fn current_limit(&self) -> usize {
        self.inner.limit.max_concurrent()
    }

    /// Permits currently held.
    pub fn in_flight(&self) -> usize {
        self.inner.limit.in_flight()
    }

    /// Callers currently queued.
    pub fn queued(&self) -> usize {
        self.inner.limit.queued()
    }

    /// The underlying limit (e.g. to read its statistics).
    pub fn concurrency_limit(&self) -> &ConcurrencyLimit {
        &self.inner.limit
    }

    /// Feeds the outcome of work whose concurrency the caller bounds itself
    /// (for example with [`current_limit`](Self::current_limit) as a cap it
    /// enforces), instead of through this limit's permits: `latency` is how
    /// long it took, `in_flight` how many such units ran at once around it
    /// (itself included), `dropped` whether it failed with a sign of
    /// overload. The algorithm sees the same sample a permit would report.
    ///
    /// ```
    /// use std::time::Duration;
    /// use resilience_core::clock::ManualClock;
    /// use resilience_core::limit::{AdaptiveLimit, AdaptiveLimitConfig, AimdConfig, LimitAlgorithm};
    ///
    /// let limit = AdaptiveLimit::with_clock(
    ///     AdaptiveLimitConfig {
    ///         algorithm: LimitAlgorithm::Aimd(AimdConfig { initial_limit: 4, ..AimdConfig::default() }),
    ///         ..AdaptiveLimitConfig::default()
    ///     },
    ///     ManualClock::new(),
    /// )?;
    /// limit.record_outcome(Duration::ZERO, 4, false); // busy and fast: grows
    /// assert_eq!(limit.current_limit(), 5);
    /// limit.record_outcome(Duration::ZERO, 5, true); // overload: cut
    /// assert!(limit.current_limit() < 5);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn record_outcome(&self, latency: Duration, in_flight: usize, dropped: bool) {
        let now = self.inner.clock.now();
        self.inner.record(Sample {
            started: now.checked_sub(latency).unwrap_or(now),
            latency,
            in_flight,
            dropped,
        });
    }
}

impl fmt::Debug for AdaptiveLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdaptiveLimit")
            .field("name", &self.inner.name)
            .field("limit", &self.inner.limit)
            .finish_non_exhaustive()
    }
}

impl AdaptiveInner {
    fn record(&self, sample: Sample) {
        if sample.dropped {
            self.obs.dropped.inc();
        } else {
            self.obs.successes.inc();
        }
        let mut algorithm = self
            .algorithm
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let new = algorithm.on_sample(sample, self.clock.now());
        // Applied under the algorithm lock so that concurrent samples set
        // their limits in the order they were computed.
        if new != self.limit.max_concurrent()
            && let Err(error) = self.limit.set_max_concurrent(new)
        {
            // Unreachable with a validated config: limits stay in min..=max.
            tracing::warn!(name = %self.name, %error, new, "adaptive limit computed an invalid limit");
        }
        self.obs.current.set(self.limit.max_concurrent() as f64);
    }
}

/// A permit of an [`AdaptiveLimit`]: report the outcome with
/// [`record_success`](Self::record_success) or
/// [`record_dropped`](Self::record_dropped). Dropping it without a report
/// releases the capacity and feeds no sample.
#[must_use = "the permit releases its capacity as soon as it is dropped; record the outcome"]
pub struct AdaptivePermit {
    permit: Option<ConcurrencyPermit>,
    owner: Arc<AdaptiveInner>,
    started: Instant,
    in_flight: usize,
}

impl AdaptivePermit {
    /// The request succeeded: its latency (since acquisition) is a sample.
    pub fn record_success(self) {
        self.record(false);
    }

    /// The request was dropped: timed out, or failed with a sign of
    /// overload (an HTTP 503 or 429, a connection refused). Lowers the
    /// limit. Do not report ordinary errors (a 404) here: they say nothing
    /// about capacity; use `record_success` or drop the permit.
    pub fn record_dropped(self) {
        self.record(true);
    }

    /// Time since the permit was acquired, on the limit's clock.
    pub fn elapsed(&self) -> Duration {
        self.owner
            .clock
            .now()
            .saturating_duration_since(self.started)
    }

    fn record(mut self, dropped: bool) {
        let latency = self.elapsed();
        let in_flight = self.in_flight.max(self.owner.limit.in_flight());
        // Release first: the new limit then applies to the freed capacity.
        drop(self.permit.take());
        self.owner.record(Sample {
            started: self.started,
            latency,
            in_flight,
            dropped,
        });
    }
}

impl fmt::Debug for AdaptivePermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdaptivePermit")
            .field("started", &self.started)
            .field("in_flight", &self.in_flight)
            .finish_non_exhaustive()
    }
}
