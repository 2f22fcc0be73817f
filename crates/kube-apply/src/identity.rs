//! Who applies: the labels and annotation that mark an object as applied by
//! one tool for one install, and whose an object is from them.
//!
//! The crate knows no tool by name. The tool that uses it describes itself
//! once, as an [`Identity`] constant (bfctl's is `bfctl::plan::IDENTITY`):
//!
//! * every object it applies carries `app.kubernetes.io/managed-by=<manager>`
//!   and `<install_label>=<install>`, so listing those labels across
//!   [`Identity::kinds`] finds what one install owns (see
//!   [`crate::inventory`]);
//! * [`Identity::applied_annotation`] holds a digest of the manifest last
//!   applied, so an apply that would change nothing is skipped;
//! * [`Identity::owner`] says whose a live object is: this install's,
//!   another install's of the same tool, or not the tool's at all (it existed
//!   before). Only the first is ever changed or deleted.

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::object::ObjectRef;

/// The standard label naming the tool that manages an object.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// The standard label naming the application an object is part of.
pub const PART_OF_LABEL: &str = "app.kubernetes.io/part-of";

/// The applying tool, described once.
#[derive(Debug)]
pub struct Identity {
    /// The tool's name: the `managed-by` label's value, the server-side
    /// apply field manager, and the name used in messages.
    pub manager: &'static str,
    /// The User-Agent of every request.
    pub user_agent: &'static str,
    /// The label holding the install's name.
    pub install_label: &'static str,
    /// The label holding the step (component) that applied an object.
    pub component_label: &'static str,
    /// The annotation holding the digest of the manifest last applied.
    pub applied_annotation: &'static str,
    /// Every kind the tool ever applies (apiVersion, kind): where prune,
    /// teardown and leftover searches look.
    pub kinds: &'static [(&'static str, &'static str)],
    /// The ConfigMap (in the install's namespace) recording what an install
    /// uses but does not own; and its component label value.
    pub record_name: &'static str,
    pub record_component: &'static str,
    /// What a person runs when an object is held by a finalizer whose
    /// controller is gone.
    pub finalizer_way_out: &'static str,
}

/// Whose an object is, from the point of view of one install.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    ThisInstall,
    /// Applied by another install of the same tool (its name; empty for
    /// an object from before installs had names).
    OtherInstall(String),
    /// Not applied by the tool: it existed before, or another tool made it.
    NotOurs,
}

fn label<'a>(live: &'a Value, key: &str) -> Option<&'a str> {
    live.pointer("/metadata/labels")
        .and_then(|labels| labels.get(key))
        .and_then(Value::as_str)
}

impl Identity {
    /// Labels every object of the tool carries, whatever its install.
    pub fn any_install_selector(&self) -> String {
        format!("{MANAGED_BY_LABEL}={}", self.manager)
    }

    /// The label selector of one install's inventory.
    pub fn selector(&self, install: &str) -> String {
        format!(
            "{MANAGED_BY_LABEL}={},{}={install}",
            self.manager, self.install_label
        )
    }

    /// Whose `live` is.
    pub fn owner(&self, live: &Value, install: &str) -> Owner {
        if label(live, MANAGED_BY_LABEL) != Some(self.manager) {
            return Owner::NotOurs;
        }
        match label(live, self.install_label) {
            Some(name) if name == install => Owner::ThisInstall,
            Some(name) => Owner::OtherInstall(name.to_string()),
            None => Owner::OtherInstall(String::new()),
        }
    }

    /// For messages: "bfctl install 'bf2'", "not made by bfctl".
    pub fn describe(&self, owner: &Owner) -> String {
        let manager = self.manager;
        match owner {
            Owner::ThisInstall => "this install's".into(),
            Owner::OtherInstall(name) if name.is_empty() => {
                format!("applied by an older {manager}, with no install label")
            }
            Owner::OtherInstall(name) => format!("{manager} install '{name}'"),
            Owner::NotOurs => format!("not made by {manager}: it existed before"),
        }
    }

    /// The install label of a live object ("" when missing).
    pub fn install_of<'a>(&self, live: &'a Value) -> &'a str {
        label(live, self.install_label).unwrap_or("")
    }

    /// The component label of a live object ("" when missing).
    pub fn component_of<'a>(&self, live: &'a Value) -> &'a str {
        label(live, self.component_label).unwrap_or("")
    }

    /// The manifest with its digest recorded in the applied annotation.
    pub fn with_digest(&self, manifest: &Value) -> Value {
        let digest = manifest_digest(manifest);
        let mut annotated = manifest.clone();
        if let Some(metadata) = annotated.get_mut("metadata").and_then(Value::as_object_mut) {
            let annotations = metadata
                .entry("annotations")
                .or_insert_with(|| Value::Object(Default::default()));
            if !annotations.is_object() {
                *annotations = Value::Object(Default::default());
            }
            annotations[self.applied_annotation] = digest.into();
        }
        annotated
    }

    /// The digest a live object records, if any.
    pub fn recorded_digest<'a>(&self, live: &'a Value) -> Option<&'a str> {
        live.pointer("/metadata/annotations")
            .and_then(|a| a.get(self.applied_annotation))
            .and_then(Value::as_str)
    }

    /// The manifest without the tool's labels and annotation: what is
    /// applied to an object that is not this install's (`--force`), so that
    /// it never becomes part of the inventory.
    pub fn without_marks(&self, manifest: &Value) -> Value {
        let mut copy = manifest.clone();
        if let Some(labels) = copy
            .pointer_mut("/metadata/labels")
            .and_then(Value::as_object_mut)
        {
            for key in [
                MANAGED_BY_LABEL,
                PART_OF_LABEL,
                self.component_label,
                self.install_label,
            ] {
                labels.remove(key);
            }
        }
        if let Some(annotations) = copy
            .pointer_mut("/metadata/annotations")
            .and_then(Value::as_object_mut)
        {
            annotations.remove(self.applied_annotation);
        }
        copy
    }

    /// Whether a CRD that is not this install's serves every version the
    /// manifest about to be applied serves: then it is used as it is. The
    /// error names the versions.
    pub fn crd_compatible(
        &self,
        object: &ObjectRef,
        manifest: &Value,
        live: &Value,
    ) -> Result<(), String> {
        let needed = served_versions(manifest);
        let served = served_versions(live);
        let missing: Vec<&str> = needed
            .iter()
            .filter(|v| !served.contains(v))
            .map(String::as_str)
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let manager = self.manager;
        Err(format!(
            "{object} exists and is not this install's ({}); it serves {}, and {manager} needs {} ({} missing). Upgrade it to a release that serves {}, or remove it if nothing uses it; {manager} will not replace it",
            self.describe(&self.owner(live, "")),
            if served.is_empty() {
                "no version".to_string()
            } else {
                served.join(", ")
            },
            needed.join(", "),
            missing.join(", "),
            needed.join(", ")
        ))
    }
}

/// The digest the applied annotation holds for a manifest (its canonical
/// JSON: serde_json keeps map keys sorted).
pub fn manifest_digest(manifest: &Value) -> String {
    let digest = Sha256::digest(manifest.to_string().as_bytes());
    digest.iter().take(12).map(|b| format!("{b:02x}")).collect()
}

/// What decides whether an object that is not this install's already
/// holds what would be applied: everything but labels and annotations
/// (those say who made it, not what it does).
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    /// An identity for the tests: a tool called "tool".
    pub(crate) const TOOL: Identity = Identity {
        manager: "tool",
        user_agent: "tool/0",
        install_label: "tool.example/install",
        component_label: "tool.example/component",
        applied_annotation: "tool.example/applied",
        kinds: &[("v1", "ConfigMap")],
        record_name: "tool-install",
        record_component: "inventory",
        finalizer_way_out: "`tool teardown --remove-finalizers`",
    };

    #[test]
    fn ownership_follows_the_install_label() {
        let ours = json!({"metadata": {"labels": {MANAGED_BY_LABEL: "tool", "tool.example/install": "a"}}});
        assert_eq!(TOOL.owner(&ours, "a"), Owner::ThisInstall);
        assert_eq!(TOOL.owner(&ours, "b"), Owner::OtherInstall("a".into()));
        let old = json!({"metadata": {"labels": {MANAGED_BY_LABEL: "tool"}}});
        assert_eq!(TOOL.owner(&old, "a"), Owner::OtherInstall(String::new()));
        assert_eq!(TOOL.owner(&json!({"metadata": {}}), "a"), Owner::NotOurs);
        let other_tool = json!({"metadata": {"labels": {MANAGED_BY_LABEL: "helm"}}});
        assert_eq!(TOOL.owner(&other_tool, "a"), Owner::NotOurs);
        assert_eq!(
            TOOL.describe(&Owner::OtherInstall("b".into())),
            "tool install 'b'"
        );
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
    fn a_crd_is_compatible_when_it_serves_every_version_needed() {
        let object = ObjectRef {
            api_version: "apiextensions.k8s.io/v1".into(),
            kind: "CustomResourceDefinition".into(),
            namespace: None,
            name: "kafkas.kafka.strimzi.io".into(),
        };
        let manifest = json!({"spec": {"versions": [{"name": "v1", "served": true}]}});
        let newer = json!({"spec": {"versions": [{"name": "v1", "served": true}, {"name": "v1beta2", "served": true}]}});
        assert!(TOOL.crd_compatible(&object, &manifest, &newer).is_ok());
        let older = json!({"spec": {"versions": [{"name": "v1beta2", "served": true}, {"name": "v1", "served": false}]}});
        let error = TOOL.crd_compatible(&object, &manifest, &older).unwrap_err();
        assert!(
            error.contains("serves v1beta2") && error.contains("tool needs v1"),
            "{error}"
        );
    }

    #[test]
    fn the_digest_annotation_and_the_marks() {
        let manifest = json!({"metadata": {"name": "x", "labels": {MANAGED_BY_LABEL: "tool", "tool.example/install": "a", "app": "x"}}});
        let annotated = TOOL.with_digest(&manifest);
        assert_eq!(
            TOOL.recorded_digest(&annotated),
            Some(manifest_digest(&manifest).as_str())
        );
        let bare = TOOL.without_marks(&annotated);
        assert_eq!(bare["metadata"]["labels"], json!({"app": "x"}));
        assert_eq!(bare["metadata"]["annotations"], json!({}));
    }
}
