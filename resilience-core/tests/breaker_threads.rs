//! Many threads recording through one breaker: the lock-free success path
//! never loses or repeats a count, and failures still trip it.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::thread;
use std::time::Duration;

use resilience_core::breaker::{BreakerConfig, BreakerState, CircuitBreaker, WindowConfig};
use resilience_core::clock::ManualClock;

const THREADS: u64 = 4;
const CALLS: u64 = 20_000;

fn run(config: BreakerConfig, fail_every: Option<u64>) -> CircuitBreaker {
    let clock = ManualClock::new();
    let breaker = Arc::new(CircuitBreaker::with_clock(config, clock.clone()).unwrap());
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let breaker = Arc::clone(&breaker);
            let clock = clock.clone();
            thread::spawn(move || {
                for i in 0..CALLS {
                    if t == 0 && i % 1_000 == 0 {
                        clock.advance(Duration::from_millis(250));
                    }
                    let permit = breaker.try_acquire().unwrap();
                    if fail_every.is_some_and(|n| i % n == 0) {
                        permit.record_failure();
                    } else {
                        permit.record_success();
                    }
                }
            })
        })
        .collect();
    for handle in handles {
        handle.join().unwrap();
    }
    Arc::into_inner(breaker).unwrap()
}

#[test]
fn every_success_is_counted_exactly_once() {
    for window in [
        WindowConfig::Count { calls: 100 },
        WindowConfig::Time {
            duration: Duration::from_secs(10),
            buckets: 10,
        },
    ] {
        let breaker = run(
            BreakerConfig {
                window,
                ..BreakerConfig::default()
            },
            Some(50),
        );
        let metrics = breaker.metrics();
        let failures = THREADS * CALLS.div_ceil(50);
        assert_eq!(metrics.failures, failures, "{window:?}");
        assert_eq!(metrics.successes, THREADS * CALLS - failures, "{window:?}");
        assert_eq!(metrics.state, BreakerState::Closed, "{window:?}");
        if let WindowConfig::Count { calls } = window {
            assert_eq!(metrics.window_calls, calls);
        }
        assert!(metrics.window_failure_rate < 0.5, "{window:?}: {metrics:?}");
    }
}

#[test]
fn a_success_that_brings_the_window_to_minimum_calls_still_trips_it() {
    let config = BreakerConfig {
        window: WindowConfig::Count { calls: 100 },
        minimum_calls: 100,
        failure_rate_threshold: 0.5,
        ..BreakerConfig::default()
    };
    let breaker = CircuitBreaker::with_clock(config, ManualClock::new()).unwrap();
    for _ in 0..49 {
        breaker.try_acquire().unwrap().record_success();
    }
    for _ in 0..50 {
        breaker.try_acquire().unwrap().record_failure();
    }
    assert_eq!(breaker.state(), BreakerState::Closed, "99 calls < minimum");
    // The 100th call is a success, and 50 of 100 failed.
    breaker.try_acquire().unwrap().record_success();
    assert_eq!(breaker.state(), BreakerState::Open);
    assert_eq!(breaker.metrics().successes, 50);
}

#[test]
fn failures_after_lock_free_successes_trip_at_the_exact_call() {
    let config = BreakerConfig {
        window: WindowConfig::Count { calls: 100 },
        minimum_calls: 20,
        failure_rate_threshold: 0.5,
        ..BreakerConfig::default()
    };
    let breaker = CircuitBreaker::with_clock(config, ManualClock::new()).unwrap();
    for _ in 0..1_000 {
        breaker.try_acquire().unwrap().record_success();
    }
    for _ in 0..49 {
        breaker.try_acquire().unwrap().record_failure();
    }
    assert_eq!(breaker.state(), BreakerState::Closed, "49 of the last 100");
    breaker.try_acquire().unwrap().record_failure();
    assert_eq!(breaker.state(), BreakerState::Open, "50 of the last 100");
    let metrics = breaker.metrics();
    assert_eq!((metrics.successes, metrics.failures), (1_000, 50));
}
