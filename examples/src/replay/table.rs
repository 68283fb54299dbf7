//! Side-by-side terminal tables of a replay.

use std::fmt::Write as _;

use super::feb2019::Feb2019Report;
use super::nov2019::{Nov2019Outcome, Nov2019Report};

/// Formats `Option<f64>` seconds as `"25 s"` or `"never"`.
pub fn seconds_or_never(value: Option<f64>) -> String {
    value.map_or_else(|| "never".to_owned(), |s| format!("{s:.0} s"))
}

fn percent(value: f64) -> String {
    format!("{:.1} %", value * 100.0)
}

fn row(out: &mut String, label: &str, naive: &str, breakwater: &str) {
    let _ = writeln!(out, "  {label:<34} {naive:>14} {breakwater:>14}");
}

/// The November 2019 table: naive vs Breakwater, then the ablation.
pub fn nov2019(report: &Nov2019Report, seed: u64) -> String {
    let p = &report.params;
    let (n, b) = (&report.naive, &report.breakwater);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "nov-2019 — bad release at {} s, revert at {} s, {} s simulated; {} proxies, {} servers, {} req/s (seed {seed})",
        p.deploy_at_s, p.revert_at_s, p.horizon_s, p.proxies, p.servers, p.client_rps
    );
    row(&mut out, "", "naive", "breakwater");
    row(
        &mut out,
        "load amplification during outage",
        &format!("{:.2}x", n.amplification),
        &format!("{:.2}x", b.amplification),
    );
    row(
        &mut out,
        "goodput (whole run)",
        &percent(n.goodput),
        &percent(b.goodput),
    );
    row(
        &mut out,
        "recovery after the revert",
        &seconds_or_never(n.recovery_s),
        &seconds_or_never(b.recovery_s),
    );
    row(
        &mut out,
        "server out-of-memory crashes",
        &n.crashes.to_string(),
        &b.crashes.to_string(),
    );
    row(
        &mut out,
        "attempts sent to servers",
        &n.server_attempts.to_string(),
        &b.server_attempts.to_string(),
    );
    row(
        &mut out,
        "work done for abandoned attempts",
        &n.wasted_work.to_string(),
        &b.wasted_work.to_string(),
    );
    row(
        &mut out,
        "shed fast by servers (503)",
        &n.shed.to_string(),
        &b.shed.to_string(),
    );
    row(
        &mut out,
        "retries denied by budget",
        &n.budget_denied.to_string(),
        &b.budget_denied.to_string(),
    );
    row(
        &mut out,
        "failed fast at proxy",
        &n.failed_fast.to_string(),
        &b.failed_fast.to_string(),
    );
    if !report.ablation.is_empty() {
        let _ = writeln!(out, "\n  ablation: naive plus one mechanism");
        let _ = writeln!(
            out,
            "  {:<34} {:>14} {:>14} {:>14}",
            "mechanism", "amplification", "goodput", "recovery"
        );
        let mut line = |name: &str, o: &Nov2019Outcome| {
            let _ = writeln!(
                out,
                "  {name:<34} {:>14} {:>14} {:>14}",
                format!("{:.2}x", o.amplification),
                percent(o.goodput),
                seconds_or_never(o.recovery_s)
            );
        };
        line("(none: naive)", n);
        for r in &report.ablation {
            line(r.mechanism, &r.outcome);
        }
        line("(all: breakwater)", b);
    }
    out
}

/// The February 2019 table: naive vs Breakwater.
pub fn feb2019(report: &Feb2019Report, seed: u64) -> String {
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

fn minutes(seconds: f64) -> String {
    if seconds.is_finite() {
        format!("{:.1} min", seconds / 60.0)
    } else {
        "never".to_owned()
    }
}
