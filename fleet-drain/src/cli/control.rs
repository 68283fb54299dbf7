//! Reaching a running controller: a local Unix socket taking one command
//! per connection (`pause`, `resume`, `abort`, `status`) and answering one
//! line of JSON; and the pause switch in front of the adapter.
//!
//! The journal cannot carry these (a running controller holds its file
//! lock), so the socket lives next to it. Pausing holds every *new*
//! disruptive call (a host marked draining, an app moved or evicted) until
//! resumed; starts already running finish. Aborting stops the controller
//! and journals the abort, so a later `run` refuses to continue.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{Notify, watch};

use super::CliError;
use fleet_drain::fleet::{
    App, AppId, AppState, DrainFleet, FleetError, FleetSnapshot, Host, HostId, HostState, Placement,
};

/// What a running controller reports (`status`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct LiveStatus {
    /// `running`, `paused` (by an operator), `aborting`.
    pub(crate) state: String,
    pub(crate) targets: usize,
    pub(crate) hosts_drained: usize,
    pub(crate) apps_moved: u64,
    pub(crate) apps_moving: usize,
    /// Starts in progress per receiver (name, count).
    pub(crate) starting_per_receiver: Vec<(String, usize)>,
    /// The health gate: `proceed` or `paused: <reason>`.
    pub(crate) gate: String,
}

/// Shared between the controller's task, the socket and the adapter.
#[derive(Debug)]
pub(crate) struct Control {
    paused: watch::Sender<bool>,
    abort: Notify,
    pub(crate) status: Mutex<LiveStatus>,
}

impl Control {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Control {
            paused: watch::channel(false).0,
            abort: Notify::new(),
            status: Mutex::new(LiveStatus {
                state: "running".into(),
                gate: "proceed".into(),
                ..LiveStatus::default()
            }),
        })
    }

    pub(crate) fn status(&self) -> LiveStatus {
        self.status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn update(&self, f: impl FnOnce(&mut LiveStatus)) {
        f(&mut self.status.lock().unwrap_or_else(PoisonError::into_inner));
    }

    fn set_paused(&self, paused: bool) {
        self.paused.send_replace(paused);
        self.update(|s| {
            if s.state != "aborting" {
                s.state = if paused { "paused" } else { "running" }.into();
            }
        });
    }

    /// Resolves once an operator asked to abort.
    pub(crate) async fn aborted(&self) {
        self.abort.notified().await;
    }

    /// Waits while paused.
    async fn until_resumed(&self) {
        let mut paused = self.paused.subscribe();
        // The sender lives as long as `self`: `wait_for` cannot fail.
        let _ = paused.wait_for(|p| !*p).await;
    }

    /// Answers one connection.
    async fn serve(self: &Arc<Self>, stream: UnixStream) -> std::io::Result<()> {
        let (read, mut write) = stream.into_split();
        let mut line = String::new();
        BufReader::new(read).read_line(&mut line).await?;
        let command = line.trim();
        tracing::info!(command, "control command received");
        let reply = match command {
            "pause" => {
                self.set_paused(true);
                Ok(())
            }
            "resume" => {
                self.set_paused(false);
                Ok(())
            }
            "abort" => {
                self.update(|s| s.state = "aborting".into());
                self.abort.notify_one();
                // Let held calls go so the controller can stop.
                self.paused.send_replace(false);
                Ok(())
            }
            "status" => Ok(()),
            other => Err(format!(
                "unknown command `{other}`: pause, resume, abort or status"
            )),
        };
        let body = match reply {
            Ok(()) => serde_json::json!({ "ok": true, "status": self.status() }),
            Err(error) => serde_json::json!({ "ok": false, "error": error }),
        };
        write.write_all(format!("{body}\n").as_bytes()).await?;
        write.shutdown().await
    }
}

/// The socket server of a running controller; removes the socket file when
/// dropped.
#[derive(Debug)]
pub(crate) struct ControlSocket {
    path: PathBuf,
    task: tokio::task::JoinHandle<()>,
}

impl ControlSocket {
    /// Listens on `path` (a stale socket file from a dead run is replaced:
    /// the journal's lock, taken first, proves no other run is live).
    pub(crate) fn bind(path: &Path, control: Arc<Control>) -> Result<Self, CliError> {
        if path.exists() {
            std::fs::remove_file(path).map_err(|e| {
                CliError::Io(format!("removing stale socket {}: {e}", path.display()))
            })?;
        }
        let listener = UnixListener::bind(path)
            .map_err(|e| CliError::Io(format!("control socket {}: {e}", path.display())))?;
        let task = tokio::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((stream, _)) => {
                        let control = Arc::clone(&control);
                        tokio::spawn(async move {
                            if let Err(error) = control.serve(stream).await {
                                tracing::warn!(%error, "control connection failed");
                            }
                        });
                    }
                    Err(error) => {
                        tracing::warn!(%error, "control socket accept failed");
                    }
                }
            }
        });
        Ok(ControlSocket {
            path: path.to_path_buf(),
            task,
        })
    }
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Sends `command` to the controller listening on `path`; its JSON reply.
pub(crate) async fn send(path: &Path, command: &str) -> Result<serde_json::Value, CliError> {
    let mut stream = UnixStream::connect(path).await.map_err(|e| {
        CliError::NotRunning(format!(
            "no controller answers on {}: {e} (is `fleet-drain run` running with this config?)",
            path.display()
        ))
    })?;
    let io = |e: std::io::Error| CliError::Io(format!("control socket {}: {e}", path.display()));
    stream
        .write_all(format!("{command}\n").as_bytes())
        .await
        .map_err(io)?;
    let mut line = String::new();
    BufReader::new(stream)
        .read_line(&mut line)
        .await
        .map_err(io)?;
    let reply: serde_json::Value = serde_json::from_str(line.trim())
        .map_err(|e| CliError::Io(format!("control socket {}: bad reply: {e}", path.display())))?;
    if reply.get("ok").and_then(serde_json::Value::as_bool) != Some(true) {
        let error = reply
            .get("error")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("unknown error");
        return Err(CliError::Io(format!(
            "controller refused `{command}`: {error}"
        )));
    }
    Ok(reply)
}

/// The adapter behind the operator's pause switch.
pub(crate) struct Pausable {
    pub(crate) inner: Arc<dyn DrainFleet>,
    pub(crate) control: Arc<Control>,
}

impl std::fmt::Debug for Pausable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pausable").finish_non_exhaustive()
    }
}

#[async_trait]
impl DrainFleet for Pausable {
    async fn hosts(&self) -> Result<Vec<Host>, FleetError> {
        self.inner.hosts().await
    }

    async fn apps(&self) -> Result<Vec<App>, FleetError> {
        self.inner.apps().await
    }

    async fn snapshot(&self) -> Result<FleetSnapshot, FleetError> {
        self.inner.snapshot().await
    }

    async fn set_host_state(&self, host: HostId, state: HostState) -> Result<(), FleetError> {
        if state == HostState::Draining {
            self.control.until_resumed().await;
        }
        self.inner.set_host_state(host, state).await
    }

    async fn migrate(&self, app: AppId, to: HostId) -> Result<(), FleetError> {
        self.control.until_resumed().await;
        self.inner.migrate(app, to).await
    }

    async fn app_health(&self, app: AppId) -> Result<AppState, FleetError> {
        self.inner.app_health(app).await
    }

    fn placement(&self) -> Placement {
        self.inner.placement()
    }

    async fn evict(&self, app: AppId) -> Result<HostId, FleetError> {
        self.control.until_resumed().await;
        self.inner.evict(app).await
    }
}
