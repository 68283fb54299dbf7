//! November 2019: a bad release, a revert that did not help, and the retry
//! storm that kept the API servers down.
//!
//! See [`sim`] for the model and [`params::Nov2019Params`] for every
//! parameter and its calibration to the report. [`run`] replays, on the same
//! seed, four sides — the naive policy (the incident as it happened),
//! Breakwater's, the operators' fix of the report ([`Side::OperatorFix`]) and
//! the release through a staged `Rollout` ([`Side::Staged`], see [`fleet`]) —
//! plus an ablation (naive plus one mechanism at a time), and puts every
//! result next to the world's [`limits`].

pub mod fleet;
pub mod limits;
pub mod params;
pub mod policy;
pub mod report;
pub mod sim;
pub mod table;

use crate::replay::prometheus::{Recording, record};
use serde::Serialize;

pub use limits::Limits;
pub use params::Nov2019Params;
pub use policy::{Mechanisms, Side, SideConfig};
pub use report::{Nov2019Outcome, RatioToLimit, Timeline};

use crate::replay::error::ReplayError;
use crate::replay::metric::{Better, Metric, ratio_to_limit};
use sim::RunSpec;

/// One row of the ablation table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AblationRow {
    /// The mechanism added to the naive policy.
    pub mechanism: &'static str,
    /// What it achieved alone.
    #[serde(flatten)]
    pub outcome: Nov2019Outcome,
}

/// The November 2019 scenario's results.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Nov2019Report {
    /// Always `"nov-2019"`.
    pub name: &'static str,
    /// The best any policy could do in this world.
    pub limits: Limits,
    /// Naive proxies and servers: the incident as it happened.
    pub naive: Nov2019Outcome,
    /// Every Breakwater mechanism.
    pub breakwater: Nov2019Outcome,
    /// Naive, plus the operators' fix of the report.
    pub operator_fix: Nov2019Outcome,
    /// Breakwater, with the release going out through a staged `Rollout`.
    pub staged: Nov2019Outcome,
    /// Naive plus one mechanism at a time, on a run that ends
    /// `ablation_after_revert_s` after the revert; the first row is naive,
    /// the last Breakwater, on that same shorter run.
    pub ablation: Vec<AblationRow>,
    /// Breakwater's configuration as the runs used it (built from the setup
    /// and policies only).
    pub breakwater_config: SideConfig,
    /// The parameters used, flat (the names `--set nov.<name>` takes).
    #[serde(serialize_with = "flat_params")]
    pub params: Nov2019Params,
}

fn flat_params<S: serde::Serializer>(
    params: &Nov2019Params,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    let json = serde_json::to_value(params).map_err(serde::ser::Error::custom)?;
    crate::replay::flatten(&json).serialize(serializer)
}

impl Nov2019Report {
    /// The reported metrics, naive vs Breakwater, with their limits.
    pub fn metrics(&self) -> Vec<Metric> {
        let (n, b, l) = (&self.naive, &self.breakwater, &self.limits);
        vec![
            Metric {
                key: "amplification",
                better: Better::Lower,
                naive: Some(n.amplification),
                breakwater: Some(b.amplification),
                limit: Some(l.amplification),
            },
            Metric {
                key: "goodput",
                better: Better::Higher,
                naive: Some(n.goodput),
                breakwater: Some(b.goodput),
                limit: Some(l.goodput),
            },
            Metric {
                key: "recovery_s",
                better: Better::Lower,
                naive: n.recovery_s,
                breakwater: b.recovery_s,
                limit: l.recovery_s,
            },
        ]
    }

    /// The sides in table order: naive, Breakwater, operator fix, staged.
    pub fn sides(&self) -> [(&'static str, &Nov2019Outcome); 4] {
        [
            ("naive", &self.naive),
            ("breakwater", &self.breakwater),
            ("operator fix", &self.operator_fix),
            ("staged", &self.staged),
        ]
    }
}

/// Fills `outcome.ratio_to_limit` from `limits`.
fn with_ratios(mut outcome: Nov2019Outcome, limits: &Limits) -> Nov2019Outcome {
    outcome.ratio_to_limit = RatioToLimit {
        amplification: ratio_to_limit(
            Better::Lower,
            Some(outcome.amplification),
            Some(limits.amplification),
        ),
        goodput: ratio_to_limit(Better::Higher, Some(outcome.goodput), Some(limits.goodput)),
        recovery_s: ratio_to_limit(Better::Lower, outcome.recovery_s, limits.recovery_s),
    };
    outcome
}

/// Number of simulation runs [`run`] performs.
pub fn runs(with_ablation: bool) -> usize {
    4 + if with_ablation {
        Mechanisms::ablations().len() + 2
    } else {
        0
    }
}

/// Replays the scenario for every side; runs are independent and spread
/// over the available cores (the two long naive-policy runs first, so they
/// run side by side). `progress` is called once per finished run.
pub fn run(
    params: &Nov2019Params,
    seed: u64,
    with_ablation: bool,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<Nov2019Report, ReplayError> {
    run_recorded(params, seed, with_ablation, progress, None)
}

/// [`run`], recording the metrics of the Breakwater and staged sides (not the ablation) into
/// `recording`, on the thread that builds and drives their instances.
pub fn run_recorded(
    params: &Nov2019Params,
    seed: u64,
    with_ablation: bool,
    progress: &(dyn Fn(&str) + Sync),
    recording: Recording<'_>,
) -> Result<Nov2019Report, ReplayError> {
    params.validate()?;
    let full = params.setup.horizon_s;
    let spec = |side, mechanisms, horizon_s| RunSpec {
        side,
        mechanisms,
        horizon_s,
    };
    let mut runs: Vec<(&'static str, RunSpec)> = vec![
        ("naive", spec(Side::Naive, Mechanisms::NAIVE, full)),
        (
            "operator fix",
            spec(Side::OperatorFix, Mechanisms::NAIVE, full),
        ),
        (
            "breakwater",
            spec(Side::Breakwater, Mechanisms::BREAKWATER, full),
        ),
        ("staged", spec(Side::Staged, Mechanisms::BREAKWATER, full)),
    ];
    if with_ablation {
        let short = params.ablation_horizon_s();
        runs.push((
            "(none: naive)",
            spec(Side::Ablation, Mechanisms::NAIVE, short),
        ));
        for (name, m) in Mechanisms::ablations() {
            runs.push((name, spec(Side::Ablation, m, short)));
        }
        runs.push((
            "(all: breakwater)",
            spec(Side::Ablation, Mechanisms::BREAKWATER, short),
        ));
    }
    let results = crate::replay::parallel::map(&runs, |&(name, spec)| {
        let recording = recording.filter(|_| matches!(spec.side, Side::Breakwater | Side::Staged));
        let outcome = record(recording, || sim::run(params, spec, seed));
        progress(name);
        outcome
    });
    let mut outcomes = Vec::with_capacity(results.len());
    for r in results {
        outcomes.push(r?);
    }
    let limits = limits::limits(params);
    let mut it = outcomes.into_iter();
    let (Some(naive), Some(operator_fix), Some(breakwater), Some(staged)) =
        (it.next(), it.next(), it.next(), it.next())
    else {
        unreachable!("four sides are always run")
    };
    let ablation = runs
        .iter()
        .skip(4)
        .zip(it)
        .map(|(&(mechanism, _), outcome)| AblationRow { mechanism, outcome })
        .collect();
    Ok(Nov2019Report {
        name: "nov-2019",
        naive: with_ratios(naive, &limits),
        breakwater: with_ratios(breakwater, &limits),
        operator_fix: with_ratios(operator_fix, &limits),
        staged: with_ratios(staged, &limits),
        limits,
        ablation,
        breakwater_config: params.breakwater_config()?,
        params: params.clone(),
    })
}

impl Nov2019Params {
    /// Breakwater's configuration: built from the setup and the policies
    /// only (never the world).
    pub fn breakwater_config(&self) -> Result<SideConfig, ReplayError> {
        policy::side_config(
            &self.setup,
            &self.naive,
            &self.breakwater,
            Mechanisms::BREAKWATER,
        )
    }
}

/// Operator-fix line colour.
const OPERATOR_FIX: plotters::style::RGBColor = plotters::style::RGBColor(44, 160, 44);
/// Staged-rollout line colour.
const STAGED: plotters::style::RGBColor = plotters::style::RGBColor(255, 127, 14);

/// Keeps at most about 2000 points of a long series (every n-th).
fn thin(points: Vec<(f64, f64)>) -> Vec<(f64, f64)> {
    let step = points.len().div_ceil(2_000).max(1);
    points.into_iter().step_by(step).collect()
}

/// Draws goodput, load and servers up over time for every side into
/// `dir/nov-2019.svg`.
pub fn write_chart(
    report: &Nov2019Report,
    dir: &std::path::Path,
) -> Result<std::path::PathBuf, ReplayError> {
    use crate::replay::chart::{self, Panel, Series};
    let path = dir.join("nov-2019.svg");
    let p = &report.params.setup;
    let markers = vec![
        (p.deploy_at_s as f64, " bad deploy"),
        (p.revert_at_s as f64, " revert"),
    ];
    // Rolling windows of a minute on long runs, 10 s on short ones.
    let window = if p.horizon_s > 3_600 { 60 } else { 10 };
    let lines = |f: &dyn Fn(&Timeline) -> Vec<(f64, f64)>| -> Vec<Series<'static>> {
        let mut series = chart::both(
            thin(f(&report.naive.timeline)),
            thin(f(&report.breakwater.timeline)),
        );
        series.push(Series {
            label: "operator fix",
            color: OPERATOR_FIX,
            points: thin(f(&report.operator_fix.timeline)),
        });
        series.push(Series {
            label: "staged",
            color: STAGED,
            points: thin(f(&report.staged.timeline)),
        });
        series
    };
    let panels = [
        Panel {
            title: "Goodput: share of client requests answered in time (rolling)",
            y_label: "goodput",
            series: lines(&|t| chart::rolling_ratio(&t.succeeded, &t.offered, window)),
            markers: markers.clone(),
        },
        Panel {
            title: "Load on the API servers: attempts per second",
            y_label: "attempts/s",
            series: lines(&|t| chart::per_second(&t.server_attempts)),
            markers: markers.clone(),
        },
        Panel {
            title: "API servers up",
            y_label: "servers",
            series: lines(&|t| chart::per_second(&t.servers_up)),
            markers,
        },
    ];
    chart::draw(
        &path,
        "November 2019 replay: naive, breakwater, operator fix, staged",
        "seconds",
        &panels,
    )?;
    Ok(path)
}
