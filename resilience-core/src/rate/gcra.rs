//! [`RateLimiter`]: a lock-free GCRA rate limiter.

use std::fmt;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::RateLimited;
use crate::clock::{Clock, SharedClock};
use crate::error::ConfigError;
use crate::name::{InstanceName, Named};
use crate::obs::Counter;
use crate::sync::AtomicU64;

/// Configuration of a [`RateLimiter`]: `rate` requests per `per`, of which up
/// to `burst` may come back to back. `Default`: 10 per second, burst 10.
///
/// The emission interval `per / rate` is rounded *up* to whole nanoseconds,
/// so the limiter never allows more than the configured rate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimiterConfig {
    /// Requests allowed per `per` in the long run. Must be > 0 and at most
    /// one per nanosecond.
    pub rate: u32,
    /// The period `rate` is counted over. Must be > 0.
    #[serde(with = "humantime_serde")]
    pub per: Duration,
    /// Requests allowed back to back after an idle period. Must be > 0.
    pub burst: u32,
}

impl Default for RateLimiterConfig {
    fn default() -> Self {
        RateLimiterConfig {
            rate: 10,
            per: Duration::from_secs(1),
            burst: 10,
        }
    }
}

impl RateLimiterConfig {
    /// Checks every field; the error names the first invalid one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        Gcra::from_config(self).map(|_| ())
    }

    /// The time between two requests at the steady rate (`per / rate`,
    /// rounded up to whole nanoseconds).
    pub fn emission_interval(&self) -> Result<Duration, ConfigError> {
        Gcra::from_config(self).map(|g| Duration::from_nanos(g.interval))
    }
}

/// The arithmetic of the generic cell rate algorithm, on nanoseconds since
/// a limiter's origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Gcra {
    /// Emission interval `T`.
    interval: u64,
    /// `burst * T`: how far ahead of now the theoretical arrival time may
    /// run after an allowed request.
    tolerance: u64,
}

impl Gcra {
    pub(crate) fn from_config(config: &RateLimiterConfig) -> Result<Self, ConfigError> {
        if config.rate == 0 {
            return Err(ConfigError::new(
                "rate",
                "must be at least 1 request per `per`",
            ));
        }
        if config.per.is_zero() {
            return Err(ConfigError::new("per", "must be greater than zero"));
        }
        if config.burst == 0 {
            return Err(ConfigError::new(
                "burst",
                "must be at least 1 (the request being checked)",
            ));
        }
        let per = u64::try_from(config.per.as_nanos()).map_err(|_| {
            ConfigError::new(
                "per",
                format!("must be below 584 years, got {:?}", config.per),
            )
        })?;
        let rate = u64::from(config.rate);
        if per < rate {
            return Err(ConfigError::new(
                "rate",
                format!(
                    "must be at most one request per nanosecond of `per` ({per} ns), got {rate}"
                ),
            ));
        }
        let interval = per.div_ceil(rate);
        let tolerance = interval
            .checked_mul(u64::from(config.burst))
            .ok_or_else(|| {
                ConfigError::new(
                    "burst",
                    format!(
                        "burst × per / rate overflows ({} × {interval} ns)",
                        config.burst
                    ),
                )
            })?;
        Ok(Gcra {
            interval,
            tolerance,
        })
    }

    /// Decides one request at `now` given the theoretical arrival time
    /// `tat`: `Ok(new_tat)` if it conforms, `Err(nanos to wait)` if not.
    pub(crate) fn decide(self, tat: u64, now: u64) -> Result<u64, u64> {
        let new_tat = tat.max(now).saturating_add(self.interval);
        let allowed_at = new_tat.saturating_sub(self.tolerance);
        if allowed_at > now {
            Err(allowed_at - now)
        } else {
            Ok(new_tat)
        }
    }

    /// Whether a key with this `tat` is back to its full burst at `now`, so
    /// forgetting it changes nothing.
    pub(crate) fn is_idle(tat: u64, now: u64) -> bool {
        tat <= now
    }
}

/// Nanoseconds from `origin` to `clock.now()`.
pub(crate) fn nanos_since(clock: &SharedClock, origin: Instant) -> u64 {
    u64::try_from(clock.now().saturating_duration_since(origin).as_nanos()).unwrap_or(u64::MAX)
}

// Memory ordering: the whole state is one `AtomicU64`, the theoretical
// arrival time (TAT), in nanoseconds since the limiter's creation. `check`
// reads it, computes the successor and installs it with a compare-and-swap,
// retrying on contention; a denied check writes nothing. All accesses use
// `Relaxed` ordering: every decision depends only on this one location, whose
// modification order is total, so each successful CAS sees the TAT left by
// the previous one and no two requests can claim the same slot. No other
// memory is published through the TAT, so no acquire/release pairing is
// needed.

/// The metric handles of a rate limiter (keyed or not).
#[derive(Debug)]
pub(super) struct RateObs {
    pub(super) allowed: Counter,
    pub(super) limited: Counter,
}

impl RateObs {
    pub(super) fn register(name: &InstanceName) -> Self {
        const REQUESTS: &str = "breakwater_rate_limiter_requests_total";
        RateObs {
            allowed: Counter::register(REQUESTS, name, &[("decision", "allowed")]),
            limited: Counter::register(REQUESTS, name, &[("decision", "limited")]),
        }
    }
}

/// A lock-free rate limiter (GCRA). See the [module docs](super).
pub struct RateLimiter {
    config: RateLimiterConfig,
    gcra: Gcra,
    clock: SharedClock,
    origin: Instant,
    tat: AtomicU64,
    name: InstanceName,
    obs: RateObs,
}

impl fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimiter")
            .field("name", &self.name)
            .field("config", &self.config)
            .field("tat_nanos", &self.tat.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl RateLimiter {
    /// A limiter on the system clock, starting with its full burst.
    pub fn new(config: RateLimiterConfig) -> Result<Self, ConfigError> {
        Self::with_clock(config, SharedClock::system())
    }

    /// A limiter built from a [`Named`] configuration, on `clock`.
    ///
    /// ```
    /// use resilience_core::Named;
    /// use resilience_core::clock::ManualClock;
    /// use resilience_core::rate::{RateLimiter, RateLimiterConfig};
    ///
    /// let config: Named<RateLimiterConfig> =
    ///     serde_json::from_str(r#"{ "name": "dns-api", "rate": 5, "per": "1s" }"#)?;
    /// let limiter = RateLimiter::from_named(config, ManualClock::new())?;
    /// assert_eq!(limiter.name().as_str(), "dns-api");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_named(
        config: Named<RateLimiterConfig>,
        clock: impl Clock,
    ) -> Result<Self, ConfigError> {
        let name = config.instance_name()?;
        Self::build_named(config.config, clock, name)
    }

    /// Names the limiter: the `name` field of its tracing events and the
    /// `name` label of its metrics. Call it right after construction.
    #[must_use]
    pub fn named(mut self, name: InstanceName) -> Self {
        self.obs = RateObs::register(&name);
        self.name = name;
        self
    }

    /// The instance name (`""` when unnamed).
    pub fn name(&self) -> &InstanceName {
        &self.name
    }

    /// A limiter on the given clock, starting with its full burst.
    pub fn with_clock(config: RateLimiterConfig, clock: impl Clock) -> Result<Self, ConfigError> {
        Self::build_named(config, clock, InstanceName::unnamed())
    }

    fn build_named(
        config: RateLimiterConfig,
        clock: impl Clock,
        name: InstanceName,
    ) -> Result<Self, ConfigError> {
        let gcra = Gcra::from_config(&config)?;
        let clock = clock.into_shared();
        Ok(RateLimiter {
            origin: clock.now(),
            clock,
            gcra,
            config,
            tat: AtomicU64::new(0),
            obs: RateObs::register(&name),
            name,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &RateLimiterConfig {
        &self.config
    }

    /// Takes one request's worth of rate if it conforms now; otherwise says
    /// how long until it would. Lock-free and non-blocking.
    pub fn check(&self) -> Result<(), RateLimited> {
        let now = nanos_since(&self.clock, self.origin);
        let mut tat = self.tat.load(Ordering::Relaxed);
        loop {
            match self.gcra.decide(tat, now) {
                Ok(new_tat) => {
                    match self.tat.compare_exchange_weak(
                        tat,
                        new_tat,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    ) {
                        Ok(_) => {
                            self.obs.allowed.inc();
                            return Ok(());
                        }
                        Err(actual) => tat = actual,
                    }
                }
                Err(wait) => {
                    let retry_after = Duration::from_nanos(wait);
                    self.obs.limited.inc();
                    tracing::debug!(name = %self.name, ?retry_after, rate = self.config.rate, per = ?self.config.per, "rate limited");
                    return Err(RateLimited { retry_after });
                }
            }
        }
    }

    /// Waits on the limiter's clock until a request conforms, and takes it.
    ///
    /// Waiters are not queued: when several wait at once, whichever checks
    /// first after the delay wins and the others wait again.
    pub async fn until_ready(&self) {
        loop {
            match self.check() {
                Ok(()) => return,
                Err(RateLimited { retry_after }) => self.clock.sleep(retry_after).await,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use futures::FutureExt;
    use proptest::prelude::*;

    fn limiter(rate: u32, per: Duration, burst: u32) -> (ManualClock, RateLimiter) {
        let clock = ManualClock::new();
        let l =
            RateLimiter::with_clock(RateLimiterConfig { rate, per, burst }, clock.clone()).unwrap();
        (clock, l)
    }

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn allows_the_burst_then_exactly_the_steady_rate() {
        let (clock, l) = limiter(10, Duration::from_secs(1), 5);
        for _ in 0..5 {
            assert!(l.check().is_ok());
        }
        assert_eq!(
            l.check(),
            Err(RateLimited {
                retry_after: MS * 100
            })
        );
        // One request per 100 ms from now on, never two.
        for _ in 0..50 {
            clock.advance(MS * 99);
            assert_eq!(l.check(), Err(RateLimited { retry_after: MS }));
            clock.advance(MS);
            assert!(l.check().is_ok());
            assert_eq!(
                l.check(),
                Err(RateLimited {
                    retry_after: MS * 100
                })
            );
        }
    }

    #[test]
    fn retry_after_is_when_the_next_request_conforms() {
        let (clock, l) = limiter(2, Duration::from_secs(1), 1);
        assert!(l.check().is_ok());
        clock.advance(MS * 200);
        let RateLimited { retry_after } = l.check().unwrap_err();
        assert_eq!(retry_after, MS * 300);
        clock.advance(retry_after.checked_sub(Duration::from_nanos(1)).unwrap());
        assert!(l.check().is_err());
        clock.advance(Duration::from_nanos(1));
        assert!(l.check().is_ok());
    }

    #[test]
    fn an_idle_period_refills_the_burst_but_no_more() {
        let (clock, l) = limiter(10, Duration::from_secs(1), 3);
        for _ in 0..3 {
            l.check().unwrap();
        }
        clock.advance(Duration::from_secs(3600));
        let allowed = (0..10).filter(|_| l.check().is_ok()).count();
        assert_eq!(allowed, 3);
    }

    #[test]
    fn denied_checks_do_not_consume_rate() {
        let (clock, l) = limiter(1, Duration::from_secs(1), 1);
        l.check().unwrap();
        for _ in 0..100 {
            assert!(l.check().is_err());
        }
        clock.advance(Duration::from_secs(1));
        assert!(l.check().is_ok());
    }

    #[test]
    fn emission_interval_rounds_up() {
        let cfg = RateLimiterConfig {
            rate: 3,
            per: Duration::from_nanos(10),
            burst: 1,
        };
        assert_eq!(cfg.emission_interval().unwrap(), Duration::from_nanos(4));
    }

    #[test]
    fn until_ready_sleeps_on_the_clock_exactly_as_long_as_needed() {
        let (clock, l) = limiter(4, Duration::from_secs(1), 1);
        clock.set_auto_advance(true);
        for _ in 0..5 {
            l.until_ready().now_or_never().unwrap();
        }
        assert_eq!(clock.elapsed(), MS * 1000);
    }

    #[tokio::test]
    async fn until_ready_waits_for_the_clock() {
        let clock = ManualClock::new();
        let l = std::sync::Arc::new(
            RateLimiter::with_clock(
                RateLimiterConfig {
                    rate: 1,
                    per: Duration::from_secs(60),
                    burst: 1,
                },
                clock.clone(),
            )
            .unwrap(),
        );
        l.check().unwrap();
        let waiter = tokio::spawn({
            let l = l.clone();
            async move { l.until_ready().await }
        });
        while clock.sleepers() == 0 {
            tokio::task::yield_now().await;
        }
        assert_eq!(
            clock.next_deadline(),
            Some(clock.now() + Duration::from_secs(60))
        );
        clock.advance(Duration::from_secs(60));
        waiter.await.unwrap();
        assert!(l.check().is_err(), "the waiter took the slot");
    }

    #[test]
    fn invalid_configs_name_the_field() {
        let d = RateLimiterConfig::default;
        let cases = [
            (RateLimiterConfig { rate: 0, ..d() }, "rate"),
            (
                RateLimiterConfig {
                    per: Duration::ZERO,
                    ..d()
                },
                "per",
            ),
            (RateLimiterConfig { burst: 0, ..d() }, "burst"),
            (
                RateLimiterConfig {
                    rate: 1000,
                    per: Duration::from_nanos(999),
                    burst: 1,
                },
                "rate",
            ),
            (
                RateLimiterConfig {
                    per: Duration::MAX,
                    ..d()
                },
                "per",
            ),
            (
                RateLimiterConfig {
                    rate: 1,
                    per: Duration::from_secs(86_400 * 365 * 500),
                    burst: u32::MAX,
                },
                "burst",
            ),
        ];
        for (cfg, field) in cases {
            let err = RateLimiter::new(cfg.clone()).unwrap_err();
            assert_eq!(err.field(), field, "{cfg:?}");
        }
    }

    #[test]
    fn config_reads_human_durations() {
        let cfg: RateLimiterConfig =
            serde_json::from_str(r#"{"rate":5,"per":"1m","burst":2}"#).unwrap();
        assert_eq!(cfg.per, Duration::from_secs(60));
        assert_eq!(cfg.emission_interval().unwrap(), Duration::from_secs(12));
        assert!(serde_json::from_str::<RateLimiterConfig>(r#"{"limit":5}"#).is_err());
    }

    #[test]
    fn rate_limited_error_is_actionable() {
        let text = RateLimited {
            retry_after: MS * 5,
        }
        .to_string();
        assert!(text.contains("5ms"), "{text}");
    }

    #[test]
    fn rate_limiter_is_send_and_sync() {
        fn bounds<T: Send + Sync>() {}
        bounds::<RateLimiter>();
    }

    #[test]
    fn concurrent_checks_never_exceed_the_burst() {
        let (_clock, l) = limiter(1, Duration::from_secs(1), 100);
        let allowed = std::sync::atomic::AtomicU32::new(0);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..1000 {
                        if l.check().is_ok() {
                            allowed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        assert_eq!(allowed.into_inner(), 100);
    }

    proptest! {
        /// Over any interval [a, b] of the run, allowed ≤ burst + rate × (b - a) / per.
        #[test]
        fn never_allows_more_than_burst_plus_rate_times_interval(
            rate in 1u32..50,
            per_ms in 1u64..2000,
            burst in 1u32..10,
            gaps in proptest::collection::vec(0u64..200_000_000, 1..300),
        ) {
            let per = Duration::from_millis(per_ms);
            let (clock, l) = limiter(rate, per, burst);
            let mut allowed_at: Vec<u128> = Vec::new();
            for gap in gaps {
                clock.advance(Duration::from_nanos(gap));
                if l.check().is_ok() {
                    allowed_at.push(clock.elapsed().as_nanos());
                }
            }
            let per = per.as_nanos();
            for (i, a) in allowed_at.iter().enumerate() {
                for (j, b) in allowed_at.iter().enumerate().skip(i) {
                    let count = (j - i + 1) as u128;
                    if count > u128::from(burst) {
                        let extra = count - u128::from(burst);
                        prop_assert!(
                            extra * per <= (b - a) * u128::from(rate),
                            "{} allowed in {} ns", count, b - a
                        );
                    }
                }
            }
        }
    }
}
