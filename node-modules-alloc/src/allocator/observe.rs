//! What an allocator tells an operator: its metrics (feature `metrics`).
//!
//! Why its own file: every handle is registered once, when the allocator is built (or named),
//! and kept here, so that recording costs no key lookup; with the feature off this module
//! compiles to empty methods on a zero-sized type. The names, types and labels are the
//! node-modules-alloc table of `docs/metrics.md` (a test compares them).
//!
//! A library never installs a recorder: install one in the binary *before* building the
//! allocator (handles registered earlier go to the no-op recorder, as the `metrics` crate
//! documents).

use resilience_core::InstanceName;

use crate::error::Error;
use crate::manifest::{Manifest, ManifestEntry};
use crate::materialize::TreeStats;

use super::report::Outcome;

/// How an allocation ended (the `outcome` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AllocationEnd {
    Done(Outcome),
    Overloaded,
    InsufficientSpace,
    Failed,
}

impl AllocationEnd {
    pub(super) fn of<T>(result: &Result<T, Error>, outcome: impl Fn(&T) -> Outcome) -> Self {
        match result {
            Ok(value) => Self::Done(outcome(value)),
            Err(Error::Overloaded { .. }) => Self::Overloaded,
            Err(Error::InsufficientSpace { .. }) => Self::InsufficientSpace,
            Err(_) => Self::Failed,
        }
    }

    /// The label value (also the `outcome` field of the `allocate` span).
    pub(super) fn label(self) -> &'static str {
        match self {
            Self::Done(Outcome::Reused) => "reused",
            Self::Done(Outcome::Cloned) => "cloned",
            Self::Done(Outcome::Materialized) => "materialized",
            Self::Overloaded => "overloaded",
            Self::InsufficientSpace => "insufficient_space",
            Self::Failed => "error",
        }
    }
}

/// Where admission refused work (the `reason` label of the shed counter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Shed {
    /// The in-process limit's queue was full, or the wait timed out.
    Queue,
    /// The store-wide queue (shared by every process) was full, or the wait timed out.
    StoreQueue,
    /// Free space (minus what admitted allocations will write) below `min_free_bytes`.
    DiskSpace,
}

/// Which tree was found damaged and rebuilt (the `tree` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Rebuilt {
    App,
    Template,
}

/// How a verification ended (the `outcome` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum VerifyEnd {
    Ok,
    Problems,
    Repaired,
    Failed,
}

impl VerifyEnd {
    pub(super) fn label(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Problems => "problems",
            Self::Repaired => "repaired",
            Self::Failed => "error",
        }
    }
}

/// A start time, kept only when metrics are compiled in.
#[derive(Debug, Clone, Copy)]
pub(super) struct Started(#[cfg(feature = "metrics")] std::time::Instant);

impl Started {
    #[inline]
    pub(super) fn now() -> Self {
        Self(
            #[cfg(feature = "metrics")]
            std::time::Instant::now(),
        )
    }
}

/// The allocator's metric handles (nothing with the feature off).
#[derive(Debug)]
pub(super) struct Metrics {
    #[cfg(feature = "metrics")]
    handles: imp::Handles,
}

// Without the feature every method is empty: `self` is unused by design.
#[cfg_attr(not(feature = "metrics"), allow(clippy::unused_self))]
impl Metrics {
    pub(super) fn new(name: &InstanceName) -> Self {
        #[cfg(not(feature = "metrics"))]
        let _ = name;
        Self {
            #[cfg(feature = "metrics")]
            handles: imp::Handles::new(name),
        }
    }

    #[inline]
    pub(super) fn allocation(&self, end: AllocationEnd, started: Started) {
        #[cfg(feature = "metrics")]
        self.handles.allocation(end, started.0.elapsed());
        #[cfg(not(feature = "metrics"))]
        let _ = (end, started);
    }

    #[inline]
    pub(super) fn shed(&self, why: Shed) {
        #[cfg(feature = "metrics")]
        self.handles.shed(why);
        #[cfg(not(feature = "metrics"))]
        let _ = why;
    }

    #[inline]
    pub(super) fn queued(&self, delta: f64) {
        #[cfg(feature = "metrics")]
        self.handles.queued.increment(delta);
        #[cfg(not(feature = "metrics"))]
        let _ = delta;
    }

    #[inline]
    pub(super) fn in_flight(&self, delta: f64) {
        #[cfg(feature = "metrics")]
        self.handles.in_flight.increment(delta);
        #[cfg(not(feature = "metrics"))]
        let _ = delta;
    }

    #[inline]
    pub(super) fn template_built(&self, started: Started) {
        #[cfg(feature = "metrics")]
        {
            self.handles.template_builds.increment(1);
            self.handles
                .template_build_seconds
                .record(started.0.elapsed());
        }
        #[cfg(not(feature = "metrics"))]
        let _ = started;
    }

    #[inline]
    pub(super) fn template_reused(&self) {
        #[cfg(feature = "metrics")]
        self.handles.template_reuses.increment(1);
    }

    #[inline]
    pub(super) fn rebuilt(&self, tree: Rebuilt) {
        #[cfg(feature = "metrics")]
        match tree {
            Rebuilt::App => self.handles.rebuilt_app.increment(1),
            Rebuilt::Template => self.handles.rebuilt_template.increment(1),
        }
        #[cfg(not(feature = "metrics"))]
        let _ = tree;
    }

    /// Files placed into an app's tree (`stats`) and their bytes (from `manifest`).
    #[inline]
    pub(super) fn linked(&self, stats: &TreeStats, manifest: &Manifest) {
        #[cfg(feature = "metrics")]
        self.handles.linked(stats, manifest);
        #[cfg(not(feature = "metrics"))]
        let _ = (stats, manifest);
    }

    #[inline]
    pub(super) fn verified(&self, end: VerifyEnd, started: Started) {
        #[cfg(feature = "metrics")]
        self.handles.verified(end, started.0.elapsed());
        #[cfg(not(feature = "metrics"))]
        let _ = (end, started);
    }
}

/// Bytes of the regular files of a tree.
#[cfg_attr(not(feature = "metrics"), allow(dead_code))]
fn file_bytes(manifest: &Manifest) -> u64 {
    manifest
        .entries
        .iter()
        .map(|entry| match entry {
            ManifestEntry::File { size, .. } => *size,
            ManifestEntry::Symlink { .. } => 0,
        })
        .fold(0u64, u64::saturating_add)
}

#[cfg(feature = "metrics")]
mod imp {
    use std::time::Duration;

    use metrics::{Counter, Gauge, Histogram, counter, gauge, histogram};
    use resilience_core::InstanceName;

    use super::{AllocationEnd, Manifest, Outcome, Shed, TreeStats, VerifyEnd, file_bytes};

    const ALLOCATION_ENDS: [AllocationEnd; 6] = [
        AllocationEnd::Done(Outcome::Reused),
        AllocationEnd::Done(Outcome::Cloned),
        AllocationEnd::Done(Outcome::Materialized),
        AllocationEnd::Overloaded,
        AllocationEnd::InsufficientSpace,
        AllocationEnd::Failed,
    ];
    const VERIFY_ENDS: [VerifyEnd; 4] = [
        VerifyEnd::Ok,
        VerifyEnd::Problems,
        VerifyEnd::Repaired,
        VerifyEnd::Failed,
    ];

    #[derive(Debug)]
    pub(super) struct Handles {
        /// Per [`ALLOCATION_ENDS`] entry: count and duration.
        allocations: [(Counter, Histogram); 6],
        shed_queue: Counter,
        shed_store_queue: Counter,
        shed_disk_space: Counter,
        pub(super) queued: Gauge,
        pub(super) in_flight: Gauge,
        pub(super) template_builds: Counter,
        pub(super) template_build_seconds: Histogram,
        pub(super) template_reuses: Counter,
        pub(super) rebuilt_app: Counter,
        pub(super) rebuilt_template: Counter,
        linked_hardlink: Counter,
        linked_reflink: Counter,
        linked_copy: Counter,
        linked_bytes: Counter,
        /// Per [`VERIFY_ENDS`] entry.
        verifications: [Counter; 4],
        verify_seconds: Histogram,
    }

    impl Handles {
        pub(super) fn new(name: &InstanceName) -> Self {
            let name = name.as_str().to_owned();
            let shed = |reason: &'static str| counter!("breakwater_allocator_shed_total", "name" => name.clone(), "reason" => reason);
            let rebuilt = |tree: &'static str| counter!("breakwater_allocator_rebuilds_total", "name" => name.clone(), "tree" => tree);
            let linked = |method: &'static str| counter!("breakwater_allocator_linked_files_total", "name" => name.clone(), "method" => method);
            Self {
                allocations: ALLOCATION_ENDS.map(|end| {
                    (
                        counter!("breakwater_allocator_allocations_total", "name" => name.clone(), "outcome" => end.label()),
                        histogram!("breakwater_allocator_allocation_duration_seconds", "name" => name.clone(), "outcome" => end.label()),
                    )
                }),
                shed_queue: shed("queue"),
                shed_store_queue: shed("store_queue"),
                shed_disk_space: shed("disk_space"),
                queued: gauge!("breakwater_allocator_queued", "name" => name.clone()),
                in_flight: gauge!("breakwater_allocator_in_flight", "name" => name.clone()),
                template_builds: counter!("breakwater_allocator_template_builds_total", "name" => name.clone()),
                template_build_seconds: histogram!("breakwater_allocator_template_build_duration_seconds", "name" => name.clone()),
                template_reuses: counter!("breakwater_allocator_template_reuses_total", "name" => name.clone()),
                rebuilt_app: rebuilt("app"),
                rebuilt_template: rebuilt("template"),
                linked_hardlink: linked("hardlink"),
                linked_reflink: linked("reflink"),
                linked_copy: linked("copy"),
                linked_bytes: counter!("breakwater_allocator_linked_bytes_total", "name" => name.clone()),
                verifications: VERIFY_ENDS.map(|end| {
                    counter!("breakwater_allocator_verifications_total", "name" => name.clone(), "outcome" => end.label())
                }),
                verify_seconds: histogram!("breakwater_allocator_verify_duration_seconds", "name" => name.clone()),
            }
        }

        pub(super) fn allocation(&self, end: AllocationEnd, elapsed: Duration) {
            let index = ALLOCATION_ENDS.iter().position(|e| *e == end);
            if let Some((count, seconds)) = index.and_then(|i| self.allocations.get(i)) {
                count.increment(1);
                seconds.record(elapsed);
            }
        }

        pub(super) fn shed(&self, why: Shed) {
            match why {
                Shed::Queue => &self.shed_queue,
                Shed::StoreQueue => &self.shed_store_queue,
                Shed::DiskSpace => &self.shed_disk_space,
            }
            .increment(1);
        }

        pub(super) fn linked(&self, stats: &TreeStats, manifest: &Manifest) {
            self.linked_hardlink.increment(stats.hardlinks as u64);
            self.linked_reflink.increment(stats.reflinks as u64);
            self.linked_copy.increment(stats.copies as u64);
            self.linked_bytes.increment(file_bytes(manifest));
        }

        pub(super) fn verified(&self, end: VerifyEnd, elapsed: Duration) {
            let index = VERIFY_ENDS.iter().position(|e| *e == end);
            if let Some(count) = index.and_then(|i| self.verifications.get(i)) {
                count.increment(1);
            }
            self.verify_seconds.record(elapsed);
        }
    }
}
