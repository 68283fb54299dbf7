//! Adaptive start concurrency: per class of receivers, a start limit that
//! grows while starts succeed (and the moved apps stay healthy) and is cut
//! on a failed or late-failed start, built on `resilience_core`'s
//! [`AdaptiveLimit`] with its AIMD algorithm.
//!
//! # Why per class?
//!
//! How many app starts a receiver survives at once is a property of its
//! hardware and software (the February 2019 `node_modules` allocator
//! corrupted starts past a handful at once). Receivers of one
//! [`ReceiverClass`] (same capacity and version) are alike, so they share
//! one estimate: 100 receivers do not each pay for discovering it, and the
//! evidence of all of them (successes, failures) moves the one limit.
//!
//! # How the estimate moves
//!
//! Every class has one [`AdaptiveLimit`] (AIMD) whose limit is the number
//! of starts each receiver of the class may run at once (below
//! `DrainLimits::max_concurrent_starts_per_host`, the ceiling). A start
//! that settles is fed into it as one sample taken with the
//! limit in use (the receiver ran at least half its limit, the AIMD "busy"
//! rule; idle receivers teach nothing):
//!
//! - **growth**: at most one success sample (`+increase_by`) per class per
//!   `window`, and only if starts completed in that window on receivers
//!   running at least half the limit, and nothing failed. With
//!   `confirm_growth`, the limit also stays below `growth_factor` times
//!   the highest concurrency whose starts have passed their probation (it
//!   never runs far ahead of what is known to be safe), and below the
//!   lowest concurrency at which a start failed in this run (it does not
//!   probe a level known to corrupt again);
//! - **cut**: a failed start, or a start whose app turned unhealthy during
//!   its probation (a *late* failure), is a dropped sample
//!   (`× backoff_ratio`), once per round trip: a failure of a start begun
//!   before the last cut was started under the old limit and is already
//!   accounted for. A failure above the trusted limit (a probe's, see
//!   below) caps the class below it without cutting.
//!
//! # Exploration across receivers
//!
//! With `DrainConfig::start_exploration` (see [`StartExplorationConfig`]),
//! a few receivers of each class probe higher levels while the rest run at
//! the class's limit, and the class jumps to the highest level whose probe
//! starts passed probation (`min_passed` of them at it or above, none
//! failed); "confirmed" then needs `min_passed` passed starts too. A
//! failed level is forgotten after `retry_failed_after` (decay) and may be
//! probed again.
//!
//! # Resuming
//!
//! Every change of a class's learned limit is journaled
//! ([`JournalRecord::StartLimitLearned`](crate::journal::JournalRecord::StartLimitLearned)):
//! a restarted controller resumes each class at its learned limit, with its
//! confirmed and failed levels, not from scratch.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::{Duration, Instant};

use resilience_core::clock::{Clock, SharedClock};
use resilience_core::limit::{AdaptiveLimit, AdaptiveLimitConfig, AimdConfig, LimitAlgorithm};
use resilience_core::{ConfigError, InstanceName, Named};
use serde::{Deserialize, Serialize};

use super::explore::StartExplorationConfig;
use crate::fleet::{Host, HostId};
use crate::journal::LearnedStartLimit;

/// Configuration of adaptive start concurrency (see the
/// [module docs](crate::drain)). `Default`: start at 4 concurrent starts per
/// receiver, between 1 and 64, +2 per 20 s window of successes, × 0.75 on
/// a failure, growth confirmed (at most 1.5 × the highest concurrency
/// whose starts passed probation — 1 × with
/// [`StartExplorationConfig`], whose probes run ahead — below the lowest
/// that failed). Tuned with `examples/adaptive_drain.rs` together with
/// `StartExplorationConfig::default()` (hidden safe concurrency 2 to 16,
/// silent corruption shown 2 minutes late): starting at 4 costs little
/// where 2 is safe (the first late failures cut it within one probation)
/// and saves a probation's worth of slow starts where 16 is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdaptiveStartsConfig {
    /// Concurrent starts per receiver before anything is known. In
    /// `min_limit..=max_limit`.
    pub initial_limit: u32,
    /// The lowest limit. >= 1.
    pub min_limit: u32,
    /// The highest limit. >= `min_limit`, <= 10,000 (and
    /// `DrainLimits::max_concurrent_starts_per_host` caps it too).
    pub max_limit: u32,
    /// Added per window of successful starts. >= 1.
    pub increase_by: u32,
    /// Factor applied on a failure. Finite, in `[0.5, 1)`.
    pub backoff_ratio: f64,
    /// At most one increase per class per window. > 0.
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// Keep the limit within `growth_factor` × the highest concurrency
    /// whose starts all passed their probation (needs
    /// `DrainConfig::probation`; ignored without it).
    pub confirm_growth: bool,
    /// See `confirm_growth`. Finite, > 1.
    pub growth_factor: f64,
}

impl Default for AdaptiveStartsConfig {
    fn default() -> Self {
        AdaptiveStartsConfig {
            initial_limit: 4,
            min_limit: 1,
            max_limit: 64,
            increase_by: 2,
            backoff_ratio: 0.75,
            window: Duration::from_secs(20),
            confirm_growth: true,
            growth_factor: 1.5,
        }
    }
}

impl AdaptiveStartsConfig {
    /// Checks every field; the error names the first invalid one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.aimd().validate()?;
        if self.window.is_zero() {
            return Err(ConfigError::new("window", "must be greater than zero"));
        }
        if !(self.growth_factor.is_finite() && self.growth_factor > 1.0) {
            return Err(ConfigError::new(
                "growth_factor",
                format!("must be a finite factor > 1, got {}", self.growth_factor),
            ));
        }
        Ok(())
    }

    fn aimd(&self) -> AimdConfig {
        AimdConfig {
            initial_limit: self.initial_limit as usize,
            min_limit: self.min_limit as usize,
            max_limit: self.max_limit as usize,
            increase_by: self.increase_by as usize,
            backoff_ratio: self.backoff_ratio,
            // Replayed samples have no latency: only drops cut.
            latency_threshold: Duration::from_secs(3600),
        }
    }
}

/// Receivers that share one start-concurrency estimate: same capacity and
/// same version (the hardware and software that decide how many starts
/// run safely at once). Displayed `capacity-300/v1`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ReceiverClass {
    /// The receivers' capacity.
    pub capacity: u32,
    /// The receivers' version.
    pub version: String,
}

impl ReceiverClass {
    /// The class of `host`.
    pub fn of(host: &Host) -> Self {
        ReceiverClass {
            capacity: host.capacity,
            version: host.version.clone(),
        }
    }
}

impl fmt::Display for ReceiverClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "capacity-{}/{}", self.capacity, self.version)
    }
}

/// One class's learned start concurrency (in [`crate::drain::DrainReport`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassStartLimit {
    /// The class.
    pub class: ReceiverClass,
    /// Concurrent starts per receiver now allowed.
    pub limit: u32,
    /// Highest concurrency whose starts all passed probation so far.
    pub confirmed: u32,
    /// Receivers of the class seen.
    pub receivers: usize,
    /// Times the limit grew.
    pub increases: u32,
    /// Times it was cut.
    pub cuts: u32,
    /// Lowest concurrency at which a start failed (not yet forgotten): the
    /// class stays below it.
    #[serde(default)]
    pub failed_at: Option<u32>,
    /// Receivers of the class that probe higher levels.
    #[serde(default)]
    pub probes: usize,
    /// Times the class jumped to a level its probes confirmed.
    #[serde(default)]
    pub promotions: u32,
}

#[derive(Debug)]
struct ClassState {
    limit: AdaptiveLimit,
    window_start: Instant,
    busy_successes: u32,
    failures_in_window: u32,
    last_cut: Option<Instant>,
    /// Per concurrency level: starts that passed probation.
    passed: BTreeMap<u32, u32>,
    /// Per concurrency level at which a start failed (immediately or
    /// late): when one last failed there. The lowest remembered level caps
    /// the class (see [`ClassState::failed_at`]).
    failures: BTreeMap<u32, Instant>,
    /// The class's receivers, in the order they were first seen (the
    /// first ones probe).
    members: Vec<HostId>,
    /// When the current probe cycle began.
    cycle_start: Instant,
    /// Starts above the trusted level each probe receiver ran this cycle.
    probe_used: HashMap<HostId, u32>,
    increases: u32,
    cuts: u32,
    promotions: u32,
    /// The failed level when last looked at (to notice decay).
    last_cap: Option<u32>,
    /// Changed since last journaled.
    dirty: bool,
}

impl ClassState {
    /// The level the class stays below: the lowest level at which a start
    /// failed, raised by one level per `retry_failed_after` since a start
    /// last failed there (decay: the level above the cap may be probed
    /// again, one level at a time).
    fn failed_at(&self, now: Instant, decay: Option<Duration>) -> Option<u32> {
        self.failures
            .iter()
            .map(|(&level, &at)| {
                let periods = decay.map_or(0, |d| {
                    let elapsed = now.saturating_duration_since(at).as_secs_f64();
                    (elapsed / d.as_secs_f64()).floor() as u32
                });
                level.saturating_add(periods)
            })
            .min()
    }

    /// The highest level known safe (below the failed level): with
    /// `min_passed`, the highest level at which at least `min_passed`
    /// starts passed probation (a level's own starts: a few lucky starts
    /// at many levels, as a receiver ramps up, prove none of them);
    /// without, the highest level with a passed start.
    fn confirmed(&self, failed_at: Option<u32>, min_passed: Option<u32>) -> u32 {
        let needed = min_passed.unwrap_or(1);
        self.passed
            .iter()
            .rev()
            .find(|(level, count)| failed_at.is_none_or(|f| **level < f) && **count >= needed)
            .map_or(0, |(level, _)| *level)
    }

    fn new_cycle(&mut self, now: Instant) {
        self.cycle_start = now;
        self.probe_used.clear();
    }
}

/// What a sample did to the limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct LimitChange {
    pub(super) class: ReceiverClass,
    pub(super) from: u32,
    pub(super) to: u32,
}

/// The per-class estimates of one controller.
#[derive(Debug)]
pub(super) struct AdaptiveStarts {
    config: AdaptiveStartsConfig,
    explore: Option<StartExplorationConfig>,
    confirm: bool,
    /// A probe cycle: one probation plus one growth window.
    cycle: Duration,
    clock: SharedClock,
    classes: HashMap<ReceiverClass, ClassState>,
    host_class: HashMap<HostId, ReceiverClass>,
    /// Learned limits of an earlier run (from the journal), applied when
    /// their class is first seen.
    restored: HashMap<ReceiverClass, LearnedStartLimit>,
    /// The name of the per-class `AdaptiveLimit`s: the controller's name plus `.starts`.
    limit_name: Option<String>,
}

/// Feeds one settled start into `limit` as a sample taken with the whole
/// limit in use (the caller checked the receiver was busy); its latency is
/// not a signal here (success and failure are judged by the controller).
fn feed(limit: &AdaptiveLimit, dropped: bool) {
    limit.record_outcome(Duration::ZERO, limit.current_limit(), dropped);
}

/// Grows `limit` with success samples as close to `target` as its steps
/// allow, never above it.
fn raise_to(limit: &AdaptiveLimit, target: usize, step: usize) {
    while limit.current_limit().saturating_add(step) <= target {
        let before = limit.current_limit();
        feed(limit, false);
        if limit.current_limit() <= before {
            break;
        }
    }
}

/// Cuts `limit` until it is below `cap` (or at `min`).
fn clamp_below(limit: &AdaptiveLimit, cap: Option<u32>, min: u32, step: usize) {
    let Some(cap) = cap else {
        return;
    };
    let cap = cap.saturating_sub(1).max(min) as usize;
    let from = limit.current_limit();
    while limit.current_limit() > cap {
        let before = limit.current_limit();
        feed(limit, true);
        if limit.current_limit() >= before {
            break;
        }
    }
    // Back up to just below the cap if the cuts overshot (never above
    // where the limit was).
    raise_to(limit, cap.min(from), step);
}

fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl AdaptiveStarts {
    /// `probation`: the drain's probation window (growth is confirmed and
    /// exploration works only with one).
    pub(super) fn new(
        config: AdaptiveStartsConfig,
        explore: Option<StartExplorationConfig>,
        probation: Option<Duration>,
        clock: SharedClock,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        if let Some(explore) = &explore {
            explore.validate()?;
        }
        Ok(AdaptiveStarts {
            confirm: config.confirm_growth && probation.is_some(),
            explore: explore.filter(|_| probation.is_some()),
            cycle: probation.unwrap_or_default() + config.window,
            config,
            clock,
            classes: HashMap::new(),
            host_class: HashMap::new(),
            restored: HashMap::new(),
            limit_name: None,
        })
    }

    /// Names the per-class limits after the controller (`<name>.starts`); limits are built
    /// when a class is first seen, so this applies to every limit of a named controller.
    pub(super) fn set_name(&mut self, controller: &InstanceName) {
        self.limit_name = controller
            .is_named()
            .then(|| format!("{controller}.starts"))
            .filter(|name| InstanceName::new(name).is_ok());
    }

    /// Learned limits of an earlier run of this drain (from its journal):
    /// a class first seen from now on starts at its learned limit, with its
    /// confirmed level and failed level, instead of from scratch.
    pub(super) fn restore(&mut self, learned: &[LearnedStartLimit]) {
        for l in learned {
            let class = ReceiverClass {
                capacity: l.capacity,
                version: l.version.clone(),
            };
            tracing::info!(%class, limit = l.limit, confirmed = l.confirmed, failed_at = ?l.failed_at, "resuming from a journaled start concurrency");
            self.restored.insert(class, l.clone());
        }
    }

    fn min_passed(&self) -> Option<u32> {
        self.explore.as_ref().map(|e| e.min_passed)
    }

    fn forget_after(&self) -> Option<Duration> {
        self.explore.as_ref().and_then(|e| e.retry_failed_after)
    }

    /// Makes `host` known as a receiver of its class.
    pub(super) fn register(&mut self, host: &Host) -> Result<(), ConfigError> {
        if self.host_class.contains_key(&host.id) {
            return Ok(());
        }
        let class = ReceiverClass::of(host);
        if !self.classes.contains_key(&class) {
            let config = AdaptiveLimitConfig {
                algorithm: LimitAlgorithm::Aimd(self.config.aimd()),
                max_queued: 0,
                ..AdaptiveLimitConfig::default()
            };
            let limit = AdaptiveLimit::from_named(
                Named {
                    name: self.limit_name.clone(),
                    config,
                },
                self.clock.clone(),
            )?;
            let now = self.clock.now();
            let mut state = ClassState {
                limit,
                window_start: now,
                busy_successes: 0,
                failures_in_window: 0,
                last_cut: None,
                passed: BTreeMap::new(),
                failures: BTreeMap::new(),
                members: Vec::new(),
                cycle_start: now,
                probe_used: HashMap::new(),
                increases: 0,
                cuts: 0,
                promotions: 0,
                last_cap: None,
                dirty: false,
            };
            if let Some(learned) = self.restored.remove(&class) {
                // Evidence as strong as what earned it: the confirmed level
                // counts as passed, the failed level as just failed (its
                // decay starts again).
                if learned.confirmed > 0 {
                    state
                        .passed
                        .insert(learned.confirmed, self.min_passed().unwrap_or(1));
                }
                if let Some(failed) = learned.failed_at {
                    state.failures.insert(failed, now);
                    state.last_cap = Some(failed);
                }
                let target = learned.limit.max(self.config.min_limit) as usize;
                if target < state.limit.current_limit() {
                    feed(&state.limit, true);
                }
                raise_to(&state.limit, target, self.config.increase_by as usize);
            }
            self.classes.insert(class.clone(), state);
        }
        if let Some(state) = self.classes.get_mut(&class) {
            state.members.push(host.id);
        }
        self.host_class.insert(host.id, class);
        Ok(())
    }

    fn state(&self, host: HostId) -> Option<&ClassState> {
        self.host_class
            .get(&host)
            .and_then(|class| self.classes.get(class))
    }

    /// The level every receiver of the class runs at (probes aside): the
    /// AIMD limit, below the failed level.
    fn trusted(&self, state: &ClassState, now: Instant) -> u32 {
        let limit = to_u32(state.limit.current_limit());
        let capped = match state.failed_at(now, self.forget_after()) {
            Some(failed) => limit.min(failed.saturating_sub(1)),
            None => limit,
        };
        capped.max(self.config.min_limit)
    }

    /// The probe level `host` runs at now, if it probes and has starts
    /// above the trusted level left this cycle.
    fn probe_level(&self, state: &ClassState, host: HostId, now: Instant) -> Option<u32> {
        let explore = self.explore.as_ref()?;
        let index = state.members.iter().position(|&h| h == host)?;
        if index >= explore.probes(state.members.len()) {
            return None;
        }
        let used = state.probe_used.get(&host).copied().unwrap_or(0);
        let cycle_over = now.saturating_duration_since(state.cycle_start) >= self.cycle;
        if used >= explore.starts_per_probe && !cycle_over {
            return None;
        }
        explore.probe_level(
            index,
            self.trusted(state, now),
            state.failed_at(now, self.forget_after()),
            self.config.max_limit,
        )
    }

    /// Concurrent starts `host` may run (`None`: not a known receiver).
    pub(super) fn limit(&self, host: HostId) -> Option<u32> {
        let state = self.state(host)?;
        let now = self.clock.now();
        Some(
            self.probe_level(state, host, now)
                .unwrap_or_else(|| self.trusted(state, now)),
        )
    }

    /// Forgets failures older than `retry_failed_after` and starts a new
    /// probe cycle when the last one is over or the failed level changed.
    fn refresh(&mut self, class: &ReceiverClass) {
        let now = self.clock.now();
        let forget_after = self.forget_after();
        let cycle = self.cycle;
        let Some(state) = self.classes.get_mut(class) else {
            return;
        };
        let cap = state.failed_at(now, forget_after);
        if cap != state.last_cap {
            if cap > state.last_cap {
                tracing::info!(%class, from = ?state.last_cap, to = ?cap, "failed start concurrency decayed; the level above may be probed again");
            }
            state.last_cap = cap;
            state.new_cycle(now);
            state.dirty = true;
        }
        if now.saturating_duration_since(state.cycle_start) >= cycle {
            state.new_cycle(now);
        }
    }

    /// A start on `host` began at `concurrency` (itself included).
    pub(super) fn on_begin(&mut self, host: HostId, concurrency: u32) {
        let Some(class) = self.host_class.get(&host).cloned() else {
            return;
        };
        self.refresh(&class);
        let now = self.clock.now();
        let Some(state) = self.classes.get(&class) else {
            return;
        };
        let trusted = self.trusted(state, now);
        if concurrency > trusted
            && self.probe_level(state, host, now).is_some()
            && let Some(state) = self.classes.get_mut(&class)
        {
            *state.probe_used.entry(host).or_default() += 1;
        }
    }

    /// A start on `host` that ran at `concurrency` (itself included)
    /// completed successfully.
    pub(super) fn on_success(&mut self, host: HostId, concurrency: u32) -> Option<LimitChange> {
        let class = self.host_class.get(&host)?.clone();
        let state = self.classes.get_mut(&class)?;
        let limit = state.limit.current_limit();
        if (concurrency as usize).saturating_mul(2) >= limit {
            state.busy_successes += 1;
        }
        self.refresh(&class);
        self.grow(&class)
    }

    /// A start on `host`, run at `concurrency`, passed its probation. With
    /// exploration, the class jumps to the highest level now confirmed.
    pub(super) fn on_confirmed(&mut self, host: HostId, concurrency: u32) -> Option<LimitChange> {
        let class = self.host_class.get(&host)?.clone();
        self.refresh(&class);
        let state = self.classes.get_mut(&class)?;
        *state.passed.entry(concurrency).or_default() += 1;
        let min_passed = self.min_passed()?;
        let step = self.config.increase_by as usize;
        let now = self.clock.now();
        let forget_after = self.forget_after();
        let state = self.classes.get_mut(&class)?;
        let failed_at = state.failed_at(now, forget_after);
        let confirmed = state.confirmed(failed_at, Some(min_passed));
        let from = to_u32(state.limit.current_limit());
        if confirmed <= from {
            return None;
        }
        raise_to(&state.limit, confirmed as usize, step);
        let to = to_u32(state.limit.current_limit());
        if to == from {
            return None;
        }
        state.promotions += 1;
        state.dirty = true;
        state.new_cycle(now);
        // A fresh growth window at the new level.
        state.window_start = now;
        state.busy_successes = 0;
        tracing::info!(%class, from, to, confirmed, "start concurrency confirmed by probes; class promoted");
        Some(LimitChange { class, from, to })
    }

    /// Grows `class` by one step if a window of successes has passed.
    fn grow(&mut self, class: &ReceiverClass) -> Option<LimitChange> {
        let now = self.clock.now();
        let window = self.config.window;
        // With exploration the probes run ahead; the class grows only to
        // what passed probation.
        let factor = if self.explore.is_some() {
            1.0
        } else {
            self.config.growth_factor
        };
        let confirm = self.confirm;
        let initial = self.config.initial_limit;
        let min_passed = self.min_passed();
        let forget_after = self.forget_after();
        let state = self.classes.get_mut(class)?;
        if now.saturating_duration_since(state.window_start) < window {
            return None;
        }
        let grow = state.busy_successes > 0 && state.failures_in_window == 0;
        state.window_start = now;
        state.busy_successes = 0;
        state.failures_in_window = 0;
        if !grow {
            return None;
        }
        let from = state.limit.current_limit();
        let failed_at = state.failed_at(now, forget_after);
        if confirm {
            let confirmed = state.confirmed(failed_at, min_passed).max(initial);
            let cap = (f64::from(confirmed) * factor).floor() as usize;
            if from >= cap {
                return None;
            }
        }
        // Never grow back into a concurrency at which a start failed.
        if failed_at.is_some_and(|f| from + 1 >= f as usize) {
            return None;
        }
        feed(&state.limit, false);
        let to = state.limit.current_limit();
        if to == from {
            return None;
        }
        state.increases += 1;
        state.dirty = true;
        Some(LimitChange {
            class: class.clone(),
            from: to_u32(from),
            to: to_u32(to),
        })
    }

    /// A start on `host` begun at `began`, at `concurrency`, failed (at
    /// once or late). Caps the class below `concurrency`; cuts the limit
    /// once per round trip.
    pub(super) fn on_failure(
        &mut self,
        host: HostId,
        began: Instant,
        concurrency: u32,
    ) -> Option<LimitChange> {
        let class = self.host_class.get(&host)?.clone();
        self.refresh(&class);
        let now = self.clock.now();
        let forget_after = self.forget_after();
        let state = self.classes.get_mut(&class)?;
        state.failures_in_window += 1;
        state.failures.insert(concurrency, now);
        // Starts that passed at or above a failing level prove nothing
        // (they were lucky): dropped, so that decay does not bring them back.
        state.passed.retain(|&level, _| level < concurrency);
        let cap = state.failed_at(now, forget_after);
        if cap != state.last_cap {
            state.last_cap = cap;
            state.new_cycle(now);
            state.dirty = true;
        }
        let from = state.limit.current_limit();
        // A failure above the limit (a probe's) says nothing against the
        // limit itself; one of a start begun before the last cut was
        // started under the old limit and is already accounted for.
        let cut = concurrency as usize <= from && state.last_cut.is_none_or(|at| began >= at);
        if cut {
            feed(&state.limit, true);
            state.last_cut = Some(now);
            state.window_start = now;
            state.busy_successes = 0;
            if state.limit.current_limit() != from {
                state.cuts += 1;
            }
        }
        // Whatever the cut, the limit ends below the failed level.
        clamp_below(
            &state.limit,
            cap,
            self.config.min_limit,
            self.config.increase_by as usize,
        );
        let to = state.limit.current_limit();
        if to == from {
            return None;
        }
        state.dirty = true;
        Some(LimitChange {
            class,
            from: to_u32(from),
            to: to_u32(to),
        })
    }

    fn figures(&self, class: &ReceiverClass, s: &ClassState, now: Instant) -> ClassStartLimit {
        let failed_at = s.failed_at(now, self.forget_after());
        ClassStartLimit {
            class: class.clone(),
            limit: self.trusted(s, now),
            confirmed: s.confirmed(failed_at, self.min_passed()),
            receivers: s.members.len(),
            increases: s.increases,
            cuts: s.cuts,
            failed_at,
            probes: self
                .explore
                .as_ref()
                .map_or(0, |e| e.probes(s.members.len())),
            promotions: s.promotions,
        }
    }

    /// Every class's figures, by class.
    pub(super) fn snapshot(&self) -> Vec<ClassStartLimit> {
        let now = self.clock.now();
        let mut out: Vec<ClassStartLimit> = self
            .classes
            .iter()
            .map(|(class, s)| self.figures(class, s, now))
            .collect();
        out.sort_by(|a, b| a.class.cmp(&b.class));
        out
    }

    /// The classes whose learned limit changed since the last call, to
    /// journal.
    pub(super) fn take_changed(&mut self) -> Vec<LearnedStartLimit> {
        let now = self.clock.now();
        let mut changed: Vec<LearnedStartLimit> = self
            .classes
            .iter()
            .filter(|(_, s)| s.dirty)
            .map(|(class, s)| {
                let figures = self.figures(class, s, now);
                LearnedStartLimit {
                    capacity: class.capacity,
                    version: class.version.clone(),
                    limit: figures.limit,
                    confirmed: figures.confirmed,
                    failed_at: figures.failed_at,
                }
            })
            .collect();
        for state in self.classes.values_mut() {
            state.dirty = false;
        }
        changed.sort_by(|a, b| (a.capacity, &a.version).cmp(&(b.capacity, &b.version)));
        changed
    }
}
