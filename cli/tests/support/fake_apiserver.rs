//! An in-process fake Kubernetes API server for the engine tests.
//!
//! It speaks enough of the real REST API for `kube::Client` (discovery,
//! server-side apply, get, list by label, delete) and runs simulated
//! controllers that set statuses after a delay, the way the real ones do:
//!
//! * CRDs become Established and their kinds are then served;
//! * Deployments report their replicas ready for the current generation;
//! * Strimzi `Kafka`/`KafkaTopic` get `Ready` (never `KafkaNodePool`);
//! * a KubeVirt `VirtualMachine` gets a `VirtualMachineInstance` that turns
//!   Ready; VMs carry a finalizer that is removed some time after deletion;
//! * `Gateway` becomes Programmed with an address; `KubeVirt` Available;
//! * Deployments get Running pods; a pod's metrics port answers through the
//!   API server proxy with the consumer's gauges (`set_consumer_metrics`);
//! * deleting a Namespace removes what is in it.
//!
//! Names in `never_ready` stay not ready, with a condition message, to test
//! timeouts. Every mutating call is logged in order.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

#[derive(Clone, Debug)]
struct Resource {
    group: String,
    version: String,
    kind: String,
    plural: String,
    namespaced: bool,
}

impl Resource {
    fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

/// (group, plural, namespace or "", name)
type Key = (String, String, String, String);

struct Stored {
    object: Value,
    /// Field manager that owns the object (a whole-object simplification).
    manager: String,
    changed: Instant,
}

#[derive(Default)]
struct Inner {
    resources: Vec<Resource>,
    objects: BTreeMap<Key, Stored>,
    resource_version: u64,
    log: Vec<String>,
    never_ready: BTreeSet<String>,
    /// What every pod's /metrics answers through the proxy.
    pod_metrics: String,
    /// The address a Gateway reports once Programmed (empty: 203.0.113.10).
    gateway_address: String,
    /// Per-pod metrics, overriding `pod_metrics` for that pod.
    pod_metrics_by_pod: BTreeMap<String, String>,
}

/// The server's shared state, also held by the test.
#[derive(Clone)]
pub struct FakeApiServer {
    inner: Arc<Mutex<Inner>>,
    pub address: SocketAddr,
    /// How long the simulated controllers take.
    delay: Duration,
    shutdown: Arc<tokio::sync::Notify>,
}

const BUILTIN: &[(&str, &str, &str, &str, bool)] = &[
    ("", "v1", "Namespace", "namespaces", false),
    ("", "v1", "Service", "services", true),
    ("", "v1", "Secret", "secrets", true),
    ("", "v1", "ConfigMap", "configmaps", true),
    ("", "v1", "ServiceAccount", "serviceaccounts", true),
    (
        "",
        "v1",
        "PersistentVolumeClaim",
        "persistentvolumeclaims",
        true,
    ),
    ("", "v1", "Pod", "pods", true),
    ("apps", "v1", "Deployment", "deployments", true),
    ("apps", "v1", "StatefulSet", "statefulsets", true),
    ("apps", "v1", "DaemonSet", "daemonsets", true),
    ("batch", "v1", "Job", "jobs", true),
    (
        "autoscaling",
        "v2",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        true,
    ),
    (
        "policy",
        "v1",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        true,
    ),
    (
        "networking.k8s.io",
        "v1",
        "NetworkPolicy",
        "networkpolicies",
        true,
    ),
    ("networking.k8s.io", "v1", "Ingress", "ingresses", true),
    (
        "networking.k8s.io",
        "v1",
        "IngressClass",
        "ingressclasses",
        false,
    ),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRole",
        "clusterroles",
        false,
    ),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRoleBinding",
        "clusterrolebindings",
        false,
    ),
    ("rbac.authorization.k8s.io", "v1", "Role", "roles", true),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "RoleBinding",
        "rolebindings",
        true,
    ),
    (
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        false,
    ),
    // GKE with its Gateway controller enabled serves these from the start.
    (
        "gateway.networking.k8s.io",
        "v1",
        "GatewayClass",
        "gatewayclasses",
        false,
    ),
    (
        "gateway.networking.k8s.io",
        "v1",
        "Gateway",
        "gateways",
        true,
    ),
    (
        "gateway.networking.k8s.io",
        "v1",
        "HTTPRoute",
        "httproutes",
        true,
    ),
];

impl FakeApiServer {
    /// Starts on 127.0.0.1 on a free port, with the GKE GatewayClass
    /// `gateway_class` present. Stops when [`FakeApiServer::stop`] is called
    /// or the runtime ends.
    pub async fn start(delay: Duration, gateway_class: &str) -> FakeApiServer {
        let mut inner = Inner::default();
        for (group, version, kind, plural, namespaced) in BUILTIN {
            inner.resources.push(Resource {
                group: group.to_string(),
                version: version.to_string(),
                kind: kind.to_string(),
                plural: plural.to_string(),
                namespaced: *namespaced,
            });
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding 127.0.0.1:0");
        let address = listener.local_addr().expect("local address");
        let server = FakeApiServer {
            inner: Arc::new(Mutex::new(inner)),
            address,
            delay,
            shutdown: Arc::new(tokio::sync::Notify::new()),
        };
        server.insert_ready(json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
            "metadata": {"name": gateway_class},
            "spec": {"controllerName": "networking.gke.io/gateway"}
        }));
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(server.clone());
        let shutdown = server.shutdown.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move { shutdown.notified().await })
                .await;
        });
        let controllers = server.clone();
        tokio::spawn(async move { controllers.run_controllers().await });
        server
    }

    pub fn stop(&self) {
        self.shutdown.notify_waiters();
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// A kubeconfig file pointing at this server.
    pub fn kubeconfig(&self, dir: &std::path::Path) -> std::path::PathBuf {
        let path = dir.join("kubeconfig");
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\ncurrent-context: fake\nusers:\n- name: fake\n  user:\n    token: fake-token\n",
            self.url()
        );
        std::fs::write(&path, text).expect("writing kubeconfig");
        path
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Objects with these names never become ready.
    pub fn set_never_ready(&self, names: &[&str]) {
        self.lock().never_ready = names.iter().map(|n| n.to_string()).collect();
    }

    /// The address Gateways report (a test's own server on 127.0.0.1,
    /// `127.0.0.1:PORT`, so that traffic to it stays on this machine).
    pub fn set_gateway_address(&self, address: &str) {
        self.lock().gateway_address = address.to_string();
    }

    /// What one pod's metrics endpoint answers (through the proxy).
    pub fn set_pod_metrics_for(&self, pod: &str, body: &str) {
        self.lock()
            .pod_metrics_by_pod
            .insert(pod.to_string(), body.to_string());
    }

    /// What the pods' metrics endpoints answer (through the proxy).
    pub fn set_pod_metrics(&self, body: &str) {
        self.lock().pod_metrics = body.to_string();
    }

    /// The mutating calls so far: "APPLY Kind ns/name", "DELETE Kind ns/name".
    pub fn log(&self) -> Vec<String> {
        self.lock().log.clone()
    }

    pub fn clear_log(&self) {
        self.lock().log.clear();
    }

    /// The stored object, if any.
    pub fn get(&self, kind: &str, namespace: &str, name: &str) -> Option<Value> {
        let inner = self.lock();
        inner
            .objects
            .values()
            .map(|stored| &stored.object)
            .find(|object| {
                object["kind"] == kind
                    && object["metadata"]["name"] == name
                    && object["metadata"]["namespace"].as_str().unwrap_or("") == namespace
            })
            .cloned()
    }

    /// How many objects are stored.
    pub fn object_count(&self) -> usize {
        self.lock().objects.len()
    }

    /// Stores an object as if another tool had applied it as `manager`.
    pub fn insert_as(&self, manager: &str, object: Value) {
        let mut inner = self.lock();
        let resource = resource_for(&inner, &object).expect("kind served");
        let key = key_of(&resource, &object);
        let mut object = object;
        inner.resource_version += 1;
        fill_metadata(&mut object, inner.resource_version);
        inner.objects.insert(
            key,
            Stored {
                object,
                manager: manager.to_string(),
                changed: Instant::now(),
            },
        );
    }

    fn insert_ready(&self, object: Value) {
        self.insert_as("gke", object);
    }

    async fn run_controllers(&self) {
        loop {
            tokio::time::sleep(Duration::from_millis(10)).await;
            let mut inner = self.lock();
            reconcile(&mut inner, self.delay);
        }
    }
}

fn fill_metadata(object: &mut Value, resource_version: u64) {
    let metadata = &mut object["metadata"];
    metadata["resourceVersion"] = resource_version.to_string().into();
    if metadata.get("uid").is_none() {
        metadata["uid"] = format!("uid-{resource_version}").into();
        metadata["generation"] = 1.into();
        metadata["creationTimestamp"] = "2026-11-28T00:00:00Z".into();
    }
}

fn resource_for(inner: &Inner, object: &Value) -> Option<Resource> {
    let api_version = object["apiVersion"].as_str()?;
    let kind = object["kind"].as_str()?;
    inner
        .resources
        .iter()
        .find(|r| r.api_version() == api_version && r.kind == kind)
        .cloned()
}

fn key_of(resource: &Resource, object: &Value) -> Key {
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

fn describe(object: &Value) -> String {
    let namespace = object["metadata"]["namespace"].as_str().unwrap_or("");
    let name = object["metadata"]["name"].as_str().unwrap_or("");
    let kind = object["kind"].as_str().unwrap_or("");
    if namespace.is_empty() {
        format!("{kind} {name}")
    } else {
        format!("{kind} {namespace}/{name}")
    }
}

fn condition(kind: &str, ready: bool, reason: &str, message: &str, generation: i64) -> Value {
    json!({"type": kind, "status": if ready { "True" } else { "False" },
           "reason": reason, "message": message, "observedGeneration": generation})
}

/// `PATCH deployments/NAME/scale` (a merge patch of `spec.replicas`): the
/// Deployment's replicas change and its controller catches up.
fn scale(inner: &mut Inner, namespace: &str, name: &str, body: &Bytes) -> Response {
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

/// The simulated controllers: one pass.
fn reconcile(inner: &mut Inner, delay: Duration) {
    let gateway_address = if inner.gateway_address.is_empty() {
        "203.0.113.10".to_string()
    } else {
        inner.gateway_address.clone()
    };
    let now = Instant::now();
    let mut new_resources = Vec::new();
    let mut new_objects = Vec::new();
    let mut removed = Vec::new();
    let terminating_namespaces: BTreeSet<String> = inner
        .objects
        .values()
        .filter(|s| {
            s.object["kind"] == "Namespace"
                && s.object["metadata"].get("deletionTimestamp").is_some()
        })
        .filter_map(|s| s.object["metadata"]["name"].as_str().map(str::to_string))
        .collect();
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
        // Namespaced objects in a terminating namespace go.
        if !namespace.is_empty() && terminating_namespaces.contains(&namespace) {
            removed.push(key.clone());
            continue;
        }
        if let Some(_deleted) = object["metadata"].get("deletionTimestamp") {
            let finalizers_left = object["metadata"]["finalizers"]
                .as_array()
                .is_some_and(|f| !f.is_empty());
            if now.duration_since(stored.changed) >= delay || !finalizers_left {
                if object["kind"] == "Namespace" {
                    // Removed once nothing is left in it (next pass).
                    if now.duration_since(stored.changed) >= delay {
                        removed.push(key.clone());
                    }
                } else {
                    removed.push(key.clone());
                }
            }
            continue;
        }
        if now.duration_since(stored.changed) < delay {
            continue;
        }
        let generation = object["metadata"]["generation"].as_i64().unwrap_or(1);
        let stuck = never_ready.contains(&name);
        let kind = object["kind"].as_str().unwrap_or("").to_string();
        let before = object.get("status").cloned();
        match kind.as_str() {
            "Namespace" => object["status"] = json!({"phase": "Active"}),
            "CustomResourceDefinition" => {
                object["status"] = json!({"conditions": [
                    condition("NamesAccepted", true, "NoConflicts", "no conflicts found", generation),
                    condition("Established", true, "InitialNamesAccepted", "the initial names have been accepted", generation)]});
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
            "Deployment" => {
                let replicas = object["spec"]["replicas"].as_i64().unwrap_or(1);
                for index in 0..replicas {
                    new_objects.push(json!({
                        "apiVersion": "v1", "kind": "Pod",
                        "metadata": {"name": format!("{name}-{index}"), "namespace": namespace,
                            "labels": object["spec"]["template"]["metadata"]["labels"].clone(),
                            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": name, "uid": object["metadata"]["uid"]}]},
                        "status": {"phase": if stuck { "Pending" } else { "Running" }}
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
                let min = object["spec"]["minReplicas"].as_i64().unwrap_or(1);
                object["status"] = json!({"currentReplicas": min, "desiredReplicas": min});
            }
            "Kafka" | "KafkaTopic" => {
                object["status"] = if stuck {
                    json!({"observedGeneration": generation, "conditions": [condition("Ready", false, "NotReady",
                        "simulated: pod ventas-kafka-broker-0 is Pending (0/3 nodes are available: 3 Insufficient memory)", generation)]})
                } else {
                    json!({"observedGeneration": generation, "conditions": [condition("Ready", true, "Ready", "", generation)]})
                };
            }
            "KubeVirt" => {
                object["status"] = json!({"phase": "Deployed", "conditions": [condition("Available", !stuck, "AllComponentsReady", "All components are ready.", generation)]});
            }
            "VirtualMachine" => {
                let finalizers = &mut object["metadata"]["finalizers"];
                if finalizers.is_null() {
                    *finalizers = json!(["kubevirt.io/virtualMachineControllerFinalize"]);
                }
                object["status"] = json!({"printableStatus": "Running", "ready": !stuck});
                new_objects.push(json!({
                    "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstance",
                    "metadata": {"name": name, "namespace": namespace,
                        "ownerReferences": [{"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine", "name": name, "uid": object["metadata"]["uid"]}]},
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
        if object.get("status") != before.as_ref() {
            *resource_version += 1;
            object["metadata"]["resourceVersion"] = resource_version.to_string().into();
        }
    }
    for key in removed {
        if let Some(stored) = inner.objects.remove(&key) {
            // A VM's instance goes with it; a CRD's kind stops being served.
            if stored.object["kind"] == "VirtualMachine" {
                inner.objects.retain(|k, s| {
                    !(s.object["kind"] == "VirtualMachineInstance" && k.3 == key.3 && k.2 == key.2)
                });
            }
            if stored.object["kind"] == "CustomResourceDefinition" {
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
                inner
                    .objects
                    .retain(|k, _| !(k.0 == group && k.1 == plural));
            }
        }
    }
    // Pods go with their Deployment, and those beyond its replica count
    // (pod `NAME-INDEX`) go when it is scaled down.
    let deployments: BTreeMap<(String, String), i64> = inner
        .objects
        .iter()
        .filter(|(k, _)| k.1 == "deployments")
        .map(|(k, s)| {
            let replicas = s.object["spec"]["replicas"].as_i64().unwrap_or(1);
            ((k.2.clone(), k.3.clone()), replicas)
        })
        .collect();
    inner.objects.retain(|k, s| {
        if k.1 != "pods" {
            return true;
        }
        let Some(owner) = s.object["metadata"]["ownerReferences"][0]["name"].as_str() else {
            return false;
        };
        let Some(replicas) = deployments.get(&(k.2.clone(), owner.to_string())) else {
            return false;
        };
        k.3.strip_prefix(&format!("{owner}-"))
            .and_then(|index| index.parse::<i64>().ok())
            .is_none_or(|index| index < *replicas)
    });
    for resource in new_resources {
        if !inner.resources.iter().any(|r| {
            r.group == resource.group
                && r.version == resource.version
                && r.plural == resource.plural
        }) {
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
                        manager: "virt-controller".into(),
                        changed: now,
                    },
                );
            }
        }
    }
}

fn status_response(code: StatusCode, reason: &str, message: &str) -> Response {
    (
        code,
        axum::Json(
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code.as_u16()}),
        ),
    )
        .into_response()
}

async fn handle(
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
    match segments.as_slice() {
        ["version"] => axum::Json(json!({"major": "1", "minor": "34", "gitVersion": "v1.34.0-fake", "platform": "linux/amd64"})).into_response(),
        ["api"] => axum::Json(json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []})).into_response(),
        ["apis"] => {
            let mut groups: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
            for r in inner.resources.iter().filter(|r| !r.group.is_empty()) {
                groups.entry(r.group.clone()).or_default().insert(r.version.clone());
            }
            let groups: Vec<Value> = groups.into_iter().map(|(name, versions)| {
                let versions: Vec<Value> = versions.iter().map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v})).collect();
                json!({"name": name, "versions": versions, "preferredVersion": versions[0]})
            }).collect();
            axum::Json(json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})).into_response()
        }
        ["api", "v1"] => resource_list(&inner, "", "v1"),
        ["apis", group, version] => resource_list(&inner, group, version),
        ["api", "v1", rest @ ..] => objects(&server, &mut inner, "", "v1", rest, &method, &query, &headers, &body),
        ["apis", group, version, rest @ ..] => objects(&server, &mut inner, group, version, rest, &method, &query, &headers, &body),
        _ => status_response(StatusCode::NOT_FOUND, "NotFound", &format!("no route {path}")),
    }
}

fn resource_list(inner: &Inner, group: &str, version: &str) -> Response {
    let resources: Vec<Value> = inner
        .resources
        .iter()
        .filter(|r| r.group == group && r.version == version)
        .map(|r| json!({"name": r.plural, "singularName": r.kind.to_lowercase(), "namespaced": r.namespaced,
                        "kind": r.kind, "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]}))
        .collect();
    if resources.is_empty() {
        return status_response(
            StatusCode::NOT_FOUND,
            "NotFound",
            "the server could not find the requested resource",
        );
    }
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    axum::Json(json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources})).into_response()
}

#[allow(clippy::too_many_arguments)]
fn objects(
    server: &FakeApiServer,
    inner: &mut Inner,
    group: &str,
    version: &str,
    rest: &[&str],
    method: &Method,
    query: &BTreeMap<String, String>,
    headers: &HeaderMap,
    body: &Bytes,
) -> Response {
    let _ = server;
    // [plural] [plural,name] [namespaces,ns,plural] [namespaces,ns,plural,name]
    let (namespace, plural, name) = match rest {
        ["namespaces", ns, "pods", pod_port, "proxy", "metrics"] => {
            let pod = pod_port.split(':').next().unwrap_or("");
            let exists = inner
                .objects
                .keys()
                .any(|k| k.1 == "pods" && k.2 == *ns && k.3 == pod);
            return if exists {
                inner
                    .pod_metrics_by_pod
                    .get(pod)
                    .unwrap_or(&inner.pod_metrics)
                    .clone()
                    .into_response()
            } else {
                status_response(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    &format!("pods \"{pod}\" not found"),
                )
            };
        }
        ["namespaces", ns, "deployments", name, "scale"] if method == Method::PATCH => {
            return scale(inner, ns, name, body);
        }
        ["namespaces", ns, plural] => (Some(ns.to_string()), plural.to_string(), None),
        ["namespaces", ns, plural, name] => (
            Some(ns.to_string()),
            plural.to_string(),
            Some(name.to_string()),
        ),
        [plural] => (None, plural.to_string(), None),
        [plural, name] => (None, plural.to_string(), Some(name.to_string())),
        _ => return status_response(StatusCode::NOT_FOUND, "NotFound", "unsupported path"),
    };
    let Some(resource) = inner
        .resources
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
        .cloned()
    else {
        return status_response(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("the server could not find the requested resource ({plural})"),
        );
    };
    let namespace = if resource.namespaced {
        namespace.unwrap_or_default()
    } else {
        String::new()
    };
    match (method.clone(), name) {
        (Method::GET, None) => {
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
                .map(|(_, s)| s.object.clone())
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
                Some(stored) => axum::Json(stored.object.clone()).into_response(),
                None => status_response(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    &format!("{} \"{name}\" not found", resource.plural),
                ),
            }
        }
        (Method::PATCH, Some(name)) => {
            let content_type = headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if content_type != "application/apply-patch+yaml" {
                return status_response(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "UnsupportedMediaType",
                    content_type,
                );
            }
            let Some(manager) = query.get("fieldManager").cloned() else {
                return status_response(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "Invalid",
                    "fieldManager is required for apply",
                );
            };
            let force = query.get("force").is_some_and(|f| f == "true");
            let Ok(mut applied) = serde_json::from_slice::<Value>(body) else {
                return status_response(StatusCode::BAD_REQUEST, "BadRequest", "body is not JSON");
            };
            if resource.namespaced {
                applied["metadata"]["namespace"] = namespace.clone().into();
            }
            let key = (
                resource.group.clone(),
                resource.plural.clone(),
                namespace.clone(),
                name.clone(),
            );
            let description = describe(&applied);
            let now = Instant::now();
            match inner.objects.get(&key) {
                Some(stored) if stored.manager != manager && !force => {
                    return status_response(
                        StatusCode::CONFLICT,
                        "Conflict",
                        &format!(
                            "Apply failed with 1 conflict: conflict with \"{}\": .spec",
                            stored.manager
                        ),
                    );
                }
                Some(stored) => {
                    let existing = stored.object.clone();
                    let mut merged = applied.clone();
                    for field in [
                        "uid",
                        "creationTimestamp",
                        "resourceVersion",
                        "generation",
                        "deletionTimestamp",
                        "ownerReferences",
                    ] {
                        if let Some(value) = existing["metadata"].get(field) {
                            merged["metadata"][field] = value.clone();
                        }
                    }
                    if existing["metadata"].get("finalizers").is_some()
                        && merged["metadata"].get("finalizers").is_none()
                    {
                        merged["metadata"]["finalizers"] =
                            existing["metadata"]["finalizers"].clone();
                    }
                    if let Some(status) = existing.get("status") {
                        merged["status"] = status.clone();
                    }
                    if merged["kind"] == "Deployment" && merged["spec"].get("replicas").is_none() {
                        merged["spec"]["replicas"] = existing["spec"]["replicas"].clone();
                    }
                    if merged != existing {
                        inner.resource_version += 1;
                        merged["metadata"]["resourceVersion"] =
                            inner.resource_version.to_string().into();
                        let spec_changed = strip(&merged) != strip(&existing);
                        if spec_changed {
                            let generation =
                                existing["metadata"]["generation"].as_i64().unwrap_or(1) + 1;
                            merged["metadata"]["generation"] = generation.into();
                        }
                        inner.log.push(format!("APPLY {description}"));
                        let changed = if spec_changed { now } else { stored.changed };
                        inner.objects.insert(
                            key.clone(),
                            Stored {
                                object: merged,
                                manager,
                                changed,
                            },
                        );
                    }
                }
                None => {
                    inner.resource_version += 1;
                    let mut created = applied;
                    fill_metadata(&mut created, inner.resource_version);
                    if created["kind"] == "Deployment" && created["spec"].get("replicas").is_none()
                    {
                        created["spec"]["replicas"] = 1.into();
                    }
                    inner.log.push(format!("APPLY {description}"));
                    inner.objects.insert(
                        key.clone(),
                        Stored {
                            object: created,
                            manager,
                            changed: now,
                        },
                    );
                }
            }
            axum::Json(inner.objects[&key].object.clone()).into_response()
        }
        (Method::DELETE, Some(name)) => {
            let key = (
                resource.group.clone(),
                resource.plural.clone(),
                namespace,
                name.clone(),
            );
            let Some(stored) = inner.objects.get_mut(&key) else {
                return status_response(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    &format!("{} \"{name}\" not found", resource.plural),
                );
            };
            let description = describe(&stored.object);
            let has_finalizers = stored.object["metadata"]["finalizers"]
                .as_array()
                .is_some_and(|f| !f.is_empty());
            let object = if has_finalizers || stored.object["kind"] == "Namespace" {
                if stored.object["metadata"].get("deletionTimestamp").is_none() {
                    stored.object["metadata"]["deletionTimestamp"] = "2026-11-28T00:00:01Z".into();
                    stored.changed = Instant::now();
                    if stored.object["kind"] == "Namespace" {
                        stored.object["status"] = json!({"phase": "Terminating"});
                    }
                }
                stored.object.clone()
            } else {
                inner
                    .objects
                    .remove(&key)
                    .map(|s| s.object)
                    .unwrap_or_default()
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

/// The object without metadata and status: what a generation counts.
fn strip(object: &Value) -> Value {
    let mut copy = object.clone();
    if let Some(map) = copy.as_object_mut() {
        map.remove("metadata");
        map.remove("status");
    }
    copy
}
