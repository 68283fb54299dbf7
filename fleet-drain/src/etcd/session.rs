//! The etcd connection of one controller: its client, its lease (a
//! [`Session`] kept alive by a background task), and the request helpers
//! every etcd call goes through (timeouts, error classification, waiting
//! out unreachability). A leaf of the etcd module: it knows nothing of
//! leaders, slots or journals.

use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use etcd_client::{
    Client, Compare, CompareOp, LeaseKeepAliveStream, LeaseKeeper, Txn, TxnOp, TxnOpResponse,
    TxnResponse,
};
use tokio::sync::watch;

use super::config::{BudgetLimits, EtcdConfig};
use super::error::EtcdError;
use super::keys::Keys;

/// What the controller may do right now, as seen by its coordinator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CoordinationVerdict {
    /// The lease is live: act.
    Proceed,
    /// etcd is unreachable or the lease was not renewed recently enough:
    /// do nothing until this clears (it may, when etcd answers again).
    Pause {
        /// Why, with the last etcd error.
        reason: String,
    },
    /// The lease is gone: this controller must stop acting and campaign
    /// again.
    Stop {
        /// Why.
        reason: String,
    },
}

/// A snapshot of a coordinator's session, for status pages and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoordinatorStatus {
    /// This controller's id.
    pub controller: String,
    /// The current lease id.
    pub lease: i64,
    /// How much longer the lease is certainly live (zero once it may have
    /// expired).
    pub lease_valid_for: Duration,
    /// The last etcd error not yet followed by a success.
    pub last_error: Option<String>,
    /// Why the lease is lost, if it is.
    pub lost: Option<String>,
    /// The verdict derived from the above.
    pub verdict: CoordinationVerdict,
}

#[derive(Debug, Clone)]
pub(crate) struct LeaseState {
    /// The lease is certainly live until then (measured from the moment
    /// the last successful renewal was *sent*).
    pub(crate) valid_until: Instant,
    pub(crate) lost: Option<String>,
}

/// One lease and its keep-alive task.
#[derive(Debug)]
pub(crate) struct Session {
    pub(crate) lease: i64,
    pub(crate) state: watch::Sender<LeaseState>,
    task: tokio::task::AbortHandle,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Session {
    pub(crate) fn snapshot(&self) -> LeaseState {
        self.state.borrow().clone()
    }
}

pub(crate) struct Connection {
    pub(crate) config: EtcdConfig,
    pub(crate) id: String,
    pub(crate) keys: Keys,
    pub(super) client: Client,
    pub(super) session: Mutex<Option<Arc<Session>>>,
    pub(super) last_error: Arc<Mutex<Option<String>>>,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdCoordinator")
            .field("id", &self.id)
            .field("endpoints", &self.config.endpoints)
            .field("key_prefix", &self.config.key_prefix)
            .finish_non_exhaustive()
    }
}

impl Connection {
    pub(crate) fn current_session(&self) -> Option<Arc<Session>> {
        self.session
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The session's state and the verdict derived from it.
    pub(crate) fn status(&self) -> CoordinatorStatus {
        let session = self.current_session();
        let last_error = self
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let (lease, state) = match &session {
            Some(s) => (s.lease, Some(s.snapshot())),
            None => (0, None),
        };
        let now = Instant::now();
        let margin = self.config.safety_margin();
        let lease_valid_for = state.as_ref().map_or(Duration::ZERO, |s| {
            s.valid_until.saturating_duration_since(now + margin)
        });
        let lost = state.as_ref().and_then(|s| s.lost.clone());
        let verdict = if let Some(reason) = &lost {
            CoordinationVerdict::Stop {
                reason: reason.clone(),
            }
        } else if lease_valid_for.is_zero() {
            CoordinationVerdict::Pause {
                reason: format!(
                    "lease {lease} not renewed in time: {}",
                    last_error.as_deref().unwrap_or("no renewal yet")
                ),
            }
        } else if let Some(error) = &last_error {
            CoordinationVerdict::Pause {
                reason: error.clone(),
            }
        } else {
            CoordinationVerdict::Proceed
        };
        CoordinatorStatus {
            controller: self.id.clone(),
            lease,
            lease_valid_for,
            last_error,
            lost,
            verdict,
        }
    }

    /// [`CoordinatorStatus::verdict`] alone: a gate for code that acts
    /// outside the [`CoordinatedFleet`] (e.g. before a manual step).
    pub(crate) fn verdict(&self) -> CoordinationVerdict {
        self.status().verdict
    }

    pub(crate) fn record_error(&self, error: &EtcdError) {
        let message = error.to_string();
        let mut last = self
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if last.as_deref() != Some(message.as_str()) {
            tracing::warn!(controller = %self.id, error = %message, "etcd request failed; pausing until etcd answers");
        }
        *last = Some(message);
    }

    pub(crate) fn record_success(&self) {
        let mut last = self
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(previous) = last.take() {
            tracing::info!(controller = %self.id, %previous, "etcd answers again; resuming");
        }
    }

    pub(crate) fn client(&self) -> Client {
        self.client.clone()
    }

    fn classify(&self, error: &etcd_client::Error) -> EtcdError {
        EtcdError::from_client(&self.config.endpoints, error)
    }

    /// Runs one request with the request timeout; maps errors.
    pub(crate) async fn request<T, F>(&self, op: F) -> Result<T, EtcdError>
    where
        F: Future<Output = Result<T, etcd_client::Error>>,
    {
        let timeout = self.config.request_timeout;
        match tokio::time::timeout(timeout, op).await {
            Ok(Ok(value)) => {
                self.record_success();
                Ok(value)
            }
            Ok(Err(e)) => {
                let error = self.classify(&e);
                if error.is_transient() {
                    self.record_error(&error);
                }
                Err(error)
            }
            Err(_) => {
                let error = EtcdError::Unreachable {
                    endpoints: self.config.endpoints.join(","),
                    reason: format!("no answer within {timeout:?}"),
                };
                self.record_error(&error);
                Err(error)
            }
        }
    }

    /// Like [`Self::request`], but waits out unreachability (polling) until
    /// `give_up` says stop.
    pub(crate) async fn request_patiently<T, F, Fut>(
        &self,
        mut op: F,
        give_up: impl Fn() -> Option<EtcdError>,
    ) -> Result<T, EtcdError>
    where
        F: FnMut(Client) -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        loop {
            if let Some(error) = give_up() {
                return Err(error);
            }
            match self.request(op(self.client())).await {
                Err(e) if e.is_transient() => {
                    tokio::time::sleep(self.config.poll_interval).await;
                }
                other => return other,
            }
        }
    }

    pub(crate) async fn check_budget(&self) -> Result<(), EtcdError> {
        let key = self.keys.budget_limits();
        let configured =
            serde_json::to_string(&self.config.budget).map_err(|e| EtcdError::Corrupt {
                key: key.clone(),
                reason: e.to_string(),
            })?;
        let txn = Txn::new()
            .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key.clone(), configured.clone(), None)])
            .or_else([TxnOp::get(key.clone(), None)]);
        let response = self.request(self.client().txn(txn)).await?;
        if response.succeeded() {
            return Ok(());
        }
        let stored = first_kv_value(&response).unwrap_or_default();
        let parsed: BudgetLimits =
            serde_json::from_slice(&stored).map_err(|e| EtcdError::Corrupt {
                key: key.clone(),
                reason: e.to_string(),
            })?;
        if parsed != self.config.budget {
            return Err(EtcdError::BudgetMismatch {
                prefix: self.config.key_prefix.clone(),
                stored: String::from_utf8_lossy(&stored).into_owned(),
                configured,
            });
        }
        Ok(())
    }

    /// The live session, granting a new lease if there is none or it is
    /// lost. Waits while etcd is unreachable.
    pub(crate) async fn session(&self) -> Result<Arc<Session>, EtcdError> {
        if let Some(session) = self.current_session()
            && session.snapshot().lost.is_none()
        {
            return Ok(session);
        }
        let ttl = self.config.ttl_secs();
        let sent = Instant::now();
        let granted = self
            .request_patiently(
                |mut client| async move { client.lease_grant(ttl, None).await },
                || None,
            )
            .await?;
        let lease = granted.id();
        let valid_until = sent + Duration::from_secs(u64::try_from(granted.ttl()).unwrap_or(0));
        let (state, _) = watch::channel(LeaseState {
            valid_until,
            lost: None,
        });
        let task =
            tokio::spawn(keep_alive(self.clone_for_task(), lease, state.clone())).abort_handle();
        let session = Arc::new(Session { lease, state, task });
        tracing::info!(controller = %self.id, lease, ttl, "lease granted");
        *self.session.lock().unwrap_or_else(PoisonError::into_inner) = Some(Arc::clone(&session));
        Ok(session)
    }

    /// What the keep-alive task needs, without keeping the coordinator
    /// alive (dropping every coordinator handle stops the renewals).
    fn clone_for_task(&self) -> TaskCtx {
        TaskCtx {
            client: self.client.clone(),
            id: self.id.clone(),
            endpoints: self.config.endpoints.clone(),
            interval: self.config.keepalive_interval(),
            timeout: self.config.request_timeout,
            last_error: Arc::clone(&self.last_error),
        }
    }
}

struct TaskCtx {
    client: Client,
    id: String,
    endpoints: Vec<String>,
    interval: Duration,
    timeout: Duration,
    last_error: Arc<Mutex<Option<String>>>,
}

async fn renew(
    client: &mut Client,
    lease: i64,
    stream: &mut Option<(LeaseKeeper, LeaseKeepAliveStream)>,
) -> Result<i64, etcd_client::Error> {
    if stream.is_none() {
        *stream = Some(client.lease_keep_alive(lease).await?);
    }
    let Some((keeper, responses)) = stream.as_mut() else {
        return Err(etcd_client::Error::LeaseKeepAliveError(
            "no keep-alive stream".into(),
        ));
    };
    keeper.keep_alive().await?;
    match responses.message().await? {
        Some(response) => Ok(response.ttl()),
        None => Err(etcd_client::Error::LeaseKeepAliveError(
            "keep-alive stream closed".into(),
        )),
    }
}

/// Renews `lease` every `interval` until it is lost; records when it is
/// certainly live.
async fn keep_alive(ctx: TaskCtx, lease: i64, state: watch::Sender<LeaseState>) {
    let mut client = ctx.client.clone();
    let mut stream = None;
    let mut next = tokio::time::Instant::now() + ctx.interval;
    loop {
        tokio::time::sleep_until(next).await;
        let sent = Instant::now();
        next = tokio::time::Instant::now() + ctx.interval;
        match tokio::time::timeout(ctx.timeout, renew(&mut client, lease, &mut stream)).await {
            Ok(Ok(ttl)) if ttl > 0 => {
                let valid_until = sent + Duration::from_secs(u64::try_from(ttl).unwrap_or(0));
                state.send_modify(|s| s.valid_until = s.valid_until.max(valid_until));
                let mut last = ctx
                    .last_error
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                if let Some(previous) = last.take() {
                    tracing::info!(controller = %ctx.id, lease, %previous, "lease renewed again; etcd answers");
                }
                tracing::trace!(controller = %ctx.id, lease, ttl, "lease renewed");
            }
            Ok(Ok(_)) => {
                lose(&ctx, lease, &state);
                return;
            }
            Ok(Err(e)) if e.to_string().contains("lease not found") => {
                lose(&ctx, lease, &state);
                return;
            }
            outcome => {
                stream = None;
                let reason = match outcome {
                    Ok(Err(e)) => EtcdError::from_client(&ctx.endpoints, &e).to_string(),
                    _ => EtcdError::Unreachable {
                        endpoints: ctx.endpoints.join(","),
                        reason: format!("lease renewal not answered within {:?}", ctx.timeout),
                    }
                    .to_string(),
                };
                tracing::warn!(controller = %ctx.id, lease, error = %reason, "lease renewal failed");
                *ctx.last_error
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = Some(reason);
                // Retry sooner than the regular interval.
                next = tokio::time::Instant::now() + ctx.interval / 3;
            }
        }
    }
}

fn lose(ctx: &TaskCtx, lease: i64, state: &watch::Sender<LeaseState>) {
    let reason = format!("lease {lease} expired or was revoked in etcd");
    tracing::warn!(controller = %ctx.id, lease, %reason, "lease lost; stepping down");
    state.send_modify(|s| s.lost = Some(reason));
}

/// The value, lease and create revision of the first key read in a
/// transaction's responses.
pub(crate) fn first_kv(response: &TxnResponse) -> Option<(i64, i64, Vec<u8>)> {
    response.op_responses().into_iter().find_map(|r| match r {
        TxnOpResponse::Get(get) => get
            .kvs()
            .first()
            .map(|kv| (kv.lease(), kv.create_revision(), kv.value().to_vec())),
        _ => None,
    })
}

pub(crate) fn first_kv_value(response: &TxnResponse) -> Option<Vec<u8>> {
    first_kv(response).map(|(_, _, v)| v)
}
