//! The circuit breaker's log lines: a warning when it opens, info when it
//! half-opens and closes. In a test binary of its own whose tests all capture
//! through the one global subscriber of `support::logs`: `tracing` caches
//! per-callsite interest globally, so breaker tests running in parallel
//! without a subscriber could register the "opened" callsite as disabled and
//! hide the warning.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::time::Duration;

use resilience_core::backoff::{BackoffConfig, Jitter};
use resilience_core::breaker::{BreakerConfig, CircuitBreaker, WindowConfig};
use resilience_core::clock::ManualClock;

mod support {
    pub(crate) mod logs;
}

const fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// Trips on 3 failures in a row (the rate rule needs a full window of 10
/// calls), waits 10 s when open, closes after 2 successful probes.
fn open_by_consecutive() -> (CircuitBreaker, ManualClock) {
    let config = BreakerConfig {
        consecutive_failures: Some(3),
        failure_rate_threshold: 0.5,
        slow_call_duration: None,
        slow_call_rate_threshold: 1.0,
        window: WindowConfig::Count { calls: 10 },
        minimum_calls: 10,
        open_wait: BackoffConfig {
            base: secs(10),
            max: secs(80),
            factor: 2.0,
            jitter: Jitter::None,
            max_attempts: None,
        },
        half_open_probes: 2,
    };
    let clock = ManualClock::new();
    let breaker = CircuitBreaker::with_clock(config, clock.clone()).unwrap();
    (breaker, clock)
}

#[test]
fn logs_a_warning_when_opening_and_info_when_closing() {
    let capture = support::logs::capture(tracing::Level::INFO);
    let (breaker, clock) = open_by_consecutive();
    for _ in 0..3 {
        breaker.try_acquire().unwrap().record_failure();
    }
    clock.advance(secs(10));
    for _ in 0..2 {
        breaker.try_acquire().unwrap().record_success();
    }
    let logs = capture.text();
    let lines: Vec<&str> = logs.lines().collect();
    assert_eq!(lines.len(), 3, "{logs}");
    assert!(lines[0].contains("WARN") && lines[0].contains("circuit breaker opened"));
    assert!(lines[0].contains("consecutive_failures=3") && lines[0].contains("wait=10s"));
    assert!(lines[1].contains("INFO") && lines[1].contains("half-open"));
    assert!(lines[2].contains("INFO") && lines[2].contains("closed"));
}
