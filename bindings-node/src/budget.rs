//! `RetryBudget`: a ratio retry budget shared by every caller of one
//! dependency (resilience-core's `budget` module).

use std::cell::RefCell;
use std::sync::Arc;

use napi::Env;
use napi::bindgen_prelude::Object;
use napi_derive::napi;
use resilience_core::budget::{RetryBudget, RetryBudgetConfig};

use crate::bind;
use crate::error::{BwResult, duration_ms, from_config_ms, guard, whole_u32};
use crate::handles::{self, Handle, Slots};

thread_local! {
    static BUDGETS: RefCell<Slots<Arc<RetryBudget>>> = const { RefCell::new(Slots::new()) };
}

const WHAT: &str = "RetryBudget";

/// Options of `new RetryBudget(...)`, already type-checked by the JS wrapper.
#[napi(object)]
#[derive(Debug, Clone, Default)]
pub struct RetryBudgetOptions {
    /// How long a deposit counts, in ms (1000..=60000).
    pub ttl_ms: Option<f64>,
    /// Retries per second allowed without deposits (per budget instance).
    pub min_retries_per_sec: Option<f64>,
    /// Share of requests that may be retried (0..=1000).
    pub retry_ratio: Option<f64>,
}

/// Counters and balance of a budget.
#[napi(object)]
#[derive(Debug, Clone)]
pub struct RetryBudgetStats {
    /// Original requests deposited.
    pub deposits: f64,
    /// Retries allowed.
    pub granted: f64,
    /// Retries refused.
    pub denied: f64,
    /// Tokens available now (deposits and reserve minus withdrawals).
    pub balance: f64,
    /// Whole retries available now.
    pub available: f64,
}

/// Builds a validated config from JS options (defaults for unset ones).
pub fn budget_config(options: &RetryBudgetOptions) -> BwResult<RetryBudgetConfig> {
    let defaults = RetryBudgetConfig::default();
    let config = RetryBudgetConfig {
        ttl: options
            .ttl_ms
            .map_or(Ok(defaults.ttl), |ms| duration_ms("ttlMs", ms))?,
        min_retries_per_sec: options
            .min_retries_per_sec
            .map_or(Ok(defaults.min_retries_per_sec), |n| {
                whole_u32("minRetriesPerSec", n)
            })?,
        retry_ratio: options.retry_ratio.unwrap_or(defaults.retry_ratio),
    };
    config
        .validate()
        .map_err(|e| from_config_ms(&e, &["ttl"]))?;
    Ok(config)
}

/// The budget behind `key`, to share with a retry policy.
pub fn shared(key: f64) -> BwResult<Arc<RetryBudget>> {
    handles::with_entry(&BUDGETS, key, WHAT, |budget| Ok(Arc::clone(budget)))
}

fn release(key: f64) {
    drop(handles::remove(&BUDGETS, key));
}

/// Creates a budget. Returns `{ key, handle, deposit(), tryWithdraw(),
/// stats() }`: the key lets a retry policy share the budget, the handle
/// keeps its table entry alive, the methods are bound closures.
#[napi(js_name = "budgetCreate")]
pub fn create(env: &Env, options: RetryBudgetOptions) -> napi::Result<Object<'_>> {
    let budget = guard(env, || {
        Ok(Arc::new(
            RetryBudget::new(budget_config(&options)?).map_err(|e| from_config_ms(&e, &["ttl"]))?,
        ))
    })?;
    object_for(env, budget)
}

/// Puts `budget` (shared with its owner, e.g. a keyed budget) in the table
/// and returns its key, for [`adopt`].
pub fn share(budget: Arc<RetryBudget>) -> BwResult<f64> {
    handles::insert(&BUDGETS, WHAT, budget)
}

/// The object `budgetCreate` returns, for a budget put in the table by
/// [`share`] (a keyed budget's per-key budget): the same budget, so a
/// retry policy can spend from it.
#[napi(js_name = "budgetAdopt")]
pub fn adopt(env: &Env, key: f64) -> napi::Result<Object<'_>> {
    let budget = guard(env, || {
        let budget = shared(key)?;
        release(key);
        Ok(budget)
    })?;
    object_for(env, budget)
}

fn object_for(env: &Env, budget: Arc<RetryBudget>) -> napi::Result<Object<'_>> {
    let key = guard(env, || share(Arc::clone(&budget)))?;
    let mut object = Object::new(env)?;
    object.set("key", key)?;
    object.set("handle", Handle::new(key, release))?;
    let b = Arc::clone(&budget);
    bind::method(env, &mut object, "deposit", move |_| {
        b.deposit();
        Ok(())
    })?;
    let b = Arc::clone(&budget);
    bind::method(env, &mut object, "tryWithdraw", move |_| {
        Ok(b.try_withdraw())
    })?;
    bind::method(env, &mut object, "stats", move |_| Ok(stats_of(&budget)))?;
    Ok(object)
}

/// The JS stats of one budget.
pub fn stats_of(budget: &RetryBudget) -> RetryBudgetStats {
    let stats = budget.stats();
    RetryBudgetStats {
        deposits: stats.deposits as f64,
        granted: stats.granted as f64,
        denied: stats.denied as f64,
        balance: budget.balance(),
        available: budget.available() as f64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::INVALID_ARG;

    #[test]
    fn defaults_are_finagles() {
        let config = budget_config(&RetryBudgetOptions::default()).unwrap();
        assert_eq!(config, RetryBudgetConfig::default());
    }

    #[test]
    fn invalid_options_name_the_js_option() {
        let cases = [
            (
                RetryBudgetOptions {
                    ttl_ms: Some(500.0),
                    ..Default::default()
                },
                "ttlMs",
            ),
            (
                RetryBudgetOptions {
                    ttl_ms: Some(f64::NAN),
                    ..Default::default()
                },
                "ttlMs",
            ),
            (
                RetryBudgetOptions {
                    retry_ratio: Some(-0.1),
                    ..Default::default()
                },
                "retryRatio",
            ),
            (
                RetryBudgetOptions {
                    retry_ratio: Some(f64::INFINITY),
                    ..Default::default()
                },
                "retryRatio",
            ),
            (
                RetryBudgetOptions {
                    min_retries_per_sec: Some(1.5),
                    ..Default::default()
                },
                "minRetriesPerSec",
            ),
        ];
        for (options, name) in cases {
            let err = budget_config(&options).unwrap_err();
            assert_eq!(err.code(), INVALID_ARG);
            assert!(err.message().contains(name), "{}", err.message());
        }
    }

    #[test]
    fn shared_budgets_outlive_their_handle() {
        let budget = Arc::new(RetryBudget::new(RetryBudgetConfig::default()).unwrap());
        let key = handles::insert(&BUDGETS, WHAT, budget).unwrap();
        let shared = shared(key).unwrap();
        release(key);
        assert!(super::shared(key).is_err());
        shared.deposit();
        assert_eq!(shared.stats().deposits, 1);
    }
}
