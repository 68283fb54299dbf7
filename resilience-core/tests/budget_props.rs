//! Invariants of `RetryBudget` over random interleavings, and exactness of
//! the ratio over long steady runs.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)] // test helpers outside #[test] fns

use std::time::Duration;

use proptest::prelude::*;
use resilience_core::budget::{RetryBudget, RetryBudgetConfig};
use resilience_core::clock::ManualClock;

#[derive(Debug, Clone)]
enum Op {
    Deposit(u32),
    Withdraw(u32),
    Advance(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (1u32..50).prop_map(Op::Deposit),
        3 => (1u32..20).prop_map(Op::Withdraw),
        2 => (0u64..2_500).prop_map(Op::Advance),
    ]
}

fn config() -> impl Strategy<Value = RetryBudgetConfig> {
    (
        1_000u64..=3_000,
        0u32..=5,
        prop_oneof![
            Just(0.0),
            Just(0.05),
            Just(0.2),
            Just(0.6),
            Just(1.0),
            Just(5.0),
            0.0f64..3.0
        ],
    )
        .prop_map(
            |(ttl_ms, min_retries_per_sec, retry_ratio)| RetryBudgetConfig {
                ttl: Duration::from_millis(ttl_ms),
                min_retries_per_sec,
                retry_ratio,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// At every granted retry, the retries granted during the preceding TTL
    /// are at most `ratio * deposits in that TTL + floor` (+1 for rounding);
    /// and a TTL after the last call the balance is exactly the floor.
    #[test]
    fn grants_never_exceed_the_window_bound(config in config(), ops in prop::collection::vec(op(), 1..200)) {
        let clock = ManualClock::new();
        let budget = RetryBudget::with_clock(config.clone(), clock.clone()).unwrap();
        let ttl = config.ttl;
        let reserve = config.reserve();
        let mut now = Duration::ZERO;
        let mut deposits: Vec<Duration> = Vec::new();
        let mut grants: Vec<Duration> = Vec::new();
        let mut attempts = 0u64;
        for op in ops {
            match op {
                Op::Deposit(n) => {
                    for _ in 0..n {
                        budget.deposit();
                        deposits.push(now);
                    }
                }
                Op::Withdraw(n) => {
                    for _ in 0..n {
                        attempts += 1;
                        if budget.try_withdraw() {
                            grants.push(now);
                            let from = now.saturating_sub(ttl);
                            let in_window = |t: &&Duration| **t > from || (now < ttl && **t >= from);
                            let granted = grants.iter().filter(in_window).count() as f64;
                            let deposited = deposits.iter().filter(in_window).count() as f64;
                            let bound = config.retry_ratio * deposited + reserve + 1.0;
                            prop_assert!(granted <= bound,
                                "at {now:?}: {granted} grants > {bound} (deposits {deposited})");
                        }
                    }
                }
                Op::Advance(ms) => {
                    clock.advance(Duration::from_millis(ms));
                    now += Duration::from_millis(ms);
                }
            }
        }
        let stats = budget.stats();
        prop_assert_eq!(stats.deposits, deposits.len() as u64);
        prop_assert_eq!(stats.granted, grants.len() as u64);
        prop_assert_eq!(stats.granted + stats.denied, attempts);

        clock.advance(ttl);
        prop_assert!((budget.balance() - reserve).abs() < 1e-6,
            "balance {} != floor {reserve}", budget.balance());
        prop_assert_eq!(budget.available(), reserve.floor() as u64);
    }

    /// The budget never grants while an exactly computed balance is below
    /// one token, within a single TTL (no expiry involved).
    #[test]
    fn within_one_ttl_grants_match_exact_arithmetic(
        ratio in 0.0f64..10.0,
        min in 0u32..3,
        pattern in prop::collection::vec(any::<bool>(), 1..500),
    ) {
        let config = RetryBudgetConfig { ttl: Duration::from_secs(10), min_retries_per_sec: min, retry_ratio: ratio };
        let budget = RetryBudget::with_clock(config.clone(), ManualClock::new()).unwrap();
        let mut deposited = 0u64;
        let mut granted = 0u64;
        for deposit in pattern {
            if deposit {
                budget.deposit();
                deposited += 1;
            } else {
                let exact = config.reserve() + ratio * deposited as f64 - granted as f64;
                let ok = budget.try_withdraw();
                // Units are a millionth of a token: allow that rounding.
                if exact >= 1.0 + 1e-6 * (deposited as f64 + 1.0) {
                    prop_assert!(ok, "denied with balance {exact}");
                }
                if exact < 1.0 - 1e-6 * (deposited as f64 + 1.0) {
                    prop_assert!(!ok, "granted with balance {exact}");
                }
                granted += u64::from(ok);
            }
        }
    }
}

/// Long steady outage: every request deposits and asks for retries until
/// denied. The share of granted retries must be within 1 % of the ratio
/// (tower #857: integer reciprocals turn 0.6 into 1.0).
#[test]
fn long_run_ratio_is_exact_within_one_percent() {
    for ratio in [0.05, 0.2, 0.6, 1.0, 5.0] {
        let clock = ManualClock::new();
        let budget = RetryBudget::with_clock(
            RetryBudgetConfig {
                ttl: Duration::from_secs(10),
                min_retries_per_sec: 0,
                retry_ratio: ratio,
            },
            clock.clone(),
        )
        .unwrap();
        let requests = 300_000u64; // 300 s at one request per millisecond
        let mut granted = 0u64;
        for _ in 0..requests {
            budget.deposit();
            while budget.try_withdraw() {
                granted += 1;
            }
            clock.advance(Duration::from_millis(1));
        }
        let share = granted as f64 / requests as f64;
        let error = (share - ratio).abs() / ratio;
        println!(
            "ratio {ratio}: granted share {share:.5} ({:+.3} %)",
            (share - ratio) / ratio * 100.0
        );
        assert!(
            error < 0.01,
            "ratio {ratio}: granted share {share} ({:.3} % off)",
            error * 100.0
        );
    }
}

/// The same with jittered arrivals and a floor: grants per request converge
/// to `ratio + floor rate / request rate`.
#[test]
fn long_run_ratio_with_floor_and_jitter() {
    let ratio = 0.6;
    let clock = ManualClock::new();
    let budget = RetryBudget::with_clock(
        RetryBudgetConfig {
            ttl: Duration::from_secs(5),
            min_retries_per_sec: 2,
            retry_ratio: ratio,
        },
        clock.clone(),
    )
    .unwrap();
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut elapsed = Duration::ZERO;
    let requests = 200_000u64;
    let mut granted = 0u64;
    for _ in 0..requests {
        budget.deposit();
        if budget.try_withdraw() {
            granted += 1;
        }
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let step = Duration::from_micros(rng % 2_000);
        clock.advance(step);
        elapsed += step;
    }
    let expected = ratio * requests as f64 + 2.0 * elapsed.as_secs_f64();
    let error = (granted as f64 - expected).abs() / expected;
    println!(
        "ratio 0.6 + floor: granted {granted}, expected {expected:.0} ({:+.3} %)",
        (granted as f64 - expected) / expected * 100.0
    );
    assert!(error < 0.01, "granted {granted}, expected {expected}");
}
