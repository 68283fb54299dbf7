//! [`EtcdCoordinator`]: the etcd session (a lease kept alive), leader
//! election per drain, and the fenced transactions every write goes
//! through.

use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, LeaseKeepAliveStream, LeaseKeeper, PutOptions, Txn,
    TxnOp, TxnOpResponse, TxnResponse,
};
use futures::future::{Either, select};
use tokio::sync::watch;

use super::config::{BudgetLimits, EtcdConfig};
use super::error::EtcdError;
use super::fleet::CoordinatedFleet;
use super::journal::EtcdJournal;
use super::keys::Keys;
use crate::fleet::Fleet;

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

pub(crate) struct Inner {
    pub(crate) config: EtcdConfig,
    pub(crate) id: String,
    pub(crate) keys: Keys,
    client: Client,
    session: Mutex<Option<Arc<Session>>>,
    last_error: Arc<Mutex<Option<String>>>,
}

impl fmt::Debug for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdCoordinator")
            .field("id", &self.id)
            .field("endpoints", &self.config.endpoints)
            .field("key_prefix", &self.config.key_prefix)
            .finish_non_exhaustive()
    }
}

/// Coordinates one drain controller with others through etcd. Cheap to
/// clone (shared state). See the [module docs](super).
#[derive(Clone)]
pub struct EtcdCoordinator {
    pub(crate) inner: Arc<Inner>,
}

impl fmt::Debug for EtcdCoordinator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}

impl EtcdCoordinator {
    /// Validates `config`, connects, checks (or stores) the fleet-wide
    /// budget and grants this controller's lease. `controller_id` names
    /// this controller in etcd and in logs (e.g. the host name and pid).
    ///
    /// Must be called within a tokio runtime (the keep-alive runs as a
    /// task). Fails with [`EtcdError::Unreachable`] if etcd does not
    /// answer within `request_timeout`: a controller never starts blind.
    pub async fn connect(
        config: EtcdConfig,
        controller_id: impl Into<String>,
    ) -> Result<Self, EtcdError> {
        config.validate()?;
        let id = controller_id.into();
        if id.is_empty() || id.contains(char::is_whitespace) {
            return Err(EtcdError::Config(resilience_core::ConfigError::new(
                "controller_id",
                "must be a non-empty name without whitespace",
            )));
        }
        let mut options = ConnectOptions::new()
            .with_timeout(config.request_timeout)
            .with_connect_timeout(config.request_timeout)
            .with_keep_alive(config.keepalive_interval(), config.request_timeout)
            .with_keep_alive_while_idle(true);
        if let Some(auth) = &config.auth {
            options = options.with_user(auth.user.clone(), auth.password.clone());
        }
        #[cfg(feature = "etcd-tls")]
        if let Some(tls) = &config.tls {
            options = options.with_tls(super::tls::options(tls)?);
        }
        let endpoints = config.endpoints.clone();
        let client = tokio::time::timeout(
            config.request_timeout,
            Client::connect(&endpoints, Some(options)),
        )
        .await
        .map_err(|_| EtcdError::Unreachable {
            endpoints: endpoints.join(","),
            reason: format!("no answer within {:?}", config.request_timeout),
        })?
        .map_err(|e| EtcdError::from_client(&endpoints, &e))?;
        let keys = Keys::new(&config.key_prefix);
        let coordinator = EtcdCoordinator {
            inner: Arc::new(Inner {
                config,
                id,
                keys,
                client,
                session: Mutex::new(None),
                last_error: Arc::new(Mutex::new(None)),
            }),
        };
        coordinator.check_budget().await?;
        coordinator.session().await?;
        tracing::info!(
            controller = %coordinator.inner.id,
            endpoints = ?coordinator.inner.config.endpoints,
            prefix = %coordinator.inner.config.key_prefix,
            "connected to etcd"
        );
        Ok(coordinator)
    }

    /// This controller's id.
    pub fn controller_id(&self) -> &str {
        &self.inner.id
    }

    /// The configuration.
    pub fn config(&self) -> &EtcdConfig {
        &self.inner.config
    }

    /// The current lease id (0 before the first lease).
    pub fn lease_id(&self) -> i64 {
        self.current_session().map_or(0, |s| s.lease)
    }

    fn current_session(&self) -> Option<Arc<Session>> {
        self.inner
            .session
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The session's state and the verdict derived from it.
    pub fn status(&self) -> CoordinatorStatus {
        let session = self.current_session();
        let last_error = self
            .inner
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let (lease, state) = match &session {
            Some(s) => (s.lease, Some(s.snapshot())),
            None => (0, None),
        };
        let now = Instant::now();
        let margin = self.inner.config.safety_margin();
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
            controller: self.inner.id.clone(),
            lease,
            lease_valid_for,
            last_error,
            lost,
            verdict,
        }
    }

    /// [`CoordinatorStatus::verdict`] alone: a gate for code that acts
    /// outside the [`CoordinatedFleet`] (e.g. before a manual step).
    pub fn verdict(&self) -> CoordinationVerdict {
        self.status().verdict
    }

    pub(crate) fn record_error(&self, error: &EtcdError) {
        let message = error.to_string();
        let mut last = self
            .inner
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if last.as_deref() != Some(message.as_str()) {
            tracing::warn!(controller = %self.inner.id, error = %message, "etcd request failed; pausing until etcd answers");
        }
        *last = Some(message);
    }

    pub(crate) fn record_success(&self) {
        let mut last = self
            .inner
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(previous) = last.take() {
            tracing::info!(controller = %self.inner.id, %previous, "etcd answers again; resuming");
        }
    }

    pub(crate) fn client(&self) -> Client {
        self.inner.client.clone()
    }

    fn classify(&self, error: &etcd_client::Error) -> EtcdError {
        EtcdError::from_client(&self.inner.config.endpoints, error)
    }

    /// Runs one request with the request timeout; maps errors.
    pub(crate) async fn request<T, F>(&self, op: F) -> Result<T, EtcdError>
    where
        F: Future<Output = Result<T, etcd_client::Error>>,
    {
        let timeout = self.inner.config.request_timeout;
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
                    endpoints: self.inner.config.endpoints.join(","),
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
                    tokio::time::sleep(self.inner.config.poll_interval).await;
                }
                other => return other,
            }
        }
    }

    async fn check_budget(&self) -> Result<(), EtcdError> {
        let key = self.inner.keys.budget_limits();
        let configured =
            serde_json::to_string(&self.inner.config.budget).map_err(|e| EtcdError::Corrupt {
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
        if parsed != self.inner.config.budget {
            return Err(EtcdError::BudgetMismatch {
                prefix: self.inner.config.key_prefix.clone(),
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
        let ttl = self.inner.config.ttl_secs();
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
        tracing::info!(controller = %self.inner.id, lease, ttl, "lease granted");
        *self
            .inner
            .session
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Arc::clone(&session));
        Ok(session)
    }

    /// What the keep-alive task needs, without keeping the coordinator
    /// alive (dropping every coordinator handle stops the renewals).
    fn clone_for_task(&self) -> TaskCtx {
        TaskCtx {
            client: self.inner.client.clone(),
            id: self.inner.id.clone(),
            endpoints: self.inner.config.endpoints.clone(),
            interval: self.inner.config.keepalive_interval(),
            timeout: self.inner.config.request_timeout,
            last_error: Arc::clone(&self.inner.last_error),
        }
    }

    /// Campaigns for the leadership of `drain` (an election name: letters,
    /// digits, `-`, `_`, `.`) and returns once this controller leads it.
    /// Waits while another controller leads, while etcd is unreachable and
    /// while this controller's lease cannot be renewed.
    ///
    /// The returned [`Leadership`] carries the fencing token: the revision
    /// at which this controller's leader key was created. Every write made
    /// through it is a transaction that checks the key still exists with
    /// this token and lease, so a deposed leader cannot write.
    pub async fn campaign(&self, drain: &str) -> Result<Leadership, EtcdError> {
        Keys::check_name(drain)?;
        let key = self.inner.keys.leader(drain);
        let mut waiting_on: Option<String> = None;
        loop {
            let session = self.session().await?;
            let state = session.snapshot();
            if state.valid_until <= Instant::now() + self.inner.config.safety_margin() {
                // The lease may have expired in etcd: do not campaign on it.
                tokio::time::sleep(self.inner.config.poll_interval).await;
                continue;
            }
            let txn = Txn::new()
                .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
                .and_then([TxnOp::put(
                    key.clone(),
                    self.inner.id.clone(),
                    Some(PutOptions::new().with_lease(session.lease)),
                )])
                .or_else([TxnOp::get(key.clone(), None)]);
            let response = match self.request(self.client().txn(txn)).await {
                Ok(r) => r,
                Err(e) if e.is_transient() => {
                    tokio::time::sleep(self.inner.config.poll_interval).await;
                    continue;
                }
                Err(EtcdError::Refused(message)) if message.contains("lease not found") => {
                    // Revoked or expired before the keep-alive noticed.
                    session.state.send_modify(|s| {
                        s.lost = Some(format!("lease {} not found in etcd", session.lease));
                    });
                    continue;
                }
                Err(e) => return Err(e),
            };
            let token = if response.succeeded() {
                response.header().map(etcd_client::ResponseHeader::revision)
            } else {
                first_kv(&response).and_then(|(lease, create_revision, value)| {
                    if lease == session.lease {
                        Some(create_revision)
                    } else {
                        let holder = String::from_utf8_lossy(&value).into_owned();
                        if waiting_on.as_deref() != Some(holder.as_str()) {
                            tracing::info!(controller = %self.inner.id, drain, leader = %holder, "another controller leads; standing by");
                            waiting_on = Some(holder);
                        }
                        None
                    }
                })
            };
            if let Some(token) = token {
                tracing::info!(controller = %self.inner.id, drain, token, lease = session.lease, "elected leader");
                let (deposed, _) = watch::channel(None);
                let leadership = Leadership {
                    ctx: Arc::new(LeaderCtx {
                        coordinator: self.clone(),
                        session,
                        drain: drain.to_owned(),
                        leader_key: key.clone(),
                        token,
                        deposed,
                    }),
                };
                match leadership.ctx.release_stale_starts().await {
                    Ok(()) => return Ok(leadership),
                    Err(e) if e.is_transient() || matches!(e, EtcdError::LeadershipLost { .. }) => {
                        tokio::time::sleep(self.inner.config.poll_interval).await;
                        continue;
                    }
                    Err(e) => return Err(e),
                }
            }
            tokio::time::sleep(self.inner.config.poll_interval).await;
        }
    }

    /// Leads `drain` until `work` finishes: campaigns, runs
    /// `work(leadership)` while the leadership lasts, and when it is lost
    /// (lease expired, revoked, not renewable in time) drops the work at
    /// once and campaigns again, so the work resumes (from its journal)
    /// whenever this controller leads again. Returns the work's output once
    /// it completes as leader, and resigns.
    ///
    /// Errors only on what waiting cannot fix (a refused request, a budget
    /// mismatch).
    pub async fn lead<F, Fut, T>(&self, drain: &str, mut work: F) -> Result<T, EtcdError>
    where
        F: FnMut(Leadership) -> Fut,
        Fut: Future<Output = T>,
    {
        loop {
            let leadership = Box::pin(self.campaign(drain)).await?;
            match leadership.run(work(leadership.clone())).await {
                Ok(output) if leadership.lost_reason().is_none() => {
                    leadership.resign().await;
                    return Ok(output);
                }
                Ok(_) => {
                    tracing::warn!(controller = %self.inner.id, drain, "work ended after leadership was lost; campaigning again");
                }
                Err(error) => {
                    tracing::warn!(controller = %self.inner.id, drain, %error, "stopped acting; campaigning again");
                }
            }
        }
    }

    /// Revokes the lease: every leadership and reservation of this
    /// controller ends at once (a clean shutdown).
    pub async fn close(&self) -> Result<(), EtcdError> {
        let session = self
            .inner
            .session
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(session) = session {
            session.state.send_modify(|s| {
                s.lost = Some("lease revoked by close()".into());
            });
            let lease = session.lease;
            self.request(self.client().lease_revoke(lease)).await?;
            tracing::info!(controller = %self.inner.id, lease, "lease revoked");
        }
        Ok(())
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
fn first_kv(response: &TxnResponse) -> Option<(i64, i64, Vec<u8>)> {
    response.op_responses().into_iter().find_map(|r| match r {
        TxnOpResponse::Get(get) => get
            .kvs()
            .first()
            .map(|kv| (kv.lease(), kv.create_revision(), kv.value().to_vec())),
        _ => None,
    })
}

fn first_kv_value(response: &TxnResponse) -> Option<Vec<u8>> {
    first_kv(response).map(|(_, _, v)| v)
}

/// Shared state of one leadership.
#[derive(Debug)]
pub(crate) struct LeaderCtx {
    pub(crate) coordinator: EtcdCoordinator,
    pub(crate) session: Arc<Session>,
    pub(crate) drain: String,
    pub(crate) leader_key: String,
    pub(crate) token: i64,
    deposed: watch::Sender<Option<String>>,
}

impl LeaderCtx {
    fn lost(&self, reason: impl Into<String>) -> EtcdError {
        EtcdError::LeadershipLost {
            drain: self.drain.clone(),
            reason: reason.into(),
        }
    }

    pub(crate) fn lease(&self) -> i64 {
        self.session.lease
    }

    /// Why the leadership is over for good, if it is.
    pub(crate) fn lost_reason(&self) -> Option<String> {
        if let Some(reason) = self.deposed.borrow().clone() {
            return Some(reason);
        }
        self.session.snapshot().lost
    }

    fn depose(&self, reason: String) {
        tracing::warn!(controller = %self.coordinator.inner.id, drain = %self.drain, %reason, "deposed; stopping");
        self.deposed.send_if_modified(|d| {
            if d.is_none() {
                *d = Some(reason);
                true
            } else {
                false
            }
        });
    }

    /// Whether the lease is certainly live for at least the safety margin.
    fn is_live(&self) -> bool {
        self.session.snapshot().valid_until
            > Instant::now() + self.coordinator.inner.config.safety_margin()
    }

    /// Waits until acting is safe (the lease is certainly live), or fails
    /// once the leadership is lost.
    pub(crate) async fn wait_live(&self) -> Result<(), EtcdError> {
        let mut logged = false;
        loop {
            if let Some(reason) = self.lost_reason() {
                return Err(self.lost(reason));
            }
            if self.is_live() {
                return Ok(());
            }
            if !logged {
                tracing::warn!(controller = %self.coordinator.inner.id, drain = %self.drain, "lease not renewed recently enough; pausing");
                logged = true;
            }
            tokio::time::sleep(self.coordinator.inner.config.poll_interval).await;
        }
    }

    /// The compares that fence a write: the leader key still exists with
    /// this controller's creation revision and lease.
    pub(crate) fn fence(&self) -> Vec<Compare> {
        vec![
            Compare::create_revision(self.leader_key.clone(), CompareOp::Equal, self.token),
            Compare::lease(self.leader_key.clone(), CompareOp::Equal, self.lease()),
        ]
    }

    /// Runs a fenced transaction: `compares` and the fence, then `ops`.
    /// Waits out unreachability; fails if the leadership is lost or the
    /// fence fails. `Ok(None)`: the fence held but `compares` failed.
    pub(crate) async fn txn(
        &self,
        compares: Vec<Compare>,
        ops: Vec<TxnOp>,
    ) -> Result<Option<TxnResponse>, EtcdError> {
        loop {
            self.wait_live().await?;
            let mut all = self.fence();
            all.extend(compares.iter().cloned());
            let txn = Txn::new()
                .when(all)
                .and_then(ops.clone())
                .or_else([TxnOp::get(self.leader_key.clone(), None)]);
            match self
                .coordinator
                .request(self.coordinator.client().txn(txn))
                .await
            {
                Ok(response) if response.succeeded() => return Ok(Some(response)),
                Ok(response) => {
                    let still_leader = first_kv(&response)
                        .is_some_and(|(lease, rev, _)| lease == self.lease() && rev == self.token);
                    if still_leader {
                        return Ok(None);
                    }
                    let reason = format!(
                        "leader key `{}` no longer holds fencing token {} (lease {} expired or another controller was elected)",
                        self.leader_key,
                        self.token,
                        self.lease()
                    );
                    self.depose(reason.clone());
                    return Err(self.lost(reason));
                }
                Err(e) if e.is_transient() => {
                    tokio::time::sleep(self.coordinator.inner.config.poll_interval).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// A read, waiting out unreachability while the leadership lasts.
    pub(crate) async fn read(&self, txn: Txn) -> Result<TxnResponse, EtcdError> {
        self.coordinator
            .request_patiently(
                |mut client| {
                    let txn = txn.clone();
                    async move { client.txn(txn).await }
                },
                || self.lost_reason().map(|r| self.lost(r)),
            )
            .await
    }

    /// Resolves when the leadership is lost or acting is no longer safe
    /// (the lease was not renewed in time), with the reason.
    pub(crate) async fn lost_or_stale(&self) -> String {
        let mut lease_rx = self.session.state.subscribe();
        let mut deposed_rx = self.deposed.subscribe();
        let margin = self.coordinator.inner.config.safety_margin();
        loop {
            if let Some(reason) = self.lost_reason() {
                return reason;
            }
            let valid_until = lease_rx.borrow_and_update().valid_until;
            let stale_at = valid_until.checked_sub(margin).unwrap_or(valid_until);
            if Instant::now() >= stale_at {
                let last = self
                    .coordinator
                    .inner
                    .last_error
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone();
                return format!(
                    "lease {} not renewed in time, it may expire within {margin:?} ({})",
                    self.lease(),
                    last.as_deref().unwrap_or("renewals unanswered")
                );
            }
            let sleep = Box::pin(tokio::time::sleep_until(tokio::time::Instant::from_std(
                stale_at,
            )));
            let changed = Box::pin(async {
                let lease_changed = Box::pin(lease_rx.changed());
                let deposed_changed = Box::pin(deposed_rx.changed());
                match select(lease_changed, deposed_changed).await {
                    Either::Left((r, _)) | Either::Right((r, _)) => r.is_ok(),
                }
            });
            if let Either::Left((false, _)) = select(changed, sleep).await {
                // The session is gone: the lease cannot be renewed.
                return "the lease's keep-alive stopped".into();
            }
        }
    }
}

/// This controller leads a drain. Cheap to clone. Writes made through
/// [`Leadership::journal`] and [`Leadership::fleet`] are fenced.
#[derive(Debug, Clone)]
pub struct Leadership {
    pub(crate) ctx: Arc<LeaderCtx>,
}

impl Leadership {
    /// The drain (election name).
    pub fn drain(&self) -> &str {
        &self.ctx.drain
    }

    /// The fencing token: the etcd revision at which this leadership
    /// began. Strictly greater than every earlier leader's token for the
    /// same drain, so a fleet backend that records the highest token seen
    /// can refuse a deposed leader's late requests.
    pub fn token(&self) -> i64 {
        self.ctx.token
    }

    /// The lease the leadership (and its reservations) hang on.
    pub fn lease_id(&self) -> i64 {
        self.ctx.lease()
    }

    /// Whether acting is safe right now: not lost, and the lease certainly
    /// live for longer than the safety margin.
    pub fn is_live(&self) -> bool {
        self.ctx.lost_reason().is_none() && self.ctx.is_live()
    }

    /// Why the leadership ended for good, if it did.
    pub fn lost_reason(&self) -> Option<String> {
        self.ctx.lost_reason()
    }

    /// Resolves when acting stops being safe: the leadership is lost, or
    /// the lease was not renewed in time (etcd unreachable, partition),
    /// *before* the lease can expire in etcd (by the safety margin).
    pub async fn lost(&self) -> String {
        self.ctx.lost_or_stale().await
    }

    /// Runs `work` while this leadership is safe; drops it the moment it
    /// is not ([`Leadership::lost`]) and returns
    /// [`EtcdError::LeadershipLost`].
    pub async fn run<F: Future>(&self, work: F) -> Result<F::Output, EtcdError> {
        let lost = Box::pin(self.lost());
        let work = std::pin::pin!(work);
        match select(work, lost).await {
            Either::Left((output, _)) => Ok(output),
            Either::Right((reason, _)) => {
                tracing::warn!(controller = %self.ctx.coordinator.inner.id, drain = %self.ctx.drain, %reason, "stepping down: stopped acting");
                Err(self.ctx.lost(reason))
            }
        }
    }

    /// The drain's journal in etcd (fenced appends).
    pub fn journal(&self) -> EtcdJournal {
        EtcdJournal::new(self.clone())
    }

    /// `inner` behind the fleet-wide budget and the fence.
    pub fn fleet(&self, inner: Arc<dyn Fleet>) -> CoordinatedFleet {
        CoordinatedFleet::new(self.clone(), inner)
    }

    /// Gives the leadership up (deletes the leader key if it is still
    /// this controller's); another controller can be elected at once.
    pub async fn resign(&self) {
        let key = self.ctx.leader_key.clone();
        let txn = Txn::new()
            .when([Compare::lease(
                key.clone(),
                CompareOp::Equal,
                self.ctx.lease(),
            )])
            .and_then([TxnOp::delete(key, None)]);
        let coordinator = &self.ctx.coordinator;
        if let Err(error) = coordinator.request(coordinator.client().txn(txn)).await {
            tracing::warn!(drain = %self.ctx.drain, %error, "resign failed; the leader key expires with the lease");
        }
        self.ctx.depose("resigned".into());
        tracing::info!(controller = %coordinator.inner.id, drain = %self.ctx.drain, "resigned");
    }
}
