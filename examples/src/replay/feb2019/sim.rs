//! The February 2019 simulation, on fleet-drain's `SimFleet` and
//! `ManualClock`.
//!
//! Both policies drain the same old fleet onto the same new fleet:
//! - **naive**: fleet-drain's `naive_drain` baseline — 30 hosts at a time
//!   whenever the receivers' capacity use is below 80 %, every app of a batch
//!   started at once, a corrupted start left corrupted (as in the incident);
//! - **Breakwater**: `DrainController` with bounded waves, a per-receiver
//!   start limit and a health gate.
//!
//! Corrupted apps are only repaired by the platform's periodic restart, so
//! the migration is finished when every app runs healthy on the new fleet.
//! Meanwhile a disk-usage monitor samples every receiving host: raw, it
//! notifies on every crossing of its mark (and every failed start is a
//! warning); with Breakwater the same samples go through `Hysteresis` per
//! host and one `EventAggregator`.

use std::cell::{Cell, RefCell};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fleet_drain::drain::{DrainConfig, DrainController};
use fleet_drain::journal::MemoryJournal;
use fleet_drain::plan::{Amount, DrainLimits};
use fleet_drain::sim::{self, NaiveDrainConfig, SimConfig, SimFleet};
use fleet_drain::{AppState, Fleet};
use resilience_core::clock::{Clock, ManualClock};
use resilience_core::signal::{
    Direction, EventAggregator, EventAggregatorConfig, Hysteresis, HysteresisConfig, SignalChange,
};
use serde::Serialize;

use super::params::Feb2019Params;
use crate::replay::error::ReplayError;

/// Which drain policy a run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// 30 hosts at a time, capacity-gated; raw alerts.
    Naive,
    /// Bounded, health-gated `DrainController`; hysteresis and aggregation.
    Breakwater,
}

/// Samples taken every `disk_sample_s` seconds (for the chart).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FebTimeline {
    /// Seconds since the start of the migration.
    pub t: Vec<f64>,
    /// App starts per receiving host per minute, averaged over receivers.
    pub starts_per_host_per_minute: Vec<f64>,
    /// Failed (corrupted) starts so far.
    pub failed_starts: Vec<u64>,
    /// Notifications sent to the on-call so far.
    pub alerts_sent: Vec<u64>,
}

/// Summary of one policy's run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Feb2019Outcome {
    /// App starts that failed with a corrupted `node_modules`.
    pub failed_starts: u64,
    /// Most app starts in progress on one host at once.
    pub peak_starts_per_host: u32,
    /// Notifications the raw monitors produced (disk-usage crossings plus
    /// one warning per failed start).
    pub alerts_raw: u64,
    /// Notifications that reached the on-call.
    pub alerts_sent: u64,
    /// Seconds until every app ran healthy on the new fleet (corrupted apps
    /// wait for the periodic restart).
    pub finish_s: f64,
    /// Seconds until the last old host was drained.
    pub drain_s: f64,
    /// Apps left corrupted when the drain itself ended.
    pub corrupted_after_drain: u64,
    /// Most old hosts draining at once.
    pub peak_draining_hosts: u32,
    /// The series behind the figures (charts; not in the JSON summary).
    #[serde(skip)]
    pub timeline: FebTimeline,
}

/// The on-call's view: raw notifications, and what Breakwater lets through.
struct Alerting {
    policy: Policy,
    raw_state: Vec<bool>,
    hysteresis: Vec<Hysteresis>,
    aggregator: EventAggregator<&'static str, String>,
    raw: u64,
    sent: u64,
}

impl Alerting {
    fn new(
        p: &Feb2019Params,
        policy: Policy,
        receivers: usize,
        clock: &ManualClock,
    ) -> Result<Self, ReplayError> {
        let config = HysteresisConfig {
            high: p.disk_alert_percent,
            low: p.disk_clear_percent,
            fire_after: p.hysteresis_samples,
            clear_after: p.hysteresis_samples,
            direction: Direction::Above,
        };
        let mut hysteresis = Vec::with_capacity(receivers);
        for _ in 0..receivers {
            hysteresis.push(Hysteresis::new(config.clone())?);
        }
        Ok(Alerting {
            policy,
            raw_state: vec![false; receivers],
            hysteresis,
            aggregator: EventAggregator::with_clock(
                EventAggregatorConfig {
                    window: Duration::from_secs(p.aggregate_window_s),
                    max_fingerprints: 64,
                },
                clock.clone(),
            )?,
            raw: 0,
            sent: 0,
        })
    }

    fn event(&mut self, fingerprint: &'static str, message: String) {
        self.raw += 1;
        match self.policy {
            Policy::Naive => self.sent += 1,
            Policy::Breakwater => {
                if self.aggregator.record(fingerprint, message).is_some() {
                    self.sent += 1;
                }
            }
        }
    }

    fn disk_sample(&mut self, host: usize, percent: f64) {
        let mark = self.raw_alert_mark();
        let Some(state) = self.raw_state.get_mut(host) else {
            return;
        };
        let above = percent > mark;
        let crossed = above && !*state;
        *state = above;
        if crossed {
            match self.policy {
                Policy::Naive => {
                    self.raw += 1;
                    self.sent += 1;
                }
                Policy::Breakwater => self.raw += 1,
            }
        }
        if self.policy == Policy::Breakwater
            && let Some(h) = self.hysteresis.get_mut(host)
            && let Some(SignalChange::Fired { .. }) = h.observe(percent)
        {
            // The raw crossing was counted above; only the aggregated form
            // of the hysteresis signal reaches the on-call.
            if self
                .aggregator
                .record(
                    "disk-usage-getting-tight",
                    format!("host {host}: disk at {percent:.1} %"),
                )
                .is_some()
            {
                self.sent += 1;
            }
        }
    }

    fn raw_alert_mark(&self) -> f64 {
        self.hysteresis
            .first()
            .map_or(f64::INFINITY, |h| h.config().high)
    }

    fn poll(&mut self) {
        if self.policy == Policy::Breakwater {
            let flushed = self.aggregator.poll();
            self.sent += flushed.summaries.len() as u64 + u64::from(flushed.evicted.is_some());
        }
    }

    fn flush(&mut self) {
        if self.policy == Policy::Breakwater {
            let flushed = self.aggregator.flush();
            self.sent += flushed.summaries.len() as u64 + u64::from(flushed.evicted.is_some());
        }
    }
}

/// Runs one policy and returns its outcome.
// One async block per concurrent activity (migration, monitor) reads best
// in one place.
#[allow(clippy::too_many_lines)]
pub fn run(p: &Feb2019Params, policy: Policy, seed: u64) -> Result<Feb2019Outcome, ReplayError> {
    p.validate()?;
    let clock = ManualClock::new();
    let fleet = SimFleet::with_clock(
        SimConfig {
            start_duration: Duration::from_secs(p.start_s),
            safe_concurrent_starts: p.safe_concurrent_starts,
            failure_probability_per_extra_start: p.failure_per_extra_start,
            max_failure_probability: p.max_failure_probability,
            base_failure_probability: 0.0,
            seed,
            silent_failures: None,
        },
        clock.clone(),
    )?;
    let old = fleet.add_hosts(p.old_hosts, p.apps_per_host, "v1");
    for &host in &old {
        fleet
            .add_apps(host, p.apps_per_host)
            .map_err(|e| sim_error(&e))?;
    }
    let receivers = fleet.add_hosts(p.new_hosts, p.new_host_capacity, "v1");
    let started = clock.now();
    let alerting = RefCell::new(Alerting::new(p, policy, receivers.len(), &clock)?);
    let timeline = RefCell::new(FebTimeline::default());
    let drained_at: Cell<Option<Instant>> = Cell::new(None);
    let finished_at: Cell<Option<Instant>> = Cell::new(None);
    let corrupted_after_drain = Cell::new(0u64);
    let horizon = started + Duration::from_secs(p.horizon_s);

    let migration = async {
        let result = match policy {
            Policy::Naive => sim::naive_drain(
                &fleet,
                &clock,
                &old,
                &NaiveDrainConfig {
                    hosts_at_once: p.naive_hosts_at_once,
                    capacity_gate: p.naive_capacity_gate,
                    check_interval: Duration::from_secs(p.naive_check_s),
                    max_attempts: 1,
                },
            )
            .await
            .map(|_| ())
            .map_err(|e| sim_error(&e)),
            Policy::Breakwater => {
                let config = DrainConfig {
                    limits: DrainLimits {
                        max_draining_hosts: p.max_draining_hosts,
                        max_unavailable: Amount::Percent(p.max_unavailable_percent),
                        max_starts_per_host_per_minute: p.max_starts_per_host_per_minute,
                        ..DrainLimits::default()
                    },
                    seed,
                    ..DrainConfig::default()
                };
                let fleet_handle: Arc<dyn Fleet> = Arc::new(fleet.clone());
                match DrainController::with_clock(
                    config,
                    fleet_handle,
                    Box::new(MemoryJournal::new()),
                    clock.clone(),
                ) {
                    Ok(mut controller) => controller
                        .run(&old)
                        .await
                        .map(|_| ())
                        .map_err(|e| sim_error(&e)),
                    Err(e) => Err(ReplayError::from(e)),
                }
            }
        };
        drained_at.set(Some(clock.now()));
        corrupted_after_drain.set(count_failed(&fleet).await);
        // Corrupted apps wait for the periodic restart: each restarts at a
        // random moment of the next period (restarts are spread out, so they
        // do not surge), and again a period later if that start fails too.
        let period = Duration::from_secs(p.restart_period_s);
        let mut restart_rng = fastrand::Rng::with_seed(seed ^ 0x05EE_D0FF_1EE7);
        let failed: Vec<_> = fleet
            .apps()
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|a| a.state == AppState::Failed)
            .collect();
        let restarts = failed.iter().map(|app| {
            let offset = period.mul_f64(restart_rng.f64());
            let fleet = &fleet;
            let clock = &clock;
            async move {
                let mut at = clock.now() + offset;
                while at < horizon {
                    clock.sleep_until(at).await;
                    if fleet.migrate(app.id, app.host).await.is_ok() {
                        break;
                    }
                    at += period;
                }
            }
        });
        futures::future::join_all(restarts).await;
        finished_at.set(Some(clock.now()));
        result
    };

    let monitor = async {
        let interval = Duration::from_secs(p.disk_sample_s);
        let mut rng = fastrand::Rng::with_seed(seed ^ 0x0D15_C0DE);
        let mut last_failed = 0u64;
        let mut last_starts = 0u64;
        loop {
            clock.sleep(interval).await;
            let now = clock.now();
            let stats = fleet.stats();
            {
                let mut alerting = alerting.borrow_mut();
                for (i, &host) in receivers.iter().enumerate() {
                    let noise = gaussian(&mut rng) * p.disk_noise_percent;
                    let disk = p.disk_base_percent
                        + p.disk_per_app_percent * f64::from(fleet.load(host))
                        + noise;
                    alerting.disk_sample(i, disk);
                }
                for _ in last_failed..stats.failed_starts {
                    alerting.event(
                        "app-start-failed",
                        "app started with a corrupted node_modules".to_owned(),
                    );
                }
                alerting.poll();
                let mut tl = timeline.borrow_mut();
                tl.t.push(now.saturating_duration_since(started).as_secs_f64());
                let per_minute = 60.0 / interval.as_secs_f64();
                tl.starts_per_host_per_minute.push(
                    (stats.starts - last_starts) as f64 * per_minute
                        / f64::from(p.new_hosts.max(1)),
                );
                tl.failed_starts.push(stats.failed_starts);
                tl.alerts_sent.push(alerting.sent);
            }
            last_failed = stats.failed_starts;
            last_starts = stats.starts;
            let done = finished_at
                .get()
                .is_some_and(|f| now >= f + Duration::from_secs(p.observe_after_s));
            if done || now >= horizon + Duration::from_secs(p.observe_after_s) {
                break;
            }
        }
        alerting.borrow_mut().flush();
    };

    let (result, ()) = sim::run(&clock, futures::future::join(migration, monitor))
        .map_err(|e| ReplayError::Simulation(e.to_string()))?;
    result?;

    let stats = fleet.stats();
    let secs = |at: Option<Instant>| {
        at.map_or(f64::NAN, |t| {
            t.saturating_duration_since(started).as_secs_f64()
        })
    };
    let alerting = alerting.into_inner();
    Ok(Feb2019Outcome {
        failed_starts: stats.failed_starts,
        peak_starts_per_host: stats.peak_concurrent_starts,
        alerts_raw: alerting.raw,
        alerts_sent: alerting.sent,
        finish_s: secs(finished_at.get()),
        drain_s: secs(drained_at.get()),
        corrupted_after_drain: corrupted_after_drain.get(),
        peak_draining_hosts: stats.peak_draining_hosts,
        timeline: timeline.into_inner(),
    })
}

async fn count_failed(fleet: &SimFleet) -> u64 {
    fleet.apps().await.map_or(0, |apps| {
        apps.iter().filter(|a| a.state == AppState::Failed).count() as u64
    })
}

fn sim_error(e: &dyn std::fmt::Display) -> ReplayError {
    ReplayError::Simulation(e.to_string())
}

/// A standard normal sample (Box–Muller).
fn gaussian(rng: &mut fastrand::Rng) -> f64 {
    let u1 = rng.f64().max(f64::MIN_POSITIVE);
    let u2 = rng.f64();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}
