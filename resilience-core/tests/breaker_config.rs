//! Breaker configuration: defaults, serde, validation.
// Test helpers outside `#[test]` functions unwrap too.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use resilience_core::backoff::{BackoffConfig, Jitter};
use resilience_core::breaker::{BreakerConfig, CircuitBreaker, WindowConfig};
use resilience_core::clock::ManualClock;

#[allow(clippy::needless_pass_by_value)]
fn field_of(config: BreakerConfig) -> String {
    let err = CircuitBreaker::with_clock(config.clone(), ManualClock::new()).unwrap_err();
    assert_eq!(config.validate().unwrap_err(), err);
    assert!(err.to_string().contains(err.field()), "{err}");
    err.field().to_owned()
}

#[test]
fn defaults_are_the_documented_reference_parameters() {
    let c = BreakerConfig::default();
    assert_eq!(c.consecutive_failures, None);
    assert_eq!(c.failure_rate_threshold, 0.5);
    assert_eq!(c.slow_call_duration, None);
    assert_eq!(c.slow_call_rate_threshold, 1.0);
    assert_eq!(c.window, WindowConfig::Count { calls: 100 });
    assert_eq!(c.minimum_calls, 20);
    assert_eq!(c.open_wait.base, Duration::from_secs(30));
    assert_eq!(c.open_wait.max, Duration::from_secs(300));
    assert_eq!(c.open_wait.jitter, Jitter::None);
    assert_eq!(c.half_open_probes, 5);
    c.validate().unwrap();
    CircuitBreaker::new(c).unwrap();
}

#[test]
fn rejects_zero_consecutive_failures() {
    let config = BreakerConfig {
        consecutive_failures: Some(0),
        ..BreakerConfig::default()
    };
    assert_eq!(field_of(config), "consecutive_failures");
}

#[test]
fn rejects_failure_rates_outside_zero_to_one() {
    for rate in [f64::NAN, -0.1, 0.0, 1.01, f64::INFINITY, f64::NEG_INFINITY] {
        let config = BreakerConfig {
            failure_rate_threshold: rate,
            ..BreakerConfig::default()
        };
        assert_eq!(field_of(config), "failure_rate_threshold", "{rate}");
    }
    for rate in [f64::MIN_POSITIVE, 0.5, 1.0] {
        BreakerConfig {
            failure_rate_threshold: rate,
            ..BreakerConfig::default()
        }
        .validate()
        .unwrap();
    }
}

#[test]
fn rejects_slow_call_rates_outside_zero_to_one() {
    for rate in [f64::NAN, -1.0, 0.0, 2.0] {
        let config = BreakerConfig {
            slow_call_rate_threshold: rate,
            ..BreakerConfig::default()
        };
        assert_eq!(field_of(config), "slow_call_rate_threshold", "{rate}");
    }
}

#[test]
fn rejects_a_zero_slow_call_duration() {
    let config = BreakerConfig {
        slow_call_duration: Some(Duration::ZERO),
        ..BreakerConfig::default()
    };
    assert_eq!(field_of(config), "slow_call_duration");
}

#[test]
fn rejects_empty_or_huge_count_windows() {
    for calls in [0, 1_000_001] {
        let config = BreakerConfig {
            window: WindowConfig::Count { calls },
            minimum_calls: 1,
            ..BreakerConfig::default()
        };
        assert_eq!(field_of(config), "window.calls", "{calls}");
    }
}

#[test]
fn rejects_zero_or_too_fine_time_windows() {
    let cases = [
        (Duration::ZERO, 10, "window.duration"),
        (Duration::from_secs(10), 0, "window.buckets"),
        (Duration::from_secs(100), 10_001, "window.buckets"),
        (Duration::from_millis(10), 11, "window.buckets"),
    ];
    for (duration, buckets, field) in cases {
        let config = BreakerConfig {
            window: WindowConfig::Time { duration, buckets },
            ..BreakerConfig::default()
        };
        assert_eq!(field_of(config), field, "{duration:?}/{buckets}");
    }
    BreakerConfig {
        window: WindowConfig::Time {
            duration: Duration::from_millis(10),
            buckets: 10,
        },
        ..BreakerConfig::default()
    }
    .validate()
    .unwrap();
}

#[test]
fn rejects_minimum_calls_of_zero_or_above_the_window() {
    let zero = BreakerConfig {
        minimum_calls: 0,
        ..BreakerConfig::default()
    };
    assert_eq!(field_of(zero), "minimum_calls");
    let too_many = BreakerConfig {
        window: WindowConfig::Count { calls: 10 },
        minimum_calls: 11,
        ..BreakerConfig::default()
    };
    assert_eq!(field_of(too_many), "minimum_calls");
}

#[test]
fn rejects_invalid_open_waits() {
    let zero = BreakerConfig {
        open_wait: BackoffConfig {
            base: Duration::ZERO,
            ..BreakerConfig::default().open_wait
        },
        ..BreakerConfig::default()
    };
    assert_eq!(field_of(zero), "open_wait.base");
    let nan = BreakerConfig {
        open_wait: BackoffConfig {
            factor: f64::NAN,
            ..BreakerConfig::default().open_wait
        },
        ..BreakerConfig::default()
    };
    assert_eq!(field_of(nan), "open_wait.factor");
    let limited = BreakerConfig {
        open_wait: BackoffConfig {
            max_attempts: Some(3),
            ..BreakerConfig::default().open_wait
        },
        ..BreakerConfig::default()
    };
    assert_eq!(field_of(limited), "open_wait.max_attempts");
}

#[test]
fn rejects_zero_half_open_probes() {
    let config = BreakerConfig {
        half_open_probes: 0,
        ..BreakerConfig::default()
    };
    assert_eq!(field_of(config), "half_open_probes");
}

#[test]
fn reads_human_durations_and_tagged_windows() {
    let config: BreakerConfig = serde_json::from_str(
        r#"{
            "consecutive_failures": 5,
            "failure_rate_threshold": 0.25,
            "slow_call_duration": "1500ms",
            "slow_call_rate_threshold": 0.8,
            "window": { "type": "time", "duration": "1m", "buckets": 6 },
            "minimum_calls": 50,
            "open_wait": { "base": "5s", "max": "1m", "factor": 3.0, "jitter": "full" },
            "half_open_probes": 3
        }"#,
    )
    .unwrap();
    assert_eq!(config.consecutive_failures, Some(5));
    assert_eq!(config.slow_call_duration, Some(Duration::from_millis(1500)));
    assert_eq!(
        config.window,
        WindowConfig::Time {
            duration: Duration::from_secs(60),
            buckets: 6
        }
    );
    assert_eq!(config.open_wait.base, Duration::from_secs(5));
    config.validate().unwrap();
    let json = serde_json::to_string(&config).unwrap();
    assert_eq!(
        serde_json::from_str::<BreakerConfig>(&json).unwrap(),
        config
    );

    let toml: BreakerConfig =
        toml::from_str("minimum_calls = 10\nwindow = { type = \"count\", calls = 50 }\n").unwrap();
    assert_eq!(toml.window, WindowConfig::Count { calls: 50 });
    assert_eq!(toml.half_open_probes, 5);
}

#[test]
fn rejects_unknown_fields() {
    assert!(serde_json::from_str::<BreakerConfig>(r#"{"failure_rate":0.5}"#).is_err());
    assert!(
        serde_json::from_str::<BreakerConfig>(r#"{"window":{"type":"count","calls":5,"x":1}}"#)
            .is_err()
    );
    assert!(serde_json::from_str::<BreakerConfig>(r#"{"window":{"type":"sliding"}}"#).is_err());
}
