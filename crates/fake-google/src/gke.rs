//! A fake GKE API (container.googleapis.com, v1) on 127.0.0.1, with its
//! token endpoint. Where each behaviour comes from:
//!
//! * every request is checked against `container.v1.json` (the real API
//!   description, [`crate::discovery`]) before anything else: an unknown
//!   field, a wrong type or enum, a path outside a parameter's pattern is
//!   refused with the real error shape;
//! * a request without a token the token endpoint issued is 401
//!   `UNAUTHENTICATED` (doc: "Cloud APIs error model", cloud.google.com);
//! * a cluster that does not exist is 404 "Not found: projects/P/locations/
//!   L/clusters/C." (as gcloud prints GKE's answer: sourcegraph/handbook
//!   #6308); creating one whose name is taken in the location is 409
//!   `ALREADY_EXISTS` "Already exists: projects/P/locations/L/clusters/C.";
//! * create and delete answer an `Operation` that goes PENDING → RUNNING →
//!   DONE over time, with `progress` stages and metrics while it runs; the
//!   cluster is PROVISIONING, then RUNNING with an endpoint and a CA, or
//!   STOPPING, then gone (doc: the API's `Operation` and `Cluster.status`
//!   descriptions). An operation can be made to end with an `error`;
//! * `nodePools.setAutoscaling` and `clusters.update` (the Gateway API
//!   channel) change the cluster at once and answer an operation
//!   (simplified: GKE applies them while the operation runs);
//! * any method can be made to fail once with an error the test gives
//!   (quota, permission, a disabled API: their shapes are the tests');
//! * the same server answers Compute Engine (`/compute/v1/…`,
//!   [`crate::compute`]) and Secret Manager (`/v1/projects/P/secrets…`,
//!   [`crate::secretmanager`]) with the same token, as Google's APIs all
//!   take one access token, each request checked against its own API
//!   description.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::artifactregistry::ArtifactState;
use crate::compute::ComputeState;
use crate::discovery::{Api, ApiError};
use crate::secretmanager::SecretState;
use crate::token::ServiceAccount;

/// The fake's shared state, also held by the test.
#[derive(Clone)]
pub struct FakeGke {
    pub address: SocketAddr,
    pub account: ServiceAccount,
    state: Arc<Mutex<GkeState>>,
    shutdown: Arc<tokio::sync::Notify>,
    _dir: Arc<tempfile::TempDir>,
}

struct GkeState {
    api: Arc<Api>,
    compute_api: Arc<Api>,
    secrets_api: Arc<Api>,
    artifacts_api: Arc<Api>,
    artifacts: ArtifactState,
    compute: ComputeState,
    secrets: SecretState,
    clusters: BTreeMap<String, Value>,
    operations: Vec<Operation>,
    /// How long an operation stays PENDING, and then RUNNING (twice this).
    step: Duration,
    fail_next: BTreeMap<String, ApiError>,
    fail_operation: BTreeMap<String, String>,
    /// What a created cluster reports as its endpoint and CA (base64 PEM).
    endpoint: String,
    ca: String,
    /// Method ids answered, in order.
    log: Vec<String>,
    operation_polls: usize,
}

struct Operation {
    name: String,
    location: String,
    kind: String,
    target: String,
    started: Instant,
    error: Option<String>,
    applied: bool,
}

impl FakeGke {
    /// Starts on a free 127.0.0.1 port; `container_v1` is the path of
    /// `container.v1.json`. Operations take `step` per state.
    pub async fn start(container_v1: &std::path::Path, project: &str, step: Duration) -> FakeGke {
        let api = Arc::new(Api::load(container_v1).expect("the GKE API description"));
        let sibling = |file: &str| {
            let path = container_v1.with_file_name(file);
            Arc::new(Api::load(&path).unwrap_or_else(|error| panic!("{error}")))
        };
        let (compute_api, secrets_api, artifacts_api) = (
            sibling("compute.v1.json"),
            sibling("secretmanager.v1.json"),
            sibling("artifactregistry.v1.json"),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a free port on 127.0.0.1");
        let address = listener.local_addr().expect("the port");
        let dir = tempfile::tempdir().expect("a directory for the key");
        let account =
            ServiceAccount::create(dir.path(), project, &format!("http://{address}/token"))
                .expect("a service-account key");
        let server = FakeGke {
            address,
            account,
            state: Arc::new(Mutex::new(GkeState {
                api,
                compute_api,
                secrets_api,
                artifacts_api,
                artifacts: ArtifactState::new(step),
                compute: ComputeState::new(step),
                secrets: SecretState::default(),
                clusters: BTreeMap::new(),
                operations: Vec::new(),
                step,
                fail_next: BTreeMap::new(),
                fail_operation: BTreeMap::new(),
                endpoint: "203.0.113.20".into(),
                ca: String::new(),
                log: Vec::new(),
                operation_polls: 0,
            })),
            shutdown: Arc::new(tokio::sync::Notify::new()),
            _dir: Arc::new(dir),
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
        server
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    pub fn stop(&self) {
        self.shutdown.notify_waiters();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, GkeState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The endpoint and CA (PEM) a created cluster reports.
    pub fn set_endpoint(&self, endpoint: &str, ca_pem: &str) {
        use base64::Engine as _;
        let mut state = self.lock();
        state.endpoint = endpoint.to_string();
        state.ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    }

    /// The next call of method `id` fails with `error`.
    pub fn fail_next(&self, id: &str, error: ApiError) {
        self.lock().fail_next.insert(id.to_string(), error);
    }

    /// The next operation of `kind` (CREATE_CLUSTER …) ends with an error.
    pub fn fail_operation(&self, kind: &str, message: &str) {
        self.lock()
            .fail_operation
            .insert(kind.to_string(), message.to_string());
    }

    /// A cluster as GET shows it.
    pub fn cluster(&self, path: &str) -> Option<Value> {
        let mut state = self.lock();
        state.reconcile();
        state.clusters.get(path).cloned()
    }

    /// Inserts a cluster as if made elsewhere (another location, say).
    pub fn insert_cluster(&self, path: &str, cluster: Value) {
        self.lock().clusters.insert(path.to_string(), cluster);
    }

    /// The method ids answered so far (every API).
    pub fn log(&self) -> Vec<String> {
        self.lock().log.clone()
    }

    /// The addresses Compute hands out: external, then internal ones.
    pub fn set_address_pools(&self, external: &[&str], internal: &[&str]) {
        let mut state = self.lock();
        state.compute.external_pool = external.iter().map(|a| a.to_string()).collect();
        state.compute.internal_pool = internal.iter().map(|a| a.to_string()).collect();
    }

    /// A Compute resource (`projects/P/zones/Z/instances/I`) as GET shows it.
    pub fn compute_resource(&self, path: &str) -> Option<Value> {
        let mut state = self.lock();
        state.compute.reconcile();
        state.compute.resources.get(path).cloned()
    }

    /// Inserts a Compute resource as if made elsewhere.
    pub fn insert_compute_resource(&self, path: &str, resource: Value) {
        self.lock()
            .compute
            .resources
            .insert(path.to_string(), resource);
    }

    /// The Compute operations started, `TYPE path` each.
    pub fn compute_operations(&self) -> Vec<String> {
        self.lock().compute.operation_log()
    }

    /// The next Compute operation of `kind` (`insert` …) ends with `code`.
    pub fn fail_compute_operation(&self, kind: &str, code: &str, message: &str) {
        self.lock()
            .compute
            .fail_operation
            .insert(kind.to_string(), (code.to_string(), message.to_string()));
    }

    /// A secret's latest payload (base64) and its IAM policy.
    pub fn secret(&self, name: &str) -> Option<(String, Value)> {
        let state = self.lock();
        let secret = state.secrets.secrets.get(name)?;
        Some((
            secret.versions.last().cloned().unwrap_or_default(),
            secret.policy.clone(),
        ))
    }

    /// An Artifact Registry repository (`projects/P/locations/L/
    /// repositories/R`).
    pub fn repository(&self, name: &str) -> Option<Value> {
        self.lock().artifacts.repositories.get(name).cloned()
    }

    /// A repository's IAM policy, as if granted elsewhere.
    pub fn set_repository_policy(&self, name: &str, policy: Value) {
        self.lock()
            .artifacts
            .policies
            .insert(name.to_string(), policy);
    }

    /// How many versions a secret has.
    pub fn secret_versions(&self, name: &str) -> usize {
        self.lock()
            .secrets
            .secrets
            .get(name)
            .map_or(0, |s| s.versions.len())
    }
}

impl GkeState {
    fn status_of(&self, operation: &Operation) -> &'static str {
        crate::operation_status(operation.started, self.step)
    }

    /// Applies what finished operations did.
    fn reconcile(&mut self) {
        let mut effects = Vec::new();
        for operation in &mut self.operations {
            let done = operation.started.elapsed() >= self.step * 3;
            if done && !operation.applied {
                operation.applied = true;
                effects.push((
                    operation.kind.clone(),
                    operation.target.clone(),
                    operation.error.is_some(),
                ));
            }
        }
        for (kind, target, failed) in effects {
            match (kind.as_str(), failed) {
                ("CREATE_CLUSTER", false) => {
                    let (endpoint, ca) = (self.endpoint.clone(), self.ca.clone());
                    if let Some(cluster) = self.clusters.get_mut(&target) {
                        cluster["status"] = "RUNNING".into();
                        cluster["endpoint"] = endpoint.into();
                        cluster["masterAuth"] = json!({"clusterCaCertificate": ca});
                        cluster["currentMasterVersion"] = "1.34.1-gke.1000".into();
                        let nodes: i64 = cluster["nodePools"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .map(|pool| pool["initialNodeCount"].as_i64().unwrap_or(0))
                            .sum();
                        cluster["currentNodeCount"] = nodes.into();
                        if let Some(pools) = cluster["nodePools"].as_array_mut() {
                            for pool in pools {
                                pool["status"] = "RUNNING".into();
                            }
                        }
                    }
                }
                ("CREATE_CLUSTER", true) => {
                    if let Some(cluster) = self.clusters.get_mut(&target) {
                        cluster["status"] = "ERROR".into();
                    }
                }
                ("DELETE_CLUSTER", false) => {
                    self.clusters.remove(&target);
                }
                _ => {}
            }
        }
    }

    fn operation_json(&self, operation: &Operation) -> Value {
        let status = self.status_of(operation);
        let mut value = json!({
            "name": operation.name,
            "zone": operation.location,
            "location": operation.location,
            "operationType": operation.kind,
            "status": status,
            "selfLink": format!("https://container.googleapis.com/v1/{}/operations/{}", location_path(&operation.target), operation.name),
            "targetLink": format!("https://container.googleapis.com/v1/{}", operation.target),
            "startTime": "2026-12-04T12:00:00Z",
        });
        let elapsed = operation.started.elapsed().as_secs_f64();
        let total = (self.step * 3).as_secs_f64().max(0.001);
        let percent = ((elapsed / total) * 100.0).min(100.0) as i64;
        let (first, second) = match operation.kind.as_str() {
            "CREATE_CLUSTER" => ("Creating control plane", "Creating node pools"),
            "DELETE_CLUSTER" => ("Deleting node pools", "Deleting control plane"),
            _ => ("Updating control plane", "Updating node pools"),
        };
        value["progress"] = json!({
            "status": status,
            "metrics": [{"name": "percent done", "intValue": percent.to_string()}],
            "stages": [
                {"name": first, "status": if percent < 50 { "RUNNING" } else { "DONE" }},
                {"name": second, "status": if percent < 50 { "PENDING" } else if status == "DONE" { "DONE" } else { "RUNNING" }}
            ]
        });
        if status == "DONE" {
            value["endTime"] = "2026-12-04T12:05:00Z".into();
            if let Some(message) = &operation.error {
                value["error"] = json!({"code": 13, "message": message});
                value["statusMessage"] = message.clone().into();
            }
        }
        value
    }
}

/// `projects/P/locations/L` of `projects/P/locations/L/clusters/C`.
fn location_path(target: &str) -> String {
    target
        .split("/clusters/")
        .next()
        .unwrap_or(target)
        .to_string()
}

fn answer(code: u16, body: Value) -> Response {
    (
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        [("content-type", "application/json; charset=UTF-8")],
        body.to_string(),
    )
        .into_response()
}

fn error(error: &ApiError) -> Response {
    answer(error.code, error.body())
}

async fn handle(
    State(server): State<FakeGke>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if uri.path() == "/token" && method == Method::POST {
        let token_uri = format!("http://{}/token", server.address);
        let (code, body) = server
            .account
            .token_response(&String::from_utf8_lossy(&body), &token_uri);
        return answer(code, body);
    }
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if !token.is_some_and(|t| server.account.accepts(t)) {
        return error(&ApiError::new(
            401,
            "UNAUTHENTICATED",
            "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.",
        ));
    }
    let query: Vec<(String, String)> = uri
        .query()
        .map(|q| {
            form_urlencoded::parse(q.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default();
    let json_body: Option<Value> = if body.is_empty() {
        None
    } else {
        match serde_json::from_slice(&body) {
            Ok(value) => Some(value),
            Err(_) => {
                return error(&ApiError::invalid("Invalid JSON payload received."));
            }
        }
    };
    let mut state = server.lock();
    state.reconcile();
    // One token, several APIs: the path says which one is called.
    let path = uri.path();
    let api = if path.starts_with("/compute/") {
        state.compute_api.clone()
    } else if path.starts_with("/v1/projects/") && path.contains("/secrets") {
        state.secrets_api.clone()
    } else if path.contains("/repositories") || path.contains("/operations/ar-") {
        state.artifacts_api.clone()
    } else {
        state.api.clone()
    };
    let call = match api.check(method.as_str(), path, &query, json_body.as_ref()) {
        Ok(call) => call,
        Err(refused) => return error(&refused),
    };
    state.log.push(call.id.clone());
    if let Some(injected) = state.fail_next.remove(&call.id) {
        return error(&injected);
    }
    if call.id.starts_with("compute.") {
        return match state.compute.answer(&call, json_body) {
            Ok(value) => answer(200, value),
            Err(refused) => error(&refused),
        };
    }
    if call.id.starts_with("artifactregistry.") {
        return match state.artifacts.answer(&call, &query, json_body) {
            Ok(value) => answer(200, value),
            Err(refused) => error(&refused),
        };
    }
    if call.id.starts_with("secretmanager.") {
        return match state.secrets.answer(&call, &query, json_body) {
            Ok(value) => answer(200, value),
            Err(refused) => error(&refused),
        };
    }
    let not_found = |name: &str| ApiError::new(404, "NOT_FOUND", format!("Not found: {name}."));
    match call.id.as_str() {
        "container.projects.locations.clusters.get" => {
            let name = &call.params["name"];
            match state.clusters.get(name) {
                Some(cluster) => answer(200, cluster.clone()),
                None => error(&not_found(name)),
            }
        }
        "container.projects.locations.clusters.list" => {
            let parent = &call.params["parent"];
            let any_location = parent.ends_with("/locations/-");
            let project = parent.split("/locations/").next().unwrap_or("");
            let clusters: Vec<Value> = state
                .clusters
                .iter()
                .filter(|(path, _)| {
                    if any_location {
                        path.starts_with(&format!("{project}/locations/"))
                    } else {
                        path.starts_with(&format!("{parent}/clusters/"))
                    }
                })
                .map(|(_, cluster)| cluster.clone())
                .collect();
            answer(200, json!({ "clusters": clusters }))
        }
        "container.projects.locations.clusters.create" => {
            let parent = call.params["parent"].clone();
            let mut cluster = json_body.unwrap_or_default()["cluster"].clone();
            let name = cluster["name"].as_str().unwrap_or_default().to_string();
            if name.is_empty() {
                return error(&ApiError::invalid("Cluster.name must be set."));
            }
            let path = format!("{parent}/clusters/{name}");
            if state.clusters.contains_key(&path) {
                return error(&ApiError::new(
                    409,
                    "ALREADY_EXISTS",
                    format!("Already exists: {path}."),
                ));
            }
            let location = parent.rsplit('/').next().unwrap_or_default().to_string();
            cluster["status"] = "PROVISIONING".into();
            cluster["location"] = location.clone().into();
            cluster["selfLink"] = format!("https://container.googleapis.com/v1/{path}").into();
            if let Some(pools) = cluster["nodePools"].as_array_mut() {
                for pool in pools {
                    pool["status"] = "PROVISIONING".into();
                }
            }
            state.clusters.insert(path.clone(), cluster);
            let operation = new_operation(&mut state, "CREATE_CLUSTER", &path, &location);
            answer(200, operation)
        }
        "container.projects.locations.clusters.delete" => {
            let name = call.params["name"].clone();
            let Some(cluster) = state.clusters.get_mut(&name) else {
                return error(&not_found(&name));
            };
            cluster["status"] = "STOPPING".into();
            let location = cluster["location"].as_str().unwrap_or_default().to_string();
            let operation = new_operation(&mut state, "DELETE_CLUSTER", &name, &location);
            answer(200, operation)
        }
        "container.projects.locations.clusters.nodePools.setAutoscaling" => {
            let name = call.params["name"].clone();
            let (cluster_path, pool) = name.split_once("/nodePools/").unwrap_or((&name, ""));
            let (cluster_path, pool) = (cluster_path.to_string(), pool.to_string());
            let autoscaling = json_body.unwrap_or_default()["autoscaling"].clone();
            let Some(cluster) = state.clusters.get_mut(&cluster_path) else {
                return error(&not_found(&cluster_path));
            };
            let Some(found) = cluster["nodePools"]
                .as_array_mut()
                .and_then(|pools| pools.iter_mut().find(|p| p["name"] == pool.as_str()))
            else {
                return error(&not_found(&name));
            };
            found["autoscaling"] = autoscaling;
            let location = cluster["location"].as_str().unwrap_or_default().to_string();
            let operation =
                new_operation(&mut state, "SET_NODE_POOL_SIZE", &cluster_path, &location);
            answer(200, operation)
        }
        "container.projects.locations.clusters.update" => {
            let name = call.params["name"].clone();
            let update = json_body.unwrap_or_default()["update"].clone();
            let Some(cluster) = state.clusters.get_mut(&name) else {
                return error(&not_found(&name));
            };
            if let Some(channel) = update["desiredGatewayApiConfig"]["channel"].as_str() {
                cluster["networkConfig"]["gatewayApiConfig"]["channel"] = channel.into();
            }
            if !update["desiredContainerdConfig"].is_null() {
                cluster["nodePoolDefaults"]["nodeConfigDefaults"]["containerdConfig"] =
                    update["desiredContainerdConfig"].clone();
            }
            let location = cluster["location"].as_str().unwrap_or_default().to_string();
            let operation = new_operation(&mut state, "UPDATE_CLUSTER", &name, &location);
            answer(200, operation)
        }
        "container.projects.locations.operations.get" => {
            state.operation_polls += 1;
            let name = &call.params["name"];
            let short = name.rsplit('/').next().unwrap_or_default();
            match state.operations.iter().find(|o| o.name == short) {
                Some(operation) => answer(200, state.operation_json(operation)),
                None => error(&not_found(name)),
            }
        }
        "container.projects.locations.operations.list" => {
            let parent = &call.params["parent"];
            let operations: Vec<Value> = state
                .operations
                .iter()
                .filter(|o| location_path(&o.target) == *parent || parent.ends_with("/locations/-"))
                .map(|o| state.operation_json(o))
                .collect();
            answer(200, json!({ "operations": operations }))
        }
        other => error(&ApiError::new(
            501,
            "UNIMPLEMENTED",
            format!("the fake does not implement {other}"),
        )),
    }
}

fn new_operation(state: &mut GkeState, kind: &str, target: &str, location: &str) -> Value {
    let name = format!(
        "operation-{}-{}",
        state.operations.len() + 1,
        kind.to_lowercase()
    );
    let operation = Operation {
        name,
        location: location.to_string(),
        kind: kind.to_string(),
        target: target.to_string(),
        started: Instant::now(),
        error: state.fail_operation.remove(kind),
        applied: false,
    };
    let value = state.operation_json(&operation);
    state.operations.push(operation);
    value
}
