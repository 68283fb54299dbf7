//! Heatmaps of a sweep: per metric, the median Breakwater / naive ratio and
//! Breakwater / limit ratio of every cell, coloured (green is good).

use std::path::Path;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::table::{layout, row_label, short};
use super::{MetricSummary, SweepReport};
use crate::replay::ReplayError;

const CELL_W: i32 = 110;
const CELL_H: i32 = 34;
const LABEL_W: i32 = 250;
const PANEL_GAP: i32 = 70;

/// Colour of a Breakwater / naive ratio: green below 1, white at 1, red
/// above (log scale, saturating at 10× either way).
fn vs_naive_color(r: f64) -> RGBColor {
    let x = (r.max(1e-3).log10()).clamp(-1.0, 1.0);
    if x <= 0.0 {
        blend(WHITE_RGB, GREEN_RGB, -x)
    } else {
        blend(WHITE_RGB, RED_RGB, x)
    }
}

/// Colour of a Breakwater / limit ratio: green at the limit, yellow at
/// 1.3×, red from 2×.
fn vs_limit_color(r: f64) -> RGBColor {
    if r <= 1.3 {
        blend(GREEN_RGB, YELLOW_RGB, ((r - 1.0) / 0.3).clamp(0.0, 1.0))
    } else {
        blend(YELLOW_RGB, RED_RGB, ((r - 1.3) / 0.7).clamp(0.0, 1.0))
    }
}

const WHITE_RGB: (f64, f64, f64) = (255.0, 255.0, 255.0);
const GREEN_RGB: (f64, f64, f64) = (102.0, 194.0, 112.0);
const YELLOW_RGB: (f64, f64, f64) = (250.0, 220.0, 110.0);
const RED_RGB: (f64, f64, f64) = (228.0, 90.0, 80.0);

fn blend(a: (f64, f64, f64), b: (f64, f64, f64), t: f64) -> RGBColor {
    let mix = |x: f64, y: f64| (x + (y - x) * t).round().clamp(0.0, 255.0) as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

fn err(path: &Path, e: impl std::fmt::Display) -> ReplayError {
    ReplayError::Chart {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

fn to_i32(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX / 4)
}

/// Draws the sweep's heatmaps into `path`.
// One pass over metrics x (vs naive, vs limit) x rows x columns reads best
// in one place.
#[allow(clippy::too_many_lines)]
pub(super) fn draw(report: &SweepReport, path: &Path) -> Result<(), ReplayError> {
    let (rows, columns) = layout(report);
    let keys: Vec<&'static str> = report
        .cells
        .first()
        .map(|c| c.metrics.iter().map(|m| m.key).collect())
        .unwrap_or_default();
    let grid_w = LABEL_W + CELL_W * to_i32(columns.len().max(1));
    let grid_h = CELL_H * to_i32(rows.len().max(1));
    let panel_h = grid_h + PANEL_GAP;
    let width = 2 * grid_w + 60;
    let height = 70 + panel_h * to_i32(keys.len().max(1));
    let size = (
        u32::try_from(width).unwrap_or(1000),
        u32::try_from(height).unwrap_or(800),
    );
    let root = SVGBackend::new(path, size).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(path, e))?;
    let axes: Vec<&str> = report.axes.iter().map(|a| short(&a.param)).collect();
    let title = format!(
        "{} sweep over {} ({} seeds per cell): medians; columns: {}",
        report.scenario,
        axes.join(" x "),
        report.seeds.len(),
        axes.last().copied().unwrap_or("-")
    );
    let text = |s: &str, x: i32, y: i32, size: u32, h: HPos| {
        Text::new(
            s.to_owned(),
            (x, y),
            TextStyle::from(("sans-serif", size).into_font()).pos(Pos::new(h, VPos::Center)),
        )
    };
    root.draw(&text(&title, 20, 22, 20, HPos::Left))
        .map_err(|e| err(path, e))?;
    for (k, key) in keys.iter().enumerate() {
        let top = 70 + panel_h * to_i32(k);
        for (p, (caption, pick, color)) in [
            (
                "breakwater / naive (below 1: breakwater better)",
                (|m: &MetricSummary| m.breakwater_vs_naive.median)
                    as fn(&MetricSummary) -> Option<f64>,
                vs_naive_color as fn(f64) -> RGBColor,
            ),
            (
                "breakwater / physical limit (1: at the limit)",
                |m: &MetricSummary| m.ratio_to_limit.median,
                vs_limit_color,
            ),
        ]
        .into_iter()
        .enumerate()
        {
            let left = 20 + (grid_w + 20) * to_i32(p);
            root.draw(&text(
                &format!("{key}: {caption}"),
                left,
                top + 12,
                14,
                HPos::Left,
            ))
            .map_err(|e| err(path, e))?;
            let grid_top = top + 30;
            for (c, value) in columns.iter().enumerate() {
                let x = left + LABEL_W + CELL_W * to_i32(c) + CELL_W / 2;
                root.draw(&text(value, x, grid_top - 8, 11, HPos::Center))
                    .map_err(|e| err(path, e))?;
            }
            for (r, row) in rows.iter().enumerate() {
                let y0 = grid_top + CELL_H * to_i32(r);
                let label = row
                    .first()
                    .map(|c| row_label(report, c))
                    .unwrap_or_default();
                root.draw(&text(
                    &label,
                    left + LABEL_W - 8,
                    y0 + CELL_H / 2,
                    11,
                    HPos::Right,
                ))
                .map_err(|e| err(path, e))?;
                for (c, cell) in row.iter().enumerate() {
                    let x0 = left + LABEL_W + CELL_W * to_i32(c);
                    let m = cell.metrics.iter().find(|m| m.key == *key);
                    let v = m.and_then(pick);
                    let fill = v.map_or(RGBColor(220, 220, 220), color);
                    root.draw(&Rectangle::new(
                        [(x0, y0), (x0 + CELL_W - 2, y0 + CELL_H - 2)],
                        fill.filled(),
                    ))
                    .map_err(|e| err(path, e))?;
                    let label = match (v, m) {
                        (Some(v), Some(m)) if m.breakwater_worse > 0 => {
                            format!("{v:.2} (!{}/{})", m.breakwater_worse, m.runs)
                        }
                        (Some(v), _) => format!("{v:.2}"),
                        (None, Some(m)) if p == 0 && m.naive.undefined > 0 => {
                            "naive never".to_owned()
                        }
                        _ => "n/a".to_owned(),
                    };
                    root.draw(&text(
                        &label,
                        x0 + CELL_W / 2,
                        y0 + CELL_H / 2,
                        12,
                        HPos::Center,
                    ))
                    .map_err(|e| err(path, e))?;
                }
            }
        }
    }
    root.present().map_err(|e| err(path, e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_run_from_green_through_white_or_yellow_to_red() {
        assert_eq!(vs_naive_color(1.0), RGBColor(255, 255, 255));
        assert_eq!(vs_naive_color(0.01), RGBColor(102, 194, 112));
        assert_eq!(vs_naive_color(50.0), RGBColor(228, 90, 80));
        assert_eq!(vs_limit_color(1.0), RGBColor(102, 194, 112));
        assert_eq!(vs_limit_color(1.3), RGBColor(250, 220, 110));
        assert_eq!(vs_limit_color(3.0), RGBColor(228, 90, 80));
    }
}
