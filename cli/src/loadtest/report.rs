//! What a load test found, as data (`--output json`) and as text: the
//! gateway's statuses and latencies, and the pipeline check (accepted ==
//! counted, nothing lost or duplicated); the replica comparison's table.

use serde::Serialize;

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
    /// The end-to-end check, when the pipeline's count can be read (Valkey
    /// locally; on a cluster, the consumers' view of Valkey's count).
    pub pipeline: Option<PipelineCheck>,
    /// Throughput, latency and statuses per second.
    pub timeline: Vec<localrun::http_load::Second>,
    /// Sales pending in Kafka over time (with a probe that can tell).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pipeline_samples: Vec<PipelineSample>,
    /// With `--chaos`: each fault, when, what it did, how long the
    /// pipeline took to be whole again.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub faults: Vec<super::chaos::FaultReport>,
}

/// The pipeline at one moment of the load.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PipelineSample {
    /// Seconds since the load started.
    pub second: f64,
    /// Sales in Kafka not yet applied (`None`: could not be read).
    pub pending: Option<i64>,
    /// Sales the pipeline counted since the load started (against the
    /// sales accepted by then, the lag).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub counted: Option<i64>,
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
    /// In Kafka, not yet applied to Valkey, when the verdict was read
    /// (`None`: not known). Exact locally (end offsets against the offsets
    /// stored in Valkey); on a cluster the consumers' lag gauge, seconds old.
    pub pending: Option<i64>,
    /// Accepted and neither counted nor pending.
    pub lost: i64,
    /// Counted beyond the accepted and the unconfirmed.
    pub duplicated: i64,
    /// Sales answered 5xx or not at all: the client was not told they
    /// were written, and may have retried.
    pub unconfirmed: i64,
    /// Of those, how many were written all the same (counted beyond the
    /// accepted): not duplicates, since no client retried them.
    pub unconfirmed_written: i64,
    /// Units and amounts agree too (not only the number of sales);
    /// `None` when the engine does not know the payloads (Locust).
    pub aggregates_match: Option<bool>,
    /// From the end of the load until Valkey had counted every sale.
    pub drain_seconds: f64,
    /// Whether the pipeline drained within the timeout.
    pub drained: bool,
    /// From the gateway accepting a sale to its being counted in Valkey,
    /// for the sales of this test (the consumers' histogram buckets, so
    /// each figure is its bucket's upper bound; read from the local
    /// consumers or, on a cluster, the consumer pods through the API server).
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

/// How a percentile beyond the consumer's highest bucket (64 s) shows.
pub(super) const BEYOND_BUCKETS: &str = "> 64000";

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
    if let Some(windows) = failing_seconds(&report.timeline) {
        out.push_str(&format!("not 202 at     {windows}\n"));
    }
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
            out.push_str(&format!(
                "pending         {}\n",
                check.pending.map_or(
                    "not known (the broker's offsets could not be read)".to_string(),
                    |pending| format!("{pending} (in Kafka, not yet applied)")
                )
            ));
            out.push_str(&format!("lost            {}\n", check.lost));
            out.push_str(&format!("duplicated      {}\n", check.duplicated));
            if check.unconfirmed > 0 {
                out.push_str(&format!(
                    "unconfirmed     {} answered 5xx or not at all; {} of them written all the same\n",
                    check.unconfirmed, check.unconfirmed_written
                ));
            }
            out.push_str(&format!(
                "aggregates      {}\n",
                match check.aggregates_match {
                    Some(true) => "units and amounts match",
                    Some(false) => "units or amounts DIFFER",
                    None => "not checked (the engine does not know the payloads, the count is not Valkey's, or unconfirmed sales were written)",
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
    if !report.faults.is_empty() {
        out.push_str(&super::chaos::faults_text(&report.faults));
    }
    out
}

/// The seconds with answers other than 202, each with its statuses
/// (`12 s: 503 x 340, no answer x 5; 13 s: ...`), `None` when every answer
/// was a 202: where a window of 503s began and ended.
pub fn failing_seconds(timeline: &[localrun::http_load::Second]) -> Option<String> {
    let seconds: Vec<String> = timeline
        .iter()
        .enumerate()
        .filter(|(_, second)| second.failed() > 0)
        .map(|(index, second)| {
            let statuses: Vec<String> = second
                .statuses
                .iter()
                .filter(|(status, _)| **status != 202)
                .map(|(status, count)| match status {
                    0 => format!("no answer x {count}"),
                    _ => format!("{status} x {count}"),
                })
                .collect();
            let statuses = if statuses.is_empty() {
                format!("{} failed", second.failed())
            } else {
                statuses.join(", ")
            };
            format!("{index} s: {statuses}")
        })
        .collect();
    (!seconds.is_empty()).then(|| seconds.join("; "))
}

/// Whether the report proves nothing was lost or duplicated (sales still
/// pending when the drain timed out are neither; units and amounts that
/// differ are a wrong count).
pub fn is_exact(report: &LoadtestReport) -> bool {
    report.pipeline.as_ref().is_some_and(|check| {
        check.lost == 0 && check.duplicated == 0 && check.aggregates_match != Some(false)
    })
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
