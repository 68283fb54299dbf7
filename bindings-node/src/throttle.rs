//! `AdaptiveThrottle`: client-side adaptive throttling (Google SRE book,
//! "Handling Overload") from resilience-core's `throttle` module.

use std::cell::RefCell;

use napi::Env;
use napi_derive::napi;
use resilience_core::clock::SharedClock;
use resilience_core::throttle::{AdaptiveThrottle, AdaptiveThrottleConfig};

use crate::backoff::seed;
use crate::error::{BwResult, duration_ms, from_config_ms, guard, whole_u32};
use crate::handles::{self, Handle, Slots};

thread_local! {
    static THROTTLES: RefCell<Slots<AdaptiveThrottle>> = const { RefCell::new(Slots::new()) };
}

const WHAT: &str = "AdaptiveThrottle";

/// Options of `new AdaptiveThrottle(...)`, type-checked by the JS wrapper.
#[napi(object)]
#[derive(Debug, Clone, Default)]
pub struct ThrottleOptions {
    /// Trailing window in ms (default 120000).
    pub window_ms: Option<f64>,
    /// Buckets the window is divided into (default 120).
    pub buckets: Option<f64>,
    /// The SRE book's K (>= 1, default 2).
    pub k: Option<f64>,
    /// Seed for reproducible random draws.
    pub seed: Option<f64>,
}

/// Requests and accepts over the current window.
#[napi(object)]
#[derive(Debug, Clone)]
pub struct ThrottleStats {
    /// Requests attempted (sent or rejected locally).
    pub requests: f64,
    /// Requests the backend accepted.
    pub accepts: f64,
    /// The probability the next request is rejected locally.
    pub reject_probability: f64,
}

/// Builds a validated config from JS options (defaults for unset ones).
pub fn throttle_config(options: &ThrottleOptions) -> BwResult<AdaptiveThrottleConfig> {
    let d = AdaptiveThrottleConfig::default();
    let config = AdaptiveThrottleConfig {
        window: options
            .window_ms
            .map_or(Ok(d.window), |ms| duration_ms("windowMs", ms))?,
        buckets: options
            .buckets
            .map_or(Ok(d.buckets), |n| whole_u32("buckets", n))?,
        k: options.k.unwrap_or(d.k),
    };
    config.validate().map_err(|e| from_config_ms(&e, &["window"]))?;
    Ok(config)
}

fn release(key: f64) {
    drop(handles::remove(&THROTTLES, key));
}

fn with_throttle<R>(key: f64, body: impl FnOnce(&AdaptiveThrottle) -> BwResult<R>) -> BwResult<R> {
    handles::with_entry(&THROTTLES, key, WHAT, |throttle| body(throttle))
}

/// Creates a throttle; the JS wrapper keeps the returned handle.
#[napi(js_name = "throttleCreate")]
pub fn create(env: Env, options: ThrottleOptions) -> napi::Result<Handle> {
    guard(&env, || {
        let config = throttle_config(&options)?;
        let throttle = match options.seed {
            Some(s) => AdaptiveThrottle::with_seed(config, SharedClock::system(), seed(s)?),
            None => AdaptiveThrottle::new(config),
        }
        .map_err(|e| from_config_ms(&e, &["window"]))?;
        let key = handles::insert(&THROTTLES, WHAT, throttle)?;
        Ok(Handle::new(key, release))
    })
}

/// Decides whether to send one request (and counts it). Returns -1 to send
/// it, or the rejection probability (> 0) when it is throttled locally.
#[napi(js_name = "throttleTryAcquire")]
pub fn try_acquire(env: Env, key: f64) -> napi::Result<f64> {
    guard(&env, || {
        with_throttle(key, |throttle| {
            Ok(throttle
                .try_acquire()
                .map_or_else(|throttled| throttled.probability, |()| -1.0))
        })
    })
}

/// The backend accepted a request.
#[napi(js_name = "throttleRecordAccepted")]
pub fn record_accepted(env: Env, key: f64) -> napi::Result<()> {
    guard(&env, || {
        with_throttle(key, |throttle| {
            throttle.record_accepted();
            Ok(())
        })
    })
}

/// The backend rejected a request (overloaded, throttled, timed out).
#[napi(js_name = "throttleRecordRejected")]
pub fn record_rejected(env: Env, key: f64) -> napi::Result<()> {
    guard(&env, || {
        with_throttle(key, |throttle| {
            throttle.record_rejected_by_backend();
            Ok(())
        })
    })
}

/// Requests, accepts and the current rejection probability.
#[napi(js_name = "throttleStats")]
pub fn stats(env: Env, key: f64) -> napi::Result<ThrottleStats> {
    guard(&env, || {
        with_throttle(key, |throttle| {
            let stats = throttle.stats();
            Ok(ThrottleStats {
                requests: stats.requests as f64,
                accepts: stats.accepts as f64,
                reject_probability: throttle.reject_probability(),
            })
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::INVALID_ARG;

    #[test]
    fn defaults_are_the_sre_books() {
        assert_eq!(
            throttle_config(&ThrottleOptions::default()).unwrap(),
            AdaptiveThrottleConfig::default()
        );
    }

    #[test]
    fn invalid_options_name_the_js_option() {
        let cases = [
            (
                ThrottleOptions {
                    window_ms: Some(0.0),
                    ..Default::default()
                },
                "windowMs",
            ),
            (
                ThrottleOptions {
                    buckets: Some(0.0),
                    ..Default::default()
                },
                "buckets",
            ),
            (
                ThrottleOptions {
                    k: Some(0.5),
                    ..Default::default()
                },
                "`k`",
            ),
            (
                ThrottleOptions {
                    k: Some(f64::NAN),
                    ..Default::default()
                },
                "`k`",
            ),
        ];
        for (options, name) in cases {
            let err = throttle_config(&options).unwrap_err();
            assert_eq!(err.code(), INVALID_ARG);
            assert!(err.message().contains(name), "{name}: {}", err.message());
        }
    }
}
