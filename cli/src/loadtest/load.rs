//! The built-in load generator (closed or open loop, sales in the
//! Locustfile's mix, latencies in an HDR histogram; `localrun::http_load`)
//! and what either engine measured.

use std::time::Duration;

use super::options::LoadtestOptions;
use super::report::Percentiles;

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

/// The gateway's `bf_gateway_sales_accepted_total` (its /metrics), if it
/// answers.
pub(super) fn gateway_sales_accepted(target: &str) -> Option<i64> {
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

pub(super) fn run_builtin(options: &LoadtestOptions) -> anyhow::Result<Measured> {
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
