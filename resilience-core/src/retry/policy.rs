//! [`RetryPolicy`]: the shared, validated retry rules (config, clock,
//! budget, seed, counters). Running them: `run.rs` (the step engine,
//! [`RetryRun`](super::RetryRun)) and `execute.rs` (the async loop over it).

use std::fmt;
use std::sync::Arc;

use crate::budget::RetryBudget;
use crate::clock::{Clock, SharedClock};
use crate::error::ConfigError;
use crate::name::{InstanceName, Named};
use crate::obs::Counter;

use super::config::RetryConfig;
use super::stats::{Counters, RetryStats};

/// Runs an async operation with attempts, jittered backoff, a shared retry
/// budget, a deadline and server `Retry-After` hints. See the
/// [module docs](super) for the rules it follows.
///
/// Cheap to clone; clones share the run counter (so seeded jitter differs
/// between runs) and the [`RetryStats`] counters.
#[derive(Clone)]
pub struct RetryPolicy {
    pub(super) config: RetryConfig,
    pub(super) clock: SharedClock,
    pub(super) budget: Option<Arc<RetryBudget>>,
    seed: Option<u64>,
    pub(super) counters: Arc<Counters>,
    pub(super) obs: Arc<RetryObs>,
}

/// The name and metric handles of a policy, shared by its clones.
#[derive(Debug)]
pub(super) struct RetryObs {
    pub(super) name: InstanceName,
    pub(super) runs: Counter,
    pub(super) successes: Counter,
    pub(super) attempts: Counter,
    pub(super) retries: Counter,
    pub(super) attempt_timeouts: Counter,
    pub(super) not_retryable: Counter,
    pub(super) exhausted: Counter,
    pub(super) budget_denied: Counter,
    pub(super) deadline: Counter,
}

impl RetryObs {
    fn register(name: InstanceName) -> Self {
        const GIVE_UPS: &str = "breakwater_retry_give_ups_total";
        let n = &name;
        RetryObs {
            runs: Counter::register("breakwater_retry_runs_total", n, &[]),
            successes: Counter::register("breakwater_retry_successes_total", n, &[]),
            attempts: Counter::register("breakwater_retry_attempts_total", n, &[]),
            retries: Counter::register("breakwater_retry_retries_total", n, &[]),
            attempt_timeouts: Counter::register("breakwater_retry_attempt_timeouts_total", n, &[]),
            not_retryable: Counter::register(GIVE_UPS, n, &[("reason", "not_retryable")]),
            exhausted: Counter::register(GIVE_UPS, n, &[("reason", "attempts_exhausted")]),
            budget_denied: Counter::register(GIVE_UPS, n, &[("reason", "budget_exhausted")]),
            deadline: Counter::register(GIVE_UPS, n, &[("reason", "deadline_exceeded")]),
            name,
        }
    }
}

impl fmt::Debug for RetryPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryPolicy")
            .field("name", &self.obs.name)
            .field("config", &self.config)
            .field("budget", &self.budget.is_some())
            .field("seed", &self.seed)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl RetryPolicy {
    /// A policy on the [`SystemClock`](crate::clock::SystemClock), without a
    /// budget, with randomly seeded jitter. Errors name the invalid field.
    pub fn new(config: RetryConfig) -> Result<Self, ConfigError> {
        Self::build(config, InstanceName::unnamed())
    }

    fn build(config: RetryConfig, name: InstanceName) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(RetryPolicy {
            config,
            clock: SharedClock::system(),
            budget: None,
            seed: None,
            counters: Arc::new(Counters::default()),
            obs: Arc::new(RetryObs::register(name)),
        })
    }

    /// A policy built from a [`Named`] configuration (on the system clock,
    /// without a budget: chain [`with_clock`](Self::with_clock) and
    /// [`with_budget`](Self::with_budget) as with [`RetryPolicy::new`]).
    ///
    /// ```
    /// use resilience_core::Named;
    /// use resilience_core::retry::{RetryConfig, RetryPolicy};
    ///
    /// let config: Named<RetryConfig> = serde_json::from_str(r#"{ "name": "users-api" }"#)?;
    /// let policy = RetryPolicy::from_named(config)?;
    /// assert_eq!(policy.name().as_str(), "users-api");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_named(config: Named<RetryConfig>) -> Result<Self, ConfigError> {
        let name = config.instance_name()?;
        Self::build(config.config, name)
    }

    /// Names the policy: the `name` field of its tracing events and of its
    /// `retry` spans, and the `name` label of its metrics. Call it right
    /// after construction: it registers the metric handles again, and clones
    /// made before keep the old name.
    #[must_use]
    pub fn named(mut self, name: InstanceName) -> Self {
        self.obs = Arc::new(RetryObs::register(name));
        self
    }

    /// The instance name (`""` when unnamed).
    pub fn name(&self) -> &InstanceName {
        &self.obs.name
    }

    /// Uses `clock` for backoff sleeps and for the deadline of
    /// [`RetryPolicy::run`]. Pass the same clock as the [`RetryBudget`]'s and
    /// the deadlines' you use with this policy.
    #[must_use]
    pub fn with_clock(mut self, clock: impl Clock) -> Self {
        self.clock = clock.into_shared();
        self
    }

    /// Consults `budget` before every retry and deposits into it on every
    /// first attempt. Share one budget (by `Arc`) between all policies that
    /// call the same dependency.
    #[must_use]
    pub fn with_budget(mut self, budget: Arc<RetryBudget>) -> Self {
        self.budget = Some(budget);
        self
    }

    /// Makes jitter reproducible: run `n` (0-based, counted per policy and
    /// its clones) uses a backoff seeded with [`RetryPolicy::run_seed`]`(n)`.
    #[must_use]
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// The configuration.
    pub fn config(&self) -> &RetryConfig {
        &self.config
    }

    /// The clock used for backoff sleeps.
    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    /// The retry budget, if any.
    pub fn budget(&self) -> Option<&Arc<RetryBudget>> {
        self.budget.as_ref()
    }

    /// The jitter seed of run `run` (0-based): a mix of the policy seed and
    /// the run number, so that concurrent runs do not retry in lockstep.
    /// `None` when the policy is not seeded ([`RetryPolicy::with_seed`]).
    pub fn run_seed(&self, run: u64) -> Option<u64> {
        self.seed.map(|seed| mix_seed(seed, run))
    }

    /// A snapshot of the counters (shared by clones of this policy).
    pub fn stats(&self) -> RetryStats {
        self.counters.snapshot()
    }
}

/// `SplitMix64` finalizer over the seed and the run number: neighbouring runs
/// get unrelated jitter streams.
fn mix_seed(seed: u64, run: u64) -> u64 {
    let mut z = seed.wrapping_add(run.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_seeds_differ_between_runs_and_are_reproducible() {
        let policy = RetryPolicy::new(RetryConfig::default())
            .unwrap()
            .with_seed(7);
        assert_eq!(policy.run_seed(0), policy.clone().run_seed(0));
        assert_ne!(policy.run_seed(0), policy.run_seed(1));
        assert_eq!(
            RetryPolicy::new(RetryConfig::default())
                .unwrap()
                .run_seed(0),
            None
        );
    }
}
