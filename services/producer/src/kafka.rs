//! The Kafka side of the producer: client settings, topic creation for local
//! runs, and the broker health that the gRPC health service reports.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use blackfriday_proto::pb::product_sale_service_server::ProductSaleServiceServer;
use rdkafka::ClientConfig;
use rdkafka::producer::FutureProducer;
use tokio::sync::watch;
use tonic_health::server::HealthReporter;

use crate::service::SaleService;

pub struct Settings {
    pub brokers: String,
    pub topic: String,
    pub linger_ms: u32,
    pub delivery_timeout_ms: u32,
    pub extra: Vec<(String, String)>,
}

/// Parses `key=value` pairs given with `--kafka-config`.
pub fn parse_extra_config(pairs: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    pairs
        .iter()
        .map(|pair| match pair.split_once('=') {
            Some((key, value)) if !key.trim().is_empty() => {
                Ok((key.trim().to_string(), value.to_string()))
            }
            _ => bail!("--kafka-config {pair:?}: expected KEY=VALUE"),
        })
        .collect()
}

fn client_config(settings: &Settings) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", &settings.brokers);
    for (key, value) in &settings.extra {
        config.set(key, value);
    }
    config
}

/// A producer that never loses an acknowledged sale and never writes one twice
/// on its own retries: `acks=all` plus idempotence (which also bounds in-flight
/// requests and orders retries).
pub fn create_producer(settings: &Settings) -> anyhow::Result<Arc<FutureProducer>> {
    let producer: FutureProducer = client_config(settings)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", settings.linger_ms.to_string())
        // Small produce requests must not wait on delayed ACKs.
        .set("socket.nagle.disable", "true")
        .set(
            "message.timeout.ms",
            settings.delivery_timeout_ms.to_string(),
        )
        .create()
        .with_context(|| format!("creating Kafka producer for {}", settings.brokers))?;
    Ok(Arc::new(producer))
}

/// Creates the topic when it does not exist yet.
pub async fn ensure_topic(settings: &Settings, partitions: i32) -> anyhow::Result<()> {
    let created = blackfriday_proto::topics::ensure_topic(
        &client_config(settings),
        &settings.topic,
        partitions,
    )
    .await?;
    tracing::info!(topic = %settings.topic, partitions, created, "topic ready");
    Ok(())
}

/// Marks the sales service SERVING while the broker answers metadata requests
/// for the topic, NOT_SERVING otherwise. Checks every two seconds.
pub async fn report_broker_health(
    producer: Arc<FutureProducer>,
    topic: String,
    reporter: HealthReporter,
    mut stop: watch::Receiver<bool>,
) {
    let mut last: Option<bool> = None;
    loop {
        let producer_for_check = producer.clone();
        let topic_for_check = topic.clone();
        let reachable = tokio::task::spawn_blocking(move || {
            use rdkafka::producer::Producer;
            producer_for_check
                .client()
                .fetch_metadata(Some(&topic_for_check), Duration::from_secs(2))
                .map(|metadata| {
                    metadata
                        .topics()
                        .iter()
                        .any(|t| t.error().is_none() && !t.partitions().is_empty())
                })
                .unwrap_or(false)
        })
        .await
        .unwrap_or(false);
        if last != Some(reachable) {
            if reachable {
                reporter
                    .set_serving::<ProductSaleServiceServer<SaleService>>()
                    .await;
                tracing::info!(%topic, "Kafka reachable: SERVING");
            } else {
                reporter
                    .set_not_serving::<ProductSaleServiceServer<SaleService>>()
                    .await;
                tracing::warn!(%topic, "Kafka unreachable or topic missing: NOT_SERVING");
            }
            last = Some(reachable);
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
    }
}
