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
//! # Why: the 2019 incidents
//!
//! Every mechanism here answers a failure mode seen in two incidents (the
//! module docs say which one each addresses, and link here):
//!
//! - **February 2019, fleet replacement.** Draining old docker hosts moved
//!   apps in a surge onto the remaining ones. Every app start asked the
//!   per-host `node_modules` allocator for a tree at once, and past a
//!   concurrency threshold it handed out corrupted trees instead of making
//!   the surplus wait ([`limit`]). The hosts of the new fleet all booted
//!   within minutes and each called the DNS provider's API, which
//!   rate-limited the account and stalled the boots ([`rate`]). A disk-usage
//!   monitor hovering around its mark fired and resolved over and over,
//!   burying the alert that mattered ([`signal`]).
//! - **4 November 2019, API outage.** A release with an accidental deep
//!   clone exhausted the API servers' memory. The revert, 27 minutes later,
//!   did not help: the API proxies retried every failure at once, up to
//!   five times, so the recovering servers got up to six times the normal
//!   load, crashed on timeouts, were restarted straight into full traffic
//!   and crashed again, for six more hours — until proxy fleets that could
//!   start without receiving traffic were deployed. Retries bounded by a
//!   share of traffic ([`budget`], [`retry`]), breakers ([`breaker`]), load
//!   shedding ([`limit`]), client-side throttling ([`throttle`]), deadlines
//!   that stop work nobody waits for ([`deadline`]) and restarts that back
//!   off and warm up ([`restart`]) each break one link of that loop.
//!
//! # Features
//!
//! - `tower`: the `tower` module, tower `Layer`s over the same types —
//!   `RetryLayer` (a [`retry::RetryPolicy`] with its budget, backoff and
//!   deadline), `BreakerLayer` (a [`breaker::CircuitBreaker`]) and
//!   `LimitLayer` (a [`limit::ConcurrencyLimit`] that sheds load) — for
//!   hyper, axum and tonic stacks.
//! - `metrics`: every mechanism records counters and gauges of its decisions
//!   through the [`metrics`](https://docs.rs/metrics) facade, labelled with
//!   its instance name (see `docs/metrics.md` for the table). Handles are
//!   registered when an instance is built (or renamed with `named`), so
//!   **install the recorder before building instances**; instances built
//!   before it record into the no-op recorder. The library never installs a
//!   recorder. Without the feature no metrics code is compiled.
//!
//! # Names
//!
//! Every mechanism takes a name with a `named(InstanceName)` builder, or is
//! built from a [`Named`] configuration with `from_named`. The name is the
//! `name` field of every tracing event of the instance and the `name` label
//! of every metric it records (see [`name`]).
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
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod backoff;
pub mod breaker;
pub mod budget;
pub mod clock;
pub mod deadline;
mod error;
pub mod limit;
pub mod name;
mod obs;
pub mod rate;
pub mod restart;
pub mod retry;
pub mod signal;
mod stripe;
mod sync;
pub mod throttle;
#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub mod tower;

pub use error::ConfigError;
pub use name::{InstanceName, Named};

/// The examples of `README.md`, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
