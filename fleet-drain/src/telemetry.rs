//! Metric handles of the [`DrainController`](crate::drain::DrainController) and the
//! [`Rollout`](crate::rollout::Rollout) (feature `metrics`).
//!
//! Handles are registered once, when the instance first runs (so that `named` does not leave
//! a stray unnamed series behind), and kept in it: the drain's loops do no key lookup. Install
//! the recorder before that point (the `metrics` crate's own advice): handles registered
//! without a recorder record nowhere.
//!
//! Without the feature every type here is zero-sized and every method an empty inline
//! function, so no metrics code is compiled in. The names are listed in `docs/metrics.md`.

// Without the feature the methods are empty: their arguments go unused.
#![cfg_attr(
    not(feature = "metrics"),
    allow(
        clippy::unused_self,
        clippy::needless_pass_by_ref_mut,
        unused_variables
    )
)]

#[cfg(feature = "metrics")]
use std::collections::BTreeMap;
#[cfg(feature = "metrics")]
use std::sync::OnceLock;

use resilience_core::InstanceName;

use crate::drain::ClassStartLimit;

#[cfg(feature = "metrics")]
use metrics::{Counter, Gauge};

/// A health-gate verdict that holds a drain or rollout back (counted by `verdict`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Held {
    /// The gate paused the work (counted when the pause begins).
    Pause,
    /// The gate aborted it.
    Abort,
}

/// The kind of a completed rollout step (the `step` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StepKind {
    /// A canary step.
    Canary,
    /// A wave step.
    Wave,
    /// A bake step.
    Bake,
    /// Start without traffic.
    StartWithoutTraffic,
    /// Shift traffic.
    ShiftTraffic,
}

/// What became of one app start on a receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StartOutcome {
    /// A moved app started on its receiver.
    Migrated,
    /// An app restarted in place (late failure or leftover of an earlier run).
    Repaired,
    /// The start failed (retried with backoff).
    Failed,
    /// The receiver refused the start (full, cordoned): re-planned.
    Rejected,
}

/// The drain controller's handles.
#[derive(Debug, Default)]
pub(crate) struct DrainMetrics {
    #[cfg(feature = "metrics")]
    name: InstanceName,
    #[cfg(feature = "metrics")]
    handles: OnceLock<DrainHandles>,
}

#[cfg(feature = "metrics")]
#[derive(Debug)]
struct DrainHandles {
    name: InstanceName,
    hosts_draining: Gauge,
    apps_moving: Gauge,
    busiest_receiver: Gauge,
    waves_started: Counter,
    waves_completed: Counter,
    hosts_drained: Counter,
    migrated: Counter,
    repaired: Counter,
    failed: Counter,
    rejected: Counter,
    late_failures: Counter,
    pauses: Counter,
    aborts: Counter,
    limit_increases: Counter,
    limit_cuts: Counter,
    receivers_excluded: Counter,
    journal_ok: Counter,
    journal_failed: Counter,
    /// Learned start concurrency per receiver class; classes are few (capacity × version),
    /// registered when first seen.
    classes: BTreeMap<String, Gauge>,
}

impl DrainMetrics {
    /// Handles labelled `name`, registered with the recorder in scope at the first record
    /// (or [`Self::register`]).
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn new(name: &InstanceName) -> Self {
        Self {
            #[cfg(feature = "metrics")]
            name: name.clone(),
            #[cfg(feature = "metrics")]
            handles: OnceLock::new(),
        }
    }

    /// Registers the handles now, if not done yet.
    #[inline]
    pub(crate) fn register(&self) {
        #[cfg(feature = "metrics")]
        self.h();
    }

    #[cfg(feature = "metrics")]
    #[inline]
    fn h(&self) -> &DrainHandles {
        self.handles
            .get_or_init(|| DrainHandles::register(&self.name))
    }
}

#[cfg(feature = "metrics")]
impl DrainHandles {
    fn register(name: &InstanceName) -> Self {
        {
            let n = name.as_str().to_owned();
            let outcome = |o: &'static str| metrics::counter!("breakwater_drain_app_starts_total", "name" => n.clone(), "outcome" => o);
            let verdict = |v: &'static str| metrics::counter!("breakwater_drain_gate_verdicts_total", "name" => n.clone(), "verdict" => v);
            let change = |d: &'static str| metrics::counter!("breakwater_drain_start_limit_changes_total", "name" => n.clone(), "direction" => d);
            let journal = |o: &'static str| metrics::counter!("breakwater_drain_journal_appends_total", "name" => n.clone(), "outcome" => o);
            DrainHandles {
                name: name.clone(),
                hosts_draining: metrics::gauge!("breakwater_drain_hosts_draining", "name" => n.clone()),
                apps_moving: metrics::gauge!("breakwater_drain_apps_moving", "name" => n.clone()),
                busiest_receiver: metrics::gauge!(
                    "breakwater_drain_busiest_receiver_starts_per_minute",
                    "name" => n.clone()
                ),
                waves_started: metrics::counter!("breakwater_drain_waves_started_total", "name" => n.clone()),
                waves_completed: metrics::counter!(
                    "breakwater_drain_waves_completed_total",
                    "name" => n.clone()
                ),
                hosts_drained: metrics::counter!("breakwater_drain_hosts_drained_total", "name" => n.clone()),
                migrated: outcome("migrated"),
                repaired: outcome("repaired"),
                failed: outcome("failed"),
                rejected: outcome("rejected"),
                late_failures: metrics::counter!(
                    "breakwater_drain_late_failures_total",
                    "name" => n.clone()
                ),
                pauses: verdict("pause"),
                aborts: verdict("abort"),
                limit_increases: change("increase"),
                limit_cuts: change("cut"),
                receivers_excluded: metrics::counter!(
                    "breakwater_drain_receivers_excluded_total",
                    "name" => n.clone()
                ),
                journal_ok: journal("ok"),
                journal_failed: journal("failed"),
                classes: BTreeMap::new(),
            }
        }
    }
}

impl DrainMetrics {
    #[inline]
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn hosts_draining(&self, hosts: usize) {
        #[cfg(feature = "metrics")]
        {
            let m = self.h();
            m.hosts_draining.set(hosts as f64);
        }
    }

    #[inline]
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn apps_moving(&self, apps: usize) {
        #[cfg(feature = "metrics")]
        {
            let m = self.h();
            m.apps_moving.set(apps as f64);
        }
    }

    #[inline]
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn busiest_receiver(&self, starts_per_minute: u32) {
        #[cfg(feature = "metrics")]
        {
            let m = self.h();
            m.busiest_receiver.set(f64::from(starts_per_minute));
        }
    }

    #[inline]
    pub(crate) fn wave_started(&self) {
        #[cfg(feature = "metrics")]
        {
            let m = self.h();
            m.waves_started.increment(1);
        }
    }

    #[inline]
    pub(crate) fn wave_completed(&self) {
        #[cfg(feature = "metrics")]
        {
            let m = self.h();
            m.waves_completed.increment(1);
        }
    }

    #[inline]
    pub(crate) fn host_drained(&self) {
        #[cfg(feature = "metrics")]
        {
            let m = self.h();
            m.hosts_drained.increment(1);
        }
    }

    #[inline]
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn start(&self, outcome: StartOutcome) {
        #[cfg(feature = "metrics")]
        {
            let m = self.h();
            match outcome {
                StartOutcome::Migrated => &m.migrated,
                StartOutcome::Repaired => &m.repaired,
                StartOutcome::Failed => &m.failed,
                StartOutcome::Rejected => &m.rejected,
            }
            .increment(1);
        }
    }

    #[inline]
    pub(crate) fn late_failure(&self) {
        #[cfg(feature = "metrics")]
        {
            let m = self.h();
            m.late_failures.increment(1);
        }
    }

    /// A pause (counted when it begins) or an abort.
    #[inline]
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn verdict(&self, verdict: Held) {
        #[cfg(feature = "metrics")]
        {
            let m = self.h();
            match verdict {
                Held::Pause => m.pauses.increment(1),
                Held::Abort => m.aborts.increment(1),
            }
        }
    }

    #[inline]
    pub(crate) fn receiver_excluded(&self) {
        #[cfg(feature = "metrics")]
        {
            let m = self.h();
            m.receivers_excluded.increment(1);
        }
    }

    #[inline]
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn journal_append(&self, ok: bool) {
        #[cfg(feature = "metrics")]
        {
            let m = self.h();
            if ok { &m.journal_ok } else { &m.journal_failed }.increment(1);
        }
    }

    /// A learned limit moved from `from` to `to`.
    #[inline]
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn limit_changed(&self, from: u32, to: u32) {
        #[cfg(feature = "metrics")]
        {
            let m = self.h();
            if to > from {
                m.limit_increases.increment(1);
            } else if to < from {
                m.limit_cuts.increment(1);
            }
        }
    }

    /// Sets the learned start concurrency of every class (registering new classes).
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn start_limits(&mut self, limits: &[ClassStartLimit]) {
        #[cfg(feature = "metrics")]
        {
            self.h();
            let Some(m) = self.handles.get_mut() else {
                return;
            };
            for limit in limits {
                let class = limit.class.to_string();
                let name = &m.name;
                let gauge = m.classes.entry(class).or_insert_with_key(|class| {
                    metrics::gauge!(
                        "breakwater_drain_start_concurrency",
                        "name" => name.as_str().to_owned(),
                        "class" => class.clone()
                    )
                });
                gauge.set(f64::from(limit.limit));
            }
        }
    }
}

/// The rollout's handles.
#[derive(Debug, Default)]
pub(crate) struct RolloutMetrics {
    #[cfg(feature = "metrics")]
    name: InstanceName,
    #[cfg(feature = "metrics")]
    handles: OnceLock<RolloutHandles>,
}

#[cfg(feature = "metrics")]
#[derive(Debug)]
struct RolloutHandles {
    canary: Counter,
    wave: Counter,
    bake: Counter,
    start_without_traffic: Counter,
    shift_traffic: Counter,
    hosts_changed: Gauge,
    pauses: Counter,
    aborts: Counter,
    rollbacks: Counter,
    changes_undone: Counter,
}

impl RolloutMetrics {
    /// Handles labelled `name`, registered with the recorder in scope at the first record
    /// (or [`Self::register`]).
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn new(name: &InstanceName) -> Self {
        Self {
            #[cfg(feature = "metrics")]
            name: name.clone(),
            #[cfg(feature = "metrics")]
            handles: OnceLock::new(),
        }
    }

    /// Registers the handles now, if not done yet.
    #[inline]
    pub(crate) fn register(&self) {
        #[cfg(feature = "metrics")]
        self.h();
    }

    #[cfg(feature = "metrics")]
    #[inline]
    fn h(&self) -> &RolloutHandles {
        self.handles
            .get_or_init(|| RolloutHandles::register(&self.name))
    }
}

#[cfg(feature = "metrics")]
impl RolloutHandles {
    fn register(name: &InstanceName) -> Self {
        {
            let n = name.as_str().to_owned();
            let step = |s: &'static str| metrics::counter!("breakwater_rollout_steps_total", "name" => n.clone(), "step" => s);
            let verdict = |v: &'static str| metrics::counter!("breakwater_rollout_gate_verdicts_total", "name" => n.clone(), "verdict" => v);
            RolloutHandles {
                canary: step("canary"),
                wave: step("wave"),
                bake: step("bake"),
                start_without_traffic: step("start_without_traffic"),
                shift_traffic: step("shift_traffic"),
                hosts_changed: metrics::gauge!("breakwater_rollout_hosts_changed", "name" => n.clone()),
                pauses: verdict("pause"),
                aborts: verdict("abort"),
                rollbacks: metrics::counter!("breakwater_rollout_rollbacks_total", "name" => n.clone()),
                changes_undone: metrics::counter!(
                    "breakwater_rollout_changes_undone_total",
                    "name" => n.clone()
                ),
            }
        }
    }
}

impl RolloutMetrics {
    #[inline]
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn step_completed(&self, step: StepKind) {
        #[cfg(feature = "metrics")]
        {
            let m = self.h();
            match step {
                StepKind::Canary => &m.canary,
                StepKind::Wave => &m.wave,
                StepKind::Bake => &m.bake,
                StepKind::StartWithoutTraffic => &m.start_without_traffic,
                StepKind::ShiftTraffic => &m.shift_traffic,
            }
            .increment(1);
        }
    }

    #[inline]
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn hosts_changed(&self, hosts: usize) {
        #[cfg(feature = "metrics")]
        {
            let m = self.h();
            m.hosts_changed.set(hosts as f64);
        }
    }

    #[inline]
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn verdict(&self, verdict: Held) {
        #[cfg(feature = "metrics")]
        {
            let m = self.h();
            match verdict {
                Held::Pause => m.pauses.increment(1),
                Held::Abort => m.aborts.increment(1),
            }
        }
    }

    #[inline]
    pub(crate) fn rollback(&self) {
        #[cfg(feature = "metrics")]
        {
            let m = self.h();
            m.rollbacks.increment(1);
        }
    }

    #[inline]
    pub(crate) fn change_undone(&self) {
        #[cfg(feature = "metrics")]
        {
            let m = self.h();
            m.changes_undone.increment(1);
        }
    }
}
