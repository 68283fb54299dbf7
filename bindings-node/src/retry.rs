//! The retry decider behind `retry(fn, options)`.
//!
//! The loop runs in JS (awaiting the user's async function there costs
//! nothing extra), and every decision is resilience-core's
//! [`RetryPolicy`] through its step API ([`RetryRun`]): the deposit of the
//! first attempt, the attempts left, the backoff delay, the capped
//! `Retry-After` hint, the deadline check and the budget withdrawal at
//! decision time.
//!
//! A run that succeeds at its first attempt does not cross into Rust at
//! once: the JS side counts it and reports such runs in batches (the bound
//! `ok(count)`: run, attempt, deposit and success for each), before anything
//! reads the policy or its budget and at the latest 10 ms later (see
//! lib/pending.js). A run
//! whose first attempt fails gets a [`NativeRetryRun`] then (its first
//! attempt and deposit recorded at that moment) and asks it for each
//! further decision. So a first attempt deposits when it completes rather
//! than when it starts: the same deposits, shifted by one attempt's latency.

use std::time::Duration;

use napi::Env;
use napi::bindgen_prelude::Object;
use napi_derive::napi;
use resilience_core::retry::{
    ErrorClass, RetryConfig, RetryDecision, RetryErrorKind, RetryPolicy, RetryRun,
};

use crate::backoff::{BackoffOptions, backoff_config, seed};
use crate::bind;
use crate::error::{BwError, BwResult, INTERNAL, duration_ms, from_config_ms, guard, whole_u32};

/// `onFailure` result: every attempt was used.
pub const STOP_ATTEMPTS_EXHAUSTED: f64 = -1.0;
/// `onFailure` result: the budget refused the retry.
pub const STOP_BUDGET_EXHAUSTED: f64 = -2.0;
/// `onFailure` result: the next attempt could not start before the deadline.
pub const STOP_DEADLINE_EXCEEDED: f64 = -3.0;
/// `onFailure` result: the error is not retryable.
pub const STOP_NOT_RETRYABLE: f64 = -4.0;

/// Options of a retry policy, already type-checked by the JS wrapper.
#[napi(object)]
#[derive(Debug, Clone, Default)]
pub struct RetryPolicyOptions {
    /// Total attempts, the first included (>= 1). Default 3.
    pub max_attempts: Option<f64>,
    /// Delays between attempts (`maxAttempts` must stay unset there).
    pub backoff: Option<BackoffOptions>,
    /// Cap on a `retryAfterMs` hint. Default 30000; 0 ignores hints.
    pub max_retry_after_ms: Option<f64>,
    /// Key of a `RetryBudget` to deposit into and withdraw from.
    pub budget: Option<f64>,
    /// Seed for reproducible jitter.
    pub seed: Option<f64>,
}

/// Counters of a retry policy.
#[napi(object)]
#[derive(Debug, Clone)]
pub struct RetryStats {
    /// Calls of `retry`/`execute` (runs).
    pub runs: f64,
    /// Runs that resolved.
    pub successes: f64,
    /// Attempts started.
    pub attempts: f64,
    /// Retries granted.
    pub retries: f64,
    /// Runs stopped by a non-retryable error.
    pub not_retryable: f64,
    /// Runs that used every attempt.
    pub exhausted: f64,
    /// Retries refused by the budget.
    pub budget_denials: f64,
    /// Runs stopped by their deadline.
    pub deadline_stops: f64,
}

/// Builds a validated policy from JS options.
pub fn policy(options: &RetryPolicyOptions) -> BwResult<RetryPolicy> {
    let defaults = RetryConfig::default();
    let backoff = match &options.backoff {
        Some(backoff) => {
            backoff_config(backoff).map_err(|e| BwError::range(prefix_backoff(e.message())))?
        }
        None => defaults.backoff.clone(),
    };
    let config = RetryConfig {
        max_attempts: options
            .max_attempts
            .map_or(Ok(defaults.max_attempts), |n| whole_u32("maxAttempts", n))?,
        backoff,
        max_retry_after: options
            .max_retry_after_ms
            .map_or(Ok(defaults.max_retry_after), |ms| {
                duration_ms("maxRetryAfterMs", ms)
            })?,
        per_attempt_timeout: None,
        overall_timeout: None,
    };
    let mut policy = RetryPolicy::new(config)
        .map_err(|e| from_config_ms(&e, &["backoff.base", "backoff.max", "max_retry_after"]))?;
    if let Some(key) = options.budget {
        policy = policy.with_budget(crate::budget::shared(key)?);
    }
    if let Some(value) = options.seed {
        policy = policy.with_seed(seed(value)?);
    }
    Ok(policy)
}

/// `invalid option `maxMs`` → `invalid option `backoff.maxMs``.
fn prefix_backoff(message: &str) -> String {
    if message.contains("`backoff.") {
        return message.to_owned();
    }
    message.replacen('`', "`backoff.", 1)
}

/// `count` runs whose first attempt succeeded: each counts the run, the
/// attempt and the success, and deposits into the budget, in one batch
/// ([`RetryPolicy::record_first_attempt_successes`]: one budget update and
/// one add per counter, however many runs).
fn ok_runs(policy: &RetryPolicy, count: u32) {
    policy.record_first_attempt_successes(u64::from(count));
}

/// Creates a retry policy. Returns its bound methods:
/// - `ok(count)`: the hot path, `count` runs whose first attempt succeeded
///   (each counts the run, the attempt and the success, and deposits into
///   the budget); the JS side reports them in batches (lib/pending.js);
/// - `run()`: a run whose first attempt did not succeed (counts the run and
///   the first attempt, depositing into the budget) as a [`NativeRetryRun`]
///   to drive;
/// - `expired()`: a run whose deadline passed before its first attempt;
/// - `stats()`: the policy's counters.
#[napi(js_name = "retryPolicyCreate")]
pub fn create(env: &Env, options: RetryPolicyOptions) -> napi::Result<Object<'_>> {
    let policy = guard(env, || policy(&options))?;
    let mut object = Object::new(env)?;
    let p = policy.clone();
    bind::method(env, &mut object, "ok", move |ctx| {
        let count = whole_u32("count", bind::arg::<f64>(ctx, 0, "count")?)?;
        ok_runs(&p, count);
        Ok(())
    })?;
    let p = policy.clone();
    bind::method(env, &mut object, "run", move |_| {
        let mut run = p.start_run();
        run.begin_attempt();
        Ok(NativeRetryRun { run: Some(run) })
    })?;
    let p = policy.clone();
    bind::method(env, &mut object, "expired", move |_| {
        p.start_run().stop_at_deadline();
        Ok(())
    })?;
    bind::method(env, &mut object, "stats", move |_| Ok(stats_of(&policy)))?;
    Ok(object)
}

fn stats_of(policy: &RetryPolicy) -> RetryStats {
    let s = policy.stats();
    RetryStats {
        runs: s.runs as f64,
        successes: s.successes as f64,
        attempts: s.attempts as f64,
        retries: s.retries as f64,
        not_retryable: s.not_retryable as f64,
        exhausted: s.exhausted as f64,
        budget_denials: s.budget_denials as f64,
        deadline_stops: s.deadline_stops as f64,
    }
}

/// One run of a policy after its first attempt failed.
#[napi]
#[derive(Debug)]
pub struct NativeRetryRun {
    run: Option<RetryRun>,
}

impl NativeRetryRun {
    fn run(&mut self) -> BwResult<&mut RetryRun> {
        self.run
            .as_mut()
            .ok_or_else(|| BwError::coded(INTERNAL, "retry run used after it ended"))
    }
}

/// The stop code of a decision, or the delay in ms.
pub fn decision_code(decision: RetryDecision) -> f64 {
    match decision {
        RetryDecision::Retry { delay } => crate::error::to_ms(delay),
        RetryDecision::Stop(kind) => stop_code(kind),
    }
}

fn stop_code(kind: RetryErrorKind) -> f64 {
    match kind {
        RetryErrorKind::AttemptsExhausted => STOP_ATTEMPTS_EXHAUSTED,
        RetryErrorKind::BudgetExhausted => STOP_BUDGET_EXHAUSTED,
        RetryErrorKind::DeadlineExceeded => STOP_DEADLINE_EXCEEDED,
        RetryErrorKind::NotRetryable => STOP_NOT_RETRYABLE,
    }
}

/// The error class of a JS failure: not retryable, retryable, or retryable
/// with a server hint (`hint_ms >= 0`).
pub fn class(retryable: bool, hint_ms: f64) -> ErrorClass {
    if !retryable {
        ErrorClass::Permanent
    } else if hint_ms.is_finite() && hint_ms >= 0.0 {
        Duration::try_from_secs_f64(hint_ms / 1000.0)
            .map_or(ErrorClass::Transient, ErrorClass::TransientAfter)
    } else {
        ErrorClass::Transient
    }
}

/// Time left until the deadline; `Duration::MAX` for none (infinite or
/// negative `remaining_ms`), zero for a passed one.
pub fn remaining(remaining_ms: f64) -> Duration {
    if remaining_ms.is_nan() || remaining_ms == f64::INFINITY {
        return Duration::MAX;
    }
    Duration::try_from_secs_f64(remaining_ms.max(0.0) / 1000.0).unwrap_or(Duration::MAX)
}

#[napi]
impl NativeRetryRun {
    /// The attempt failed. `retryable`: the JS classifier's verdict;
    /// `hint_ms`: the error's `retryAfterMs` (negative for none);
    /// `remaining_ms`: time left until the deadline (`Infinity` for none).
    /// Returns the delay before the next attempt in ms, or a negative stop
    /// code (-1 attempts exhausted, -2 budget exhausted, -3 deadline
    /// exceeded, -4 not retryable).
    #[napi]
    pub fn on_failure(
        &mut self,
        env: Env,
        retryable: bool,
        hint_ms: f64,
        remaining_ms: f64,
    ) -> napi::Result<f64> {
        guard(&env, || {
            let run = self.run()?;
            let code =
                decision_code(run.on_failure(class(retryable, hint_ms), remaining(remaining_ms)));
            if code < 0.0 {
                self.run = None;
            }
            Ok(code)
        })
    }

    /// The backoff is over: the next attempt starts. Returns its number.
    #[napi]
    pub fn begin_attempt(&mut self, env: Env) -> napi::Result<u32> {
        guard(&env, || Ok(self.run()?.begin_attempt()))
    }

    /// The last attempt succeeded.
    #[napi]
    pub fn on_success(&mut self, env: Env) -> napi::Result<()> {
        guard(&env, || {
            if let Some(run) = self.run.take() {
                run.on_success();
            }
            Ok(())
        })
    }

    /// The deadline passed before or during an attempt.
    #[napi]
    pub fn stop_at_deadline(&mut self, env: Env) -> napi::Result<()> {
        guard(&env, || {
            if let Some(run) = self.run.take() {
                run.stop_at_deadline();
            }
            Ok(())
        })
    }

    /// Attempts begun so far.
    #[napi(getter)]
    pub fn attempts(&self) -> u32 {
        self.run.as_ref().map_or(0, RetryRun::attempts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::INVALID_ARG;

    fn no_jitter() -> BackoffOptions {
        BackoffOptions {
            base_ms: Some(100.0),
            max_ms: Some(1000.0),
            factor: Some(2.0),
            jitter: Some("none".into()),
            max_attempts: None,
            seed: None,
        }
    }

    #[test]
    fn a_batch_of_oks_counts_and_deposits_each_run() {
        let budget = std::sync::Arc::new(
            resilience_core::budget::RetryBudget::new(
                resilience_core::budget::RetryBudgetConfig::default(),
            )
            .unwrap(),
        );
        let policy = policy(&RetryPolicyOptions::default())
            .unwrap()
            .with_budget(std::sync::Arc::clone(&budget));
        ok_runs(&policy, 5);
        ok_runs(&policy, 0);
        let stats = stats_of(&policy);
        assert_eq!(stats.runs, 5.0);
        assert_eq!(stats.attempts, 5.0);
        assert_eq!(stats.successes, 5.0);
        assert_eq!(crate::budget::stats_of(&budget).deposits, 5.0);
    }

    #[test]
    fn decisions_are_the_policys() {
        let policy = policy(&RetryPolicyOptions {
            max_attempts: Some(3.0),
            backoff: Some(no_jitter()),
            ..Default::default()
        })
        .unwrap();
        let mut run = policy.start_run();
        run.begin_attempt();
        assert_eq!(
            decision_code(run.on_failure(class(true, -1.0), remaining(f64::INFINITY))),
            100.0
        );
        run.begin_attempt();
        assert_eq!(
            decision_code(run.on_failure(class(true, 700.0), remaining(f64::INFINITY))),
            700.0
        );
        run.begin_attempt();
        assert_eq!(
            decision_code(run.on_failure(class(true, -1.0), remaining(f64::INFINITY))),
            STOP_ATTEMPTS_EXHAUSTED
        );
    }

    #[test]
    fn permanent_errors_and_deadlines_stop() {
        let policy = policy(&RetryPolicyOptions::default()).unwrap();
        let mut run = policy.start_run();
        run.begin_attempt();
        assert_eq!(
            decision_code(run.on_failure(class(false, -1.0), remaining(f64::INFINITY))),
            STOP_NOT_RETRYABLE
        );
        let mut late = policy.start_run();
        late.begin_attempt();
        assert_eq!(
            decision_code(late.on_failure(class(true, -1.0), remaining(0.0))),
            STOP_DEADLINE_EXCEEDED
        );
    }

    #[test]
    fn remaining_time_maps_infinity_and_negatives() {
        assert_eq!(remaining(f64::INFINITY), Duration::MAX);
        assert_eq!(remaining(f64::NAN), Duration::MAX);
        assert_eq!(remaining(-5.0), Duration::ZERO);
        assert_eq!(remaining(1500.0), Duration::from_millis(1500));
    }

    #[test]
    fn invalid_options_name_the_js_option() {
        let cases = [
            (
                RetryPolicyOptions {
                    max_attempts: Some(0.0),
                    ..Default::default()
                },
                "maxAttempts",
            ),
            (
                RetryPolicyOptions {
                    max_retry_after_ms: Some(-1.0),
                    ..Default::default()
                },
                "maxRetryAfterMs",
            ),
            (
                RetryPolicyOptions {
                    backoff: Some(BackoffOptions {
                        max_attempts: Some(3.0),
                        ..no_jitter()
                    }),
                    ..Default::default()
                },
                "backoff.maxAttempts",
            ),
            (
                RetryPolicyOptions {
                    backoff: Some(BackoffOptions {
                        base_ms: Some(5000.0),
                        ..no_jitter()
                    }),
                    ..Default::default()
                },
                "backoff.maxMs",
            ),
        ];
        for (options, name) in cases {
            let err = policy(&options).unwrap_err();
            assert_eq!(err.code(), INVALID_ARG);
            assert!(err.message().contains(name), "{name}: {}", err.message());
        }
    }
}
