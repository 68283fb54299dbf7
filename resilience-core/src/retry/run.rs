//! The retry engine: one run of a [`RetryPolicy`], step by step
//! ([`RetryRun`]). Every decision of a retry loop is made here — the
//! deposit of the first attempt, the attempts left, the delay (backoff, at
//! least the capped `Retry-After` hint), the deadline, then the budget
//! withdrawal — and counted and traced here. `execute.rs` drives it for
//! async operations, the Node bindings drive it from JS.

use std::fmt;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::backoff::Backoff;

use super::classify::ErrorClass;
use super::error::RetryErrorKind;
use super::policy::RetryPolicy;

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
/// This is the engine of every retry loop of the crate: [`RetryPolicy::run`]
/// and its variants (and so the tower `RetryLayer`) drive the same steps.
/// [`begin_attempt`](RetryRun::begin_attempt) deposits into the budget on the
/// first attempt, [`on_failure`](RetryRun::on_failure) classifies, checks
/// the attempts left, computes the delay (backoff, at least the capped
/// `Retry-After` hint), stops if the delay would end past the deadline, and
/// withdraws from the budget at decision time. The caller sleeps, enforces
/// its deadline on attempts in flight and reports it with
/// [`stop_at_deadline`](RetryRun::stop_at_deadline). Counters go to the
/// policy's [`RetryStats`](super::RetryStats).
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
    steps: Steps,
}

impl RetryPolicy {
    /// Starts a run driven step by step by the caller; see [`RetryRun`].
    /// Counts the run (it uses the same jitter seed sequence as
    /// [`RetryPolicy::run`]).
    pub fn start_run(&self) -> RetryRun {
        RetryRun {
            policy: self.clone(),
            steps: Steps::start(self),
        }
    }

    /// Counts `n` runs whose first attempt succeeded, as `n` runs that
    /// ended with [`RetryRun::on_success`] after one attempt would (runs,
    /// attempts, successes, one budget deposit each), without a run object
    /// or span per call: for callers that report outcomes in batches (the
    /// Node bindings do).
    ///
    /// ```
    /// use resilience_core::retry::{RetryConfig, RetryPolicy};
    ///
    /// let policy = RetryPolicy::new(RetryConfig::default())?;
    /// policy.record_first_attempt_successes(3);
    /// let stats = policy.stats();
    /// assert_eq!((stats.runs, stats.attempts, stats.successes), (3, 3, 3));
    /// # Ok::<(), resilience_core::ConfigError>(())
    /// ```
    pub fn record_first_attempt_successes(&self, n: u64) {
        if n == 0 {
            return;
        }
        if let Some(budget) = &self.budget {
            budget.deposit_many(n);
        }
        for counter in [
            &self.counters.runs,
            &self.counters.attempts,
            &self.counters.successes,
        ] {
            counter.fetch_add(n, Ordering::Relaxed);
        }
        self.obs.runs.add(n);
        self.obs.attempts.add(n);
        self.obs.successes.add(n);
        tracing::trace!(name = %self.obs.name, runs = n, "first-attempt successes recorded in a batch");
    }
}

impl RetryRun {
    /// Attempts begun so far (0 before the first).
    pub fn attempts(&self) -> u32 {
        self.steps.attempts()
    }

    /// Call right before making an attempt; returns its number (the first
    /// is number one). The first attempt deposits into the budget (failed or
    /// not, every original request deposits).
    pub fn begin_attempt(&mut self) -> u32 {
        let _span = self.steps.span().clone().entered();
        self.steps.begin_attempt(&self.policy)
    }

    /// The attempt succeeded: counts the success and ends the run.
    pub fn on_success(self) {
        let _span = self.steps.span().clone().entered();
        self.steps.on_success(&self.policy);
    }

    /// The attempt failed with an error of class `class`; `remaining` is the
    /// time left until the caller's deadline ([`Duration::MAX`] without
    /// one). Returns the delay before the next attempt, or why to stop.
    pub fn on_failure(&mut self, class: ErrorClass, remaining: Duration) -> RetryDecision {
        let _span = self.steps.span().clone().entered();
        if class.is_retryable() {
            self.steps
                .on_retryable_failure(&self.policy, class.retry_after(), remaining, &class)
        } else {
            self.steps.on_permanent_failure(&self.policy, None)
        }
    }

    /// The caller's deadline passed before an attempt could start or while
    /// one was in flight: counts the stop and ends the run.
    pub fn stop_at_deadline(self) -> RetryErrorKind {
        let _span = self.steps.span().clone().entered();
        self.steps
            .stop_at_deadline(&self.policy, &"deadline passed")
    }
}

/// The state and the steps of one run, on a borrowed policy: [`RetryRun`]
/// owns its policy (a clone) and delegates here; the async executor borrows
/// the policy and drives these steps directly, so a run costs no clone.
#[derive(Debug)]
pub(super) struct Steps {
    backoff: RunBackoff,
    attempt: u32,
    /// The run's `retry` span (`name`, and `attempts` recorded as they begin).
    span: tracing::Span,
}

impl Steps {
    /// A new run of `policy` (counted).
    pub(super) fn start(policy: &RetryPolicy) -> Self {
        let run = policy.counters.runs.fetch_add(1, Ordering::Relaxed);
        policy.obs.runs.inc();
        Steps {
            backoff: RunBackoff { run, state: None },
            attempt: 0,
            span: tracing::info_span!(
                "retry",
                name = %policy.obs.name,
                attempts = tracing::field::Empty
            ),
        }
    }

    /// The run's `retry` span.
    pub(super) fn span(&self) -> &tracing::Span {
        &self.span
    }

    /// Attempts begun so far.
    pub(super) fn attempts(&self) -> u32 {
        self.attempt
    }

    /// Before an attempt: its number; the first one deposits.
    pub(super) fn begin_attempt(&mut self, policy: &RetryPolicy) -> u32 {
        self.attempt = self.attempt.saturating_add(1);
        if self.attempt == 1
            && let Some(budget) = &policy.budget
        {
            // Every original request deposits, failed or not: in a full
            // outage the budget must still allow `ratio` of the traffic.
            budget.deposit();
        }
        policy.counters.attempts.fetch_add(1, Ordering::Relaxed);
        policy.obs.attempts.inc();
        self.span.record("attempts", self.attempt);
        self.attempt
    }

    /// The attempt succeeded.
    pub(super) fn on_success(&self, policy: &RetryPolicy) {
        policy.counters.successes.fetch_add(1, Ordering::Relaxed);
        policy.obs.successes.inc();
        if self.attempt > 1 {
            tracing::debug!(name = %policy.obs.name, attempt = self.attempt, "retried operation succeeded");
        }
    }

    /// The attempt failed with a permanent error (traced when given).
    pub(super) fn on_permanent_failure(
        &self,
        policy: &RetryPolicy,
        error: Option<&dyn fmt::Debug>,
    ) -> RetryDecision {
        let attempt = self.attempt;
        policy
            .counters
            .not_retryable
            .fetch_add(1, Ordering::Relaxed);
        policy.obs.not_retryable.inc();
        let name = &policy.obs.name;
        if let Some(error) = error {
            tracing::debug!(%name, attempt, error = ?error, "error is not retryable, giving up");
        } else {
            tracing::debug!(%name, attempt, "error is not retryable, giving up");
        }
        RetryDecision::Stop(RetryErrorKind::NotRetryable)
    }

    /// The attempt ran past the per-attempt timeout (the executor's own
    /// timer; the caller of a [`RetryRun`] reports it as a failure).
    pub(super) fn on_attempt_timeout(&self, policy: &RetryPolicy) {
        policy
            .counters
            .attempt_timeouts
            .fetch_add(1, Ordering::Relaxed);
        policy.obs.attempt_timeouts.inc();
        tracing::debug!(
            name = %policy.obs.name,
            attempt = self.attempt,
            per_attempt_timeout = ?policy.config.per_attempt_timeout,
            "attempt timed out"
        );
    }

    /// The retry decision after a retryable failure: attempts left, then
    /// the delay (backoff, at least the capped server `hint`), then the
    /// deadline (`remaining`), then the budget, asked at decision time.
    /// `last_error` is what the traces show.
    pub(super) fn on_retryable_failure(
        &mut self,
        policy: &RetryPolicy,
        hint: Option<Duration>,
        remaining: Duration,
        last_error: &dyn fmt::Debug,
    ) -> RetryDecision {
        let attempt = self.attempt;
        let counters = &*policy.counters;
        if attempt >= policy.config.max_attempts {
            counters.exhausted.fetch_add(1, Ordering::Relaxed);
            policy.obs.exhausted.inc();
            tracing::debug!(name = %policy.obs.name, attempts = attempt, last_error = ?last_error, "retry attempts exhausted");
            return RetryDecision::Stop(RetryErrorKind::AttemptsExhausted);
        }

        let backoff_delay = self.backoff.next_delay(policy);
        let hint = hint.map(|after| after.min(policy.config.max_retry_after));
        let delay = hint.map_or(backoff_delay, |after| backoff_delay.max(after));

        // Do not sleep past the deadline: a retry that would start at or
        // after it is pointless, so stop now and free the caller. Checked
        // before the budget, so a stop for the deadline withdraws nothing.
        if delay >= remaining {
            count_deadline_stop(policy, attempt, Some(delay), last_error);
            return RetryDecision::Stop(RetryErrorKind::DeadlineExceeded);
        }

        // Ask the budget at decision time, before sleeping: retries that
        // wait in backoff count against it (Envoy #30205).
        if let Some(budget) = &policy.budget
            && !budget.try_withdraw()
        {
            counters.budget_denials.fetch_add(1, Ordering::Relaxed);
            policy.obs.budget_denied.inc();
            tracing::debug!(name = %policy.obs.name, attempt, last_error = ?last_error, "retry denied by budget");
            return RetryDecision::Stop(RetryErrorKind::BudgetExhausted);
        }

        counters.retries.fetch_add(1, Ordering::Relaxed);
        policy.obs.retries.inc();
        tracing::debug!(
            name = %policy.obs.name,
            attempt,
            next_attempt = attempt.saturating_add(1),
            delay_ms = duration_ms(delay),
            backoff_ms = duration_ms(backoff_delay),
            retry_after_ms = hint.map(duration_ms),
            error = ?last_error,
            "retrying after backoff"
        );
        RetryDecision::Retry { delay }
    }

    /// The deadline passed before an attempt could start or while one was
    /// in flight. `last_error` is what the trace shows.
    pub(super) fn stop_at_deadline(
        &self,
        policy: &RetryPolicy,
        last_error: &dyn fmt::Debug,
    ) -> RetryErrorKind {
        count_deadline_stop(policy, self.attempt, None, last_error);
        RetryErrorKind::DeadlineExceeded
    }
}

fn count_deadline_stop(
    policy: &RetryPolicy,
    attempts: u32,
    next_delay: Option<Duration>,
    last_error: &dyn fmt::Debug,
) {
    policy
        .counters
        .deadline_stops
        .fetch_add(1, Ordering::Relaxed);
    policy.obs.deadline.inc();
    tracing::debug!(
        name = %policy.obs.name,
        attempts,
        next_delay_ms = next_delay.map(duration_ms),
        last_error = ?last_error,
        "retry stopped by deadline"
    );
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::budget::RetryBudget;
    use crate::retry::{RetryConfig, RetryStats};

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
