//! `KeyedRetryBudget`: one retry budget per key (per downstream), with
//! bounded memory, from resilience-core's `budget` module.

use std::rc::Rc;

use napi::Env;
use napi::bindgen_prelude::Object;
use napi_derive::napi;
use resilience_core::ConfigError;
use resilience_core::budget::{KeyedRetryBudget, KeyedRetryBudgetConfig};

use crate::bind;
use crate::budget::{RetryBudgetOptions, RetryBudgetStats, budget_config, stats_of};
use crate::error::{BwResult, duration_ms, from_config_ms, guard, whole_usize};

const MS_FIELDS: &[&str] = &["ttl", "idle_ttl"];

/// Options of `new KeyedRetryBudget(...)`, type-checked by the JS wrapper:
/// each key's budget options (flat, as `RetryBudget`'s) plus the key bound.
#[napi(object)]
#[derive(Debug, Clone, Default)]
pub struct KeyedBudgetOptions {
    /// How long a deposit counts, in ms.
    pub ttl_ms: Option<f64>,
    /// Retries per second allowed without deposits, per key.
    pub min_retries_per_sec: Option<f64>,
    /// Share of requests that may be retried.
    pub retry_ratio: Option<f64>,
    /// Most keys with their own budget (default 1024).
    pub max_keys: Option<f64>,
    /// A key unused this long may be evicted, in ms (default 60000; >= ttlMs).
    pub idle_ttl_ms: Option<f64>,
}

/// Counters of a keyed budget.
#[napi(object)]
#[derive(Debug, Clone)]
pub struct KeyedBudgetStats {
    /// Keys that currently have their own budget.
    pub keys: f64,
    /// Idle keys evicted to make room for new ones.
    pub evictions: f64,
    /// Requests for a new key that got the shared overflow budget.
    pub overflowed: f64,
}

/// Builds a validated config from JS options (defaults for unset ones).
pub fn keyed_budget_config(o: &KeyedBudgetOptions) -> BwResult<KeyedRetryBudgetConfig> {
    let d = KeyedRetryBudgetConfig::default();
    let config = KeyedRetryBudgetConfig {
        budget: budget_config(&RetryBudgetOptions {
            ttl_ms: o.ttl_ms,
            min_retries_per_sec: o.min_retries_per_sec,
            retry_ratio: o.retry_ratio,
        })?,
        max_keys: o
            .max_keys
            .map_or(Ok(d.max_keys), |n| whole_usize("maxKeys", n))?,
        idle_ttl: o
            .idle_ttl_ms
            .map_or(Ok(d.idle_ttl), |ms| duration_ms("idleTtlMs", ms))?,
    };
    config.validate().map_err(|e| flat_error(&e))?;
    Ok(config)
}

fn flat_error(e: &ConfigError) -> crate::error::BwError {
    let field = e.field().trim_start_matches("budget.");
    from_config_ms(&ConfigError::new(field.to_owned(), e.reason()), MS_FIELDS)
}

/// Creates a keyed budget. Returns its bound methods: `deposit(key)`,
/// `tryWithdraw(key)`, `has(key)`, `budgetStats(key)` (the key's own
/// budget, created if absent), `budgetFor(key)` (a table key for
/// `budgetAdopt`), `evictIdle()` and `stats()`.
#[napi(js_name = "keyedBudgetCreate")]
pub fn create(env: &Env, options: KeyedBudgetOptions) -> napi::Result<Object<'_>> {
    let budgets = guard(env, || {
        KeyedRetryBudget::<String>::new(keyed_budget_config(&options)?)
            .map(Rc::new)
            .map_err(|e| flat_error(&e))
    })?;
    let mut object = Object::new(env)?;
    let b = Rc::clone(&budgets);
    bind::method(env, &mut object, "deposit", move |ctx| {
        let key: String = bind::arg(ctx, 0, "key")?;
        b.deposit(&key);
        Ok(())
    })?;
    let b = Rc::clone(&budgets);
    bind::method(env, &mut object, "tryWithdraw", move |ctx| {
        let key: String = bind::arg(ctx, 0, "key")?;
        Ok(b.try_withdraw(&key))
    })?;
    let b = Rc::clone(&budgets);
    bind::method(env, &mut object, "has", move |ctx| {
        let key: String = bind::arg(ctx, 0, "key")?;
        Ok(b.contains_key(&key))
    })?;
    let b = Rc::clone(&budgets);
    bind::method(env, &mut object, "budgetStats", move |ctx| {
        let key: String = bind::arg(ctx, 0, "key")?;
        Ok::<RetryBudgetStats, _>(stats_of(&b.budget_for(&key)))
    })?;
    let b = Rc::clone(&budgets);
    bind::method(env, &mut object, "budgetFor", move |ctx| {
        let key: String = bind::arg(ctx, 0, "key")?;
        crate::budget::share(b.budget_for(&key))
    })?;
    let b = Rc::clone(&budgets);
    bind::method(env, &mut object, "evictIdle", move |_| {
        Ok(b.evict_idle() as f64)
    })?;
    bind::method(env, &mut object, "stats", move |_| {
        let s = budgets.stats();
        Ok(KeyedBudgetStats {
            keys: s.keys as f64,
            evictions: s.evictions as f64,
            overflowed: s.overflowed as f64,
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
            keyed_budget_config(&KeyedBudgetOptions::default()).unwrap(),
            KeyedRetryBudgetConfig::default()
        );
    }

    #[test]
    fn invalid_options_name_the_js_option() {
        let cases = [
            (
                KeyedBudgetOptions {
                    max_keys: Some(0.0),
                    ..Default::default()
                },
                "maxKeys",
            ),
            (
                KeyedBudgetOptions {
                    idle_ttl_ms: Some(1000.0),
                    ttl_ms: Some(5000.0),
                    ..Default::default()
                },
                "idleTtlMs",
            ),
            (
                KeyedBudgetOptions {
                    retry_ratio: Some(-1.0),
                    ..Default::default()
                },
                "retryRatio",
            ),
            (
                KeyedBudgetOptions {
                    ttl_ms: Some(10.0),
                    ..Default::default()
                },
                "ttlMs",
            ),
        ];
        for (options, name) in cases {
            let err = keyed_budget_config(&options).unwrap_err();
            assert_eq!(err.code(), INVALID_ARG);
            assert!(err.message().contains(name), "{name}: {}", err.message());
        }
    }
}
