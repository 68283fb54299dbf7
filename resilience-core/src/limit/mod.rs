//! Concurrency limits with load shedding: a bulkhead with a bounded FIFO
//! wait queue ([`ConcurrencyLimit`]) and a limit that adapts itself to the
//! latency and drops it observes ([`AdaptiveLimit`]).
//!
//! # Why shed load?
//!
//! A component that accepts more concurrent work than it can finish fails
//! worse than one that makes the surplus wait or refuses it (see the
//! [crate docs](crate)). A limit with a bounded queue makes work
//! *slower* under a surge, never wrong; a server that refuses what it cannot
//! serve with a fast 503 (and a `Retry-After` hint) keeps serving the rest
//! and recovers when the load drops.
//!
//! A [`ConcurrencyLimit`] admits at most `max_concurrent` holders of a
//! [`ConcurrencyPermit`] at once. [`ConcurrencyLimit::acquire`] waits in a
//! FIFO queue of at most `max_queued` callers for at most `queue_timeout`;
//! everything beyond is shed at once with [`Overloaded`], whose `retry_after`
//! estimates when capacity will be free. Dropping a permit hands its
//! capacity to the first waiter. The uncontended path is a single
//! compare-and-swap; a short lock is taken only when callers queue.
//!
//! The right limit is rarely known in advance and changes with the
//! dependency's health. An [`AdaptiveLimit`] wraps a `ConcurrencyLimit`
//! and moves its limit from the outcome each [`AdaptivePermit`] reports,
//! with one of two algorithms from Netflix's `concurrency-limits`:
//! [AIMD](AimdConfig) (grow by one per fast success, shrink by a ratio on a
//! drop or a slow response) or [Gradient2](Gradient2Config) (shrink as the
//! short-term latency rises above its long-term average, i.e. as queues
//! build up, before anything fails).
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use resilience_core::clock::ManualClock;
//! use resilience_core::limit::{ConcurrencyLimit, ConcurrencyLimitConfig};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let clock = ManualClock::new();
//! let limit = ConcurrencyLimit::with_clock(
//!     ConcurrencyLimitConfig {
//!         max_concurrent: 2,
//!         max_queued: 0, // no queue: shed at once when full
//!         ..ConcurrencyLimitConfig::default()
//!     },
//!     clock,
//! )?;
//! let a = limit.acquire().await?;
//! let b = limit.try_acquire()?;
//! assert_eq!(limit.in_flight(), 2);
//!
//! // Full: the third request gets a fast refusal with a hint.
//! let shed = limit.try_acquire().unwrap_err();
//! assert!(shed.retry_after >= Duration::from_millis(10));
//!
//! drop(a); // releases capacity
//! let _c = limit.try_acquire()?;
//! drop(b);
//! # Ok(())
//! # }
//! ```

mod adaptive;
mod aimd;
mod concurrency;
mod config;
mod error;
mod gradient;
mod permit;
mod sample;
mod state;

pub use adaptive::{AdaptiveLimit, AdaptiveLimitConfig, AdaptivePermit, LimitAlgorithm};
pub use aimd::AimdConfig;
pub use concurrency::ConcurrencyLimit;
pub use config::{ConcurrencyLimitConfig, MAX_CONCURRENT};
pub use error::Overloaded;
pub use gradient::Gradient2Config;
pub use permit::ConcurrencyPermit;
