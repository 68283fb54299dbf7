//! Invariants of the retry loop over random error sequences, attempt
//! durations, hints and deadlines.
// Test helpers outside `#[test]` functions may unwrap and index, too.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use resilience_core::backoff::{BackoffConfig, Jitter};
use resilience_core::clock::{Clock, ManualClock};
use resilience_core::deadline::Deadline;
use resilience_core::retry::{RetryConfig, RetryError, RetryPolicy, Retryable};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Outcome {
    Ok,
    Transient,
    Permanent,
    Busy(u64),
    /// Never finishes on its own.
    Hang,
}

#[derive(Debug, Clone, PartialEq)]
struct Failure(Outcome);

impl Retryable for Failure {
    fn is_retryable(&self) -> bool {
        self.0 != Outcome::Permanent
    }

    fn retry_after(&self) -> Option<Duration> {
        match self.0 {
            Outcome::Busy(ms) => Some(Duration::from_millis(ms)),
            _ => None,
        }
    }
}

fn outcome() -> impl Strategy<Value = (Outcome, u64)> {
    let kind = prop_oneof![
        2 => Just(Outcome::Ok),
        6 => Just(Outcome::Transient),
        1 => Just(Outcome::Permanent),
        2 => (0u64..3_000).prop_map(Outcome::Busy),
        1 => Just(Outcome::Hang),
    ];
    // (outcome, how long the attempt takes in ms)
    (kind, 0u64..1_500)
}

struct Run {
    result: Result<u32, RetryError<Failure>>,
    starts: Vec<Instant>,
    end: Instant,
}

fn simulate(
    outcomes: &[(Outcome, u64)],
    max_attempts: u32,
    deadline_ms: u64,
    per_attempt_ms: Option<u64>,
    overall_ms: Option<u64>,
    seed: u64,
) -> (Run, Instant) {
    let clock = ManualClock::new();
    let policy = RetryPolicy::new(RetryConfig {
        max_attempts,
        backoff: BackoffConfig {
            base: Duration::from_millis(50),
            max: Duration::from_secs(2),
            factor: 2.0,
            jitter: Jitter::Full,
            max_attempts: None,
        },
        max_retry_after: Duration::from_secs(1),
        per_attempt_timeout: per_attempt_ms.map(Duration::from_millis),
        overall_timeout: overall_ms.map(Duration::from_millis),
    })
    .unwrap()
    .with_clock(clock.clone())
    .with_seed(seed);
    let deadline = Deadline::after(clock.clone(), Duration::from_millis(deadline_ms));
    // The effective deadline: the earlier of the caller's and the overall
    // timeout's.
    let deadline_at = match overall_ms {
        Some(ms) => deadline
            .instant()
            .unwrap()
            .min(clock.now() + Duration::from_millis(ms)),
        None => deadline.instant().unwrap(),
    };
    let starts = Arc::new(Mutex::new(Vec::new()));
    let outcomes = outcomes.to_vec();

    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let task_clock = clock.clone();
    let task_starts = starts.clone();
    let driver = clock.clone();
    let result = runtime.block_on(async move {
        let task = tokio::spawn(async move {
            policy
                .run_with_deadline(&deadline, move |attempt| {
                    let clock = task_clock.clone();
                    task_starts.lock().unwrap().push(clock.now());
                    let (outcome, took_ms) = outcomes[(attempt as usize - 1) % outcomes.len()];
                    async move {
                        if outcome == Outcome::Hang {
                            futures::future::pending::<()>().await;
                        }
                        clock.sleep(Duration::from_millis(took_ms)).await;
                        match outcome {
                            Outcome::Ok => Ok(attempt),
                            other => Err(Failure(other)),
                        }
                    }
                })
                .await
        });
        while !task.is_finished() {
            tokio::task::yield_now().await;
            driver.advance_to_next_deadline();
        }
        task.await.unwrap()
    });
    let starts = starts.lock().unwrap().clone();
    let end = clock.now();
    (
        Run {
            result,
            starts,
            end,
        },
        deadline_at,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn attempts_stay_within_max_attempts_and_the_deadline(
        outcomes in prop::collection::vec(outcome(), 1..12),
        max_attempts in 1u32..8,
        deadline_ms in 0u64..6_000,
        per_attempt_ms in prop::option::of(1u64..2_000),
        overall_ms in prop::option::of(1u64..6_000),
        seed in any::<u64>(),
    ) {
        let (run, deadline_at) =
            simulate(&outcomes, max_attempts, deadline_ms, per_attempt_ms, overall_ms, seed);
        let attempts = u32::try_from(run.starts.len()).unwrap();
        prop_assert!(attempts <= max_attempts);
        for start in &run.starts {
            prop_assert!(*start < deadline_at, "an attempt started at or past the deadline");
        }
        // The loop never runs past the deadline: attempts are raced against
        // it and backoffs that would end after it are not slept.
        prop_assert!(run.end <= deadline_at);
        match &run.result {
            Ok(attempt) => prop_assert_eq!(*attempt, attempts),
            Err(err) => prop_assert_eq!(err.attempts(), attempts),
        }
        if let Err(RetryError::AttemptsExhausted { .. }) = run.result {
            prop_assert_eq!(attempts, max_attempts);
        }
        if let Err(RetryError::NotRetryable { error, .. }) = &run.result {
            prop_assert_eq!(error, &Failure(Outcome::Permanent));
        }
    }
}
