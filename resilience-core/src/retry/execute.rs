//! The async retry loop: [`RetryPolicy::run`] and its variants drive the
//! step engine of `run.rs` for an async operation. This file only does what
//! a caller of [`RetryRun`](super::RetryRun) does itself: make the attempts,
//! enforce the deadline and per-attempt timeout on them, sleep the delays,
//! and keep the last error for the [`RetryError`].

use std::fmt;
use std::future::Future;

use tracing::Instrument;

use crate::clock::Clock;
use crate::deadline::Deadline;

use super::classify::{ErrorClass, Retryable};
use super::error::{RetryError, RetryErrorKind};
use super::policy::RetryPolicy;
use super::run::{RetryDecision, Steps};

impl RetryPolicy {
    /// Runs `op` until it succeeds or the policy gives up. `op` receives the
    /// attempt number, starting at 1. Only the policy's own limits apply
    /// (including [`RetryConfig::overall_timeout`](super::RetryConfig::overall_timeout));
    /// see [`RetryPolicy::run_with_deadline`] to bound the loop by the
    /// caller's deadline.
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
        classify: C,
        op: F,
    ) -> Result<T, RetryError<E>>
    where
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Result<T, E>>,
        C: FnMut(&E) -> ErrorClass,
        E: fmt::Debug,
    {
        let run = Steps::start(self);
        let span = run.span().clone();
        self.execute_steps(run, deadline, classify, op)
            .instrument(span)
            .await
    }

    /// The loop of [`Self::execute`], inside the run's `retry` span.
    async fn execute_steps<T, E, F, Fut, C>(
        &self,
        mut run: Steps,
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
        let bounded;
        let deadline = match self.config.overall_timeout {
            Some(limit) => {
                bounded = deadline.child(limit);
                &bounded
            }
            None => deadline,
        };
        let mut last_error: Option<E> = None;

        loop {
            // Never start an attempt past the deadline.
            if deadline.is_expired() {
                return Err(self.stop_at_deadline(&run, last_error));
            }
            let attempt = run.begin_attempt(self);

            let outcome = match self.config.per_attempt_timeout {
                Some(limit) => deadline.child(limit).timeout(op(attempt)).await,
                // Nothing to race against: skip the timer machinery.
                None if deadline.is_unbounded() => Ok(op(attempt).await),
                None => deadline.timeout(op(attempt)).await,
            };
            let hint = match outcome {
                Ok(Ok(value)) => {
                    run.on_success(self);
                    return Ok(value);
                }
                Ok(Err(error)) => {
                    let class = classify(&error);
                    if !class.is_retryable() {
                        run.on_permanent_failure(self, Some(&error));
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
                    return Err(self.stop_at_deadline(&run, last_error));
                }
                Err(_) => {
                    run.on_attempt_timeout(self);
                    None
                }
            };

            match run.on_retryable_failure(self, hint, deadline.remaining(), &last_error) {
                RetryDecision::Retry { delay } => {
                    if !delay.is_zero() {
                        self.clock.sleep(delay).await;
                    }
                }
                RetryDecision::Stop(kind) => return Err(stopped(kind, attempt, last_error)),
            }
        }
    }

    fn stop_at_deadline<E: fmt::Debug>(&self, run: &Steps, last_error: Option<E>) -> RetryError<E> {
        run.stop_at_deadline(self, &last_error);
        RetryError::DeadlineExceeded {
            attempts: run.attempts(),
            last_error,
        }
    }
}

/// The error of a run the engine stopped after a retryable failure.
fn stopped<E>(kind: RetryErrorKind, attempts: u32, last_error: Option<E>) -> RetryError<E> {
    match kind {
        RetryErrorKind::AttemptsExhausted => RetryError::AttemptsExhausted {
            attempts,
            last_error,
        },
        RetryErrorKind::BudgetExhausted => RetryError::BudgetExhausted {
            attempts,
            last_error,
        },
        // After a retryable failure the engine stops only for the three
        // reasons above and the deadline.
        RetryErrorKind::DeadlineExceeded | RetryErrorKind::NotRetryable => {
            RetryError::DeadlineExceeded {
                attempts,
                last_error,
            }
        }
    }
}
