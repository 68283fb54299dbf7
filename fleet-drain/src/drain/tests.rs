use std::sync::Arc;
use std::time::Duration;

use resilience_core::clock::Clock;

use super::pacer::{START_WINDOW, StartPacer};
use super::*;
use crate::fleet::HostId;
use crate::health::{FleetHealth, HealthGate};
use crate::plan::{DrainPlan, Planner};
use resilience_core::clock::ManualClock;

#[test]
fn pacer_holds_starts_to_the_limit_per_sliding_minute() {
    let clock = ManualClock::new();
    let mut pacer = StartPacer::new(2);
    let h = HostId(1);
    let t0 = clock.now();
    assert_eq!(pacer.next_allowed(h, t0), t0);
    pacer.record(h, t0);
    pacer.record(h, t0 + Duration::from_secs(10));
    assert_eq!(
        pacer.next_allowed(h, t0 + Duration::from_secs(20)),
        t0 + START_WINDOW
    );
    assert_eq!(pacer.next_allowed(h, t0 + START_WINDOW), t0 + START_WINDOW);
    assert_eq!(pacer.next_allowed(HostId(2), t0), t0);
    assert_eq!(pacer.peak, 2);
}

#[test]
fn invalid_configs_name_the_nested_field() {
    let mut config = DrainConfig::default();
    config.limits.max_draining_hosts = 0;
    assert_eq!(
        config.validate().unwrap_err().field(),
        "limits.max_draining_hosts"
    );
    let config = DrainConfig {
        deadline: Some(Duration::ZERO),
        ..DrainConfig::default()
    };
    assert_eq!(config.validate().unwrap_err().field(), "deadline");
    let config = DrainConfig {
        check_interval: Duration::ZERO,
        ..DrainConfig::default()
    };
    assert_eq!(config.validate().unwrap_err().field(), "check_interval");
    let mut config = DrainConfig::default();
    config.gate.fire_after = 0;
    assert_eq!(config.validate().unwrap_err().field(), "gate.fire_after");
    for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        let config = DrainConfig {
            receiver_max_failures_per_minute: Some(bad),
            ..DrainConfig::default()
        };
        assert_eq!(
            config.validate().unwrap_err().field(),
            "receiver_max_failures_per_minute"
        );
    }
}

#[test]
fn shared_types_are_send_and_sync() {
    fn send<T: Send>() {}
    fn send_sync<T: Send + Sync>() {}
    send::<DrainController>();
    send::<crate::rollout::Rollout>();
    send::<crate::journal::FileJournal>();
    send_sync::<DrainPlan>();
    send_sync::<Planner>();
    send_sync::<HealthGate>();
    send_sync::<FleetHealth>();
    send_sync::<crate::journal::MemoryJournal>();
    send_sync::<DrainEvent>();
}

#[test]
fn the_run_future_is_send() {
    fn send<T: Send>(_: &T) {}
    let clock = resilience_core::clock::ManualClock::new();
    let fleet =
        crate::sim::SimFleet::with_clock(crate::sim::SimConfig::default(), clock.clone()).unwrap();
    let mut controller = DrainController::with_clock(
        DrainConfig::default(),
        Arc::new(fleet.clone()),
        Box::new(crate::journal::MemoryJournal::new()),
        clock.clone(),
    )
    .unwrap();
    send(&controller.run(&[]));
    let mut rollout = crate::rollout::Rollout::with_clock(
        crate::rollout::RolloutConfig {
            version: "v2".into(),
            steps: vec![crate::rollout::RolloutStep::StartWithoutTraffic],
            ..crate::rollout::RolloutConfig::default()
        },
        Arc::new(fleet),
        vec![crate::fleet::HostId(0)],
        clock,
    )
    .unwrap();
    send(&rollout.run());
}
