//! The consumer's command line: parses its configuration and runs one
//! consumer group member with a `/metrics` endpoint. The `consumer` binary
//! and `bfctl service consumer` both call [`run`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::{aggregate, group, metrics, store};
use anyhow::{Context, bail};
use axum::routing::get;
use blackfriday_proto::Category;
use clap::Parser;
use rdkafka::ClientConfig;

/// Keeps the Black Friday dashboard aggregates in Valkey, exactly once.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Kafka bootstrap servers, comma separated.
    #[arg(long, env = "KAFKA_BROKERS")]
    brokers: String,
    #[arg(long, env = "KAFKA_TOPIC", default_value = blackfriday_proto::SALES_TOPIC)]
    topic: String,
    #[arg(long, env = "KAFKA_GROUP_ID", default_value = "ventas-consumer")]
    group_id: String,
    /// Where undecodable records go (created with one partition if missing).
    #[arg(long, env = "KAFKA_DEAD_LETTER_TOPIC", default_value = blackfriday_proto::DEAD_LETTER_TOPIC)]
    dead_letter_topic: String,
    /// Extra librdkafka settings, `key=value`, repeatable.
    #[arg(long = "kafka-config", value_name = "KEY=VALUE")]
    kafka_config: Vec<String>,
    /// Valkey URL without the password, e.g. redis://valkey:6379/0.
    #[arg(long, env = "VALKEY_URL")]
    valkey_url: String,
    /// Valkey password (prefer --valkey-password-file).
    #[arg(long, env = "VALKEY_PASSWORD", hide_env_values = true)]
    valkey_password: Option<String>,
    /// File holding the Valkey password (a mounted Secret).
    #[arg(long, env = "VALKEY_PASSWORD_FILE", conflicts_with = "valkey_password")]
    valkey_password_file: Option<PathBuf>,
    /// Timeout of one Valkey call.
    #[arg(long, env = "VALKEY_TIMEOUT_MS", default_value_t = 5_000)]
    valkey_timeout_ms: u64,
    /// Most records applied in one batch.
    #[arg(long, env = "BATCH_MAX", default_value_t = 5_000)]
    batch_max: usize,
    /// How long a batch keeps filling after its first record.
    #[arg(long, env = "BATCH_WAIT_MS", default_value_t = 20)]
    batch_wait_ms: u64,
    /// Carnet whose last digit picks the category whose product price series is kept.
    #[arg(long, env = "CARNET")]
    carnet: Option<String>,
    /// Product whose price series is kept (default: the first one of the carnet's category seen).
    #[arg(long, env = "TRACKED_PRODUCT", requires = "carnet")]
    tracked_product: Option<String>,
    /// Points kept in the price series.
    #[arg(long, env = "SERIES_LENGTH", default_value_t = 1_000)]
    series_length: usize,
    /// Rejoin the group when a partition that is not ours has a backlog that
    /// has not moved for this long (a crashed member's partitions left
    /// unassigned). Keep it above the session timeout (10 s by default).
    #[arg(long, env = "REJOIN_WHEN_STALLED_MS", default_value_t = 15_000)]
    rejoin_when_stalled_ms: u64,
    /// Address of `/metrics` and `/healthz`.
    #[arg(long, env = "METRICS_LISTEN", default_value = "0.0.0.0:9090")]
    metrics_listen: SocketAddr,
}

fn read_password(args: &Args) -> anyhow::Result<Option<String>> {
    match (&args.valkey_password, &args.valkey_password_file) {
        (Some(password), _) => Ok(Some(password.clone())),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading the Valkey password from {}", path.display()))?;
            Ok(Some(text.trim_end_matches(['\r', '\n']).to_string()))
        }
        (None, None) => Ok(None),
    }
}

fn carnet_settings(args: &Args) -> anyhow::Result<Option<aggregate::CarnetSettings>> {
    let Some(carnet) = &args.carnet else {
        return Ok(None);
    };
    let Some(category) = Category::for_carnet(carnet) else {
        bail!("--carnet {carnet:?}: must end in a digit");
    };
    Ok(Some(aggregate::CarnetSettings {
        carnet: carnet.clone(),
        category,
        product: args.tracked_product.clone(),
    }))
}

/// Runs one consumer group member with these command-line arguments (the
/// first is the program's name) until SIGTERM or Ctrl-C.
pub fn run(argv: Vec<std::ffi::OsString>) -> anyhow::Result<()> {
    let args: Args = telemetry::start(argv);
    if args.batch_max == 0 {
        bail!("--batch-max must be at least 1");
    }
    let mut client = ClientConfig::new();
    client.set("bootstrap.servers", &args.brokers);
    for pair in &args.kafka_config {
        let Some((key, value)) = pair.split_once('=') else {
            bail!("--kafka-config {pair:?}: expected KEY=VALUE");
        };
        client.set(key.trim(), value);
    }
    let valkey = store::ValkeySettings {
        url: args.valkey_url.clone(),
        password: read_password(&args)?,
        timeout: Duration::from_millis(args.valkey_timeout_ms),
    };
    let store = store::Store::new(&valkey)?;
    // A second connection, only for the health probe, so that probing never
    // waits behind a batch.
    let probe_store = store::Store::new(&valkey)?;
    let settings = group::GroupSettings {
        client: client.clone(),
        group_id: args.group_id.clone(),
        topic: args.topic.clone(),
        dead_letter_topic: args.dead_letter_topic.clone(),
        batch_max: args.batch_max,
        batch_wait: Duration::from_millis(args.batch_wait_ms),
        carnet: carnet_settings(&args)?,
        series_length: args.series_length.max(1),
        rejoin_when_stalled: Duration::from_millis(args.rejoin_when_stalled_ms),
    };

    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let stop = Arc::new(AtomicBool::new(false));
    let (registry, metrics) = metrics::Metrics::register();
    let router =
        telemetry::metrics_router(Arc::new(registry)).route("/healthz", get(|| async { "ok\n" }));
    let (server_stop_tx, server_stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = runtime.spawn(telemetry::serve_http(args.metrics_listen, router, async {
        let _ = server_stop_rx.await;
    }));
    let signal_stop = stop.clone();
    runtime.spawn(async move {
        telemetry::shutdown_signal().await;
        signal_stop.store(true, Ordering::Relaxed);
    });
    runtime.block_on(async {
        match blackfriday_proto::topics::ensure_topic(&client, &args.dead_letter_topic, 1).await {
            Ok(created) => {
                tracing::info!(topic = %args.dead_letter_topic, created, "dead-letter topic ready")
            }
            Err(error) => {
                tracing::warn!(%error, "could not ensure the dead-letter topic; continuing")
            }
        }
    });

    spawn_valkey_probe(probe_store, metrics.clone(), stop.clone())?;
    let member = group::Member::join(settings, Arc::new(Mutex::new(store)), metrics, stop.clone())?;
    tracing::info!(topic = %args.topic, group = %args.group_id, "consumer running");
    let result = std::thread::Builder::new()
        .name("consumer-group".into())
        .spawn(move || member.run())
        .context("starting the consumer thread")?
        .join();
    let _ = server_stop_tx.send(());
    if let Ok(served) = runtime.block_on(server) {
        served?;
    }
    match result {
        Ok(outcome) => outcome,
        Err(_) => bail!("the consumer thread panicked"),
    }
}

/// Every 5 s: does Valkey answer, how many keys does it hold, how many
/// sales has it counted (`bf_consumer_valkey_up`, `bf_consumer_valkey_keys`,
/// `bf_consumer_valkey_sales`).
fn spawn_valkey_probe(
    mut store: store::Store,
    metrics: metrics::Metrics,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<()> {
    std::thread::Builder::new()
        .name("valkey-probe".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match store.probe() {
                    Ok((keys, sales)) => {
                        metrics.valkey_up.set(1);
                        metrics.valkey_keys.set(keys);
                        metrics.valkey_sales.set(sales);
                    }
                    Err(error) => {
                        metrics.valkey_up.set(0);
                        tracing::warn!(%error, "Valkey probe failed");
                    }
                }
                for _ in 0..50 {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        })
        .context("starting the Valkey probe thread")?;
    Ok(())
}
