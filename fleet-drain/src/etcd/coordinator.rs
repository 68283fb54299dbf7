//! [`EtcdCoordinator`]: the etcd session (a lease kept alive), leader
//! election per drain, and the fenced transactions every write goes
//! through.

use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use etcd_client::{Client, Compare, CompareOp, ConnectOptions, PutOptions, Txn, TxnOp};

use super::config::EtcdConfig;
use super::error::EtcdError;
use super::keys::Keys;
use super::leader::LeaderCtx;
use super::leadership::Leadership;
use super::session::{Connection, CoordinationVerdict, CoordinatorStatus, first_kv};
use super::slots::DisruptionSlots;

/// Coordinates one drain controller with others through etcd. Cheap to
/// clone (shared state). See the [module docs](super).
#[derive(Clone)]
pub struct EtcdCoordinator {
    pub(crate) inner: Arc<Connection>,
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
            inner: Arc::new(Connection {
                config,
                id,
                keys,
                client,
                session: Mutex::new(None),
                last_error: Arc::new(Mutex::new(None)),
            }),
        };
        coordinator.inner.check_budget().await?;
        coordinator.inner.session().await?;
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
        self.inner.current_session().map_or(0, |s| s.lease)
    }

    /// A snapshot of the session, for status pages and logs.
    pub fn status(&self) -> CoordinatorStatus {
        self.inner.status()
    }

    /// What the controller may do right now.
    pub fn verdict(&self) -> CoordinationVerdict {
        self.inner.verdict()
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
            let session = self.inner.session().await?;
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
            let response = match self.inner.request(self.inner.client().txn(txn)).await {
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
                let leadership = Leadership {
                    ctx: Arc::new(LeaderCtx::new(
                        Arc::clone(&self.inner),
                        session,
                        drain.to_owned(),
                        key.clone(),
                        token,
                    )),
                };
                leadership.ctx.watch_leader_key();
                match DisruptionSlots::of(&leadership.ctx)
                    .release_stale_starts()
                    .await
                {
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
            self.inner
                .request(self.inner.client().lease_revoke(lease))
                .await?;
            tracing::info!(controller = %self.inner.id, lease, "lease revoked");
        }
        Ok(())
    }
}
