//! Counters and gauges of an allocator: [`AllocatorStats`] and the atomics behind it.
//!
//! Why: an operator watching a surge wants to see how many materializations run, how many
//! were shed or rebuilt. Relaxed atomics: these are statistics, the bound itself is enforced
//! by the limit's permits.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use super::observe::Metrics;

/// Counters and gauges of an allocator.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AllocatorStats {
    /// Materializations running now.
    pub materializing: usize,
    /// Highest `materializing` seen.
    pub peak_materializing: usize,
    /// Templates built by this allocator.
    pub templates_built: u64,
    /// Allocations that cloned a template into an app.
    pub clones: u64,
    /// Allocations answered by an existing valid tree.
    pub reused: u64,
    /// Allocations refused with `Overloaded`.
    pub shed: u64,
    /// Trees (templates or app trees) found invalid and rebuilt.
    pub rebuilt: u64,
}

#[derive(Debug, Default)]
pub(super) struct Gauges {
    pub(super) materializing: AtomicUsize,
    pub(super) peak: AtomicUsize,
    pub(super) templates_built: AtomicU64,
    pub(super) clones: AtomicU64,
    pub(super) reused: AtomicU64,
    pub(super) shed: AtomicU64,
    pub(super) rebuilt: AtomicU64,
}

/// Decrements the materializing gauge (and the `in_flight` metric) on drop.
pub(super) struct Materializing<'a>(&'a Gauges, &'a Metrics);

impl<'a> Materializing<'a> {
    pub(super) fn enter(gauges: &'a Gauges, metrics: &'a Metrics) -> Self {
        // Relaxed: the gauge is statistics; the bound itself is enforced by the limit's permits.
        let now = gauges.materializing.fetch_add(1, Ordering::Relaxed) + 1;
        gauges.peak.fetch_max(now, Ordering::Relaxed);
        metrics.in_flight(1.0);
        Self(gauges, metrics)
    }
}

impl Drop for Materializing<'_> {
    fn drop(&mut self) {
        self.0.materializing.fetch_sub(1, Ordering::Relaxed);
        self.1.in_flight(-1.0);
    }
}

/// Counts a caller waiting for admission (the `queued` metric) until dropped.
pub(super) struct Queued<'a>(&'a Metrics);

impl<'a> Queued<'a> {
    pub(super) fn enter(metrics: &'a Metrics) -> Self {
        metrics.queued(1.0);
        Self(metrics)
    }
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.0.queued(-1.0);
    }
}
