//! AIMD: additive increase, multiplicative decrease (as in TCP Reno and
//! Netflix's `AIMDLimit`).

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::ConfigError;

use super::sample::{Sample, validate_bounds};

/// Configuration of the AIMD algorithm of an
/// [`AdaptiveLimit`](super::AdaptiveLimit).
///
/// Each sample either *grows* the limit by `increase_by` (a success faster
/// than `latency_threshold` while at least half of the limit was in use:
/// an idle limit learns nothing about capacity) or *shrinks* it to
/// `floor(limit × backoff_ratio)` (a dropped request: timeout, error
/// signalling overload, or a latency above the threshold). The limit stays
/// within `min_limit..=max_limit`.
///
/// Like TCP, the limit shrinks at most once per round trip: a drop of a
/// request that started before the previous decrease was admitted under
/// the old limit and is already accounted for, so it does not shrink the
/// limit again. Without this rule a burst of `n` slow requests would
/// multiply the limit by `backoff_ratio^n` and collapse it to `min_limit`.
///
/// `Default`: initial 20, min 1, max 200, +1, ×0.9, threshold 5 s
/// (Netflix's defaults, except a min of 1 instead of 20 so that a very sick
/// dependency is protected too).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AimdConfig {
    /// The limit before any sample. Must be in `min_limit..=max_limit`.
    pub initial_limit: usize,
    /// The lowest limit. Must be >= 1.
    pub min_limit: usize,
    /// The highest limit. Must be >= `min_limit` and <= `MAX_CONCURRENT`.
    pub max_limit: usize,
    /// Added to the limit per healthy sample. Must be >= 1.
    pub increase_by: usize,
    /// Factor applied on a drop. Must be finite and in `[0.5, 1)`: below
    /// one half a single drop halves capacity more than TCP would.
    pub backoff_ratio: f64,
    /// A success slower than this counts as a drop. Must be > 0.
    #[serde(with = "humantime_serde")]
    pub latency_threshold: Duration,
}

impl Default for AimdConfig {
    fn default() -> Self {
        AimdConfig {
            initial_limit: 20,
            min_limit: 1,
            max_limit: 200,
            increase_by: 1,
            backoff_ratio: 0.9,
            latency_threshold: Duration::from_secs(5),
        }
    }
}

impl AimdConfig {
    /// Checks every field; the error names the first invalid one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        validate_bounds(self.initial_limit, self.min_limit, self.max_limit)?;
        if self.increase_by == 0 {
            return Err(ConfigError::new("increase_by", "must be at least 1"));
        }
        if !(self.backoff_ratio.is_finite() && (0.5..1.0).contains(&self.backoff_ratio)) {
            return Err(ConfigError::new(
                "backoff_ratio",
                format!(
                    "must be a finite number in [0.5, 1), got {}",
                    self.backoff_ratio
                ),
            ));
        }
        if self.latency_threshold.is_zero() {
            return Err(ConfigError::new(
                "latency_threshold",
                "must be greater than zero",
            ));
        }
        Ok(())
    }
}

/// The AIMD state: just the current limit.
#[derive(Debug)]
pub(crate) struct Aimd {
    config: AimdConfig,
    limit: usize,
    /// When the limit was last decreased.
    last_decrease: Option<Instant>,
}

impl Aimd {
    pub(crate) fn new(config: AimdConfig) -> Self {
        let limit = config.initial_limit;
        Aimd {
            config,
            limit,
            last_decrease: None,
        }
    }

    #[cfg(test)]
    pub(crate) fn limit(&self) -> usize {
        self.limit
    }

    /// Folds one sample in and returns the new limit. `now` is the time the
    /// outcome was recorded.
    pub(crate) fn on_sample(&mut self, sample: Sample, now: Instant) -> usize {
        let config = &self.config;
        if sample.dropped || sample.latency > config.latency_threshold {
            if self.last_decrease.is_some_and(|at| sample.started < at) {
                return self.limit;
            }
            self.last_decrease = Some(now);
            let reduced = (self.limit as f64 * config.backoff_ratio).floor() as usize;
            self.limit = reduced.clamp(config.min_limit, config.max_limit);
        } else if sample.in_flight.saturating_mul(2) >= self.limit {
            self.limit = self
                .limit
                .saturating_add(config.increase_by)
                .clamp(config.min_limit, config.max_limit);
        }
        self.limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each sample starts after the previous one was recorded.
    fn sample(latency_ms: u64, in_flight: usize, dropped: bool) -> Sample {
        Sample {
            started: Instant::now(),
            latency: Duration::from_millis(latency_ms),
            in_flight,
            dropped,
        }
    }

    impl Aimd {
        /// Records the sample as of its start, so that every later sample
        /// counts as having started after any decrease it caused.
        fn on_sample_now(&mut self, sample: Sample) -> usize {
            let now = sample.started;
            self.on_sample(sample, now)
        }
    }

    #[test]
    fn shrinks_once_per_round_trip() {
        let mut aimd = Aimd::new(AimdConfig::default());
        let start = Instant::now();
        let slow = |started| Sample {
            started,
            latency: Duration::from_secs(6),
            in_flight: 20,
            dropped: false,
        };
        let now = start + Duration::from_secs(6);
        assert_eq!(aimd.on_sample(slow(start), now), 18);
        // Started before that decrease: already accounted for.
        assert_eq!(aimd.on_sample(slow(start), now), 18);
        // Started after it: shrinks again.
        let later = now + Duration::from_millis(1);
        assert_eq!(
            aimd.on_sample(slow(later), later + Duration::from_secs(6)),
            16
        );
    }

    #[test]
    fn grows_additively_when_busy_and_fast() {
        let mut aimd = Aimd::new(AimdConfig::default());
        assert_eq!(aimd.on_sample_now(sample(10, 20, false)), 21);
        assert_eq!(aimd.on_sample_now(sample(10, 20, false)), 22);
    }

    #[test]
    fn does_not_grow_while_mostly_idle() {
        let mut aimd = Aimd::new(AimdConfig::default());
        assert_eq!(aimd.on_sample_now(sample(10, 9, false)), 20);
    }

    #[test]
    fn shrinks_multiplicatively_on_drop_and_on_slow_success() {
        let mut aimd = Aimd::new(AimdConfig::default());
        assert_eq!(aimd.on_sample_now(sample(10, 20, true)), 18);
        assert_eq!(aimd.on_sample_now(sample(6_000, 20, false)), 16);
    }

    #[test]
    fn stays_within_bounds() {
        let mut aimd = Aimd::new(AimdConfig {
            initial_limit: 3,
            min_limit: 2,
            max_limit: 4,
            ..AimdConfig::default()
        });
        for _ in 0..10 {
            aimd.on_sample_now(sample(1, 100, true));
        }
        assert_eq!(aimd.limit(), 2);
        for _ in 0..10 {
            aimd.on_sample_now(sample(1, 100, false));
        }
        assert_eq!(aimd.limit(), 4);
    }

    #[test]
    fn invalid_configs_name_the_field() {
        let cases = [
            (
                AimdConfig {
                    min_limit: 0,
                    ..AimdConfig::default()
                },
                "min_limit",
            ),
            (
                AimdConfig {
                    min_limit: 50,
                    max_limit: 10,
                    ..AimdConfig::default()
                },
                "max_limit",
            ),
            (
                AimdConfig {
                    initial_limit: 500,
                    ..AimdConfig::default()
                },
                "initial_limit",
            ),
            (
                AimdConfig {
                    increase_by: 0,
                    ..AimdConfig::default()
                },
                "increase_by",
            ),
            (
                AimdConfig {
                    backoff_ratio: f64::NAN,
                    ..AimdConfig::default()
                },
                "backoff_ratio",
            ),
            (
                AimdConfig {
                    backoff_ratio: -0.5,
                    ..AimdConfig::default()
                },
                "backoff_ratio",
            ),
            (
                AimdConfig {
                    backoff_ratio: 0.0,
                    ..AimdConfig::default()
                },
                "backoff_ratio",
            ),
            (
                AimdConfig {
                    backoff_ratio: 1.0,
                    ..AimdConfig::default()
                },
                "backoff_ratio",
            ),
            (
                AimdConfig {
                    backoff_ratio: f64::INFINITY,
                    ..AimdConfig::default()
                },
                "backoff_ratio",
            ),
            (
                AimdConfig {
                    latency_threshold: Duration::ZERO,
                    ..AimdConfig::default()
                },
                "latency_threshold",
            ),
        ];
        for (config, field) in cases {
            assert_eq!(config.validate().unwrap_err().field(), field, "{config:?}");
        }
        AimdConfig::default().validate().unwrap();
    }
}
