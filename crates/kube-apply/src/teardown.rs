//! Teardown: removes what one install applied, from its inventory alone
//! (the objects labelled with its name, see [`crate::inventory`]): no plan
//! and no operator files are needed. The order lets controllers clean up
//! after themselves:
//!
//! 1. workloads (Deployments, Services, policies, autoscalers …);
//! 2. custom resources that belong to another ([`TeardownOptions::dependent_kinds`],
//!    e.g. `KafkaTopic` before its `Kafka`: the topic operator that removes
//!    a topic's finalizer runs in the Kafka cluster);
//! 3. the other custom resources (`Kafka`, `VirtualMachine`, `Gateway` …),
//!    waiting while their operators run the finalizers;
//! 4. the operators ([`TeardownOptions::operators`]: their own custom
//!    resources such as the `KubeVirt` CR first, then their Deployments and
//!    RBAC);
//! 5. the CustomResourceDefinitions this install created;
//! 6. the namespaces.
//!
//! Each phase waits until its objects are gone before the next starts. What
//! is not safe to delete is kept and said, with the reason
//! ([`inventory::why_keep`]): a
//! CRD while any custom resource of it exists anywhere, a ClusterRole that
//! something else binds, an operator that still serves other installs' or
//! teams' resources. `--keep-data` keeps the PersistentVolumeClaims and the
//! namespaces holding them. Objects already being deleted are reported as
//! terminating, not as deleted; one held by a finalizer whose controller is
//! gone is named with the way out (removing finalizers, which the caller
//! confirms first). Running it again is harmless.

use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use crate::client::{Cluster, ObjectRef};
use crate::error::Result;
use crate::graph::{Event, Observer};
use crate::identity::Owner;
use crate::inventory::{self, Owned};
use crate::readiness;
use crate::wait::{Check, Poll, WaitError, poll_until};

/// The phases, in order.
pub const PHASES: [&str; 6] = [
    "workloads",
    "dependent custom resources",
    "custom resources",
    "operators",
    "CRDs",
    "namespaces",
];

#[derive(Debug, Clone)]
pub struct TeardownOptions {
    /// The install to remove.
    pub install: String,
    pub keep_data: bool,
    /// How long each phase may take to disappear.
    pub timeout: Duration,
    pub poll: Duration,
    /// Remove the finalizers of this install's objects that stay after the
    /// timeout (the confirmation is asked by the caller, see
    /// [`teardown`]'s `confirm`).
    pub remove_finalizers: bool,
    /// The operators an install may have installed: removed in their own
    /// phase, and kept while they serve anything outside the install.
    pub operators: Vec<Operator>,
    /// Custom resource kinds (group, kind) that belong to other custom
    /// resources and go first, while their controller still runs.
    pub dependent_kinds: Vec<(String, String)>,
}

/// An operator bundle, as teardown sees it.
#[derive(Debug, Clone)]
pub struct Operator {
    /// The steps (component labels) that install it, its custom resource
    /// included; the first names it.
    pub components: Vec<String>,
    /// What it serves to the whole cluster: while any object of these kinds
    /// exists that is not this install's, the operator stays.
    pub serves: Vec<Served>,
}

/// A kind an operator serves, optionally only objects whose field at
/// `pointer` equals `value` (an Ingress of the operator's class).
#[derive(Debug, Clone)]
pub struct Served {
    pub api_version: String,
    pub kind: String,
    pub only_where: Option<(String, String)>,
}

impl TeardownOptions {
    fn operator(&self, component: &str) -> Option<&Operator> {
        self.operators
            .iter()
            .find(|operator| operator.components.iter().any(|c| c == component))
    }
}

/// An object left in place on purpose, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Kept {
    pub object: String,
    pub reason: String,
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TeardownReport {
    pub install: String,
    /// Deleted, per phase, in order.
    pub deleted: Vec<String>,
    /// Already being deleted when teardown came (not deleted again).
    pub terminating: Vec<String>,
    /// Finalizers removed (`--remove-finalizers`).
    pub finalizers_removed: Vec<String>,
    /// Kept on purpose, with the reason.
    pub kept: Vec<Kept>,
    /// Still present at the end, with why (finalizers, terminating).
    pub left: Vec<String>,
    /// What to do about what is left.
    pub next_steps: Vec<String>,
}

/// Which phase removes an object (see [`PHASES`]).
pub fn phase_of(object: &ObjectRef, component: &str, options: &TeardownOptions) -> usize {
    let group = object.group();
    let custom = !is_builtin_group(group);
    let dependent = || {
        options
            .dependent_kinds
            .iter()
            .any(|(g, k)| g == group && *k == object.kind)
    };
    match object.kind.as_str() {
        "Namespace" if group.is_empty() => 5,
        "CustomResourceDefinition" => 4,
        _ if options.operator(component).is_some() => 3,
        _ if dependent() => 1,
        _ if custom => 2,
        _ => 0,
    }
}

fn is_builtin_group(group: &str) -> bool {
    group.is_empty()
        || !group.contains('.')
        || group.ends_with(".k8s.io") && group != "gateway.networking.k8s.io"
}

/// What an operator still serves outside this install (e.g. KubeVirt runs
/// every VM in the cluster, so it does not go while others use it).
async fn operator_users(
    cluster: &Cluster,
    operator: &Operator,
    install: &str,
) -> Result<Vec<String>> {
    let identity = cluster.identity();
    let mut users = Vec::new();
    for served in &operator.serves {
        for live in cluster.list(&served.api_version, &served.kind, "").await? {
            if identity.owner(&live, install) == Owner::ThisInstall {
                continue;
            }
            if let Some((pointer, value)) = &served.only_where
                && live.pointer(pointer).and_then(Value::as_str) != Some(value.as_str())
            {
                continue;
            }
            users.push(format!("{} {}", served.kind, inventory::name_of(&live)));
        }
    }
    Ok(users)
}

/// Removes one install. `confirm` is asked before finalizers are removed
/// (`--remove-finalizers`) with the objects concerned; it returns whether
/// to go on.
pub async fn teardown(
    cluster: &Cluster,
    options: &TeardownOptions,
    observer: &dyn Observer,
    confirm: &(dyn Fn(&[String]) -> bool + Sync),
) -> Result<TeardownReport> {
    let identity = cluster.identity();
    let install = options.install.as_str();
    let mut report = TeardownReport {
        install: install.to_string(),
        ..TeardownReport::default()
    };
    let owned = inventory::list(cluster, install).await?;
    // What the install used without owning it stays; say so.
    for record in owned
        .iter()
        .filter(|o| o.component() == identity.record_component)
    {
        for used in inventory::recorded_uses(&record.live) {
            report.kept.push(Kept {
                object: used.object,
                reason: format!("not this install's: {}", used.reason),
            });
        }
    }
    let mut phases: Vec<Vec<Owned>> = vec![Vec::new(); PHASES.len()];
    for object in owned {
        phases[phase_of(&object.object, object.component(), options)].push(object);
    }
    // Namespaces that hold kept claims stay with them.
    let mut data_namespaces: Vec<String> = Vec::new();
    // Operator bundles checked for users outside this install (KubeVirt's
    // namespace, CRDs and CR go with its operator, or stay with it).
    let mut checked_families: Vec<(String, Option<String>)> = Vec::new();

    for (index, objects) in phases.iter_mut().enumerate() {
        // Within the operators phase, their own custom resources go first.
        objects.sort_by_key(|o| is_builtin_group(o.object.group()));
        let mut waiting: Vec<ObjectRef> = Vec::new();
        for owned in objects.iter() {
            let object = &owned.object;
            if options.keep_data
                && (object.kind == "PersistentVolumeClaim"
                    || object.kind == "Namespace" && data_namespaces.contains(&object.name))
            {
                if let Some(namespace) = &object.namespace {
                    data_namespaces.push(namespace.clone());
                }
                keep(&mut report, object, "--keep-data".into());
                continue;
            }
            let operator = options.operator(owned.component());
            let family = operator
                .and_then(|o| o.components.first())
                .map_or(owned.component(), String::as_str);
            if index >= 3
                && let Some(operator) = operator
                && !checked_families.iter().any(|(f, _)| f == family)
            {
                let users = operator_users(cluster, operator, install).await?;
                let reason = (!users.is_empty()).then(|| {
                    format!(
                        "the operator still serves {} outside this install ({})",
                        users.len(),
                        inventory::sample(&users)
                    )
                });
                checked_families.push((family.to_string(), reason));
            }
            if let Some((_, Some(reason))) = checked_families.iter().find(|(f, _)| f == family) {
                keep(&mut report, object, reason.clone());
                continue;
            }
            // Read it again: an earlier phase may have changed it.
            let Some(live) = cluster.get(object).await? else {
                continue;
            };
            if live.pointer("/metadata/deletionTimestamp").is_some() {
                report.terminating.push(object.to_string());
                waiting.push(object.clone());
                continue;
            }
            if let Some(reason) = inventory::why_keep(cluster, object, &live, install).await? {
                keep(&mut report, object, reason);
                continue;
            }
            if cluster.delete(object).await? {
                observer.event(Event::Deleted {
                    object: object.clone(),
                });
                report.deleted.push(object.to_string());
                waiting.push(object.clone());
            }
        }
        let mut stuck = wait_gone(cluster, &waiting, options).await?;
        if !stuck.is_empty() && options.remove_finalizers {
            let names: Vec<String> = stuck.iter().map(|(o, _)| o.to_string()).collect();
            if confirm(&names) {
                for (object, _) in &stuck {
                    if cluster.remove_finalizers(object).await? {
                        report.finalizers_removed.push(object.to_string());
                    }
                }
                stuck = wait_gone(cluster, &waiting, options).await?;
            }
        }
        if !stuck.is_empty() {
            for (object, live) in &stuck {
                report.left.push(format!(
                    "{object}: being deleted ({})",
                    readiness::deletion_blocker(object, live, identity.finalizer_way_out)
                ));
                report
                    .next_steps
                    .push(way_out(object, identity.finalizer_way_out));
            }
            report.next_steps.insert(
                0,
                format!(
                    "teardown stopped before the {} phase; once the objects above are gone, run it again",
                    PHASES.get(index + 1).unwrap_or(&"last")
                ),
            );
            return Ok(report);
        }
        if index == 4 {
            // CRDs went: their kinds are no longer served, and discovery
            // cached before this must not be trusted.
            cluster.refresh_discovery().await?;
        }
    }
    for owned in inventory::list(cluster, install).await? {
        let name = owned.object.to_string();
        if !report.kept.iter().any(|k| k.object == name) {
            report.left.push(name);
        }
    }
    Ok(report)
}

fn keep(report: &mut TeardownReport, object: &ObjectRef, reason: String) {
    report.kept.push(Kept {
        object: object.to_string(),
        reason,
    });
}

/// The command that removes an object's finalizers by hand.
fn way_out(object: &ObjectRef, tool_way_out: &str) -> String {
    let namespace = object
        .namespace
        .as_ref()
        .map(|n| format!(" -n {n}"))
        .unwrap_or_default();
    let group = object.group();
    let resource = if group.is_empty() {
        object.kind.to_lowercase()
    } else {
        format!("{}.{group}", object.kind.to_lowercase())
    };
    format!(
        "{object}: {tool_way_out}, or by hand: kubectl patch {resource} {}{namespace} --type merge -p '{{\"metadata\":{{\"finalizers\":null}}}}'",
        object.name
    )
}

/// Polls until every object is gone; returns those still there after the
/// timeout, as last read.
async fn wait_gone(
    cluster: &Cluster,
    objects: &[ObjectRef],
    options: &TeardownOptions,
) -> Result<Vec<(ObjectRef, Value)>> {
    let poll = Poll {
        timeout: options.timeout,
        every: options.poll,
    };
    let waited = poll_until(
        poll,
        None,
        |_| {},
        || async move {
            for object in objects {
                match cluster.get(object).await {
                    Ok(None) => {}
                    Ok(Some(_)) => return Check::Waiting(object.to_string()),
                    Err(error) => return Check::Failed(error.to_string()),
                }
            }
            Check::Done(())
        },
    )
    .await;
    match waited {
        Ok(()) => Ok(Vec::new()),
        Err(WaitError::Failed(_) | WaitError::TimedOut { .. } | WaitError::Interrupted) => {
            // Read them all once more: what is left, as it is now (a failed
            // read is reported from here).
            let mut still = Vec::new();
            for object in objects {
                if let Some(live) = cluster.get(object).await? {
                    still.push((object.clone(), live));
                }
            }
            Ok(still)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(api_version: &str, kind: &str) -> ObjectRef {
        ObjectRef {
            api_version: api_version.into(),
            kind: kind.into(),
            namespace: None,
            name: "x".into(),
        }
    }

    fn options() -> TeardownOptions {
        TeardownOptions {
            install: "a".into(),
            keep_data: false,
            timeout: Duration::from_secs(1),
            poll: Duration::from_millis(10),
            remove_finalizers: false,
            operators: vec![
                Operator {
                    components: vec!["operator-strimzi".into()],
                    serves: Vec::new(),
                },
                Operator {
                    components: vec!["operator-kubevirt".into(), "kubevirt".into()],
                    serves: Vec::new(),
                },
            ],
            dependent_kinds: vec![("kafka.strimzi.io".into(), "KafkaTopic".into())],
        }
    }

    #[test]
    fn workloads_go_before_topics_before_custom_resources_operators_crds_and_namespaces() {
        let options = &options();
        let phase_of = |object: &ObjectRef, component: &str| phase_of(object, component, options);
        let order = [
            phase_of(&object("apps/v1", "Deployment"), "gateway"),
            phase_of(&object("networking.k8s.io/v1", "NetworkPolicy"), "x"),
            phase_of(&object("kafka.strimzi.io/v1", "KafkaTopic"), "kafka"),
            phase_of(&object("kafka.strimzi.io/v1", "Kafka"), "kafka"),
            phase_of(&object("gateway.networking.k8s.io/v1", "Gateway"), "x"),
            phase_of(&object("apps/v1", "Deployment"), "operator-strimzi"),
            phase_of(&object("kubevirt.io/v1", "KubeVirt"), "kubevirt"),
            phase_of(
                &object("apiextensions.k8s.io/v1", "CustomResourceDefinition"),
                "operator-strimzi",
            ),
            phase_of(&object("v1", "Namespace"), "namespace"),
        ];
        assert_eq!(order, [0, 0, 1, 2, 2, 3, 3, 4, 5]);
    }

    #[test]
    fn the_way_out_names_the_command() {
        let mut topic = object("kafka.strimzi.io/v1", "KafkaTopic");
        topic.namespace = Some("blackfriday".into());
        let text = way_out(&topic, "`tool teardown --remove-finalizers`");
        assert!(
            text.contains(
                "kubectl patch kafkatopic.kafka.strimzi.io x -n blackfriday --type merge"
            ),
            "{text}"
        );
    }
}
