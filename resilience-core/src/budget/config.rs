//! [`RetryBudgetConfig`]: the validated parameters of a [`RetryBudget`](super::RetryBudget).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::ConfigError;

/// Shortest accepted [`RetryBudgetConfig::ttl`].
pub const MIN_TTL: Duration = Duration::from_secs(1);
/// Longest accepted [`RetryBudgetConfig::ttl`].
pub const MAX_TTL: Duration = Duration::from_secs(60);
/// Largest accepted [`RetryBudgetConfig::retry_ratio`].
pub const MAX_RETRY_RATIO: f64 = 1000.0;

/// Configuration of a [`RetryBudget`](super::RetryBudget).
///
/// `Default` is Finagle's: `ttl` 10 s, `min_retries_per_sec` 10,
/// `retry_ratio` 0.2, i.e. retries may add at most 20 % to the traffic, plus
/// a floor of 10 retries per second **per budget instance**.
///
/// Durations (de)serialize in human form (`"10s"`, `"1m"`).
///
/// ```
/// use std::time::Duration;
/// use resilience_core::budget::RetryBudgetConfig;
///
/// let config: RetryBudgetConfig = serde_json::from_str(r#"{ "ttl": "5s", "retry_ratio": 0.1 }"#)?;
/// assert_eq!(config.ttl, Duration::from_secs(5));
/// assert_eq!(config.min_retries_per_sec, 10); // unset fields keep their default
/// assert!(config.validate().is_ok());
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryBudgetConfig {
    /// How long a deposit (and a withdrawal) counts: the length of the
    /// sliding window. Must be in `1s..=60s`.
    #[serde(with = "humantime_serde")]
    pub ttl: Duration,
    /// The floor: retries per second allowed even without any deposits, so
    /// that a client with little traffic can still retry. The budget holds a
    /// reserve of `min_retries_per_sec * ttl` tokens. This floor is **per
    /// budget instance**: 10 retries/s in each of 500 proxies is 5000
    /// retries/s against one backend. `0` disables the floor.
    pub min_retries_per_sec: u32,
    /// Tokens deposited per request: the share of requests that may be
    /// retried (0.2 = 20 %; above 1 a request may be retried more than once
    /// on average). Must be finite and in `0..=1000`.
    pub retry_ratio: f64,
}

impl Default for RetryBudgetConfig {
    fn default() -> Self {
        RetryBudgetConfig {
            ttl: Duration::from_secs(10),
            min_retries_per_sec: 10,
            retry_ratio: 0.2,
        }
    }
}

impl RetryBudgetConfig {
    /// Checks every field; the error names the first invalid one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.ttl < MIN_TTL || self.ttl > MAX_TTL {
            return Err(ConfigError::new(
                "ttl",
                format!(
                    "must be between {MIN_TTL:?} and {MAX_TTL:?}, got {:?}",
                    self.ttl
                ),
            ));
        }
        if !self.retry_ratio.is_finite() || !(0.0..=MAX_RETRY_RATIO).contains(&self.retry_ratio) {
            return Err(ConfigError::new(
                "retry_ratio",
                format!(
                    "must be a finite number in 0..={MAX_RETRY_RATIO}, got {}",
                    self.retry_ratio
                ),
            ));
        }
        Ok(())
    }

    /// The reserve in tokens: `min_retries_per_sec * ttl`.
    pub fn reserve(&self) -> f64 {
        f64::from(self.min_retries_per_sec) * self.ttl.as_secs_f64()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_finagles() {
        let config = RetryBudgetConfig::default();
        assert_eq!(config.ttl, Duration::from_secs(10));
        assert_eq!(config.min_retries_per_sec, 10);
        assert_eq!(config.retry_ratio, 0.2);
        assert_eq!(config.reserve(), 100.0);
        assert!(config.validate().is_ok());
    }

    #[test]
    fn bounds_are_inclusive() {
        for ttl in [MIN_TTL, MAX_TTL] {
            for retry_ratio in [0.0, MAX_RETRY_RATIO] {
                let config = RetryBudgetConfig {
                    ttl,
                    retry_ratio,
                    ..RetryBudgetConfig::default()
                };
                assert!(config.validate().is_ok(), "{config:?}");
            }
        }
    }
}
