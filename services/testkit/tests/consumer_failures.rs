//! The consumer's exactly-once effect under crashes, group changes and bad
//! records, against a real broker and a real Valkey.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use testkit::catalog::{SaleBody, SaleGenerator};
use testkit::pipeline::{Pipeline, PipelineOptions};
use testkit::totals::Totals;

fn consumers_only(consumers: usize) -> PipelineOptions {
    PipelineOptions {
        producers: 0,
        consumers,
        start_gateway: false,
        ..PipelineOptions::default()
    }
}

fn sales(seed: u64, count: usize) -> Vec<SaleBody> {
    let mut generator = SaleGenerator::new(seed);
    (0..count).map(|_| generator.next_sale()).collect()
}

#[test]
fn consumer_sigkilled_repeatedly_while_50000_sales_stream_counts_each_once() -> anyhow::Result<()> {
    let mut pipeline = Pipeline::start(consumers_only(1))?;
    let all = sales(7, 50_000);
    let mut expected = Totals::default();
    expected.merge(&all);

    let streaming = Arc::new(AtomicBool::new(true));
    let kills_while_streaming = std::thread::scope(|scope| -> anyhow::Result<usize> {
        // 100 chunks of 500 sales, paced so the stream lasts about two minutes.
        let producer = scope.spawn({
            let (broker, all, streaming) = (&pipeline.broker, &all, streaming.clone());
            move || -> anyhow::Result<()> {
                let result = all.chunks(500).enumerate().try_for_each(|(index, chunk)| {
                    std::thread::sleep(Duration::from_millis(900));
                    broker.produce_sales(chunk, (index * 500) as u64)
                });
                streaming.store(false, Ordering::Relaxed);
                result
            }
        });
        // Each kill lands while the consumer is applying: wait until this
        // incarnation has applied a batch, then SIGKILL it a little later.
        let mut kills_while_streaming = 0;
        let delays_ms = [40u64, 170, 5, 260, 90, 330, 15, 120];
        for delay in delays_ms {
            if !streaming.load(Ordering::Relaxed) {
                break;
            }
            let consumer = &mut pipeline.consumers[0];
            wait_metric(
                consumer,
                "bf_consumer_batches_applied_total",
                "the consumer to apply a batch",
                |n| n > 0.0,
            )?;
            std::thread::sleep(Duration::from_millis(delay));
            consumer.process.kill();
            if streaming.load(Ordering::Relaxed) {
                kills_while_streaming += 1;
            }
            consumer.process.restart()?;
        }
        producer
            .join()
            .map_err(|_| anyhow::anyhow!("producer thread panicked"))??;
        Ok(kills_while_streaming)
    })?;
    assert!(
        kills_while_streaming >= 5,
        "only {kills_while_streaming} kills while sales streamed"
    );

    let actual = pipeline.counted(&expected, 0, Duration::from_secs(180))?;
    assert_eq!(actual, expected, "after {kills_while_streaming} SIGKILLs");
    Ok(())
}

fn wait_metric(
    service: &testkit::pipeline::Service,
    name: &str,
    what: &str,
    ok: impl Fn(f64) -> bool,
) -> anyhow::Result<f64> {
    testkit::wait_for(what, Duration::from_secs(60), || {
        let value = service.metric(name).map_err(|e| e.to_string())?;
        if ok(value) {
            Ok(Some(value))
        } else {
            Err(format!("{name} = {value}"))
        }
    })
}

#[test]
fn two_consumers_share_the_partitions_and_hand_over_exactly() -> anyhow::Result<()> {
    let mut pipeline = Pipeline::start(consumers_only(2))?;
    // Both members hold some of the six partitions.
    testkit::wait_for(
        "both consumers to hold partitions",
        Duration::from_secs(60),
        || {
            let held: Vec<f64> = pipeline
                .consumers
                .iter()
                .map(|c| c.metric("bf_consumer_assigned_partitions"))
                .collect::<Result<_, _>>()
                .map_err(|e| e.to_string())?;
            if held.iter().all(|&n| n > 0.0) && held.iter().sum::<f64>() == 6.0 {
                Ok(Some(()))
            } else {
                Err(format!("assigned: {held:?}"))
            }
        },
    )?;

    let first = sales(11, 10_000);
    pipeline.broker.produce_sales(&first, 0)?;
    let mut expected = Totals::default();
    expected.merge(&first);
    assert_eq!(
        pipeline.counted(&expected, 0, Duration::from_secs(90))?,
        expected
    );
    for consumer in &pipeline.consumers {
        let applied = consumer.metric("bf_consumer_sales_applied_total")?;
        assert!(
            applied > 0.0,
            "{} applied nothing: partitions were not shared",
            consumer.process.name()
        );
    }

    // Stop one member; the other takes all six partitions over.
    let stopped_cleanly = pipeline.consumers[1]
        .process
        .terminate(Duration::from_secs(20));
    assert!(stopped_cleanly, "consumer did not stop on SIGTERM");
    let second = sales(12, 10_000);
    pipeline.broker.produce_sales(&second, 10_000)?;
    expected.merge(&second);
    wait_metric(
        &pipeline.consumers[0],
        "bf_consumer_assigned_partitions",
        "the survivor to hold all partitions",
        |n| n == 6.0,
    )?;
    let actual = pipeline.counted(&expected, 0, Duration::from_secs(120))?;
    assert_eq!(actual, expected);
    Ok(())
}

#[test]
fn undecodable_records_go_to_the_dead_letter_topic_without_stopping_the_consumer()
-> anyhow::Result<()> {
    let mut pipeline = Pipeline::start(consumers_only(1))?;
    let before = sales(21, 200);
    pipeline.broker.produce_sales(&before, 0)?;
    let mut unknown_version = testkit::pipeline::to_sale(&before[0], 999_999)?.encode_record();
    unknown_version[0] = 9;
    for garbage in [
        unknown_version.as_slice(),
        b"",
        &[1u8, 0xff, 0xff, 0xff][..],
    ] {
        pipeline.broker.produce_raw(garbage)?;
    }
    let after = sales(22, 200);
    pipeline.broker.produce_sales(&after, 1_000)?;

    let mut expected = Totals::default();
    expected.merge(&before);
    expected.merge(&after);
    let actual = pipeline.counted(&expected, 3, Duration::from_secs(60))?;
    let mut valkey = pipeline.valkey()?;
    assert_eq!(actual, expected);
    let letters: i64 = redis::cmd("HGET")
        .arg("bf:stats")
        .arg("dead_letters")
        .query(&mut valkey)?;
    assert_eq!(letters, 3);
    assert_eq!(pipeline.broker.record_count("ventas-dlq")?, 3);
    assert!(
        pipeline.consumers[0].process.is_running(),
        "the consumer must not crash on bad records"
    );
    assert_eq!(
        pipeline.consumers[0].metric("bf_consumer_dead_letters_total")?,
        3.0
    );
    Ok(())
}
