//! A real Kafka-protocol broker: `tansu` with sqlite storage (the memory
//! engine loses and duplicates records on resume; never use it here).

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use blackfriday_proto::SALES_TOPIC;
use rdkafka::producer::{FutureProducer, FutureRecord};

use crate::catalog::SaleBody;
use crate::launcher::to_sale;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};

use crate::process::ChildProcess;
use crate::tool;
use crate::{free_port, wait_for};

/// `--kafka-config` settings for consumers of a tansu broker. tansu answers
/// a fetch only once `fetch.wait.max.ms` has passed, even when records are
/// waiting, so with the consumer's default of 100 ms every record waited
/// for it (measured 2026-11-28, 500 sales/s: sale-to-Valkey p50 <= 200 ms,
/// p99 <= 1000 ms; with 10 ms: p50 <= 35 ms, p99 <= 75 ms).
pub const TANSU_CONSUMER_CONFIG: [&str; 2] = ["fetch.min.bytes=1", "fetch.wait.max.ms=10"];

/// [`TANSU_CONSUMER_CONFIG`] as consumer arguments.
pub fn tansu_consumer_args() -> Vec<String> {
    TANSU_CONSUMER_CONFIG
        .iter()
        .flat_map(|setting| ["--kafka-config".to_string(), setting.to_string()])
        .collect()
}

pub const TANSU_INSTALL: &str = "cargo install tansu@0.6.0 --locked --features libsql";

/// Waits until the Kafka-protocol broker at `bootstrap` (`host:port`)
/// answers a metadata request.
pub fn wait_for_metadata(bootstrap: &str, timeout: Duration) -> anyhow::Result<()> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .context("creating a metadata client")?;
    wait_for(
        &format!("the broker at {bootstrap} to answer metadata"),
        timeout,
        || {
            consumer
                .fetch_metadata(None, Duration::from_millis(500))
                .map(|_| Some(()))
                .map_err(|e| e.to_string())
        },
    )
}

/// Reads a topic's low and high watermarks (first and next offset) per
/// partition, with one client kept for repeated reads.
pub struct Watermarks {
    consumer: BaseConsumer,
}

impl Watermarks {
    pub fn new(bootstrap: &str) -> anyhow::Result<Watermarks> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .create()
            .context("creating a watermark client")?;
        Ok(Watermarks { consumer })
    }

    /// `(partition, low, high)` for every partition of `topic`; each call
    /// waits at most `timeout` per request (the broker may be down).
    pub fn read(&self, topic: &str, timeout: Duration) -> anyhow::Result<Vec<(i32, i64, i64)>> {
        let metadata = self
            .consumer
            .fetch_metadata(Some(topic), timeout)
            .with_context(|| format!("reading the metadata of topic {topic}"))?;
        let mut partitions = Vec::new();
        for t in metadata.topics() {
            for partition in t.partitions() {
                let (low, high) = self
                    .consumer
                    .fetch_watermarks(topic, partition.id(), timeout)
                    .with_context(|| {
                        format!(
                            "reading the offsets of {topic} partition {}",
                            partition.id()
                        )
                    })?;
                partitions.push((partition.id(), low, high));
            }
        }
        anyhow::ensure!(!partitions.is_empty(), "topic {topic} has no partitions");
        Ok(partitions)
    }
}

/// Creates `topic` with `partitions` partitions on the broker at `bootstrap`
/// unless it exists (blocking; not from inside an async runtime).
pub fn create_topic(bootstrap: &str, topic: &str, partitions: i32) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", bootstrap);
    runtime.block_on(blackfriday_proto::topics::ensure_topic(
        &config, topic, partitions,
    ))?;
    Ok(())
}

pub struct Broker {
    pub port: u16,
    process: ChildProcess,
}

impl Broker {
    /// Starts a broker whose data lives in `dir`, and waits until it answers
    /// metadata requests.
    pub fn start(dir: &Path) -> anyhow::Result<Broker> {
        let tansu = tool("tansu", TANSU_INSTALL)?;
        let port = free_port();
        let url = format!("tcp://127.0.0.1:{port}");
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let args = [
            "broker".to_string(),
            "--listener-url".into(),
            url.clone(),
            "--advertised-listener-url".into(),
            url,
            "--storage-engine".into(),
            // tansu drops one slash: an absolute path needs `sqlite:////abs/path`.
            format!("sqlite:///{}/tansu.db", dir.display()),
        ];
        let process = ChildProcess::start("tansu", &tansu, &args, &[], &dir.join("tansu.log"))?;
        let broker = Broker { port, process };
        broker.wait_ready(Duration::from_secs(30))?;
        Ok(broker)
    }

    /// The server's process.
    pub fn process(&self) -> &ChildProcess {
        &self.process
    }

    /// The server's process, to check on it.
    pub fn process_mut(&mut self) -> &mut ChildProcess {
        &mut self.process
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", self.bootstrap());
        config
    }

    fn wait_ready(&self, timeout: Duration) -> anyhow::Result<()> {
        wait_for_metadata(&self.bootstrap(), timeout)
            .with_context(|| format!("tansu log:\n{}", self.process.log_tail(20)))
    }

    /// Creates `topic` with `partitions` partitions if missing.
    pub fn create_topic(&self, topic: &str, partitions: i32) -> anyhow::Result<()> {
        create_topic(&self.bootstrap(), topic, partitions)
    }

    /// The sum over partitions of (high watermark − low watermark): records in the topic.
    pub fn record_count(&self, topic: &str) -> anyhow::Result<i64> {
        let consumer: BaseConsumer = self.client_config().create()?;
        let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(5))?;
        let mut total = 0;
        for t in metadata.topics() {
            for partition in t.partitions() {
                let (low, high) =
                    consumer.fetch_watermarks(topic, partition.id(), Duration::from_secs(5))?;
                total += high - low;
            }
        }
        Ok(total)
    }

    /// The number of partitions of `topic` (0 when it does not exist).
    pub fn partition_count(&self, topic: &str) -> anyhow::Result<usize> {
        let consumer: BaseConsumer = self.client_config().create()?;
        let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(5))?;
        Ok(metadata
            .topics()
            .iter()
            .filter(|t| t.error().is_none())
            .map(|t| t.partitions().len())
            .sum())
    }

    /// Writes sales straight to the topic (as a producer would), for tests
    /// that exercise the consumer alone. Waits for every acknowledgement.
    pub fn produce_sales(&self, sales: &[SaleBody], first_id: u64) -> anyhow::Result<()> {
        let producer: FutureProducer = self
            .client_config()
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set("linger.ms", "5")
            .create()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(async {
            let mut pending = Vec::with_capacity(sales.len());
            for (index, body) in sales.iter().enumerate() {
                let sale = to_sale(body, first_id + index as u64)?;
                let value = sale.encode_record();
                let delivery = producer
                    .send_result(FutureRecord::<(), _>::to(SALES_TOPIC).payload(&value))
                    .map_err(|(error, _)| anyhow::anyhow!("queueing sale: {error}"))?;
                pending.push(delivery);
            }
            for delivery in pending {
                match delivery.await {
                    Ok(Ok(_)) => {}
                    Ok(Err((error, _))) => bail!("sale not acknowledged: {error}"),
                    Err(_) => bail!("producer dropped a delivery"),
                }
            }
            Ok(())
        })
    }

    /// Writes raw bytes as a record value (for dead-letter tests).
    pub fn produce_raw(&self, value: &[u8]) -> anyhow::Result<()> {
        let producer: FutureProducer = self.client_config().set("acks", "all").create()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(async {
            producer
                .send(
                    FutureRecord::<[u8], [u8]>::to(SALES_TOPIC).payload(value),
                    Duration::from_secs(10),
                )
                .await
                .map_err(|(error, _)| anyhow::anyhow!("raw record not acknowledged: {error}"))?;
            Ok(())
        })
    }
}
