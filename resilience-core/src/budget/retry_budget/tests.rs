//! Unit tests of the retry budget's internals; behaviour is specified in
//! `tests/budget_*.rs`.

use std::time::Duration;

use super::*;
use crate::clock::ManualClock;

fn budget(min_retries_per_sec: u32, retry_ratio: f64) -> (RetryBudget, ManualClock) {
    let clock = ManualClock::new();
    let budget = RetryBudget::with_clock(
        RetryBudgetConfig {
            ttl: Duration::from_secs(10),
            min_retries_per_sec,
            retry_ratio,
        },
        clock.clone(),
    )
    .unwrap();
    (budget, clock)
}

#[test]
fn slots_are_at_most_a_256th_of_the_ttl() {
    for secs in [1, 2, 10, 37, 60] {
        let clock = ManualClock::new();
        let budget = RetryBudget::with_clock(
            RetryBudgetConfig {
                ttl: Duration::from_secs(secs),
                ..RetryBudgetConfig::default()
            },
            clock,
        )
        .unwrap();
        assert!(
            (256..512).contains(&budget.window_slots),
            "{secs}s: {}",
            budget.window_slots
        );
        assert!(budget.window_slots << budget.shift <= budget.ttl_nanos);
    }
}

#[test]
fn packed_words_round_trip() {
    let word = pack(0x1234_5678_9abc, 42);
    assert!(tag_matches(word, 0x1234_5678_9abc));
    assert!(!tag_matches(word, 0x1234_5678_9abd));
    assert!(!tag_matches(word | FROZEN, 0x1234_5678_9abc));
    assert_eq!(count(word), 42);
}

#[test]
fn a_full_stripe_is_flushed_without_losing_deposits() {
    let (budget, _clock) = budget(0, 1.0);
    // Pretend the stripe is about to overflow.
    let stripe = budget.stripe();
    stripe.word.store(pack(0, FLUSH_AT), Ordering::Relaxed);
    budget.deposit();
    let stats = budget.stats();
    assert_eq!(stats.deposits, FLUSH_AT + 1);
    assert_eq!(budget.stripe().word.load(Ordering::Relaxed), pack(0, 1));
}

#[test]
fn expiry_returns_exactly_to_the_floor() {
    let (budget, clock) = budget(3, 0.3);
    for _ in 0..1000 {
        budget.deposit();
        budget.try_withdraw();
        clock.advance(Duration::from_millis(7));
    }
    clock.advance(Duration::from_secs(10));
    assert_eq!(budget.balance(), 30.0);
    let ring = budget.lock_ring();
    assert!(ring.deposits.is_empty() && ring.withdrawals.is_empty());
}
