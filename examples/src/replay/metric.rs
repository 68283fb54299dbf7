//! One reported metric of a scenario, side by side and next to its
//! physical limit: what tables, the JSON `limits`/`ratio_to_limit` objects
//! and `--sweep` read.

use serde::Serialize;

/// Which direction is better for a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Better {
    /// Smaller is better (time, failures, alerts, amplification).
    Lower,
    /// Larger is better (goodput).
    Higher,
}

/// One metric of one scenario run.
///
/// A value of `None` means "never" for times (e.g. no recovery within the
/// run): it is worse than any finite value.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Metric {
    /// The JSON key of the metric in each side's object (`finish_s`).
    pub key: &'static str,
    /// Which direction is better.
    pub better: Better,
    /// The naive side's value.
    pub naive: Option<f64>,
    /// Breakwater's value.
    pub breakwater: Option<f64>,
    /// The best any policy could do in this world (fastest safe drain,
    /// goodput ceiling, recovery floor), where one is defined.
    pub limit: Option<f64>,
}

impl Metric {
    /// `value / limit` (for [`Better::Lower`]) or `limit / value` (for
    /// [`Better::Higher`]): 1.0 is the limit, larger is worse. `None` when
    /// there is no limit, the value is "never", or the division is undefined.
    pub fn ratio_to_limit(&self, value: Option<f64>) -> Option<f64> {
        ratio_to_limit(self.better, value, self.limit)
    }

    /// Whether Breakwater's value is at least as good as naive's (ties count
    /// as not worse; "never" loses to any finite value).
    pub fn breakwater_not_worse(&self) -> bool {
        !worse(self.better, self.breakwater, self.naive)
    }

    /// Breakwater's value over naive's (for [`Better::Lower`]) or naive's over
    /// Breakwater's (for [`Better::Higher`]): below 1.0 means Breakwater is
    /// better. `None` if either is "never" or the division is undefined.
    pub fn breakwater_vs_naive(&self) -> Option<f64> {
        let (b, n) = (self.breakwater?, self.naive?);
        let (num, den) = match self.better {
            Better::Lower => (b, n),
            Better::Higher => (n, b),
        };
        (den > 0.0 && num.is_finite() && den.is_finite()).then(|| num / den)
    }
}

/// See [`Metric::ratio_to_limit`].
pub fn ratio_to_limit(better: Better, value: Option<f64>, limit: Option<f64>) -> Option<f64> {
    let (v, l) = (value?, limit?);
    if !v.is_finite() || !l.is_finite() {
        return None;
    }
    match better {
        Better::Lower if l > 0.0 => Some(v / l),
        Better::Higher if v > 0.0 => Some(l / v),
        _ => None,
    }
}

/// Whether `a` is strictly worse than `b`.
fn worse(better: Better, a: Option<f64>, b: Option<f64>) -> bool {
    match (a, b) {
        (None, Some(_)) => true,
        (None | Some(_), None) => false,
        (Some(a), Some(b)) => match better {
            Better::Lower => a > b,
            Better::Higher => a < b,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metric(better: Better, naive: Option<f64>, breakwater: Option<f64>) -> Metric {
        Metric {
            key: "x",
            better,
            naive,
            breakwater,
            limit: Some(10.0),
        }
    }

    #[test]
    fn never_is_worse_than_any_time() {
        assert!(metric(Better::Lower, None, Some(1e9)).breakwater_not_worse());
        assert!(!metric(Better::Lower, Some(1.0), None).breakwater_not_worse());
        assert!(metric(Better::Lower, None, None).breakwater_not_worse());
    }

    #[test]
    fn ratios_are_one_at_the_limit_and_grow_when_worse() {
        let m = metric(Better::Lower, Some(30.0), Some(15.0));
        assert_eq!(m.ratio_to_limit(m.breakwater), Some(1.5));
        assert_eq!(m.breakwater_vs_naive(), Some(0.5));
        let g = Metric {
            limit: Some(0.9),
            ..metric(Better::Higher, Some(0.3), Some(0.6))
        };
        assert!((g.ratio_to_limit(g.breakwater).unwrap() - 1.5).abs() < 1e-12);
        assert_eq!(g.breakwater_vs_naive(), Some(0.5));
        assert!(!metric(Better::Higher, Some(0.6), Some(0.3)).breakwater_not_worse());
    }
}
