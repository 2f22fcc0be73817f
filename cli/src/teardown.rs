//! `bfctl teardown`: removes what `bfctl up` applied, in the order that lets
//! controllers clean up after themselves:
//!
//! 1. workloads (Deployments, Services, policies, autoscalers …);
//! 2. custom resources (`Kafka`, `KafkaTopic`, `VirtualMachine`, `Gateway` …),
//!    waiting while their operators run the finalizers;
//! 3. the operators (their own custom resources such as the `KubeVirt` CR
//!    first, then their Deployments and RBAC);
//! 4. the CustomResourceDefinitions bfctl installed;
//! 5. the namespaces.
//!
//! Each phase waits until its objects are gone before the next starts, so an
//! operator is never deleted while its resources still need it. With
//! `--keep-data` the PersistentVolumeClaims and the namespace that holds
//! them stay. Running it again is harmless: absent objects are skipped.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::cluster::{Cluster, ObjectRef};
use crate::engine::{Event, Observer, Step};
use crate::inventory;

/// The phases, in order.
pub const PHASES: [&str; 5] = [
    "workloads",
    "custom resources",
    "operators",
    "CRDs",
    "namespaces",
];

#[derive(Debug, Clone)]
pub struct TeardownOptions {
    pub keep_data: bool,
    /// How long each phase may take to disappear.
    pub timeout: Duration,
    pub poll: Duration,
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TeardownReport {
    /// Deleted, per phase, in order.
    pub deleted: Vec<String>,
    /// Kept on purpose (`--keep-data`).
    pub kept: Vec<String>,
    /// Still present at the end, with why (finalizers, terminating).
    pub left: Vec<String>,
}

/// Which phase removes an object. `operator` says it came from an operator
/// bundle.
pub fn phase_of(object: &ObjectRef, operator: bool) -> usize {
    let group = object.group();
    let custom = !is_builtin_group(group);
    match object.kind.as_str() {
        "Namespace" if group.is_empty() => 4,
        "CustomResourceDefinition" => 3,
        _ if operator => 2,
        _ if custom => 1,
        _ => 0,
    }
}

fn is_builtin_group(group: &str) -> bool {
    group.is_empty()
        || !group.contains('.')
        || group.ends_with(".k8s.io") && group != "gateway.networking.k8s.io"
}

/// Removes everything; `steps` is the plan `bfctl up` would apply, and
/// `operator_steps` names the steps that install operators.
pub async fn teardown(
    cluster: &Cluster,
    steps: &[Step],
    operator_steps: &BTreeSet<String>,
    options: &TeardownOptions,
    observer: &dyn Observer,
) -> anyhow::Result<TeardownReport> {
    let mut phases: Vec<Vec<ObjectRef>> = vec![Vec::new(); PHASES.len()];
    let mut seen = BTreeSet::new();
    for step in steps {
        let operator = operator_steps.contains(&step.name);
        for manifest in &step.objects {
            let object = crate::engine::with_namespace(ObjectRef::of(manifest)?, cluster);
            if seen.insert(object.clone()) {
                phases[phase_of(&object, operator)].push(object);
            }
        }
    }
    // What an earlier run applied and the templates no longer render.
    for owned in inventory::list(cluster).await? {
        if seen.insert(owned.object.clone()) {
            phases[phase_of(&owned.object, false)].push(owned.object);
        }
    }

    let mut report = TeardownReport::default();
    for (index, objects) in phases.iter().enumerate() {
        let mut deleting = Vec::new();
        // Within the operators phase, their own custom resources go first.
        let mut ordered: Vec<&ObjectRef> = objects.iter().collect();
        ordered.sort_by_key(|object| is_builtin_group(object.group()));
        for object in ordered {
            if options.keep_data && keeps_data(object, cluster) {
                report.kept.push(object.to_string());
                continue;
            }
            if cluster.delete(object).await? {
                observer.event(Event::Deleted {
                    object: object.clone(),
                });
                report.deleted.push(object.to_string());
                deleting.push(object.clone());
            }
        }
        let stuck = wait_gone(cluster, &deleting, options).await?;
        if !stuck.is_empty() {
            report.left.extend(stuck);
            report.left.push(format!(
                "teardown stopped before the {} phase; rerun it once the objects above are gone",
                PHASES.get(index + 1).unwrap_or(&"last")
            ));
            return Ok(report);
        }
    }
    for owned in inventory::list(cluster).await? {
        let name = owned.object.to_string();
        if !report.kept.contains(&name) {
            report.left.push(name);
        }
    }
    Ok(report)
}

/// PVCs hold the Kafka logs and Valkey's AOF; the namespace holds the PVCs.
fn keeps_data(object: &ObjectRef, cluster: &Cluster) -> bool {
    object.kind == "PersistentVolumeClaim"
        || (object.kind == "Namespace" && object.name == cluster.default_namespace())
}

/// Polls until every object is gone; returns the ones still there after the
/// timeout, with their finalizers.
async fn wait_gone(
    cluster: &Cluster,
    objects: &[ObjectRef],
    options: &TeardownOptions,
) -> anyhow::Result<Vec<String>> {
    let deadline = Instant::now() + options.timeout;
    let mut remaining: Vec<ObjectRef> = objects.to_vec();
    let mut interval = crate::engine::backoff_start(options.poll);
    loop {
        let mut still = Vec::new();
        for object in remaining {
            if let Some(live) = cluster.get(&object).await? {
                still.push((object, live));
            }
        }
        if still.is_empty() {
            return Ok(Vec::new());
        }
        if Instant::now() >= deadline {
            return Ok(still
                .into_iter()
                .map(|(object, live)| {
                    let finalizers: Vec<&str> = live
                        .pointer("/metadata/finalizers")
                        .and_then(serde_json::Value::as_array)
                        .into_iter()
                        .flatten()
                        .filter_map(serde_json::Value::as_str)
                        .collect();
                    if finalizers.is_empty() {
                        format!("{object} (still terminating)")
                    } else {
                        format!("{object} (waiting on finalizers {})", finalizers.join(", "))
                    }
                })
                .collect());
        }
        remaining = still.into_iter().map(|(object, _)| object).collect();
        tokio::time::sleep(interval).await;
        interval = (interval * 2).min(options.poll);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(api_version: &str, kind: &str) -> ObjectRef {
        ObjectRef {
            api_version: api_version.into(),
            kind: kind.into(),
            namespace: None,
            name: "x".into(),
        }
    }

    #[test]
    fn workloads_go_before_custom_resources_before_operators_crds_and_namespaces() {
        let order = [
            phase_of(&object("apps/v1", "Deployment"), false),
            phase_of(&object("networking.k8s.io/v1", "NetworkPolicy"), false),
            phase_of(&object("kafka.strimzi.io/v1", "Kafka"), false),
            phase_of(&object("gateway.networking.k8s.io/v1", "Gateway"), false),
            phase_of(&object("apps/v1", "Deployment"), true),
            phase_of(&object("kubevirt.io/v1", "KubeVirt"), true),
            phase_of(
                &object("apiextensions.k8s.io/v1", "CustomResourceDefinition"),
                true,
            ),
            phase_of(&object("v1", "Namespace"), false),
        ];
        assert_eq!(order, [0, 0, 1, 1, 2, 2, 3, 4]);
    }
}
