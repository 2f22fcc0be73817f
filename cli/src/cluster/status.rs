//! `bfctl status`: for every step of the plan, what exists and whether it is
//! ready (by the same rules `bfctl up` waits on, and autoscalers by whether
//! they can scale), the images the workloads run, the autoscalers' replica
//! counts, what the consumers report and where to send traffic.
//!
//! Healthy means every figure shown could be read and is healthy: every
//! component ready, at least one consumer answering, every consumer
//! answering and reaching Valkey. Anything else is "not healthy", with the
//! reasons (exit 1).

use std::fmt::Write as _;

use serde::Serialize;
use serde_json::Value;

use kube_apply::Step;
use kube_apply::readiness::{self, Readiness};
use kube_apply::{Cluster, ObjectRef};

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    pub components: Vec<ComponentStatus>,
    /// Where to send traffic, once the Gateway or Ingress has an address.
    pub external_url: Option<String>,
    /// True when every component is ready and every pipeline figure could
    /// be read and is healthy.
    pub healthy: bool,
    /// Why it is not healthy, one line each.
    pub problems: Vec<String>,
    /// What the consumers report: lag and Valkey.
    pub pipeline: PipelineHealth,
    /// Things to know that do not change health (operator files not at hand).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// Read from each consumer pod's metrics through the API server proxy.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PipelineHealth {
    pub consumers: Vec<ConsumerHealth>,
    /// Records of `ventas` not yet applied, over all consumers.
    pub total_lag: Option<i64>,
    /// Whether the consumers reach Valkey (None: no consumer answered).
    pub valkey_reachable: Option<bool>,
    pub valkey_keys: Option<i64>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsumerHealth {
    pub pod: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lag: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub valkey_up: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub valkey_keys: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

use crate::loadtest::probe::CONSUMER_METRICS_PORT;

/// Reads lag and Valkey health from every running consumer pod.
pub async fn pipeline_health(cluster: &Cluster) -> anyhow::Result<PipelineHealth> {
    let namespace = cluster.default_namespace().to_string();
    let pods = cluster
        .list("v1", "Pod", "app.kubernetes.io/name=consumer")
        .await?;
    let mut health = PipelineHealth::default();
    for pod in pods {
        if pod.pointer("/metadata/namespace").and_then(Value::as_str) != Some(&namespace)
            || pod.pointer("/status/phase").and_then(Value::as_str) != Some("Running")
        {
            continue;
        }
        let name = pod
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let consumer = match cluster
            .pod_proxy_get(&namespace, &name, CONSUMER_METRICS_PORT, "metrics")
            .await
        {
            Ok(body) => ConsumerHealth {
                pod: name,
                lag: gauge(&body, "bf_consumer_lag"),
                valkey_up: gauge(&body, "bf_consumer_valkey_up").map(|up| up == 1),
                valkey_keys: gauge(&body, "bf_consumer_valkey_keys"),
                error: None,
            },
            Err(error) => ConsumerHealth {
                pod: name,
                lag: None,
                valkey_up: None,
                valkey_keys: None,
                error: Some(format!("{error:#}")),
            },
        };
        health.consumers.push(consumer);
    }
    let answered: Vec<&ConsumerHealth> = health
        .consumers
        .iter()
        .filter(|c| c.error.is_none())
        .collect();
    if !answered.is_empty() {
        health.total_lag = Some(answered.iter().filter_map(|c| c.lag).sum());
        health.valkey_reachable = Some(answered.iter().all(|c| c.valkey_up == Some(true)));
        health.valkey_keys = answered.iter().filter_map(|c| c.valkey_keys).max();
    }
    Ok(health)
}

/// A gauge's value in a `/metrics` body (whole numbers are what these are).
fn gauge(body: &str, name: &str) -> Option<i64> {
    localrun::metrics::Metrics::parse(body)
        .first(name)
        .map(|value| value as i64)
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ComponentStatus {
    pub name: String,
    /// ready, progressing, failed, missing
    pub state: String,
    pub objects: Vec<ObjectStatus>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectStatus {
    pub object: String,
    pub state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Deployments: desired and ready replicas.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replicas: Option<Replicas>,
    /// Deployments: the images of their containers.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Replicas {
    pub desired: i64,
    pub ready: i64,
}

/// Reads the status of every step's objects.
pub async fn collect(cluster: &Cluster, steps: &[Step]) -> anyhow::Result<Status> {
    let mut components = Vec::new();
    let mut external_url = None;
    for step in steps {
        let mut objects = Vec::new();
        for manifest in &step.objects {
            let object = kube_apply::with_namespace(ObjectRef::of(manifest)?, cluster);
            objects.push(object_status(cluster, &object, &mut external_url).await?);
        }
        let state = if objects.iter().any(|o| o.state == "missing") {
            "missing"
        } else if objects.iter().any(|o| o.state == "failed") {
            "failed"
        } else if objects.iter().any(|o| o.state == "progressing") {
            "progressing"
        } else {
            "ready"
        };
        components.push(ComponentStatus {
            name: step.name.clone(),
            state: state.to_string(),
            objects,
        });
    }
    let pipeline = pipeline_health(cluster).await?;
    let mut problems: Vec<String> = components
        .iter()
        .filter(|c| c.state != "ready")
        .map(|c| format!("{} {}", c.name, c.state))
        .collect();
    if pipeline.consumers.is_empty() {
        problems.push("no consumer pod is running".into());
    }
    for consumer in &pipeline.consumers {
        if let Some(error) = &consumer.error {
            problems.push(format!("consumer {} did not answer: {error}", consumer.pod));
        }
    }
    match pipeline.valkey_reachable {
        Some(true) => {}
        Some(false) => problems.push("the consumers do not reach Valkey".into()),
        None => problems.push("no consumer answered, so Valkey and the lag are unknown".into()),
    }
    Ok(Status {
        components,
        external_url,
        healthy: problems.is_empty(),
        problems,
        pipeline,
        notes: Vec::new(),
    })
}

async fn object_status(
    cluster: &Cluster,
    object: &ObjectRef,
    external_url: &mut Option<String>,
) -> anyhow::Result<ObjectStatus> {
    let mut status = ObjectStatus {
        object: object.to_string(),
        state: "ready".into(),
        message: None,
        replicas: None,
        images: Vec::new(),
    };
    let Some(live) = cluster.get(object).await? else {
        status.state = "missing".into();
        return Ok(status);
    };
    {
        let target = readiness::wait_target(object);
        let verdict = if target == *object {
            readiness::assess(&target, &live)
        } else {
            match cluster.get(&target).await? {
                Some(target_live) => readiness::assess(&target, &target_live),
                None => Readiness::Waiting(format!("{} does not exist", target.kind)),
            }
        };
        match verdict {
            Readiness::Ready => {}
            Readiness::Waiting(message) => {
                status.state = "progressing".into();
                status.message = Some(message);
            }
            Readiness::Failed(message) => {
                status.state = "failed".into();
                status.message = Some(message);
            }
        }
    }
    let int = |pointer: &str| live.pointer(pointer).and_then(Value::as_i64);
    match object.kind.as_str() {
        "Deployment" => {
            status.replicas = Some(Replicas {
                desired: int("/spec/replicas").unwrap_or(1),
                ready: int("/status/readyReplicas").unwrap_or(0),
            });
            status.images = live
                .pointer("/spec/template/spec/containers")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|c| c.get("image").and_then(Value::as_str))
                .map(str::to_string)
                .collect();
        }
        "HorizontalPodAutoscaler" => {
            let replicas = format!(
                "replicas current {} desired {} (min {}, max {})",
                int("/status/currentReplicas").unwrap_or(0),
                int("/status/desiredReplicas").unwrap_or(0),
                int("/spec/minReplicas").unwrap_or(1),
                int("/spec/maxReplicas").unwrap_or(0),
            );
            status.message = Some(match status.message.take() {
                Some(condition) => format!("{condition}; {replicas}"),
                None => replicas,
            });
        }
        "Gateway" | "Ingress" => {
            if let Some(address) = readiness::external_address(&live) {
                *external_url = Some(format!("http://{address}"));
            }
        }
        _ => {}
    }
    Ok(status)
}

/// The human form.
pub fn to_text(status: &Status) -> String {
    let mut text = String::new();
    for component in &status.components {
        let _ = writeln!(
            text,
            "{:<24} {:<12} {} objects",
            component.name,
            component.state,
            component.objects.len()
        );
        // Objects are listed when they say more than the component line:
        // a different state, a message, replicas or images.
        for object in &component.objects {
            let worth_a_line = object.state != component.state
                || object.message.is_some()
                || object.replicas.is_some();
            if !worth_a_line {
                continue;
            }
            let mut line = format!("  {} {}", object.object, object.state);
            if let Some(replicas) = &object.replicas {
                let _ = write!(
                    line,
                    ", {}/{} replicas ready",
                    replicas.ready, replicas.desired
                );
            }
            if let Some(message) = &object.message {
                let _ = write!(line, ": {message}");
            }
            let _ = writeln!(text, "{line}");
            for image in &object.images {
                let _ = writeln!(text, "      image {image}");
            }
        }
    }
    let pipeline = &status.pipeline;
    match pipeline.total_lag {
        Some(lag) => {
            let _ = writeln!(
                text,
                "consumers: {} answering, lag {lag} records; Valkey {}, {} keys",
                pipeline
                    .consumers
                    .iter()
                    .filter(|c| c.error.is_none())
                    .count(),
                if pipeline.valkey_reachable == Some(true) {
                    "reachable"
                } else {
                    "NOT reachable"
                },
                pipeline.valkey_keys.unwrap_or(0)
            );
        }
        None => {
            let _ = writeln!(text, "consumers: none answering (no lag or Valkey figures)");
        }
    }
    for consumer in &pipeline.consumers {
        if let Some(error) = &consumer.error {
            let _ = writeln!(text, "  {}: {error}", consumer.pod);
        }
    }
    let _ = writeln!(
        text,
        "traffic: {}",
        status
            .external_url
            .as_deref()
            .unwrap_or("no external address yet")
    );
    for note in &status.notes {
        let _ = writeln!(text, "note: {note}");
    }
    if status.healthy {
        let _ = writeln!(text, "overall: healthy");
    } else {
        let _ = writeln!(text, "overall: not healthy: {}", status.problems.join("; "));
    }
    text
}
