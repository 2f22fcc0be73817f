//! What the three Black Friday services share and nothing else: logging set-up,
//! the Prometheus text endpoint and the shutdown signal.
//!
//! Each service owns its metrics (a `prometheus_client::registry::Registry`);
//! this crate only knows how to serve one.
//!
//! # Layout
//!
//! ```text
//! lib.rs  start (command line + logging), block_on, the metrics router,
//!         serve_http, shutdown_signal: one file, all a service shares
//! ```

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::registry::Registry;
use tracing_subscriber::EnvFilter;

/// The content type of the Prometheus text exposition format, version 0.0.4.
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A service's command line (`argv[0]` first), parsed, with logging set up:
/// how each service's `run` starts, whether its binary or
/// `bfctl service NAME` calls it. `--help` and bad flags exit here, as
/// clap does.
pub fn start<Args: clap::Parser>(argv: Vec<std::ffi::OsString>) -> Args {
    let args = Args::parse_from(argv);
    init_tracing();
    args
}

/// Logs to stderr; `RUST_LOG` filters (default `info`), `LOG_FORMAT=json` for JSON lines.
pub fn init_tracing() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only on a terminal: the local pipeline writes these lines to
    // log files, and Kubernetes to its own, where escape codes are noise.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    // A second initialisation (as in tests) keeps the first subscriber.
    let _ = if std::env::var("LOG_FORMAT").as_deref() == Ok("json") {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// A router with `GET /metrics` rendering `registry`.
pub fn metrics_router(registry: Arc<Registry>) -> Router {
    Router::new().route(
        "/metrics",
        get(move || {
            let registry = registry.clone();
            async move { render_metrics(&registry) }
        }),
    )
}

fn render_metrics(registry: &Registry) -> axum::response::Response {
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, registry) {
        Ok(()) => ([(CONTENT_TYPE, PROMETHEUS_CONTENT_TYPE)], body).into_response(),
        Err(error) => (
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            format!("encoding metrics failed: {error}"),
        )
            .into_response(),
    }
}

/// Binds `addr` and serves `router` until `shutdown` resolves.
pub async fn serve_http(
    addr: SocketAddr,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding HTTP listener on {addr}"))?;
    tracing::info!(%addr, "HTTP listening");
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
        .with_context(|| format!("serving HTTP on {addr}"))
}

/// Resolves on SIGINT or SIGTERM (Kubernetes stops pods with SIGTERM).
pub async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM; only Ctrl-C stops this process");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
    tracing::info!("shutdown signal received");
}

/// Runs a service's async main on a multi-threaded runtime (what
/// `#[tokio::main]` does, as a function the services' `run` can call).
pub fn block_on<F: std::future::Future<Output = anyhow::Result<()>>>(
    serve: F,
) -> anyhow::Result<()> {
    tokio::runtime::Runtime::new()
        .map_err(|error| anyhow::anyhow!("starting the async runtime: {error}"))?
        .block_on(serve)
}
