//! The cluster as the applier sees it: a kube client, API discovery, and
//! the few operations needed on untyped objects (server-side apply, get,
//! list by label, delete, finalizer removal).
//!
//! Objects travel as `serde_json::Value` because manifests mix built-in
//! kinds and custom resources whose types are not compiled in; discovery
//! maps each `apiVersion`/`kind` to its URL and scope, limited to the API
//! groups the caller names (a real cluster serves dozens).
//!
//! Every call can be traced (a callback the caller prints, `-v` in bfctl):
//! this crate prints nothing itself.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::discovery::{ApiCapabilities, ApiResource, Discovery, Scope};
use serde_json::Value;
use tokio::sync::RwLock;

use crate::error::{Error, Result, is_not_found};
use crate::identity::Identity;
pub use crate::object::ObjectRef;

/// What a server-side apply did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApplyOutcome {
    Created,
    Configured,
    Unchanged,
    /// Not this install's: used as it is (see [`crate::identity`]).
    #[serde(rename = "not-owned")]
    NotOwned,
}

impl ApplyOutcome {
    /// Whether the apply changed what the object says.
    pub fn changed(self) -> bool {
        matches!(self, ApplyOutcome::Created | ApplyOutcome::Configured)
    }

    /// The word a person reads.
    pub fn word(self) -> &'static str {
        match self {
            ApplyOutcome::Created => "created",
            ApplyOutcome::Configured => "configured",
            ApplyOutcome::Unchanged => "unchanged",
            ApplyOutcome::NotOwned => "used as it is (not this install's)",
        }
    }
}

/// Receives one line per API call (`-v`).
pub type Tracer = Arc<dyn Fn(&str) + Send + Sync>;

/// A connected cluster.
#[derive(Clone)]
pub struct Cluster {
    client: kube::Client,
    /// The namespace objects without one go into.
    default_namespace: String,
    discovery: Arc<RwLock<Option<Discovery>>>,
    /// Only these API groups are discovered ("" is the core group): a real
    /// cluster serves dozens, and an applier needs a handful.
    groups: Arc<Vec<String>>,
    identity: &'static Identity,
    tracer: Option<Tracer>,
}

impl Cluster {
    /// Connects with a kubeconfig file (or the usual `KUBECONFIG` lookup)
    /// and a context (empty: the current one).
    pub async fn connect(
        identity: &'static Identity,
        kubeconfig: Option<&Path>,
        context: &str,
        default_namespace: &str,
    ) -> Result<Cluster> {
        let config_error = |doing: &str, message: String| Error::Config {
            doing: doing.to_string(),
            message,
        };
        let options = kube::config::KubeConfigOptions {
            context: (!context.is_empty()).then(|| context.to_string()),
            ..Default::default()
        };
        let config = match kubeconfig {
            Some(path) => {
                let file = kube::config::Kubeconfig::read_from(path).map_err(|error| {
                    config_error(
                        &format!("reading kubeconfig {}", path.display()),
                        error.to_string(),
                    )
                })?;
                kube::Config::from_custom_kubeconfig(file, &options).await
            }
            None => kube::Config::from_kubeconfig(&options).await,
        }
        .map_err(|error| {
            config_error(
                "loading the kubeconfig (set KUBECONFIG or --kubeconfig)",
                error.to_string(),
            )
        })?;
        let mut config = config;
        // The API server's audit log and rate limits name clients by it.
        config.headers.push((
            http::header::USER_AGENT,
            http::HeaderValue::from_static(identity.user_agent),
        ));
        let client = kube::Client::try_from(config)
            .map_err(|error| config_error("building the Kubernetes client", error.to_string()))?;
        Ok(Cluster {
            client,
            default_namespace: default_namespace.to_string(),
            discovery: Arc::new(RwLock::new(None)),
            groups: Arc::new(Vec::new()),
            identity,
            tracer: None,
        })
    }

    /// Limits discovery to these API groups ("" is the core group).
    pub fn with_groups(mut self, groups: impl IntoIterator<Item = String>) -> Cluster {
        let mut groups: Vec<String> = groups.into_iter().collect();
        groups.sort();
        groups.dedup();
        self.groups = Arc::new(groups);
        self
    }

    /// Hands a line for every API call to `tracer` (`-v`).
    pub fn traced(mut self, tracer: Tracer) -> Cluster {
        self.tracer = Some(tracer);
        self
    }

    pub fn default_namespace(&self) -> &str {
        &self.default_namespace
    }

    /// Who applies (labels, field manager, names in messages).
    pub fn identity(&self) -> &'static Identity {
        self.identity
    }

    fn trace(&self, call: impl fmt::Display) {
        if let Some(tracer) = &self.tracer {
            tracer(&call.to_string());
        }
    }

    /// Runs discovery again: after CRDs become Established their kinds are
    /// served, and the cached discovery does not know them.
    pub async fn refresh_discovery(&self) -> Result<()> {
        self.trace("discovery");
        let groups: Vec<&str> = self.groups.iter().map(String::as_str).collect();
        let mut discovery = Discovery::new(self.client.clone());
        if !groups.is_empty() {
            discovery = discovery.filter(&groups);
        }
        let discovery = discovery
            .run()
            .await
            .map_err(|error| Error::api("discovering the cluster's API resources", &error))?;
        *self.discovery.write().await = Some(discovery);
        Ok(())
    }

    /// The URL and scope of an object's kind, discovering on first use.
    pub async fn resolve(&self, object: &ObjectRef) -> Result<(ApiResource, ApiCapabilities)> {
        if self.discovery.read().await.is_none() {
            self.refresh_discovery()
                .await
                .map_err(|error| Error::Object {
                    object: Box::new(object.clone()),
                    message: error.to_string(),
                })?;
        }
        let guard = self.discovery.read().await;
        guard
            .as_ref()
            .and_then(|discovery| discovery.resolve_gvk(&object.gvk()))
            .ok_or_else(|| Error::UnknownKind {
                object: Box::new(object.clone()),
                kind: object.kind.clone(),
                api_version: object.api_version.clone(),
            })
    }

    async fn api(&self, object: &ObjectRef) -> Result<Api<DynamicObject>> {
        let (resource, capabilities) = self.resolve(object).await?;
        Ok(match capabilities.scope {
            Scope::Cluster => Api::all_with(self.client.clone(), &resource),
            Scope::Namespaced => Api::namespaced_with(
                self.client.clone(),
                object
                    .namespace
                    .as_deref()
                    .unwrap_or(&self.default_namespace),
                &resource,
            ),
        })
    }

    /// Server-side apply as the identity's field manager; `before` is the object as
    /// read just before (None: absent). "Changed" is decided by content, not
    /// by resourceVersion: a real API server bumps a PersistentVolumeClaim's
    /// resourceVersion on its first no-op apply (it writes back the
    /// defaulted `status.phase`), and that is not a change.
    pub async fn apply(
        &self,
        manifest: &Value,
        force: bool,
        before: Option<&Value>,
    ) -> Result<ApplyOutcome> {
        let object = ObjectRef::of(manifest)?;
        let api = self.api(&object).await?;
        let mut params = PatchParams::apply(self.identity.manager);
        if force {
            params = params.force();
        }
        self.trace(format_args!(
            "PATCH (apply{}) {object}",
            if force { ", force" } else { "" }
        ));
        let after = api
            .patch(&object.name, &params, &Patch::Apply(manifest))
            .await
            .map_err(|error| match error {
                kube::Error::Api(status) if status.code == 409 => Error::Conflict {
                    object: Box::new(object.clone()),
                    manager: self.identity.manager.to_string(),
                    message: status.message.clone(),
                },
                other => Error::object(&object, &other),
            })?;
        let after = serde_json::to_value(after).map_err(|error| Error::Object {
            object: Box::new(object.clone()),
            message: error.to_string(),
        })?;
        Ok(match before {
            None => ApplyOutcome::Created,
            Some(before) if content(before) == content(&after) => ApplyOutcome::Unchanged,
            Some(_) => ApplyOutcome::Configured,
        })
    }

    /// Reads an object; `None` if it does not exist (or its kind is not served).
    pub async fn get(&self, object: &ObjectRef) -> Result<Option<Value>> {
        let api = match self.api(object).await {
            Ok(api) => api,
            Err(Error::UnknownKind { .. }) => return Ok(None),
            Err(other) => return Err(other),
        };
        self.trace(format_args!("GET {object}"));
        let found = api
            .get_opt(&object.name)
            .await
            .map_err(|error| Error::object(object, &error))?;
        found
            .map(serde_json::to_value)
            .transpose()
            .map_err(|error| Error::Object {
                object: Box::new(object.clone()),
                message: error.to_string(),
            })
    }

    /// Sets a Deployment's replica count through its `scale` subresource
    /// (a merge patch of `spec.replicas` only, so no field manager takes
    /// over the rest of the object).
    pub async fn scale_deployment(&self, namespace: &str, name: &str, replicas: i32) -> Result<()> {
        let api: Api<k8s_openapi::api::apps::v1::Deployment> =
            Api::namespaced(self.client.clone(), namespace);
        self.trace(format_args!(
            "PATCH Deployment {namespace}/{name}/scale replicas={replicas}"
        ));
        api.patch_scale(
            name,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"replicas": replicas}})),
        )
        .await
        .map_err(|error| {
            Error::api(
                format!("scaling Deployment {namespace}/{name} to {replicas}"),
                &error,
            )
        })?;
        Ok(())
    }

    /// Lists objects of a kind carrying the labels in `selector` (empty: all),
    /// in every namespace (cluster-scoped kinds: all of them). A kind the
    /// server does not serve has none: neither one discovery does not know
    /// nor one whose CRD went away since (its LIST answers 404).
    pub async fn list(&self, api_version: &str, kind: &str, selector: &str) -> Result<Vec<Value>> {
        let probe = ObjectRef {
            api_version: api_version.to_string(),
            kind: kind.to_string(),
            namespace: None,
            name: String::new(),
        };
        let (resource, _) = match self.resolve(&probe).await {
            Ok(found) => found,
            Err(Error::UnknownKind { .. }) => {
                self.trace(format_args!("LIST {kind}: kind not served"));
                return Ok(Vec::new());
            }
            Err(other) => return Err(other),
        };
        self.list_resource(&resource, selector).await
    }

    /// [`Cluster::list`] of a resource named directly (a CRD's kind, known
    /// from the CRD itself rather than from discovery).
    pub async fn list_resource(
        &self,
        resource: &ApiResource,
        selector: &str,
    ) -> Result<Vec<Value>> {
        let api: Api<DynamicObject> = Api::all_with(self.client.clone(), resource);
        self.trace(format_args!("LIST {} -l {selector}", resource.plural));
        let mut params = ListParams::default();
        if !selector.is_empty() {
            params = params.labels(selector);
        }
        let listed = match api.list(&params).await {
            Ok(listed) => listed,
            Err(error) if is_not_found(&error) => {
                self.trace(format_args!("LIST {}: not served (404)", resource.plural));
                return Ok(Vec::new());
            }
            Err(error) => {
                let doing = if selector.is_empty() {
                    format!("listing {}", resource.plural)
                } else {
                    format!("listing {} with labels {selector}", resource.plural)
                };
                return Err(Error::api(doing, &error));
            }
        };
        listed
            .items
            .into_iter()
            .map(|item| {
                let mut value = serde_json::to_value(item).map_err(|error| Error::Api {
                    doing: format!("reading the list of {}", resource.plural),
                    message: error.to_string(),
                })?;
                // List items may come without apiVersion/kind.
                if let Some(map) = value.as_object_mut() {
                    map.entry("apiVersion")
                        .or_insert_with(|| resource.api_version.clone().into());
                    map.entry("kind")
                        .or_insert_with(|| resource.kind.clone().into());
                }
                Ok(value)
            })
            .collect()
    }

    /// Removes every finalizer of an object (a JSON merge patch setting
    /// `metadata.finalizers` to null): the way out for an object whose
    /// controller is gone. Returns whether it existed.
    pub async fn remove_finalizers(&self, object: &ObjectRef) -> Result<bool> {
        let api = match self.api(object).await {
            Ok(api) => api,
            Err(Error::UnknownKind { .. }) => return Ok(false),
            Err(other) => return Err(other),
        };
        self.trace(format_args!("PATCH (merge) {object} finalizers=null"));
        match api
            .patch(
                &object.name,
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({"metadata": {"finalizers": null}})),
            )
            .await
        {
            Ok(_) => Ok(true),
            Err(error) if is_not_found(&error) => Ok(false),
            Err(error) => Err(Error::object(object, &error)),
        }
    }

    /// Deletes an object (foreground, so dependants go first). Returns
    /// whether it existed.
    pub async fn delete(&self, object: &ObjectRef) -> Result<bool> {
        let api = match self.api(object).await {
            Ok(api) => api,
            Err(Error::UnknownKind { .. }) => return Ok(false),
            Err(other) => return Err(other),
        };
        self.trace(format_args!("DELETE {object}"));
        match api.delete(&object.name, &DeleteParams::foreground()).await {
            Ok(_) => Ok(true),
            Err(error) if is_not_found(&error) => Ok(false),
            Err(error) => Err(Error::object(object, &error)),
        }
    }

    /// GETs `path` from a pod's port through the API server's proxy (how
    /// `status` reads the consumers' metrics without reaching the pods).
    pub async fn pod_proxy_get(
        &self,
        namespace: &str,
        pod: &str,
        port: u16,
        path: &str,
    ) -> Result<String> {
        let url = format!(
            "/api/v1/namespaces/{namespace}/pods/{pod}:{port}/proxy/{}",
            path.trim_start_matches('/')
        );
        self.trace(format_args!("GET {url}"));
        let request = http::Request::get(&url)
            .body(Vec::new())
            .map_err(|error| Error::Api {
                doing: format!("building GET {url}"),
                message: error.to_string(),
            })?;
        self.client
            .request_text(request)
            .await
            .map_err(|error| Error::api(format!("GET {url}"), &error))
    }

    /// PUTs `body` to a subresource the discovery of kinds does not cover,
    /// given by its whole path: KubeVirt's
    /// `/apis/subresources.kubevirt.io/v1/namespaces/NS/virtualmachines/NAME/restart`
    /// (doc: KubeVirt API reference, `v1.RestartOptions`). Returns the
    /// answer's text.
    pub async fn put_subresource(&self, path: &str, body: &Value) -> Result<String> {
        self.trace(format_args!("PUT {path}"));
        let request = http::Request::put(path)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(body.to_string().into_bytes())
            .map_err(|error| Error::Api {
                doing: format!("building PUT {path}"),
                message: error.to_string(),
            })?;
        self.client
            .request_text(request)
            .await
            .map_err(|error| Error::api(format!("PUT {path}"), &error))
    }

    /// The pods a Deployment selects (its `spec.selector.matchLabels`), in
    /// its namespace, sorted by name. Says which Deployment is missing or
    /// has no selector.
    pub async fn pods_of(&self, deployment: &ObjectRef) -> Result<Vec<Value>> {
        let failed = |message: String| Error::Object {
            object: Box::new(deployment.clone()),
            message,
        };
        let live = self
            .get(deployment)
            .await?
            .ok_or_else(|| failed("does not exist".into()))?;
        let labels = live
            .pointer("/spec/selector/matchLabels")
            .and_then(Value::as_object)
            .filter(|labels| !labels.is_empty())
            .ok_or_else(|| failed("has no spec.selector.matchLabels".into()))?;
        let selector = labels
            .iter()
            .map(|(key, value)| format!("{key}={}", value.as_str().unwrap_or_default()))
            .collect::<Vec<_>>()
            .join(",");
        let namespace = deployment.namespace.clone().unwrap_or_default();
        let mut pods: Vec<Value> = self
            .list("v1", "Pod", &selector)
            .await?
            .into_iter()
            .filter(|pod| {
                pod.pointer("/metadata/namespace").and_then(Value::as_str)
                    == Some(namespace.as_str())
            })
            .collect();
        pods.sort_by_key(|pod| {
            pod.pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        });
        Ok(pods)
    }

    /// Opens a port-forward to `port` of a pod through the API server (the
    /// `portforward` subresource over WebSocket): one TCP connection's worth
    /// of bytes to and from that port.
    pub async fn port_forward(&self, namespace: &str, pod: &str, port: u16) -> Result<PortForward> {
        self.trace(format_args!("PORTFORWARD {namespace}/{pod}:{port}"));
        let pods: Api<k8s_openapi::api::core::v1::Pod> =
            Api::namespaced(self.client.clone(), namespace);
        let doing = || format!("port-forwarding to {namespace}/{pod}:{port}");
        let mut forwarder = pods
            .portforward(pod, &[port])
            .await
            .map_err(|error| Error::api(doing(), &error))?;
        let stream = forwarder.take_stream(port).ok_or_else(|| Error::Api {
            doing: doing(),
            message: "the API server opened no stream for the port".into(),
        })?;
        Ok(PortForward {
            stream,
            _forwarder: forwarder,
        })
    }

    /// Fails unless the API server answers (used before long work starts).
    pub async fn check_reachable(&self) -> Result<()> {
        self.trace("GET /version");
        let version = self
            .client
            .apiserver_version()
            .await
            .map_err(|error| Error::api("the Kubernetes API server did not answer", &error))?;
        if version.major.is_empty() {
            return Err(Error::Api {
                doing: "reading the Kubernetes API server's version".into(),
                message: "it sent an empty version".into(),
            });
        }
        Ok(())
    }
}

/// An open port-forward: `stream` carries the bytes; the forwarder that
/// moves them over the WebSocket lives as long as this does.
pub struct PortForward {
    pub stream: tokio::io::DuplexStream,
    _forwarder: kube::api::Portforwarder,
}

/// What an object says, without what the server changes on its own: the
/// resourceVersion and the managedFields bookkeeping, and the status
/// (controllers write it; an apply never does).
pub fn content(object: &Value) -> Value {
    let mut copy = object.clone();
    if let Some(map) = copy.as_object_mut() {
        map.remove("status");
    }
    if let Some(metadata) = copy.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata.remove("resourceVersion");
        metadata.remove("managedFields");
    }
    copy
}

/// Fills in the default namespace for namespaced objects rendered without one.
pub fn with_namespace(object: ObjectRef, cluster: &Cluster) -> ObjectRef {
    if object.namespace.is_none() && !is_cluster_scoped(&object) {
        ObjectRef {
            namespace: Some(cluster.default_namespace().to_string()),
            ..object
        }
    } else {
        object
    }
}

/// Kinds that live outside namespaces (of those an applier renders).
pub fn is_cluster_scoped(object: &ObjectRef) -> bool {
    matches!(
        (object.group(), object.kind.as_str()),
        ("", "Namespace" | "PersistentVolume")
            | ("apiextensions.k8s.io", "CustomResourceDefinition")
            | (
                "rbac.authorization.k8s.io",
                "ClusterRole" | "ClusterRoleBinding"
            )
            | ("admissionregistration.k8s.io", _)
            | ("scheduling.k8s.io", "PriorityClass")
            | ("gateway.networking.k8s.io", "GatewayClass")
            | ("networking.k8s.io", "IngressClass")
    )
}
