//! An in-process fake Kubernetes API server for tests: a dev-only crate.
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
//! * Port-forward (`GET .../pods/NAME/portforward?ports=P`, a WebSocket,
//!   subprotocol `v4.channel.k8s.io`): for each port a data channel (2i) and
//!   an error channel (2i+1), each opened with the port as two bytes little
//!   endian, then data frames prefixed with their channel; the bytes go to
//!   the address `forward_pod_port` set, and a port nothing listens on is
//!   an error-channel message (doc: kubernetes `pkg/kubelet/cri/streaming/
//!   portforward/websocket.go`, `handleWebSocketStreams`; kube-rs's
//!   `Portforwarder` checks the same opening frames). See [`portforward`].
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
//!   with Running, Ready pods `NAME-INDEX`; a deleted pod comes back with a
//!   new uid (rec: deployment-rollout, simplified: real pods belong to a
//!   ReplicaSet and have generated names);
//! * autoscalers: with a metrics server (the default, as on GKE)
//!   `ScalingActive=True`; without one (`without_metrics_server`) the
//!   recorded `ScalingActive=False FailedGetResourceMetric`; a missing
//!   target is `AbleToScale=False FailedGetScale` (rec: hpa-no-metrics);
//! * Strimzi: `Kafka`/`KafkaTopic` get `Ready` (never `KafkaNodePool`);
//!   topics get the `strimzi.io/topic-operator` finalizer, which is removed
//!   on deletion only while their Kafka cluster (label `strimzi.io/cluster`)
//!   exists, since the topic operator runs in it (doc: Strimzi "Using the
//!   Topic Operator"; the stuck namespace in issue 12);
//! * Strimzi node pools run their brokers as Ready pods `CLUSTER-POOL-ID`
//!   with Strimzi's labels (`strimzi.io/broker-role=true`, ...); a deleted
//!   one comes back (strimzi-kafka-operator `Labels.java`; simplified: owned
//!   by the pool, not a StrimziPodSet);
//! * KubeVirt: a `VirtualMachine` gets a finalizer and a `VirtualMachineInstance`
//!   that turns Ready; `KubeVirt` gets Available; `PUT .../restart` on
//!   `subresources.kubevirt.io` answers 202 and the instance is made again
//!   with a new uid, 404 for no such VM, 409 for `runStrategy` Halted or
//!   Once and for a VM with no instance (kubevirt/kubevirt
//!   `pkg/virt-api/rest/subresource.go`, `RestartVM`);
//! * `Gateway` becomes Programmed with an address.
//!
//! Names in `never_ready` stay not ready, with a condition message, to test
//! timeouts. Every mutating call is logged in order, and every User-Agent
//! seen is kept.

//!
//! # Layout
//!
//! ```text
//! lib.rs          FakeApiServer: start, stop, what a test sets and reads
//! rest.rs         the REST layer (discovery, CRUD, apply, delete, proxy)
//! controllers.rs  the simulated controllers, run after every request
//! store.rs        storage helpers both share (keys, field paths, Status answers)
//! tls.rs          HTTPS with a CA of its own (start_tls)
//! ```

mod controllers;
mod portforward;
mod rest;
mod store;
mod tls;

pub use store::finalizers;

use controllers::reconcile;
use rest::handle;
use store::*;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// How long after a CRD is Established its storage answers LIST with 429
/// (rec: crd-lifecycle: 429 at +32 ms, 200 at +71 ms).
pub(crate) const INITIALIZING: Duration = Duration::from_millis(50);

#[derive(Clone, Debug)]
pub(crate) struct Resource {
    pub(crate) group: String,
    pub(crate) version: String,
    pub(crate) kind: String,
    pub(crate) plural: String,
    pub(crate) namespaced: bool,
}

impl Resource {
    pub(crate) fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

/// (group, plural, namespace or "", name)
pub(crate) type Key = (String, String, String, String);

/// A field path: the keys from the object's root.
pub(crate) type Path = Vec<String>;

pub(crate) struct Stored {
    pub(crate) object: Value,
    /// Who owns which fields, keyed as a conflict message names them: an
    /// apply manager `"m"`, an Update manager `"m" using v1`, through a
    /// subresource `"m" with subresource "scale" using apps/v1`
    /// (rec: ssa-conflict).
    pub(crate) owners: BTreeMap<String, BTreeSet<Path>>,
    /// When the object (its spec, or its deletion) last changed.
    pub(crate) changed: Instant,
    /// PersistentVolumeClaims: whether `status.phase` was written back.
    pub(crate) phase_written: bool,
}

#[derive(Default)]
pub(crate) struct Inner {
    pub(crate) resources: Vec<Resource>,
    pub(crate) objects: BTreeMap<Key, Stored>,
    pub(crate) resource_version: u64,
    pub(crate) log: Vec<String>,
    pub(crate) never_ready: BTreeSet<String>,
    /// What every pod's /metrics answers through the proxy.
    pub(crate) pod_metrics: String,
    /// The address a Gateway reports once Programmed (empty: 203.0.113.10).
    pub(crate) gateway_address: String,
    /// Per-pod metrics, overriding `pod_metrics` for that pod.
    pub(crate) pod_metrics_by_pod: BTreeMap<String, String>,
    /// Where a pod's port is reached by port-forward: (pod, port) → address.
    pub(crate) pod_ports: BTreeMap<(String, u16), std::net::SocketAddr>,
    /// The proxy refuses every pod (`address not allowed`).
    pub(crate) refuse_pod_proxy: bool,
    pub(crate) no_metrics_server: bool,
    /// How long controllers take to remove their finalizers (default: the
    /// server's delay).
    pub(crate) cleanup_delay: Option<Duration>,
    /// Resources just Established, and when: a LIST within
    /// [`INITIALIZING`] of it answers 429.
    pub(crate) initializing: BTreeMap<(String, String), Instant>,
    pub(crate) user_agents: BTreeSet<String>,
    /// Requests answered (every method).
    pub(crate) requests: usize,
}

/// The server's shared state, also held by the test.
#[derive(Clone)]
pub struct FakeApiServer {
    pub(crate) inner: Arc<Mutex<Inner>>,
    pub address: SocketAddr,
    /// How long the simulated controllers take.
    pub(crate) delay: Duration,
    shutdown: Arc<tokio::sync::Notify>,
    /// With [`FakeApiServer::start_tls`]: the PEM of the CA that signed
    /// its certificate (what GKE reports as `clusterCaCertificate`).
    pub ca_pem: Option<String>,
}

pub(crate) const BUILTIN: &[(&str, &str, &str, &str, bool)] = &[
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
        Self::start_with(delay, false)
            .await
            .with_gateway_class(gateway_class)
    }

    /// GKE's GatewayClass, as its Gateway controller installs it.
    fn with_gateway_class(self, gateway_class: &str) -> FakeApiServer {
        self.insert_as(
            "gke",
            json!({
                "apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
                "metadata": {"name": gateway_class},
                "spec": {"controllerName": "networking.gke.io/gateway"}
            }),
        );
        self
    }

    /// Like [`FakeApiServer::start`], serving HTTPS as a real API server
    /// does: a certificate for 127.0.0.1 signed by a CA of its own (made
    /// here with rcgen), whose PEM is in [`FakeApiServer::ca_pem`].
    pub async fn start_tls(delay: Duration, gateway_class: &str) -> FakeApiServer {
        Self::start_with(delay, true)
            .await
            .with_gateway_class(gateway_class)
    }

    /// Starts with nothing stored (the fidelity replays start from there).
    pub async fn start_bare(delay: Duration) -> FakeApiServer {
        Self::start_with(delay, false).await
    }

    async fn start_with(delay: Duration, tls: bool) -> FakeApiServer {
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
        let certificates = tls.then(tls::certificates);
        let server = FakeApiServer {
            inner: Arc::new(Mutex::new(inner)),
            address,
            delay,
            shutdown: Arc::new(tokio::sync::Notify::new()),
            ca_pem: certificates.as_ref().map(|c| c.ca_pem.clone()),
        };
        let app = axum::Router::new()
            .route(
                "/api/v1/namespaces/{namespace}/pods/{pod}/portforward",
                axum::routing::get(portforward::handle),
            )
            .fallback(handle)
            .with_state(server.clone());
        let shutdown = server.shutdown.clone();
        match certificates {
            Some(certificates) => {
                tokio::spawn(tls::serve(listener, app, certificates, shutdown));
            }
            None => {
                tokio::spawn(async move {
                    let _ = axum::serve(listener, app)
                        .with_graceful_shutdown(async move { shutdown.notified().await })
                        .await;
                });
            }
        }
        let controllers = server.clone();
        tokio::spawn(async move { controllers.run_controllers().await });
        server
    }

    pub fn stop(&self) {
        self.shutdown.notify_waiters();
    }

    pub fn url(&self) -> String {
        match self.ca_pem {
            Some(_) => format!("https://{}", self.address),
            None => format!("http://{}", self.address),
        }
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

    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
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
    /// Makes `port` of the pod `pod` reachable by port-forward: the
    /// connection goes to `to` (a server the test runs, standing in for the
    /// container).
    pub fn forward_pod_port(&self, pod: &str, port: u16, to: std::net::SocketAddr) {
        self.lock().pod_ports.insert((pod.to_string(), port), to);
    }

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
        let key = find_key(&inner, kind, namespace, name)?;
        inner.objects.get(&key).map(shown)
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
