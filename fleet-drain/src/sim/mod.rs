//! An in-memory fleet with a host model, and a driver that runs async code
//! on simulated time.
//!
//! # Why a simulated fleet?
//!
//! The February 2019 incident ([crate docs](crate)): the per-host component
//! that prepares an app's start (its `node_modules`) corrupted starts once
//! too many ran at once. [`SimFleet`] models exactly
//! that: an app start takes [`SimConfig::start_duration`] of (injected)
//! clock time, and its failure probability rises with the number of
//! concurrent starts on the receiving host beyond
//! [`SimConfig::safe_concurrent_starts`]:
//!
//! ```text
//! p(fail) = min(max_failure_probability,
//!               base_failure_probability
//!               + failure_probability_per_extra_start * max(0, concurrent - safe_concurrent_starts))
//! ```
//!
//! where `concurrent` counts the starts in progress on that host including
//! the new one. Randomness is a seeded [`fastrand::Rng`], so a simulation is
//! reproducible. A version can be marked bad
//! ([`SimFleet::set_version_healthy`]): apps on hosts running it while it
//! receives traffic report [`AppState::Unhealthy`](crate::fleet::AppState::Unhealthy).
//!
//! [`run`] drives a future on a [`ManualClock`](resilience_core::clock::ManualClock): it polls until the future
//! is stuck on timers, then advances the clock to the next deadline, so
//! thousands of concurrent starts run in simulated time at memory speed.
//!
//! # Example
//!
//! ```
//! use fleet_drain::fleet::{DrainFleet, Fleet, RolloutFleet};
//! use fleet_drain::sim::{self, SimConfig, SimFleet};
//! use resilience_core::clock::ManualClock;
//! use std::time::Duration;
//!
//! let clock = ManualClock::new();
//! let config = SimConfig { start_duration: Duration::from_secs(20), ..SimConfig::default() };
//! let fleet = SimFleet::with_clock(config, clock.clone())?;
//! let hosts = fleet.add_hosts(2, 10, "v1");
//! let apps = fleet.add_apps(hosts[0], 3)?;
//! sim::run(&clock, async {
//!     // Three concurrent starts: they overlap in simulated time.
//!     let starts = apps.iter().map(|&app| fleet.migrate(app, hosts[1]));
//!     futures::future::join_all(starts).await
//! })?;
//! assert_eq!(clock.elapsed(), Duration::from_secs(20));
//! assert_eq!(fleet.stats().peak_concurrent_starts, 3);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod executor;
mod fleet;
mod host_model;
mod naive;
#[cfg(test)]
mod tests;

pub use executor::{SimError, run, run_steps};
pub use fleet::{SimFleet, SimStats};
pub use host_model::{SilentFailures, SimConfig};
pub use naive::{NaiveDrainConfig, NaiveDrainReport, naive_drain};
