//! Drain limits and the wave planner.
//!
//! # Why limits beyond "is there capacity?"
//!
//! Capacity alone is the wrong question (the February 2019 incident of the
//! [crate docs](crate)): what broke was the *surge of app starts into each
//! receiving host*. [`DrainLimits`]
//! therefore bounds every dimension of a wave, in the spirit of a
//! Kubernetes `PodDisruptionBudget` or Nomad's `max_parallel`, plus the one
//! they lack:
//!
//! - `max_draining_hosts`: hosts draining at once;
//! - `max_unavailable`: apps that may be down at once (a count or a percent
//!   of all apps);
//! - `max_starts_per_host_per_minute`: app starts into any one receiving
//!   host per minute (the surge limit);
//! - `min_free_capacity`: room every receiver keeps free.
//!
//! The [`Planner`] turns a [`FleetSnapshot`](crate::fleet::FleetSnapshot) and the hosts still to drain
//! into the next [`DrainPlan`]: which hosts drain now, and a receiver for
//! every app on them, least loaded first, never over a limit. Each
//! assignment also gets a *start slot* (the minute, relative to the wave's
//! start, in which it may start) so that the per-host start rate holds by
//! construction; the controller enforces the same rate at run time.
//!
//! Planning is pure and fast: a heap of receivers keyed by load, so a wave
//! of 1,000 hosts over 10,000 hosts and 1,000,000 apps takes milliseconds,
//! and [`Planner::replan_host`] re-plans incrementally when one host's
//! health changes.
//!
//! # Example
//!
//! ```
//! use fleet_drain::fleet::{App, AppId, AppState, FleetSnapshot, Host, HostId, HostState};
//! use fleet_drain::plan::{Amount, DrainLimits, Planner};
//!
//! let hosts: Vec<Host> = (0..4)
//!     .map(|i| Host { id: HostId(i), capacity: 10, state: HostState::Active, version: "v1".into() })
//!     .collect();
//! // Hosts 0 and 1 (old) run 3 apps each; hosts 2 and 3 (new) are empty.
//! let apps: Vec<App> = (0..6)
//!     .map(|i| App { id: AppId(i), host: HostId(i / 3), state: AppState::Running })
//!     .collect();
//! let snapshot = FleetSnapshot::new(hosts, apps)?;
//!
//! let planner = Planner::new(DrainLimits {
//!     max_draining_hosts: 1,
//!     max_unavailable: Amount::Percent(50.0),
//!     max_starts_per_host_per_minute: 1,
//!     max_concurrent_starts_per_host: 1,
//!     min_free_capacity: Amount::Count(1),
//! })?;
//! let targets = [HostId(0), HostId(1)];
//! planner.check_feasible(&snapshot, &targets)?;
//! let plan = planner.next_wave(&snapshot, &targets)?;
//! assert_eq!(plan.hosts(), [HostId(0)]);          // one host at a time
//! assert_eq!(plan.assignments().len(), 3);        // all its apps placed
//! let receivers: Vec<HostId> = plan.assignments().iter().map(|a| a.to).collect();
//! assert_eq!(receivers, [HostId(2), HostId(3), HostId(2)]); // least loaded first
//! assert_eq!(plan.assignments()[2].slot, 1);      // 3rd start into host 2: next minute
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod amount;
mod limits;
mod planner;
mod wave;

pub use amount::Amount;
pub use limits::{DEFAULT_MAX_CONCURRENT_STARTS_PER_HOST, DrainLimits};
pub use planner::Planner;
pub use wave::{Assignment, DrainPlan, ReceiverLoad, Replan};

#[cfg(test)]
mod tests;
