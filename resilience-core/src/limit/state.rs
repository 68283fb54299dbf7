//! The shared state of a [`ConcurrencyLimit`](super::ConcurrencyLimit) and
//! its permits: the packed atomic word, the FIFO wait queue and the
//! hold-time estimate. A leaf of `limit/`: `concurrency` (acquiring) and
//! `permit` (releasing) both build on it.

use std::collections::VecDeque;
use std::sync::PoisonError;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};
use std::task::Waker;
use std::time::{Duration, Instant};

use crate::clock::{Clock, SharedClock};
use crate::name::InstanceName;
use crate::obs::{Counter, Gauge};
use crate::sync::{AtomicU64, AtomicUsize, Mutex, MutexGuard};

use super::config::ConcurrencyLimitConfig;
use super::error::Overloaded;

const IN_FLIGHT_MASK: u64 = 0xFFFF_FFFF;
const LIMIT_SHIFT: u32 = 32;
pub(super) const LIMIT_MASK: u64 = 0x7FFF_FFFF;
pub(super) const WAITERS: u64 = 1 << 63;
/// The shed reason of a caller that found the wait queue full.
pub(super) const QUEUE_FULL: &str = "wait queue full";

#[inline]
pub(super) fn in_flight_of(state: u64) -> u64 {
    state & IN_FLIGHT_MASK
}

#[inline]
pub(super) fn limit_of(state: u64) -> u64 {
    (state >> LIMIT_SHIFT) & LIMIT_MASK
}

#[inline]
pub(super) fn has_waiters(state: u64) -> bool {
    state & WAITERS != 0
}

/// At least half of the limit is in use: only then is `retry_after` likely
/// to be needed soon, so only then are hold times sampled (keeping clock
/// reads off the uncontended path).
#[inline]
pub(super) fn is_busy(state: u64) -> bool {
    in_flight_of(state) * 2 >= limit_of(state)
}

pub(super) fn with_limit(state: u64, limit: u64) -> u64 {
    (state & !(LIMIT_MASK << LIMIT_SHIFT)) | ((limit & LIMIT_MASK) << LIMIT_SHIFT)
}

// # Memory ordering
//
// The limit's hot state is one `AtomicU64`, `state`, packing
// `in_flight` (bits 0..32), `limit` (bits 32..63) and a `WAITERS` flag
// (bit 63) that is set while the wait queue is non-empty.
//
// * **Fast path.** `try_acquire` (and the first step of `acquire`) is one
//   compare-and-swap that increments `in_flight` when it is below `limit`
//   and `WAITERS` is clear; it succeeds with `Acquire`. Dropping a permit
//   decrements `in_flight` with a `Release` CAS when `WAITERS` is clear.
//   Release/acquire pairs on `state` make everything a permit holder did
//   before dropping its permit visible to the next holder, as with any
//   semaphore.
// * **Slow path.** The wait queue lives behind a `Mutex`. `WAITERS` is only
//   set or cleared while that lock is held, and it is set with a CAS on the
//   same word the fast paths use, so an enqueuing caller and a releasing
//   permit cannot miss each other: either the release's CAS lands first
//   (the enqueuer then sees free capacity and takes it instead of queueing),
//   or the flag lands first (the release then fails its fast CAS and goes to
//   the lock to hand its capacity to the first waiter). Handing a permit to
//   a waiter leaves `in_flight` unchanged and happens under the lock, which
//   orders it with the waiter's observation of the grant.
// * **Grants.** Waiters get increasing ids and the queue is ordered by id;
//   grants always pop the front. A waiter therefore knows it owns a permit
//   when its id is `<= last_granted` (read under the lock), without a
//   per-waiter allocation.
// * `queued` and the average hold time are `Relaxed` statistics; `queued`
//   is only written under the lock. `set_max_concurrent` rewrites the limit
//   bits with a CAS while holding the lock, then admits waiters if the new
//   limit leaves room.
pub(super) struct Inner {
    /// Packed `in_flight | limit << 32 | WAITERS`; see "Memory ordering" above.
    pub(super) state: AtomicU64,
    pub(super) waiters: Mutex<Waiters>,
    /// Mirror of `waiters.queue.len()` for lock-free reads.
    pub(super) queued: AtomicUsize,
    /// Exponential moving average of sampled permit hold times, in nanos.
    /// A statistic, not synchronization: a plain `std` atomic, kept out of
    /// the loom model (which permits are sampled depends on a thread-local
    /// counter that loom does not control).
    pub(super) avg_hold_nanos: std::sync::atomic::AtomicU64,
    /// The validated config; `max_concurrent` is only the initial limit.
    pub(super) config: ConcurrencyLimitConfig,
    pub(super) clock: SharedClock,
    pub(super) name: InstanceName,
    pub(super) obs: LimitObs,
}

/// The metric handles of a concurrency limit.
#[derive(Debug)]
pub(super) struct LimitObs {
    pub(super) in_flight: Gauge,
    pub(super) queued: Gauge,
    pub(super) max_concurrent: Gauge,
    pub(super) admitted: Counter,
    pub(super) shed_full: Counter,
    pub(super) shed_queue_full: Counter,
    pub(super) shed_queue_timeout: Counter,
}

impl LimitObs {
    pub(super) fn register(name: &InstanceName, state: u64, queued: usize) -> Self {
        const SHED: &str = "breakwater_limit_shed_total";
        let obs = LimitObs {
            in_flight: Gauge::register("breakwater_limit_in_flight", name, &[]),
            queued: Gauge::register("breakwater_limit_queued", name, &[]),
            max_concurrent: Gauge::register("breakwater_limit_max_concurrent", name, &[]),
            admitted: Counter::register("breakwater_limit_admitted_total", name, &[]),
            shed_full: Counter::register(SHED, name, &[("reason", "no_permit")]),
            shed_queue_full: Counter::register(SHED, name, &[("reason", "queue_full")]),
            shed_queue_timeout: Counter::register(SHED, name, &[("reason", "queue_timeout")]),
        };
        obs.in_flight.set(in_flight_of(state) as f64);
        obs.queued.set(queued as f64);
        obs.max_concurrent.set(limit_of(state) as f64);
        obs
    }
}

pub(super) struct Waiters {
    /// Ordered by `id`; grants pop the front.
    pub(super) queue: VecDeque<Entry>,
    pub(super) next_id: u64,
    /// Every waiter with an id `<= last_granted` that is not cancelled owns
    /// a permit.
    pub(super) last_granted: u64,
}

pub(super) struct Entry {
    pub(super) id: u64,
    pub(super) waker: Option<Waker>,
}

impl Waiters {
    pub(super) fn position(&self, id: u64) -> Option<usize> {
        self.queue.binary_search_by_key(&id, |e| e.id).ok()
    }
}

impl Inner {
    /// The state of a new limit; `config` is validated.
    pub(super) fn new(
        config: ConcurrencyLimitConfig,
        clock: SharedClock,
        name: InstanceName,
    ) -> Self {
        let limit = config.max_concurrent as u64;
        Inner {
            obs: LimitObs::register(&name, with_limit(0, limit), 0),
            name,
            state: AtomicU64::new(with_limit(0, limit)),
            waiters: Mutex::new(Waiters {
                queue: VecDeque::new(),
                next_id: 1,
                last_granted: 0,
            }),
            queued: AtomicUsize::new(0),
            avg_hold_nanos: std::sync::atomic::AtomicU64::new(0),
            config,
            clock,
        }
    }

    /// One permit in this many (per thread) acquired while the limit is
    /// busy has its hold time sampled.
    pub(super) const HOLD_SAMPLE_EVERY: u32 = 16;

    pub(super) fn lock(&self) -> MutexGuard<'_, Waiters> {
        // Every critical section leaves `Waiters` consistent before anything
        // that could panic, so a poisoned lock is still usable.
        self.waiters.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// One CAS loop: increments `in_flight` if below the limit and nobody
    /// waits. Returns the state installed, or on failure the state observed.
    #[inline]
    pub(super) fn try_acquire_fast(&self) -> Result<u64, u64> {
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
    pub(super) fn release_locked(&self, waiters: &mut Waiters) -> Option<Waker> {
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
    pub(super) fn grant_free_capacity(&self, waiters: &mut Waiters) -> Vec<Waker> {
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
    pub(super) fn after_dequeue(&self, waiters: &Waiters) {
        self.queued.store(waiters.queue.len(), Relaxed);
        self.obs.queued.set(waiters.queue.len() as f64);
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
    pub(super) fn retry_after(&self, position: usize, limit: u64) -> Duration {
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
    pub(super) fn shed_full(&self, state: u64) -> Overloaded {
        self.shed(state, self.queued.load(Relaxed), "no permit free")
    }

    pub(super) fn shed(&self, state: u64, queued: usize, reason: &'static str) -> Overloaded {
        if reason == QUEUE_FULL {
            self.obs.shed_queue_full.inc();
        } else {
            self.obs.shed_full.inc();
        }
        let retry_after = self.retry_after(queued.saturating_add(1), limit_of(state));
        tracing::debug!(
            name = %self.name,
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
