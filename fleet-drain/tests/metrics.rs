//! Issue #16: every metric of the drain controller and the rollout, recorded through a test
//! recorder, equals the fleet-drain table of `docs/metrics.md`; every series carries the
//! instance's name. Its own test binary (feature `metrics`): the recorder is thread-local
//! (`metrics::with_local_recorder`), so nothing global is installed.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::too_many_lines,
    clippy::type_complexity
)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use fleet_drain::drain::{AdaptiveStartsConfig, DrainConfig, DrainController};
use fleet_drain::fleet::{
    App, AppId, AppState, DrainFleet, Fleet, Host, HostId, HostState, RolloutFleet,
};
use fleet_drain::journal::{Journal, JournalRecord, MemoryJournal};
use fleet_drain::plan::{Amount, DrainLimits};
use fleet_drain::rollout::{Rollout, RolloutConfig, RolloutStep};
use fleet_drain::sim::{self, SilentFailures, SimConfig, SimFleet};
use fleet_drain::{FleetError, JournalError};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use resilience_core::InstanceName;
use resilience_core::clock::ManualClock;
use support::{Scenario, bounded_config, scenario};

/// The names of the fleet-drain section's table in `docs/metrics.md`.
fn documented() -> BTreeSet<String> {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/metrics.md"))
        .unwrap();
    let section = doc
        .split("\n## ")
        .find(|s| s.starts_with("fleet-drain"))
        .expect("a `## fleet-drain` section");
    section
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| {
            let cell = l.trim_start_matches('|').split('|').next().unwrap().trim();
            cell.trim_matches('`').to_owned()
        })
        .collect()
}

fn name(n: &str) -> InstanceName {
    InstanceName::new(n).unwrap()
}

fn run_drain(s: &Scenario, config: DrainConfig, n: &str) -> Result<(), fleet_drain::DrainError> {
    run_drain_with(
        s,
        config,
        n,
        Arc::new(s.fleet.clone()),
        Box::new(MemoryJournal::new()),
    )
}

fn run_drain_with(
    s: &Scenario,
    config: DrainConfig,
    n: &str,
    fleet: Arc<dyn Fleet>,
    journal: Box<dyn Journal>,
) -> Result<(), fleet_drain::DrainError> {
    let mut c = DrainController::with_clock(config, fleet, journal, s.clock.clone())
        .unwrap()
        .named(name(n));
    sim::run(&s.clock, c.run(&s.old)).unwrap().map(|_| ())
}

/// Refuses the first start it is asked for (a receiver that stopped accepting apps).
struct RefusesFirstStart {
    inner: SimFleet,
    refused: AtomicU32,
}

#[async_trait]
impl DrainFleet for RefusesFirstStart {
    async fn hosts(&self) -> Result<Vec<Host>, FleetError> {
        self.inner.hosts().await
    }
    async fn apps(&self) -> Result<Vec<App>, FleetError> {
        self.inner.apps().await
    }
    async fn set_host_state(&self, host: HostId, state: HostState) -> Result<(), FleetError> {
        self.inner.set_host_state(host, state).await
    }
    async fn migrate(&self, app: AppId, to: HostId) -> Result<(), FleetError> {
        if self.refused.fetch_add(1, Ordering::SeqCst) == 0 {
            return Err(FleetError::UnknownHost(to));
        }
        self.inner.migrate(app, to).await
    }
    async fn app_health(&self, app: AppId) -> Result<AppState, FleetError> {
        self.inner.app_health(app).await
    }
}

#[async_trait]
impl RolloutFleet for RefusesFirstStart {
    async fn start_version(&self, host: HostId, v: &str, traffic: bool) -> Result<(), FleetError> {
        self.inner.start_version(host, v, traffic).await
    }
    async fn stop_version(&self, host: HostId, version: &str) -> Result<(), FleetError> {
        self.inner.stop_version(host, version).await
    }
    async fn shift_traffic(&self, version: &str, percent: f64) -> Result<(), FleetError> {
        self.inner.shift_traffic(version, percent).await
    }
}

/// A journal whose disk fills after `ok` appends.
struct FillingJournal {
    inner: MemoryJournal,
    ok: Arc<Mutex<u32>>,
}

#[async_trait]
impl Journal for FillingJournal {
    async fn append(&mut self, record: &JournalRecord) -> Result<(), JournalError> {
        {
            let mut ok = self.ok.lock().unwrap();
            if *ok == 0 {
                return Err(JournalError::Io {
                    path: "journal".into(),
                    source: std::io::Error::other("disk full"),
                });
            }
            *ok -= 1;
        }
        self.inner.append(record).await
    }
    async fn records(&mut self) -> Result<Vec<JournalRecord>, JournalError> {
        self.inner.records().await
    }
}

/// Bounded limits for a small fleet (10 % of a few apps would be less than one host's).
fn small_config() -> DrainConfig {
    let mut config = bounded_config();
    config.limits.max_unavailable = Amount::Count(20);
    config
}

fn quiet_limits(concurrent: u32, per_minute: u32) -> DrainLimits {
    DrainLimits {
        max_draining_hosts: 4,
        max_unavailable: Amount::Percent(100.0),
        max_starts_per_host_per_minute: per_minute,
        max_concurrent_starts_per_host: concurrent,
        min_free_capacity: Amount::Count(0),
    }
}

/// Every drain decision: waves, adaptive limits up and down, late failures and repairs,
/// failed and refused starts, a gate pause, an abort, an excluded receiver, a journal failure.
fn drive_drains() {
    // Adaptive start concurrency over a hidden safe limit: grows, is cut on late failures,
    // late failures are repaired.
    let silent = SilentFailures {
        safe_concurrent_starts: 3,
        corruption_per_extra_start: 0.5,
        visible_after: Duration::from_secs(60),
    };
    let s = scenario(
        SimConfig {
            failure_probability_per_extra_start: 0.0,
            silent_failures: Some(silent),
            ..SimConfig::default()
        },
        4,
        40,
        4,
        60,
    );
    let config = DrainConfig {
        limits: quiet_limits(16, 600),
        // Below the hidden 3 at first (the default 4 is past it), so the limit grows first.
        adaptive_starts: Some(AdaptiveStartsConfig {
            initial_limit: 2,
            ..AdaptiveStartsConfig::default()
        }),
        probation: Some(Duration::from_secs(90)),
        ..DrainConfig::default()
    };
    run_drain(&s, config, "adaptive").unwrap();

    // Starts fail, the gate pauses, the drain resumes and finishes.
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
    run_drain(&s, config, "paused").unwrap();

    // The gate aborts a drain that breaks apps.
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
    assert!(run_drain(&s, config, "aborted").is_err());

    // A receiver failing every start is excluded.
    let s = scenario(SimConfig::default(), 8, 10, 4, 40);
    s.fleet.set_host_failure_probability(s.new[0], 1.0).unwrap();
    let mut config = bounded_config();
    config.limits.max_unavailable = Amount::Count(40);
    config.receiver_max_failures_per_minute = Some(1.0);
    config.failure_window = Duration::from_secs(60);
    config.gate.pause_above_failures_per_minute = 100.0;
    config.gate.resume_below_failures_per_minute = 50.0;
    config.gate.abort_above_failures_per_minute = 1000.0;
    config.gate.pause_below_healthy_share = 0.5;
    config.gate.abort_below_healthy_share = 0.0;
    run_drain(&s, config, "excluding").unwrap();

    // A receiver refuses a start: re-planned, the drain finishes.
    let s = scenario(SimConfig::default(), 2, 4, 2, 20);
    let refusing = Arc::new(RefusesFirstStart {
        inner: s.fleet.clone(),
        refused: AtomicU32::new(0),
    });
    run_drain_with(
        &s,
        small_config(),
        "refused",
        refusing,
        Box::new(MemoryJournal::new()),
    )
    .unwrap();
    support::assert_fully_drained(&s);

    // The journal fails after the drain began: the drain stops with the error.
    let s = scenario(SimConfig::default(), 2, 4, 2, 20);
    let journal = FillingJournal {
        inner: MemoryJournal::new(),
        ok: Arc::new(Mutex::new(2)),
    };
    let err = run_drain_with(
        &s,
        small_config(),
        "journal-full",
        Arc::new(s.fleet.clone()),
        Box::new(journal),
    )
    .unwrap_err();
    assert!(err.to_string().contains("disk full"), "{err}");
}

fn rollout_fleet() -> (ManualClock, SimFleet, Vec<HostId>) {
    let clock = ManualClock::new();
    let fleet = SimFleet::with_clock(SimConfig::default(), clock.clone()).unwrap();
    let hosts = fleet.add_hosts(10, 10, "v1");
    for &h in &hosts {
        fleet.add_apps(h, 5).unwrap();
    }
    (clock, fleet, hosts)
}

fn run_rollout(config: RolloutConfig, bad: bool, n: &str) -> Result<(), fleet_drain::RolloutError> {
    let (clock, fleet, hosts) = rollout_fleet();
    fleet.set_version_healthy("v2", !bad);
    let mut rollout = Rollout::with_clock(config, Arc::new(fleet), hosts, clock.clone())
        .unwrap()
        .named(name(n));
    sim::run(&clock, rollout.run()).unwrap().map(|_| ())
}

/// Every rollout decision: each step kind, a pause (bake extended), an abort, rollbacks.
fn drive_rollouts() {
    let bake = RolloutStep::Bake {
        duration: Duration::from_secs(60),
    };
    // A good release through canary and waves.
    let good = RolloutConfig {
        version: "v2".into(),
        steps: vec![
            RolloutStep::Canary { hosts: 1 },
            bake.clone(),
            RolloutStep::Wave { percent: 100.0 },
        ],
        ..RolloutConfig::default()
    };
    run_rollout(good, false, "good").unwrap();

    // A bad release, started without traffic then shifted: the gate aborts, all undone.
    let shifted = RolloutConfig {
        version: "v2".into(),
        steps: vec![
            RolloutStep::StartWithoutTraffic,
            bake.clone(),
            RolloutStep::ShiftTraffic { percent: 10.0 },
            RolloutStep::Bake {
                duration: Duration::from_secs(600),
            },
        ],
        ..RolloutConfig::default()
    };
    assert!(run_rollout(shifted, true, "shifted").is_err());

    // A bad canary whose gate only pauses: the bake is extended until the deadline, then
    // rolled back.
    let mut paused = RolloutConfig {
        version: "v2".into(),
        steps: vec![RolloutStep::Canary { hosts: 2 }, bake],
        deadline: Some(Duration::from_secs(300)),
        ..RolloutConfig::default()
    };
    paused.gate.abort_below_healthy_share = 0.0;
    paused.gate.abort_above_failures_per_minute = 1_000_000.0;
    let err = run_rollout(paused, true, "paused").unwrap_err();
    assert!(
        matches!(err, fleet_drain::RolloutError::DeadlineExceeded),
        "{err}"
    );
}

#[test]
fn every_documented_metric_is_recorded_with_the_instance_name_and_nothing_else() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        drive_drains();
        drive_rollouts();
    });

    // name -> (labels -> value)
    let mut seen: BTreeMap<String, Vec<(BTreeMap<String, String>, f64)>> = BTreeMap::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let key = key.key();
        let labels: BTreeMap<String, String> = key
            .labels()
            .map(|l| (l.key().to_owned(), l.value().to_owned()))
            .collect();
        let value = match value {
            DebugValue::Counter(c) => c as f64,
            DebugValue::Gauge(g) => g.into_inner(),
            DebugValue::Histogram(h) => h.len() as f64,
        };
        seen.entry(key.name().to_owned())
            .or_default()
            .push((labels, value));
    }

    // fleet-drain's own series; the resilience-core instances a controller owns (its events
    // aggregator, fleet-call retries, health gate and start limits) record too when
    // resilience-core's `metrics` feature is on, under `<controller name>.<part>`.
    let own = |n: &str| n.starts_with("breakwater_drain_") || n.starts_with("breakwater_rollout_");
    let names: BTreeSet<String> = seen.keys().filter(|n| own(n)).cloned().collect();
    for (metric, series) in seen.iter().filter(|(n, _)| !own(n)) {
        for (labels, _) in series {
            let n = labels.get("name").map(String::as_str).unwrap_or_default();
            let owner = n.split('.').next().unwrap_or_default();
            assert!(
                n.contains('.')
                    && seen
                        .values()
                        .flatten()
                        .any(|(l, _)| { l.get("name").map(String::as_str) == Some(owner) }),
                "{metric} {labels:?}: an owned instance is named `<owner>.<part>`"
            );
        }
    }
    assert_eq!(
        names,
        documented(),
        "docs/metrics.md (fleet-drain) vs recorded"
    );

    // Every series is labelled with a (non-empty here: every instance is named) name.
    for (metric, series) in &seen {
        for (labels, _) in series {
            let n = labels.get("name").map(String::as_str).unwrap_or_default();
            assert!(!n.is_empty(), "{metric} {labels:?} has no instance name");
        }
    }

    let value = |metric: &str, want: &[(&str, &str)]| -> f64 {
        seen.get(metric)
            .into_iter()
            .flatten()
            .filter(|(labels, _)| {
                want.iter()
                    .all(|(k, v)| labels.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|(_, v)| *v)
            .sum()
    };
    // Every counter was driven by some decision.
    for metric in names.iter().filter(|n| n.ends_with("_total")) {
        assert!(value(metric, &[]) > 0.0, "{metric} never counted");
    }
    // ... and by the one expected of each instance, under its name.
    let expect = [
        ("breakwater_drain_waves_started_total", "adaptive", None),
        ("breakwater_drain_waves_completed_total", "adaptive", None),
        ("breakwater_drain_hosts_drained_total", "adaptive", None),
        ("breakwater_drain_late_failures_total", "adaptive", None),
        (
            "breakwater_drain_app_starts_total",
            "adaptive",
            Some(("outcome", "repaired")),
        ),
        (
            "breakwater_drain_start_limit_changes_total",
            "adaptive",
            Some(("direction", "increase")),
        ),
        (
            "breakwater_drain_start_limit_changes_total",
            "adaptive",
            Some(("direction", "cut")),
        ),
        (
            "breakwater_drain_start_concurrency",
            "adaptive",
            Some(("class", "capacity-60/v1")),
        ),
        (
            "breakwater_drain_busiest_receiver_starts_per_minute",
            "adaptive",
            None,
        ),
        (
            "breakwater_drain_gate_verdicts_total",
            "paused",
            Some(("verdict", "pause")),
        ),
        (
            "breakwater_drain_app_starts_total",
            "paused",
            Some(("outcome", "failed")),
        ),
        (
            "breakwater_drain_gate_verdicts_total",
            "aborted",
            Some(("verdict", "abort")),
        ),
        (
            "breakwater_drain_receivers_excluded_total",
            "excluding",
            None,
        ),
        (
            "breakwater_drain_app_starts_total",
            "refused",
            Some(("outcome", "rejected")),
        ),
        (
            "breakwater_drain_app_starts_total",
            "refused",
            Some(("outcome", "migrated")),
        ),
        (
            "breakwater_drain_journal_appends_total",
            "journal-full",
            Some(("outcome", "failed")),
        ),
        (
            "breakwater_drain_journal_appends_total",
            "journal-full",
            Some(("outcome", "ok")),
        ),
        (
            "breakwater_rollout_steps_total",
            "good",
            Some(("step", "canary")),
        ),
        (
            "breakwater_rollout_steps_total",
            "good",
            Some(("step", "wave")),
        ),
        ("breakwater_rollout_hosts_changed", "good", None),
        (
            "breakwater_rollout_steps_total",
            "shifted",
            Some(("step", "start_without_traffic")),
        ),
        (
            "breakwater_rollout_steps_total",
            "shifted",
            Some(("step", "shift_traffic")),
        ),
        (
            "breakwater_rollout_steps_total",
            "shifted",
            Some(("step", "bake")),
        ),
        (
            "breakwater_rollout_gate_verdicts_total",
            "shifted",
            Some(("verdict", "abort")),
        ),
        ("breakwater_rollout_rollbacks_total", "shifted", None),
        ("breakwater_rollout_changes_undone_total", "shifted", None),
        (
            "breakwater_rollout_gate_verdicts_total",
            "paused",
            Some(("verdict", "pause")),
        ),
        ("breakwater_rollout_rollbacks_total", "paused", None),
    ];
    for (metric, instance, label) in expect {
        let mut want = vec![("name", instance)];
        want.extend(label);
        assert!(
            value(metric, &want) > 0.0,
            "{metric} {want:?}: {:?}",
            seen.get(metric)
        );
    }
    // Final gauges: nothing draining or moving once the drains are over; the good rollout
    // changed all 10 hosts, the rolled-back ones none.
    assert_eq!(
        value("breakwater_drain_hosts_draining", &[("name", "adaptive")]),
        0.0
    );
    assert_eq!(
        value("breakwater_drain_apps_moving", &[("name", "adaptive")]),
        0.0
    );
    assert_eq!(
        value("breakwater_rollout_hosts_changed", &[("name", "good")]),
        10.0
    );
    assert_eq!(
        value("breakwater_rollout_hosts_changed", &[("name", "shifted")]),
        0.0
    );
}

#[test]
fn an_unnamed_controller_records_an_empty_name_label() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        let s = scenario(SimConfig::default(), 1, 2, 1, 10);
        let mut c = DrainController::with_clock(
            small_config(),
            Arc::new(s.fleet.clone()),
            Box::new(MemoryJournal::new()),
            s.clock.clone(),
        )
        .unwrap();
        sim::run(&s.clock, c.run(&s.old)).unwrap().unwrap();
    });
    let snapshot = snapshotter.snapshot().into_vec();
    assert!(!snapshot.is_empty());
    for (key, _, _, _) in snapshot {
        let key = key.key();
        let name = key
            .labels()
            .find(|l| l.key() == "name")
            .map(|l| l.value().to_owned());
        assert_eq!(name.as_deref(), Some(""), "{}", key.name());
    }
}
