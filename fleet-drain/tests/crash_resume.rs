//! A controller killed at any point resumes from its `FileJournal` without
//! exceeding a limit and without draining a host twice; a corrupted or
//! truncated journal tail is detected and handled.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod support;

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use fleet_drain::DrainError;
use fleet_drain::drain::{DrainController, DrainReport};
use fleet_drain::journal::{DrainProgress, FileJournal, Journal};
use fleet_drain::plan::Amount;
use fleet_drain::sim::{self, SimConfig, SimError};
use support::{Scenario, assert_fully_drained, bounded_config, scenario};

fn small() -> Scenario {
    scenario(SimConfig::default(), 12, 10, 10, 30)
}

fn config() -> fleet_drain::drain::DrainConfig {
    let mut config = bounded_config();
    config.limits.max_draining_hosts = 3;
    config.limits.max_unavailable = Amount::Count(30);
    config.limits.max_starts_per_host_per_minute = 3;
    config
}

/// Runs a controller on the journal at `path` for at most `steps` polls.
fn run_for(
    s: &Scenario,
    path: &Path,
    steps: u64,
) -> Result<Result<DrainReport, DrainError>, SimError> {
    let journal = FileJournal::open(path).unwrap();
    let mut controller = DrainController::with_clock(
        config(),
        Arc::new(s.fleet.clone()),
        Box::new(journal),
        s.clock.clone(),
    )
    .unwrap();
    sim::run_steps(&s.clock, controller.run(&s.old), steps)
}

/// How many polls an uninterrupted drain of `small()` takes.
fn polls_to_finish() -> u64 {
    let finishes = |steps: u64| {
        let s = small();
        let dir = tempfile::tempdir().unwrap();
        run_for(&s, &dir.path().join("j"), steps).is_ok()
    };
    let (mut low, mut high) = (1u64, 2u64);
    while !finishes(high) {
        low = high;
        high *= 2;
    }
    while low + 1 < high {
        let mid = u64::midpoint(low, high);
        if finishes(mid) {
            high = mid;
        } else {
            low = mid;
        }
    }
    high
}

fn assert_invariants(s: &Scenario, path: &Path) {
    let limits = config().limits;
    assert_fully_drained(s);
    let stats = s.fleet.stats();
    assert_eq!(
        stats.max_drains_per_host, 1,
        "a host was drained twice: {stats:?}"
    );
    assert!(
        stats.peak_draining_hosts <= limits.max_draining_hosts,
        "{stats:?}"
    );
    assert!(
        stats.peak_starts_per_host_per_minute <= limits.max_starts_per_host_per_minute,
        "{stats:?}"
    );
    let mut journal = FileJournal::open(path).unwrap();
    let records = futures::executor::block_on(journal.records()).unwrap();
    let progress = DrainProgress::from_records(&records);
    assert!(progress.finished);
    assert!(
        progress.wave_starts.values().all(|&n| n == 1),
        "{progress:?}"
    );
    assert_eq!(progress.drained.len(), s.old.len());
}

#[test]
fn a_controller_killed_at_random_points_resumes_within_limits() {
    let total = polls_to_finish();
    assert!(total > 10, "{total}");
    let mut abandoned = 0;
    for seed in 0..12u64 {
        let s = small();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("drain.journal");
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut crashes = 0;
        loop {
            // Up to 4 crashes after a random number of polls, then run on.
            let steps = if crashes < 4 {
                rng.u64(1..total)
            } else {
                u64::MAX
            };
            match run_for(&s, &path, steps) {
                Ok(result) => {
                    let report = result.unwrap();
                    assert_eq!(report.resumed, crashes > 0 || report.hosts_drained == 0);
                    break;
                }
                Err(SimError::StepLimit) => crashes += 1,
                Err(SimError::Stalled) => panic!("stalled (seed {seed})"),
            }
        }
        abandoned += s.fleet.stats().abandoned_starts;
        assert_invariants(&s, &path);
    }
    // Some crashes hit the middle of app starts.
    assert!(abandoned > 0);
}

#[test]
fn a_truncated_journal_tail_is_reported_and_the_drain_resumes() {
    let total = polls_to_finish();
    for (seed, cut) in [(1u64, 3u64), (2, 20), (3, 60)] {
        let s = small();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("drain.journal");
        let steps = fastrand::Rng::with_seed(seed).u64(total / 3..total * 2 / 3);
        assert_eq!(run_for(&s, &path, steps).unwrap_err(), SimError::StepLimit);
        // The crash tore the last write.
        let len = std::fs::metadata(&path).unwrap().len();
        let file = OpenOptions::new().write(true).open(&path).unwrap();
        file.set_len(len.saturating_sub(cut)).unwrap();
        drop(file);
        let journal = FileJournal::open(&path).unwrap();
        let tail = journal
            .recovery()
            .discarded
            .clone()
            .expect("bad tail reported");
        assert!(tail.reason.contains("truncated"), "{}", tail.reason);
        drop(journal);
        run_for(&s, &path, u64::MAX).unwrap().unwrap();
        assert_invariants(&s, &path);
    }
}

#[test]
fn a_corrupted_journal_tail_is_detected_and_cut() {
    let s = small();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("drain.journal");
    let total = polls_to_finish();
    assert_eq!(
        run_for(&s, &path, total / 2).unwrap_err(),
        SimError::StepLimit
    );
    // Garbage after the last good record (a torn sector).
    let mut file = OpenOptions::new().append(true).open(&path).unwrap();
    file.write_all(&[7u8; 64]).unwrap();
    drop(file);
    let good = {
        let journal = FileJournal::open(&path).unwrap();
        let tail = journal.recovery().discarded.clone().unwrap();
        assert_eq!(tail.discarded_bytes, 64);
        journal.recovery().records
    };
    assert!(good > 0);
    // A flipped bit inside the last record: caught by the checksum.
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes.len() - 2;
    bytes[at] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    let journal = FileJournal::open(&path).unwrap();
    assert_eq!(
        journal.recovery().discarded.as_ref().unwrap().reason,
        "checksum mismatch"
    );
    assert_eq!(journal.recovery().records, good - 1);
    drop(journal);
    run_for(&s, &path, u64::MAX).unwrap().unwrap();
    assert_invariants(&s, &path);
}

#[test]
fn a_journal_of_another_drain_is_refused() {
    let s = small();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("drain.journal");
    assert_eq!(run_for(&s, &path, 5).unwrap_err(), SimError::StepLimit);
    let journal = FileJournal::open(&path).unwrap();
    let mut controller = DrainController::with_clock(
        config(),
        Arc::new(s.fleet.clone()),
        Box::new(journal),
        s.clock.clone(),
    )
    .unwrap();
    let err = sim::run(&s.clock, controller.run(&s.old[..3]))
        .unwrap()
        .unwrap_err();
    assert!(matches!(err, DrainError::JournalMismatch), "{err}");
}

/// A crash mid-wave on a real fleet can leave the apps whose starts it
/// interrupted stopped or failed on their receivers. With the default gate
/// those leftovers alone put the fleet past the abort mark: the successor
/// must restart them first (within the per-receiver start limit), and only
/// then judge health for new work.
#[test]
fn a_resumed_controller_restarts_its_predecessors_leftovers_before_gating() {
    use fleet_drain::drain::DrainEvent;
    use fleet_drain::fleet::{AppState, DrainFleet};
    use fleet_drain::health::HealthGateConfig;

    assert_eq!(config().gate, HealthGateConfig::default());
    let s = small();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("drain.journal");
    let total = polls_to_finish();
    assert_eq!(
        run_for(&s, &path, total / 2).unwrap_err(),
        SimError::StepLimit
    );
    // The predecessor's interrupted starts left apps stopped or failed on
    // the receivers: a quarter of the fleet, below the 80 % abort mark.
    let apps = sim::run(&s.clock, s.fleet.apps()).unwrap().unwrap();
    let leftovers: Vec<_> = apps
        .iter()
        .filter(|a| s.new.contains(&a.host) && a.state == AppState::Running)
        .map(|a| a.id)
        .take(s.apps as usize / 4)
        .collect();
    assert_eq!(leftovers.len(), s.apps as usize / 4, "crash too early");
    for (i, &app) in leftovers.iter().enumerate() {
        let state = if i % 2 == 0 {
            AppState::Stopped
        } else {
            AppState::Failed
        };
        s.fleet.set_app_state(app, state).unwrap();
    }

    let journal = FileJournal::open(&path).unwrap();
    let mut controller = DrainController::with_clock(
        config(),
        Arc::new(s.fleet.clone()),
        Box::new(journal),
        s.clock.clone(),
    )
    .unwrap();
    let events = support::collect(&mut controller);
    // Whenever the successor starts new work, the leftovers run again.
    let not_restarted_at_wave = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (fleet, seen, left) = (
        s.fleet.clone(),
        Arc::clone(&not_restarted_at_wave),
        leftovers.clone(),
    );
    controller.on_event(move |e| {
        if matches!(e, DrainEvent::WaveStarted { .. }) {
            let down = left
                .iter()
                .filter(|&&app| {
                    futures::executor::block_on(fleet.app_health(app)).unwrap() != AppState::Running
                })
                .count();
            seen.lock().unwrap().push(down);
        }
    });
    let report = sim::run(&s.clock, controller.run(&s.old)).unwrap().unwrap();
    assert!(report.resumed);
    assert!(report.apps_migrated >= leftovers.len() as u64, "{report:?}");
    let events = events.lock().unwrap();
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, DrainEvent::Aborted { .. })),
        "{events:?}"
    );
    let at_waves = not_restarted_at_wave.lock().unwrap();
    assert!(!at_waves.is_empty(), "the successor started no wave");
    assert!(at_waves.iter().all(|&down| down == 0), "{at_waves:?}");
    assert!(
        s.fleet.stats().peak_starts_per_host_per_minute
            <= config().limits.max_starts_per_host_per_minute
    );
    drop(events);
    assert_invariants(&s, &path);
}
