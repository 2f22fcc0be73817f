//! The gateway's Prometheus metrics.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteStatus {
    pub route: &'static str,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Route {
    pub route: &'static str,
}

#[derive(Clone)]
pub struct Metrics {
    pub responses: Family<RouteStatus, Counter>,
    pub request_seconds: Family<Route, Histogram>,
    pub sales_accepted: Counter,
}

impl Metrics {
    pub fn register() -> (Registry, Metrics) {
        let mut registry = Registry::with_prefix("bf_gateway");
        let metrics = Metrics {
            responses: Family::default(),
            request_seconds: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.0005, 2.0, 16))
            }),
            sales_accepted: Counter::default(),
        };
        registry.register(
            "responses",
            "Responses by route and HTTP status",
            metrics.responses.clone(),
        );
        registry.register(
            "request_seconds",
            "Time to answer a sales request, by route",
            metrics.request_seconds.clone(),
        );
        registry.register(
            "sales_accepted",
            "Sales acknowledged by Kafka and answered with 202",
            metrics.sales_accepted.clone(),
        );
        (registry, metrics)
    }
}
