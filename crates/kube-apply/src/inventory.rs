//! What an install owns in a cluster, found from the cluster alone.
//!
//! **An install** is one target of the applying tool: a name. Every object
//! applied for it carries the tool's `managed-by` label and the install
//! label (see [`crate::identity`]). Those labels are the inventory: listing
//! them across the kinds the tool ever applies finds what the install owns,
//! so prune and teardown work from the cluster alone (no plan, no operator
//! files) and never reach another install's objects.
//!
//! Objects with an owner reference are never counted: controllers copy
//! labels onto what they create (Strimzi copies the `Kafka` labels onto its
//! Services and pods), and those belong to the controller.
//!
//! What an install *uses* but does not own (a CRD another team installed,
//! another install's operator) is written down in a record ConfigMap
//! ([`record`]), so that its teardown can say what it keeps and why.
//!
//! [`why_keep`] holds the rules that keep a prune or a teardown from
//! reaching what others still use.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::client::{Cluster, ObjectRef};
use crate::error::{Error, Result};
use crate::identity::{Identity, Owner, served_versions};

/// The record's key holding the JSON list of [`UsedObject`]s.
pub const RECORD_KEY: &str = "uses.json";

/// An object an install uses as it is, and why it is not its own.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UsedObject {
    pub object: String,
    pub reason: String,
}

/// The record's manifest (its labels are added by the caller).
pub fn record(identity: &Identity, namespace: &str, install: &str, uses: &[UsedObject]) -> Value {
    let uses = serde_json::to_string_pretty(uses).unwrap_or_else(|_| "[]".into());
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": identity.record_name, "namespace": namespace},
        "data": {"install": install, RECORD_KEY: uses}
    })
}

/// The objects a record lists (none when it cannot be read).
pub fn recorded_uses(record: &Value) -> Vec<UsedObject> {
    record
        .pointer("/data")
        .and_then(|data| data.get(RECORD_KEY))
        .and_then(Value::as_str)
        .and_then(|text| serde_json::from_str(text).ok())
        .unwrap_or_default()
}

/// An object carrying the tool's labels, as listed.
#[derive(Debug, Clone)]
pub struct Owned {
    pub object: ObjectRef,
    pub live: Value,
    identity: &'static Identity,
}

impl Owned {
    /// Created by a controller (it has an owner), not by the tool.
    pub fn has_owner(&self) -> bool {
        self.live
            .pointer("/metadata/ownerReferences")
            .and_then(Value::as_array)
            .is_some_and(|owners| !owners.is_empty())
    }

    pub fn terminating(&self) -> bool {
        self.live.pointer("/metadata/deletionTimestamp").is_some()
    }

    /// The install label ("" when missing).
    pub fn install(&self) -> &str {
        self.identity.install_of(&self.live)
    }

    /// The step (component or operator bundle) it was applied by.
    pub fn component(&self) -> &str {
        self.identity.component_of(&self.live)
    }
}

/// Every object in the cluster that carries the tool's labels (all
/// installs) and that the tool itself applied (no owner references).
pub async fn scan(cluster: &Cluster) -> Result<Vec<Owned>> {
    list_with(cluster, &cluster.identity().any_install_selector()).await
}

/// One install's objects.
pub async fn list(cluster: &Cluster, install: &str) -> Result<Vec<Owned>> {
    list_with(cluster, &cluster.identity().selector(install)).await
}

async fn list_with(cluster: &Cluster, selector: &str) -> Result<Vec<Owned>> {
    let identity = cluster.identity();
    let mut found = Vec::new();
    for (api_version, kind) in identity.kinds {
        for live in cluster.list(api_version, kind, selector).await? {
            let mut object = ObjectRef::of(&live)?;
            // The version asked for is the one the tool addresses it by.
            object.api_version = api_version.to_string();
            object.kind = kind.to_string();
            let owned = Owned {
                object,
                live,
                identity,
            };
            if !owned.has_owner() {
                found.push(owned);
            }
        }
    }
    Ok(found)
}

/// Other installs found in a scan: name → (objects, namespaces).
pub fn other_installs(
    scanned: &[Owned],
    install: &str,
) -> BTreeMap<String, (usize, BTreeSet<String>)> {
    let mut others: BTreeMap<String, (usize, BTreeSet<String>)> = BTreeMap::new();
    for owned in scanned.iter().filter(|o| o.install() != install) {
        let entry = others.entry(owned.install().to_string()).or_default();
        entry.0 += 1;
        if let Some(namespace) = &owned.object.namespace {
            entry.1.insert(namespace.clone());
        } else if owned.object.kind == "Namespace" {
            entry.1.insert(owned.object.name.clone());
        }
    }
    others
}

/// Why an object of this install must not be deleted now, if it must not:
/// the rules that keep a teardown (or a prune) from reaching what others
/// still use.
pub async fn why_keep(
    cluster: &Cluster,
    object: &ObjectRef,
    live: &Value,
    install: &str,
) -> Result<Option<String>> {
    let identity = cluster.identity();
    match (object.group(), object.kind.as_str()) {
        ("apiextensions.k8s.io", "CustomResourceDefinition") => {
            let resources = custom_resources_of(cluster, live).await?;
            if resources.is_empty() {
                return Ok(None);
            }
            Ok(Some(format!(
                "{} custom resource(s) of it still exist ({}); a CRD is never deleted while any of its resources exists",
                resources.len(),
                sample(&resources)
            )))
        }
        ("rbac.authorization.k8s.io", "ClusterRole") => {
            let mut users = Vec::new();
            for (api_version, kind) in [
                ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
                ("rbac.authorization.k8s.io/v1", "RoleBinding"),
            ] {
                for binding in cluster.list(api_version, kind, "").await? {
                    let role = binding.pointer("/roleRef/name").and_then(Value::as_str);
                    let role_kind = binding.pointer("/roleRef/kind").and_then(Value::as_str);
                    if role == Some(object.name.as_str())
                        && role_kind == Some("ClusterRole")
                        && identity.owner(&binding, install) != Owner::ThisInstall
                    {
                        users.push(format!(
                            "{kind} {} ({})",
                            name_of(&binding),
                            identity.describe(&identity.owner(&binding, install))
                        ));
                    }
                }
            }
            Ok((!users.is_empty()).then(|| {
                format!(
                    "still bound by {} that {} not this install's",
                    sample(&users),
                    if users.len() == 1 { "is" } else { "are" }
                )
            }))
        }
        _ => Ok(None),
    }
}

/// Custom resources of a CRD, anywhere in the cluster, read through the
/// resource the CRD itself defines (not through discovery, which may be
/// stale or filtered). A CRD that no longer serves answers 404: none.
async fn custom_resources_of(cluster: &Cluster, crd: &Value) -> Result<Vec<String>> {
    let text = |pointer: &str| crd.pointer(pointer).and_then(Value::as_str).unwrap_or("");
    let group = text("/spec/group");
    let plural = text("/spec/names/plural");
    let kind = text("/spec/names/kind");
    let Some(version) = served_versions(crd).into_iter().next() else {
        return Ok(Vec::new());
    };
    let resource = kube::discovery::ApiResource {
        group: group.to_string(),
        version: version.clone(),
        api_version: format!("{group}/{version}"),
        kind: kind.to_string(),
        plural: plural.to_string(),
    };
    Ok(cluster
        .list_resource(&resource, "")
        .await?
        .iter()
        .map(|item| format!("{kind} {}", name_of(item)))
        .collect())
}

pub fn name_of(object: &Value) -> String {
    let text = |pointer: &str| object.pointer(pointer).and_then(Value::as_str);
    match (text("/metadata/namespace"), text("/metadata/name")) {
        (Some(namespace), Some(name)) => format!("{namespace}/{name}"),
        (None, Some(name)) => name.to_string(),
        _ => "(unnamed)".to_string(),
    }
}

pub fn sample(items: &[String]) -> String {
    let mut shown: Vec<&str> = items.iter().take(3).map(String::as_str).collect();
    let more = items.len().saturating_sub(shown.len());
    let more_text = format!("and {more} more");
    if more > 0 {
        shown.push(&more_text);
    }
    shown.join(", ")
}

/// Fails unless `object` exists and is this install's: the check before
/// the tool changes an object outside an apply (scaling a Deployment).
/// `how_to_create` completes "does not exist: ..." (e.g. "run `bfctl up`
/// first").
pub async fn ensure_owned(
    cluster: &Cluster,
    object: &ObjectRef,
    install: &str,
    how_to_create: &str,
) -> Result<()> {
    let identity = cluster.identity();
    let Some(live) = cluster.get(object).await? else {
        return Err(Error::NotOwned(format!(
            "{object} does not exist: {how_to_create}"
        )));
    };
    match identity.owner(&live, install) {
        Owner::ThisInstall => Ok(()),
        other => Err(Error::NotOwned(format!(
            "{object} is not this install's ({}); {} will not change it",
            identity.describe(&other),
            identity.manager
        ))),
    }
}

/// Identity regardless of API version (an object keeps its identity when its
/// kind moves to a newer version).
pub fn key(object: &ObjectRef) -> (String, String, Option<String>, String) {
    (
        object.group().to_string(),
        object.kind.clone(),
        object.namespace.clone(),
        object.name.clone(),
    )
}
