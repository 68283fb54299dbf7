//! The host model: how likely an app start fails given how many starts run
//! at once on its host (the failure curve of the [module docs](super)).

use std::time::Duration;

use resilience_core::ConfigError;
use serde::{Deserialize, Serialize};

/// Parameters of the [`SimFleet`] host model. `Default`: starts take 20 s;
/// up to 4 concurrent starts per host are safe; each start beyond adds 10 %
/// failure probability, capped at 90 %; no failures otherwise; seed 1.
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
