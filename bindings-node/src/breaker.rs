//! `CircuitBreaker`: resilience-core's breaker, driven through its
//! synchronous `try_acquire` → record API.
//!
//! A permit lives in the breaker's own [`Slots`] table until JS records its
//! outcome, so a call through the breaker costs two cheap crossings into
//! bound closures (acquire, record) and no JS object per permit.

use std::cell::{RefCell, RefMut};
use std::rc::Rc;

use tokio::sync::broadcast;
use tokio::sync::broadcast::error::TryRecvError;

use napi::Env;
use napi::bindgen_prelude::Object;
use napi_derive::napi;
use resilience_core::backoff::BackoffConfig;
use resilience_core::breaker::{
    BreakerConfig, BreakerPermit, CircuitBreaker, Outcome, StateChange, WindowConfig,
};
use resilience_core::clock::SharedClock;

use crate::backoff::{BackoffOptions, parse_jitter, seed};
use crate::bind;
use crate::error::{
    BwError, BwResult, INTERNAL, duration_ms, from_config_ms, guard, to_ms, whole_u32,
};
use crate::handles::Slots;

/// A breaker and the permits it handed out that JS has not recorded yet.
#[derive(Debug)]
pub struct BreakerEntry {
    breaker: CircuitBreaker,
    permits: Slots<BreakerPermit>,
    /// State changes not yet handed to JS, while JS has listeners.
    events: Option<broadcast::Receiver<StateChange>>,
}

/// Duration fields of the config, spelled with `Ms` in JS.
const MS_FIELDS: &[&str] = &[
    "slow_call_duration",
    "window.duration",
    "open_wait.base",
    "open_wait.max",
];

/// `breakerRecord` outcome: the dependency did its job.
pub const OUTCOME_SUCCESS: u32 = 0;
/// `breakerRecord` outcome: the dependency failed.
pub const OUTCOME_FAILURE: u32 = 1;
/// `breakerRecord` outcome: says nothing about the dependency.
pub const OUTCOME_IGNORED: u32 = 2;
/// `breakerRecord` outcome: the call was cancelled (the permit is dropped).
pub const OUTCOME_CANCELLED: u32 = 3;

/// The sliding window: `calls` for a count window, `durationMs` (+
/// `buckets`) for a time window. The JS wrapper resolves the `type`.
#[napi(object)]
#[derive(Debug, Clone, Default)]
pub struct WindowOptions {
    /// Number of calls in a count window.
    pub calls: Option<f64>,
    /// Length of a time window, in ms.
    pub duration_ms: Option<f64>,
    /// Slices of a time window (default 10).
    pub buckets: Option<f64>,
}

/// Options of `new CircuitBreaker(...)`, type-checked by the JS wrapper.
#[napi(object)]
#[derive(Debug, Clone, Default)]
pub struct BreakerOptions {
    /// Trip after this many failures in a row.
    pub consecutive_failures: Option<f64>,
    /// Trip at this failure share of the window, in (0, 1].
    pub failure_rate_threshold: Option<f64>,
    /// Calls slower than this (ms) are slow.
    pub slow_call_duration_ms: Option<f64>,
    /// Trip at this slow-call share of the window, in (0, 1].
    pub slow_call_rate_threshold: Option<f64>,
    /// The sliding window.
    pub window: Option<WindowOptions>,
    /// Calls the window must hold before the rate rules apply.
    pub minimum_calls: Option<f64>,
    /// How long the breaker stays open (grows per trip in a row).
    pub open_wait: Option<BackoffOptions>,
    /// Probe calls admitted when half-open.
    pub half_open_probes: Option<f64>,
    /// Seed for reproducible open-wait jitter.
    pub seed: Option<f64>,
}

/// A snapshot of the breaker's counters.
#[napi(object)]
#[derive(Debug, Clone)]
pub struct BreakerStats {
    /// `'closed' | 'open' | 'half-open'`.
    pub state: String,
    /// Completed permits (any outcome, cancellations included).
    pub calls: f64,
    /// Calls recorded as successes.
    pub successes: f64,
    /// Calls recorded as failures.
    pub failures: f64,
    /// Successes and failures that were slow.
    pub slow_calls: f64,
    /// Calls recorded as ignored.
    pub ignored: f64,
    /// Permits released without an outcome.
    pub cancelled: f64,
    /// Calls rejected while open.
    pub rejections: f64,
    /// Transitions to open.
    pub trips: f64,
    /// Calls in the sliding window.
    pub window_calls: f64,
    /// Failure share of the window.
    pub window_failure_rate: f64,
    /// Slow-call share of the window.
    pub window_slow_call_rate: f64,
    /// Permits handed out and not recorded yet.
    pub in_flight: f64,
}

fn open_wait(options: Option<&BackoffOptions>, defaults: BackoffConfig) -> BwResult<BackoffConfig> {
    let Some(o) = options else {
        return Ok(defaults);
    };
    Ok(BackoffConfig {
        base: o
            .base_ms
            .map_or(Ok(defaults.base), |ms| duration_ms("openWait.baseMs", ms))?,
        max: o
            .max_ms
            .map_or(Ok(defaults.max), |ms| duration_ms("openWait.maxMs", ms))?,
        factor: o.factor.unwrap_or(defaults.factor),
        jitter: o
            .jitter
            .as_deref()
            .map_or(Ok(defaults.jitter), parse_jitter)
            .map_err(|e| {
                BwError::range(e.message().replacen("`jitter`", "`openWait.jitter`", 1))
            })?,
        max_attempts: o
            .max_attempts
            .map(|n| whole_u32("openWait.maxAttempts", n))
            .transpose()?,
    })
}

fn window(options: Option<&WindowOptions>, default: WindowConfig) -> BwResult<WindowConfig> {
    let Some(w) = options else {
        return Ok(default);
    };
    match (w.calls, w.duration_ms) {
        (Some(calls), None) => Ok(WindowConfig::Count {
            calls: whole_u32("window.calls", calls)?,
        }),
        (None, Some(ms)) => Ok(WindowConfig::Time {
            duration: duration_ms("window.durationMs", ms)?,
            buckets: w
                .buckets
                .map_or(Ok(10), |n| whole_u32("window.buckets", n))?,
        }),
        _ => Err(BwError::type_error(
            "`window` must have either `calls` (a count window) or `durationMs` (a time window)",
        )),
    }
}

/// Builds a validated config from JS options (defaults for unset ones).
pub fn breaker_config(options: &BreakerOptions) -> BwResult<BreakerConfig> {
    let d = BreakerConfig::default();
    let config = BreakerConfig {
        consecutive_failures: options
            .consecutive_failures
            .map(|n| whole_u32("consecutiveFailures", n))
            .transpose()?,
        failure_rate_threshold: options
            .failure_rate_threshold
            .unwrap_or(d.failure_rate_threshold),
        slow_call_duration: options
            .slow_call_duration_ms
            .map(|ms| duration_ms("slowCallDurationMs", ms))
            .transpose()?,
        slow_call_rate_threshold: options
            .slow_call_rate_threshold
            .unwrap_or(d.slow_call_rate_threshold),
        window: window(options.window.as_ref(), d.window)?,
        minimum_calls: options
            .minimum_calls
            .map_or(Ok(d.minimum_calls), |n| whole_u32("minimumCalls", n))?,
        open_wait: open_wait(options.open_wait.as_ref(), d.open_wait)?,
        half_open_probes: options
            .half_open_probes
            .map_or(Ok(d.half_open_probes), |n| whole_u32("halfOpenProbes", n))?,
    };
    config
        .validate()
        .map_err(|e| from_config_ms(&e, MS_FIELDS))?;
    Ok(config)
}

/// Creates a breaker. Returns its bound methods:
/// - `acquire(succeeded)`: first records a success for the permit
///   `succeeded` when it is >= 0 (a success whose record the JS side
///   deferred to this call: one crossing instead of two), then returns a
///   permit key (>= 0), or `-1 - retryAfterMs` when open;
/// - `record(permit, outcome)`: how the call ended (`OUTCOME_*` codes);
/// - `recordSuccess(permit)`: the same for a success, one argument less on
///   the hot path;
/// - `isProbe(permit)`, `state()` (0 closed, 1 open, 2 half-open), `stats()`.
#[napi(js_name = "breakerCreate")]
pub fn create(env: &Env, options: BreakerOptions) -> napi::Result<Object<'_>> {
    let entry = guard(env, || {
        let config = breaker_config(&options)?;
        let breaker = match options.seed {
            Some(s) => CircuitBreaker::with_clock_and_seed(config, SharedClock::system(), seed(s)?),
            None => CircuitBreaker::new(config),
        }
        .map_err(|e| from_config_ms(&e, MS_FIELDS))?;
        Ok(Rc::new(RefCell::new(BreakerEntry {
            breaker,
            permits: Slots::new(),
            events: None,
        })))
    })?;
    let mut object = Object::new(env)?;
    let e = Rc::clone(&entry);
    bind::method(env, &mut object, "acquire", move |ctx| {
        let succeeded: f64 = bind::arg(ctx, 0, "succeeded")?;
        let mut entry = borrow(&e)?;
        if succeeded >= 0.0 {
            record(&mut entry, succeeded, OUTCOME_SUCCESS)?;
        }
        acquire(&mut entry)
    })?;
    let e = Rc::clone(&entry);
    bind::method(env, &mut object, "record", move |ctx| {
        let permit: f64 = bind::arg(ctx, 0, "permit")?;
        let outcome: u32 = bind::arg(ctx, 1, "outcome")?;
        record(&mut *borrow(&e)?, permit, outcome)
    })?;
    let e = Rc::clone(&entry);
    bind::method(env, &mut object, "recordSuccess", move |ctx| {
        let permit: f64 = bind::arg(ctx, 0, "permit")?;
        record(&mut *borrow(&e)?, permit, OUTCOME_SUCCESS)
    })?;
    let e = Rc::clone(&entry);
    bind::method(env, &mut object, "isProbe", move |ctx| {
        let permit: f64 = bind::arg(ctx, 0, "permit")?;
        Ok(borrow(&e)?
            .permits
            .get(permit)
            .is_some_and(BreakerPermit::is_probe))
    })?;
    let e = Rc::clone(&entry);
    bind::method(env, &mut object, "state", move |_| {
        Ok(crate::codes::state_index(borrow(&e)?.breaker.state()))
    })?;
    let e = Rc::clone(&entry);
    bind::method(env, &mut object, "subscribe", move |_| {
        let mut entry = borrow(&e)?;
        if entry.events.is_none() {
            entry.events = Some(entry.breaker.subscribe());
        }
        Ok(())
    })?;
    let e = Rc::clone(&entry);
    bind::method(env, &mut object, "unsubscribe", move |_| {
        borrow(&e)?.events = None;
        Ok(())
    })?;
    let e = Rc::clone(&entry);
    bind::method(env, &mut object, "drainChanges", move |_| {
        Ok(drain_changes(&mut *borrow(&e)?))
    })?;
    bind::method(env, &mut object, "stats", move |_| {
        Ok(stats(&*borrow(&entry)?))
    })?;
    Ok(object)
}

fn borrow(entry: &RefCell<BreakerEntry>) -> BwResult<RefMut<'_, BreakerEntry>> {
    entry
        .try_borrow_mut()
        .map_err(|_| BwError::coded(INTERNAL, "circuit breaker re-entered during a call"))
}

/// The state changes since the last drain, as `[from, to, from, to, ...]`
/// state numbers (empty without a subscription). Changes that overflowed the
/// core's buffer (64) are skipped: the next ones still arrive in order.
pub fn drain_changes(entry: &mut BreakerEntry) -> Vec<u32> {
    let mut changes = Vec::new();
    let Some(events) = entry.events.as_mut() else {
        return changes;
    };
    loop {
        match events.try_recv() {
            Ok(change) => {
                changes.push(crate::codes::state_index(change.from));
                changes.push(crate::codes::state_index(change.to));
            }
            Err(TryRecvError::Lagged(_)) => {}
            Err(TryRecvError::Empty | TryRecvError::Closed) => return changes,
        }
    }
}

/// `try_acquire`, storing the permit: its key, or `-1 - retryAfterMs`.
pub fn acquire(entry: &mut BreakerEntry) -> BwResult<f64> {
    match entry.breaker.try_acquire() {
        Ok(permit) => entry
            .permits
            .insert(permit)
            .ok_or_else(|| BwError::range("too many circuit breaker permits in flight")),
        Err(open) => Ok(-1.0 - to_ms(open.retry_after)),
    }
}

/// Records the outcome of the call behind `permit`.
pub fn record(entry: &mut BreakerEntry, permit: f64, outcome: u32) -> BwResult<()> {
    let permit = entry
        .permits
        .remove(permit)
        .ok_or_else(|| BwError::range("unknown or already recorded breaker permit"))?;
    match outcome {
        OUTCOME_SUCCESS => permit.record(Outcome::Success),
        OUTCOME_FAILURE => permit.record(Outcome::Failure),
        OUTCOME_IGNORED => permit.record(Outcome::Ignored),
        _ => drop(permit),
    }
    Ok(())
}

fn stats(entry: &BreakerEntry) -> BreakerStats {
    let m = entry.breaker.metrics();
    BreakerStats {
        state: m.state.as_str().to_owned(),
        calls: m.calls as f64,
        successes: m.successes as f64,
        failures: m.failures as f64,
        slow_calls: m.slow_calls as f64,
        ignored: m.ignored as f64,
        cancelled: m.cancelled as f64,
        rejections: m.rejections as f64,
        trips: m.trips as f64,
        window_calls: f64::from(m.window_calls),
        window_failure_rate: m.window_failure_rate,
        window_slow_call_rate: m.window_slow_call_rate,
        in_flight: entry.permits.len() as f64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::INVALID_ARG;
    use resilience_core::breaker::BreakerState;
    use std::time::Duration;

    #[test]
    fn defaults_are_the_cores() {
        assert_eq!(
            breaker_config(&BreakerOptions::default()).unwrap(),
            BreakerConfig::default()
        );
    }

    #[test]
    fn windows_and_open_wait_are_converted() {
        let config = breaker_config(&BreakerOptions {
            window: Some(WindowOptions {
                duration_ms: Some(60_000.0),
                buckets: Some(12.0),
                ..Default::default()
            }),
            minimum_calls: Some(5.0),
            open_wait: Some(BackoffOptions {
                base_ms: Some(1000.0),
                max_ms: None,
                factor: None,
                jitter: None,
                max_attempts: None,
                seed: None,
            }),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            config.window,
            WindowConfig::Time {
                duration: Duration::from_secs(60),
                buckets: 12
            }
        );
        assert_eq!(config.open_wait.base, Duration::from_secs(1));
        assert_eq!(config.open_wait.max, Duration::from_secs(300));
    }

    #[test]
    fn invalid_options_name_the_js_option() {
        let cases = [
            (
                BreakerOptions {
                    failure_rate_threshold: Some(0.0),
                    ..Default::default()
                },
                "failureRateThreshold",
            ),
            (
                BreakerOptions {
                    consecutive_failures: Some(0.0),
                    ..Default::default()
                },
                "consecutiveFailures",
            ),
            (
                BreakerOptions {
                    slow_call_duration_ms: Some(0.0),
                    ..Default::default()
                },
                "slowCallDurationMs",
            ),
            (
                BreakerOptions {
                    window: Some(WindowOptions {
                        calls: Some(10.0),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                "minimumCalls",
            ),
            (
                BreakerOptions {
                    open_wait: Some(BackoffOptions {
                        base_ms: Some(0.0),
                        max_ms: None,
                        factor: None,
                        jitter: None,
                        max_attempts: None,
                        seed: None,
                    }),
                    ..Default::default()
                },
                "openWait.baseMs",
            ),
            (
                BreakerOptions {
                    half_open_probes: Some(0.0),
                    ..Default::default()
                },
                "halfOpenProbes",
            ),
        ];
        for (options, name) in cases {
            let err = breaker_config(&options).unwrap_err();
            assert_eq!(err.code(), INVALID_ARG);
            assert!(err.message().contains(name), "{name}: {}", err.message());
        }
    }

    #[test]
    fn permits_recorded_through_the_table_trip_the_breaker() {
        let mut entry = BreakerEntry {
            events: None,
            breaker: CircuitBreaker::new(BreakerConfig {
                consecutive_failures: Some(2),
                ..BreakerConfig::default()
            })
            .unwrap(),
            permits: Slots::new(),
        };
        for _ in 0..2 {
            let key = acquire(&mut entry).unwrap();
            record(&mut entry, key, OUTCOME_FAILURE).unwrap();
        }
        assert!(
            record(&mut entry, 0.0, OUTCOME_SUCCESS).is_err(),
            "recorded twice"
        );
        assert!(
            acquire(&mut entry).unwrap() < -1.0,
            "open: -1 - retryAfterMs"
        );
        assert_eq!(entry.breaker.state(), BreakerState::Open);
        assert!(entry.permits.is_empty());
    }

    #[test]
    fn state_changes_are_drained_in_order_while_subscribed() {
        let mut entry = BreakerEntry {
            events: None,
            breaker: CircuitBreaker::new(BreakerConfig {
                consecutive_failures: Some(1),
                ..BreakerConfig::default()
            })
            .unwrap(),
            permits: Slots::new(),
        };
        let key = acquire(&mut entry).unwrap();
        record(&mut entry, key, OUTCOME_FAILURE).unwrap();
        assert!(drain_changes(&mut entry).is_empty(), "not subscribed");
        entry.breaker = CircuitBreaker::new(BreakerConfig {
            consecutive_failures: Some(1),
            ..BreakerConfig::default()
        })
        .unwrap();
        entry.events = Some(entry.breaker.subscribe());
        let key = acquire(&mut entry).unwrap();
        record(&mut entry, key, OUTCOME_FAILURE).unwrap();
        assert_eq!(drain_changes(&mut entry), vec![0, 1], "closed -> open");
        assert!(drain_changes(&mut entry).is_empty());
    }
}
