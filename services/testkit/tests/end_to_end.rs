//! Sales sent over HTTP end up in Valkey exactly: what the dashboard reads
//! equals the totals computed from the sales the gateway accepted.

use std::time::Duration;

use redis::Commands;
use testkit::http_load::{self, LoadPlan};
use testkit::pipeline::{Pipeline, PipelineOptions};
use testkit::totals::Totals;

#[test]
fn sales_over_http_are_counted_exactly_and_spread_over_both_producers() -> anyhow::Result<()> {
    let pipeline = Pipeline::start(PipelineOptions {
        producers: 2,
        ..PipelineOptions::default()
    })?;
    let url = pipeline.gateway_url()?;
    assert_eq!(
        pipeline.broker.partition_count("ventas")?,
        6,
        "default partition count"
    );

    // Give the gateway's resolver a moment to connect to both producers.
    std::thread::sleep(Duration::from_millis(1500));
    let singles = http_load::run(
        &url,
        &LoadPlan {
            rate: None,
            clients: 32,
            max_requests: Some(1500),
            max_duration: Duration::from_secs(60),
            batch: 1,
            seed: 1,
        },
    )?;
    let batches = http_load::run(
        &url,
        &LoadPlan {
            rate: None,
            clients: 4,
            max_requests: Some(50),
            max_duration: Duration::from_secs(60),
            batch: 20,
            seed: 2,
        },
    )?;
    assert_eq!(
        singles.statuses.get(&202),
        Some(&1500),
        "statuses: {:?}\n{}",
        singles.statuses,
        pipeline.logs()
    );
    assert_eq!(
        batches.statuses.get(&202),
        Some(&50),
        "statuses: {:?}",
        batches.statuses
    );

    let mut expected = Totals::default();
    expected.merge(&singles.accepted);
    expected.merge(&batches.accepted);
    assert_eq!(expected.sales, 2500);

    let actual = pipeline.counted(&expected, 0, Duration::from_secs(90))?;
    let mut valkey = pipeline.valkey()?;
    assert_eq!(actual, expected);
    assert_eq!(
        pipeline.broker.record_count("ventas")?,
        2500,
        "one record per accepted sale"
    );

    // Both producers got traffic through the one balanced channel.
    for producer in &pipeline.producers {
        let acknowledged = producer.metric("bf_producer_sales_acknowledged_total")?;
        assert!(
            acknowledged >= 100.0,
            "{} acknowledged only {acknowledged}",
            producer.process.name()
        );
    }
    let accepted = pipeline
        .gateway
        .as_ref()
        .map(|g| g.metric("bf_gateway_sales_accepted_total"))
        .transpose()?;
    assert_eq!(accepted, Some(2500.0));

    // The carnet (…6: Hogar) series tracks one Hogar product, bounded.
    let tracked: Option<String> = valkey.hget("bf:carnet", "producto")?;
    let tracked = tracked.expect("a tracked product was chosen");
    let hogar = &expected.categories["Hogar"].product_units;
    assert!(
        hogar.contains_key(&tracked),
        "{tracked} is not a Hogar product"
    );
    let points = testkit::pipeline::carnet_series(&mut valkey)?;
    assert!(!points.is_empty(), "no price points");
    testkit::pipeline::check_carnet_series(&points, 1000)?;
    let category: String = valkey.hget("bf:carnet", "categoria")?;
    assert_eq!(category, "Hogar");

    // What `bfctl status` reads from the consumer: Valkey answers and holds
    // keys, and once everything is applied and committed the lag is 0
    // (statistics every 5 s, commits at most once a second).
    let consumer = &pipeline.consumers[0];
    let keys: usize = redis::cmd("DBSIZE").query(&mut valkey)?;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let body = testkit::pipeline::http_get(consumer.metrics_port, "/metrics")?.1;
        let up = testkit::pipeline::sum_metric(&body, "bf_consumer_valkey_up");
        let probed_keys = testkit::pipeline::sum_metric(&body, "bf_consumer_valkey_keys");
        let lag_reported = body.lines().any(|l| l.starts_with("bf_consumer_lag "));
        let lag = testkit::pipeline::sum_metric(&body, "bf_consumer_lag");
        if up == 1.0 && probed_keys as usize == keys && lag_reported && lag == 0.0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "consumer metrics: valkey_up {up}, valkey_keys {probed_keys} (Valkey has {keys}), lag {lag} (reported: {lag_reported})"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    Ok(())
}
