//! Absolute deadlines that propagate into sub-calls.
//!
//! # Why absolute deadlines?
//!
//! A timeout per call does not bound a request: a proxy that gives each of
//! five attempts its own 5 s timeout keeps a request alive for 25 s plus the
//! backoff, and a proxy that retries without any overall bound can keep
//! retrying for hours (linkerd #2369 retried for 5 hours past a 5 s timeout).
//! Work nobody waits for any more is pure waste for an overloaded server:
//! timed-out requests it still processes while their retries arrive keep it
//! overloaded after the cause is fixed (see the [crate docs](crate)).
//!
//! A [`Deadline`] is one instant on an injected [`Clock`], fixed when the
//! request arrives. Everything done for that request asks it how much time is
//! [`remaining`](Deadline::remaining), derives shorter sub-deadlines with
//! [`child`](Deadline::child) (a child never outlives its parent), and races
//! its futures against it with [`timeout`](Deadline::timeout). The retry
//! executor ([`crate::retry`]) bounds its whole loop, in-flight attempts
//! included, by one.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use resilience_core::clock::{Clock, ManualClock};
//! use resilience_core::deadline::Deadline;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let clock = ManualClock::new();
//! clock.set_auto_advance(true); // sleeps complete at once and move the clock
//! let deadline = Deadline::after(clock.clone(), Duration::from_secs(5));
//!
//! // A sub-call gets at most 2 s, and never more than what is left.
//! let call = deadline.child(Duration::from_secs(2));
//! assert_eq!(call.remaining(), Duration::from_secs(2));
//!
//! // Work that fits is left alone...
//! let fast = call.timeout(async { 42 }).await;
//! assert_eq!(fast, Ok(42));
//! // ...work that does not is cut off at the deadline.
//! let stuck = call.timeout(futures::future::pending::<()>()).await;
//! assert!(stuck.is_err());
//! assert_eq!(clock.elapsed(), Duration::from_secs(2));
//! assert!(call.is_expired());
//! assert_eq!(deadline.remaining(), Duration::from_secs(3));
//! # }
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::clock::{Clock, SharedClock, Sleep, saturating_add};

/// The deadline passed before the work finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[error("deadline exceeded: the caller's time budget ran out before the work finished")]
pub struct DeadlineExceeded;

/// An absolute deadline on an injected clock.
///
/// Cheap to clone (a clock handle and an instant), `Send + Sync`. A deadline
/// can be *unbounded* ([`Deadline::unbounded`]): it never expires, and
/// [`Deadline::remaining`] reports [`Duration::MAX`].
#[derive(Clone)]
pub struct Deadline {
    clock: SharedClock,
    at: Option<Instant>,
}

impl Deadline {
    /// A deadline `duration` from now on `clock`. A duration too large to
    /// represent saturates to a far-future instant (about 30 years).
    pub fn after(clock: impl Clock, duration: Duration) -> Self {
        let clock = clock.into_shared();
        let at = saturating_add(clock.now(), duration);
        Deadline {
            clock,
            at: Some(at),
        }
    }

    /// A deadline at the absolute instant `at` of `clock`.
    pub fn at(clock: impl Clock, at: Instant) -> Self {
        Deadline {
            clock: clock.into_shared(),
            at: Some(at),
        }
    }

    /// A deadline that never expires (no time limit), on `clock`.
    pub fn unbounded(clock: impl Clock) -> Self {
        Deadline {
            clock: clock.into_shared(),
            at: None,
        }
    }

    /// The instant at which the deadline expires; `None` when unbounded.
    pub fn instant(&self) -> Option<Instant> {
        self.at
    }

    /// Whether this deadline has no time limit.
    pub fn is_unbounded(&self) -> bool {
        self.at.is_none()
    }

    /// The clock this deadline is measured on.
    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    /// Time left: zero once the deadline has passed, [`Duration::MAX`] when
    /// unbounded.
    pub fn remaining(&self) -> Duration {
        match self.at {
            Some(at) => at.saturating_duration_since(self.clock.now()),
            None => Duration::MAX,
        }
    }

    /// Whether the deadline has been reached (`now >= deadline`).
    pub fn is_expired(&self) -> bool {
        self.at.is_some_and(|at| self.clock.now() >= at)
    }

    /// A sub-deadline at most `duration` from now, never later than this
    /// deadline: `min(self, now + duration)`.
    #[must_use]
    pub fn child(&self, duration: Duration) -> Self {
        self.child_at(saturating_add(self.clock.now(), duration))
    }

    /// A sub-deadline at `at`, never later than this deadline:
    /// `min(self, at)`.
    #[must_use]
    pub fn child_at(&self, at: Instant) -> Self {
        let at = match self.at {
            Some(parent) => parent.min(at),
            None => at,
        };
        Deadline {
            clock: self.clock.clone(),
            at: Some(at),
        }
    }

    /// The earlier of two deadlines (measured on this deadline's clock).
    #[must_use]
    pub fn min(&self, other: &Deadline) -> Self {
        match other.at {
            Some(at) => self.child_at(at),
            None => self.clone(),
        }
    }

    /// Races `future` against this deadline.
    ///
    /// Resolves to `Ok(output)` if the future finishes first (a future that
    /// is ready when the deadline fires wins the tie) and to
    /// `Err(DeadlineExceeded)` once the deadline is reached; the future is
    /// then dropped, which cancels it. If the deadline has already passed
    /// when the returned future is first polled, `future` is never polled:
    /// no work starts past a deadline.
    ///
    /// The timer is created lazily, only once `future` is pending, so with a
    /// [`ManualClock`](crate::clock::ManualClock) in auto-advance mode a
    /// future that completes at once does not move the clock. (In that mode
    /// the future's own clock sleeps also complete at once, even when they
    /// end past the deadline; to test how slow work is cut off, advance the
    /// clock by hand, e.g. with
    /// [`ManualClock::advance_to_next_deadline`](crate::clock::ManualClock::advance_to_next_deadline).)
    pub fn timeout<F: Future>(&self, future: F) -> Timeout<F> {
        Timeout {
            future,
            deadline: self.clone(),
            sleep: None,
            started: false,
        }
    }
}

impl fmt::Debug for Deadline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("Deadline");
        match self.at {
            Some(_) => s.field("remaining", &self.remaining()),
            None => s.field("remaining", &"unbounded"),
        };
        s.finish_non_exhaustive()
    }
}

pin_project_lite::pin_project! {
    /// Future returned by [`Deadline::timeout`].
    #[must_use = "futures do nothing unless polled"]
    pub struct Timeout<F> {
        #[pin]
        future: F,
        deadline: Deadline,
        sleep: Option<Sleep>,
        started: bool,
    }
}

impl<F> fmt::Debug for Timeout<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timeout")
            .field("deadline", &self.deadline)
            .field("started", &self.started)
            .finish_non_exhaustive()
    }
}

impl<F: Future> Future for Timeout<F> {
    type Output = Result<F::Output, DeadlineExceeded>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if !*this.started {
            if this.deadline.is_expired() {
                return Poll::Ready(Err(DeadlineExceeded));
            }
            *this.started = true;
        }
        if let Poll::Ready(output) = this.future.poll(cx) {
            return Poll::Ready(Ok(output));
        }
        let Some(at) = this.deadline.at else {
            return Poll::Pending;
        };
        let sleep = this
            .sleep
            .get_or_insert_with(|| this.deadline.clock.sleep_until(at));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(DeadlineExceeded)),
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use futures::FutureExt;

    #[test]
    fn remaining_counts_down_to_zero_and_stays_there() {
        let clock = ManualClock::new();
        let deadline = Deadline::after(clock.clone(), Duration::from_secs(5));
        assert_eq!(deadline.remaining(), Duration::from_secs(5));
        assert!(!deadline.is_expired());
        clock.advance(Duration::from_secs(4));
        assert_eq!(deadline.remaining(), Duration::from_secs(1));
        clock.advance(Duration::from_secs(1));
        assert_eq!(deadline.remaining(), Duration::ZERO);
        assert!(deadline.is_expired());
        clock.advance(Duration::from_secs(10));
        assert_eq!(deadline.remaining(), Duration::ZERO);
    }

    #[test]
    fn unbounded_never_expires() {
        let clock = ManualClock::new();
        let deadline = Deadline::unbounded(clock.clone());
        clock.advance(Duration::from_secs(86_400 * 365));
        assert!(!deadline.is_expired());
        assert!(deadline.is_unbounded());
        assert_eq!(deadline.remaining(), Duration::MAX);
        assert_eq!(deadline.instant(), None);
    }

    #[test]
    fn children_never_outlive_their_parent() {
        let clock = ManualClock::new();
        let parent = Deadline::after(clock.clone(), Duration::from_secs(5));
        assert_eq!(
            parent.child(Duration::from_secs(2)).remaining(),
            Duration::from_secs(2)
        );
        assert_eq!(
            parent.child(Duration::from_secs(60)).remaining(),
            Duration::from_secs(5)
        );
        assert_eq!(parent.child(Duration::MAX).instant(), parent.instant());
        let later = clock.now() + Duration::from_secs(9);
        assert_eq!(parent.child_at(later).instant(), parent.instant());
        let unbounded = Deadline::unbounded(clock.clone());
        assert_eq!(
            unbounded.child(Duration::from_secs(3)).remaining(),
            Duration::from_secs(3)
        );
        assert_eq!(unbounded.min(&parent).instant(), parent.instant());
        assert_eq!(parent.min(&unbounded).instant(), parent.instant());
    }

    #[test]
    fn huge_durations_saturate() {
        let clock = ManualClock::new();
        let deadline = Deadline::after(clock.clone(), Duration::MAX);
        assert!(!deadline.is_expired());
        assert!(deadline.remaining() > Duration::from_secs(86_400 * 365));
    }

    #[test]
    fn timeout_passes_through_a_ready_future_without_a_timer() {
        let clock = ManualClock::new();
        clock.set_auto_advance(true);
        let deadline = Deadline::after(clock.clone(), Duration::from_secs(5));
        let out = deadline.timeout(async { 7 }).now_or_never();
        assert_eq!(out, Some(Ok(7)));
        assert_eq!(clock.elapsed(), Duration::ZERO);
    }

    #[test]
    fn timeout_fires_at_the_deadline_and_drops_the_future() {
        let clock = ManualClock::new();
        let deadline = Deadline::after(clock.clone(), Duration::from_secs(5));
        let work = clock.sleep(Duration::from_secs(10));
        let mut timed = Box::pin(deadline.timeout(work));
        assert!((&mut timed).now_or_never().is_none());
        assert_eq!(clock.sleepers(), 2);
        clock.advance(Duration::from_millis(4_999));
        assert!((&mut timed).now_or_never().is_none());
        clock.advance(Duration::from_millis(1));
        assert_eq!(timed.now_or_never(), Some(Err(DeadlineExceeded)));
        // Dropping the timeout dropped the work and the timer.
        assert_eq!(clock.sleepers(), 0);
    }

    #[test]
    fn work_finishing_first_wins() {
        let clock = ManualClock::new();
        let deadline = Deadline::after(clock.clone(), Duration::from_secs(5));
        let work = clock.sleep(Duration::from_secs(3));
        let mut timed = Box::pin(deadline.timeout(work));
        assert!((&mut timed).now_or_never().is_none());
        clock.advance(Duration::from_secs(3));
        assert_eq!(timed.now_or_never(), Some(Ok(())));
    }

    #[test]
    fn expired_deadline_never_starts_the_work() {
        let clock = ManualClock::new();
        let deadline = Deadline::after(clock.clone(), Duration::from_secs(1));
        clock.advance(Duration::from_secs(1));
        let mut polled = false;
        let out = deadline
            .timeout(futures::future::poll_fn(|_| {
                polled = true;
                Poll::Ready(())
            }))
            .now_or_never();
        assert_eq!(out, Some(Err(DeadlineExceeded)));
        assert!(!polled);
    }

    #[test]
    fn unbounded_timeout_waits_for_the_work() {
        let clock = ManualClock::new();
        let deadline = Deadline::unbounded(clock.clone());
        let mut timed = Box::pin(deadline.timeout(clock.sleep(Duration::from_secs(1_000))));
        assert!((&mut timed).now_or_never().is_none());
        assert_eq!(clock.sleepers(), 1, "no timer for an unbounded deadline");
        clock.advance(Duration::from_secs(1_000));
        assert_eq!(timed.now_or_never(), Some(Ok(())));
    }

    #[tokio::test]
    async fn timeout_wakes_a_waiting_task() {
        let clock = ManualClock::new();
        let deadline = Deadline::after(clock.clone(), Duration::from_secs(5));
        let task =
            tokio::spawn(async move { deadline.timeout(futures::future::pending::<()>()).await });
        while clock.sleepers() == 0 {
            tokio::task::yield_now().await;
        }
        assert!(clock.advance_to_next_deadline());
        assert_eq!(task.await.unwrap(), Err(DeadlineExceeded));
    }

    #[test]
    fn deadlines_are_send_sync_and_cheap_to_clone() {
        fn bounds<T: Send + Sync + Clone + 'static>() {}
        fn send<T: Send>(_: &T) {}
        bounds::<Deadline>();
        bounds::<DeadlineExceeded>();
        let clock = ManualClock::new();
        let deadline = Deadline::after(clock, Duration::from_secs(1));
        send(&deadline.timeout(async {}));
    }
}
