//! The fake's storage and the helpers both layers use: object keys,
//! metadata the server fills in, field paths for server-side apply, the
//! finalizer and deletion state, and the Status answers of the real API.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::{Inner, Key, Path, Resource, Stored};

pub(crate) fn find_key(inner: &Inner, kind: &str, namespace: &str, name: &str) -> Option<Key> {
    inner
        .objects
        .iter()
        .find(|(_, stored)| {
            stored.object["kind"] == kind
                && stored.object["metadata"]["name"] == name
                && stored.object["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or("")
                    == namespace
        })
        .map(|(key, _)| key.clone())
}

/// The object as a read shows it: a claim's `status.phase` defaults to
/// Pending (rec: pvc-noop-apply).
pub(crate) fn shown(stored: &Stored) -> Value {
    let mut object = stored.object.clone();
    if object["kind"] == "PersistentVolumeClaim" && object.pointer("/status/phase").is_none() {
        object["status"]["phase"] = "Pending".into();
    }
    object
}

/// A CRD's schema as the server stores it: empty `properties: {}` maps are
/// dropped (rec: bfctl-up-teardown, Strimzi's kafkas CRD
/// `status.properties.clusterSecurity.properties: {}`), which is why a
/// second applier of the same file conflicts on `.spec.versions`.
pub(crate) fn drop_empty_properties(value: &mut Value) {
    if let Some(map) = value.as_object_mut() {
        map.retain(|key, child| {
            !(key == "properties" && child.as_object().is_some_and(|m| m.is_empty()))
        });
        for child in map.values_mut() {
            drop_empty_properties(child);
        }
    } else if let Some(items) = value.as_array_mut() {
        for item in items {
            drop_empty_properties(item);
        }
    }
}

/// Admission on create: a claim gets the PVC protection finalizer (rec:
/// pvc-noop-apply; its controller removes it once no pod uses the claim).
pub(crate) fn admit(object: &mut Value) {
    if object["kind"] == "CustomResourceDefinition" {
        drop_empty_properties(&mut object["spec"]["versions"]);
    }
    if object["kind"] == "PersistentVolumeClaim" {
        let mut list = finalizers(object);
        if !list.iter().any(|f| f == "kubernetes.io/pvc-protection") {
            list.push("kubernetes.io/pvc-protection".into());
        }
        object["metadata"]["finalizers"] = json!(list);
    }
}

pub(crate) fn fill_metadata(object: &mut Value, resource_version: u64) {
    let metadata = &mut object["metadata"];
    metadata["resourceVersion"] = resource_version.to_string().into();
    if metadata.get("uid").is_none() {
        metadata["uid"] = format!("uid-{resource_version}").into();
        metadata["generation"] = 1.into();
        metadata["creationTimestamp"] = "2026-11-28T00:00:00Z".into();
    }
}

pub(crate) fn resource_for(inner: &Inner, object: &Value) -> Option<Resource> {
    let api_version = object["apiVersion"].as_str()?;
    let kind = object["kind"].as_str()?;
    inner
        .resources
        .iter()
        .find(|r| r.api_version() == api_version && r.kind == kind)
        .cloned()
}

pub(crate) fn key_of(resource: &Resource, object: &Value) -> Key {
    (
        resource.group.clone(),
        resource.plural.clone(),
        if resource.namespaced {
            object["metadata"]["namespace"]
                .as_str()
                .unwrap_or("")
                .to_string()
        } else {
            String::new()
        },
        object["metadata"]["name"]
            .as_str()
            .unwrap_or("")
            .to_string(),
    )
}

pub(crate) fn describe(object: &Value) -> String {
    let namespace = object["metadata"]["namespace"].as_str().unwrap_or("");
    let name = object["metadata"]["name"].as_str().unwrap_or("");
    let kind = object["kind"].as_str().unwrap_or("");
    if namespace.is_empty() {
        format!("{kind} {name}")
    } else {
        format!("{kind} {namespace}/{name}")
    }
}

pub(crate) fn condition(
    kind: &str,
    ready: bool,
    reason: &str,
    message: &str,
    generation: i64,
) -> Value {
    json!({"type": kind, "status": if ready { "True" } else { "False" },
           "reason": reason, "message": message, "observedGeneration": generation})
}

/// How an Update manager is named in ownership and conflicts.
pub(crate) fn update_manager(manager: &str, object: &Value, subresource: Option<&str>) -> String {
    let api_version = object["apiVersion"].as_str().unwrap_or("v1");
    match subresource {
        Some(sub) => format!("\"{manager}\" with subresource \"{sub}\" using {api_version}"),
        None => format!("\"{manager}\" using {api_version}"),
    }
}

/// The manager of a request without `fieldManager`: the User-Agent's
/// program name, as the real server derives it (`kubectl/v1.32.4 …` →
/// `kubectl`).
pub(crate) fn manager_of(query: &BTreeMap<String, String>, headers: &HeaderMap) -> String {
    query.get("fieldManager").cloned().unwrap_or_else(|| {
        headers
            .get("user-agent")
            .and_then(|v| v.to_str().ok())
            .and_then(|agent| agent.split('/').next())
            .filter(|name| !name.is_empty())
            .unwrap_or("unknown")
            .to_string()
    })
}

/// Fields an applier cannot own: identity, and what the server writes.
pub(crate) fn owned_path(path: &Path) -> bool {
    let first = path.first().map(String::as_str);
    let second = path.get(1).map(String::as_str);
    let server_written = matches!(first, Some("apiVersion" | "kind" | "status"))
        || (first == Some("metadata")
            && matches!(
                second,
                Some(
                    "name"
                        | "namespace"
                        | "uid"
                        | "resourceVersion"
                        | "generation"
                        | "creationTimestamp"
                        | "deletionTimestamp"
                        | "deletionGracePeriodSeconds"
                        | "managedFields"
                )
            ));
    !server_written
}

/// The leaf fields of an object (arrays are leaves).
pub(crate) fn leaves(value: &Value) -> BTreeSet<Path> {
    fn walk(value: &Value, path: &mut Path, out: &mut BTreeSet<Path>) {
        match value {
            Value::Object(map) if !map.is_empty() => {
                for (key, child) in map {
                    path.push(key.clone());
                    walk(child, path, out);
                    path.pop();
                }
            }
            _ => {
                if !path.is_empty() && owned_path(path) {
                    out.insert(path.clone());
                }
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(value, &mut Vec::new(), &mut out);
    out
}

pub(crate) fn lookup<'a>(value: &'a Value, path: &Path) -> Option<&'a Value> {
    path.iter().try_fold(value, |v, key| v.get(key))
}

pub(crate) fn set(value: &mut Value, path: &Path, new: Value) {
    let mut current = value;
    for key in &path[..path.len() - 1] {
        if !current.get(key).is_some_and(Value::is_object) {
            current[key.as_str()] = json!({});
        }
        current = &mut current[key.as_str()];
    }
    current[path[path.len() - 1].as_str()] = new;
}

pub(crate) fn remove(value: &mut Value, path: &Path) {
    let mut current = value;
    for key in &path[..path.len() - 1] {
        match current.get_mut(key) {
            Some(next) => current = next,
            None => return,
        }
    }
    if let Some(map) = current.as_object_mut() {
        map.remove(&path[path.len() - 1]);
    }
}

pub(crate) fn dotted(path: &Path) -> String {
    path.iter().map(|p| format!(".{p}")).collect()
}

/// An object's finalizers (none when it has no list).
pub fn finalizers(object: &Value) -> Vec<String> {
    object["metadata"]["finalizers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect()
}

pub(crate) fn terminating(object: &Value) -> bool {
    object["metadata"].get("deletionTimestamp").is_some()
}

/// What a generation counts: the object without metadata and status.
pub(crate) fn spec_of(object: &Value) -> Value {
    let mut copy = object.clone();
    if let Some(map) = copy.as_object_mut() {
        map.remove("metadata");
        map.remove("status");
    }
    copy
}

/// The content a write compares to decide whether it changed anything.
pub(crate) fn content_of(object: &Value) -> Value {
    let mut copy = object.clone();
    if let Some(metadata) = copy.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata.remove("resourceVersion");
    }
    copy
}

pub(crate) fn status_response(code: StatusCode, reason: &str, message: &str) -> Response {
    let mut body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "code": code.as_u16()});
    if !reason.is_empty() {
        body["reason"] = reason.into();
    }
    (code, axum::Json(body)).into_response()
}

/// What a real API server answers for a path it does not serve (rec:
/// crd-lifecycle: `Content-Type: text/plain; charset=utf-8`).
pub(crate) fn page_not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [("content-type", "text/plain; charset=utf-8")],
        "404 page not found\n",
    )
        .into_response()
}

/// `plural.group`, as messages name a resource (`plural` for the core group).
pub(crate) fn qualified(resource: &Resource) -> String {
    if resource.group.is_empty() {
        resource.plural.clone()
    } else {
        format!("{}.{}", resource.plural, resource.group)
    }
}

pub(crate) fn not_found(resource: &Resource, name: &str) -> Response {
    status_response(
        StatusCode::NOT_FOUND,
        "NotFound",
        &format!("{} \"{name}\" not found", qualified(resource)),
    )
}

/// `PATCH deployments/NAME/scale` (a merge patch of `spec.replicas`): the
/// Deployment's replicas change and its controller catches up.
pub(crate) fn scale(
    inner: &mut Inner,
    namespace: &str,
    name: &str,
    manager: &str,
    body: &Bytes,
) -> Response {
    let Some(replicas) = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|patch| patch["spec"]["replicas"].as_i64())
    else {
        return status_response(StatusCode::BAD_REQUEST, "BadRequest", "no spec.replicas");
    };
    let key = (
        "apps".to_string(),
        "deployments".to_string(),
        namespace.to_string(),
        name.to_string(),
    );
    inner.resource_version += 1;
    let resource_version = inner.resource_version;
    let Some(stored) = inner.objects.get_mut(&key) else {
        return status_response(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("deployments.apps \"{name}\" not found"),
        );
    };
    stored.object["spec"]["replicas"] = replicas.into();
    let replicas_path: Path = vec!["spec".into(), "replicas".into()];
    for fields in stored.owners.values_mut() {
        fields.remove(&replicas_path);
    }
    stored
        .owners
        .entry(update_manager(manager, &stored.object, Some("scale")))
        .or_default()
        .insert(replicas_path);
    let generation = stored.object["metadata"]["generation"]
        .as_i64()
        .unwrap_or(1)
        + 1;
    stored.object["metadata"]["generation"] = generation.into();
    stored.object["metadata"]["resourceVersion"] = resource_version.to_string().into();
    stored.changed = Instant::now();
    inner
        .log
        .push(format!("SCALE Deployment {namespace}/{name} {replicas}"));
    axum::Json(json!({"apiVersion": "autoscaling/v1", "kind": "Scale",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"replicas": replicas}, "status": {"replicas": replicas}}))
    .into_response()
}

/// Starts deleting a stored object the way DELETE does: with finalizers it
/// stays, marked; without, it goes. Returns whether it is gone.
pub(crate) fn mark_deleted(stored: &mut Stored, foreground: bool) -> bool {
    if terminating(&stored.object) {
        return false;
    }
    let kind = stored.object["kind"].as_str().unwrap_or("").to_string();
    let mut finalizers = finalizers(&stored.object);
    if foreground
        && kind != "CustomResourceDefinition"
        && !finalizers.contains(&"foregroundDeletion".to_string())
    {
        finalizers.push("foregroundDeletion".into());
    }
    if kind == "CustomResourceDefinition" {
        finalizers.push("customresourcecleanup.apiextensions.k8s.io".into());
        if let Some(conditions) = stored.object["status"]["conditions"].as_array_mut() {
            conditions.push(json!({"type": "Terminating", "status": "True", "reason": "InstanceDeletionPending",
                    "message": "CustomResourceDefinition marked for deletion; CustomResource deletion will begin soon"}));
        }
    }
    if kind == "Namespace" {
        stored.object["status"] = json!({"phase": "Terminating"});
        stored.object["spec"]["finalizers"] = json!(["kubernetes"]);
    }
    if finalizers.is_empty() && kind != "Namespace" {
        return true;
    }
    if !finalizers.is_empty() {
        stored.object["metadata"]["finalizers"] = json!(finalizers);
    }
    stored.object["metadata"]["deletionTimestamp"] = "2026-11-28T00:00:01Z".into();
    stored.object["metadata"]["deletionGracePeriodSeconds"] = 0.into();
    stored.changed = Instant::now();
    false
}
