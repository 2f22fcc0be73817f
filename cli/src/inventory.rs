//! What bfctl owns in a cluster, found by label.
//!
//! Every object bfctl applies carries `app.kubernetes.io/managed-by=bfctl`
//! and `app.kubernetes.io/part-of=blackfriday` (see [`crate::render`]). That
//! pair is the inventory: listing it across the kinds bfctl ever applies
//! finds what an earlier run left, so objects dropped from the templates can
//! be pruned and a teardown can say what is left.
//!
//! Objects with an owner reference are never pruned: controllers copy labels
//! onto what they create (Strimzi copies the `Kafka` labels onto its Services
//! and pods), and those belong to the controller, not to bfctl.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::cluster::{Cluster, ObjectRef};
use crate::render::{MANAGED_BY_LABEL, PART_OF_LABEL};

/// The label selector of bfctl's inventory.
pub fn selector() -> String {
    format!("{MANAGED_BY_LABEL}=bfctl,{PART_OF_LABEL}=blackfriday")
}

/// Every kind bfctl renders or installs, in apply order of their category:
/// the kinds a prune or a leftover search looks through.
pub const KINDS: &[(&str, &str)] = &[
    ("v1", "Namespace"),
    ("apiextensions.k8s.io/v1", "CustomResourceDefinition"),
    ("rbac.authorization.k8s.io/v1", "ClusterRole"),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
    ("rbac.authorization.k8s.io/v1", "Role"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"),
    (
        "admissionregistration.k8s.io/v1",
        "ValidatingWebhookConfiguration",
    ),
    (
        "admissionregistration.k8s.io/v1",
        "MutatingWebhookConfiguration",
    ),
    ("scheduling.k8s.io/v1", "PriorityClass"),
    ("networking.k8s.io/v1", "IngressClass"),
    ("v1", "ServiceAccount"),
    ("v1", "ConfigMap"),
    ("v1", "Secret"),
    ("v1", "Service"),
    ("v1", "PersistentVolumeClaim"),
    ("apps/v1", "Deployment"),
    ("apps/v1", "DaemonSet"),
    ("apps/v1", "StatefulSet"),
    ("batch/v1", "Job"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"),
    ("policy/v1", "PodDisruptionBudget"),
    ("networking.k8s.io/v1", "NetworkPolicy"),
    ("networking.k8s.io/v1", "Ingress"),
    ("gateway.networking.k8s.io/v1", "Gateway"),
    ("gateway.networking.k8s.io/v1", "HTTPRoute"),
    ("kafka.strimzi.io/v1", "Kafka"),
    ("kafka.strimzi.io/v1", "KafkaNodePool"),
    ("kafka.strimzi.io/v1", "KafkaTopic"),
    ("kubevirt.io/v1", "KubeVirt"),
    ("kubevirt.io/v1", "VirtualMachine"),
];

/// An object found in the inventory.
#[derive(Debug, Clone)]
pub struct Owned {
    pub object: ObjectRef,
    pub live: Value,
}

impl Owned {
    /// Created by a controller (it has an owner), not by bfctl.
    pub fn has_owner(&self) -> bool {
        self.live
            .pointer("/metadata/ownerReferences")
            .and_then(Value::as_array)
            .is_some_and(|owners| !owners.is_empty())
    }

    pub fn terminating(&self) -> bool {
        self.live.pointer("/metadata/deletionTimestamp").is_some()
    }
}

/// Everything in the cluster that carries bfctl's inventory labels and that
/// bfctl itself applied (no owner references).
pub async fn list(cluster: &Cluster) -> anyhow::Result<Vec<Owned>> {
    let selector = selector();
    let mut found = Vec::new();
    for (api_version, kind) in KINDS {
        for live in cluster.list(api_version, kind, &selector).await? {
            // A listed object's apiVersion/kind may be empty in some servers'
            // list items; the kind we asked for is authoritative.
            let mut object = ObjectRef::of(&with_type(live.clone(), api_version, kind))?;
            object.api_version = api_version.to_string();
            let owned = Owned { object, live };
            if !owned.has_owner() {
                found.push(owned);
            }
        }
    }
    Ok(found)
}

fn with_type(mut live: Value, api_version: &str, kind: &str) -> Value {
    if let Some(map) = live.as_object_mut() {
        map.entry("apiVersion")
            .or_insert_with(|| api_version.into());
        map.entry("kind").or_insert_with(|| kind.into());
    }
    live
}

/// Deletes inventory objects that are not in `rendered`. Returns what it
/// deleted.
pub async fn prune(
    cluster: &Cluster,
    rendered: &BTreeSet<ObjectRef>,
) -> anyhow::Result<Vec<ObjectRef>> {
    let rendered_keys: BTreeSet<(String, String, Option<String>, String)> =
        rendered.iter().map(key).collect();
    let mut pruned = Vec::new();
    for owned in list(cluster).await? {
        if rendered_keys.contains(&key(&owned.object)) || owned.terminating() {
            continue;
        }
        if cluster.delete(&owned.object).await? {
            pruned.push(owned.object);
        }
    }
    Ok(pruned)
}

/// Identity regardless of API version (an object keeps its identity when its
/// kind moves to a newer version).
fn key(object: &ObjectRef) -> (String, String, Option<String>, String) {
    (
        object.group().to_string(),
        object.kind.clone(),
        object.namespace.clone(),
        object.name.clone(),
    )
}
