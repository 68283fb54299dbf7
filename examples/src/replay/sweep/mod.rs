//! `--sweep`: the replay over a grid of hidden parameters and several
//! seeds.
//!
//! # Why sweep?
//!
//! A policy that beats a baseline at one point of a model may only have been
//! tuned to that point. A sweep runs the same fixed policies over a grid of
//! the model's hidden truths (`feb.safe_concurrent_starts` ×
//! `feb.failure_per_extra_start`, `nov.client_rps` × `nov.cold_service_factor`,
//! ...) and several seeds per cell, and reports for every metric the median
//! and spread of Breakwater / naive and of Breakwater / the physical limit,
//! as a table, JSON and heatmaps.
//!
//! ```
//! use breakwater_examples::replay::sweep::{self, SweepOptions};
//! use breakwater_examples::replay::{ReplayOptions, ScenarioChoice};
//!
//! let mut base = ReplayOptions::default();
//! for small in ["nov.horizon_s=120", "nov.deploy_at_s=20", "nov.revert_at_s=60", "nov.client_rps=100"] {
//!     base.set(small)?;
//! }
//! let options = SweepOptions {
//!     base,
//!     axes: sweep::parse(&["nov.client_rps=80,120".to_owned()])?,
//!     seeds: vec![1, 2],
//! };
//! let report = sweep::run(&options, &|_| {})?;
//! assert_eq!(report.scenario, "nov-2019");
//! assert_eq!(report.cells.len(), 2);
//! assert!(report.cells.iter().all(|c| c.metrics.iter().all(|m| m.runs == 2)));
//! # Ok::<(), breakwater_examples::replay::ReplayError>(())
//! ```

mod heatmap;
mod spec;
mod summary;
mod table;

use serde::Serialize;

pub use spec::{Axis, cells, parse};
pub use summary::{MetricSummary, Spread};

use crate::replay::metric::Metric;
use crate::replay::{ReplayError, ReplayOptions, ScenarioChoice};

/// What a sweep runs.
#[derive(Debug, Clone)]
pub struct SweepOptions {
    /// The options every cell starts from (its `--set` overrides included);
    /// the scenario is narrowed to the one the axes name, and the ablation
    /// is not run.
    pub base: ReplayOptions,
    /// The grid's axes (see [`parse`]).
    pub axes: Vec<Axis>,
    /// Seeds run in every cell.
    pub seeds: Vec<u64>,
}

impl SweepOptions {
    /// Simulation runs the sweep performs (for progress bars): two or more
    /// per cell and seed, counted as one.
    pub fn runs(&self) -> usize {
        cells(&self.axes).len() * self.seeds.len()
    }

    fn scenario(&self) -> Result<(ScenarioChoice, &'static str), ReplayError> {
        match self.axes.first().map(Axis::scenario) {
            Some("nov") => Ok((ScenarioChoice::Nov2019, "nov-2019")),
            Some("feb") => Ok((ScenarioChoice::Feb2019, "feb-2019")),
            Some(other) => Err(ReplayError::BadOverride {
                name: other.to_owned(),
                reason: "unknown scenario (expected `nov` or `feb`)".to_owned(),
            }),
            None => Err(ReplayError::BadOverride {
                name: "--sweep".to_owned(),
                reason: "no parameter to sweep".to_owned(),
            }),
        }
    }

    /// The options of one cell and seed.
    fn cell_options(&self, cell: &[usize], seed: u64) -> Result<ReplayOptions, ReplayError> {
        let (scenario, _) = self.scenario()?;
        let mut options = ReplayOptions {
            scenario,
            seed,
            ablation: false,
            ..self.base.clone()
        };
        for (axis, &i) in self.axes.iter().zip(cell) {
            let value = axis.values.get(i).ok_or_else(|| ReplayError::BadOverride {
                name: axis.param.clone(),
                reason: "value index out of range".to_owned(),
            })?;
            options.set(&format!("{}={value}", axis.param))?;
        }
        options.validate()?;
        Ok(options)
    }
}

/// One cell of the grid: its parameter values and every metric's summary.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cell {
    /// One value per axis, as written.
    pub values: Vec<String>,
    /// Every metric of the scenario over the cell's seeds.
    pub metrics: Vec<MetricSummary>,
}

/// An axis as reported.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AxisReport {
    /// `scenario.param`.
    pub param: String,
    /// Its values.
    pub values: Vec<String>,
}

/// The whole sweep: `{"sweep":{"scenario":..,"axes":[..],"seeds":[..],"cells":[..]}}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SweepReport {
    /// `nov-2019` or `feb-2019`.
    pub scenario: &'static str,
    /// The grid's axes.
    pub axes: Vec<AxisReport>,
    /// Seeds run in every cell.
    pub seeds: Vec<u64>,
    /// Every cell, first axis slowest.
    pub cells: Vec<Cell>,
}

/// The worst cell of one metric.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Worst {
    /// The metric's key.
    pub key: &'static str,
    /// The cell with the largest median Breakwater / naive, and that median.
    pub vs_naive: Option<(Vec<String>, f64)>,
    /// The cell with the largest median Breakwater / limit, and that median.
    pub vs_limit: Option<(Vec<String>, f64)>,
    /// Cells in which Breakwater was worse than naive in at least one seed.
    pub cells_worse_than_naive: Vec<Vec<String>>,
}

impl SweepReport {
    /// The JSON document (`--sweep ... --json`).
    pub fn to_json(&self) -> String {
        #[derive(Serialize)]
        struct Doc<'a> {
            sweep: &'a SweepReport,
            worst: Vec<Worst>,
        }
        serde_json::to_string_pretty(&Doc {
            sweep: self,
            worst: self.worst(),
        })
        .unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// The terminal table.
    pub fn to_table(&self) -> String {
        table::render(self)
    }

    /// Per metric, the worst cells against naive and against the limit.
    pub fn worst(&self) -> Vec<Worst> {
        let keys: Vec<&'static str> = self
            .cells
            .first()
            .map(|c| c.metrics.iter().map(|m| m.key).collect())
            .unwrap_or_default();
        keys.into_iter()
            .map(|key| {
                let of = |cell: &'_ Cell| cell.metrics.iter().find(|m| m.key == key).cloned();
                let max_by = |pick: fn(&MetricSummary) -> Option<f64>| {
                    self.cells
                        .iter()
                        .filter_map(|c| Some((c.values.clone(), pick(&of(c)?)?)))
                        .max_by(|a, b| a.1.total_cmp(&b.1))
                };
                Worst {
                    key,
                    vs_naive: max_by(|m| m.breakwater_vs_naive.median),
                    vs_limit: max_by(|m| m.ratio_to_limit.median),
                    cells_worse_than_naive: self
                        .cells
                        .iter()
                        .filter(|c| of(c).is_some_and(|m| m.breakwater_worse > 0))
                        .map(|c| c.values.clone())
                        .collect(),
                }
            })
            .collect()
    }

    /// Writes `dir/sweep-<scenario>.svg`: per metric, a heatmap of the
    /// median Breakwater / naive and one of Breakwater / limit.
    pub fn write_heatmap(&self, dir: &std::path::Path) -> Result<std::path::PathBuf, ReplayError> {
        std::fs::create_dir_all(dir).map_err(|source| ReplayError::Io {
            path: dir.display().to_string(),
            source,
        })?;
        let path = dir.join(format!("sweep-{}.svg", self.scenario));
        heatmap::draw(self, &path)?;
        Ok(path)
    }
}

/// Runs every cell of the grid for every seed (spread over the cores);
/// `progress` is called once per finished cell and seed.
pub fn run(
    options: &SweepOptions,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<SweepReport, ReplayError> {
    let (_, scenario) = options.scenario()?;
    if options.seeds.is_empty() {
        return Err(ReplayError::BadOverride {
            name: "--sweep-seeds".to_owned(),
            reason: "at least one seed is needed".to_owned(),
        });
    }
    let grid = cells(&options.axes);
    let mut items = Vec::with_capacity(grid.len() * options.seeds.len());
    for (c, cell) in grid.iter().enumerate() {
        for &seed in &options.seeds {
            // Validate every cell before the first run: a bad value fails fast.
            items.push((c, options.cell_options(cell, seed)?));
        }
    }
    let results = crate::replay::parallel::map(&items, |(_, cell_options)| {
        let report = crate::replay::run(cell_options, &|_| {});
        progress(scenario);
        report
    });
    let mut per_cell: Vec<Vec<Vec<Metric>>> = vec![Vec::new(); grid.len()];
    for ((c, _), report) in items.iter().zip(results) {
        let report = report?;
        let metrics = report
            .scenarios
            .first()
            .map(crate::replay::ScenarioReport::metrics)
            .unwrap_or_default();
        if let Some(runs) = per_cell.get_mut(*c) {
            runs.push(metrics);
        }
    }
    let cells = grid
        .iter()
        .zip(per_cell)
        .map(|(cell, runs)| Cell {
            values: options
                .axes
                .iter()
                .zip(cell)
                .filter_map(|(axis, &i)| axis.values.get(i).cloned())
                .collect(),
            metrics: summarise(&runs),
        })
        .collect();
    Ok(SweepReport {
        scenario,
        axes: options
            .axes
            .iter()
            .map(|a| AxisReport {
                param: a.param.clone(),
                values: a.values.clone(),
            })
            .collect(),
        seeds: options.seeds.clone(),
        cells,
    })
}

/// Summarises each metric (by key, in the first run's order) over `runs`.
fn summarise(runs: &[Vec<Metric>]) -> Vec<MetricSummary> {
    let Some(first) = runs.first() else {
        return Vec::new();
    };
    first
        .iter()
        .filter_map(|m| {
            let same: Vec<&Metric> = runs
                .iter()
                .filter_map(|r| r.iter().find(|x| x.key == m.key))
                .collect();
            MetricSummary::of(m.key, &same)
        })
        .collect()
}
