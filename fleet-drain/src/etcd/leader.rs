//! [`LeaderCtx`]: the state of one leadership (its lease, fencing token
//! and leader key) and the fenced transactions every write of a leader
//! goes through.

use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use etcd_client::{
    Client, Compare, CompareOp, EventType, GetOptions, Txn, TxnOp, TxnResponse, WatchOptions,
};
use futures::future::{Either, select};
use tokio::sync::watch;

use super::error::EtcdError;
use super::session::{Connection, Session, first_kv};

/// Shared state of one leadership.
#[derive(Debug)]
pub(crate) struct LeaderCtx {
    pub(crate) conn: Arc<Connection>,
    pub(crate) session: Arc<Session>,
    pub(crate) drain: String,
    pub(crate) leader_key: String,
    pub(crate) token: i64,
    deposed: watch::Sender<Option<String>>,
    /// The task watching the leader key (aborted with the leadership).
    watcher: Mutex<Option<tokio::task::AbortHandle>>,
}

impl Drop for LeaderCtx {
    fn drop(&mut self) {
        if let Some(task) = self
            .watcher
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            task.abort();
        }
    }
}

impl LeaderCtx {
    pub(super) fn new(
        conn: Arc<Connection>,
        session: Arc<Session>,
        drain: String,
        leader_key: String,
        token: i64,
    ) -> Self {
        let (deposed, _) = watch::channel(None);
        LeaderCtx {
            conn,
            session,
            drain,
            leader_key,
            token,
            deposed,
            watcher: Mutex::new(None),
        }
    }

    /// Starts watching the leader key: its deletion or replacement (by an
    /// operator, an expired lease, another controller) deposes this
    /// leadership at once, without waiting for the next fenced write to
    /// fail, so [`Self::lost_or_stale`] ends the leader's work promptly.
    pub(super) fn watch_leader_key(self: &Arc<Self>) {
        let task = tokio::spawn(watch_leader(
            Arc::downgrade(self),
            self.conn.client(),
            self.leader_key.clone(),
            self.token,
            self.lease(),
            self.conn.config.poll_interval,
        ))
        .abort_handle();
        *self.watcher.lock().unwrap_or_else(PoisonError::into_inner) = Some(task);
    }

    pub(super) fn lost(&self, reason: impl Into<String>) -> EtcdError {
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

    pub(super) fn depose(&self, reason: String) {
        tracing::warn!(controller = %self.conn.id, drain = %self.drain, %reason, "deposed; stopping");
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
    pub(super) fn is_live(&self) -> bool {
        self.session.snapshot().valid_until > Instant::now() + self.conn.config.safety_margin()
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
                tracing::warn!(controller = %self.conn.id, drain = %self.drain, "lease not renewed recently enough; pausing");
                logged = true;
            }
            tokio::time::sleep(self.conn.config.poll_interval).await;
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
            match self.conn.request(self.conn.client().txn(txn)).await {
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
                    tokio::time::sleep(self.conn.config.poll_interval).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// A read, waiting out unreachability while the leadership lasts.
    pub(crate) async fn read(&self, txn: Txn) -> Result<TxnResponse, EtcdError> {
        self.conn
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
        let margin = self.conn.config.safety_margin();
        loop {
            if let Some(reason) = self.lost_reason() {
                return reason;
            }
            let valid_until = lease_rx.borrow_and_update().valid_until;
            let stale_at = valid_until.checked_sub(margin).unwrap_or(valid_until);
            if Instant::now() >= stale_at {
                let last = self
                    .conn
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

/// Deposes the leadership behind `ctx` once its leader key is deleted or
/// no longer carries `token` and `lease`. Re-establishes the watch (from
/// the last revision seen) when the stream breaks; if etcd compacted that
/// history, reads the key instead.
async fn watch_leader(
    ctx: Weak<LeaderCtx>,
    mut client: Client,
    key: String,
    token: i64,
    lease: i64,
    poll: Duration,
) {
    let depose = |reason: String| {
        if let Some(ctx) = ctx.upgrade() {
            ctx.depose(reason);
        }
    };
    let mut from = token + 1;
    loop {
        let options = WatchOptions::new().with_start_revision(from);
        let Ok(mut stream) = client.watch(key.clone(), Some(options)).await else {
            tokio::time::sleep(poll).await;
            continue;
        };
        loop {
            let Ok(Some(response)) = stream.message().await else {
                break;
            };
            if response.compact_revision() > 0 || response.canceled() {
                // History gone: read the key itself.
                let read = client
                    .get(key.clone(), Some(GetOptions::new()))
                    .await
                    .ok()
                    .map(|r| {
                        let current = r.kvs().first().map(|kv| (kv.create_revision(), kv.lease()));
                        let revision = r.header().map_or(from, |h| h.revision() + 1);
                        (current, revision)
                    });
                match read {
                    Some((Some((rev, l)), revision)) if rev == token && l == lease => {
                        from = revision;
                    }
                    Some((_, _)) => {
                        depose(format!(
                            "leader key `{key}` was deleted or replaced (fencing token {token} gone)"
                        ));
                        return;
                    }
                    None => {}
                }
                break;
            }
            for event in response.events() {
                let kv = event.kv();
                let ours = event.event_type() == EventType::Put
                    && kv.is_some_and(|kv| kv.create_revision() == token && kv.lease() == lease);
                if !ours {
                    let what = if event.event_type() == EventType::Delete {
                        "deleted (lease expired or revoked, resigned, or removed by hand)"
                    } else {
                        "replaced"
                    };
                    depose(format!(
                        "leader key `{key}` was {what}; fencing token {token} is void"
                    ));
                    return;
                }
                if let Some(kv) = kv {
                    from = from.max(kv.mod_revision() + 1);
                }
            }
        }
        if ctx.strong_count() == 0 {
            return;
        }
        tokio::time::sleep(poll).await;
    }
}
