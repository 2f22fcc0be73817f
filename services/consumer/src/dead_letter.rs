//! The dead-letter topic: records the consumer cannot decode go there, with
//! where they came from and why, instead of crashing the consumer in a loop.
//!
//! Delivery to the dead-letter topic is at least once: a record is sent before
//! the batch that skips it is applied, so a crash in between sends it again.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use rdkafka::ClientConfig;
use rdkafka::message::{DeliveryResult, Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};

/// A record that could not be turned into a sale.
pub struct DeadLetter {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub error: String,
}

#[derive(Default)]
struct CountFailures {
    failed: AtomicUsize,
}

impl rdkafka::ClientContext for CountFailures {}

impl ProducerContext for CountFailures {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((error, _)) = result {
            tracing::warn!(%error, "dead-letter delivery failed");
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

pub struct DeadLetterTopic {
    producer: ThreadedProducer<CountFailures>,
    topic: String,
    source_topic: String,
}

impl DeadLetterTopic {
    pub fn new(
        config: &ClientConfig,
        topic: &str,
        source_topic: &str,
    ) -> anyhow::Result<DeadLetterTopic> {
        let producer = config
            .clone()
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .create_with_context(CountFailures::default())
            .context("creating the dead-letter producer")?;
        Ok(DeadLetterTopic {
            producer,
            topic: topic.to_string(),
            source_topic: source_topic.to_string(),
        })
    }

    /// Sends the records and waits until all were acknowledged.
    pub fn send_all(&self, letters: &[DeadLetter]) -> anyhow::Result<()> {
        self.producer.context().failed.store(0, Ordering::Relaxed);
        for letter in letters {
            let headers = OwnedHeaders::new()
                .insert(Header {
                    key: "bf-source-topic",
                    value: Some(self.source_topic.as_str()),
                })
                .insert(Header {
                    key: "bf-source-partition",
                    value: Some(&letter.partition.to_string()),
                })
                .insert(Header {
                    key: "bf-source-offset",
                    value: Some(&letter.offset.to_string()),
                })
                .insert(Header {
                    key: "bf-error",
                    value: Some(letter.error.as_str()),
                });
            let mut record: BaseRecord<'_, [u8], [u8]> =
                BaseRecord::to(&self.topic).headers(headers);
            if let Some(key) = &letter.key {
                record = record.key(key.as_slice());
            }
            if let Some(value) = &letter.value {
                record = record.payload(value.as_slice());
            }
            if let Err((error, _)) = self.producer.send(record) {
                bail!("queueing a dead letter for {}: {error}", self.topic);
            }
        }
        self.producer
            .flush(Duration::from_secs(30))
            .with_context(|| format!("flushing dead letters to {}", self.topic))?;
        let failed = self.producer.context().failed.load(Ordering::Relaxed);
        if failed > 0 {
            bail!(
                "{failed} dead letters were not acknowledged by {}",
                self.topic
            );
        }
        Ok(())
    }
}
