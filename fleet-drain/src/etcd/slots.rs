//! [`DisruptionSlots`]: the fleet-wide disruption budget (how many hosts
//! may be disrupted, how many starts may run at once, fleet-wide) as
//! lease-bound slot keys reserved with transactions that compare the
//! version of an epoch key. (Not to be confused with the retry budget of
//! `resilience-core`.)
//!
//! Reserving `k` slots in a directory that allows `limit`:
//!
//! 1. read the epoch key and every slot key of the directory (one
//!    serializable snapshot: a read-only transaction);
//! 2. if `held + k > limit`, wait (poll) — the budget is full;
//! 3. otherwise one transaction: *if* the fence holds, the epoch's version
//!    is the one read and none of the new slot keys exists, *then* create
//!    the slots (bound to this controller's lease) and bump the epoch.
//!
//! Any concurrent reservation bumps the epoch, so of two controllers that
//! read the same snapshot only one commits; the other re-reads. A freed
//! slot never needs the epoch: it only makes room.
//!
//! Two kinds of slots:
//!
//! - **Start slots** are bound to the controller's lease: they are
//!   released when the start ends, or by etcd when the lease expires (a
//!   crashed controller's starts end with it).
//! - **Host slots** belong to the *drain*, not to a lease: a host stays
//!   `Draining` in the fleet when its controller dies or is deposed, so it
//!   keeps counting against `max_draining_hosts` until the drain's next
//!   leader adopts it (the slot is already the drain's: no waiting, even
//!   if the deposed leader is still alive) and releases it once the host
//!   is drained, or the drain finishes or aborts. Creating and deleting
//!   them are fenced by the drain's leader key.

use std::collections::HashMap;

use etcd_client::{Compare, CompareOp, GetOptions, PutOptions, Txn, TxnOp, TxnOpResponse};
use serde::{Deserialize, Serialize};

use super::error::EtcdError;
use super::leader::LeaderCtx;

/// Who holds a slot (the slot key's value).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SlotHolder {
    pub(crate) controller: String,
    pub(crate) drain: String,
}

/// A journal record to write in the same transaction as a reservation.
#[derive(Debug, Clone)]
pub(crate) struct JournalWrite {
    pub(crate) key: String,
    pub(crate) value: Vec<u8>,
}

/// A set of slots to reserve in one directory.
#[derive(Debug)]
pub(crate) struct SlotRequest<'a> {
    pub(crate) epoch: String,
    pub(crate) dir: String,
    pub(crate) keys: Vec<String>,
    pub(crate) limit: u32,
    /// The limit's field name, for errors.
    pub(crate) limit_field: &'static str,
    /// What is being reserved, for logs ("host slots", "start slot").
    pub(crate) what: &'a str,
    /// Start slots: bound to the lease (gone with it). Host slots: owned
    /// by the drain, whatever leader holds it.
    pub(crate) lease_bound: bool,
}

/// The disruption slots of one leadership: reserves and releases slot keys
/// bound to its lease, fenced by its leader key.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DisruptionSlots<'a> {
    leader: &'a LeaderCtx,
}

impl<'a> DisruptionSlots<'a> {
    /// The slots of `leader`.
    pub(crate) fn of(leader: &'a LeaderCtx) -> Self {
        DisruptionSlots { leader }
    }

    fn holder(self) -> Result<Vec<u8>, EtcdError> {
        serde_json::to_vec(&SlotHolder {
            controller: self.leader.conn.id.clone(),
            drain: self.leader.drain.clone(),
        })
        .map_err(|e| EtcdError::Corrupt {
            key: String::new(),
            reason: e.to_string(),
        })
    }

    /// Reserves every slot of `request` at once (waiting for room), and
    /// writes `journal` in the same transaction. Idempotent: slots already
    /// held by this lease count as reserved, and a journal record already
    /// written ends the call.
    #[allow(clippy::too_many_lines)] // one read-decide-write loop, clearer whole
    pub(crate) async fn reserve(
        &self,
        request: &SlotRequest<'_>,
        journal: Option<&JournalWrite>,
    ) -> Result<(), EtcdError> {
        if request.keys.len() > request.limit as usize {
            return Err(EtcdError::Config(resilience_core::ConfigError::new(
                request.limit_field,
                format!(
                    "one step needs {} {} but the fleet-wide budget allows {}; lower the controller's own limit to at most the budget",
                    request.keys.len(),
                    request.what,
                    request.limit
                ),
            )));
        }
        let holder = self.holder()?;
        let mut waiting = false;
        loop {
            let mut reads = vec![
                TxnOp::get(request.epoch.clone(), None),
                TxnOp::get(request.dir.clone(), Some(GetOptions::new().with_prefix())),
            ];
            if let Some(j) = journal {
                reads.push(TxnOp::get(j.key.clone(), None));
            }
            let snapshot = self.leader.read(Txn::new().and_then(reads)).await?;
            let mut gets = snapshot.op_responses().into_iter().filter_map(|r| match r {
                TxnOpResponse::Get(g) => Some(g),
                _ => None,
            });
            let epoch_version = gets
                .next()
                .and_then(|g| g.kvs().first().map(etcd_client::KeyValue::version))
                .unwrap_or(0);
            let lease = self.leader.lease();
            // Each held slot: whether it is already ours (this lease's, or
            // this drain's for drain-owned slots).
            let held: HashMap<Vec<u8>, bool> = gets
                .next()
                .map(|g| {
                    g.kvs()
                        .iter()
                        .map(|kv| {
                            let ours = if request.lease_bound {
                                kv.lease() == lease
                            } else {
                                serde_json::from_slice::<SlotHolder>(kv.value())
                                    .is_ok_and(|h| h.drain == self.leader.drain)
                            };
                            (kv.key().to_vec(), ours)
                        })
                        .collect()
                })
                .unwrap_or_default();
            if let Some(j) = journal
                && let Some(existing) = gets.next().and_then(|g| g.kvs().first().cloned())
            {
                if existing.value() == j.value.as_slice() {
                    return Ok(());
                }
                return Err(EtcdError::Corrupt {
                    key: j.key.clone(),
                    reason: "journal entry already written with other content (two writers?)"
                        .into(),
                });
            }
            let need: Vec<&String> = request
                .keys
                .iter()
                .filter(|k| held.get(k.as_bytes()) != Some(&true))
                .collect();
            let taken_elsewhere = need.iter().any(|k| held.contains_key(k.as_bytes()));
            if taken_elsewhere || held.len() + need.len() > request.limit as usize {
                if !waiting {
                    tracing::info!(
                        controller = %self.leader.conn.id,
                        drain = %self.leader.drain,
                        what = request.what,
                        wanted = need.len(),
                        held = held.len(),
                        limit = request.limit,
                        taken_elsewhere,
                        "fleet-wide budget full; waiting for room"
                    );
                    waiting = true;
                }
                tokio::time::sleep(self.leader.conn.config.poll_interval).await;
                continue;
            }
            let mut compares = Vec::new();
            let mut ops = Vec::new();
            if !need.is_empty() {
                compares.push(Compare::version(
                    request.epoch.clone(),
                    CompareOp::Equal,
                    epoch_version,
                ));
                for key in &need {
                    compares.push(Compare::create_revision(
                        (*key).clone(),
                        CompareOp::Equal,
                        0,
                    ));
                    let options = request
                        .lease_bound
                        .then(|| PutOptions::new().with_lease(lease));
                    ops.push(TxnOp::put((*key).clone(), holder.clone(), options));
                }
                ops.push(TxnOp::put(request.epoch.clone(), "", None));
            }
            if let Some(j) = journal {
                compares.push(Compare::create_revision(j.key.clone(), CompareOp::Equal, 0));
                ops.push(TxnOp::put(j.key.clone(), j.value.clone(), None));
            }
            if ops.is_empty() {
                // Every slot is already held: nothing to write, but the
                // caller acts next, so the fence is still checked.
                self.leader.txn(Vec::new(), Vec::new()).await?;
                return Ok(());
            }
            if self.leader.txn(compares, ops).await?.is_some() {
                if waiting {
                    tracing::info!(controller = %self.leader.conn.id, what = request.what, "room in the fleet-wide budget; reserved");
                }
                tracing::debug!(controller = %self.leader.conn.id, drain = %self.leader.drain, what = request.what, slots = need.len(), "reserved");
                return Ok(());
            }
            // Another controller reserved between the read and the write.
        }
    }

    /// Deletes `key` if this lease holds it. Waits out unreachability
    /// while the lease lasts; once it is lost, etcd deletes the slot
    /// itself.
    ///
    /// Retries every error (not only unreachability): a slot that is not
    /// released stays held as long as the lease lives, shrinking the
    /// budget of every controller.
    pub(crate) async fn release(&self, key: String) -> Result<(), EtcdError> {
        let lease = self.leader.lease();
        let mut logged = false;
        loop {
            if self.leader.session.snapshot().lost.is_some() {
                // etcd deletes the slot with the lease.
                return Ok(());
            }
            let txn = Txn::new()
                .when([Compare::lease(key.clone(), CompareOp::Equal, lease)])
                .and_then([TxnOp::delete(key.clone(), None)]);
            match self
                .leader
                .conn
                .request(self.leader.conn.client().txn(txn))
                .await
            {
                Ok(_) => {
                    tracing::debug!(controller = %self.leader.conn.id, %key, "slot released");
                    return Ok(());
                }
                Err(error) => {
                    if !logged && !error.is_transient() {
                        tracing::warn!(controller = %self.leader.conn.id, %key, %error, "releasing a slot failed; retrying");
                        logged = true;
                    }
                    tokio::time::sleep(self.leader.conn.config.poll_interval).await;
                }
            }
        }
    }

    /// Deletes the drain-owned host slot `key` if it belongs to this drain:
    /// a fenced transaction (only the drain's leader releases its slots).
    /// Once the leadership is lost it does nothing: the slot stays the
    /// drain's, and the next leader releases it (its host still counts as
    /// draining until then).
    pub(crate) async fn release_host(&self, key: String) -> Result<(), EtcdError> {
        loop {
            let read = self
                .leader
                .read(Txn::new().and_then([TxnOp::get(key.clone(), None)]))
                .await;
            let response = match read {
                Ok(response) => response,
                Err(EtcdError::LeadershipLost { .. }) => return Ok(()),
                Err(e) => return Err(e),
            };
            let Some(kv) = response.op_responses().into_iter().find_map(|r| match r {
                TxnOpResponse::Get(g) => g.kvs().first().cloned(),
                _ => None,
            }) else {
                return Ok(());
            };
            let ours = serde_json::from_slice::<SlotHolder>(kv.value())
                .is_ok_and(|h| h.drain == self.leader.drain);
            if !ours {
                return Ok(());
            }
            let compare = Compare::mod_revision(key.clone(), CompareOp::Equal, kv.mod_revision());
            match self
                .leader
                .txn(vec![compare], vec![TxnOp::delete(key.clone(), None)])
                .await
            {
                Ok(Some(_)) => {
                    tracing::debug!(controller = %self.leader.conn.id, %key, "host slot released");
                    return Ok(());
                }
                // Changed between the read and the delete: look again.
                Ok(None) => {}
                Err(EtcdError::LeadershipLost { .. }) => {
                    tracing::debug!(controller = %self.leader.conn.id, %key, "leadership lost; the drain's next leader releases the host slot");
                    return Ok(());
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Releases the start slots this lease holds for this drain: called
    /// when a leadership begins, they are leftovers of the previous
    /// leadership's abandoned starts (a reservation whose answer was lost
    /// when its work was dropped).
    pub(crate) async fn release_stale_starts(&self) -> Result<(), EtcdError> {
        let dir = self.leader.conn.keys.starts_root();
        self.release_matching(dir).await
    }

    /// Releases every host slot of this drain.
    pub(crate) async fn release_all_hosts(&self) -> Result<(), EtcdError> {
        let dir = self.leader.conn.keys.hosts_dir();
        for key in self.slots_of_drain(dir, false).await? {
            self.release_host(key).await?;
        }
        Ok(())
    }

    /// Releases every slot under `dir` held by this lease for this drain.
    async fn release_matching(&self, dir: String) -> Result<(), EtcdError> {
        for key in self.slots_of_drain(dir, true).await? {
            self.release(key).await?;
        }
        Ok(())
    }

    /// The slots under `dir` of this drain (and, if `this_lease`, held by
    /// this lease).
    async fn slots_of_drain(
        &self,
        dir: String,
        this_lease: bool,
    ) -> Result<Vec<String>, EtcdError> {
        let response = self
            .leader
            .read(Txn::new().and_then([TxnOp::get(dir, Some(GetOptions::new().with_prefix()))]))
            .await?;
        let lease = self.leader.lease();
        let mine: Vec<String> = response
            .op_responses()
            .into_iter()
            .filter_map(|r| match r {
                TxnOpResponse::Get(g) => Some(g),
                _ => None,
            })
            .flat_map(|g| g.kvs().to_vec())
            .filter(|kv| !this_lease || kv.lease() == lease)
            .filter(|kv| {
                serde_json::from_slice::<SlotHolder>(kv.value())
                    .is_ok_and(|h| h.drain == self.leader.drain)
            })
            .map(|kv| String::from_utf8_lossy(kv.key()).into_owned())
            .collect();
        Ok(mine)
    }
}
