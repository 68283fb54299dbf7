//! The February 2019 terminal table.

use std::fmt::Write as _;

use super::Feb2019Report;
use crate::replay::format::{minutes, row};

/// The February 2019 table: naive vs Breakwater.
pub fn render(report: &Feb2019Report, seed: u64) -> String {
    let p = &report.params;
    let (n, b) = (&report.naive, &report.breakwater);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "feb-2019 — {} old hosts x {} apps drained onto {} new hosts; starts take {} s, safe up to {} at once per host (seed {seed})",
        p.old_hosts, p.apps_per_host, p.new_hosts, p.start_s, p.safe_concurrent_starts
    );
    row(&mut out, "", "naive", "breakwater");
    row(
        &mut out,
        "failed (corrupted) app starts",
        &n.failed_starts.to_string(),
        &b.failed_starts.to_string(),
    );
    row(
        &mut out,
        "peak concurrent starts on one host",
        &n.peak_starts_per_host.to_string(),
        &b.peak_starts_per_host.to_string(),
    );
    row(
        &mut out,
        "peak old hosts draining at once",
        &n.peak_draining_hosts.to_string(),
        &b.peak_draining_hosts.to_string(),
    );
    row(
        &mut out,
        "alerts raised by raw monitors",
        &n.alerts_raw.to_string(),
        &b.alerts_raw.to_string(),
    );
    row(
        &mut out,
        "alerts sent to the on-call",
        &n.alerts_sent.to_string(),
        &b.alerts_sent.to_string(),
    );
    row(
        &mut out,
        "old fleet drained after",
        &minutes(n.drain_s),
        &minutes(b.drain_s),
    );
    row(
        &mut out,
        "apps corrupted when the drain ended",
        &n.corrupted_after_drain.to_string(),
        &b.corrupted_after_drain.to_string(),
    );
    row(
        &mut out,
        "every app healthy after (finish)",
        &minutes(n.finish_s),
        &minutes(b.finish_s),
    );
    out
}
