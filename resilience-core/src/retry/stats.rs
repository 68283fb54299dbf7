//! [`RetryStats`]: the counters of a [`RetryPolicy`](super::RetryPolicy). A
//! leaf: the policy owns them, the run engine counts into them.

use std::sync::atomic::Ordering;

use crate::sync::AtomicU64;

/// Counters of a [`RetryPolicy`](super::RetryPolicy) (and its clones), for
/// dashboards.
///
/// A snapshot: each field is read separately, so under concurrent runs the
/// fields may be a few events apart.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryStats {
    /// Calls of a `run*` method.
    pub runs: u64,
    /// Runs that returned `Ok`.
    pub successes: u64,
    /// Attempts started (first attempts and retries).
    pub attempts: u64,
    /// Retries granted (after backoff, another attempt follows).
    pub retries: u64,
    /// Attempts that ran past `per_attempt_timeout`.
    pub attempt_timeouts: u64,
    /// Runs stopped by a non-retryable error.
    pub not_retryable: u64,
    /// Runs that used all `max_attempts`.
    pub exhausted: u64,
    /// Retries refused by the budget (each ends its run).
    pub budget_denials: u64,
    /// Runs stopped by their deadline.
    pub deadline_stops: u64,
}

// Memory ordering: every counter is an independent statistic, updated with
// `Relaxed` `fetch_add` and read with `Relaxed` loads: no other memory is
// published through them, so no ordering is needed beyond each counter's own
// atomicity.
#[derive(Debug, Default)]
pub(super) struct Counters {
    pub(super) runs: AtomicU64,
    pub(super) successes: AtomicU64,
    pub(super) attempts: AtomicU64,
    pub(super) retries: AtomicU64,
    pub(super) attempt_timeouts: AtomicU64,
    pub(super) not_retryable: AtomicU64,
    pub(super) exhausted: AtomicU64,
    pub(super) budget_denials: AtomicU64,
    pub(super) deadline_stops: AtomicU64,
}

impl Counters {
    pub(super) fn snapshot(&self) -> RetryStats {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        RetryStats {
            runs: load(&self.runs),
            successes: load(&self.successes),
            attempts: load(&self.attempts),
            retries: load(&self.retries),
            attempt_timeouts: load(&self.attempt_timeouts),
            not_retryable: load(&self.not_retryable),
            exhausted: load(&self.exhausted),
            budget_denials: load(&self.budget_denials),
            deadline_stops: load(&self.deadline_stops),
        }
    }
}
