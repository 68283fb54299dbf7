//! The February 2019 terminal table, with the physical limit next to the
//! times.

use std::fmt::Write as _;

use super::Feb2019Report;
use crate::replay::format::{minutes, row};

fn with_ratio(seconds: f64, ratio: Option<f64>) -> String {
    match ratio {
        Some(r) => format!("{} ({r:.2}x limit)", minutes(seconds)),
        None => minutes(seconds),
    }
}

fn share(part: u64, whole: u64) -> String {
    format!(
        "{part} ({:.2} %)",
        part as f64 * 100.0 / (whole.max(1)) as f64
    )
}

/// The February 2019 table: naive vs Breakwater, and the limit.
pub fn render(report: &Feb2019Report, seed: u64) -> String {
    let p = &report.params;
    let (n, b) = (&report.naive, &report.breakwater);
    let apps = p.apps();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "feb-2019 — {} old hosts x {} apps drained onto {} new hosts; starts take {} s; hidden: safe up to {} at once per host (seed {seed})",
        p.setup.old_hosts,
        p.setup.apps_per_host,
        p.setup.new_hosts,
        p.setup.start_s,
        p.world.safe_concurrent_starts
    );
    let _ = writeln!(
        out,
        "  limit: fastest safe drain ⌈{} apps per receiver / {}⌉ x {} s = {}; 0 corrupted starts",
        p.apps_per_receiver(),
        p.world.safe_concurrent_starts,
        p.setup.start_s,
        minutes(report.limits.drain_s)
    );
    row(&mut out, "", "naive", "breakwater");
    row(
        &mut out,
        "corrupted app starts (of apps moved)",
        &share(n.failed_starts, apps),
        &share(b.failed_starts, apps),
    );
    row(
        &mut out,
        "peak concurrent starts on one host",
        &n.peak_starts_per_host.to_string(),
        &b.peak_starts_per_host.to_string(),
    );
    row(
        &mut out,
        "learned start limit per receiver",
        "-",
        &b.learned_start_limit
            .map_or_else(|| "-".to_owned(), |l| l.to_string()),
    );
    row(
        &mut out,
        "peak old hosts draining at once",
        &n.peak_draining_hosts.to_string(),
        &b.peak_draining_hosts.to_string(),
    );
    row(
        &mut out,
        "pages to the on-call (raw monitors)",
        &format!("{} ({})", n.alerts_sent, n.alerts_raw - n.warnings_raw),
        &format!("{} ({})", b.alerts_sent, b.alerts_raw - b.warnings_raw),
    );
    row(
        &mut out,
        "warnings shown (raw)",
        &format!("{} ({})", n.warnings_sent, n.warnings_raw),
        &format!("{} ({})", b.warnings_sent, b.warnings_raw),
    );
    row(
        &mut out,
        "new fleet booted after (DNS throttled)",
        &format!("{} ({})", minutes(n.boot_s), n.dns_throttled),
        &format!("{} ({})", minutes(b.boot_s), b.dns_throttled),
    );
    row(
        &mut out,
        "allocations shed by the allocator",
        &n.alloc_shed.to_string(),
        &b.alloc_shed.to_string(),
    );
    row(
        &mut out,
        "old fleet drained after",
        &with_ratio(n.drain_s, n.ratio_to_limit.drain_s),
        &with_ratio(b.drain_s, b.ratio_to_limit.drain_s),
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
        &with_ratio(n.finish_s, n.ratio_to_limit.finish_s),
        &with_ratio(b.finish_s, b.ratio_to_limit.finish_s),
    );
    out
}
