//! The [`DrainController`]: runs a drain to completion, wave by wave,
//! within [`DrainLimits`](crate::plan::DrainLimits), gated on app health, journaled.
//!
//! # Why a controller?
//!
//! The February 2019 drain ([crate docs](crate)) was run by hand; every
//! failure of that procedure is a decision the controller now makes
//! explicitly:
//!
//! - **Bounded waves.** The [`Planner`](crate::plan::Planner) never drains more hosts, makes more
//!   apps unavailable, or sends more apps to a receiver than the limits
//!   allow; at run time a per-receiver pacer also holds starts to
//!   `max_starts_per_host_per_minute` (a sliding 60 s window), whatever the
//!   plan said.
//! - **Health-gated.** Between starts the controller samples
//!   [`FleetHealth`](crate::health::FleetHealth) and asks the
//!   [`HealthGate`](crate::health::HealthGate): it pauses (no new starts)
//!   while apps are unhealthy or starts fail, resumes automatically, and
//!   aborts past the abort marks.
//! - **Retries with backoff.** A failed start is retried after a
//!   [`Backoff`](resilience_core::backoff::Backoff) delay, never in a loop; an app out of attempts aborts the
//!   drain with the fleet error.
//! - **Durable.** Intent is journaled before acting
//!   ([`crate::journal`]); a restarted controller continues the wave in
//!   progress, waits one start window before its first start (the previous
//!   run's starts are unknown), and never drains a host twice. Apps its
//!   predecessor's interrupted starts left stopped or failed on receivers
//!   are restarted first, within the same limits and before the gate is
//!   consulted: they are what makes the fleet look unhealthy, so gating on
//!   them would pause, or abort, a drain over leftovers it is about to fix.
//! - **Bounded in time.** A global deadline stops the drain (resumable).
//! - **Observable, not noisy.** Every decision is a `tracing` event and a
//!   [`DrainEvent`] for subscribers ([`DrainController::subscribe`],
//!   [`DrainController::on_event`]); floods of similar events (migrations
//!   into one host, failures on one host) are aggregated by a
//!   [`resilience_core::signal::EventAggregator`] into one
//!   [`DrainEvent::Aggregated`] summary per window.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use fleet_drain::drain::{DrainConfig, DrainController};
//! use fleet_drain::journal::MemoryJournal;
//! use fleet_drain::plan::Amount;
//! use fleet_drain::sim::{self, SimConfig, SimFleet};
//! use resilience_core::clock::ManualClock;
//!
//! let clock = ManualClock::new();
//! let fleet = SimFleet::with_clock(SimConfig::default(), clock.clone())?;
//! let old = fleet.add_hosts(4, 10, "v1");
//! fleet.add_hosts(4, 20, "v1");
//! for &host in &old { fleet.add_apps(host, 8)?; }
//!
//! let mut config = DrainConfig::default();
//! // 10 % of 32 apps would be 3: less than one host's 8 apps (an error).
//! config.limits.max_unavailable = Amount::Count(16);
//! let mut controller = DrainController::with_clock(
//!     config,
//!     Arc::new(fleet.clone()),
//!     Box::new(MemoryJournal::new()),
//!     clock.clone(),
//! )?;
//! let report = sim::run(&clock, controller.run(&old))??;
//! assert_eq!(report.hosts_drained, 4);
//! assert_eq!(report.apps_migrated, 32);
//! assert!(fleet.stats().peak_starts_per_host_per_minute <= 4);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod adaptive;
mod config;
mod controller;
mod events;
mod explore;
#[cfg(test)]
mod explore_tests;
mod pacer;
mod report;
#[cfg(test)]
mod tests;
mod work;

pub use adaptive::{AdaptiveStartsConfig, ClassStartLimit, ReceiverClass};
pub use config::DrainConfig;
pub use controller::DrainController;
pub use events::DrainEvent;
pub use explore::StartExplorationConfig;
pub use report::{DrainReport, WaveReport};
