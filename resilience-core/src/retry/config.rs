//! The serde configuration of a [`RetryPolicy`](super::RetryPolicy).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::backoff::BackoffConfig;
use crate::error::ConfigError;

/// Configuration of a [`RetryPolicy`](super::RetryPolicy).
///
/// `Default`: 3 attempts (the AWS SDKs' "standard" retry mode), the default
/// [`BackoffConfig`] (full jitter, 100 ms doubling to 10 s), server hints
/// capped at 30 s, no per-attempt or overall timeout. Durations (de)serialize in human
/// form (`"100ms"`, `"30s"`).
///
/// ```
/// use std::time::Duration;
/// use resilience_core::retry::RetryConfig;
///
/// let config: RetryConfig = serde_json::from_str(
///     r#"{ "max_attempts": 4, "backoff": { "base": "50ms" }, "per_attempt_timeout": "2s" }"#,
/// )?;
/// assert_eq!(config.backoff.base, Duration::from_millis(50));
/// assert_eq!(config.per_attempt_timeout, Some(Duration::from_secs(2)));
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryConfig {
    /// Total attempts, the first one included. Must be >= 1 (1 disables
    /// retries).
    pub max_attempts: u32,
    /// Delays between attempts. Its own `max_attempts` must stay unset: the
    /// retry config's `max_attempts` is the one limit.
    pub backoff: BackoffConfig,
    /// Cap on a server's `Retry-After` hint ([`Retryable::retry_after`](super::Retryable::retry_after)).
    /// The executor waits `max(backoff delay, min(hint, max_retry_after))`.
    /// Zero ignores hints.
    #[serde(with = "humantime_serde")]
    pub max_retry_after: Duration,
    /// Time limit of each single attempt (a child of the overall deadline, so
    /// it never extends it). A timed-out attempt counts as a retryable
    /// failure. `None`: attempts are bounded by the overall deadline only.
    /// Must be > 0 when set.
    #[serde(with = "humantime_serde::option")]
    pub per_attempt_timeout: Option<Duration>,
    /// Time limit of a whole run (all attempts and backoff sleeps), measured
    /// from its start. With
    /// [`run_with_deadline`](super::RetryPolicy::run_with_deadline) the
    /// earlier of the two limits applies. `None`: no limit besides a given
    /// deadline (then a hung attempt can hang the run unless
    /// `per_attempt_timeout` is set). Must be > 0 when set.
    #[serde(with = "humantime_serde::option")]
    pub overall_timeout: Option<Duration>,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            max_attempts: 3,
            backoff: BackoffConfig::default(),
            max_retry_after: Duration::from_secs(30),
            per_attempt_timeout: None,
            overall_timeout: None,
        }
    }
}

impl RetryConfig {
    /// Checks every field; the error names the first invalid one (nested
    /// fields with dots: `backoff.factor`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_attempts == 0 {
            return Err(ConfigError::new(
                "max_attempts",
                "must be at least 1 (the first attempt), got 0",
            ));
        }
        self.backoff.validate().map_err(|e| e.nested("backoff"))?;
        if let Some(n) = self.backoff.max_attempts {
            return Err(ConfigError::new(
                "max_attempts",
                format!(
                    "must be unset in a retry config (got {n}); set the retry config's `max_attempts` instead"
                ),
            )
            .nested("backoff"));
        }
        if self.per_attempt_timeout == Some(Duration::ZERO) {
            return Err(ConfigError::new(
                "per_attempt_timeout",
                "must be greater than zero, or unset for no per-attempt limit",
            ));
        }
        if self.overall_timeout == Some(Duration::ZERO) {
            return Err(ConfigError::new(
                "overall_timeout",
                "must be greater than zero, or unset for no overall limit",
            ));
        }
        Ok(())
    }
}
