//! The REST layer: discovery, GET/LIST/POST/PUT/PATCH (server-side apply and
//! merge patch), DELETE, subresources (scale, status) and the pod proxy, as
//! `kube::Client` and the recorded real API server exchange them. It
//! stores and answers; the simulated controllers ([`crate::controllers`])
//! change objects afterwards.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::store::*;
use crate::{FakeApiServer, INITIALIZING, Inner, Key, Path, Resource, Stored};

pub(crate) async fn handle(
    State(server): State<FakeApiServer>,
    method: Method,
    uri: Uri,
    Query(query): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().trim_end_matches('/').to_string();
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let mut inner = server.lock();
    let agent = headers
        .get("user-agent")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    inner.user_agents.insert(agent);
    inner.requests += 1;
    match segments.as_slice() {
        ["version"] => axum::Json(json!({"major": "1", "minor": "34", "gitVersion": "v1.34.9-fake", "platform": "linux/amd64"})).into_response(),
        ["api"] => axum::Json(json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []})).into_response(),
        ["apis"] => {
            let groups: Vec<Value> = groups(&inner)
                .into_iter()
                .map(|(name, versions)| group_document(&name, &versions))
                .collect();
            axum::Json(json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})).into_response()
        }
        ["apis", group] => match groups(&inner).get(*group) {
            Some(versions) => {
                let mut document = group_document(group, versions);
                document["kind"] = "APIGroup".into();
                document["apiVersion"] = "v1".into();
                axum::Json(document).into_response()
            }
            None => page_not_found(),
        },
        ["api", "v1"] => resource_list(&inner, "", "v1"),
        ["apis", group, version] => resource_list(&inner, group, version),
        ["api", "v1", rest @ ..] => objects(&mut inner, "", "v1", rest, &method, &query, &headers, &body),
        ["apis", "subresources.kubevirt.io", "v1", "namespaces", ns, "virtualmachines", name, "restart"]
            if method == Method::PUT =>
        {
            restart_vm(&mut inner, ns, name)
        }
        ["apis", group, version, rest @ ..] => objects(&mut inner, group, version, rest, &method, &query, &headers, &body),
        _ => page_not_found(),
    }
}

pub(crate) fn groups(inner: &Inner) -> BTreeMap<String, BTreeSet<String>> {
    let mut groups: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for r in inner.resources.iter().filter(|r| !r.group.is_empty()) {
        groups
            .entry(r.group.clone())
            .or_default()
            .insert(r.version.clone());
    }
    groups
}

pub(crate) fn group_document(name: &str, versions: &BTreeSet<String>) -> Value {
    let versions: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v}))
        .collect();
    json!({"name": name, "versions": versions, "preferredVersion": versions[0]})
}

pub(crate) fn resource_list(inner: &Inner, group: &str, version: &str) -> Response {
    let resources: Vec<Value> = inner
        .resources
        .iter()
        .filter(|r| r.group == group && r.version == version)
        .map(|r| json!({"name": r.plural, "singularName": r.kind.to_lowercase(), "namespaced": r.namespaced,
                        "kind": r.kind, "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]}))
        .collect();
    if resources.is_empty() {
        return page_not_found();
    }
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    axum::Json(json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources})).into_response()
}

/// Why a new object may not be created: its namespace or CRD is going.
pub(crate) fn create_refused(
    inner: &Inner,
    resource: &Resource,
    namespace: &str,
    name: &str,
) -> Option<Response> {
    if !namespace.is_empty() {
        let key = (
            String::new(),
            "namespaces".to_string(),
            String::new(),
            namespace.to_string(),
        );
        if inner
            .objects
            .get(&key)
            .is_some_and(|s| terminating(&s.object))
        {
            return Some(status_response(
                StatusCode::FORBIDDEN,
                "Forbidden",
                &format!(
                    "{} \"{name}\" is forbidden: unable to create new content in namespace {namespace} because it is being terminated",
                    qualified(resource)
                ),
            ));
        }
    }
    let crd_terminating = inner.objects.values().any(|s| {
        s.object["kind"] == "CustomResourceDefinition"
            && s.object["spec"]["group"] == resource.group.as_str()
            && s.object["spec"]["names"]["plural"] == resource.plural.as_str()
            && terminating(&s.object)
    });
    crd_terminating.then(|| {
        status_response(
            StatusCode::FORBIDDEN,
            "Forbidden",
            &format!(
                "{}.{} \"{name}\" is forbidden: create not allowed while custom resource definition is terminating",
                resource.plural, resource.group
            ),
        )
    })
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn objects(
    inner: &mut Inner,
    group: &str,
    version: &str,
    rest: &[&str],
    method: &Method,
    query: &BTreeMap<String, String>,
    headers: &HeaderMap,
    body: &Bytes,
) -> Response {
    // [plural] [plural,name] [namespaces,ns,plural] [namespaces,ns,plural,name]
    let (namespace, plural, name) = match rest {
        ["namespaces", ns, "pods", pod_port, "proxy", "metrics"] => {
            let pod = pod_port.split(':').next().unwrap_or("");
            let exists = inner
                .objects
                .keys()
                .any(|k| k.1 == "pods" && k.2 == *ns && k.3 == pod);
            return if !exists {
                status_response(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    &format!("pods \"{pod}\" not found"),
                )
            } else if inner.refuse_pod_proxy {
                status_response(StatusCode::BAD_REQUEST, "BadRequest", "address not allowed")
            } else {
                inner
                    .pod_metrics_by_pod
                    .get(pod)
                    .unwrap_or(&inner.pod_metrics)
                    .clone()
                    .into_response()
            };
        }
        ["namespaces", ns, "deployments", name, "scale"] if method == Method::PATCH => {
            return scale(inner, ns, name, &manager_of(query, headers), body);
        }
        ["namespaces", ns, plural] => (Some(ns.to_string()), plural.to_string(), None),
        ["namespaces", ns, plural, name] => (
            Some(ns.to_string()),
            plural.to_string(),
            Some(name.to_string()),
        ),
        [plural] => (None, plural.to_string(), None),
        [plural, name] => (None, plural.to_string(), Some(name.to_string())),
        _ => return page_not_found(),
    };
    let Some(resource) = inner
        .resources
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
        .cloned()
    else {
        return page_not_found();
    };
    let namespace = if resource.namespaced {
        namespace.unwrap_or_default()
    } else {
        String::new()
    };
    let manager = query.get("fieldManager").cloned();
    match (method.clone(), name) {
        (Method::GET, None) => {
            if inner
                .initializing
                .get(&(resource.group.clone(), resource.plural.clone()))
                .is_some_and(|since| since.elapsed() < INITIALIZING)
            {
                let mut response = status_response(
                    StatusCode::TOO_MANY_REQUESTS,
                    "TooManyRequests",
                    "storage is (re)initializing",
                );
                response
                    .headers_mut()
                    .insert("retry-after", axum::http::HeaderValue::from_static("1"));
                return response;
            }
            let selector: Vec<(String, String)> = query
                .get("labelSelector")
                .map(|s| {
                    s.split(',')
                        .filter_map(|pair| pair.split_once('='))
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect()
                })
                .unwrap_or_default();
            let items: Vec<Value> = inner
                .objects
                .iter()
                .filter(|(k, _)| {
                    k.0 == resource.group
                        && k.1 == resource.plural
                        && (namespace.is_empty() || k.2 == namespace)
                })
                .map(|(_, s)| shown(s))
                .filter(|o| {
                    selector
                        .iter()
                        .all(|(k, v)| o["metadata"]["labels"][k].as_str() == Some(v))
                })
                .collect();
            axum::Json(json!({"apiVersion": resource.api_version(), "kind": format!("{}List", resource.kind),
                "metadata": {"resourceVersion": inner.resource_version.to_string()}, "items": items})).into_response()
        }
        (Method::GET, Some(name)) => {
            let key = (
                resource.group.clone(),
                resource.plural.clone(),
                namespace,
                name.clone(),
            );
            match inner.objects.get(&key) {
                Some(stored) => axum::Json(shown(stored)).into_response(),
                None => not_found(&resource, &name),
            }
        }
        (Method::POST, None) => {
            let Ok(mut created) = serde_json::from_slice::<Value>(body) else {
                return status_response(StatusCode::BAD_REQUEST, "BadRequest", "body is not JSON");
            };
            if resource.namespaced {
                created["metadata"]["namespace"] = namespace.clone().into();
            }
            let name = created["metadata"]["name"]
                .as_str()
                .unwrap_or("")
                .to_string();
            let key = (
                resource.group.clone(),
                resource.plural.clone(),
                namespace.clone(),
                name.clone(),
            );
            if let Some(stored) = inner.objects.get(&key) {
                let message = if terminating(&stored.object) {
                    format!(
                        "object is being deleted: {} \"{name}\" already exists",
                        resource.plural
                    )
                } else {
                    format!("{} \"{name}\" already exists", resource.plural)
                };
                return status_response(StatusCode::CONFLICT, "AlreadyExists", &message);
            }
            if let Some(refused) = create_refused(inner, &resource, &namespace, &name) {
                return refused;
            }
            inner.resource_version += 1;
            fill_metadata(&mut created, inner.resource_version);
            admit(&mut created);
            let owners = BTreeMap::from([(
                update_manager(&manager_of(query, headers), &created, None),
                leaves(&created),
            )]);
            inner.log.push(format!("CREATE {}", describe(&created)));
            inner.objects.insert(
                key.clone(),
                Stored {
                    object: created,
                    owners,
                    changed: Instant::now(),
                    phase_written: false,
                },
            );
            (StatusCode::CREATED, axum::Json(shown(&inner.objects[&key]))).into_response()
        }
        (Method::PATCH, Some(name)) => {
            let content_type = headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            match content_type {
                "application/apply-patch+yaml" => {
                    let Some(manager) = manager else {
                        return status_response(
                            StatusCode::UNPROCESSABLE_ENTITY,
                            "Invalid",
                            "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
                        );
                    };
                    let force = query.get("force").is_some_and(|f| f == "true");
                    apply(inner, &resource, namespace, name, &manager, force, body)
                }
                "application/merge-patch+json" | "application/strategic-merge-patch+json" => {
                    let manager = manager_of(query, headers);
                    merge_patch(inner, &resource, namespace, name, &manager, body)
                }
                other => status_response(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "UnsupportedMediaType",
                    &format!(
                        "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml (got {other})"
                    ),
                ),
            }
        }
        (Method::DELETE, Some(name)) => {
            let key = (
                resource.group.clone(),
                resource.plural.clone(),
                namespace,
                name.clone(),
            );
            let foreground = serde_json::from_slice::<Value>(body)
                .ok()
                .and_then(|b| b["propagationPolicy"].as_str().map(str::to_string))
                .or_else(|| query.get("propagationPolicy").cloned())
                .as_deref()
                == Some("Foreground");
            let Some(stored) = inner.objects.get_mut(&key) else {
                return not_found(&resource, &name);
            };
            let description = describe(&stored.object);
            let was_terminating = terminating(&stored.object);
            let gone = mark_deleted(stored, foreground);
            let object = if gone {
                inner
                    .objects
                    .remove(&key)
                    .map(|s| s.object)
                    .unwrap_or_default()
            } else {
                if !was_terminating {
                    inner.resource_version += 1;
                    let resource_version = inner.resource_version;
                    if let Some(stored) = inner.objects.get_mut(&key) {
                        stored.object["metadata"]["resourceVersion"] =
                            resource_version.to_string().into();
                    }
                }
                shown(&inner.objects[&key])
            };
            inner.log.push(format!("DELETE {description}"));
            axum::Json(object).into_response()
        }
        _ => status_response(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            method.as_str(),
        ),
    }
}

/// Server-side apply (see the module's notes).
pub(crate) fn apply(
    inner: &mut Inner,
    resource: &Resource,
    namespace: String,
    name: String,
    manager: &str,
    force: bool,
    body: &Bytes,
) -> Response {
    let Ok(mut applied) = serde_json::from_slice::<Value>(body) else {
        return status_response(StatusCode::BAD_REQUEST, "BadRequest", "body is not JSON");
    };
    if resource.namespaced {
        applied["metadata"]["namespace"] = namespace.clone().into();
    }
    if let Some(map) = applied.as_object_mut() {
        map.remove("status");
    }
    let key = (
        resource.group.clone(),
        resource.plural.clone(),
        namespace.clone(),
        name.clone(),
    );
    let description = describe(&applied);
    let wanted = leaves(&applied);
    // Apply managers are named bare in conflicts: `"m"`.
    let manager = &format!("\"{manager}\"");
    let Some(stored) = inner.objects.get_mut(&key) else {
        if let Some(refused) = create_refused(inner, resource, &namespace, &name) {
            return refused;
        }
        inner.resource_version += 1;
        let mut created = applied;
        fill_metadata(&mut created, inner.resource_version);
        admit(&mut created);
        if created["kind"] == "Deployment" && created["spec"].get("replicas").is_none() {
            created["spec"]["replicas"] = 1.into();
        }
        inner.log.push(format!("APPLY {description}"));
        inner.objects.insert(
            key.clone(),
            Stored {
                object: created,
                owners: BTreeMap::from([(manager.to_string(), wanted)]),
                changed: Instant::now(),
                phase_written: false,
            },
        );
        return (StatusCode::CREATED, axum::Json(shown(&inner.objects[&key]))).into_response();
    };
    // On an object being deleted no finalizer may be added (checked before
    // conflicts: finalizers are a set, owned per item, so adding one is no
    // conflict; rec: terminating-object).
    if terminating(&stored.object) {
        let old = finalizers(&stored.object);
        let new: Vec<String> = applied["metadata"]["finalizers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .filter(|f| !old.iter().any(|o| o == f))
            .map(|f| format!("{f:?}"))
            .collect();
        if !new.is_empty() {
            return status_response(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Invalid",
                &format!(
                    "{} \"{name}\" is invalid: metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{{{}}}",
                    resource.kind,
                    new.join(", ")
                ),
            );
        }
    }
    // Conflicts: fields another manager owns, with another value.
    let mut conflicts: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (other, fields) in &stored.owners {
        if other == manager {
            continue;
        }
        for path in wanted.intersection(fields) {
            if lookup(&stored.object, path) != lookup(&applied, path) {
                conflicts
                    .entry(other.clone())
                    .or_default()
                    .push(dotted(path));
            }
        }
    }
    if !conflicts.is_empty() && !force {
        let count: usize = conflicts.values().map(Vec::len).sum();
        let message = if count == 1 {
            let (other, fields) = conflicts.iter().next().expect("one conflict");
            format!(
                "Apply failed with 1 conflict: conflict with {other}: {}",
                fields[0]
            )
        } else {
            let parts: Vec<String> = conflicts
                .iter()
                .map(|(other, fields)| {
                    format!("conflicts with {other}:\n- {}", fields.join("\n- "))
                })
                .collect();
            format!("Apply failed with {count} conflicts: {}", parts.join("\n"))
        };
        let causes: Vec<Value> = conflicts
            .iter()
            .flat_map(|(other, fields)| {
                fields.iter().map(move |f| json!({"reason": "FieldManagerConflict", "message": format!("conflict with {other}"), "field": f}))
            })
            .collect();
        let mut response = status_response(StatusCode::CONFLICT, "Conflict", &message);
        *response.body_mut() = axum::body::Body::from(
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": message, "reason": "Conflict", "details": {"causes": causes}, "code": 409})
            .to_string(),
        );
        return response;
    }
    let before = stored.object.clone();
    if force {
        for (other, fields) in stored.owners.iter_mut() {
            if other != manager {
                fields.retain(|p| !wanted.contains(p));
            }
        }
    }
    let previous = stored.owners.remove(manager).unwrap_or_default();
    for path in previous.difference(&wanted) {
        if !stored.owners.values().any(|fields| fields.contains(path)) {
            remove(&mut stored.object, path);
        }
    }
    for path in &wanted {
        if let Some(value) = lookup(&applied, path) {
            set(&mut stored.object, path, value.clone());
        }
    }
    stored.owners.insert(manager.to_string(), wanted);
    if stored.object["kind"] == "CustomResourceDefinition" {
        drop_empty_properties(&mut stored.object["spec"]["versions"]);
    }
    let mut changed = content_of(&stored.object) != content_of(&before);
    if stored.object["kind"] == "PersistentVolumeClaim" && !stored.phase_written {
        // The first update writes back the defaulted phase.
        stored.phase_written = true;
        stored.object["status"]["phase"] = "Pending".into();
        changed = true;
    }
    let previous_version = before["metadata"]["resourceVersion"].clone();
    if changed {
        if spec_of(&stored.object) != spec_of(&before) {
            let generation = before["metadata"]["generation"].as_i64().unwrap_or(1) + 1;
            stored.object["metadata"]["generation"] = generation.into();
            stored.changed = Instant::now();
        }
        inner.resource_version += 1;
        let resource_version = inner.resource_version;
        let stored = inner.objects.get_mut(&key).expect("still there");
        stored.object["metadata"]["resourceVersion"] = resource_version.to_string().into();
        inner.log.push(format!("APPLY {description}"));
    }
    if let Some(gone) = remove_if_released(inner, &key, previous_version) {
        return gone;
    }
    axum::Json(shown(&inner.objects[&key])).into_response()
}

/// The write that removes an object's last finalizer while it is being
/// deleted removes the object; the answer carries the previous
/// resourceVersion (rec: terminating-object).
pub(crate) fn remove_if_released(
    inner: &mut Inner,
    key: &Key,
    previous_version: Value,
) -> Option<Response> {
    let stored = &inner.objects[key];
    if !(terminating(&stored.object) && finalizers(&stored.object).is_empty()) {
        return None;
    }
    let mut last = shown(stored);
    last["metadata"]["resourceVersion"] = previous_version;
    inner.objects.remove(key);
    Some(axum::Json(last).into_response())
}

/// A JSON merge patch (RFC 7386): how finalizers are removed by hand.
pub(crate) fn merge_patch(
    inner: &mut Inner,
    resource: &Resource,
    namespace: String,
    name: String,
    manager: &str,
    body: &Bytes,
) -> Response {
    fn merge(target: &mut Value, patch: &Value) {
        match patch {
            Value::Object(map) => {
                if !target.is_object() {
                    *target = json!({});
                }
                for (key, value) in map {
                    if value.is_null() {
                        if let Some(object) = target.as_object_mut() {
                            object.remove(key);
                        }
                    } else {
                        merge(&mut target[key.as_str()], value);
                    }
                }
            }
            other => *target = other.clone(),
        }
    }
    let Ok(patch) = serde_json::from_slice::<Value>(body) else {
        return status_response(StatusCode::BAD_REQUEST, "BadRequest", "body is not JSON");
    };
    let key = (
        resource.group.clone(),
        resource.plural.clone(),
        namespace,
        name.clone(),
    );
    let Some(stored) = inner.objects.get_mut(&key) else {
        return not_found(resource, &name);
    };
    let previous_version = stored.object["metadata"]["resourceVersion"].clone();
    merge(&mut stored.object, &patch);
    // The Update manager takes the fields it set.
    let taken: BTreeSet<Path> = leaves(&patch)
        .into_iter()
        .filter(|p| lookup(&patch, p).is_some_and(|v| !v.is_null()))
        .collect();
    for fields in stored.owners.values_mut() {
        fields.retain(|p| !taken.contains(p));
    }
    let descriptor = update_manager(manager, &stored.object, None);
    stored.owners.entry(descriptor).or_default().extend(taken);
    let description = describe(&stored.object);
    inner.log.push(format!("PATCH {description}"));
    if let Some(gone) = remove_if_released(inner, &key, previous_version) {
        return gone;
    }
    inner.resource_version += 1;
    let resource_version = inner.resource_version;
    let stored = inner.objects.get_mut(&key).expect("still there");
    stored.object["metadata"]["resourceVersion"] = resource_version.to_string().into();
    axum::Json(shown(stored)).into_response()
}

/// KubeVirt's `PUT .../virtualmachines/NAME/restart`, as virt-api's
/// `RestartVM` does it (kubevirt/kubevirt `pkg/virt-api/rest/subresource.go`):
/// 404 when the VM does not exist; 409 Conflict for a `runStrategy` of
/// `Halted` or `Once` ("does not support manual restart requests") and when
/// it has no instance ("VM is not running"); otherwise 202 Accepted, the
/// running instance is stopped and the VM controller starts a new one
/// (here: the instance is removed, and the next reconcile makes it again
/// with a new uid).
fn restart_vm(inner: &mut Inner, namespace: &str, name: &str) -> Response {
    let vm: Key = (
        "kubevirt.io".into(),
        "virtualmachines".into(),
        namespace.into(),
        name.into(),
    );
    let Some(stored) = inner.objects.get(&vm) else {
        return status_response(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("virtualmachines.kubevirt.io \"{name}\" not found"),
        );
    };
    let conflict = |why: String| {
        status_response(
            StatusCode::CONFLICT,
            "Conflict",
            &format!(
                "Operation cannot be fulfilled on virtualmachine.kubevirt.io \"{name}\": {why}"
            ),
        )
    };
    let run_strategy = stored.object["spec"]["runStrategy"]
        .as_str()
        .unwrap_or("Always")
        .to_string();
    if run_strategy == "Halted" || run_strategy == "Once" {
        return conflict(format!(
            "RunStategy {run_strategy} does not support manual restart requests"
        ));
    }
    let instance: Key = (
        "kubevirt.io".into(),
        "virtualmachineinstances".into(),
        namespace.into(),
        name.into(),
    );
    if !inner.objects.contains_key(&instance) {
        return conflict("VM is not running: Halted".into());
    }
    inner.objects.remove(&instance);
    inner
        .log
        .push(format!("RESTART VirtualMachine {namespace}/{name}"));
    StatusCode::ACCEPTED.into_response()
}
