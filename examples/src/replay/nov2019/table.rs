//! The November 2019 terminal table.

use std::fmt::Write as _;

use super::{Nov2019Outcome, Nov2019Report};
use crate::replay::format::{percent, seconds_or_never};

fn ratio(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_owned(), |r| format!("{r:.2}x"))
}

fn line(out: &mut String, label: &str, limit: &str, values: &[String]) {
    let _ = write!(out, "  {label:<34} {limit:>10}");
    for v in values {
        let _ = write!(out, " {v:>12}");
    }
    let _ = writeln!(out);
}

/// The November 2019 table: the four sides next to the limits, then the
/// ablation.
#[allow(clippy::too_many_lines)] // one row per reported figure
pub fn render(report: &Nov2019Report, seed: u64) -> String {
    let p = &report.params.setup;
    let l = &report.limits;
    let sides = report.sides();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "nov-2019 — bad release at {} s, revert at {} s ({:.0} min later), {:.1} h simulated; {} proxies, {} servers, {} req/s (seed {seed})",
        p.deploy_at_s,
        p.revert_at_s,
        (p.revert_at_s - p.deploy_at_s) as f64 / 60.0,
        p.horizon_s as f64 / 3_600.0,
        p.proxies,
        p.servers,
        p.client_rps
    );
    let names: Vec<String> = sides.iter().map(|(n, _)| (*n).to_owned()).collect();
    line(&mut out, "", "limit", &names);
    let each = |f: &dyn Fn(&Nov2019Outcome) -> String| -> Vec<String> {
        sides.iter().map(|(_, o)| f(o)).collect()
    };
    line(
        &mut out,
        "load amplification during outage",
        &format!("{:.2}x", l.amplification),
        &each(&|o| format!("{:.2}x", o.amplification)),
    );
    line(
        &mut out,
        "  ratio to limit",
        "",
        &each(&|o| ratio(o.ratio_to_limit.amplification)),
    );
    line(
        &mut out,
        "goodput (whole run)",
        &percent(l.goodput),
        &each(&|o| percent(o.goodput)),
    );
    line(
        &mut out,
        "  ratio to limit (ceiling/goodput)",
        "",
        &each(&|o| ratio(o.ratio_to_limit.goodput)),
    );
    line(
        &mut out,
        "recovery after the revert",
        &seconds_or_never(l.recovery_s),
        &each(&|o| seconds_or_never(o.recovery_s)),
    );
    line(
        &mut out,
        "  ratio to limit",
        "",
        &each(&|o| ratio(o.ratio_to_limit.recovery_s)),
    );
    line(
        &mut out,
        "servers on the bad release (peak)",
        "",
        &each(&|o| percent(o.peak_bad_servers_share)),
    );
    line(
        &mut out,
        "attempts hitting the bad release",
        "",
        &each(&|o| percent(o.bad_release_share)),
    );
    line(
        &mut out,
        "server out-of-memory crashes",
        "",
        &each(&|o| o.crashes.to_string()),
    );
    line(
        &mut out,
        "attempts sent to servers",
        "",
        &each(&|o| o.server_attempts.to_string()),
    );
    line(
        &mut out,
        "work done for abandoned attempts",
        "",
        &each(&|o| o.wasted_work.to_string()),
    );
    line(
        &mut out,
        "shed fast by servers (503)",
        "",
        &each(&|o| o.shed.to_string()),
    );
    line(
        &mut out,
        "  of which by the memory guard",
        "",
        &each(&|o| o.memory_shed.to_string()),
    );
    line(
        &mut out,
        "retries denied by budget",
        "",
        &each(&|o| o.budget_denied.to_string()),
    );
    line(
        &mut out,
        "failed fast at proxy",
        "",
        &each(&|o| o.failed_fast.to_string()),
    );
    line(
        &mut out,
        "turned away by the load balancer",
        "",
        &each(&|o| o.diverted.to_string()),
    );
    let _ = writeln!(
        out,
        "  staged rollout: {}",
        if report.staged.rollout_aborted {
            "the health gate aborted it and rolled the canary back"
        } else {
            "not aborted"
        }
    );
    if !report.ablation.is_empty() {
        let _ = writeln!(
            out,
            "\n  ablation: naive plus one mechanism (runs end {} s after the revert)",
            report.params.ablation_horizon_s() - p.revert_at_s
        );
        let _ = writeln!(
            out,
            "  {:<34} {:>14} {:>14} {:>14}",
            "mechanism", "amplification", "goodput", "recovery"
        );
        for r in &report.ablation {
            let o = &r.outcome;
            let _ = writeln!(
                out,
                "  {:<34} {:>14} {:>14} {:>14}",
                r.mechanism,
                format!("{:.2}x", o.amplification),
                percent(o.goodput),
                seconds_or_never(o.recovery_s)
            );
        }
    }
    out
}
