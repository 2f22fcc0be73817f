//! Reading what a service's `/metrics` says (Prometheus or OpenMetrics
//! text) through `prometheus-parse`: the one parser bfctl's status, its
//! probes and the tests share.

use prometheus_parse::{Scrape, Value};

/// A parsed `/metrics` body.
pub struct Metrics(Scrape);

impl Metrics {
    /// Parses a body; lines the parser cannot read are left out.
    pub fn parse(body: &str) -> Metrics {
        let lines = body
            .lines()
            // OpenMetrics' end marker is no sample.
            .filter(|line| line.trim() != "# EOF")
            .map(|line| Ok(line.to_string()));
        Metrics(Scrape::parse(lines).unwrap_or(Scrape {
            docs: Default::default(),
            samples: Vec::new(),
        }))
    }

    fn scalars<'a>(&'a self, name: &'a str) -> impl Iterator<Item = f64> + 'a {
        self.0
            .samples
            .iter()
            .filter(move |sample| sample.metric == name)
            .filter_map(|sample| match sample.value {
                Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => Some(v),
                _ => None,
            })
    }

    /// The sum of every sample of a counter or gauge (over its label sets);
    /// 0 when there is none.
    pub fn sum(&self, name: &str) -> f64 {
        self.scalars(name).sum()
    }

    /// The first sample of a counter or gauge, if there is one.
    pub fn first(&self, name: &str) -> Option<f64> {
        self.scalars(name).next()
    }

    /// A histogram's cumulative buckets as (upper bound, count), in order,
    /// summed over its label sets.
    pub fn buckets(&self, histogram: &str) -> Vec<(f64, f64)> {
        let bucket_series = format!("{histogram}_bucket");
        let mut sums: Vec<(f64, f64)> = Vec::new();
        let mut add = |bound: f64, count: f64| match sums.iter_mut().find(|(b, _)| *b == bound) {
            Some(entry) => entry.1 += count,
            None => sums.push((bound, count)),
        };
        for sample in &self.0.samples {
            match &sample.value {
                Value::Histogram(counts) if sample.metric == histogram => {
                    for count in counts {
                        add(count.less_than, count.count);
                    }
                }
                // Without a TYPE line the buckets come as plain samples.
                Value::Untyped(count) if sample.metric == bucket_series => {
                    let bound = match sample.labels.get("le") {
                        Some("+Inf") => f64::INFINITY,
                        Some(text) => text.parse().unwrap_or(f64::NAN),
                        None => continue,
                    };
                    add(bound, *count);
                }
                _ => {}
            }
        }
        sums.sort_by(|a, b| a.0.total_cmp(&b.0));
        sums
    }
}

/// Sums every sample of `name` in a Prometheus text body.
pub fn sum_metric(body: &str, name: &str) -> f64 {
    Metrics::parse(body).sum(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::metrics::family::Family;
    use prometheus_client::metrics::gauge::Gauge;
    use prometheus_client::metrics::histogram::Histogram;
    use prometheus_client::registry::Registry;

    /// What the services render (prometheus_client, OpenMetrics text).
    fn rendered() -> String {
        let mut registry = Registry::default();
        let applied = Counter::<u64>::default();
        applied.inc_by(7);
        registry.register("bf_consumer_sales_applied", "applied", applied);
        let lag = Family::<Vec<(String, String)>, Gauge>::default();
        lag.get_or_create(&vec![("partition".into(), "0".into())])
            .set(3);
        lag.get_or_create(&vec![("partition".into(), "1".into())])
            .set(4);
        registry.register("bf_consumer_lag", "lag", lag);
        let latency = Histogram::new([0.1, 0.25]);
        latency.observe(0.05);
        latency.observe(0.2);
        latency.observe(1.0);
        registry.register("bf_consumer_sale_to_valkey_seconds", "latency", latency);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        text
    }

    #[test]
    fn counters_gauges_and_histograms_as_the_services_render_them() {
        let metrics = Metrics::parse(&rendered());
        assert_eq!(metrics.sum("bf_consumer_sales_applied_total"), 7.0);
        assert_eq!(metrics.sum("bf_consumer_lag"), 7.0);
        assert_eq!(metrics.sum("no_such_metric"), 0.0);
        assert_eq!(
            metrics.buckets("bf_consumer_sale_to_valkey_seconds"),
            vec![(0.1, 1.0), (0.25, 2.0), (f64::INFINITY, 3.0)]
        );
    }

    #[test]
    fn plain_lines_without_types_are_read_too() {
        let metrics = Metrics::parse(
            "bf_consumer_lag 3\nbf_consumer_valkey_up 1\nx_bucket{le=\"0.1\"} 3\nx_bucket{le=\"+Inf\"} 4\n",
        );
        assert_eq!(metrics.first("bf_consumer_valkey_up"), Some(1.0));
        assert_eq!(metrics.first("missing"), None);
        assert_eq!(metrics.buckets("x"), vec![(0.1, 3.0), (f64::INFINITY, 4.0)]);
    }
}
