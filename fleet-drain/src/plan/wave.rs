//! A planned wave: [`DrainPlan`], its [`Assignment`]s and [`ReceiverLoad`]s,
//! and what an incremental re-plan changed ([`Replan`]).

use std::collections::{HashMap, HashSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::fleet::{AppId, HostId};

/// One app's move.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignment {
    /// The app.
    pub app: AppId,
    /// The draining host it leaves.
    pub from: HostId,
    /// The receiving host.
    pub to: HostId,
    /// The minute (from the wave's start) in which it may start: at most
    /// `max_starts_per_host_per_minute` assignments into one host share a
    /// slot.
    pub slot: u32,
}

/// A receiving host's numbers in a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiverLoad {
    /// The host.
    pub host: HostId,
    /// Its capacity.
    pub capacity: u32,
    /// Apps on it before the wave.
    pub load: u32,
    /// Slots it keeps free (`min_free_capacity`).
    pub reserve: u32,
    /// Apps the wave sends to it.
    pub assigned: u32,
    /// Excluded from receiving (unhealthy) since the plan was made.
    pub excluded: bool,
}

impl ReceiverLoad {
    pub(super) fn free(&self) -> u32 {
        if self.excluded {
            return 0;
        }
        self.capacity
            .saturating_sub(self.reserve)
            .saturating_sub(self.load)
            .saturating_sub(self.assigned)
    }

    /// Load share after the wave, scaled to an integer heap key.
    pub(super) fn key(&self) -> u64 {
        let load = u64::from(self.load) + u64::from(self.assigned);
        (load << 24) / u64::from(self.capacity.max(1))
    }
}

/// The next wave: the hosts draining now and a receiver for each of their
/// apps. Produced by [`Planner::next_wave`](super::Planner::next_wave).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DrainPlan {
    pub(super) hosts: Vec<HostId>,
    pub(super) new_hosts: Vec<HostId>,
    pub(super) assignments: Vec<Assignment>,
    pub(super) unplaced: Vec<(AppId, HostId)>,
    pub(super) unavailable_budget: u64,
    pub(super) receivers: Vec<ReceiverLoad>,
    #[serde(skip)]
    pub(super) receiver_index: HashMap<HostId, usize>,
    #[serde(skip)]
    pub(super) non_receivers: HashSet<HostId>,
}

impl DrainPlan {
    /// Every host draining in this wave: those already draining first, then
    /// the ones this wave adds.
    pub fn hosts(&self) -> &[HostId] {
        &self.hosts
    }

    /// The hosts this wave starts draining (a subset of
    /// [`DrainPlan::hosts`]).
    pub fn new_hosts(&self) -> &[HostId] {
        &self.new_hosts
    }

    /// One move per app on the wave's hosts that could be placed.
    pub fn assignments(&self) -> &[Assignment] {
        &self.assignments
    }

    /// Apps (with their host) for which no receiver had room; empty unless
    /// receivers were lost since the drain was checked.
    pub fn unplaced(&self) -> &[(AppId, HostId)] {
        &self.unplaced
    }

    /// Apps that may be unavailable at once.
    pub fn unavailable_budget(&self) -> u64 {
        self.unavailable_budget
    }

    /// The receivers and what the wave sends to each.
    pub fn receivers(&self) -> &[ReceiverLoad] {
        &self.receivers
    }

    /// One receiver's numbers.
    pub fn receiver(&self, host: HostId) -> Option<&ReceiverLoad> {
        self.receiver_index
            .get(&host)
            .and_then(|&i| self.receivers.get(i))
    }

    /// Whether the wave has nothing to do.
    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }
}

/// A human-readable summary (what a dry run prints): the hosts, then one
/// line per receiver with its assignments and start slots used.
impl fmt::Display for DrainPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |hosts: &[HostId]| {
            hosts
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        writeln!(
            f,
            "wave: {} hosts draining ({} new: {}), {} apps to move, {} unplaced, unavailability budget {}",
            self.hosts.len(),
            self.new_hosts.len(),
            list(&self.new_hosts),
            self.assignments.len(),
            self.unplaced.len(),
            self.unavailable_budget
        )?;
        for r in self.receivers.iter().filter(|r| r.assigned > 0) {
            let slots = self
                .assignments
                .iter()
                .filter(|a| a.to == r.host)
                .map(|a| a.slot)
                .max()
                .map_or(0, |s| s + 1);
            writeln!(
                f,
                "  {}: {} -> {} of {} apps (+{}, over {} minute(s))",
                r.host,
                r.load,
                r.load + r.assigned,
                r.capacity,
                r.assigned,
                slots
            )?;
        }
        Ok(())
    }
}

/// What [`Planner::replan_host`](super::Planner::replan_host) changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Replan {
    /// Apps moved to another receiver.
    pub moved: usize,
    /// Apps that found no receiver.
    pub unplaced: usize,
    /// Whether the host joined the receivers.
    pub added_receiver: bool,
}
