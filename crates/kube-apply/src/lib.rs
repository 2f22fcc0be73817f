//! kube-apply: applies a graph of Kubernetes objects the way a careful
//! person would with `kubectl apply`, and removes them again, touching only
//! what is provably its own. It knows Kubernetes, not the tool that uses it:
//! that tool describes itself once as an [`Identity`] (its labels, field
//! manager and the kinds it applies).
//!
//! # Layout
//!
//! ```text
//! object.rs     ObjectRef: names one object
//! identity.rs   who applies: labels, digest annotation, whose an object is (Owner)
//! client.rs     Cluster: kube client + discovery; apply/get/list/delete on untyped objects
//! error.rs      the one Error enum, and readable API errors
//! graph.rs      the step graph: GraphNode, run_graph, Event/Observer, Interrupt
//! wait.rs       the one poll primitive (timeout, backoff, interrupt)
//! readiness.rs  one rule per kind, as a table (RULES): ready / waiting / failed
//! apply.rs      up(): Kubernetes steps through the graph, ownership decisions, waits
//! inventory.rs  what an install owns (by label), what it uses (its record), why_keep
//! prune.rs      what an install no longer renders, deleted after a good apply
//! teardown.rs   an install removed in phases, from its inventory alone
//! ```
//!
//! Nothing here prints: progress goes to an [`Observer`], API traces to a
//! [`Tracer`], and every result is a value or an [`Error`].

pub mod apply;
pub mod client;
pub mod error;
pub mod graph;
pub mod identity;
pub mod inventory;
pub mod object;
pub mod prune;
pub mod readiness;
pub mod teardown;
pub mod wait;

pub use apply::{AppliedObject, Step, UpOptions, UpReport, apply_owned, up};
pub use client::{
    ApplyOutcome, Cluster, ObjectRef, PortForward, Tracer, content, is_cluster_scoped,
    with_namespace,
};
pub use error::{Error, Result};
pub use graph::{
    Done, Event, GraphNode, GraphOutcome, Interrupt, Observer, Quiet, StepReport, StepResult,
    check_graph, run_graph,
};
pub use identity::{Identity, Owner};
pub use prune::OtherInstall;
pub use readiness::Readiness;
