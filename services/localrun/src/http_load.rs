//! A small HTTP load generator for tests and benchmarks: N concurrent
//! clients (closed loop) posting sales to the gateway, bounded by a count or
//! a duration, recording every status and latency.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;

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
    /// Open loop: requests per second, each due at a fixed time whether or
    /// not earlier ones were answered (`None`: closed loop). A request's
    /// latency counts from when it was due, not from when a free client got
    /// to send it, so a stalled server shows up in the percentiles instead
    /// of being hidden by fewer requests (coordinated omission).
    pub rate: Option<f64>,
}

/// What happened in one second of the test.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Second {
    /// Requests answered (any status) during this second.
    pub completed: u64,
    /// Of those, answered 202.
    pub accepted: u64,
    pub mean_latency_ms: f64,
    pub max_latency_ms: f64,
    /// The median and 99th percentile of this second's latencies
    /// (nearest rank).
    #[serde(default)]
    pub p50_latency_ms: f64,
    #[serde(default)]
    pub p99_latency_ms: f64,
    /// Requests answered during this second, per HTTP status (0: no
    /// answer: the connection failed or timed out), so that a window of
    /// 503s shows when it began and ended.
    #[serde(default)]
    pub statuses: BTreeMap<u16, u64>,
}

impl Second {
    /// Requests this second not answered 202 (errors, 503s, no answer).
    pub fn failed(&self) -> u64 {
        self.completed - self.accepted
    }
}

pub struct LoadReport {
    /// Sales answered 202, as sent.
    pub accepted: Vec<SaleBody>,
    /// Requests per HTTP status (0 = transport error).
    pub statuses: BTreeMap<u16, usize>,
    /// Request latencies in microseconds.
    pub latency_us: Histogram<u64>,
    pub elapsed: Duration,
    /// Per second since the start.
    pub timeline: Vec<Second>,
}

/// What one client saw in one second; latencies in µs.
#[derive(Clone, Default)]
struct Bucket {
    statuses: BTreeMap<u16, u64>,
    latency_sum_us: u64,
    latency_max_us: u64,
    /// Every latency of the second (4 bytes a request), for its percentiles.
    latencies_us: Vec<u32>,
}

impl Bucket {
    fn add(&mut self, other: &Bucket) {
        for (status, count) in &other.statuses {
            *self.statuses.entry(*status).or_default() += count;
        }
        self.latency_sum_us += other.latency_sum_us;
        self.latency_max_us = self.latency_max_us.max(other.latency_max_us);
        self.latencies_us.extend_from_slice(&other.latencies_us);
    }

    fn into_second(mut self) -> Second {
        let completed: u64 = self.statuses.values().sum();
        self.latencies_us.sort_unstable();
        let percentile = |p: f64| nearest_rank(&self.latencies_us, p) as f64 / 1000.0;
        Second {
            p50_latency_ms: percentile(0.50),
            p99_latency_ms: percentile(0.99),
            completed,
            accepted: self.statuses.get(&202).copied().unwrap_or(0),
            mean_latency_ms: if completed == 0 {
                0.0
            } else {
                self.latency_sum_us as f64 / completed as f64 / 1000.0
            },
            max_latency_ms: self.latency_max_us as f64 / 1000.0,
            statuses: self.statuses,
        }
    }
}

fn record(buckets: &mut Vec<Bucket>, second: usize, status: u16, latency_us: u64) {
    if buckets.len() <= second {
        buckets.resize(second + 1, Bucket::default());
    }
    let bucket = &mut buckets[second];
    *bucket.statuses.entry(status).or_default() += 1;
    bucket.latency_sum_us += latency_us;
    bucket.latency_max_us = bucket.latency_max_us.max(latency_us);
    bucket
        .latencies_us
        .push(u32::try_from(latency_us).unwrap_or(u32::MAX));
}

/// The nearest-rank percentile `p` (0 to 1) of sorted values; 0 when empty.
pub fn nearest_rank(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// How long a client waits after a request that got no answer before it
/// sends the next: a gateway that is down refuses connections at once,
/// and without a pause the clients would spin, sending thousands of
/// requests a second that only measure the refusals.
const PAUSE_AFTER_NO_ANSWER: Duration = Duration::from_millis(50);

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
    let target = Target::parse(&base_url)?;
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let deadline = started + plan.max_duration;
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..plan.clients {
        let (next, target, plan) = (next.clone(), target.clone(), plan.clone());
        workers.spawn(async move {
            let mut accepted = Vec::new();
            let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
            let mut latency_us = Histogram::<u64>::new(3).expect("3 significant figures is valid");
            let mut connection: Option<SendRequest<Full<Bytes>>> = None;
            let mut buckets: Vec<Bucket> = Vec::new();
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if plan.max_requests.is_some_and(|max| index >= max) || Instant::now() >= deadline {
                    break;
                }
                // Open loop: wait for this request's due time.
                let due = plan
                    .rate
                    .map(|rate| started + Duration::from_secs_f64(index as f64 / rate));
                if let Some(due) = due {
                    if due >= deadline {
                        break;
                    }
                    tokio::time::sleep_until(due.into()).await;
                }
                let mut generator = SaleGenerator::new(
                    plan.seed.wrapping_mul(1_000_003).wrapping_add(index as u64),
                );
                let sales: Vec<SaleBody> = (0..plan.batch.max(1))
                    .map(|_| generator.next_sale())
                    .collect();
                let (path, body) = if plan.batch <= 1 {
                    ("/venta", serde_json::to_vec(&sales[0]))
                } else {
                    ("/ventas", serde_json::to_vec(&sales))
                };
                let body = body.expect("sales serialize to JSON");
                let sent = due.unwrap_or_else(Instant::now);
                let status = match target.post(&mut connection, path, body).await {
                    Ok(status) => status,
                    Err(_) => {
                        connection = None;
                        0
                    }
                };
                let took = sent.elapsed().as_micros() as u64;
                let _ = latency_us.record(took);
                let second = started.elapsed().as_secs() as usize;
                record(&mut buckets, second, status, took);
                *statuses.entry(status).or_default() += 1;
                if status == 202 {
                    accepted.extend(sales);
                }
                if status == 0 {
                    tokio::time::sleep(PAUSE_AFTER_NO_ANSWER).await;
                }
            }
            (accepted, statuses, latency_us, buckets)
        });
    }
    let mut report = LoadReport {
        accepted: Vec::new(),
        statuses: BTreeMap::new(),
        latency_us: Histogram::new(3)?,
        elapsed: Duration::ZERO,
        timeline: Vec::new(),
    };
    let mut all_buckets: Vec<Bucket> = Vec::new();
    while let Some(joined) = workers.join_next().await {
        let (accepted, statuses, latency_us, buckets) = joined?;
        if all_buckets.len() < buckets.len() {
            all_buckets.resize(buckets.len(), Bucket::default());
        }
        for (total, bucket) in all_buckets.iter_mut().zip(&buckets) {
            total.add(bucket);
        }
        report.accepted.extend(accepted);
        for (status, count) in statuses {
            *report.statuses.entry(status).or_default() += count;
        }
        report.latency_us.add(latency_us)?;
    }
    report.elapsed = started.elapsed();
    report.timeline = all_buckets.into_iter().map(Bucket::into_second).collect();
    Ok(report)
}

/// Where the clients send: a plain `http://host:port` base URL.
///
/// Each client keeps one HTTP/1.1 connection of its own (hyper's connection
/// API, no pool), so the generator spends as little CPU as it can: on this
/// 2-core machine it shares the cores with everything it measures.
#[derive(Clone)]
struct Target {
    address: String,
    authority: String,
}

impl Target {
    fn parse(base_url: &str) -> anyhow::Result<Self> {
        let authority = base_url
            .strip_prefix("http://")
            .ok_or_else(|| anyhow::anyhow!("load target {base_url:?} is not an http:// URL"))?
            .trim_end_matches('/')
            .to_string();
        anyhow::ensure!(
            !authority.is_empty() && !authority.contains('/'),
            "load target {base_url:?} must be http://host:port with no path"
        );
        Ok(Self {
            address: authority.clone(),
            authority,
        })
    }

    /// Posts one JSON body, (re)connecting when needed; returns the status.
    async fn post(
        &self,
        connection: &mut Option<SendRequest<Full<Bytes>>>,
        path: &str,
        body: Vec<u8>,
    ) -> anyhow::Result<u16> {
        if connection.as_ref().is_none_or(|sender| sender.is_closed()) {
            *connection = Some(self.connect().await?);
        }
        let sender = connection.as_mut().expect("connected above");
        sender.ready().await?;
        let request = hyper::Request::post(path)
            .header(hyper::header::HOST, &self.authority)
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))?;
        let response = tokio::time::timeout(REQUEST_TIMEOUT, async {
            let response = sender.send_request(request).await?;
            let status = response.status().as_u16();
            response.into_body().collect().await?;
            anyhow::Ok(status)
        })
        .await??;
        Ok(response)
    }

    async fn connect(&self) -> anyhow::Result<SendRequest<Full<Bytes>>> {
        let stream = tokio::net::TcpStream::connect(&self.address).await?;
        stream.set_nodelay(true)?;
        let (sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        Ok(sender)
    }
}

const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let sorted: Vec<u32> = (1..=100).collect();
        assert_eq!(nearest_rank(&sorted, 0.50), 50);
        assert_eq!(nearest_rank(&sorted, 0.99), 99);
        assert_eq!(nearest_rank(&[7], 0.99), 7);
        assert_eq!(nearest_rank(&[], 0.5), 0);
        let mut buckets = Vec::new();
        for latency in [1_000, 3_000, 2_000, 100_000] {
            record(&mut buckets, 0, 202, latency);
        }
        let second = buckets.remove(0).into_second();
        assert_eq!(second.p50_latency_ms, 2.0);
        assert_eq!(second.p99_latency_ms, 100.0);
    }
}
