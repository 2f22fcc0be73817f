//! The HTTP routes of the gateway.
//!
//! | route | answers |
//! |---|---|
//! | `POST /venta` | 202 `{"venta_id", "partition", "offset"}` once Kafka acknowledged the sale |
//! | `POST /ventas` | 202 `{"aceptadas", "venta_ids"}` for an array of up to 1000 sales |
//! | `GET /healthz` | 200 while the process runs |
//! | `GET /readyz` | 200 when a producer is reachable, 503 otherwise |
//! | `GET /metrics` | Prometheus text |
//!
//! Errors are JSON `{"error": "...", "field": "..."}`: 400 malformed JSON, 422 a
//! field out of range (named), 413 a body over the limit, 503 with `Retry-After`
//! when no producer is reachable or none confirmed in time.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use blackfriday_proto::MAX_SALES_PER_CALL;
use blackfriday_proto::pb::{ProductSaleBatchRequest, ProductSaleRequest};
use prometheus_client::registry::Registry;
use serde_json::json;
use tonic::Code;

use crate::batcher::Batcher;
use crate::input::{self, InputError, SaleInput};
use crate::metrics::{Metrics, Route, RouteStatus};
use crate::producers::ProducerPool;

pub struct Limits {
    pub max_body_bytes: usize,
    pub max_batch: usize,
    pub request_timeout: Duration,
}

struct AppState {
    pool: ProducerPool,
    batcher: Batcher,
    metrics: Metrics,
    limits: Limits,
}

pub fn router(
    pool: ProducerPool,
    metrics: Metrics,
    registry: Arc<Registry>,
    limits: Limits,
) -> Router {
    let max_body_bytes = limits.max_body_bytes;
    let batcher = Batcher::start(pool.clone(), MAX_SALES_PER_CALL, limits.request_timeout);
    let state = Arc::new(AppState {
        pool,
        batcher,
        metrics,
        limits,
    });
    Router::new()
        .route("/venta", post(post_one))
        .route("/ventas", post(post_many))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(state)
        .merge(telemetry::metrics_router(registry))
}

/// An error answer with a JSON body.
struct Failure {
    status: StatusCode,
    message: String,
    field: Option<String>,
    retry_after: bool,
    /// For a batch that was written in part: the sale ids that were.
    accepted: Option<Vec<String>>,
}

impl Failure {
    fn unavailable(message: impl Into<String>) -> Failure {
        Failure {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: message.into(),
            field: None,
            retry_after: true,
            accepted: None,
        }
    }
}

impl From<InputError> for Failure {
    fn from(error: InputError) -> Failure {
        match error {
            InputError::Malformed(message) => Failure {
                status: StatusCode::BAD_REQUEST,
                message,
                field: None,
                retry_after: false,
                accepted: None,
            },
            InputError::InvalidField { field, problem } => Failure {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                message: format!("{field}: {problem}"),
                field: Some(field),
                retry_after: false,
                accepted: None,
            },
        }
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let mut body = json!({ "error": self.message, "field": self.field });
        if let Some(accepted) = self.accepted {
            body["venta_ids_aceptadas"] = json!(accepted);
        }
        let mut response = (self.status, axum::Json(body)).into_response();
        if self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

fn to_request(input: SaleInput, timestamp_ms: i64) -> ProductSaleRequest {
    input
        .into_sale(uuid::Uuid::now_v7().to_string(), timestamp_ms)
        .to_proto()
}

/// Maps a failed producer call to an answer. Anything but a rejected argument
/// means the sale is not confirmed, and the client may try again.
fn producer_failure(status: tonic::Status) -> Failure {
    match status.code() {
        Code::InvalidArgument => Failure {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            message: status.message().to_string(),
            field: None,
            retry_after: false,
            accepted: None,
        },
        _ => Failure::unavailable(format!(
            "sale not confirmed by a producer: {}",
            status.message()
        )),
    }
}

impl AppState {
    fn ensure_producer_reachable(&self) -> Result<(), Failure> {
        if self.pool.reachable() {
            Ok(())
        } else {
            Err(Failure::unavailable("no producer is reachable"))
        }
    }

    /// Runs a producer call under the request deadline.
    async fn call<T>(
        &self,
        call: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> Result<T, Failure> {
        match tokio::time::timeout(self.limits.request_timeout, call).await {
            Ok(Ok(response)) => Ok(response.into_inner()),
            Ok(Err(status)) => Err(producer_failure(status)),
            Err(_) => Err(Failure::unavailable(format!(
                "no producer confirmed the sale within {:?}",
                self.limits.request_timeout
            ))),
        }
    }

    fn record(&self, route: &'static str, started: Instant, status: StatusCode) {
        self.metrics
            .responses
            .get_or_create(&RouteStatus {
                route,
                status: status.as_u16(),
            })
            .inc();
        self.metrics
            .request_seconds
            .get_or_create(&Route { route })
            .observe(started.elapsed().as_secs_f64());
    }
}

async fn post_one(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    let started = Instant::now();
    let result = async {
        let sale = input::parse_one(&body)?;
        state.ensure_producer_reachable()?;
        let request = to_request(sale, now_ms());
        let landed = state
            .call(async {
                state
                    .batcher
                    .submit(request)
                    .await
                    .map(tonic::Response::new)
            })
            .await?;
        state.metrics.sales_accepted.inc();
        Ok::<_, Failure>(json!({
            "venta_id": landed.venta_id,
            "partition": landed.partition,
            "offset": landed.offset,
        }))
    }
    .await;
    respond(&state, "/venta", started, result)
}

async fn post_many(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    let started = Instant::now();
    let result = async {
        let sales = input::parse_many(&body, state.limits.max_batch)?;
        state.ensure_producer_reachable()?;
        let timestamp_ms = now_ms();
        let ventas: Vec<_> = sales
            .into_iter()
            .map(|s| to_request(s, timestamp_ms))
            .collect();
        let mut client = state.pool.client();
        let landed = state
            .call(client.procesar_ventas(ProductSaleBatchRequest { ventas }))
            .await?;
        let (accepted, failed): (Vec<_>, Vec<_>) = landed
            .resultados
            .into_iter()
            .partition(|r| r.error.is_empty());
        state.metrics.sales_accepted.inc_by(accepted.len() as u64);
        let venta_ids: Vec<_> = accepted.into_iter().map(|r| r.venta_id).collect();
        if let Some(first) = failed.first() {
            // Some were written, some not: say which were, so a retry can
            // send only the others.
            let mut failure = Failure::unavailable(format!(
                "{} of {} sales not confirmed: {}",
                failed.len(),
                failed.len() + venta_ids.len(),
                first.error
            ));
            failure.accepted = Some(venta_ids);
            return Err(failure);
        }
        Ok::<_, Failure>(json!({ "aceptadas": venta_ids.len(), "venta_ids": venta_ids }))
    }
    .await;
    respond(&state, "/ventas", started, result)
}

fn respond(
    state: &AppState,
    route: &'static str,
    started: Instant,
    result: Result<serde_json::Value, Failure>,
) -> Response {
    let response = match result {
        Ok(body) => (StatusCode::ACCEPTED, axum::Json(body)).into_response(),
        Err(failure) => failure.into_response(),
    };
    state.record(route, started, response.status());
    response
}

async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    if state.pool.reachable() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        let reason = if state.pool.endpoint_count() == 0 {
            "not ready: no producer address resolved\n"
        } else {
            "not ready: no producer is SERVING\n"
        };
        (StatusCode::SERVICE_UNAVAILABLE, reason).into_response()
    }
}
