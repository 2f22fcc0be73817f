//! The gateway: Black Friday sales arrive as HTTP JSON, are validated, get a
//! sale id (UUIDv7) and a timestamp, and go over one shared, balanced gRPC
//! channel to the producers. A sale is answered 202 only once a producer
//! confirmed that Kafka acknowledged it.
//!
//! # Layout
//!
//! ```text
//! lib.rs        Args, run (binary and `bfctl service gateway`), serve
//! http.rs       the axum routes: POST /venta and /ventas, /healthz, /readyz
//! input.rs      a sale's JSON, checked and normalised (what a 400 says)
//! batcher.rs    sales gathered into ProcesarVentas calls
//! producers.rs  the gRPC channel to the producers, balanced and re-resolved
//! metrics.rs    what /metrics shows
//! ```

mod batcher;
mod http;
mod input;
mod metrics;
mod producers;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;

/// HTTP JSON front door of the Black Friday pipeline.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// HTTP listen address.
    #[arg(long, env = "HTTP_LISTEN", default_value = "0.0.0.0:8080")]
    listen: SocketAddr,
    /// Producer targets, `host:port`, comma separated. Each is resolved again
    /// every --resolve-interval-ms: give the headless Service's DNS name on
    /// Kubernetes, or a list of addresses locally.
    #[arg(long, env = "PRODUCER_TARGETS", value_delimiter = ',', required = true)]
    producers: Vec<String>,
    /// How often producer targets are resolved again.
    #[arg(long, env = "PRODUCER_RESOLVE_INTERVAL_MS", default_value_t = 5_000)]
    resolve_interval_ms: u64,
    /// How often producer health is checked (drives /readyz).
    #[arg(long, env = "PRODUCER_HEALTH_INTERVAL_MS", default_value_t = 1_000)]
    health_interval_ms: u64,
    /// Deadline for a producer to confirm a sale (or a batch).
    #[arg(long, env = "REQUEST_TIMEOUT_MS", default_value_t = 10_000)]
    request_timeout_ms: u64,
    /// Largest accepted request body; larger bodies get 413.
    #[arg(long, env = "MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    max_body_bytes: usize,
    /// Most sales accepted by one `POST /ventas` (at most the producers'
    /// limit per call, 1000).
    #[arg(long, env = "MAX_BATCH", default_value_t = 1000)]
    max_batch: usize,
}

/// Runs the gateway with these command-line arguments (the first is the
/// program's name) until SIGTERM or Ctrl-C: what the `gateway` binary and
/// `bfctl service gateway` both do.
pub fn run(argv: Vec<std::ffi::OsString>) -> anyhow::Result<()> {
    telemetry::block_on(serve(telemetry::start::<Args>(argv)))
}

async fn serve(args: Args) -> anyhow::Result<()> {
    if args.max_batch == 0 || args.max_batch > blackfriday_proto::MAX_SALES_PER_CALL {
        anyhow::bail!(
            "--max-batch {}: must be between 1 and {} (what a producer accepts per call)",
            args.max_batch,
            blackfriday_proto::MAX_SALES_PER_CALL
        );
    }
    if args.producers.iter().all(|t| t.trim().is_empty()) {
        anyhow::bail!("--producers: give at least one host:port");
    }
    let pool = producers::ProducerPool::start(producers::PoolSettings {
        targets: args
            .producers
            .iter()
            .map(|t| t.trim().to_string())
            .collect(),
        resolve_interval: Duration::from_millis(args.resolve_interval_ms),
        connect_timeout: Duration::from_secs(1),
        health_interval: Duration::from_millis(args.health_interval_ms),
    });
    let (registry, metrics) = metrics::Metrics::register();
    let router = http::router(
        pool,
        metrics,
        Arc::new(registry),
        http::Limits {
            max_body_bytes: args.max_body_bytes,
            max_batch: args.max_batch,
            request_timeout: Duration::from_millis(args.request_timeout_ms),
        },
    );
    telemetry::serve_http(args.listen, router, telemetry::shutdown_signal()).await
}
