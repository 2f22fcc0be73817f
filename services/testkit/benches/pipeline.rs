//! `cargo bench -p testkit --bench pipeline`: the data path's throughput on
//! this machine, each figure next to the ceiling it should be compared with,
//! all measured in the same run with every process on the same machine.
//!
//! 1. raw produce rate: a librdkafka producer (acks=all) pre-filling `ventas`;
//! 2. raw drain rate: a group consumer that reads the topic and writes nothing;
//! 3. the consumer draining the same topic into Valkey;
//! 4. valkey-benchmark for the commands the consumer's script runs, and for the
//!    script itself on a 1000-sale batch;
//! 5. the gateway end to end at 200 concurrent clients.
//!
//! Prints a markdown report for docs/benchmarks.md. Set BENCH_SALES and
//! BENCH_SECONDS to change the sizes.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Context;
use consumer::aggregate::{BatchInput, CarnetSettings, build_payload};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use redis::Commands;
use testkit::catalog::{SaleBody, SaleGenerator};
use testkit::http_load::{self, LoadPlan};
use testkit::pipeline::{Pipeline, PipelineOptions};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let date = Command::new("date")
        .arg("-u")
        .arg("+%Y-%m-%d %H:%M UTC")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    format!("{cores} cores ({cpu}), {date}")
}

fn raw_drain(pipeline: &Pipeline, expected: usize, group: &str) -> anyhow::Result<f64> {
    let consumer: BaseConsumer = pipeline
        .broker
        .client_config()
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("partition.assignment.strategy", "cooperative-sticky")
        .create()?;
    consumer.subscribe(&["ventas"])?;
    let mut seen = 0usize;
    let mut started = None;
    let deadline = Instant::now() + Duration::from_secs(300);
    while seen < expected && Instant::now() < deadline {
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(100)) {
            started.get_or_insert_with(Instant::now);
            seen += usize::from(message.payload().is_some());
        }
    }
    let elapsed = started.context("raw drain read nothing")?.elapsed();
    anyhow::ensure!(seen >= expected, "raw drain read {seen} of {expected}");
    Ok(seen as f64 / elapsed.as_secs_f64())
}

/// Times a fresh consumer (own group, empty Valkey) from its first applied
/// sale to the last, then stops it.
fn consumer_drain(pipeline: &mut Pipeline, expected: usize, group: &str) -> anyhow::Result<f64> {
    let mut valkey = pipeline.valkey()?;
    redis::cmd("FLUSHALL").query::<()>(&mut valkey)?;
    pipeline.options.consumer_args = vec!["--group-id".into(), group.into()];
    pipeline.add_consumer()?;
    let rate = time_drain(&mut valkey, expected);
    if let Some(mut consumer) = pipeline.consumers.pop() {
        consumer.process.terminate(Duration::from_secs(20));
    }
    rate
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn time_drain(valkey: &mut redis::Connection, expected: usize) -> anyhow::Result<f64> {
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut first: Option<(Instant, i64)> = None;
    loop {
        let counted: Option<i64> = valkey.hget("bf:stats", "ventas")?;
        let counted = counted.unwrap_or_default();
        if counted > 0 && first.is_none() {
            first = Some((Instant::now(), counted));
        }
        if counted as usize >= expected {
            let (since, at_start) = first.context("never saw a first batch")?;
            return Ok((counted - at_start) as f64 / since.elapsed().as_secs_f64());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "consumer drained only {counted} of {expected}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn valkey_benchmark(pipeline: &Pipeline, args: &[&str]) -> anyhow::Result<f64> {
    let port = pipeline.valkey.port.to_string();
    let output = Command::new("valkey-benchmark")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-a",
            &pipeline.valkey.password,
            "-q",
            "--csv",
        ])
        .args(args)
        .output()
        .context("running valkey-benchmark")?;
    let text = String::from_utf8_lossy(&output.stdout);
    // CSV: "test","rps" and six latency columns. The test name is the whole
    // command (a script has commas and newlines), so count from the end.
    text.trim_end()
        .rsplit(',')
        .nth(6)
        .and_then(|rps| rps.trim_matches('"').parse::<f64>().ok())
        .with_context(|| {
            format!(
                "no rate in valkey-benchmark output: {text} {}",
                String::from_utf8_lossy(&output.stderr)
            )
        })
}

/// The payload the consumer sends for a batch of these sales, built by the
/// consumer's own code.
fn sample_payload(sales: &[SaleBody]) -> anyhow::Result<String> {
    let sales: Vec<_> = sales
        .iter()
        .enumerate()
        .map(|(index, body)| testkit::pipeline::to_sale(body, index as u64))
        .collect::<anyhow::Result<_>>()?;
    let carnet = CarnetSettings {
        carnet: "201900006".into(),
        category: blackfriday_proto::Category::Hogar,
        product: None,
    };
    // No offset ranges: repeated calls with one range would be fenced after
    // the first and skip the work being measured.
    let payload = build_payload(&BatchInput {
        topic: "bench",
        ranges: &[],
        sales: &sales,
        dead_letters: 0,
        carnet: Some(&carnet),
        tracked_product: Some("lampara-led"),
        series_length: 1000,
    });
    Ok(serde_json::to_string(&payload)?)
}

fn main() -> anyhow::Result<()> {
    // `cargo bench` passes --bench; nothing else is taken.
    let sales_count = env_usize("BENCH_SALES", 200_000);
    let load_seconds = env_usize("BENCH_SECONDS", 20) as u64;
    eprintln!("starting broker and valkey…");
    // The consumer runs with the product's defaults (10 s session), not the
    // tests' faster failover settings.
    let logs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/bench-logs");
    if logs.exists() {
        std::fs::remove_dir_all(&logs)?;
    }
    std::fs::create_dir_all(&logs)?;
    eprintln!("logs and data in {}", logs.display());
    let mut pipeline = Pipeline::start_in(
        &logs,
        PipelineOptions {
            producers: 0,
            consumers: 0,
            start_gateway: false,
            consumer_args: Vec::new(),
            ..PipelineOptions::default()
        },
    )?;
    let partitions = pipeline.broker.partition_count("ventas")?;

    eprintln!("pre-filling {sales_count} sales…");
    let mut generator = SaleGenerator::new(99);
    let sales: Vec<SaleBody> = (0..sales_count).map(|_| generator.next_sale()).collect();
    let started = Instant::now();
    for (index, chunk) in sales.chunks(50_000).enumerate() {
        pipeline
            .broker
            .produce_sales(chunk, (index * 50_000) as u64)?;
    }
    let produce_rate = sales_count as f64 / started.elapsed().as_secs_f64();

    let rounds = env_usize("BENCH_ROUNDS", 3);
    let mut raw_rates = Vec::new();
    let mut consumer_rates = Vec::new();
    for round in 0..rounds {
        eprintln!("round {}: raw drain…", round + 1);
        raw_rates.push(raw_drain(
            &pipeline,
            sales_count,
            &format!("bench-raw-{round}"),
        )?);
        eprintln!("round {}: consumer drain into valkey…", round + 1);
        consumer_rates.push(consumer_drain(
            &mut pipeline,
            sales_count,
            &format!("bench-consumer-{round}"),
        )?);
    }
    let rates = |values: &[f64]| {
        values
            .iter()
            .map(|v| format!("{v:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let (raw_list, consumer_list) = (rates(&raw_rates), rates(&consumer_rates));
    let raw_rate = median(&mut raw_rates);
    let consumer_rate = median(&mut consumer_rates);

    eprintln!("valkey-benchmark…");
    let n = "200000";
    let hincrby = valkey_benchmark(
        &pipeline,
        &["-n", n, "-P", "16", "HINCRBY", "bench:h", "f", "1"],
    )?;
    let zincrby = valkey_benchmark(
        &pipeline,
        &["-n", n, "-P", "16", "ZINCRBY", "bench:z", "1", "p"],
    )?;
    let script = include_str!("../../consumer/src/apply.lua");
    let payload = sample_payload(&sales[..1000])?;
    let eval_per_s = valkey_benchmark(
        &pipeline,
        &["-n", "2000", "-c", "1", "EVAL", script, "0", &payload],
    )?;
    let valkey_ceiling_sales = eval_per_s * 1000.0;
    let smaller = raw_rate.min(valkey_ceiling_sales);

    eprintln!("gateway at 200 clients for {load_seconds} s…");
    let producers = env_usize("BENCH_PRODUCERS", 1);
    for _ in 0..producers {
        pipeline.add_producer()?;
    }
    pipeline.start_gateway()?;
    std::thread::sleep(Duration::from_secs(2));
    let url = pipeline.gateway_url()?;
    let plan = LoadPlan {
        rate: None,
        clients: 200,
        max_requests: None,
        max_duration: Duration::from_secs(load_seconds),
        batch: 1,
        seed: 5,
    };
    // First the path up to Kafka alone, then again with a consumer draining
    // into Valkey at the same time (the whole pipeline busy).
    let alone = http_load::run(&url, &plan)?;
    eprintln!("gateway at 200 clients for {load_seconds} s, one consumer draining…");
    // It first catches up on everything already in the topic, so that the
    // load meets a consumer in its steady state, not one draining a backlog.
    let mut valkey = pipeline.valkey()?;
    redis::cmd("FLUSHALL").query::<()>(&mut valkey)?;
    pipeline.options.consumer_args = vec!["--group-id".into(), "bench-live".into()];
    if let Ok(extra) = std::env::var("BENCH_CONSUMER_KAFKA") {
        for setting in extra.split_whitespace() {
            pipeline.options.consumer_args.push("--kafka-config".into());
            pipeline.options.consumer_args.push(setting.into());
        }
    }
    pipeline.add_consumer()?;
    let backlog = sales_count + alone.statuses.get(&202).copied().unwrap_or_default();
    time_drain(&mut valkey, backlog)?;
    let with_consumer = http_load::run(&url, &LoadPlan { seed: 6, ..plan })?;

    println!("## Data path ({})", machine());
    println!();
    println!(
        "Topic `ventas`: {partitions} partitions. {sales_count} pre-filled sales; tansu 0.6.0 (sqlite), valkey 8."
    );
    println!();
    println!("| measurement | rate | compared with |");
    println!("|---|---|---|");
    println!("| raw produce, librdkafka acks=all + idempotence | {produce_rate:.0} sales/s | |");
    println!(
        "| raw drain, group consumer writing nothing | median {raw_rate:.0} sales/s ({raw_list}) | broker ceiling |"
    );
    println!("| valkey-benchmark HINCRBY -P 16 | {hincrby:.0} ops/s | |");
    println!("| valkey-benchmark ZINCRBY -P 16 | {zincrby:.0} ops/s | |");
    println!(
        "| valkey-benchmark EVAL apply.lua, 1000-sale batch | {eval_per_s:.0} calls/s = {valkey_ceiling_sales:.0} sales/s | Valkey ceiling |"
    );
    println!(
        "| **consumer draining into Valkey** | **median {consumer_rate:.0} sales/s** ({consumer_list}) | {:.2} of the smaller ceiling ({smaller:.0}); target ≥ 0.8 |",
        consumer_rate / smaller
    );
    println!();
    println!(
        "Gateway end to end, 200 concurrent clients (closed loop) for {load_seconds} s, {producers} producer(s), POST /venta:"
    );
    println!();
    println!("| run | accepted | statuses | p50 | p90 | p99 | max |");
    println!("|---|---|---|---|---|---|---|");
    for (name, report) in [
        ("gateway → producer → Kafka", &alone),
        ("same, one consumer draining into Valkey", &with_consumer),
    ] {
        let accepted = report.statuses.get(&202).copied().unwrap_or_default();
        let ms = |q: f64| report.latency_us.value_at_quantile(q) as f64 / 1000.0;
        println!(
            "| {name} | {:.0} sales/s | {:?} | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms |",
            accepted as f64 / report.elapsed.as_secs_f64(),
            report.statuses,
            ms(0.5),
            ms(0.9),
            ms(0.99),
            report.latency_us.max() as f64 / 1000.0
        );
    }
    println!();
    println!(
        "Raw produce rate in the same run: {produce_rate:.0} sales/s. Target: p99 under 50 ms."
    );
    Ok(())
}
