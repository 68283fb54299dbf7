//! Configuration of a [`ConcurrencyLimit`](super::ConcurrencyLimit).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::ConfigError;

/// The largest accepted `max_concurrent` (2³¹ − 1): the in-flight count and
/// the limit share one 64-bit atomic word.
pub const MAX_CONCURRENT: usize = (1 << 31) - 1;

/// Configuration of a [`ConcurrencyLimit`](super::ConcurrencyLimit).
///
/// `Default`: 100 concurrent, a queue of 100 waiting at most 1 s,
/// `retry_after` hints between 10 ms and 10 s. Durations (de)serialize in
/// human form (`"1s"`, `"250ms"`).
///
/// ```
/// use resilience_core::limit::ConcurrencyLimitConfig;
///
/// let config: ConcurrencyLimitConfig =
///     toml::from_str("max_concurrent = 8\nmax_queued = 16\nqueue_timeout = \"500ms\"")?;
/// assert_eq!(config.queue_timeout, Some(std::time::Duration::from_millis(500)));
/// config.validate()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConcurrencyLimitConfig {
    /// Permits that may be held at once. Must be in `1..=MAX_CONCURRENT`.
    pub max_concurrent: usize,
    /// Callers of `acquire` that may wait (FIFO) for a permit. `0`: no
    /// queue, shed at once when every permit is taken.
    pub max_queued: usize,
    /// How long a queued caller waits before it is shed. `None`: wait until
    /// a permit is free (or the future is dropped). `Some(0)` is invalid (use
    /// `max_queued = 0` to disable waiting).
    #[serde(with = "humantime_serde::option")]
    pub queue_timeout: Option<Duration>,
    /// Lower bound of [`Overloaded::retry_after`](super::Overloaded). Must
    /// be > 0: a zero hint invites an immediate retry storm.
    #[serde(with = "humantime_serde")]
    pub min_retry_after: Duration,
    /// Upper bound of [`Overloaded::retry_after`](super::Overloaded). Must be
    /// >= `min_retry_after`.
    #[serde(with = "humantime_serde")]
    pub max_retry_after: Duration,
}

impl Default for ConcurrencyLimitConfig {
    fn default() -> Self {
        ConcurrencyLimitConfig {
            max_concurrent: 100,
            max_queued: 100,
            queue_timeout: Some(Duration::from_secs(1)),
            min_retry_after: Duration::from_millis(10),
            max_retry_after: Duration::from_secs(10),
        }
    }
}

impl ConcurrencyLimitConfig {
    /// Checks every field; the error names the first invalid one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        validate_max_concurrent("max_concurrent", self.max_concurrent)?;
        if self.queue_timeout == Some(Duration::ZERO) {
            return Err(ConfigError::new(
                "queue_timeout",
                "must be greater than zero, or unset to wait without a timeout \
                 (set `max_queued = 0` to shed instead of waiting)",
            ));
        }
        if self.min_retry_after.is_zero() {
            return Err(ConfigError::new(
                "min_retry_after",
                "must be greater than zero",
            ));
        }
        if self.max_retry_after < self.min_retry_after {
            return Err(ConfigError::new(
                "max_retry_after",
                format!(
                    "must be at least `min_retry_after` ({:?}), got {:?}",
                    self.min_retry_after, self.max_retry_after
                ),
            ));
        }
        Ok(())
    }
}

/// `value` must be in `1..=MAX_CONCURRENT`.
pub(crate) fn validate_max_concurrent(
    field: &'static str,
    value: usize,
) -> Result<(), ConfigError> {
    if value == 0 || value > MAX_CONCURRENT {
        return Err(ConfigError::new(
            field,
            format!("must be in 1..={MAX_CONCURRENT}, got {value}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid() {
        ConcurrencyLimitConfig::default().validate().unwrap();
    }

    #[test]
    fn zero_max_concurrent_is_an_error() {
        let err = ConcurrencyLimitConfig {
            max_concurrent: 0,
            ..ConcurrencyLimitConfig::default()
        }
        .validate()
        .unwrap_err();
        assert_eq!(err.field(), "max_concurrent");
    }

    #[test]
    fn max_concurrent_beyond_the_packed_range_is_an_error() {
        let err = ConcurrencyLimitConfig {
            max_concurrent: MAX_CONCURRENT + 1,
            ..ConcurrencyLimitConfig::default()
        }
        .validate()
        .unwrap_err();
        assert_eq!(err.field(), "max_concurrent");
    }

    #[test]
    fn zero_queue_timeout_is_an_error() {
        let err = ConcurrencyLimitConfig {
            queue_timeout: Some(Duration::ZERO),
            ..ConcurrencyLimitConfig::default()
        }
        .validate()
        .unwrap_err();
        assert_eq!(err.field(), "queue_timeout");
    }

    #[test]
    fn zero_min_retry_after_is_an_error() {
        let err = ConcurrencyLimitConfig {
            min_retry_after: Duration::ZERO,
            ..ConcurrencyLimitConfig::default()
        }
        .validate()
        .unwrap_err();
        assert_eq!(err.field(), "min_retry_after");
    }

    #[test]
    fn max_retry_after_below_min_is_an_error() {
        let err = ConcurrencyLimitConfig {
            min_retry_after: Duration::from_secs(2),
            max_retry_after: Duration::from_secs(1),
            ..ConcurrencyLimitConfig::default()
        }
        .validate()
        .unwrap_err();
        assert_eq!(err.field(), "max_retry_after");
    }

    #[test]
    fn serde_round_trips_in_human_durations() {
        let config = ConcurrencyLimitConfig::default();
        let json = serde_json::to_string(&config).unwrap();
        assert!(json.contains("\"1s\""), "{json}");
        let back: ConcurrencyLimitConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(back, config);
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let err =
            serde_json::from_str::<ConcurrencyLimitConfig>(r#"{"max_concurent": 3}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field"), "{err}");
    }

    #[test]
    fn missing_queue_timeout_means_wait_without_timeout_only_when_null() {
        let config: ConcurrencyLimitConfig =
            serde_json::from_str(r#"{"queue_timeout": null}"#).unwrap();
        assert_eq!(config.queue_timeout, None);
        let config: ConcurrencyLimitConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(config.queue_timeout, Some(Duration::from_secs(1)));
    }
}
