//! A small HTTP load generator for tests and benchmarks: N concurrent
//! clients (closed loop) posting sales to the gateway, bounded by a count or
//! a duration, recording every status and latency.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::catalog::{SaleBody, SaleGenerator};

#[derive(Clone, Debug)]
pub struct LoadPlan {
    /// Concurrent clients.
    pub clients: usize,
    /// Stop after this many requests (across clients)…
    pub max_requests: Option<usize>,
    /// …or after this long, whichever first.
    pub max_duration: Duration,
    /// Sales per request: 1 posts to /venta, more to /ventas.
    pub batch: usize,
    pub seed: u64,
}

pub struct LoadReport {
    /// Sales answered 202, as sent.
    pub accepted: Vec<SaleBody>,
    /// Requests per HTTP status (0 = transport error).
    pub statuses: BTreeMap<u16, usize>,
    /// Request latencies in microseconds.
    pub latency_us: Histogram<u64>,
    pub elapsed: Duration,
}

impl LoadReport {
    pub fn requests(&self) -> usize {
        self.statuses.values().sum()
    }
}

/// Runs the plan against `base_url` on its own runtime (call from sync code).
pub fn run(base_url: &str, plan: &LoadPlan) -> anyhow::Result<LoadReport> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run_async(base_url.to_string(), plan.clone()))
}

async fn run_async(base_url: String, plan: LoadPlan) -> anyhow::Result<LoadReport> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(plan.clients)
        .timeout(Duration::from_secs(30))
        .build()?;
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let deadline = started + plan.max_duration;
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..plan.clients {
        let (client, next, base_url, plan) =
            (client.clone(), next.clone(), base_url.clone(), plan.clone());
        workers.spawn(async move {
            let mut accepted = Vec::new();
            let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
            let mut latency_us = Histogram::<u64>::new(3).expect("3 significant figures is valid");
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if plan.max_requests.is_some_and(|max| index >= max) || Instant::now() >= deadline {
                    break;
                }
                let mut generator = SaleGenerator::new(
                    plan.seed.wrapping_mul(1_000_003).wrapping_add(index as u64),
                );
                let sales: Vec<SaleBody> = (0..plan.batch.max(1))
                    .map(|_| generator.next_sale())
                    .collect();
                let request = if plan.batch <= 1 {
                    client.post(format!("{base_url}/venta")).json(&sales[0])
                } else {
                    client.post(format!("{base_url}/ventas")).json(&sales)
                };
                let sent = Instant::now();
                let status = match request.send().await {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        let _ = response.bytes().await;
                        status
                    }
                    Err(_) => 0,
                };
                let _ = latency_us.record(sent.elapsed().as_micros() as u64);
                *statuses.entry(status).or_default() += 1;
                if status == 202 {
                    accepted.extend(sales);
                }
            }
            (accepted, statuses, latency_us)
        });
    }
    let mut report = LoadReport {
        accepted: Vec::new(),
        statuses: BTreeMap::new(),
        latency_us: Histogram::new(3)?,
        elapsed: Duration::ZERO,
    };
    while let Some(joined) = workers.join_next().await {
        let (accepted, statuses, latency_us) = joined?;
        report.accepted.extend(accepted);
        for (status, count) in statuses {
            *report.statuses.entry(status).or_default() += count;
        }
        report.latency_us.add(latency_us)?;
    }
    report.elapsed = started.elapsed();
    Ok(report)
}
