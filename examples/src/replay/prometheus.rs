//! `--metrics-out`: the Breakwater side's metrics, in Prometheus text format.
//!
//! A [`MetricsCapture`] owns a Prometheus recorder that is never installed globally: the
//! replay puts it in scope (`metrics::with_local_recorder`) around each Breakwater-side run,
//! on the worker thread that builds and drives that run's instances (see
//! [`parallel`](super::parallel)), so the naive and ablation runs record nothing. Instances
//! register their handles when they first run, which is inside that scope.
//!
//! The rendered text is deterministic for a given seed: the simulation runs on simulated
//! time, every series is a counter or a gauge of simulated decisions, and [`normalize`]
//! sorts metric families and series (the exporter renders from hash maps).
//!
//! ```
//! use breakwater_examples::replay::prometheus::{MetricsCapture, record};
//!
//! let capture = MetricsCapture::new();
//! record(capture.recording(), || {
//!     metrics::counter!("breakwater_example_total", "name" => "demo").increment(2);
//! });
//! assert!(capture.render().contains("breakwater_example_total{name=\"demo\"} 2"));
//! ```

use std::fmt;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

/// Where a run records its metrics: `None` records nothing (no recorder in scope).
pub type Recording<'a> = Option<&'a (dyn metrics::Recorder + Sync)>;

/// Runs `f` with `recording` as the current thread's recorder (if any).
pub fn record<T>(recording: Recording<'_>, f: impl FnOnce() -> T) -> T {
    match recording {
        Some(recorder) => metrics::with_local_recorder(recorder, f),
        None => f(),
    }
}

/// Builds an instance with no recorder in scope, then names it (in the caller's scope).
///
/// resilience-core instances register their metric handles when built and again when
/// renamed with `named`; the seeded constructors the replay needs have no `Named` variant, so
/// building them unrecorded keeps a nameless (`name=""`) copy of every series out of the file.
pub fn build_named<T>(
    name: &str,
    build: impl FnOnce() -> Result<T, resilience_core::ConfigError>,
    named: impl FnOnce(T, resilience_core::InstanceName) -> T,
) -> Result<T, resilience_core::ConfigError> {
    let instance = metrics::with_local_recorder(&metrics::NoopRecorder, build)?;
    let name =
        resilience_core::InstanceName::new(name).map_err(resilience_core::ConfigError::from)?;
    Ok(named(instance, name))
}

/// A local Prometheus recorder and its render handle.
pub struct MetricsCapture {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
}

impl fmt::Debug for MetricsCapture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricsCapture").finish_non_exhaustive()
    }
}

impl Default for MetricsCapture {
    fn default() -> Self {
        Self::new()
    }
}

impl MetricsCapture {
    /// A recorder (`PrometheusBuilder::new().build_recorder()`, no HTTP listener).
    pub fn new() -> Self {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        Self { recorder, handle }
    }

    /// The recorder, for [`record`] and the replay's `run_recorded` functions.
    pub fn recording(&self) -> Recording<'_> {
        Some(&self.recorder)
    }

    /// The final values in Prometheus text format, families and series sorted.
    pub fn render(&self) -> String {
        normalize(&self.handle.render())
    }
}

/// Sorts Prometheus text: metric families by name (each keeping its `# HELP`/`# TYPE`
/// lines first), series within a family by their text; drops blank lines.
pub fn normalize(text: &str) -> String {
    // (family name, comment lines, series lines)
    let mut families: Vec<(String, Vec<&str>, Vec<&str>)> = Vec::new();
    let mut in_series = false;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let comment = line.starts_with('#');
        // A comment after series (or the first line) opens a new family.
        if families.is_empty() || (comment && in_series) {
            families.push((String::new(), Vec::new(), Vec::new()));
        }
        in_series = !comment;
        let Some((family, comments, series)) = families.last_mut() else {
            continue;
        };
        if comment {
            // `# TYPE name kind` / `# HELP name text`
            if let Some(name) = line.split_whitespace().nth(2)
                && family.is_empty()
            {
                name.clone_into(family);
            }
            comments.push(line);
        } else {
            if family.is_empty() {
                let end = line.find(['{', ' ']).unwrap_or(line.len());
                line.get(..end).unwrap_or(line).clone_into(family);
            }
            series.push(line);
        }
    }
    families.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out = String::new();
    for (_, comments, mut series) in families {
        series.sort_unstable();
        for line in comments.into_iter().chain(series) {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_sorts_families_and_series() {
        let text = "# TYPE b counter\nb{name=\"y\"} 1\nb{name=\"x\"} 2\n\n# TYPE a gauge\na 3\n";
        assert_eq!(
            normalize(text),
            "# TYPE a gauge\na 3\n# TYPE b counter\nb{name=\"x\"} 2\nb{name=\"y\"} 1\n"
        );
    }

    #[test]
    fn only_the_recorded_scope_reaches_the_capture() {
        let capture = MetricsCapture::new();
        metrics::counter!("outside_total").increment(1);
        record(capture.recording(), || {
            metrics::gauge!("inside", "name" => "n").set(4.0);
        });
        let text = capture.render();
        assert!(text.contains("inside{name=\"n\"} 4"), "{text}");
        assert!(!text.contains("outside_total"), "{text}");
    }
}
