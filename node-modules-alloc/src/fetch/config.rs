//! [`FetchConfig`]: how packages missing from the store are downloaded.

use std::time::Duration;

use resilience_core::ConfigError;
use resilience_core::backoff::{BackoffConfig, Jitter};
use resilience_core::breaker::BreakerConfig;
use resilience_core::budget::RetryBudgetConfig;
use resilience_core::limit::ConcurrencyLimitConfig;
use resilience_core::retry::RetryConfig;
use serde::{Deserialize, Serialize};

/// Configuration of a [`Fetcher`](super::Fetcher) (serde, human durations, validated).
///
/// | field | default | what |
/// |---|---|---|
/// | `offline` | `false` | never touch the network: missing packages are an [`Error::Offline`](crate::Error::Offline) naming them |
/// | `per_host` | 16 connections, 100 000 queued, no queue timeout | a `ConcurrencyLimit` per registry host (`host:port`) |
/// | `retry` | 4 attempts, full jitter 250 ms doubling to 10 s, `Retry-After` honoured up to 60 s | the `RetryPolicy` of each package |
/// | `budget` | 10 s window, 10 retries/s floor, 20 % of downloads | the `RetryBudget` shared by every package of the fetcher |
/// | `breaker` | opens after 8 consecutive failures or 50 % of the last 100 calls (20 at least), 10 s doubling to 2 min | a `CircuitBreaker` per registry host |
/// | `package_deadline` | 5 min | a `Deadline` per package: every attempt and backoff of one package |
/// | `connect_timeout` | 10 s | TCP connect (and TLS handshake) of one connection |
/// | `replace_registry_host` | `true` | a lockfile's registry tarball URL (`…/NAME/-/BASE-VERSION.tgz`) is fetched from the registry configured for the package's scope, when one is |
/// | `max_parallel_imports` | 0 (one per core) | tarballs unpacked into the store at once |
///
/// ```
/// use node_modules_alloc::fetch::FetchConfig;
///
/// let config: FetchConfig = serde_json::from_str(
///     r#"{ "package_deadline": "2m", "retry": { "max_attempts": 3 }, "per_host": { "max_concurrent": 8 } }"#,
/// )?;
/// config.validate()?;
/// assert_eq!(config.package_deadline, std::time::Duration::from_secs(120));
/// assert!(serde_json::from_str::<FetchConfig>(r#"{ "package_deadline": "0s" }"#)?.validate().is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FetchConfig {
    /// Never touch the network.
    pub offline: bool,
    /// Connections per registry host.
    pub per_host: ConcurrencyLimitConfig,
    /// Attempts, backoff and `Retry-After` cap of each package.
    pub retry: RetryConfig,
    /// The retry budget shared by every package.
    pub budget: RetryBudgetConfig,
    /// The circuit breaker of each registry host.
    pub breaker: BreakerConfig,
    /// Time allowed to one package, all attempts and backoffs included. Must be > 0.
    #[serde(with = "humantime_serde")]
    pub package_deadline: Duration,
    /// Time allowed to open one connection (TCP and TLS). Must be > 0.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Fetch a lockfile's registry-shaped `resolved` URL from the registry configured for the
    /// package's scope (npm's `replace-registry-host`, for every host).
    pub replace_registry_host: bool,
    /// Tarballs unpacked into the store at once; 0: one per core.
    pub max_parallel_imports: usize,
}

impl Default for FetchConfig {
    fn default() -> Self {
        Self {
            offline: false,
            per_host: ConcurrencyLimitConfig {
                max_concurrent: 16,
                max_queued: 100_000,
                queue_timeout: None,
                ..ConcurrencyLimitConfig::default()
            },
            retry: RetryConfig {
                max_attempts: 4,
                backoff: BackoffConfig {
                    base: Duration::from_millis(250),
                    max: Duration::from_secs(10),
                    factor: 2.0,
                    jitter: Jitter::Full,
                    max_attempts: None,
                },
                max_retry_after: Duration::from_secs(60),
                per_attempt_timeout: None,
                overall_timeout: None,
            },
            budget: RetryBudgetConfig::default(),
            breaker: BreakerConfig {
                consecutive_failures: Some(8),
                minimum_calls: 20,
                window: resilience_core::breaker::WindowConfig::Count { calls: 100 },
                open_wait: BackoffConfig {
                    base: Duration::from_secs(10),
                    max: Duration::from_secs(120),
                    factor: 2.0,
                    jitter: Jitter::None,
                    max_attempts: None,
                },
                ..BreakerConfig::default()
            },
            package_deadline: Duration::from_secs(300),
            connect_timeout: Duration::from_secs(10),
            replace_registry_host: true,
            max_parallel_imports: 0,
        }
    }
}

impl FetchConfig {
    /// Checks every field; the error names the first invalid one (`retry.max_attempts`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.per_host.validate().map_err(|e| e.nested("per_host"))?;
        self.retry.validate().map_err(|e| e.nested("retry"))?;
        self.budget.validate().map_err(|e| e.nested("budget"))?;
        self.breaker.validate().map_err(|e| e.nested("breaker"))?;
        if self.package_deadline.is_zero() {
            return Err(ConfigError::new(
                "package_deadline",
                "must be greater than zero (the time one package may take, retries included)",
            ));
        }
        if self.connect_timeout.is_zero() {
            return Err(ConfigError::new(
                "connect_timeout",
                "must be greater than zero",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_invalid_values_are_named() {
        FetchConfig::default().validate().unwrap();
        let bad = FetchConfig {
            retry: RetryConfig {
                max_attempts: 0,
                ..RetryConfig::default()
            },
            ..FetchConfig::default()
        };
        assert_eq!(bad.validate().unwrap_err().field(), "retry.max_attempts");
        let bad = FetchConfig {
            connect_timeout: Duration::ZERO,
            ..FetchConfig::default()
        };
        assert_eq!(bad.validate().unwrap_err().field(), "connect_timeout");
    }
}
