//! Behaviour of `RetryPolicy::run*`: attempts, backoff, budget, deadline and
//! server hints, all on a `ManualClock` (no test sleeps in real time).
// Test helpers outside `#[test]` functions may unwrap and index, too.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use resilience_core::backoff::{Backoff, BackoffConfig, Jitter};
use resilience_core::budget::{RetryBudget, RetryBudgetConfig};
use resilience_core::clock::{Clock, ManualClock};
use resilience_core::deadline::Deadline;
use resilience_core::retry::{
    ErrorClass, RetryConfig, RetryError, RetryErrorKind, RetryPolicy, Retryable,
};

#[derive(Debug, Clone, PartialEq, Eq)]
enum TestError {
    /// Transient; carries the attempt that failed.
    Transient(u32),
    /// A client error: retrying cannot help.
    Permanent,
    /// Overloaded, with a `Retry-After` hint.
    Busy(Duration),
}

impl Retryable for TestError {
    fn is_retryable(&self) -> bool {
        !matches!(self, TestError::Permanent)
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            TestError::Busy(after) => Some(*after),
            _ => None,
        }
    }
}

mod support {
    pub(crate) mod retry;
}
use support::retry::{auto_clock, fixed_backoff, policy_with, tiny_budget};

/// Withdraws until the budget refuses (bounded), returning how many retries
/// it still had.
fn drain(budget: &RetryBudget) -> u32 {
    let mut granted = 0;
    while granted < 10_000 && budget.try_withdraw() {
        granted += 1;
    }
    granted
}

#[tokio::test]
async fn succeeds_on_the_first_try_without_sleeping() {
    let clock = auto_clock();
    let policy = policy_with(&clock, 3, fixed_backoff(100));
    let result: Result<u32, RetryError<TestError>> =
        policy.run(|attempt| async move { Ok(attempt) }).await;
    assert_eq!(result, Ok(1));
    assert_eq!(clock.elapsed(), Duration::ZERO);
    let stats = policy.stats();
    assert_eq!(
        (stats.runs, stats.attempts, stats.retries, stats.successes),
        (1, 1, 0, 1)
    );
}

#[tokio::test]
async fn retries_transient_errors_until_success() {
    let clock = auto_clock();
    let policy = policy_with(&clock, 5, fixed_backoff(100));
    let result = policy
        .run(|attempt| async move {
            if attempt < 3 {
                Err(TestError::Transient(attempt))
            } else {
                Ok("done")
            }
        })
        .await;
    assert_eq!(result, Ok("done"));
    // 100 ms + 200 ms of backoff, slept on the clock.
    assert_eq!(clock.elapsed(), Duration::from_millis(300));
    assert_eq!(policy.stats().retries, 2);
}

#[tokio::test]
async fn gives_up_after_max_attempts_with_the_last_error() {
    let clock = auto_clock();
    let policy = policy_with(&clock, 4, fixed_backoff(10));
    let calls = AtomicU32::new(0);
    let err = policy
        .run(|attempt| {
            calls.fetch_add(1, Ordering::Relaxed);
            async move { Err::<(), _>(TestError::Transient(attempt)) }
        })
        .await
        .unwrap_err();
    assert_eq!(calls.load(Ordering::Relaxed), 4);
    assert_eq!(
        err,
        RetryError::AttemptsExhausted {
            attempts: 4,
            last_error: Some(TestError::Transient(4))
        }
    );
    assert_eq!(err.kind(), RetryErrorKind::AttemptsExhausted);
    assert_eq!(policy.stats().exhausted, 1);
}

#[tokio::test]
async fn one_attempt_disables_retries() {
    let clock = auto_clock();
    let policy = policy_with(&clock, 1, fixed_backoff(10));
    let err = policy
        .run(|attempt| async move { Err::<(), _>(TestError::Transient(attempt)) })
        .await
        .unwrap_err();
    assert_eq!(err.attempts(), 1);
    assert_eq!(clock.elapsed(), Duration::ZERO);
}

#[tokio::test]
async fn non_retryable_error_stops_at_once() {
    let clock = auto_clock();
    let policy = policy_with(&clock, 5, fixed_backoff(100));
    let err = policy
        .run(|_| async { Err::<(), _>(TestError::Permanent) })
        .await
        .unwrap_err();
    assert_eq!(
        err,
        RetryError::NotRetryable {
            attempts: 1,
            error: TestError::Permanent
        }
    );
    assert_eq!(clock.elapsed(), Duration::ZERO);
    assert_eq!(policy.stats().not_retryable, 1);
}

#[tokio::test]
async fn classifier_closure_handles_foreign_error_types() {
    let clock = auto_clock();
    let policy = policy_with(&clock, 5, fixed_backoff(100));
    // `&str` does not implement `Retryable`: classify by content.
    let classify = |e: &&str| {
        if e.starts_with("503") {
            ErrorClass::TransientAfter(Duration::from_secs(1))
        } else {
            ErrorClass::Permanent
        }
    };
    let ok = policy
        .run_classified(classify, |attempt| async move {
            if attempt == 1 {
                Err("503 busy")
            } else {
                Ok(attempt)
            }
        })
        .await;
    assert_eq!(ok, Ok(2));
    assert_eq!(clock.elapsed(), Duration::from_secs(1));
    let err = policy
        .run_classified(classify, |_| async { Err::<(), _>("400 bad request") })
        .await
        .unwrap_err();
    assert_eq!(err.kind(), RetryErrorKind::NotRetryable);
}

#[tokio::test]
async fn budget_denial_stops_retrying() {
    let clock = auto_clock();
    // Ratio 0: only the floor of 1 retry/s over a 1 s window.
    let budget = tiny_budget(&clock, 0.0);
    let policy = policy_with(&clock, 10, fixed_backoff(1)).with_budget(budget.clone());
    let err = policy
        .run(|attempt| async move { Err::<(), _>(TestError::Transient(attempt)) })
        .await
        .unwrap_err();
    assert_eq!(
        err,
        RetryError::BudgetExhausted {
            attempts: 2,
            last_error: Some(TestError::Transient(2))
        }
    );
    assert_eq!(policy.stats().budget_denials, 1);
    assert!(!budget.try_withdraw(), "the floor is used up");
}

#[tokio::test]
async fn budget_is_asked_before_the_backoff_sleep() {
    let clock = auto_clock();
    let budget = tiny_budget(&clock, 0.0);
    // A long backoff: the denial must come without sleeping it.
    let policy = policy_with(&clock, 10, fixed_backoff(500)).with_budget(budget);
    let err = policy
        .run(|attempt| async move { Err::<(), _>(TestError::Transient(attempt)) })
        .await
        .unwrap_err();
    assert_eq!(err.kind(), RetryErrorKind::BudgetExhausted);
    assert_eq!(err.attempts(), 2);
    // One granted retry slept 500 ms; the denied one did not sleep at all
    // (it would have slept another second).
    assert_eq!(clock.elapsed(), Duration::from_millis(500));
}

#[tokio::test]
async fn every_first_attempt_deposits_even_when_it_fails() {
    let clock = auto_clock();
    let config = RetryBudgetConfig {
        ttl: Duration::from_secs(10),
        min_retries_per_sec: 1,
        retry_ratio: 0.5,
    };
    let budget = Arc::new(RetryBudget::with_clock(config.clone(), clock.clone()).unwrap());
    let policy = policy_with(&clock, 3, fixed_backoff(1)).with_budget(budget.clone());
    // A full outage of client errors: no retries, but 20 original requests.
    for _ in 0..20 {
        let _ = policy
            .run(|_| async { Err::<(), _>(TestError::Permanent) })
            .await;
    }
    // Same as a budget that saw 20 deposits by hand...
    let reference = RetryBudget::with_clock(config.clone(), clock.clone()).unwrap();
    for _ in 0..20 {
        reference.deposit();
    }
    let fresh = RetryBudget::with_clock(config.clone(), clock.clone()).unwrap();
    let granted = drain(&budget);
    assert_eq!(granted, drain(&reference));
    // ...and more than the floor alone allows.
    assert!(granted > drain(&fresh), "deposits must raise the budget");
}

#[tokio::test]
async fn successful_first_attempts_deposit_and_retries_withdraw() {
    let clock = auto_clock();
    let config = RetryBudgetConfig {
        ttl: Duration::from_secs(10),
        min_retries_per_sec: 1,
        retry_ratio: 1.0,
    };
    let budget = Arc::new(RetryBudget::with_clock(config.clone(), clock.clone()).unwrap());
    let policy = policy_with(&clock, 3, fixed_backoff(1)).with_budget(budget.clone());
    for _ in 0..5 {
        policy
            .run(|_| async { Ok::<_, TestError>(()) })
            .await
            .unwrap();
    }
    // One run that needs two retries.
    policy
        .run(|attempt| async move {
            if attempt < 3 {
                Err(TestError::Transient(attempt))
            } else {
                Ok(())
            }
        })
        .await
        .unwrap();
    let reference = RetryBudget::with_clock(config.clone(), clock.clone()).unwrap();
    for _ in 0..6 {
        reference.deposit();
    }
    assert_eq!(drain(&budget) + 2, drain(&reference));
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let clock = auto_clock();
    let policy = policy_with(&clock, 3, fixed_backoff(100));
    let result = policy
        .run(|attempt| async move {
            if attempt == 1 {
                Err(TestError::Busy(Duration::from_secs(3)))
            } else {
                Ok(())
            }
        })
        .await;
    assert_eq!(result, Ok(()));
    assert_eq!(clock.elapsed(), Duration::from_secs(3));
}

#[tokio::test]
async fn retry_after_is_capped_by_max_retry_after() {
    let clock = auto_clock();
    let policy = RetryPolicy::new(RetryConfig {
        max_attempts: 3,
        backoff: fixed_backoff(100),
        max_retry_after: Duration::from_secs(5),
        ..RetryConfig::default()
    })
    .unwrap()
    .with_clock(clock.clone());
    let result = policy
        .run(|attempt| async move {
            if attempt == 1 {
                Err(TestError::Busy(Duration::from_secs(3_600)))
            } else {
                Ok(())
            }
        })
        .await;
    assert_eq!(result, Ok(()));
    assert_eq!(clock.elapsed(), Duration::from_secs(5));
}

#[tokio::test]
async fn backoff_wins_over_a_shorter_hint() {
    let clock = auto_clock();
    let policy = policy_with(&clock, 3, fixed_backoff(100));
    policy
        .run(|attempt| async move {
            if attempt == 1 {
                Err(TestError::Busy(Duration::from_millis(10)))
            } else {
                Ok(())
            }
        })
        .await
        .unwrap();
    assert_eq!(clock.elapsed(), Duration::from_millis(100));
}

#[tokio::test]
async fn deadline_stops_instead_of_sleeping_past_it() {
    let clock = auto_clock();
    // Delays 1 s, 2 s, 4 s ...; the deadline is at 2.5 s.
    let policy = policy_with(&clock, 10, fixed_backoff(1_000));
    let deadline = Deadline::after(clock.clone(), Duration::from_millis(2_500));
    let err = policy
        .run_with_deadline(&deadline, |attempt| async move {
            Err::<(), _>(TestError::Transient(attempt))
        })
        .await
        .unwrap_err();
    assert_eq!(
        err,
        RetryError::DeadlineExceeded {
            attempts: 2,
            last_error: Some(TestError::Transient(2))
        }
    );
    // Stopped right after attempt 2 at 1 s, instead of sleeping to 3 s.
    assert_eq!(clock.elapsed(), Duration::from_secs(1));
    assert_eq!(policy.stats().deadline_stops, 1);
}

#[tokio::test]
async fn expired_deadline_never_starts_an_attempt() {
    let clock = auto_clock();
    let policy = policy_with(&clock, 3, fixed_backoff(100));
    let deadline = Deadline::after(clock.clone(), Duration::from_secs(1));
    clock.advance(Duration::from_secs(1));
    let calls = AtomicU32::new(0);
    let err = policy
        .run_with_deadline(&deadline, |_| {
            calls.fetch_add(1, Ordering::Relaxed);
            async { Ok::<(), TestError>(()) }
        })
        .await
        .unwrap_err();
    assert_eq!(calls.load(Ordering::Relaxed), 0);
    assert_eq!(
        err,
        RetryError::DeadlineExceeded {
            attempts: 0,
            last_error: None
        }
    );
}

/// Sets its flag when dropped: shows an attempt future was cancelled.
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

#[tokio::test]
async fn deadline_cancels_an_attempt_in_flight() {
    let clock = auto_clock();
    let policy = policy_with(&clock, 3, fixed_backoff(100));
    let deadline = Deadline::after(clock.clone(), Duration::from_secs(5));
    let dropped = Arc::new(AtomicBool::new(false));
    let flag = dropped.clone();
    let err = policy
        .run_with_deadline(&deadline, move |_| {
            let guard = DropFlag(flag.clone());
            async move {
                let _guard = guard;
                futures::future::pending::<Result<(), TestError>>().await
            }
        })
        .await
        .unwrap_err();
    assert_eq!(
        err,
        RetryError::DeadlineExceeded {
            attempts: 1,
            last_error: None
        }
    );
    assert!(dropped.load(Ordering::Relaxed), "the attempt was dropped");
    assert_eq!(clock.elapsed(), Duration::from_secs(5));
}

/// linkerd #2369: slow attempts that keep failing must not outlive the
/// caller's deadline. Driven by `advance_to_next_deadline`, so the deadline
/// timer really wakes the task.
#[tokio::test]
async fn slow_failing_attempts_are_bounded_by_the_deadline() {
    let clock = ManualClock::new();
    let policy = policy_with(&clock, 100, fixed_backoff(100));
    let deadline = Deadline::after(clock.clone(), Duration::from_secs(5));
    let op_clock = clock.clone();
    let task = tokio::spawn(async move {
        policy
            .run_with_deadline(&deadline, move |attempt| {
                let clock = op_clock.clone();
                async move {
                    // Each attempt takes 2 s and then fails.
                    clock.sleep(Duration::from_secs(2)).await;
                    Err::<(), _>(TestError::Transient(attempt))
                }
            })
            .await
    });
    while !task.is_finished() {
        tokio::task::yield_now().await;
        clock.advance_to_next_deadline();
    }
    let err = task.await.unwrap().unwrap_err();
    // Attempt 1 ends at 2 s, sleeps 100 ms, attempt 2 ends at 4.1 s, sleeps
    // 200 ms, attempt 3 starts at 4.3 s and is cut off at 5 s.
    assert_eq!(
        err,
        RetryError::DeadlineExceeded {
            attempts: 3,
            last_error: Some(TestError::Transient(2))
        }
    );
    assert_eq!(clock.elapsed(), Duration::from_secs(5));
    assert_eq!(clock.sleepers(), 0, "no timer or attempt left behind");
}

#[tokio::test]
async fn per_attempt_timeout_retries_a_hung_attempt() {
    let clock = auto_clock();
    let policy = RetryPolicy::new(RetryConfig {
        max_attempts: 3,
        backoff: fixed_backoff(100),
        per_attempt_timeout: Some(Duration::from_secs(1)),
        ..RetryConfig::default()
    })
    .unwrap()
    .with_clock(clock.clone());
    let result = policy
        .run(
            |attempt| -> Pin<Box<dyn Future<Output = Result<u32, TestError>> + Send>> {
                if attempt == 1 {
                    Box::pin(futures::future::pending())
                } else {
                    Box::pin(async move { Ok(attempt) })
                }
            },
        )
        .await;
    assert_eq!(result, Ok(2));
    assert_eq!(clock.elapsed(), Duration::from_millis(1_100));
    assert_eq!(policy.stats().attempt_timeouts, 1);
}

#[tokio::test]
async fn attempts_that_all_time_out_exhaust_without_an_error() {
    let clock = auto_clock();
    let policy = RetryPolicy::new(RetryConfig {
        max_attempts: 2,
        backoff: fixed_backoff(100),
        per_attempt_timeout: Some(Duration::from_secs(1)),
        ..RetryConfig::default()
    })
    .unwrap()
    .with_clock(clock.clone());
    let err = policy
        .run(|_| futures::future::pending::<Result<(), TestError>>())
        .await
        .unwrap_err();
    assert_eq!(
        err,
        RetryError::AttemptsExhausted {
            attempts: 2,
            last_error: None
        }
    );
}

#[tokio::test]
async fn per_attempt_timeout_never_extends_the_deadline() {
    let clock = auto_clock();
    let policy = RetryPolicy::new(RetryConfig {
        max_attempts: 3,
        backoff: fixed_backoff(100),
        per_attempt_timeout: Some(Duration::from_secs(10)),
        ..RetryConfig::default()
    })
    .unwrap()
    .with_clock(clock.clone());
    let deadline = Deadline::after(clock.clone(), Duration::from_secs(2));
    let err = policy
        .run_with_deadline(&deadline, |_| {
            futures::future::pending::<Result<(), TestError>>()
        })
        .await
        .unwrap_err();
    assert_eq!(err.kind(), RetryErrorKind::DeadlineExceeded);
    assert_eq!(clock.elapsed(), Duration::from_secs(2));
}

#[tokio::test]
async fn overall_timeout_bounds_a_run_without_a_deadline() {
    let clock = auto_clock();
    let policy = RetryPolicy::new(RetryConfig {
        max_attempts: 3,
        backoff: fixed_backoff(100),
        overall_timeout: Some(Duration::from_secs(3)),
        ..RetryConfig::default()
    })
    .unwrap()
    .with_clock(clock.clone());
    let err = policy
        .run(|_| futures::future::pending::<Result<(), TestError>>())
        .await
        .unwrap_err();
    assert_eq!(
        err,
        RetryError::DeadlineExceeded {
            attempts: 1,
            last_error: None
        }
    );
    assert_eq!(clock.elapsed(), Duration::from_secs(3));

    // With a caller's deadline, the earlier of the two applies.
    let later = Deadline::after(clock.clone(), Duration::from_secs(60));
    let start = clock.now();
    let _ = policy
        .run_with_deadline(&later, |_| {
            futures::future::pending::<Result<(), TestError>>()
        })
        .await;
    assert_eq!(clock.now() - start, Duration::from_secs(3));
    let earlier = Deadline::after(clock.clone(), Duration::from_secs(1));
    let start = clock.now();
    let _ = policy
        .run_with_deadline(&earlier, |_| {
            futures::future::pending::<Result<(), TestError>>()
        })
        .await;
    assert_eq!(clock.now() - start, Duration::from_secs(1));
}

#[tokio::test]
async fn backoff_sleeps_follow_the_seeded_sequence() {
    let clock = auto_clock();
    let backoff = BackoffConfig {
        jitter: Jitter::Full,
        ..fixed_backoff(100)
    };
    let policy = policy_with(&clock, 6, backoff.clone()).with_seed(99);
    let mut runs = Vec::new();
    for run in 0..2 {
        let starts = Mutex::new(Vec::new());
        let _ = policy
            .run(|attempt| {
                starts.lock().unwrap().push(clock.now());
                async move { Err::<(), _>(TestError::Transient(attempt)) }
            })
            .await;
        let starts = starts.into_inner().unwrap();
        let slept: Vec<Duration> = starts.windows(2).map(|w| w[1] - w[0]).collect();
        let expected: Vec<Duration> =
            Backoff::with_seed(backoff.clone(), policy.run_seed(run).unwrap())
                .unwrap()
                .take(5)
                .collect();
        assert_eq!(slept, expected, "run {run}");
        runs.push(slept);
    }
    assert_ne!(runs[0], runs[1], "each run draws its own jitter");
    // The same seed reproduces the same sleeps in a new policy.
    let again = policy_with(&clock, 6, backoff.clone()).with_seed(99);
    let start = clock.now();
    let _ = again
        .run(|attempt| async move { Err::<(), _>(TestError::Transient(attempt)) })
        .await;
    assert_eq!(clock.now() - start, runs[0].iter().sum::<Duration>());
}

#[test]
fn run_futures_are_send() {
    fn send<T: Send>(_: &T) {}
    let clock = ManualClock::new();
    let policy = policy_with(&clock, 3, fixed_backoff(1)).with_budget(tiny_budget(&clock, 0.1));
    let deadline = Deadline::after(clock.clone(), Duration::from_secs(1));
    send(&policy.run(|_| async { Ok::<(), TestError>(()) }));
    send(&policy.run_with_deadline(&deadline, |_| async { Ok::<(), TestError>(()) }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_policy_serves_concurrent_runs() {
    let clock = auto_clock();
    let policy = policy_with(&clock, 3, fixed_backoff(1)).with_seed(5);
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let policy = policy.clone();
            tokio::spawn(async move {
                policy
                    .run(|attempt| async move {
                        if attempt < 2 {
                            Err(TestError::Transient(attempt))
                        } else {
                            Ok(())
                        }
                    })
                    .await
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let stats = policy.stats();
    assert_eq!((stats.runs, stats.attempts, stats.retries), (16, 32, 16));
}

#[tokio::test]
async fn a_batch_of_first_attempt_successes_counts_as_that_many_runs() {
    let clock = auto_clock();
    let batched_budget = tiny_budget(&clock, 0.5);
    let single_budget = tiny_budget(&clock, 0.5);
    let batched = policy_with(&clock, 3, fixed_backoff(100)).with_budget(batched_budget.clone());
    let single = policy_with(&clock, 3, fixed_backoff(100)).with_budget(single_budget.clone());
    batched.record_first_attempt_successes(6);
    for _ in 0..6 {
        let result: Result<(), RetryError<TestError>> = single.run(|_| async { Ok(()) }).await;
        assert!(result.is_ok());
    }
    assert_eq!(batched.stats(), single.stats());
    assert_eq!(batched_budget.stats(), single_budget.stats());
    assert_eq!(drain(&batched_budget), drain(&single_budget));
    batched.record_first_attempt_successes(0);
    assert_eq!(batched.stats().runs, 6);
}
