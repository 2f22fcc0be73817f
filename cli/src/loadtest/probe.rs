//! Where a load test reads what the pipeline did with the sales it sent:
//! how many were counted, and how long each took to reach Valkey.
//!
//! * [`LocalProbe`]: the local pipeline. Valkey itself (`bf:stats`: sales,
//!   units and amounts) and the consumers' metrics endpoints.
//! * [`ClusterProbe`]: a cluster. Valkey runs inside a KubeVirt VM that
//!   nothing outside reaches, so the count is what the consumers last read
//!   of Valkey's own total (`bf_consumer_valkey_sales`: returned by each
//!   atomic batch, and read every 5 s), the highest over the running
//!   consumer pods, read through the API server's pod proxy. Units and
//!   amounts are not known there.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use serde_json::Value;

use crate::local::LocalState;
use kube_apply::Cluster;

/// What has been counted so far (monotonic while nothing restarts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counted {
    pub sales: i64,
    /// Units and amounts, when the probe sees Valkey's aggregates.
    pub units: Option<i64>,
    pub amount_cents: Option<i64>,
}

/// Reads what the pipeline counted.
pub trait PipelineProbe: Send {
    /// Where the count comes from, for the report.
    fn source(&self) -> &'static str;
    fn counted(&mut self) -> anyhow::Result<Counted>;
    /// Sales accepted and in Kafka but not yet applied to Valkey: the
    /// topic's end offsets against the offsets the consumers stored.
    /// `None`: this probe cannot tell.
    fn pending(&mut self) -> anyhow::Result<Option<i64>>;
    /// The consumers' `bf_consumer_sale_to_valkey_seconds` buckets, summed:
    /// upper bound in seconds (`inf` for +Inf) → cumulative count.
    fn sale_to_valkey_buckets(&mut self) -> Vec<(f64, f64)>;
    /// A second probe of the same pipeline (for a sampling thread).
    fn another(&self) -> anyhow::Result<Box<dyn PipelineProbe>>;
}

/// The local pipeline's Valkey, broker and consumers.
pub struct LocalProbe {
    state: LocalState,
    valkey: redis::Connection,
    /// Made on first use (the broker may be down when the probe is made).
    watermarks: Option<localrun::broker::Watermarks>,
}

/// How long one read of the broker's offsets may take (it may be down).
const BROKER_READ_TIMEOUT: Duration = Duration::from_secs(1);

impl LocalProbe {
    pub fn new(state: &LocalState) -> anyhow::Result<LocalProbe> {
        Ok(LocalProbe {
            valkey: state.valkey()?,
            state: state.clone(),
            watermarks: None,
        })
    }

    /// Runs a Valkey read; a connection Valkey dropped (it was restarted,
    /// say) is opened again once before the error is given up on.
    fn read_valkey<T>(
        &mut self,
        read: impl Fn(&mut redis::Connection) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        match read(&mut self.valkey) {
            Ok(value) => Ok(value),
            Err(_) => {
                self.valkey = self.state.valkey()?;
                read(&mut self.valkey)
            }
        }
    }
}

impl PipelineProbe for LocalProbe {
    fn source(&self) -> &'static str {
        "Valkey"
    }

    fn counted(&mut self) -> anyhow::Result<Counted> {
        let totals = self.read_valkey(localrun::totals::Totals::read)?;
        Ok(Counted {
            sales: totals.sales,
            units: Some(totals.units),
            amount_cents: Some(totals.amount_cents),
        })
    }

    /// The stored offsets are read before the end offsets, so a sale
    /// produced between the two reads shows as pending, never as lost.
    fn pending(&mut self) -> anyhow::Result<Option<i64>> {
        let topic = blackfriday_proto::SALES_TOPIC;
        let stored: std::collections::HashMap<i32, i64> = self.read_valkey(|valkey| {
            redis::cmd("HGETALL")
                .arg(format!("bf:offsets:{topic}"))
                .query(valkey)
                .context("reading the consumers' stored offsets")
        })?;
        if self.watermarks.is_none() {
            self.watermarks = Some(localrun::broker::Watermarks::new(
                &self.state.kafka_bootstrap,
            )?);
        }
        let watermarks = self.watermarks.as_ref().context("made above")?;
        let ends = watermarks.read(topic, BROKER_READ_TIMEOUT)?;
        Ok(Some(pending_records(&ends, &stored)))
    }

    fn sale_to_valkey_buckets(&mut self) -> Vec<(f64, f64)> {
        let Ok(client) = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
        else {
            return Vec::new();
        };
        let bodies: Vec<String> = self
            .state
            .processes
            .iter()
            .filter(|p| p.name.starts_with("consumer"))
            .filter_map(|p| p.metrics_url())
            .filter_map(|url| client.get(url).send().and_then(|r| r.text()).ok())
            .collect();
        sum_buckets(&bodies)
    }

    fn another(&self) -> anyhow::Result<Box<dyn PipelineProbe>> {
        Ok(Box::new(LocalProbe::new(&self.state)?))
    }
}

/// A cluster's consumer pods, through the API server.
pub struct ClusterProbe {
    runtime: Arc<tokio::runtime::Runtime>,
    cluster: Cluster,
}

/// The consumer's metrics port (consumer.yaml, METRICS_LISTEN).
pub const CONSUMER_METRICS_PORT: u16 = 9090;

impl ClusterProbe {
    /// Blocking calls go through `runtime` (never call from inside it).
    pub fn new(runtime: Arc<tokio::runtime::Runtime>, cluster: Cluster) -> ClusterProbe {
        ClusterProbe { runtime, cluster }
    }

    /// Each running consumer pod's name and /metrics body (pods that do not
    /// answer are skipped).
    pub fn consumer_metrics(&self) -> anyhow::Result<Vec<(String, String)>> {
        self.runtime.block_on(consumer_metrics(&self.cluster))
    }
}

/// Each running consumer pod's name and /metrics body, in the cluster's
/// default namespace.
pub async fn consumer_metrics(cluster: &Cluster) -> anyhow::Result<Vec<(String, String)>> {
    let namespace = cluster.default_namespace().to_string();
    let pods = cluster
        .list("v1", "Pod", "app.kubernetes.io/name=consumer")
        .await
        .context("listing the consumer pods")?;
    let mut bodies = Vec::new();
    for pod in pods {
        if pod.pointer("/metadata/namespace").and_then(Value::as_str) != Some(&namespace)
            || pod.pointer("/status/phase").and_then(Value::as_str) != Some("Running")
            || pod.pointer("/metadata/deletionTimestamp").is_some()
        {
            continue;
        }
        let Some(name) = pod.pointer("/metadata/name").and_then(Value::as_str) else {
            continue;
        };
        if let Ok(body) = cluster
            .pod_proxy_get(&namespace, name, CONSUMER_METRICS_PORT, "metrics")
            .await
        {
            bodies.push((name.to_string(), body));
        }
    }
    Ok(bodies)
}

impl PipelineProbe for ClusterProbe {
    fn source(&self) -> &'static str {
        "Valkey's count, as the consumers last read it"
    }

    /// The highest `bf_consumer_valkey_sales` of the consumer pods:
    /// Valkey's own count as of the latest batch or probe, which, unlike
    /// a per-pod counter, survives the loss of any one pod.
    fn counted(&mut self) -> anyhow::Result<Counted> {
        let bodies = self.consumer_metrics()?;
        anyhow::ensure!(!bodies.is_empty(), "no consumer pod answers");
        Ok(Counted {
            sales: bodies
                .iter()
                .map(|(_, body)| {
                    localrun::launcher::sum_metric(body, "bf_consumer_valkey_sales") as i64
                })
                .max()
                .unwrap_or(0),
            units: None,
            amount_cents: None,
        })
    }

    fn pending(&mut self) -> anyhow::Result<Option<i64>> {
        let bodies = self.consumer_metrics()?;
        anyhow::ensure!(!bodies.is_empty(), "no consumer pod answers");
        Ok(Some(
            bodies
                .iter()
                .map(|(_, body)| localrun::launcher::sum_metric(body, "bf_consumer_lag") as i64)
                .sum(),
        ))
    }

    fn sale_to_valkey_buckets(&mut self) -> Vec<(f64, f64)> {
        let bodies: Vec<String> = self
            .consumer_metrics()
            .unwrap_or_default()
            .into_iter()
            .map(|(_, body)| body)
            .collect();
        sum_buckets(&bodies)
    }

    fn another(&self) -> anyhow::Result<Box<dyn PipelineProbe>> {
        Ok(Box::new(ClusterProbe {
            runtime: self.runtime.clone(),
            cluster: self.cluster.clone(),
        }))
    }
}

/// Scales the `consumer` Deployment to `replicas`, waits until it is ready
/// (the same rule as `bfctl up`), then until the running consumer pods are
/// exactly `replicas` and own every one of `partitions` between them, each
/// at least one (when there are enough partitions), for a second: the group
/// has settled and a load test measures the pipeline, not a rebalance.
pub async fn scale_consumers(
    cluster: &Cluster,
    replicas: i32,
    partitions: i64,
    timeout: Duration,
    note: &dyn Fn(String),
) -> anyhow::Result<()> {
    let namespace = cluster.default_namespace().to_string();
    cluster
        .scale_deployment(&namespace, "consumer", replicas)
        .await?;
    let deployment = kube_apply::ObjectRef {
        api_version: "apps/v1".into(),
        kind: "Deployment".into(),
        namespace: Some(namespace.clone()),
        name: "consumer".into(),
    };
    use kube_apply::readiness::{self, Readiness};
    use kube_apply::wait::{Check, Poll, WaitError, poll_until};
    let poll = Poll {
        timeout,
        every: Duration::from_millis(250),
    };
    let deployment = &deployment;
    poll_until(
        poll,
        None,
        |_| {},
        || async move {
            match cluster.get(deployment).await {
                Ok(Some(live)) => match readiness::assess(deployment, &live) {
                    Readiness::Ready => Check::Done(()),
                    Readiness::Waiting(message) => Check::Waiting(message),
                    Readiness::Failed(message) => Check::Failed(message),
                },
                Ok(None) => Check::Failed(format!("{deployment} does not exist")),
                Err(error) => Check::Failed(error.to_string()),
            }
        },
    )
    .await
    .map_err(|error| match error {
        WaitError::TimedOut { last } => anyhow::anyhow!(
            "{deployment} not ready after {}s: {last}",
            timeout.as_secs()
        ),
        WaitError::Failed(message) => anyhow::anyhow!("{message}"),
        WaitError::Interrupted => anyhow::anyhow!("interrupted"),
    })?;
    note(format!("{deployment} has {replicas} ready replicas"));
    // Settled: the right number of consumers, every partition owned, each
    // consumer owning one (when there are enough), for a whole second.
    let settled_since = std::cell::Cell::new(None::<std::time::Instant>);
    let settled_since = &settled_since;
    poll_until(
        poll,
        None,
        |summary| note(format!("partitions owned: {summary} (of {partitions})")),
        || async move {
            let bodies = match consumer_metrics(cluster).await {
                Ok(bodies) => bodies,
                Err(error) => return Check::Failed(format!("{error:#}")),
            };
            let owned: Vec<(String, i64)> = bodies
                .into_iter()
                .map(|(pod, body)| {
                    let owned = localrun::launcher::sum_metric(&body, "bf_consumer_assigned_partitions")
                        as i64;
                    (pod, owned)
                })
                .collect();
            let summary = owned
                .iter()
                .map(|(pod, n)| format!("{pod}: {n}"))
                .collect::<Vec<_>>()
                .join(", ");
            let total: i64 = owned.iter().map(|(_, n)| n).sum();
            let everyone = i64::from(replicas) > partitions || owned.iter().all(|(_, n)| *n > 0);
            if owned.len() == replicas as usize && total == partitions && everyone {
                let since = settled_since.get().unwrap_or_else(std::time::Instant::now);
                settled_since.set(Some(since));
                if since.elapsed() >= Duration::from_secs(1) {
                    return Check::Done(());
                }
            } else {
                settled_since.set(None);
            }
            Check::Waiting(summary)
        },
    )
    .await
    .map_err(|error| match error {
        WaitError::TimedOut { last } => anyhow::anyhow!(
            "the consumer group did not settle within {}s; partitions owned: {last} (of {partitions})",
            timeout.as_secs()
        ),
        WaitError::Failed(message) => anyhow::anyhow!("{message}"),
        WaitError::Interrupted => anyhow::anyhow!("interrupted"),
    })
}

/// Records not yet applied: each partition's end offset minus the next
/// offset the consumers stored for it (its first offset when none is
/// stored: the consumers start there).
fn pending_records(ends: &[(i32, i64, i64)], stored: &std::collections::HashMap<i32, i64>) -> i64 {
    ends.iter()
        .map(|(partition, low, high)| {
            let next = stored.get(partition).copied().unwrap_or(*low).max(*low);
            (high - next).max(0)
        })
        .sum()
}

/// Sums the sale-to-Valkey histogram buckets of several consumers' bodies.
pub fn sum_buckets(bodies: &[String]) -> Vec<(f64, f64)> {
    let mut sums: Vec<(f64, f64)> = Vec::new();
    for body in bodies {
        let buckets =
            localrun::metrics::Metrics::parse(body).buckets("bf_consumer_sale_to_valkey_seconds");
        for (bound, count) in buckets {
            match sums.iter_mut().find(|(b, _)| *b == bound) {
                Some(entry) => entry.1 += count,
                None => sums.push((bound, count)),
            }
        }
    }
    sums.sort_by(|a, b| a.0.total_cmp(&b.0));
    sums
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_counts_what_is_past_the_stored_offsets() {
        let ends = [(0, 0, 10), (1, 5, 8), (2, 0, 4)];
        // Partition 0: 3 applied of 10; 1: nothing stored, starts at 5;
        // 2: all applied.
        let stored = [(0, 3), (2, 4)].into();
        assert_eq!(pending_records(&ends, &stored), 7 + 3);
    }

    #[test]
    fn buckets_of_several_consumers_add_up() {
        let a = "bf_consumer_sale_to_valkey_seconds_bucket{le=\"0.1\"} 3\nbf_consumer_sale_to_valkey_seconds_bucket{le=\"+Inf\"} 4\n".to_string();
        let b = "# HELP x\nbf_consumer_sale_to_valkey_seconds_bucket{le=\"0.1\"} 1\nbf_consumer_sale_to_valkey_seconds_bucket{le=\"+Inf\"} 1\n".to_string();
        assert_eq!(sum_buckets(&[a, b]), vec![(0.1, 4.0), (f64::INFINITY, 5.0)]);
    }
}
