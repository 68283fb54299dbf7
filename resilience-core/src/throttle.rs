//! Client-side adaptive throttling: reject requests locally, before they are
//! sent, when the backend has been rejecting most of them anyway.
//!
//! # Why?
//!
//! A backend that is overloaded still spends effort on every request it
//! rejects: reading it, parsing it, answering 503; clients that keep sending
//! (and re-sending) work can keep it down after the cause is fixed (see the
//! [crate docs](crate)). Backoff and retry budgets reduce the *retries*; adaptive throttling
//! also reduces the *first attempts* once the backend has shown it is
//! rejecting them, so the rejection happens on the client, for free.
//!
//! The algorithm is from the Google SRE book, chapter "Handling Overload".
//! Each client keeps, over a trailing window (two minutes in the book):
//!
//! - `requests`: requests the application attempted (including those this
//!   throttle rejected locally),
//! - `accepts`: requests the backend accepted,
//!
//! and rejects each new request locally with probability
//!
//! ```text
//! max(0, (requests - K * accepts) / (requests + 1))
//! ```
//!
//! While the backend accepts everything, `requests <= accepts` and nothing is
//! rejected. `K` (default 2) is how much more traffic than the backend accepts
//! the client may still send: with `K = 2` the backend keeps seeing about
//! twice its accepted rate, enough to notice quickly when it recovers. A
//! lower `K` is more aggressive; `K < 1` would reject traffic the backend
//! would accept, and is a configuration error.
//!
//! The counters are time-bucketed on the injected clock, so old history
//! expires bucket by bucket. The random draw is seedable
//! ([`AdaptiveThrottle::with_seed`]) for deterministic simulations.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use resilience_core::clock::{Clock, ManualClock};
//! use resilience_core::throttle::{AdaptiveThrottle, AdaptiveThrottleConfig};
//!
//! let clock = ManualClock::new();
//! let throttle = AdaptiveThrottle::with_seed(AdaptiveThrottleConfig::default(), clock.clone(), 7)?;
//!
//! // The backend rejects everything: after a while most requests are
//! // rejected locally, without being sent.
//! let mut sent = 0;
//! for _ in 0..1000 {
//!     if throttle.try_acquire().is_ok() {
//!         sent += 1;
//!         throttle.record_rejected_by_backend();
//!     }
//!     clock.advance(Duration::from_millis(10));
//! }
//! assert!(sent < 50, "sent {sent}");
//!
//! // A healthy backend: nothing is rejected locally.
//! clock.advance(Duration::from_secs(300));
//! for _ in 0..100 {
//!     assert!(throttle.try_acquire().is_ok());
//!     throttle.record_accepted();
//! }
//! # Ok::<(), resilience_core::ConfigError>(())
//! ```

use std::fmt;
use std::sync::PoisonError;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::clock::{Clock, SharedClock};
use crate::error::ConfigError;
use crate::name::{InstanceName, Named};
use crate::obs::{Counter, Gauge};
use crate::sync::Mutex;

/// Most buckets a throttle may keep.
/// Most buckets a throttle window may have.
pub const MAX_BUCKETS: u32 = 10_000;

/// Configuration of an [`AdaptiveThrottle`]. `Default`: the SRE book's
/// parameters, a 2-minute window (in 120 one-second buckets) and `K = 2`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdaptiveThrottleConfig {
    /// Trailing window over which requests and accepts are counted. Must be
    /// > 0.
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// Number of time buckets the window is divided into; history expires
    /// one bucket at a time. Must be in `1..=10000` and at most the window
    /// in nanoseconds.
    pub buckets: u32,
    /// Multiplier on accepts (the SRE book's `K`). Must be finite and >= 1.
    pub k: f64,
}

impl Default for AdaptiveThrottleConfig {
    fn default() -> Self {
        AdaptiveThrottleConfig {
            window: Duration::from_secs(120),
            buckets: 120,
            k: 2.0,
        }
    }
}

impl AdaptiveThrottleConfig {
    /// Checks every field; the error names the first invalid one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.window.is_zero() {
            return Err(ConfigError::new("window", "must be greater than zero"));
        }
        if self.buckets == 0 || self.buckets > MAX_BUCKETS {
            return Err(ConfigError::new(
                "buckets",
                format!("must be in 1..={MAX_BUCKETS}, got {}", self.buckets),
            ));
        }
        if self.window.as_nanos() < u128::from(self.buckets) {
            return Err(ConfigError::new(
                "buckets",
                format!(
                    "must not exceed the window in nanoseconds ({:?}), got {}",
                    self.window, self.buckets
                ),
            ));
        }
        if !self.k.is_finite() || self.k < 1.0 {
            return Err(ConfigError::new(
                "k",
                format!(
                    "must be a finite number >= 1 (below 1 the client rejects traffic the \
                     backend would accept), got {}",
                    self.k
                ),
            ));
        }
        Ok(())
    }
}

/// A request rejected locally by an [`AdaptiveThrottle`]; do not send it.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
#[error(
    "request throttled locally: the backend accepted too few recent requests \
     (rejection probability {probability:.3})"
)]
pub struct Throttled {
    /// The rejection probability at the time of the decision.
    pub probability: f64,
}

/// Requests and accepts counted over the current window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ThrottleStats {
    /// Requests attempted (sent or rejected locally).
    pub requests: u64,
    /// Requests the backend accepted.
    pub accepts: u64,
}

#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    /// Absolute bucket number (time since the origin / bucket width).
    index: u64,
    requests: u64,
    accepts: u64,
}

#[derive(Debug)]
struct State {
    buckets: Vec<Bucket>,
    rng: fastrand::Rng,
}

/// Client-side adaptive throttle. See the [module docs](self).
///
/// All methods take `&self`: share one throttle (e.g. in an `Arc`) among all
/// callers of one backend. Each call is one short critical section.
pub struct AdaptiveThrottle {
    config: AdaptiveThrottleConfig,
    clock: SharedClock,
    origin: Instant,
    bucket_nanos: u64,
    state: Mutex<State>,
    name: InstanceName,
    obs: ThrottleObs,
}

/// The metric handles of a throttle.
#[derive(Debug)]
struct ThrottleObs {
    probability: Gauge,
    allowed: Counter,
    throttled: Counter,
    accepted: Counter,
    rejected: Counter,
}

impl ThrottleObs {
    fn register(name: &InstanceName) -> Self {
        const REQUESTS: &str = "breakwater_throttle_requests_total";
        const BACKEND: &str = "breakwater_throttle_backend_responses_total";
        ThrottleObs {
            probability: Gauge::register("breakwater_throttle_reject_probability", name, &[]),
            allowed: Counter::register(REQUESTS, name, &[("decision", "allowed")]),
            throttled: Counter::register(REQUESTS, name, &[("decision", "throttled")]),
            accepted: Counter::register(BACKEND, name, &[("result", "accepted")]),
            rejected: Counter::register(BACKEND, name, &[("result", "rejected")]),
        }
    }
}

impl fmt::Debug for AdaptiveThrottle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdaptiveThrottle")
            .field("name", &self.name)
            .field("config", &self.config)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl AdaptiveThrottle {
    /// A throttle on the system clock with a randomly seeded RNG.
    pub fn new(config: AdaptiveThrottleConfig) -> Result<Self, ConfigError> {
        Self::build(
            config,
            SharedClock::system(),
            fastrand::Rng::new(),
            InstanceName::unnamed(),
        )
    }

    /// A throttle built from a [`Named`] configuration, on `clock`, with a
    /// randomly seeded RNG.
    pub fn from_named(
        config: Named<AdaptiveThrottleConfig>,
        clock: impl Clock,
    ) -> Result<Self, ConfigError> {
        let name = config.instance_name()?;
        Self::build(
            config.config,
            clock.into_shared(),
            fastrand::Rng::new(),
            name,
        )
    }

    /// Names the throttle: the `name` field of its tracing events and the
    /// `name` label of its metrics. Call it right after construction.
    #[must_use]
    pub fn named(mut self, name: InstanceName) -> Self {
        self.obs = ThrottleObs::register(&name);
        self.name = name;
        self
    }

    /// The instance name (`""` when unnamed).
    pub fn name(&self) -> &InstanceName {
        &self.name
    }

    /// A throttle on the given clock with a randomly seeded RNG.
    pub fn with_clock(
        config: AdaptiveThrottleConfig,
        clock: impl Clock,
    ) -> Result<Self, ConfigError> {
        Self::build(
            config,
            clock.into_shared(),
            fastrand::Rng::new(),
            InstanceName::unnamed(),
        )
    }

    /// A throttle on the given clock whose random draws are reproducible
    /// from `seed`.
    pub fn with_seed(
        config: AdaptiveThrottleConfig,
        clock: impl Clock,
        seed: u64,
    ) -> Result<Self, ConfigError> {
        Self::build(
            config,
            clock.into_shared(),
            fastrand::Rng::with_seed(seed),
            InstanceName::unnamed(),
        )
    }

    fn build(
        config: AdaptiveThrottleConfig,
        clock: SharedClock,
        rng: fastrand::Rng,
        name: InstanceName,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        let window_nanos = u64::try_from(config.window.as_nanos()).unwrap_or(u64::MAX);
        let bucket_nanos = (window_nanos / u64::from(config.buckets)).max(1);
        let buckets = vec![Bucket::default(); config.buckets as usize];
        Ok(AdaptiveThrottle {
            origin: clock.now(),
            clock,
            bucket_nanos,
            state: Mutex::new(State { buckets, rng }),
            config,
            obs: ThrottleObs::register(&name),
            name,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &AdaptiveThrottleConfig {
        &self.config
    }

    /// Decides whether to send one request, and counts it as attempted.
    ///
    /// `Err(Throttled)`: do not send it (fail it locally). `Ok(())`: send it,
    /// then report the backend's answer with
    /// [`AdaptiveThrottle::record_accepted`] or
    /// [`AdaptiveThrottle::record_rejected_by_backend`].
    pub fn try_acquire(&self) -> Result<(), Throttled> {
        let now = self.current_bucket();
        let mut state = self.lock();
        let window = sum(&state.buckets, now, self.config.buckets);
        let probability = reject_probability(window, self.config.k);
        let draw = state.rng.f64();
        if let Some(bucket) = bucket_mut(&mut state.buckets, now) {
            bucket.requests = bucket.requests.saturating_add(1);
        }
        drop(state);
        self.obs.probability.set(probability);
        if draw < probability {
            self.obs.throttled.inc();
            tracing::debug!(
                name = %self.name,
                probability,
                requests = window.requests,
                accepts = window.accepts,
                k = self.config.k,
                "request throttled locally"
            );
            Err(Throttled { probability })
        } else {
            self.obs.allowed.inc();
            Ok(())
        }
    }

    /// `true` if the next request should be dropped locally. Same as
    /// `try_acquire().is_err()`, and likewise counts the request.
    pub fn should_reject(&self) -> bool {
        self.try_acquire().is_err()
    }

    /// The backend accepted a request sent after
    /// [`AdaptiveThrottle::try_acquire`].
    pub fn record_accepted(&self) {
        let now = self.current_bucket();
        let mut state = self.lock();
        if let Some(bucket) = bucket_mut(&mut state.buckets, now) {
            bucket.accepts = bucket.accepts.saturating_add(1);
        }
        drop(state);
        self.obs.accepted.inc();
    }

    /// The backend rejected a request (overloaded, throttled, timed out).
    /// The request was already counted by [`AdaptiveThrottle::try_acquire`];
    /// this records the outcome for tracing only.
    pub fn record_rejected_by_backend(&self) {
        self.obs.rejected.inc();
        tracing::trace!(name = %self.name, "request rejected by backend");
    }

    /// The rejection probability the next request would face.
    pub fn reject_probability(&self) -> f64 {
        reject_probability(self.stats(), self.config.k)
    }

    /// Requests and accepts over the current window.
    pub fn stats(&self) -> ThrottleStats {
        let now = self.current_bucket();
        sum(&self.lock().buckets, now, self.config.buckets)
    }

    fn current_bucket(&self) -> u64 {
        let elapsed = self.clock.now().saturating_duration_since(self.origin);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        nanos / self.bucket_nanos
    }

    fn lock(&self) -> crate::sync::MutexGuard<'_, State> {
        // Every mutation is a counter increment or a bucket reset, so a
        // panic elsewhere cannot leave the state inconsistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// `max(0, (requests - K * accepts) / (requests + 1))`.
fn reject_probability(stats: ThrottleStats, k: f64) -> f64 {
    let requests = stats.requests as f64;
    let accepts = stats.accepts as f64;
    ((requests - k * accepts) / (requests + 1.0)).max(0.0)
}

/// The bucket for absolute index `index`, reset if it still holds an older
/// bucket's counts.
fn bucket_mut(buckets: &mut [Bucket], index: u64) -> Option<&mut Bucket> {
    let len = buckets.len() as u64;
    let slot = usize::try_from(index.checked_rem(len)?).ok()?;
    let bucket = buckets.get_mut(slot)?;
    if bucket.index != index {
        *bucket = Bucket {
            index,
            requests: 0,
            accepts: 0,
        };
    }
    Some(bucket)
}

/// Sums the buckets of the window ending with bucket `now`.
fn sum(buckets: &[Bucket], now: u64, count: u32) -> ThrottleStats {
    let oldest = now.saturating_sub(u64::from(count) - 1);
    buckets
        .iter()
        .filter(|b| b.index >= oldest && b.index <= now)
        .fold(ThrottleStats::default(), |acc, b| ThrottleStats {
            requests: acc.requests.saturating_add(b.requests),
            accepts: acc.accepts.saturating_add(b.accepts),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use proptest::prelude::*;

    fn throttle(k: f64) -> (ManualClock, AdaptiveThrottle) {
        let clock = ManualClock::new();
        let t = AdaptiveThrottle::with_seed(
            AdaptiveThrottleConfig {
                window: Duration::from_secs(10),
                buckets: 10,
                k,
            },
            clock.clone(),
            1,
        )
        .unwrap();
        (clock, t)
    }

    #[test]
    fn never_rejects_while_the_backend_accepts_everything() {
        let (clock, t) = throttle(2.0);
        for _ in 0..10_000 {
            assert!(t.try_acquire().is_ok());
            t.record_accepted();
            clock.advance(Duration::from_millis(3));
        }
        assert_eq!(t.reject_probability(), 0.0);
    }

    #[test]
    fn probability_follows_the_sre_formula() {
        let (_clock, t) = throttle(2.0);
        // 30 requests, 10 accepted: (30 - 2*10) / 31.
        for i in 0..30 {
            let _ = t.try_acquire();
            if i < 10 {
                t.record_accepted();
            }
        }
        assert_eq!(
            t.stats(),
            ThrottleStats {
                requests: 30,
                accepts: 10
            }
        );
        assert!((t.reject_probability() - 10.0 / 31.0).abs() < 1e-12);
    }

    #[test]
    fn locally_rejected_requests_count_as_requests() {
        let (_clock, t) = throttle(2.0);
        let mut rejected = 0;
        for _ in 0..200 {
            if t.should_reject() {
                rejected += 1;
            }
        }
        assert!(rejected > 150, "rejected {rejected}");
        assert_eq!(t.stats().requests, 200);
    }

    #[test]
    fn sends_about_k_times_the_accepted_rate_under_partial_overload() {
        // The backend accepts only 100 requests per second of the 1000 the
        // client attempts; with K = 2 about 200 per second still get sent.
        let (clock, t) = throttle(2.0);
        let mut sent_last_5s = 0;
        let mut accepted_this_second = 0;
        for ms in 0..30_000u64 {
            if ms % 1000 == 0 {
                accepted_this_second = 0;
            }
            if t.try_acquire().is_ok() {
                if ms >= 25_000 {
                    sent_last_5s += 1;
                }
                if accepted_this_second < 100 {
                    accepted_this_second += 1;
                    t.record_accepted();
                } else {
                    t.record_rejected_by_backend();
                }
            }
            clock.advance(Duration::from_millis(1));
        }
        let rate = f64::from(sent_last_5s) / 5.0;
        assert!((150.0..260.0).contains(&rate), "sent {rate}/s");
    }

    #[test]
    fn old_history_expires_with_the_window() {
        let (clock, t) = throttle(2.0);
        for _ in 0..100 {
            let _ = t.try_acquire();
        }
        assert!(t.reject_probability() > 0.9);
        clock.advance(Duration::from_secs(5));
        assert_eq!(t.stats().requests, 100, "still inside the window");
        clock.advance(Duration::from_secs(5));
        assert_eq!(t.stats(), ThrottleStats::default());
        assert!(t.try_acquire().is_ok());
    }

    #[test]
    fn expires_one_bucket_at_a_time() {
        let (clock, t) = throttle(2.0);
        for _ in 0..10 {
            let _ = t.try_acquire();
            clock.advance(Duration::from_secs(1));
        }
        assert_eq!(t.stats().requests, 9);
        clock.advance(Duration::from_secs(3));
        assert_eq!(t.stats().requests, 6);
    }

    #[test]
    fn higher_k_rejects_less() {
        let probability = |k| {
            let (_c, t) = throttle(k);
            for i in 0..100 {
                let _ = t.try_acquire();
                if i % 4 == 0 {
                    t.record_accepted();
                }
            }
            t.reject_probability()
        };
        assert!(probability(1.0) > probability(2.0));
        assert!(probability(2.0) > probability(3.0));
        assert_eq!(probability(4.0), 0.0);
    }

    #[test]
    fn same_seed_gives_same_decisions() {
        let run = || {
            let (_c, t) = throttle(2.0);
            (0..500).map(|_| t.should_reject()).collect::<Vec<_>>()
        };
        assert_eq!(run(), run());
    }

    #[test]
    fn throttled_error_is_actionable() {
        let (_c, t) = throttle(1.0);
        let err = (0..100).find_map(|_| t.try_acquire().err()).unwrap();
        assert!(err.to_string().contains("throttled locally"));
        assert!(err.probability > 0.0);
    }

    #[test]
    fn invalid_configs_name_the_field() {
        let d = AdaptiveThrottleConfig::default;
        let cases = [
            (
                AdaptiveThrottleConfig {
                    window: Duration::ZERO,
                    ..d()
                },
                "window",
            ),
            (AdaptiveThrottleConfig { buckets: 0, ..d() }, "buckets"),
            (
                AdaptiveThrottleConfig {
                    buckets: 10_001,
                    ..d()
                },
                "buckets",
            ),
            (
                AdaptiveThrottleConfig {
                    window: Duration::from_nanos(5),
                    buckets: 6,
                    ..d()
                },
                "buckets",
            ),
            (AdaptiveThrottleConfig { k: 0.99, ..d() }, "k"),
            (AdaptiveThrottleConfig { k: -2.0, ..d() }, "k"),
            (AdaptiveThrottleConfig { k: f64::NAN, ..d() }, "k"),
            (
                AdaptiveThrottleConfig {
                    k: f64::INFINITY,
                    ..d()
                },
                "k",
            ),
        ];
        for (cfg, field) in cases {
            assert_eq!(AdaptiveThrottle::new(cfg).unwrap_err().field(), field);
        }
    }

    #[test]
    fn config_reads_human_durations() {
        let cfg: AdaptiveThrottleConfig =
            serde_json::from_str(r#"{"window":"1m","k":1.5}"#).unwrap();
        assert_eq!(cfg.window, Duration::from_secs(60));
        assert_eq!(cfg.buckets, 120);
        assert!(serde_json::from_str::<AdaptiveThrottleConfig>(r#"{"K":2}"#).is_err());
    }

    #[test]
    fn throttle_is_send_and_sync() {
        fn bounds<T: Send + Sync>() {}
        bounds::<AdaptiveThrottle>();
    }

    proptest! {
        #[test]
        fn probability_is_in_zero_one_and_zero_when_accepts_dominate(
            requests in 0u64..1_000_000,
            accepts in 0u64..1_000_000,
            k in 1.0f64..10.0,
        ) {
            let p = reject_probability(ThrottleStats { requests, accepts }, k);
            prop_assert!((0.0..1.0).contains(&p));
            if k * accepts as f64 >= requests as f64 {
                prop_assert_eq!(p, 0.0);
            }
        }

        #[test]
        fn stats_count_exactly_the_events_of_the_trailing_window(
            steps in proptest::collection::vec((0u64..3000, any::<bool>()), 1..200),
        ) {
            let (clock, t) = throttle(2.0);
            let mut log: Vec<(Duration, bool)> = Vec::new();
            for (advance_ms, accepted) in steps {
                clock.advance(Duration::from_millis(advance_ms));
                let _ = t.try_acquire();
                if accepted {
                    t.record_accepted();
                }
                log.push((clock.elapsed(), accepted));
                // Window = the 10 one-second buckets ending with the current one.
                let now_bucket = clock.elapsed().as_secs();
                let oldest = now_bucket.saturating_sub(9);
                let in_window: Vec<_> = log.iter().filter(|(at, _)| at.as_secs() >= oldest).collect();
                let expected = ThrottleStats {
                    requests: in_window.len() as u64,
                    accepts: in_window.iter().filter(|(_, a)| *a).count() as u64,
                };
                prop_assert_eq!(t.stats(), expected);
            }
        }
    }
}
