//! Deterministic specification of `RetryBudget` on a `ManualClock`.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)] // test helpers outside #[test] fns

use std::sync::Arc;
use std::time::Duration;

use resilience_core::budget::{RetryBudget, RetryBudgetConfig, RetryBudgetStats};
use resilience_core::clock::ManualClock;

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

fn withdraw_all(budget: &RetryBudget) -> u64 {
    let mut granted = 0;
    while budget.try_withdraw() {
        granted += 1;
    }
    granted
}

#[test]
fn contract_example_compiles_and_runs() {
    let clock = ManualClock::new();
    let budget = RetryBudget::with_clock(
        RetryBudgetConfig {
            ttl: Duration::from_secs(10),
            min_retries_per_sec: 10,
            retry_ratio: 0.2,
        },
        clock.clone(),
    )
    .unwrap();
    budget.deposit();
    let ok: bool = budget.try_withdraw();
    assert!(ok, "the floor allows retries");
    clock.advance(Duration::from_secs(11));
    RetryBudget::new(RetryBudgetConfig::default()).unwrap();
}

#[test]
fn an_empty_budget_without_floor_denies_retries() {
    let (budget, _clock) = budget(10, 0, 0.2);
    assert!(!budget.try_withdraw());
    assert_eq!(budget.balance(), 0.0);
    assert_eq!(budget.available(), 0);
}

#[test]
fn each_deposit_adds_the_ratio_of_a_token() {
    let (budget, _clock) = budget(10, 0, 0.5);
    budget.deposit();
    assert_eq!(budget.balance(), 0.5);
    assert!(!budget.try_withdraw(), "half a token is not a retry");
    budget.deposit();
    assert_eq!(budget.available(), 1);
    assert!(budget.try_withdraw());
    assert!(!budget.try_withdraw());
    assert_eq!(budget.balance(), 0.0);
}

#[test]
fn denies_retries_beyond_ratio() {
    let (budget, _clock) = budget(10, 0, 0.2);
    let mut granted = 0;
    for _ in 0..1000 {
        budget.deposit();
        if budget.try_withdraw() {
            granted += 1;
        }
    }
    assert_eq!(granted, 200);
    assert_eq!(
        budget.stats(),
        RetryBudgetStats {
            deposits: 1000,
            granted: 200,
            denied: 800
        }
    );
}

#[test]
fn ratio_above_one_allows_several_retries_per_request() {
    let (budget, _clock) = budget(10, 0, 2.5);
    budget.deposit();
    budget.deposit();
    assert_eq!(withdraw_all(&budget), 5);
}

#[test]
fn ratio_zero_allows_only_the_floor() {
    let (budget, _clock) = budget(2, 3, 0.0);
    for _ in 0..100 {
        budget.deposit();
    }
    assert_eq!(withdraw_all(&budget), 6);
}

#[test]
fn the_floor_is_min_retries_per_sec_times_ttl() {
    let (budget, clock) = budget(10, 10, 0.2);
    assert_eq!(budget.balance(), 100.0);
    assert_eq!(withdraw_all(&budget), 100);
    // The floor refills only when those withdrawals expire, a TTL later.
    clock.advance(Duration::from_secs(5));
    assert!(!budget.try_withdraw());
    clock.advance(Duration::from_secs(5));
    assert_eq!(withdraw_all(&budget), 100);
}

#[test]
fn deposits_expire_after_the_ttl() {
    let (budget, clock) = budget(10, 0, 1.0);
    for _ in 0..10 {
        budget.deposit();
    }
    clock.advance(Duration::from_secs(10));
    assert_eq!(budget.balance(), 0.0);
    assert!(!budget.try_withdraw());
}

#[test]
fn deposits_count_for_at_least_ttl_minus_one_128th() {
    for start_ms in [0, 1, 1234, 5_033, 33, 34] {
        let (budget, clock) = budget(10, 0, 1.0);
        clock.advance(Duration::from_millis(start_ms));
        budget.deposit();
        // ttl / 128 = 78.1 ms
        clock.advance(Duration::from_millis(10_000 - 79));
        assert!(
            budget.try_withdraw(),
            "deposit at {start_ms} ms expired early"
        );
    }
}

#[test]
fn withdrawals_are_returned_exactly_one_ttl_later() {
    let (budget, clock) = budget(1, 1, 0.0);
    clock.advance(Duration::from_millis(777));
    assert!(budget.try_withdraw());
    assert!(!budget.try_withdraw());
    clock.advance(Duration::from_millis(999));
    assert!(
        !budget.try_withdraw(),
        "a withdrawal counts for the whole ttl"
    );
    clock.advance(Duration::from_millis(1));
    assert!(budget.try_withdraw(), "and not longer");
}

#[test]
fn sliding_window_keeps_recent_deposits() {
    let (budget, clock) = budget(10, 0, 0.5);
    budget.deposit();
    budget.deposit();
    clock.advance(Duration::from_secs(6));
    budget.deposit();
    budget.deposit();
    clock.advance(Duration::from_secs(6));
    // The first two deposits expired, the last two still count.
    assert_eq!(budget.balance(), 1.0);
    assert!(budget.try_withdraw());
    assert!(!budget.try_withdraw());
}

#[test]
fn after_a_ttl_without_traffic_the_budget_is_back_at_its_floor() {
    let (budget, clock) = budget(3, 2, 0.7);
    for i in 0..500 {
        budget.deposit();
        budget.try_withdraw();
        budget.try_withdraw();
        clock.advance(Duration::from_millis(13 + i % 7));
    }
    clock.advance(Duration::from_secs(3));
    assert_eq!(budget.balance(), 6.0);
    assert_eq!(budget.available(), 6);
}

#[test]
fn a_full_outage_still_allows_the_ratio_of_traffic() {
    // Every request fails: deposit on every first attempt, so retries stay
    // at `ratio` of the traffic (plus the floor), not only the floor.
    let (budget, clock) = budget(10, 1, 0.2);
    let mut granted = 0u64;
    let requests = 60_000u64;
    for _ in 0..requests {
        budget.deposit();
        if budget.try_withdraw() {
            granted += 1;
        }
        clock.advance(Duration::from_millis(1));
    }
    // 60 s of outage: 20 % of 60 000 plus at most 60 s of floor (+ one ttl).
    let expected = 0.2 * requests as f64;
    assert!(granted as f64 >= expected * 0.99, "{granted}");
    assert!(granted as f64 <= expected + 70.0 + 1.0, "{granted}");
}

#[test]
fn time_going_nowhere_is_fine() {
    let (budget, _clock) = budget(10, 0, 1.0);
    for _ in 0..100_000 {
        budget.deposit();
    }
    assert_eq!(withdraw_all(&budget), 100_000);
}

#[test]
fn a_long_idle_gap_expires_everything() {
    let (budget, clock) = budget(10, 5, 1.0);
    budget.deposit();
    assert!(budget.try_withdraw());
    clock.advance(Duration::from_secs(86_400 * 365));
    assert_eq!(budget.balance(), 50.0);
    budget.deposit();
    assert_eq!(budget.balance(), 51.0);
}

#[test]
fn stats_count_deposits_grants_and_denials() {
    let (budget, clock) = budget(1, 0, 1.0);
    budget.deposit();
    assert!(budget.try_withdraw());
    assert!(!budget.try_withdraw());
    clock.advance(Duration::from_secs(5));
    budget.deposit();
    assert_eq!(
        budget.stats(),
        RetryBudgetStats {
            deposits: 2,
            granted: 1,
            denied: 1
        }
    );
}

#[test]
fn budget_is_send_sync_and_shared_through_an_arc() {
    fn bounds<T: Send + Sync + 'static>() {}
    bounds::<RetryBudget>();
    let (budget, _clock) = budget(10, 0, 1.0);
    let budget = Arc::new(budget);
    let other = Arc::clone(&budget);
    std::thread::spawn(move || other.deposit()).join().unwrap();
    assert!(budget.try_withdraw());
    assert!(format!("{budget:?}").contains("RetryBudget"));
}

#[test]
fn a_batch_of_deposits_counts_as_that_many_single_deposits() {
    for n in [0_u64, 1, 7, 1_000] {
        let (batched, batched_clock) = budget(10, 0, 0.2);
        let (single, single_clock) = budget(10, 0, 0.2);
        batched.deposit_many(n);
        for _ in 0..n {
            single.deposit();
        }
        assert_eq!(batched.stats(), single.stats(), "n = {n}");
        assert_eq!(batched.available(), single.available(), "n = {n}");
        // And they expire together, one ttl later.
        batched_clock.advance(Duration::from_secs(11));
        single_clock.advance(Duration::from_secs(11));
        assert_eq!(withdraw_all(&batched), withdraw_all(&single), "n = {n}");
        assert_eq!(batched.available(), 0);
    }
}
