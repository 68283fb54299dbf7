//! `RateLimiter` and `KeyedRateLimiter`: resilience-core's lock-free GCRA
//! rate limiter, alone or one per key (`rate` module).
//!
//! `check()` is one synchronous crossing that returns `-1` when the request
//! conforms or the wait in ms until it would; `untilReady` loops in JS
//! (a timer per wait), so the event loop never blocks.

use std::cell::Cell;
use std::rc::Rc;

use napi::Env;
use napi::bindgen_prelude::Object;
use napi_derive::napi;
use resilience_core::rate::{
    KeyedRateLimiter, KeyedRateLimiterConfig, RateLimiter, RateLimiterConfig,
};

use crate::bind;
use crate::error::{BwResult, duration_ms, from_config_ms, guard, to_ms, whole_u32, whole_usize};

const MS_FIELDS: &[&str] = &["per", "limit.per"];

/// Options of `new RateLimiter(...)` / `new KeyedRateLimiter(...)`,
/// type-checked by the JS wrapper.
#[napi(object)]
#[derive(Debug, Clone, Default)]
pub struct RateOptions {
    /// Requests allowed per `perMs` in the long run (default 10).
    pub rate: Option<f64>,
    /// The period `rate` is counted over, in ms (default 1000).
    pub per_ms: Option<f64>,
    /// Requests allowed back to back after an idle period (default 10).
    pub burst: Option<f64>,
    /// `KeyedRateLimiter` only: most keys tracked at once (default 10000).
    pub max_keys: Option<f64>,
}

/// Decisions of a rate limiter since it was created.
#[napi(object)]
#[derive(Debug, Clone)]
pub struct RateStats {
    /// Requests that conformed.
    pub allowed: f64,
    /// Requests refused (rate limited).
    pub limited: f64,
    /// The time between two requests at the steady rate, in ms.
    pub emission_interval_ms: f64,
    /// `KeyedRateLimiter`: keys tracked now (0 for a `RateLimiter`).
    pub keys: f64,
}

/// Builds a validated config from JS options (defaults for unset ones).
pub fn rate_config(options: &RateOptions) -> BwResult<RateLimiterConfig> {
    let d = RateLimiterConfig::default();
    let config = RateLimiterConfig {
        rate: options.rate.map_or(Ok(d.rate), |n| whole_u32("rate", n))?,
        per: options
            .per_ms
            .map_or(Ok(d.per), |ms| duration_ms("perMs", ms))?,
        burst: options
            .burst
            .map_or(Ok(d.burst), |n| whole_u32("burst", n))?,
    };
    config
        .validate()
        .map_err(|e| from_config_ms(&e, MS_FIELDS))?;
    Ok(config)
}

/// Builds a validated keyed config from JS options.
pub fn keyed_config(options: &RateOptions) -> BwResult<KeyedRateLimiterConfig> {
    let d = KeyedRateLimiterConfig::default();
    let config = KeyedRateLimiterConfig {
        limit: rate_config(options)?,
        max_keys: options
            .max_keys
            .map_or(Ok(d.max_keys), |n| whole_usize("maxKeys", n))?,
    };
    config.validate().map_err(|e| {
        // `limit.rate` is spelled `rate` in JS: the options are flat.
        let flat = resilience_core::ConfigError::new(
            e.field().trim_start_matches("limit.").to_owned(),
            e.reason(),
        );
        from_config_ms(&flat, MS_FIELDS)
    })?;
    Ok(config)
}

/// Counters kept by the binding (the core limiter counts nothing).
#[derive(Debug, Default)]
struct Counts {
    allowed: Cell<u64>,
    limited: Cell<u64>,
}

impl Counts {
    /// Counts a decision; returns `-1` or the wait in ms.
    fn decide(&self, result: Result<(), resilience_core::rate::RateLimited>) -> f64 {
        match result {
            Ok(()) => {
                self.allowed.set(self.allowed.get().saturating_add(1));
                -1.0
            }
            Err(limited) => {
                self.limited.set(self.limited.get().saturating_add(1));
                to_ms(limited.retry_after)
            }
        }
    }

    fn stats(&self, interval_ms: f64, keys: usize) -> RateStats {
        RateStats {
            allowed: self.allowed.get() as f64,
            limited: self.limited.get() as f64,
            emission_interval_ms: interval_ms,
            keys: keys as f64,
        }
    }
}

fn interval_ms(config: &RateLimiterConfig) -> f64 {
    config.emission_interval().map_or(0.0, to_ms)
}

/// Creates a rate limiter. Returns its bound methods: `check()` (`-1` when
/// the request conforms and is counted, else the wait in ms until one
/// would) and `stats()`.
#[napi(js_name = "rateCreate")]
pub fn create(env: &Env, options: RateOptions) -> napi::Result<Object<'_>> {
    let limiter = guard(env, || {
        RateLimiter::new(rate_config(&options)?)
            .map(Rc::new)
            .map_err(|e| from_config_ms(&e, MS_FIELDS))
    })?;
    let counts = Rc::new(Counts::default());
    let mut object = Object::new(env)?;
    let (l, c) = (Rc::clone(&limiter), Rc::clone(&counts));
    bind::method(env, &mut object, "check", move |_| Ok(c.decide(l.check())))?;
    bind::method(env, &mut object, "stats", move |_| {
        Ok(counts.stats(interval_ms(limiter.config()), 0))
    })?;
    Ok(object)
}

/// Creates a keyed rate limiter. Returns its bound methods: `check(key)`
/// (as `rateCreate`'s, for `key`'s own limit), `evictIdle()` (keys
/// forgotten) and `stats()`.
#[napi(js_name = "keyedRateCreate")]
pub fn keyed_create(env: &Env, options: RateOptions) -> napi::Result<Object<'_>> {
    let limiter = guard(env, || {
        KeyedRateLimiter::<String>::new(keyed_config(&options)?)
            .map(Rc::new)
            .map_err(|e| from_config_ms(&e, MS_FIELDS))
    })?;
    let counts = Rc::new(Counts::default());
    let mut object = Object::new(env)?;
    let (l, c) = (Rc::clone(&limiter), Rc::clone(&counts));
    bind::method(env, &mut object, "check", move |ctx| {
        let key: String = bind::arg(ctx, 0, "key")?;
        Ok(c.decide(l.check(&key)))
    })?;
    let l = Rc::clone(&limiter);
    bind::method(env, &mut object, "evictIdle", move |_| {
        Ok(l.evict_idle() as f64)
    })?;
    bind::method(env, &mut object, "stats", move |_| {
        Ok(counts.stats(interval_ms(&limiter.config().limit), limiter.len()))
    })?;
    Ok(object)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::INVALID_ARG;

    #[test]
    fn defaults_are_the_cores() {
        assert_eq!(
            rate_config(&RateOptions::default()).unwrap(),
            RateLimiterConfig::default()
        );
        assert_eq!(
            keyed_config(&RateOptions::default()).unwrap(),
            KeyedRateLimiterConfig::default()
        );
    }

    #[test]
    fn invalid_options_name_the_js_option() {
        let cases = [
            (
                RateOptions {
                    rate: Some(0.0),
                    ..Default::default()
                },
                "`rate`",
            ),
            (
                RateOptions {
                    per_ms: Some(0.0),
                    ..Default::default()
                },
                "`perMs`",
            ),
            (
                RateOptions {
                    burst: Some(0.0),
                    ..Default::default()
                },
                "`burst`",
            ),
            (
                RateOptions {
                    burst: Some(1.5),
                    ..Default::default()
                },
                "`burst`",
            ),
            (
                RateOptions {
                    max_keys: Some(0.0),
                    ..Default::default()
                },
                "`maxKeys`",
            ),
        ];
        for (options, name) in cases {
            let err = keyed_config(&options).unwrap_err();
            assert_eq!(err.code(), INVALID_ARG);
            assert!(err.message().contains(name), "{name}: {}", err.message());
        }
    }

    #[test]
    fn counts_follow_decisions() {
        let counts = Counts::default();
        assert_eq!(counts.decide(Ok(())), -1.0);
        let wait = counts.decide(Err(resilience_core::rate::RateLimited {
            retry_after: std::time::Duration::from_millis(5),
        }));
        assert!((wait - 5.0).abs() < 1e-9);
        let stats = counts.stats(1.0, 0);
        assert_eq!((stats.allowed, stats.limited), (1.0, 1.0));
    }
}
