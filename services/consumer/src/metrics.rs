//! The consumer's Prometheus metrics.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone)]
pub struct Metrics {
    pub sales_applied: Counter,
    pub dead_letters: Counter,
    pub batches_applied: Counter,
    pub batches_fenced: Counter,
    pub resyncs: Counter,
    pub valkey_errors: Counter,
    pub rejoins: Counter,
    pub assigned_partitions: Gauge,
    /// Records in the topic this member has not committed yet.
    pub lag: Gauge,
    /// 1 when the last Valkey probe answered, else 0.
    pub valkey_up: Gauge,
    /// Keys in Valkey at the last probe.
    pub valkey_keys: Gauge,
    /// Valkey's total of sales applied (`bf:stats ventas`) after this
    /// member's last batch or probe: what a reader outside the cluster
    /// counts by (the highest over the members is Valkey's count, and it
    /// survives the loss of any one member, unlike a per-member counter).
    pub valkey_sales: Gauge,
    pub apply_seconds: Histogram,
    pub sale_to_valkey_seconds: Histogram,
}

/// Bucket bounds (seconds) of the sale-to-Valkey histogram: fine around the
/// 250 ms target, so a percentile read from the buckets says which side of it
/// the pipeline is on, and coarse out to a minute for stalls.
pub const SALE_TO_VALKEY_BUCKETS: [f64; 22] = [
    0.002, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1.0,
    2.0, 4.0, 8.0, 16.0, 32.0, 64.0,
];

impl Metrics {
    pub fn register() -> (Registry, Metrics) {
        let mut registry = Registry::with_prefix("bf_consumer");
        let metrics = Metrics {
            sales_applied: Counter::default(),
            dead_letters: Counter::default(),
            batches_applied: Counter::default(),
            batches_fenced: Counter::default(),
            resyncs: Counter::default(),
            valkey_errors: Counter::default(),
            rejoins: Counter::default(),
            assigned_partitions: Gauge::default(),
            lag: Gauge::default(),
            valkey_up: Gauge::default(),
            valkey_keys: Gauge::default(),
            valkey_sales: Gauge::default(),
            apply_seconds: Histogram::new(exponential_buckets(0.0002, 2.0, 16)),
            sale_to_valkey_seconds: Histogram::new(SALE_TO_VALKEY_BUCKETS.iter().copied()),
        };
        let counters = [
            (
                "sales_applied",
                "Sales applied to the Valkey aggregates",
                &metrics.sales_applied,
            ),
            (
                "dead_letters",
                "Undecodable records sent to the dead-letter topic",
                &metrics.dead_letters,
            ),
            (
                "batches_applied",
                "Batches applied atomically",
                &metrics.batches_applied,
            ),
            (
                "batches_fenced",
                "Batches refused because part was already applied",
                &metrics.batches_fenced,
            ),
            (
                "resyncs",
                "Times the consumer re-read its offsets from Valkey and seeked",
                &metrics.resyncs,
            ),
            (
                "valkey_errors",
                "Failed Valkey calls",
                &metrics.valkey_errors,
            ),
            (
                "rejoins",
                "Times the member rejoined because partitions stalled",
                &metrics.rejoins,
            ),
        ];
        for (name, help, counter) in counters {
            registry.register(name, help, counter.clone());
        }
        let gauges = [
            (
                "assigned_partitions",
                "Partitions currently assigned to this consumer",
                &metrics.assigned_partitions,
            ),
            (
                "lag",
                "Records of the sales topic not yet committed by this member (librdkafka statistics, every 5 s)",
                &metrics.lag,
            ),
            (
                "valkey_up",
                "1 when the last Valkey probe (PING, DBSIZE every 5 s) answered, else 0",
                &metrics.valkey_up,
            ),
            (
                "valkey_keys",
                "Keys in Valkey at the last probe",
                &metrics.valkey_keys,
            ),
            (
                "valkey_sales",
                "Valkey's total of sales applied (bf:stats ventas) after this member's last batch or probe",
                &metrics.valkey_sales,
            ),
        ];
        for (name, help, gauge) in gauges {
            registry.register(name, help, gauge.clone());
        }
        registry.register(
            "apply_seconds",
            "Time to apply one batch to Valkey",
            metrics.apply_seconds.clone(),
        );
        registry.register(
            "sale_to_valkey_seconds",
            "Time from the gateway accepting a sale to its being counted in Valkey",
            metrics.sale_to_valkey_seconds.clone(),
        );
        (registry, metrics)
    }
}
