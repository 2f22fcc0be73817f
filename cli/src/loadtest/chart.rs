//! The charts, drawn with plotters and written as SVG and PNG: a load
//! test over time, and the replica comparison.
//!
//! A load test's chart has three panels over the same time axis (seconds
//! since the load started): requests answered per second (202 in blue, the
//! rest in red, stacked), latency (p50, p99 and max, ms), and sales since the
//! start (accepted by the gateway, counted by the pipeline, the gap between
//! them the lag; pending in Kafka dashed). Each fault of `--chaos` is a
//! vertical line across all three, named in the first. The replica chart
//! draws one series per consumer count: sales accepted per second, and sales
//! counted since the start.
//!
//! Text is drawn with DejaVu Sans, carried in the binary
//! (`cli/assets/DejaVuSans.ttf`, Bitstream Vera license in
//! `cli/assets/DejaVuSans-LICENSE`), so the PNG needs no fonts installed.

use std::path::{Path, PathBuf};

use anyhow::Context;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::report::{LoadtestReport, ReplicaRun};

const WIDTH: u32 = 1100;
const PANEL_HEIGHT: u32 = 290;
const TITLE_HEIGHT: u32 = 40;
/// The latency axis starts here (a log scale has no 0).
const LATENCY_FLOOR_MS: f64 = 0.1;

const ACCEPTED: RGBColor = RGBColor(74, 126, 187);
const FAILED: RGBColor = RGBColor(204, 0, 0);
const P50: RGBColor = RGBColor(56, 118, 29);
const P99: RGBColor = RGBColor(230, 145, 56);
const MAX: RGBColor = RGBColor(153, 0, 0);
const COUNTED: RGBColor = RGBColor(56, 118, 29);
const PENDING: RGBColor = RGBColor(230, 145, 56);
const FAULT: RGBColor = RGBColor(103, 78, 167);
/// One color per replica count, in order.
const SERIES: [RGBColor; 6] = [
    RGBColor(74, 126, 187),
    RGBColor(230, 145, 56),
    RGBColor(56, 118, 29),
    RGBColor(204, 0, 0),
    RGBColor(103, 78, 167),
    RGBColor(70, 70, 70),
];

/// Both axes of every panel: seconds across, a quantity up.
type Plane =
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>;

/// Registers the carried font under plotters' "sans-serif", once.
fn font() -> anyhow::Result<()> {
    static REGISTERED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let registered = REGISTERED.get_or_init(|| {
        plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            include_bytes!("../../assets/DejaVuSans.ttf"),
        )
        .is_ok()
    });
    anyhow::ensure!(*registered, "the carried font (DejaVu Sans) did not load");
    Ok(())
}

/// A drawing error as an anyhow error (plotters' errors borrow the backend).
fn drawing<E: std::fmt::Debug>(error: E) -> anyhow::Error {
    anyhow::anyhow!("drawing the chart: {error:?}")
}

/// The PNG written beside an SVG: same name, `.png`.
pub fn png_path(svg: &Path) -> PathBuf {
    svg.with_extension("png")
}

/// Which chart.
#[derive(Clone, Copy)]
enum Chart<'a> {
    Timeline(&'a LoadtestReport),
    Replicas(&'a [ReplicaRun]),
}

impl Chart<'_> {
    fn size(self) -> (u32, u32) {
        match self {
            Chart::Timeline(_) => (WIDTH, TITLE_HEIGHT + 3 * PANEL_HEIGHT),
            Chart::Replicas(_) => (WIDTH, TITLE_HEIGHT + 2 * PANEL_HEIGHT),
        }
    }

    fn draw<DB: DrawingBackend>(self, root: &DrawingArea<DB, Shift>) -> anyhow::Result<()> {
        root.fill(&WHITE).map_err(drawing)?;
        match self {
            Chart::Timeline(report) => draw_timeline(root, report),
            Chart::Replicas(runs) => draw_replicas(root, runs),
        }?;
        root.present().map_err(drawing)
    }

    fn svg(self) -> anyhow::Result<String> {
        font()?;
        let mut text = String::new();
        {
            let root = SVGBackend::with_string(&mut text, self.size()).into_drawing_area();
            self.draw(&root)?;
        }
        Ok(text)
    }

    /// Writes `svg` and the PNG beside it.
    fn write(self, svg: &Path) -> anyhow::Result<Vec<PathBuf>> {
        let text = self.svg()?;
        std::fs::write(svg, &text).with_context(|| format!("writing {}", svg.display()))?;
        let png = png_path(svg);
        {
            // plotters encodes the PNG (with the image crate) on present().
            let root = BitMapBackend::new(&png, self.size()).into_drawing_area();
            self.draw(&root)
                .with_context(|| format!("writing {}", png.display()))?;
        }
        Ok(vec![svg.to_path_buf(), png])
    }
}

/// Draws the load test's chart into `svg` and `png_path(svg)`; returns both.
pub fn write_timeline_chart(report: &LoadtestReport, svg: &Path) -> anyhow::Result<Vec<PathBuf>> {
    Chart::Timeline(report).write(svg)
}

/// Draws the replica comparison into `svg` and `png_path(svg)`.
pub fn write_replica_chart(runs: &[ReplicaRun], svg: &Path) -> anyhow::Result<Vec<PathBuf>> {
    Chart::Replicas(runs).write(svg)
}

/// The load test's chart as SVG text (what the file holds).
pub fn timeline_svg(report: &LoadtestReport) -> anyhow::Result<String> {
    Chart::Timeline(report).svg()
}

/// The replica chart as SVG text.
pub fn replica_svg(runs: &[ReplicaRun]) -> anyhow::Result<String> {
    Chart::Replicas(runs).svg()
}

/// The title, shortened to fit the chart's width.
fn title(text: &str) -> String {
    const MOST: usize = 110;
    if text.chars().count() <= MOST {
        text.to_string()
    } else {
        let kept: String = text.chars().take(MOST - 1).collect();
        format!("{kept}…")
    }
}

fn draw_timeline<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    report: &LoadtestReport,
) -> anyhow::Result<()> {
    let (top, rest) = root.split_vertically(TITLE_HEIGHT);
    top.titled(
        &title(&format!("Load test: {} ({})", report.target, report.mode)),
        ("sans-serif", 18),
    )
    .map_err(drawing)?;
    let panels = rest.split_evenly((3, 1));
    let seconds = (report.timeline.len() as f64).max(report.seconds).max(1.0);
    let faults: Vec<(f64, String)> = report
        .faults
        .iter()
        .filter_map(|f| f.injected_at.map(|at| (at, f.fault.describe())))
        .collect();

    // 1. Requests answered per second: 202 below, the rest stacked on top.
    let most = report
        .timeline
        .iter()
        .map(|s| s.completed)
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let mut chart = panel(&panels[0], seconds, most * 1.15, "requests/s")?;
    chart
        .draw_series(report.timeline.iter().enumerate().map(|(i, s)| {
            let x = i as f64;
            Rectangle::new([(x, 0.0), (x + 0.9, s.accepted as f64)], ACCEPTED.filled())
        }))
        .map_err(drawing)?
        .label("answered 202 (accepted)")
        .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], ACCEPTED.filled()));
    chart
        .draw_series(report.timeline.iter().enumerate().map(|(i, s)| {
            let x = i as f64;
            let low = s.accepted as f64;
            Rectangle::new(
                [(x, low), (x + 0.9, low + s.failed() as f64)],
                FAILED.filled(),
            )
        }))
        .map_err(drawing)?
        .label("answered otherwise, or not at all")
        .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], FAILED.filled()));
    fault_lines(&mut chart, &faults, most * 1.15, true)?;
    legend(&mut chart, SeriesLabelPosition::UpperRight)?;

    // 2. Latency per second: p50, p99, max.
    // On a log scale: a fault's seconds-long worst case and the usual
    // millisecond median both stay readable.
    let slowest = report
        .timeline
        .iter()
        .map(|s| s.max_latency_ms)
        .fold(1.0, f64::max);
    let mut chart = ChartBuilder::on(&panels[1])
        .margin(8)
        .x_label_area_size(30)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..seconds, (LATENCY_FLOOR_MS..slowest * 2.0).log_scale())
        .map_err(drawing)?;
    chart
        .configure_mesh()
        .x_desc("time since the load started (s)")
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&|v| format!("{v}"))
        .y_desc("latency (ms, log scale)")
        .draw()
        .map_err(drawing)?;
    type Pick = fn(&localrun::http_load::Second) -> f64;
    let lines: [(&str, RGBColor, Pick); 3] = [
        ("p50", P50, |s| s.p50_latency_ms),
        ("p99", P99, |s| s.p99_latency_ms),
        ("max", MAX, |s| s.max_latency_ms),
    ];
    for (name, color, pick) in lines {
        chart
            .draw_series(LineSeries::new(
                report
                    .timeline
                    .iter()
                    .enumerate()
                    .map(|(i, s)| (i as f64 + 0.5, pick(s).max(LATENCY_FLOOR_MS))),
                color.stroke_width(2),
            ))
            .map_err(drawing)?
            .label(format!("{name} latency"))
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 14, y)], color.stroke_width(2)));
    }
    for (at, _) in &faults {
        chart
            .draw_series(std::iter::once(PathElement::new(
                [(*at, LATENCY_FLOOR_MS), (*at, slowest * 2.0)],
                FAULT.stroke_width(2),
            )))
            .map_err(drawing)?;
    }
    legend(&mut chart, SeriesLabelPosition::UpperRight)?;

    // 3. Sales since the start: accepted vs counted (the lag), pending.
    let samples = &report.pipeline_samples;
    let highest = samples
        .iter()
        .flat_map(|s| [s.counted, s.pending])
        .flatten()
        .chain(std::iter::once(
            report.timeline.iter().map(|s| s.accepted as i64).sum(),
        ))
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let mut chart = panel(&panels[2], seconds, highest * 1.1, "sales")?;
    // Accepted: the 202s the load itself received, summed second by second
    // (the gateway's own counter starts again when the gateway does).
    let accepted: Vec<(f64, f64)> = report
        .timeline
        .iter()
        .scan(0u64, |sum, s| {
            *sum += s.accepted;
            Some(*sum as f64)
        })
        .enumerate()
        .map(|(i, sum)| (i as f64 + 1.0, sum))
        .collect();
    let counted: Vec<(f64, f64)> = samples
        .iter()
        .filter_map(|s| s.counted.map(|v| (s.second, v as f64)))
        .collect();
    let pending: Vec<(f64, f64)> = samples
        .iter()
        .filter_map(|s| s.pending.map(|v| (s.second, v as f64)))
        .collect();
    let counts = [
        ("accepted (answered 202)", ACCEPTED, accepted, false),
        ("counted by the pipeline", COUNTED, counted, false),
        ("pending in Kafka", PENDING, pending, true),
    ];
    for (name, color, points, dashed) in counts {
        if points.is_empty() {
            continue;
        }
        let style = color.stroke_width(2);
        if dashed {
            chart
                .draw_series(DashedLineSeries::new(points, 6, 4, style))
                .map_err(drawing)?
        } else {
            chart
                .draw_series(LineSeries::new(points, style))
                .map_err(drawing)?
        }
        .label(name)
        .legend(move |(x, y)| PathElement::new([(x, y), (x + 14, y)], style));
    }
    if samples.is_empty() {
        chart
            .draw_series(std::iter::once(Text::new(
                "no counts: the pipeline could not be read (a --target run)",
                (seconds * 0.3, highest * 0.5),
                ("sans-serif", 14),
            )))
            .map_err(drawing)?;
    }
    fault_lines(&mut chart, &faults, highest * 1.1, false)?;
    // The counts climb to the upper right: the legend goes upper left.
    legend(&mut chart, SeriesLabelPosition::UpperLeft)?;
    Ok(())
}

/// One panel's chart: seconds across (0 to `seconds`), `unit` up (0 to
/// `top`), a labelled mesh.
fn panel<'a, DB: DrawingBackend + 'a>(
    area: &'a DrawingArea<DB, Shift>,
    seconds: f64,
    top: f64,
    unit: &str,
) -> anyhow::Result<ChartContext<'a, DB, Plane>> {
    let mut chart = ChartBuilder::on(area)
        .margin(8)
        .x_label_area_size(30)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..seconds, 0.0..top)
        .map_err(drawing)?;
    chart
        .configure_mesh()
        .x_desc("time since the load started (s)")
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&|v| format!("{v:.0}"))
        .y_desc(unit)
        .draw()
        .map_err(drawing)?;
    Ok(chart)
}

/// A line with its legend entry.
fn line<'a, DB: DrawingBackend + 'a>(
    chart: &mut ChartContext<'a, DB, Plane>,
    points: impl IntoIterator<Item = (f64, f64)>,
    color: RGBColor,
    label: String,
) -> anyhow::Result<()> {
    let style = color.stroke_width(2);
    chart
        .draw_series(LineSeries::new(points, style))
        .map_err(drawing)?
        .label(label)
        .legend(move |(x, y)| PathElement::new([(x, y), (x + 14, y)], style));
    Ok(())
}

/// A vertical line per fault; `named`: with its description, staggered so
/// that close faults' names do not overlap.
fn fault_lines<'a, DB: DrawingBackend + 'a>(
    chart: &mut ChartContext<'a, DB, Plane>,
    faults: &[(f64, String)],
    top: f64,
    named: bool,
) -> anyhow::Result<()> {
    for (index, (at, name)) in faults.iter().enumerate() {
        chart
            .draw_series(std::iter::once(PathElement::new(
                [(*at, 0.0), (*at, top)],
                FAULT.stroke_width(2),
            )))
            .map_err(drawing)?;
        if named {
            let y = top * (0.97 - 0.09 * (index % 4) as f64);
            chart
                .draw_series(std::iter::once(Text::new(
                    name.clone(),
                    (*at, y),
                    ("sans-serif", 13).into_font().color(&FAULT),
                )))
                .map_err(drawing)?;
        }
    }
    Ok(())
}

fn legend<'a, DB: DrawingBackend + 'a, CT: plotters::coord::CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    position: SeriesLabelPosition,
) -> anyhow::Result<()> {
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .label_font(("sans-serif", 13))
        .draw()
        .map_err(drawing)
}

fn consumers_label(count: usize) -> String {
    format!("{count} consumer{}", if count == 1 { "" } else { "s" })
}

fn draw_replicas<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    runs: &[ReplicaRun],
) -> anyhow::Result<()> {
    let (top, rest) = root.split_vertically(TITLE_HEIGHT);
    let summary: Vec<String> = runs
        .iter()
        .map(|r| {
            format!(
                "{}: {:.0} sales/s end to end",
                consumers_label(r.consumers),
                r.end_to_end_per_second()
            )
        })
        .collect();
    top.titled(
        &title(&format!("Consumer replicas: {}", summary.join("; "))),
        ("sans-serif", 18),
    )
    .map_err(drawing)?;
    let panels = rest.split_evenly((2, 1));
    let seconds = runs
        .iter()
        .map(|r| (r.report.timeline.len() as f64).max(r.report.seconds))
        .fold(1.0, f64::max);

    // Sales accepted per second, a series per replica count.
    let most = runs
        .iter()
        .flat_map(|r| r.report.timeline.iter().map(|s| s.accepted))
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let mut chart = panel(&panels[0], seconds, most * 1.15, "sales accepted/s")?;
    for (index, run) in runs.iter().enumerate() {
        let accepted = run.report.timeline.iter().enumerate();
        line(
            &mut chart,
            accepted.map(|(i, s)| (i as f64 + 0.5, s.accepted as f64)),
            SERIES[index % SERIES.len()],
            consumers_label(run.consumers),
        )?;
    }
    legend(&mut chart, SeriesLabelPosition::UpperRight)?;

    // Sales counted since the start, a series per replica count.
    let highest = runs
        .iter()
        .flat_map(|r| r.report.pipeline_samples.iter().filter_map(|s| s.counted))
        .chain(runs.iter().map(|r| r.report.sales_accepted))
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let mut chart = panel(&panels[1], seconds, highest * 1.1, "sales counted")?;
    for (index, run) in runs.iter().enumerate() {
        let counted = run.report.pipeline_samples.iter();
        line(
            &mut chart,
            counted.filter_map(|s| s.counted.map(|c| (s.second, c as f64))),
            SERIES[index % SERIES.len()],
            consumers_label(run.consumers),
        )?;
    }
    legend(&mut chart, SeriesLabelPosition::UpperLeft)?;
    Ok(())
}
