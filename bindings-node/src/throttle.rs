//! `AdaptiveThrottle`: client-side adaptive throttling (Google SRE book,
//! "Handling Overload") from resilience-core's `throttle` module.

use std::sync::Arc;

use napi::Env;
use napi::bindgen_prelude::Object;
use napi_derive::napi;
use resilience_core::clock::SharedClock;
use resilience_core::throttle::{AdaptiveThrottle, AdaptiveThrottleConfig};

use crate::backoff::seed;
use crate::bind;
use crate::error::{BwResult, duration_ms, from_config_ms, guard, whole_u32};

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
    config
        .validate()
        .map_err(|e| from_config_ms(&e, &["window"]))?;
    Ok(config)
}

/// Creates a throttle. Returns its bound methods: `tryAcquire()` (-1 to
/// send the request, or the rejection probability (> 0) when it is
/// throttled locally), `recordAccepted()`, `recordRejected()`, `stats()`.
#[napi(js_name = "throttleCreate")]
pub fn create(env: &Env, options: ThrottleOptions) -> napi::Result<Object<'_>> {
    let throttle = guard(env, || {
        let config = throttle_config(&options)?;
        match options.seed {
            Some(s) => AdaptiveThrottle::with_seed(config, SharedClock::system(), seed(s)?),
            None => AdaptiveThrottle::new(config),
        }
        .map(Arc::new)
        .map_err(|e| from_config_ms(&e, &["window"]))
    })?;
    let mut object = Object::new(env)?;
    let t = Arc::clone(&throttle);
    bind::method(env, &mut object, "tryAcquire", move |_| {
        Ok(t.try_acquire()
            .map_or_else(|throttled| throttled.probability, |()| -1.0))
    })?;
    let t = Arc::clone(&throttle);
    bind::method(env, &mut object, "recordAccepted", move |_| {
        t.record_accepted();
        Ok(())
    })?;
    let t = Arc::clone(&throttle);
    bind::method(env, &mut object, "recordRejected", move |_| {
        t.record_rejected_by_backend();
        Ok(())
    })?;
    bind::method(env, &mut object, "stats", move |_| {
        let stats = throttle.stats();
        Ok(ThrottleStats {
            requests: stats.requests as f64,
            accepts: stats.accepts as f64,
            reject_probability: throttle.reject_probability(),
        })
    })?;
    Ok(object)
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
