//! Median and spread of one metric over a cell's seeds.

use serde::Serialize;

use crate::replay::metric::{Better, Metric};

/// Median and range of values over seeds; `undefined` counts the seeds
/// whose value was "never" or had no ratio.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Spread {
    /// Median of the defined values (mean of the middle two for an even count).
    pub median: Option<f64>,
    /// Smallest defined value.
    pub min: Option<f64>,
    /// Largest defined value.
    pub max: Option<f64>,
    /// Seeds without a value.
    pub undefined: usize,
}

impl Spread {
    /// Summarises `values` (one per seed).
    pub fn of(values: impl IntoIterator<Item = Option<f64>>) -> Spread {
        let mut defined = Vec::new();
        let mut undefined = 0;
        for v in values {
            match v {
                Some(x) if x.is_finite() => defined.push(x),
                _ => undefined += 1,
            }
        }
        defined.sort_by(f64::total_cmp);
        let n = defined.len();
        let median = match n {
            0 => None,
            _ if n % 2 == 1 => defined.get(n / 2).copied(),
            _ => match (defined.get(n / 2 - 1), defined.get(n / 2)) {
                (Some(a), Some(b)) => Some((a + b) / 2.0),
                _ => None,
            },
        };
        Spread {
            median,
            min: defined.first().copied(),
            max: defined.last().copied(),
            undefined,
        }
    }
}

/// One metric over all seeds of one grid cell.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricSummary {
    /// The metric's JSON key.
    pub key: &'static str,
    /// Which direction is better.
    pub better: Better,
    /// The physical limit (it may depend on the cell's hidden parameters).
    pub limit: Spread,
    /// Naive's values ("never" counted in `undefined`).
    pub naive: Spread,
    /// Breakwater's values.
    pub breakwater: Spread,
    /// Breakwater / naive (below 1 is better; see `Metric::breakwater_vs_naive`).
    pub breakwater_vs_naive: Spread,
    /// Breakwater / limit (1 is the limit; see `Metric::ratio_to_limit`).
    pub ratio_to_limit: Spread,
    /// Seeds in which Breakwater was worse than naive on this metric.
    pub breakwater_worse: usize,
    /// Seeds run.
    pub runs: usize,
}

impl MetricSummary {
    /// Summarises the same metric from every seed's run (`runs` all have
    /// the metric's key; metrics are matched by key).
    pub fn of(key: &'static str, runs: &[&Metric]) -> Option<MetricSummary> {
        let first = runs.first()?;
        Some(MetricSummary {
            key,
            better: first.better,
            limit: Spread::of(runs.iter().map(|m| m.limit)),
            naive: Spread::of(runs.iter().map(|m| m.naive)),
            breakwater: Spread::of(runs.iter().map(|m| m.breakwater)),
            breakwater_vs_naive: Spread::of(runs.iter().map(|m| m.breakwater_vs_naive())),
            ratio_to_limit: Spread::of(runs.iter().map(|m| m.ratio_to_limit(m.breakwater))),
            breakwater_worse: runs.iter().filter(|m| !m.breakwater_not_worse()).count(),
            runs: runs.len(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_range_skip_undefined_values() {
        let s = Spread::of([Some(3.0), None, Some(1.0), Some(2.0)]);
        assert_eq!(s.median, Some(2.0));
        assert_eq!((s.min, s.max, s.undefined), (Some(1.0), Some(3.0), 1));
        let even = Spread::of([Some(4.0), Some(1.0)]);
        assert_eq!(even.median, Some(2.5));
        let none = Spread::of([None, Some(f64::NAN)]);
        assert_eq!((none.median, none.undefined), (None, 2));
    }

    #[test]
    fn worse_seeds_are_counted() {
        let m = |naive: f64, bw: f64| Metric {
            key: "finish_s",
            better: Better::Lower,
            naive: Some(naive),
            breakwater: Some(bw),
            limit: Some(10.0),
        };
        let runs = [m(100.0, 20.0), m(100.0, 200.0), m(50.0, 50.0)];
        let refs: Vec<&Metric> = runs.iter().collect();
        let s = MetricSummary::of("finish_s", &refs).unwrap();
        assert_eq!((s.breakwater_worse, s.runs), (1, 3));
        assert_eq!(s.ratio_to_limit.median, Some(5.0));
        assert_eq!(s.breakwater_vs_naive.max, Some(2.0));
    }
}
