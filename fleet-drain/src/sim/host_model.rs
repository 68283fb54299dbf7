//! The host model: how likely an app start fails given how many starts run
//! at once on its host (the failure curve of the [module docs](super)).

use std::time::Duration;

use resilience_core::ConfigError;
use serde::{Deserialize, Serialize};

/// Parameters of the [`SimFleet`](super::SimFleet) host model. `Default`: starts take 20 s;
/// up to 4 concurrent starts per host are safe; each start beyond adds 10 %
/// failure probability, capped at 90 %; no failures otherwise; seed 1; no
/// silent corruption.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimConfig {
    /// How long an app start takes on the clock. Must be > 0.
    #[serde(with = "humantime_serde")]
    pub start_duration: Duration,
    /// Concurrent starts per host that never add failures. Must be >= 1.
    pub safe_concurrent_starts: u32,
    /// Failure probability added by each concurrent start beyond
    /// `safe_concurrent_starts`. In `0..=1`.
    pub failure_probability_per_extra_start: f64,
    /// Cap on the failure probability. In `0..=1`.
    pub max_failure_probability: f64,
    /// Failure probability of any start. In `0..=max_failure_probability`.
    pub base_failure_probability: f64,
    /// Seed of the random source.
    pub seed: u64,
    /// Silent corruption (the February 2019 failure as users saw it): a
    /// start that succeeds may have produced a corrupted app that turns
    /// unhealthy only later. `None` (default): off.
    pub silent_failures: Option<SilentFailures>,
}

/// Silent start corruption of a [`SimFleet`](super::SimFleet): each
/// receiver has a hidden safe concurrency; a start that begins with more
/// starts in progress on its host (itself included) than that is
/// corrupted with probability `corruption_per_extra_start × (concurrent −
/// safe_concurrent_starts)` (capped at 1). Its start succeeds; the app
/// reports [`AppState::Unhealthy`](crate::fleet::AppState::Unhealthy)
/// `visible_after` the start ended, until it is restarted. `Default`: the
/// February curve, 1 % per start above 4, visible after 2 minutes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SilentFailures {
    /// Concurrent starts per host that never corrupt. >= 1.
    pub safe_concurrent_starts: u32,
    /// Corruption probability added by each concurrent start beyond it.
    /// In `0..=1`.
    pub corruption_per_extra_start: f64,
    /// Delay after the start's end before the corruption shows in the
    /// app's health. > 0.
    #[serde(with = "humantime_serde")]
    pub visible_after: Duration,
}

impl Default for SilentFailures {
    fn default() -> Self {
        SilentFailures {
            safe_concurrent_starts: 4,
            corruption_per_extra_start: 0.01,
            visible_after: Duration::from_secs(120),
        }
    }
}

impl SilentFailures {
    /// Checks every field; the error names the first invalid one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.safe_concurrent_starts == 0 {
            return Err(ConfigError::new(
                "safe_concurrent_starts",
                "must be at least 1",
            ));
        }
        if !(0.0..=1.0).contains(&self.corruption_per_extra_start) {
            return Err(ConfigError::new(
                "corruption_per_extra_start",
                format!(
                    "must be a probability in 0..=1, got {}",
                    self.corruption_per_extra_start
                ),
            ));
        }
        if self.visible_after.is_zero() {
            return Err(ConfigError::new(
                "visible_after",
                "must be greater than zero (a corruption visible at once is a failed start)",
            ));
        }
        Ok(())
    }

    /// The corruption probability of a start with `concurrent` starts
    /// (itself included) in progress on its host.
    pub fn corruption_probability(&self, concurrent: u32) -> f64 {
        let extra = f64::from(concurrent.saturating_sub(self.safe_concurrent_starts));
        (self.corruption_per_extra_start * extra).min(1.0)
    }
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            start_duration: Duration::from_secs(20),
            safe_concurrent_starts: 4,
            failure_probability_per_extra_start: 0.1,
            max_failure_probability: 0.9,
            base_failure_probability: 0.0,
            seed: 1,
            silent_failures: None,
        }
    }
}

impl SimConfig {
    /// Checks every field; the error names the first invalid one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.start_duration.is_zero() {
            return Err(ConfigError::new(
                "start_duration",
                "must be greater than zero",
            ));
        }
        if self.safe_concurrent_starts == 0 {
            return Err(ConfigError::new(
                "safe_concurrent_starts",
                "must be at least 1",
            ));
        }
        for (field, value) in [
            (
                "failure_probability_per_extra_start",
                self.failure_probability_per_extra_start,
            ),
            ("max_failure_probability", self.max_failure_probability),
            ("base_failure_probability", self.base_failure_probability),
        ] {
            if !(0.0..=1.0).contains(&value) {
                return Err(ConfigError::new(
                    field,
                    format!("must be a probability in 0..=1, got {value}"),
                ));
            }
        }
        if self.base_failure_probability > self.max_failure_probability {
            return Err(ConfigError::new(
                "base_failure_probability",
                format!(
                    "must not exceed `max_failure_probability` ({}), got {}",
                    self.max_failure_probability, self.base_failure_probability
                ),
            ));
        }
        if let Some(silent) = &self.silent_failures {
            silent.validate().map_err(|e| e.nested("silent_failures"))?;
        }
        Ok(())
    }

    /// The failure probability of a start with `concurrent` starts
    /// (itself included) in progress on its host.
    pub fn failure_probability(&self, concurrent: u32) -> f64 {
        let extra = f64::from(concurrent.saturating_sub(self.safe_concurrent_starts));
        (self.base_failure_probability + self.failure_probability_per_extra_start * extra)
            .min(self.max_failure_probability)
    }
}
