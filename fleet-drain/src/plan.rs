//! Drain limits and the wave planner.
//!
//! # Why limits beyond "is there capacity?"
//!
//! In February 2019 the only question asked before draining ~30 more hosts
//! was "is the fleet less than 80 % full?". Capacity was fine; what broke
//! was the *surge of app starts into each receiving host*. [`DrainLimits`]
//! therefore bounds every dimension of a wave, in the spirit of a
//! Kubernetes `PodDisruptionBudget` or Nomad's `max_parallel`, plus the one
//! they lack:
//!
//! - `max_draining_hosts`: hosts draining at once;
//! - `max_unavailable`: apps that may be down at once (a count or a percent
//!   of all apps);
//! - `max_starts_per_host_per_minute`: app starts into any one receiving
//!   host per minute (the surge limit);
//! - `min_free_capacity`: room every receiver keeps free.
//!
//! The [`Planner`] turns a [`FleetSnapshot`] and the hosts still to drain
//! into the next [`DrainPlan`]: which hosts drain now, and a receiver for
//! every app on them, least loaded first, never over a limit. Each
//! assignment also gets a *start slot* (the minute, relative to the wave's
//! start, in which it may start) so that the per-host start rate holds by
//! construction; the controller enforces the same rate at run time.
//!
//! Planning is pure and fast: a heap of receivers keyed by load, so a wave
//! of 1,000 hosts over 10,000 hosts and 1,000,000 apps takes milliseconds,
//! and [`Planner::replan_host`] re-plans incrementally when one host's
//! health changes.
//!
//! # Example
//!
//! ```
//! use fleet_drain::fleet::{App, AppId, AppState, FleetSnapshot, Host, HostId, HostState};
//! use fleet_drain::plan::{Amount, DrainLimits, Planner};
//!
//! let hosts: Vec<Host> = (0..4)
//!     .map(|i| Host { id: HostId(i), capacity: 10, state: HostState::Active, version: "v1".into() })
//!     .collect();
//! // Hosts 0 and 1 (old) run 3 apps each; hosts 2 and 3 (new) are empty.
//! let apps: Vec<App> = (0..6)
//!     .map(|i| App { id: AppId(i), host: HostId(i / 3), state: AppState::Running })
//!     .collect();
//! let snapshot = FleetSnapshot::new(hosts, apps)?;
//!
//! let planner = Planner::new(DrainLimits {
//!     max_draining_hosts: 1,
//!     max_unavailable: Amount::Percent(50.0),
//!     max_starts_per_host_per_minute: 1,
//!     min_free_capacity: Amount::Count(1),
//! })?;
//! let targets = [HostId(0), HostId(1)];
//! planner.check_feasible(&snapshot, &targets)?;
//! let plan = planner.next_wave(&snapshot, &targets)?;
//! assert_eq!(plan.hosts(), [HostId(0)]);          // one host at a time
//! assert_eq!(plan.assignments().len(), 3);        // all its apps placed
//! let receivers: Vec<HostId> = plan.assignments().iter().map(|a| a.to).collect();
//! assert_eq!(receivers, [HostId(2), HostId(3), HostId(2)]); // least loaded first
//! assert_eq!(plan.assignments()[2].slot, 1);      // 3rd start into host 2: next minute
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::cmp::Reverse;
use std::collections::binary_heap::PeekMut;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::fmt;
use std::str::FromStr;

use resilience_core::ConfigError;
use serde::{Deserialize, Serialize};

use crate::error::PlanError;
use crate::fleet::{AppId, FleetSnapshot, HostId, HostState};

/// A count or a percentage of a total.
///
/// Serialized as an integer (`5`) or a string (`"5"`, `"10%"`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "AmountRepr", into = "AmountRepr")]
pub enum Amount {
    /// An absolute number.
    Count(u32),
    /// A percentage (0..=100) of the total it applies to.
    Percent(f64),
}

impl Amount {
    /// The amount of `total`, rounding a percentage down.
    pub fn floor_of(&self, total: u64) -> u64 {
        match *self {
            Amount::Count(n) => u64::from(n),
            Amount::Percent(p) => (total as f64 * p / 100.0).floor() as u64,
        }
    }

    /// The amount of `total`, rounding a percentage up.
    pub fn ceil_of(&self, total: u64) -> u64 {
        match *self {
            Amount::Count(n) => u64::from(n),
            Amount::Percent(p) => (total as f64 * p / 100.0).ceil() as u64,
        }
    }

    fn check_percent(
        &self,
        field: &'static str,
        allow_zero: bool,
        allow_hundred: bool,
    ) -> Result<(), ConfigError> {
        if let Amount::Percent(p) = *self {
            let low_ok = if allow_zero { p >= 0.0 } else { p > 0.0 };
            let high_ok = if allow_hundred { p <= 100.0 } else { p < 100.0 };
            if !(p.is_finite() && low_ok && high_ok) {
                let range = match (allow_zero, allow_hundred) {
                    (true, false) => "[0, 100)",
                    (false, true) => "(0, 100]",
                    (true, true) => "[0, 100]",
                    (false, false) => "(0, 100)",
                };
                return Err(ConfigError::new(
                    field,
                    format!("percent must be in {range}, got {p}%"),
                ));
            }
        }
        Ok(())
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Amount::Count(n) => write!(f, "{n}"),
            Amount::Percent(p) => write!(f, "{p}%"),
        }
    }
}

impl FromStr for Amount {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if let Some(number) = s.strip_suffix('%') {
            number
                .trim()
                .parse::<f64>()
                .map(Amount::Percent)
                .map_err(|_| format!("`{s}` is not a percentage like \"10%\""))
        } else {
            s.parse::<u32>().map(Amount::Count).map_err(|_| {
                format!("`{s}` is neither a count like 5 nor a percentage like \"10%\"")
            })
        }
    }
}

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum AmountRepr {
    Count(u32),
    Text(String),
}

impl TryFrom<AmountRepr> for Amount {
    type Error = String;

    fn try_from(repr: AmountRepr) -> Result<Self, String> {
        match repr {
            AmountRepr::Count(n) => Ok(Amount::Count(n)),
            AmountRepr::Text(s) => s.parse(),
        }
    }
}

impl From<Amount> for AmountRepr {
    fn from(amount: Amount) -> Self {
        match amount {
            Amount::Count(n) => AmountRepr::Count(n),
            Amount::Percent(_) => AmountRepr::Text(amount.to_string()),
        }
    }
}

/// The limits every wave respects. `Default`: 2 hosts draining at once,
/// 10 % of apps unavailable, 4 starts per receiving host per minute, 10 %
/// of each receiver kept free.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DrainLimits {
    /// Hosts draining at once. Must be >= 1.
    pub max_draining_hosts: u32,
    /// Apps that may be unavailable (moving or not running) at once, as a
    /// count (>= 1) or a percent of all apps (in (0, 100]).
    pub max_unavailable: Amount,
    /// App starts into one receiving host per minute. Must be >= 1.
    pub max_starts_per_host_per_minute: u32,
    /// Room each receiver keeps free, as a count of app slots or a percent
    /// of its capacity (in [0, 100)).
    pub min_free_capacity: Amount,
}

impl Default for DrainLimits {
    fn default() -> Self {
        DrainLimits {
            max_draining_hosts: 2,
            max_unavailable: Amount::Percent(10.0),
            max_starts_per_host_per_minute: 4,
            min_free_capacity: Amount::Percent(10.0),
        }
    }
}

impl DrainLimits {
    /// Checks every field; the error names the first invalid one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_draining_hosts == 0 {
            return Err(ConfigError::new(
                "max_draining_hosts",
                "must be at least 1: a drain that may drain 0 hosts never progresses",
            ));
        }
        if self.max_unavailable == Amount::Count(0) {
            return Err(ConfigError::new(
                "max_unavailable",
                "must be at least 1 app (or a percent in (0, 100]): moving an app makes it unavailable",
            ));
        }
        self.max_unavailable
            .check_percent("max_unavailable", false, true)?;
        if self.max_starts_per_host_per_minute == 0 {
            return Err(ConfigError::new(
                "max_starts_per_host_per_minute",
                "must be at least 1",
            ));
        }
        self.min_free_capacity
            .check_percent("min_free_capacity", true, false)?;
        Ok(())
    }

    /// Apps that may be unavailable at once in a fleet of `total_apps`.
    pub fn unavailable_budget(&self, total_apps: u64) -> u64 {
        self.max_unavailable.floor_of(total_apps)
    }

    /// Slots a receiver of `capacity` keeps free.
    pub fn reserve(&self, capacity: u32) -> u32 {
        u32::try_from(self.min_free_capacity.ceil_of(u64::from(capacity))).unwrap_or(u32::MAX)
    }
}

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
    fn free(&self) -> u32 {
        if self.excluded {
            return 0;
        }
        self.capacity
            .saturating_sub(self.reserve)
            .saturating_sub(self.load)
            .saturating_sub(self.assigned)
    }

    /// Load share after the wave, scaled to an integer heap key.
    fn key(&self) -> u64 {
        let load = u64::from(self.load) + u64::from(self.assigned);
        (load << 24) / u64::from(self.capacity.max(1))
    }
}

/// The next wave: the hosts draining now and a receiver for each of their
/// apps. Produced by [`Planner::next_wave`].
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DrainPlan {
    hosts: Vec<HostId>,
    new_hosts: Vec<HostId>,
    assignments: Vec<Assignment>,
    unplaced: Vec<(AppId, HostId)>,
    unavailable_budget: u64,
    receivers: Vec<ReceiverLoad>,
    #[serde(skip)]
    receiver_index: HashMap<HostId, usize>,
    #[serde(skip)]
    non_receivers: HashSet<HostId>,
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

/// What [`Planner::replan_host`] changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Replan {
    /// Apps moved to another receiver.
    pub moved: usize,
    /// Apps that found no receiver.
    pub unplaced: usize,
    /// Whether the host joined the receivers.
    pub added_receiver: bool,
}

/// Plans waves within validated [`DrainLimits`].
#[derive(Debug, Clone)]
pub struct Planner {
    limits: DrainLimits,
}

impl Planner {
    /// A planner for `limits`, or the first invalid limit.
    pub fn new(limits: DrainLimits) -> Result<Self, ConfigError> {
        limits.validate()?;
        Ok(Planner { limits })
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
                tracing::debug!(host = %t, apps, budget_left, room_left, "wave full");
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
        tracing::debug!(%host, moved = result.moved, unplaced = result.unplaced, "re-planned after host change");
        Ok(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::{App, AppState, Host};

    fn snapshot(loads: &[(u32, u32)]) -> FleetSnapshot {
        let hosts = loads
            .iter()
            .enumerate()
            .map(|(i, &(capacity, _))| Host {
                id: HostId(i as u32),
                capacity,
                state: HostState::Active,
                version: "v1".into(),
            })
            .collect();
        let mut apps = Vec::new();
        for (i, &(_, load)) in loads.iter().enumerate() {
            for _ in 0..load {
                apps.push(App {
                    id: AppId(apps.len() as u32),
                    host: HostId(i as u32),
                    state: AppState::Running,
                });
            }
        }
        FleetSnapshot::new(hosts, apps).unwrap()
    }

    fn limits() -> DrainLimits {
        DrainLimits {
            max_draining_hosts: 2,
            max_unavailable: Amount::Count(100),
            max_starts_per_host_per_minute: 2,
            min_free_capacity: Amount::Count(0),
        }
    }

    #[test]
    fn invalid_limits_name_the_field() {
        let cases = [
            (
                DrainLimits {
                    max_draining_hosts: 0,
                    ..limits()
                },
                "max_draining_hosts",
            ),
            (
                DrainLimits {
                    max_unavailable: Amount::Count(0),
                    ..limits()
                },
                "max_unavailable",
            ),
            (
                DrainLimits {
                    max_unavailable: Amount::Percent(150.0),
                    ..limits()
                },
                "max_unavailable",
            ),
            (
                DrainLimits {
                    max_unavailable: Amount::Percent(0.0),
                    ..limits()
                },
                "max_unavailable",
            ),
            (
                DrainLimits {
                    max_unavailable: Amount::Percent(f64::NAN),
                    ..limits()
                },
                "max_unavailable",
            ),
            (
                DrainLimits {
                    max_starts_per_host_per_minute: 0,
                    ..limits()
                },
                "max_starts_per_host_per_minute",
            ),
            (
                DrainLimits {
                    min_free_capacity: Amount::Percent(100.0),
                    ..limits()
                },
                "min_free_capacity",
            ),
            (
                DrainLimits {
                    min_free_capacity: Amount::Percent(-1.0),
                    ..limits()
                },
                "min_free_capacity",
            ),
        ];
        for (limits, field) in cases {
            let err = Planner::new(limits).unwrap_err();
            assert_eq!(err.field(), field, "{err}");
        }
        assert!(Planner::new(DrainLimits::default()).is_ok());
    }

    #[test]
    fn amounts_parse_from_counts_and_percentages() {
        assert_eq!("5".parse::<Amount>().unwrap(), Amount::Count(5));
        assert_eq!("12.5%".parse::<Amount>().unwrap(), Amount::Percent(12.5));
        assert!("x%".parse::<Amount>().is_err());
        assert!("-3".parse::<Amount>().is_err());
        assert_eq!(Amount::Percent(10.0).floor_of(99), 9);
        assert_eq!(Amount::Percent(10.0).ceil_of(99), 10);
        let json = serde_json::to_string(&Amount::Percent(10.0)).unwrap();
        assert_eq!(json, "\"10%\"");
        assert_eq!(
            serde_json::from_str::<Amount>("7").unwrap(),
            Amount::Count(7)
        );
    }

    #[test]
    fn waves_never_exceed_max_draining_hosts() {
        let snap = snapshot(&[(10, 2), (10, 2), (10, 2), (10, 0), (10, 0)]);
        let planner = Planner::new(limits()).unwrap();
        let plan = planner
            .next_wave(&snap, &[HostId(0), HostId(1), HostId(2)])
            .unwrap();
        assert_eq!(plan.hosts(), [HostId(0), HostId(1)]);
        assert_eq!(plan.assignments().len(), 4);
    }

    #[test]
    fn waves_stop_at_the_unavailability_budget() {
        let snap = snapshot(&[(10, 3), (10, 3), (10, 0), (10, 0)]);
        let planner = Planner::new(DrainLimits {
            max_unavailable: Amount::Count(4),
            ..limits()
        })
        .unwrap();
        let plan = planner.next_wave(&snap, &[HostId(0), HostId(1)]).unwrap();
        assert_eq!(plan.hosts(), [HostId(0)]);
    }

    #[test]
    fn receivers_keep_their_free_capacity() {
        let snap = snapshot(&[(10, 4), (5, 0), (5, 0)]);
        // 70 % of 5 = 3.5, rounded up: 4 reserved, 1 free each.
        let strict = Planner::new(DrainLimits {
            min_free_capacity: Amount::Percent(70.0),
            ..limits()
        })
        .unwrap();
        let err = strict.check_feasible(&snap, &[HostId(0)]).unwrap_err();
        assert_eq!(
            err,
            PlanError::InsufficientCapacity {
                needed: 4,
                available: 2
            }
        );
        let planner = Planner::new(DrainLimits {
            min_free_capacity: Amount::Percent(60.0),
            ..limits()
        })
        .unwrap();
        planner.check_feasible(&snap, &[HostId(0)]).unwrap();
        // 60 % of 5 = 3 reserved, 2 free each: exactly room for 4.
        let plan = planner.next_wave(&snap, &[HostId(0)]).unwrap();
        assert!(plan.unplaced().is_empty());
        for r in plan.receivers() {
            assert!(r.load + r.assigned + r.reserve <= r.capacity);
        }
    }

    #[test]
    fn infeasible_drains_give_clear_errors() {
        let planner = Planner::new(limits()).unwrap();
        let snap = snapshot(&[(10, 4), (10, 4)]);
        let err = planner
            .check_feasible(&snap, &[HostId(0), HostId(1)])
            .unwrap_err();
        assert_eq!(err, PlanError::NoReceivers { targets: 2 });
        assert!(err.to_string().contains("no receivers"));

        let snap = snapshot(&[(10, 8), (5, 2)]);
        let err = planner.check_feasible(&snap, &[HostId(0)]).unwrap_err();
        assert!(err.to_string().contains("8 apps must move"), "{err}");

        let planner = Planner::new(DrainLimits {
            max_unavailable: Amount::Count(3),
            ..limits()
        })
        .unwrap();
        let snap = snapshot(&[(10, 8), (20, 0)]);
        let err = planner.check_feasible(&snap, &[HostId(0)]).unwrap_err();
        assert!(err.to_string().contains("raise `max_unavailable`"), "{err}");

        let err = planner.check_feasible(&snap, &[HostId(9)]).unwrap_err();
        assert_eq!(err, PlanError::UnknownHost(HostId(9)));
    }

    #[test]
    fn start_slots_respect_the_per_minute_limit() {
        let snap = snapshot(&[(10, 5), (10, 0)]);
        let planner = Planner::new(limits()).unwrap();
        let plan = planner.next_wave(&snap, &[HostId(0)]).unwrap();
        let slots: Vec<u32> = plan.assignments().iter().map(|a| a.slot).collect();
        assert_eq!(slots, [0, 0, 1, 1, 2]);
        let text = plan.to_string();
        assert!(
            text.contains("1 hosts draining (1 new: host-0), 5 apps to move"),
            "{text}"
        );
        assert!(
            text.contains("host-1: 0 -> 5 of 10 apps (+5, over 3 minute(s))"),
            "{text}"
        );
    }

    #[test]
    fn replan_moves_apps_off_a_receiver_that_turned_unhealthy() {
        let mut snap = snapshot(&[(10, 4), (10, 0), (10, 0), (10, 0)]);
        let planner = Planner::new(limits()).unwrap();
        let mut plan = planner.next_wave(&snap, &[HostId(0)]).unwrap();
        assert!(plan.assignments().iter().any(|a| a.to == HostId(1)));
        snap.set_host_healthy(HostId(1), false);
        let replan = planner.replan_host(&mut plan, &snap, HostId(1)).unwrap();
        assert_eq!(replan.moved, 2);
        assert!(plan.assignments().iter().all(|a| a.to != HostId(1)));
        assert_eq!(plan.assignments().len(), 4);

        snap.set_host_healthy(HostId(1), true);
        let replan = planner.replan_host(&mut plan, &snap, HostId(1)).unwrap();
        assert!(replan.added_receiver);
        // A target never becomes a receiver.
        let replan = planner.replan_host(&mut plan, &snap, HostId(0)).unwrap();
        assert_eq!(replan, Replan::default());
    }
}
