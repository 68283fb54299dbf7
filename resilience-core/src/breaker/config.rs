//! Configuration of a [`CircuitBreaker`](super::CircuitBreaker).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::backoff::{BackoffConfig, Jitter};
use crate::error::ConfigError;

/// Largest accepted count-based window (one byte of state per call).
pub const MAX_WINDOW_CALLS: u32 = 1_000_000;
/// Largest accepted number of buckets in a time-based window.
pub const MAX_WINDOW_BUCKETS: u32 = 10_000;
/// Shortest accepted bucket of a time-based window (`duration / buckets`).
pub const MIN_BUCKET: Duration = Duration::from_millis(1);

/// The sliding window over which failure and slow-call rates are computed.
///
/// Serialized with a `type` tag:
/// `{ "type": "count", "calls": 100 }` or
/// `{ "type": "time", "duration": "60s", "buckets": 60 }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum WindowConfig {
    /// The outcomes of the last `calls` recorded calls.
    Count {
        /// Number of calls in the window, `1..=1_000_000`.
        calls: u32,
    },
    /// The outcomes recorded during the last `duration`, kept in `buckets`
    /// equal slices: the window moves one bucket at a time, so it covers
    /// between `duration - duration / buckets` and `duration` of history.
    Time {
        /// Length of the window. `duration / buckets` must be at least 1 ms.
        #[serde(with = "humantime_serde")]
        duration: Duration,
        /// Number of slices, `1..=10_000`.
        buckets: u32,
    },
}

impl Default for WindowConfig {
    /// The last 100 calls (resilience4j's default).
    fn default() -> Self {
        WindowConfig::Count { calls: 100 }
    }
}

impl WindowConfig {
    /// Checks the window; errors name the field inside the window
    /// (`calls`, `duration`, `buckets`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        match *self {
            WindowConfig::Count { calls } => {
                if calls == 0 || calls > MAX_WINDOW_CALLS {
                    return Err(ConfigError::new(
                        "calls",
                        format!("must be in 1..={MAX_WINDOW_CALLS}, got {calls}"),
                    ));
                }
            }
            WindowConfig::Time { duration, buckets } => {
                if duration.is_zero() {
                    return Err(ConfigError::new("duration", "must be greater than zero"));
                }
                if buckets == 0 || buckets > MAX_WINDOW_BUCKETS {
                    return Err(ConfigError::new(
                        "buckets",
                        format!("must be in 1..={MAX_WINDOW_BUCKETS}, got {buckets}"),
                    ));
                }
                if duration / buckets < MIN_BUCKET {
                    return Err(ConfigError::new(
                        "buckets",
                        format!(
                            "each bucket (`duration / buckets`) must be at least {MIN_BUCKET:?}, \
                             got {:?}; use fewer buckets",
                            duration / buckets
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Configuration of a [`CircuitBreaker`](super::CircuitBreaker).
///
/// `Default` (resilience4j-like, chosen for request/response RPC):
///
/// | field | default |
/// |---|---|
/// | `consecutive_failures` | `None` (only the rate rules trip) |
/// | `failure_rate_threshold` | `0.5` |
/// | `slow_call_duration` | `None` (slow calls are not tracked) |
/// | `slow_call_rate_threshold` | `1.0` |
/// | `window` | last 100 calls |
/// | `minimum_calls` | `20` |
/// | `open_wait` | 30 s, doubling per consecutive trip up to 5 min, no jitter |
/// | `half_open_probes` | `5` |
///
/// Durations (de)serialize in human form (`"30s"`, `"250ms"`); unknown
/// fields are rejected.
///
/// ```
/// use resilience_core::breaker::{BreakerConfig, WindowConfig};
///
/// let config: BreakerConfig = serde_json::from_str(r#"{
///     "consecutive_failures": 5,
///     "slow_call_duration": "2s",
///     "window": { "type": "time", "duration": "60s", "buckets": 12 },
///     "open_wait": { "base": "10s", "max": "2m", "jitter": "equal" }
/// }"#)?;
/// assert_eq!(config.window, WindowConfig::Time { duration: std::time::Duration::from_secs(60), buckets: 12 });
/// assert_eq!(config.minimum_calls, 20); // unspecified fields keep their defaults
/// config.validate()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BreakerConfig {
    /// Trip after this many failures in a row (in the closed state),
    /// independently of the window. `None`: no such rule. `Some(0)` is
    /// invalid.
    pub consecutive_failures: Option<u32>,
    /// Trip when at least this share of the calls in the window failed
    /// (`failures / calls >= threshold`), once the window holds at least
    /// `minimum_calls`. In `(0, 1]`; `1.0` trips only when every call failed.
    pub failure_rate_threshold: f64,
    /// A call whose duration (between `try_acquire` and its record, on the
    /// breaker's clock) exceeds this is *slow*. `None`: slow calls are not
    /// tracked and the clock is not read on `try_acquire`. Must be > 0.
    /// From [`COARSE_CLOCK_FROM`](super::COARSE_CLOCK_FROM) (100 ms) up, and
    /// with time-window buckets at least as long, call times come from the
    /// clock's cheaper coarse reading (a scheduler tick, 1–10 ms, of error).
    #[serde(with = "humantime_serde::option")]
    pub slow_call_duration: Option<Duration>,
    /// Trip when at least this share of the calls in the window were slow
    /// (successful or not), once the window holds at least `minimum_calls`.
    /// In `(0, 1]`. Only used with `slow_call_duration`.
    pub slow_call_rate_threshold: f64,
    /// The sliding window the rates are computed over.
    pub window: WindowConfig,
    /// The rate rules apply only once the window holds at least this many
    /// recorded calls, so that 1 failure out of 1 call does not trip. At
    /// least 1; with a count window at most `window.calls`.
    pub minimum_calls: u32,
    /// How long the breaker stays open: the n-th trip in a row (without a
    /// successful close in between) waits the n-th delay of this backoff.
    /// `max_attempts` must be unset (a breaker may trip any number of times).
    pub open_wait: BackoffConfig,
    /// Half-open admits at most this many probe calls at a time and closes
    /// after this many probes succeeded. At least 1.
    pub half_open_probes: u32,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            consecutive_failures: None,
            failure_rate_threshold: 0.5,
            slow_call_duration: None,
            slow_call_rate_threshold: 1.0,
            window: WindowConfig::default(),
            minimum_calls: 20,
            open_wait: BackoffConfig {
                base: Duration::from_secs(30),
                max: Duration::from_secs(300),
                factor: 2.0,
                jitter: Jitter::None,
                max_attempts: None,
            },
            half_open_probes: 5,
        }
    }
}

fn check_rate(field: &'static str, value: f64) -> Result<(), ConfigError> {
    if value.is_nan() || value <= 0.0 || value > 1.0 {
        return Err(ConfigError::new(
            field,
            format!("must be a share in (0, 1] (e.g. 0.5 for 50 %), got {value}"),
        ));
    }
    Ok(())
}

impl BreakerConfig {
    /// Checks every field; the error names the first invalid one (nested
    /// fields as `window.calls`, `open_wait.base`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.consecutive_failures == Some(0) {
            return Err(ConfigError::new(
                "consecutive_failures",
                "must be at least 1, or unset to disable the rule",
            ));
        }
        check_rate("failure_rate_threshold", self.failure_rate_threshold)?;
        if self.slow_call_duration.is_some_and(|d| d.is_zero()) {
            return Err(ConfigError::new(
                "slow_call_duration",
                "must be greater than zero (every call would be slow), or unset",
            ));
        }
        check_rate("slow_call_rate_threshold", self.slow_call_rate_threshold)?;
        self.window.validate().map_err(|e| e.nested("window"))?;
        if self.minimum_calls == 0 {
            return Err(ConfigError::new("minimum_calls", "must be at least 1"));
        }
        if let WindowConfig::Count { calls } = self.window
            && self.minimum_calls > calls
        {
            return Err(ConfigError::new(
                "minimum_calls",
                format!(
                    "must not exceed the window size `window.calls` ({calls}), got {}; \
                     the rate rules could never apply",
                    self.minimum_calls
                ),
            ));
        }
        self.open_wait
            .validate()
            .map_err(|e| e.nested("open_wait"))?;
        if self.open_wait.max_attempts.is_some() {
            return Err(ConfigError::new(
                "open_wait.max_attempts",
                "must be unset: a breaker may trip any number of times",
            ));
        }
        if self.half_open_probes == 0 {
            return Err(ConfigError::new(
                "half_open_probes",
                "must be at least 1 (the breaker could never close again)",
            ));
        }
        Ok(())
    }
}
