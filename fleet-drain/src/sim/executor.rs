//! The simulated-time executor: drives a future on a [`ManualClock`],
//! advancing the clock to the next timer whenever the future waits only on
//! timers.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use resilience_core::clock::ManualClock;

/// The simulated future could not finish.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SimError {
    /// Nothing can make progress: the future waits, but on no timer of the
    /// clock.
    #[error("simulation stalled: the future is pending but no timer is armed on the clock")]
    Stalled,
    /// The step limit of [`run_steps`] was reached; the future was dropped
    /// (a simulated crash).
    #[error("simulation stopped after the step limit; the future was dropped")]
    StepLimit,
}

struct Flag(AtomicBool);

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::Release);
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.store(true, Ordering::Release);
    }
}

/// Runs `future` to completion on simulated time: polls it while it makes
/// progress and, whenever it waits only on timers, advances `clock` to the
/// earliest one.
///
/// The future must not depend on a tokio runtime (spawned tasks, tokio
/// timers or I/O); everything concurrent inside it should be joined
/// futures, as in the controllers of this crate.
pub fn run<F: Future>(clock: &ManualClock, future: F) -> Result<F::Output, SimError> {
    run_steps(clock, future, u64::MAX)
}

/// Like [`run`], but drops the future after `max_steps` polls (a simulated
/// crash) and returns [`SimError::StepLimit`].
pub fn run_steps<F: Future>(
    clock: &ManualClock,
    future: F,
    max_steps: u64,
) -> Result<F::Output, SimError> {
    let flag = Arc::new(Flag(AtomicBool::new(false)));
    let waker = Waker::from(Arc::clone(&flag));
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    let mut steps = 0u64;
    if max_steps == 0 {
        return Err(SimError::StepLimit);
    }
    loop {
        steps += 1;
        flag.0.store(false, Ordering::Release);
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return Ok(output);
        }
        if steps >= max_steps {
            // Dropped right after its last poll: time has not moved on.
            return Err(SimError::StepLimit);
        }
        if flag.0.load(Ordering::Acquire) {
            continue;
        }
        if !clock.advance_to_next_deadline() {
            return Err(SimError::Stalled);
        }
    }
}
