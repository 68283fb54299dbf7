//! [`DrainReport`]: what a drain run did.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::adaptive::ClassStartLimit;
use crate::fleet::HostId;
use crate::plan::DrainPlan;

/// What a drain run did.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DrainReport {
    /// Hosts drained by this run.
    pub hosts_drained: usize,
    /// Apps started successfully on receivers (including restarts).
    pub apps_migrated: u64,
    /// App starts that failed.
    pub failed_starts: u64,
    /// Waves started by this run.
    pub waves: u32,
    /// Times the gate paused the drain.
    pub pauses: u32,
    /// Whether this run resumed a journaled drain.
    pub resumed: bool,
    /// Most starts into one receiver within 60 s, as paced by this run.
    pub peak_starts_per_host_per_minute: u32,
    /// Simulated or real time taken.
    #[serde(with = "humantime_serde")]
    pub elapsed: Duration,
    /// Dry run: the wave that would start.
    pub plan: Option<DrainPlan>,
    /// Most starts in progress on one receiver at once, as run by this run.
    #[serde(default)]
    pub peak_concurrent_starts_per_host: u32,
    /// Starts that succeeded but whose app turned unhealthy within the
    /// probation window (`DrainConfig::probation`).
    #[serde(default)]
    pub late_failures: u64,
    /// Apps restarted after a late failure (the restart succeeded).
    #[serde(default)]
    pub repairs: u64,
    /// From the start of the run until the last target host was drained
    /// (before the last probation ended). `None` if none was.
    #[serde(default, with = "humantime_serde::option")]
    pub last_host_drained_after: Option<Duration>,
    /// The learned start concurrency per receiver class at the end
    /// (`DrainConfig::adaptive_starts`; empty without it).
    #[serde(default)]
    pub start_limits: Vec<ClassStartLimit>,
    /// One entry per wave started by this run.
    #[serde(default)]
    pub wave_reports: Vec<WaveReport>,
}

/// What one wave did. Failures, late failures and repairs are counted in
/// the wave that moved the app, even when found after the wave ended
/// (its `DrainEvent::WaveFinished` may come before its last late failure).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WaveReport {
    /// Wave number (from 1, as journaled).
    pub wave: u32,
    /// Hosts the wave started draining.
    pub hosts: Vec<HostId>,
    /// Apps it planned to move.
    pub apps: usize,
    /// When it started, from the start of the run.
    #[serde(with = "humantime_serde")]
    pub started_after: Duration,
    /// Starts that succeeded.
    pub apps_migrated: u64,
    /// Starts that failed at once.
    pub failed_starts: u64,
    /// Starts that failed late (during probation).
    pub late_failures: u64,
    /// Late-failed apps restarted successfully.
    pub repairs: u64,
    /// The learned start concurrency per receiver class when the wave
    /// ended (or when the run did).
    pub start_limits: Vec<ClassStartLimit>,
}
