//! `RetryConfig`: validation names the field, serde reads human durations.

use std::time::Duration;

use resilience_core::backoff::{BackoffConfig, Jitter};
use resilience_core::retry::{RetryConfig, RetryPolicy};

fn field_of(config: RetryConfig) -> String {
    match RetryPolicy::new(config) {
        Ok(_) => String::from("<accepted>"),
        Err(err) => err.field().to_owned(),
    }
}

#[test]
fn defaults_are_valid_reference_parameters() {
    let config = RetryConfig::default();
    assert!(config.validate().is_ok());
    assert_eq!(config.max_attempts, 3);
    assert_eq!(config.backoff, BackoffConfig::default());
    assert_eq!(config.max_retry_after, Duration::from_secs(30));
    assert_eq!(config.per_attempt_timeout, None);
    assert_eq!(config.overall_timeout, None);
}

#[test]
fn zero_attempts_is_an_error() {
    let err = RetryPolicy::new(RetryConfig {
        max_attempts: 0,
        ..RetryConfig::default()
    })
    .unwrap_err();
    assert_eq!(err.field(), "max_attempts");
    assert!(err.to_string().contains("at least 1"), "{err}");
}

#[test]
fn invalid_backoff_fields_are_named_with_their_path() {
    let with_backoff = |backoff: BackoffConfig| RetryConfig {
        backoff,
        ..RetryConfig::default()
    };
    let cases = [
        (
            BackoffConfig {
                factor: f64::NAN,
                ..BackoffConfig::default()
            },
            "backoff.factor",
        ),
        (
            BackoffConfig {
                factor: -2.0,
                ..BackoffConfig::default()
            },
            "backoff.factor",
        ),
        (
            BackoffConfig {
                factor: f64::INFINITY,
                ..BackoffConfig::default()
            },
            "backoff.factor",
        ),
        (
            BackoffConfig {
                base: Duration::ZERO,
                ..BackoffConfig::default()
            },
            "backoff.base",
        ),
        (
            BackoffConfig {
                max: Duration::from_millis(1),
                ..BackoffConfig::default()
            },
            "backoff.max",
        ),
        (
            BackoffConfig {
                max_attempts: Some(0),
                ..BackoffConfig::default()
            },
            "backoff.max_attempts",
        ),
        // One attempt limit only: the retry config's.
        (
            BackoffConfig {
                max_attempts: Some(5),
                ..BackoffConfig::default()
            },
            "backoff.max_attempts",
        ),
    ];
    for (backoff, field) in cases {
        assert_eq!(field_of(with_backoff(backoff)), field);
    }
}

#[test]
fn zero_per_attempt_timeout_is_an_error() {
    assert_eq!(
        field_of(RetryConfig {
            per_attempt_timeout: Some(Duration::ZERO),
            ..RetryConfig::default()
        }),
        "per_attempt_timeout"
    );
}

#[test]
fn zero_overall_timeout_is_an_error() {
    assert_eq!(
        field_of(RetryConfig {
            overall_timeout: Some(Duration::ZERO),
            ..RetryConfig::default()
        }),
        "overall_timeout"
    );
}

#[test]
fn zero_max_retry_after_is_allowed_and_ignores_hints() {
    assert!(
        RetryPolicy::new(RetryConfig {
            max_retry_after: Duration::ZERO,
            ..RetryConfig::default()
        })
        .is_ok()
    );
}

#[test]
fn nan_factor_from_a_config_file_is_rejected() {
    let config: RetryConfig = toml::from_str(
        "
        max_attempts = 3
        [backoff]
        factor = nan
        ",
    )
    .unwrap();
    assert_eq!(field_of(config), "backoff.factor");
    let negative: RetryConfig = toml::from_str("[backoff]\nfactor = -1.5\n").unwrap();
    assert_eq!(field_of(negative), "backoff.factor");
}

#[test]
fn negative_values_do_not_parse() {
    assert!(serde_json::from_str::<RetryConfig>(r#"{"max_attempts": -1}"#).is_err());
    assert!(serde_json::from_str::<RetryConfig>(r#"{"max_retry_after": "-5s"}"#).is_err());
    assert!(serde_json::from_str::<RetryConfig>(r#"{"per_attempt_timeout": "-100ms"}"#).is_err());
    assert!(serde_json::from_str::<RetryConfig>(r#"{"backoff": {"base": "-1s"}}"#).is_err());
}

#[test]
fn unknown_fields_are_rejected() {
    assert!(serde_json::from_str::<RetryConfig>(r#"{"max_retries": 3}"#).is_err());
    assert!(serde_json::from_str::<RetryConfig>(r#"{"backoff": {"bogus": 1}}"#).is_err());
}

#[test]
fn human_durations_round_trip_through_json_and_toml() {
    let config: RetryConfig = serde_json::from_str(
        r#"{
            "max_attempts": 5,
            "backoff": { "base": "100ms", "max": "2s", "factor": 3.0, "jitter": "equal" },
            "max_retry_after": "1m",
            "per_attempt_timeout": "250ms",
            "overall_timeout": "10s"
        }"#,
    )
    .unwrap();
    let expected = RetryConfig {
        max_attempts: 5,
        backoff: BackoffConfig {
            base: Duration::from_millis(100),
            max: Duration::from_secs(2),
            factor: 3.0,
            jitter: Jitter::Equal,
            max_attempts: None,
        },
        max_retry_after: Duration::from_secs(60),
        per_attempt_timeout: Some(Duration::from_millis(250)),
        overall_timeout: Some(Duration::from_secs(10)),
    };
    assert_eq!(config, expected);

    let json = serde_json::to_string(&config).unwrap();
    assert!(json.contains(r#""per_attempt_timeout":"250ms""#), "{json}");
    assert_eq!(
        serde_json::from_str::<RetryConfig>(&json).unwrap(),
        expected
    );

    let toml_text = toml::to_string(&config).unwrap();
    assert_eq!(toml::from_str::<RetryConfig>(&toml_text).unwrap(), expected);
    assert!(RetryPolicy::new(config).is_ok());
}

#[test]
fn missing_fields_take_their_defaults() {
    let config: RetryConfig = serde_json::from_str(r#"{"max_attempts": 2}"#).unwrap();
    assert_eq!(
        config,
        RetryConfig {
            max_attempts: 2,
            ..RetryConfig::default()
        }
    );
}
