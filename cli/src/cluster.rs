//! The cluster as bfctl sees it: a kube client, API discovery, and the few
//! operations the engine needs on untyped objects (server-side apply, get,
//! list by label, delete).
//!
//! Objects travel as `serde_json::Value` because bfctl's manifests mix
//! built-in kinds and custom resources whose types it does not compile in;
//! discovery maps each `apiVersion`/`kind` to its URL and scope.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::{ApiCapabilities, ApiResource, Discovery, Scope};
use serde_json::Value;
use tokio::sync::RwLock;

/// The field manager bfctl's server-side applies use.
pub const FIELD_MANAGER: &str = "bfctl";

/// The User-Agent of every request bfctl sends to the API server.
pub const USER_AGENT: &str = concat!("bfctl/", env!("CARGO_PKG_VERSION"));

/// One readable line for a failed API call: `HTTP 400 BadRequest: address
/// not allowed`, never a debug dump. A plain-text answer (`404 page not
/// found`, which a real API server sends for a resource type it does not
/// serve) is shown as its text.
pub fn readable(error: kube::Error) -> anyhow::Error {
    match error {
        kube::Error::Api(status) => {
            let reason = if status.reason == "Failed to parse error data" {
                ""
            } else {
                status.reason.as_str()
            };
            let message = status.message.trim();
            match (reason.is_empty(), message.is_empty()) {
                (true, true) => anyhow::anyhow!("HTTP {}", status.code),
                (true, false) => anyhow::anyhow!("HTTP {}: {message}", status.code),
                (false, true) => anyhow::anyhow!("HTTP {} {reason}", status.code),
                (false, false) => anyhow::anyhow!("HTTP {} {reason}: {message}", status.code),
            }
        }
        other => anyhow::anyhow!("{other}"),
    }
}

/// True for a 404: the object, or its whole resource type, is not there.
pub fn is_not_found(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 404)
}

/// Names one object: what the user sees in progress lines and errors.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct ObjectRef {
    pub api_version: String,
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
}

impl ObjectRef {
    /// Reads the reference out of a manifest.
    pub fn of(object: &Value) -> anyhow::Result<ObjectRef> {
        let text = |pointer: &str| object.pointer(pointer).and_then(Value::as_str);
        Ok(ObjectRef {
            api_version: text("/apiVersion")
                .context("object without apiVersion")?
                .to_string(),
            kind: text("/kind").context("object without kind")?.to_string(),
            namespace: text("/metadata/namespace").map(str::to_string),
            name: text("/metadata/name")
                .context("object without metadata.name")?
                .to_string(),
        })
    }

    pub fn group(&self) -> &str {
        self.api_version
            .split_once('/')
            .map_or("", |(group, _)| group)
    }

    fn gvk(&self) -> GroupVersionKind {
        let (group, version) = self
            .api_version
            .split_once('/')
            .unwrap_or(("", self.api_version.as_str()));
        GroupVersionKind::gvk(group, version, &self.kind)
    }

    /// The same object under another kind (a VirtualMachine's instance).
    pub fn with_kind(&self, kind: &str) -> ObjectRef {
        ObjectRef {
            kind: kind.to_string(),
            ..self.clone()
        }
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(namespace) => write!(f, "{} {namespace}/{}", self.kind, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}

/// What a server-side apply did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApplyOutcome {
    Created,
    Configured,
    Unchanged,
    /// Not this install's: used as it is (see [`crate::inventory`]).
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

/// A failed operation on one object. Conflicts are their own kind because
/// the user can resolve them with `--force`.
#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    #[error(
        "{object}: another field manager owns fields bfctl sets ({message}); rerun with --force to take ownership"
    )]
    Conflict { object: ObjectRef, message: String },
    #[error(
        "{object}: the cluster does not serve {kind} in {api_version} (is its operator installed?)"
    )]
    UnknownKind {
        object: ObjectRef,
        kind: String,
        api_version: String,
    },
    #[error("{object}: {source:#}")]
    Api {
        object: ObjectRef,
        #[source]
        source: anyhow::Error,
    },
}

/// A connected cluster.
#[derive(Clone)]
pub struct Cluster {
    client: kube::Client,
    /// The namespace objects without one go into.
    default_namespace: String,
    discovery: Arc<RwLock<Option<Discovery>>>,
    /// Only these API groups are discovered ("" is the core group): a real
    /// cluster serves dozens, and bfctl needs a handful.
    groups: Arc<Vec<String>>,
    verbose: bool,
}

impl Cluster {
    /// Connects with a kubeconfig file (or the usual `KUBECONFIG` lookup)
    /// and a context (empty: the current one).
    pub async fn connect(
        kubeconfig: Option<&Path>,
        context: &str,
        default_namespace: &str,
    ) -> anyhow::Result<Cluster> {
        crate::ensure_tls_provider();
        let options = kube::config::KubeConfigOptions {
            context: (!context.is_empty()).then(|| context.to_string()),
            ..Default::default()
        };
        let config = match kubeconfig {
            Some(path) => {
                let file = kube::config::Kubeconfig::read_from(path)
                    .with_context(|| format!("reading kubeconfig {}", path.display()))?;
                kube::Config::from_custom_kubeconfig(file, &options).await
            }
            None => kube::Config::from_kubeconfig(&options).await,
        }
        .context("loading the kubeconfig (set KUBECONFIG or --kubeconfig)")?;
        let mut config = config;
        // The API server's audit log and rate limits name clients by it.
        config.headers.push((
            http::header::USER_AGENT,
            http::HeaderValue::from_static(USER_AGENT),
        ));
        let client = kube::Client::try_from(config).context("building the Kubernetes client")?;
        Ok(Cluster {
            client,
            default_namespace: default_namespace.to_string(),
            discovery: Arc::new(RwLock::new(None)),
            groups: Arc::new(Vec::new()),
            verbose: false,
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

    /// Prints every API call on stderr (`-v`).
    pub fn verbose(mut self, verbose: bool) -> Cluster {
        self.verbose = verbose;
        self
    }

    pub fn default_namespace(&self) -> &str {
        &self.default_namespace
    }

    fn trace(&self, call: impl fmt::Display) {
        if self.verbose {
            eprintln!("  api: {call}");
        }
    }

    /// Runs discovery again: after CRDs become Established their kinds are
    /// served, and the cached discovery does not know them.
    pub async fn refresh_discovery(&self) -> anyhow::Result<()> {
        self.trace("discovery");
        let groups: Vec<&str> = self.groups.iter().map(String::as_str).collect();
        let mut discovery = Discovery::new(self.client.clone());
        if !groups.is_empty() {
            discovery = discovery.filter(&groups);
        }
        let discovery = discovery
            .run()
            .await
            .map_err(readable)
            .context("discovering the cluster's API resources")?;
        *self.discovery.write().await = Some(discovery);
        Ok(())
    }

    /// The URL and scope of an object's kind, discovering on first use.
    pub async fn resolve(
        &self,
        object: &ObjectRef,
    ) -> Result<(ApiResource, ApiCapabilities), ObjectError> {
        if self.discovery.read().await.is_none() {
            self.refresh_discovery()
                .await
                .map_err(|source| ObjectError::Api {
                    object: object.clone(),
                    source,
                })?;
        }
        let guard = self.discovery.read().await;
        guard
            .as_ref()
            .and_then(|discovery| discovery.resolve_gvk(&object.gvk()))
            .ok_or_else(|| ObjectError::UnknownKind {
                object: object.clone(),
                kind: object.kind.clone(),
                api_version: object.api_version.clone(),
            })
    }

    async fn api(&self, object: &ObjectRef) -> Result<Api<DynamicObject>, ObjectError> {
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

    /// Server-side apply as field manager `bfctl`; `before` is the object as
    /// read just before (None: absent). "Changed" is decided by content, not
    /// by resourceVersion: a real API server bumps a PersistentVolumeClaim's
    /// resourceVersion on its first no-op apply (it writes back the
    /// defaulted `status.phase`), and that is not a change.
    pub async fn apply(
        &self,
        manifest: &Value,
        force: bool,
        before: Option<&Value>,
    ) -> Result<ApplyOutcome, ObjectError> {
        let object = ObjectRef::of(manifest).map_err(|source| ObjectError::Api {
            object: unnamed(),
            source,
        })?;
        let api = self.api(&object).await?;
        let mut params = PatchParams::apply(FIELD_MANAGER);
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
                kube::Error::Api(status) if status.code == 409 => ObjectError::Conflict {
                    object: object.clone(),
                    message: status.message.clone(),
                },
                other => ObjectError::Api {
                    object: object.clone(),
                    source: readable(other),
                },
            })?;
        let after = serde_json::to_value(after).map_err(|source| ObjectError::Api {
            object: object.clone(),
            source: source.into(),
        })?;
        Ok(match before {
            None => ApplyOutcome::Created,
            Some(before) if content(before) == content(&after) => ApplyOutcome::Unchanged,
            Some(_) => ApplyOutcome::Configured,
        })
    }

    /// Reads an object; `None` if it does not exist (or its kind is not served).
    pub async fn get(&self, object: &ObjectRef) -> Result<Option<Value>, ObjectError> {
        let api = match self.api(object).await {
            Ok(api) => api,
            Err(ObjectError::UnknownKind { .. }) => return Ok(None),
            Err(other) => return Err(other),
        };
        self.trace(format_args!("GET {object}"));
        let found = api
            .get_opt(&object.name)
            .await
            .map_err(|source| ObjectError::Api {
                object: object.clone(),
                source: readable(source),
            })?;
        found
            .map(serde_json::to_value)
            .transpose()
            .map_err(|source| ObjectError::Api {
                object: object.clone(),
                source: source.into(),
            })
    }

    /// Sets a Deployment's replica count through its `scale` subresource
    /// (a merge patch of `spec.replicas` only, so no field manager takes
    /// over the rest of the object).
    pub async fn scale_deployment(
        &self,
        namespace: &str,
        name: &str,
        replicas: i32,
    ) -> anyhow::Result<()> {
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
        .map_err(readable)
        .with_context(|| format!("scaling Deployment {namespace}/{name} to {replicas}"))?;
        Ok(())
    }

    /// Lists objects of a kind carrying the labels in `selector` (empty: all),
    /// in every namespace (cluster-scoped kinds: all of them). A kind the
    /// server does not serve has none: neither one discovery does not know
    /// nor one whose CRD went away since (its LIST answers 404).
    pub async fn list(
        &self,
        api_version: &str,
        kind: &str,
        selector: &str,
    ) -> anyhow::Result<Vec<Value>> {
        let probe = ObjectRef {
            api_version: api_version.to_string(),
            kind: kind.to_string(),
            namespace: None,
            name: String::new(),
        };
        let (resource, _) = match self.resolve(&probe).await {
            Ok(found) => found,
            Err(ObjectError::UnknownKind { .. }) => {
                self.trace(format_args!("LIST {kind}: kind not served"));
                return Ok(Vec::new());
            }
            Err(other) => return Err(other.into()),
        };
        self.list_resource(&resource, selector).await
    }

    /// [`Cluster::list`] of a resource named directly (a CRD's kind, known
    /// from the CRD itself rather than from discovery).
    pub async fn list_resource(
        &self,
        resource: &ApiResource,
        selector: &str,
    ) -> anyhow::Result<Vec<Value>> {
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
                return Err(readable(error)).with_context(|| {
                    if selector.is_empty() {
                        format!("listing {}", resource.plural)
                    } else {
                        format!("listing {} with labels {selector}", resource.plural)
                    }
                });
            }
        };
        listed
            .items
            .into_iter()
            .map(|item| {
                let mut value = serde_json::to_value(item)?;
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
    pub async fn remove_finalizers(&self, object: &ObjectRef) -> Result<bool, ObjectError> {
        let api = match self.api(object).await {
            Ok(api) => api,
            Err(ObjectError::UnknownKind { .. }) => return Ok(false),
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
            Err(source) => Err(ObjectError::Api {
                object: object.clone(),
                source: readable(source),
            }),
        }
    }

    /// Deletes an object (foreground, so dependants go first). Returns
    /// whether it existed.
    pub async fn delete(&self, object: &ObjectRef) -> Result<bool, ObjectError> {
        let api = match self.api(object).await {
            Ok(api) => api,
            Err(ObjectError::UnknownKind { .. }) => return Ok(false),
            Err(other) => return Err(other),
        };
        self.trace(format_args!("DELETE {object}"));
        match api.delete(&object.name, &DeleteParams::foreground()).await {
            Ok(_) => Ok(true),
            Err(error) if is_not_found(&error) => Ok(false),
            Err(source) => Err(ObjectError::Api {
                object: object.clone(),
                source: readable(source),
            }),
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
    ) -> anyhow::Result<String> {
        let url = format!(
            "/api/v1/namespaces/{namespace}/pods/{pod}:{port}/proxy/{}",
            path.trim_start_matches('/')
        );
        self.trace(format_args!("GET {url}"));
        let request = http::Request::get(&url)
            .body(Vec::new())
            .with_context(|| format!("building GET {url}"))?;
        self.client
            .request_text(request)
            .await
            .map_err(readable)
            .with_context(|| format!("GET {url}"))
    }

    /// Fails unless the API server answers (used before long work starts).
    pub async fn check_reachable(&self) -> anyhow::Result<()> {
        self.trace("GET /version");
        let version = self
            .client
            .apiserver_version()
            .await
            .map_err(readable)
            .context("the Kubernetes API server did not answer")?;
        if version.major.is_empty() {
            bail!("the Kubernetes API server sent an empty version");
        }
        Ok(())
    }
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

fn unnamed() -> ObjectRef {
    ObjectRef {
        api_version: String::new(),
        kind: "object".to_string(),
        namespace: None,
        name: "(unnamed)".to_string(),
    }
}
