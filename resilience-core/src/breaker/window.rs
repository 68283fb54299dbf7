//! Sliding windows of call outcomes: count-based (a ring of the last N
//! outcomes) and time-based (a ring of buckets). Both allocate once, at
//! construction, and keep running totals so that a record is O(1) (amortized
//! over expired buckets for the time window).

use std::time::Duration;

use super::config::WindowConfig;

const FAILED: u8 = 0b01;
const SLOW: u8 = 0b10;

/// Totals over the calls currently in a window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Totals {
    pub(super) calls: u32,
    pub(super) failures: u32,
    pub(super) slow: u32,
}

impl Totals {
    fn add(&mut self, failed: bool, slow: bool) {
        self.calls = self.calls.saturating_add(1);
        self.failures = self.failures.saturating_add(u32::from(failed));
        self.slow = self.slow.saturating_add(u32::from(slow));
    }

    fn sub(&mut self, other: Totals) {
        self.calls = self.calls.saturating_sub(other.calls);
        self.failures = self.failures.saturating_sub(other.failures);
        self.slow = self.slow.saturating_sub(other.slow);
    }

    pub(super) fn failure_rate(self) -> f64 {
        rate(self.failures, self.calls)
    }

    pub(super) fn slow_rate(self) -> f64 {
        rate(self.slow, self.calls)
    }
}

fn rate(part: u32, whole: u32) -> f64 {
    if whole == 0 {
        0.0
    } else {
        f64::from(part) / f64::from(whole)
    }
}

#[derive(Debug)]
pub(super) enum Window {
    Count(CountWindow),
    Time(TimeWindow),
}

impl Window {
    /// A window whose time line (for time windows) starts at 0 nanoseconds.
    pub(super) fn new(config: WindowConfig) -> Self {
        match config {
            WindowConfig::Count { calls } => Window::Count(CountWindow::new(calls)),
            WindowConfig::Time { duration, buckets } => {
                Window::Time(TimeWindow::new(duration, buckets))
            }
        }
    }

    /// Width of a time window's bucket in nanoseconds; `None` for a count
    /// window.
    pub(super) fn bucket_nanos(&self) -> Option<u64> {
        match self {
            Window::Count(_) => None,
            Window::Time(w) => Some(w.bucket_nanos),
        }
    }

    /// Calls in the window, without rolling it.
    pub(super) fn calls(&self) -> u32 {
        match self {
            Window::Count(w) => w.totals.calls,
            Window::Time(w) => w.totals.calls,
        }
    }

    /// The bucket new calls land in (always 0 for a count window).
    pub(super) fn head(&self) -> u64 {
        match self {
            Window::Count(_) => 0,
            Window::Time(w) => w.head,
        }
    }

    /// Records `n` successful, fast calls at once, as `n` calls to
    /// [`Window::record`] at the current head would.
    pub(super) fn add_successes(&mut self, n: u64) {
        match self {
            Window::Count(w) => w.add_successes(n),
            Window::Time(w) => w.add_successes(n),
        }
    }

    /// Whether recording needs the current time.
    pub(super) fn needs_clock(&self) -> bool {
        matches!(self, Window::Time(_))
    }

    /// Records one outcome. `now` is required by the time window (it falls
    /// back to its latest bucket without it) and unused by the count window.
    /// Records one call; `now` (nanoseconds on the breaker's time line) is
    /// only read by time windows.
    pub(super) fn record(&mut self, now: Option<u64>, failed: bool, slow: bool) {
        match self {
            Window::Count(w) => w.record(failed, slow),
            Window::Time(w) => w.record(now, failed, slow),
        }
    }

    /// Totals as of `now` (the time window first drops expired buckets).
    pub(super) fn totals(&mut self, now: Option<u64>) -> Totals {
        match self {
            Window::Count(w) => w.totals,
            Window::Time(w) => {
                if let Some(now) = now {
                    w.roll(now);
                }
                w.totals
            }
        }
    }

    pub(super) fn clear(&mut self) {
        match self {
            Window::Count(w) => w.clear(),
            Window::Time(w) => w.clear(),
        }
    }
}

/// The last `slots.len()` outcomes, one byte each.
#[derive(Debug)]
pub(super) struct CountWindow {
    slots: Vec<u8>,
    /// Where the next outcome goes (the oldest one once full).
    next: usize,
    totals: Totals,
}

impl CountWindow {
    fn new(calls: u32) -> Self {
        CountWindow {
            slots: vec![0; calls as usize],
            next: 0,
            totals: Totals::default(),
        }
    }

    fn record(&mut self, failed: bool, slow: bool) {
        let capacity = self.slots.len();
        let full = self.totals.calls as usize >= capacity;
        if let Some(slot) = self.slots.get_mut(self.next) {
            if full {
                let old = *slot;
                self.totals.sub(Totals {
                    calls: 1,
                    failures: u32::from(old & FAILED != 0),
                    slow: u32::from(old & SLOW != 0),
                });
            }
            *slot = (if failed { FAILED } else { 0 }) | (if slow { SLOW } else { 0 });
            self.totals.add(failed, slow);
        }
        self.next += 1;
        if self.next >= capacity {
            self.next = 0;
        }
    }

    fn add_successes(&mut self, n: u64) {
        // Past a full window, every slot holds a success whatever the order.
        let n = n.min(self.slots.len() as u64);
        for _ in 0..n {
            self.record(false, false);
        }
    }

    fn clear(&mut self) {
        self.slots.fill(0);
        self.next = 0;
        self.totals = Totals::default();
    }
}

/// Outcomes of the last `duration`, in `buckets.len()` slices.
#[derive(Debug)]
pub(super) struct TimeWindow {
    buckets: Vec<Totals>,
    bucket_nanos: u64,
    /// Absolute number (since the time line's 0) of the newest bucket.
    head: u64,
    totals: Totals,
}

impl TimeWindow {
    fn new(duration: Duration, buckets: u32) -> Self {
        let bucket = duration / buckets.max(1);
        TimeWindow {
            buckets: vec![Totals::default(); buckets as usize],
            bucket_nanos: u64::try_from(bucket.as_nanos()).unwrap_or(u64::MAX).max(1),
            head: 0,
            totals: Totals::default(),
        }
    }

    fn bucket_of(&self, now: u64) -> u64 {
        now / self.bucket_nanos
    }

    fn slot(&self, bucket: u64) -> usize {
        // `buckets.len()` is at most 10 000, so the remainder fits a usize.
        (bucket % self.buckets.len().max(1) as u64) as usize
    }

    /// Moves the head to `now`'s bucket, clearing every bucket that left the
    /// window (at most all of them).
    fn roll(&mut self, now: u64) {
        let target = self.bucket_of(now);
        if target <= self.head {
            return;
        }
        let expired = (target - self.head).min(self.buckets.len() as u64);
        for step in 1..=expired {
            let slot = self.slot(self.head + step);
            if let Some(bucket) = self.buckets.get_mut(slot) {
                let old = std::mem::take(bucket);
                self.totals.sub(old);
            }
        }
        self.head = target;
    }

    fn record(&mut self, now: Option<u64>, failed: bool, slow: bool) {
        if let Some(now) = now {
            self.roll(now);
        }
        let index = self.slot(self.head);
        if let Some(bucket) = self.buckets.get_mut(index) {
            bucket.add(failed, slow);
            self.totals.add(failed, slow);
        }
    }

    fn add_successes(&mut self, n: u64) {
        let n = u32::try_from(n).unwrap_or(u32::MAX);
        let index = self.slot(self.head);
        if let Some(bucket) = self.buckets.get_mut(index) {
            bucket.calls = bucket.calls.saturating_add(n);
            self.totals.calls = self.totals.calls.saturating_add(n);
        }
    }

    fn clear(&mut self) {
        self.buckets.fill(Totals::default());
        self.totals = Totals::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_window_forgets_the_oldest_outcome() {
        let mut w = Window::new(WindowConfig::Count { calls: 3 });
        w.record(None, true, false);
        w.record(None, false, true);
        w.record(None, false, false);
        assert_eq!(
            w.totals(None),
            Totals {
                calls: 3,
                failures: 1,
                slow: 1
            }
        );
        w.record(None, false, false); // evicts the failure
        w.record(None, false, false); // evicts the slow call
        assert_eq!(
            w.totals(None),
            Totals {
                calls: 3,
                failures: 0,
                slow: 0
            }
        );
        w.clear();
        assert_eq!(w.totals(None), Totals::default());
    }

    #[test]
    fn adding_successes_at_once_equals_recording_them_one_by_one() {
        for n in [0, 1, 2, 3, 7] {
            let mut batched = Window::new(WindowConfig::Count { calls: 3 });
            let mut single = Window::new(WindowConfig::Count { calls: 3 });
            for w in [&mut batched, &mut single] {
                w.record(None, true, false);
                w.record(None, false, true);
            }
            batched.add_successes(n);
            for _ in 0..n {
                single.record(None, false, false);
            }
            batched.record(None, true, false);
            single.record(None, true, false);
            assert_eq!(batched.totals(None), single.totals(None), "n = {n}");
        }
        let mut time = Window::new(WindowConfig::Time {
            duration: Duration::from_secs(10),
            buckets: 5,
        });
        time.record(Some(3_000_000_000), true, false);
        time.add_successes(4);
        assert_eq!(time.head(), 1);
        let totals = time.totals(Some(3_000_000_000));
        assert_eq!((totals.calls, totals.failures), (5, 1));
        // They expire with the bucket they were added to.
        assert_eq!(time.totals(Some(12_000_000_000)).calls, 0);
    }

    #[test]
    fn time_window_drops_expired_buckets() {
        let t0 = 0;
        let secs = |s: u64| s * 1_000_000_000;
        let mut w = Window::new(WindowConfig::Time {
            duration: Duration::from_secs(10),
            buckets: 5,
        });
        w.record(Some(t0), true, false);
        w.record(Some(t0 + secs(3)), false, false);
        w.record(Some(t0 + secs(9)), true, true);
        assert_eq!(w.totals(Some(t0 + secs(9))).calls, 3);
        // At 10 s the bucket [0, 2) has left the window.
        let later = w.totals(Some(t0 + secs(10)));
        assert_eq!((later.calls, later.failures), (2, 1));
        // At 13 s the window is [4, 14): only the call at 9 s is left.
        assert_eq!(w.totals(Some(t0 + secs(13))).calls, 1);
        assert_eq!(w.totals(Some(t0 + secs(100))), Totals::default());
    }
}
