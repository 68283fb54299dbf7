//! The February 2019 simulation, on fleet-drain's `SimFleet` and
//! `ManualClock`.
//!
//! One run: the new fleet boots through a rate-limited DNS API
//! ([`super::dns`]); then the old fleet is drained onto it, every start
//! going through the per-host `node_modules` allocator model
//! ([`super::alloc`]), which silently corrupts starts past the hidden safe
//! concurrency.
//! - **naive**: the incident's procedure — 30 hosts per batch, a batch
//!   every 30 minutes while the receivers are below 80 % full, every app of
//!   a batch started at once on the least loaded receiver; the allocator
//!   has no limit; corrupted apps wait for the platform's periodic restart;
//!   the DNS API is called all at once;
//! - **Breakwater**: [`super::policy::breakwater_policy`] — a
//!   `DrainController` with bounded waves, adaptive start concurrency per
//!   receiver class and probation (late failures repaired at once), the
//!   allocator behind a `ConcurrencyLimit`, the DNS calls behind a
//!   `RateLimiter`.
//!
//! Both sides: the platform restarts each corrupted app once per
//! `restart_period_s`; the migration is finished when every app runs
//! healthy on the new fleet. A disk-usage monitor samples every receiving
//! host over the same window ([`FebSetup::horizon_s`](super::params::FebSetup::horizon_s)):
//! raw, every crossing of its mark pages the on-call and every app that
//! turns unhealthy (and every throttled DNS call) is a warning; with
//! Breakwater the disk samples go through `Hysteresis` per host and pages
//! and warnings through one `EventAggregator` each.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fleet_drain::drain::DrainController;
use fleet_drain::fleet::{AppId, DrainFleet, Fleet, HostId, HostState};
use fleet_drain::journal::MemoryJournal;
use fleet_drain::sim::{self, SimConfig, SimFleet};
use resilience_core::InstanceName;
use resilience_core::clock::{Clock, ManualClock};
use resilience_core::signal::{
    Direction, EventAggregator, EventAggregatorConfig, Hysteresis, HysteresisConfig, SignalChange,
};
use serde::Serialize;

use super::alloc::{AllocFleet, AllocModel};
use super::dns;
use super::params::Feb2019Params;
use super::policy::breakwater_policy;
use crate::replay::error::ReplayError;
use crate::replay::prometheus::build_named;

/// The Breakwater side's drain controller, as named in its logs and metrics.
pub const DRAIN_NAME: &str = "feb2019.drain";

/// Which drain policy a run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// The incident's procedure; raw alerts.
    Naive,
    /// Breakwater's fixed policy; hysteresis and aggregation.
    Breakwater,
}

/// Samples taken every `disk_sample_s` seconds (for the chart).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FebTimeline {
    /// Seconds since the start of the migration.
    pub t: Vec<f64>,
    /// App starts per receiving host per minute, averaged over receivers.
    pub starts_per_host_per_minute: Vec<f64>,
    /// Corrupted starts so far.
    pub failed_starts: Vec<u64>,
    /// Apps corrupted at the moment (visible or not yet).
    pub corrupted_now: Vec<u64>,
    /// Pages sent to the on-call so far.
    pub alerts_sent: Vec<u64>,
}

/// `value / limit` for the metrics that have a limit (see
/// [`super::Feb2019Report::limits`]); `None` when undefined ("never").
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct FebRatios {
    /// Last old host drained, over the fastest safe drain.
    pub drain_s: Option<f64>,
    /// Every app healthy, over the fastest safe drain.
    pub finish_s: Option<f64>,
}

/// Summary of one policy's run. Times are seconds from the start of the
/// migration (after the new fleet booted).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Feb2019Outcome {
    /// App starts corrupted by the `node_modules` allocator (silent at
    /// first; repaired later).
    pub failed_starts: u64,
    /// Most app starts in progress on one host at once.
    pub peak_starts_per_host: u32,
    /// Notifications the raw monitors produced: disk-usage crossings plus
    /// warnings (one per app turning unhealthy, one per throttled DNS call).
    pub alerts_raw: u64,
    /// Pages that reached the on-call (disk monitor; warnings never page).
    pub alerts_sent: u64,
    /// Raw warnings (unhealthy apps, throttled DNS calls).
    pub warnings_raw: u64,
    /// Warnings shown (naive: every one; Breakwater: aggregated).
    pub warnings_sent: u64,
    /// Seconds until every app ran healthy on the new fleet (`null`: not
    /// within the window).
    pub finish_s: f64,
    /// Seconds until the last old host was drained.
    pub drain_s: f64,
    /// Apps left corrupted when the drain itself ended (Breakwater: when
    /// the controller reported done, every probation over).
    pub corrupted_after_drain: u64,
    /// Corrupted apps started again (probation repairs and periodic restarts).
    pub repairs: u64,
    /// Allocations shed by the allocator's admission limit (retried).
    pub alloc_shed: u64,
    /// Most old hosts draining at once (hosts are marked drained once empty).
    pub peak_draining_hosts: u32,
    /// Seconds the new fleet took to boot (DNS registration).
    pub boot_s: f64,
    /// DNS calls the provider throttled during the boot.
    pub dns_throttled: u64,
    /// Breakwater: the start concurrency per receiver learned at the end.
    pub learned_start_limit: Option<u32>,
    /// Ratios to the physical limits.
    pub ratio_to_limit: FebRatios,
    /// The series behind the figures (charts; not in the JSON summary).
    #[serde(skip)]
    pub timeline: FebTimeline,
}

/// The on-call's view: raw notifications, and what Breakwater lets through.
struct Alerting {
    policy: Policy,
    raw_state: Vec<bool>,
    hysteresis: Vec<Hysteresis>,
    pages: EventAggregator<&'static str, String>,
    warnings: EventAggregator<&'static str, String>,
    raw_pages: u64,
    pages_sent: u64,
    raw_warnings: u64,
    warnings_sent: u64,
    mark: f64,
}

impl Alerting {
    fn new(
        p: &Feb2019Params,
        policy: Policy,
        receivers: usize,
        clock: &ManualClock,
    ) -> Result<Self, ReplayError> {
        let config = HysteresisConfig {
            high: p.setup.disk_alert_percent,
            low: p.breakwater.disk_clear_percent,
            fire_after: p.breakwater.hysteresis_samples,
            clear_after: p.breakwater.hysteresis_samples,
            direction: Direction::Above,
        };
        let mut hysteresis = Vec::with_capacity(receivers);
        for _ in 0..receivers {
            hysteresis.push(build_named(
                "feb2019.breakwater.disk-alert",
                || Hysteresis::new(config.clone()),
                Hysteresis::named,
            )?);
        }
        let aggregator = |name: &str| {
            build_named(
                name,
                || {
                    EventAggregator::with_clock(
                        EventAggregatorConfig {
                            window: Duration::from_secs(p.breakwater.aggregate_window_s),
                            max_fingerprints: 64,
                        },
                        clock.clone(),
                    )
                },
                EventAggregator::named,
            )
        };
        Ok(Alerting {
            policy,
            raw_state: vec![false; receivers],
            hysteresis,
            pages: aggregator("feb2019.breakwater.pages")?,
            warnings: aggregator("feb2019.breakwater.warnings")?,
            raw_pages: 0,
            pages_sent: 0,
            raw_warnings: 0,
            warnings_sent: 0,
            mark: p.setup.disk_alert_percent,
        })
    }

    fn warning(&mut self, fingerprint: &'static str, message: String) {
        self.raw_warnings += 1;
        match self.policy {
            Policy::Naive => self.warnings_sent += 1,
            Policy::Breakwater => {
                if self.warnings.record(fingerprint, message).is_some() {
                    self.warnings_sent += 1;
                }
            }
        }
    }

    fn disk_sample(&mut self, host: usize, percent: f64) {
        let Some(state) = self.raw_state.get_mut(host) else {
            return;
        };
        let above = percent > self.mark;
        let crossed = above && !*state;
        *state = above;
        if crossed {
            self.raw_pages += 1;
            if self.policy == Policy::Naive {
                self.pages_sent += 1;
            }
        }
        if self.policy == Policy::Breakwater
            && let Some(h) = self.hysteresis.get_mut(host)
            && let Some(SignalChange::Fired { .. }) = h.observe(percent)
            && self
                .pages
                .record(
                    "disk-usage-getting-tight",
                    format!("host {host}: disk at {percent:.1} %"),
                )
                .is_some()
        {
            self.pages_sent += 1;
        }
    }

    fn poll(&mut self, flush: bool) {
        if self.policy == Policy::Breakwater {
            let (pages, warnings) = if flush {
                (self.pages.flush(), self.warnings.flush())
            } else {
                (self.pages.poll(), self.warnings.poll())
            };
            self.pages_sent += pages.summaries.len() as u64 + u64::from(pages.evicted.is_some());
            self.warnings_sent +=
                warnings.summaries.len() as u64 + u64::from(warnings.evicted.is_some());
        }
    }
}

/// The incident's procedure: a batch of `naive_hosts_at_once` hosts every
/// `naive_batch_interval_s` (while the receivers are below the capacity
/// gate), every app of a batch started at once on the least loaded
/// receiver; a host is marked drained once its apps moved.
async fn naive_drain(
    p: &Feb2019Params,
    fleet: &AllocFleet,
    clock: &ManualClock,
    old: &[HostId],
    receivers: &[HostId],
) -> Result<(), ReplayError> {
    let n = &p.naive;
    let start = clock.now();
    let mut by_host: BTreeMap<HostId, Vec<AppId>> = BTreeMap::new();
    for app in fleet.apps().await.map_err(|e| sim_error(&e))? {
        by_host.entry(app.host).or_default().push(app.id);
    }
    let loads = RefCell::new(
        receivers
            .iter()
            .map(|&r| (0u32, r))
            .collect::<Vec<(u32, HostId)>>(),
    );
    let capacity = p.setup.new_host_capacity;
    let total = f64::from(capacity) * receivers.len() as f64;
    let batches: Vec<&[HostId]> = old.chunks(n.naive_hosts_at_once as usize).collect();
    let by_host = &by_host;
    let loads = &loads;
    let runs = batches.iter().enumerate().map(|(k, &batch)| async move {
        let at = start + Duration::from_secs(n.naive_batch_interval_s.saturating_mul(k as u64));
        clock.sleep_until(at).await;
        loop {
            let placed: u64 = loads.borrow().iter().map(|l| u64::from(l.0)).sum();
            if (placed as f64) < n.naive_capacity_gate * total {
                break;
            }
            clock.sleep(Duration::from_secs(n.naive_check_s)).await;
        }
        let hosts = batch.iter().map(|&host| async move {
            let _ = fleet.set_host_state(host, HostState::Draining).await;
            let mut moves = Vec::new();
            for &app in by_host.get(&host).map_or(&[][..], Vec::as_slice) {
                let mut loads = loads.borrow_mut();
                let Some(slot) = loads
                    .iter_mut()
                    .filter(|l| l.0 < capacity)
                    .min_by_key(|l| (l.0, l.1))
                else {
                    break;
                };
                slot.0 += 1;
                moves.push((app, slot.1));
            }
            let starts = moves.into_iter().map(|(app, to)| fleet.migrate(app, to));
            // A start refused or failed is left as it is (as in the incident).
            let _ = futures::future::join_all(starts).await;
            let _ = fleet.set_host_state(host, HostState::Drained).await;
        });
        futures::future::join_all(hosts).await;
    });
    futures::future::join_all(runs).await;
    Ok(())
}

/// Runs one policy and returns its outcome (ratios to the limit unset).
// One async block per concurrent activity (migration, restarts, monitor)
// reads best in one place.
#[allow(clippy::too_many_lines)]
pub fn run(p: &Feb2019Params, policy: Policy, seed: u64) -> Result<Feb2019Outcome, ReplayError> {
    p.validate()?;
    let (setup, world) = (&p.setup, &p.world);
    let bw = (policy == Policy::Breakwater).then(|| breakwater_policy(setup, &p.breakwater, seed));
    let boot = dns::boot(setup, world, &p.naive, bw.as_ref().map(|b| &b.dns), seed)?;
    let clock = ManualClock::new();
    let sim_fleet = SimFleet::with_clock(
        SimConfig {
            start_duration: Duration::from_secs(setup.start_s),
            safe_concurrent_starts: 1,
            failure_probability_per_extra_start: 0.0,
            max_failure_probability: 0.0,
            base_failure_probability: 0.0,
            seed,
            silent_failures: None,
        },
        clock.clone(),
    )?;
    let old = sim_fleet.add_hosts(setup.old_hosts, setup.apps_per_host, "v1");
    for &host in &old {
        sim_fleet
            .add_apps(host, setup.apps_per_host)
            .map_err(|e| sim_error(&e))?;
    }
    let receivers = sim_fleet.add_hosts(setup.new_hosts, setup.new_host_capacity, "v2");
    let hosts = old.len() + receivers.len();
    let fleet = AllocFleet::new(
        sim_fleet.clone(),
        clock.clone(),
        AllocModel {
            safe_concurrent: world.safe_concurrent_starts,
            per_extra: world.failure_per_extra_start,
            max_probability: world.max_failure_probability,
            visible_after: Duration::from_secs(world.corruption_visible_after_s),
            restart_period: Duration::from_secs(setup.restart_period_s),
            limit: bw.as_ref().map(|b| b.allocator.clone()),
            seed,
        },
        hosts,
    )?;
    let started = clock.now();
    let horizon = started + Duration::from_secs(setup.horizon_s);
    let alerting = RefCell::new(Alerting::new(p, policy, receivers.len(), &clock)?);
    {
        let mut alerting = alerting.borrow_mut();
        for _ in 0..boot.dns_throttled {
            alerting.warning("dns-throttled", "Route53: rate exceeded".to_owned());
        }
    }
    let timeline = RefCell::new(FebTimeline::default());
    let drained_at: Cell<Option<Instant>> = Cell::new(None);
    let done_at: Cell<Option<Instant>> = Cell::new(None);
    let corrupted_after_drain = Cell::new(0u64);
    let learned = Cell::new(None);

    let migration = async {
        let result = match &bw {
            None => {
                let r = naive_drain(p, &fleet, &clock, &old, &receivers).await;
                drained_at.set(Some(clock.now()));
                r
            }
            Some(bw) => {
                let handle: Arc<dyn Fleet> = Arc::new(fleet.clone());
                match DrainController::with_clock(
                    bw.drain.clone(),
                    handle,
                    Box::new(MemoryJournal::new()),
                    clock.clone(),
                ) {
                    Ok(controller) => match controller
                        .named(InstanceName::new(DRAIN_NAME).unwrap_or_default())
                        .run(&old)
                        .await
                    {
                        Ok(report) => {
                            drained_at.set(Some(
                                started + report.last_host_drained_after.unwrap_or(report.elapsed),
                            ));
                            learned.set(report.start_limits.iter().map(|l| l.limit).max());
                            Ok(())
                        }
                        Err(e) => Err(sim_error(&e)),
                    },
                    Err(e) => Err(ReplayError::from(e)),
                }
            }
        };
        done_at.set(Some(clock.now()));
        corrupted_after_drain.set(fleet.stats().corrupted_now);
        result
    };

    // The platform's periodic restart of corrupted apps.
    let restarts = async {
        let tick = Duration::from_secs(10);
        while clock.now() < horizon {
            clock.sleep(tick).await;
            let due = fleet.due_restarts();
            if due.is_empty() {
                continue;
            }
            let apps = sim_fleet.apps().await.unwrap_or_default();
            let starts = due.into_iter().filter_map(|app| {
                apps.get(app.0 as usize)
                    .filter(|a| a.id == app)
                    .map(|a| fleet.migrate(app, a.host))
            });
            let _ = futures::future::join_all(starts).await;
        }
    };

    let monitor = async {
        let interval = Duration::from_secs(setup.disk_sample_s);
        let mut rng = fastrand::Rng::with_seed(seed ^ 0x0D15_C0DE);
        let mut last_starts = 0u64;
        loop {
            clock.sleep(interval).await;
            let now = clock.now();
            let stats = sim_fleet.stats();
            let alloc = fleet.stats();
            let mut alerting = alerting.borrow_mut();
            for (i, &host) in receivers.iter().enumerate() {
                let noise = gaussian(&mut rng) * world.disk_noise_percent;
                let disk = world.disk_base_percent
                    + world.disk_per_app_percent * f64::from(sim_fleet.load(host))
                    + noise;
                alerting.disk_sample(i, disk);
            }
            for _ in 0..fleet.take_newly_visible() {
                alerting.warning(
                    "app-unhealthy",
                    "app crashed: corrupted node_modules".to_owned(),
                );
            }
            alerting.poll(false);
            let mut tl = timeline.borrow_mut();
            tl.t.push(now.saturating_duration_since(started).as_secs_f64());
            let per_minute = 60.0 / interval.as_secs_f64();
            tl.starts_per_host_per_minute.push(
                stats.starts.saturating_sub(last_starts) as f64 * per_minute
                    / f64::from(setup.new_hosts.max(1)),
            );
            tl.failed_starts.push(alloc.corruptions);
            tl.corrupted_now.push(alloc.corrupted_now);
            tl.alerts_sent.push(alerting.pages_sent);
            last_starts = stats.starts;
            if now >= horizon {
                break;
            }
        }
        alerting.borrow_mut().poll(true);
    };

    let (result, (), ()) = sim::run(&clock, futures::future::join3(migration, restarts, monitor))
        .map_err(|e| ReplayError::Simulation(e.to_string()))?;
    result?;

    let stats = sim_fleet.stats();
    let alloc = fleet.stats();
    let secs = |at: Option<Instant>| {
        at.map_or(f64::NAN, |t| {
            t.saturating_duration_since(started).as_secs_f64()
        })
    };
    // Healthy once the drain was done and the last corrupted app was
    // started again; never if one is still corrupted at the end.
    let finish = if alloc.corrupted_now == 0 {
        done_at
            .get()
            .map(|d| fleet.last_repair().map_or(d, |r| r.max(d)))
    } else {
        None
    };
    let alerting = alerting.into_inner();
    Ok(Feb2019Outcome {
        failed_starts: alloc.corruptions,
        peak_starts_per_host: stats.peak_concurrent_starts,
        alerts_raw: alerting.raw_pages + alerting.raw_warnings,
        alerts_sent: alerting.pages_sent,
        warnings_raw: alerting.raw_warnings,
        warnings_sent: alerting.warnings_sent,
        finish_s: secs(finish),
        drain_s: secs(drained_at.get()),
        corrupted_after_drain: corrupted_after_drain.get(),
        repairs: alloc.repairs,
        alloc_shed: alloc.shed,
        peak_draining_hosts: stats.peak_draining_hosts,
        boot_s: boot.boot_s,
        dns_throttled: boot.dns_throttled,
        learned_start_limit: learned.get(),
        ratio_to_limit: FebRatios::default(),
        timeline: timeline.into_inner(),
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
