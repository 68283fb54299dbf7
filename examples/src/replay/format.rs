//! Formatting shared by the scenarios' side-by-side terminal tables.

use std::fmt::Write as _;

/// Formats `Option<f64>` seconds as `"25 s"` or `"never"`.
pub fn seconds_or_never(value: Option<f64>) -> String {
    value.map_or_else(|| "never".to_owned(), |s| format!("{s:.0} s"))
}

/// Formats a share as `"12.3 %"`.
pub fn percent(value: f64) -> String {
    format!("{:.1} %", value * 100.0)
}

/// One table row: a label and the naive and Breakwater values.
pub fn row(out: &mut String, label: &str, naive: &str, breakwater: &str) {
    let _ = writeln!(out, "  {label:<34} {naive:>14} {breakwater:>14}");
}

/// Formats seconds as `"12.5 min"`, or `"never"` if not finite.
pub fn minutes(seconds: f64) -> String {
    if seconds.is_finite() {
        format!("{:.1} min", seconds / 60.0)
    } else {
        "never".to_owned()
    }
}
