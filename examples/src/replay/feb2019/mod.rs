//! February 2019: a fleet replaced by draining 30 hosts at a time, a surge
//! of app starts that corrupted `node_modules`, a flapping disk alert and a
//! rate-limited DNS API during boot.
//!
//! See [`sim`] for the model, [`alloc`] and [`dns`] for the two action
//! items modelled, [`policy`] for Breakwater's blind configuration and
//! [`params::Feb2019Params`] for every parameter and its mapping to the
//! report.

pub mod alloc;
pub mod dns;
pub mod params;
pub mod policy;
pub mod sim;
pub mod table;

use crate::replay::prometheus::{Recording, record};
use serde::Serialize;

pub use params::{Feb2019Params, FebBreakwater, FebNaive, FebSetup, FebWorld};
pub use policy::{BreakwaterPolicy, breakwater_policy};
pub use sim::{Feb2019Outcome, FebRatios, FebTimeline, Policy};

use crate::replay::error::ReplayError;
use crate::replay::metric::{Better, Metric, ratio_to_limit};

/// The best any policy could do in this world (reads the hidden world).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct FebLimits {
    /// Fastest safe drain: ⌈apps per receiver / S⌉ × start time, seconds.
    pub drain_s: f64,
    /// Every app healthy: the same (a safe drain corrupts nothing).
    pub finish_s: f64,
    /// Corrupted starts of a safe drain.
    pub failed_starts: u64,
}

/// The February 2019 scenario's results.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Feb2019Report {
    /// Always `"feb-2019"`.
    pub name: &'static str,
    /// The physical limits of this world.
    pub limits: FebLimits,
    /// The incident's procedure: 30 hosts per batch every 30 minutes, raw alerts.
    pub naive: Feb2019Outcome,
    /// Breakwater's fixed policy: adaptive, probation, bounded allocator
    /// and DNS calls; hysteresis and aggregated alerts.
    pub breakwater: Feb2019Outcome,
    /// The parameters used.
    pub params: Feb2019Params,
}

impl Feb2019Report {
    /// The reported metrics, naive vs Breakwater, with their limits.
    pub fn metrics(&self) -> Vec<Metric> {
        let (n, b) = (&self.naive, &self.breakwater);
        let finite = |v: f64| v.is_finite().then_some(v);
        let count = |v: u64| Some(v as f64);
        vec![
            Metric {
                key: "failed_starts",
                better: Better::Lower,
                naive: count(n.failed_starts),
                breakwater: count(b.failed_starts),
                limit: Some(self.limits.failed_starts as f64),
            },
            Metric {
                key: "peak_starts_per_host",
                better: Better::Lower,
                naive: Some(f64::from(n.peak_starts_per_host)),
                breakwater: Some(f64::from(b.peak_starts_per_host)),
                limit: None,
            },
            Metric {
                key: "alerts_sent",
                better: Better::Lower,
                naive: count(n.alerts_sent),
                breakwater: count(b.alerts_sent),
                limit: None,
            },
            Metric {
                key: "warnings_sent",
                better: Better::Lower,
                naive: count(n.warnings_sent),
                breakwater: count(b.warnings_sent),
                limit: None,
            },
            Metric {
                key: "drain_s",
                better: Better::Lower,
                naive: finite(n.drain_s),
                breakwater: finite(b.drain_s),
                limit: Some(self.limits.drain_s),
            },
            Metric {
                key: "finish_s",
                better: Better::Lower,
                naive: finite(n.finish_s),
                breakwater: finite(b.finish_s),
                limit: Some(self.limits.finish_s),
            },
        ]
    }
}

fn with_ratios(mut outcome: Feb2019Outcome, limits: &FebLimits) -> Feb2019Outcome {
    let finite = |v: f64| v.is_finite().then_some(v);
    outcome.ratio_to_limit = FebRatios {
        drain_s: ratio_to_limit(Better::Lower, finite(outcome.drain_s), Some(limits.drain_s)),
        finish_s: ratio_to_limit(
            Better::Lower,
            finite(outcome.finish_s),
            Some(limits.finish_s),
        ),
    };
    outcome
}

/// Replays both policies (in parallel). `progress` is called once per run.
pub fn run(
    params: &Feb2019Params,
    seed: u64,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<Feb2019Report, ReplayError> {
    run_recorded(params, seed, progress, None)
}

/// [`run`], recording the Breakwater policy's metrics into `recording` (on the thread that
/// builds and drives its instances).
pub fn run_recorded(
    params: &Feb2019Params,
    seed: u64,
    progress: &(dyn Fn(&str) + Sync),
    recording: Recording<'_>,
) -> Result<Feb2019Report, ReplayError> {
    params.validate()?;
    let policies = [("naive", Policy::Naive), ("breakwater", Policy::Breakwater)];
    let results = crate::replay::parallel::map(&policies, |&(name, policy)| {
        let recording = recording.filter(|_| policy == Policy::Breakwater);
        let outcome = record(recording, || sim::run(params, policy, seed));
        progress(name);
        outcome
    });
    let mut it = results.into_iter();
    let (Some(naive), Some(breakwater)) = (it.next(), it.next()) else {
        return Err(ReplayError::Simulation(
            "a policy run is missing".to_owned(),
        ));
    };
    let limit = params.fastest_safe_drain_s();
    let limits = FebLimits {
        drain_s: limit,
        finish_s: limit,
        failed_starts: 0,
    };
    Ok(Feb2019Report {
        name: "feb-2019",
        limits,
        naive: with_ratios(naive?, &limits),
        breakwater: with_ratios(breakwater?, &limits),
        params: params.clone(),
    })
}

/// Draws app starts per host, corrupted starts and apps, and pages over time for both
/// policies into `dir/feb-2019.svg`.
pub fn write_chart(
    report: &Feb2019Report,
    dir: &std::path::Path,
) -> Result<std::path::PathBuf, ReplayError> {
    use crate::replay::chart::{self, BREAKWATER, NAIVE, Panel, Series};
    let path = dir.join("feb-2019.svg");
    let minutes = |t: &[f64]| t.iter().map(|s| s / 60.0).collect::<Vec<_>>();
    let pts = |t: &[f64], v: &[f64]| {
        minutes(t)
            .into_iter()
            .zip(v.iter().copied())
            .collect::<Vec<_>>()
    };
    let pts_u = |t: &[f64], v: &[u64]| {
        minutes(t)
            .into_iter()
            .zip(v.iter().map(|&x| x as f64))
            .collect::<Vec<_>>()
    };
    let (n, b) = (&report.naive.timeline, &report.breakwater.timeline);
    let limit_min = report.limits.drain_s / 60.0;
    let panels = [
        Panel {
            title: "App starts per receiving host per minute (mean over receivers)",
            y_label: "starts/host/min",
            series: chart::both(
                pts(&n.t, &n.starts_per_host_per_minute),
                pts(&b.t, &b.starts_per_host_per_minute),
            ),
            markers: vec![(limit_min, "fastest safe drain")],
        },
        Panel {
            title: "Corrupted (node_modules) app starts, cumulative",
            y_label: "corrupted starts",
            series: chart::both(pts_u(&n.t, &n.failed_starts), pts_u(&b.t, &b.failed_starts)),
            markers: vec![(limit_min, "fastest safe drain")],
        },
        Panel {
            title: "Apps corrupted right now (until restarted)",
            y_label: "corrupted apps",
            series: chart::both(pts_u(&n.t, &n.corrupted_now), pts_u(&b.t, &b.corrupted_now)),
            markers: vec![],
        },
        Panel {
            title: "Pages sent to the on-call, cumulative (same window)",
            y_label: "alerts",
            series: vec![
                Series {
                    label: "naive (raw monitors)",
                    color: NAIVE,
                    points: pts_u(&n.t, &n.alerts_sent),
                },
                Series {
                    label: "breakwater (hysteresis + aggregation)",
                    color: BREAKWATER,
                    points: pts_u(&b.t, &b.alerts_sent),
                },
            ],
            markers: vec![],
        },
    ];
    chart::draw(
        &path,
        "February 2019 replay: naive vs Breakwater",
        "minutes",
        &panels,
    )?;
    Ok(path)
}
