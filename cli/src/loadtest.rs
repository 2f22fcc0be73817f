//! `bfctl loadtest`: Black Friday load against the gateway, then the proof
//! that nothing was lost: after the pipeline drains, the sales Valkey
//! counted are compared with the sales the gateway accepted.
//!
//! The built-in engine is closed loop: `users` clients, each sending its
//! next sale as soon as the previous one is answered, for `duration`. Sales
//! follow the Locust file's mix (categories 1-4 with their products, price
//! and quantity; `testkit::catalog`). Latencies go into an HDR histogram.

use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;

use crate::local::LocalState;

#[derive(Debug, Clone)]
pub struct LoadtestOptions {
    /// `http://host:port` of the gateway.
    pub target: String,
    pub users: usize,
    pub duration: Duration,
    /// How long to wait for the pipeline to drain afterwards.
    pub drain_timeout: Duration,
    pub seed: u64,
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
    /// Sales Valkey counted during this test (its count after minus before).
    pub sales_counted: i64,
    pub lost: i64,
    pub duplicated: i64,
    /// Units and amounts agree too (not only the number of sales).
    pub aggregates_match: bool,
    /// From the end of the load until Valkey had counted every sale.
    pub drain_seconds: f64,
    /// Whether the pipeline drained within the timeout.
    pub drained: bool,
}

/// Runs the load, then (with `valkey`) waits for the drain and compares.
pub fn run(
    options: &LoadtestOptions,
    local: Option<&LocalState>,
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

    let mut valkey = local.map(LocalState::valkey).transpose()?;
    let before = match valkey.as_mut() {
        Some(connection) => Some(testkit::totals::Totals::read(connection)?),
        None => None,
    };
    let load = testkit::http_load::run(
        options.target.trim_end_matches('/'),
        &testkit::http_load::LoadPlan {
            clients: options.users,
            max_requests: None,
            max_duration: options.duration,
            batch: 1,
            seed: options.seed,
        },
    )?;
    let seconds = load.elapsed.as_secs_f64();
    let quantile = |q: f64| load.latency_us.value_at_quantile(q) as f64 / 1000.0;
    let mut accepted = testkit::totals::Totals::default();
    accepted.merge(&load.accepted);

    let pipeline = match (valkey.as_mut(), before) {
        (Some(connection), Some(before)) => Some(check_drain(
            connection,
            &before,
            &accepted,
            options.drain_timeout,
        )?),
        _ => None,
    };
    Ok(LoadtestReport {
        target: options.target.clone(),
        users: options.users,
        seconds,
        requests: load.requests(),
        requests_per_second: load.requests() as f64 / seconds.max(1e-9),
        statuses: load.statuses.clone(),
        latency_ms: Percentiles {
            p50: quantile(0.5),
            p90: quantile(0.9),
            p99: quantile(0.99),
            max: load.latency_us.max() as f64 / 1000.0,
        },
        sales_accepted: accepted.sales,
        pipeline,
    })
}

/// Waits until Valkey's count reaches what was there before plus what was
/// accepted (then one more second, so that duplicates would show), and
/// compares sales, units and amounts.
fn check_drain(
    valkey: &mut redis::Connection,
    before: &testkit::totals::Totals,
    accepted: &testkit::totals::Totals,
    timeout: Duration,
) -> anyhow::Result<PipelineCheck> {
    let started = Instant::now();
    let target = before.sales + accepted.sales;
    let mut drained = false;
    while started.elapsed() < timeout {
        let now = testkit::totals::Totals::read(valkey)?;
        if now.sales >= target {
            drained = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let drain_seconds = started.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_secs(1));
    let after = testkit::totals::Totals::read(valkey)?;
    let counted = after.sales - before.sales;
    Ok(PipelineCheck {
        sales_counted: counted,
        lost: (accepted.sales - counted).max(0),
        duplicated: (counted - accepted.sales).max(0),
        aggregates_match: after.units - before.units == accepted.units
            && after.amount_cents - before.amount_cents == accepted.amount_cents,
        drain_seconds,
        drained,
    })
}

/// The report as a table for people.
pub fn to_text(report: &LoadtestReport) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "target          {} ({} users, closed loop)\n",
        report.target, report.users
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
            out.push_str(&format!("sales counted   {}\n", check.sales_counted));
            out.push_str(&format!("lost            {}\n", check.lost));
            out.push_str(&format!("duplicated      {}\n", check.duplicated));
            out.push_str(&format!(
                "aggregates      {}\n",
                if check.aggregates_match {
                    "units and amounts match"
                } else {
                    "units or amounts DIFFER"
                }
            ));
            out.push_str(&format!(
                "drain time      {:.1} s{}\n",
                check.drain_seconds,
                if check.drained { "" } else { " (TIMED OUT)" }
            ));
        }
        None => out.push_str("sales counted   (Valkey not reachable from here: not checked)\n"),
    }
    out
}

/// Whether the report proves nothing was lost or duplicated.
pub fn is_exact(report: &LoadtestReport) -> bool {
    report.pipeline.as_ref().is_some_and(|check| {
        check.drained && check.lost == 0 && check.duplicated == 0 && check.aggregates_match
    })
}
