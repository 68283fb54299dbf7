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

#[test]
fn pacer_spreads_starts_and_counts_them_in_progress() {
    let clock = ManualClock::new();
    let mut pacer = StartPacer::new(4);
    let h = HostId(1);
    let t0 = clock.now();
    assert_eq!(pacer.record(h, t0), 1);
    // 4 per minute: the next start 15 s later, not in a burst.
    assert_eq!(pacer.next_allowed(h, t0), t0 + Duration::from_secs(15));
    assert_eq!(pacer.record(h, t0 + Duration::from_secs(15)), 2);
    assert_eq!(pacer.in_progress(h), 2);
    pacer.finished(h);
    assert_eq!(pacer.in_progress(h), 1);
    assert_eq!(pacer.peak_concurrent, 2);
}

fn adaptive(clock: &ManualClock, probation: bool) -> super::adaptive::AdaptiveStarts {
    let mut starts = super::adaptive::AdaptiveStarts::new(
        AdaptiveStartsConfig {
            initial_limit: 2,
            increase_by: 1,
            backoff_ratio: 0.5,
            growth_factor: 2.0,
            ..AdaptiveStartsConfig::default()
        },
        None,
        probation.then_some(Duration::from_secs(150)),
        clock.clone().into_shared(),
    )
    .unwrap();
    for id in [1, 2] {
        starts
            .register(&crate::fleet::Host {
                id: HostId(id),
                capacity: 300,
                state: crate::fleet::HostState::Active,
                version: "v2".into(),
            })
            .unwrap();
    }
    starts
}

#[test]
fn adaptive_limit_grows_per_window_of_busy_successes_and_is_shared_by_the_class() {
    let clock = ManualClock::new();
    let mut starts = adaptive(&clock, false);
    assert_eq!(starts.limit(HostId(1)), Some(2));
    // Within the first window: no growth yet.
    assert!(starts.on_success(HostId(1), 2).is_none());
    clock.advance(Duration::from_secs(20));
    let change = starts.on_success(HostId(1), 2).unwrap();
    assert_eq!((change.from, change.to), (2, 3));
    assert_eq!(change.class.to_string(), "capacity-300/v2");
    // The other receiver of the class shares the estimate.
    assert_eq!(starts.limit(HostId(2)), Some(3));
    // An idle receiver (1 start of a limit of 3... below half) teaches nothing.
    clock.advance(Duration::from_secs(20));
    assert!(starts.on_success(HostId(2), 1).is_none());
    clock.advance(Duration::from_secs(20));
    assert!(starts.on_success(HostId(2), 1).is_none());
    assert_eq!(starts.limit(HostId(2)), Some(3));
    assert_eq!(starts.limit(HostId(9)), None);
}

#[test]
fn adaptive_limit_is_cut_on_failures_once_per_round_trip() {
    let clock = ManualClock::new();
    let mut starts = adaptive(&clock, false);
    for _ in 0..4 {
        clock.advance(Duration::from_secs(20));
        starts.on_success(HostId(1), 8);
    }
    assert_eq!(starts.limit(HostId(1)), Some(6));
    let before_cut = clock.now();
    clock.advance(Duration::from_secs(1));
    let cut = starts.on_failure(HostId(1), before_cut, 6).unwrap();
    assert_eq!((cut.from, cut.to), (6, 3));
    // Another failure of a start begun before that cut: already counted.
    assert!(starts.on_failure(HostId(2), before_cut, 6).is_none());
    assert_eq!(starts.limit(HostId(2)), Some(3));
    // A start begun after the cut that fails cuts again.
    clock.advance(Duration::from_secs(1));
    let later = clock.now();
    let cut = starts.on_failure(HostId(2), later, 3).unwrap();
    assert_eq!((cut.from, cut.to), (3, 1));
    // No growth in a window with a failure.
    clock.advance(Duration::from_secs(5));
    assert!(starts.on_success(HostId(1), 1).is_none());
    let report = starts.snapshot();
    assert_eq!(report[0].cuts, 2);
    assert_eq!(report[0].receivers, 2);
}

#[test]
fn confirmed_growth_stays_within_the_factor_of_what_passed_probation() {
    let clock = ManualClock::new();
    let mut starts = adaptive(&clock, true);
    // Nothing confirmed yet: at most 2 × the initial 2.
    for _ in 0..10 {
        clock.advance(Duration::from_secs(20));
        starts.on_success(HostId(1), 4);
    }
    assert_eq!(starts.limit(HostId(1)), Some(4));
    // Starts at 4 passed probation: up to 8.
    starts.on_confirmed(HostId(1), 4);
    for _ in 0..10 {
        clock.advance(Duration::from_secs(20));
        starts.on_success(HostId(1), 8);
    }
    assert_eq!(starts.limit(HostId(1)), Some(8));
    assert_eq!(starts.snapshot()[0].confirmed, 4);
}

#[test]
fn invalid_adaptive_configs_name_the_field() {
    let cases = [
        (
            AdaptiveStartsConfig {
                window: Duration::ZERO,
                ..AdaptiveStartsConfig::default()
            },
            "adaptive_starts.window",
        ),
        (
            AdaptiveStartsConfig {
                max_limit: 0,
                ..AdaptiveStartsConfig::default()
            },
            "adaptive_starts.max_limit",
        ),
        (
            AdaptiveStartsConfig {
                increase_by: 0,
                ..AdaptiveStartsConfig::default()
            },
            "adaptive_starts.increase_by",
        ),
        (
            AdaptiveStartsConfig {
                growth_factor: f64::NAN,
                ..AdaptiveStartsConfig::default()
            },
            "adaptive_starts.growth_factor",
        ),
    ];
    for (adaptive, field) in cases {
        let config = DrainConfig {
            adaptive_starts: Some(adaptive),
            ..DrainConfig::default()
        };
        assert_eq!(config.validate().unwrap_err().field(), field);
    }
}

/// The controller takes any drain-capable fleet: a concrete one, the
/// combined `dyn Fleet` (upcast) or a `dyn DrainFleet`.
#[test]
fn controller_accepts_every_fleet_handle() {
    use crate::fleet::{DrainFleet, Fleet};
    use crate::journal::MemoryJournal;
    use crate::sim::{SimConfig, SimFleet};
    use std::sync::Arc;

    let sim = SimFleet::new(SimConfig::default()).unwrap();
    let concrete: Arc<SimFleet> = Arc::new(sim.clone());
    let combined: Arc<dyn Fleet> = Arc::new(sim.clone());
    let drain_only: Arc<dyn DrainFleet> = Arc::new(sim);
    for fleet in [concrete as Arc<dyn DrainFleet>, combined, drain_only] {
        DrainController::new(
            DrainConfig::default(),
            fleet,
            Box::new(MemoryJournal::new()),
        )
        .unwrap();
    }
}

/// Names assigned by an adapter are journaled before the first record that
/// uses their ids, and read back by a restarted controller.
#[test]
fn names_are_journaled_before_the_ids_they_map() {
    use crate::journal::{JournalRecord, MemoryJournal};
    use crate::names::NameMap;
    use crate::sim::{self, SimConfig, SimFleet};

    let clock = ManualClock::new();
    let fleet = SimFleet::with_clock(SimConfig::default(), clock.clone()).unwrap();
    let old = fleet.add_host(4, "v1");
    fleet.add_host(8, "v1");
    fleet.add_apps(old, 2).unwrap();
    // The adapter names the sim's hosts (ids from 0, in creation order).
    let names = NameMap::new();
    assert_eq!(names.host_id("old").unwrap(), old);
    names.host_id("new").unwrap();
    let journal = MemoryJournal::new();
    let mut config = DrainConfig::default();
    config.limits.max_unavailable = crate::plan::Amount::Count(2);
    let mut controller = DrainController::with_clock(
        config,
        Arc::new(fleet),
        Box::new(journal.clone()),
        clock.clone(),
    )
    .unwrap()
    .with_names(names.clone());
    let report = sim::run(&clock, controller.run(&[old])).unwrap().unwrap();
    assert_eq!(report.hosts_drained, 1);
    let records = journal.snapshot();
    assert!(matches!(
        records.first(),
        Some(JournalRecord::NamesAssigned { hosts, .. }) if hosts.len() == 2
    ));
    assert_eq!(
        records
            .iter()
            .filter(|r| matches!(r, JournalRecord::NamesAssigned { .. }))
            .count(),
        1
    );
    assert!(!names.has_pending());
    let restored = NameMap::from_records(&records).unwrap();
    assert_eq!(restored.find_host("old"), Some(old));
}
