//! `Backoff`: exponential backoff with jitter.

use napi::Env;
use napi_derive::napi;
use resilience_core::backoff::{Backoff, BackoffConfig, Jitter};

use crate::error::{BwError, BwResult, duration_ms, from_config, guard, whole_u32};

/// Options of `new Backoff(...)`, already type-checked by the JS wrapper.
#[napi(object)]
#[derive(Debug, Clone)]
pub struct BackoffOptions {
    /// Delay before the first retry, in milliseconds.
    pub base_ms: Option<f64>,
    /// Cap on any single delay, in milliseconds.
    pub max_ms: Option<f64>,
    /// Growth per retry (>= 1).
    pub factor: Option<f64>,
    /// `'none' | 'full' | 'equal' | 'decorrelated'`.
    pub jitter: Option<String>,
    /// Total attempts allowed (first included); unset for no limit.
    pub max_attempts: Option<f64>,
    /// Seed for reproducible jitter.
    pub seed: Option<f64>,
}

/// Parses a jitter name.
pub fn parse_jitter(name: &str) -> BwResult<Jitter> {
    match name {
        "none" => Ok(Jitter::None),
        "full" => Ok(Jitter::Full),
        "equal" => Ok(Jitter::Equal),
        "decorrelated" => Ok(Jitter::Decorrelated),
        other => Err(BwError::range(format!(
            "`jitter` must be one of 'none', 'full', 'equal', 'decorrelated', got '{other}'"
        ))),
    }
}

/// Builds a validated `BackoffConfig` from JS options (defaults for unset ones).
pub fn backoff_config(options: &BackoffOptions) -> BwResult<BackoffConfig> {
    let defaults = BackoffConfig::default();
    let config = BackoffConfig {
        base: options
            .base_ms
            .map_or(Ok(defaults.base), |ms| duration_ms("baseMs", ms))?,
        max: options
            .max_ms
            .map_or(Ok(defaults.max), |ms| duration_ms("maxMs", ms))?,
        factor: options.factor.unwrap_or(defaults.factor),
        jitter: options
            .jitter
            .as_deref()
            .map_or(Ok(defaults.jitter), parse_jitter)?,
        max_attempts: options
            .max_attempts
            .map(|n| whole_u32("maxAttempts", n))
            .transpose()?,
    };
    config.validate().map_err(|e| match e.field() {
        "base" => BwError::range(format!("invalid option `baseMs`: {}", e.reason())),
        "max" => BwError::range(format!("invalid option `maxMs`: {}", e.reason())),
        _ => from_config(&e),
    })?;
    Ok(config)
}

/// A seed from a JS number: a whole number in the safe-integer range.
pub fn seed(value: f64) -> BwResult<u64> {
    if value.fract() != 0.0 || !(0.0..=9_007_199_254_740_991.0).contains(&value) {
        return Err(BwError::range(format!(
            "`seed` must be a whole number in 0..=Number.MAX_SAFE_INTEGER, got {value}"
        )));
    }
    Ok(value as u64)
}

/// The delays of one retry sequence.
#[napi(js_name = "NativeBackoff")]
#[derive(Debug)]
pub struct NativeBackoff {
    inner: Backoff,
}

#[napi]
impl NativeBackoff {
    /// Validates the options and creates the sequence.
    #[napi(constructor)]
    pub fn new(env: Env, options: BackoffOptions) -> napi::Result<Self> {
        guard(&env, || {
            let config = backoff_config(&options)?;
            let inner = match options.seed {
                Some(s) => Backoff::with_seed(config, seed(s)?),
                None => Backoff::new(config),
            }
            .map_err(|e| from_config(&e))?;
            Ok(NativeBackoff { inner })
        })
    }

    /// The next delay in milliseconds, or -1 once the attempts are used up.
    #[napi]
    pub fn next_delay_ms(&mut self, env: Env) -> napi::Result<f64> {
        guard(&env, || {
            Ok(self
                .inner
                .next_delay()
                .map_or(-1.0, |d| d.as_secs_f64() * 1000.0))
        })
    }

    /// Starts the sequence again.
    #[napi]
    pub fn reset(&mut self, env: Env) -> napi::Result<()> {
        guard(&env, || {
            self.inner.reset();
            Ok(())
        })
    }

    /// Delays handed out since creation or the last reset.
    #[napi(getter)]
    pub fn retries(&self) -> u32 {
        self.inner.retries()
    }
}
