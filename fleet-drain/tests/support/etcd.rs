//! Shared helpers of the etcd integration tests (included with `#[path]`
//! by `etcd_coordination.rs` and `etcd_outage.rs`; not a test target).
#![cfg(feature = "etcd")]
#![allow(
    clippy::unwrap_used,
    clippy::missing_panics_doc,
    clippy::large_futures,
    clippy::too_many_lines,
    clippy::too_many_arguments,
    clippy::items_after_statements,
    clippy::new_without_default,
    clippy::indexing_slicing
)]
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use fleet_drain::drain::{DrainConfig, DrainController, DrainReport};
use fleet_drain::etcd::{BudgetLimits, EtcdConfig, EtcdCoordinator, Leadership};
use fleet_drain::fleet::{
    App, AppId, AppState, DrainFleet, Fleet, FleetError, Host, HostId, HostState, RolloutFleet,
};
use fleet_drain::plan::Amount;
use fleet_drain::sim::{SimConfig, SimFleet};
use resilience_core::clock::{Clock, Sleep};

/// The etcd under test, from `BREAKWATER_ETCD_ENDPOINTS`. Unset: a failure
/// in CI, a notice (and `None`: the test returns) elsewhere.
pub fn endpoints() -> Option<Vec<String>> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    match std::env::var("BREAKWATER_ETCD_ENDPOINTS") {
        Ok(v) if !v.trim().is_empty() => Some(v.split(',').map(|s| s.trim().to_owned()).collect()),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "BREAKWATER_ETCD_ENDPOINTS is not set but CI is: the etcd tests must run in CI. \
                 Start one with `scripts/etcd.sh ensure && eval \"$(scripts/etcd.sh start)\"`."
            );
            eprintln!(
                "notice: BREAKWATER_ETCD_ENDPOINTS is not set; skipping this etcd test \
                 (run `scripts/etcd.sh ensure && eval \"$(scripts/etcd.sh start)\"` to run it)"
            );
            None
        }
    }
}

/// A key prefix no other test (or run) uses.
pub fn unique_prefix(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("/breakwater-test/{test}-{}-{nanos}", std::process::id())
}

pub const TTL: Duration = Duration::from_secs(2);

pub fn etcd_config(endpoints: &[String], prefix: &str, budget: BudgetLimits) -> EtcdConfig {
    EtcdConfig {
        endpoints: endpoints.to_vec(),
        key_prefix: prefix.to_owned(),
        lease_ttl: TTL,
        request_timeout: Duration::from_millis(400),
        poll_interval: Duration::from_millis(50),
        budget,
        ..EtcdConfig::default()
    }
}

/// Real time sped up `FACTOR` times, so the controller's minute-long
/// start windows take a second while etcd's leases run in real time.
#[derive(Debug, Clone, Copy)]
pub struct FastClock {
    origin: Instant,
}

pub const FACTOR: u32 = 60;

impl FastClock {
    pub fn new() -> Self {
        FastClock {
            origin: Instant::now(),
        }
    }
}

impl Clock for FastClock {
    fn now(&self) -> Instant {
        self.origin + self.origin.elapsed() * FACTOR
    }

    fn sleep_until(&self, deadline: Instant) -> Sleep {
        let real = self.origin + deadline.saturating_duration_since(self.origin) / FACTOR;
        Box::pin(tokio::time::sleep_until(tokio::time::Instant::from_std(
            real,
        )))
    }
}

/// What every controller did to the shared fleet, checked at every step.
#[derive(Debug, Default)]
pub struct Checks {
    pub max_draining: usize,
    pub max_concurrent_starts: u32,
    starting: HashMap<HostId, u32>,
    /// (controller, when, what)
    pub actions: Vec<(String, Instant, String)>,
    /// (controller, when) each time a controller's work began as leader.
    pub elections: Vec<(String, Instant)>,
    /// (controller, when) each time a controller's work ended or was dropped.
    pub stops: Vec<(String, Instant)>,
}

/// A view of the shared simulated fleet that records and checks every
/// change one controller makes.
#[derive(Debug, Clone)]
pub struct CheckedFleet {
    pub label: String,
    pub sim: SimFleet,
    pub checks: Arc<Mutex<Checks>>,
}

impl CheckedFleet {
    fn log(&self, what: String) {
        self.checks
            .lock()
            .unwrap()
            .actions
            .push((self.label.clone(), Instant::now(), what));
    }
}

#[async_trait]
impl DrainFleet for CheckedFleet {
    async fn hosts(&self) -> Result<Vec<Host>, FleetError> {
        self.sim.hosts().await
    }
    async fn apps(&self) -> Result<Vec<App>, FleetError> {
        self.sim.apps().await
    }
    async fn set_host_state(&self, host: HostId, state: HostState) -> Result<(), FleetError> {
        self.log(format!("{host} -> {state}"));
        self.sim.set_host_state(host, state).await?;
        let draining = self
            .sim
            .hosts()
            .await?
            .iter()
            .filter(|h| h.state == HostState::Draining)
            .count();
        let mut checks = self.checks.lock().unwrap();
        checks.max_draining = checks.max_draining.max(draining);
        Ok(())
    }
    async fn migrate(&self, app: AppId, to: HostId) -> Result<(), FleetError> {
        self.log(format!("{app} -> {to}"));
        {
            let mut checks = self.checks.lock().unwrap();
            let n = checks.starting.entry(to).or_default();
            *n += 1;
            let n = *n;
            checks.max_concurrent_starts = checks.max_concurrent_starts.max(n);
        }
        struct Done<'a>(&'a CheckedFleet, HostId);
        impl Drop for Done<'_> {
            fn drop(&mut self) {
                if let Some(n) = self.0.checks.lock().unwrap().starting.get_mut(&self.1) {
                    *n -= 1;
                }
            }
        }
        let _done = Done(self, to);
        self.sim.migrate(app, to).await
    }
    async fn app_health(&self, app: AppId) -> Result<AppState, FleetError> {
        self.sim.app_health(app).await
    }
}

#[async_trait]
impl RolloutFleet for CheckedFleet {
    async fn start_version(
        &self,
        host: HostId,
        version: &str,
        traffic: bool,
    ) -> Result<(), FleetError> {
        self.sim.start_version(host, version, traffic).await
    }
    async fn stop_version(&self, host: HostId, version: &str) -> Result<(), FleetError> {
        self.sim.stop_version(host, version).await
    }
    async fn shift_traffic(&self, version: &str, percent: f64) -> Result<(), FleetError> {
        self.sim.shift_traffic(version, percent).await
    }
}

/// A shared simulated fleet on the fast clock: `receivers` empty hosts of
/// capacity 20 first, then `drains` groups of `hosts_per_drain` hosts with
/// `apps_per_host` apps each (the targets, one group per drain).
#[derive(Debug)]
pub struct World {
    pub sim: SimFleet,
    pub clock: FastClock,
    pub targets: Vec<Vec<HostId>>,
    pub checks: Arc<Mutex<Checks>>,
}

impl World {
    pub fn new(receivers: u32, drains: usize, hosts_per_drain: u32, apps_per_host: u32) -> Self {
        let clock = FastClock::new();
        let sim = SimFleet::with_clock(
            SimConfig {
                start_duration: Duration::from_secs(20),
                ..SimConfig::default()
            },
            clock,
        )
        .unwrap();
        sim.add_hosts(receivers, 20, "v1");
        let targets = (0..drains)
            .map(|_| {
                let hosts = sim.add_hosts(hosts_per_drain, 10, "v1");
                for &h in &hosts {
                    sim.add_apps(h, apps_per_host).unwrap();
                }
                hosts
            })
            .collect();
        World {
            sim,
            clock,
            targets,
            checks: Arc::default(),
        }
    }

    /// Spawns [`run_controller`] for `label` (its fleet view is
    /// `self.fleet(label)`) on this world's clock and checks.
    pub fn spawn_controller(
        &self,
        coordinator: EtcdCoordinator,
        drain: &str,
        label: &str,
        targets: &[HostId],
        local_hosts: u32,
    ) -> tokio::task::JoinHandle<Result<DrainReport, String>> {
        tokio::spawn(run_controller(
            coordinator,
            drain.to_owned(),
            label.to_owned(),
            self.fleet(label),
            self.clock,
            targets.to_vec(),
            local_hosts,
            Arc::clone(&self.checks),
        ))
    }

    pub fn fleet(&self, label: &str) -> Arc<dyn Fleet> {
        Arc::new(CheckedFleet {
            label: label.to_owned(),
            sim: self.sim.clone(),
            checks: Arc::clone(&self.checks),
        })
    }

    pub fn all_drained(&self, targets: &[HostId]) -> bool {
        targets.iter().all(|&h| {
            self.sim
                .host(h)
                .is_some_and(|h| h.state == HostState::Drained)
        })
    }

    pub fn drained_count(&self) -> usize {
        self.targets
            .iter()
            .flatten()
            .filter(|&&h| {
                self.sim
                    .host(h)
                    .is_some_and(|h| h.state == HostState::Drained)
            })
            .count()
    }
}

/// The drain configuration of the tests (in fast-clock time): each
/// controller may drain `local_hosts` hosts at once on its own.
pub fn drain_config(local_hosts: u32) -> DrainConfig {
    let mut config = DrainConfig::default();
    config.limits.max_draining_hosts = local_hosts;
    config.limits.max_unavailable = Amount::Count(8);
    config.limits.max_starts_per_host_per_minute = 4;
    config.limits.min_free_capacity = Amount::Count(0);
    // Controllers here are killed in the middle of app starts; the default
    // health gate holds: a successor restarts the apps those starts left
    // stopped or failed before it judges health.
    config
}

/// Records when a controller's work ends, including when it is dropped
/// because the leadership was lost.
struct StopRecorder {
    label: String,
    checks: Arc<Mutex<Checks>>,
}

impl Drop for StopRecorder {
    fn drop(&mut self) {
        self.checks
            .lock()
            .unwrap()
            .stops
            .push((self.label.clone(), Instant::now()));
    }
}

/// A coordinator named `name` on the etcd at `endpoints`, under `prefix`.
pub async fn connect(
    endpoints: &[String],
    prefix: &str,
    budget: BudgetLimits,
    name: &str,
) -> EtcdCoordinator {
    EtcdCoordinator::connect(etcd_config(endpoints, prefix, budget), name)
        .await
        .unwrap()
}

/// One controller: leads `drain` until its targets are drained.
pub async fn run_controller(
    coordinator: EtcdCoordinator,
    drain: String,
    label: String,
    fleet: Arc<dyn Fleet>,
    clock: FastClock,
    targets: Vec<HostId>,
    local_hosts: u32,
    checks: Arc<Mutex<Checks>>,
) -> Result<DrainReport, String> {
    let result = coordinator
        .lead(&drain, |leadership: Leadership| {
            let fleet = Arc::clone(&fleet);
            let targets = targets.clone();
            let label = label.clone();
            let checks = Arc::clone(&checks);
            async move {
                checks
                    .lock()
                    .unwrap()
                    .elections
                    .push((label.clone(), Instant::now()));
                let _stop = StopRecorder {
                    label: label.clone(),
                    checks,
                };
                let mut controller = DrainController::with_clock(
                    drain_config(local_hosts),
                    Arc::new(leadership.fleet(fleet)),
                    Box::new(leadership.journal()),
                    clock,
                )
                .map_err(|e| e.to_string())?;
                controller.run(&targets).await.map_err(|e| e.to_string())
            }
        })
        .await;
    match result {
        Ok(report) => report,
        Err(e) => Err(e.to_string()),
    }
}

/// Polls `condition` every 20 ms for at most `limit`.
pub async fn wait_for(limit: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    while !condition() {
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A TCP proxy to etcd that can be cut: a network partition of the
/// controllers connected through it.
#[derive(Debug)]
pub struct Proxy {
    pub endpoint: String,
    blocked: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
    accept: tokio::task::AbortHandle,
}

impl Proxy {
    pub async fn start(upstream: &str) -> Self {
        let target = upstream
            .trim_start_matches("http://")
            .trim_start_matches("https://")
            .to_owned();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let blocked = Arc::new(AtomicBool::new(false));
        let connections: Arc<Mutex<Vec<tokio::task::AbortHandle>>> = Arc::default();
        let accept = {
            let blocked = Arc::clone(&blocked);
            let connections = Arc::clone(&connections);
            tokio::spawn(async move {
                loop {
                    let Ok((mut inbound, _)) = listener.accept().await else {
                        return;
                    };
                    if blocked.load(Ordering::SeqCst) {
                        // A black hole: hold the connection, answer nothing.
                        let task = tokio::spawn(async move {
                            let _held = inbound;
                            std::future::pending::<()>().await;
                        });
                        connections.lock().unwrap().push(task.abort_handle());
                        continue;
                    }
                    let target = target.clone();
                    let task = tokio::spawn(async move {
                        if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                            let _ =
                                tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        }
                    });
                    connections.lock().unwrap().push(task.abort_handle());
                }
            })
            .abort_handle()
        };
        Proxy {
            endpoint,
            blocked,
            connections,
            accept,
        }
    }

    /// Cuts every connection and black-holes new ones.
    pub fn partition(&self) {
        self.blocked.store(true, Ordering::SeqCst);
        for task in self.connections.lock().unwrap().drain(..) {
            task.abort();
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        for task in self.connections.lock().unwrap().drain(..) {
            task.abort();
        }
    }
}
