//! Issue #14, continued: exploration across receivers (probes) and
//! learned start limits journaled and resumed after a restart.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use fleet_drain::drain::{
    AdaptiveStartsConfig, DrainConfig, DrainController, DrainReport, StartExplorationConfig,
};
use fleet_drain::journal::{FileJournal, Journal, JournalRecord, LearnedStartLimit};
use fleet_drain::plan::{Amount, DrainLimits};
use fleet_drain::sim::{self, SilentFailures, SimConfig};
use futures::executor::block_on;
use support::{Scenario, scenario};

fn limits(hosts: u32) -> DrainLimits {
    DrainLimits {
        max_draining_hosts: hosts,
        max_unavailable: Amount::Percent(100.0),
        max_starts_per_host_per_minute: 600,
        max_concurrent_starts_per_host: 32,
        min_free_capacity: Amount::Count(0),
    }
}

/// No start fails, nothing is corrupted.
fn quiet() -> SimConfig {
    SimConfig {
        failure_probability_per_extra_start: 0.0,
        ..SimConfig::default()
    }
}

fn silent(safe: u32) -> SimConfig {
    SimConfig {
        failure_probability_per_extra_start: 0.0,
        silent_failures: Some(SilentFailures {
            safe_concurrent_starts: safe,
            corruption_per_extra_start: 0.2,
            visible_after: Duration::from_secs(60),
        }),
        seed: 3,
        ..SimConfig::default()
    }
}

fn run(s: &Scenario, config: DrainConfig, journal: Box<dyn Journal>) -> DrainReport {
    let mut c =
        DrainController::with_clock(config, Arc::new(s.fleet.clone()), journal, s.clock.clone())
            .unwrap();
    sim::run(&s.clock, c.run(&s.old)).unwrap().unwrap()
}

fn explore_config(explore: Option<StartExplorationConfig>) -> DrainConfig {
    let mut config = DrainConfig {
        limits: limits(20),
        adaptive_starts: Some(AdaptiveStartsConfig::default()),
        probation: Some(Duration::from_secs(90)),
        start_exploration: explore,
        ..DrainConfig::default()
    };
    // Late failures are the limit's signal here, not a reason to stop.
    config.gate.pause_above_failures_per_minute = 500.0;
    config.gate.resume_below_failures_per_minute = 100.0;
    config.gate.abort_above_failures_per_minute = 10_000.0;
    config.gate.pause_below_healthy_share = 0.5;
    config.gate.resume_above_healthy_share = 0.6;
    config.gate.abort_below_healthy_share = 0.1;
    config
}

#[test]
fn probes_confirm_a_higher_safe_concurrency_sooner_than_growth_in_time() {
    // Hidden safe concurrency 16; 20 receivers, 2 of which probe (at 2×
    // and 4× the class's level).
    let explore = StartExplorationConfig {
        min_passed: 8,
        starts_per_probe: 32,
        ..StartExplorationConfig::default()
    };
    let probed = scenario(silent(16), 20, 120, 20, 120);
    let with = run(
        &probed,
        explore_config(Some(explore)),
        Box::new(fleet_drain::journal::MemoryJournal::new()),
    );
    let alone = scenario(silent(16), 20, 120, 20, 120);
    let without = run(
        &alone,
        explore_config(None),
        Box::new(fleet_drain::journal::MemoryJournal::new()),
    );
    let learned = &with.start_limits[0];
    assert_eq!(learned.probes, 2, "{learned:?}");
    assert!(learned.promotions >= 1, "{learned:?}");
    assert!(
        with.last_host_drained_after.unwrap() < without.last_host_drained_after.unwrap(),
        "with probes {:?}, without {:?}",
        with.last_host_drained_after,
        without.last_host_drained_after
    );
    // Whatever the probes corrupted was repaired before the drain was done.
    assert_eq!(with.repairs, with.late_failures);
    assert!(probed.fleet.corrupted_apps().is_empty());
    support::assert_fully_drained(&probed);
}

#[test]
fn a_probe_failure_caps_the_class_below_the_failed_level() {
    // Hidden safe concurrency 4: the 4× probes (16) corrupt.
    let explore = StartExplorationConfig {
        min_passed: 8,
        starts_per_probe: 16,
        retry_failed_after: None,
        ..StartExplorationConfig::default()
    };
    let s = scenario(silent(4), 20, 60, 20, 60);
    let report = run(
        &s,
        explore_config(Some(explore)),
        Box::new(fleet_drain::journal::MemoryJournal::new()),
    );
    let learned = &report.start_limits[0];
    let failed_at = learned.failed_at.expect("a failed level is remembered");
    assert!(failed_at > 4, "{learned:?}");
    assert!(learned.limit < failed_at, "{learned:?}");
    assert!(report.late_failures >= 1);
    assert!(s.fleet.corrupted_apps().is_empty());
}

fn learned_records(records: &[JournalRecord]) -> Vec<LearnedStartLimit> {
    records
        .iter()
        .filter_map(|r| match r {
            JournalRecord::StartLimitLearned(l) => Some(l.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn learned_limits_are_journaled_and_a_restarted_controller_resumes_at_them() {
    let dir = tempfile::tempdir().unwrap();
    // Run 1: no failures, the limit grows every window up to 12.
    let first = dir.path().join("first.journal");
    let s = scenario(quiet(), 4, 40, 4, 60);
    let grow = DrainConfig {
        limits: limits(4),
        adaptive_starts: Some(AdaptiveStartsConfig {
            initial_limit: 2,
            max_limit: 12,
            confirm_growth: false,
            ..AdaptiveStartsConfig::default()
        }),
        ..DrainConfig::default()
    };
    let report = run(
        &s,
        grow.clone(),
        Box::new(FileJournal::open(&first).unwrap()),
    );
    let grown = report.start_limits[0].limit;
    assert!(grown > 2, "{:?}", report.start_limits);
    // Reopened, the journal holds the class's learned limit.
    let records = block_on(FileJournal::open(&first).unwrap().records()).unwrap();
    let learned = learned_records(&records);
    let last = learned.last().expect("learned limits journaled").clone();
    assert_eq!((last.capacity, last.version.as_str()), (60, "v1"));
    assert_eq!(last.limit, grown);

    // Run 2, a controller restarted mid-drain: a journal that started the
    // drain and learned `grown`; the same configuration, except that it
    // never grows (one window is longer than the drain) past its initial 2.
    let mut hold = grow;
    if let Some(adaptive) = hold.adaptive_starts.as_mut() {
        adaptive.window = Duration::from_secs(24 * 3600);
    }
    let resume = |with_learned: bool| {
        let s = scenario(quiet(), 4, 40, 4, 60);
        let path = dir.path().join(format!("second-{with_learned}.journal"));
        {
            let mut journal = FileJournal::open(&path).unwrap();
            block_on(journal.append(&JournalRecord::DrainStarted {
                targets: s.old.clone(),
            }))
            .unwrap();
            if with_learned {
                block_on(journal.append(&JournalRecord::StartLimitLearned(last.clone()))).unwrap();
            }
        }
        let report = run(
            &s,
            hold.clone(),
            Box::new(FileJournal::open(&path).unwrap()),
        );
        support::assert_fully_drained(&s);
        report
    };
    assert_eq!(resume(false).peak_concurrent_starts_per_host, 2);
    let resumed = resume(true);
    assert!(resumed.resumed);
    assert_eq!(resumed.peak_concurrent_starts_per_host, grown);
    assert_eq!(resumed.start_limits[0].limit, grown);
}
