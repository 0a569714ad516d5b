//! The SVG plot of `--out`: throughput against transfer size, one line per case (the
//! baselines dashed, memcpy in black; with several copy modes, the second mode's lines
//! dotted and the third's thin), the legend on the right and the machine below.
//! Drawn with plotters' SVG backend; the text is left to the viewer's sans-serif font.

use std::path::Path;

use plotters::prelude::*;

use super::cases::{Case, Door};
use super::report::{Report, human_bytes};

/// The picture's width in pixels.
const WIDTH: u32 = 1100;
/// The picture's height in pixels, unless the legend needs more.
const HEIGHT: u32 = 640;
/// The height of a line of the legend.
const LEGEND_LINE: u32 = 22;
/// The width of the legend on the right.
const LEGEND_WIDTH: u32 = 270;
/// The height of the footer (machine, date).
const FOOTER_HEIGHT: u32 = 44;

/// A case's color: by operation, so that a guest call and the same host call share it
/// (the host's lines have triangles, the guest's circles, the baselines are dashed).
fn color(case: Case) -> RGBColor {
    let hex = match case {
        Case::Memcpy => 0x000000,
        Case::VecDoubleCopy => 0x7f7f7f,
        Case::ProcessVmReadv => 0xd62728,
        Case::GuestMemoryCopy => 0x8c564b,
        Case::GuestReadOverwrite | Case::HostReadOverwrite => 0x1f77b4,
        Case::GuestWrite | Case::HostWrite => 0xff7f0e,
        Case::GuestReadDeallocate | Case::HostRead => 0x2ca02c,
        Case::GuestCopyInSelf | Case::HostCopy => 0x9467bd,
        Case::GuestCopyInPeer => 0x17becf,
        Case::HostAReadOverwriteB => 0x393b79,
        Case::HostAWriteB => 0xbcbd22,
    };
    RGBColor((hex >> 16) as u8, (hex >> 8) as u8, hex as u8)
}

/// How a line is drawn.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stroke {
    Solid,
    /// Long dashes: a baseline.
    Dashed,
    /// Dots: a wasmach case in the second copy mode.
    Dotted,
}

/// One line of the plot.
struct Series {
    label: String,
    stroke: Stroke,
    /// Triangles (the host API) rather than circles.
    triangles: bool,
    color: RGBColor,
    width: u32,
    /// (bytes, GiB/s), by size.
    points: Vec<(f64, f64)>,
}

/// Writes the plot of `report` to `path`.
pub fn write_svg(path: &Path, report: &Report) -> anyhow::Result<()> {
    let mut series: Vec<Series> = Vec::new();
    for (m, row) in report.measurements.iter().zip(report.rows()) {
        let label = m.job.label();
        let index = match series.iter().position(|s| s.label == label) {
            Some(index) => index,
            None => {
                let case = m.job.case;
                let mode = m
                    .job
                    .mode
                    .and_then(|mode| report.run.copy_modes.iter().position(|&m| m == mode));
                series.push(Series {
                    label,
                    stroke: match mode {
                        None => Stroke::Dashed,
                        Some(1) => Stroke::Dotted,
                        Some(_) => Stroke::Solid,
                    },
                    triangles: case.door() == Door::Host,
                    color: color(case),
                    width: match (case, mode) {
                        (Case::Memcpy, _) => 3,
                        (_, Some(2)) => 1,
                        _ => 2,
                    },
                    points: Vec::new(),
                });
                series.len() - 1
            }
        };
        if let Some(gib) = row.gib_per_s {
            series[index].points.push((row.bytes as f64, gib));
        }
    }

    let mut sizes: Vec<f64> = report
        .measurements
        .iter()
        .map(|m| m.job.size.bytes() as f64)
        .collect();
    sizes.sort_by(f64::total_cmp);
    sizes.dedup();
    let (first, last) = match (sizes.first(), sizes.last()) {
        (Some(&first), Some(&last)) => (first, last),
        _ => anyhow::bail!("nothing was measured"),
    };
    // Throughput on a log scale too: virtual copies run thousands of times faster than
    // memcpy at large sizes, and a linear axis would flatten every other line.
    let values = || series.iter().flat_map(|s| s.points.iter().map(|p| p.1));
    let low = values().filter(|v| *v > 0.0).fold(f64::INFINITY, f64::min);
    let high = values().fold(0.0f64, f64::max);
    let (low, high) = if low.is_finite() && high > 0.0 {
        (low / 1.5, high * 1.5)
    } else {
        (0.1, 100.0)
    };

    let height = HEIGHT.max(60 + LEGEND_LINE * series.len() as u32 + FOOTER_HEIGHT);
    let root = SVGBackend::new(path, (WIDTH, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let (main, footer) = root.split_vertically(height - FOOTER_HEIGHT);
    let (plot, legend) = main.split_horizontally(WIDTH - LEGEND_WIDTH);

    let mut chart = ChartBuilder::on(&plot)
        .caption(
            "wasmach bench: copy throughput against transfer size",
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(56)
        .build_cartesian_2d(
            (first / 1.6..last * 1.6)
                .log_scale()
                .with_key_points(sizes.clone()),
            (low..high).log_scale().with_key_points(ticks(low, high)),
        )?;
    let size_label = |bytes: &f64| human_bytes(bytes.round() as u64);
    chart
        .configure_mesh()
        .x_desc("transfer size (log scale)")
        .y_desc("GiB/s (median, log scale)")
        .x_label_formatter(&size_label)
        .y_label_formatter(&|v| format!("{v}"))
        .label_style(("sans-serif", 13))
        .axis_desc_style(("sans-serif", 14))
        .max_light_lines(0)
        .bold_line_style(RGBColor(0xe4, 0xe4, 0xe4))
        .draw()?;
    for s in &series {
        let style = s.color.stroke_width(s.width);
        let points = s.points.iter().copied();
        match s.stroke {
            Stroke::Solid => chart.draw_series(LineSeries::new(points, style))?,
            Stroke::Dashed => chart.draw_series(DashedLineSeries::new(points, 7, 4, style))?,
            Stroke::Dotted => chart.draw_series(DashedLineSeries::new(points, 2, 3, style))?,
        };
        if s.triangles {
            chart.draw_series(
                s.points
                    .iter()
                    .map(|&p| TriangleMarker::new(p, 5, s.color.filled())),
            )?;
        } else {
            chart.draw_series(
                s.points
                    .iter()
                    .map(|&p| Circle::new(p, 3, s.color.filled())),
            )?;
        }
    }

    // The legend: a sample of each line and its case.
    let font = ("sans-serif", 13).into_font();
    legend.draw(&Text::new(
        "dashed: baselines; ▲ host API; ● guest",
        (10, 24),
        font.clone(),
    ))?;
    for (i, s) in series.iter().enumerate() {
        let y = 50 + (LEGEND_LINE * i as u32) as i32;
        let style = s.color.stroke_width(s.width);
        let (dash, gap) = match s.stroke {
            Stroke::Solid => (32, 0),
            Stroke::Dashed => (8, 4),
            Stroke::Dotted => (2, 3),
        };
        let mut x = 10;
        while x < 42 {
            let end = (x + dash).min(42);
            legend.draw(&PathElement::new(vec![(x, y), (end, y)], style))?;
            x = end + gap;
        }
        if s.triangles {
            legend.draw(&TriangleMarker::new((26, y), 5, s.color.filled()))?;
        } else {
            legend.draw(&Circle::new((26, y), 3, s.color.filled()))?;
        }
        legend.draw(&Text::new(s.label.clone(), (50, y - 7), font.clone()))?;
    }

    let small = ("sans-serif", 12).into_font();
    footer.draw(&Text::new(
        format!("machine: {}", report.machine.line()),
        (14, 6),
        small.clone(),
    ))?;
    footer.draw(&Text::new(
        format!(
            "run: {}, wasmach {} ({} build), median of the samples of each case; the table and CSV have the spread",
            report.run.date, report.run.version, report.run.build
        ),
        (14, 24),
        small,
    ))?;
    root.present()?;
    Ok(())
}

/// The ticks of a log axis from `low` to `high`: 1, 2 and 5 times the powers of ten
/// between them (1 and 10 times only when that would make more than a dozen).
fn ticks(low: f64, high: f64) -> Vec<f64> {
    let decades = low.log10().floor() as i32..=high.log10().ceil() as i32;
    let ticks = |steps: &[f64]| -> Vec<f64> {
        decades
            .clone()
            .flat_map(|e| steps.iter().map(move |k| k * 10f64.powi(e)))
            // print as written: 0.2, not 0.20000000000000001
            .map(|v| format!("{v:.6}").parse().unwrap_or(v))
            .filter(|v| (low..=high).contains(v))
            .collect()
    };
    let fine = ticks(&[1.0, 2.0, 5.0]);
    if fine.len() > 12 { ticks(&[1.0]) } else { fine }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_ticks_are_one_two_five() {
        assert_eq!(ticks(3.0, 300.0), [5.0, 10.0, 20.0, 50.0, 100.0, 200.0]);
        assert_eq!(ticks(0.15, 0.6), [0.2, 0.5]);
        assert_eq!(ticks(1.0, 1e6), [1.0, 10.0, 100.0, 1e3, 1e4, 1e5, 1e6]);
    }
}
