//! Shared fixtures of the integration tests.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::indexing_slicing
)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use fleet_drain::drain::{DrainConfig, DrainEvent};
use fleet_drain::fleet::HostId;
use fleet_drain::plan::{Amount, DrainLimits};
use fleet_drain::sim::{SimConfig, SimFleet};
use resilience_core::clock::ManualClock;

/// An old fleet to drain onto a new one: `old` hosts with `apps_per_host`
/// apps each, `new` empty hosts of `new_capacity`.
pub struct Scenario {
    pub clock: ManualClock,
    pub fleet: SimFleet,
    pub old: Vec<HostId>,
    pub new: Vec<HostId>,
    pub apps: u32,
}

pub fn scenario(
    sim: SimConfig,
    old: u32,
    apps_per_host: u32,
    new: u32,
    new_capacity: u32,
) -> Scenario {
    let clock = ManualClock::new();
    let fleet = SimFleet::with_clock(sim, clock.clone()).unwrap();
    let old_hosts = fleet.add_hosts(old, apps_per_host.max(1), "v1");
    let new_hosts = fleet.add_hosts(new, new_capacity, "v1");
    for &h in &old_hosts {
        fleet.add_apps(h, apps_per_host).unwrap();
    }
    Scenario {
        clock,
        fleet,
        old: old_hosts,
        new: new_hosts,
        apps: old * apps_per_host,
    }
}

/// The February 2019 shape, scaled down: 40 old hosts of 15 apps onto 40
/// new hosts of 30 slots; starts take 20 s; more than 4 concurrent starts
/// on a host add 10 % failure probability each.
pub fn feb_2019() -> Scenario {
    scenario(SimConfig::default(), 40, 15, 40, 30)
}

/// Bounded limits that keep concurrent starts per host at the safe 4.
pub fn bounded_config() -> DrainConfig {
    DrainConfig {
        limits: DrainLimits {
            max_draining_hosts: 4,
            max_unavailable: Amount::Percent(10.0),
            max_starts_per_host_per_minute: 4,
            max_concurrent_starts_per_host: 4,
            min_free_capacity: Amount::Percent(10.0),
        },
        check_interval: Duration::from_secs(10),
        // A safety net: a regression fails the test instead of hanging it.
        deadline: Some(Duration::from_secs(12 * 3600)),
        ..DrainConfig::default()
    }
}

/// Collects every event emitted.
pub fn collect(
    controller: &mut fleet_drain::drain::DrainController,
) -> Arc<Mutex<Vec<DrainEvent>>> {
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&events);
    controller.on_event(move |e| sink.lock().unwrap().push(e.clone()));
    events
}

/// Every app is on an active host, running, and every old host is drained.
pub fn assert_fully_drained(s: &Scenario) {
    use fleet_drain::fleet::{AppState, DrainFleet, HostState};
    let (hosts, apps) = fleet_drain::sim::run(&s.clock, async {
        (
            s.fleet.hosts().await.unwrap(),
            s.fleet.apps().await.unwrap(),
        )
    })
    .unwrap();
    assert_eq!(apps.len() as u32, s.apps);
    for app in &apps {
        let host = &hosts[app.host.0 as usize];
        assert_eq!(host.state, HostState::Active, "{} on {}", app.id, host.id);
        assert_eq!(app.state, AppState::Running, "{}", app.id);
    }
    for &h in &s.old {
        assert_eq!(hosts[h.0 as usize].state, HostState::Drained, "{h}");
    }
    for &h in &s.new {
        assert!(s.fleet.load(h) <= hosts[h.0 as usize].capacity);
    }
}
