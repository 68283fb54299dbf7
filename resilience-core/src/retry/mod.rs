//! An async retry executor that cannot turn an outage into a retry storm.
//!
//! # Why?
//!
//! Retrying every failure at once (immediately, up to 5 attempts) multiplies
//! the load on a dependency exactly when it is weakest, and keeps it there
//! after the cause is gone: aggressive proxy retries kept our API servers
//! down for six hours after the fix (see the [crate docs](crate)).
//!
//! [`RetryPolicy`] retries only when it can help and only as much as the
//! dependency can take:
//!
//! - **Classification**: only [`Retryable`] errors are retried (or those a
//!   classifier closure calls [`ErrorClass::Transient`]); a client error stops
//!   at once with [`RetryError::NotRetryable`].
//! - **Attempts**: at most [`RetryConfig::max_attempts`], the first included.
//! - **Backoff**: jittered exponential delays ([`crate::backoff`]) slept on
//!   the injected [`Clock`](crate::clock::Clock); seedable for reproducible
//!   simulations ([`RetryPolicy::with_seed`]).
//! - **Budget**: every first attempt deposits into a shared
//!   [`RetryBudget`](crate::budget::RetryBudget) (failed or not, so a full
//!   outage still allows `ratio` of the traffic), and every retry must
//!   withdraw from it *when it is decided*, before its backoff sleep, so
//!   retries waiting in backoff already count (Envoy #30205). A refusal stops
//!   with [`RetryError::BudgetExhausted`].
//! - **Server hints**: [`Retryable::retry_after`] (e.g. `Retry-After`) is
//!   honoured, waiting at least that long, capped at
//!   [`RetryConfig::max_retry_after`].
//! - **Deadline**: a [`Deadline`](crate::deadline::Deadline) bounds the whole
//!   loop ([`RetryPolicy::run_with_deadline`]): no attempt starts past it, a
//!   backoff that would end after it stops the loop at once, and an attempt
//!   still in flight when it passes is cancelled (linkerd #2369 kept retrying
//!   for five hours past a 5 s timeout). [`RetryConfig::overall_timeout`]
//!   bounds runs the same way when the caller has no deadline, and
//!   [`RetryConfig::per_attempt_timeout`] bounds each attempt.
//!
//! Callers that make the attempts themselves (an event loop in another
//! language, a state machine) drive the same decisions step by step through
//! [`RetryPolicy::start_run`] and [`RetryRun`].
//!
//! Each retry, budget denial and deadline stop emits a `tracing` event at
//! `DEBUG` with structured fields (`attempt`, `delay_ms`, `retry_after_ms`,
//! `error`, ...), and [`RetryPolicy::stats`] counts them for dashboards.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use resilience_core::budget::{RetryBudget, RetryBudgetConfig};
//! use resilience_core::clock::ManualClock;
//! use resilience_core::deadline::Deadline;
//! use resilience_core::retry::{RetryConfig, RetryError, RetryPolicy, Retryable};
//!
//! #[derive(Debug, PartialEq)]
//! struct Unavailable;
//! impl Retryable for Unavailable {
//!     fn is_retryable(&self) -> bool { true }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), resilience_core::ConfigError> {
//! let clock = ManualClock::new();
//! clock.set_auto_advance(true); // backoff sleeps complete at once, time is recorded
//! let budget = Arc::new(RetryBudget::with_clock(RetryBudgetConfig::default(), clock.clone())?);
//! let policy = RetryPolicy::new(RetryConfig { max_attempts: 4, ..RetryConfig::default() })?
//!     .with_clock(clock.clone())
//!     .with_budget(budget)
//!     .with_seed(42);
//!
//! // Fails twice, then succeeds on the third attempt.
//! let deadline = Deadline::after(clock.clone(), Duration::from_secs(5));
//! let value = policy
//!     .run_with_deadline(&deadline, |attempt| async move {
//!         if attempt < 3 { Err(Unavailable) } else { Ok(attempt) }
//!     })
//!     .await;
//! assert_eq!(value, Ok(3));
//! assert_eq!(policy.stats().retries, 2);
//! assert!(clock.elapsed() <= Duration::from_millis(300)); // full jitter: <= 100 ms + 200 ms
//!
//! // Always failing: gives up after 4 attempts, handing back the last error.
//! let err = policy.run(|_| async { Err::<(), _>(Unavailable) }).await.unwrap_err();
//! assert!(matches!(err, RetryError::AttemptsExhausted { attempts: 4, last_error: Some(Unavailable) }));
//! # Ok(())
//! # }
//! ```

mod classify;
mod config;
mod error;
mod execute;
mod policy;
mod run;
mod stats;

pub use classify::{ErrorClass, Retryable};
pub use config::RetryConfig;
pub use error::{RetryError, RetryErrorKind};
pub use policy::RetryPolicy;
pub use run::{RetryDecision, RetryRun};
pub use stats::RetryStats;
