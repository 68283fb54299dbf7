//! The sweep's terminal table: per metric, a grid of Breakwater / naive and
//! Breakwater / limit medians.

use std::fmt::Write as _;

use super::{Cell, MetricSummary, SweepReport};
use crate::replay::metric::Better;

/// Rows of a grid (every axis but the last) and its columns (the last).
pub(super) fn layout(report: &SweepReport) -> (Vec<Vec<&Cell>>, Vec<String>) {
    let columns = report
        .axes
        .last()
        .map(|a| a.values.clone())
        .unwrap_or_default();
    let width = columns.len().max(1);
    let rows = report
        .cells
        .chunks(width)
        .map(|row| row.iter().collect())
        .collect();
    (rows, columns)
}

/// The label of a row: the values of every axis but the last.
pub(super) fn row_label(report: &SweepReport, cell: &Cell) -> String {
    let n = report.axes.len().saturating_sub(1);
    report
        .axes
        .iter()
        .take(n)
        .zip(&cell.values)
        .map(|(axis, v)| format!("{}={v}", short(&axis.param)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `feb.safe_concurrent_starts` → `safe_concurrent_starts`.
pub(super) fn short(param: &str) -> &str {
    param.split_once('.').map_or(param, |(_, p)| p)
}

fn ratio(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |x| format!("{x:.2}"))
}

fn cell_text(m: &MetricSummary) -> String {
    let vs_naive = match (
        m.breakwater_vs_naive.median,
        m.naive.undefined,
        m.breakwater.undefined,
    ) {
        (Some(r), _, _) => format!("{r:.2}"),
        (None, n, 0) if n > 0 => "naive never".to_owned(),
        (None, _, b) if b > 0 => "bw never".to_owned(),
        _ => "-".to_owned(),
    };
    let flag = if m.breakwater_worse > 0 {
        format!(" !{}/{}", m.breakwater_worse, m.runs)
    } else {
        String::new()
    };
    format!("{vs_naive} | {}{flag}", ratio(m.ratio_to_limit.median))
}

/// Renders the whole sweep.
pub(super) fn render(report: &SweepReport) -> String {
    let mut out = String::new();
    let axes: Vec<&str> = report.axes.iter().map(|a| a.param.as_str()).collect();
    let _ = writeln!(
        out,
        "sweep {} over {} — {} cells x {} seeds {:?}",
        report.scenario,
        axes.join(" x "),
        report.cells.len(),
        report.seeds.len(),
        report.seeds
    );
    let _ = writeln!(
        out,
        "  each cell: median breakwater/naive | median breakwater/limit (below 1 beats naive; 1 is the limit); !k/n: breakwater worse than naive in k of n seeds"
    );
    let (rows, columns) = layout(report);
    let keys: Vec<(&'static str, Better)> = report
        .cells
        .first()
        .map(|c| c.metrics.iter().map(|m| (m.key, m.better)).collect())
        .unwrap_or_default();
    let label_width = rows
        .iter()
        .filter_map(|r| r.first())
        .map(|c| row_label(report, c).len())
        .max()
        .unwrap_or(0)
        .max(12);
    let last = report.axes.last().map_or("", |a| short(&a.param));
    for (key, better) in keys {
        let direction = match better {
            Better::Lower => "lower is better",
            Better::Higher => "higher is better",
        };
        let _ = writeln!(out, "\n  {key} ({direction}); columns: {last}");
        let mut header = format!("  {:<label_width$}", "");
        for c in &columns {
            let _ = write!(header, " {c:>22}");
        }
        let _ = writeln!(out, "{}", header.trim_end());
        for row in &rows {
            let label = row
                .first()
                .map(|c| row_label(report, c))
                .unwrap_or_default();
            let mut line = format!("  {label:<label_width$}");
            for cell in row {
                let text = cell
                    .metrics
                    .iter()
                    .find(|m| m.key == key)
                    .map_or_else(|| "-".to_owned(), cell_text);
                let _ = write!(line, " {text:>22}");
            }
            let _ = writeln!(out, "{}", line.trim_end());
        }
    }
    let _ = writeln!(out, "\n  worst cells");
    for w in report.worst() {
        let at = |c: &Option<(Vec<String>, f64)>| {
            c.as_ref().map_or_else(
                || "-".to_owned(),
                |(values, r)| format!("{r:.2} at [{}]", values.join(", ")),
            )
        };
        let _ = writeln!(
            out,
            "  {:<22} vs naive {:<28} vs limit {:<28} worse than naive in {} of {} cells",
            w.key,
            at(&w.vs_naive),
            at(&w.vs_limit),
            w.cells_worse_than_naive.len(),
            report.cells.len()
        );
    }
    out
}
