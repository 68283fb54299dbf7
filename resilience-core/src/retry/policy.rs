//! [`RetryPolicy`]: the shared, validated retry rules (config, clock,
//! budget, seed, counters). Running them: `run.rs` (the step engine,
//! [`RetryRun`](super::RetryRun)) and `execute.rs` (the async loop over it).

use std::fmt;
use std::sync::Arc;

use crate::budget::RetryBudget;
use crate::clock::{Clock, SharedClock};
use crate::error::ConfigError;

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
}

impl fmt::Debug for RetryPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryPolicy")
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
        config.validate()?;
        Ok(RetryPolicy {
            config,
            clock: SharedClock::system(),
            budget: None,
            seed: None,
            counters: Arc::new(Counters::default()),
        })
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
