//! What an install owns in a cluster, and what bfctl may change or delete.
//!
//! **An install** is one `bfctl up` target: a name (`install:` in
//! bfctl.yaml, by default the namespace). Every object bfctl applies carries
//! `app.kubernetes.io/managed-by=bfctl` and `bfctl.io/install=<name>`,
//! cluster-scoped ones included (see [`crate::render`]). Those labels are the
//! inventory: listing them across the kinds bfctl ever applies finds what
//! the install owns, so prune and teardown work from the cluster alone
//! (no plan, no operator files) and never reach another install's objects.
//!
//! **Ownership** of an object bfctl is about to apply ([`owner`]):
//! * this install's (its label): applied; skipped when it already says
//!   exactly what bfctl would apply ([`APPLIED_ANNOTATION`]);
//! * another install's, or not bfctl's at all (it existed before): never
//!   taken silently. If it already holds what bfctl renders, it is used as
//!   it is and never deleted; a CRD is used when it serves the versions bfctl
//!   needs. Anything else is an error that says whose it is; `--force` then
//!   takes the fields bfctl sets but leaves the object unlabelled, so a
//!   teardown never deletes it.
//!
//! Objects with an owner reference are never pruned: controllers copy labels
//! onto what they create (Strimzi copies the `Kafka` labels onto its Services
//! and pods), and those belong to the controller, not to bfctl.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::cluster::{Cluster, ObjectRef};
/// The labels every object bfctl applies carries (added by
/// [`crate::render`]).
pub const COMPONENT_LABEL: &str = "bfctl.io/component";
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
pub const PART_OF_LABEL: &str = "app.kubernetes.io/part-of";
/// The install an object belongs to.
pub const INSTALL_LABEL: &str = "bfctl.io/install";

/// A digest of the manifest bfctl last applied to an object. When the live
/// object carries the digest of the manifest about to be applied and still
/// holds all of it, the apply is skipped: nothing would change.
pub const APPLIED_ANNOTATION: &str = "bfctl.io/applied";

/// Labels every bfctl object carries: an object whose install label is
/// missing was not applied by an install bfctl knows.
pub fn any_install_selector() -> String {
    format!("{MANAGED_BY_LABEL}=bfctl")
}

/// The label selector of one install's inventory.
pub fn selector(install: &str) -> String {
    format!("{MANAGED_BY_LABEL}=bfctl,{INSTALL_LABEL}={install}")
}

/// Every kind bfctl renders or installs, in apply order of their category:
/// the kinds a prune or a leftover search looks through.
pub const KINDS: &[(&str, &str)] = &[
    ("v1", "Namespace"),
    ("apiextensions.k8s.io/v1", "CustomResourceDefinition"),
    ("rbac.authorization.k8s.io/v1", "ClusterRole"),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
    ("rbac.authorization.k8s.io/v1", "Role"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"),
    (
        "admissionregistration.k8s.io/v1",
        "ValidatingWebhookConfiguration",
    ),
    (
        "admissionregistration.k8s.io/v1",
        "MutatingWebhookConfiguration",
    ),
    ("scheduling.k8s.io/v1", "PriorityClass"),
    ("networking.k8s.io/v1", "IngressClass"),
    ("v1", "ServiceAccount"),
    ("v1", "ConfigMap"),
    ("v1", "Secret"),
    ("v1", "Service"),
    ("v1", "PersistentVolumeClaim"),
    ("apps/v1", "Deployment"),
    ("apps/v1", "DaemonSet"),
    ("apps/v1", "StatefulSet"),
    ("batch/v1", "Job"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"),
    ("policy/v1", "PodDisruptionBudget"),
    ("networking.k8s.io/v1", "NetworkPolicy"),
    ("networking.k8s.io/v1", "Ingress"),
    ("gateway.networking.k8s.io/v1", "Gateway"),
    ("gateway.networking.k8s.io/v1", "HTTPRoute"),
    ("kafka.strimzi.io/v1", "Kafka"),
    ("kafka.strimzi.io/v1", "KafkaNodePool"),
    ("kafka.strimzi.io/v1", "KafkaTopic"),
    ("kubevirt.io/v1", "KubeVirt"),
    ("kubevirt.io/v1", "VirtualMachine"),
];

/// The ConfigMap in which an install records the objects it uses but does
/// not own (pre-existing CRDs, another install's operator), so that its
/// teardown can say it keeps them and why, from the cluster alone.
pub const RECORD_NAME: &str = "bfctl-install";
/// The `bfctl.io/component` of the record.
pub const RECORD_COMPONENT: &str = "inventory";
/// The record's key holding the JSON list of [`UsedObject`]s.
pub const RECORD_KEY: &str = "uses.json";

/// An object an install uses as it is, and why it is not its own.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UsedObject {
    pub object: String,
    pub reason: String,
}

/// The record's manifest (its labels are added by the caller).
pub fn record(namespace: &str, install: &str, uses: &[UsedObject]) -> Value {
    let uses = serde_json::to_string_pretty(uses).unwrap_or_else(|_| "[]".into());
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": RECORD_NAME, "namespace": namespace},
        "data": {"install": install, RECORD_KEY: uses}
    })
}

/// The objects a record lists (none when it cannot be read).
pub fn recorded_uses(record: &Value) -> Vec<UsedObject> {
    record
        .pointer(&format!(
            "/data/{}",
            RECORD_KEY.replace('~', "~0").replace('/', "~1")
        ))
        .and_then(Value::as_str)
        .and_then(|text| serde_json::from_str(text).ok())
        .unwrap_or_default()
}

/// Whose an object is, from the point of view of one install.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    ThisInstall,
    /// Applied by another bfctl install (its name; empty for a bfctl from
    /// before installs had names).
    OtherInstall(String),
    /// Not applied by bfctl: it existed before, or another tool made it.
    NotBfctl,
}

impl Owner {
    /// For messages: "bfctl install 'bf2'", "not made by bfctl".
    pub fn describe(&self) -> String {
        match self {
            Owner::ThisInstall => "this install's".into(),
            Owner::OtherInstall(name) if name.is_empty() => {
                "applied by an older bfctl, with no install label".into()
            }
            Owner::OtherInstall(name) => format!("bfctl install '{name}'"),
            Owner::NotBfctl => "not made by bfctl: it existed before".into(),
        }
    }
}

fn label<'a>(live: &'a Value, key: &str) -> Option<&'a str> {
    live.pointer("/metadata/labels")
        .and_then(|labels| labels.get(key))
        .and_then(Value::as_str)
}

/// Whose `live` is.
pub fn owner(live: &Value, install: &str) -> Owner {
    if label(live, MANAGED_BY_LABEL) != Some("bfctl") {
        return Owner::NotBfctl;
    }
    match label(live, INSTALL_LABEL) {
        Some(name) if name == install => Owner::ThisInstall,
        Some(name) => Owner::OtherInstall(name.to_string()),
        None => Owner::OtherInstall(String::new()),
    }
}

/// The digest [`APPLIED_ANNOTATION`] holds for a manifest (its canonical
/// JSON: serde_json keeps map keys sorted).
pub fn manifest_digest(manifest: &Value) -> String {
    let digest = Sha256::digest(manifest.to_string().as_bytes());
    digest.iter().take(12).map(|b| format!("{b:02x}")).collect()
}

/// The manifest with its digest recorded in [`APPLIED_ANNOTATION`].
pub fn with_digest(manifest: &Value) -> Value {
    let digest = manifest_digest(manifest);
    let mut annotated = manifest.clone();
    if let Some(metadata) = annotated.get_mut("metadata").and_then(Value::as_object_mut) {
        let annotations = metadata
            .entry("annotations")
            .or_insert_with(|| Value::Object(Default::default()));
        if !annotations.is_object() {
            *annotations = Value::Object(Default::default());
        }
        annotations[APPLIED_ANNOTATION] = digest.into();
    }
    annotated
}

/// The manifest without bfctl's labels and annotation: what bfctl applies
/// to an object that is not this install's (`--force`), so that it never
/// becomes part of the inventory.
pub fn without_bfctl_marks(manifest: &Value) -> Value {
    let mut copy = manifest.clone();
    if let Some(labels) = copy
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        for key in [
            MANAGED_BY_LABEL,
            PART_OF_LABEL,
            COMPONENT_LABEL,
            INSTALL_LABEL,
        ] {
            labels.remove(key);
        }
    }
    if let Some(annotations) = copy
        .pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)
    {
        annotations.remove(APPLIED_ANNOTATION);
    }
    copy
}

/// What decides whether an object that is not this install's already
/// holds what bfctl renders: everything but labels and annotations (those
/// say who made it, not what it does).
pub fn without_metadata_marks(manifest: &Value) -> Value {
    let mut copy = manifest.clone();
    if let Some(metadata) = copy.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata.remove("labels");
        metadata.remove("annotations");
    }
    copy
}

/// Where `live` does not hold what `wanted` says, as a field path; `None`
/// when every field of `wanted` is in `live` with the same value. An empty
/// map in `wanted` matches a missing one (the API server drops empty maps,
/// e.g. `properties: {}` in Strimzi's kafkas CRD); numbers compare by value.
pub fn first_difference(wanted: &Value, live: &Value) -> Option<String> {
    fn walk(wanted: &Value, live: Option<&Value>, path: &mut String) -> bool {
        match (wanted, live) {
            (Value::Object(map), None) if map.is_empty() => true,
            (Value::Object(map), Some(Value::Object(live))) => map.iter().all(|(key, value)| {
                let length = path.len();
                path.push('.');
                path.push_str(key);
                let same = walk(value, live.get(key), path);
                if same {
                    path.truncate(length);
                }
                same
            }),
            (Value::Array(items), Some(Value::Array(live))) => {
                if items.len() != live.len() {
                    return false;
                }
                items.iter().zip(live).enumerate().all(|(index, (a, b))| {
                    let length = path.len();
                    path.push_str(&format!("[{index}]"));
                    let same = walk(a, Some(b), path);
                    if same {
                        path.truncate(length);
                    }
                    same
                })
            }
            (Value::Number(a), Some(Value::Number(b))) => a.as_f64() == b.as_f64(),
            (wanted, Some(live)) => wanted == live,
            (_, None) => false,
        }
    }
    let mut path = String::new();
    (!walk(wanted, Some(live), &mut path)).then(|| if path.is_empty() { ".".into() } else { path })
}

/// The versions a CRD serves.
pub fn served_versions(crd: &Value) -> Vec<String> {
    crd.pointer("/spec/versions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|version| version.get("served").and_then(Value::as_bool) == Some(true))
        .filter_map(|version| version.get("name").and_then(Value::as_str))
        .map(str::to_string)
        .collect()
}

/// Whether a CRD that is not this install's serves every version the
/// manifest bfctl would apply serves: then it is used as it is. The error
/// names the versions.
pub fn crd_compatible(object: &ObjectRef, manifest: &Value, live: &Value) -> Result<(), String> {
    let needed = served_versions(manifest);
    let served = served_versions(live);
    let missing: Vec<&String> = needed.iter().filter(|v| !served.contains(v)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(format!(
        "{object} exists and is not this install's ({}); it serves {}, and bfctl needs {} ({} missing). Upgrade it to a release that serves {}, or remove it if nothing uses it; bfctl will not replace it",
        owner(live, "").describe(),
        list_or_none(&served),
        needed.join(", "),
        missing
            .iter()
            .map(|v| v.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        needed.join(", ")
    ))
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "no version".into()
    } else {
        items.join(", ")
    }
}

/// An object carrying bfctl's labels, as listed.
#[derive(Debug, Clone)]
pub struct Owned {
    pub object: ObjectRef,
    pub live: Value,
}

impl Owned {
    /// Created by a controller (it has an owner), not by bfctl.
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
        label(&self.live, INSTALL_LABEL).unwrap_or("")
    }

    /// The step (component or operator bundle) it was applied by.
    pub fn component(&self) -> &str {
        label(&self.live, COMPONENT_LABEL).unwrap_or("")
    }
}

/// Every object in the cluster that carries bfctl's labels (all installs)
/// and that bfctl itself applied (no owner references).
pub async fn scan(cluster: &Cluster) -> anyhow::Result<Vec<Owned>> {
    list_with(cluster, &any_install_selector()).await
}

/// One install's objects.
pub async fn list(cluster: &Cluster, install: &str) -> anyhow::Result<Vec<Owned>> {
    list_with(cluster, &selector(install)).await
}

async fn list_with(cluster: &Cluster, selector: &str) -> anyhow::Result<Vec<Owned>> {
    let mut found = Vec::new();
    for (api_version, kind) in KINDS {
        for live in cluster.list(api_version, kind, selector).await? {
            let mut object = ObjectRef::of(&live)?;
            // The version asked for is the one bfctl addresses it by.
            object.api_version = api_version.to_string();
            object.kind = kind.to_string();
            let owned = Owned { object, live };
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
) -> anyhow::Result<Option<String>> {
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
                        && owner(&binding, install) != Owner::ThisInstall
                    {
                        users.push(format!(
                            "{kind} {} ({})",
                            name_of(&binding),
                            owner(&binding, install).describe()
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
async fn custom_resources_of(cluster: &Cluster, crd: &Value) -> anyhow::Result<Vec<String>> {
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
/// bfctl changes an object outside `up` (scaling the consumers).
pub async fn ensure_owned(
    cluster: &Cluster,
    object: &ObjectRef,
    install: &str,
) -> anyhow::Result<()> {
    let Some(live) = cluster.get(object).await? else {
        anyhow::bail!("{object} does not exist: run `bfctl up` first");
    };
    match owner(&live, install) {
        Owner::ThisInstall => Ok(()),
        other => anyhow::bail!(
            "{object} is not this install's ({}); bfctl will not change it",
            other.describe()
        ),
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ownership_follows_the_install_label() {
        let ours = json!({"metadata": {"labels": {MANAGED_BY_LABEL: "bfctl", INSTALL_LABEL: "a"}}});
        assert_eq!(owner(&ours, "a"), Owner::ThisInstall);
        assert_eq!(owner(&ours, "b"), Owner::OtherInstall("a".into()));
        let old = json!({"metadata": {"labels": {MANAGED_BY_LABEL: "bfctl"}}});
        assert_eq!(owner(&old, "a"), Owner::OtherInstall(String::new()));
        assert_eq!(owner(&json!({"metadata": {}}), "a"), Owner::NotBfctl);
    }

    #[test]
    fn containment_ignores_server_additions_and_dropped_empty_maps() {
        let wanted = json!({"spec": {"a": 1, "b": {"properties": {}}, "list": [{"x": "1"}]}});
        let live =
            json!({"spec": {"a": 1.0, "b": {}, "list": [{"x": "1", "y": 2}], "extra": true}});
        assert_eq!(first_difference(&wanted, &live), None);
        let changed = json!({"spec": {"a": 2, "b": {}, "list": [{"x": "1"}]}});
        assert_eq!(
            first_difference(&wanted, &changed).as_deref(),
            Some(".spec.a")
        );
        let longer = json!({"spec": {"a": 1, "b": {}, "list": [{"x": "1"}, {"x": "2"}]}});
        assert_eq!(
            first_difference(&wanted, &longer).as_deref(),
            Some(".spec.list")
        );
    }

    #[test]
    fn a_crd_is_compatible_when_it_serves_every_version_bfctl_needs() {
        let object = ObjectRef {
            api_version: "apiextensions.k8s.io/v1".into(),
            kind: "CustomResourceDefinition".into(),
            namespace: None,
            name: "kafkas.kafka.strimzi.io".into(),
        };
        let manifest = json!({"spec": {"versions": [{"name": "v1", "served": true}]}});
        let newer = json!({"spec": {"versions": [{"name": "v1", "served": true}, {"name": "v1beta2", "served": true}]}});
        assert!(crd_compatible(&object, &manifest, &newer).is_ok());
        let older = json!({"spec": {"versions": [{"name": "v1beta2", "served": true}, {"name": "v1", "served": false}]}});
        let error = crd_compatible(&object, &manifest, &older).unwrap_err();
        assert!(
            error.contains("serves v1beta2") && error.contains("needs v1"),
            "{error}"
        );
    }

    #[test]
    fn the_digest_annotation_and_the_bfctl_marks() {
        let manifest = json!({"metadata": {"name": "x", "labels": {MANAGED_BY_LABEL: "bfctl", INSTALL_LABEL: "a", "app": "x"}}});
        let annotated = with_digest(&manifest);
        assert_eq!(
            annotated["metadata"]["annotations"][APPLIED_ANNOTATION],
            manifest_digest(&manifest).as_str()
        );
        let bare = without_bfctl_marks(&annotated);
        assert_eq!(bare["metadata"]["labels"], json!({"app": "x"}));
        assert_eq!(bare["metadata"]["annotations"], json!({}));
    }
}
