//! The November 2019 terminal table.

use std::fmt::Write as _;

use super::{Nov2019Outcome, Nov2019Report};
use crate::replay::format::{percent, row, seconds_or_never};

/// The November 2019 table: naive vs Breakwater, then the ablation.
pub fn render(report: &Nov2019Report, seed: u64) -> String {
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
