//! The unit of work of a drain (one app start) and the batches it runs
//! in; which starts a plan or a snapshot calls for.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::time::Instant;

use resilience_core::backoff::Backoff;

use super::events::DrainEvent;
use crate::fleet::{AppId, AppState, FleetError, FleetSnapshot, HostId, HostState};
use crate::journal::DrainProgress;
use crate::plan::DrainPlan;

pub(super) type Callback = Box<dyn Fn(&DrainEvent) + Send + Sync>;
pub(super) type StartFuture = Pin<Box<dyn Future<Output = (Work, StartStep)> + Send>>;

/// What an in-flight start reports.
#[derive(Debug)]
pub(super) enum StartStep {
    /// Platform placement: the platform placed the evicted app (on the
    /// returned host; its start goes on there) or refused to.
    Placed(Result<HostId, FleetError>),
    /// The start ended (succeeded or failed).
    Ended(Result<(), FleetError>),
}

/// One app start to do.
#[derive(Debug)]
pub(super) struct Work {
    pub(super) app: AppId,
    pub(super) to: HostId,
    /// The draining host the app leaves (`None` for a restart in place).
    pub(super) from: Option<HostId>,
    /// A restart after a late failure (counted as a repair when it
    /// succeeds).
    pub(super) late: bool,
    /// When the last attempt began, and the starts then in progress on
    /// the receiver (itself included).
    pub(super) began: Instant,
    pub(super) concurrency: u32,
    /// The wave (index in the report) the app moved in, once known.
    pub(super) wave: Option<usize>,
    pub(super) attempt: u32,
    /// Restarts an app left stopped or failed on a receiver: repairs (and
    /// retries) go on while the gate pauses new work, since they restore
    /// health rather than disrupt it.
    pub(super) repair: bool,
    pub(super) backoff: Option<Backoff>,
    pub(super) not_before: Instant,
}

/// What one call of `execute` works within.
#[derive(Debug)]
pub(super) struct Batch {
    pub(super) budget: usize,
    pub(super) started: Instant,
    pub(super) remaining: usize,
    /// The wave's plan and the snapshot it was made from, for re-planning
    /// around receivers that fail.
    pub(super) plan: Option<(DrainPlan, FleetSnapshot)>,
    /// Whether the health gate may pause or abort this batch. Repairs are
    /// not gated: the unhealthy apps they restart are what the gate would
    /// see, so judging health before they are done would pause (or abort)
    /// on the very leftovers being fixed.
    pub(super) gated: bool,
    /// Apps left to move off each draining host of the batch: a host whose
    /// count reaches 0 is marked drained at once.
    pub(super) sources: HashMap<HostId, usize>,
    /// Return only once every moved app passed its probation.
    pub(super) await_probation: bool,
    /// Platform placement: the hosts the platform may start an app on
    /// (active, not drained here), each held to its limits.
    pub(super) receivers: Vec<HostId>,
}

/// A moved app on probation.
#[derive(Debug, Clone, Copy)]
pub(super) struct Probation {
    pub(super) app: AppId,
    pub(super) host: HostId,
    pub(super) began: Instant,
    pub(super) ended: Instant,
    pub(super) concurrency: u32,
    pub(super) until: Instant,
    /// The wave (index in the report) the app moved in.
    pub(super) wave: Option<usize>,
}

/// The first start of every app a plan moves, in plan order.
pub(super) fn first_starts(plan: &DrainPlan, now: Instant) -> VecDeque<Work> {
    plan.assignments()
        .iter()
        .map(|a| Work {
            app: a.app,
            to: a.to,
            from: Some(a.from),
            late: false,
            began: now,
            concurrency: 0,
            wave: None,
            attempt: 0,
            repair: false,
            backoff: None,
            not_before: now,
        })
        .collect()
}

/// Apps left stopped or failed on receivers (an interrupted or failed start
/// of an earlier run), to restart in place.
pub(super) fn repairs(
    snapshot: &FleetSnapshot,
    targets: &HashSet<HostId>,
    now: Instant,
) -> VecDeque<Work> {
    snapshot
        .apps()
        .filter(|app| {
            !targets.contains(&app.host)
                && matches!(app.state, AppState::Stopped | AppState::Failed)
                && snapshot
                    .host(app.host)
                    .is_some_and(|h| h.state.accepts_apps())
        })
        .map(|app| Work {
            app: app.id,
            to: app.host,
            from: None,
            late: false,
            began: now,
            concurrency: 0,
            wave: None,
            attempt: 0,
            repair: true,
            backoff: None,
            not_before: now,
        })
        .collect()
}

/// Platform placement: the hosts the platform may start an evicted app on,
/// as far as the controller can tell: every active host that is not a
/// target (full ones too: a failed app restarts in place). Every one of
/// them is held to its per-receiver limits.
pub(super) fn platform_receivers(
    snapshot: &FleetSnapshot,
    targets: &HashSet<HostId>,
) -> Vec<HostId> {
    snapshot
        .hosts()
        .iter()
        .filter(|h| h.state.accepts_apps() && !targets.contains(&h.id))
        .map(|h| h.id)
        .collect()
}

/// Targets not yet drained, by the journal or the fleet.
pub(super) fn remaining_targets(
    targets: &[HostId],
    progress: &DrainProgress,
    snapshot: &FleetSnapshot,
) -> Vec<HostId> {
    targets
        .iter()
        .copied()
        .filter(|&t| {
            !progress.is_drained(t)
                && snapshot.host(t).is_none_or(|h| {
                    h.state != HostState::Drained || !snapshot.apps_on(t).is_empty()
                })
        })
        .collect()
}
