//! The producer's Prometheus metrics.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone)]
pub struct Metrics {
    /// Sales Kafka acknowledged.
    pub sales_acknowledged: Counter,
    /// Sales that could not be written (rejected, timed out, broker errors).
    pub sales_failed: Counter,
    /// Seconds from enqueueing a sale to its delivery report.
    pub delivery_seconds: Histogram,
}

impl Metrics {
    pub fn register() -> (Registry, Metrics) {
        let mut registry = Registry::with_prefix("bf_producer");
        let metrics = Metrics {
            sales_acknowledged: Counter::default(),
            sales_failed: Counter::default(),
            delivery_seconds: Histogram::new(exponential_buckets(0.0005, 2.0, 16)),
        };
        registry.register(
            "sales_acknowledged",
            "Sales written to Kafka and acknowledged by all in-sync replicas",
            metrics.sales_acknowledged.clone(),
        );
        registry.register(
            "sales_failed",
            "Sales that could not be written to Kafka",
            metrics.sales_failed.clone(),
        );
        registry.register(
            "delivery_seconds",
            "Time from enqueueing a sale to its Kafka delivery report",
            metrics.delivery_seconds.clone(),
        );
        (registry, metrics)
    }
}
