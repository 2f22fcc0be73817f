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
        let targets = Arc::new(settings.targets);
        tokio::spawn(keep_endpoints_resolved(
            move || {
                let targets = targets.clone();
                async move { resolve(&targets).await }
            },
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

/// Every `interval`, resolves the targets (through `resolve_all`) and tells
/// the balanced channel which addresses appeared and which went away.
async fn keep_endpoints_resolved<R, F>(
    resolve_all: R,
    interval: Duration,
    connect_timeout: Duration,
    changes: Sender<Change<SocketAddr, Endpoint>>,
    state: Arc<PoolState>,
) where
    R: Fn() -> F,
    F: std::future::Future<Output = BTreeSet<SocketAddr>>,
{
    let mut current: BTreeSet<SocketAddr> = BTreeSet::new();
    loop {
        let resolved = resolve_all().await;
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// What a headless Service's DNS name does as producer pods come and go:
    /// new addresses join the channel, gone ones leave, and a failed lookup
    /// (no addresses) keeps the last known set.
    #[tokio::test]
    async fn endpoints_follow_what_the_name_resolves_to() {
        let a: SocketAddr = "10.0.0.1:50051".parse().unwrap();
        let b: SocketAddr = "10.0.0.2:50051".parse().unwrap();
        let answer = Arc::new(Mutex::new(BTreeSet::from([a])));
        let (changes, mut seen) = tokio::sync::mpsc::channel(16);
        let state = Arc::new(PoolState::default());
        let resolver_answer = answer.clone();
        let task = tokio::spawn(keep_endpoints_resolved(
            move || {
                let addresses = resolver_answer.lock().unwrap().clone();
                async move { addresses }
            },
            Duration::from_millis(10),
            Duration::from_secs(1),
            changes,
            state.clone(),
        ));
        assert_eq!(next(&mut seen).await, ("insert", a));
        *answer.lock().unwrap() = BTreeSet::from([a, b]);
        assert_eq!(next(&mut seen).await, ("insert", b));
        *answer.lock().unwrap() = BTreeSet::from([b]);
        assert_eq!(next(&mut seen).await, ("remove", a));
        // A lookup that finds nothing keeps what was known.
        *answer.lock().unwrap() = BTreeSet::new();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            seen.try_recv().is_err(),
            "nothing removed on a failed lookup"
        );
        assert_eq!(state.endpoints.load(Ordering::Relaxed), 1);
        *answer.lock().unwrap() = BTreeSet::from([a]);
        let mut rest = vec![next(&mut seen).await, next(&mut seen).await];
        rest.sort();
        assert_eq!(rest, vec![("insert", a), ("remove", b)]);
        task.abort();
    }

    async fn next(
        seen: &mut tokio::sync::mpsc::Receiver<Change<SocketAddr, Endpoint>>,
    ) -> (&'static str, SocketAddr) {
        match seen.recv().await {
            Some(Change::Insert(address, _)) => ("insert", address),
            Some(Change::Remove(address)) => ("remove", address),
            None => panic!("the resolver task ended"),
        }
    }
}
