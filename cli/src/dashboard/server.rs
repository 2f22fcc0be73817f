//! The live page: an HTTP server on 127.0.0.1 that serves one HTML page and
//! the snapshot it polls (`/api/snapshot`, every second).
//!
//! The page draws the same panels as the Grafana dashboard, from the same
//! frames, so what a newcomer sees locally is what Grafana shows on the
//! cluster. The supervisor of `up --local` runs it beside the pipeline;
//! `bfctl dashboard` runs it in the foreground.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::live::LiveSource;

/// The page (HTML, CSS and the script that polls and draws).
const PAGE: &str = include_str!("page.html");

type Shared = Arc<Mutex<LiveSource>>;

/// Binds `address` for a dashboard (the local page or the forwarded
/// Grafana); it must be a loopback address: what it shows is sales data.
pub async fn bind(address: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    anyhow::ensure!(
        address.ip().is_loopback(),
        "the dashboard listens on 127.0.0.1 only; {address} is not a loopback address"
    );
    tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("listening on {address} for the dashboard"))
}

/// Serves until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    source: LiveSource,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let shared: Shared = Arc::new(Mutex::new(source));
    let app = Router::new()
        .route("/", get(page))
        .route("/api/snapshot", get(snapshot))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(shared);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .context("serving the dashboard")
}

async fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        PAGE,
    )
        .into_response()
}

async fn snapshot(State(shared): State<Shared>) -> Response {
    let read = tokio::task::spawn_blocking(move || match shared.lock() {
        Ok(mut source) => source.snapshot(),
        Err(_) => Err(anyhow::anyhow!("an earlier read panicked")),
    })
    .await;
    match read {
        Ok(Ok(snapshot)) => {
            ([(header::CACHE_CONTROL, "no-store")], axum::Json(snapshot)).into_response()
        }
        Ok(Err(error)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("reading the pipeline: {error:#}"),
        )
            .into_response(),
        Err(error) => (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()).into_response(),
    }
}
