//! `RestartBackoff`: crash-loop backoff for a supervised task (Kubernetes'
//! `CrashLoopBackOff`), from resilience-core's `restart` module.

use std::cell::RefCell;
use std::rc::Rc;

use napi::Env;
use napi::bindgen_prelude::Object;
use napi_derive::napi;
use resilience_core::clock::SharedClock;
use resilience_core::restart::{RestartBackoff, RestartBackoffConfig};

use crate::backoff::{parse_jitter, seed};
use crate::bind;
use crate::error::{BwError, BwResult, INTERNAL, duration_ms, from_config_ms, guard, to_ms};

const MS_FIELDS: &[&str] = &["initial_delay", "max_delay", "reset_after"];

/// Options of `new RestartBackoff(...)`, type-checked by the JS wrapper.
#[napi(object)]
#[derive(Debug, Clone, Default)]
pub struct RestartOptions {
    /// Delay before the first restart, in ms (default 10000).
    pub initial_delay_ms: Option<f64>,
    /// Cap on any delay, in ms (default 300000).
    pub max_delay_ms: Option<f64>,
    /// Growth per consecutive crash (>= 1, default 2).
    pub factor: Option<f64>,
    /// `'none' | 'full' | 'equal' | 'decorrelated'` (default 'none').
    pub jitter: Option<String>,
    /// A run at least this long resets the series, in ms (default 600000).
    pub reset_after_ms: Option<f64>,
    /// Seed for reproducible jitter.
    pub seed: Option<f64>,
}

/// State of a restart backoff.
#[napi(object)]
#[derive(Debug, Clone)]
pub struct RestartStats {
    /// Consecutive crashes in the current series.
    pub crashes: f64,
    /// How long the task has been running, in ms (`null` when it is not).
    pub uptime_ms: Option<f64>,
}

/// Builds a validated config from JS options (defaults for unset ones).
pub fn restart_config(o: &RestartOptions) -> BwResult<RestartBackoffConfig> {
    let d = RestartBackoffConfig::default();
    let config = RestartBackoffConfig {
        initial_delay: o
            .initial_delay_ms
            .map_or(Ok(d.initial_delay), |ms| duration_ms("initialDelayMs", ms))?,
        max_delay: o
            .max_delay_ms
            .map_or(Ok(d.max_delay), |ms| duration_ms("maxDelayMs", ms))?,
        factor: o.factor.unwrap_or(d.factor),
        jitter: o.jitter.as_deref().map_or(Ok(d.jitter), parse_jitter)?,
        reset_after: o
            .reset_after_ms
            .map_or(Ok(d.reset_after), |ms| duration_ms("resetAfterMs", ms))?,
    };
    config
        .validate()
        .map_err(|e| from_config_ms(&e, MS_FIELDS))?;
    Ok(config)
}

fn borrow(cell: &RefCell<RestartBackoff>) -> BwResult<std::cell::RefMut<'_, RestartBackoff>> {
    cell.try_borrow_mut()
        .map_err(|_| BwError::coded(INTERNAL, "restart backoff re-entered during a call"))
}

/// Creates a restart backoff. Returns its bound methods: `onStarted()`,
/// `onCrash()` (the delay in ms before the next start), `reset()` and
/// `stats()`.
#[napi(js_name = "restartCreate")]
pub fn create(env: &Env, options: RestartOptions) -> napi::Result<Object<'_>> {
    let backoff = guard(env, || {
        let config = restart_config(&options)?;
        match options.seed {
            Some(s) => RestartBackoff::with_seed(config, SharedClock::system(), seed(s)?),
            None => RestartBackoff::new(config),
        }
        .map(|b| Rc::new(RefCell::new(b)))
        .map_err(|e| from_config_ms(&e, MS_FIELDS))
    })?;
    let mut object = Object::new(env)?;
    let b = Rc::clone(&backoff);
    bind::method(env, &mut object, "onStarted", move |_| {
        borrow(&b)?.on_started();
        Ok(())
    })?;
    let b = Rc::clone(&backoff);
    bind::method(env, &mut object, "onCrash", move |_| {
        Ok(to_ms(borrow(&b)?.on_crash()))
    })?;
    let b = Rc::clone(&backoff);
    bind::method(env, &mut object, "reset", move |_| {
        borrow(&b)?.reset();
        Ok(())
    })?;
    bind::method(env, &mut object, "stats", move |_| {
        let b = borrow(&backoff)?;
        Ok(RestartStats {
            crashes: f64::from(b.crashes()),
            uptime_ms: b.uptime().map(to_ms),
        })
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
            restart_config(&RestartOptions::default()).unwrap(),
            RestartBackoffConfig::default()
        );
    }

    #[test]
    fn invalid_options_name_the_js_option() {
        let cases = [
            (
                RestartOptions {
                    initial_delay_ms: Some(0.0),
                    ..Default::default()
                },
                "initialDelayMs",
            ),
            (
                RestartOptions {
                    max_delay_ms: Some(1.0),
                    ..Default::default()
                },
                "maxDelayMs",
            ),
            (
                RestartOptions {
                    reset_after_ms: Some(0.0),
                    ..Default::default()
                },
                "resetAfterMs",
            ),
            (
                RestartOptions {
                    factor: Some(0.5),
                    ..Default::default()
                },
                "factor",
            ),
            (
                RestartOptions {
                    jitter: Some("some".into()),
                    ..Default::default()
                },
                "jitter",
            ),
        ];
        for (options, name) in cases {
            let err = restart_config(&options).unwrap_err();
            assert_eq!(err.code(), INVALID_ARG);
            assert!(err.message().contains(name), "{name}: {}", err.message());
        }
    }
}
