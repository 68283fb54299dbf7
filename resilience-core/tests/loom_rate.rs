//! Loom model of `RateLimiter::check`: threads racing the compare-and-swap on
//! the theoretical arrival time never both take the last slot, and never lose
//! a slot to a failed CAS.
#![cfg(breakwater_loom)]

use std::time::Duration;

use loom::sync::Arc;
use loom::thread;
use resilience_core::clock::ManualClock;
use resilience_core::rate::{RateLimited, RateLimiter, RateLimiterConfig};

fn limiter(burst: u32) -> (ManualClock, Arc<RateLimiter>) {
    let clock = ManualClock::new();
    let config = RateLimiterConfig {
        rate: 1,
        per: Duration::from_secs(1),
        burst,
    };
    let limiter = RateLimiter::with_clock(config, clock.clone()).unwrap();
    (clock, Arc::new(limiter))
}

#[test]
fn two_threads_race_for_the_last_slot_and_exactly_one_wins() {
    loom::model(|| {
        let (_clock, limiter) = limiter(1);
        let other = limiter.clone();
        let handle = thread::spawn(move || other.check().is_ok());
        let here = limiter.check().is_ok();
        let there = handle.join().unwrap();
        assert!(here ^ there, "here {here}, there {there}");
        assert_eq!(
            limiter.check(),
            Err(RateLimited {
                retry_after: Duration::from_secs(1)
            })
        );
    });
}

#[test]
fn two_threads_with_room_for_both_both_win_and_the_slots_add_up() {
    loom::model(|| {
        let (clock, limiter) = limiter(2);
        let other = limiter.clone();
        let handle = thread::spawn(move || other.check().is_ok());
        let here = limiter.check().is_ok();
        assert!(here);
        assert!(handle.join().unwrap());
        // Both CASes landed: the next slot is a full interval away.
        assert_eq!(
            limiter.check(),
            Err(RateLimited {
                retry_after: Duration::from_secs(1)
            })
        );
        clock.advance(Duration::from_secs(1));
        assert!(limiter.check().is_ok());
    });
}
