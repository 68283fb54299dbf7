use std::time::Duration;

use resilience_core::clock::ManualClock;

use futures::StreamExt;
use futures::stream::FuturesUnordered;

use super::*;
use crate::fleet::{AppState, DrainFleet, FleetError, HostState, RolloutFleet};

fn fleet(config: SimConfig) -> (ManualClock, SimFleet) {
    let clock = ManualClock::new();
    let fleet = SimFleet::with_clock(config, clock.clone()).unwrap();
    (clock, fleet)
}

#[test]
fn invalid_configs_name_the_field() {
    let bad = [
        (
            SimConfig {
                start_duration: Duration::ZERO,
                ..SimConfig::default()
            },
            "start_duration",
        ),
        (
            SimConfig {
                safe_concurrent_starts: 0,
                ..SimConfig::default()
            },
            "safe_concurrent_starts",
        ),
        (
            SimConfig {
                failure_probability_per_extra_start: f64::NAN,
                ..SimConfig::default()
            },
            "failure_probability_per_extra_start",
        ),
        (
            SimConfig {
                max_failure_probability: 1.5,
                ..SimConfig::default()
            },
            "max_failure_probability",
        ),
        (
            SimConfig {
                base_failure_probability: -0.1,
                ..SimConfig::default()
            },
            "base_failure_probability",
        ),
        (
            SimConfig {
                base_failure_probability: 0.5,
                max_failure_probability: 0.4,
                ..SimConfig::default()
            },
            "base_failure_probability",
        ),
    ];
    for (config, field) in bad {
        assert_eq!(SimFleet::new(config).unwrap_err().field(), field);
    }
}

#[test]
fn failure_probability_rises_beyond_the_safe_concurrency() {
    let c = SimConfig::default();
    assert_eq!(c.failure_probability(4), 0.0);
    assert!((c.failure_probability(6) - 0.2).abs() < 1e-9);
    assert_eq!(c.failure_probability(100), 0.9);
}

#[test]
fn starts_take_time_and_overlap() {
    let (clock, fleet) = fleet(SimConfig::default());
    let [a, b] = [fleet.add_host(10, "v1"), fleet.add_host(10, "v1")];
    let apps = fleet.add_apps(a, 3).unwrap();
    let results = run(&clock, async {
        futures::future::join_all(apps.iter().map(|&app| fleet.migrate(app, b))).await
    })
    .unwrap();
    assert!(results.iter().all(Result::is_ok));
    assert_eq!(clock.elapsed(), Duration::from_secs(20));
    assert_eq!(fleet.load(a), 0);
    assert_eq!(fleet.load(b), 3);
    let stats = fleet.stats();
    assert_eq!(stats.peak_concurrent_starts, 3);
    assert_eq!(stats.peak_starts_per_host_per_minute, 3);
    assert_eq!(stats.failed_starts, 0);
}

#[test]
fn concurrent_starts_beyond_the_threshold_fail() {
    let (clock, fleet) = fleet(SimConfig {
        safe_concurrent_starts: 1,
        failure_probability_per_extra_start: 1.0,
        max_failure_probability: 1.0,
        ..SimConfig::default()
    });
    let [a, b] = [fleet.add_host(10, "v1"), fleet.add_host(10, "v1")];
    let apps = fleet.add_apps(a, 3).unwrap();
    let results = run(&clock, async {
        futures::future::join_all(apps.iter().map(|&app| fleet.migrate(app, b))).await
    })
    .unwrap();
    assert!(results[0].is_ok());
    assert!(matches!(results[1], Err(FleetError::StartFailed { .. })));
    assert_eq!(fleet.stats().failed_starts, 2);
    // The failed apps are on the receiver, failed, and can be restarted there.
    let state = run(&clock, fleet.app_health(apps[1])).unwrap().unwrap();
    assert_eq!(state, AppState::Failed);
    run(&clock, fleet.migrate(apps[1], b)).unwrap().unwrap();
}

#[test]
fn migrations_respect_capacity_and_host_state() {
    let (clock, fleet) = fleet(SimConfig::default());
    let [a, b] = [fleet.add_host(10, "v1"), fleet.add_host(1, "v1")];
    let apps = fleet.add_apps(a, 2).unwrap();
    run(&clock, fleet.migrate(apps[0], b)).unwrap().unwrap();
    let err = run(&clock, fleet.migrate(apps[1], b)).unwrap().unwrap_err();
    assert_eq!(
        err,
        FleetError::NoCapacity {
            host: b,
            capacity: 1
        }
    );
    run(&clock, fleet.cordon(a)).unwrap().unwrap();
    let err = run(&clock, fleet.migrate(apps[0], a)).unwrap().unwrap_err();
    assert!(matches!(err, FleetError::NotAccepting { .. }));
    let err = run(&clock, fleet.set_host_state(a, HostState::Drained))
        .unwrap()
        .unwrap_err();
    assert!(err.to_string().contains("still has 1 apps"));
}

#[test]
fn an_abandoned_start_completes_in_the_background() {
    let (clock, fleet) = fleet(SimConfig::default());
    let [a, b] = [fleet.add_host(10, "v1"), fleet.add_host(10, "v1")];
    let app = fleet.add_app(a).unwrap();
    assert_eq!(
        run_steps(&clock, fleet.migrate(app, b), 1).unwrap_err(),
        SimError::StepLimit
    );
    assert_eq!(fleet.stats().abandoned_starts, 1);
    let health = |fleet: &SimFleet| run(&clock, fleet.app_health(app)).unwrap().unwrap();
    assert_eq!(health(&fleet), AppState::Starting);
    assert_eq!(fleet.load(b), 1);
    clock.advance(Duration::from_secs(20));
    assert_eq!(health(&fleet), AppState::Running);
}

#[test]
fn a_bad_version_makes_apps_unhealthy_only_with_traffic() {
    let (clock, fleet) = fleet(SimConfig::default());
    let host = fleet.add_host(10, "v1");
    let app = fleet.add_app(host).unwrap();
    fleet.set_version_healthy("v2", false);
    let health = |fleet: &SimFleet| run(&clock, fleet.app_health(app)).unwrap().unwrap();
    run(&clock, fleet.start_version(host, "v2", false))
        .unwrap()
        .unwrap();
    assert_eq!(health(&fleet), AppState::Running);
    run(&clock, fleet.shift_traffic("v2", 10.0))
        .unwrap()
        .unwrap();
    assert_eq!(health(&fleet), AppState::Unhealthy);
    run(&clock, fleet.stop_version(host, "v2"))
        .unwrap()
        .unwrap();
    assert_eq!(health(&fleet), AppState::Running);
    assert_eq!(fleet.host(host).unwrap().version, "v1");
}

#[test]
fn concurrent_starts_share_one_clock_timer_per_deadline() {
    let (clock, fleet) = fleet(SimConfig::default());
    let [a, b] = [fleet.add_host(1000, "v1"), fleet.add_host(1000, "v1")];
    let apps = fleet.add_apps(a, 1000).unwrap();
    let mut starts: FuturesUnordered<_> = apps.iter().map(|&app| fleet.migrate(app, b)).collect();
    // Poll every start once: they all wait, on a single clock sleeper.
    let polled = run_steps(&clock, starts.next(), 1);
    assert_eq!(polled.unwrap_err(), SimError::StepLimit);
    assert_eq!(clock.sleepers(), 1);
    let done = run(&clock, async {
        let mut n = 0;
        while starts.next().await.is_some() {
            n += 1;
        }
        n
    })
    .unwrap();
    assert_eq!(done, 1000);
    assert_eq!(fleet.load(b), 1000);
    assert_eq!(clock.elapsed(), Duration::from_secs(20));
}

#[test]
fn a_holder_dropped_early_hands_the_timer_over() {
    let (clock, fleet) = fleet(SimConfig::default());
    let [a, b] = [fleet.add_host(10, "v1"), fleet.add_host(10, "v1")];
    let apps = fleet.add_apps(a, 2).unwrap();
    let mut first = Box::pin(fleet.migrate(apps[0], b));
    let mut second = Box::pin(fleet.migrate(apps[1], b));
    assert!(run_steps(&clock, first.as_mut(), 1).is_err());
    assert!(run_steps(&clock, second.as_mut(), 1).is_err());
    drop(first);
    run(&clock, second).unwrap().unwrap();
    assert_eq!(clock.elapsed(), Duration::from_secs(20));
}

#[test]
fn a_future_waiting_on_nothing_is_reported_stalled() {
    let clock = ManualClock::new();
    assert_eq!(
        run(&clock, futures::future::pending::<()>()).unwrap_err(),
        SimError::Stalled
    );
}

#[test]
fn sim_fleet_is_send_and_sync() {
    fn bounds<T: Send + Sync + Clone + 'static>() {}
    bounds::<SimFleet>();
}
