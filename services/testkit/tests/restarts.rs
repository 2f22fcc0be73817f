//! Restarting the producer or crashing Valkey (AOF on) while sales flow loses
//! nothing that was acknowledged and counts nothing twice.

use std::time::Duration;

use testkit::http_load::{self, LoadPlan};
use testkit::pipeline::{Pipeline, PipelineOptions};
use testkit::totals::Totals;

fn load_plan(seed: u64) -> LoadPlan {
    LoadPlan {
        rate: None,
        clients: 16,
        max_requests: Some(20_000),
        max_duration: Duration::from_secs(6),
        batch: 1,
        seed,
    }
}

#[test]
fn restarting_the_producer_under_load_loses_no_acknowledged_sale() -> anyhow::Result<()> {
    let mut pipeline = Pipeline::start(PipelineOptions::default())?;
    let url = pipeline.gateway_url()?;
    let report = std::thread::scope(|scope| -> anyhow::Result<_> {
        let load = scope.spawn(|| http_load::run(&url, &load_plan(31)));
        std::thread::sleep(Duration::from_secs(2));
        let producer = &mut pipeline.producers[0].process;
        assert!(
            producer.terminate(Duration::from_secs(30)),
            "producer did not drain and exit on SIGTERM"
        );
        producer.restart()?;
        load.join()
            .map_err(|_| anyhow::anyhow!("load thread panicked"))?
    })?;
    let accepted = report.statuses.get(&202).copied().unwrap_or_default();
    assert!(accepted > 100, "statuses {:?}", report.statuses);
    assert!(
        report
            .statuses
            .keys()
            .all(|status| [202, 503].contains(status)),
        "only 202 or 503 expected, got {:?}",
        report.statuses
    );

    let mut expected = Totals::default();
    expected.merge(&report.accepted);
    let actual = pipeline.counted(&expected, 0, Duration::from_secs(90))?;
    assert_eq!(actual, expected);
    assert_eq!(
        pipeline.broker.record_count("ventas")? as usize,
        accepted,
        "every record was answered 202"
    );
    Ok(())
}

#[test]
fn crashing_valkey_under_load_loses_nothing_and_counts_nothing_twice() -> anyhow::Result<()> {
    let mut pipeline = Pipeline::start(PipelineOptions::default())?;
    let url = pipeline.gateway_url()?;
    let report = std::thread::scope(|scope| -> anyhow::Result<_> {
        let load = scope.spawn(|| http_load::run(&url, &load_plan(41)));
        std::thread::sleep(Duration::from_secs(2));
        pipeline.valkey.crash_and_restart()?;
        std::thread::sleep(Duration::from_secs(2));
        pipeline.valkey.crash_and_restart()?;
        load.join()
            .map_err(|_| anyhow::anyhow!("load thread panicked"))?
    })?;
    assert_eq!(
        report.statuses.keys().copied().collect::<Vec<_>>(),
        vec![202],
        "Valkey is not on the accept path"
    );
    let mut expected = Totals::default();
    expected.merge(&report.accepted);
    let actual = pipeline.counted(&expected, 0, Duration::from_secs(90))?;
    assert_eq!(actual, expected);
    // The price series is written by the same script: no sale in it twice.
    let points = testkit::pipeline::carnet_series(&mut pipeline.valkey()?)?;
    testkit::pipeline::check_carnet_series(&points, 1000)?;
    assert!(!points.is_empty(), "no price points");
    assert!(
        pipeline.consumers[0].metric("bf_consumer_resyncs_total")? >= 1.0,
        "the consumer noticed the crash"
    );
    Ok(())
}
