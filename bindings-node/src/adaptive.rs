//! `AdaptiveLimit`: a concurrency limit that adapts to measured latency and
//! drops (AIMD or Netflix's Gradient2) from resilience-core's `limit`
//! module.
//!
//! Permits are numbers (keys into the limit's [`Slots`] table). A permit is
//! released with an outcome: `success` (its latency is a sample), `dropped`
//! (a sign of overload: lowers the limit) or `ignored` (no sample). The
//! latency is measured in Rust from acquisition unless JS passes its own.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use napi::Env;
use napi::bindgen_prelude::Object;
use napi_derive::napi;
use resilience_core::ConfigError;
use resilience_core::limit::{
    AdaptiveLimit, AdaptiveLimitConfig, AdaptivePermit, AimdConfig, Gradient2Config, LimitAlgorithm,
};

use crate::bind;
use crate::error::{BwError, BwResult, duration_ms, from_config_ms, guard, to_ms, whole_usize};
use crate::handles::Slots;

const MS_FIELDS: &[&str] = &["latency_threshold", "min_retry_after", "max_retry_after"];

/// Release outcomes, in the order of their numbers.
pub const OUTCOMES: [&str; 3] = ["success", "dropped", "ignored"];

/// Options of `new AdaptiveLimit(...)`, type-checked by the JS wrapper.
/// The algorithm's parameters are flat: `increaseBy` applies to AIMD only,
/// `smoothing` to Gradient2 only (the JS layer rejects a mix).
#[napi(object)]
#[derive(Debug, Clone, Default)]
pub struct AdaptiveLimitOptions {
    /// `'aimd'` or `'gradient2'` (default).
    pub algorithm: Option<String>,
    /// The limit before any sample (default 20).
    pub initial_limit: Option<f64>,
    /// The lowest limit (default 1).
    pub min_limit: Option<f64>,
    /// The highest limit (default 200).
    pub max_limit: Option<f64>,
    /// AIMD: added per healthy sample (default 1).
    pub increase_by: Option<f64>,
    /// AIMD: factor applied on a drop, in [0.5, 1) (default 0.9).
    pub backoff_ratio: Option<f64>,
    /// AIMD: a success slower than this counts as a drop (default 5000).
    pub latency_threshold_ms: Option<f64>,
    /// Gradient2: weight of each new target, in (0, 1] (default 0.2).
    pub smoothing: Option<f64>,
    /// Gradient2: tolerated slowdown against the long-term average (>= 1, default 1.5).
    pub rtt_tolerance: Option<f64>,
    /// Gradient2: samples in the long-term average (default 600).
    pub long_window: Option<f64>,
    /// Gradient2: headroom added to the target (default 4).
    pub queue_size: Option<f64>,
    /// Lower bound of `retryAfterMs` hints.
    pub min_retry_after_ms: Option<f64>,
    /// Upper bound of `retryAfterMs` hints.
    pub max_retry_after_ms: Option<f64>,
}

/// Occupancy and decisions of an adaptive limit.
#[napi(object)]
#[derive(Debug, Clone)]
pub struct AdaptiveLimitStats {
    /// The limit now in force.
    pub limit: f64,
    /// Permits held.
    pub in_flight: f64,
    /// Permits granted.
    pub acquired: f64,
    /// Requests shed because the limit was reached.
    pub shed: f64,
    /// Permits released as `success`.
    pub successes: f64,
    /// Permits released as `dropped`.
    pub drops: f64,
}

fn count(n: Option<f64>, name: &str, default: usize) -> BwResult<usize> {
    n.map_or(Ok(default), |n| whole_usize(name, n))
}

/// Builds a validated config from JS options (defaults for unset ones).
pub fn adaptive_config(o: &AdaptiveLimitOptions) -> BwResult<AdaptiveLimitConfig> {
    let d = AdaptiveLimitConfig::default();
    let algorithm = match o.algorithm.as_deref().unwrap_or("gradient2") {
        "aimd" => {
            let a = AimdConfig::default();
            LimitAlgorithm::Aimd(AimdConfig {
                initial_limit: count(o.initial_limit, "initialLimit", a.initial_limit)?,
                min_limit: count(o.min_limit, "minLimit", a.min_limit)?,
                max_limit: count(o.max_limit, "maxLimit", a.max_limit)?,
                increase_by: count(o.increase_by, "increaseBy", a.increase_by)?,
                backoff_ratio: o.backoff_ratio.unwrap_or(a.backoff_ratio),
                latency_threshold: o
                    .latency_threshold_ms
                    .map_or(Ok(a.latency_threshold), |ms| {
                        duration_ms("latencyThresholdMs", ms)
                    })?,
            })
        }
        "gradient2" => {
            let g = Gradient2Config::default();
            LimitAlgorithm::Gradient2(Gradient2Config {
                initial_limit: count(o.initial_limit, "initialLimit", g.initial_limit)?,
                min_limit: count(o.min_limit, "minLimit", g.min_limit)?,
                max_limit: count(o.max_limit, "maxLimit", g.max_limit)?,
                smoothing: o.smoothing.unwrap_or(g.smoothing),
                rtt_tolerance: o.rtt_tolerance.unwrap_or(g.rtt_tolerance),
                long_window: count(o.long_window, "longWindow", g.long_window)?,
                queue_size: count(o.queue_size, "queueSize", g.queue_size)?,
            })
        }
        other => {
            return Err(BwError::range(format!(
                "`algorithm` must be one of 'aimd', 'gradient2', got '{other}'"
            )));
        }
    };
    let config = AdaptiveLimitConfig {
        algorithm,
        // Only `tryAcquire` is bound: nobody waits in the queue.
        max_queued: 0,
        queue_timeout: d.queue_timeout,
        min_retry_after: o.min_retry_after_ms.map_or(Ok(d.min_retry_after), |ms| {
            duration_ms("minRetryAfterMs", ms)
        })?,
        max_retry_after: o.max_retry_after_ms.map_or(Ok(d.max_retry_after), |ms| {
            duration_ms("maxRetryAfterMs", ms)
        })?,
    };
    config.validate().map_err(|e| flat_error(&e))?;
    Ok(config)
}

/// `algorithm.aimd.backoff_ratio` → `backoffRatio`: the JS options are flat.
fn flat_error(e: &ConfigError) -> BwError {
    let field = e
        .field()
        .trim_start_matches("algorithm.aimd.")
        .trim_start_matches("algorithm.gradient2.");
    from_config_ms(&ConfigError::new(field.to_owned(), e.reason()), MS_FIELDS)
}

#[derive(Debug, Default)]
struct Counts {
    acquired: Cell<u64>,
    shed: Cell<u64>,
    successes: Cell<u64>,
    drops: Cell<u64>,
}

fn bump(cell: &Cell<u64>) {
    cell.set(cell.get().saturating_add(1));
}

#[derive(Debug)]
struct Entry {
    limit: AdaptiveLimit,
    permits: RefCell<Slots<AdaptivePermit>>,
    counts: Counts,
}

impl Entry {
    fn try_acquire(&self) -> BwResult<f64> {
        match self.limit.try_acquire() {
            Ok(permit) => {
                let key = self
                    .permits
                    .try_borrow_mut()
                    .map_err(|_| BwError::range("adaptive limit re-entered"))?
                    .insert(permit)
                    .ok_or_else(|| BwError::range("too many adaptive permits held"))?;
                bump(&self.counts.acquired);
                Ok(key)
            }
            Err(shed) => {
                bump(&self.counts.shed);
                Ok(-1.0 - to_ms(shed.retry_after))
            }
        }
    }

    /// Releases `permit` with outcome number `outcome` (an index of
    /// [`OUTCOMES`]); `latency_ms` < 0 means "measured from acquisition".
    /// Returns false if the permit was already released.
    fn release(&self, permit: f64, outcome: u32, latency_ms: f64) -> BwResult<bool> {
        let Some(permit) = self
            .permits
            .try_borrow_mut()
            .map_err(|_| BwError::range("adaptive limit re-entered"))?
            .remove(permit)
        else {
            return Ok(false);
        };
        let dropped = match outcome {
            0 => false,
            1 => true,
            2 => {
                drop(permit);
                return Ok(true);
            }
            other => return Err(BwError::range(format!("unknown outcome number {other}"))),
        };
        bump(if dropped {
            &self.counts.drops
        } else {
            &self.counts.successes
        });
        if latency_ms < 0.0 {
            if dropped {
                permit.record_dropped();
            } else {
                permit.record_success();
            }
        } else {
            let latency = duration_ms("latencyMs", latency_ms)?;
            let in_flight = self.limit.in_flight();
            drop(permit);
            self.limit.record_outcome(latency, in_flight, dropped);
        }
        Ok(true)
    }

    fn stats(&self) -> AdaptiveLimitStats {
        AdaptiveLimitStats {
            limit: self.limit.current_limit() as f64,
            in_flight: self.limit.in_flight() as f64,
            acquired: self.counts.acquired.get() as f64,
            shed: self.counts.shed.get() as f64,
            successes: self.counts.successes.get() as f64,
            drops: self.counts.drops.get() as f64,
        }
    }
}

/// Creates an adaptive limit. Returns its bound methods: `tryAcquire()` (a
/// permit key >= 0, or `-1 - retryAfterMs` when shed), `release(permit,
/// outcome, latencyMs)` (outcome: an index of `success`, `dropped`,
/// `ignored`; latencyMs < 0 to measure it natively; false if already
/// released), `limit()` and `stats()`.
#[napi(js_name = "adaptiveLimitCreate")]
pub fn create(env: &Env, options: AdaptiveLimitOptions) -> napi::Result<Object<'_>> {
    let entry = guard(env, || {
        let limit = AdaptiveLimit::new(adaptive_config(&options)?).map_err(|e| flat_error(&e))?;
        Ok(Rc::new(Entry {
            limit,
            permits: RefCell::new(Slots::new()),
            counts: Counts::default(),
        }))
    })?;
    let mut object = Object::new(env)?;
    let e = Rc::clone(&entry);
    bind::method(env, &mut object, "tryAcquire", move |_| e.try_acquire())?;
    let e = Rc::clone(&entry);
    bind::method(env, &mut object, "release", move |ctx| {
        let permit: f64 = bind::arg(ctx, 0, "permit")?;
        let outcome: u32 = bind::arg(ctx, 1, "outcome")?;
        let latency: f64 = bind::arg(ctx, 2, "latencyMs")?;
        e.release(permit, outcome, latency)
    })?;
    let e = Rc::clone(&entry);
    bind::method(env, &mut object, "limit", move |_| {
        Ok(e.limit.current_limit() as f64)
    })?;
    bind::method(env, &mut object, "stats", move |_| Ok(entry.stats()))?;
    Ok(object)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::INVALID_ARG;

    fn entry(options: &AdaptiveLimitOptions) -> Entry {
        Entry {
            limit: AdaptiveLimit::new(adaptive_config(options).unwrap()).unwrap(),
            permits: RefCell::new(Slots::new()),
            counts: Counts::default(),
        }
    }

    #[test]
    fn aimd_grows_on_success_and_shrinks_on_drop() {
        let e = entry(&AdaptiveLimitOptions {
            algorithm: Some("aimd".into()),
            initial_limit: Some(2.0),
            ..Default::default()
        });
        let a = e.try_acquire().unwrap();
        let b = e.try_acquire().unwrap();
        assert!(e.try_acquire().unwrap() < 0.0, "shed at the limit");
        assert!(e.release(a, 0, 1.0).unwrap());
        assert!(
            !e.release(a, 0, 1.0).unwrap(),
            "a second release is a no-op"
        );
        assert_eq!(e.stats().limit, 3.0);
        assert!(e.release(b, 1, -1.0).unwrap());
        assert!(e.stats().limit < 3.0);
        let s = e.stats();
        assert_eq!(
            (s.acquired, s.shed, s.successes, s.drops),
            (2.0, 1.0, 1.0, 1.0)
        );
    }

    #[test]
    fn invalid_options_name_the_js_option() {
        let cases = [
            (
                AdaptiveLimitOptions {
                    algorithm: Some("vegas".into()),
                    ..Default::default()
                },
                "`algorithm`",
            ),
            (
                AdaptiveLimitOptions {
                    min_limit: Some(0.0),
                    ..Default::default()
                },
                "minLimit",
            ),
            (
                AdaptiveLimitOptions {
                    smoothing: Some(0.0),
                    ..Default::default()
                },
                "smoothing",
            ),
            (
                AdaptiveLimitOptions {
                    algorithm: Some("aimd".into()),
                    backoff_ratio: Some(0.2),
                    ..Default::default()
                },
                "backoffRatio",
            ),
            (
                AdaptiveLimitOptions {
                    algorithm: Some("aimd".into()),
                    latency_threshold_ms: Some(0.0),
                    ..Default::default()
                },
                "latencyThresholdMs",
            ),
        ];
        for (options, name) in cases {
            let err = adaptive_config(&options).unwrap_err();
            assert_eq!(err.code(), INVALID_ARG);
            assert!(err.message().contains(name), "{name}: {}", err.message());
        }
    }
}
