//! February 2019, the on-call's side: "we were flooded with alerts". A
//! `fleet-drain` drain onto receivers that fail many app starts reports each
//! failure through `resilience-core`'s `EventAggregator`: a subscriber gets
//! the first failure per receiver and window at once and one summary for
//! the rest, so it sees far fewer notifications than failures, yet the
//! summed counts account for every single failure.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use fleet_drain::drain::{DrainConfig, DrainController, DrainEvent};
use fleet_drain::fleet::HostId;
use fleet_drain::journal::MemoryJournal;
use fleet_drain::plan::{Amount, DrainLimits};
use fleet_drain::sim::{self, SimConfig, SimFleet};
use resilience_core::backoff::BackoffConfig;
use resilience_core::clock::ManualClock;
use resilience_core::signal::EventAggregatorConfig;
use tokio::sync::broadcast::error::TryRecvError;

/// A drain that keeps going through a flood of start failures: loose
/// health gate, generous retries, receivers never excluded.
fn config() -> DrainConfig {
    let mut config = DrainConfig {
        limits: DrainLimits {
            max_draining_hosts: 4,
            max_unavailable: Amount::Count(40),
            max_starts_per_host_per_minute: 4,
            max_concurrent_starts_per_host: 4,
            min_free_capacity: Amount::Percent(10.0),
        },
        retry: BackoffConfig {
            base: Duration::from_secs(5),
            max: Duration::from_secs(60),
            max_attempts: Some(40),
            ..BackoffConfig::default()
        },
        events: EventAggregatorConfig {
            window: Duration::from_secs(60),
            max_fingerprints: 1000,
        },
        // A safety net: a regression fails the test instead of hanging it.
        deadline: Some(Duration::from_secs(24 * 3600)),
        seed: 3,
        ..DrainConfig::default()
    };
    config.gate.pause_above_failures_per_minute = 100.0;
    config.gate.resume_below_failures_per_minute = 50.0;
    config.gate.abort_above_failures_per_minute = 1000.0;
    config.gate.pause_below_healthy_share = 0.5;
    config.gate.abort_below_healthy_share = 0.0;
    config
}

#[test]
fn a_flood_of_start_failures_reaches_subscribers_aggregated_with_every_failure_counted() {
    let clock = ManualClock::new();
    let fleet = SimFleet::with_clock(SimConfig::default(), clock.clone()).unwrap();
    let old = fleet.add_hosts(8, 10, "v1");
    let receivers = fleet.add_hosts(4, 40, "v1");
    for &host in &old {
        fleet.add_apps(host, 10).unwrap();
    }
    // Two broken receivers fail 60 % of their starts, on top of the model.
    let broken: BTreeSet<HostId> = receivers[..2].iter().copied().collect();
    for &host in &broken {
        fleet.set_host_failure_probability(host, 0.6).unwrap();
    }

    let mut controller = DrainController::with_clock(
        config(),
        Arc::new(fleet.clone()),
        Box::new(MemoryJournal::new()),
        clock.clone(),
    )
    .unwrap();
    let mut subscriber = controller.subscribe();
    let report = sim::run(&clock, controller.run(&old)).unwrap().unwrap();
    assert_eq!(report.hosts_drained, 8);
    assert_eq!(report.apps_migrated, 80);

    let mut events = Vec::new();
    loop {
        match subscriber.try_recv() {
            Ok(event) => events.push(event),
            Err(TryRecvError::Empty) => break,
            Err(e) => panic!("the subscriber lost events: {e}"),
        }
    }
    assert!(
        matches!(events.last(), Some(DrainEvent::Finished { .. })),
        "summaries are flushed before the drain reports it finished"
    );

    // Failures per the fleet itself, the controller's report, and what the
    // subscriber was told.
    let failures = fleet.stats().failed_starts;
    assert!(
        failures >= 20,
        "the broken receivers must flood: {failures}"
    );
    assert_eq!(report.failed_starts, failures);

    let mut notifications = 0_u64;
    let mut accounted = 0_u64;
    for event in &events {
        match event {
            DrainEvent::StartFailed { host, .. } => {
                assert!(broken.contains(host), "healthy {host} failed a start");
                notifications += 1;
                accounted += 1;
            }
            DrainEvent::Aggregated {
                fingerprint,
                suppressed,
                last,
            } if fingerprint.starts_with("start_failed/") => {
                let DrainEvent::StartFailed { host, .. } = last.as_ref() else {
                    panic!("{fingerprint} summarizes {last:?}");
                };
                assert_eq!(fingerprint, &format!("start_failed/{host}"));
                assert!(broken.contains(host), "healthy {host} failed a start");
                assert!(*suppressed >= 1);
                notifications += 1;
                accounted += suppressed;
            }
            _ => {}
        }
    }
    assert_eq!(accounted, failures, "no failure lost in aggregation");
    assert!(
        notifications < failures,
        "{notifications} notifications for {failures} failures: not aggregated"
    );
}
