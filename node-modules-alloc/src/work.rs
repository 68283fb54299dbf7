//! Work in flight on a store handle, so that `gc` never removes what that work uses.
//!
//! # Why
//!
//! `gc` needs the store to itself. Across processes the shared `flock` on `store.lock` tells
//! it: every handle holds the lock shared, and gc converts its own to exclusive, which fails
//! while anybody else holds it. But `flock` locks belong to the open file description, and the
//! clones of a `Store` share one: converting the handle's own lock succeeds even while another
//! clone of the same handle is in the middle of an allocation. A handle's own shared lock must
//! not count as "nobody else", so each handle also counts its work in flight: allocations,
//! template builds, imports and verifications hold a [`WorkGuard`]; gc refuses while any is
//! held and holds new work back while it runs.
//!
//! A process-wide count of the same guards tells the scratch sweep whether this process can
//! have anything in flight besides the caller.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};

/// Work guards alive in this process, over every store handle.
static PROCESS_WORK: AtomicUsize = AtomicUsize::new(0);

/// Work guards alive in this process, over every store handle.
pub(crate) fn process_work() -> usize {
    // Relaxed: a snapshot for a heuristic; the guards themselves synchronize through the mutex.
    PROCESS_WORK.load(Ordering::Relaxed)
}

#[derive(Debug, Default)]
struct State {
    in_flight: usize,
    collecting: bool,
}

/// Counts the work in flight on one store handle (shared by its clones).
#[derive(Debug, Default)]
pub(crate) struct WorkTracker {
    state: Mutex<State>,
    gc_done: Condvar,
}

impl WorkTracker {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers work; waits while a gc of this handle runs.
    pub(crate) fn begin_work(self: &Arc<Self>) -> WorkGuard {
        let mut state = self.state();
        while state.collecting {
            state = self
                .gc_done
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        state.in_flight += 1;
        PROCESS_WORK.fetch_add(1, Ordering::Relaxed);
        WorkGuard {
            tracker: Arc::clone(self),
        }
    }

    /// Starts a gc if no work is in flight on this handle (and no other gc runs); `Err` with
    /// the number of operations in flight otherwise.
    pub(crate) fn begin_gc(&self) -> Result<GcGuard<'_>, usize> {
        let mut state = self.state();
        if state.in_flight > 0 || state.collecting {
            return Err(state.in_flight);
        }
        state.collecting = true;
        Ok(GcGuard { tracker: self })
    }
}

/// Work in flight; gc refuses to run while one exists.
#[derive(Debug)]
#[must_use = "the work is in flight only while the guard is held"]
pub(crate) struct WorkGuard {
    tracker: Arc<WorkTracker>,
}

impl Drop for WorkGuard {
    fn drop(&mut self) {
        let mut state = self.tracker.state();
        state.in_flight = state.in_flight.saturating_sub(1);
        PROCESS_WORK.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A gc in progress; new work waits until it is dropped.
#[derive(Debug)]
#[must_use = "the gc holds the handle only while the guard is held"]
pub(crate) struct GcGuard<'a> {
    tracker: &'a WorkTracker,
}

impl Drop for GcGuard<'_> {
    fn drop(&mut self) {
        self.tracker.state().collecting = false;
        self.tracker.gc_done.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gc_is_refused_while_work_is_in_flight() {
        let tracker = Arc::new(WorkTracker::default());
        let work = tracker.begin_work();
        assert_eq!(tracker.begin_gc().err(), Some(1));
        drop(work);
        let gc = tracker.begin_gc().unwrap();
        assert!(tracker.begin_gc().is_err(), "one gc at a time");
        drop(gc);
        assert!(tracker.begin_gc().is_ok());
    }

    #[test]
    fn new_work_waits_for_a_running_gc() {
        let tracker = Arc::new(WorkTracker::default());
        let gc = tracker.begin_gc().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let waiter = {
            let tracker = Arc::clone(&tracker);
            std::thread::spawn(move || {
                let guard = tracker.begin_work();
                tx.send(()).unwrap();
                drop(guard);
            })
        };
        assert!(
            rx.recv_timeout(std::time::Duration::from_millis(100))
                .is_err()
        );
        drop(gc);
        rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap();
        waiter.join().unwrap();
    }
}
