//! The gateway's one shared connection pool to the producers.
//!
//! All calls go through a single tonic `Channel` that balances over every
//! producer endpoint (power of two choices over the endpoints that are
//! connected). Endpoints come from `host:port` targets that are resolved again
//! every few seconds: a list of addresses locally, or the DNS name of a
//! Kubernetes headless Service, whose A records are the producer pods. Pods that
//! appear are added, pods that vanish are removed, connections are reused.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use blackfriday_proto::pb::product_sale_service_client::ProductSaleServiceClient;
use tokio::sync::mpsc::Sender;
use tonic::transport::channel::Change;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// The gRPC service name the producers report health for.
const SALES_SERVICE: &str = "blackfriday.ProductSaleService";

pub struct PoolSettings {
    /// `host:port` targets, each resolved to one or more producer addresses.
    pub targets: Vec<String>,
    pub resolve_interval: Duration,
    pub connect_timeout: Duration,
    pub health_interval: Duration,
}

/// What the rest of the gateway sees of the pool.
#[derive(Clone)]
pub struct ProducerPool {
    channel: Channel,
    state: Arc<PoolState>,
}

#[derive(Default)]
struct PoolState {
    /// A producer answered SERVING to the last health check.
    reachable: AtomicBool,
    /// How many producer addresses the last resolution found.
    endpoints: AtomicUsize,
}

impl ProducerPool {
    /// Starts the pool and its two background tasks (resolution, health).
    /// They run for the life of the process.
    pub fn start(settings: PoolSettings) -> ProducerPool {
        let (channel, changes) = Channel::balance_channel::<SocketAddr>(64);
        let state = Arc::new(PoolState::default());
        tokio::spawn(keep_endpoints_resolved(
            settings.targets,
            settings.resolve_interval,
            settings.connect_timeout,
            changes,
            state.clone(),
        ));
        tokio::spawn(watch_health(
            channel.clone(),
            settings.health_interval,
            state.clone(),
        ));
        ProducerPool { channel, state }
    }

    /// A client on the shared channel (cheap: no new connection).
    pub fn client(&self) -> ProductSaleServiceClient<Channel> {
        ProductSaleServiceClient::new(self.channel.clone())
    }

    /// Whether a producer answered SERVING to the last health check.
    pub fn reachable(&self) -> bool {
        self.state.reachable.load(Ordering::Relaxed)
    }

    /// How many producer addresses are known.
    pub fn endpoint_count(&self) -> usize {
        self.state.endpoints.load(Ordering::Relaxed)
    }
}

async fn resolve(targets: &[String]) -> BTreeSet<SocketAddr> {
    let mut found = BTreeSet::new();
    for target in targets {
        match tokio::net::lookup_host(target.as_str()).await {
            Ok(addresses) => found.extend(addresses),
            Err(error) => tracing::warn!(%target, %error, "cannot resolve producer target"),
        }
    }
    found
}

async fn keep_endpoints_resolved(
    targets: Vec<String>,
    interval: Duration,
    connect_timeout: Duration,
    changes: Sender<Change<SocketAddr, Endpoint>>,
    state: Arc<PoolState>,
) {
    let mut current: BTreeSet<SocketAddr> = BTreeSet::new();
    loop {
        let resolved = resolve(&targets).await;
        // Keep the last known set when resolution fails outright (DNS hiccup).
        if !resolved.is_empty() || current.is_empty() {
            for gone in current.difference(&resolved).copied().collect::<Vec<_>>() {
                tracing::info!(producer = %gone, "producer endpoint removed");
                current.remove(&gone);
                if changes.send(Change::Remove(gone)).await.is_err() {
                    return;
                }
            }
            for address in resolved {
                if current.contains(&address) {
                    continue;
                }
                let endpoint = match Endpoint::from_shared(format!("http://{address}")) {
                    Ok(endpoint) => endpoint
                        .connect_timeout(connect_timeout)
                        .tcp_nodelay(true)
                        .http2_keep_alive_interval(Duration::from_secs(10))
                        .keep_alive_while_idle(true),
                    Err(error) => {
                        tracing::error!(%address, %error, "invalid producer endpoint");
                        continue;
                    }
                };
                tracing::info!(producer = %address, "producer endpoint added");
                current.insert(address);
                if changes
                    .send(Change::Insert(address, endpoint))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            state.endpoints.store(current.len(), Ordering::Relaxed);
        }
        tokio::time::sleep(interval).await;
    }
}

async fn watch_health(channel: Channel, interval: Duration, state: Arc<PoolState>) {
    let mut health = HealthClient::new(channel);
    loop {
        let check = health.check(HealthCheckRequest {
            service: SALES_SERVICE.to_string(),
        });
        let serving = matches!(
            tokio::time::timeout(interval.max(Duration::from_millis(500)), check).await,
            Ok(Ok(response)) if response.get_ref().status == ServingStatus::Serving as i32
        );
        if state.reachable.swap(serving, Ordering::Relaxed) != serving {
            if serving {
                tracing::info!("a producer is SERVING: ready");
            } else {
                tracing::warn!("no producer is SERVING: not ready");
            }
        }
        tokio::time::sleep(interval).await;
    }
}
