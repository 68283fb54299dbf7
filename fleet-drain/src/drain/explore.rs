//! Exploration across receivers: while most receivers of a class start
//! apps at the class's trusted concurrency, a few *probe* receivers run at
//! higher levels at the same time, and failed levels are tried again after
//! a while (decay). Configured by [`StartExplorationConfig`].
//!
//! See [`StartExplorationConfig`] for why and how.

use std::time::Duration;

use resilience_core::ConfigError;
use serde::{Deserialize, Serialize};

/// Configuration of exploration across receivers; needs
/// `DrainConfig::adaptive_starts` and `DrainConfig::probation` (see also
/// the [drain module docs](crate::drain)). `Default`: probes at 2× and 4×
/// the class's level, 2 receivers per level, at most 10 % of a class's
/// receivers, 48 starts above the class's level per probe receiver per
/// cycle, a level trusted once 32 of its own starts passed probation, a
/// failed level raised by one every 10 minutes without a failure there.
/// Tuned with `examples/adaptive_drain.rs` (hidden safe concurrency 2 to
/// 16, 100 receivers).
///
/// # Why?
///
/// A corrupted start can stay silent for minutes (the February 2019
/// `node_modules` corruption surfaced through users): a level is known to
/// be safe only once its starts passed probation, so growing one level at
/// a time in time costs a probation per step. Exploring across receivers
/// tests several levels in one probation: while most receivers of a class
/// run at the class's level, a few probe receivers run higher; the class
/// jumps to the highest level at which `min_passed` starts passed
/// probation (starts *at* that level: a ramp's one lucky start per level
/// proves nothing), and a failure at a probe level caps the class below
/// it without cutting the class's level.
///
/// # What bounds the cost?
///
/// - At most `max_receiver_share` of a class's receivers probe (and at most
///   `receivers_per_level` per level; levels take turns, so a small class
///   still probes each);
/// - each probe receiver runs at most `starts_per_probe` starts above the
///   class's level per probe cycle (a probation plus a growth window,
///   restarted when the class is promoted or its failed level changes),
///   then runs at the class's level until the cycle ends;
/// - a probe level is below the lowest failed level: probes whose level
///   would reach it spread over the levels between the class's level and
///   the failed one instead (the k-th of n at k/n of the way), so the gap
///   closes by bisection rather than one level per cycle.
///
/// # Decay
///
/// The lowest level at which a start failed caps the class: neither the
/// class's level nor a probe reaches it, and starts that passed at or
/// above it stop counting as evidence. Every `retry_failed_after` without
/// a new failure at that level, the cap rises by one level, so the failed
/// level is probed again (by probes, a bounded cost); a new failure there
/// caps it again for another full period. `None`: a failed level stays
/// failed for the whole run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StartExplorationConfig {
    /// Probe levels, as factors of the trusted level (rounded down, at
    /// least one above it). 1 to 8 factors, each finite and > 1.
    pub level_factors: Vec<f64>,
    /// Probe receivers per level. >= 1.
    pub receivers_per_level: u32,
    /// At most this share of a class's receivers probe. In `(0, 1]`.
    pub max_receiver_share: f64,
    /// Starts above the trusted level each probe receiver may run per
    /// probe cycle. >= 1.
    pub starts_per_probe: u32,
    /// Starts at a level that must pass probation (none failed at or
    /// below it) before the class trusts that level. >= 1.
    pub min_passed: u32,
    /// Raise a failed level by one each time this passes without a new
    /// failure there (it may be probed again). `None`: never. > 0 if set.
    #[serde(with = "humantime_serde::option")]
    pub retry_failed_after: Option<Duration>,
}

impl Default for StartExplorationConfig {
    fn default() -> Self {
        StartExplorationConfig {
            level_factors: vec![2.0, 4.0],
            receivers_per_level: 2,
            max_receiver_share: 0.1,
            starts_per_probe: 48,
            min_passed: 32,
            retry_failed_after: Some(Duration::from_secs(600)),
        }
    }
}

impl StartExplorationConfig {
    /// Checks every field; the error names the first invalid one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.level_factors.is_empty() || self.level_factors.len() > 8 {
            return Err(ConfigError::new(
                "level_factors",
                format!("must list 1 to 8 factors, got {}", self.level_factors.len()),
            ));
        }
        if let Some(bad) = self
            .level_factors
            .iter()
            .find(|f| !(f.is_finite() && **f > 1.0))
        {
            return Err(ConfigError::new(
                "level_factors",
                format!("every factor must be finite and > 1, got {bad}"),
            ));
        }
        if self.receivers_per_level == 0 {
            return Err(ConfigError::new(
                "receivers_per_level",
                "must be at least 1",
            ));
        }
        if !(self.max_receiver_share.is_finite()
            && self.max_receiver_share > 0.0
            && self.max_receiver_share <= 1.0)
        {
            return Err(ConfigError::new(
                "max_receiver_share",
                format!("must be a share in (0, 1], got {}", self.max_receiver_share),
            ));
        }
        if self.starts_per_probe == 0 {
            return Err(ConfigError::new("starts_per_probe", "must be at least 1"));
        }
        if self.min_passed == 0 {
            return Err(ConfigError::new("min_passed", "must be at least 1"));
        }
        if self.retry_failed_after == Some(Duration::ZERO) {
            return Err(ConfigError::new(
                "retry_failed_after",
                "must be greater than zero (omit it to never retry a failed level)",
            ));
        }
        Ok(())
    }

    /// How many of `receivers` receivers probe.
    pub(super) fn probes(&self, receivers: usize) -> usize {
        let by_share = (receivers as f64 * self.max_receiver_share).floor() as usize;
        let wanted = self
            .level_factors
            .len()
            .saturating_mul(self.receivers_per_level as usize);
        wanted.min(by_share)
    }

    /// The level the `index`-th probe receiver (0-based) runs at, given the
    /// trusted level and the lowest failed level; `None` if it cannot run
    /// above the trusted level.
    pub(super) fn probe_level(
        &self,
        index: usize,
        trusted: u32,
        failed_at: Option<u32>,
        max_limit: u32,
    ) -> Option<u32> {
        // Levels take turns (the first receivers cover every level once):
        // a small class still probes each of them.
        let levels = self.level_factors.len();
        if index >= levels.saturating_mul(self.receivers_per_level as usize) {
            return None;
        }
        let rank = index % levels.max(1);
        let factor = *self.level_factors.get(rank)?;
        let mut level = ((f64::from(trusted) * factor).floor() as u32).max(trusted + 1);
        if let Some(failed) = failed_at
            && level >= failed
        {
            // Known to fail up there: spread the probes over the levels
            // between the trusted and the failed one instead (the k-th of
            // n at k/n of the way, the last just below the failed level),
            // so the gap closes by bisection, not one level per cycle.
            let gap = failed.saturating_sub(1).saturating_sub(trusted);
            let step = (u64::from(gap) * (rank as u64 + 1)).div_ceil(levels.max(1) as u64);
            level = trusted.saturating_add(u32::try_from(step).unwrap_or(u32::MAX));
        }
        level = level.min(max_limit);
        (level > trusted).then_some(level)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_are_bounded_by_share_and_levels_by_the_failed_level() {
        let config = StartExplorationConfig::default();
        assert_eq!(config.probes(100), 4);
        assert_eq!(config.probes(20), 2);
        assert_eq!(config.probes(9), 0);
        // Levels take turns: 2×, 4×, 2×, 4×.
        assert_eq!(config.probe_level(0, 4, None, 64), Some(8));
        assert_eq!(config.probe_level(1, 4, None, 64), Some(16));
        assert_eq!(config.probe_level(2, 4, None, 64), Some(8));
        assert_eq!(config.probe_level(3, 4, None, 64), Some(16));
        assert_eq!(config.probe_level(1, 4, Some(10), 64), Some(9));
        // Both levels known to fail: spread between 4 and the failed 8.
        assert_eq!(config.probe_level(0, 4, Some(8), 64), Some(6));
        assert_eq!(config.probe_level(1, 4, Some(8), 64), Some(7));
        assert_eq!(config.probe_level(2, 4, Some(6), 64), Some(5));
        assert_eq!(config.probe_level(1, 4, None, 12), Some(12));
        assert_eq!(config.probe_level(0, 4, Some(5), 64), None);
        assert_eq!(config.probe_level(4, 4, None, 64), None);
    }

    #[test]
    fn invalid_exploration_configs_name_the_field() {
        let cases = [
            (
                StartExplorationConfig {
                    level_factors: vec![],
                    ..StartExplorationConfig::default()
                },
                "level_factors",
            ),
            (
                StartExplorationConfig {
                    level_factors: vec![2.0, 1.0],
                    ..StartExplorationConfig::default()
                },
                "level_factors",
            ),
            (
                StartExplorationConfig {
                    receivers_per_level: 0,
                    ..StartExplorationConfig::default()
                },
                "receivers_per_level",
            ),
            (
                StartExplorationConfig {
                    max_receiver_share: 1.5,
                    ..StartExplorationConfig::default()
                },
                "max_receiver_share",
            ),
            (
                StartExplorationConfig {
                    starts_per_probe: 0,
                    ..StartExplorationConfig::default()
                },
                "starts_per_probe",
            ),
            (
                StartExplorationConfig {
                    min_passed: 0,
                    ..StartExplorationConfig::default()
                },
                "min_passed",
            ),
            (
                StartExplorationConfig {
                    retry_failed_after: Some(Duration::ZERO),
                    ..StartExplorationConfig::default()
                },
                "retry_failed_after",
            ),
        ];
        for (config, field) in cases {
            assert_eq!(config.validate().unwrap_err().field(), field);
        }
    }
}
