//! Helpers shared by the retry executor's test binaries.
#![allow(dead_code, clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use resilience_core::backoff::{BackoffConfig, Jitter};
use resilience_core::budget::{RetryBudget, RetryBudgetConfig};
use resilience_core::clock::ManualClock;
use resilience_core::retry::{RetryConfig, RetryPolicy};

pub(crate) fn fixed_backoff(base_ms: u64) -> BackoffConfig {
    BackoffConfig {
        base: Duration::from_millis(base_ms),
        max: Duration::from_secs(60),
        factor: 2.0,
        jitter: Jitter::None,
        max_attempts: None,
    }
}

pub(crate) fn auto_clock() -> ManualClock {
    let clock = ManualClock::new();
    clock.set_auto_advance(true);
    clock
}

pub(crate) fn policy_with(
    clock: &ManualClock,
    max_attempts: u32,
    backoff: BackoffConfig,
) -> RetryPolicy {
    RetryPolicy::new(RetryConfig {
        max_attempts,
        backoff,
        ..RetryConfig::default()
    })
    .unwrap()
    .with_clock(clock.clone())
}

pub(crate) fn tiny_budget(clock: &ManualClock, retry_ratio: f64) -> Arc<RetryBudget> {
    Arc::new(
        RetryBudget::with_clock(
            RetryBudgetConfig {
                ttl: Duration::from_secs(1),
                min_retries_per_sec: 1,
                retry_ratio,
            },
            clock.clone(),
        )
        .unwrap(),
    )
}
