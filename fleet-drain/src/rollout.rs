//! Staged rollouts: canary, waves, bake time, health gate and automatic
//! rollback.
//!
//! # Why staged?
//!
//! A release that reaches every server at once takes the whole service down
//! with it (the November 2019 incident of the [crate docs](crate)), and
//! recovery needs fleets that can start *without receiving traffic*. A
//! [`Rollout`] runs a list
//! of [`RolloutStep`]s — put the version on a few canary hosts, bake while
//! the [`HealthGate`] watches the changed hosts, widen in waves, or start
//! everywhere without traffic and then shift traffic in steps — and if the
//! gate says [`GateVerdict::Abort`] during a bake, it undoes every change
//! already made, newest first, each undo retried with backoff and the whole
//! rollback bounded by a timeout. A `Pause` verdict during a bake extends
//! the bake until health recovers (bounded by the rollout's deadline).
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use fleet_drain::rollout::{Rollout, RolloutConfig, RolloutStep};
//! use fleet_drain::sim::{self, SimConfig, SimFleet};
//! use fleet_drain::RolloutError;
//! use resilience_core::clock::ManualClock;
//!
//! let clock = ManualClock::new();
//! let fleet = SimFleet::with_clock(SimConfig::default(), clock.clone())?;
//! let hosts = fleet.add_hosts(10, 10, "v1");
//! for &h in &hosts { fleet.add_apps(h, 5)?; }
//! fleet.set_version_healthy("v2", false); // the bad release
//!
//! let config = RolloutConfig {
//!     version: "v2".into(),
//!     steps: vec![
//!         RolloutStep::Canary { hosts: 1 },
//!         RolloutStep::Bake { duration: Duration::from_secs(300) },
//!         RolloutStep::Wave { percent: 100.0 },
//!     ],
//!     ..RolloutConfig::default()
//! };
//! let mut rollout = Rollout::with_clock(config, Arc::new(fleet.clone()), hosts.clone(), clock.clone())?;
//! let err = sim::run(&clock, rollout.run())?.unwrap_err();
//! assert!(matches!(err, RolloutError::Aborted { undone: 1, .. }));
//! assert!(hosts.iter().all(|&h| fleet.host(h).unwrap().version == "v1"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use resilience_core::backoff::{Backoff, BackoffConfig};
use resilience_core::clock::{Clock, SharedClock};
use resilience_core::{ConfigError, InstanceName};
use serde::{Deserialize, Serialize};

use crate::error::RolloutError;
use crate::fleet::{FleetError, HostId, RolloutFleet};
use crate::health::{FleetHealth, GateVerdict, HealthGate, HealthGateConfig};
use crate::telemetry::{Held, RolloutMetrics, StepKind};
use tracing::Instrument;

/// One step of a rollout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case", deny_unknown_fields)]
pub enum RolloutStep {
    /// Put the version, with traffic, on `hosts` more hosts. >= 1.
    Canary {
        /// Hosts to add.
        hosts: u32,
    },
    /// Put the version, with traffic, on hosts until `percent` of the
    /// rollout's hosts run it. In (0, 100].
    Wave {
        /// Share of hosts, in percent.
        percent: f64,
    },
    /// Watch the health of the changed hosts for `duration` (> 0); abort
    /// rolls back, pause extends the bake.
    Bake {
        /// How long.
        #[serde(with = "humantime_serde")]
        duration: Duration,
    },
    /// Start the version on every remaining host without traffic.
    StartWithoutTraffic,
    /// Send `percent` (0..=100) of the traffic to the version.
    ShiftTraffic {
        /// Share of traffic, in percent.
        percent: f64,
    },
}

/// Configuration of a [`Rollout`]. `Default`: no version, no steps (both
/// required), the default gate, health sampled every 10 s over a 5-minute
/// failure window, fleet operations retried from 1 s for 5 attempts, no
/// deadline, rollback bounded to 10 minutes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RolloutConfig {
    /// The version to roll out. Not empty.
    pub version: String,
    /// The steps, in order. Not empty.
    pub steps: Vec<RolloutStep>,
    /// Thresholds evaluated during bakes.
    pub gate: HealthGateConfig,
    /// How often health is sampled during a bake. > 0.
    #[serde(with = "humantime_serde")]
    pub check_interval: Duration,
    /// Window of the start-failure rate. > 0.
    #[serde(with = "humantime_serde")]
    pub failure_window: Duration,
    /// Retries of failed fleet operations (rollout and rollback).
    pub retry: BackoffConfig,
    /// The whole rollout must finish within this, or it is rolled back.
    #[serde(with = "humantime_serde::option")]
    pub deadline: Option<Duration>,
    /// Bound on the rollback itself. > 0.
    #[serde(with = "humantime_serde")]
    pub rollback_timeout: Duration,
}

impl Default for RolloutConfig {
    fn default() -> Self {
        RolloutConfig {
            version: String::new(),
            steps: Vec::new(),
            gate: HealthGateConfig::default(),
            check_interval: Duration::from_secs(10),
            failure_window: Duration::from_secs(300),
            retry: BackoffConfig {
                base: Duration::from_secs(1),
                max: Duration::from_secs(30),
                max_attempts: Some(5),
                ..BackoffConfig::default()
            },
            deadline: None,
            rollback_timeout: Duration::from_secs(600),
        }
    }
}

impl RolloutConfig {
    /// Checks every field; the error names the first invalid one (steps as
    /// `steps[i].field`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.version.trim().is_empty() {
            return Err(ConfigError::new(
                "version",
                "must name the version to roll out",
            ));
        }
        if self.steps.is_empty() {
            return Err(ConfigError::new("steps", "must contain at least one step"));
        }
        for (i, step) in self.steps.iter().enumerate() {
            let err = |field: &'static str, reason: String| {
                Err(ConfigError::new(field, reason).nested(&format!("steps[{i}]")))
            };
            match *step {
                RolloutStep::Canary { hosts: 0 } => {
                    return err("hosts", "must be at least 1".into());
                }
                RolloutStep::Wave { percent } if !(percent > 0.0 && percent <= 100.0) => {
                    return err("percent", format!("must be in (0, 100], got {percent}"));
                }
                RolloutStep::Bake { duration } if duration.is_zero() => {
                    return err("duration", "must be greater than zero".into());
                }
                RolloutStep::ShiftTraffic { percent } if !(0.0..=100.0).contains(&percent) => {
                    return err("percent", format!("must be in [0, 100], got {percent}"));
                }
                _ => {}
            }
        }
        self.gate.validate().map_err(|e| e.nested("gate"))?;
        if self.check_interval.is_zero() {
            return Err(ConfigError::new(
                "check_interval",
                "must be greater than zero",
            ));
        }
        if self.failure_window.is_zero() {
            return Err(ConfigError::new(
                "failure_window",
                "must be greater than zero",
            ));
        }
        self.retry.validate().map_err(|e| e.nested("retry"))?;
        if self.deadline == Some(Duration::ZERO) {
            return Err(ConfigError::new(
                "deadline",
                "must be greater than zero (omit it for no deadline)",
            ));
        }
        if self.rollback_timeout.is_zero() {
            return Err(ConfigError::new(
                "rollback_timeout",
                "must be greater than zero",
            ));
        }
        Ok(())
    }
}

/// A change made by the rollout, undone on rollback.
#[derive(Debug, Clone, PartialEq)]
enum Change {
    Started(HostId),
    Traffic { previous: f64 },
}

/// What a completed rollout did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RolloutReport {
    /// Steps completed.
    pub steps_completed: usize,
    /// Hosts running the version.
    pub hosts_changed: usize,
    /// Times a bake was extended by a pause verdict.
    pub pauses: u32,
    /// Time taken.
    #[serde(with = "humantime_serde")]
    pub elapsed: Duration,
}

/// Runs a staged rollout over a set of hosts. See the [module docs](self).
pub struct Rollout {
    config: RolloutConfig,
    fleet: Arc<dyn RolloutFleet>,
    hosts: Vec<HostId>,
    clock: SharedClock,
    gate: HealthGate,
    health: FleetHealth,
    changes: Vec<Change>,
    changed_hosts: Vec<HostId>,
    traffic: f64,
    /// The instance name (events' `name` field, metrics' `name` label).
    name: InstanceName,
    metrics: RolloutMetrics,
}

impl fmt::Debug for Rollout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rollout")
            .field("name", &self.name)
            .field("config", &self.config)
            .field("hosts", &self.hosts.len())
            .field("changed_hosts", &self.changed_hosts.len())
            .finish_non_exhaustive()
    }
}

impl Rollout {
    /// A rollout of `config.version` over `hosts` (in rollout order) on the
    /// system clock.
    pub fn new(
        config: RolloutConfig,
        fleet: Arc<dyn RolloutFleet>,
        hosts: Vec<HostId>,
    ) -> Result<Self, ConfigError> {
        Self::with_clock(config, fleet, hosts, SharedClock::system())
    }

    /// Like [`Rollout::new`] on `clock`.
    pub fn with_clock(
        config: RolloutConfig,
        fleet: Arc<dyn RolloutFleet>,
        hosts: Vec<HostId>,
        clock: impl Clock,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        if hosts.is_empty() {
            return Err(ConfigError::new(
                "hosts",
                "a rollout needs at least one host",
            ));
        }
        let clock = clock.into_shared();
        let gate = HealthGate::new(config.gate.clone()).map_err(|e| e.nested("gate"))?;
        let health = FleetHealth::with_clock(config.failure_window, clock.clone())?;
        Ok(Rollout {
            config,
            fleet,
            hosts,
            clock,
            gate,
            health,
            changes: Vec::new(),
            changed_hosts: Vec::new(),
            traffic: 0.0,
            name: InstanceName::unnamed(),
            metrics: RolloutMetrics::new(&InstanceName::unnamed()),
        })
    }

    /// Names the rollout: the name is the `name` field of every tracing event (and of its
    /// step spans) and, with the `metrics` feature, the `name` label of every series.
    ///
    /// Metric handles are registered with the recorder in scope when the rollout first runs
    /// ([`run`](Self::run)); install the recorder before that.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// use fleet_drain::rollout::{Rollout, RolloutConfig, RolloutStep};
    /// use fleet_drain::sim::{SimConfig, SimFleet};
    /// use resilience_core::InstanceName;
    ///
    /// let fleet = SimFleet::new(SimConfig::default())?;
    /// let hosts = fleet.add_hosts(2, 10, "v1");
    /// let config = RolloutConfig {
    ///     version: "v2".into(),
    ///     steps: vec![RolloutStep::Canary { hosts: 1 }],
    ///     ..RolloutConfig::default()
    /// };
    /// let rollout = Rollout::new(config, Arc::new(fleet), hosts)?.named(InstanceName::new("api.release")?);
    /// assert_eq!(rollout.name().as_str(), "api.release");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn named(mut self, name: InstanceName) -> Self {
        self.gate.set_name(name.clone());
        self.metrics = RolloutMetrics::new(&name);
        self.name = name;
        self
    }

    /// The instance name (`""` when unnamed).
    pub fn name(&self) -> &InstanceName {
        &self.name
    }

    /// Hosts currently running the version.
    pub fn changed_hosts(&self) -> &[HostId] {
        &self.changed_hosts
    }

    async fn retry<'s, F>(&'s self, op: F) -> Result<(), FleetError>
    where
        F: Fn(
            &'s dyn RolloutFleet,
        ) -> Pin<Box<dyn Future<Output = Result<(), FleetError>> + Send + 's>>,
    {
        let mut backoff = Backoff::with_seed(self.config.retry.clone(), 0)
            .map_err(|e| FleetError::InvalidArgument(e.to_string()))?;
        loop {
            match op(self.fleet.as_ref()).await {
                Ok(()) => return Ok(()),
                Err(e) if e.is_retryable() => match backoff.next_delay() {
                    Some(delay) => self.clock.sleep(delay).await,
                    None => return Err(e),
                },
                Err(e) => return Err(e),
            }
        }
    }

    async fn start_on(&mut self, count: usize, traffic: bool) -> Result<(), FleetError> {
        let todo: Vec<HostId> = self
            .hosts
            .iter()
            .copied()
            .filter(|h| !self.changed_hosts.contains(h))
            .take(count)
            .collect();
        let version = self.config.version.clone();
        for host in todo {
            self.retry(|f| f.start_version(host, &version, traffic))
                .await?;
            self.changes.push(Change::Started(host));
            self.changed_hosts.push(host);
            self.metrics.hosts_changed(self.changed_hosts.len());
            tracing::info!(name = %self.name, %host, version, traffic, "rollout: version started");
        }
        Ok(())
    }

    /// Runs every step; on an abort verdict, an error or the deadline,
    /// rolls back every change (newest first) and returns the error.
    pub async fn run(&mut self) -> Result<RolloutReport, RolloutError> {
        self.metrics.register();
        let started = self.clock.now();
        let mut report = RolloutReport::default();
        match self.run_steps(started, &mut report).await {
            Ok(()) => {
                report.hosts_changed = self.changed_hosts.len();
                report.elapsed = self.clock.now().saturating_duration_since(started);
                tracing::info!(name = %self.name, version = %self.config.version, hosts = report.hosts_changed, "rollout completed");
                Ok(report)
            }
            Err(error) => {
                tracing::warn!(name = %self.name, %error, changes = self.changes.len(), "rollout failed; rolling back");
                self.metrics.rollback();
                let undone = self.rollback().await?;
                Err(match error {
                    RolloutError::Aborted { reason, .. } => {
                        RolloutError::Aborted { reason, undone }
                    }
                    other => other,
                })
            }
        }
    }

    async fn run_steps(
        &mut self,
        started: Instant,
        report: &mut RolloutReport,
    ) -> Result<(), RolloutError> {
        let steps = self.config.steps.clone();
        let total = self.hosts.len();
        for (index, step) in steps.iter().enumerate() {
            self.check_deadline(started)?;
            let span = tracing::info_span!("rollout_step", name = %self.name, index, ?step);
            self.run_step(step, total, started, report)
                .instrument(span)
                .await?;
            self.metrics.step_completed(match step {
                RolloutStep::Canary { .. } => StepKind::Canary,
                RolloutStep::Wave { .. } => StepKind::Wave,
                RolloutStep::Bake { .. } => StepKind::Bake,
                RolloutStep::StartWithoutTraffic => StepKind::StartWithoutTraffic,
                RolloutStep::ShiftTraffic { .. } => StepKind::ShiftTraffic,
            });
            report.steps_completed = index + 1;
        }
        Ok(())
    }

    /// Runs one step (inside its span).
    async fn run_step(
        &mut self,
        step: &RolloutStep,
        total: usize,
        started: Instant,
        report: &mut RolloutReport,
    ) -> Result<(), RolloutError> {
        tracing::info!(name = %self.name, ?step, "rollout step");
        {
            match *step {
                RolloutStep::Canary { hosts } => {
                    self.start_on(hosts as usize, true).await?;
                }
                RolloutStep::Wave { percent } => {
                    let want = ((total as f64) * percent / 100.0).ceil() as usize;
                    let more = want.saturating_sub(self.changed_hosts.len());
                    self.start_on(more, true).await?;
                }
                RolloutStep::StartWithoutTraffic => {
                    self.start_on(total, false).await?;
                }
                RolloutStep::ShiftTraffic { percent } => {
                    let version = self.config.version.clone();
                    self.retry(|f| f.shift_traffic(&version, percent)).await?;
                    self.changes.push(Change::Traffic {
                        previous: self.traffic,
                    });
                    self.traffic = percent;
                }
                RolloutStep::Bake { duration } => {
                    self.bake(duration, started, report).await?;
                }
            }
        }
        Ok(())
    }

    fn check_deadline(&self, started: Instant) -> Result<(), RolloutError> {
        if let Some(deadline) = self.config.deadline
            && self.clock.now().saturating_duration_since(started) >= deadline
        {
            return Err(RolloutError::DeadlineExceeded);
        }
        Ok(())
    }

    async fn bake(
        &mut self,
        duration: Duration,
        started: Instant,
        report: &mut RolloutReport,
    ) -> Result<(), RolloutError> {
        let mut end = self.clock.now() + duration;
        let mut paused = false;
        loop {
            self.check_deadline(started)?;
            let apps = self.fleet.apps().await?;
            self.health.observe(&apps);
            let figures = self.health.hosts(&self.changed_hosts);
            let verdict = self.gate.evaluate(&figures);
            tracing::debug!(name = %self.name, ?verdict, %figures, "rollout bake: health sampled");
            match verdict {
                GateVerdict::Abort => {
                    self.metrics.verdict(Held::Abort);
                    return Err(RolloutError::Aborted {
                        reason: format!("health gate during bake: {}", self.gate.explain(&figures)),
                        undone: 0,
                    });
                }
                GateVerdict::Pause => {
                    if !paused {
                        report.pauses += 1;
                        self.metrics.verdict(Held::Pause);
                        tracing::warn!(name = %self.name, %figures, "rollout bake extended: health degraded");
                    }
                    paused = true;
                }
                GateVerdict::Proceed => paused = false,
            }
            let now = self.clock.now();
            if now >= end && !paused {
                return Ok(());
            }
            if paused {
                end = end.max(now + self.config.check_interval);
            }
            self.clock.sleep(self.config.check_interval).await;
        }
    }

    /// Undoes every change, newest first, within `rollback_timeout`.
    async fn rollback(&mut self) -> Result<usize, RolloutError> {
        let deadline = self.clock.now() + self.config.rollback_timeout;
        let version = self.config.version.clone();
        let mut undone = 0;
        while let Some(change) = self.changes.pop() {
            if self.clock.now() >= deadline {
                self.changes.push(change);
                return Err(RolloutError::RollbackFailed {
                    pending: self.changes.len(),
                    source: FleetError::Unavailable("rollback timeout exceeded".into()),
                });
            }
            let result = match &change {
                Change::Started(host) => {
                    let host = *host;
                    self.retry(|f| f.stop_version(host, &version)).await
                }
                Change::Traffic { previous } => {
                    let previous = *previous;
                    self.retry(|f| f.shift_traffic(&version, previous)).await
                }
            };
            if let Err(source) = result {
                self.changes.push(change);
                tracing::error!(name = %self.name, %source, pending = self.changes.len(), "rollback failed");
                return Err(RolloutError::RollbackFailed {
                    pending: self.changes.len(),
                    source,
                });
            }
            if let Change::Started(host) = change {
                self.changed_hosts.retain(|h| *h != host);
            } else if let Change::Traffic { previous } = change {
                self.traffic = previous;
            }
            undone += 1;
            self.metrics.change_undone();
            self.metrics.hosts_changed(self.changed_hosts.len());
            tracing::info!(name = %self.name, ?change, "rollout change undone");
        }
        Ok(undone)
    }
}
