//! `ConcurrencyLimit`: resilience-core's bulkhead with a bounded FIFO queue
//! and load shedding.
//!
//! `tryAcquire` is synchronous (one crossing; the permit stays in the
//! limit's [`Slots`] table until JS releases it). `acquire` tries the same
//! fast path in JS first and only when the limit is full waits in the
//! core's queue, as a future on the addon's tokio runtime, so the event loop
//! never blocks. A wait can be cancelled through a ticket (an `AbortSignal`
//! in JS): dropping the queued future frees its queue slot, and a permit
//! granted at that moment is passed on, never lost.

use std::cell::{RefCell, RefMut};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use napi::Env;
use napi::bindgen_prelude::{Object, PromiseRaw, within_runtime_if_available};
use napi_derive::napi;
use resilience_core::limit::{
    ConcurrencyLimit, ConcurrencyLimitConfig, ConcurrencyPermit, Overloaded,
};
use tokio::sync::oneshot;

use crate::bind;
use crate::error::{
    BwError, BwResult, INTERNAL, duration_ms, from_config_ms, guard, to_ms, whole_usize,
};
use crate::handles::{self, Handle, Slots};

/// A limit and the permits JS holds.
#[derive(Debug)]
pub struct LimitEntry {
    limit: ConcurrencyLimit,
    permits: Slots<ConcurrencyPermit>,
}

/// A limit entry shared by the table (for `limitAcquire`) and the bound
/// methods.
type Shared = Rc<RefCell<LimitEntry>>;

/// The two halves of a cancellation ticket: JS fires the sender, the queued
/// future listens on the receiver.
#[derive(Debug, Default)]
struct Ticket {
    cancel: Option<oneshot::Sender<()>>,
    cancelled: Option<oneshot::Receiver<()>>,
}

thread_local! {
    static LIMITS: RefCell<Slots<Shared>> = const { RefCell::new(Slots::new()) };
    static TICKETS: RefCell<Slots<Ticket>> = const { RefCell::new(Slots::new()) };
}

const WHAT: &str = "ConcurrencyLimit";
const MS_FIELDS: &[&str] = &["queue_timeout", "min_retry_after", "max_retry_after"];

/// Options of `new ConcurrencyLimit(...)`, type-checked by the JS wrapper.
#[napi(object)]
#[derive(Debug, Clone, Default)]
pub struct LimitOptions {
    /// Permits held at once (default 100).
    pub max_concurrent: Option<f64>,
    /// Callers that may wait for a permit (default 100; 0 sheds at once).
    pub max_queued: Option<f64>,
    /// How long a caller waits in the queue, in ms (default 1000).
    pub queue_timeout_ms: Option<f64>,
    /// `true`: queued callers wait without a timeout (`queueTimeoutMs: null`).
    pub no_queue_timeout: Option<bool>,
    /// Lower bound of `retryAfterMs` hints (default 10).
    pub min_retry_after_ms: Option<f64>,
    /// Upper bound of `retryAfterMs` hints (default 10000).
    pub max_retry_after_ms: Option<f64>,
}

/// How a queued `acquire` ended.
#[napi(object)]
#[derive(Debug, Clone)]
pub struct AcquireOutcome {
    /// The permit key, when one was granted.
    pub permit: Option<f64>,
    /// The shedding hint, when the request was shed.
    pub retry_after_ms: Option<f64>,
    /// The wait was cancelled through its ticket.
    pub cancelled: bool,
}

/// Occupancy of a limit.
#[napi(object)]
#[derive(Debug, Clone)]
pub struct LimitStats {
    /// Permits held.
    pub in_flight: f64,
    /// Callers waiting.
    pub queued: f64,
    /// The current limit.
    pub max_concurrent: f64,
    /// The queue bound.
    pub max_queued: f64,
}

/// Builds a validated config from JS options (defaults for unset ones).
pub fn limit_config(options: &LimitOptions) -> BwResult<ConcurrencyLimitConfig> {
    let d = ConcurrencyLimitConfig::default();
    let queue_timeout = if options.no_queue_timeout == Some(true) {
        None
    } else {
        match options.queue_timeout_ms {
            Some(ms) => Some(duration_ms("queueTimeoutMs", ms)?),
            None => d.queue_timeout,
        }
    };
    let config = ConcurrencyLimitConfig {
        max_concurrent: options
            .max_concurrent
            .map_or(Ok(d.max_concurrent), |n| whole_usize("maxConcurrent", n))?,
        max_queued: options
            .max_queued
            .map_or(Ok(d.max_queued), |n| whole_usize("maxQueued", n))?,
        queue_timeout,
        min_retry_after: options
            .min_retry_after_ms
            .map_or(Ok(d.min_retry_after), |ms| {
                duration_ms("minRetryAfterMs", ms)
            })?,
        max_retry_after: options
            .max_retry_after_ms
            .map_or(Ok(d.max_retry_after), |ms| {
                duration_ms("maxRetryAfterMs", ms)
            })?,
    };
    config
        .validate()
        .map_err(|e| from_config_ms(&e, MS_FIELDS))?;
    Ok(config)
}

fn release_limit(key: f64) {
    drop(handles::remove(&LIMITS, key));
}

fn borrow(entry: &RefCell<LimitEntry>) -> BwResult<RefMut<'_, LimitEntry>> {
    entry
        .try_borrow_mut()
        .map_err(|_| BwError::coded(INTERNAL, "concurrency limit re-entered during a call"))
}

fn with_limit<R>(key: f64, body: impl FnOnce(&mut LimitEntry) -> BwResult<R>) -> BwResult<R> {
    let shared = handles::with_entry(&LIMITS, key, WHAT, |entry| Ok(Rc::clone(entry)))?;
    let mut entry = borrow(&shared)?;
    body(&mut entry)
}

fn store(entry: &mut LimitEntry, permit: ConcurrencyPermit) -> BwResult<f64> {
    entry
        .permits
        .insert(permit)
        .ok_or_else(|| BwError::range("too many concurrency permits held"))
}

/// `try_acquire`, storing the permit: its key, or `-1 - retryAfterMs` when
/// the request is shed.
pub fn try_acquire(entry: &mut LimitEntry) -> BwResult<f64> {
    match entry.limit.try_acquire() {
        Ok(permit) => store(entry, permit),
        Err(shed) => Ok(-1.0 - to_ms(shed.retry_after)),
    }
}

/// Creates a limit. Returns `{ key, handle }` (for `limitAcquire`) and its
/// bound methods: `tryAcquire()` (a permit key >= 0, or `-1 -
/// retryAfterMs`), `release(permit)`, `inFlight()`, `stats()`,
/// `setMaxConcurrent(n)`.
#[napi(js_name = "limitCreate")]
pub fn create(env: &Env, options: LimitOptions) -> napi::Result<Object<'_>> {
    let (entry, key) = guard(env, || {
        let limit = ConcurrencyLimit::new(limit_config(&options)?)
            .map_err(|e| from_config_ms(&e, MS_FIELDS))?;
        let entry = Rc::new(RefCell::new(LimitEntry {
            limit,
            permits: Slots::new(),
        }));
        let key = handles::insert(&LIMITS, WHAT, Rc::clone(&entry))?;
        Ok((entry, key))
    })?;
    let mut object = Object::new(env)?;
    object.set("key", key)?;
    object.set("handle", Handle::new(key, release_limit))?;
    let e = Rc::clone(&entry);
    bind::method(env, &mut object, "tryAcquire", move |_| {
        try_acquire(&mut *borrow(&e)?)
    })?;
    let e = Rc::clone(&entry);
    bind::method(env, &mut object, "release", move |ctx| {
        let permit: f64 = bind::arg(ctx, 0, "permit")?;
        borrow(&e)?
            .permits
            .remove(permit)
            .map(drop)
            .ok_or_else(|| BwError::range("unknown or already released concurrency permit"))
    })?;
    let e = Rc::clone(&entry);
    bind::method(env, &mut object, "inFlight", move |_| {
        Ok(borrow(&e)?.limit.in_flight() as f64)
    })?;
    let e = Rc::clone(&entry);
    bind::method(env, &mut object, "stats", move |_| {
        let entry = borrow(&e)?;
        Ok(LimitStats {
            in_flight: entry.limit.in_flight() as f64,
            queued: entry.limit.queued() as f64,
            max_concurrent: entry.limit.max_concurrent() as f64,
            max_queued: entry.limit.max_queued() as f64,
        })
    })?;
    bind::method(env, &mut object, "setMaxConcurrent", move |ctx| {
        let n = whole_usize("maxConcurrent", bind::arg(ctx, 0, "maxConcurrent")?)?;
        let limit = borrow(&entry)?.limit.clone();
        limit
            .set_max_concurrent(n)
            .map_err(|e| from_config_ms(&e, MS_FIELDS))
    })?;
    Ok(object)
}

/// A cancellation ticket for one `limitAcquire` (an `AbortSignal` in JS).
#[napi(js_name = "limitTicket")]
pub fn ticket(env: Env) -> napi::Result<f64> {
    guard(&env, || {
        let (cancel, cancelled) = oneshot::channel();
        handles::insert(
            &TICKETS,
            "cancellation ticket",
            Ticket {
                cancel: Some(cancel),
                cancelled: Some(cancelled),
            },
        )
    })
}

/// Cancels the wait holding `ticket` (no-op once it ended).
#[napi(js_name = "limitCancel")]
pub fn cancel(env: Env, ticket: f64) -> napi::Result<()> {
    guard(&env, || {
        if let Some(mut ticket) = handles::remove(&TICKETS, ticket)
            && let Some(cancel) = ticket.cancel.take()
        {
            // The receiver may already be gone (the wait ended): fine.
            let _ = cancel.send(());
        }
        Ok(())
    })
}

/// What a queued acquire ends with: a permit, a shed, or `None` when
/// cancelled.
type Queued = Option<Result<ConcurrencyPermit, Overloaded>>;

/// Waits in the limit's FIFO queue for a permit. Resolves with the permit
/// key, the shedding hint, or `cancelled`. `ticket`: from `limitTicket`, or
/// a negative number for none.
///
/// The wait is polled once here, on the JS thread (inside the tokio runtime
/// context, for its timers), so the caller takes its place in the queue
/// during this call: FIFO order follows the order of the JS calls. The rest
/// of the wait runs on the addon's tokio runtime and never blocks the event
/// loop.
#[napi(js_name = "limitAcquire")]
pub fn acquire(env: &Env, key: f64, ticket: f64) -> napi::Result<PromiseRaw<'_, AcquireOutcome>> {
    let (mut wait, first) = guard(env, || {
        let limit = with_limit(key, |entry| Ok(entry.limit.clone()))?;
        let cancelled = if ticket >= 0.0 {
            handles::with_entry(&TICKETS, ticket, "cancellation ticket", |t| {
                Ok(t.cancelled.take())
            })?
        } else {
            None
        };
        let mut wait: Pin<Box<dyn Future<Output = Queued> + Send>> = Box::pin(async move {
            match cancelled {
                Some(cancelled) => tokio::select! {
                    biased;
                    outcome = limit.acquire() => Some(outcome),
                    _ = cancelled => None,
                },
                None => Some(limit.acquire().await),
            }
        });
        let first = within_runtime_if_available(|| {
            wait.as_mut().poll(&mut Context::from_waker(Waker::noop()))
        });
        Ok((wait, first))
    })?;
    env.spawn_future_with_callback(
        async move {
            Ok(match first {
                Poll::Ready(outcome) => outcome,
                Poll::Pending => wait.as_mut().await,
            })
        },
        move |_env, outcome| {
            if ticket >= 0.0 {
                drop(handles::remove(&TICKETS, ticket));
            }
            Ok(match outcome {
                Some(Ok(permit)) => {
                    // If the limit's wrapper is gone, dropping the permit
                    // releases it.
                    let stored = with_limit(key, |entry| store(entry, permit)).ok();
                    AcquireOutcome {
                        permit: stored,
                        retry_after_ms: None,
                        cancelled: stored.is_none(),
                    }
                }
                Some(Err(shed)) => AcquireOutcome {
                    permit: None,
                    retry_after_ms: Some(to_ms(shed.retry_after)),
                    cancelled: false,
                },
                None => AcquireOutcome {
                    permit: None,
                    retry_after_ms: None,
                    cancelled: true,
                },
            })
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::INVALID_ARG;
    use std::time::Duration;

    #[test]
    fn defaults_are_the_cores_and_null_disables_the_timeout() {
        assert_eq!(
            limit_config(&LimitOptions::default()).unwrap(),
            ConcurrencyLimitConfig::default()
        );
        let config = limit_config(&LimitOptions {
            no_queue_timeout: Some(true),
            queue_timeout_ms: Some(5.0),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(config.queue_timeout, None);
        let config = limit_config(&LimitOptions {
            queue_timeout_ms: Some(250.0),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(config.queue_timeout, Some(Duration::from_millis(250)));
    }

    #[test]
    fn invalid_options_name_the_js_option() {
        let cases = [
            (
                LimitOptions {
                    max_concurrent: Some(0.0),
                    ..Default::default()
                },
                "maxConcurrent",
            ),
            (
                LimitOptions {
                    queue_timeout_ms: Some(0.0),
                    ..Default::default()
                },
                "queueTimeoutMs",
            ),
            (
                LimitOptions {
                    min_retry_after_ms: Some(0.0),
                    ..Default::default()
                },
                "minRetryAfterMs",
            ),
            (
                LimitOptions {
                    max_retry_after_ms: Some(1.0),
                    ..Default::default()
                },
                "maxRetryAfterMs",
            ),
            (
                LimitOptions {
                    max_queued: Some(-1.0),
                    ..Default::default()
                },
                "maxQueued",
            ),
        ];
        for (options, name) in cases {
            let err = limit_config(&options).unwrap_err();
            assert_eq!(err.code(), INVALID_ARG);
            assert!(err.message().contains(name), "{name}: {}", err.message());
        }
    }

    #[test]
    fn a_shed_request_carries_its_hint() {
        let mut entry = LimitEntry {
            limit: ConcurrencyLimit::new(ConcurrencyLimitConfig {
                max_concurrent: 1,
                max_queued: 0,
                ..ConcurrencyLimitConfig::default()
            })
            .unwrap(),
            permits: Slots::new(),
        };
        let permit = entry.limit.try_acquire().unwrap();
        let held = store(&mut entry, permit).unwrap();
        let shed = entry.limit.try_acquire().unwrap_err();
        assert!(shed.retry_after >= Duration::from_millis(10));
        entry.permits.remove(held);
        assert_eq!(entry.limit.in_flight(), 0);
    }
}
