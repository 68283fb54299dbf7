//! [`DrainConfig`]: what a [`DrainController`](super::DrainController) may do, and how.

use std::time::Duration;

use resilience_core::ConfigError;
use resilience_core::backoff::BackoffConfig;
use resilience_core::signal::EventAggregatorConfig;
use serde::{Deserialize, Serialize};

use super::adaptive::AdaptiveStartsConfig;
use super::explore::StartExplorationConfig;
use crate::health::HealthGateConfig;
use crate::plan::DrainLimits;

/// Configuration of a [`DrainController`](super::DrainController) (serde: TOML or JSON, durations
/// like `"30s"`). `Default`: the default limits and gate, a 5-minute
/// start-failure window, health checked every 10 s, no deadline, retries
/// from 5 s doubling to 2 min with full jitter for at most 5 attempts, events
/// aggregated per minute, not a dry run, a fixed start concurrency and no
/// probation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DrainConfig {
    /// What each wave may do.
    pub limits: DrainLimits,
    /// When to pause, resume and abort.
    pub gate: HealthGateConfig,
    /// Window over which start failures per minute are counted. > 0.
    #[serde(with = "humantime_serde")]
    pub failure_window: Duration,
    /// How often health is sampled and the gate evaluated. > 0.
    #[serde(with = "humantime_serde")]
    pub check_interval: Duration,
    /// The whole drain must finish within this (from the start of
    /// [`DrainController::run`](super::DrainController::run)); `None`: no deadline. Must be > 0 if set.
    #[serde(with = "humantime_serde::option")]
    pub deadline: Option<Duration>,
    /// Delays between attempts of one app's start (and of failed fleet
    /// operations); its `max_attempts` bounds them.
    pub retry: BackoffConfig,
    /// Seed of the retry jitter.
    pub seed: u64,
    /// Aggregation of floods of similar events.
    pub events: EventAggregatorConfig,
    /// Only plan: [`DrainController::run`](super::DrainController::run) returns the next wave in
    /// [`DrainReport::plan`](super::DrainReport::plan) and changes nothing.
    pub dry_run: bool,
    /// Stop sending apps to a receiver whose start failures per minute
    /// exceed this: its remaining apps are re-planned onto other receivers
    /// ([`Planner::replan_host`](crate::plan::Planner::replan_host)) and it receives no more apps for the rest
    /// of the run. `None` (default): never. Finite, > 0.
    pub receiver_max_failures_per_minute: Option<f64>,
    /// Learn how many starts each receiver runs at once, per class of
    /// receivers, instead of a fixed limit (see
    /// [`AdaptiveStartsConfig`]); `limits.max_concurrent_starts_per_host`
    /// stays the ceiling. `None` (default): the fixed limit.
    pub adaptive_starts: Option<AdaptiveStartsConfig>,
    /// Watch every moved app for this long after its start succeeded: one
    /// that turns unhealthy (or fails) meanwhile is a *late failure*,
    /// counted against the receiver that started it (its start failures,
    /// the adaptive limit) and restarted there at once; the drain reports
    /// done only once every moved app passed it. `None` (default): no
    /// probation. Must be > 0 if set.
    #[serde(with = "humantime_serde::option")]
    pub probation: Option<Duration>,
    /// With `adaptive_starts` and `probation`: a few receivers of each
    /// class probe higher start concurrencies while the rest run at the
    /// class's limit, and failed levels are retried after a while (see
    /// [`StartExplorationConfig`]). `None` (default): no exploration.
    pub start_exploration: Option<StartExplorationConfig>,
}

impl Default for DrainConfig {
    fn default() -> Self {
        DrainConfig {
            limits: DrainLimits::default(),
            gate: HealthGateConfig::default(),
            failure_window: Duration::from_secs(300),
            check_interval: Duration::from_secs(10),
            deadline: None,
            retry: BackoffConfig {
                base: Duration::from_secs(5),
                max: Duration::from_secs(120),
                max_attempts: Some(5),
                ..BackoffConfig::default()
            },
            seed: 0,
            events: EventAggregatorConfig {
                window: Duration::from_secs(60),
                max_fingerprints: 1000,
            },
            dry_run: false,
            receiver_max_failures_per_minute: None,
            adaptive_starts: None,
            probation: None,
            start_exploration: None,
        }
    }
}

impl DrainConfig {
    /// Checks every field (nested fields are named `limits.…`, `gate.…`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.limits.validate().map_err(|e| e.nested("limits"))?;
        self.gate.validate().map_err(|e| e.nested("gate"))?;
        if self.failure_window.is_zero() {
            return Err(ConfigError::new(
                "failure_window",
                "must be greater than zero",
            ));
        }
        if self.check_interval.is_zero() {
            return Err(ConfigError::new(
                "check_interval",
                "must be greater than zero",
            ));
        }
        if self.deadline == Some(Duration::ZERO) {
            return Err(ConfigError::new(
                "deadline",
                "must be greater than zero (omit it for no deadline)",
            ));
        }
        self.retry.validate().map_err(|e| e.nested("retry"))?;
        self.events.validate().map_err(|e| e.nested("events"))?;
        if let Some(max) = self.receiver_max_failures_per_minute
            && !(max.is_finite() && max > 0.0)
        {
            return Err(ConfigError::new(
                "receiver_max_failures_per_minute",
                format!("must be a finite rate > 0 (or unset), got {max}"),
            ));
        }
        if let Some(adaptive) = &self.adaptive_starts {
            adaptive
                .validate()
                .map_err(|e| e.nested("adaptive_starts"))?;
        }
        if self.probation == Some(Duration::ZERO) {
            return Err(ConfigError::new(
                "probation",
                "must be greater than zero (omit it for no probation)",
            ));
        }
        if let Some(explore) = &self.start_exploration {
            explore
                .validate()
                .map_err(|e| e.nested("start_exploration"))?;
            if self.adaptive_starts.is_none() || self.probation.is_none() {
                return Err(ConfigError::new(
                    "start_exploration",
                    "needs adaptive_starts and probation (probes are judged by starts that passed probation); set both or remove start_exploration",
                ));
            }
        }
        Ok(())
    }
}
