//! Sliding windows of call outcomes: count-based (a ring of the last N
//! outcomes) and time-based (a ring of buckets). Both allocate once, at
//! construction, and keep running totals so that a record is O(1) (amortized
//! over expired buckets for the time window).

use std::time::{Duration, Instant};

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
    pub(super) fn new(config: WindowConfig, origin: Instant) -> Self {
        match config {
            WindowConfig::Count { calls } => Window::Count(CountWindow::new(calls)),
            WindowConfig::Time { duration, buckets } => {
                Window::Time(TimeWindow::new(duration, buckets, origin))
            }
        }
    }

    /// Whether recording needs the current time.
    pub(super) fn needs_clock(&self) -> bool {
        matches!(self, Window::Time(_))
    }

    /// Records one outcome. `now` is required by the time window (it falls
    /// back to its latest bucket without it) and unused by the count window.
    pub(super) fn record(&mut self, now: Option<Instant>, failed: bool, slow: bool) {
        match self {
            Window::Count(w) => w.record(failed, slow),
            Window::Time(w) => w.record(now, failed, slow),
        }
    }

    /// Totals as of `now` (the time window first drops expired buckets).
    pub(super) fn totals(&mut self, now: Option<Instant>) -> Totals {
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
    origin: Instant,
    /// Absolute number (since `origin`) of the newest bucket.
    head: u64,
    totals: Totals,
}

impl TimeWindow {
    fn new(duration: Duration, buckets: u32, origin: Instant) -> Self {
        let bucket = duration / buckets.max(1);
        TimeWindow {
            buckets: vec![Totals::default(); buckets as usize],
            bucket_nanos: u64::try_from(bucket.as_nanos()).unwrap_or(u64::MAX).max(1),
            origin,
            head: 0,
            totals: Totals::default(),
        }
    }

    fn bucket_of(&self, now: Instant) -> u64 {
        let nanos = u64::try_from(now.saturating_duration_since(self.origin).as_nanos())
            .unwrap_or(u64::MAX);
        nanos / self.bucket_nanos
    }

    fn slot(&self, bucket: u64) -> usize {
        // `buckets.len()` is at most 10 000, so the remainder fits a usize.
        (bucket % self.buckets.len().max(1) as u64) as usize
    }

    /// Moves the head to `now`'s bucket, clearing every bucket that left the
    /// window (at most all of them).
    fn roll(&mut self, now: Instant) {
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

    fn record(&mut self, now: Option<Instant>, failed: bool, slow: bool) {
        if let Some(now) = now {
            self.roll(now);
        }
        let index = self.slot(self.head);
        if let Some(bucket) = self.buckets.get_mut(index) {
            bucket.add(failed, slow);
            self.totals.add(failed, slow);
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
        let mut w = Window::new(WindowConfig::Count { calls: 3 }, Instant::now());
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
    fn time_window_drops_expired_buckets() {
        let t0 = Instant::now();
        let secs = Duration::from_secs;
        let mut w = Window::new(
            WindowConfig::Time {
                duration: secs(10),
                buckets: 5,
            },
            t0,
        );
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
