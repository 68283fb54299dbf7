//! Model-checked interleavings of the lock-free retry budget.
//!
//! Run with `RUSTFLAGS="--cfg breakwater_loom" cargo test -p resilience-core --release
//! --target-dir target/loom --test 'loom_*'`.
#![cfg(breakwater_loom)]
#![allow(clippy::unwrap_used, clippy::indexing_slicing)] // test helpers outside #[test] fns

use std::time::Duration;

use loom::sync::Arc;
use loom::thread;
use resilience_core::budget::{RetryBudget, RetryBudgetConfig};
use resilience_core::clock::ManualClock;

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(3);
    builder.check(f);
}

fn budget(clock: &ManualClock) -> Arc<RetryBudget> {
    let config = RetryBudgetConfig {
        ttl: Duration::from_secs(1),
        min_retries_per_sec: 0,
        retry_ratio: 0.5,
    };
    Arc::new(RetryBudget::with_clock(config, clock.clone()).unwrap())
}

/// Two threads race for the single token: exactly one gets it.
#[test]
fn racing_withdrawals_never_over_grant() {
    model(|| {
        let clock = ManualClock::new();
        let budget = budget(&clock);
        budget.deposit();
        budget.deposit(); // one token
        let other = Arc::clone(&budget);
        let t = thread::spawn(move || other.try_withdraw());
        let mine = budget.try_withdraw();
        let theirs = t.join().unwrap();
        assert!(
            mine ^ theirs,
            "exactly one of the two gets the token: {mine} {theirs} {:?}",
            budget.stats()
        );
    });
}

/// Deposits and withdrawals race while both threads enter a new slot, so
/// the slot rotation (freeze, commit, publish) races with the fast paths.
#[test]
fn deposits_and_withdrawals_racing_a_rotation_never_over_grant() {
    model(|| {
        let clock = ManualClock::new();
        let budget = budget(&clock);
        budget.deposit();
        budget.deposit(); // one token, not yet committed
        clock.advance(Duration::from_millis(50)); // next slot
        let other = Arc::clone(&budget);
        let t = thread::spawn(move || {
            other.deposit();
            other.try_withdraw()
        });
        let mine = budget.try_withdraw();
        let theirs = t.join().unwrap();
        // 1.5 tokens at most: never two grants, and the committed token is
        // never lost, so at least one grant.
        assert!(mine || theirs);
        assert!(!(mine && theirs));
        let stats = budget.stats();
        assert_eq!(stats.deposits, 3);
        assert_eq!(stats.granted + stats.denied, 2);
        assert_eq!(stats.granted, 1);
    });
}

/// One thread moves the clock into a new slot and rotates while the other
/// withdraws on the old slot: no withdrawal may be lost by the rotation
/// (which would refund it at once and over-grant).
#[test]
fn a_rotation_never_loses_a_racing_withdrawal() {
    model(|| {
        let clock = ManualClock::new();
        let budget = budget(&clock);
        for _ in 0..4 {
            budget.deposit(); // two tokens
        }
        let other = Arc::clone(&budget);
        let t = thread::spawn(move || {
            u64::from(other.try_withdraw()) + u64::from(other.try_withdraw())
        });
        // A scheduling point, so that the other thread may read the clock
        // before or after it moves (the clock itself is not modelled).
        thread::yield_now();
        clock.advance(Duration::from_millis(50));
        let mine = u64::from(budget.try_withdraw());
        let granted = mine + t.join().unwrap();
        assert_eq!(granted, 2, "two tokens, three attempts");
        assert_eq!(budget.stats().granted, 2);
    });
}

/// Deposits on the old slot race with a rotation: none is lost (a deposit
/// landing on a frozen stripe retries) and none is counted twice.
#[test]
fn a_rotation_never_loses_or_duplicates_a_racing_deposit() {
    model(|| {
        let clock = ManualClock::new();
        let budget = budget(&clock);
        budget.deposit();
        budget.deposit(); // one token
        let other = Arc::clone(&budget);
        let t = thread::spawn(move || {
            other.deposit();
            other.deposit(); // another token
        });
        thread::yield_now();
        clock.advance(Duration::from_millis(50));
        let granted = u64::from(budget.try_withdraw()) + u64::from(budget.try_withdraw());
        t.join().unwrap();
        assert!(granted >= 1, "the committed token is always there");
        assert_eq!(budget.stats().deposits, 4);
        assert_eq!(granted + budget.available(), 2);
    });
}
