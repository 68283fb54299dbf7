//! Tracing events of `RetryBudget`. In a test binary of its own, whose tests
//! all capture through the one global subscriber of `support::logs`: tracing
//! caches per-callsite interest globally, so tests without a subscriber
//! running in parallel could hide these events.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use resilience_core::budget::{RetryBudget, RetryBudgetConfig};
use resilience_core::clock::ManualClock;

mod support {
    pub(crate) mod logs;
}

fn budget(ttl_secs: u64, min_retries_per_sec: u32, retry_ratio: f64) -> (RetryBudget, ManualClock) {
    let clock = ManualClock::new();
    let budget = RetryBudget::with_clock(
        RetryBudgetConfig {
            ttl: Duration::from_secs(ttl_secs),
            min_retries_per_sec,
            retry_ratio,
        },
        clock.clone(),
    )
    .unwrap();
    (budget, clock)
}

/// Denials are summarized by one debug event per second, not one per call.
#[test]
fn denials_are_logged_at_debug_at_most_once_per_second() {
    let logs = support::logs::capture(tracing::Level::DEBUG);
    let (budget, clock) = budget(10, 0, 0.0);
    for _ in 0..3 {
        for _ in 0..1000 {
            assert!(!budget.try_withdraw());
        }
        clock.advance(Duration::from_secs(1));
    }
    let text = logs.text();
    assert_eq!(text.matches("retry denied by budget").count(), 3, "{text}");
    assert!(text.contains("denied_total=1"), "{text}");
}
