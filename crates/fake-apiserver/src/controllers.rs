//! The simulated controllers: what the cluster does on its own after each
//! write (CRDs established, namespaces emptied, garbage collection,
//! Deployments, autoscalers, Strimzi, KubeVirt, Gateways). The REST layer
//! ([`crate::rest`]) calls [`reconcile`] after every request; nothing here
//! answers HTTP.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::store::*;
use crate::{Inner, Key, Resource, Stored};

/// The simulated controllers: one pass.
pub(crate) fn reconcile(inner: &mut Inner, delay: Duration) {
    let gateway_address = if inner.gateway_address.is_empty() {
        "203.0.113.10".to_string()
    } else {
        inner.gateway_address.clone()
    };
    let now = Instant::now();
    let mut new_resources = Vec::new();
    let mut new_objects = Vec::new();
    let mut to_delete: Vec<Key> = Vec::new();
    let mut removed: Vec<Key> = Vec::new();
    let ready_kafkas: BTreeSet<(String, String)> = inner
        .objects
        .values()
        .filter(|s| s.object["kind"] == "Kafka" && !terminating(&s.object))
        .filter_map(|s| {
            Some((
                s.object["metadata"]["namespace"].as_str()?.to_string(),
                s.object["metadata"]["name"].as_str()?.to_string(),
            ))
        })
        .collect();
    let live_uids: BTreeSet<String> = inner
        .objects
        .values()
        .filter_map(|s| s.object["metadata"]["uid"].as_str().map(str::to_string))
        .collect();
    // Dependants, by their owner's uid.
    let mut dependants: BTreeMap<String, Vec<Key>> = BTreeMap::new();
    for (key, stored) in &inner.objects {
        for owner in stored.object["metadata"]["ownerReferences"]
            .as_array()
            .into_iter()
            .flatten()
        {
            if let Some(uid) = owner["uid"].as_str() {
                dependants
                    .entry(uid.to_string())
                    .or_default()
                    .push(key.clone());
            }
        }
    }
    let deployments: BTreeSet<(String, String)> = inner
        .objects
        .iter()
        .filter(|(k, _)| k.1 == "deployments")
        .map(|(k, _)| (k.2.clone(), k.3.clone()))
        .collect();
    let no_metrics_server = inner.no_metrics_server;
    // (group, kind) of CRDs whose names were accepted.
    let accepted_kinds: BTreeSet<(String, String)> = inner
        .objects
        .values()
        .filter(|s| s.object["kind"] == "CustomResourceDefinition")
        .filter(|s| {
            s.object
                .pointer("/status/acceptedNames/kind")
                .and_then(Value::as_str)
                .is_some_and(|k| !k.is_empty())
        })
        .map(|s| {
            (
                s.object["spec"]["group"].as_str().unwrap_or("").to_string(),
                s.object["spec"]["names"]["kind"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
            )
        })
        .collect();
    let cleanup_delay = inner.cleanup_delay.unwrap_or(delay);
    let Inner {
        objects: stored_objects,
        resource_version,
        never_ready,
        ..
    } = &mut *inner;
    for (key, stored) in stored_objects.iter_mut() {
        let object = &mut stored.object;
        let name = object["metadata"]["name"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let namespace = object["metadata"]["namespace"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let kind = object["kind"].as_str().unwrap_or("").to_string();
        let uid = object["metadata"]["uid"].as_str().unwrap_or("").to_string();
        let before = object.clone();
        if terminating(object) {
            let mut finalizers = finalizers(object);
            let waited = now.duration_since(stored.changed) >= cleanup_delay;
            // The garbage collector: dependants first, then the finalizer.
            // It takes its time (rec: bfctl-up-teardown: a GET right after a
            // foreground DELETE still finds the object).
            if waited && finalizers.iter().any(|f| f == "foregroundDeletion") {
                let deps = dependants.get(&uid).cloned().unwrap_or_default();
                if deps.is_empty() {
                    finalizers.retain(|f| f != "foregroundDeletion");
                } else {
                    to_delete.extend(deps);
                }
            }
            if waited {
                // Controllers that clean up and drop their finalizer.
                finalizers.retain(|f| match f.as_str() {
                    "kubernetes.io/pvc-protection" => false,
                    "strimzi.io/topic-operator" => {
                        let cluster = object["metadata"]["labels"]["strimzi.io/cluster"]
                            .as_str()
                            .unwrap_or("");
                        !ready_kafkas.contains(&(namespace.clone(), cluster.to_string()))
                    }
                    f if f.starts_with("kubevirt.io/") => false,
                    _ => true,
                });
            }
            if finalizers != crate::store::finalizers(object) {
                object["metadata"]["finalizers"] = json!(finalizers);
            }
            // A namespace goes through the namespace controller (below).
            if kind != "Namespace" && finalizers.is_empty() {
                removed.push(key.clone());
            }
            if *object != before {
                *resource_version += 1;
                object["metadata"]["resourceVersion"] = resource_version.to_string().into();
            }
            continue;
        }
        // Owned objects whose owner is gone go (the garbage collector).
        let owners: Vec<&str> = object["metadata"]["ownerReferences"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|o| o["uid"].as_str())
            .collect();
        if !owners.is_empty() && owners.iter().all(|uid| !live_uids.contains(*uid)) {
            to_delete.push(key.clone());
            continue;
        }
        if now.duration_since(stored.changed) < delay {
            continue;
        }
        let generation = object["metadata"]["generation"].as_i64().unwrap_or(1);
        let stuck = never_ready.contains(&name);
        match kind.as_str() {
            "Namespace" => object["status"] = json!({"phase": "Active"}),
            "CustomResourceDefinition" if object.pointer("/status/conditions/0").is_none() => {
                let group = object["spec"]["group"].as_str().unwrap_or("").to_string();
                let kind = object["spec"]["names"]["kind"]
                    .as_str()
                    .unwrap_or("")
                    .to_string();
                if accepted_kinds.contains(&(group, kind.clone())) {
                    // rec: crd-lifecycle: same group and kind as another CRD.
                    object["status"] = json!({"conditions": [
                        condition("NamesAccepted", false, "ListKindConflict", &format!("\"{kind}List\" is already in use"), generation),
                        condition("Established", false, "NotAccepted", "not all names are accepted", generation)],
                        "acceptedNames": {"kind": "", "plural": ""}});
                } else {
                    object["status"] = json!({"conditions": [
                            condition("NamesAccepted", true, "NoConflicts", "no conflicts found", generation),
                            condition("Established", true, "InitialNamesAccepted", "the initial names have been accepted", generation)],
                            "acceptedNames": object["spec"]["names"].clone()});
                    let spec = &object["spec"];
                    for version in spec["versions"].as_array().into_iter().flatten() {
                        if version["served"].as_bool() == Some(true) {
                            new_resources.push(Resource {
                                group: spec["group"].as_str().unwrap_or("").to_string(),
                                version: version["name"].as_str().unwrap_or("").to_string(),
                                kind: spec["names"]["kind"].as_str().unwrap_or("").to_string(),
                                plural: spec["names"]["plural"].as_str().unwrap_or("").to_string(),
                                namespaced: spec["scope"] == "Namespaced",
                            });
                        }
                    }
                }
            }
            "Deployment" => {
                let replicas = object["spec"]["replicas"].as_i64().unwrap_or(1);
                for index in 0..replicas {
                    new_objects.push(json!({
                        "apiVersion": "v1", "kind": "Pod",
                        "metadata": {"name": format!("{name}-{index}"), "namespace": namespace,
                            "labels": object["spec"]["template"]["metadata"]["labels"].clone(),
                            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": name, "uid": uid}]},
                        "status": {"phase": if stuck { "Pending" } else { "Running" },
                            "conditions": [condition("Ready", !stuck,
                                if stuck { "ContainersNotReady" } else { "" }, "", 1)]}
                    }));
                }
                let ready = if stuck { 0 } else { replicas };
                object["status"] = json!({"observedGeneration": generation, "replicas": replicas,
                    "updatedReplicas": replicas, "readyReplicas": ready, "availableReplicas": ready,
                    "conditions": [condition("Available", !stuck,
                        if stuck { "MinimumReplicasUnavailable" } else { "MinimumReplicasAvailable" },
                        if stuck { "Deployment does not have minimum availability." } else { "Deployment has minimum availability." },
                        generation)]});
            }
            "HorizontalPodAutoscaler" => {
                let target = object["spec"]["scaleTargetRef"]["name"]
                    .as_str()
                    .unwrap_or("");
                let min = object["spec"]["minReplicas"].as_i64().unwrap_or(1);
                object["status"] = if !deployments
                    .contains(&(namespace.clone(), target.to_string()))
                {
                    json!({"currentReplicas": 0, "desiredReplicas": 0, "currentMetrics": null, "conditions": [
                        {"type": "AbleToScale", "status": "False", "reason": "FailedGetScale",
                         "message": format!("the HPA controller was unable to get the target's current scale: deployments.apps \"{target}\" not found")}]})
                } else if no_metrics_server {
                    json!({"currentReplicas": min, "desiredReplicas": 0, "currentMetrics": [{"type": ""}], "conditions": [
                        {"type": "AbleToScale", "status": "True", "reason": "SucceededGetScale",
                         "message": "the HPA controller was able to get the target's current scale"},
                        {"type": "ScalingActive", "status": "False", "reason": "FailedGetResourceMetric",
                         "message": "the HPA was unable to compute the replica count: failed to get cpu utilization: unable to get metrics for resource cpu: unable to fetch metrics from resource metrics API: the server could not find the requested resource (get pods.metrics.k8s.io)"}]})
                } else {
                    json!({"currentReplicas": min, "desiredReplicas": min, "conditions": [
                        {"type": "AbleToScale", "status": "True", "reason": "ReadyForNewScale", "message": "recommended size matches current size"},
                        {"type": "ScalingActive", "status": "True", "reason": "ValidMetricFound", "message": "the HPA was able to successfully calculate a replica count from cpu resource utilization (percentage of request)"}]})
                };
            }
            "Kafka" | "KafkaTopic" => {
                if kind == "KafkaTopic" {
                    let mut finalizers = finalizers(object);
                    if !finalizers.iter().any(|f| f == "strimzi.io/topic-operator") {
                        finalizers.push("strimzi.io/topic-operator".into());
                        object["metadata"]["finalizers"] = json!(finalizers);
                    }
                }
                object["status"] = if stuck {
                    json!({"observedGeneration": generation, "conditions": [condition("Ready", false, "NotReady",
                        "simulated: pod ventas-kafka-broker-0 is Pending (0/3 nodes are available: 3 Insufficient memory)", generation)]})
                } else {
                    json!({"observedGeneration": generation, "conditions": [condition("Ready", true, "Ready", "", generation)]})
                };
            }
            // Strimzi runs a pool's brokers as pods `CLUSTER-POOL-ID` (ids
            // from 0), labelled with the cluster, the kind, the pool and the
            // roles (strimzi-kafka-operator, `Labels.java`). Simplified:
            // their owner is the pool itself, not a StrimziPodSet `CLUSTER-POOL`,
            // so that deleting the pool deletes them.
            "KafkaNodePool" => {
                let cluster = object["metadata"]["labels"]["strimzi.io/cluster"]
                    .as_str()
                    .unwrap_or("")
                    .to_string();
                let roles: Vec<&str> = object["spec"]["roles"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                let replicas = object["spec"]["replicas"].as_i64().unwrap_or(1);
                for id in 0..replicas {
                    new_objects.push(json!({
                        "apiVersion": "v1", "kind": "Pod",
                        "metadata": {"name": format!("{cluster}-{name}-{id}"), "namespace": namespace,
                            "labels": {"strimzi.io/cluster": cluster, "strimzi.io/kind": "Kafka",
                                "strimzi.io/name": format!("{cluster}-kafka"), "strimzi.io/pool-name": name,
                                "strimzi.io/broker-role": roles.contains(&"broker").to_string(),
                                "strimzi.io/controller-role": roles.contains(&"controller").to_string()},
                            "ownerReferences": [{"apiVersion": "kafka.strimzi.io/v1", "kind": "KafkaNodePool",
                                "name": name, "uid": uid}]},
                        "status": {"phase": "Running", "conditions": [condition("Ready", true, "", "", 1)]}
                    }));
                }
            }
            "KubeVirt" => {
                object["status"] = json!({"phase": "Deployed", "conditions": [condition("Available", !stuck, "AllComponentsReady", "All components are ready.", generation)]});
            }
            "VirtualMachine" => {
                if finalizers(object).is_empty() {
                    object["metadata"]["finalizers"] =
                        json!(["kubevirt.io/virtualMachineControllerFinalize"]);
                }
                object["status"] = json!({"printableStatus": "Running", "ready": !stuck});
                new_objects.push(json!({
                    "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstance",
                    "metadata": {"name": name, "namespace": namespace,
                        "ownerReferences": [{"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine", "name": name, "uid": uid}]},
                    "status": {"phase": "Running", "conditions": [condition("Ready", !stuck,
                        if stuck { "ReadinessProbeFailed" } else { "" },
                        if stuck { "readiness probe on port 6379 failed" } else { "" }, 1)]}
                }));
            }
            "Gateway" => {
                object["status"] = json!({"addresses": [{"type": "IPAddress", "value": gateway_address}],
                    "conditions": [condition("Programmed", !stuck, "Programmed", "", generation)]});
            }
            _ => {}
        }
        if *object != before {
            *resource_version += 1;
            object["metadata"]["resourceVersion"] = resource_version.to_string().into();
        }
    }
    namespace_and_crd_controllers(inner, delay, &mut to_delete, &mut removed);
    for key in to_delete {
        let resource_version = inner.resource_version + 1;
        if let Some(stored) = inner.objects.get_mut(&key) {
            let was_terminating = terminating(&stored.object);
            if mark_deleted(stored, false) {
                removed.push(key);
            } else if !was_terminating {
                stored.object["metadata"]["resourceVersion"] = resource_version.to_string().into();
                inner.resource_version = resource_version;
            }
        }
    }
    for key in removed {
        if let Some(stored) = inner.objects.remove(&key)
            && stored.object["kind"] == "CustomResourceDefinition"
        {
            let plural = stored.object["spec"]["names"]["plural"]
                .as_str()
                .unwrap_or("")
                .to_string();
            let group = stored.object["spec"]["group"]
                .as_str()
                .unwrap_or("")
                .to_string();
            inner
                .resources
                .retain(|r| !(r.plural == plural && r.group == group));
        }
    }
    // Pods beyond a Deployment's replica count (pod `NAME-INDEX`) go when it
    // is scaled down.
    let replicas: BTreeMap<(String, String), i64> = inner
        .objects
        .iter()
        .filter(|(k, _)| k.1 == "deployments")
        .map(|(k, s)| {
            (
                (k.2.clone(), k.3.clone()),
                s.object["spec"]["replicas"].as_i64().unwrap_or(1),
            )
        })
        .collect();
    inner.objects.retain(|k, s| {
        if k.1 != "pods" {
            return true;
        }
        let Some(owner) = s.object["metadata"]["ownerReferences"][0]["name"].as_str() else {
            return true;
        };
        let Some(count) = replicas.get(&(k.2.clone(), owner.to_string())) else {
            return true;
        };
        k.3.strip_prefix(&format!("{owner}-"))
            .and_then(|index| index.parse::<i64>().ok())
            .is_none_or(|index| index < *count)
    });
    for resource in new_resources {
        if !inner.resources.iter().any(|r| {
            r.group == resource.group
                && r.version == resource.version
                && r.plural == resource.plural
        }) {
            inner
                .initializing
                .insert((resource.group.clone(), resource.plural.clone()), now);
            inner.resources.push(resource);
        }
    }
    for object in new_objects {
        if let Some(resource) = resource_for(inner, &object) {
            let key = key_of(&resource, &object);
            if !inner.objects.contains_key(&key) {
                inner.resource_version += 1;
                let mut object = object;
                fill_metadata(&mut object, inner.resource_version);
                inner.objects.insert(
                    key,
                    Stored {
                        object,
                        owners: BTreeMap::new(),
                        changed: now,
                        phase_written: true,
                    },
                );
            }
        }
    }
}

/// The namespace controller and the CRD cleanup, which look across objects.
pub(crate) fn namespace_and_crd_controllers(
    inner: &mut Inner,
    delay: Duration,
    to_delete: &mut Vec<Key>,
    removed: &mut Vec<Key>,
) {
    let now = Instant::now();
    let namespaces: Vec<Key> = inner
        .objects
        .iter()
        .filter(|(k, s)| {
            k.1 == "namespaces" && terminating(&s.object) && now.duration_since(s.changed) >= delay
        })
        .map(|(k, _)| k.clone())
        .collect();
    for namespace_key in namespaces {
        let namespace = namespace_key.3.clone();
        let content: Vec<Key> = inner
            .objects
            .keys()
            .filter(|k| k.2 == namespace)
            .cloned()
            .collect();
        if content.is_empty() {
            removed.push(namespace_key);
            continue;
        }
        to_delete.extend(content.iter().cloned());
        // What remains because of finalizers, as the real controller says it.
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        let mut by_resource: BTreeMap<String, usize> = BTreeMap::new();
        for key in &content {
            let stored = &inner.objects[key];
            for finalizer in finalizers(&stored.object) {
                if finalizer != "foregroundDeletion" {
                    *counts.entry(finalizer).or_default() += 1;
                }
            }
            let resource = if key.0.is_empty() {
                key.1.clone()
            } else {
                format!("{}.{}", key.1, key.0)
            };
            *by_resource.entry(resource).or_default() += 1;
        }
        if !counts.is_empty() {
            let finalizers_text = counts
                .iter()
                .map(|(f, n)| format!("{f} in {n} resource instances"))
                .collect::<Vec<_>>()
                .join(", ");
            let content_text = by_resource
                .iter()
                .map(|(r, n)| format!("{r} has {n} resource instances"))
                .collect::<Vec<_>>()
                .join(", ");
            let resource_version = inner.resource_version + 1;
            if let Some(stored) = inner.objects.get_mut(&namespace_key) {
                let before = stored.object["status"]["conditions"].clone();
                stored.object["status"]["conditions"] = json!([
                    {"type": "NamespaceDeletionDiscoveryFailure", "status": "False", "reason": "ResourcesDiscovered", "message": "All resources successfully discovered"},
                    {"type": "NamespaceDeletionGroupVersionParsingFailure", "status": "False", "reason": "ParsedGroupVersions", "message": "All legacy kube types successfully parsed"},
                    {"type": "NamespaceDeletionContentFailure", "status": "False", "reason": "ContentDeleted", "message": "All content successfully deleted, may be waiting on finalization"},
                    {"type": "NamespaceContentRemaining", "status": "True", "reason": "SomeResourcesRemain", "message": format!("Some resources are remaining: {content_text}")},
                    {"type": "NamespaceFinalizersRemaining", "status": "True", "reason": "SomeFinalizersRemain", "message": format!("Some content in the namespace has finalizers remaining: {finalizers_text}")}
                ]);
                if stored.object["status"]["conditions"] != before {
                    stored.object["metadata"]["resourceVersion"] =
                        resource_version.to_string().into();
                    inner.resource_version = resource_version;
                }
            }
        }
    }
    // A deleted CRD deletes its custom resources and goes when none is left.
    let crds: Vec<(Key, String, String)> = inner
        .objects
        .iter()
        .filter(|(k, s)| k.1 == "customresourcedefinitions" && terminating(&s.object))
        .map(|(k, s)| {
            (
                k.clone(),
                s.object["spec"]["group"].as_str().unwrap_or("").to_string(),
                s.object["spec"]["names"]["plural"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
            )
        })
        .collect();
    for (crd_key, group, plural) in crds {
        let resources: Vec<Key> = inner
            .objects
            .keys()
            .filter(|k| k.0 == group && k.1 == plural)
            .cloned()
            .collect();
        if resources.is_empty() {
            removed.push(crd_key);
        } else {
            to_delete.extend(resources);
            // rec: crd-delete-with-crs: the condition moves on once cleanup runs.
            let resource_version = inner.resource_version + 1;
            if let Some(stored) = inner.objects.get_mut(&crd_key) {
                let mut moved = false;
                for condition in stored.object["status"]["conditions"]
                    .as_array_mut()
                    .into_iter()
                    .flatten()
                {
                    if condition["type"] == "Terminating"
                        && condition["reason"] == "InstanceDeletionPending"
                    {
                        condition["reason"] = "InstanceDeletionInProgress".into();
                        condition["message"] = "CustomResource deletion is in progress".into();
                        moved = true;
                    }
                }
                if moved {
                    stored.object["metadata"]["resourceVersion"] =
                        resource_version.to_string().into();
                    inner.resource_version = resource_version;
                }
            }
        }
    }
}
