//! The platform's state and operations: hosts, apps (real `node`
//! processes), and the contract's migrate with its `request_id` memory.
//!
//! The state sits behind a `std` mutex never held across an `await`; a
//! migrate runs as its own task, so a client that gives up (a timeout) does
//! not cancel it and a retry with the same `request_id` waits for the same
//! outcome.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use fleet_drain::http::wire::{ErrorBody, MigrateRequest, is_valid_request_id};
use fleet_drain::{AppState, HostState};
use node_modules_alloc::allocator::{Allocator, AllocatorConfig};
use node_modules_alloc::store::Store;
use serde::Serialize;
use tokio::sync::watch;

use super::packages::Fixtures;
use super::probe;
use super::process::AppProcess;
use super::spec::Spec;

/// How long a health probe of a running app may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a stopped process gets between SIGTERM and SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(3);
/// Request ids remembered (the oldest are forgotten first).
const MAX_REQUESTS: usize = 10_000;

/// A host in the contract's answers, plus its directory.
#[derive(Debug, Clone, Serialize)]
pub struct HostView {
    /// Name.
    pub name: String,
    /// Capacity.
    pub capacity: u32,
    /// State.
    pub state: HostState,
    /// Version.
    pub version: String,
    /// Its directory (store and apps).
    pub dir: PathBuf,
}

/// An app in the contract's answers, plus where it runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AppView {
    /// Name.
    pub name: String,
    /// Host name.
    pub host: String,
    /// State.
    pub state: AppState,
    /// Its loopback port while a process runs.
    pub port: Option<u16>,
    /// Its directory on its host (with the allocated `node_modules`).
    pub dir: PathBuf,
}

/// A refused or failed call: status and the contract's error body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// The body.
    pub body: ErrorBody,
}

impl ApiError {
    /// An error.
    pub fn new(status: u16, code: &str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            body: ErrorBody::new(code, message),
        }
    }
}

/// Figures for tests: starts per app and the most starts at once per host.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Stats {
    /// Starts that succeeded, per app (the initial one included).
    pub starts: BTreeMap<String, u32>,
    /// Starts that failed, per host.
    pub failed_starts: BTreeMap<String, u32>,
    /// The most starts in progress at once, per host.
    pub peak_concurrent_starts: BTreeMap<String, u32>,
    /// The most hosts in state `draining` at once.
    pub peak_draining_hosts: u32,
}

struct Host {
    name: String,
    capacity: u32,
    state: HostState,
    dir: PathBuf,
    allocator: Arc<Allocator>,
    starting: u32,
}

struct App {
    host: String,
    state: AppState,
    process: Option<AppProcess>,
    busy: bool,
    /// While a migrate runs: its destination. The app is then reported on
    /// it in state `starting` (its old process still serves), so a
    /// restarted controller sees the move in progress and waits for it
    /// instead of starting the app a second time.
    moving_to: Option<String>,
}

impl App {
    /// Where the app is reported: its destination while it moves.
    fn placed_on(&self) -> &str {
        self.moving_to.as_deref().unwrap_or(&self.host)
    }
}

type Outcome = Result<AppView, ApiError>;

struct Pending {
    app: String,
    to: String,
    outcome: watch::Receiver<Option<Outcome>>,
}

#[derive(Default)]
struct State {
    hosts: Vec<Host>,
    apps: BTreeMap<String, App>,
    requests: HashMap<String, Pending>,
    request_order: Vec<String>,
    stats: Stats,
    shut_down: bool,
}

/// The local platform. Cheap to clone; dropping the last clone kills every
/// app process.
#[derive(Clone)]
pub struct Platform {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Platform")
            .field("dir", &self.inner.spec.dir)
            .finish_non_exhaustive()
    }
}

struct Inner {
    spec: Spec,
    fixtures: Fixtures,
    state: Mutex<State>,
}

/// Setting the fleet up failed.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// A directory could not be created.
    #[error("creating {path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A host's store could not be opened or filled.
    #[error("node_modules store of {host}: {source}")]
    Store {
        /// The host.
        host: String,
        /// Why.
        source: node_modules_alloc::Error,
    },
    /// An initial app did not start.
    #[error("starting {app} on {host}: {message}")]
    Boot {
        /// The app.
        app: String,
        /// The host.
        host: String,
        /// Why.
        message: String,
    },
}

impl Platform {
    /// Creates the hosts (each a directory with its own node-modules-alloc
    /// store, filled from the fixture tarballs) and starts every app on the
    /// hosts to drain.
    pub async fn start(spec: Spec) -> Result<Platform, SetupError> {
        let fixtures = Fixtures::build().map_err(|source| SetupError::Io {
            path: "fixture tarballs".into(),
            source,
        })?;
        let mut state = State::default();
        let names = (1..=spec.hosts)
            .map(|i| (format!("old-{i}"), spec.apps_per_host as u32))
            .chain((1..=spec.receivers).map(|i| (format!("new-{i}"), spec.receiver_capacity)));
        for (name, capacity) in names {
            let dir = spec.dir.join("hosts").join(&name);
            std::fs::create_dir_all(dir.join("apps")).map_err(|source| SetupError::Io {
                path: dir.display().to_string(),
                source,
            })?;
            let store_error = |source| SetupError::Store {
                host: name.clone(),
                source,
            };
            let store = Store::open(dir.join("store")).map_err(store_error)?;
            fixtures.import(&store).map_err(store_error)?;
            let config = AllocatorConfig {
                min_free_bytes: 64 << 20,
                ..AllocatorConfig::default()
            };
            let allocator = Allocator::new(store, config).map_err(store_error)?;
            state.hosts.push(Host {
                name,
                capacity,
                state: HostState::Active,
                dir,
                allocator: Arc::new(allocator),
                starting: 0,
            });
        }
        let width = (spec.hosts * spec.apps_per_host).to_string().len().max(3);
        let mut placements = Vec::new();
        for h in 1..=spec.hosts {
            for a in 0..spec.apps_per_host {
                let n = (h - 1) * spec.apps_per_host + a + 1;
                let app = format!("app-{n:0width$}");
                state.apps.insert(
                    app.clone(),
                    App {
                        host: format!("old-{h}"),
                        state: AppState::Stopped,
                        process: None,
                        busy: true,
                        moving_to: None,
                    },
                );
                placements.push((app, format!("old-{h}")));
            }
        }
        let platform = Platform {
            inner: Arc::new(Inner {
                spec,
                fixtures,
                state: Mutex::new(state),
            }),
        };
        platform.boot(placements).await?;
        Ok(platform)
    }

    async fn boot(&self, placements: Vec<(String, String)>) -> Result<(), SetupError> {
        let limit = Arc::new(tokio::sync::Semaphore::new(
            self.inner.spec.boot_concurrency,
        ));
        let mut tasks = tokio::task::JoinSet::new();
        for (app, host) in placements {
            let platform = self.clone();
            let limit = Arc::clone(&limit);
            tasks.spawn(async move {
                let _permit = limit.acquire_owned().await;
                let budget = platform.inner.spec.start_timeout * 2;
                let result = platform.run_migration(&app, &host, budget).await;
                (app, host, result)
            });
        }
        while let Some(joined) = tasks.join_next().await {
            let (app, host, result) = joined.map_err(|e| SetupError::Boot {
                app: "?".into(),
                host: "?".into(),
                message: e.to_string(),
            })?;
            if let Err(error) = result {
                return Err(SetupError::Boot {
                    app,
                    host,
                    message: error.body.error.message,
                });
            }
        }
        Ok(())
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn host_view(host: &Host) -> HostView {
        HostView {
            name: host.name.clone(),
            capacity: host.capacity,
            state: host.state,
            version: "v1".into(),
            dir: host.dir.clone(),
        }
    }

    fn app_view(&self, name: &str, app: &App) -> AppView {
        let host = app.placed_on();
        AppView {
            name: name.to_owned(),
            host: host.to_owned(),
            state: if app.moving_to.is_some() {
                AppState::Starting
            } else {
                app.state
            },
            port: app.process.as_ref().map(AppProcess::port),
            dir: self.app_dir(host, name),
        }
    }

    fn app_dir(&self, host: &str, app: &str) -> PathBuf {
        self.inner
            .spec
            .dir
            .join("hosts")
            .join(host)
            .join("apps")
            .join(app)
    }

    /// Every host.
    pub fn hosts(&self) -> Vec<HostView> {
        let state = self.state();
        state.hosts.iter().map(Self::host_view).collect()
    }

    /// Every app (a process that exited is reported `failed`).
    pub fn apps(&self) -> Vec<AppView> {
        let mut state = self.state();
        state
            .apps
            .iter_mut()
            .map(|(name, app)| {
                mark_exited(app);
                self.app_view(name, app)
            })
            .collect()
    }

    /// One app, its health probed (`GET /healthz`) if it should be running.
    pub async fn app(&self, name: &str) -> Result<AppView, ApiError> {
        let (view, probe_port) = {
            let mut state = self.state();
            let app = state.apps.get_mut(name).ok_or_else(|| unknown_app(name))?;
            mark_exited(app);
            let port = match (&app.process, app.state, app.busy) {
                (Some(p), AppState::Running | AppState::Unhealthy, false) => Some(p.port()),
                _ => None,
            };
            (self.app_view(name, app), port)
        };
        let Some(port) = probe_port else {
            return Ok(view);
        };
        let healthy = probe::healthz(port, PROBE_TIMEOUT).await;
        let mut state = self.state();
        let app = state.apps.get_mut(name).ok_or_else(|| unknown_app(name))?;
        // Only if nothing changed meanwhile.
        if app.process.as_ref().map(AppProcess::port) == Some(port) && !app.busy {
            app.state = if healthy {
                AppState::Running
            } else {
                AppState::Unhealthy
            };
        }
        Ok(self.app_view(name, app))
    }

    /// Sets a host's state (`drained` only when it runs no app).
    pub fn set_host_state(&self, name: &str, to: HostState) -> Result<HostView, ApiError> {
        let mut state = self.state();
        let running = state
            .apps
            .values()
            .filter(|a| a.host == name || a.placed_on() == name)
            .count();
        let host = state
            .hosts
            .iter_mut()
            .find(|h| h.name == name)
            .ok_or_else(|| unknown_host(name))?;
        if to == HostState::Drained && host.state != HostState::Drained && running > 0 {
            return Err(ApiError::new(
                409,
                "invalid_transition",
                format!("{name} still runs {running} apps; move them first"),
            ));
        }
        if host.state != to {
            tracing::info!(host = name, from = %host.state, to = %to, "host state changed");
        }
        host.state = to;
        let view = Self::host_view(host);
        let draining = state
            .hosts
            .iter()
            .filter(|h| h.state == HostState::Draining)
            .count() as u32;
        state.stats.peak_draining_hosts = state.stats.peak_draining_hosts.max(draining);
        Ok(view)
    }

    /// The contract's migrate: blocks until the start on `to` succeeded or
    /// failed; idempotent by `request_id`.
    pub async fn migrate(&self, app: &str, request: MigrateRequest) -> Outcome {
        if !is_valid_request_id(&request.request_id) {
            return Err(ApiError::new(
                400,
                "invalid_request",
                "request_id must be 1 to 128 bytes of [A-Za-z0-9_-]",
            ));
        }
        let mut outcome = {
            let mut state = self.state();
            if let Some(pending) = state.requests.get(&request.request_id) {
                if pending.app != app || pending.to != request.to {
                    return Err(ApiError::new(
                        409,
                        "request_id_conflict",
                        format!(
                            "request_id {} was used to migrate {} to {}",
                            request.request_id, pending.app, pending.to
                        ),
                    ));
                }
                tracing::info!(app, request_id = %request.request_id, "migrate retried: waiting for the same operation");
                pending.outcome.clone()
            } else {
                self.admit(&mut state, app, &request)?
            }
        };
        loop {
            if let Some(result) = outcome.borrow_and_update().clone() {
                return result;
            }
            if outcome.changed().await.is_err() {
                return Err(ApiError::new(
                    503,
                    "unavailable",
                    "the platform is shutting down",
                ));
            }
        }
    }

    /// Checks a new migrate and launches it as a task.
    fn admit(
        &self,
        state: &mut State,
        app: &str,
        request: &MigrateRequest,
    ) -> Result<watch::Receiver<Option<Outcome>>, ApiError> {
        if state.shut_down {
            return Err(ApiError::new(503, "unavailable", "shutting down"));
        }
        let on_to = state
            .apps
            .iter()
            .filter(|(n, a)| a.placed_on() == request.to && n.as_str() != app)
            .count();
        let current = state.apps.get(app).ok_or_else(|| unknown_app(app))?;
        let host = state
            .hosts
            .iter()
            .find(|h| h.name == request.to)
            .ok_or_else(|| unknown_host(&request.to))?;
        let restart = current.host == request.to;
        if !restart && !host.state.accepts_apps() {
            return Err(ApiError::new(
                409,
                "not_accepting",
                format!("{} is {} and accepts no apps", host.name, host.state),
            ));
        }
        if on_to >= host.capacity as usize {
            return Err(ApiError::new(
                409,
                "no_capacity",
                format!("{} is full ({} apps)", host.name, host.capacity),
            ));
        }
        if current.busy {
            return Err(ApiError::new(
                409,
                "busy",
                format!("{app} is being started; wait for that start to finish"),
            ));
        }
        if let Some(current) = state.apps.get_mut(app) {
            current.busy = true;
            current.moving_to = Some(request.to.clone());
        }
        let (tx, rx) = watch::channel(None);
        state.requests.insert(
            request.request_id.clone(),
            Pending {
                app: app.to_owned(),
                to: request.to.clone(),
                outcome: rx.clone(),
            },
        );
        state.request_order.push(request.request_id.clone());
        if state.request_order.len() > MAX_REQUESTS {
            let old = state.request_order.remove(0);
            state.requests.remove(&old);
        }
        let platform = self.clone();
        let app = app.to_owned();
        let to = request.to.clone();
        // Answer within the client's wait (with a margin for the answer).
        let budget = (self.inner.spec.start_timeout * 2).min(Duration::from_millis(
            request.timeout_ms.saturating_mul(9) / 10,
        ));
        tokio::spawn(async move {
            let result = platform.run_migration(&app, &to, budget).await;
            let _ = tx.send(Some(result));
        });
        Ok(rx)
    }

    /// Allocates `node_modules` on `to`, starts the app there, waits for
    /// `/healthz`, then stops its previous process. The app must be marked
    /// busy by the caller. A start not healthy within `budget` failed.
    async fn run_migration(&self, app: &str, to: &str, budget: Duration) -> Outcome {
        let started = std::time::Instant::now();
        let allocator = {
            let mut state = self.state();
            let host = state
                .hosts
                .iter_mut()
                .find(|h| h.name == to)
                .ok_or_else(|| unknown_host(to))?;
            host.starting += 1;
            let (starting, allocator) = (host.starting, Arc::clone(&host.allocator));
            let peak = state
                .stats
                .peak_concurrent_starts
                .entry(to.to_owned())
                .or_default();
            *peak = (*peak).max(starting);
            allocator
        };
        let result = self.start_on(&allocator, app, to, budget).await;
        let (outcome, old) = self.finish(app, to, result, started);
        if let Some(old) = old {
            old.stop(STOP_GRACE).await;
        }
        outcome
    }

    /// Records a start's result; returns the app's previous process, to
    /// stop (the app is now on `to` whatever the result).
    fn finish(
        &self,
        app: &str,
        to: &str,
        result: Result<AppProcess, String>,
        started: std::time::Instant,
    ) -> (Outcome, Option<AppProcess>) {
        let mut state = self.state();
        if let Some(host) = state.hosts.iter_mut().find(|h| h.name == to) {
            host.starting = host.starting.saturating_sub(1);
        }
        let Some(entry) = state.apps.get_mut(app) else {
            return (Err(unknown_app(app)), None);
        };
        let old = entry.process.take();
        to.clone_into(&mut entry.host);
        entry.busy = false;
        entry.moving_to = None;
        let outcome = match result {
            Ok(process) => {
                entry.state = AppState::Running;
                entry.process = Some(process);
                let view = self.app_view(app, entry);
                *state.stats.starts.entry(app.to_owned()).or_default() += 1;
                tracing::info!(app, to, port = ?view.port, elapsed_ms = started.elapsed().as_millis() as u64, "app started");
                Ok(view)
            }
            Err(message) => {
                entry.state = AppState::Failed;
                *state.stats.failed_starts.entry(to.to_owned()).or_default() += 1;
                tracing::warn!(app, to, error = %message, "app start failed");
                Err(ApiError::new(422, "start_failed", message))
            }
        };
        (outcome, old)
    }

    async fn start_on(
        &self,
        allocator: &Allocator,
        app: &str,
        to: &str,
        budget: Duration,
    ) -> Result<AppProcess, String> {
        let spec = &self.inner.spec;
        let deadline = tokio::time::Instant::now() + budget;
        let dir = self.app_dir(to, app);
        self.inner
            .fixtures
            .write_app(&dir, app)
            .map_err(|e| format!("writing the app into {}: {e}", dir.display()))?;
        allocator
            .allocate(dir.join("package-lock.json"), &dir)
            .await
            .map_err(|e| format!("allocating node_modules in {}: {e}", dir.display()))?;
        let mut env = vec![("BW_APP", app), ("BW_HOST", to)];
        if spec.fails(app, to) {
            env.push(("BW_FAIL_START", "1"));
        }
        let port_wait = spec
            .start_timeout
            .min(deadline.saturating_duration_since(tokio::time::Instant::now()));
        let process = AppProcess::start(&spec.node, &dir, &env, port_wait)
            .await
            .map_err(|e| e.to_string())?;
        loop {
            if probe::healthz(process.port(), PROBE_TIMEOUT).await {
                return Ok(process);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(format!(
                    "no 200 from GET /healthz on port {} within the start's {budget:?}",
                    process.port(),
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Figures for tests.
    pub fn stats(&self) -> Stats {
        self.state().stats.clone()
    }

    /// Verifies an app's allocated `node_modules` against the store of its
    /// host.
    pub async fn verify(&self, name: &str) -> Result<Vec<String>, ApiError> {
        let (dir, allocator) = {
            let state = self.state();
            let app = state.apps.get(name).ok_or_else(|| unknown_app(name))?;
            let host = state
                .hosts
                .iter()
                .find(|h| h.name == app.host)
                .ok_or_else(|| unknown_host(&app.host))?;
            (self.app_dir(&app.host, name), Arc::clone(&host.allocator))
        };
        let report = allocator
            .verify(&dir, false, None)
            .await
            .map_err(|e| ApiError::new(500, "verify_failed", e.to_string()))?;
        Ok(report.problems)
    }

    /// Stops every app process (SIGTERM to each group, SIGKILL after a
    /// grace period); later migrates are refused.
    pub async fn shutdown(&self) {
        let processes: Vec<AppProcess> = {
            let mut state = self.state();
            state.shut_down = true;
            state
                .apps
                .values_mut()
                .filter_map(|a| {
                    a.state = AppState::Stopped;
                    a.process.take()
                })
                .collect()
        };
        tracing::info!(processes = processes.len(), "stopping every app");
        futures::future::join_all(processes.into_iter().map(|p| p.stop(STOP_GRACE))).await;
    }
}

fn mark_exited(app: &mut App) {
    if let Some(process) = &mut app.process
        && process.has_exited()
    {
        app.state = AppState::Failed;
        app.process = None;
    }
}

fn unknown_app(name: &str) -> ApiError {
    ApiError::new(404, "unknown_app", format!("no app named {name}"))
}

fn unknown_host(name: &str) -> ApiError {
    ApiError::new(404, "unknown_host", format!("no host named {name}"))
}
