//! Staged rollouts on a simulated fleet: a bad version is caught in the
//! canary bake and rolled back; a good one completes.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::sync::Arc;
use std::time::Duration;

use fleet_drain::RolloutError;
use fleet_drain::fleet::HostId;
use fleet_drain::rollout::{Rollout, RolloutConfig, RolloutStep};
use fleet_drain::sim::{self, SimConfig, SimFleet};
use resilience_core::clock::ManualClock;

fn fleet() -> (ManualClock, SimFleet, Vec<HostId>) {
    let clock = ManualClock::new();
    let fleet = SimFleet::with_clock(SimConfig::default(), clock.clone()).unwrap();
    let hosts = fleet.add_hosts(20, 10, "v1");
    for &h in &hosts {
        fleet.add_apps(h, 5).unwrap();
    }
    (clock, fleet, hosts)
}

fn staged(version: &str) -> RolloutConfig {
    RolloutConfig {
        version: version.into(),
        steps: vec![
            RolloutStep::Canary { hosts: 2 },
            RolloutStep::Bake {
                duration: Duration::from_secs(600),
            },
            RolloutStep::Wave { percent: 50.0 },
            RolloutStep::Bake {
                duration: Duration::from_secs(600),
            },
            RolloutStep::Wave { percent: 100.0 },
        ],
        ..RolloutConfig::default()
    }
}

fn versions(fleet: &SimFleet, hosts: &[HostId], version: &str) -> usize {
    hosts
        .iter()
        .filter(|&&h| fleet.host(h).unwrap().version == version)
        .count()
}

#[test]
fn a_bad_version_trips_the_gate_in_the_canary_bake_and_is_rolled_back_before_any_wave() {
    let (clock, fleet, hosts) = fleet();
    fleet.set_version_healthy("v2", false);
    let mut rollout = Rollout::with_clock(
        staged("v2"),
        Arc::new(fleet.clone()),
        hosts.clone(),
        clock.clone(),
    )
    .unwrap();
    let err = sim::run(&clock, rollout.run()).unwrap().unwrap_err();
    match &err {
        RolloutError::Aborted { reason, undone } => {
            // Only the two canaries were ever changed.
            assert_eq!(*undone, 2);
            assert!(reason.contains("healthy share"), "{reason}");
        }
        other => panic!("unexpected {other}"),
    }
    assert_eq!(versions(&fleet, &hosts, "v1"), 20);
    assert!(rollout.changed_hosts().is_empty());
    // Caught within the bake: abort_after (3) samples at 10 s.
    assert!(
        clock.elapsed() < Duration::from_secs(60),
        "{:?}",
        clock.elapsed()
    );
}

#[test]
fn a_good_version_completes_every_step() {
    let (clock, fleet, hosts) = fleet();
    let mut rollout = Rollout::with_clock(
        staged("v2"),
        Arc::new(fleet.clone()),
        hosts.clone(),
        clock.clone(),
    )
    .unwrap();
    let report = sim::run(&clock, rollout.run()).unwrap().unwrap();
    assert_eq!(report.steps_completed, 5);
    assert_eq!(report.hosts_changed, 20);
    assert_eq!(versions(&fleet, &hosts, "v2"), 20);
    assert!(report.elapsed >= Duration::from_secs(1200));
}

#[test]
fn start_without_traffic_then_shift_rolls_back_traffic_and_hosts_in_reverse() {
    let (clock, fleet, hosts) = fleet();
    fleet.set_version_healthy("v2", false);
    let config = RolloutConfig {
        version: "v2".into(),
        steps: vec![
            RolloutStep::StartWithoutTraffic,
            RolloutStep::Bake {
                duration: Duration::from_secs(120),
            },
            RolloutStep::ShiftTraffic { percent: 10.0 },
            RolloutStep::Bake {
                duration: Duration::from_secs(600),
            },
            RolloutStep::ShiftTraffic { percent: 100.0 },
        ],
        ..RolloutConfig::default()
    };
    let mut rollout = Rollout::with_clock(
        config,
        Arc::new(fleet.clone()),
        hosts.clone(),
        clock.clone(),
    )
    .unwrap();
    let err = sim::run(&clock, rollout.run()).unwrap().unwrap_err();
    // Without traffic the bad version looked healthy; 10 % of traffic
    // tripped the gate: 20 starts and 1 traffic shift undone.
    assert!(
        matches!(err, RolloutError::Aborted { undone: 21, .. }),
        "{err}"
    );
    assert_eq!(fleet.traffic("v2"), Some(0.0));
    assert_eq!(versions(&fleet, &hosts, "v1"), 20);
    assert!(hosts.iter().all(|&h| fleet.is_serving(h)));
}

#[test]
fn invalid_rollouts_give_clear_errors() {
    let (clock, fleet, hosts) = fleet();
    let make = |config: RolloutConfig, hosts: Vec<HostId>| {
        Rollout::with_clock(config, Arc::new(fleet.clone()), hosts, clock.clone())
    };
    let cases = [
        (
            RolloutConfig {
                version: String::new(),
                ..staged("v2")
            },
            "version",
        ),
        (
            RolloutConfig {
                steps: vec![],
                ..staged("v2")
            },
            "steps",
        ),
        (
            RolloutConfig {
                steps: vec![RolloutStep::Canary { hosts: 0 }],
                ..staged("v2")
            },
            "steps[0].hosts",
        ),
        (
            RolloutConfig {
                steps: vec![RolloutStep::Wave { percent: 0.0 }],
                ..staged("v2")
            },
            "steps[0].percent",
        ),
        (
            RolloutConfig {
                steps: vec![RolloutStep::Wave { percent: f64::NAN }],
                ..staged("v2")
            },
            "steps[0].percent",
        ),
        (
            RolloutConfig {
                steps: vec![RolloutStep::ShiftTraffic { percent: 101.0 }],
                ..staged("v2")
            },
            "steps[0].percent",
        ),
        (
            RolloutConfig {
                steps: vec![RolloutStep::Bake {
                    duration: Duration::ZERO,
                }],
                ..staged("v2")
            },
            "steps[0].duration",
        ),
        (
            RolloutConfig {
                rollback_timeout: Duration::ZERO,
                ..staged("v2")
            },
            "rollback_timeout",
        ),
    ];
    for (config, field) in cases {
        assert_eq!(make(config, hosts.clone()).unwrap_err().field(), field);
    }
    assert_eq!(make(staged("v2"), vec![]).unwrap_err().field(), "hosts");
}
