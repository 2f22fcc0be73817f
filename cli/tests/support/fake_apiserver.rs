//! An in-process fake Kubernetes API server for the engine and binary tests.
//!
//! It speaks enough of the real REST API for `kube::Client` and runs
//! simulated controllers. Every behaviour says where it comes from; "rec:"
//! names a file of exchanges recorded from a real v1.34.9 API server in
//! `../shared/fixtures/kube-apiserver-1.34/` (and `fake_apiserver_fidelity.rs`
//! replays those files against this fake), "doc:" an upstream document.
//!
//! REST layer:
//! * Discovery (`/api`, `/apis`, `/apis/G`, `/apis/G/V`) lists only what is
//!   served. A group, version or resource that is not served — before its
//!   CRD exists or after it is gone — answers **404 text/plain
//!   `404 page not found`**, not a Status (rec: crd-lifecycle,
//!   bfctl-up-teardown `p6`). The first LIST of a resource right after its
//!   CRD is Established answers 429 "storage is (re)initializing" with
//!   `Retry-After: 1` (rec: crd-lifecycle).
//! * Server-side apply tracks ownership per field and per field manager;
//!   a field another manager owns with a different value is a 409 naming
//!   the manager and the fields; `force=true` moves the fields; fields a
//!   manager stops applying are removed unless someone else owns them
//!   (rec: ssa-conflict; doc: "Server-Side Apply", kubernetes.io). Lists are
//!   atomic here (a simplification: real lists with merge keys are per item).
//!   An Update (`insert_as`, a kubectl edit) takes the fields it changes.
//! * A PersistentVolumeClaim is stored without `status.phase`; reads show
//!   `Pending`; the first apply after its creation writes the phase back and
//!   bumps its resourceVersion even when nothing else changed
//!   (rec: pvc-noop-apply).
//! * DELETE: with finalizers (or `propagationPolicy: Foreground`, which adds
//!   `foregroundDeletion`) the object stays with a `deletionTimestamp` and
//!   is answered 200; a second DELETE changes nothing; a 404 is a JSON
//!   Status NotFound. Applying to a terminating object works, but adding a
//!   finalizer is 422; a POST of its name is 409 "object is being deleted";
//!   the write that removes its last finalizer removes it
//!   (rec: terminating-object, bfctl-up-teardown).
//! * Namespaces: DELETE sets `Terminating`; creating in one is 403
//!   "unable to create new content ... because it is being terminated"
//!   (rec: namespace-stuck-finalizer).
//! * A terminating CRD refuses new custom resources with 403 "create not
//!   allowed while custom resource definition is terminating"
//!   (rec: crd-delete-with-crs).
//! * A pod proxy answers the metrics set by the test, or 400 "address not
//!   allowed" when `refuse_pod_proxy` is set (rec: bfctl-up-teardown `p4`).
//!
//! Simulated controllers (each after `delay`):
//! * CRDs get NamesAccepted and Established, then their kinds are served;
//!   a deleted CRD deletes its custom resources and goes once none is left,
//!   with discovery dropping the kind (rec: crd-lifecycle, crd-delete-with-crs);
//! * the namespace controller deletes a terminating namespace's content and,
//!   while objects with finalizers remain, writes `NamespaceContentRemaining`
//!   and `NamespaceFinalizersRemaining` naming the finalizers and counts
//!   (rec: namespace-stuck-finalizer);
//! * the garbage collector deletes an object's dependants for
//!   `foregroundDeletion` and then drops that finalizer (doc: "Garbage
//!   Collection", kubernetes.io);
//! * Deployments report their replicas ready for the current generation,
//!   with Running pods (rec: deployment-rollout, simplified);
//! * autoscalers: with a metrics server (the default, as on GKE)
//!   `ScalingActive=True`; without one (`without_metrics_server`) the
//!   recorded `ScalingActive=False FailedGetResourceMetric`; a missing
//!   target is `AbleToScale=False FailedGetScale` (rec: hpa-no-metrics);
//! * Strimzi: `Kafka`/`KafkaTopic` get `Ready` (never `KafkaNodePool`);
//!   topics get the `strimzi.io/topic-operator` finalizer, which is removed
//!   on deletion only while their Kafka cluster (label `strimzi.io/cluster`)
//!   exists, since the topic operator runs in it (doc: Strimzi "Using the
//!   Topic Operator"; the stuck namespace in issue 12);
//! * KubeVirt: a `VirtualMachine` gets a finalizer and a `VirtualMachineInstance`
//!   that turns Ready; `KubeVirt` gets Available;
//! * `Gateway` becomes Programmed with an address.
//!
//! Names in `never_ready` stay not ready, with a condition message, to test
//! timeouts. Every mutating call is logged in order, and every User-Agent
//! seen is kept.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// How long after a CRD is Established its storage answers LIST with 429
/// (rec: crd-lifecycle: 429 at +32 ms, 200 at +71 ms).
const INITIALIZING: Duration = Duration::from_millis(50);

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

/// A field path: the keys from the object's root.
type Path = Vec<String>;

struct Stored {
    object: Value,
    /// Who owns which fields, keyed as a conflict message names them: an
    /// apply manager `"m"`, an Update manager `"m" using v1`, through a
    /// subresource `"m" with subresource "scale" using apps/v1`
    /// (rec: ssa-conflict).
    owners: BTreeMap<String, BTreeSet<Path>>,
    /// When the object (its spec, or its deletion) last changed.
    changed: Instant,
    /// PersistentVolumeClaims: whether `status.phase` was written back.
    phase_written: bool,
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
    /// The proxy refuses every pod (`address not allowed`).
    refuse_pod_proxy: bool,
    no_metrics_server: bool,
    /// How long controllers take to remove their finalizers (default: the
    /// server's delay).
    cleanup_delay: Option<Duration>,
    /// Resources just Established, and when: a LIST within
    /// [`INITIALIZING`] of it answers 429.
    initializing: BTreeMap<(String, String), Instant>,
    user_agents: BTreeSet<String>,
    /// Requests answered (every method).
    requests: usize,
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
    // The same objects through the older version (rec: hpa-no-metrics).
    (
        "autoscaling",
        "v1",
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
    (
        "scheduling.k8s.io",
        "v1",
        "PriorityClass",
        "priorityclasses",
        false,
    ),
    (
        "admissionregistration.k8s.io",
        "v1",
        "ValidatingWebhookConfiguration",
        "validatingwebhookconfigurations",
        false,
    ),
    (
        "admissionregistration.k8s.io",
        "v1",
        "MutatingWebhookConfiguration",
        "mutatingwebhookconfigurations",
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
        let server = Self::start_bare(delay).await;
        server.insert_as(
            "gke",
            json!({
                "apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
                "metadata": {"name": gateway_class},
                "spec": {"controllerName": "networking.gke.io/gateway"}
            }),
        );
        server
    }

    /// Starts with nothing stored (the fidelity replays start from there).
    pub async fn start_bare(delay: Duration) -> FakeApiServer {
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

    /// The proxy refuses every pod, as a real one does for pods whose IPs
    /// are loopback addresses (`400 address not allowed`).
    pub fn refuse_pod_proxy(&self, refuse: bool) {
        self.lock().refuse_pod_proxy = refuse;
    }

    /// Serves a kind from the start, as if its CRD had been installed
    /// before (the recorded cluster had KubeVirt's VM kinds).
    pub fn serve(&self, group: &str, version: &str, kind: &str, plural: &str, namespaced: bool) {
        self.lock().resources.push(Resource {
            group: group.into(),
            version: version.into(),
            kind: kind.into(),
            plural: plural.into(),
            namespaced,
        });
    }

    /// Controllers take this long to clean up after a deletion (a Strimzi
    /// topic operator deleting the topic in Kafka takes seconds).
    pub fn set_cleanup_delay(&self, delay: Duration) {
        self.lock().cleanup_delay = Some(delay);
    }

    /// No metrics server: autoscalers cannot get their metric.
    pub fn without_metrics_server(&self) {
        self.lock().no_metrics_server = true;
    }

    /// The mutating calls so far: "APPLY Kind ns/name", "DELETE Kind ns/name".
    pub fn log(&self) -> Vec<String> {
        self.lock().log.clone()
    }

    pub fn clear_log(&self) {
        self.lock().log.clear();
    }

    /// How many requests were answered so far.
    pub fn requests(&self) -> usize {
        self.lock().requests
    }

    /// Every User-Agent header the server saw ("" for none).
    pub fn user_agents(&self) -> BTreeSet<String> {
        self.lock().user_agents.clone()
    }

    /// The stored object, if any (as a GET would show it).
    pub fn get(&self, kind: &str, namespace: &str, name: &str) -> Option<Value> {
        let inner = self.lock();
        inner
            .objects
            .values()
            .find(|stored| {
                stored.object["kind"] == kind
                    && stored.object["metadata"]["name"] == name
                    && stored.object["metadata"]["namespace"]
                        .as_str()
                        .unwrap_or("")
                        == namespace
            })
            .map(shown)
    }

    /// How many objects are stored.
    pub fn object_count(&self) -> usize {
        self.lock().objects.len()
    }

    /// What a kind's plural is served as, if it is.
    pub fn serves(&self, group: &str, plural: &str) -> bool {
        self.lock()
            .resources
            .iter()
            .any(|r| r.group == group && r.plural == plural)
    }

    /// Deletes an object as another client's DELETE would (finalizers keep
    /// it, marked). Returns whether it existed.
    pub fn delete_as_other(&self, kind: &str, namespace: &str, name: &str) -> bool {
        let mut inner = self.lock();
        let Some(key) = find_key(&inner, kind, namespace, name) else {
            return false;
        };
        let gone = inner
            .objects
            .get_mut(&key)
            .is_some_and(|stored| mark_deleted(stored, false));
        if gone {
            inner.objects.remove(&key);
        }
        inner.resource_version += 1;
        true
    }

    /// Makes an object vanish at once, finalizers or not (a controller that
    /// went away with its object, for scenarios where something is left
    /// without the controller that should clean it up).
    pub fn vanish(&self, kind: &str, namespace: &str, name: &str) -> bool {
        let mut inner = self.lock();
        match find_key(&inner, kind, namespace, name) {
            Some(key) => inner.objects.remove(&key).is_some(),
            None => false,
        }
    }

    /// Stores an object as another tool's Update would (a `kubectl edit`):
    /// `manager` takes every field whose value it changes, or all of them
    /// for a new object. Its kind must be served.
    pub fn insert_as(&self, manager: &str, object: Value) {
        let mut inner = self.lock();
        let resource = resource_for(&inner, &object).expect("kind served");
        let key = key_of(&resource, &object);
        inner.resource_version += 1;
        let resource_version = inner.resource_version;
        let now = Instant::now();
        match inner.objects.get_mut(&key) {
            Some(stored) => {
                let mut object = object;
                for field in ["uid", "creationTimestamp", "generation"] {
                    if let Some(value) = stored.object["metadata"].get(field) {
                        object["metadata"][field] = value.clone();
                    }
                }
                let changed: BTreeSet<Path> = leaves(&object)
                    .into_iter()
                    .filter(|p| lookup(&stored.object, p) != lookup(&object, p))
                    .collect();
                for owned in stored.owners.values_mut() {
                    owned.retain(|p| !changed.contains(p));
                }
                stored
                    .owners
                    .entry(update_manager(manager, &object, None))
                    .or_default()
                    .extend(changed);
                object["metadata"]["resourceVersion"] = resource_version.to_string().into();
                stored.object = object;
                stored.changed = now;
            }
            None => {
                let mut object = object;
                fill_metadata(&mut object, resource_version);
                let owners =
                    BTreeMap::from([(update_manager(manager, &object, None), leaves(&object))]);
                inner.objects.insert(
                    key,
                    Stored {
                        object,
                        owners,
                        changed: now,
                        phase_written: false,
                    },
                );
            }
        }
    }

    async fn run_controllers(&self) {
        loop {
            tokio::time::sleep(Duration::from_millis(10)).await;
            let mut inner = self.lock();
            reconcile(&mut inner, self.delay);
        }
    }
}

fn find_key(inner: &Inner, kind: &str, namespace: &str, name: &str) -> Option<Key> {
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
fn shown(stored: &Stored) -> Value {
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
fn drop_empty_properties(value: &mut Value) {
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
fn admit(object: &mut Value) {
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

/// How an Update manager is named in ownership and conflicts.
fn update_manager(manager: &str, object: &Value, subresource: Option<&str>) -> String {
    let api_version = object["apiVersion"].as_str().unwrap_or("v1");
    match subresource {
        Some(sub) => format!("\"{manager}\" with subresource \"{sub}\" using {api_version}"),
        None => format!("\"{manager}\" using {api_version}"),
    }
}

/// The manager of a request without `fieldManager`: the User-Agent's
/// program name, as the real server derives it (`kubectl/v1.32.4 …` →
/// `kubectl`).
fn manager_of(query: &BTreeMap<String, String>, headers: &HeaderMap) -> String {
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
fn owned_path(path: &Path) -> bool {
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
fn leaves(value: &Value) -> BTreeSet<Path> {
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

fn lookup<'a>(value: &'a Value, path: &Path) -> Option<&'a Value> {
    path.iter().try_fold(value, |v, key| v.get(key))
}

fn set(value: &mut Value, path: &Path, new: Value) {
    let mut current = value;
    for key in &path[..path.len() - 1] {
        if !current.get(key).is_some_and(Value::is_object) {
            current[key.as_str()] = json!({});
        }
        current = &mut current[key.as_str()];
    }
    current[path[path.len() - 1].as_str()] = new;
}

fn remove(value: &mut Value, path: &Path) {
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

fn dotted(path: &Path) -> String {
    path.iter().map(|p| format!(".{p}")).collect()
}

fn finalizers(object: &Value) -> Vec<String> {
    object["metadata"]["finalizers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect()
}

fn terminating(object: &Value) -> bool {
    object["metadata"].get("deletionTimestamp").is_some()
}

/// What a generation counts: the object without metadata and status.
fn spec_of(object: &Value) -> Value {
    let mut copy = object.clone();
    if let Some(map) = copy.as_object_mut() {
        map.remove("metadata");
        map.remove("status");
    }
    copy
}

/// The content a write compares to decide whether it changed anything.
fn content_of(object: &Value) -> Value {
    let mut copy = object.clone();
    if let Some(metadata) = copy.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata.remove("resourceVersion");
    }
    copy
}

fn status_response(code: StatusCode, reason: &str, message: &str) -> Response {
    let mut body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "code": code.as_u16()});
    if !reason.is_empty() {
        body["reason"] = reason.into();
    }
    (code, axum::Json(body)).into_response()
}

/// What a real API server answers for a path it does not serve (rec:
/// crd-lifecycle: `Content-Type: text/plain; charset=utf-8`).
fn page_not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [("content-type", "text/plain; charset=utf-8")],
        "404 page not found\n",
    )
        .into_response()
}

/// `plural.group`, as messages name a resource (`plural` for the core group).
fn qualified(resource: &Resource) -> String {
    if resource.group.is_empty() {
        resource.plural.clone()
    } else {
        format!("{}.{}", resource.plural, resource.group)
    }
}

fn not_found(resource: &Resource, name: &str) -> Response {
    status_response(
        StatusCode::NOT_FOUND,
        "NotFound",
        &format!("{} \"{name}\" not found", qualified(resource)),
    )
}

/// `PATCH deployments/NAME/scale` (a merge patch of `spec.replicas`): the
/// Deployment's replicas change and its controller catches up.
fn scale(inner: &mut Inner, namespace: &str, name: &str, manager: &str, body: &Bytes) -> Response {
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
fn mark_deleted(stored: &mut Stored, foreground: bool) -> bool {
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
            if finalizers != self::finalizers(object) {
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
fn namespace_and_crd_controllers(
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
        ["apis", group, version, rest @ ..] => objects(&mut inner, group, version, rest, &method, &query, &headers, &body),
        _ => page_not_found(),
    }
}

fn groups(inner: &Inner) -> BTreeMap<String, BTreeSet<String>> {
    let mut groups: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for r in inner.resources.iter().filter(|r| !r.group.is_empty()) {
        groups
            .entry(r.group.clone())
            .or_default()
            .insert(r.version.clone());
    }
    groups
}

fn group_document(name: &str, versions: &BTreeSet<String>) -> Value {
    let versions: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v}))
        .collect();
    json!({"name": name, "versions": versions, "preferredVersion": versions[0]})
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
fn create_refused(
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
fn objects(
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
fn apply(
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
fn remove_if_released(inner: &mut Inner, key: &Key, previous_version: Value) -> Option<Response> {
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
fn merge_patch(
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
