//! Exponential backoff with jitter.
//!
//! # Why jitter?
//!
//! When a dependency fails, every client sees the failure at about the same
//! moment. Plain exponential backoff makes them all retry at the same moments
//! too, so the dependency gets synchronized waves of load exactly when it is
//! weakest. Jitter spreads the retries out. Following AWS's "Exponential
//! Backoff And Jitter", with `ceiling(n) = min(max, base * factor^n)`:
//!
//! | [`Jitter`] | delay of retry `n` |
//! |---|---|
//! | `None` | `ceiling(n)` |
//! | `Full` (default) | `rand(0, ceiling(n))` |
//! | `Equal` | `ceiling(n)/2 + rand(0, ceiling(n)/2)` |
//! | `Decorrelated` | `min(max, rand(base, previous * 3))` |
//!
//! The random source is seedable ([`Backoff::with_seed`]) so simulations are
//! reproducible.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use resilience_core::backoff::{Backoff, BackoffConfig, Jitter};
//!
//! let config = BackoffConfig {
//!     base: Duration::from_millis(100),
//!     max: Duration::from_secs(2),
//!     factor: 2.0,
//!     jitter: Jitter::None,
//!     max_attempts: Some(4),
//! };
//! let delays: Vec<Duration> = Backoff::new(config)?.collect();
//! // 4 attempts means 3 waits between them.
//! assert_eq!(delays, [100, 200, 400].map(Duration::from_millis));
//! # Ok::<(), resilience_core::ConfigError>(())
//! ```

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::ConfigError;

/// How a backoff delay is randomized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Jitter {
    /// No randomization: `ceiling(n)`.
    None,
    /// Uniform in `[0, ceiling(n)]`. Spreads load best; the default.
    #[default]
    Full,
    /// Half fixed, half random: `[ceiling(n)/2, ceiling(n)]`.
    Equal,
    /// `min(max, rand(base, previous * 3))`: grows from the previous delay.
    Decorrelated,
}

/// Configuration of a [`Backoff`]. `Default`: base 100 ms, max 10 s, factor
/// 2, full jitter, no attempt limit.
///
/// Durations (de)serialize in human form (`"100ms"`, `"10s"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BackoffConfig {
    /// Delay before the first retry (before jitter). Must be > 0.
    #[serde(with = "humantime_serde")]
    pub base: Duration,
    /// Cap on any single delay. Must be >= `base`.
    #[serde(with = "humantime_serde")]
    pub max: Duration,
    /// Growth per retry. Must be finite and >= 1.
    pub factor: f64,
    /// Randomization.
    pub jitter: Jitter,
    /// Total attempts (the first one included) the backoff allows, so it
    /// yields `max_attempts - 1` delays. `None`: unlimited. `Some(0)` is
    /// invalid.
    pub max_attempts: Option<u32>,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        BackoffConfig {
            base: Duration::from_millis(100),
            max: Duration::from_secs(10),
            factor: 2.0,
            jitter: Jitter::Full,
            max_attempts: None,
        }
    }
}

impl BackoffConfig {
    /// Checks every field; the error names the first invalid one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.base.is_zero() {
            return Err(ConfigError::new("base", "must be greater than zero"));
        }
        if self.max < self.base {
            return Err(ConfigError::new(
                "max",
                format!(
                    "must be at least `base` ({:?}), got {:?}",
                    self.base, self.max
                ),
            ));
        }
        if !self.factor.is_finite() || self.factor < 1.0 {
            return Err(ConfigError::new(
                "factor",
                format!("must be a finite number >= 1, got {}", self.factor),
            ));
        }
        if self.max_attempts == Some(0) {
            return Err(ConfigError::new(
                "max_attempts",
                "must be at least 1 (the first attempt), or unset for no limit",
            ));
        }
        Ok(())
    }

    /// The un-jittered delay before retry `retry` (0-based):
    /// `min(max, base * factor^retry)`.
    pub fn ceiling(&self, retry: u32) -> Duration {
        let exponent = i32::try_from(retry).unwrap_or(i32::MAX);
        let secs = self.base.as_secs_f64() * self.factor.powi(exponent);
        if secs.is_finite() && secs < self.max.as_secs_f64() {
            Duration::from_secs_f64(secs)
        } else {
            self.max
        }
    }
}

/// The delays of one retry sequence: an iterator of [`Duration`]s.
///
/// Create one per operation (it is cheap) from a shared [`BackoffConfig`].
#[derive(Debug, Clone)]
pub struct Backoff {
    config: BackoffConfig,
    rng: fastrand::Rng,
    retries: u32,
    previous: Duration,
}

impl Backoff {
    /// A backoff with a randomly seeded jitter source.
    pub fn new(config: BackoffConfig) -> Result<Self, ConfigError> {
        Self::with_rng(config, fastrand::Rng::new())
    }

    /// A backoff whose jitter is reproducible from `seed`.
    pub fn with_seed(config: BackoffConfig, seed: u64) -> Result<Self, ConfigError> {
        Self::with_rng(config, fastrand::Rng::with_seed(seed))
    }

    fn with_rng(config: BackoffConfig, rng: fastrand::Rng) -> Result<Self, ConfigError> {
        config.validate()?;
        let previous = config.base;
        Ok(Backoff {
            config,
            rng,
            retries: 0,
            previous,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &BackoffConfig {
        &self.config
    }

    /// How many delays this backoff has handed out since creation or the
    /// last [`Backoff::reset`].
    pub fn retries(&self) -> u32 {
        self.retries
    }

    /// Starts the sequence again (after a success), keeping the RNG state.
    pub fn reset(&mut self) {
        self.retries = 0;
        self.previous = self.config.base;
    }

    /// The delay before the next retry, or `None` once `max_attempts` is
    /// reached.
    pub fn next_delay(&mut self) -> Option<Duration> {
        if let Some(max_attempts) = self.config.max_attempts
            && self.retries.saturating_add(1) >= max_attempts
        {
            return None;
        }
        let ceiling = self.config.ceiling(self.retries);
        let delay = match self.config.jitter {
            Jitter::None => ceiling,
            Jitter::Full => self.uniform(Duration::ZERO, ceiling),
            Jitter::Equal => {
                let half = ceiling / 2;
                self.uniform(half, ceiling)
            }
            Jitter::Decorrelated => {
                let upper = self.previous.saturating_mul(3).min(self.config.max);
                let lower = self.config.base.min(upper);
                self.uniform(lower, upper)
            }
        };
        self.previous = delay.max(self.config.base);
        self.retries = self.retries.saturating_add(1);
        Some(delay)
    }

    /// Uniform duration in `[low, high]` at nanosecond resolution.
    fn uniform(&mut self, low: Duration, high: Duration) -> Duration {
        let low_ns = saturating_nanos(low);
        let high_ns = saturating_nanos(high).max(low_ns);
        Duration::from_nanos(self.rng.u64(low_ns..=high_ns))
    }
}

impl Iterator for Backoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        self.next_delay()
    }
}

fn saturating_nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn config(jitter: Jitter) -> BackoffConfig {
        BackoffConfig {
            base: Duration::from_millis(100),
            max: Duration::from_secs(5),
            factor: 2.0,
            jitter,
            max_attempts: None,
        }
    }

    #[test]
    fn no_jitter_doubles_up_to_the_cap() {
        let delays: Vec<_> = Backoff::new(config(Jitter::None))
            .unwrap()
            .take(8)
            .map(|d| d.as_millis())
            .collect();
        assert_eq!(delays, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
    }

    #[test]
    fn max_attempts_limits_the_number_of_delays() {
        let cfg = BackoffConfig {
            max_attempts: Some(3),
            ..config(Jitter::Full)
        };
        assert_eq!(Backoff::new(cfg.clone()).unwrap().count(), 2);
        let one = BackoffConfig {
            max_attempts: Some(1),
            ..cfg
        };
        assert_eq!(Backoff::new(one).unwrap().count(), 0);
    }

    #[test]
    fn reset_starts_the_sequence_again() {
        let mut backoff = Backoff::new(config(Jitter::None)).unwrap();
        backoff.next_delay();
        backoff.next_delay();
        assert_eq!(backoff.retries(), 2);
        backoff.reset();
        assert_eq!(backoff.next_delay(), Some(Duration::from_millis(100)));
    }

    #[test]
    fn same_seed_gives_same_delays() {
        for jitter in [Jitter::Full, Jitter::Equal, Jitter::Decorrelated] {
            let a: Vec<_> = Backoff::with_seed(config(jitter), 42)
                .unwrap()
                .take(20)
                .collect();
            let b: Vec<_> = Backoff::with_seed(config(jitter), 42)
                .unwrap()
                .take(20)
                .collect();
            assert_eq!(a, b, "{jitter:?}");
        }
    }

    #[test]
    fn full_jitter_spreads_delays() {
        let delays: Vec<_> = (0..200)
            .map(|seed| {
                Backoff::with_seed(config(Jitter::Full), seed)
                    .unwrap()
                    .next_delay()
                    .unwrap()
            })
            .collect();
        let distinct: std::collections::HashSet<_> = delays.iter().collect();
        assert!(distinct.len() > 150);
        let mean = delays.iter().map(Duration::as_secs_f64).sum::<f64>() / 200.0;
        assert!((0.035..0.065).contains(&mean), "mean {mean}");
    }

    #[test]
    fn invalid_configs_name_the_field() {
        let cases = [
            (
                BackoffConfig {
                    base: Duration::ZERO,
                    ..BackoffConfig::default()
                },
                "base",
            ),
            (
                BackoffConfig {
                    max: Duration::from_millis(1),
                    ..BackoffConfig::default()
                },
                "max",
            ),
            (
                BackoffConfig {
                    factor: f64::NAN,
                    ..BackoffConfig::default()
                },
                "factor",
            ),
            (
                BackoffConfig {
                    factor: f64::INFINITY,
                    ..BackoffConfig::default()
                },
                "factor",
            ),
            (
                BackoffConfig {
                    factor: 0.9,
                    ..BackoffConfig::default()
                },
                "factor",
            ),
            (
                BackoffConfig {
                    max_attempts: Some(0),
                    ..BackoffConfig::default()
                },
                "max_attempts",
            ),
        ];
        for (cfg, field) in cases {
            assert_eq!(Backoff::new(cfg).unwrap_err().field(), field);
        }
    }

    #[test]
    fn config_reads_human_durations() {
        let cfg: BackoffConfig = serde_json::from_str(
            r#"{"base":"250ms","max":"30s","factor":3.0,"jitter":"decorrelated","max_attempts":5}"#,
        )
        .unwrap();
        assert_eq!(cfg.base, Duration::from_millis(250));
        assert_eq!(cfg.max, Duration::from_secs(30));
        assert_eq!(cfg.jitter, Jitter::Decorrelated);
        let back = serde_json::to_string(&cfg).unwrap();
        assert_eq!(serde_json::from_str::<BackoffConfig>(&back).unwrap(), cfg);
        assert!(serde_json::from_str::<BackoffConfig>(r#"{"bogus":1}"#).is_err());
    }

    proptest! {
        #[test]
        fn delays_stay_within_their_jitter_bounds(
            seed in any::<u64>(),
            base_ms in 1u64..1_000,
            extra_ms in 0u64..60_000,
            factor in 1.0f64..10.0,
            jitter in prop_oneof![Just(Jitter::None), Just(Jitter::Full), Just(Jitter::Equal), Just(Jitter::Decorrelated)],
        ) {
            let cfg = BackoffConfig {
                base: Duration::from_millis(base_ms),
                max: Duration::from_millis(base_ms + extra_ms),
                factor,
                jitter,
                max_attempts: None,
            };
            let mut backoff = Backoff::with_seed(cfg.clone(), seed).unwrap();
            let mut previous = cfg.base;
            for retry in 0..40 {
                let delay = backoff.next_delay().unwrap();
                prop_assert!(delay <= cfg.max);
                let ceiling = cfg.ceiling(retry);
                match jitter {
                    Jitter::None => prop_assert_eq!(delay, ceiling),
                    Jitter::Full => prop_assert!(delay <= ceiling),
                    Jitter::Equal => prop_assert!(delay >= ceiling / 2 && delay <= ceiling),
                    Jitter::Decorrelated => {
                        prop_assert!(delay >= cfg.base.min(cfg.max));
                        prop_assert!(delay <= previous.saturating_mul(3).min(cfg.max));
                    }
                }
                previous = delay.max(cfg.base);
            }
        }
    }
}
