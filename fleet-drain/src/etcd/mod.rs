//! Several drain controllers on one fleet, coordinated through etcd
//! (feature `etcd`).
//!
//! # Why coordinate?
//!
//! One [`DrainController`](crate::drain::DrainController) keeps *its own*
//! waves within [`DrainLimits`](crate::plan::DrainLimits). In production
//! there are several: replicas of the same controller (so that a crashed
//! one is replaced), and different drains run by different teams on the
//! same fleet. Without coordination two replicas both act (and drain
//! hosts twice), and two drains each within their limits together exceed
//! what the fleet tolerates: a surge of app starts into receivers that
//! nobody bounds fleet-wide (the February 2019 incident of the
//! [crate docs](crate)).
//! [`EtcdCoordinator`] adds, per controller:
//!
//! - **Leader election on a lease.** [`EtcdCoordinator::campaign`] makes
//!   one replica the leader of a drain: its leader key is bound to a lease
//!   (`lease_ttl`) renewed every `keepalive_interval`. A crashed leader's
//!   key disappears with its lease, and a standby takes over within one
//!   TTL plus one `poll_interval`.
//! - **Stepping down before the lease can expire.** A leader counts its
//!   lease as live only until `last renewal sent + TTL - safety_margin`;
//!   a partitioned leader therefore stops acting ([`Leadership::run`]
//!   drops its work) *before* etcd can expire its lease and elect another.
//! - **Fencing on every write.** Every write, and every change handed to
//!   the fleet (even when its reservation is already held), is a
//!   transaction that checks the leader key still carries this
//!   leadership's creation revision (the fencing token,
//!   [`Leadership::token`]) and lease: a deposed leader that wakes up late
//!   writes nothing.
//! - **The leader key is watched.** Its deletion or replacement deposes
//!   the leader at once, even while its lease is renewed.
//! - **A fleet-wide disruption budget** ([`BudgetLimits`]): hosts draining
//!   at once and concurrent starts per receiver, *across every controller
//!   under the key prefix*. Slots are lease-bound keys reserved with
//!   transactions that compare an epoch key's version, released when the
//!   work is done or, if the controller dies, when its lease expires.
//! - **The journal in etcd** ([`EtcdJournal`], the same
//!   [`Journal`](crate::journal::Journal) trait as
//!   [`FileJournal`](crate::journal::FileJournal)): a new leader resumes
//!   where the old one stopped, never draining a host twice.
//! - **Pausing when etcd is down.** Every change waits while etcd is
//!   unreachable ([`EtcdError::Unreachable`] in `warn` events and in
//!   [`EtcdCoordinator::status`]); if the outage outlasts the lease's
//!   certain validity the leader steps down, and [`EtcdCoordinator::lead`]
//!   campaigns again and resumes from the journal once etcd answers. No
//!   controller ever proceeds blind.
//!
//! # Using it with the drain controller
//!
//! [`EtcdCoordinator::lead`] campaigns, hands the work a [`Leadership`],
//! and re-runs it whenever leadership is regained. The work builds a
//! `DrainController` over [`Leadership::fleet`] (the real fleet behind the
//! budget and the fence) and [`Leadership::journal`]:
//!
//! ```
//! use std::sync::Arc;
//! use fleet_drain::drain::{DrainConfig, DrainController};
//! use fleet_drain::etcd::{EtcdConfig, EtcdCoordinator};
//! use fleet_drain::fleet::{DrainFleet, Fleet, RolloutFleet};
//! use fleet_drain::sim::{SimConfig, SimFleet};
//!
//! let config: EtcdConfig = toml::from_str(r#"
//!     endpoints = ["http://127.0.0.1:2379"]
//!     key_prefix = "/breakwater/doc-example"
//!     lease_ttl = "2s"
//!     poll_interval = "50ms"
//!     [budget]
//!     max_draining_hosts = 1
//!     max_concurrent_starts_per_receiver = 2
//! "#)?;
//! config.validate()?;
//!
//! // Runs against a real etcd when one is given, as in the test suite.
//! let Ok(endpoints) = std::env::var("BREAKWATER_ETCD_ENDPOINTS") else {
//!     return Ok(());
//! };
//! let config = EtcdConfig {
//!     endpoints: endpoints.split(',').map(str::to_owned).collect(),
//!     key_prefix: format!("/breakwater/doc-example-{}", std::process::id()),
//!     ..config
//! };
//! let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
//! runtime.block_on(async {
//!     let sim = SimFleet::new(SimConfig {
//!         start_duration: std::time::Duration::from_millis(10),
//!         ..SimConfig::default()
//!     })?;
//!     let old = sim.add_hosts(2, 10, "v1");
//!     sim.add_hosts(2, 10, "v1");
//!     for &host in &old { sim.add_apps(host, 2)?; }
//!     let fleet: Arc<dyn Fleet> = Arc::new(sim.clone());
//!
//!     let coordinator = EtcdCoordinator::connect(config, "controller-a").await?;
//!     let report = coordinator
//!         .lead("drain-v1", |leadership| {
//!             let fleet = fleet.clone();
//!             let old = old.clone();
//!             async move {
//!                 let mut config = DrainConfig::default();
//!                 config.limits.max_draining_hosts = 1;
//!                 config.limits.max_unavailable = fleet_drain::plan::Amount::Count(4);
//!                 config.limits.max_starts_per_host_per_minute = 100;
//!                 config.check_interval = std::time::Duration::from_millis(20);
//!                 let mut controller = DrainController::new(
//!                     config,
//!                     Arc::new(leadership.fleet(fleet)),
//!                     Box::new(leadership.journal()),
//!                 )?;
//!                 controller.run(&old).await.map_err(Box::<dyn std::error::Error>::from)
//!             }
//!         })
//!         .await??;
//!     assert_eq!(report.hosts_drained, 2);
//!     coordinator.close().await?;
//!     Ok::<(), Box<dyn std::error::Error>>(())
//! })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Time
//!
//! etcd measures lease TTLs in real time, so the coordinator does too
//! (tokio's timer and `std::time::Instant`), whatever clock the drain
//! controller uses. Lease deadlines are counted from when a renewal was
//! *sent*, never from when it was answered, so a slow answer can only make
//! the leader step down earlier.
//!
//! # Limits of the guarantees
//!
//! - A change already handed to the fleet backend when the leadership is
//!   lost completes there; fencing stops every *later* change. A backend
//!   that must refuse even those can compare [`Leadership::token`] with
//!   the highest token it has seen.
//! - When a leader dies or is deposed, its hosts stay `Draining` in the
//!   fleet, with no starts in progress, until the next leader adopts them.
//!   Their host slots belong to the drain (not to the lease), so they keep
//!   counting against `max_draining_hosts` for every other drain until
//!   then, and the successor adopts them at once, even if the deposed
//!   leader is still alive. A drain nobody resumes keeps its slots until
//!   [`Leadership::release_host_slots`].
//! - The per-minute start rate (`max_starts_per_host_per_minute`) stays
//!   per controller; the fleet-wide budget bounds *concurrent* starts per
//!   receiver, the quantity whose surge broke the receivers in 2019.

mod config;
mod coordinator;
mod error;
mod fleet;
mod journal;
mod keys;
mod leader;
mod leadership;
mod session;
mod slots;
#[cfg(feature = "etcd-tls")]
mod tls;

pub use config::{BudgetLimits, EtcdAuth, EtcdConfig, EtcdTls};
pub use coordinator::EtcdCoordinator;
pub use error::EtcdError;
pub use fleet::CoordinatedFleet;
pub use journal::EtcdJournal;
pub use leadership::Leadership;
pub use session::{CoordinationVerdict, CoordinatorStatus};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_are_send_and_sync() {
        fn bounds<T: Send + Sync>() {}
        bounds::<EtcdCoordinator>();
        bounds::<Leadership>();
        bounds::<CoordinatedFleet>();
        bounds::<EtcdJournal>();
        bounds::<EtcdError>();
    }
}
