//! [`DrainEvent`]: what a drain tells its subscribers.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::fleet::{AppId, HostId};
use crate::health::HealthFigures;

/// Something a drain did, for subscribers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum DrainEvent {
    /// The drain started (or resumed from its journal).
    Started {
        /// Hosts to drain.
        targets: usize,
        /// Resumed from a journal.
        resumed: bool,
    },
    /// A wave started draining hosts.
    WaveStarted {
        /// Wave number.
        wave: u32,
        /// Hosts it started draining.
        hosts: Vec<HostId>,
        /// Apps to move in the wave (including hosts still draining).
        apps: usize,
    },
    /// An app started on its receiver.
    AppMigrated {
        /// The app.
        app: AppId,
        /// The receiver.
        to: HostId,
    },
    /// An app's start failed (it will be retried if attempts remain).
    StartFailed {
        /// The app.
        app: AppId,
        /// The receiver.
        host: HostId,
        /// Attempt number, from 1.
        attempt: u32,
        /// The error.
        error: String,
    },
    /// A receiver failed too many starts: its remaining apps were
    /// re-planned onto other receivers.
    ReceiverExcluded {
        /// The receiver.
        host: HostId,
        /// Its start failures per minute.
        start_failures_per_minute: f64,
        /// Apps moved to other receivers.
        moved: usize,
    },
    /// A start succeeded but its app turned unhealthy (or failed) within
    /// the probation window: counted against the receiver, restarted there.
    LateFailure {
        /// The app.
        app: AppId,
        /// The receiver that started it.
        host: HostId,
        /// The app's state when found.
        state: crate::fleet::AppState,
        /// Time from the end of its start to the detection.
        #[serde(with = "humantime_serde")]
        after: Duration,
    },
    /// The learned start concurrency of a receiver class changed.
    StartLimitChanged {
        /// The class (`capacity-300/v1`).
        class: String,
        /// The previous limit.
        from: u32,
        /// The new limit.
        to: u32,
    },
    /// A wave's apps have all moved (its hosts are drained); figures in
    /// the report's `wave_reports`.
    WaveFinished {
        /// Wave number.
        wave: u32,
        /// Starts that failed at once during the wave.
        failed_starts: u64,
        /// Late failures detected during the wave.
        late_failures: u64,
        /// Repairs done during the wave.
        repairs: u64,
    },
    /// A host is empty and drained.
    HostDrained {
        /// The host.
        host: HostId,
    },
    /// The health gate paused the drain.
    Paused {
        /// Health at the time.
        health: HealthFigures,
        /// Which threshold was crossed.
        reason: String,
    },
    /// Health recovered; the drain goes on.
    Resumed {
        /// Health at the time.
        health: HealthFigures,
        /// How long it was paused.
        #[serde(with = "humantime_serde")]
        paused_for: Duration,
    },
    /// The drain was aborted by the gate.
    Aborted {
        /// Why, with the health figures.
        reason: String,
    },
    /// Every target is drained.
    Finished {
        /// Hosts drained by this run.
        hosts_drained: usize,
        /// Time taken by this run.
        #[serde(with = "humantime_serde")]
        elapsed: Duration,
    },
    /// Events of one kind suppressed within a window.
    Aggregated {
        /// What the suppressed events were (e.g. `"start_failed/host-3"`).
        fingerprint: String,
        /// How many were suppressed.
        suppressed: u64,
        /// The last of them.
        last: Box<DrainEvent>,
    },
}
