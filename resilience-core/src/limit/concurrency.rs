//! [`ConcurrencyLimit`]: a bulkhead with a bounded FIFO wait queue.
//!
//! The state it shares with its permits (and how the lock-free fast path and
//! the locked wait queue fit together) is in `state.rs`.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed};
use std::task::{Context, Poll};

use crate::clock::{Clock, SharedClock, Sleep, saturating_add};
use crate::error::ConfigError;
use crate::name::{InstanceName, Named};
use crate::sync::Arc;

use super::config::{ConcurrencyLimitConfig, validate_max_concurrent};
use super::error::Overloaded;
use super::permit::ConcurrencyPermit;
use super::state::{
    Entry, Inner, QUEUE_FULL, WAITERS, has_waiters, in_flight_of, is_busy, limit_of, with_limit,
};

/// A bulkhead: at most `max_concurrent` permits outstanding, at most
/// `max_queued` callers waiting for one in FIFO order, everyone else shed at
/// once with [`Overloaded`].
///
/// Cheap to clone (an `Arc` inside); clones share the same capacity. See the
/// [module documentation](super) for why and an example.
#[derive(Clone)]
pub struct ConcurrencyLimit {
    inner: Arc<Inner>,
}

impl ConcurrencyLimit {
    /// A limit on the system clock.
    pub fn new(config: ConcurrencyLimitConfig) -> Result<Self, ConfigError> {
        Self::with_clock(config, SharedClock::system())
    }

    /// A limit built from a [`Named`] configuration, on `clock`.
    ///
    /// ```
    /// use resilience_core::Named;
    /// use resilience_core::clock::SharedClock;
    /// use resilience_core::limit::{ConcurrencyLimit, ConcurrencyLimitConfig};
    ///
    /// let config: Named<ConcurrencyLimitConfig> =
    ///     serde_json::from_str(r#"{ "name": "allocator", "max_concurrent": 8 }"#)?;
    /// let limit = ConcurrencyLimit::from_named(config, SharedClock::system())?;
    /// assert_eq!(limit.name().as_str(), "allocator");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_named(
        config: Named<ConcurrencyLimitConfig>,
        clock: impl Clock,
    ) -> Result<Self, ConfigError> {
        let name = config.instance_name()?;
        Self::build(config.config, clock, name)
    }

    /// Names the limit: the `name` field of its tracing events and the
    /// `name` label of its metrics. Call it right after construction, before
    /// cloning the limit: a limit that already has clones keeps its name
    /// (and logs a warning), since the clones share it.
    #[must_use]
    pub fn named(mut self, name: InstanceName) -> Self {
        self.rename(name);
        self
    }

    /// [`Self::named`] in place.
    pub(super) fn rename(&mut self, name: InstanceName) {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            let queued = inner.queued.load(Relaxed);
            inner.obs = super::state::LimitObs::register(&name, inner.state.load(Acquire), queued);
            inner.name = name;
        } else {
            tracing::warn!(
                name = %self.inner.name,
                new_name = %name,
                "ConcurrencyLimit::named on a limit that has clones: the name is unchanged; name it before cloning"
            );
        }
    }

    /// The instance name (`""` when unnamed).
    pub fn name(&self) -> &InstanceName {
        &self.inner.name
    }

    /// A limit whose queue timeouts and hold-time estimates use `clock`.
    pub fn with_clock(
        config: ConcurrencyLimitConfig,
        clock: impl Clock,
    ) -> Result<Self, ConfigError> {
        Self::build(config, clock, InstanceName::unnamed())
    }

    pub(super) fn build(
        config: ConcurrencyLimitConfig,
        clock: impl Clock,
        name: InstanceName,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(ConcurrencyLimit {
            inner: Arc::new(Inner::new(config, clock.into_shared(), name)),
        })
    }

    /// Takes a permit if one is free and nobody is queued for one; never
    /// waits. Otherwise returns [`Overloaded`] with a `retry_after` hint.
    #[inline]
    pub fn try_acquire(&self) -> Result<ConcurrencyPermit, Overloaded> {
        match self.inner.try_acquire_fast() {
            Ok(state) => Ok(ConcurrencyPermit::new(self.inner.clone(), is_busy(state))),
            Err(state) => Err(self.inner.shed_full(state)),
        }
    }

    /// Takes a permit, waiting for one in a bounded FIFO queue.
    ///
    /// Returns [`Overloaded`] at once when every permit is taken and the
    /// queue is full (or `max_queued` is 0), and after `queue_timeout` on
    /// the limit's clock when the caller waited that long.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future frees its queue slot. If a permit was handed to
    /// it at the same moment, the permit is passed on to the next waiter (or
    /// returned), never lost.
    pub async fn acquire(&self) -> Result<ConcurrencyPermit, Overloaded> {
        AcquireFuture {
            inner: &self.inner,
            state: AcquireState::Init,
        }
        .await
    }

    /// Permits currently held (may exceed [`Self::max_concurrent`] for a
    /// while after the limit was lowered).
    pub fn in_flight(&self) -> usize {
        in_flight_of(self.inner.state.load(Acquire)) as usize
    }

    /// Callers currently waiting in the queue.
    pub fn queued(&self) -> usize {
        self.inner.queued.load(Relaxed)
    }

    /// The current limit.
    pub fn max_concurrent(&self) -> usize {
        limit_of(self.inner.state.load(Acquire)) as usize
    }

    /// The queue bound from the config.
    pub fn max_queued(&self) -> usize {
        self.inner.config.max_queued
    }

    /// Changes the limit at run time (used by
    /// [`AdaptiveLimit`](super::AdaptiveLimit)).
    ///
    /// Raising it hands the new capacity to queued callers at once. Lowering
    /// it revokes no permit: `in_flight` drains down to the new limit as
    /// permits are dropped, and no waiter is admitted until it is below.
    /// Errors (and changes nothing) unless `1 <= max_concurrent <=
    /// MAX_CONCURRENT`.
    pub fn set_max_concurrent(&self, max_concurrent: usize) -> Result<(), ConfigError> {
        validate_max_concurrent("max_concurrent", max_concurrent)?;
        let new = max_concurrent as u64;
        let mut waiters = self.inner.lock();
        let mut current = self.inner.state.load(Relaxed);
        let old = loop {
            match self.inner.state.compare_exchange_weak(
                current,
                with_limit(current, new),
                AcqRel,
                Relaxed,
            ) {
                Ok(previous) => break limit_of(previous),
                Err(actual) => current = actual,
            }
        };
        let wake = self.inner.grant_free_capacity(&mut waiters);
        drop(waiters);
        for waker in wake {
            waker.wake();
        }
        self.inner.obs.max_concurrent.set(new as f64);
        if old != new {
            tracing::info!(name = %self.inner.name, old, new, "concurrency limit changed");
        }
        Ok(())
    }
}

impl fmt::Debug for ConcurrencyLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConcurrencyLimit")
            .field("name", &self.inner.name)
            .field("in_flight", &self.in_flight())
            .field("max_concurrent", &self.max_concurrent())
            .field("queued", &self.queued())
            .field("max_queued", &self.inner.config.max_queued)
            .finish_non_exhaustive()
    }
}

/// The future behind [`ConcurrencyLimit::acquire`].
struct AcquireFuture<'a> {
    inner: &'a Arc<Inner>,
    state: AcquireState,
}

enum AcquireState {
    Init,
    Queued { id: u64, timeout: Option<Sleep> },
    Done,
}

impl AcquireFuture<'_> {
    /// Fast path, then either a permit, a shed, or a queue slot.
    fn start(&mut self, cx: &Context<'_>) -> Poll<Result<ConcurrencyPermit, Overloaded>> {
        let inner = self.inner;
        let state = match inner.try_acquire_fast() {
            Ok(state) => {
                return Poll::Ready(Ok(ConcurrencyPermit::new(inner.clone(), is_busy(state))));
            }
            Err(state) => state,
        };
        if inner.config.max_queued == 0 {
            return Poll::Ready(Err(inner.shed(
                state,
                0,
                "no permit free, queueing disabled",
            )));
        }
        let mut waiters = inner.lock();
        let mut current = inner.state.load(Acquire);
        loop {
            if waiters.queue.is_empty() && in_flight_of(current) < limit_of(current) {
                match inner
                    .state
                    .compare_exchange_weak(current, current + 1, AcqRel, Acquire)
                {
                    Ok(_) => {
                        drop(waiters);
                        let busy = is_busy(current + 1);
                        return Poll::Ready(Ok(ConcurrencyPermit::new(inner.clone(), busy)));
                    }
                    Err(actual) => current = actual,
                }
                continue;
            }
            if waiters.queue.len() >= inner.config.max_queued {
                let queued = waiters.queue.len();
                drop(waiters);
                return Poll::Ready(Err(inner.shed(current, queued, QUEUE_FULL)));
            }
            if has_waiters(current) {
                break;
            }
            match inner
                .state
                .compare_exchange_weak(current, current | WAITERS, AcqRel, Acquire)
            {
                Ok(_) => break,
                Err(actual) => current = actual,
            }
        }
        let id = waiters.next_id;
        waiters.next_id += 1;
        waiters.queue.push_back(Entry {
            id,
            waker: Some(cx.waker().clone()),
        });
        inner.queued.store(waiters.queue.len(), Relaxed);
        inner.obs.queued.set(waiters.queue.len() as f64);
        drop(waiters);
        let timeout = inner.config.queue_timeout.map(|t| {
            inner
                .clock
                .sleep_until(saturating_add(inner.clock.now(), t))
        });
        self.state = AcquireState::Queued { id, timeout };
        Poll::Pending
    }
}

impl Future for AcquireFuture<'_> {
    type Output = Result<ConcurrencyPermit, Overloaded>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if matches!(this.state, AcquireState::Init) {
            let poll = this.start(cx);
            if poll.is_ready() {
                this.state = AcquireState::Done;
                return poll;
            }
        }
        let inner = this.inner;
        let AcquireState::Queued { id, timeout } = &mut this.state else {
            // Polled after completion: behave like a fused future.
            return Poll::Pending;
        };
        let id = *id;
        // Poll the timer outside the queue lock; a grant still wins a tie.
        let timed_out = timeout
            .as_mut()
            .is_some_and(|sleep| sleep.as_mut().poll(cx).is_ready());
        let mut waiters = inner.lock();
        if id <= waiters.last_granted {
            drop(waiters);
            this.state = AcquireState::Done;
            // A queued caller only gets a permit when the limit is saturated.
            return Poll::Ready(Ok(ConcurrencyPermit::new(inner.clone(), true)));
        }
        let position = waiters.position(id);
        if timed_out {
            if let Some(index) = position {
                waiters.queue.remove(index);
            }
            inner.after_dequeue(&waiters);
            let queued = waiters.queue.len();
            drop(waiters);
            this.state = AcquireState::Done;
            let state = inner.state.load(Relaxed);
            let position = position.unwrap_or(queued);
            let retry_after = inner.retry_after(position.saturating_add(1), limit_of(state));
            inner.obs.shed_queue_timeout.inc();
            tracing::debug!(
                name = %inner.name,
                in_flight = in_flight_of(state),
                queued,
                max_concurrent = limit_of(state),
                retry_after_ms = retry_after.as_millis() as u64,
                "request shed by concurrency limit: queue timeout elapsed"
            );
            return Poll::Ready(Err(Overloaded { retry_after }));
        }
        if let Some(entry) = position.and_then(|index| waiters.queue.get_mut(index)) {
            match &mut entry.waker {
                Some(waker) if waker.will_wake(cx.waker()) => {}
                slot => *slot = Some(cx.waker().clone()),
            }
        }
        Poll::Pending
    }
}

impl Drop for AcquireFuture<'_> {
    fn drop(&mut self) {
        let AcquireState::Queued { id, .. } = self.state else {
            return;
        };
        let inner = self.inner;
        let mut waiters = inner.lock();
        if id <= waiters.last_granted {
            // A permit was handed to us as we were dropped: pass it on.
            let wake = inner.release_locked(&mut waiters);
            drop(waiters);
            if let Some(waker) = wake {
                waker.wake();
            }
            return;
        }
        if let Some(index) = waiters.position(id) {
            waiters.queue.remove(index);
        }
        inner.after_dequeue(&waiters);
    }
}
