//! `incident-replay`: both incidents on a deterministic, seeded simulation
//! that drives the real library types, naive policies vs Breakwater's.

pub mod chart;
pub mod error;
pub mod events;
pub mod feb2019;
pub mod nov2019;
pub mod parallel;
pub mod table;

pub use error::ReplayError;

use serde::Serialize;

use feb2019::{Feb2019Params, Feb2019Report};
use nov2019::{Nov2019Params, Nov2019Report};

/// Which incidents to replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ScenarioChoice {
    /// November 2019 only.
    Nov2019,
    /// February 2019 only.
    Feb2019,
    /// Both (the default).
    #[default]
    All,
}

impl ScenarioChoice {
    fn includes_nov(self) -> bool {
        matches!(self, ScenarioChoice::Nov2019 | ScenarioChoice::All)
    }

    fn includes_feb(self) -> bool {
        matches!(self, ScenarioChoice::Feb2019 | ScenarioChoice::All)
    }
}

/// Everything a replay needs.
#[derive(Debug, Clone, Default)]
pub struct ReplayOptions {
    /// Which incidents.
    pub scenario: ScenarioChoice,
    /// Seed of every random choice; the same seed gives identical results.
    pub seed: u64,
    /// November 2019 model parameters.
    pub nov: Nov2019Params,
    /// February 2019 model parameters.
    pub feb: Feb2019Params,
    /// Also run the ablation (naive plus one mechanism at a time).
    pub ablation: bool,
}

impl ReplayOptions {
    /// Applies a `--set` override: `nov.<param>=<value>` or
    /// `feb.<param>=<value>` (values are JSON
    /// numbers/booleans/strings; bare words are taken as strings).
    pub fn set(&mut self, assignment: &str) -> Result<(), ReplayError> {
        let bad = |reason: &str| ReplayError::BadOverride {
            name: assignment.to_owned(),
            reason: reason.to_owned(),
        };
        let (key, value) = assignment
            .split_once('=')
            .ok_or_else(|| bad("expected SCENARIO.PARAM=VALUE, e.g. nov.servers=20"))?;
        let (scenario, field) = key
            .trim()
            .split_once('.')
            .ok_or_else(|| bad("the key must be scenario.param, e.g. nov.servers"))?;
        let value: serde_json::Value = serde_json::from_str(value.trim())
            .unwrap_or_else(|_| serde_json::Value::String(value.trim().to_owned()));
        match scenario {
            "nov" => self.nov = with_field(&self.nov, field, value, assignment)?,
            "feb" => self.feb = with_field(&self.feb, field, value, assignment)?,
            other => {
                return Err(bad(&format!(
                    "unknown scenario `{other}` (expected `nov` or `feb`)"
                )));
            }
        }
        Ok(())
    }

    /// Validates every parameter of the selected scenarios.
    pub fn validate(&self) -> Result<(), ReplayError> {
        if self.scenario.includes_nov() {
            self.nov.validate()?;
        }
        if self.scenario.includes_feb() {
            self.feb.validate()?;
        }
        Ok(())
    }

    /// Number of simulation runs [`run`] performs (for progress bars).
    pub fn runs(&self) -> usize {
        let mut n = 0;
        if self.scenario.includes_nov() {
            n += 2 + if self.ablation {
                nov2019::Mechanisms::ablations().len()
            } else {
                0
            };
        }
        if self.scenario.includes_feb() {
            n += 2;
        }
        n
    }
}

fn with_field<T: Serialize + serde::de::DeserializeOwned>(
    params: &T,
    field: &str,
    value: serde_json::Value,
    assignment: &str,
) -> Result<T, ReplayError> {
    let bad = |reason: String| ReplayError::BadOverride {
        name: assignment.to_owned(),
        reason,
    };
    let mut json = serde_json::to_value(params).map_err(|e| bad(e.to_string()))?;
    let map = json
        .as_object_mut()
        .ok_or_else(|| bad("parameters are not an object".to_owned()))?;
    if !map.contains_key(field) {
        let mut known: Vec<&str> = map.keys().map(String::as_str).collect();
        known.sort_unstable();
        return Err(bad(format!(
            "unknown parameter; known: {}",
            known.join(", ")
        )));
    }
    map.insert(field.to_owned(), value);
    serde_json::from_value(json).map_err(|e| bad(e.to_string()))
}

/// One scenario's results, serialized with its `name` first.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ScenarioReport {
    /// `nov-2019`.
    Nov2019(Box<Nov2019Report>),
    /// `feb-2019`.
    Feb2019(Box<Feb2019Report>),
}

/// The whole replay: `{"seed":N,"scenarios":[...]}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// The seed used.
    pub seed: u64,
    /// One entry per replayed scenario.
    pub scenarios: Vec<ScenarioReport>,
}

impl Report {
    /// The JSON document tools read.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// The side-by-side terminal tables.
    pub fn to_table(&self) -> String {
        self.scenarios
            .iter()
            .map(|s| match s {
                ScenarioReport::Nov2019(r) => table::nov2019(r, self.seed),
                ScenarioReport::Feb2019(r) => table::feb2019(r, self.seed),
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Writes one SVG chart per scenario into `dir`; returns their paths.
    pub fn write_charts(
        &self,
        dir: &std::path::Path,
    ) -> Result<Vec<std::path::PathBuf>, ReplayError> {
        std::fs::create_dir_all(dir).map_err(|source| ReplayError::Io {
            path: dir.display().to_string(),
            source,
        })?;
        self.scenarios
            .iter()
            .map(|s| match s {
                ScenarioReport::Nov2019(r) => nov2019::write_chart(r, dir),
                ScenarioReport::Feb2019(r) => feb2019::write_chart(r, dir),
            })
            .collect()
    }
}

/// Replays the selected scenarios. `progress` is called once per finished
/// simulation run.
pub fn run(
    options: &ReplayOptions,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<Report, ReplayError> {
    options.validate()?;
    let mut scenarios = Vec::new();
    if options.scenario.includes_nov() {
        let report = nov2019::run(&options.nov, options.seed, options.ablation, progress)?;
        scenarios.push(ScenarioReport::Nov2019(Box::new(report)));
    }
    if options.scenario.includes_feb() {
        let report = feb2019::run(&options.feb, options.seed, progress)?;
        scenarios.push(ScenarioReport::Feb2019(Box::new(report)));
    }
    Ok(Report {
        seed: options.seed,
        scenarios,
    })
}
