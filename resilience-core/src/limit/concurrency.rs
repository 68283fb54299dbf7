//! [`ConcurrencyLimit`]: a bulkhead with a bounded FIFO wait queue.
//!
//! # Memory ordering
//!
//! The limit's hot state is one `AtomicU64`, `state`, packing
//! `in_flight` (bits 0..32), `limit` (bits 32..63) and a `WAITERS` flag
//! (bit 63) that is set while the wait queue is non-empty.
//!
//! * **Fast path.** `try_acquire` (and the first step of `acquire`) is one
//!   compare-and-swap that increments `in_flight` when it is below `limit`
//!   and `WAITERS` is clear; it succeeds with `Acquire`. Dropping a permit
//!   decrements `in_flight` with a `Release` CAS when `WAITERS` is clear.
//!   Release/acquire pairs on `state` make everything a permit holder did
//!   before dropping its permit visible to the next holder, as with any
//!   semaphore.
//! * **Slow path.** The wait queue lives behind a `Mutex`. `WAITERS` is only
//!   set or cleared while that lock is held, and it is set with a CAS on the
//!   same word the fast paths use, so an enqueuing caller and a releasing
//!   permit cannot miss each other: either the release's CAS lands first
//!   (the enqueuer then sees free capacity and takes it instead of queueing),
//!   or the flag lands first (the release then fails its fast CAS and goes to
//!   the lock to hand its capacity to the first waiter). Handing a permit to
//!   a waiter leaves `in_flight` unchanged and happens under the lock, which
//!   orders it with the waiter's observation of the grant.
//! * **Grants.** Waiters get increasing ids and the queue is ordered by id;
//!   grants always pop the front. A waiter therefore knows it owns a permit
//!   when its id is `<= last_granted` (read under the lock), without a
//!   per-waiter allocation.
//! * `queued` and the average hold time are plain `Relaxed` statistics.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::PoisonError;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::clock::{Clock, SharedClock, Sleep, saturating_add};
use crate::error::ConfigError;
use crate::sync::{Arc, AtomicU64, AtomicUsize, Mutex, MutexGuard};

use super::config::{ConcurrencyLimitConfig, validate_max_concurrent};
use super::error::Overloaded;
use super::permit::ConcurrencyPermit;

const IN_FLIGHT_MASK: u64 = 0xFFFF_FFFF;
const LIMIT_SHIFT: u32 = 32;
const LIMIT_MASK: u64 = 0x7FFF_FFFF;
const WAITERS: u64 = 1 << 63;

#[inline]
fn in_flight_of(state: u64) -> u64 {
    state & IN_FLIGHT_MASK
}

#[inline]
fn limit_of(state: u64) -> u64 {
    (state >> LIMIT_SHIFT) & LIMIT_MASK
}

#[inline]
fn has_waiters(state: u64) -> bool {
    state & WAITERS != 0
}

/// At least half of the limit is in use: only then is `retry_after` likely
/// to be needed soon, so only then are hold times sampled (keeping clock
/// reads off the uncontended path).
#[inline]
fn is_busy(state: u64) -> bool {
    in_flight_of(state) * 2 >= limit_of(state)
}

fn with_limit(state: u64, limit: u64) -> u64 {
    (state & !(LIMIT_MASK << LIMIT_SHIFT)) | ((limit & LIMIT_MASK) << LIMIT_SHIFT)
}

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

pub(super) struct Inner {
    /// Packed `in_flight | limit << 32 | WAITERS`; see `# Memory ordering`.
    state: AtomicU64,
    waiters: Mutex<Waiters>,
    /// Mirror of `waiters.queue.len()` for lock-free reads.
    queued: AtomicUsize,
    /// Exponential moving average of sampled permit hold times, in nanos.
    avg_hold_nanos: AtomicU64,
    /// The validated config; `max_concurrent` is only the initial limit.
    config: ConcurrencyLimitConfig,
    pub(super) clock: SharedClock,
}

struct Waiters {
    /// Ordered by `id`; grants pop the front.
    queue: VecDeque<Entry>,
    next_id: u64,
    /// Every waiter with an id `<= last_granted` that is not cancelled owns
    /// a permit.
    last_granted: u64,
}

struct Entry {
    id: u64,
    waker: Option<Waker>,
}

impl Waiters {
    fn position(&self, id: u64) -> Option<usize> {
        self.queue.binary_search_by_key(&id, |e| e.id).ok()
    }
}

impl ConcurrencyLimit {
    /// A limit on the system clock.
    pub fn new(config: ConcurrencyLimitConfig) -> Result<Self, ConfigError> {
        Self::with_clock(config, SharedClock::system())
    }

    /// A limit whose queue timeouts and hold-time estimates use `clock`.
    pub fn with_clock(
        config: ConcurrencyLimitConfig,
        clock: impl Clock,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        let limit = config.max_concurrent as u64;
        Ok(ConcurrencyLimit {
            inner: Arc::new(Inner {
                state: AtomicU64::new(with_limit(0, limit)),
                waiters: Mutex::new(Waiters {
                    queue: VecDeque::new(),
                    next_id: 1,
                    last_granted: 0,
                }),
                queued: AtomicUsize::new(0),
                avg_hold_nanos: AtomicU64::new(0),
                config,
                clock: clock.into_shared(),
            }),
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
        if old != new {
            tracing::info!(old, new, "concurrency limit changed");
        }
        Ok(())
    }
}

impl fmt::Debug for ConcurrencyLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConcurrencyLimit")
            .field("in_flight", &self.in_flight())
            .field("max_concurrent", &self.max_concurrent())
            .field("queued", &self.queued())
            .field("max_queued", &self.inner.config.max_queued)
            .finish_non_exhaustive()
    }
}

impl Inner {
    /// One permit in this many (per thread) acquired while the limit is
    /// busy has its hold time sampled.
    pub(super) const HOLD_SAMPLE_EVERY: u32 = 16;

    fn lock(&self) -> MutexGuard<'_, Waiters> {
        // Every critical section leaves `Waiters` consistent before anything
        // that could panic, so a poisoned lock is still usable.
        self.waiters.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// One CAS loop: increments `in_flight` if below the limit and nobody
    /// waits. Returns the state installed, or on failure the state observed.
    #[inline]
    fn try_acquire_fast(&self) -> Result<u64, u64> {
        let mut current = self.state.load(Relaxed);
        loop {
            if has_waiters(current) || in_flight_of(current) >= limit_of(current) {
                return Err(current);
            }
            match self
                .state
                .compare_exchange_weak(current, current + 1, Acquire, Relaxed)
            {
                Ok(_) => return Ok(current + 1),
                Err(actual) => current = actual,
            }
        }
    }

    /// Releases one permit: a CAS when nobody waits, else the locked handoff.
    #[inline]
    pub(super) fn release(&self) {
        let mut current = self.state.load(Relaxed);
        loop {
            if has_waiters(current) && in_flight_of(current) <= limit_of(current) {
                return self.release_slow();
            }
            match self
                .state
                .compare_exchange_weak(current, current - 1, Release, Relaxed)
            {
                Ok(_) => return,
                Err(actual) => current = actual,
            }
        }
    }

    #[cold]
    #[inline(never)]
    fn release_slow(&self) {
        let mut waiters = self.lock();
        let wake = self.release_locked(&mut waiters);
        drop(waiters);
        if let Some(waker) = wake {
            waker.wake();
        }
    }

    /// Releases one permit with the queue locked: hands it to the first
    /// waiter when there is room under the limit, else decrements.
    fn release_locked(&self, waiters: &mut Waiters) -> Option<Waker> {
        let mut current = self.state.load(Acquire);
        loop {
            if in_flight_of(current) <= limit_of(current)
                && let Some(entry) = waiters.queue.pop_front()
            {
                // Hand off: `in_flight` stays the same, the permit changes
                // owner.
                waiters.last_granted = entry.id;
                self.after_dequeue(waiters);
                return entry.waker;
            }
            match self
                .state
                .compare_exchange_weak(current, current - 1, AcqRel, Acquire)
            {
                Ok(_) => return None,
                Err(actual) => current = actual,
            }
        }
    }

    /// Admits waiters while there is room under the limit (after the limit
    /// was raised).
    fn grant_free_capacity(&self, waiters: &mut Waiters) -> Vec<Waker> {
        let mut wake = Vec::new();
        let mut current = self.state.load(Acquire);
        while !waiters.queue.is_empty() && in_flight_of(current) < limit_of(current) {
            match self
                .state
                .compare_exchange_weak(current, current + 1, AcqRel, Acquire)
            {
                Ok(_) => {
                    if let Some(entry) = waiters.queue.pop_front() {
                        waiters.last_granted = entry.id;
                        wake.extend(entry.waker);
                    }
                    current += 1;
                }
                Err(actual) => current = actual,
            }
        }
        self.after_dequeue(waiters);
        wake
    }

    /// Keeps `queued` and the `WAITERS` flag in step with the queue.
    fn after_dequeue(&self, waiters: &Waiters) {
        self.queued.store(waiters.queue.len(), Relaxed);
        if waiters.queue.is_empty() {
            self.state.fetch_and(!WAITERS, AcqRel);
        }
    }

    #[cold]
    #[inline(never)]
    pub(super) fn record_hold_since(&self, start: Instant) {
        self.record_hold(self.clock.now().saturating_duration_since(start));
    }

    /// Folds one permit hold time into the moving average (weight 1/8).
    /// Racing updates may lose a sample; it is only a hint.
    pub(super) fn record_hold(&self, hold: Duration) {
        let sample = u64::try_from(hold.as_nanos()).unwrap_or(u64::MAX);
        let average = self.avg_hold_nanos.load(Relaxed);
        let next = if average == 0 {
            sample
        } else {
            let delta = (i128::from(sample) - i128::from(average)) / 8;
            (i128::from(average) + delta).clamp(1, i128::from(u64::MAX)) as u64
        };
        self.avg_hold_nanos.store(next.max(1), Relaxed);
    }

    /// `average hold × position / limit`, clamped to the configured bounds.
    fn retry_after(&self, position: usize, limit: u64) -> Duration {
        let average = self.avg_hold_nanos.load(Relaxed);
        if average == 0 {
            return self.config.min_retry_after;
        }
        let estimate = average as f64 * position as f64 / limit.max(1) as f64;
        let estimate = Duration::from_secs_f64(
            (estimate / 1e9).min(self.config.max_retry_after.as_secs_f64()),
        );
        estimate.clamp(self.config.min_retry_after, self.config.max_retry_after)
    }

    #[cold]
    #[inline(never)]
    fn shed_full(&self, state: u64) -> Overloaded {
        self.shed(state, self.queued.load(Relaxed), "no permit free")
    }

    fn shed(&self, state: u64, queued: usize, reason: &'static str) -> Overloaded {
        let retry_after = self.retry_after(queued.saturating_add(1), limit_of(state));
        tracing::debug!(
            in_flight = in_flight_of(state),
            queued,
            max_concurrent = limit_of(state),
            max_queued = self.config.max_queued,
            retry_after_ms = retry_after.as_millis() as u64,
            reason,
            "request shed by concurrency limit"
        );
        Overloaded { retry_after }
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
                return Poll::Ready(Err(inner.shed(current, queued, "wait queue full")));
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
            tracing::debug!(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_packing_round_trips() {
        let state = with_limit(0, 7) + 3;
        assert_eq!(in_flight_of(state), 3);
        assert_eq!(limit_of(state), 7);
        assert!(!has_waiters(state));
        let state = with_limit(state | WAITERS, LIMIT_MASK);
        assert_eq!(in_flight_of(state), 3);
        assert_eq!(limit_of(state), LIMIT_MASK);
        assert!(has_waiters(state));
    }
}
