//! Adaptive start concurrency against a hidden safe concurrency.
//!
//! 100 hosts × 300 apps drained onto 100 empty receivers; starts take 20 s;
//! each receiver has a hidden safe concurrency S: every start beyond S
//! concurrent starts adds 1 % probability that the app is corrupted, which
//! shows in its health only 2 minutes after its start ended (the February
//! 2019 curve). One controller configuration for every S (it is never told
//! S): adaptive start concurrency with exploration across receivers (a few
//! probe receivers at 2× and 4× the class's level), both at their defaults. For each S: the physical limit ⌈300/S⌉ × 20 s, the time until the
//! last host was drained and until the drain reported done (every moved
//! app through its probation), their ratio to the limit, corrupted starts
//! as a share of apps moved, and whether every corrupted app was repaired
//! before the drain reported done.
//!
//! ```sh
//! cargo run --release -p fleet-drain --example adaptive_drain
//! ADAPTIVE_DRAIN_S=6,12 cargo run --release -p fleet-drain --example adaptive_drain  # other S
//! ADAPTIVE_DRAIN_TRACE=1 cargo run --release -p fleet-drain --example adaptive_drain # limit changes
//! ```

use std::sync::Arc;
use std::time::Duration;

use fleet_drain::drain::{
    AdaptiveStartsConfig, DrainConfig, DrainController, DrainEvent, StartExplorationConfig,
};
use fleet_drain::journal::MemoryJournal;
use fleet_drain::plan::{Amount, DrainLimits};
use fleet_drain::sim::{self, SilentFailures, SimConfig, SimFleet};
use resilience_core::clock::{Clock, ManualClock};

const HOSTS: u32 = 100;
const APPS: u32 = 300;
const START: Duration = Duration::from_secs(20);

/// The one controller configuration used for every S.
fn controller_config() -> DrainConfig {
    let mut config = DrainConfig {
        limits: DrainLimits {
            max_draining_hosts: HOSTS,
            max_unavailable: Amount::Percent(100.0),
            max_starts_per_host_per_minute: 600,
            max_concurrent_starts_per_host: 64,
            min_free_capacity: Amount::Count(0),
        },
        adaptive_starts: Some(AdaptiveStartsConfig::default()),
        probation: Some(Duration::from_secs(150)),
        start_exploration: Some(StartExplorationConfig::default()),
        check_interval: Duration::from_secs(10),
        ..DrainConfig::default()
    };
    // A 30,000-app fleet: a few dozen late failures a minute is the
    // adaptive limit's signal, not a reason to stop the drain.
    config.gate.pause_above_failures_per_minute = 60.0;
    config.gate.resume_below_failures_per_minute = 20.0;
    config.gate.abort_above_failures_per_minute = 1000.0;
    config
}

struct Row {
    safe: u32,
    limit: Duration,
    drained: Duration,
    done: Duration,
    corrupted: u64,
    moved: u64,
    late: u64,
    repairs: u64,
    left_corrupted: usize,
    learned: String,
}

fn run(safe: u32) -> Result<Row, Box<dyn std::error::Error>> {
    let clock = ManualClock::new();
    let fleet = SimFleet::with_clock(
        SimConfig {
            start_duration: START,
            failure_probability_per_extra_start: 0.0,
            silent_failures: Some(SilentFailures {
                safe_concurrent_starts: safe,
                corruption_per_extra_start: 0.01,
                visible_after: Duration::from_secs(120),
            }),
            seed: u64::from(safe),
            ..SimConfig::default()
        },
        clock.clone(),
    )?;
    let old = fleet.add_hosts(HOSTS, APPS, "v1");
    fleet.add_hosts(HOSTS, APPS, "v2");
    for &host in &old {
        fleet.add_apps(host, APPS)?;
    }
    let mut controller = DrainController::with_clock(
        controller_config(),
        Arc::new(fleet.clone()),
        Box::new(MemoryJournal::new()),
        clock.clone(),
    )?;
    if std::env::var_os("ADAPTIVE_DRAIN_TRACE").is_some() {
        // The learned limit's changes, with the simulated time.
        let t0 = clock.now();
        let at = clock.clone();
        controller.on_event(move |event| {
            if let DrainEvent::StartLimitChanged { from, to, .. } = event {
                let t = at.now().saturating_duration_since(t0).as_secs();
                eprintln!("S={safe} t={t}s limit {from} -> {to}");
            }
        });
    }
    let report = sim::run(&clock, controller.run(&old))??;
    let stats = fleet.stats();
    let learned = report
        .start_limits
        .iter()
        .map(|l| {
            format!(
                "{} (confirmed {}, failed at {}, {} cuts, {} promotions, {} probes)",
                l.limit,
                l.confirmed,
                l.failed_at.map_or("-".to_owned(), |f| f.to_string()),
                l.cuts,
                l.promotions,
                l.probes
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    Ok(Row {
        safe,
        limit: START * APPS.div_ceil(safe),
        drained: report.last_host_drained_after.unwrap_or(report.elapsed),
        done: report.elapsed,
        corrupted: stats.silent_corruptions,
        moved: u64::from(HOSTS * APPS),
        late: report.late_failures,
        repairs: report.repairs,
        left_corrupted: fleet.corrupted_apps().len(),
        learned,
    })
}

fn minutes(d: Duration) -> f64 {
    d.as_secs_f64() / 60.0
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!(
        "| S | limit ⌈300/S⌉×20 s | last host drained | ratio | done (probation over) | ratio | corrupted / moved | late failures | repairs | all repaired before done | learned limit |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    // `ADAPTIVE_DRAIN_S=6,12` runs other hidden safe concurrencies.
    let safes: Vec<u32> = std::env::var("ADAPTIVE_DRAIN_S").map_or_else(
        |_| vec![2, 4, 8, 16],
        |list| {
            list.split(',')
                .filter_map(|s| s.trim().parse().ok())
                .collect()
        },
    );
    for safe in safes {
        let row = run(safe)?;
        let ratio = |d: Duration| d.as_secs_f64() / row.limit.as_secs_f64();
        println!(
            "| {} | {:.1} min | {:.1} min | {:.2}× | {:.1} min | {:.2}× | {} / {} = {:.2} % | {} | {} | {} | {} |",
            row.safe,
            minutes(row.limit),
            minutes(row.drained),
            ratio(row.drained),
            minutes(row.done),
            ratio(row.done),
            row.corrupted,
            row.moved,
            row.corrupted as f64 * 100.0 / row.moved as f64,
            row.late,
            row.repairs,
            if row.left_corrupted == 0 {
                "yes".to_owned()
            } else {
                format!("no ({} left)", row.left_corrupted)
            },
            row.learned,
        );
    }
    Ok(())
}
