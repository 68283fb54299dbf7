//! The retry executor's `tracing` events, in a test binary of their own
//! whose tests all capture through the one global subscriber of
//! `support::logs`: `tracing` caches per-callsite interest globally, so a
//! test that installs a scoped subscriber races with tests that run without
//! one in the same process.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use resilience_core::deadline::Deadline;
use resilience_core::retry::Retryable;

#[derive(Debug, Clone, PartialEq, Eq)]
enum TestError {
    Transient(u32),
}

impl Retryable for TestError {
    fn is_retryable(&self) -> bool {
        true
    }
}

mod support {
    pub(crate) mod logs;
    pub(crate) mod retry;
}
use support::retry::{auto_clock, fixed_backoff, policy_with, tiny_budget};

#[tokio::test]
async fn retry_decisions_emit_tracing_events() {
    // A current-thread runtime: every event is emitted on this thread.
    let capture = support::logs::capture(tracing::Level::DEBUG);

    let clock = auto_clock();
    let policy = policy_with(&clock, 10, fixed_backoff(100)).with_budget(tiny_budget(&clock, 0.0));
    let _ = policy
        .run(|attempt| async move { Err::<(), _>(TestError::Transient(attempt)) })
        .await;
    let deadline = Deadline::after(clock.clone(), Duration::from_millis(50));
    let _ = policy
        .run_with_deadline(&deadline, |attempt| async move {
            Err::<(), _>(TestError::Transient(attempt))
        })
        .await;

    let logs = capture.text();
    assert!(logs.contains("retrying after backoff"), "{logs}");
    assert!(logs.contains("delay_ms=100"), "{logs}");
    assert!(logs.contains("error=Some(Transient(1))"), "{logs}");
    assert!(logs.contains("retry denied by budget"), "{logs}");
    assert!(logs.contains("retry stopped by deadline"), "{logs}");
}
