//! Per-receiver limits hold whoever places the apps: the controller
//! (`migrate`) or the platform (`evict`, the sim picking the host with the
//! fewest apps regardless of the starts already running there).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use fleet_drain::drain::{AdaptiveStartsConfig, DrainConfig, DrainController};
use fleet_drain::fleet::{DrainFleet, Placement};
use fleet_drain::journal::MemoryJournal;
use fleet_drain::plan::{Amount, DrainLimits};
use fleet_drain::sim::{self, SimConfig};
use fleet_drain::{AppId, FleetError};
use support::{Scenario, assert_fully_drained, scenario};

fn config(concurrent: u32, per_minute: u32) -> DrainConfig {
    DrainConfig {
        limits: DrainLimits {
            max_draining_hosts: 3,
            max_unavailable: Amount::Count(12),
            max_starts_per_host_per_minute: per_minute,
            max_concurrent_starts_per_host: concurrent,
            min_free_capacity: Amount::Count(0),
        },
        check_interval: Duration::from_secs(5),
        deadline: Some(Duration::from_secs(12 * 3600)),
        ..DrainConfig::default()
    }
}

/// 6 old hosts of 8 apps onto 4 receivers of 20 slots, receivers loaded
/// unevenly so least-loaded placement piles onto one of them.
fn world(placement: Placement) -> Scenario {
    let s = scenario(
        SimConfig {
            failure_probability_per_extra_start: 0.0,
            max_failure_probability: 0.0,
            ..SimConfig::default()
        },
        6,
        8,
        4,
        20,
    );
    s.fleet.add_apps(s.new[1], 3).unwrap();
    s.fleet.add_apps(s.new[2], 6).unwrap();
    s.fleet.add_apps(s.new[3], 6).unwrap();
    s.fleet.set_placement(placement);
    s
}

fn drain(s: &Scenario, config: DrainConfig) -> fleet_drain::drain::DrainReport {
    let mut controller = DrainController::with_clock(
        config,
        Arc::new(s.fleet.clone()),
        Box::new(MemoryJournal::new()),
        s.clock.clone(),
    )
    .unwrap();
    sim::run(&s.clock, controller.run(&s.old)).unwrap().unwrap()
}

fn check_limits_hold(placement: Placement, concurrent: u32, per_minute: u32) {
    let mut s = world(placement);
    let report = drain(&s, config(concurrent, per_minute));
    let stats = s.fleet.stats();
    assert_eq!(report.hosts_drained, 6, "{report:?}");
    assert_eq!(report.apps_migrated, 48);
    assert!(
        stats.peak_concurrent_starts <= concurrent,
        "{placement}: {stats:?}"
    );
    assert!(
        stats.peak_starts_per_host_per_minute <= per_minute,
        "{placement}: {stats:?}"
    );
    assert!(report.peak_concurrent_starts_per_host <= concurrent);
    assert_eq!(stats.max_drains_per_host, 1);
    s.apps += 15; // the receivers' own apps
    assert_fully_drained(&s);
}

#[test]
fn controller_placement_holds_per_receiver_limits() {
    check_limits_hold(Placement::Controller, 2, 4);
}

#[test]
fn platform_placement_holds_per_receiver_limits() {
    check_limits_hold(Placement::Platform, 2, 4);
    check_limits_hold(Placement::Platform, 1, 3);
    check_limits_hold(Placement::Platform, 3, 6);
}

/// The limits are what keeps the sim's least-loaded placement in check:
/// evicting everything at once piles the starts onto one receiver.
#[test]
fn unchecked_platform_evictions_pile_onto_one_receiver() {
    let s = world(Placement::Platform);
    let apps: Vec<AppId> = (0..8).map(AppId).collect();
    sim::run(&s.clock, async {
        for &app in &apps {
            s.fleet.evict(app).await.unwrap();
        }
    })
    .unwrap();
    assert!(s.fleet.stats().peak_concurrent_starts >= 4);
}

/// Adaptive starts learn per receiver from where the platform landed the
/// apps: a drain with adaptive starts and probation completes within the
/// ceiling.
#[test]
fn platform_placement_feeds_adaptive_starts_and_probation() {
    let s = world(Placement::Platform);
    let mut config = config(4, 8);
    config.adaptive_starts = Some(AdaptiveStartsConfig {
        initial_limit: 2,
        ..AdaptiveStartsConfig::default()
    });
    config.probation = Some(Duration::from_secs(60));
    let report = drain(&s, config);
    assert_eq!(report.hosts_drained, 6);
    assert!(s.fleet.stats().peak_concurrent_starts <= 4);
    assert!(!report.start_limits.is_empty(), "{report:?}");
}

/// A controller-placed fleet refuses `evict` with an actionable error.
#[test]
fn evict_on_a_controller_placed_fleet_is_unsupported() {
    let s = world(Placement::Controller);
    let err = sim::run(&s.clock, s.fleet.evict(AppId(0)))
        .unwrap()
        .unwrap_err();
    assert!(matches!(err, FleetError::Unsupported(_)), "{err}");
    assert!(!err.is_retryable());
    assert!(err.to_string().contains("set_placement"), "{err}");
}
