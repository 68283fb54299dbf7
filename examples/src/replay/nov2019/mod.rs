//! November 2019: a bad release, a revert that did not help, and the retry
//! storm that kept the API servers down.
//!
//! See [`sim`] for the model and [`params::Nov2019Params`] for every
//! parameter. [`run`] replays the naive policy, Breakwater's, and an
//! ablation (naive plus one mechanism at a time) on the same seed.

pub mod params;
pub mod policy;
pub mod report;
pub mod sim;
pub mod table;

use serde::Serialize;

pub use params::Nov2019Params;
pub use policy::Mechanisms;
pub use report::{Nov2019Outcome, Timeline};

use crate::replay::error::ReplayError;
use crate::replay::metric::{Better, Metric};

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
    /// Naive proxies and servers.
    pub naive: Nov2019Outcome,
    /// Every Breakwater mechanism.
    pub breakwater: Nov2019Outcome,
    /// Naive plus one mechanism at a time.
    pub ablation: Vec<AblationRow>,
    /// The parameters used.
    pub params: Nov2019Params,
}

impl Nov2019Report {
    /// The reported metrics, naive vs Breakwater, with their limits.
    pub fn metrics(&self) -> Vec<Metric> {
        let (n, b) = (&self.naive, &self.breakwater);
        vec![
            Metric {
                key: "amplification",
                better: Better::Lower,
                naive: Some(n.amplification),
                breakwater: Some(b.amplification),
                limit: Some(1.0),
            },
            Metric {
                key: "goodput",
                better: Better::Higher,
                naive: Some(n.goodput),
                breakwater: Some(b.goodput),
                limit: None,
            },
            Metric {
                key: "recovery_s",
                better: Better::Lower,
                naive: n.recovery_s,
                breakwater: b.recovery_s,
                limit: None,
            },
        ]
    }
}

/// Replays the scenario for every policy; runs are independent and spread
/// over the available cores. `progress` is called once per finished run.
pub fn run(
    params: &Nov2019Params,
    seed: u64,
    with_ablation: bool,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<Nov2019Report, ReplayError> {
    params.validate()?;
    let mut policies = vec![
        ("naive", Mechanisms::NAIVE),
        ("breakwater", Mechanisms::BREAKWATER),
    ];
    if with_ablation {
        policies.extend(Mechanisms::ablations());
    }
    let results = crate::replay::parallel::map(&policies, |&(name, mechanisms)| {
        let outcome = sim::run(params, mechanisms, seed);
        progress(name);
        outcome
    });
    let mut outcomes = Vec::with_capacity(results.len());
    for r in results {
        outcomes.push(r?);
    }
    let mut it = outcomes.into_iter();
    let (Some(naive), Some(breakwater)) = (it.next(), it.next()) else {
        unreachable!("two policies are always run")
    };
    let ablation = policies
        .iter()
        .skip(2)
        .zip(it)
        .map(|(&(mechanism, _), outcome)| AblationRow { mechanism, outcome })
        .collect();
    Ok(Nov2019Report {
        name: "nov-2019",
        naive,
        breakwater,
        ablation,
        params: params.clone(),
    })
}

/// Draws goodput, load and servers up over time for both policies into
/// `dir/nov-2019.svg`.
pub fn write_chart(
    report: &Nov2019Report,
    dir: &std::path::Path,
) -> Result<std::path::PathBuf, ReplayError> {
    use crate::replay::chart::{self, Panel};
    let path = dir.join("nov-2019.svg");
    let p = &report.params;
    let markers = vec![
        (p.deploy_at_s as f64, " bad deploy"),
        (p.revert_at_s as f64, " revert"),
    ];
    let (n, b) = (&report.naive.timeline, &report.breakwater.timeline);
    let panels = [
        Panel {
            title: "Goodput: share of client requests answered in time (10-s rolling)",
            y_label: "goodput",
            series: chart::both(
                chart::rolling_ratio(&n.succeeded, &n.offered, 10),
                chart::rolling_ratio(&b.succeeded, &b.offered, 10),
            ),
            markers: markers.clone(),
        },
        Panel {
            title: "Load on the API servers: attempts per second",
            y_label: "attempts/s",
            series: chart::both(
                chart::per_second(&n.server_attempts),
                chart::per_second(&b.server_attempts),
            ),
            markers: markers.clone(),
        },
        Panel {
            title: "API servers up",
            y_label: "servers",
            series: chart::both(
                chart::per_second(&n.servers_up),
                chart::per_second(&b.servers_up),
            ),
            markers,
        },
    ];
    chart::draw(
        &path,
        "November 2019 replay: naive vs Breakwater",
        "seconds",
        &panels,
    )?;
    Ok(path)
}
