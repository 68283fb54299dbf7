//! The start pacer: at most `max_starts_per_host_per_minute` starts into
//! each receiver per sliding minute.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::fleet::HostId;

/// The window of `max_starts_per_host_per_minute`.
pub(super) const START_WINDOW: Duration = Duration::from_secs(60);

/// Holds starts into each receiver to a limit per sliding 60 s window.
#[derive(Debug)]
pub(super) struct StartPacer {
    pub(super) limit: usize,
    pub(super) starts: HashMap<HostId, VecDeque<Instant>>,
    pub(super) blocked_until: Option<Instant>,
    pub(super) peak: u32,
}

impl StartPacer {
    pub(super) fn new(limit: u32) -> Self {
        StartPacer {
            limit: limit.max(1) as usize,
            starts: HashMap::new(),
            blocked_until: None,
            peak: 0,
        }
    }

    /// The earliest instant a start into `host` is allowed.
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
        }
        at
    }

    pub(super) fn record(&mut self, host: HostId, now: Instant) {
        let log = self.starts.entry(host).or_default();
        log.push_back(now);
        self.peak = self.peak.max(u32::try_from(log.len()).unwrap_or(u32::MAX));
    }
}
