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
//!   accounted for.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::{Duration, Instant};

use resilience_core::clock::{Clock, SharedClock};
use resilience_core::limit::{AdaptiveLimit, AdaptiveLimitConfig, AimdConfig, LimitAlgorithm};
use resilience_core::{ConfigError, InstanceName, Named};
use serde::{Deserialize, Serialize};

use crate::fleet::{Host, HostId};

/// Configuration of adaptive start concurrency (see the
/// [module docs](crate::drain)). `Default`: start at 2 concurrent starts per
/// receiver, between 1 and 64, +2 per 20 s window of successes, × 0.75 on
/// a failure, growth confirmed (at most 1.5 × the highest concurrency
/// whose starts passed probation, below the lowest that failed). Tuned with
/// `examples/adaptive_drain.rs` (hidden safe concurrency 2 to 16, silent
/// corruption shown 2 minutes late).
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
            initial_limit: 2,
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
    /// Lowest concurrency at which a start failed (immediately or late) in
    /// this run: levels at or above it are never confirmed.
    failed_at: Option<u32>,
    receivers: usize,
    increases: u32,
    cuts: u32,
}

impl ClassState {
    fn confirmed(&self) -> u32 {
        self.passed
            .keys()
            .copied()
            .filter(|&c| self.failed_at.is_none_or(|f| c < f))
            .max()
            .unwrap_or(0)
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
    confirm: bool,
    clock: SharedClock,
    classes: HashMap<ReceiverClass, ClassState>,
    host_class: HashMap<HostId, ReceiverClass>,
    /// The name of the per-class `AdaptiveLimit`s: the controller's name plus `.starts`.
    limit_name: Option<String>,
}

/// Feeds one settled start into `limit` as a sample taken with the whole
/// limit in use (the caller checked the receiver was busy); its latency is
/// not a signal here (success and failure are judged by the controller).
fn feed(limit: &AdaptiveLimit, dropped: bool) {
    limit.record_outcome(Duration::ZERO, limit.current_limit(), dropped);
}

impl AdaptiveStarts {
    pub(super) fn new(
        config: AdaptiveStartsConfig,
        probation: bool,
        clock: SharedClock,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(AdaptiveStarts {
            confirm: config.confirm_growth && probation,
            config,
            clock,
            classes: HashMap::new(),
            host_class: HashMap::new(),
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
            self.classes.insert(
                class.clone(),
                ClassState {
                    limit,
                    window_start: self.clock.now(),
                    busy_successes: 0,
                    failures_in_window: 0,
                    last_cut: None,
                    passed: BTreeMap::new(),
                    failed_at: None,
                    receivers: 0,
                    increases: 0,
                    cuts: 0,
                },
            );
        }
        if let Some(state) = self.classes.get_mut(&class) {
            state.receivers += 1;
        }
        self.host_class.insert(host.id, class);
        Ok(())
    }

    fn state(&self, host: HostId) -> Option<&ClassState> {
        self.host_class
            .get(&host)
            .and_then(|class| self.classes.get(class))
    }

    /// Concurrent starts `host` may run (`None`: not a known receiver).
    pub(super) fn limit(&self, host: HostId) -> Option<u32> {
        self.state(host)
            .map(|s| u32::try_from(s.limit.current_limit()).unwrap_or(u32::MAX))
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
        self.grow(&class)
    }

    /// A start on `host`, run at `concurrency`, passed its probation.
    pub(super) fn on_confirmed(&mut self, host: HostId, concurrency: u32) {
        if let Some(state) = self
            .host_class
            .get(&host)
            .and_then(|class| self.classes.get_mut(class))
        {
            *state.passed.entry(concurrency).or_default() += 1;
        }
    }

    /// Grows `class` by one step if a window of successes has passed.
    fn grow(&mut self, class: &ReceiverClass) -> Option<LimitChange> {
        let now = self.clock.now();
        let window = self.config.window;
        let factor = self.config.growth_factor;
        let confirm = self.confirm;
        let initial = self.config.initial_limit;
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
        if confirm {
            let confirmed = state.confirmed().max(initial);
            let mut cap = (f64::from(confirmed) * factor).floor() as usize;
            // Never grow back into a concurrency at which a start failed.
            if let Some(failed) = state.failed_at {
                cap = cap.min(failed.saturating_sub(1) as usize);
            }
            if from >= cap {
                return None;
            }
        }
        feed(&state.limit, false);
        let to = state.limit.current_limit();
        if to == from {
            return None;
        }
        state.increases += 1;
        Some(LimitChange {
            class: class.clone(),
            from: u32::try_from(from).unwrap_or(u32::MAX),
            to: u32::try_from(to).unwrap_or(u32::MAX),
        })
    }

    /// A start on `host` begun at `began`, at `concurrency`, failed (at
    /// once or late). Cuts the limit once per round trip.
    pub(super) fn on_failure(
        &mut self,
        host: HostId,
        began: Instant,
        concurrency: u32,
    ) -> Option<LimitChange> {
        let class = self.host_class.get(&host)?.clone();
        let state = self.classes.get_mut(&class)?;
        state.failures_in_window += 1;
        state.failed_at = Some(state.failed_at.map_or(concurrency, |f| f.min(concurrency)));
        if state.last_cut.is_some_and(|at| began < at) {
            return None;
        }
        let from = state.limit.current_limit();
        feed(&state.limit, true);
        let to = state.limit.current_limit();
        state.last_cut = Some(self.clock.now());
        state.window_start = self.clock.now();
        state.busy_successes = 0;
        if to == from {
            return None;
        }
        state.cuts += 1;
        Some(LimitChange {
            class,
            from: u32::try_from(from).unwrap_or(u32::MAX),
            to: u32::try_from(to).unwrap_or(u32::MAX),
        })
    }

    /// Every class's figures, by class.
    pub(super) fn snapshot(&self) -> Vec<ClassStartLimit> {
        let mut out: Vec<ClassStartLimit> = self
            .classes
            .iter()
            .map(|(class, s)| ClassStartLimit {
                class: class.clone(),
                limit: u32::try_from(s.limit.current_limit()).unwrap_or(u32::MAX),
                confirmed: s.confirmed(),
                receivers: s.receivers,
                increases: s.increases,
                cuts: s.cuts,
            })
            .collect();
        out.sort_by(|a, b| a.class.cmp(&b.class));
        out
    }
}
