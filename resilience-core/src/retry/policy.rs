//! The retry executor.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::backoff::Backoff;
use crate::budget::RetryBudget;
use crate::clock::{Clock, SharedClock};
use crate::deadline::Deadline;
use crate::error::ConfigError;
use crate::sync::AtomicU64;

use super::{ErrorClass, RetryConfig, RetryError, Retryable};

/// Runs an async operation with attempts, jittered backoff, a shared retry
/// budget, a deadline and server `Retry-After` hints. See the
/// [module docs](super) for the rules it follows.
///
/// Cheap to clone; clones share the run counter (so seeded jitter differs
/// between runs) and the [`RetryStats`] counters.
#[derive(Clone)]
pub struct RetryPolicy {
    config: RetryConfig,
    clock: SharedClock,
    budget: Option<Arc<RetryBudget>>,
    seed: Option<u64>,
    counters: Arc<Counters>,
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

    /// Runs `op` until it succeeds or the policy gives up. `op` receives the
    /// attempt number, starting at 1. Only the policy's own limits apply
    /// (including [`RetryConfig::overall_timeout`]); see
    /// [`RetryPolicy::run_with_deadline`] to bound the loop by the caller's
    /// deadline.
    pub async fn run<T, E, F, Fut>(&self, op: F) -> Result<T, RetryError<E>>
    where
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: Retryable + fmt::Debug,
    {
        let deadline = Deadline::unbounded(self.clock.clone());
        self.execute(&deadline, ErrorClass::of::<E>, op).await
    }

    /// Like [`RetryPolicy::run`], bounded by `deadline`: no attempt starts
    /// after it, no backoff sleeps past it, and an attempt still in flight
    /// when it passes is cancelled (dropped).
    pub async fn run_with_deadline<T, E, F, Fut>(
        &self,
        deadline: &Deadline,
        op: F,
    ) -> Result<T, RetryError<E>>
    where
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: Retryable + fmt::Debug,
    {
        self.execute(deadline, ErrorClass::of::<E>, op).await
    }

    /// Like [`RetryPolicy::run`] for error types that do not implement
    /// [`Retryable`]: `classify` decides about each error.
    pub async fn run_classified<T, E, F, Fut, C>(
        &self,
        classify: C,
        op: F,
    ) -> Result<T, RetryError<E>>
    where
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Result<T, E>>,
        C: FnMut(&E) -> ErrorClass,
        E: fmt::Debug,
    {
        let deadline = Deadline::unbounded(self.clock.clone());
        self.execute(&deadline, classify, op).await
    }

    /// [`RetryPolicy::run_classified`] bounded by `deadline`.
    pub async fn run_classified_with_deadline<T, E, F, Fut, C>(
        &self,
        deadline: &Deadline,
        classify: C,
        op: F,
    ) -> Result<T, RetryError<E>>
    where
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Result<T, E>>,
        C: FnMut(&E) -> ErrorClass,
        E: fmt::Debug,
    {
        self.execute(deadline, classify, op).await
    }

    async fn execute<T, E, F, Fut, C>(
        &self,
        deadline: &Deadline,
        mut classify: C,
        mut op: F,
    ) -> Result<T, RetryError<E>>
    where
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Result<T, E>>,
        C: FnMut(&E) -> ErrorClass,
        E: fmt::Debug,
    {
        let counters = &*self.counters;
        let run = counters.runs.fetch_add(1, Ordering::Relaxed);
        let bounded;
        let deadline = match self.config.overall_timeout {
            Some(limit) => {
                bounded = deadline.child(limit);
                &bounded
            }
            None => deadline,
        };
        let mut backoff = RunBackoff { run, state: None };
        let mut last_error: Option<E> = None;
        let mut attempt: u32 = 0;

        loop {
            // Never start an attempt past the deadline.
            if deadline.is_expired() {
                return Err(self.deadline_stop(attempt, last_error, None));
            }
            attempt = attempt.saturating_add(1);
            if attempt == 1
                && let Some(budget) = &self.budget
            {
                // Every original request deposits, failed or not: in a full
                // outage the budget must still allow `ratio` of the traffic.
                budget.deposit();
            }
            counters.attempts.fetch_add(1, Ordering::Relaxed);

            let outcome = match self.config.per_attempt_timeout {
                Some(limit) => deadline.child(limit).timeout(op(attempt)).await,
                // Nothing to race against: skip the timer machinery.
                None if deadline.is_unbounded() => Ok(op(attempt).await),
                None => deadline.timeout(op(attempt)).await,
            };
            let hint = match outcome {
                Ok(Ok(value)) => {
                    counters.successes.fetch_add(1, Ordering::Relaxed);
                    if attempt > 1 {
                        tracing::debug!(attempt, "retried operation succeeded");
                    }
                    return Ok(value);
                }
                Ok(Err(error)) => {
                    let class = classify(&error);
                    if !class.is_retryable() {
                        counters.not_retryable.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(attempt, error = ?error, "error is not retryable, giving up");
                        return Err(RetryError::NotRetryable {
                            attempts: attempt,
                            error,
                        });
                    }
                    last_error = Some(error);
                    class.retry_after()
                }
                Err(_) if deadline.is_expired() => {
                    // The overall deadline cut off the attempt in flight.
                    return Err(self.deadline_stop(attempt, last_error, None));
                }
                Err(_) => {
                    counters.attempt_timeouts.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(
                        attempt,
                        per_attempt_timeout = ?self.config.per_attempt_timeout,
                        "attempt timed out"
                    );
                    None
                }
            };

            let delay = self.plan_retry(attempt, &mut last_error, hint, &mut backoff, deadline)?;
            if !delay.is_zero() {
                self.clock.sleep(delay).await;
            }
        }
    }

    /// After a retryable failure of `attempt`: the delay before the next
    /// attempt, or why to stop (taking the last error into the stop).
    fn plan_retry<E: fmt::Debug>(
        &self,
        attempt: u32,
        last_error: &mut Option<E>,
        hint: Option<Duration>,
        backoff: &mut RunBackoff,
        deadline: &Deadline,
    ) -> Result<Duration, RetryError<E>> {
        let counters = &*self.counters;
        if attempt >= self.config.max_attempts {
            counters.exhausted.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(attempts = attempt, last_error = ?last_error, "retry attempts exhausted");
            return Err(RetryError::AttemptsExhausted {
                attempts: attempt,
                last_error: last_error.take(),
            });
        }

        let backoff_delay = backoff.next_delay(self);
        let hint = hint.map(|after| after.min(self.config.max_retry_after));
        let delay = hint.map_or(backoff_delay, |after| backoff_delay.max(after));

        // Do not sleep past the deadline: a retry that would start at or
        // after it is pointless, so stop now and free the caller.
        if delay >= deadline.remaining() {
            return Err(self.deadline_stop(attempt, last_error.take(), Some(delay)));
        }

        // Ask the budget at decision time, before sleeping: retries that
        // wait in backoff count against it (Envoy #30205).
        if let Some(budget) = &self.budget
            && !budget.try_withdraw()
        {
            counters.budget_denials.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(attempt, last_error = ?last_error, "retry denied by budget");
            return Err(RetryError::BudgetExhausted {
                attempts: attempt,
                last_error: last_error.take(),
            });
        }

        counters.retries.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(
            attempt,
            next_attempt = attempt.saturating_add(1),
            delay_ms = duration_ms(delay),
            backoff_ms = duration_ms(backoff_delay),
            retry_after_ms = hint.map(duration_ms),
            error = ?last_error,
            "retrying after backoff"
        );
        Ok(delay)
    }

    fn deadline_stop<E: fmt::Debug>(
        &self,
        attempts: u32,
        last_error: Option<E>,
        next_delay: Option<Duration>,
    ) -> RetryError<E> {
        self.counters.deadline_stops.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(
            attempts,
            next_delay_ms = next_delay.map(duration_ms),
            last_error = ?last_error,
            "retry stopped by deadline"
        );
        RetryError::DeadlineExceeded {
            attempts,
            last_error,
        }
    }
}

/// The backoff of one run, built at its first retry, so that a run that
/// succeeds at once never pays for it.
struct RunBackoff {
    run: u64,
    state: Option<Backoff>,
}

impl RunBackoff {
    fn next_delay(&mut self, policy: &RetryPolicy) -> Duration {
        if self.state.is_none() {
            let config = policy.config.backoff.clone();
            // The config was validated in `RetryPolicy::new`, so this cannot
            // fail; should it ever, every delay falls back to `backoff.max`.
            self.state = match policy.run_seed(self.run) {
                Some(seed) => Backoff::with_seed(config, seed),
                None => Backoff::new(config),
            }
            .ok();
        }
        self.state
            .as_mut()
            .and_then(Backoff::next_delay)
            .unwrap_or(policy.config.backoff.max)
    }
}

fn duration_ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// `SplitMix64` finalizer over the seed and the run number: neighbouring runs
/// get unrelated jitter streams.
fn mix_seed(seed: u64, run: u64) -> u64 {
    let mut z = seed.wrapping_add(run.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Counters of a [`RetryPolicy`] (and its clones), for dashboards.
///
/// A snapshot: each field is read separately, so under concurrent runs the
/// fields may be a few events apart.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryStats {
    /// Calls of a `run*` method.
    pub runs: u64,
    /// Runs that returned `Ok`.
    pub successes: u64,
    /// Attempts started (first attempts and retries).
    pub attempts: u64,
    /// Retries granted (after backoff, another attempt follows).
    pub retries: u64,
    /// Attempts that ran past `per_attempt_timeout`.
    pub attempt_timeouts: u64,
    /// Runs stopped by a non-retryable error.
    pub not_retryable: u64,
    /// Runs that used all `max_attempts`.
    pub exhausted: u64,
    /// Retries refused by the budget (each ends its run).
    pub budget_denials: u64,
    /// Runs stopped by their deadline.
    pub deadline_stops: u64,
}

/// # Memory ordering
///
/// Every counter is an independent statistic, updated with `Relaxed`
/// `fetch_add` and read with `Relaxed` loads: no other memory is published
/// through them, so no ordering is needed beyond each counter's own atomicity.
#[derive(Debug, Default)]
struct Counters {
    runs: AtomicU64,
    successes: AtomicU64,
    attempts: AtomicU64,
    retries: AtomicU64,
    attempt_timeouts: AtomicU64,
    not_retryable: AtomicU64,
    exhausted: AtomicU64,
    budget_denials: AtomicU64,
    deadline_stops: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> RetryStats {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        RetryStats {
            runs: load(&self.runs),
            successes: load(&self.successes),
            attempts: load(&self.attempts),
            retries: load(&self.retries),
            attempt_timeouts: load(&self.attempt_timeouts),
            not_retryable: load(&self.not_retryable),
            exhausted: load(&self.exhausted),
            budget_denials: load(&self.budget_denials),
            deadline_stops: load(&self.deadline_stops),
        }
    }
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

    #[test]
    fn policies_are_send_and_sync() {
        fn bounds<T: Send + Sync + Clone + 'static>() {}
        bounds::<RetryPolicy>();
        bounds::<RetryStats>();
    }
}
