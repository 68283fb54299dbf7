//! The one source of truth for what JS sees as constants: error codes, enum spellings and range
//! limits. `lib/*.js` reads them through `constants()` at load time, and a test checks
//! `index.d.ts` against them, so no table is copied by hand across the boundary.

use std::collections::HashMap;

use napi_derive::napi;

use crate::codes::{BREAKER_OUTCOMES, BREAKER_STATES, CODES, MAX_U31};

/// Range limits of the options, from the Rust definitions.
#[napi(object)]
#[derive(Debug, Clone)]
pub struct Limits {
    /// `RetryBudget` `retryRatio` upper bound.
    pub max_retry_ratio: f64,
    /// `RetryBudget` `ttlMs` bounds.
    pub min_budget_ttl_ms: f64,
    /// `RetryBudget` `ttlMs` upper bound.
    pub max_budget_ttl_ms: f64,
    /// `AdaptiveThrottle` `buckets` upper bound.
    pub max_throttle_buckets: u32,
    /// `CircuitBreaker` time `window.buckets` upper bound.
    pub max_window_buckets: u32,
    /// `CircuitBreaker` count `window.calls` upper bound.
    pub max_window_calls: u32,
    /// Counts such as `maxConcurrent`: `2^31 - 1`.
    pub max_u31: u32,
    /// A drain amount given as a count: `2^32 - 1`.
    pub max_amount_count: u32,
}

/// Everything `constants()` returns.
#[napi(object)]
#[derive(Debug, Clone)]
pub struct Constants {
    /// `codes.KEY` → `ERR_BREAKWATER_*`.
    pub codes: HashMap<String, String>,
    /// `'closed' | 'open' | 'half-open'`, indexed by the native state number.
    pub breaker_states: Vec<String>,
    /// `'success' | 'failure' | 'ignored' | 'cancelled'`, indexed by the outcome number.
    pub breaker_outcomes: Vec<String>,
    /// `'success' | 'dropped' | 'ignored'`: `AdaptiveLimit` release outcomes, indexed by number.
    pub limit_outcomes: Vec<String>,
    /// Range limits.
    pub limits: Limits,
}

/// The constants JS needs (read once when the package loads).
#[napi]
pub fn constants() -> Constants {
    Constants {
        codes: CODES
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        breaker_states: BREAKER_STATES
            .iter()
            .map(|s| s.as_str().to_owned())
            .collect(),
        breaker_outcomes: BREAKER_OUTCOMES.iter().map(|s| (*s).to_owned()).collect(),
        limit_outcomes: crate::adaptive::OUTCOMES
            .iter()
            .map(|s| (*s).to_owned())
            .collect(),
        limits: Limits {
            max_retry_ratio: resilience_core::budget::MAX_RETRY_RATIO,
            min_budget_ttl_ms: millis(resilience_core::budget::MIN_TTL),
            max_budget_ttl_ms: millis(resilience_core::budget::MAX_TTL),
            max_throttle_buckets: resilience_core::throttle::MAX_BUCKETS,
            max_window_buckets: resilience_core::breaker::MAX_WINDOW_BUCKETS,
            max_window_calls: resilience_core::breaker::MAX_WINDOW_CALLS,
            max_u31: MAX_U31,
            max_amount_count: u32::MAX,
        },
    }
}

fn millis(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Checks a drain amount (`"5"`, `"10%"`) with fleet-drain's own parser; returns it normalized
/// (as fleet-drain prints it) or throws a `RangeError` with `ERR_BREAKWATER_INVALID_ARG`.
#[napi(js_name = "parseAmount")]
pub fn parse_amount(env: napi::Env, name: String, value: String) -> napi::Result<String> {
    crate::error::guard(&env, || {
        value
            .parse::<fleet_drain::plan::Amount>()
            .map(|amount| amount.to_string())
            .map_err(|reason| crate::error::BwError::range(format!("`{name}`: {reason}")))
    })
}
