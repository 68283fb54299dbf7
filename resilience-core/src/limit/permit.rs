//! The RAII permit of a [`ConcurrencyLimit`](super::ConcurrencyLimit).

use std::cell::Cell;
use std::fmt;
use std::time::Instant;

use crate::clock::Clock;
use crate::sync::Arc;

use super::state::Inner;

/// One unit of the limit's capacity, held while the guarded work runs.
///
/// Dropping the permit releases its capacity: if callers are queued, the
/// capacity is handed to the first of them (FIFO) instead of being returned
/// to the pool, so a newcomer calling `try_acquire` cannot overtake them.
/// The permit owns a reference to the limit (`'static`, `Send`), so it can be
/// moved into a spawned task.
#[must_use = "the permit releases its capacity as soon as it is dropped"]
pub struct ConcurrencyPermit {
    inner: Arc<Inner>,
    /// When the permit was acquired, for the hold-time estimate behind
    /// `Overloaded::retry_after`; only set on a sample of permits.
    sampled_at: Option<Instant>,
}

impl ConcurrencyPermit {
    /// `busy`: acquired while at least half of the limit was in use.
    #[inline]
    pub(super) fn new(inner: Arc<Inner>, busy: bool) -> Self {
        let sampled_at = if busy { sample_start(&inner) } else { None };
        inner.obs.admitted.inc();
        inner.obs.in_flight.inc();
        ConcurrencyPermit { inner, sampled_at }
    }
}

/// Every [`Inner::HOLD_SAMPLE_EVERY`]-th busy permit acquired on a thread
/// (the first one included) has its hold time measured: reading the clock
/// on every permit would double the cost of acquiring one.
#[inline(never)]
fn sample_start(inner: &Inner) -> Option<Instant> {
    thread_local! {
        static ACQUIRED: Cell<u32> = const { Cell::new(0) };
    }
    let sample = ACQUIRED.with(|count| {
        let n = count.get();
        count.set(n.wrapping_add(1));
        n % Inner::HOLD_SAMPLE_EVERY == 0
    });
    sample.then(|| inner.clock.now())
}

impl Drop for ConcurrencyPermit {
    #[inline]
    fn drop(&mut self) {
        if let Some(start) = self.sampled_at {
            self.inner.record_hold_since(start);
        }
        self.inner.obs.in_flight.dec();
        self.inner.release();
    }
}

impl fmt::Debug for ConcurrencyPermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConcurrencyPermit").finish_non_exhaustive()
    }
}
