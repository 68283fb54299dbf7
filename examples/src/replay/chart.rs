//! SVG charts of a replay (plotters' SVG backend: no fonts or system
//! libraries needed).

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::error::ReplayError;

/// One line of a panel.
#[derive(Debug, Clone)]
pub struct Series<'a> {
    /// Legend label.
    pub label: &'a str,
    /// Colour.
    pub color: RGBColor,
    /// `(x, y)` points.
    pub points: Vec<(f64, f64)>,
}

/// One panel (a chart with shared x axis) of a figure.
#[derive(Debug, Clone)]
pub struct Panel<'a> {
    /// Title above the panel.
    pub title: &'a str,
    /// Y axis description.
    pub y_label: &'a str,
    /// Lines.
    pub series: Vec<Series<'a>>,
    /// Vertical markers `(x, label)` (deploy, revert, ...).
    pub markers: Vec<(f64, &'a str)>,
}

/// Naive policy colour.
pub const NAIVE: RGBColor = RGBColor(214, 39, 40);
/// Breakwater policy colour.
pub const BREAKWATER: RGBColor = RGBColor(31, 119, 180);

fn chart_err(path: &Path, e: impl std::fmt::Display) -> ReplayError {
    ReplayError::Chart {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

/// Draws `panels` stacked vertically into an SVG file at `path`.
pub fn draw(
    path: &Path,
    title: &str,
    x_label: &str,
    panels: &[Panel<'_>],
) -> Result<(), ReplayError> {
    let height = 60 + 300 * u32::try_from(panels.len()).unwrap_or(1);
    let root = SVGBackend::new(path, (1000, height)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| chart_err(path, e))?;
    let root = root
        .titled(title, ("sans-serif", 22))
        .map_err(|e| chart_err(path, e))?;
    let areas = root.split_evenly((panels.len().max(1), 1));
    for (area, panel) in areas.iter().zip(panels) {
        draw_panel(area, panel, x_label).map_err(|e| chart_err(path, e))?;
    }
    root.present().map_err(|e| chart_err(path, e))?;
    Ok(())
}

fn draw_panel(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    panel: &Panel<'_>,
    x_label: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    let points = panel.series.iter().flat_map(|s| s.points.iter());
    let (mut x_max, mut y_max) = (1.0_f64, 0.0_f64);
    for &(x, y) in points {
        x_max = x_max.max(x);
        y_max = y_max.max(y);
    }
    let y_max = if y_max <= 0.0 { 1.0 } else { y_max * 1.08 };
    let mut chart = ChartBuilder::on(area)
        .caption(panel.title, ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(panel.y_label)
        .light_line_style(WHITE.mix(0.0))
        .draw()?;
    for &(x, label) in &panel.markers {
        chart.draw_series(LineSeries::new(
            vec![(x, 0.0), (x, y_max)],
            BLACK.mix(0.5).stroke_width(1),
        ))?;
        chart.draw_series(std::iter::once(Text::new(
            label.to_owned(),
            (x, y_max * 0.97),
            ("sans-serif", 12),
        )))?;
    }
    for s in &panel.series {
        let color = s.color;
        chart
            .draw_series(LineSeries::new(
                s.points.iter().copied(),
                color.stroke_width(2),
            ))?
            .label(s.label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .draw()?;
    Ok(())
}

/// The naive and Breakwater lines of one panel.
pub fn both(naive: Vec<(f64, f64)>, breakwater: Vec<(f64, f64)>) -> Vec<Series<'static>> {
    vec![
        Series {
            label: "naive",
            color: NAIVE,
            points: naive,
        },
        Series {
            label: "breakwater",
            color: BREAKWATER,
            points: breakwater,
        },
    ]
}

/// Rolling mean over `window` points (for readable rate curves).
pub fn rolling_ratio(numerator: &[u32], denominator: &[u32], window: usize) -> Vec<(f64, f64)> {
    let n = numerator.len().min(denominator.len());
    let window = window.max(1);
    (0..n)
        .filter_map(|i| {
            let from = (i + 1).saturating_sub(window);
            let num: u64 = numerator.get(from..=i)?.iter().map(|&v| u64::from(v)).sum();
            let den: u64 = denominator
                .get(from..=i)?
                .iter()
                .map(|&v| u64::from(v))
                .sum();
            (den > 0).then(|| (i as f64, num as f64 / den as f64))
        })
        .collect()
}

/// `(second, value)` points of a per-second series.
pub fn per_second(series: &[u32]) -> Vec<(f64, f64)> {
    series
        .iter()
        .enumerate()
        .map(|(i, &v)| (i as f64, f64::from(v)))
        .collect()
}
