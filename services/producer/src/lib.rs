//! The producer: a gRPC `ProductSaleService` that writes each sale to the Kafka
//! topic `ventas` with `acks=all` and idempotence on, and replies only once the
//! broker's delivery report arrived. On SIGTERM it stops taking calls, lets the
//! calls in flight finish and flushes what librdkafka still holds.
//!
//! # Layout
//!
//! ```text
//! lib.rs      Args, run (binary and `bfctl service producer`), serve
//! service.rs  the gRPC ProductSaleService: a call answered once Kafka acked
//! kafka.rs    the idempotent librdkafka producer, topic creation
//! metrics.rs  what /metrics shows
//! ```

mod kafka;
mod metrics;
mod service;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use blackfriday_proto::pb::product_sale_service_server::ProductSaleServiceServer;
use clap::Parser;
use tokio::sync::watch;

/// Writes Black Friday sales received over gRPC to Kafka.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// gRPC listen address.
    #[arg(long, env = "GRPC_LISTEN", default_value = "0.0.0.0:50051")]
    listen: SocketAddr,
    /// Address of the Prometheus `/metrics` endpoint.
    #[arg(long, env = "METRICS_LISTEN", default_value = "0.0.0.0:9090")]
    metrics_listen: SocketAddr,
    /// Kafka bootstrap servers, comma separated.
    #[arg(long, env = "KAFKA_BROKERS")]
    brokers: String,
    /// Topic the sales are written to.
    #[arg(long, env = "KAFKA_TOPIC", default_value = blackfriday_proto::SALES_TOPIC)]
    topic: String,
    /// How long librdkafka waits to fill a batch (linger.ms).
    #[arg(long, env = "KAFKA_LINGER_MS", default_value_t = 5)]
    linger_ms: u32,
    /// How long a sale may take to be acknowledged before the call fails (message.timeout.ms).
    #[arg(long, env = "KAFKA_DELIVERY_TIMEOUT_MS", default_value_t = 30_000)]
    delivery_timeout_ms: u32,
    /// Create the topic with this many partitions when it does not exist
    /// (local runs; on Kubernetes Strimzi's KafkaTopic owns the topic).
    #[arg(long, env = "KAFKA_CREATE_TOPIC_PARTITIONS")]
    create_topic_partitions: Option<i32>,
    /// Extra librdkafka settings, `key=value`, repeatable (e.g. security.protocol=SSL).
    #[arg(long = "kafka-config", value_name = "KEY=VALUE")]
    kafka_config: Vec<String>,
}

/// Runs the producer with these command-line arguments (the first is the
/// program's name) until SIGTERM or Ctrl-C: what the `producer` binary and
/// `bfctl service producer` both do.
pub fn run(argv: Vec<std::ffi::OsString>) -> anyhow::Result<()> {
    telemetry::block_on(serve(telemetry::start::<Args>(argv)))
}

async fn serve(args: Args) -> anyhow::Result<()> {
    let settings = kafka::Settings {
        brokers: args.brokers,
        topic: args.topic,
        linger_ms: args.linger_ms,
        delivery_timeout_ms: args.delivery_timeout_ms,
        extra: kafka::parse_extra_config(&args.kafka_config)?,
    };
    let producer = kafka::create_producer(&settings)?;
    if let Some(partitions) = args.create_topic_partitions {
        kafka::ensure_topic(&settings, partitions).await?;
    }

    let (registry, metrics) = metrics::Metrics::register();
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    let (stop_tx, stop_rx) = watch::channel(false);

    let health_task = tokio::spawn(kafka::report_broker_health(
        producer.clone(),
        settings.topic.clone(),
        health_reporter.clone(),
        stop_rx.clone(),
    ));
    let metrics_task = tokio::spawn(telemetry::serve_http(
        args.metrics_listen,
        // /healthz: the process is alive (readiness is the gRPC health).
        telemetry::metrics_router(Arc::new(registry))
            .route("/healthz", axum::routing::get(|| async { "ok\n" })),
        wait_for_stop(stop_rx.clone()),
    ));

    let sales = service::SaleService::new(producer.clone(), settings.topic.clone(), metrics);
    tracing::info!(listen = %args.listen, topic = %settings.topic, "producer serving gRPC");
    let serve = tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(ProductSaleServiceServer::new(sales))
        .serve_with_shutdown(args.listen, async move {
            telemetry::shutdown_signal().await;
            health_reporter
                .set_not_serving::<ProductSaleServiceServer<service::SaleService>>()
                .await;
        });
    let served = serve
        .await
        .with_context(|| format!("serving gRPC on {}", args.listen));

    // The calls in flight have been answered; now hand librdkafka what is left.
    let _ = stop_tx.send(true);
    let flushed = tokio::task::spawn_blocking(move || {
        rdkafka::producer::Producer::flush(&*producer, Duration::from_secs(30))
    })
    .await
    .context("flush task panicked")?;
    if let Err(error) = flushed {
        tracing::error!(%error, "flushing the Kafka producer on shutdown failed");
    }
    health_task.abort();
    metrics_task.await.context("metrics task panicked")??;
    served?;
    tracing::info!("producer stopped");
    Ok(())
}

async fn wait_for_stop(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}
