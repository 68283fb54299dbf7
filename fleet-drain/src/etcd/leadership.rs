//! [`Leadership`]: this controller leads one drain; the fenced journal and
//! fleet it hands out.

use std::future::Future;
use std::sync::Arc;

use etcd_client::{Compare, CompareOp, Txn, TxnOp};
use futures::future::{Either, select};

use super::error::EtcdError;
use super::fleet::CoordinatedFleet;
use super::journal::EtcdJournal;
use super::leader::LeaderCtx;
use super::slots::DisruptionSlots;
use crate::fleet::{DrainFleet, Fleet};

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
                tracing::warn!(controller = %self.ctx.conn.id, drain = %self.ctx.drain, %reason, "stepping down: stopped acting");
                Err(self.ctx.lost(reason))
            }
        }
    }

    /// The drain's journal in etcd (fenced appends).
    pub fn journal(&self) -> EtcdJournal {
        EtcdJournal::new(Arc::clone(&self.ctx))
    }

    /// `inner` behind the fleet-wide budget and the fence.
    pub fn fleet(&self, inner: Arc<dyn Fleet>) -> CoordinatedFleet {
        CoordinatedFleet::new(Arc::clone(&self.ctx), inner)
    }

    /// A drain-only adapter (e.g. `http::HttpFleet`) behind the fleet-wide
    /// budget and the fence; its rollout calls fail with
    /// `FleetError::Unsupported`.
    pub fn drain_fleet(&self, inner: Arc<dyn DrainFleet>) -> CoordinatedFleet {
        CoordinatedFleet::drain_only(Arc::clone(&self.ctx), inner)
    }

    /// Releases every host slot this drain holds in the fleet-wide budget.
    ///
    /// Host slots belong to the drain, not to a controller's lease: when a
    /// leader dies with hosts still draining, they keep counting against
    /// `max_draining_hosts` until the drain's next leader finishes them
    /// (or the drain finishes or aborts). An operator abandoning a drain
    /// for good, after putting its hosts back in service by hand, frees
    /// the budget with this (as the drain's leader: the deletes are
    /// fenced).
    pub async fn release_host_slots(&self) -> Result<(), EtcdError> {
        DisruptionSlots::of(&self.ctx).release_all_hosts().await
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
        let coordinator = &self.ctx.conn;
        if let Err(error) = coordinator.request(coordinator.client().txn(txn)).await {
            tracing::warn!(drain = %self.ctx.drain, %error, "resign failed; the leader key expires with the lease");
        }
        self.ctx.depose("resigned".into());
        tracing::info!(controller = %coordinator.id, drain = %self.ctx.drain, "resigned");
    }
}
