//! The [`Planner`]: the next wave within the limits, least-loaded receivers
//! first, and incremental re-planning when one host changes.

use std::cmp::Reverse;
use std::collections::binary_heap::PeekMut;
use std::collections::{BinaryHeap, HashMap, HashSet};

use resilience_core::{ConfigError, InstanceName};

use super::limits::DrainLimits;
use super::wave::{Assignment, DrainPlan, ReceiverLoad, Replan};
use crate::error::PlanError;
use crate::fleet::{AppId, FleetSnapshot, HostId, HostState};

/// Plans waves within validated [`DrainLimits`].
#[derive(Debug, Clone)]
pub struct Planner {
    limits: DrainLimits,
    /// The owning controller's name (its events' `name` field).
    name: InstanceName,
}

impl Planner {
    /// Names the planner's events after the controller it plans for.
    pub(crate) fn set_name(&mut self, name: InstanceName) {
        self.name = name;
    }

    /// A planner for `limits`, or the first invalid limit.
    pub fn new(limits: DrainLimits) -> Result<Self, ConfigError> {
        limits.validate()?;
        Ok(Planner {
            limits,
            name: InstanceName::unnamed(),
        })
    }

    /// The limits.
    pub fn limits(&self) -> &DrainLimits {
        &self.limits
    }

    fn target_flags(snapshot: &FleetSnapshot, targets: &[HostId]) -> Result<Vec<bool>, PlanError> {
        let mut flags = vec![false; snapshot.hosts().len()];
        for &t in targets {
            let pos = snapshot.position(t).ok_or(PlanError::UnknownHost(t))?;
            if let Some(flag) = flags.get_mut(pos) {
                *flag = true;
            }
        }
        Ok(flags)
    }

    fn is_receiver(snapshot: &FleetSnapshot, is_target: &[bool], pos: usize) -> bool {
        snapshot
            .hosts()
            .get(pos)
            .is_some_and(|h| h.state.accepts_apps())
            && !is_target.get(pos).copied().unwrap_or(true)
            && snapshot.is_healthy_at(pos)
    }

    /// Checks that the whole drain can be done within the limits: the
    /// hosts exist, receivers exist and have room for every app to move,
    /// and no host has more apps than may be unavailable at once.
    pub fn check_feasible(
        &self,
        snapshot: &FleetSnapshot,
        targets: &[HostId],
    ) -> Result<(), PlanError> {
        let is_target = Self::target_flags(snapshot, targets)?;
        let budget = self.limits.unavailable_budget(snapshot.total_apps() as u64);
        let mut needed = 0u64;
        for &t in targets {
            let apps = snapshot.apps_on(t).len() as u64;
            if apps > budget {
                return Err(PlanError::HostExceedsUnavailable {
                    host: t,
                    apps,
                    budget,
                });
            }
            needed += apps;
        }
        let mut available = 0u64;
        let mut receivers = 0usize;
        for (pos, host) in snapshot.hosts().iter().enumerate() {
            if Self::is_receiver(snapshot, &is_target, pos) {
                receivers += 1;
                let load = snapshot.apps_at(pos).len() as u64;
                let room = u64::from(host.capacity)
                    .saturating_sub(u64::from(self.limits.reserve(host.capacity)))
                    .saturating_sub(load);
                available += room;
            }
        }
        if needed > 0 && receivers == 0 {
            return Err(PlanError::NoReceivers {
                targets: targets.len(),
            });
        }
        if needed > available {
            return Err(PlanError::InsufficientCapacity { needed, available });
        }
        Ok(())
    }

    /// Plans the next wave over the hosts still to drain (`targets`, in
    /// drain order; drained ones are skipped). Hosts already
    /// [`HostState::Draining`] stay in the wave; new hosts are added in
    /// order while every limit holds. Receivers are the active, healthy
    /// hosts that are not targets.
    pub fn next_wave(
        &self,
        snapshot: &FleetSnapshot,
        targets: &[HostId],
    ) -> Result<DrainPlan, PlanError> {
        let is_target = Self::target_flags(snapshot, targets)?;
        let hosts = snapshot.hosts();
        let budget = self.limits.unavailable_budget(snapshot.total_apps() as u64);

        // Receivers, their room, and apps already unavailable outside the
        // targets (they use up the unavailability budget).
        let mut receivers = Vec::new();
        let mut receiver_index = HashMap::new();
        let mut unavailable_elsewhere = 0u64;
        let mut room = 0u64;
        for (pos, host) in hosts.iter().enumerate() {
            let apps = snapshot.apps_at(pos);
            if is_target.get(pos).copied().unwrap_or(false) {
                continue;
            }
            unavailable_elsewhere += apps.iter().filter(|a| !a.state.is_healthy()).count() as u64;
            if Self::is_receiver(snapshot, &is_target, pos) {
                let r = ReceiverLoad {
                    host: host.id,
                    capacity: host.capacity,
                    load: u32::try_from(apps.len()).unwrap_or(u32::MAX),
                    reserve: self.limits.reserve(host.capacity),
                    assigned: 0,
                    excluded: false,
                };
                room += u64::from(r.free());
                receiver_index.insert(host.id, receivers.len());
                receivers.push(r);
            }
        }

        // Pick the wave's hosts.
        let mut wave = Vec::new();
        let mut new_hosts = Vec::new();
        let mut wave_apps = 0u64;
        let mut draining = 0u32;
        for &t in targets {
            let Some(host) = snapshot.host(t) else {
                continue;
            };
            if host.state == HostState::Draining {
                draining += 1;
                wave_apps += snapshot.apps_on(t).len() as u64;
                wave.push(t);
            }
        }
        let mut budget_left = budget.saturating_sub(unavailable_elsewhere);
        budget_left = budget_left.saturating_sub(wave_apps);
        let mut room_left = room.saturating_sub(wave_apps);
        for &t in targets {
            if draining >= self.limits.max_draining_hosts {
                break;
            }
            let Some(host) = snapshot.host(t) else {
                continue;
            };
            if matches!(host.state, HostState::Draining | HostState::Drained) {
                continue;
            }
            let apps = snapshot.apps_on(t).len() as u64;
            if apps > budget_left || apps > room_left {
                tracing::debug!(name = %self.name, host = %t, apps, budget_left, room_left, "wave full");
                break;
            }
            budget_left -= apps;
            room_left -= apps;
            draining += 1;
            wave.push(t);
            new_hosts.push(t);
        }

        let mut non_receivers: HashSet<HostId> = targets.iter().copied().collect();
        non_receivers.extend(wave.iter().copied());
        let mut plan = DrainPlan {
            hosts: wave,
            new_hosts,
            assignments: Vec::with_capacity(usize::try_from(wave_apps).unwrap_or(0)),
            unplaced: Vec::new(),
            unavailable_budget: budget,
            receivers,
            receiver_index,
            non_receivers,
        };
        let moves: Vec<(AppId, HostId)> = plan
            .hosts
            .iter()
            .flat_map(|&h| snapshot.apps_on(h).iter().map(move |a| (a.id, h)))
            .collect();
        self.place(&mut plan, moves);
        tracing::debug!(
            name = %self.name,
            hosts = plan.hosts.len(),
            new_hosts = plan.new_hosts.len(),
            assignments = plan.assignments.len(),
            unplaced = plan.unplaced.len(),
            "wave planned"
        );
        Ok(plan)
    }

    /// Assigns `moves` to the least loaded receivers with room.
    fn place(&self, plan: &mut DrainPlan, moves: Vec<(AppId, HostId)>) {
        let per_minute = self.limits.max_starts_per_host_per_minute.max(1);
        let mut heap: BinaryHeap<Reverse<(u64, usize)>> = plan
            .receivers
            .iter()
            .enumerate()
            .filter(|(_, r)| r.free() > 0)
            .map(|(i, r)| Reverse((r.key(), i)))
            .collect();
        for (app, from) in moves {
            let Some(mut top) = heap.peek_mut() else {
                plan.unplaced.push((app, from));
                continue;
            };
            let index = top.0.1;
            let Some(receiver) = plan.receivers.get_mut(index) else {
                PeekMut::pop(top);
                plan.unplaced.push((app, from));
                continue;
            };
            let slot = receiver.assigned / per_minute;
            receiver.assigned += 1;
            plan.assignments.push(Assignment {
                app,
                from,
                to: receiver.host,
                slot,
            });
            if receiver.free() == 0 {
                PeekMut::pop(top);
            } else {
                top.0.0 = receiver.key();
            }
        }
    }

    /// Updates `plan` after `host`'s health or state changed in `snapshot`:
    /// a receiver that became unhealthy (or not active) loses its
    /// assignments to the other receivers; a host that became a healthy,
    /// active non-target joins the receivers (and takes unplaced apps).
    /// Costs about the size of the plan, not of the fleet.
    pub fn replan_host(
        &self,
        plan: &mut DrainPlan,
        snapshot: &FleetSnapshot,
        host: HostId,
    ) -> Result<Replan, PlanError> {
        let pos = snapshot
            .position(host)
            .ok_or(PlanError::UnknownHost(host))?;
        let can_receive = snapshot
            .hosts()
            .get(pos)
            .is_some_and(|h| h.state.accepts_apps())
            && snapshot.is_healthy_at(pos)
            && !plan.non_receivers.contains(&host);
        let mut result = Replan::default();
        match plan.receiver_index.get(&host).copied() {
            Some(index) if !can_receive => {
                let Some(receiver) = plan.receivers.get_mut(index) else {
                    return Ok(result);
                };
                if receiver.excluded {
                    return Ok(result);
                }
                receiver.excluded = true;
                receiver.assigned = 0;
                let mut moves = Vec::new();
                plan.assignments.retain(|a| {
                    if a.to == host {
                        moves.push((a.app, a.from));
                        false
                    } else {
                        true
                    }
                });
                let before = plan.unplaced.len();
                result.moved = moves.len();
                self.place(plan, moves);
                result.unplaced = plan.unplaced.len() - before;
                result.moved -= result.unplaced;
            }
            Some(index) if can_receive => {
                if let Some(receiver) = plan.receivers.get_mut(index)
                    && receiver.excluded
                {
                    receiver.excluded = false;
                    result.added_receiver = true;
                }
            }
            None if can_receive => {
                let Some(h) = snapshot.hosts().get(pos) else {
                    return Ok(result);
                };
                plan.receiver_index.insert(host, plan.receivers.len());
                plan.receivers.push(ReceiverLoad {
                    host,
                    capacity: h.capacity,
                    load: u32::try_from(snapshot.apps_at(pos).len()).unwrap_or(u32::MAX),
                    reserve: self.limits.reserve(h.capacity),
                    assigned: 0,
                    excluded: false,
                });
                result.added_receiver = true;
            }
            _ => {}
        }
        if result.added_receiver && !plan.unplaced.is_empty() {
            let moves = std::mem::take(&mut plan.unplaced);
            let count = moves.len();
            self.place(plan, moves);
            result.moved += count - plan.unplaced.len();
            result.unplaced = plan.unplaced.len();
        }
        tracing::debug!(name = %self.name, %host, moved = result.moved, unplaced = result.unplaced, "re-planned after host change");
        Ok(result)
    }
}
