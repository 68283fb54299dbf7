//! The February 2019 drain, naive vs bounded and health-gated, on a
//! simulated fleet with a manual clock.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use fleet_drain::DrainError;
use fleet_drain::drain::{DrainConfig, DrainController, DrainEvent};
use fleet_drain::journal::MemoryJournal;
use fleet_drain::plan::{Amount, DrainLimits};
use fleet_drain::sim::{self, NaiveDrainConfig, SimConfig};
use support::{assert_fully_drained, bounded_config, collect, feb_2019, scenario};

#[test]
fn naive_capacity_gated_drain_produces_start_failures() {
    let s = feb_2019();
    let report = sim::run(
        &s.clock,
        sim::naive_drain(&s.fleet, &s.clock, &s.old, &NaiveDrainConfig::default()),
    )
    .unwrap()
    .unwrap();
    let stats = s.fleet.stats();
    assert!(report.failed_starts > 50, "{report:?}");
    assert_eq!(stats.failed_starts, report.failed_starts);
    assert!(stats.peak_concurrent_starts > 4, "{stats:?}");
    assert!(stats.peak_starts_per_host_per_minute > 4, "{stats:?}");
}

#[test]
fn bounded_health_gated_drain_finishes_with_zero_failed_starts() {
    let s = feb_2019();
    let limit = bounded_config().limits.max_starts_per_host_per_minute;
    let mut controller = DrainController::with_clock(
        bounded_config(),
        Arc::new(s.fleet.clone()),
        Box::new(MemoryJournal::new()),
        s.clock.clone(),
    )
    .unwrap();
    let events = collect(&mut controller);
    let report = sim::run(&s.clock, controller.run(&s.old)).unwrap().unwrap();
    let stats = s.fleet.stats();
    assert_eq!(stats.failed_starts, 0, "{stats:?}");
    assert_eq!(report.failed_starts, 0);
    assert!(stats.peak_starts_per_host_per_minute <= limit, "{stats:?}");
    assert!(report.peak_starts_per_host_per_minute <= limit);
    assert_eq!(stats.max_drains_per_host, 1);
    assert_eq!(report.hosts_drained, 40);
    assert_eq!(report.apps_migrated, 600);
    assert_fully_drained(&s);
    let events = events.lock().unwrap();
    assert!(matches!(
        events.last(),
        Some(DrainEvent::Finished {
            hosts_drained: 40,
            ..
        })
    ));
    let waves = events
        .iter()
        .filter(|e| matches!(e, DrainEvent::WaveStarted { .. }))
        .count();
    assert_eq!(waves as u32, report.waves);
    // 600 migrations into 40 hosts are aggregated per host, not 600 events.
    let migrated = events
        .iter()
        .filter(|e| matches!(e, DrainEvent::AppMigrated { .. }))
        .count();
    assert!(migrated < 600, "{migrated}");
    let suppressed: u64 = events
        .iter()
        .filter_map(|e| match e {
            DrainEvent::Aggregated { suppressed, .. } => Some(*suppressed),
            _ => None,
        })
        .sum();
    assert_eq!(migrated as u64 + suppressed, 600);
}

#[test]
fn a_failing_fleet_pauses_the_drain_and_resumes_when_healthy() {
    // Every start beyond 1 concurrent start fails half the time, and the
    // limits allow 4: starts fail, the gate pauses, retries succeed later.
    let s = scenario(
        SimConfig {
            safe_concurrent_starts: 1,
            failure_probability_per_extra_start: 0.5,
            max_failure_probability: 0.5,
            seed: 7,
            ..SimConfig::default()
        },
        6,
        10,
        6,
        30,
    );
    let mut config = bounded_config();
    config.limits.max_unavailable = Amount::Count(20);
    config.retry.max_attempts = Some(20);
    config.gate.pause_above_failures_per_minute = 0.5;
    config.gate.resume_below_failures_per_minute = 0.2;
    config.gate.abort_above_failures_per_minute = 1000.0;
    config.gate.abort_below_healthy_share = 0.0;
    config.failure_window = Duration::from_secs(60);
    let mut controller = DrainController::with_clock(
        config,
        Arc::new(s.fleet.clone()),
        Box::new(MemoryJournal::new()),
        s.clock.clone(),
    )
    .unwrap();
    let mut rx = controller.subscribe();
    let report = sim::run(&s.clock, controller.run(&s.old)).unwrap().unwrap();
    assert!(report.failed_starts > 0);
    assert!(report.pauses > 0);
    assert_fully_drained(&s);
    let mut paused = None;
    let mut resumed = false;
    while let Ok(event) = rx.try_recv() {
        match event {
            DrainEvent::Paused { health, reason } => {
                assert!(reason.contains("start failures/min"), "{reason}");
                paused.get_or_insert(health);
            }
            DrainEvent::Resumed { .. } => resumed = true,
            _ => {}
        }
    }
    let health = paused.expect("a Paused event with the health figures");
    assert!(health.start_failures_per_minute > 0.5);
    assert!(resumed);
}

#[test]
fn the_gate_aborts_a_drain_that_breaks_apps() {
    let s = scenario(
        SimConfig {
            safe_concurrent_starts: 1,
            failure_probability_per_extra_start: 0.9,
            max_failure_probability: 0.9,
            base_failure_probability: 0.9,
            ..SimConfig::default()
        },
        4,
        10,
        4,
        30,
    );
    let mut config = bounded_config();
    config.limits.max_unavailable = Amount::Count(20);
    config.retry.max_attempts = Some(50);
    config.gate.abort_above_failures_per_minute = 5.0;
    config.gate.abort_after = 1;
    let journal = MemoryJournal::new();
    let mut controller = DrainController::with_clock(
        config,
        Arc::new(s.fleet.clone()),
        Box::new(journal.clone()),
        s.clock.clone(),
    )
    .unwrap();
    let events = collect(&mut controller);
    let err = sim::run(&s.clock, controller.run(&s.old))
        .unwrap()
        .unwrap_err();
    assert!(matches!(err, DrainError::Aborted { .. }), "{err}");
    assert!(err.to_string().contains("start failures/min"), "{err}");
    assert!(
        events
            .lock()
            .unwrap()
            .iter()
            .any(|e| matches!(e, DrainEvent::Aborted { .. }))
    );
    // A restart does not silently continue an aborted drain.
    let mut again = DrainController::with_clock(
        bounded_config(),
        Arc::new(s.fleet.clone()),
        Box::new(journal),
        s.clock.clone(),
    )
    .unwrap();
    let err = sim::run(&s.clock, again.run(&s.old)).unwrap().unwrap_err();
    assert!(err.to_string().contains("aborted"), "{err}");
}

#[test]
fn the_global_deadline_stops_the_drain() {
    let s = feb_2019();
    let config = DrainConfig {
        deadline: Some(Duration::from_secs(90)),
        ..bounded_config()
    };
    let mut controller = DrainController::with_clock(
        config,
        Arc::new(s.fleet.clone()),
        Box::new(MemoryJournal::new()),
        s.clock.clone(),
    )
    .unwrap();
    let err = sim::run(&s.clock, controller.run(&s.old))
        .unwrap()
        .unwrap_err();
    match err {
        DrainError::DeadlineExceeded {
            deadline,
            remaining,
        } => {
            assert_eq!(deadline, Duration::from_secs(90));
            assert!(remaining > 0);
        }
        other => panic!("unexpected {other}"),
    }
    assert!(s.clock.elapsed() <= Duration::from_secs(91));
}

#[test]
fn dry_run_returns_the_plan_and_changes_nothing() {
    let s = feb_2019();
    let journal = MemoryJournal::new();
    let mut controller = DrainController::with_clock(
        DrainConfig {
            dry_run: true,
            ..bounded_config()
        },
        Arc::new(s.fleet.clone()),
        Box::new(journal.clone()),
        s.clock.clone(),
    )
    .unwrap();
    let report = sim::run(&s.clock, controller.run(&s.old)).unwrap().unwrap();
    let plan = report.plan.expect("dry run returns the plan");
    assert_eq!(plan.hosts(), &s.old[..4]);
    assert_eq!(plan.assignments().len(), 60);
    assert_eq!(s.fleet.stats().starts, 0);
    assert!(journal.snapshot().is_empty());
    assert_eq!(s.clock.elapsed(), Duration::ZERO);
}

#[test]
fn invalid_limits_and_infeasible_drains_give_clear_errors() {
    let s = feb_2019();
    let make = |limits: DrainLimits| {
        DrainController::with_clock(
            DrainConfig {
                limits,
                ..DrainConfig::default()
            },
            Arc::new(s.fleet.clone()),
            Box::new(MemoryJournal::new()),
            s.clock.clone(),
        )
    };
    let err = make(DrainLimits {
        max_draining_hosts: 0,
        ..DrainLimits::default()
    })
    .unwrap_err();
    assert_eq!(err.field(), "limits.max_draining_hosts");
    let err = make(DrainLimits {
        max_unavailable: Amount::Percent(120.0),
        ..DrainLimits::default()
    })
    .unwrap_err();
    assert_eq!(err.field(), "limits.max_unavailable");
    assert!(err.to_string().contains("120%"), "{err}");

    // Draining every host leaves no receivers.
    let all: Vec<_> = s.old.iter().chain(&s.new).copied().collect();
    let mut controller = make(DrainLimits::default()).unwrap();
    let err = sim::run(&s.clock, controller.run(&all))
        .unwrap()
        .unwrap_err();
    assert!(err.to_string().contains("no receivers"), "{err}");

    // Keeping 99 % free leaves too little room.
    let mut controller = make(DrainLimits {
        min_free_capacity: Amount::Percent(99.0),
        ..DrainLimits::default()
    })
    .unwrap();
    let err = sim::run(&s.clock, controller.run(&s.old))
        .unwrap()
        .unwrap_err();
    assert!(err.to_string().contains("not enough capacity"), "{err}");
    assert_eq!(s.fleet.stats().starts, 0);
}

#[test]
fn a_receiver_failing_its_starts_is_excluded_and_its_apps_replanned() {
    let s = scenario(SimConfig::default(), 8, 10, 4, 40);
    let broken = s.new[0];
    s.fleet.set_host_failure_probability(broken, 1.0).unwrap();
    let mut config = bounded_config();
    config.limits.max_unavailable = Amount::Count(40);
    config.receiver_max_failures_per_minute = Some(1.0);
    config.failure_window = Duration::from_secs(60);
    config.gate.pause_above_failures_per_minute = 100.0;
    config.gate.resume_below_failures_per_minute = 50.0;
    config.gate.abort_above_failures_per_minute = 1000.0;
    config.gate.pause_below_healthy_share = 0.5;
    config.gate.abort_below_healthy_share = 0.0;
    let mut controller = DrainController::with_clock(
        config,
        Arc::new(s.fleet.clone()),
        Box::new(MemoryJournal::new()),
        s.clock.clone(),
    )
    .unwrap();
    let events = collect(&mut controller);
    let report = sim::run(&s.clock, controller.run(&s.old)).unwrap().unwrap();
    assert_eq!(report.hosts_drained, 8);
    assert!(report.waves >= 2);
    // Only the first minute's starts into the broken host failed, and later
    // waves never sent it apps.
    assert!(report.failed_starts <= 4, "{report:?}");
    assert_eq!(s.fleet.load(broken), 0);
    let excluded: Vec<_> = events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            DrainEvent::ReceiverExcluded { host, moved, .. } => Some((*host, *moved)),
            _ => None,
        })
        .collect();
    assert_eq!(excluded.len(), 1);
    assert_eq!(excluded[0].0, broken);
    assert!(excluded[0].1 > 0);
    assert_fully_drained(&s);
}
