//! Injected time: a [`Clock`] trait with a real ([`SystemClock`]) and a manual
//! ([`ManualClock`]) implementation.
//!
//! # Why inject time?
//!
//! Every mechanism in this crate is about time: budgets expire deposits after a
//! TTL, breakers stay open for a wait, backoff sleeps, deadlines run out. Code
//! that calls `Instant::now()` and `tokio::time::sleep` directly can only be
//! tested with real sleeps, which makes tests slow and flaky and simulations
//! impossible. Every time-dependent type here therefore takes a clock: the
//! [`SystemClock`] in production and a [`ManualClock`] in tests and
//! deterministic simulations, where time moves only when the test says so.
//!
//! Types store a [`SharedClock`], a cheap-to-clone, type-erased handle, so
//! that a clock can be passed around without making every type generic.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use resilience_core::clock::{Clock, ManualClock};
//!
//! let clock = ManualClock::new();
//! let start = clock.now();
//! clock.advance(Duration::from_secs(11));
//! assert_eq!(clock.now() - start, Duration::from_secs(11));
//! // Clones share the same time.
//! let other = clock.clone();
//! other.advance(Duration::from_secs(1));
//! assert_eq!(clock.elapsed(), Duration::from_secs(12));
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// A boxed future returned by [`Clock::sleep_until`].
pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// A monotonic source of time that can also sleep.
///
/// Implementations must be cheap to call from hot paths: [`Clock::now`] is
/// called on every budget, breaker or limiter decision that needs the time.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The current monotonic time.
    fn now(&self) -> Instant;

    /// A cheaper reading of the current time, for hot paths that only need
    /// millisecond-scale resolution (sliding windows, budgets): it may lag or
    /// lead [`Clock::now`] by up to one scheduler tick (1–10 ms) but never
    /// goes backwards. Defaults to [`Clock::now`].
    fn now_coarse(&self) -> Instant {
        self.now()
    }

    /// [`Clock::now_coarse`] as nanoseconds from a fixed origin of this
    /// clock's choosing: only differences between two readings of the same
    /// clock mean anything. Hot paths that keep time as integers (the retry
    /// budget) use it to skip the `Instant` arithmetic; it never goes
    /// backwards.
    ///
    /// The default measures [`Clock::now_coarse`] from a process-wide origin
    /// set (on first use) ten years before the current time, so instants a
    /// custom clock returns from before the process started still count.
    fn now_coarse_nanos(&self) -> u64 {
        nanos_since(default_origin(), self.now_coarse())
    }

    /// A future that completes once [`Clock::now`] is at or past `deadline`.
    fn sleep_until(&self, deadline: Instant) -> Sleep;

    /// A future that completes after `duration` has elapsed on this clock.
    fn sleep(&self, duration: Duration) -> Sleep {
        let now = self.now();
        let deadline = now.checked_add(duration).unwrap_or(now + FAR_FUTURE);
        self.sleep_until(deadline)
    }

    /// Wraps this clock in a [`SharedClock`] handle.
    fn into_shared(self) -> SharedClock
    where
        Self: Sized,
    {
        SharedClock(Arc::new(self))
    }
}

/// About 30 years: used instead of overflowing `Instant` arithmetic.
/// `to - from` in nanoseconds, without 128-bit arithmetic; `0` if `to` is
/// earlier, saturating after 584 years.
pub(crate) fn nanos_since(from: Instant, to: Instant) -> u64 {
    let elapsed = to.saturating_duration_since(from);
    elapsed
        .as_secs()
        .saturating_mul(1_000_000_000)
        .saturating_add(u64::from(elapsed.subsec_nanos()))
}

/// The origin of the default [`Clock::now_coarse_nanos`].
fn default_origin() -> Instant {
    static ORIGIN: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *ORIGIN.get_or_init(|| {
        let now = Instant::now();
        now.checked_sub(Duration::from_secs(86_400 * 3_650))
            .unwrap_or(now)
    })
}

pub(crate) const FAR_FUTURE: Duration = Duration::from_secs(86_400 * 365 * 30);

/// Adds `duration` to `instant`, saturating at a far-future instant instead of
/// panicking on overflow.
pub(crate) fn saturating_add(instant: Instant, duration: Duration) -> Instant {
    instant
        .checked_add(duration)
        .or_else(|| instant.checked_add(FAR_FUTURE))
        .unwrap_or(instant)
}

/// The real clock: `std::time::Instant::now()` and tokio's timer.
///
/// Sleeping requires a tokio runtime with the time driver enabled.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    /// On Linux, `CLOCK_MONOTONIC_COARSE` (a few nanoseconds through the
    /// vDSO, instead of about 25 ns for `Instant::now()`), mapped onto
    /// `Instant` through one calibration pair taken on first use. Elsewhere,
    /// [`Clock::now`].
    fn now_coarse(&self) -> Instant {
        coarse::now()
    }

    /// On Linux, `CLOCK_MONOTONIC_COARSE` itself in nanoseconds (since boot):
    /// one vDSO read and one multiply-add. Elsewhere, the default.
    fn now_coarse_nanos(&self) -> u64 {
        coarse::nanos()
    }

    fn sleep_until(&self, deadline: Instant) -> Sleep {
        Box::pin(tokio::time::sleep_until(tokio::time::Instant::from_std(
            deadline,
        )))
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
mod coarse {
    use std::sync::OnceLock;
    use std::time::{Duration, Instant};

    use rustix::time::{ClockId, clock_gettime};

    fn coarse_since_boot() -> Duration {
        let ts = clock_gettime(ClockId::MonotonicCoarse);
        let secs = u64::try_from(ts.tv_sec).unwrap_or(0);
        let nanos = u32::try_from(ts.tv_nsec).unwrap_or(0);
        Duration::new(secs, nanos)
    }

    /// `CLOCK_MONOTONIC` (what `Instant` reads on Linux) and its coarse
    /// variant share one time base, so one pair maps one onto the other.
    static CALIBRATION: OnceLock<(Instant, Duration)> = OnceLock::new();

    pub(super) fn now() -> Instant {
        let (instant, coarse) = *CALIBRATION.get_or_init(|| (Instant::now(), coarse_since_boot()));
        super::saturating_add(instant, coarse_since_boot().saturating_sub(coarse))
    }

    pub(super) fn nanos() -> u64 {
        let ts = clock_gettime(ClockId::MonotonicCoarse);
        let secs = u64::try_from(ts.tv_sec).unwrap_or(0);
        let nanos = u64::try_from(ts.tv_nsec).unwrap_or(0);
        secs.saturating_mul(1_000_000_000).saturating_add(nanos)
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
mod coarse {
    pub(super) fn now() -> std::time::Instant {
        std::time::Instant::now()
    }

    pub(super) fn nanos() -> u64 {
        super::nanos_since(super::default_origin(), now())
    }
}

/// A cheap-to-clone, type-erased clock handle stored by every time-dependent
/// type. Defaults to the [`SystemClock`].
#[derive(Clone)]
pub struct SharedClock(Arc<dyn Clock>);

impl SharedClock {
    /// Wraps any clock.
    pub fn new(clock: impl Clock) -> Self {
        clock.into_shared()
    }

    /// The real system clock.
    pub fn system() -> Self {
        SharedClock(Arc::new(SystemClock))
    }
}

impl Default for SharedClock {
    fn default() -> Self {
        Self::system()
    }
}

impl fmt::Debug for SharedClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SharedClock").field(&self.0).finish()
    }
}

impl Clock for SharedClock {
    fn now(&self) -> Instant {
        self.0.now()
    }

    fn sleep_until(&self, deadline: Instant) -> Sleep {
        self.0.sleep_until(deadline)
    }

    fn sleep(&self, duration: Duration) -> Sleep {
        self.0.sleep(duration)
    }

    fn now_coarse(&self) -> Instant {
        self.0.now_coarse()
    }

    fn now_coarse_nanos(&self) -> u64 {
        self.0.now_coarse_nanos()
    }

    fn into_shared(self) -> SharedClock {
        self
    }
}

/// A clock that moves only when told to: for tests and deterministic
/// simulations.
///
/// Clones share one time. [`ManualClock::advance`] wakes every sleeper whose
/// deadline has been reached. In *auto-advance* mode
/// ([`ManualClock::set_auto_advance`]) a sleep moves the clock forward to its
/// own deadline at once, so code that sleeps runs at full speed while the
/// clock records exactly how long it would have slept.
#[derive(Clone)]
pub struct ManualClock {
    inner: Arc<ManualInner>,
}

struct ManualInner {
    epoch: Instant,
    offset_nanos: AtomicU64,
    auto_advance: AtomicBool,
    sleepers: Mutex<Sleepers>,
}

/// Sleepers ordered by `(deadline, id)`: waking the due ones, finding the
/// next deadline and deregistering one are all logarithmic, so a simulation
/// with many thousands of concurrent sleeps stays fast.
#[derive(Default)]
struct Sleepers {
    next_id: u64,
    waiting: BTreeMap<(Instant, u64), Waker>,
}

impl ManualClock {
    /// A manual clock starting at the current real instant (its *epoch*).
    pub fn new() -> Self {
        ManualClock {
            inner: Arc::new(ManualInner {
                epoch: Instant::now(),
                offset_nanos: AtomicU64::new(0),
                auto_advance: AtomicBool::new(false),
                sleepers: Mutex::new(Sleepers::default()),
            }),
        }
    }

    /// The instant this clock started at.
    pub fn epoch(&self) -> Instant {
        self.inner.epoch
    }

    /// Time elapsed since the epoch.
    pub fn elapsed(&self) -> Duration {
        Duration::from_nanos(self.inner.offset_nanos.load(Ordering::Acquire))
    }

    /// Moves time forward by `duration` and wakes every sleeper that is due.
    pub fn advance(&self, duration: Duration) {
        let nanos = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
        let _ =
            self.inner
                .offset_nanos
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |current| {
                    Some(current.saturating_add(nanos))
                });
        self.wake_due();
    }

    /// Moves time forward to `instant` (no-op if it is in the past).
    pub fn advance_to(&self, instant: Instant) {
        let target = instant.saturating_duration_since(self.inner.epoch);
        let nanos = u64::try_from(target.as_nanos()).unwrap_or(u64::MAX);
        let _ = self.inner.offset_nanos.fetch_max(nanos, Ordering::AcqRel);
        self.wake_due();
    }

    /// In auto-advance mode every sleep moves the clock to its deadline and
    /// completes immediately.
    pub fn set_auto_advance(&self, enabled: bool) {
        self.inner.auto_advance.store(enabled, Ordering::Release);
    }

    /// Number of futures currently sleeping on this clock.
    pub fn sleepers(&self) -> usize {
        self.lock_sleepers().waiting.len()
    }

    /// The earliest deadline among current sleepers.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.lock_sleepers()
            .waiting
            .first_key_value()
            .map(|(&(deadline, _), _)| deadline)
    }

    /// Advances to the earliest sleeper's deadline, waking it. Returns `false`
    /// when nobody sleeps.
    pub fn advance_to_next_deadline(&self) -> bool {
        match self.next_deadline() {
            Some(deadline) => {
                self.advance_to(deadline);
                true
            }
            None => false,
        }
    }

    fn lock_sleepers(&self) -> std::sync::MutexGuard<'_, Sleepers> {
        // A panic while holding this lock cannot leave `Sleepers` inconsistent
        // (every mutation is a single push/retain), so poisoning is ignored.
        self.inner
            .sleepers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn wake_due(&self) {
        let now = self.now();
        let due: Vec<Waker> = {
            let mut sleepers = self.lock_sleepers();
            let mut due = Vec::new();
            while let Some(entry) = sleepers.waiting.first_entry() {
                if entry.key().0 > now {
                    break;
                }
                due.push(entry.remove());
            }
            due
        };
        for waker in due {
            waker.wake();
        }
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManualClock")
            .field("elapsed", &self.elapsed())
            .field(
                "auto_advance",
                &self.inner.auto_advance.load(Ordering::Relaxed),
            )
            .finish_non_exhaustive()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        saturating_add(self.inner.epoch, self.elapsed())
    }

    /// The manual time since [`ManualClock::epoch`], in nanoseconds.
    fn now_coarse_nanos(&self) -> u64 {
        self.inner.offset_nanos.load(Ordering::Acquire)
    }

    fn sleep_until(&self, deadline: Instant) -> Sleep {
        if self.inner.auto_advance.load(Ordering::Acquire) {
            self.advance_to(deadline);
        }
        Box::pin(ManualSleep {
            clock: self.clone(),
            deadline,
            id: None,
        })
    }
}

/// Future returned by [`ManualClock::sleep_until`].
struct ManualSleep {
    clock: ManualClock,
    deadline: Instant,
    id: Option<u64>,
}

impl Future for ManualSleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.clock.now() >= self.deadline {
            return Poll::Ready(());
        }
        let clock = self.clock.clone();
        let mut sleepers = clock.lock_sleepers();
        // Re-check under the lock: `advance` updates the time before taking
        // the lock, so either we see the new time or it sees our waker.
        if clock.now() >= self.deadline {
            return Poll::Ready(());
        }
        let waker = cx.waker().clone();
        let deadline = self.deadline;
        let id = self.id.unwrap_or_else(|| {
            let id = sleepers.next_id;
            sleepers.next_id = sleepers.next_id.wrapping_add(1);
            id
        });
        // (Re-)register: an entry is only removed by a wake once the
        // deadline has passed, so this refreshes the waker of a spurious poll.
        sleepers.waiting.insert((deadline, id), waker);
        drop(sleepers);
        self.id = Some(id);
        Poll::Pending
    }
}

impl Drop for ManualSleep {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            self.clock
                .lock_sleepers()
                .waiting
                .remove(&(self.deadline, id));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;

    #[test]
    fn manual_clock_moves_only_when_advanced() {
        let clock = ManualClock::new();
        let t0 = clock.now();
        assert_eq!(clock.now(), t0);
        clock.advance(Duration::from_millis(250));
        assert_eq!(clock.now() - t0, Duration::from_millis(250));
    }

    #[test]
    fn advance_to_the_past_is_a_no_op() {
        let clock = ManualClock::new();
        clock.advance(Duration::from_secs(5));
        clock.advance_to(clock.epoch());
        assert_eq!(clock.elapsed(), Duration::from_secs(5));
    }

    #[test]
    fn sleep_completes_only_after_its_deadline() {
        let clock = ManualClock::new();
        let mut sleep = clock.sleep(Duration::from_secs(2));
        assert!((&mut sleep).now_or_never().is_none());
        assert_eq!(clock.sleepers(), 1);
        clock.advance(Duration::from_secs(1));
        assert!((&mut sleep).now_or_never().is_none());
        clock.advance(Duration::from_secs(1));
        assert!(sleep.now_or_never().is_some());
        assert_eq!(clock.sleepers(), 0);
    }

    #[test]
    fn dropping_a_sleep_deregisters_it() {
        let clock = ManualClock::new();
        let mut sleep = clock.sleep(Duration::from_secs(2));
        assert!((&mut sleep).now_or_never().is_none());
        assert_eq!(clock.sleepers(), 1);
        drop(sleep);
        assert_eq!(clock.sleepers(), 0);
    }

    #[test]
    fn advance_to_next_deadline_wakes_the_earliest_sleeper() {
        let clock = ManualClock::new();
        let mut a = clock.sleep(Duration::from_secs(3));
        let mut b = clock.sleep(Duration::from_secs(1));
        assert!((&mut a).now_or_never().is_none());
        assert!((&mut b).now_or_never().is_none());
        assert!(clock.advance_to_next_deadline());
        assert_eq!(clock.elapsed(), Duration::from_secs(1));
        assert!(b.now_or_never().is_some());
        assert!((&mut a).now_or_never().is_none());
        assert!(clock.advance_to_next_deadline());
        assert!(a.now_or_never().is_some());
        assert!(!clock.advance_to_next_deadline());
    }

    #[test]
    fn auto_advance_completes_sleeps_at_once_and_records_time() {
        let clock = ManualClock::new();
        clock.set_auto_advance(true);
        assert!(clock.sleep(Duration::from_secs(7)).now_or_never().is_some());
        assert_eq!(clock.elapsed(), Duration::from_secs(7));
    }

    #[test]
    fn huge_sleeps_do_not_overflow() {
        let clock = ManualClock::new();
        let sleep = clock.sleep(Duration::MAX);
        assert!(sleep.now_or_never().is_none());
        clock.advance(Duration::MAX);
    }

    #[tokio::test]
    async fn manual_sleep_wakes_a_waiting_task() {
        let clock = ManualClock::new();
        let sleeper = clock.clone();
        let task = tokio::spawn(async move { sleeper.sleep(Duration::from_secs(60)).await });
        while clock.sleepers() == 0 {
            tokio::task::yield_now().await;
        }
        clock.advance(Duration::from_secs(60));
        task.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn system_clock_sleeps_on_tokio_time() {
        let clock = SharedClock::system();
        let start = tokio::time::Instant::now();
        clock.sleep(Duration::from_millis(10)).await;
        assert!(start.elapsed() >= Duration::from_millis(10));
    }

    #[test]
    fn shared_clock_reads_through_to_the_manual_clock() {
        let manual = ManualClock::new();
        let shared = SharedClock::new(manual.clone());
        manual.advance(Duration::from_secs(3));
        assert_eq!(shared.now(), manual.now());
        let again = shared.clone().into_shared();
        assert_eq!(again.now(), manual.now());
    }

    #[test]
    fn coarse_system_time_tracks_the_precise_clock() {
        let clock = SystemClock;
        for _ in 0..100 {
            let precise = clock.now();
            let coarse = clock.now_coarse();
            let skew = if coarse > precise {
                coarse - precise
            } else {
                precise - coarse
            };
            assert!(skew < Duration::from_millis(50), "skew {skew:?}");
        }
        let a = clock.now_coarse();
        let b = clock.now_coarse();
        assert!(b >= a, "coarse time went backwards");
    }

    #[test]
    fn manual_coarse_time_is_exact() {
        let clock = ManualClock::new();
        clock.advance(Duration::from_millis(3));
        assert_eq!(clock.now_coarse(), clock.now());
    }

    #[test]
    fn clocks_are_send_and_sync() {
        fn bounds<T: Send + Sync + Clone + 'static>() {}
        bounds::<ManualClock>();
        bounds::<SharedClock>();
        bounds::<SystemClock>();
    }
}
