//! `KeyedRetryBudget`: per-key isolation, bounded keys, idle eviction and
//! the overflow budget.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)] // test helpers outside #[test] fns

use std::sync::Arc;
use std::time::Duration;

use resilience_core::budget::{
    KeyedRetryBudget, KeyedRetryBudgetConfig, KeyedRetryBudgetStats, RetryBudgetConfig,
};
use resilience_core::clock::ManualClock;

fn keyed(max_keys: usize) -> (KeyedRetryBudget<String>, ManualClock) {
    let clock = ManualClock::new();
    let config = KeyedRetryBudgetConfig {
        budget: RetryBudgetConfig {
            ttl: Duration::from_secs(10),
            min_retries_per_sec: 1,
            retry_ratio: 0.2,
        },
        max_keys,
        idle_ttl: Duration::from_secs(30),
    };
    (
        KeyedRetryBudget::with_clock(config, clock.clone()).unwrap(),
        clock,
    )
}

fn key(s: &str) -> String {
    s.to_owned()
}

#[test]
fn one_failing_downstream_cannot_drain_the_others() {
    let (budgets, _clock) = keyed(16);
    // "users" is down: every request fails and retries until denied.
    for _ in 0..10_000 {
        budgets.deposit(&key("users"));
        while budgets.try_withdraw(&key("users")) {}
    }
    // "billing" has had little traffic, yet keeps its own floor and ratio.
    for _ in 0..10 {
        budgets.deposit(&key("billing"));
    }
    let mut billing = 0;
    while budgets.try_withdraw(&key("billing")) {
        billing += 1;
    }
    assert_eq!(billing, 10 + 2, "floor (1/s x 10 s) + 20 % of 10 deposits");
    assert_eq!(
        budgets.budget_for(&key("users")).stats().granted,
        2_000 + 10
    );
}

#[test]
fn the_same_key_gets_the_same_budget() {
    let (budgets, _clock) = keyed(4);
    let a = budgets.budget_for(&key("a"));
    let again = budgets.budget_for(&key("a"));
    assert!(Arc::ptr_eq(&a, &again));
    assert!(!Arc::ptr_eq(&a, &budgets.budget_for(&key("b"))));
    assert_eq!(budgets.len(), 2);
    assert!(budgets.contains_key(&key("a")) && !budgets.contains_key(&key("c")));
}

#[test]
fn at_max_keys_the_least_recently_used_idle_key_is_evicted() {
    let (budgets, clock) = keyed(2);
    budgets.deposit(&key("old"));
    clock.advance(Duration::from_secs(10));
    budgets.deposit(&key("newer"));
    clock.advance(Duration::from_secs(25)); // "old" idle 35 s, "newer" 25 s
    budgets.deposit(&key("fresh"));
    assert!(!budgets.contains_key(&key("old")));
    assert!(budgets.contains_key(&key("newer")) && budgets.contains_key(&key("fresh")));
    assert_eq!(
        budgets.stats(),
        KeyedRetryBudgetStats {
            keys: 2,
            evictions: 1,
            overflowed: 0
        }
    );
}

#[test]
fn when_all_keys_are_active_new_keys_share_the_overflow_budget() {
    let (budgets, clock) = keyed(2);
    budgets.deposit(&key("a"));
    budgets.deposit(&key("b"));
    clock.advance(Duration::from_secs(5)); // nobody idle for 30 s yet
    let c = budgets.budget_for(&key("c"));
    let d = budgets.budget_for(&key("d"));
    assert!(Arc::ptr_eq(&c, &d), "overflow keys share one budget");
    assert!(Arc::ptr_eq(&c, &budgets.overflow_budget()));
    assert!(!budgets.contains_key(&key("c")));
    // The overflow keys cannot spend the budgets of "a" and "b".
    while c.try_withdraw() {}
    assert_eq!(c.stats().granted, 10);
    assert!(budgets.try_withdraw(&key("a")));
    assert_eq!(
        budgets.stats(),
        KeyedRetryBudgetStats {
            keys: 2,
            evictions: 0,
            overflowed: 2
        }
    );
    // Once a key goes idle, a new key gets its own budget again.
    clock.advance(Duration::from_secs(30));
    drop((c, d));
    budgets.deposit(&key("e"));
    assert!(budgets.contains_key(&key("e")));
}

#[test]
fn a_held_budget_is_not_evicted() {
    let (budgets, clock) = keyed(1);
    let held = budgets.budget_for(&key("held"));
    clock.advance(Duration::from_secs(60));
    let other = budgets.budget_for(&key("other"));
    assert!(Arc::ptr_eq(&other, &budgets.overflow_budget()));
    drop(held);
    assert!(!Arc::ptr_eq(
        &budgets.budget_for(&key("other")),
        &budgets.overflow_budget()
    ));
}

#[test]
fn evict_idle_removes_every_idle_key() {
    let (budgets, clock) = keyed(8);
    for k in ["a", "b", "c"] {
        budgets.deposit(&key(k));
    }
    clock.advance(Duration::from_secs(20));
    budgets.deposit(&key("b"));
    clock.advance(Duration::from_secs(15));
    assert_eq!(budgets.evict_idle(), 2);
    assert_eq!(budgets.len(), 1);
    assert!(budgets.contains_key(&key("b")));
    assert!(!budgets.is_empty());
}

#[test]
fn invalid_keyed_configs_name_the_field() {
    let field = |config: KeyedRetryBudgetConfig| {
        KeyedRetryBudget::<u32>::with_clock(config, ManualClock::new())
            .unwrap_err()
            .field()
            .to_owned()
    };
    let default = KeyedRetryBudgetConfig::default();
    assert_eq!(
        field(KeyedRetryBudgetConfig {
            max_keys: 0,
            ..default.clone()
        }),
        "max_keys"
    );
    assert_eq!(
        field(KeyedRetryBudgetConfig {
            idle_ttl: Duration::from_secs(5),
            ..default.clone()
        }),
        "idle_ttl"
    );
    assert_eq!(
        field(KeyedRetryBudgetConfig {
            budget: RetryBudgetConfig {
                retry_ratio: f64::NAN,
                ..RetryBudgetConfig::default()
            },
            ..default
        }),
        "budget.retry_ratio"
    );
}

#[test]
fn keyed_config_round_trips_with_human_durations() {
    let config = KeyedRetryBudgetConfig::default();
    let json = serde_json::to_string(&config).unwrap();
    assert!(
        json.contains(r#""idle_ttl":"1m""#) && json.contains(r#""ttl":"10s""#),
        "{json}"
    );
    assert_eq!(
        serde_json::from_str::<KeyedRetryBudgetConfig>(&json).unwrap(),
        config
    );
}

#[test]
fn keyed_budget_is_send_and_sync() {
    fn bounds<T: Send + Sync + 'static>() {}
    bounds::<KeyedRetryBudget<String>>();
    let (budgets, _clock) = keyed(4);
    let budgets = Arc::new(budgets);
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let budgets = Arc::clone(&budgets);
            std::thread::spawn(move || {
                for i in 0..1000 {
                    budgets.deposit(&format!("k{}", (t + i) % 6));
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let stats = budgets.stats();
    assert_eq!(stats.keys, 4);
    assert!(stats.overflowed > 0);
    assert!(format!("{budgets:?}").contains("KeyedRetryBudget"));
}
