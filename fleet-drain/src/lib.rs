//! # fleet-drain
//!
//! Bounded, health-gated fleet drains and staged rollouts, with a durable
//! journal.
//!
//! In February 2019 a fleet of docker workers was replaced by draining about
//! 30 old hosts at a time, with fleet capacity as the only signal: apps
//! surged onto the remaining hosts, their starts overwhelmed the per-host
//! `node_modules` allocator, and apps started corrupted while the capacity
//! graph looked fine. In November 2019 a bad release reached every API
//! server at once. This crate turns the action items into a library:
//!
//! | module | what |
//! |---|---|
//! | [`fleet`] | the traits the controller acts on: [`DrainFleet`] (hosts, apps, cordon, migrate or evict, health), [`RolloutFleet`] (versions, traffic), [`Fleet`] (both) |
//! | [`adapters`] | the guide to writing an adapter for your platform, with a complete example |
//! | `sim` (feature `sim`) | `sim::SimFleet`, an in-memory fleet whose app starts fail more often the more run at once on a host; a simulated-time driver; the naive baseline drain |
//! | [`plan`] | [`plan::DrainLimits`] and the [`plan::Planner`]: the next wave and a receiver for every app, never over a limit |
//! | [`health`] | [`health::FleetHealth`] figures and the [`health::HealthGate`] (thresholds with hysteresis) |
//! | [`drain`] | [`drain::DrainController`]: runs waves to completion, pacing starts per receiver, pausing/resuming/aborting on health, journaled, with events |
//! | [`rollout`] | [`rollout::Rollout`]: canary, waves, bake, start without traffic, traffic shifts, automatic rollback |
//! | [`names`] | [`names::NameMap`]: an adapter's host and app names ↔ ids, assigned on first sight, journaled so restarts keep them |
//! | [`journal`] | [`journal::Journal`] and the append-only, checksummed [`journal::FileJournal`]: a restarted controller resumes |
//! | `http` (feature `http`) | `http::HttpFleet`: the fleet of a platform that implements the JSON-over-HTTP contract of `docs/http-contract.md` |
//! | `etcd` (feature `etcd`) | several controllers on one fleet: leader election on a lease with fencing, a fleet-wide disruption budget, the journal in etcd |
//!
//! Time, backoff and alert signals come from `resilience-core`
//! ([`Clock`](resilience_core::clock::Clock),
//! [`Backoff`](resilience_core::backoff::Backoff),
//! [`Hysteresis`](resilience_core::signal::Hysteresis),
//! [`EventAggregator`](resilience_core::signal::EventAggregator)), so every
//! behaviour runs deterministically on a
//! [`ManualClock`](resilience_core::clock::ManualClock).
//!
//! # Names and metrics
//!
//! A controller or rollout can be named (`DrainController::named`, `Rollout::named`, or a
//! configuration file wrapped in [`resilience_core::Named`]): the name is the `name` field of
//! every tracing event and of the `drain_wave` / `rollout_step` spans. With the `metrics`
//! feature, each records counters and gauges through the [`metrics`](https://docs.rs/metrics)
//! facade, labelled `name` (the table is in the workspace's `docs/metrics.md`). The crate never
//! installs a recorder: install yours before the controller's first `run`, when its handles
//! are registered. No series is labelled per host (a cardinality trap on large fleets).
//!
//! # Example: the February 2019 drain, naive and bounded
//!
//! ```
//! use std::sync::Arc;
//! use fleet_drain::drain::{DrainConfig, DrainController};
//! use fleet_drain::journal::MemoryJournal;
//! use fleet_drain::sim::{self, NaiveDrainConfig, SimConfig, SimFleet};
//! use resilience_core::clock::ManualClock;
//!
//! // 40 old hosts with 15 apps each, drained onto 40 new hosts; more than 4
//! // concurrent starts on a host start failing.
//! let world = || -> Result<_, Box<dyn std::error::Error>> {
//!     let clock = ManualClock::new();
//!     let fleet = SimFleet::with_clock(SimConfig::default(), clock.clone())?;
//!     let old = fleet.add_hosts(40, 15, "v1");
//!     fleet.add_hosts(40, 30, "v1");
//!     for &host in &old { fleet.add_apps(host, 15)?; }
//!     Ok((clock, fleet, old))
//! };
//!
//! // Naive: 30 hosts at a time, more whenever capacity use < 80 %.
//! let (clock, fleet, old) = world()?;
//! let naive = sim::run(&clock, sim::naive_drain(&fleet, &clock, &old, &NaiveDrainConfig::default()))??;
//! assert!(naive.failed_starts > 0);
//!
//! // Bounded and health-gated (4 starts per receiver per minute by default).
//! let (clock, fleet, old) = world()?;
//! let mut config = DrainConfig::default();
//! config.limits.max_draining_hosts = 4;
//! let mut controller = DrainController::with_clock(
//!     config, Arc::new(fleet.clone()), Box::new(MemoryJournal::new()), clock.clone(),
//! )?;
//! let report = sim::run(&clock, controller.run(&old))??;
//! assert_eq!(report.failed_starts, 0);
//! assert_eq!(report.hosts_drained, 40);
//! assert!(fleet.stats().peak_starts_per_host_per_minute <= 4);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

pub mod adapters;
pub mod drain;
mod error;
#[cfg(feature = "etcd")]
#[cfg_attr(docsrs, doc(cfg(feature = "etcd")))]
pub mod etcd;
pub mod fleet;
pub mod health;
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub mod http;
mod ids;
pub mod journal;
pub mod names;
mod naming;
pub mod plan;
pub mod rollout;
#[cfg(feature = "sim")]
#[cfg_attr(docsrs, doc(cfg(feature = "sim")))]
pub mod sim;
mod telemetry;

pub use error::{DrainError, FleetError, JournalError, NameError, PlanError, RolloutError};
pub use fleet::{
    App, AppId, AppState, DrainFleet, Fleet, FleetSnapshot, Host, HostId, HostState, Placement,
    RolloutFleet,
};
