//! Configs load from TOML and JSON and are validated.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::time::Duration;

use fleet_drain::drain::DrainConfig;
use fleet_drain::plan::Amount;
use fleet_drain::rollout::{RolloutConfig, RolloutStep};

#[test]
fn the_example_drain_toml_parses_and_validates() {
    let text = include_str!("../examples/drain.toml");
    let config: DrainConfig = toml::from_str(text).unwrap();
    config.validate().unwrap();
    assert_eq!(config.limits.max_draining_hosts, 4);
    assert_eq!(config.limits.max_unavailable, Amount::Percent(10.0));
    assert_eq!(config.limits.min_free_capacity, Amount::Percent(10.0));
    assert_eq!(config.deadline, Some(Duration::from_secs(6 * 3600)));
    assert_eq!(config.retry.max, Duration::from_secs(120));
    assert_eq!(config.events.window, Duration::from_secs(60));
    // New configs learn the start concurrency (with probes), below a ceiling.
    assert_eq!(config.limits.max_concurrent_starts_per_host, 16);
    assert_eq!(config.probation, Some(Duration::from_secs(150)));
    assert_eq!(
        config.adaptive_starts,
        Some(fleet_drain::drain::AdaptiveStartsConfig::default())
    );
    assert_eq!(
        config.start_exploration,
        Some(fleet_drain::drain::StartExplorationConfig::default())
    );
}

#[test]
fn configs_round_trip_through_json() {
    let config = DrainConfig::default();
    let json = serde_json::to_string(&config).unwrap();
    let back: DrainConfig = serde_json::from_str(&json).unwrap();
    assert_eq!(back, config);
}

#[test]
fn unknown_fields_and_bad_values_are_refused() {
    let err = toml::from_str::<DrainConfig>("max_draining = 3").unwrap_err();
    assert!(err.to_string().contains("unknown field"), "{err}");
    let err = toml::from_str::<DrainConfig>("[limits]\nmax_unavailable = \"ten%\"").unwrap_err();
    assert!(err.to_string().contains("percentage"), "{err}");
    let config: DrainConfig = toml::from_str("[limits]\nmax_draining_hosts = 0").unwrap();
    assert_eq!(
        config.validate().unwrap_err().field(),
        "limits.max_draining_hosts"
    );
    let config: DrainConfig = toml::from_str("[limits]\nmin_free_capacity = \"100%\"").unwrap();
    assert_eq!(
        config.validate().unwrap_err().field(),
        "limits.min_free_capacity"
    );
}

#[test]
fn rollout_steps_parse_from_toml() {
    let text = r#"
        version = "v2"
        steps = [
            { step = "canary", hosts = 2 },
            { step = "bake", duration = "10m" },
            { step = "wave", percent = 50.0 },
            { step = "start_without_traffic" },
            { step = "shift_traffic", percent = 10.0 },
        ]
    "#;
    let config: RolloutConfig = toml::from_str(text).unwrap();
    config.validate().unwrap();
    assert_eq!(
        config.steps[1],
        RolloutStep::Bake {
            duration: Duration::from_secs(600)
        }
    );
    assert_eq!(config.steps[3], RolloutStep::StartWithoutTraffic);
}
