//! # resilience-core
//!
//! Overload-protection building blocks for services that must survive their
//! dependencies failing: retry budgets, backoff with jitter, deadlines, a retry
//! executor, circuit breakers, concurrency limits with load shedding, rate
//! limiting, adaptive client throttling, crash-loop restart backoff and alert
//! signals.
//!
//! Every mechanism takes an injected [`clock::Clock`], so its time-dependent
//! behaviour is tested (and simulated) deterministically with a
//! [`clock::ManualClock`]. Every configuration is a plain `serde` struct whose
//! `Default` holds the reference parameters and which is validated into its
//! runtime type: invalid input is a [`ConfigError`], never a silent clamp.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use resilience_core::backoff::{Backoff, BackoffConfig, Jitter};
//! use resilience_core::clock::{Clock, ManualClock};
//!
//! let clock = ManualClock::new();
//! let mut backoff = Backoff::with_seed(
//!     BackoffConfig { jitter: Jitter::Full, ..BackoffConfig::default() },
//!     7,
//! )?;
//! let delay = backoff.next_delay().expect("unlimited attempts");
//! assert!(delay <= Duration::from_millis(100));
//! clock.advance(delay);
//! assert_eq!(clock.elapsed(), delay);
//! # Ok::<(), resilience_core::ConfigError>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

pub mod backoff;
pub mod breaker;
pub mod budget;
pub mod clock;
pub mod deadline;
mod error;
pub mod limit;
pub mod rate;
pub mod restart;
pub mod retry;
pub mod signal;
mod sync;
pub mod throttle;

pub use error::ConfigError;
