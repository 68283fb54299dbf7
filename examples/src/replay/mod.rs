//! `incident-replay`: both incidents on a deterministic, seeded simulation
//! that drives the real library types, naive policies vs Breakwater's.

pub mod chart;
pub mod error;
pub mod events;
pub mod feb2019;
pub mod format;
pub mod metric;
pub mod nov2019;
pub mod parallel;
pub mod prometheus;
pub mod sweep;

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
            n += nov2019::runs(self.ablation);
        }
        if self.scenario.includes_feb() {
            n += 2;
        }
        n
    }
}

/// Sets `field` of `params`: either a top-level field, a field of one of its
/// groups (`world`, `breakwater`, ...) named by its own unique name
/// (`safe_concurrent_starts`), or a dotted path (`world.safe_concurrent_starts`).
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
    let known = flat_keys(&json);
    let path = resolve(&json, field)
        .ok_or_else(|| bad(format!("unknown parameter; known: {}", known.join(", "))))?;
    let mut slot = &mut json;
    for part in &path {
        slot = slot
            .get_mut(part.as_str())
            .ok_or_else(|| bad("parameter vanished while setting it".to_owned()))?;
    }
    *slot = value;
    serde_json::from_value(json).map_err(|e| bad(e.to_string()))
}

/// The path of `field` in a parameter document: a dotted path as given, or
/// the one group holding a leaf of that name.
fn resolve(json: &serde_json::Value, field: &str) -> Option<Vec<String>> {
    let map = json.as_object()?;
    if field.contains('.') {
        let path: Vec<String> = field.split('.').map(str::to_owned).collect();
        let mut at = json;
        for part in &path {
            at = at.get(part.as_str())?;
        }
        return (!at.is_object()).then_some(path);
    }
    if let Some(v) = map.get(field) {
        return (!v.is_object()).then(|| vec![field.to_owned()]);
    }
    let mut found = map
        .iter()
        .filter(|(_, group)| group.get(field).is_some_and(|v| !v.is_object()))
        .map(|(group, _)| vec![group.clone(), field.to_owned()]);
    let first = found.next()?;
    found.next().is_none().then_some(first)
}

/// Every settable name of a parameter document, sorted: leaves at the top
/// level and leaves of each group.
fn flat_keys(json: &serde_json::Value) -> Vec<String> {
    let mut keys: Vec<String> = flatten(json).keys().cloned().collect();
    keys.sort_unstable();
    keys
}

/// A parameter document with its groups lifted: `{"world":{"a":1},"b":2}`
/// becomes `{"a":1,"b":2}` (what `--list-params` prints and `--set` takes).
pub fn flatten(json: &serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    let mut flat = serde_json::Map::new();
    if let Some(map) = json.as_object() {
        for (key, value) in map {
            match value.as_object() {
                Some(group) => {
                    for (leaf, v) in group {
                        flat.insert(leaf.clone(), v.clone());
                    }
                }
                None => {
                    flat.insert(key.clone(), value.clone());
                }
            }
        }
    }
    flat
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

impl ScenarioReport {
    /// `nov-2019` or `feb-2019`.
    pub fn name(&self) -> &'static str {
        match self {
            ScenarioReport::Nov2019(r) => r.name,
            ScenarioReport::Feb2019(r) => r.name,
        }
    }

    /// Every reported metric of the scenario, naive vs Breakwater, with its
    /// physical limit where one is defined.
    pub fn metrics(&self) -> Vec<metric::Metric> {
        match self {
            ScenarioReport::Nov2019(r) => r.metrics(),
            ScenarioReport::Feb2019(r) => r.metrics(),
        }
    }
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
                ScenarioReport::Nov2019(r) => nov2019::table::render(r, self.seed),
                ScenarioReport::Feb2019(r) => feb2019::table::render(r, self.seed),
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
    run_recorded(options, progress, None)
}

/// [`run`], recording the metrics of the Breakwater side of every scenario into `recording`
/// (see [`prometheus::MetricsCapture`]).
pub fn run_recorded(
    options: &ReplayOptions,
    progress: &(dyn Fn(&str) + Sync),
    recording: prometheus::Recording<'_>,
) -> Result<Report, ReplayError> {
    options.validate()?;
    let mut scenarios = Vec::new();
    if options.scenario.includes_nov() {
        let report = nov2019::run_recorded(
            &options.nov,
            options.seed,
            options.ablation,
            progress,
            recording,
        )?;
        scenarios.push(ScenarioReport::Nov2019(Box::new(report)));
    }
    if options.scenario.includes_feb() {
        let report = feb2019::run_recorded(&options.feb, options.seed, progress, recording)?;
        scenarios.push(ScenarioReport::Feb2019(Box::new(report)));
    }
    Ok(Report {
        seed: options.seed,
        scenarios,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
    struct Group {
        hidden: u32,
    }

    #[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
    struct Params {
        top: u32,
        world: Group,
        other: Group,
        only_here: OnlyHere,
    }

    #[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
    struct OnlyHere {
        unique: f64,
    }

    fn params() -> Params {
        Params {
            top: 1,
            world: Group { hidden: 2 },
            other: Group { hidden: 3 },
            only_here: OnlyHere { unique: 0.5 },
        }
    }

    #[test]
    fn set_reaches_top_level_grouped_and_dotted_fields() {
        let p = with_field(&params(), "top", 9.into(), "x").unwrap();
        assert_eq!(p.top, 9);
        let p = with_field(&params(), "unique", 0.25.into(), "x").unwrap();
        assert!((p.only_here.unique - 0.25).abs() < f64::EPSILON);
        let p = with_field(&params(), "world.hidden", 7.into(), "x").unwrap();
        assert_eq!((p.world.hidden, p.other.hidden), (7, 3));
    }

    #[test]
    fn an_ambiguous_or_unknown_name_is_refused_with_the_known_names() {
        let err = with_field(&params(), "hidden", 7.into(), "x.hidden=7").unwrap_err();
        assert!(err.to_string().contains("unknown parameter"), "{err}");
        let err = with_field(&params(), "nope", 7.into(), "x.nope=7").unwrap_err();
        assert!(err.to_string().contains("top"), "{err}");
        let err = with_field(&params(), "world", 7.into(), "x.world=7").unwrap_err();
        assert!(err.to_string().contains("unknown parameter"), "{err}");
    }
}
