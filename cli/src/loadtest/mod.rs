//! `bfctl loadtest`: Black Friday load against the gateway, then the proof
//! that nothing was lost: after the pipeline drains, the sales Valkey
//! counted are compared with the sales the gateway accepted.
//!
//! The built-in engine is closed loop: `users` clients, each sending its
//! next sale as soon as the previous one is answered, for `duration`. Sales
//! follow the Locust file's mix (categories 1-4 with their products, price
//! and quantity; `localrun::catalog`). Latencies go into an HDR histogram.

pub mod locust;
pub mod probe;

use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;

use crate::loadtest::probe::{Counted, PipelineProbe};

#[derive(Debug, Clone)]
pub struct LoadtestOptions {
    /// `http://host:port` of the gateway.
    pub target: String,
    pub users: usize,
    pub duration: Duration,
    /// How long to wait for the pipeline to drain afterwards.
    pub drain_timeout: Duration,
    pub seed: u64,
    /// Open loop at this many requests per second (`users` bounds how many
    /// are in flight); `None`: closed loop.
    pub rate: Option<f64>,
}

impl LoadtestOptions {
    pub fn check(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            (1..=10_000).contains(&self.users),
            "--users must be between 1 and 10000 (got {})",
            self.users
        );
        anyhow::ensure!(
            self.duration >= Duration::from_secs(1) && self.duration <= Duration::from_secs(3600),
            "--duration must be between 1 s and 1 h (got {:?})",
            self.duration
        );
        if let Some(rate) = self.rate {
            anyhow::ensure!(
                rate.is_finite() && rate > 0.0 && rate <= 1_000_000.0,
                "--rate must be between 0 and 1000000 requests per second (got {rate})"
            );
        }
        let url = reqwest::Url::parse(&self.target)
            .with_context(|| format!("--target {:?} is not a URL", self.target))?;
        anyhow::ensure!(
            url.scheme() == "http" || url.scheme() == "https",
            "--target {:?} must be an http(s) URL",
            self.target
        );
        Ok(())
    }
}

/// What a load test measured.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LoadtestReport {
    pub target: String,
    /// `closed loop, N users` or `open loop, R/s, up to N in flight`.
    pub mode: String,
    pub users: usize,
    pub seconds: f64,
    pub requests: usize,
    pub requests_per_second: f64,
    /// Requests per HTTP status code (0: the connection failed).
    pub statuses: std::collections::BTreeMap<u16, usize>,
    pub latency_ms: Percentiles,
    /// Sales the gateway answered 202.
    pub sales_accepted: i64,
    /// The end-to-end check, when Valkey is reachable (local mode).
    pub pipeline: Option<PipelineCheck>,
    /// Throughput and latency per second.
    pub timeline: Vec<localrun::http_load::Second>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

/// Accepted against counted.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PipelineCheck {
    /// Sales counted during this test (the count after minus before).
    pub sales_counted: i64,
    /// Who counted: Valkey (local), or the consumers' counters (cluster).
    pub counted_by: String,
    pub lost: i64,
    pub duplicated: i64,
    /// Units and amounts agree too (not only the number of sales);
    /// `None` when the engine does not know the payloads (Locust).
    pub aggregates_match: Option<bool>,
    /// From the end of the load until Valkey had counted every sale.
    pub drain_seconds: f64,
    /// Whether the pipeline drained within the timeout.
    pub drained: bool,
    /// From the gateway accepting a sale to its being counted in Valkey,
    /// for the sales of this test (the consumers' histogram buckets, so
    /// each figure is its bucket's upper bound; local mode only).
    pub sale_to_valkey_ms: Option<SaleToValkey>,
    /// The most sales accepted but not yet counted in Valkey at any moment
    /// of the load (sampled four times a second): the pipeline's lag.
    pub max_lag_sales: Option<i64>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SaleToValkey {
    pub sales: u64,
    /// `None`: beyond the highest bucket.
    pub p50: Option<f64>,
    pub p90: Option<f64>,
    pub p99: Option<f64>,
}

/// Percentiles of the sales between two bucket readings.
fn sale_to_valkey(before: &[(f64, f64)], after: &[(f64, f64)]) -> Option<SaleToValkey> {
    let deltas: Vec<(f64, f64)> = after
        .iter()
        .map(|(bound, count)| {
            let earlier = before
                .iter()
                .find(|(b, _)| b == bound)
                .map_or(0.0, |(_, c)| *c);
            (*bound, count - earlier)
        })
        .collect();
    let total = deltas.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let quantile = |q: f64| {
        deltas
            .iter()
            .find(|(_, cumulative)| *cumulative >= q * total)
            .map(|(bound, _)| *bound)
            .filter(|bound| bound.is_finite())
            .map(|seconds| seconds * 1000.0)
    };
    Some(SaleToValkey {
        sales: total as u64,
        p50: quantile(0.5),
        p90: quantile(0.9),
        p99: quantile(0.99),
    })
}

/// How a percentile beyond the consumer's highest bucket (64 s) shows.
const BEYOND_BUCKETS: &str = "> 64000";

/// Which load generator runs.
#[derive(Debug, Clone, PartialEq)]
pub enum Engine {
    /// The Rust generator (testkit's), closed or open loop.
    Builtin,
    /// `locust --headless` with this locustfile, users spawned at this
    /// rate per second; its CSV statistics are read back.
    Locust {
        locustfile: std::path::PathBuf,
        spawn_rate: f64,
    },
}

/// What either engine measured, before the drain check.
pub(crate) struct Measured {
    pub(crate) mode: String,
    pub(crate) seconds: f64,
    pub(crate) statuses: std::collections::BTreeMap<u16, usize>,
    pub(crate) latency_ms: Percentiles,
    pub(crate) accepted_sales: i64,
    /// Units and amounts of the accepted sales, when the engine knows the
    /// payloads (the built-in one does; Locust does not).
    pub(crate) accepted_totals: Option<localrun::totals::Totals>,
    pub(crate) timeline: Vec<localrun::http_load::Second>,
}

/// Runs the load, then (with a probe) waits for the drain and compares.
pub fn run(
    options: &LoadtestOptions,
    probe: Option<&mut dyn PipelineProbe>,
) -> anyhow::Result<LoadtestReport> {
    run_with(options, &Engine::Builtin, probe)
}

/// [`run`] with a chosen engine.
pub fn run_with(
    options: &LoadtestOptions,
    engine: &Engine,
    mut probe: Option<&mut dyn PipelineProbe>,
) -> anyhow::Result<LoadtestReport> {
    options.check()?;
    // The gateway must answer before the clock starts.
    let health = format!("{}/healthz", options.target.trim_end_matches('/'));
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()?
        .get(&health)
        .send()
        .and_then(|r| r.error_for_status())
        .with_context(|| format!("the gateway at {} is not reachable", options.target))?;

    let buckets_before = probe.as_mut().map(|p| p.sale_to_valkey_buckets());
    let before = match probe.as_mut() {
        Some(probe) => Some(probe.counted()?),
        None => None,
    };
    let lag = match probe.as_ref() {
        Some(probe) => Some(LagSampler::start(&options.target, probe.another()?)),
        None => None,
    };
    let measured = match engine {
        Engine::Builtin => run_builtin(options)?,
        Engine::Locust {
            locustfile,
            spawn_rate,
        } => {
            // Locust's own counts miss the requests in flight when it stops
            // its users; the gateway's counter of 202s does not.
            let accepted_before = gateway_sales_accepted(&options.target);
            let mut measured = locust::run(options, locustfile, *spawn_rate)?;
            // Requests Locust abandoned may still be completing: read the
            // counter once it has stopped moving.
            let mut after = gateway_sales_accepted(&options.target);
            loop {
                std::thread::sleep(Duration::from_millis(500));
                let now = gateway_sales_accepted(&options.target);
                if now == after {
                    break;
                }
                after = now;
            }
            if let (Some(before), Some(after)) = (accepted_before, after) {
                measured.accepted_sales = after - before;
            }
            measured
        }
    };
    let max_lag_sales = lag.and_then(LagSampler::finish);
    let mut pipeline = match (probe.as_mut(), before) {
        (Some(probe), Some(before)) => Some(check_drain(
            &mut **probe,
            &before,
            measured.accepted_sales,
            measured.accepted_totals.as_ref(),
            options.drain_timeout,
        )?),
        _ => None,
    };
    if let (Some(check), Some(probe), Some(before)) = (pipeline.as_mut(), probe, buckets_before) {
        check.sale_to_valkey_ms = sale_to_valkey(&before, &probe.sale_to_valkey_buckets());
        check.max_lag_sales = max_lag_sales;
    }
    let requests: usize = measured.statuses.values().sum();
    Ok(LoadtestReport {
        target: options.target.clone(),
        mode: measured.mode,
        users: options.users,
        seconds: measured.seconds,
        requests,
        requests_per_second: requests as f64 / measured.seconds.max(1e-9),
        statuses: measured.statuses,
        latency_ms: measured.latency_ms,
        sales_accepted: measured.accepted_sales,
        pipeline,
        timeline: measured.timeline,
    })
}

/// The gateway's `bf_gateway_sales_accepted_total` (its /metrics), if it
/// answers.
fn gateway_sales_accepted(target: &str) -> Option<i64> {
    let url = format!("{}/metrics", target.trim_end_matches('/'));
    let body = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
        .ok()?
        .get(url)
        .send()
        .ok()?
        .text()
        .ok()?;
    body.contains("bf_gateway_sales_accepted")
        .then(|| localrun::launcher::sum_metric(&body, "bf_gateway_sales_accepted_total") as i64)
}

fn run_builtin(options: &LoadtestOptions) -> anyhow::Result<Measured> {
    let load = localrun::http_load::run(
        options.target.trim_end_matches('/'),
        &localrun::http_load::LoadPlan {
            clients: options.users,
            max_requests: None,
            max_duration: options.duration,
            batch: 1,
            seed: options.seed,
            rate: options.rate,
        },
    )?;
    let quantile = |q: f64| load.latency_us.value_at_quantile(q) as f64 / 1000.0;
    let mut accepted = localrun::totals::Totals::default();
    accepted.merge(&load.accepted);
    Ok(Measured {
        mode: match options.rate {
            Some(rate) => format!("open loop, {rate}/s, up to {} in flight", options.users),
            None => format!("closed loop, {} users", options.users),
        },
        seconds: load.elapsed.as_secs_f64(),
        statuses: load.statuses.clone(),
        latency_ms: Percentiles {
            p50: quantile(0.5),
            p90: quantile(0.9),
            p99: quantile(0.99),
            max: load.latency_us.max() as f64 / 1000.0,
        },
        accepted_sales: accepted.sales,
        accepted_totals: Some(accepted),
        timeline: load.timeline,
    })
}

/// Waits until Valkey's count reaches what was there before plus what was
/// accepted (then one more second, so that duplicates would show), and
/// compares sales, units and amounts.
fn check_drain(
    probe: &mut dyn PipelineProbe,
    before: &Counted,
    accepted_sales: i64,
    accepted: Option<&localrun::totals::Totals>,
    timeout: Duration,
) -> anyhow::Result<PipelineCheck> {
    let started = Instant::now();
    let target = before.sales + accepted_sales;
    let mut drained = false;
    while started.elapsed() < timeout {
        let now = probe.counted()?;
        if now.sales >= target {
            drained = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let drain_seconds = started.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_secs(1));
    let after = probe.counted()?;
    let counted = after.sales - before.sales;
    Ok(PipelineCheck {
        sales_counted: counted,
        counted_by: probe.source().to_string(),
        lost: (accepted_sales - counted).max(0),
        duplicated: (counted - accepted_sales).max(0),
        aggregates_match: match (
            accepted,
            after.units,
            before.units,
            after.amount_cents,
            before.amount_cents,
        ) {
            (
                Some(accepted),
                Some(units),
                Some(units_before),
                Some(amount),
                Some(amount_before),
            ) => Some(
                units - units_before == accepted.units
                    && amount - amount_before == accepted.amount_cents,
            ),
            _ => None,
        },
        drain_seconds,
        drained,
        sale_to_valkey_ms: None,
        max_lag_sales: None,
    })
}

/// Samples, while the load runs, how many accepted sales Valkey has not
/// counted yet: the gateway's counter of 202s against Valkey's count, each
/// relative to its value at the start.
struct LagSampler {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<Option<i64>>,
}

impl LagSampler {
    fn start(target: &str, mut probe: Box<dyn PipelineProbe>) -> LagSampler {
        let target = target.to_string();
        let counted =
            |probe: &mut Box<dyn PipelineProbe>| probe.counted().ok().map(|counted| counted.sales);
        let accepted_start = gateway_sales_accepted(&target);
        let counted_start = counted(&mut probe);
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            let (accepted_start, counted_start) = (accepted_start?, counted_start?);
            let mut max_lag = 0;
            while !stopped.load(std::sync::atomic::Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(250));
                // Accepted first: a sale accepted after this read and
                // counted before the next one cannot make the lag negative.
                let accepted = gateway_sales_accepted(&target);
                let now_counted = counted(&mut probe);
                if let (Some(accepted), Some(now_counted)) = (accepted, now_counted) {
                    let lag = (accepted - accepted_start) - (now_counted - counted_start);
                    max_lag = max_lag.max(lag);
                }
            }
            Some(max_lag)
        });
        LagSampler { stop, thread }
    }

    fn finish(self) -> Option<i64> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().ok().flatten()
    }
}

/// The report as a table for people.
pub fn to_text(report: &LoadtestReport) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "target          {} ({})\n",
        report.target, report.mode
    ));
    out.push_str(&format!(
        "requests        {} in {:.1} s = {:.0}/s\n",
        report.requests, report.seconds, report.requests_per_second
    ));
    let statuses: Vec<String> = report
        .statuses
        .iter()
        .map(|(code, count)| {
            if *code == 0 {
                format!("connection errors: {count}")
            } else {
                format!("{code}: {count}")
            }
        })
        .collect();
    out.push_str(&format!("statuses        {}\n", statuses.join(", ")));
    let l = &report.latency_ms;
    out.push_str(&format!(
        "latency ms      p50 {:.1}  p90 {:.1}  p99 {:.1}  max {:.1}\n",
        l.p50, l.p90, l.p99, l.max
    ));
    out.push_str(&format!("sales accepted  {}\n", report.sales_accepted));
    match &report.pipeline {
        Some(check) => {
            out.push_str(&format!(
                "sales counted   {} (by {})\n",
                check.sales_counted, check.counted_by
            ));
            out.push_str(&format!("lost            {}\n", check.lost));
            out.push_str(&format!("duplicated      {}\n", check.duplicated));
            out.push_str(&format!(
                "aggregates      {}\n",
                match check.aggregates_match {
                    Some(true) => "units and amounts match",
                    Some(false) => "units or amounts DIFFER",
                    None => "not checked (the engine does not know the payloads, or the count is not Valkey's)",
                }
            ));
            out.push_str(&format!(
                "drain time      {:.1} s{}\n",
                check.drain_seconds,
                if check.drained { "" } else { " (TIMED OUT)" }
            ));
            if let Some(lag) = check.max_lag_sales {
                out.push_str(&format!(
                    "lag             at most {lag} sales accepted and not yet counted\n"
                ));
            }
            if let Some(latency) = &check.sale_to_valkey_ms {
                let show =
                    |v: Option<f64>| v.map_or(BEYOND_BUCKETS.to_string(), |v| format!("{v:.0}"));
                out.push_str(&format!(
                    "sale to Valkey  p50 <= {} ms  p90 <= {} ms  p99 <= {} ms ({} sales)\n",
                    show(latency.p50),
                    show(latency.p90),
                    show(latency.p99),
                    latency.sales
                ));
            }
        }
        None => out.push_str("sales counted   (Valkey not reachable from here: not checked)\n"),
    }
    out
}

/// Whether the report proves nothing was lost or duplicated.
pub fn is_exact(report: &LoadtestReport) -> bool {
    report.pipeline.as_ref().is_some_and(|check| {
        check.drained
            && check.lost == 0
            && check.duplicated == 0
            && check.aggregates_match != Some(false)
    })
}

/// An SVG chart of the test over time: requests answered per second
/// (bars) and mean and max latency (lines).
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
    let y_rate = |v: f64| top + plot_height - v / max_rate * plot_height;
    let y_latency = |v: f64| top + plot_height - v / max_latency * plot_height;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"780\" height=\"320\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <text x=\"10\" y=\"20\" font-size=\"14\">{} ({}): requests/s (bars, max {max_rate:.0}), mean latency (green) and max latency (red, max {max_latency:.0} ms)</text>\n\
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

/// One row of the replica comparison.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaRun {
    pub consumers: usize,
    pub report: LoadtestReport,
}

impl ReplicaRun {
    /// Sales counted per second from the start of the load until Valkey
    /// had counted them all: what the consumers sustained end to end.
    pub fn end_to_end_per_second(&self) -> f64 {
        match &self.report.pipeline {
            Some(check) => {
                check.sales_counted as f64 / (self.report.seconds + check.drain_seconds).max(1e-9)
            }
            None => 0.0,
        }
    }
}

/// The replica comparison as a Markdown table.
pub fn replica_table(runs: &[ReplicaRun]) -> String {
    let mut out = String::from(
        "| consumers | requests/s | p99 ms | accepted | counted | lost | duplicated | drain s | end-to-end sales/s | sale→Valkey p99 ms | max lag (sales) |\n|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for run in runs {
        let check = run.report.pipeline.as_ref();
        out.push_str(&format!(
            "| {} | {:.0} | {:.1} | {} | {} | {} | {} | {} | {:.0} | {} | {} |\n",
            run.consumers,
            run.report.requests_per_second,
            run.report.latency_ms.p99,
            run.report.sales_accepted,
            check.map_or("-".into(), |c| c.sales_counted.to_string()),
            check.map_or("-".into(), |c| c.lost.to_string()),
            check.map_or("-".into(), |c| c.duplicated.to_string()),
            check.map_or("-".into(), |c| format!("{:.1}", c.drain_seconds)),
            run.end_to_end_per_second(),
            check
                .and_then(|c| c.sale_to_valkey_ms.as_ref())
                .map_or("-".into(), |l| l
                    .p99
                    .map_or(BEYOND_BUCKETS.into(), |v| format!("<= {v:.0}"))),
            check
                .and_then(|c| c.max_lag_sales)
                .map_or("-".into(), |lag| lag.to_string()),
        ));
    }
    out
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

/// Parses `1,2,4`.
pub fn parse_replicas(text: &str) -> anyhow::Result<Vec<usize>> {
    let counts: Vec<usize> = text
        .split(',')
        .map(|part| {
            part.trim()
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=64).contains(n))
                .with_context(|| {
                    format!("--consumer-replicas: {part:?} is not a count between 1 and 64")
                })
        })
        .collect::<anyhow::Result<_>>()?;
    anyhow::ensure!(!counts.is_empty(), "--consumer-replicas is empty");
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(consumers: usize, counted: i64, drain: f64) -> ReplicaRun {
        ReplicaRun {
            consumers,
            report: LoadtestReport {
                target: "http://127.0.0.1:1".into(),
                users: 10,
                seconds: 10.0,
                requests: 1000,
                requests_per_second: 100.0,
                statuses: [(202, 1000)].into(),
                latency_ms: Percentiles {
                    p50: 1.0,
                    p90: 2.0,
                    p99: 3.0,
                    max: 4.0,
                },
                sales_accepted: 1000,
                mode: "closed loop, 10 users".into(),
                timeline: vec![
                    localrun::http_load::Second {
                        completed: 100,
                        accepted: 100,
                        mean_latency_ms: 1.0,
                        max_latency_ms: 4.0,
                    };
                    10
                ],
                pipeline: Some(PipelineCheck {
                    sales_counted: counted,
                    counted_by: "Valkey".into(),
                    lost: 1000 - counted,
                    duplicated: 0,
                    aggregates_match: Some(counted == 1000),
                    drain_seconds: drain,
                    drained: true,
                    sale_to_valkey_ms: None,
                    max_lag_sales: Some(250),
                }),
            },
        }
    }

    #[test]
    fn the_table_and_chart_show_every_run() {
        let runs = [run(1, 1000, 10.0), run(2, 1000, 0.0)];
        assert_eq!(runs[0].end_to_end_per_second(), 50.0);
        assert_eq!(runs[1].end_to_end_per_second(), 100.0);
        let table = replica_table(&runs);
        assert!(
            table.contains("| 1 | 100 | 3.0 | 1000 | 1000 | 0 | 0 | 10.0 | 50 | - | 250 |"),
            "{table}"
        );
        let timeline = timeline_chart(&runs[0].report);
        assert_eq!(timeline.matches("<rect").count(), 10, "{timeline}");
        assert_eq!(timeline.matches("<polyline").count(), 2, "{timeline}");
        let chart = replica_chart(&runs);
        assert!(
            chart.starts_with("<svg") && chart.contains("2 consumers"),
            "{chart}"
        );
        assert!(!is_exact(&run(1, 999, 1.0).report));
        assert!(is_exact(&runs[0].report));
    }

    #[test]
    fn sale_to_valkey_percentiles_come_from_bucket_deltas() {
        let before = [
            (0.001, 10.0),
            (0.002, 10.0),
            (0.004, 10.0),
            (f64::INFINITY, 10.0),
        ];
        // 100 new sales: 50 within 1 ms, 40 within 2 ms, 9 within 4 ms, 1 beyond.
        let after = [
            (0.001, 60.0),
            (0.002, 100.0),
            (0.004, 109.0),
            (f64::INFINITY, 110.0),
        ];
        let latency = sale_to_valkey(&before, &after).unwrap();
        assert_eq!(latency.sales, 100);
        assert_eq!(latency.p50, Some(1.0));
        assert_eq!(latency.p90, Some(2.0));
        assert_eq!(latency.p99, Some(4.0));
        let none_new = sale_to_valkey(&before, &before);
        assert!(none_new.is_none());
    }

    #[test]
    fn replica_lists_parse_or_say_what_is_wrong() {
        assert_eq!(parse_replicas("1,2,4").unwrap(), vec![1, 2, 4]);
        let error = parse_replicas("1,zero").unwrap_err().to_string();
        assert!(error.contains("\"zero\""), "{error}");
        assert!(parse_replicas("0").is_err());
    }
}
