//! [`CoordinatedFleet`]: a [`Fleet`] whose every change is fenced and
//! within the fleet-wide budget.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;

use super::error::EtcdError;
use super::leader::LeaderCtx;
use super::slots::{DisruptionSlots, SlotRequest};
use crate::fleet::{
    App, AppId, AppState, DrainFleet, Fleet, FleetError, FleetSnapshot, Host, HostId, HostState,
    Placement, RolloutFleet,
};

/// Wraps the real [`Fleet`] of a leading controller:
///
/// - reads pass through once the leadership is checked locally (not
///   deposed: the leader key is watched; the lease certainly live), without
///   an etcd round trip;
/// - `set_host_state(host, Draining)` first holds the host's slot in the
///   fleet-wide budget (already held when the wave was journaled through
///   an [`EtcdJournal`](super::EtcdJournal), and then checked with a
///   fenced transaction; otherwise reserved now, waiting for room);
///   leaving `Draining` releases it. Host slots belong to the drain, so a
///   host left `Draining` by a dead or deposed leader keeps counting
///   against the budget until the drain's next leader finishes it;
/// - `migrate(app, to)` holds a start slot on receiver `to` (at most
///   `budget.max_concurrent_starts_per_receiver` across every controller)
///   for the duration of the start, waiting for room;
/// - every other change (`cordon`, `uncordon`, versions, traffic) first
///   checks the fence (a transaction comparing the leader key's token and
///   lease); every method is delegated explicitly to the same method of
///   the inner fleet;
/// - while etcd is unreachable every change waits: nothing is done
///   blind.
///
/// A deposed leader's calls fail with [`FleetError::Unavailable`] naming
/// the lost leadership, *before* reaching the inner fleet. (A change
/// already handed to the inner fleet when the leadership is lost cannot be
/// recalled; a backend that must refuse even those can check the fencing
/// token, [`CoordinatedFleet::token`], itself.)
///
/// A drain-only adapter ([`DrainFleet`] alone) is wrapped with
/// [`Leadership::drain_fleet`](super::Leadership::drain_fleet); its rollout
/// calls then fail with [`FleetError::Unsupported`].
pub struct CoordinatedFleet {
    ctx: Arc<LeaderCtx>,
    inner: Arc<dyn DrainFleet>,
    /// The same fleet's rollout side, if it has one.
    rollout: Option<Arc<dyn RolloutFleet>>,
}

impl fmt::Debug for CoordinatedFleet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CoordinatedFleet")
            .field("drain", &self.ctx.drain)
            .field("token", &self.ctx.token)
            .finish_non_exhaustive()
    }
}

fn fleet_error(error: EtcdError) -> FleetError {
    match error {
        EtcdError::Config(e) => FleetError::InvalidArgument(e.to_string()),
        other => FleetError::Unavailable(other.to_string()),
    }
}

/// Releases a start slot when the start ends, or if the start is dropped.
struct StartSlot {
    ctx: Arc<LeaderCtx>,
    key: Option<String>,
}

impl StartSlot {
    async fn release(mut self) -> Result<(), EtcdError> {
        match self.key.take() {
            Some(key) => DisruptionSlots::of(&self.ctx).release(key).await,
            None => Ok(()),
        }
    }
}

impl Drop for StartSlot {
    fn drop(&mut self) {
        if let Some(key) = self.key.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let ctx = Arc::clone(&self.ctx);
            runtime.spawn(async move {
                let _ = DisruptionSlots::of(&ctx).release(key).await;
            });
        }
    }
}

impl CoordinatedFleet {
    pub(crate) fn new(ctx: Arc<LeaderCtx>, inner: Arc<dyn Fleet>) -> Self {
        let rollout: Arc<dyn RolloutFleet> = inner.clone();
        CoordinatedFleet {
            ctx,
            inner,
            rollout: Some(rollout),
        }
    }

    pub(crate) fn drain_only(ctx: Arc<LeaderCtx>, inner: Arc<dyn DrainFleet>) -> Self {
        CoordinatedFleet {
            ctx,
            inner,
            rollout: None,
        }
    }

    /// The rollout side, or why there is none.
    fn rollout(&self) -> Result<&Arc<dyn RolloutFleet>, FleetError> {
        self.rollout.as_ref().ok_or_else(|| {
            FleetError::Unsupported(
                "this coordinated fleet wraps a drain-only adapter (`Leadership::drain_fleet`): wrap a fleet that implements `RolloutFleet` with `Leadership::fleet` to run rollouts".into(),
            )
        })
    }

    /// The drain whose leadership fences the changes.
    pub fn drain(&self) -> &str {
        &self.ctx.drain
    }

    /// The fencing token of that leadership (see `Leadership::token`).
    pub fn token(&self) -> i64 {
        self.ctx.token
    }

    fn ctx(&self) -> &Arc<LeaderCtx> {
        &self.ctx
    }

    /// Before a read: the leadership is not lost (nor deposed: the leader
    /// key is watched) and the lease is certainly live. No etcd round trip.
    async fn gate(&self) -> Result<(), FleetError> {
        self.ctx().wait_live().await.map_err(fleet_error)
    }

    /// A host leaves `Draining` through `change`: fenced, then its slot is
    /// released.
    async fn leave_draining<F>(&self, host: HostId, change: F) -> Result<(), FleetError>
    where
        F: Future<Output = Result<(), FleetError>>,
    {
        self.fence().await?;
        change.await?;
        let ctx = self.ctx();
        DisruptionSlots::of(ctx)
            .release_host(ctx.conn.keys.host_slot(host))
            .await
            .map_err(fleet_error)
    }

    async fn fence(&self) -> Result<(), FleetError> {
        self.ctx()
            .txn(Vec::new(), Vec::new())
            .await
            .map(|_| ())
            .map_err(fleet_error)
    }
}

#[async_trait]
impl DrainFleet for CoordinatedFleet {
    async fn hosts(&self) -> Result<Vec<Host>, FleetError> {
        self.gate().await?;
        self.inner.hosts().await
    }

    async fn apps(&self) -> Result<Vec<App>, FleetError> {
        self.gate().await?;
        self.inner.apps().await
    }

    async fn snapshot(&self) -> Result<FleetSnapshot, FleetError> {
        self.gate().await?;
        self.inner.snapshot().await
    }

    async fn set_host_state(&self, host: HostId, state: HostState) -> Result<(), FleetError> {
        if state != HostState::Draining {
            return self
                .leave_draining(host, self.inner.set_host_state(host, state))
                .await;
        }
        let ctx = self.ctx();
        let keys = &ctx.conn.keys;
        let request = SlotRequest {
            epoch: keys.hosts_epoch(),
            dir: keys.hosts_dir(),
            keys: vec![keys.host_slot(host)],
            limit: ctx.conn.config.budget.max_draining_hosts,
            limit_field: "budget.max_draining_hosts",
            what: "host slot",
            lease_bound: false,
        };
        // Fenced even when the slot is already held (no write to make).
        DisruptionSlots::of(ctx)
            .reserve(&request, None)
            .await
            .map_err(fleet_error)?;
        self.inner.set_host_state(host, state).await
    }

    async fn cordon(&self, host: HostId) -> Result<(), FleetError> {
        self.leave_draining(host, self.inner.cordon(host)).await
    }

    async fn uncordon(&self, host: HostId) -> Result<(), FleetError> {
        self.leave_draining(host, self.inner.uncordon(host)).await
    }

    async fn migrate(&self, app: AppId, to: HostId) -> Result<(), FleetError> {
        let ctx = self.ctx();
        let keys = &ctx.conn.keys;
        let key = keys.start_slot(to, app);
        let request = SlotRequest {
            epoch: keys.starts_epoch(to),
            dir: keys.starts_dir(to),
            keys: vec![key.clone()],
            limit: ctx.conn.config.budget.max_concurrent_starts_per_receiver,
            limit_field: "budget.max_concurrent_starts_per_receiver",
            what: "start slot",
            lease_bound: true,
        };
        DisruptionSlots::of(ctx)
            .reserve(&request, None)
            .await
            .map_err(fleet_error)?;
        let slot = StartSlot {
            ctx: Arc::clone(ctx),
            key: Some(key),
        };
        let result = self.inner.migrate(app, to).await;
        slot.release().await.map_err(fleet_error)?;
        result
    }

    async fn app_health(&self, app: AppId) -> Result<AppState, FleetError> {
        self.gate().await?;
        self.inner.app_health(app).await
    }

    fn placement(&self) -> Placement {
        self.inner.placement()
    }

    async fn evict(&self, app: AppId) -> Result<HostId, FleetError> {
        // The platform picks the receiver: no start slot can be reserved
        // ahead; the controller's own per-receiver limits still hold.
        self.fence().await?;
        self.inner.evict(app).await
    }
}

#[async_trait]
impl RolloutFleet for CoordinatedFleet {
    async fn start_version(
        &self,
        host: HostId,
        version: &str,
        traffic: bool,
    ) -> Result<(), FleetError> {
        let rollout = self.rollout()?;
        self.fence().await?;
        rollout.start_version(host, version, traffic).await
    }

    async fn stop_version(&self, host: HostId, version: &str) -> Result<(), FleetError> {
        let rollout = self.rollout()?;
        self.fence().await?;
        rollout.stop_version(host, version).await
    }

    async fn shift_traffic(&self, version: &str, percent: f64) -> Result<(), FleetError> {
        let rollout = self.rollout()?;
        self.fence().await?;
        rollout.shift_traffic(version, percent).await
    }
}
