//! `bfctl loadtest`: Black Friday load against the gateway, then the proof
//! that nothing was lost: after the pipeline drains, the sales Valkey
//! counted are compared with the sales the gateway accepted.
//!
//! The built-in engine is closed loop: `users` clients, each sending its
//! next sale as soon as the previous one is answered, for `duration`. Sales
//! follow the Locust file's mix (categories 1-4 with their products, price
//! and quantity; `localrun::catalog`). Latencies go into an HDR histogram.

pub mod chaos;
pub mod chart;
pub mod drain;
pub mod load;
pub mod locust;
pub mod options;
pub mod probe;
pub mod report;

use std::time::Duration;

use anyhow::Context;

pub use chart::{png_path, replica_svg, timeline_svg, write_replica_chart, write_timeline_chart};
pub use options::{Engine, LoadtestOptions, parse_replicas};
pub use report::{
    LoadtestReport, Percentiles, PipelineCheck, ReplicaRun, SaleToValkey, is_exact, replica_table,
    to_text,
};

use drain::{LagSampler, Sent, check_drain, sale_to_valkey};
use load::{Measured, gateway_sales_accepted, run_builtin};
use probe::PipelineProbe;

/// Runs the load, then (with a probe) waits for the drain and compares.
pub fn run(
    options: &LoadtestOptions,
    probe: Option<&mut dyn PipelineProbe>,
) -> anyhow::Result<LoadtestReport> {
    run_with(options, &Engine::Builtin, probe, None)
}

/// [`run`] with a chosen engine, and faults injected while the load runs
/// (`chaos`, which needs a probe: recovery is sales counted again).
pub fn run_with(
    options: &LoadtestOptions,
    engine: &Engine,
    mut probe: Option<&mut dyn PipelineProbe>,
    chaos: Option<chaos::Chaos>,
) -> anyhow::Result<LoadtestReport> {
    options.check()?;
    anyhow::ensure!(
        chaos.is_none() || probe.is_some(),
        "--chaos needs to read the pipeline's count (the local pipeline, or --cluster)"
    );
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
    let started = std::time::Instant::now();
    let lag = match probe.as_ref() {
        Some(probe) => Some(LagSampler::start(
            &options.target,
            probe.another()?,
            started,
        )),
        None => None,
    };
    let chaos = match (chaos, probe.as_ref()) {
        (Some(chaos), Some(probe)) => Some(chaos::ChaosRun::start(
            chaos,
            probe.another()?,
            options.target.clone(),
            started,
        )),
        _ => None,
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
    let mut faults = chaos.map(chaos::ChaosRun::finish).unwrap_or_default();
    chaos::error_windows(&mut faults, &measured.timeline);
    let sampled = lag.map(LagSampler::finish).unwrap_or_default();
    let mut pipeline = match (probe.as_mut(), before) {
        (Some(probe), Some(before)) => Some(check_drain(
            &mut **probe,
            &before,
            &Sent {
                accepted_sales: measured.accepted_sales,
                accepted: measured.accepted_totals.as_ref(),
                unconfirmed: unconfirmed(&measured.statuses),
            },
            options.drain_timeout,
        )?),
        _ => None,
    };
    if let (Some(check), Some(probe), Some(before)) = (pipeline.as_mut(), probe, buckets_before) {
        check.sale_to_valkey_ms = sale_to_valkey(&before, &probe.sale_to_valkey_buckets());
        check.max_lag_sales = sampled.max_lag_sales;
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
        pipeline_samples: sampled.samples,
        faults,
    })
}

/// Requests answered 5xx or not at all (status 0): the gateway did not
/// confirm their sales, which may have been written all the same.
fn unconfirmed(statuses: &std::collections::BTreeMap<u16, usize>) -> i64 {
    statuses
        .iter()
        .filter(|(status, _)| **status == 0 || (500..600).contains(*status))
        .map(|(_, count)| *count as i64)
        .sum()
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
                        p50_latency_ms: 1.0,
                        p99_latency_ms: 3.0,
                        statuses: [(202, 100)].into(),
                    };
                    10
                ],
                pipeline_samples: Vec::new(),
                faults: Vec::new(),
                pipeline: Some(PipelineCheck {
                    sales_counted: counted,
                    counted_by: "Valkey".into(),
                    pending: Some(0),
                    lost: 1000 - counted,
                    duplicated: 0,
                    unconfirmed: 0,
                    unconfirmed_written: 0,
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
        let timeline = timeline_svg(&runs[0].report).unwrap();
        for label in [
            "requests/s",
            "latency (ms, log scale)",
            "sales",
            "time since the load started (s)",
            "p99 latency",
            "answered 202 (accepted)",
        ] {
            assert!(timeline.contains(label), "{label}: {timeline}");
        }
        let chart = replica_svg(&runs).unwrap();
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
