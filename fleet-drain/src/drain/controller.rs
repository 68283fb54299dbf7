//! [`DrainController`]: runs waves to completion, pacing, gating,
//! retrying and journaling.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use futures::future::Either;
use futures::stream::FuturesUnordered;
use resilience_core::backoff::{Backoff, BackoffConfig};
use resilience_core::clock::{Clock, SharedClock, Sleep};
use resilience_core::retry::{RetryConfig, RetryPolicy};
use resilience_core::signal::EventAggregator;
use resilience_core::{ConfigError, InstanceName};
use tokio::sync::broadcast;
use tracing::Instrument;

use super::adaptive::{AdaptiveStarts, LimitChange};
use super::config::DrainConfig;
use super::events::DrainEvent;
use super::pacer::{START_WINDOW, StartPacer};
use super::report::{DrainReport, WaveReport};
use super::work::{
    Batch, Callback, Probation, StartFuture, StartStep, Work, first_starts, platform_receivers,
    remaining_targets, repairs,
};
use crate::error::{DrainError, JournalError};
use crate::fleet::{
    AppId, AppState, DrainFleet, FleetError, FleetSnapshot, HostId, HostState, Placement,
};
use crate::health::{FleetHealth, GateVerdict, HealthGate};
use crate::journal::{DrainProgress, Journal, JournalRecord};
use crate::names::NameMap;
use crate::naming::{sub_name, unrecorded};
use crate::plan::{DrainPlan, Planner};
use crate::telemetry::{DrainMetrics, Held, StartOutcome};

/// Runs drains. See the [module docs](super).
pub struct DrainController {
    config: DrainConfig,
    planner: Planner,
    fleet: Arc<dyn DrainFleet>,
    journal: Box<dyn Journal>,
    clock: SharedClock,
    gate: HealthGate,
    health: FleetHealth,
    events: broadcast::Sender<DrainEvent>,
    callbacks: Vec<Callback>,
    aggregator: EventAggregator<String, DrainEvent>,
    rng_seed: u64,
    /// Retries fleet operations (snapshots, host state changes).
    retry: RetryPolicy,
    needs_replan: bool,
    /// Receivers excluded for failing starts, for the rest of the run.
    excluded: HashSet<HostId>,
    /// Learned start concurrency per receiver class.
    adaptive: Option<AdaptiveStarts>,
    /// Moved apps on probation, oldest first.
    probation: VecDeque<Probation>,
    /// The instance name (events' `name` field, metrics' `name` label).
    name: InstanceName,
    metrics: DrainMetrics,
    /// The adapter's names, whose new assignments are journaled before
    /// every record of the controller's.
    names: Option<NameMap>,
}

impl fmt::Debug for DrainController {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DrainController")
            .field("name", &self.name)
            .field("config", &self.config)
            .field("verdict", &self.gate.verdict())
            .finish_non_exhaustive()
    }
}

/// Whether the controller is paused, and since when.
#[derive(Debug, Default)]
struct RunState {
    paused_since: Option<Instant>,
    report: DrainReport,
    run_started: Option<Instant>,
    /// Whether the last wave report is still open.
    wave_open: bool,
}

impl RunState {
    /// The open wave's index in the report.
    fn open_wave(&self) -> Option<usize> {
        self.report
            .wave_reports
            .len()
            .checked_sub(1)
            .filter(|_| self.wave_open)
    }

    fn wave(&mut self) -> Option<&mut WaveReport> {
        let index = self.open_wave()?;
        self.report.wave_reports.get_mut(index)
    }

    /// The wave an item belongs to: the one it moved in, else the open one.
    fn wave_of(&mut self, item: Option<usize>) -> Option<&mut WaveReport> {
        let index = item.or(self.open_wave())?;
        self.report.wave_reports.get_mut(index)
    }
}

impl DrainController {
    /// A controller on the system clock.
    pub fn new(
        config: DrainConfig,
        fleet: Arc<dyn DrainFleet>,
        journal: Box<dyn Journal>,
    ) -> Result<Self, ConfigError> {
        Self::with_clock(config, fleet, journal, SharedClock::system())
    }

    /// A controller whose waits and windows use `clock`.
    pub fn with_clock(
        config: DrainConfig,
        fleet: Arc<dyn DrainFleet>,
        journal: Box<dyn Journal>,
        clock: impl Clock,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        let clock = clock.into_shared();
        let planner = Planner::new(config.limits.clone()).map_err(|e| e.nested("limits"))?;
        let gate = HealthGate::new(config.gate.clone()).map_err(|e| e.nested("gate"))?;
        let health = FleetHealth::with_clock(config.failure_window, clock.clone())
            .map_err(|e| e.nested("failure_window"))?;
        // Built unrecorded; `named` registers them under the controller's name.
        let aggregator =
            unrecorded(|| EventAggregator::with_clock(config.events.clone(), clock.clone()))
                .map_err(|e| e.nested("events"))?;
        let retry = unrecorded(|| {
            RetryPolicy::new(RetryConfig {
                max_attempts: config.retry.max_attempts.unwrap_or(u32::MAX),
                backoff: BackoffConfig {
                    max_attempts: None,
                    ..config.retry.clone()
                },
                ..RetryConfig::default()
            })
        })
        .map_err(|e| e.nested("retry"))?
        .with_clock(clock.clone())
        .with_seed(config.seed);
        let (events, _) = broadcast::channel(1024);
        let adaptive = match &config.adaptive_starts {
            Some(adaptive) => Some(
                AdaptiveStarts::new(
                    adaptive.clone(),
                    config.start_exploration.clone(),
                    config.probation,
                    clock.clone(),
                )
                .map_err(|e| e.nested("adaptive_starts"))?,
            ),
            None => None,
        };
        Ok(DrainController {
            adaptive,
            probation: VecDeque::new(),
            retry,
            rng_seed: config.seed,
            config,
            planner,
            fleet,
            journal,
            clock,
            gate,
            health,
            events,
            callbacks: Vec::new(),
            aggregator,
            needs_replan: false,
            excluded: HashSet::new(),
            name: InstanceName::unnamed(),
            metrics: DrainMetrics::new(&InstanceName::unnamed()),
            names: None,
        })
    }

    /// Names the controller: the name is the `name` field of every tracing event (and of its
    /// wave spans) and, with the `metrics` feature, the `name` label of every series.
    ///
    /// Metric handles are registered with the recorder in scope when the controller first
    /// acts ([`run`](Self::run)); install the recorder before that.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// use fleet_drain::drain::{DrainConfig, DrainController};
    /// use fleet_drain::journal::MemoryJournal;
    /// use fleet_drain::sim::{SimConfig, SimFleet};
    /// use resilience_core::{InstanceName, Named};
    ///
    /// // From a configuration file: `{ "name": "eu-west.drain", "seed": 7 }`.
    /// let config: Named<DrainConfig> = serde_json::from_str(r#"{ "name": "eu-west.drain", "seed": 7 }"#)?;
    /// let controller = DrainController::new(
    ///     config.config.clone(),
    ///     Arc::new(SimFleet::new(SimConfig::default())?),
    ///     Box::new(MemoryJournal::new()),
    /// )?
    /// .named(config.instance_name()?);
    /// assert_eq!(controller.name().as_str(), "eu-west.drain");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn named(mut self, name: InstanceName) -> Self {
        self.gate.set_name(name.clone());
        self.planner.set_name(name.clone());
        if let Some(adaptive) = self.adaptive.as_mut() {
            adaptive.set_name(&name);
        }
        if let Some(events) = sub_name(&name, "events") {
            self.aggregator = self.aggregator.named(events);
        }
        if let Some(calls) = sub_name(&name, "fleet-calls") {
            self.retry = self.retry.named(calls);
        }
        self.metrics = DrainMetrics::new(&name);
        self.name = name;
        self
    }

    /// The instance name (`""` when unnamed).
    pub fn name(&self) -> &InstanceName {
        &self.name
    }

    /// Journals the adapter's name assignments ([`NameMap`]) before each
    /// of the controller's records, so every id in the journal has its
    /// name journaled first and a restarted controller (given
    /// [`NameMap::from_records`] of the same journal) maps names to the
    /// same ids.
    #[must_use]
    pub fn with_names(mut self, names: NameMap) -> Self {
        self.names = Some(names);
        self
    }

    /// Appends to the journal (after any pending name assignments),
    /// counting the outcome.
    async fn journal_append(&mut self, record: &JournalRecord) -> Result<(), JournalError> {
        if let Some(names) = self.names.as_ref().filter(|n| n.has_pending()) {
            let persisted = names.persist(self.journal.as_mut()).await;
            self.metrics.journal_append(persisted.is_ok());
            persisted?;
        }
        let result = self.journal.append(record).await;
        self.metrics.journal_append(result.is_ok());
        result
    }

    /// The configuration.
    pub fn config(&self) -> &DrainConfig {
        &self.config
    }

    /// A receiver of every [`DrainEvent`] from now on (a tokio broadcast
    /// channel of 1024 events; a slow receiver sees `Lagged`).
    pub fn subscribe(&self) -> broadcast::Receiver<DrainEvent> {
        self.events.subscribe()
    }

    /// Calls `callback` with every [`DrainEvent`], synchronously.
    pub fn on_event(&mut self, callback: impl Fn(&DrainEvent) + Send + Sync + 'static) {
        self.callbacks.push(Box::new(callback));
    }

    fn emit(&self, event: DrainEvent) {
        match &event {
            DrainEvent::Paused { reason, .. } => {
                tracing::warn!(name = %self.name, %reason, "drain paused by health gate");
            }
            DrainEvent::Aborted { reason } => {
                tracing::error!(name = %self.name, %reason, "drain aborted");
            }
            DrainEvent::StartFailed {
                app,
                host,
                attempt,
                error,
            } => {
                tracing::warn!(name = %self.name, %app, %host, attempt, %error, "app start failed");
            }
            DrainEvent::AppMigrated { app, to } => {
                tracing::debug!(name = %self.name, %app, %to, "app migrated");
            }
            DrainEvent::LateFailure {
                app,
                host,
                state,
                after,
            } => {
                tracing::warn!(name = %self.name, %app, %host, %state, ?after, "late failure: a moved app turned unhealthy during probation; restarting it");
            }
            DrainEvent::StartLimitChanged { class, from, to } => {
                tracing::info!(name = %self.name, %class, from, to, "learned start concurrency changed");
            }
            DrainEvent::WaveFinished {
                wave,
                failed_starts,
                late_failures,
                repairs,
            } => {
                tracing::info!(name = %self.name, wave, failed_starts, late_failures, repairs, "wave finished");
            }
            DrainEvent::Aggregated {
                fingerprint,
                suppressed,
                ..
            } => {
                tracing::info!(name = %self.name, %fingerprint, suppressed, "similar drain events aggregated");
            }
            other => {
                tracing::info!(name = %self.name, event = ?other, "drain event");
            }
        }
        for callback in &self.callbacks {
            callback(&event);
        }
        let _ = self.events.send(event);
    }

    /// Emits `event` unless a similar one (same `fingerprint`) was emitted
    /// within the aggregation window.
    fn emit_aggregated(&mut self, fingerprint: String, event: DrainEvent) {
        if let Some(emitted) = self.aggregator.record(fingerprint, event) {
            self.emit(emitted.event);
        }
    }

    fn emit_summaries(&mut self, flush: bool) {
        let flushed = if flush {
            self.aggregator.flush()
        } else {
            self.aggregator.poll()
        };
        for summary in flushed.summaries {
            self.emit(DrainEvent::Aggregated {
                fingerprint: summary.fingerprint,
                suppressed: summary.count,
                last: Box::new(summary.last_event),
            });
        }
    }

    /// Plans the next wave for `targets` without changing anything.
    pub async fn plan(&mut self, targets: &[HostId]) -> Result<DrainPlan, DrainError> {
        let snapshot = self.with_retry(|f| f.snapshot()).await?;
        let records = self.journal.records().await?;
        let progress = DrainProgress::from_records(&records);
        let remaining = remaining_targets(targets, &progress, &snapshot);
        self.planner.check_feasible(&snapshot, &remaining)?;
        Ok(self.planner.next_wave(&snapshot, &remaining)?)
    }

    /// Runs a fleet operation through the controller's [`RetryPolicy`]
    /// (the crate-wide retry engine): retryable [`FleetError`]s are retried
    /// with the configured backoff, the last error is returned when the
    /// attempts run out.
    async fn with_retry<T, F>(&self, op: F) -> Result<T, DrainError>
    where
        F: for<'a> Fn(
            &'a dyn DrainFleet,
        ) -> Pin<Box<dyn Future<Output = Result<T, FleetError>> + Send + 'a>>,
    {
        let fleet = self.fleet.as_ref();
        self.retry
            .run(|attempt| {
                if attempt > 1 {
                    tracing::warn!(name = %self.name, attempt, "retrying a failed fleet operation");
                }
                op(fleet)
            })
            .await
            .map_err(|e| match e.into_last_error() {
                Some(error) => DrainError::from(error),
                None => DrainError::from(FleetError::Unavailable(
                    "fleet operation stopped by the retry policy before any attempt".into(),
                )),
            })
    }

    fn check_deadline(&self, started: Instant, remaining: usize) -> Result<(), DrainError> {
        if let Some(deadline) = self.config.deadline
            && self.clock.now().saturating_duration_since(started) >= deadline
        {
            tracing::error!(name = %self.name, ?deadline, remaining, "drain deadline exceeded");
            return Err(DrainError::DeadlineExceeded {
                deadline,
                remaining,
            });
        }
        Ok(())
    }

    /// Samples health and applies the gate's verdict; `Ok(true)` while
    /// paused.
    async fn check_gate(&mut self, state: &mut RunState) -> Result<bool, DrainError> {
        let apps = self.with_retry(|f| f.apps()).await?;
        self.health.observe(&apps);
        let figures = *self.health.fleet();
        let verdict = self.gate.evaluate(&figures);
        let now = self.clock.now();
        match verdict {
            GateVerdict::Abort => {
                let reason = format!(
                    "health past the abort marks: {}",
                    self.gate.explain(&figures)
                );
                self.journal_append(&JournalRecord::Aborted {
                    reason: reason.clone(),
                })
                .await?;
                self.metrics.verdict(Held::Abort);
                self.emit_summaries(true);
                self.emit(DrainEvent::Aborted {
                    reason: reason.clone(),
                });
                Err(DrainError::Aborted { reason })
            }
            GateVerdict::Pause => {
                if state.paused_since.is_none() {
                    state.paused_since = Some(now);
                    state.report.pauses += 1;
                    self.metrics.verdict(Held::Pause);
                    let reason = self.gate.explain(&figures);
                    self.emit(DrainEvent::Paused {
                        health: figures,
                        reason,
                    });
                }
                Ok(true)
            }
            GateVerdict::Proceed => {
                if let Some(since) = state.paused_since.take() {
                    self.emit(DrainEvent::Resumed {
                        health: figures,
                        paused_for: now.saturating_duration_since(since),
                    });
                }
                Ok(false)
            }
        }
    }

    /// Drains `targets` (in order) to completion, resuming from the
    /// journal if it holds this drain. With
    /// [`DrainConfig::dry_run`] only plans the next wave.
    #[allow(clippy::too_many_lines)] // the drain's state machine, clearer whole
    pub async fn run(&mut self, targets: &[HostId]) -> Result<DrainReport, DrainError> {
        self.metrics.register();
        let started = self.clock.now();
        let mut state = RunState {
            run_started: Some(started),
            ..RunState::default()
        };
        let Some((mut progress, mut pacer)) = self.begin(targets, &mut state).await? else {
            return Ok(state.report);
        };
        let target_set: HashSet<HostId> = targets.iter().copied().collect();
        let mut wave = progress.waves;
        loop {
            let snapshot = self.with_retry(|f| f.snapshot()).await?;
            let remaining = remaining_targets(targets, &progress, &snapshot);
            self.check_deadline(started, remaining.len())?;

            self.settle_draining_hosts(&snapshot, &mut progress, &mut state)
                .await?;
            let snapshot = self.with_retry(|f| f.snapshot()).await?;
            let remaining = remaining_targets(targets, &progress, &snapshot);
            // Starts begun by an earlier run (before a crash) complete on
            // their own: wait for them before judging health or capacity.
            let starting = snapshot
                .apps()
                .filter(|a| a.state == AppState::Starting)
                .count();
            if starting > 0 {
                tracing::info!(name = %self.name, starting, "waiting for starts begun by an earlier run");
                self.check_deadline(started, remaining.len())?;
                self.clock.sleep(self.config.check_interval).await;
                continue;
            }

            // Apps left stopped or failed on receivers (an interrupted or
            // failed start of an earlier run) are restarted in place first,
            // within the unavailability budget and the per-receiver start
            // pacing, before the gate is consulted at all: they are what
            // makes the fleet look unhealthy, so gating them would pause
            // (or abort) a resumed drain on its predecessor's leftovers.
            // A repair that keeps failing still ends the drain once out of
            // attempts.
            let repairs = repairs(&snapshot, &target_set, self.clock.now());
            if !repairs.is_empty() {
                tracing::info!(
                    name = %self.name,
                    apps = repairs.len(),
                    "restarting apps left stopped or failed on receivers"
                );
                let budget = usize::try_from(
                    self.config
                        .limits
                        .unavailable_budget(snapshot.total_apps() as u64),
                )
                .unwrap_or(usize::MAX);
                let batch = Batch {
                    budget,
                    started,
                    remaining: remaining.len(),
                    plan: None,
                    gated: false,
                    sources: HashMap::new(),
                    await_probation: false,
                    receivers: platform_receivers(&snapshot, &target_set),
                };
                self.execute(repairs, batch, &mut pacer, &mut progress, &mut state)
                    .await?;
                continue;
            }

            if remaining.is_empty() && !self.probation.is_empty() {
                // Every app moved: watch the last ones through their
                // probation, repairing late failures, before reporting done.
                tracing::info!(
                    name = %self.name,
                    apps = self.probation.len(),
                    "all hosts drained; waiting for the last moved apps' probation"
                );
                let batch = Batch {
                    budget: usize::MAX,
                    started,
                    remaining: 0,
                    plan: None,
                    gated: false,
                    sources: HashMap::new(),
                    await_probation: true,
                    receivers: platform_receivers(&snapshot, &target_set),
                };
                self.execute(
                    VecDeque::new(),
                    batch,
                    &mut pacer,
                    &mut progress,
                    &mut state,
                )
                .await?;
                continue;
            }
            if remaining.is_empty() {
                return self.finish(started, &pacer, state).await;
            }

            // Wait for health before starting a wave; every check comes
            // after a fresh look for apps to repair (above), so the gate
            // never waits on leftovers nobody restarts.
            if self.check_gate(&mut state).await? {
                self.emit_summaries(false);
                self.clock.sleep(self.config.check_interval).await;
                continue;
            }

            let mut snapshot = snapshot;
            for &host in &self.excluded {
                snapshot.set_host_healthy(host, false);
            }
            let plan = self.planner.next_wave(&snapshot, &remaining)?;
            if let Some(adaptive) = self.adaptive.as_mut() {
                for receiver in plan.receivers() {
                    if let Some(host) = snapshot.host(receiver.host) {
                        adaptive.register(host)?;
                    }
                }
                self.metrics.start_limits(&adaptive.snapshot());
            }
            if !plan.new_hosts().is_empty() {
                wave += 1;
                self.start_wave(&plan, wave, &mut progress, &mut state)
                    .await?;
            }
            let now = self.clock.now();
            let work = first_starts(&plan, now);
            if work.is_empty() && plan.new_hosts().is_empty() {
                if progress.draining.is_empty() {
                    // Nothing fits right now (budget used by unhealthy apps
                    // elsewhere): wait and re-plan.
                    tracing::info!(
                        name = %self.name,
                        unplaced = plan.unplaced().len(),
                        "no wave can start within the limits; waiting"
                    );
                }
                self.clock.sleep(self.config.check_interval).await;
                continue;
            }
            let sources: HashMap<HostId, usize> = plan
                .hosts()
                .iter()
                .map(|&h| (h, snapshot.apps_on(h).len()))
                .collect();
            let receivers = platform_receivers(&snapshot, &target_set);
            if self.platform_placement()
                && let Some(adaptive) = self.adaptive.as_mut()
            {
                // The platform may start apps on any of them.
                for &receiver in &receivers {
                    if let Some(host) = snapshot.host(receiver) {
                        adaptive.register(host)?;
                    }
                }
            }
            let batch = Batch {
                sources,
                receivers,
                await_probation: false,
                budget: usize::try_from(plan.unavailable_budget()).unwrap_or(usize::MAX),
                started,
                remaining: remaining.len(),
                // Re-planning around failing receivers needs the
                // controller to pick them.
                plan: self
                    .config
                    .receiver_max_failures_per_minute
                    .filter(|_| !self.platform_placement())
                    .map(|_| (plan, snapshot)),
                gated: true,
            };
            let span = tracing::info_span!(
                "drain_wave",
                name = %self.name,
                wave,
                hosts = ?progress.draining
            );
            self.execute(work, batch, &mut pacer, &mut progress, &mut state)
                .instrument(span)
                .await?;
            state.report.peak_starts_per_host_per_minute = pacer.peak;
            if progress.draining.is_empty() {
                self.close_wave(&mut state);
            }
        }
    }

    /// Replays the journal, checks feasibility, handles a dry run and
    /// prepares the pacer. `None`: nothing more to do (report in `state`).
    async fn begin(
        &mut self,
        targets: &[HostId],
        state: &mut RunState,
    ) -> Result<Option<(DrainProgress, StartPacer)>, DrainError> {
        let records = self.journal.records().await?;
        let mut progress = DrainProgress::from_records(&records);
        if let Some(journaled) = &progress.targets
            && journaled.as_slice() != targets
        {
            return Err(DrainError::JournalMismatch);
        }
        if let Some(reason) = &progress.aborted {
            return Err(DrainError::Aborted {
                reason: format!("journal says the drain was aborted: {reason}"),
            });
        }
        if progress.finished {
            tracing::info!(name = %self.name, "journal says the drain already finished");
            return Ok(None);
        }
        let snapshot = self.with_retry(|f| f.snapshot()).await?;
        let remaining = remaining_targets(targets, &progress, &snapshot);
        self.planner.check_feasible(&snapshot, &remaining)?;
        if self.config.dry_run {
            let plan = self.planner.next_wave(&snapshot, &remaining)?;
            tracing::info!(
                name = %self.name,
                hosts = ?plan.hosts(),
                assignments = plan.assignments().len(),
                plan = %plan,
                "dry run: next wave"
            );
            state.report.plan = Some(plan);
            return Ok(None);
        }
        let resumed = progress.targets.is_some();
        state.report.resumed = resumed;
        if !resumed {
            self.journal_append(&JournalRecord::DrainStarted {
                targets: targets.to_vec(),
            })
            .await?;
            progress.targets = Some(targets.to_vec());
        }
        self.emit(DrainEvent::Started {
            targets: targets.len(),
            resumed,
        });
        if let Some(adaptive) = self.adaptive.as_mut()
            && !progress.start_limits.is_empty()
        {
            adaptive.restore(&progress.start_limits);
        }
        let mut pacer = StartPacer::new(self.config.limits.max_starts_per_host_per_minute);
        // Targets the fleet shows draining that the journal does not know
        // (its tail was lost): adopt them rather than start them again.
        for &t in targets {
            if snapshot
                .host(t)
                .is_some_and(|h| h.state == HostState::Draining)
                && !progress.draining.contains(&t)
                && !progress.is_drained(t)
            {
                tracing::warn!(name = %self.name, host = %t, "adopting a host the fleet shows draining but the journal does not");
                progress.draining.push(t);
            }
        }
        let touched = targets.iter().any(|&t| {
            snapshot
                .host(t)
                .is_some_and(|h| matches!(h.state, HostState::Draining | HostState::Drained))
        });
        if resumed || touched {
            // The previous run's recent starts are unknown: wait one full
            // start window before the first start.
            pacer.blocked_until = Some(self.clock.now() + START_WINDOW);
            tracing::info!(
                name = %self.name,
                draining = ?progress.draining,
                drained = progress.drained.len(),
                "resuming drain from journal; waiting one start window before starting apps"
            );
        }
        Ok(Some((progress, pacer)))
    }

    /// Journals a new wave, then marks its hosts draining.
    async fn start_wave(
        &mut self,
        plan: &DrainPlan,
        wave: u32,
        progress: &mut DrainProgress,
        state: &mut RunState,
    ) -> Result<(), DrainError> {
        state.report.waves += 1;
        self.metrics.wave_started();
        self.journal_append(&JournalRecord::WaveStarted {
            wave,
            hosts: plan.new_hosts().to_vec(),
        })
        .await?;
        for &host in plan.new_hosts() {
            self.with_retry(|f| f.set_host_state(host, HostState::Draining))
                .await?;
            progress.draining.push(host);
        }
        self.metrics.hosts_draining(progress.draining.len());
        self.close_wave(state);
        let started_after = state
            .run_started
            .map(|at| self.clock.now().saturating_duration_since(at))
            .unwrap_or_default();
        state.report.wave_reports.push(WaveReport {
            wave,
            hosts: plan.new_hosts().to_vec(),
            apps: plan.assignments().len(),
            started_after,
            ..WaveReport::default()
        });
        state.wave_open = true;
        self.emit(DrainEvent::WaveStarted {
            wave,
            hosts: plan.new_hosts().to_vec(),
            apps: plan.assignments().len(),
        });
        Ok(())
    }

    /// Starts every app of `work`, pacing, gating and retrying, until all
    /// have started or one needs a new plan (and, with
    /// `batch.await_probation`, every moved app passed its probation).
    #[allow(clippy::too_many_lines)] // one scheduling loop, clearer whole
    async fn execute(
        &mut self,
        work: VecDeque<Work>,
        mut batch: Batch,
        pacer: &mut StartPacer,
        progress: &mut DrainProgress,
        state: &mut RunState,
    ) -> Result<(), DrainError> {
        let (budget, started, remaining, gated) =
            (batch.budget, batch.started, batch.remaining, batch.gated);
        let mut redirect: HashMap<AppId, HostId> = HashMap::new();
        // First starts queue per receiver (in plan order); retries wait in
        // a small list with their backoff deadlines.
        let platform = self.platform_placement();
        let mut fresh: BTreeMap<HostId, VecDeque<Work>> = BTreeMap::new();
        // Platform placement: one queue, in plan order (the receiver is the
        // platform's pick), and the evictions not yet placed.
        let mut queue: VecDeque<Work> = VecDeque::new();
        let mut placing = 0_usize;
        for item in work {
            if platform {
                queue.push_back(item);
            } else {
                fresh.entry(item.to).or_default().push_back(item);
            }
        }
        let mut retries: Vec<Work> = Vec::new();
        let mut in_flight: FuturesUnordered<StartFuture> = FuturesUnordered::new();
        let mut next_check = self.clock.now();
        let mut paused = false;
        let mut replan = false;
        let mut timer: Option<(Instant, Sleep)> = None;
        let budget = budget.max(1);
        self.needs_replan = false;
        loop {
            self.check_deadline(started, remaining)?;
            let now = self.clock.now();
            if now >= next_check {
                self.check_probation(&mut retries, state).await?;
                if gated {
                    paused = self.check_gate(state).await?;
                }
                self.emit_summaries(false);
                next_check = now + self.config.check_interval;
                self.exclude_failing_receivers(
                    &mut batch,
                    &mut fresh,
                    &mut retries,
                    &mut redirect,
                )?;
            }
            let mut wake = next_check;
            if platform && !replan {
                let mut unavailable = in_flight.len() + retries.len();
                // Retries first (they restore health: not paused), then
                // first moves; each only while every receiver has room.
                retries.sort_by_key(|w| w.not_before);
                let mut waiting = Vec::with_capacity(retries.len());
                for mut item in retries.drain(..) {
                    if item.not_before > now {
                        wake = wake.min(item.not_before);
                        waiting.push(item);
                        continue;
                    }
                    let (admit, at) = self.platform_admits(&batch.receivers, pacer, placing, now);
                    if let Some(at) = at {
                        wake = wake.min(at);
                    }
                    if !admit {
                        waiting.push(item);
                        continue;
                    }
                    placing += 1;
                    item.began = now;
                    in_flight.push(self.evict(item));
                }
                retries = waiting;
                while let Some(front) = queue.front() {
                    if (paused && !front.repair) || unavailable >= budget {
                        break;
                    }
                    if front.not_before > now {
                        wake = wake.min(front.not_before);
                        break;
                    }
                    let (admit, at) = self.platform_admits(&batch.receivers, pacer, placing, now);
                    if let Some(at) = at {
                        wake = wake.min(at);
                    }
                    if !admit {
                        break;
                    }
                    let Some(mut item) = queue.pop_front() else {
                        break;
                    };
                    placing += 1;
                    unavailable += 1;
                    item.began = now;
                    in_flight.push(self.evict(item));
                }
            } else if !replan {
                let mut unavailable = in_flight.len() + retries.len();
                // Retries restore health: they go on while paused.
                let mut waiting = Vec::with_capacity(retries.len());
                for mut item in retries.drain(..) {
                    let allowed = pacer.next_allowed(item.to, now).max(item.not_before);
                    if allowed <= now && pacer.in_progress(item.to) < self.start_cap(item.to) {
                        item.concurrency = pacer.record(item.to, now);
                        self.began(item.to, item.concurrency);
                        item.began = now;
                        in_flight.push(self.start(item));
                    } else {
                        if allowed > now {
                            wake = wake.min(allowed);
                        }
                        waiting.push(item);
                    }
                }
                retries = waiting;
                for (&host, queue) in &mut fresh {
                    let cap = self.start_cap(host);
                    while let Some(front) = queue.front() {
                        if (paused && !front.repair) || unavailable >= budget {
                            break;
                        }
                        // A start slot frees when a start ends: that wakes
                        // this loop (no timer needed).
                        if pacer.in_progress(host) >= cap {
                            break;
                        }
                        let allowed = pacer.next_allowed(host, now).max(front.not_before);
                        if allowed > now {
                            wake = wake.min(allowed);
                            break;
                        }
                        let Some(mut item) = queue.pop_front() else {
                            break;
                        };
                        item.concurrency = pacer.record(host, now);
                        self.began(host, item.concurrency);
                        item.began = now;
                        unavailable += 1;
                        in_flight.push(self.start(item));
                    }
                }
                fresh.retain(|_, queue| !queue.is_empty());
            }
            self.metrics.apps_moving(in_flight.len());
            self.metrics.busiest_receiver(pacer.peak);
            let probation_pending = batch.await_probation && !self.probation.is_empty();
            if in_flight.is_empty()
                && ((fresh.is_empty() && queue.is_empty() && retries.is_empty()) || replan)
                && !probation_pending
            {
                return Ok(());
            }
            if let Some(deadline) = self.config.deadline {
                wake = wake.min(started + deadline);
            }
            // Reuse the timer while its deadline holds: re-arming a clock
            // sleep per completed start would cost a registration each.
            if timer.as_ref().is_none_or(|(at, _)| *at != wake) {
                timer = Some((wake, self.clock.sleep_until(wake)));
            }
            let Some((_, sleep)) = timer.as_mut() else {
                continue;
            };
            if in_flight.is_empty() {
                // Nothing to wait for but time (backoff, pacing, the gate).
                sleep.await;
                timer = None;
                continue;
            }
            match futures::future::select(in_flight.next(), sleep).await {
                Either::Left((Some((mut item, step)), _)) => {
                    let result = match step {
                        StartStep::Placed(Ok(host)) => {
                            // Landed: from now on the start counts against
                            // `host`'s limits; follow it to its end.
                            placing = placing.saturating_sub(1);
                            let now = self.clock.now();
                            item.to = host;
                            item.concurrency = pacer.record(host, now);
                            self.began(host, item.concurrency);
                            tracing::debug!(name = %self.name, app = %item.app, %host, concurrency = item.concurrency, "platform placed an evicted app");
                            in_flight.push(self.watch(item));
                            continue;
                        }
                        StartStep::Placed(Err(error)) => {
                            placing = placing.saturating_sub(1);
                            if let FleetError::StartFailed { host, .. } = &error {
                                item.to = *host;
                            } else if !error.is_retryable() {
                                tracing::error!(name = %self.name, app = %item.app, %error, "the platform refused an eviction");
                                return Err(error.into());
                            }
                            Err(error)
                        }
                        StartStep::Ended(result) => {
                            pacer.finished(item.to);
                            result
                        }
                    };
                    self.metrics.apps_moving(in_flight.len());
                    let moved_from = item.from.filter(|_| result.is_ok() && !item.repair);
                    if let Some(mut retry) = self.on_start_result(item, result, state)? {
                        if let Some(&to) = redirect.get(&retry.app) {
                            retry.to = to;
                        }
                        retries.push(retry);
                    } else if !replan && self.needs_replan {
                        replan = true;
                    }
                    if let Some(from) = moved_from
                        && let Some(left) = batch.sources.get_mut(&from)
                    {
                        *left = left.saturating_sub(1);
                        if *left == 0 {
                            batch.sources.remove(&from);
                            self.drain_emptied_host(from, progress, state).await?;
                        }
                    }
                }
                Either::Left((None, _)) => {}
                Either::Right(((), _)) => timer = None,
            }
        }
    }

    /// Whether the fleet places apps itself ([`Placement::Platform`]).
    fn platform_placement(&self) -> bool {
        self.fleet.placement() == Placement::Platform
    }

    /// Platform placement: whether one more eviction may begin now, and
    /// when to look again if not.
    ///
    /// The rule: with `placing` evictions not yet placed, one more begins
    /// only if *every* receiver could take all of them plus this one
    /// without going over its limits — `placing + 1 <= cap(r) -
    /// in_progress(r)` (concurrent starts) and `placing + 1 <=` the starts
    /// left in its sliding minute, for every receiver `r`. Whatever host the
    /// platform picks among them, no limit is exceeded; a start counts
    /// against its host from the moment it is placed. No receivers: wait.
    fn platform_admits(
        &self,
        receivers: &[HostId],
        pacer: &mut StartPacer,
        placing: usize,
        now: Instant,
    ) -> (bool, Option<Instant>) {
        if let Some(until) = pacer.blocked_until.filter(|u| *u > now) {
            return (false, Some(until));
        }
        if receivers.is_empty() {
            return (false, None);
        }
        let mut room = usize::MAX;
        let mut frees: Option<Instant> = None;
        for &host in receivers {
            let concurrent = self.start_cap(host).saturating_sub(pacer.in_progress(host));
            let (window, at) = pacer.window_room(host, now);
            room = room.min(concurrent as usize).min(window);
            if let Some(at) = at {
                frees = Some(frees.map_or(at, |f| f.min(at)));
            }
        }
        (placing < room, frees)
    }

    /// Platform placement: asks the platform to move (or restart) the app.
    fn evict(&self, mut item: Work) -> StartFuture {
        item.attempt += 1;
        let fleet = Arc::clone(&self.fleet);
        Box::pin(async move {
            let placed = fleet.evict(item.app).await;
            (item, StartStep::Placed(placed))
        })
    }

    /// Platform placement: follows a placed start through the app's health
    /// (every `check_interval`) until it leaves [`AppState::Starting`].
    fn watch(&self, item: Work) -> StartFuture {
        let fleet = Arc::clone(&self.fleet);
        let clock = self.clock.clone();
        let every = self.config.check_interval;
        Box::pin(async move {
            let (app, host) = (item.app, item.to);
            loop {
                clock.sleep(every).await;
                let result = match fleet.app_health(app).await {
                    Ok(AppState::Starting) => continue,
                    Err(error) if error.is_retryable() => continue,
                    Ok(AppState::Running) => Ok(()),
                    Ok(state) => Err(FleetError::StartFailed {
                        app,
                        host,
                        reason: format!("the app is {state} after the platform started it"),
                    }),
                    Err(error) => Err(error),
                };
                return (item, StartStep::Ended(result));
            }
        })
    }

    /// Concurrent starts `host` may run now: the fixed limit, or the
    /// learned one below it.
    fn start_cap(&self, host: HostId) -> u32 {
        let fixed = self.config.limits.max_concurrent_starts_per_host;
        match self.adaptive.as_ref().and_then(|a| a.limit(host)) {
            Some(learned) => learned.min(fixed).max(1),
            None => fixed,
        }
    }

    /// Marks a draining host whose last app has just moved as drained
    /// (journaled), without waiting for the rest of its wave.
    async fn drain_emptied_host(
        &mut self,
        host: HostId,
        progress: &mut DrainProgress,
        state: &mut RunState,
    ) -> Result<(), DrainError> {
        if !progress.draining.contains(&host) {
            return Ok(());
        }
        if let Err(error) = self
            .with_retry(|f| f.set_host_state(host, HostState::Drained))
            .await
        {
            // Settled later, when the wave is re-planned.
            tracing::warn!(name = %self.name, %host, %error, "emptied host not yet drainable; retrying after the wave");
            return Ok(());
        }
        self.journal_append(&JournalRecord::HostDrained { host })
            .await?;
        self.host_drained(host, progress, state);
        Ok(())
    }

    fn host_drained(&mut self, host: HostId, progress: &mut DrainProgress, state: &mut RunState) {
        progress.draining.retain(|h| *h != host);
        progress.drained.push(host);
        state.report.hosts_drained += 1;
        self.metrics.host_drained();
        self.metrics.hosts_draining(progress.draining.len());
        state.report.last_host_drained_after = state
            .run_started
            .map(|at| self.clock.now().saturating_duration_since(at));
        self.emit(DrainEvent::HostDrained { host });
    }

    /// Closes the open wave report (figures, learned limits, event).
    fn close_wave(&mut self, state: &mut RunState) {
        let limits = self
            .adaptive
            .as_ref()
            .map(AdaptiveStarts::snapshot)
            .unwrap_or_default();
        let Some(wave) = state.wave() else {
            return;
        };
        wave.start_limits = limits;
        let event = DrainEvent::WaveFinished {
            wave: wave.wave,
            failed_starts: wave.failed_starts,
            late_failures: wave.late_failures,
            repairs: wave.repairs,
        };
        for limit in &wave.start_limits {
            tracing::info!(
                name = %self.name,
                wave = wave.wave,
                class = %limit.class,
                limit = limit.limit,
                confirmed = limit.confirmed,
                receivers = limit.receivers,
                increases = limit.increases,
                cuts = limit.cuts,
                "learned start concurrency"
            );
        }
        state.wave_open = false;
        self.metrics.wave_completed();
        self.emit(event);
    }

    fn limit_changed(&mut self, change: Option<LimitChange>) {
        if let Some(change) = change {
            self.metrics.limit_changed(change.from, change.to);
            if let Some(adaptive) = &self.adaptive {
                self.metrics.start_limits(&adaptive.snapshot());
            }
            self.emit(DrainEvent::StartLimitChanged {
                class: change.class.to_string(),
                from: change.from,
                to: change.to,
            });
        }
    }

    /// Looks at the apps on probation: a late failure is counted against
    /// its receiver and restarted there (queued in `retries`, not gated);
    /// an app healthy through its whole window passes.
    async fn check_probation(
        &mut self,
        retries: &mut Vec<Work>,
        state: &mut RunState,
    ) -> Result<(), DrainError> {
        if self.probation.is_empty() {
            return self.journal_start_limits().await;
        }
        let apps = self.with_retry(|f| f.apps()).await?;
        let by_id: HashMap<AppId, (HostId, AppState)> =
            apps.iter().map(|a| (a.id, (a.host, a.state))).collect();
        let now = self.clock.now();
        let mut keep = VecDeque::with_capacity(self.probation.len());
        for entry in std::mem::take(&mut self.probation) {
            match by_id.get(&entry.app).copied() {
                Some((host, app_state))
                    if host == entry.host
                        && matches!(
                            app_state,
                            AppState::Unhealthy | AppState::Failed | AppState::Stopped
                        ) =>
                {
                    self.late_failure(entry, app_state, now, retries, state);
                }
                // Moved or restarted by someone else: no longer ours.
                Some((host, AppState::Running)) if host == entry.host && now >= entry.until => {
                    let change = self
                        .adaptive
                        .as_mut()
                        .and_then(|a| a.on_confirmed(entry.host, entry.concurrency));
                    self.limit_changed(change);
                }
                Some((host, _)) if host == entry.host => keep.push_back(entry),
                _ => {}
            }
        }
        self.probation = keep;
        self.journal_start_limits().await
    }

    /// Journals the learned start limits that changed since last time.
    async fn journal_start_limits(&mut self) -> Result<(), DrainError> {
        let changed = self
            .adaptive
            .as_mut()
            .map(AdaptiveStarts::take_changed)
            .unwrap_or_default();
        for learned in changed {
            self.journal_append(&JournalRecord::StartLimitLearned(learned))
                .await?;
        }
        Ok(())
    }

    /// A start on `host` began at `concurrency` (itself included).
    fn began(&mut self, host: HostId, concurrency: u32) {
        if let Some(adaptive) = self.adaptive.as_mut() {
            adaptive.on_begin(host, concurrency);
        }
    }

    fn late_failure(
        &mut self,
        entry: Probation,
        app_state: AppState,
        now: Instant,
        retries: &mut Vec<Work>,
        state: &mut RunState,
    ) {
        let host = entry.host;
        self.health.record_start(host, false);
        state.report.late_failures += 1;
        self.metrics.late_failure();
        if let Some(wave) = state.wave_of(entry.wave) {
            wave.late_failures += 1;
        }
        let change = self
            .adaptive
            .as_mut()
            .and_then(|a| a.on_failure(host, entry.began, entry.concurrency));
        self.limit_changed(change);
        self.emit_aggregated(
            format!("late_failure/{host}"),
            DrainEvent::LateFailure {
                app: entry.app,
                host,
                state: app_state,
                after: now.saturating_duration_since(entry.ended),
            },
        );
        retries.push(Work {
            app: entry.app,
            to: host,
            from: None,
            late: true,
            began: now,
            concurrency: 0,
            wave: entry.wave,
            attempt: 0,
            repair: true,
            backoff: None,
            not_before: now,
        });
    }

    /// Re-plans the apps queued for receivers that fail too many starts.
    fn exclude_failing_receivers(
        &mut self,
        batch: &mut Batch,
        fresh: &mut BTreeMap<HostId, VecDeque<Work>>,
        retries: &mut [Work],
        redirect: &mut HashMap<AppId, HostId>,
    ) -> Result<(), DrainError> {
        let (Some(max), Some((plan, snapshot))) = (
            self.config.receiver_max_failures_per_minute,
            batch.plan.as_mut(),
        ) else {
            return Ok(());
        };
        let failing: Vec<(HostId, f64)> = plan
            .receivers()
            .iter()
            .filter(|r| !r.excluded)
            .filter_map(|r| {
                let rate = self.health.host(r.host)?.start_failures_per_minute;
                (rate > max).then_some((r.host, rate))
            })
            .collect();
        for (host, rate) in failing {
            self.excluded.insert(host);
            self.metrics.receiver_excluded();
            snapshot.set_host_healthy(host, false);
            let replan = self.planner.replan_host(plan, snapshot, host)?;
            let moved: HashMap<AppId, HostId> =
                plan.assignments().iter().map(|a| (a.app, a.to)).collect();
            let queued = fresh.remove(&host).unwrap_or_default();
            for mut item in queued {
                // Unplaced apps stay on their draining host for the next plan.
                if let Some(&to) = moved.get(&item.app) {
                    item.to = to;
                    fresh.entry(to).or_default().push_back(item);
                }
            }
            for item in retries.iter_mut().filter(|w| w.to == host) {
                if let Some(&to) = moved.get(&item.app) {
                    item.to = to;
                }
            }
            for (app, to) in moved {
                redirect.insert(app, to);
            }
            tracing::warn!(name = %self.name, %host, rate, moved = replan.moved, "receiver excluded: too many start failures");
            self.emit(DrainEvent::ReceiverExcluded {
                host,
                start_failures_per_minute: rate,
                moved: replan.moved,
            });
        }
        Ok(())
    }

    /// Brings the fleet in line with the journal: journaled-draining hosts
    /// are draining; empty ones become drained (journaled).
    async fn settle_draining_hosts(
        &mut self,
        snapshot: &FleetSnapshot,
        progress: &mut DrainProgress,
        state: &mut RunState,
    ) -> Result<(), DrainError> {
        for host in progress.draining.clone() {
            let Some(h) = snapshot.host(host) else {
                continue;
            };
            let empty = snapshot.apps_on(host).is_empty();
            if h.state != HostState::Draining && h.state != HostState::Drained {
                self.with_retry(|f| f.set_host_state(host, HostState::Draining))
                    .await?;
            }
            if empty {
                self.with_retry(|f| f.set_host_state(host, HostState::Drained))
                    .await?;
                self.journal_append(&JournalRecord::HostDrained { host })
                    .await?;
                self.host_drained(host, progress, state);
            }
        }
        Ok(())
    }

    async fn finish(
        &mut self,
        started: Instant,
        pacer: &StartPacer,
        mut state: RunState,
    ) -> Result<DrainReport, DrainError> {
        self.close_wave(&mut state);
        self.journal_start_limits().await?;
        self.journal_append(&JournalRecord::Finished).await?;
        state.report.elapsed = self.clock.now().saturating_duration_since(started);
        state.report.peak_starts_per_host_per_minute = pacer.peak;
        state.report.peak_concurrent_starts_per_host = pacer.peak_concurrent;
        if let Some(adaptive) = &self.adaptive {
            state.report.start_limits = adaptive.snapshot();
        }
        self.emit_summaries(true);
        self.emit(DrainEvent::Finished {
            hosts_drained: state.report.hosts_drained,
            elapsed: state.report.elapsed,
        });
        Ok(state.report)
    }

    /// Accounts for one finished start; returns the work to retry, if any.
    fn on_start_result(
        &mut self,
        mut item: Work,
        result: Result<(), FleetError>,
        state: &mut RunState,
    ) -> Result<Option<Work>, DrainError> {
        let error = match result {
            Ok(()) => {
                self.health.record_start(item.to, true);
                self.metrics.start(if item.repair {
                    StartOutcome::Repaired
                } else {
                    StartOutcome::Migrated
                });
                state.report.apps_migrated += 1;
                if item.late {
                    state.report.repairs += 1;
                }
                let wave = item.wave.or(state.open_wave());
                if let Some(report) = state.wave_of(wave) {
                    report.apps_migrated += 1;
                    report.repairs += u64::from(item.late);
                }
                let change = self
                    .adaptive
                    .as_mut()
                    .and_then(|a| a.on_success(item.to, item.concurrency));
                self.limit_changed(change);
                if let Some(probation) = self.config.probation {
                    let now = self.clock.now();
                    self.probation.push_back(Probation {
                        app: item.app,
                        host: item.to,
                        began: item.began,
                        ended: now,
                        concurrency: item.concurrency,
                        until: now + probation,
                        wave,
                    });
                }
                let to = item.to;
                self.emit_aggregated(
                    format!("app_migrated/{to}"),
                    DrainEvent::AppMigrated { app: item.app, to },
                );
                return Ok(None);
            }
            Err(error) => error,
        };
        self.metrics
            .start(if matches!(error, FleetError::StartFailed { .. }) {
                StartOutcome::Failed
            } else {
                StartOutcome::Rejected
            });
        if matches!(error, FleetError::StartFailed { .. }) {
            self.health.record_start(item.to, false);
            state.report.failed_starts += 1;
            if let Some(wave) = state.wave_of(item.wave) {
                wave.failed_starts += 1;
            }
            let change = self
                .adaptive
                .as_mut()
                .and_then(|a| a.on_failure(item.to, item.began, item.concurrency));
            self.limit_changed(change);
        }
        let host = item.to;
        self.emit_aggregated(
            format!("start_failed/{host}"),
            DrainEvent::StartFailed {
                app: item.app,
                host,
                attempt: item.attempt,
                error: error.to_string(),
            },
        );
        if !error.is_retryable() {
            // The receiver changed (full, cordoned): re-plan once in-flight
            // starts are done.
            tracing::info!(name = %self.name, app = %item.app, %error, "receiver unusable; re-planning");
            self.needs_replan = true;
            return Ok(None);
        }
        let seed = self.rng_seed ^ u64::from(item.app.0);
        let backoff = match item.backoff.as_mut() {
            Some(b) => b,
            None => item
                .backoff
                .insert(Backoff::with_seed(self.config.retry.clone(), seed)?),
        };
        let Some(delay) = backoff.next_delay() else {
            tracing::error!(name = %self.name, app = %item.app, attempts = item.attempt, "app out of start attempts");
            return Err(error.into());
        };
        item.not_before = self.clock.now() + delay;
        tracing::debug!(name = %self.name, app = %item.app, ?delay, "retrying start after backoff");
        Ok(Some(item))
    }

    fn start(&self, mut item: Work) -> StartFuture {
        item.attempt += 1;
        let fleet = Arc::clone(&self.fleet);
        Box::pin(async move {
            let result = fleet.migrate(item.app, item.to).await;
            (item, StartStep::Ended(result))
        })
    }
}
