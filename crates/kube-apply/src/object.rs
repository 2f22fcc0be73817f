//! [`ObjectRef`]: names one object (apiVersion, kind, namespace, name), as
//! read from a manifest, shown in every message, and resolved by discovery.

use std::fmt;

use kube::core::GroupVersionKind;
use serde_json::Value;

/// A manifest without one of the fields that name an object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("object without {0}")]
pub struct MissingField(pub &'static str);

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
    pub fn of(object: &Value) -> Result<ObjectRef, MissingField> {
        let text = |pointer: &str| object.pointer(pointer).and_then(Value::as_str);
        let missing = MissingField;
        Ok(ObjectRef {
            api_version: text("/apiVersion")
                .ok_or_else(|| missing("apiVersion"))?
                .to_string(),
            kind: text("/kind").ok_or_else(|| missing("kind"))?.to_string(),
            namespace: text("/metadata/namespace").map(str::to_string),
            name: text("/metadata/name")
                .ok_or_else(|| missing("metadata.name"))?
                .to_string(),
        })
    }

    pub fn group(&self) -> &str {
        self.api_version
            .split_once('/')
            .map_or("", |(group, _)| group)
    }

    pub(crate) fn gvk(&self) -> GroupVersionKind {
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
