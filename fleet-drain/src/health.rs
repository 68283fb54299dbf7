//! Fleet health figures and the [`HealthGate`] that turns them into
//! proceed / pause / abort.
//!
//! # Why gate on app health?
//!
//! Capacity says whether the moved apps fit, not whether they work: a
//! drain gated on capacity alone keeps going while the apps it moved fail
//! to start (the February 2019 incident of the [crate docs](crate)).
//! [`FleetHealth`] keeps the figures that say so, per fleet and per
//! host: the share of apps running healthy, and app start failures per
//! minute over a sliding window. Apps that are starting are in transition
//! (the drain bounds them with `max_unavailable`) and count neither as
//! healthy nor unhealthy. The [`HealthGate`] compares the figures to
//! thresholds through [`resilience_core::signal::Hysteresis`], so a figure
//! hovering around a mark does not make the drain flap between pause and
//! resume, and returns a [`GateVerdict`].
//!
//! # Example
//!
//! ```
//! use fleet_drain::fleet::{App, AppId, AppState, HostId};
//! use fleet_drain::health::{FleetHealth, GateVerdict, HealthGate, HealthGateConfig};
//! use resilience_core::clock::ManualClock;
//! use std::time::Duration;
//!
//! let clock = ManualClock::new();
//! let mut health = FleetHealth::with_clock(Duration::from_secs(60), clock.clone())?;
//! let mut gate = HealthGate::new(HealthGateConfig { fire_after: 1, ..HealthGateConfig::default() })?;
//!
//! let mut apps: Vec<App> = (0..100)
//!     .map(|i| App { id: AppId(i), host: HostId(i % 10), state: AppState::Running })
//!     .collect();
//! health.observe(&apps);
//! assert_eq!(gate.evaluate(health.fleet()), GateVerdict::Proceed);
//!
//! // 10 apps fail: 90 % healthy is below the 95 % pause mark.
//! for app in apps.iter_mut().take(10) { app.state = AppState::Failed; }
//! health.observe(&apps);
//! assert_eq!(health.fleet().healthy_share, 0.9);
//! assert_eq!(gate.evaluate(health.fleet()), GateVerdict::Pause);
//! # Ok::<(), resilience_core::ConfigError>(())
//! ```

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::time::{Duration, Instant};

use resilience_core::clock::{Clock, SharedClock};
use resilience_core::signal::{Direction, Hysteresis, HysteresisConfig};
use resilience_core::{ConfigError, InstanceName};
use serde::{Deserialize, Serialize};

use crate::fleet::{App, AppState, HostId};

/// Health figures of a fleet or of one host.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HealthFigures {
    /// Apps counted.
    pub apps: u64,
    /// Of which running healthy.
    pub healthy: u64,
    /// Of which starting (in transition: bounded by the drain's
    /// `max_unavailable`, so neither healthy nor unhealthy).
    pub starting: u64,
    /// `healthy / (apps - starting)` (1 when that is 0).
    pub healthy_share: f64,
    /// App start failures per minute over the window.
    pub start_failures_per_minute: f64,
}

impl Default for HealthFigures {
    fn default() -> Self {
        HealthFigures {
            apps: 0,
            healthy: 0,
            starting: 0,
            healthy_share: 1.0,
            start_failures_per_minute: 0.0,
        }
    }
}

impl fmt::Display for HealthFigures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:.1} % of {} apps healthy, {:.2} start failures/min",
            self.healthy_share * 100.0,
            self.apps,
            self.start_failures_per_minute
        )
    }
}

/// Per-fleet and per-host health, from app states and recorded start
/// outcomes.
#[derive(Debug, Clone)]
pub struct FleetHealth {
    clock: SharedClock,
    window: Duration,
    failures: VecDeque<(Instant, HostId)>,
    counts: HashMap<HostId, (u64, u64, u64)>,
    fleet: HealthFigures,
}

impl FleetHealth {
    /// Health over a start-failure `window` on the system clock.
    pub fn new(window: Duration) -> Result<Self, ConfigError> {
        Self::with_clock(window, SharedClock::system())
    }

    /// Health over a start-failure `window` on `clock`. The window must be
    /// greater than zero.
    pub fn with_clock(window: Duration, clock: impl Clock) -> Result<Self, ConfigError> {
        if window.is_zero() {
            return Err(ConfigError::new("window", "must be greater than zero"));
        }
        Ok(FleetHealth {
            clock: clock.into_shared(),
            window,
            failures: VecDeque::new(),
            counts: HashMap::new(),
            fleet: HealthFigures::default(),
        })
    }

    /// Records one app start on `host`.
    pub fn record_start(&mut self, host: HostId, succeeded: bool) {
        if !succeeded {
            self.failures.push_back((self.clock.now(), host));
        }
        self.expire();
    }

    fn expire(&mut self) {
        let now = self.clock.now();
        while self
            .failures
            .front()
            .is_some_and(|(t, _)| now.saturating_duration_since(*t) >= self.window)
        {
            self.failures.pop_front();
        }
    }

    fn per_minute(&self, failures: usize) -> f64 {
        failures as f64 * 60.0 / self.window.as_secs_f64()
    }

    /// Recomputes the figures from the current app states.
    pub fn observe<'a>(&mut self, apps: impl IntoIterator<Item = &'a App>) {
        self.expire();
        self.counts.clear();
        let (mut total, mut healthy, mut starting) = (0u64, 0u64, 0u64);
        for app in apps {
            let entry = self.counts.entry(app.host).or_default();
            entry.0 += 1;
            total += 1;
            if app.state.is_healthy() {
                entry.1 += 1;
                healthy += 1;
            } else if app.state == AppState::Starting {
                entry.2 += 1;
                starting += 1;
            }
        }
        self.fleet = figures(
            total,
            healthy,
            starting,
            self.per_minute(self.failures.len()),
        );
    }

    /// The whole fleet's figures as of the last [`FleetHealth::observe`].
    pub fn fleet(&self) -> &HealthFigures {
        &self.fleet
    }

    /// One host's figures (`None` if it had no apps and no failures).
    pub fn host(&self, host: HostId) -> Option<HealthFigures> {
        let failures = self.failures.iter().filter(|(_, h)| *h == host).count();
        match self.counts.get(&host) {
            Some(&(total, healthy, starting)) => {
                Some(figures(total, healthy, starting, self.per_minute(failures)))
            }
            None if failures > 0 => Some(figures(0, 0, 0, self.per_minute(failures))),
            None => None,
        }
    }

    /// The figures of a group of hosts together (e.g. a rollout's canary).
    pub fn hosts(&self, hosts: &[HostId]) -> HealthFigures {
        let (mut total, mut healthy, mut starting) = (0, 0, 0);
        for host in hosts {
            if let Some(&(t, h, s)) = self.counts.get(host) {
                total += t;
                healthy += h;
                starting += s;
            }
        }
        let failures = self
            .failures
            .iter()
            .filter(|(_, h)| hosts.contains(h))
            .count();
        figures(total, healthy, starting, self.per_minute(failures))
    }
}

fn figures(
    apps: u64,
    healthy: u64,
    starting: u64,
    start_failures_per_minute: f64,
) -> HealthFigures {
    let settled = apps.saturating_sub(starting);
    HealthFigures {
        apps,
        healthy,
        starting,
        healthy_share: if settled == 0 {
            1.0
        } else {
            healthy as f64 / settled as f64
        },
        start_failures_per_minute,
    }
}

/// What a [`HealthGate`] says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GateVerdict {
    /// Healthy: go on.
    Proceed,
    /// Degraded: stop starting new work until health recovers.
    Pause,
    /// Broken: stop and give up (a rollout rolls back).
    Abort,
}

/// Thresholds of a [`HealthGate`]. `Default`: pause below 95 % healthy or
/// above 5 start failures/min, resume above 98 % and below 1/min; abort
/// below 80 % healthy or above 50 failures/min; 2 samples to pause, 3 to
/// resume, 3 to abort.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HealthGateConfig {
    /// Pause when the healthy share falls below this. In `[0, 1]`.
    pub pause_below_healthy_share: f64,
    /// Resume once it is back above this. In `[pause_below_healthy_share, 1)`.
    pub resume_above_healthy_share: f64,
    /// Abort when the healthy share falls below this. In
    /// `[0, pause_below_healthy_share]`.
    pub abort_below_healthy_share: f64,
    /// Pause above this many start failures per minute. Finite, >= 0.
    pub pause_above_failures_per_minute: f64,
    /// Resume once below this. In `[0, pause_above_failures_per_minute]`.
    pub resume_below_failures_per_minute: f64,
    /// Abort above this. `>= pause_above_failures_per_minute`, finite.
    pub abort_above_failures_per_minute: f64,
    /// Consecutive bad evaluations before pausing. >= 1.
    pub fire_after: u32,
    /// Consecutive good evaluations before resuming. >= 1.
    pub clear_after: u32,
    /// Consecutive evaluations past an abort mark before aborting. >= 1.
    pub abort_after: u32,
}

impl Default for HealthGateConfig {
    fn default() -> Self {
        HealthGateConfig {
            pause_below_healthy_share: 0.95,
            resume_above_healthy_share: 0.98,
            abort_below_healthy_share: 0.8,
            pause_above_failures_per_minute: 5.0,
            resume_below_failures_per_minute: 1.0,
            abort_above_failures_per_minute: 50.0,
            fire_after: 2,
            clear_after: 3,
            abort_after: 3,
        }
    }
}

impl HealthGateConfig {
    /// Checks every field; the error names the first invalid one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let share = |field: &'static str, v: f64, low: f64, high: f64| {
            if v.is_finite() && (low..=high).contains(&v) {
                Ok(())
            } else {
                Err(ConfigError::new(
                    field,
                    format!("must be a share in [{low}, {high}], got {v}"),
                ))
            }
        };
        share(
            "pause_below_healthy_share",
            self.pause_below_healthy_share,
            0.0,
            1.0,
        )?;
        share(
            "resume_above_healthy_share",
            self.resume_above_healthy_share,
            self.pause_below_healthy_share,
            1.0,
        )?;
        if self.resume_above_healthy_share >= 1.0 {
            return Err(ConfigError::new(
                "resume_above_healthy_share",
                "must be below 1: the share must rise strictly above it to resume",
            ));
        }
        share(
            "abort_below_healthy_share",
            self.abort_below_healthy_share,
            0.0,
            self.pause_below_healthy_share,
        )?;
        let rate = |field: &'static str, v: f64, low: f64, high: f64| {
            if v.is_finite() && v >= low && v <= high {
                Ok(())
            } else {
                Err(ConfigError::new(
                    field,
                    format!("must be a finite rate in [{low}, {high}], got {v}"),
                ))
            }
        };
        rate(
            "pause_above_failures_per_minute",
            self.pause_above_failures_per_minute,
            0.0,
            f64::MAX,
        )?;
        rate(
            "resume_below_failures_per_minute",
            self.resume_below_failures_per_minute,
            0.0,
            self.pause_above_failures_per_minute,
        )?;
        rate(
            "abort_above_failures_per_minute",
            self.abort_above_failures_per_minute,
            self.pause_above_failures_per_minute,
            f64::MAX,
        )?;
        for (field, v) in [
            ("fire_after", self.fire_after),
            ("clear_after", self.clear_after),
            ("abort_after", self.abort_after),
        ] {
            if v == 0 {
                return Err(ConfigError::new(field, "must be at least 1 evaluation"));
            }
        }
        Ok(())
    }
}

/// Thresholds with hysteresis over [`HealthFigures`]. Abort is latched:
/// once aborted, the gate stays aborted.
#[derive(Debug, Clone)]
pub struct HealthGate {
    config: HealthGateConfig,
    pause_share: Hysteresis,
    pause_failures: Hysteresis,
    abort_share: Hysteresis,
    abort_failures: Hysteresis,
    aborted: bool,
    /// The name of the controller or rollout the gate belongs to (its events' `name`).
    name: InstanceName,
}

impl HealthGate {
    /// A gate with validated thresholds.
    pub fn new(config: HealthGateConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let signal = |low: f64, high: f64, fire: u32, clear: u32, direction| {
            Hysteresis::new(HysteresisConfig {
                high,
                low,
                fire_after: fire,
                clear_after: clear,
                direction,
            })
        };
        crate::naming::unrecorded(|| {
            Ok(HealthGate {
                pause_share: signal(
                    config.pause_below_healthy_share,
                    config.resume_above_healthy_share,
                    config.fire_after,
                    config.clear_after,
                    Direction::Below,
                )?,
                pause_failures: signal(
                    config.resume_below_failures_per_minute,
                    config.pause_above_failures_per_minute,
                    config.fire_after,
                    config.clear_after,
                    Direction::Above,
                )?,
                abort_share: signal(
                    config.abort_below_healthy_share,
                    config.abort_below_healthy_share,
                    config.abort_after,
                    1,
                    Direction::Below,
                )?,
                abort_failures: signal(
                    config.abort_above_failures_per_minute,
                    config.abort_above_failures_per_minute,
                    config.abort_after,
                    1,
                    Direction::Above,
                )?,
                config,
                aborted: false,
                name: InstanceName::unnamed(),
            })
        })
    }

    /// Names the gate's events after its owner.
    pub(crate) fn set_name(&mut self, name: InstanceName) {
        let rename = |signal: &Hysteresis, part: &str| match crate::naming::sub_name(&name, part) {
            Some(sub) => signal.clone().named(sub),
            None => signal.clone(),
        };
        self.pause_share = rename(&self.pause_share, "gate.pause-share");
        self.pause_failures = rename(&self.pause_failures, "gate.pause-failures");
        self.abort_share = rename(&self.abort_share, "gate.abort-share");
        self.abort_failures = rename(&self.abort_failures, "gate.abort-failures");
        self.name = name;
    }

    /// The thresholds.
    pub fn config(&self) -> &HealthGateConfig {
        &self.config
    }

    /// Feeds one sample of the figures and returns the verdict.
    pub fn evaluate(&mut self, figures: &HealthFigures) -> GateVerdict {
        let share = figures.healthy_share;
        let rate = figures.start_failures_per_minute;
        self.pause_share.observe(share);
        self.pause_failures.observe(rate);
        self.abort_share.observe(share);
        self.abort_failures.observe(rate);
        if self.abort_share.is_firing() || self.abort_failures.is_firing() {
            if !self.aborted {
                tracing::warn!(name = %self.name, share, rate, "health gate: abort");
            }
            self.aborted = true;
        }
        if self.aborted {
            GateVerdict::Abort
        } else if self.pause_share.is_firing() || self.pause_failures.is_firing() {
            GateVerdict::Pause
        } else {
            GateVerdict::Proceed
        }
    }

    /// The current verdict without a new sample.
    pub fn verdict(&self) -> GateVerdict {
        if self.aborted {
            GateVerdict::Abort
        } else if self.pause_share.is_firing() || self.pause_failures.is_firing() {
            GateVerdict::Pause
        } else {
            GateVerdict::Proceed
        }
    }

    /// A sentence naming which threshold the figures are past.
    pub fn explain(&self, figures: &HealthFigures) -> String {
        let c = &self.config;
        let mut reasons = Vec::new();
        if figures.healthy_share < c.pause_below_healthy_share {
            reasons.push(format!(
                "healthy share {:.1} % below {:.1} %",
                figures.healthy_share * 100.0,
                c.pause_below_healthy_share * 100.0
            ));
        }
        if figures.start_failures_per_minute > c.pause_above_failures_per_minute {
            reasons.push(format!(
                "{:.2} start failures/min above {:.2}",
                figures.start_failures_per_minute, c.pause_above_failures_per_minute
            ));
        }
        if reasons.is_empty() {
            format!("healthy ({figures})")
        } else {
            format!("{} ({figures})", reasons.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::AppId;
    use resilience_core::clock::ManualClock;

    fn figures_of(share: f64, rate: f64) -> HealthFigures {
        HealthFigures {
            apps: 100,
            healthy: (share * 100.0) as u64,
            starting: 0,
            healthy_share: share,
            start_failures_per_minute: rate,
        }
    }

    #[test]
    fn invalid_gate_configs_name_the_field() {
        let d = HealthGateConfig::default;
        let cases = [
            (
                HealthGateConfig {
                    pause_below_healthy_share: 1.5,
                    ..d()
                },
                "pause_below_healthy_share",
            ),
            (
                HealthGateConfig {
                    resume_above_healthy_share: 0.9,
                    ..d()
                },
                "resume_above_healthy_share",
            ),
            (
                HealthGateConfig {
                    abort_below_healthy_share: f64::NAN,
                    ..d()
                },
                "abort_below_healthy_share",
            ),
            (
                HealthGateConfig {
                    pause_above_failures_per_minute: -1.0,
                    ..d()
                },
                "pause_above_failures_per_minute",
            ),
            (
                HealthGateConfig {
                    resume_below_failures_per_minute: 6.0,
                    ..d()
                },
                "resume_below_failures_per_minute",
            ),
            (
                HealthGateConfig {
                    abort_above_failures_per_minute: f64::INFINITY,
                    ..d()
                },
                "abort_above_failures_per_minute",
            ),
            (
                HealthGateConfig {
                    fire_after: 0,
                    ..d()
                },
                "fire_after",
            ),
            (
                HealthGateConfig {
                    abort_after: 0,
                    ..d()
                },
                "abort_after",
            ),
        ];
        for (config, field) in cases {
            assert_eq!(HealthGate::new(config).unwrap_err().field(), field);
        }
        assert!(FleetHealth::new(Duration::ZERO).is_err());
    }

    #[test]
    fn gate_pauses_after_fire_after_bad_samples_and_resumes_with_hysteresis() {
        let mut gate = HealthGate::new(HealthGateConfig::default()).unwrap();
        assert_eq!(gate.evaluate(&figures_of(0.9, 0.0)), GateVerdict::Proceed);
        assert_eq!(gate.evaluate(&figures_of(0.9, 0.0)), GateVerdict::Pause);
        // 96 % is between the marks: still paused.
        for _ in 0..5 {
            assert_eq!(gate.evaluate(&figures_of(0.96, 0.0)), GateVerdict::Pause);
        }
        assert_eq!(gate.evaluate(&figures_of(0.99, 0.0)), GateVerdict::Pause);
        assert_eq!(gate.evaluate(&figures_of(0.99, 0.0)), GateVerdict::Pause);
        assert_eq!(gate.evaluate(&figures_of(0.99, 0.0)), GateVerdict::Proceed);
        assert!(gate.explain(&figures_of(0.9, 0.0)).contains("below 95.0 %"));
    }

    #[test]
    fn gate_pauses_on_start_failures_and_aborts_latched() {
        let mut gate = HealthGate::new(HealthGateConfig {
            fire_after: 1,
            abort_after: 2,
            ..HealthGateConfig::default()
        })
        .unwrap();
        assert_eq!(gate.evaluate(&figures_of(1.0, 6.0)), GateVerdict::Pause);
        assert_eq!(gate.evaluate(&figures_of(0.5, 0.0)), GateVerdict::Pause);
        assert_eq!(gate.evaluate(&figures_of(0.5, 0.0)), GateVerdict::Abort);
        assert_eq!(gate.evaluate(&figures_of(1.0, 0.0)), GateVerdict::Abort);
        assert_eq!(gate.verdict(), GateVerdict::Abort);
    }

    #[test]
    fn start_failures_per_minute_slide_out_of_the_window() {
        let clock = ManualClock::new();
        let mut health = FleetHealth::with_clock(Duration::from_secs(120), clock.clone()).unwrap();
        for _ in 0..4 {
            health.record_start(HostId(1), false);
        }
        health.record_start(HostId(2), true);
        health.observe(&[]);
        assert_eq!(health.fleet().start_failures_per_minute, 2.0);
        assert_eq!(
            health.host(HostId(1)).unwrap().start_failures_per_minute,
            2.0
        );
        assert!(health.host(HostId(2)).is_none());
        clock.advance(Duration::from_secs(120));
        health.observe(&[]);
        assert_eq!(health.fleet().start_failures_per_minute, 0.0);
    }

    #[test]
    fn figures_are_kept_per_host_and_per_group() {
        let clock = ManualClock::new();
        let mut health = FleetHealth::with_clock(Duration::from_secs(60), clock).unwrap();
        let apps = [
            App {
                id: AppId(0),
                host: HostId(0),
                state: AppState::Running,
            },
            App {
                id: AppId(1),
                host: HostId(0),
                state: AppState::Unhealthy,
            },
            App {
                id: AppId(2),
                host: HostId(1),
                state: AppState::Running,
            },
        ];
        health.observe(&apps);
        assert_eq!(health.host(HostId(0)).unwrap().healthy_share, 0.5);
        assert_eq!(health.hosts(&[HostId(0), HostId(1)]).healthy, 2);
        assert!((health.fleet().healthy_share - 2.0 / 3.0).abs() < 1e-9);
    }
}
