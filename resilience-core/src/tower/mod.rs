//! tower [`Layer`](tower_layer::Layer)s over the crate's mechanisms, for
//! hyper, axum and tonic stacks (feature `tower`).
//!
//! # Why layers?
//!
//! A retry budget, a circuit breaker and load shedding only help if every
//! client uses them (see the [crate docs](crate) for the outage they answer),
//! and in Rust services clients are tower stacks. These layers put the
//! crate's types into such a stack without new semantics:
//!
//! - [`RetryLayer`]: a [`RetryPolicy`](crate::retry::RetryPolicy) — attempts,
//!   jittered backoff, a shared [`RetryBudget`](crate::budget::RetryBudget),
//!   a [`Deadline`](crate::deadline::Deadline) bounding the whole loop and
//!   `Retry-After` hints. A [`RetryClassifier`] decides which responses
//!   (503) and errors are retryable, as an
//!   [`ErrorClass`](crate::retry::ErrorClass). Requests must be `Clone`.
//! - [`BreakerLayer`]: a [`CircuitBreaker`](crate::breaker::CircuitBreaker),
//!   acquired before each call and recorded when its future completes
//!   (nothing is recorded for a dropped future). A [`BreakerClassifier`]
//!   says which outcomes are failures (default: errors).
//! - [`LimitLayer`]: a [`ConcurrencyLimit`](crate::limit::ConcurrencyLimit)
//!   that sheds calls beyond the limit at once with
//!   [`Overloaded`](crate::limit::Overloaded) and holds each permit until the
//!   response future completes or is dropped.
//!
//! # Errors
//!
//! Every service returns a [`BoxError`] (`Box<dyn Error + Send + Sync>`),
//! like tower's own middleware: the inner error boxed, or one of
//! [`Overloaded`](crate::limit::Overloaded),
//! [`BreakerOpen`](crate::breaker::BreakerOpen) and [`RetryGaveUp`]. Boxed
//! errors let the layers stack in any order and let an outer layer classify
//! an inner one's refusals (the default retry classifier retries a shed
//! after its `retry_after`, but not an open breaker); downcast to inspect
//! them, or read the wait hint with [`retry_after_hint`].
//!
//! All services are `Clone` (layers share one policy, breaker and limit
//! among their services and clones) and their futures are `Send` when the
//! inner service's are.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use std::sync::atomic::{AtomicU32, Ordering};
//! use std::time::Duration;
//! use resilience_core::breaker::{BreakerConfig, CircuitBreaker};
//! use resilience_core::budget::{RetryBudget, RetryBudgetConfig};
//! use resilience_core::clock::ManualClock;
//! use resilience_core::limit::{ConcurrencyLimit, ConcurrencyLimitConfig};
//! use resilience_core::retry::{RetryConfig, RetryPolicy};
//! use resilience_core::tower::{BoxError, BreakerLayer, LimitLayer, RetryLayer};
//! use tower::{Service, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), BoxError> {
//! let clock = ManualClock::new();
//! clock.set_auto_advance(true); // backoff sleeps end at once in this example
//! let budget = Arc::new(RetryBudget::with_clock(RetryBudgetConfig::default(), clock.clone())?);
//! let policy = RetryPolicy::new(RetryConfig::default())?
//!     .with_clock(clock.clone())
//!     .with_budget(budget);
//! let breaker = CircuitBreaker::with_clock(BreakerConfig::default(), clock.clone())?;
//! let limit = ConcurrencyLimit::with_clock(ConcurrencyLimitConfig::default(), clock.clone())?;
//!
//! // A dependency that fails the first call of every request.
//! let calls = Arc::new(AtomicU32::new(0));
//! let counter = calls.clone();
//! let flaky = tower::service_fn(move |name: &'static str| {
//!     let n = counter.fetch_add(1, Ordering::SeqCst);
//!     async move {
//!         if n % 2 == 0 { Err::<String, BoxError>("connection reset".into()) }
//!         else { Ok(format!("hello {name}")) }
//!     }
//! });
//!
//! let retry = RetryLayer::new(policy);
//! let mut client = ServiceBuilder::new()
//!     .layer(retry.clone())
//!     .layer(BreakerLayer::new(breaker))
//!     .layer(LimitLayer::new(limit))
//!     .service(flaky);
//!
//! let reply = client.ready().await?.call("world").await?;
//! assert_eq!(reply, "hello world");
//! assert_eq!(retry.policy().stats().retries, 1);
//! # Ok(())
//! # }
//! ```

mod breaker;
mod error;
mod limit;
mod retry;

pub use breaker::{BreakerClassifier, BreakerFuture, BreakerLayer, BreakerService, ErrorIsFailure};
pub use error::{BoxError, RetryGaveUp, retry_after_hint};
pub use limit::{LimitFuture, LimitLayer, LimitService};
#[allow(deprecated)]
pub use retry::RetryDecision;
pub use retry::{
    DefaultRetryClassifier, NoDeadline, RequestDeadline, RetryClassifier, RetryFuture, RetryLayer,
    RetryService, classify_error, parse_retry_after,
};
