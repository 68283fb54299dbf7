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

use super::{ErrorClass, RetryConfig, RetryError, RetryErrorKind, Retryable};

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
        self.decide(attempt, hint, backoff, deadline.remaining(), &*last_error)
            .map_err(|kind| {
                let last_error = last_error.take();
                match kind {
                    RetryErrorKind::AttemptsExhausted => RetryError::AttemptsExhausted {
                        attempts: attempt,
                        last_error,
                    },
                    RetryErrorKind::BudgetExhausted => RetryError::BudgetExhausted {
                        attempts: attempt,
                        last_error,
                    },
                    // `decide` stops only for the three reasons above.
                    RetryErrorKind::DeadlineExceeded | RetryErrorKind::NotRetryable => {
                        RetryError::DeadlineExceeded {
                            attempts: attempt,
                            last_error,
                        }
                    }
                }
            })
    }

    /// The retry decision after a retryable failure of `attempt`, shared by
    /// the async executor and [`RetryRun::on_failure`]: attempts left, then
    /// the delay (backoff, at least the capped server hint), then the
    /// deadline (`remaining`), then the budget, asked at decision time.
    /// Counts and traces the decision.
    fn decide(
        &self,
        attempt: u32,
        hint: Option<Duration>,
        backoff: &mut RunBackoff,
        remaining: Duration,
        last_error: &dyn fmt::Debug,
    ) -> Result<Duration, RetryErrorKind> {
        let counters = &*self.counters;
        if attempt >= self.config.max_attempts {
            counters.exhausted.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(attempts = attempt, last_error = ?last_error, "retry attempts exhausted");
            return Err(RetryErrorKind::AttemptsExhausted);
        }

        let backoff_delay = backoff.next_delay(self);
        let hint = hint.map(|after| after.min(self.config.max_retry_after));
        let delay = hint.map_or(backoff_delay, |after| backoff_delay.max(after));

        // Do not sleep past the deadline: a retry that would start at or
        // after it is pointless, so stop now and free the caller.
        if delay >= remaining {
            self.count_deadline_stop(attempt, Some(delay), last_error);
            return Err(RetryErrorKind::DeadlineExceeded);
        }

        // Ask the budget at decision time, before sleeping: retries that
        // wait in backoff count against it (Envoy #30205).
        if let Some(budget) = &self.budget
            && !budget.try_withdraw()
        {
            counters.budget_denials.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(attempt, last_error = ?last_error, "retry denied by budget");
            return Err(RetryErrorKind::BudgetExhausted);
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

    fn count_deadline_stop(
        &self,
        attempts: u32,
        next_delay: Option<Duration>,
        last_error: &dyn fmt::Debug,
    ) {
        self.counters.deadline_stops.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(
            attempts,
            next_delay_ms = next_delay.map(duration_ms),
            last_error = ?last_error,
            "retry stopped by deadline"
        );
    }

    fn deadline_stop<E: fmt::Debug>(
        &self,
        attempts: u32,
        last_error: Option<E>,
        next_delay: Option<Duration>,
    ) -> RetryError<E> {
        self.count_deadline_stop(attempts, next_delay, &last_error);
        RetryError::DeadlineExceeded {
            attempts,
            last_error,
        }
    }

    /// Starts a run driven step by step by the caller; see [`RetryRun`].
    /// Counts the run (it uses the same jitter seed sequence as
    /// [`RetryPolicy::run`]).
    pub fn start_run(&self) -> RetryRun {
        let run = self.counters.runs.fetch_add(1, Ordering::Relaxed);
        RetryRun {
            policy: self.clone(),
            backoff: RunBackoff { run, state: None },
            attempt: 0,
        }
    }
}

/// What to do after a failed attempt of a [`RetryRun`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryDecision {
    /// Wait `delay`, then make the next attempt. The retry has already been
    /// withdrawn from the budget.
    Retry {
        /// How long to wait before the next attempt.
        delay: Duration,
    },
    /// Give up, for this reason.
    Stop(RetryErrorKind),
}

/// One run of a [`RetryPolicy`] whose attempts the caller makes itself, for
/// callers that cannot hand the policy a Rust future: an event loop in
/// another language (the Node bindings run attempts as JS promises), a state
/// machine, a simulation.
///
/// The decisions are those of [`RetryPolicy::run`], made by the same code:
/// [`begin_attempt`](RetryRun::begin_attempt) deposits into the budget on the
/// first attempt, [`on_failure`](RetryRun::on_failure) classifies, checks
/// the attempts left, computes the delay (backoff, at least the capped
/// `Retry-After` hint), stops if the delay would end past the deadline, and
/// withdraws from the budget at decision time. The caller sleeps, enforces
/// its deadline on attempts in flight and reports it with
/// [`stop_at_deadline`](RetryRun::stop_at_deadline). Counters go to the
/// policy's [`RetryStats`].
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use resilience_core::budget::{RetryBudget, RetryBudgetConfig};
/// use resilience_core::clock::ManualClock;
/// use resilience_core::retry::{ErrorClass, RetryConfig, RetryDecision, RetryErrorKind, RetryPolicy};
///
/// let clock = ManualClock::new();
/// let budget = Arc::new(RetryBudget::with_clock(
///     RetryBudgetConfig { min_retries_per_sec: 0, ..RetryBudgetConfig::default() },
///     clock.clone(),
/// )?);
/// let policy = RetryPolicy::new(RetryConfig { max_attempts: 3, ..RetryConfig::default() })?
///     .with_clock(clock)
///     .with_budget(budget);
///
/// let mut run = policy.start_run();
/// assert_eq!(run.begin_attempt(), 1); // deposits 0.2 of a token
/// // The attempt failed; one retry would need a whole token: denied.
/// let decision = run.on_failure(ErrorClass::Transient, Duration::MAX);
/// assert_eq!(decision, RetryDecision::Stop(RetryErrorKind::BudgetExhausted));
/// assert_eq!(policy.stats().budget_denials, 1);
/// # Ok::<(), resilience_core::ConfigError>(())
/// ```
#[derive(Debug)]
pub struct RetryRun {
    policy: RetryPolicy,
    backoff: RunBackoff,
    attempt: u32,
}

impl RetryRun {
    /// Attempts begun so far (0 before the first).
    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    /// Call right before making an attempt; returns its number (the first
    /// is number one). The first attempt deposits into the budget (failed or
    /// not, every original request deposits).
    pub fn begin_attempt(&mut self) -> u32 {
        self.attempt = self.attempt.saturating_add(1);
        if self.attempt == 1
            && let Some(budget) = &self.policy.budget
        {
            budget.deposit();
        }
        self.policy
            .counters
            .attempts
            .fetch_add(1, Ordering::Relaxed);
        self.attempt
    }

    /// The attempt succeeded: counts the success and ends the run.
    pub fn on_success(self) {
        self.policy
            .counters
            .successes
            .fetch_add(1, Ordering::Relaxed);
        if self.attempt > 1 {
            tracing::debug!(attempt = self.attempt, "retried operation succeeded");
        }
    }

    /// The attempt failed with an error of class `class`; `remaining` is the
    /// time left until the caller's deadline ([`Duration::MAX`] without
    /// one). Returns the delay before the next attempt, or why to stop.
    pub fn on_failure(&mut self, class: ErrorClass, remaining: Duration) -> RetryDecision {
        let attempt = self.attempt;
        if !class.is_retryable() {
            self.policy
                .counters
                .not_retryable
                .fetch_add(1, Ordering::Relaxed);
            tracing::debug!(attempt, "error is not retryable, giving up");
            return RetryDecision::Stop(RetryErrorKind::NotRetryable);
        }
        let error: &dyn fmt::Debug = &class;
        match self.policy.decide(
            attempt,
            class.retry_after(),
            &mut self.backoff,
            remaining,
            error,
        ) {
            Ok(delay) => RetryDecision::Retry { delay },
            Err(kind) => RetryDecision::Stop(kind),
        }
    }

    /// The caller's deadline passed before an attempt could start or while
    /// one was in flight: counts the stop and ends the run.
    pub fn stop_at_deadline(self) -> RetryErrorKind {
        self.policy
            .count_deadline_stop(self.attempt, None, &"deadline passed");
        RetryErrorKind::DeadlineExceeded
    }
}

/// The backoff of one run, built at its first retry, so that a run that
/// succeeds at once never pays for it.
#[derive(Debug)]
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
        fn send_sync<T: Send + Sync + 'static>() {}
        bounds::<RetryPolicy>();
        bounds::<RetryStats>();
        send_sync::<RetryRun>();
    }

    use crate::backoff::{BackoffConfig, Jitter};
    use crate::budget::RetryBudgetConfig;
    use crate::clock::ManualClock;

    fn stepped_policy(max_attempts: u32, retry_ratio: f64) -> (RetryPolicy, Arc<RetryBudget>) {
        let clock = ManualClock::new();
        let budget = Arc::new(
            RetryBudget::with_clock(
                RetryBudgetConfig {
                    ttl: Duration::from_secs(10),
                    min_retries_per_sec: 0,
                    retry_ratio,
                },
                clock.clone(),
            )
            .unwrap(),
        );
        let config = RetryConfig {
            max_attempts,
            backoff: BackoffConfig {
                base: Duration::from_millis(100),
                max: Duration::from_secs(1),
                factor: 2.0,
                jitter: Jitter::None,
                max_attempts: None,
            },
            max_retry_after: Duration::from_millis(500),
            ..RetryConfig::default()
        };
        let policy = RetryPolicy::new(config)
            .unwrap()
            .with_clock(clock)
            .with_budget(budget.clone());
        (policy, budget)
    }

    #[test]
    fn stepped_run_backs_off_then_exhausts_attempts() {
        let (policy, _) = stepped_policy(3, 1000.0);
        let mut run = policy.start_run();
        assert_eq!(run.begin_attempt(), 1);
        assert_eq!(
            run.on_failure(ErrorClass::Transient, Duration::MAX),
            RetryDecision::Retry {
                delay: Duration::from_millis(100)
            }
        );
        assert_eq!(run.begin_attempt(), 2);
        assert_eq!(
            run.on_failure(ErrorClass::Transient, Duration::MAX),
            RetryDecision::Retry {
                delay: Duration::from_millis(200)
            }
        );
        assert_eq!(run.begin_attempt(), 3);
        assert_eq!(
            run.on_failure(ErrorClass::Transient, Duration::MAX),
            RetryDecision::Stop(RetryErrorKind::AttemptsExhausted)
        );
        let stats = policy.stats();
        assert_eq!(
            (stats.runs, stats.attempts, stats.retries, stats.exhausted),
            (1, 3, 2, 1)
        );
    }

    #[test]
    fn stepped_run_deposits_once_and_withdraws_at_decision_time() {
        let (policy, budget) = stepped_policy(5, 1.0);
        let mut run = policy.start_run();
        run.begin_attempt();
        assert_eq!(budget.stats().deposits, 1);
        assert!(matches!(
            run.on_failure(ErrorClass::Transient, Duration::MAX),
            RetryDecision::Retry { .. }
        ));
        assert_eq!(budget.stats().granted, 1);
        run.begin_attempt();
        assert_eq!(budget.stats().deposits, 1, "retries do not deposit");
        assert_eq!(
            run.on_failure(ErrorClass::Transient, Duration::MAX),
            RetryDecision::Stop(RetryErrorKind::BudgetExhausted)
        );
        assert_eq!(policy.stats().budget_denials, 1);
    }

    #[test]
    fn stepped_run_honours_capped_hints_and_the_deadline() {
        let (policy, _) = stepped_policy(5, 1000.0);
        let mut run = policy.start_run();
        run.begin_attempt();
        let hinted = ErrorClass::TransientAfter(Duration::from_secs(60));
        assert_eq!(
            run.on_failure(hinted, Duration::MAX),
            RetryDecision::Retry {
                delay: Duration::from_millis(500)
            },
            "the hint wins over the backoff, capped at max_retry_after"
        );
        run.begin_attempt();
        assert_eq!(
            run.on_failure(ErrorClass::Transient, Duration::from_millis(200)),
            RetryDecision::Stop(RetryErrorKind::DeadlineExceeded),
            "a 200 ms backoff would end at the deadline"
        );
        assert_eq!(policy.stats().deadline_stops, 1);
    }

    #[test]
    fn stepped_run_stops_on_permanent_errors_and_counts_outcomes() {
        let (policy, _) = stepped_policy(5, 1000.0);
        let mut run = policy.start_run();
        run.begin_attempt();
        assert_eq!(
            run.on_failure(ErrorClass::Permanent, Duration::MAX),
            RetryDecision::Stop(RetryErrorKind::NotRetryable)
        );
        let mut ok = policy.start_run();
        ok.begin_attempt();
        ok.on_success();
        let late = policy.start_run();
        assert_eq!(late.stop_at_deadline(), RetryErrorKind::DeadlineExceeded);
        let stats = policy.stats();
        assert_eq!(
            (
                stats.runs,
                stats.not_retryable,
                stats.successes,
                stats.deadline_stops
            ),
            (3, 1, 1, 1)
        );
    }
}
