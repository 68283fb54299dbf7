//! Validation and (de)serialization of `RetryBudgetConfig`.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)] // test helpers outside #[test] fns

use std::time::Duration;

use resilience_core::budget::{RetryBudget, RetryBudgetConfig};
use resilience_core::clock::ManualClock;

fn error_field(config: RetryBudgetConfig) -> String {
    let err = RetryBudget::with_clock(config, ManualClock::new()).unwrap_err();
    assert!(err.to_string().contains(err.field()), "{err}");
    err.field().to_owned()
}

fn with_ratio(retry_ratio: f64) -> RetryBudgetConfig {
    RetryBudgetConfig {
        retry_ratio,
        ..RetryBudgetConfig::default()
    }
}

fn with_ttl(ttl: Duration) -> RetryBudgetConfig {
    RetryBudgetConfig {
        ttl,
        ..RetryBudgetConfig::default()
    }
}

#[test]
fn nan_ratio_is_rejected() {
    assert_eq!(error_field(with_ratio(f64::NAN)), "retry_ratio");
}

#[test]
fn negative_ratio_is_rejected() {
    assert_eq!(error_field(with_ratio(-0.1)), "retry_ratio");
    assert_eq!(error_field(with_ratio(f64::NEG_INFINITY)), "retry_ratio");
}

#[test]
fn ratio_above_1000_is_rejected() {
    assert_eq!(error_field(with_ratio(1000.001)), "retry_ratio");
    assert_eq!(error_field(with_ratio(f64::INFINITY)), "retry_ratio");
}

#[test]
fn ratio_bounds_are_accepted() {
    for ratio in [0.0, 1e-6, 0.2, 1.0, 1000.0] {
        assert!(
            RetryBudget::with_clock(with_ratio(ratio), ManualClock::new()).is_ok(),
            "{ratio}"
        );
    }
}

#[test]
fn zero_ttl_is_rejected() {
    assert_eq!(error_field(with_ttl(Duration::ZERO)), "ttl");
}

#[test]
fn ttl_below_one_second_is_rejected() {
    assert_eq!(error_field(with_ttl(Duration::from_millis(999))), "ttl");
}

#[test]
fn ttl_above_sixty_seconds_is_rejected() {
    assert_eq!(error_field(with_ttl(Duration::from_secs(61))), "ttl");
    assert_eq!(error_field(with_ttl(Duration::from_millis(60_001))), "ttl");
}

#[test]
fn ttl_bounds_and_fractions_are_accepted() {
    for ttl in [
        Duration::from_secs(1),
        Duration::from_millis(1500),
        Duration::from_secs(60),
    ] {
        assert!(
            RetryBudget::with_clock(with_ttl(ttl), ManualClock::new()).is_ok(),
            "{ttl:?}"
        );
    }
}

#[test]
fn huge_floor_is_accepted() {
    let config = RetryBudgetConfig {
        min_retries_per_sec: u32::MAX,
        ttl: Duration::from_secs(60),
        ..RetryBudgetConfig::default()
    };
    let budget = RetryBudget::with_clock(config, ManualClock::new()).unwrap();
    assert!(budget.try_withdraw());
    assert_eq!(budget.available(), u64::from(u32::MAX) * 60 - 1);
}

#[test]
fn fractional_floor_rounds_down_to_whole_retries() {
    let config = RetryBudgetConfig {
        min_retries_per_sec: 1,
        ttl: Duration::from_millis(2500),
        retry_ratio: 0.0,
    };
    let budget = RetryBudget::with_clock(config, ManualClock::new()).unwrap();
    assert_eq!(budget.balance(), 2.5);
    assert!(budget.try_withdraw());
    assert!(budget.try_withdraw());
    assert!(!budget.try_withdraw());
}

#[test]
fn serde_round_trip_uses_human_durations() {
    let config = RetryBudgetConfig::default();
    let json = serde_json::to_string(&config).unwrap();
    assert_eq!(
        json,
        r#"{"ttl":"10s","min_retries_per_sec":10,"retry_ratio":0.2}"#
    );
    let back: RetryBudgetConfig = serde_json::from_str(&json).unwrap();
    assert_eq!(back, config);

    let toml: RetryBudgetConfig = toml::from_str("ttl = \"1m\"\nretry_ratio = 0.05\n").unwrap();
    assert_eq!(toml.ttl, Duration::from_secs(60));
    assert_eq!(toml.retry_ratio, 0.05);
    assert_eq!(toml.min_retries_per_sec, 10);
    let text = toml::to_string(&toml).unwrap();
    assert_eq!(toml::from_str::<RetryBudgetConfig>(&text).unwrap(), toml);
}

#[test]
fn unknown_fields_are_rejected() {
    let err =
        serde_json::from_str::<RetryBudgetConfig>(r#"{"ttl":"10s","ratio":0.2}"#).unwrap_err();
    assert!(err.to_string().contains("ratio"), "{err}");
}

#[test]
fn deserialized_configs_are_validated_by_the_constructor() {
    let config: RetryBudgetConfig = serde_json::from_str(r#"{"ttl":"0s"}"#).unwrap();
    assert_eq!(error_field(config), "ttl");
}
