//! The one error type of this crate. Every variant reads as a sentence a
//! person can act on: which object, what the API server said, and (for a
//! conflict) the way out.

use crate::object::{MissingField, ObjectRef};

/// What went wrong, on which object.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Another field manager owns fields the applier sets: `--force` (a
    /// forced server-side apply) takes them.
    #[error(
        "{object}: another field manager owns fields {manager} sets ({message}); rerun with --force to take ownership"
    )]
    Conflict {
        object: Box<ObjectRef>,
        manager: String,
        message: String,
    },
    /// The API server does not serve the object's kind.
    #[error(
        "{object}: the cluster does not serve {kind} in {api_version} (is its operator installed?)"
    )]
    UnknownKind {
        object: Box<ObjectRef>,
        kind: String,
        api_version: String,
    },
    /// A call about one object failed; `message` is the readable answer
    /// (see [`readable`]) with what was being done.
    #[error("{object}: {message}")]
    Object {
        object: Box<ObjectRef>,
        message: String,
    },
    /// A call not about one object failed (discovery, a list, a proxy GET).
    #[error("{doing}: {message}")]
    Api { doing: String, message: String },
    /// The kubeconfig could not be read or used.
    #[error("{doing}: {message}")]
    Config { doing: String, message: String },
    /// A manifest without `apiVersion`, `kind` or `metadata.name`.
    #[error(transparent)]
    Manifest(#[from] MissingField),
    /// The step graph is not a graph (unknown dependency, cycle, duplicates).
    #[error("{0}")]
    Graph(String),
    /// The object is not this install's, so it is not changed.
    #[error("{0}")]
    NotOwned(String),
}

/// This crate's results.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One readable line for a failed API call: `HTTP 400 BadRequest: address
/// not allowed`, never a debug dump. A plain-text answer (`404 page not
/// found`, which a real API server sends for a resource type it does not
/// serve) is shown as its text.
pub fn readable(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) => {
            let reason = if status.reason == "Failed to parse error data" {
                ""
            } else {
                status.reason.as_str()
            };
            let message = status.message.trim();
            match (reason.is_empty(), message.is_empty()) {
                (true, true) => format!("HTTP {}", status.code),
                (true, false) => format!("HTTP {}: {message}", status.code),
                (false, true) => format!("HTTP {} {reason}", status.code),
                (false, false) => format!("HTTP {} {reason}: {message}", status.code),
            }
        }
        other => other.to_string(),
    }
}

/// True for a 404: the object, or its whole resource type, is not there.
pub fn is_not_found(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 404)
}

impl Error {
    pub(crate) fn api(doing: impl Into<String>, error: &kube::Error) -> Error {
        Error::Api {
            doing: doing.into(),
            message: readable(error),
        }
    }

    pub(crate) fn object(object: &ObjectRef, error: &kube::Error) -> Error {
        Error::Object {
            object: Box::new(object.clone()),
            message: readable(error),
        }
    }
}
