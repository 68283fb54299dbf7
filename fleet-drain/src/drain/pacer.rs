//! The start pacer: per receiver, at most `max_starts_per_host_per_minute`
//! starts per sliding minute, spread at least `60 s / limit` apart (never a
//! burst), and at most a given number of starts in progress at once.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::fleet::HostId;

/// The window of `max_starts_per_host_per_minute`.
pub(super) const START_WINDOW: Duration = Duration::from_secs(60);

/// Holds starts into each receiver to a limit per sliding 60 s window,
/// spread evenly, and counts the starts in progress on each.
#[derive(Debug)]
pub(super) struct StartPacer {
    pub(super) limit: usize,
    /// Least time between two starts into one receiver.
    pub(super) spacing: Duration,
    pub(super) starts: HashMap<HostId, VecDeque<Instant>>,
    pub(super) blocked_until: Option<Instant>,
    pub(super) peak: u32,
    /// Starts in progress per receiver.
    pub(super) in_progress: HashMap<HostId, u32>,
    /// Most starts in progress on one receiver at once.
    pub(super) peak_concurrent: u32,
}

impl StartPacer {
    pub(super) fn new(limit: u32) -> Self {
        let limit = limit.max(1);
        StartPacer {
            limit: limit as usize,
            spacing: START_WINDOW / limit,
            starts: HashMap::new(),
            blocked_until: None,
            peak: 0,
            in_progress: HashMap::new(),
            peak_concurrent: 0,
        }
    }

    /// The earliest instant a start into `host` is allowed by the rate
    /// (the per-minute window and the spacing).
    pub(super) fn next_allowed(&mut self, host: HostId, now: Instant) -> Instant {
        let mut at = now;
        if let Some(until) = self.blocked_until
            && until > now
        {
            at = until;
        }
        if let Some(log) = self.starts.get_mut(&host) {
            while log
                .front()
                .is_some_and(|t| now.saturating_duration_since(*t) >= START_WINDOW)
            {
                log.pop_front();
            }
            if log.len() >= self.limit
                && let Some(oldest) = log.get(log.len() - self.limit)
            {
                at = at.max(*oldest + START_WINDOW);
            }
            if let Some(last) = log.back() {
                at = at.max(*last + self.spacing);
            }
        }
        at
    }

    /// Platform placement: how many more starts `host` may receive within
    /// the per-minute window now (the spacing does not apply: the platform
    /// picks when each start lands), and when the next window slot frees
    /// if none is left.
    pub(super) fn window_room(&mut self, host: HostId, now: Instant) -> (usize, Option<Instant>) {
        let Some(log) = self.starts.get_mut(&host) else {
            return (self.limit, None);
        };
        while log
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= START_WINDOW)
        {
            log.pop_front();
        }
        let room = self.limit.saturating_sub(log.len());
        let frees = if room == 0 {
            log.front().map(|t| *t + START_WINDOW)
        } else {
            None
        };
        (room, frees)
    }

    /// Starts in progress on `host`.
    pub(super) fn in_progress(&self, host: HostId) -> u32 {
        self.in_progress.get(&host).copied().unwrap_or(0)
    }

    /// Records a start into `host` at `now`; returns the starts now in
    /// progress there (this one included).
    pub(super) fn record(&mut self, host: HostId, now: Instant) -> u32 {
        let log = self.starts.entry(host).or_default();
        log.push_back(now);
        self.peak = self.peak.max(u32::try_from(log.len()).unwrap_or(u32::MAX));
        let running = self.in_progress.entry(host).or_default();
        *running += 1;
        let running = *running;
        self.peak_concurrent = self.peak_concurrent.max(running);
        running
    }

    /// A start into `host` ended (succeeded or failed).
    pub(super) fn finished(&mut self, host: HostId) {
        if let Some(running) = self.in_progress.get_mut(&host) {
            *running = running.saturating_sub(1);
            if *running == 0 {
                self.in_progress.remove(&host);
            }
        }
    }
}
