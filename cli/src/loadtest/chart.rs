//! The SVG charts: a load test's timeline, and the replica comparison.

use super::report::{LoadtestReport, ReplicaRun};

/// An SVG chart of the test over time: requests answered per second
/// (bars, the part not answered 202 in red on top), mean and max latency
/// (lines), sales pending in Kafka (dashed, when known) and each fault
/// (a vertical line with its name).
pub fn timeline_chart(report: &LoadtestReport) -> String {
    let seconds = report.timeline.len().max(1);
    let (left, top, plot_width, plot_height) = (60.0, 40.0, 640.0, 220.0);
    let bar = plot_width / seconds as f64;
    let max_rate = report
        .timeline
        .iter()
        .map(|s| s.completed as f64)
        .fold(1.0, f64::max);
    let max_latency = report
        .timeline
        .iter()
        .map(|s| s.max_latency_ms)
        .fold(1.0, f64::max);
    let max_pending = report
        .pipeline_samples
        .iter()
        .filter_map(|s| s.pending)
        .fold(1, i64::max) as f64;
    let y_rate = |v: f64| top + plot_height - v / max_rate * plot_height;
    let y_latency = |v: f64| top + plot_height - v / max_latency * plot_height;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"780\" height=\"320\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <text x=\"10\" y=\"20\" font-size=\"14\">{} ({}): requests/s (bars, max {max_rate:.0}; not 202 in red), mean latency (green) and max latency (red, max {max_latency:.0} ms), pending in Kafka (dashed, max {max_pending:.0})</text>\n\
         <line x1=\"{left}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/>\n",
        report.target,
        report.mode,
        top + plot_height,
        left + plot_width,
        top + plot_height
    );
    for (index, second) in report.timeline.iter().enumerate() {
        let x = left + index as f64 * bar;
        let y = y_rate(second.completed as f64);
        svg.push_str(&format!(
            "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"#9fc5e8\"/>\n",
            (bar - 2.0).max(1.0),
            top + plot_height - y
        ));
        if second.failed() > 0 {
            let failed_top = y_rate(second.failed() as f64);
            svg.push_str(&format!(
                "<rect x=\"{x:.1}\" y=\"{failed_top:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"#e06666\"/>\n",
                (bar - 2.0).max(1.0),
                top + plot_height - failed_top
            ));
        }
    }
    let pending: Vec<String> = report
        .pipeline_samples
        .iter()
        .filter_map(|sample| {
            sample.pending.map(|pending| {
                format!(
                    "{:.1},{:.1}",
                    left + sample.second * bar,
                    top + plot_height - pending as f64 / max_pending * plot_height
                )
            })
        })
        .collect();
    if !pending.is_empty() {
        svg.push_str(&format!(
            "<polyline fill=\"none\" stroke=\"#e69138\" stroke-width=\"2\" stroke-dasharray=\"6 3\" points=\"{}\"/>\n",
            pending.join(" ")
        ));
    }
    for (index, fault) in report.faults.iter().enumerate() {
        let Some(at) = fault.injected_at else {
            continue;
        };
        let x = left + at * bar;
        svg.push_str(&format!(
            "<line x1=\"{x:.1}\" y1=\"{top}\" x2=\"{x:.1}\" y2=\"{}\" stroke=\"#674ea7\" stroke-width=\"2\"/>\n\
             <text x=\"{:.1}\" y=\"{:.1}\" fill=\"#674ea7\">{}</text>\n",
            top + plot_height,
            x + 3.0,
            // Staggered, so that the names of close faults do not overlap.
            top + 12.0 + (index % 3) as f64 * 14.0,
            fault.fault.describe()
        ));
    }
    for (color, value) in [
        (
            "#38761d",
            (|s: &localrun::http_load::Second| s.mean_latency_ms) as fn(&_) -> f64,
        ),
        ("#cc0000", |s: &localrun::http_load::Second| {
            s.max_latency_ms
        }),
    ] {
        let points: Vec<String> = report
            .timeline
            .iter()
            .enumerate()
            .map(|(index, second)| {
                format!(
                    "{:.1},{:.1}",
                    left + (index as f64 + 0.5) * bar,
                    y_latency(value(second))
                )
            })
            .collect();
        svg.push_str(&format!(
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"/>\n",
            points.join(" ")
        ));
    }
    svg.push_str(&format!(
        "<text x=\"{left}\" y=\"{}\">0 s</text><text x=\"{}\" y=\"{}\">{seconds} s</text>\n</svg>\n",
        top + plot_height + 20.0,
        left + plot_width - 30.0,
        top + plot_height + 20.0
    ));
    svg
}

/// A bar chart (SVG) of end-to-end sales/s and drain time per consumer count.
pub fn replica_chart(runs: &[ReplicaRun]) -> String {
    let width = 120 + 140 * runs.len();
    let height = 320;
    let max_rate = runs
        .iter()
        .map(ReplicaRun::end_to_end_per_second)
        .fold(1.0, f64::max);
    let max_drain = runs
        .iter()
        .filter_map(|r| r.report.pipeline.as_ref().map(|c| c.drain_seconds))
        .fold(0.1, f64::max);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <text x=\"10\" y=\"20\" font-size=\"14\">End-to-end sales/s (blue) and drain time (orange) by consumer count</text>\n\
         <line x1=\"60\" y1=\"260\" x2=\"{}\" y2=\"260\" stroke=\"black\"/>\n",
        width - 20
    );
    for (index, run) in runs.iter().enumerate() {
        let x = 80 + 140 * index;
        let rate = run.end_to_end_per_second();
        let rate_height = (rate / max_rate * 200.0).round();
        let drain = run
            .report
            .pipeline
            .as_ref()
            .map_or(0.0, |c| c.drain_seconds);
        let drain_height = (drain / max_drain * 200.0).round();
        svg.push_str(&format!(
            "<rect x=\"{x}\" y=\"{}\" width=\"50\" height=\"{rate_height}\" fill=\"#4a7ebb\"/>\n\
             <text x=\"{x}\" y=\"{}\">{rate:.0}/s</text>\n\
             <rect x=\"{}\" y=\"{}\" width=\"50\" height=\"{drain_height}\" fill=\"#e69138\"/>\n\
             <text x=\"{}\" y=\"{}\">{drain:.1} s</text>\n\
             <text x=\"{}\" y=\"280\">{} consumer{}</text>\n",
            260.0 - rate_height,
            255.0 - rate_height,
            x + 55,
            260.0 - drain_height,
            x + 55,
            255.0 - drain_height,
            x + 20,
            run.consumers,
            if run.consumers == 1 { "" } else { "s" },
        ));
    }
    svg.push_str("</svg>\n");
    svg
}
