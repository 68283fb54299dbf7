//! [`DrainReport`]: what a drain run did.

use std::time::Duration;

use serde::{Deserialize, Serialize};

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
}
