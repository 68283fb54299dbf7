//! Instance names in `tracing` output: the `name` field of a named
//! instance's events and the `retry` span of a retry run (with its name and
//! attempt count). A test binary of its own whose tests all capture through
//! the one global subscriber of `support::logs` (see there why).
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use futures::FutureExt;
use resilience_core::backoff::{BackoffConfig, Jitter};
use resilience_core::breaker::{BreakerConfig, CircuitBreaker};
use resilience_core::clock::ManualClock;
use resilience_core::limit::{ConcurrencyLimit, ConcurrencyLimitConfig};
use resilience_core::retry::{ErrorClass, RetryConfig, RetryPolicy};
use resilience_core::{InstanceName, Named};

mod support {
    pub(crate) mod logs;
}

#[test]
fn a_named_breaker_says_which_one_opened() {
    let capture = support::logs::capture(tracing::Level::INFO);
    let config: Named<BreakerConfig> =
        serde_json::from_str(r#"{ "name": "users-db", "consecutive_failures": 1 }"#).unwrap();
    let breaker = CircuitBreaker::from_named(config, ManualClock::new()).unwrap();
    breaker.try_acquire().unwrap().record_failure();
    let logs = capture.text();
    assert!(
        logs.contains("circuit breaker opened") && logs.contains("name=users-db"),
        "{logs}"
    );
}

#[test]
fn a_retry_run_has_a_span_with_the_name_and_the_attempts() {
    let capture = support::logs::capture(tracing::Level::DEBUG);
    let clock = ManualClock::new();
    clock.set_auto_advance(true);
    let policy = RetryPolicy::new(RetryConfig {
        max_attempts: 3,
        backoff: BackoffConfig {
            base: Duration::from_millis(10),
            jitter: Jitter::None,
            ..BackoffConfig::default()
        },
        ..RetryConfig::default()
    })
    .unwrap()
    .named(InstanceName::new("payments").unwrap())
    .with_clock(clock);
    let result = policy
        .run_classified(
            |(): &()| ErrorClass::Transient,
            |_| async { Err::<(), ()>(()) },
        )
        .now_or_never()
        .unwrap();
    assert!(result.is_err());
    let logs = capture.text();
    // Every event of the run is inside its span, which records the attempts
    // begun so far.
    assert!(
        logs.contains("retry{name=payments attempts=1}") && logs.contains("retrying after backoff"),
        "{logs}"
    );
    assert!(
        logs.lines()
            // (tracing-subscriber's fmt appends each recorded value)
            .any(|l| l.contains("retry{name=payments")
                && l.contains("attempts=3}")
                && l.contains("retry attempts exhausted")
                && l.contains("name=payments")),
        "{logs}"
    );
}

#[test]
fn a_named_limit_says_which_one_shed() {
    let capture = support::logs::capture(tracing::Level::DEBUG);
    let limit = ConcurrencyLimit::with_clock(
        ConcurrencyLimitConfig {
            max_concurrent: 1,
            max_queued: 0,
            ..ConcurrencyLimitConfig::default()
        },
        ManualClock::new(),
    )
    .unwrap()
    .named(InstanceName::new("allocator").unwrap());
    let _held = limit.try_acquire().unwrap();
    assert!(limit.try_acquire().is_err());
    let logs = capture.text();
    assert!(
        logs.lines().any(
            |l| l.contains("request shed by concurrency limit") && l.contains("name=allocator")
        ),
        "{logs}"
    );
}
