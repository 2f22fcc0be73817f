//! The whole pipeline on this machine with a short load test: the interim main
//! job until `bfctl up --local` and `bfctl loadtest` exist (issue 6).
//!
//! Starts tansu, Valkey, producers, a gateway and consumers on 127.0.0.1,
//! sends Black Friday sales for `--seconds`, waits for the pipeline to drain
//! and compares what was accepted with what Valkey counted.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use testkit::http_load::{self, LoadPlan};
use testkit::pipeline::{Pipeline, PipelineOptions};
use testkit::totals::{Totals, wait_for_totals};

#[derive(Parser)]
struct Args {
    /// How long to send load.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Concurrent HTTP clients.
    #[arg(long, default_value_t = 200)]
    clients: usize,
    #[arg(long, default_value_t = 2)]
    producers: usize,
    #[arg(long, default_value_t = 2)]
    consumers: usize,
    /// Where state and logs go (emptied first).
    #[arg(long, default_value = ".bfctl/demo")]
    dir: PathBuf,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.dir.exists() {
        std::fs::remove_dir_all(&args.dir)
            .with_context(|| format!("clearing {}", args.dir.display()))?;
    }
    std::fs::create_dir_all(&args.dir)?;
    let dir = std::fs::canonicalize(&args.dir)?;
    println!(
        "starting broker, valkey, {} producers, gateway, {} consumers (logs in {})",
        args.producers,
        args.consumers,
        dir.display()
    );
    let pipeline = Pipeline::start_in(
        &dir,
        PipelineOptions {
            producers: args.producers,
            consumers: args.consumers,
            ..PipelineOptions::default()
        },
    )?;
    let url = pipeline.gateway_url()?;
    println!(
        "gateway ready at {url}; sending load: {} clients for {} s",
        args.clients, args.seconds
    );
    let report = http_load::run(
        &url,
        &LoadPlan {
            clients: args.clients,
            max_requests: None,
            max_duration: Duration::from_secs(args.seconds),
            batch: 1,
            seed: 2026,
        },
    )?;
    let drain_started = Instant::now();
    let mut expected = Totals::default();
    expected.merge(&report.accepted);
    let mut valkey = pipeline.valkey()?;
    let counted = wait_for_totals(&mut valkey, &expected, 0, Duration::from_secs(120));
    let drain = drain_started
        .elapsed()
        .saturating_sub(Duration::from_secs(1));

    let seconds = report.elapsed.as_secs_f64();
    let quantile = |q: f64| report.latency_us.value_at_quantile(q) as f64 / 1000.0;
    println!();
    println!(
        "requests        {} in {seconds:.1} s = {:.0}/s",
        report.requests(),
        report.requests() as f64 / seconds
    );
    println!("statuses        {:?}", report.statuses);
    println!(
        "latency ms      p50 {:.1}  p90 {:.1}  p99 {:.1}  max {:.1}",
        quantile(0.5),
        quantile(0.9),
        quantile(0.99),
        report.latency_us.max() as f64 / 1000.0
    );
    match counted {
        Ok(actual) => {
            println!("sales accepted  {}", expected.sales);
            println!("sales counted   {}", actual.sales);
            println!("lost            {}", (expected.sales - actual.sales).max(0));
            println!("duplicated      {}", (actual.sales - expected.sales).max(0));
            println!("drain time      {:.1} s", drain.as_secs_f64());
            println!(
                "aggregates      {}",
                if actual == expected {
                    "exactly as sent"
                } else {
                    "DIFFER from what was sent"
                }
            );
            anyhow::ensure!(
                actual == expected,
                "Valkey aggregates differ from the accepted sales"
            );
        }
        Err(error) => {
            println!("{}", pipeline.logs());
            return Err(error.context("the pipeline did not drain"));
        }
    }
    Ok(())
}
