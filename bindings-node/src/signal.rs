//! `Hysteresis` (a two-mark, N-sample level alarm) and `EventAggregator`
//! (de-duplication of events by fingerprint) from resilience-core's
//! `signal` module.

use std::cell::{RefCell, RefMut};
use std::rc::Rc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use napi::Env;
use napi::bindgen_prelude::Object;
use napi_derive::napi;
use resilience_core::signal::{
    Direction, EventAggregator, EventAggregatorConfig, Flushed, Hysteresis, HysteresisConfig,
    SignalChange,
};

use crate::bind;
use crate::error::{
    BwError, BwResult, INTERNAL, duration_ms, from_config, from_config_ms, guard, whole_u32,
    whole_usize,
};

/// Options of `new Hysteresis(...)`, type-checked by the JS wrapper.
#[napi(object)]
#[derive(Debug, Clone, Default)]
pub struct HysteresisOptions {
    /// The upper mark (default 0.9).
    pub high: Option<f64>,
    /// The lower mark (default 0.8).
    pub low: Option<f64>,
    /// Consecutive alarming samples needed to fire (default 3).
    pub fire_after: Option<f64>,
    /// Consecutive clearing samples needed to clear (default 3).
    pub clear_after: Option<f64>,
    /// `'above'` (default) or `'below'`: which side of the marks alarms.
    pub direction: Option<String>,
}

/// State of a hysteresis signal.
#[napi(object)]
#[derive(Debug, Clone)]
pub struct HysteresisStats {
    /// Whether the signal is firing.
    pub firing: bool,
    /// Samples in the current streak towards the next change.
    pub streak: f64,
    /// NaN samples ignored.
    pub ignored: f64,
}

/// Builds a validated config from JS options (defaults for unset ones).
pub fn hysteresis_config(o: &HysteresisOptions) -> BwResult<HysteresisConfig> {
    let d = HysteresisConfig::default();
    let direction = match o.direction.as_deref() {
        None => d.direction,
        Some("above") => Direction::Above,
        Some("below") => Direction::Below,
        Some(other) => {
            return Err(BwError::range(format!(
                "`direction` must be one of 'above', 'below', got '{other}'"
            )));
        }
    };
    let config = HysteresisConfig {
        high: o.high.unwrap_or(d.high),
        low: o.low.unwrap_or(d.low),
        fire_after: o
            .fire_after
            .map_or(Ok(d.fire_after), |n| whole_u32("fireAfter", n))?,
        clear_after: o
            .clear_after
            .map_or(Ok(d.clear_after), |n| whole_u32("clearAfter", n))?,
        direction,
    };
    config.validate().map_err(|e| from_config(&e))?;
    Ok(config)
}

fn borrow<T>(cell: &RefCell<T>) -> BwResult<RefMut<'_, T>> {
    cell.try_borrow_mut()
        .map_err(|_| BwError::coded(INTERNAL, "signal re-entered during a call"))
}

/// Creates a hysteresis signal. Returns its bound methods: `observe(value)`
/// (0: no change, 1: fired, 2: cleared), `reset()` and `stats()`.
#[napi(js_name = "hysteresisCreate")]
pub fn hysteresis_create(env: &Env, options: HysteresisOptions) -> napi::Result<Object<'_>> {
    let signal = guard(env, || {
        Hysteresis::new(hysteresis_config(&options)?)
            .map(|h| Rc::new(RefCell::new(h)))
            .map_err(|e| from_config(&e))
    })?;
    let mut object = Object::new(env)?;
    let s = Rc::clone(&signal);
    bind::method(env, &mut object, "observe", move |ctx| {
        let value: f64 = bind::arg(ctx, 0, "value")?;
        Ok(match borrow(&s)?.observe(value) {
            None => 0u32,
            Some(SignalChange::Fired { .. }) => 1,
            Some(SignalChange::Cleared { .. }) => 2,
        })
    })?;
    let s = Rc::clone(&signal);
    bind::method(env, &mut object, "reset", move |_| {
        borrow(&s)?.reset();
        Ok(())
    })?;
    bind::method(env, &mut object, "stats", move |_| {
        let s = borrow(&signal)?;
        Ok(HysteresisStats {
            firing: s.is_firing(),
            streak: f64::from(s.streak()),
            ignored: s.ignored_samples() as f64,
        })
    })?;
    Ok(object)
}

/// Options of `new EventAggregator(...)`, type-checked by the JS wrapper.
#[napi(object)]
#[derive(Debug, Clone, Default)]
pub struct AggregatorOptions {
    /// How long duplicates are suppressed before their summary is due, in ms
    /// (default 300000).
    pub window_ms: Option<f64>,
    /// Most fingerprints tracked at once (default 1000).
    pub max_fingerprints: Option<f64>,
}

/// The duplicates of one fingerprint suppressed during one window.
#[napi(object)]
#[derive(Debug, Clone)]
pub struct EventSummary {
    /// The fingerprint.
    pub fingerprint: String,
    /// Suppressed duplicates (>= 1).
    pub count: f64,
    /// When the first suppressed duplicate was recorded (ms since the epoch).
    pub first_seen_ms: f64,
    /// When the last suppressed duplicate was recorded (ms since the epoch).
    pub last_seen_ms: f64,
    /// The last suppressed duplicate.
    pub last_event: String,
}

/// Fingerprints evicted to bound memory, with the duplicates they carried.
#[napi(object)]
#[derive(Debug, Clone)]
pub struct EvictedSummary {
    /// Fingerprints evicted.
    pub fingerprints: f64,
    /// Suppressed, unsummarized duplicates they carried.
    pub events: f64,
}

/// What `poll()` and `flush()` return.
#[napi(object)]
#[derive(Debug, Clone)]
pub struct FlushedEvents {
    /// One summary per fingerprint whose window closed with duplicates.
    pub summaries: Vec<EventSummary>,
    /// Evictions since the last report, if any.
    pub evicted: Option<EvictedSummary>,
}

/// An `Instant` of the system clock as ms since the Unix epoch.
fn epoch_ms(at: Instant) -> f64 {
    let now_wall = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0);
    let ago = Instant::now().saturating_duration_since(at).as_secs_f64() * 1000.0;
    now_wall - ago
}

fn to_js(flushed: Flushed<String, String>) -> FlushedEvents {
    FlushedEvents {
        summaries: flushed
            .summaries
            .into_iter()
            .map(|s| EventSummary {
                fingerprint: s.fingerprint,
                count: s.count as f64,
                first_seen_ms: epoch_ms(s.first_seen),
                last_seen_ms: epoch_ms(s.last_seen),
                last_event: s.last_event,
            })
            .collect(),
        evicted: flushed.evicted.map(|e| EvictedSummary {
            fingerprints: e.fingerprints as f64,
            events: e.events as f64,
        }),
    }
}

/// Builds a validated config from JS options (defaults for unset ones).
pub fn aggregator_config(o: &AggregatorOptions) -> BwResult<EventAggregatorConfig> {
    let d = EventAggregatorConfig::default();
    let config = EventAggregatorConfig {
        window: o
            .window_ms
            .map_or(Ok(d.window), |ms| duration_ms("windowMs", ms))?,
        max_fingerprints: o.max_fingerprints.map_or(Ok(d.max_fingerprints), |n| {
            whole_usize("maxFingerprints", n)
        })?,
    };
    config
        .validate()
        .map_err(|e| from_config_ms(&e, &["window"]))?;
    Ok(config)
}

/// Creates an event aggregator. Returns its bound methods:
/// `record(fingerprint, event)` (true: emit it now; false: suppressed),
/// `poll()`, `flush()`, `nextDueMs()` (ms until `poll` has work, -1 when
/// nothing is tracked) and `size()`.
#[napi(js_name = "aggregatorCreate")]
pub fn aggregator_create(env: &Env, options: AggregatorOptions) -> napi::Result<Object<'_>> {
    let aggregator = guard(env, || {
        EventAggregator::<String, String>::new(aggregator_config(&options)?)
            .map(|a| Rc::new(RefCell::new(a)))
            .map_err(|e| from_config_ms(&e, &["window"]))
    })?;
    let mut object = Object::new(env)?;
    let a = Rc::clone(&aggregator);
    bind::method(env, &mut object, "record", move |ctx| {
        let fingerprint: String = bind::arg(ctx, 0, "fingerprint")?;
        let event: String = bind::arg(ctx, 1, "event")?;
        Ok(borrow(&a)?.record(fingerprint, event).is_some())
    })?;
    let a = Rc::clone(&aggregator);
    bind::method(env, &mut object, "poll", move |_| {
        Ok(to_js(borrow(&a)?.poll()))
    })?;
    let a = Rc::clone(&aggregator);
    bind::method(env, &mut object, "flush", move |_| {
        Ok(to_js(borrow(&a)?.flush()))
    })?;
    let a = Rc::clone(&aggregator);
    bind::method(env, &mut object, "nextDueMs", move |_| {
        Ok(borrow(&a)?.next_due().map_or(-1.0, |due| {
            due.saturating_duration_since(Instant::now()).as_secs_f64() * 1000.0
        }))
    })?;
    bind::method(env, &mut object, "size", move |_| {
        Ok(borrow(&aggregator)?.len() as f64)
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
            hysteresis_config(&HysteresisOptions::default()).unwrap(),
            HysteresisConfig::default()
        );
        assert_eq!(
            aggregator_config(&AggregatorOptions::default()).unwrap(),
            EventAggregatorConfig::default()
        );
    }

    #[test]
    fn invalid_options_name_the_js_option() {
        let cases = [
            (
                HysteresisOptions {
                    high: Some(0.1),
                    ..Default::default()
                },
                "high",
            ),
            (
                HysteresisOptions {
                    low: Some(f64::INFINITY),
                    ..Default::default()
                },
                "low",
            ),
            (
                HysteresisOptions {
                    fire_after: Some(0.0),
                    ..Default::default()
                },
                "fireAfter",
            ),
            (
                HysteresisOptions {
                    clear_after: Some(0.0),
                    ..Default::default()
                },
                "clearAfter",
            ),
            (
                HysteresisOptions {
                    direction: Some("up".into()),
                    ..Default::default()
                },
                "direction",
            ),
        ];
        for (options, name) in cases {
            let err = hysteresis_config(&options).unwrap_err();
            assert_eq!(err.code(), INVALID_ARG);
            assert!(err.message().contains(name), "{name}: {}", err.message());
        }
        for (options, name) in [
            (
                AggregatorOptions {
                    window_ms: Some(0.0),
                    ..Default::default()
                },
                "windowMs",
            ),
            (
                AggregatorOptions {
                    max_fingerprints: Some(0.0),
                    ..Default::default()
                },
                "maxFingerprints",
            ),
        ] {
            let err = aggregator_config(&options).unwrap_err();
            assert!(err.message().contains(name), "{name}: {}", err.message());
        }
    }
}
