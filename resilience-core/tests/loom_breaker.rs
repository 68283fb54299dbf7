//! Loom model checks of the circuit breaker's concurrency: the lock-free
//! closed-state fast path racing a trip, and half-open probe slots under
//! concurrent acquire / drop.
//!
//! Run with `RUSTFLAGS="--cfg breakwater_loom" cargo test -p resilience-core --release
//! --target-dir target/loom --test loom_breaker`.
#![cfg(breakwater_loom)]
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use loom::thread;
use resilience_core::backoff::{BackoffConfig, Jitter};
use resilience_core::breaker::{BreakerConfig, BreakerState, CircuitBreaker, WindowConfig};
use resilience_core::clock::ManualClock;

fn config(probes: u32) -> BreakerConfig {
    BreakerConfig {
        consecutive_failures: Some(1),
        window: WindowConfig::Count { calls: 4 },
        minimum_calls: 4,
        open_wait: BackoffConfig {
            base: Duration::from_secs(1),
            max: Duration::from_secs(1),
            factor: 1.0,
            jitter: Jitter::None,
            max_attempts: None,
        },
        half_open_probes: probes,
        ..BreakerConfig::default()
    }
}

/// A breaker that has tripped and whose wait has elapsed.
fn ready_to_probe(probes: u32) -> CircuitBreaker {
    let clock = ManualClock::new();
    let breaker = CircuitBreaker::with_clock(config(probes), clock.clone()).unwrap();
    breaker.try_acquire().unwrap().record_failure();
    clock.advance(Duration::from_secs(1));
    breaker
}

#[test]
fn concurrent_acquires_never_exceed_the_probe_limit() {
    loom::model(|| {
        let breaker = ready_to_probe(1);
        let other = breaker.clone();
        let t = thread::spawn(move || other.try_acquire().ok());
        let mine = breaker.try_acquire().ok();
        let theirs = t.join().unwrap();
        assert_eq!(
            usize::from(mine.is_some()) + usize::from(theirs.is_some()),
            1,
            "exactly one probe admitted"
        );
        assert_eq!(breaker.state(), BreakerState::HalfOpen);
        drop((mine, theirs));
        // The dropped probe freed its slot.
        breaker.try_acquire().unwrap().record_success();
        assert_eq!(breaker.state(), BreakerState::Closed);
    });
}

#[test]
fn a_probe_dropped_concurrently_with_an_acquire_never_leaks() {
    loom::model(|| {
        let breaker = ready_to_probe(1);
        let probe = breaker.try_acquire().unwrap();
        let t = thread::spawn(move || drop(probe));
        let raced = breaker.try_acquire().ok();
        t.join().unwrap();
        match raced {
            Some(permit) => permit.record_success(),
            None => breaker.try_acquire().unwrap().record_success(),
        }
        assert_eq!(breaker.state(), BreakerState::Closed);
    });
}

#[test]
fn a_fast_path_permit_racing_a_trip_does_not_disturb_the_open_state() {
    loom::model(|| {
        let clock = ManualClock::new();
        let breaker = CircuitBreaker::with_clock(config(1), clock.clone()).unwrap();
        let other = breaker.clone();
        let t = thread::spawn(move || {
            if let Ok(permit) = other.try_acquire() {
                permit.record_success();
            }
        });
        breaker.try_acquire().unwrap().record_failure();
        t.join().unwrap();
        // Whatever the interleaving, the failure tripped the breaker and a
        // late success from the closed state did not close it again.
        assert_eq!(breaker.state(), BreakerState::Open);
        let metrics = breaker.metrics();
        assert_eq!(metrics.trips, 1);
        assert_eq!(metrics.failures, 1);
    });
}

#[test]
fn lock_free_successes_are_never_lost_or_counted_twice() {
    loom::model(|| {
        let clock = ManualClock::new();
        let config = BreakerConfig {
            consecutive_failures: Some(2),
            ..config(1)
        };
        let breaker = CircuitBreaker::with_clock(config, clock).unwrap();
        let other = breaker.clone();
        let t = thread::spawn(move || {
            for _ in 0..2 {
                if let Ok(permit) = other.try_acquire() {
                    permit.record_success();
                }
            }
        });
        breaker.try_acquire().unwrap().record_failure();
        let metrics = breaker.metrics();
        t.join().unwrap();
        let after = breaker.metrics();
        assert_eq!(after.successes, 2, "both successes counted once");
        assert_eq!(after.failures, 1);
        assert!(metrics.successes <= 2);
        // One failure with a success after it or not: never two in a row.
        assert_eq!(after.state, BreakerState::Closed);
        assert_eq!(after.window_calls, 3);
    });
}
