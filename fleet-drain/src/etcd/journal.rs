//! [`EtcdJournal`]: the drain journal stored in etcd, one key per record.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use etcd_client::{GetOptions, Txn, TxnOp, TxnOpResponse};

use super::error::EtcdError;
use super::leader::LeaderCtx;
use super::slots::{DisruptionSlots, JournalWrite, SlotRequest};
use crate::fleet::HostId;
use crate::journal::{DrainProgress, Journal, JournalError, JournalRecord};

/// The journal of one drain, stored under `<prefix>/journal/<drain>/` with
/// one key per record (`…/000000000000`, `…/000000000001`, …), as JSON.
///
/// Implements [`Journal`] like [`FileJournal`](crate::journal::FileJournal),
/// so a [`DrainController`](crate::drain::DrainController) uses it
/// unchanged. Differences that make several controllers safe:
///
/// - **Fenced appends.** Each append is a transaction that also checks
///   this controller still leads the drain (its leader key, fencing token
///   and lease) and that the record's key is new: a deposed leader's
///   append fails with [`JournalError::Backend`] and nothing is written.
/// - **Reservations with intent.** Appending
///   [`JournalRecord::WaveStarted`] reserves the wave's host slots in the
///   fleet-wide budget *in the same transaction* (waiting for room first),
///   so a wave is either journaled with its whole budget or not at all; a
///   controller never holds half a wave while waiting for the other half.
///   [`JournalRecord::HostDrained`] releases the host's slot;
///   `Finished` and `Aborted` release them all.
/// - **Adoption on resume.** Host slots belong to the drain, not to a
///   leader's lease: a leader that dies or is deposed with hosts still
///   draining leaves their slots in place (the hosts are still `Draining`
///   in the fleet, so they keep counting against the fleet-wide
///   `max_draining_hosts`). [`Journal::records`] of the next leader finds
///   them already the drain's and goes on at once (a fenced check, no
///   waiting); slots the journal lists but etcd lacks (an older version's
///   lease-bound slots) are reserved again, waiting for room.
/// - **Pauses, never proceeds blind.** While etcd is unreachable every
///   call waits (and reports it: `warn` events, the coordinator's
///   [`status`](super::EtcdCoordinator::status)); it fails only once the
///   leadership is lost.
pub struct EtcdJournal {
    ctx: Arc<LeaderCtx>,
    records: Option<Vec<JournalRecord>>,
}

impl fmt::Debug for EtcdJournal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdJournal")
            .field("drain", &self.ctx.drain)
            .field("records", &self.records.as_ref().map(Vec::len))
            .finish_non_exhaustive()
    }
}

fn backend(error: &EtcdError) -> JournalError {
    JournalError::Backend(error.to_string())
}

impl EtcdJournal {
    pub(crate) fn new(ctx: Arc<LeaderCtx>) -> Self {
        EtcdJournal { ctx, records: None }
    }

    fn host_request(&self, hosts: &[HostId]) -> SlotRequest<'static> {
        let keys = &self.ctx.conn.keys;
        SlotRequest {
            epoch: keys.hosts_epoch(),
            dir: keys.hosts_dir(),
            keys: hosts.iter().map(|&h| keys.host_slot(h)).collect(),
            limit: self.ctx.conn.config.budget.max_draining_hosts,
            limit_field: "budget.max_draining_hosts",
            what: "host slots",
            lease_bound: false,
        }
    }

    /// Reads every record from etcd (once; later calls use the cache kept
    /// up to date by appends).
    async fn load(&mut self) -> Result<&mut Vec<JournalRecord>, EtcdError> {
        if self.records.is_none() {
            let ctx = &self.ctx;
            let dir = ctx.conn.keys.journal_dir(&ctx.drain);
            let response = ctx
                .read(Txn::new().and_then([TxnOp::get(dir, Some(GetOptions::new().with_prefix()))]))
                .await?;
            let mut records = Vec::new();
            for r in response.op_responses() {
                let TxnOpResponse::Get(get) = r else { continue };
                for kv in get.kvs() {
                    let key = String::from_utf8_lossy(kv.key()).into_owned();
                    let expected = ctx.conn.keys.journal_entry(&ctx.drain, records.len());
                    if key != expected {
                        return Err(EtcdError::Corrupt {
                            key,
                            reason: format!(
                                "expected the next journal entry to be `{expected}` (a gap or a foreign key)"
                            ),
                        });
                    }
                    let record: JournalRecord =
                        serde_json::from_slice(kv.value()).map_err(|e| EtcdError::Corrupt {
                            key: key.clone(),
                            reason: e.to_string(),
                        })?;
                    records.push(record);
                }
            }
            tracing::info!(drain = %ctx.drain, records = records.len(), "journal loaded from etcd");
            self.records = Some(records);
        }
        Ok(self.records.get_or_insert_with(Vec::new))
    }
}

#[async_trait]
impl Journal for EtcdJournal {
    async fn append(&mut self, record: &JournalRecord) -> Result<(), JournalError> {
        let seq = self.load().await.map_err(|e| backend(&e))?.len();
        let ctx = Arc::clone(&self.ctx);
        let value = serde_json::to_vec(record).map_err(|e| JournalError::Encode(e.to_string()))?;
        let write = JournalWrite {
            key: ctx.conn.keys.journal_entry(&ctx.drain, seq),
            value,
        };
        let hosts: &[HostId] = match record {
            JournalRecord::WaveStarted { hosts, .. } => hosts,
            _ => &[],
        };
        let request = self.host_request(hosts);
        DisruptionSlots::of(&ctx)
            .reserve(&request, Some(&write))
            .await
            .map_err(|e| backend(&e))?;
        if let Some(records) = self.records.as_mut() {
            records.push(record.clone());
        }
        tracing::debug!(drain = %ctx.drain, seq, record = ?record, "journal record written to etcd");
        match record {
            JournalRecord::HostDrained { host } => DisruptionSlots::of(&ctx)
                .release_host(ctx.conn.keys.host_slot(*host))
                .await
                .map_err(|e| backend(&e))?,
            JournalRecord::Finished | JournalRecord::Aborted { .. } => {
                DisruptionSlots::of(&ctx)
                    .release_all_hosts()
                    .await
                    .map_err(|e| backend(&e))?;
            }
            _ => {}
        }
        Ok(())
    }

    async fn records(&mut self) -> Result<Vec<JournalRecord>, JournalError> {
        let records = self.load().await.map_err(|e| backend(&e))?.clone();
        let progress = DrainProgress::from_records(&records);
        if !progress.finished && progress.aborted.is_none() && !progress.draining.is_empty() {
            tracing::info!(drain = %&self.ctx.drain, draining = ?progress.draining, "adopting the host slots of the wave in progress");
            let request = self.host_request(&progress.draining);
            DisruptionSlots::of(&self.ctx)
                .reserve(&request, None)
                .await
                .map_err(|e| backend(&e))?;
        }
        Ok(records)
    }
}
