//! When is an object ready? One rule per kind, read from its status.
//!
//! The rules avoid the classic mistakes of generic "wait" tools:
//!
//! * a status is only trusted once the controller has seen the current spec
//!   (`status.observedGeneration == metadata.generation`), otherwise a stale
//!   "Ready" from the previous generation would pass;
//! * kinds that never report readiness are not waited on at all (Strimzi's
//!   `KafkaNodePool`, ConfigMaps, policies …) instead of waiting forever;
//! * a terminal failure (`ProgressDeadlineExceeded`, a failed Job) ends the
//!   wait at once, with the controller's message.
//!
//! A `VirtualMachine` is waited on through its `VirtualMachineInstance`, which
//! carries the readiness probe's result; see [`wait_target`].

use serde_json::Value;

use crate::client::ObjectRef;

/// What an object's status says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    /// Not yet; the message is the latest thing the controller said.
    Waiting(String),
    /// Will not become ready without a change.
    Failed(String),
}

/// One kind's rule: how its status reads, and whether an apply waits on it.
pub struct Rule {
    /// The API group ("" for the core group) and kind it applies to.
    pub group: &'static str,
    pub kind: &'static str,
    /// Whether an apply waits for it (an autoscaler is assessed by
    /// `status`, but its first sync is ~15 s away, so `up` does not wait).
    pub waited: bool,
    pub assess: fn(&ObjectRef, &Value) -> Readiness,
}

const fn rule(
    group: &'static str,
    kind: &'static str,
    waited: bool,
    assess: fn(&ObjectRef, &Value) -> Readiness,
) -> Rule {
    Rule {
        group,
        kind,
        waited,
        assess,
    }
}

/// Every rule, one per kind. Kinds not here are ready as soon as they exist
/// and are never waited on.
pub const RULES: &[Rule] = &[
    rule("apps", "Deployment", true, |_, live| deployment(live)),
    rule("apps", "StatefulSet", true, |_, live| stateful_set(live)),
    rule("batch", "Job", true, |_, live| job(live)),
    rule(
        "apiextensions.k8s.io",
        "CustomResourceDefinition",
        true,
        |_, live| condition_true(live, "Established", false),
    ),
    rule("kafka.strimzi.io", "Kafka", true, |_, live| {
        condition_true(live, "Ready", true)
    }),
    rule("kafka.strimzi.io", "KafkaTopic", true, |_, live| {
        condition_true(live, "Ready", true)
    }),
    rule("kubevirt.io", "KubeVirt", true, |_, live| {
        condition_true(live, "Available", false)
    }),
    // A VirtualMachine is waited on through its instance (`wait_target`).
    rule("kubevirt.io", "VirtualMachine", true, |_, _| {
        Readiness::Ready
    }),
    rule("kubevirt.io", "VirtualMachineInstance", true, |_, live| {
        condition_true(live, "Ready", false)
    }),
    rule("gateway.networking.k8s.io", "Gateway", true, |_, live| {
        condition_true(live, "Programmed", true)
    }),
    rule("networking.k8s.io", "Ingress", true, |_, live| {
        load_balancer_address(live)
    }),
    rule("", "Service", true, |_, live| {
        if live.pointer("/spec/type").and_then(Value::as_str) == Some("LoadBalancer") {
            load_balancer_address(live)
        } else {
            Readiness::Ready
        }
    }),
    rule("", "Namespace", true, namespace),
    rule(
        "autoscaling",
        "HorizontalPodAutoscaler",
        false,
        |_, live| autoscaler(live),
    ),
];

fn rule_of(object: &ObjectRef) -> Option<&'static Rule> {
    RULES
        .iter()
        .find(|rule| rule.group == object.group() && rule.kind == object.kind)
}

/// Whether an apply waits on this kind at all.
pub fn has_rule(object: &ObjectRef) -> bool {
    rule_of(object).is_some_and(|rule| rule.waited)
}

/// The object whose status decides readiness: itself, or for a
/// `VirtualMachine` the instance of the same name.
pub fn wait_target(object: &ObjectRef) -> ObjectRef {
    if object.group() == "kubevirt.io" && object.kind == "VirtualMachine" {
        object.with_kind("VirtualMachineInstance")
    } else {
        object.clone()
    }
}

/// Applies the kind's rule to the object as read from the cluster.
/// Kinds without a rule are ready as soon as they exist.
pub fn assess(object: &ObjectRef, live: &Value) -> Readiness {
    match rule_of(object) {
        Some(rule) => (rule.assess)(object, live),
        None => Readiness::Ready,
    }
}

fn namespace(object: &ObjectRef, live: &Value) -> Readiness {
    match live.pointer("/status/phase").and_then(Value::as_str) {
        Some("Terminating") => Readiness::Waiting(format!(
            "namespace is being deleted: {}",
            deletion_blocker(object, live, "")
        )),
        _ => Readiness::Ready,
    }
}

/// An autoscaler is ready when it can scale: `AbleToScale` and
/// `ScalingActive` True. Without a metrics server a real one says
/// `ScalingActive=False (FailedGetResourceMetric)` and never scales
/// (`hpa-no-metrics.jsonl` in the recorded fixtures). `bfctl up` does not
/// wait on autoscalers (their first sync is ~15 s away); `status` shows it.
fn autoscaler(live: &Value) -> Readiness {
    for kind in ["AbleToScale", "ScalingActive"] {
        if let Some(c) = condition(live, kind)
            && c.get("status").and_then(Value::as_str) == Some("False")
        {
            let hint = if c.get("reason").and_then(Value::as_str) == Some("FailedGetResourceMetric")
            {
                "; is a metrics server (metrics.k8s.io) installed?"
            } else {
                ""
            };
            return Readiness::Failed(format!("{}{hint}", describe(c)));
        }
    }
    if condition(live, "ScalingActive").is_none() {
        return Readiness::Waiting(
            "no conditions yet (the autoscaler controller syncs every 15 s)".into(),
        );
    }
    Readiness::Ready
}

/// Which controller removes a finalizer, for the person who is told an
/// object cannot go.
pub fn finalizer_controller(finalizer: &str) -> &'static str {
    match finalizer {
        "strimzi.io/topic-operator" => {
            "Strimzi's topic operator, which runs in the Kafka cluster's entity operator"
        }
        "foregroundDeletion" => "the garbage collector, once the object's dependants are gone",
        "kubernetes" => "the namespace controller, once the namespace's content is gone",
        "customresourcecleanup.apiextensions.k8s.io" => {
            "the API server, once the definition's custom resources are gone"
        }
        "kubernetes.io/pvc-protection" => "the PVC protection controller, once no pod uses it",
        f if f.starts_with("kubevirt.io/") => "KubeVirt's virt-controller",
        _ => "the controller that added it",
    }
}

/// What keeps an object that is being deleted from going: its finalizers
/// and who removes them; for a namespace, its own conditions (which name
/// the finalizers held by its content and how many objects hold them).
/// `way_out` is what a person runs when that controller is gone (see
/// [`crate::Identity::finalizer_way_out`]; empty: nothing said).
pub fn deletion_blocker(object: &ObjectRef, live: &Value, way_out: &str) -> String {
    let mut parts = Vec::new();
    if object.kind == "Namespace" {
        for kind in ["NamespaceFinalizersRemaining", "NamespaceContentRemaining"] {
            if let Some(c) = condition(live, kind)
                && c.get("status").and_then(Value::as_str) == Some("True")
            {
                let message = c.get("message").and_then(Value::as_str).unwrap_or("");
                parts.push(format!("{kind}: {message}"));
                if kind == "NamespaceFinalizersRemaining" {
                    // "Some content in the namespace has finalizers remaining:
                    // strimzi.io/topic-operator in 2 resource instances"
                    for finalizer in message
                        .rsplit(':')
                        .next()
                        .unwrap_or("")
                        .split(',')
                        .filter_map(|part| part.split_whitespace().next())
                    {
                        parts.push(format!(
                            "{finalizer} is removed by {}",
                            finalizer_controller(finalizer)
                        ));
                    }
                    break;
                }
            }
        }
    }
    let finalizers: Vec<&str> = live
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    for finalizer in &finalizers {
        parts.push(format!(
            "finalizer {finalizer}, removed by {}",
            finalizer_controller(finalizer)
        ));
    }
    if parts.is_empty() {
        return "no finalizer left; it should go at once".into();
    }
    if !way_out.is_empty() {
        parts.push(format!("if that controller is gone: {way_out}"));
    }
    parts.join("; ")
}

fn int(value: &Value, pointer: &str) -> Option<i64> {
    value.pointer(pointer).and_then(Value::as_i64)
}

/// `status.observedGeneration` has caught up with `metadata.generation`.
/// Objects without a generation (or without the field) count as current.
fn generation_observed(live: &Value) -> Result<(), Readiness> {
    match (
        int(live, "/metadata/generation"),
        int(live, "/status/observedGeneration"),
    ) {
        (Some(generation), Some(observed)) if observed < generation => Err(Readiness::Waiting(
            format!("controller has not seen generation {generation} yet (observed {observed})"),
        )),
        (Some(generation), None) if generation > 0 && live.get("status").is_none() => Err(
            Readiness::Waiting("no status yet (controller has not seen the object)".into()),
        ),
        _ => Ok(()),
    }
}

fn conditions(live: &Value) -> impl Iterator<Item = &Value> {
    live.pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

fn condition<'a>(live: &'a Value, kind: &str) -> Option<&'a Value> {
    conditions(live).find(|c| c.get("type").and_then(Value::as_str) == Some(kind))
}

/// "reason: message" of a condition, for the user.
fn describe(condition: &Value) -> String {
    let text = |key: &str| condition.get(key).and_then(Value::as_str).unwrap_or("");
    match (text("reason"), text("message")) {
        ("", "") => format!("{}={}", text("type"), text("status")),
        (reason, "") => format!("{}={} ({reason})", text("type"), text("status")),
        ("", message) => format!("{}={}: {message}", text("type"), text("status")),
        (reason, message) => format!("{}={} ({reason}): {message}", text("type"), text("status")),
    }
}

/// Ready when condition `kind` is True; with `per_generation`, only once the
/// condition (or the status) was written for the current generation.
fn condition_true(live: &Value, kind: &str, per_generation: bool) -> Readiness {
    if per_generation && let Err(waiting) = generation_observed(live) {
        return waiting;
    }
    match condition(live, kind) {
        Some(c) if c.get("status").and_then(Value::as_str) == Some("True") => {
            if per_generation
                && let (Some(generation), Some(observed)) = (
                    int(live, "/metadata/generation"),
                    int(c, "/observedGeneration"),
                )
                && observed < generation
            {
                return Readiness::Waiting(format!(
                    "{kind} is from generation {observed}, waiting for {generation}"
                ));
            }
            Readiness::Ready
        }
        Some(c) => Readiness::Waiting(describe(c)),
        None => match conditions(live).last() {
            Some(other) => {
                Readiness::Waiting(format!("no {kind} condition yet; {}", describe(other)))
            }
            None => Readiness::Waiting(format!("no {kind} condition yet")),
        },
    }
}

fn deployment(live: &Value) -> Readiness {
    if let Some(c) = condition(live, "Progressing")
        && c.get("reason").and_then(Value::as_str) == Some("ProgressDeadlineExceeded")
    {
        return Readiness::Failed(describe(c));
    }
    if let Err(waiting) = generation_observed(live) {
        return waiting;
    }
    let desired = int(live, "/spec/replicas").unwrap_or(1);
    let count = |field: &str| int(live, &format!("/status/{field}")).unwrap_or(0);
    let (updated, available, ready, total) = (
        count("updatedReplicas"),
        count("availableReplicas"),
        count("readyReplicas"),
        count("replicas"),
    );
    if updated == desired && available == desired && ready == desired && total == desired {
        return Readiness::Ready;
    }
    let mut message = format!("{ready}/{desired} ready, {updated} updated, {available} available");
    if total > desired {
        message.push_str(&format!(", {} old pods terminating", total - desired));
    }
    if let Some(c) = condition(live, "Available")
        && c.get("status").and_then(Value::as_str) != Some("True")
    {
        message.push_str(&format!("; {}", describe(c)));
    }
    Readiness::Waiting(message)
}

fn stateful_set(live: &Value) -> Readiness {
    if let Err(waiting) = generation_observed(live) {
        return waiting;
    }
    let desired = int(live, "/spec/replicas").unwrap_or(1);
    let ready = int(live, "/status/readyReplicas").unwrap_or(0);
    let updated = int(live, "/status/updatedReplicas").unwrap_or(0);
    let revisions = (
        live.pointer("/status/currentRevision")
            .and_then(Value::as_str),
        live.pointer("/status/updateRevision")
            .and_then(Value::as_str),
    );
    let rolled_out = matches!(revisions, (Some(current), Some(update)) if current == update);
    if ready == desired && updated == desired && rolled_out {
        Readiness::Ready
    } else {
        Readiness::Waiting(format!(
            "{ready}/{desired} ready, {updated} updated{}",
            if rolled_out {
                ""
            } else {
                ", rollout in progress"
            }
        ))
    }
}

fn job(live: &Value) -> Readiness {
    let is_true = |kind: &str| {
        condition(live, kind).filter(|c| c.get("status").and_then(Value::as_str) == Some("True"))
    };
    if let Some(failed) = is_true("Failed") {
        return Readiness::Failed(describe(failed));
    }
    if is_true("Complete").is_some() {
        return Readiness::Ready;
    }
    Readiness::Waiting(format!(
        "{} succeeded, {} active",
        int(live, "/status/succeeded").unwrap_or(0),
        int(live, "/status/active").unwrap_or(0)
    ))
}

fn load_balancer_address(live: &Value) -> Readiness {
    match external_address(live) {
        Some(_) => Readiness::Ready,
        None => Readiness::Waiting("no load balancer address yet".into()),
    }
}

/// The first external address a Service, Ingress or Gateway reports.
pub fn external_address(live: &Value) -> Option<String> {
    let from_ingress = live
        .pointer("/status/loadBalancer/ingress")
        .and_then(Value::as_array)
        .and_then(|list| list.first())
        .and_then(|entry| entry.get("ip").or_else(|| entry.get("hostname")))
        .and_then(Value::as_str);
    let from_gateway = live
        .pointer("/status/addresses")
        .and_then(Value::as_array)
        .and_then(|list| list.first())
        .and_then(|entry| entry.get("value"))
        .and_then(Value::as_str);
    from_ingress.or(from_gateway).map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn reference(api_version: &str, kind: &str) -> ObjectRef {
        ObjectRef {
            api_version: api_version.into(),
            kind: kind.into(),
            namespace: Some("blackfriday".into()),
            name: "x".into(),
        }
    }

    fn deployment_with(status: Value) -> Value {
        json!({"metadata": {"generation": 3}, "spec": {"replicas": 2}, "status": status})
    }

    #[test]
    fn a_deployment_is_ready_only_when_every_count_matches_the_current_generation() {
        let d = reference("apps/v1", "Deployment");
        let all = json!({"observedGeneration": 3, "replicas": 2, "updatedReplicas": 2,
                         "availableReplicas": 2, "readyReplicas": 2});
        assert_eq!(assess(&d, &deployment_with(all.clone())), Readiness::Ready);

        let mut stale = all.clone();
        stale["observedGeneration"] = json!(2);
        assert!(
            matches!(assess(&d, &deployment_with(stale)), Readiness::Waiting(m) if m.contains("generation 3"))
        );

        let mut surging = all.clone();
        surging["replicas"] = json!(3);
        assert!(
            matches!(assess(&d, &deployment_with(surging)), Readiness::Waiting(m) if m.contains("old pods"))
        );

        let mut unready = all;
        unready["readyReplicas"] = json!(1);
        assert!(
            matches!(assess(&d, &deployment_with(unready)), Readiness::Waiting(m) if m.starts_with("1/2 ready"))
        );
    }

    #[test]
    fn progress_deadline_exceeded_is_a_failure_with_the_controllers_message() {
        let d = reference("apps/v1", "Deployment");
        let live = deployment_with(json!({"observedGeneration": 3, "conditions": [
            {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
             "message": "ReplicaSet \"gateway-5d9\" has timed out progressing."}]}));
        let Readiness::Failed(message) = assess(&d, &live) else {
            panic!("not a failure")
        };
        assert!(message.contains("timed out progressing"), "{message}");
    }

    #[test]
    fn kafka_needs_ready_for_the_current_generation_and_node_pools_are_never_waited_on() {
        let kafka = reference("kafka.strimzi.io/v1", "Kafka");
        let ready = json!({"metadata": {"generation": 2}, "status": {"observedGeneration": 2,
            "conditions": [{"type": "Ready", "status": "True"}]}});
        assert_eq!(assess(&kafka, &ready), Readiness::Ready);
        let old = json!({"metadata": {"generation": 2}, "status": {"observedGeneration": 1,
            "conditions": [{"type": "Ready", "status": "True"}]}});
        assert!(matches!(assess(&kafka, &old), Readiness::Waiting(_)));
        let not_ready = json!({"metadata": {"generation": 1}, "status": {"observedGeneration": 1,
            "conditions": [{"type": "NotReady", "status": "True", "reason": "Creating",
                            "message": "Kafka cluster is being deployed"}]}});
        let Readiness::Waiting(message) = assess(&kafka, &not_ready) else {
            panic!()
        };
        assert!(message.contains("being deployed"), "{message}");
        assert!(!has_rule(&reference(
            "kafka.strimzi.io/v1",
            "KafkaNodePool"
        )));
    }

    #[test]
    fn a_virtual_machine_is_waited_on_through_its_instance() {
        let vm = reference("kubevirt.io/v1", "VirtualMachine");
        let target = wait_target(&vm);
        assert_eq!(target.kind, "VirtualMachineInstance");
        assert_eq!(target.name, vm.name);
        let ready = json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}});
        assert_eq!(assess(&target, &ready), Readiness::Ready);
    }

    #[test]
    fn crds_jobs_gateways_and_load_balancers() {
        let crd = reference("apiextensions.k8s.io/v1", "CustomResourceDefinition");
        let established = json!({"status": {"conditions": [
            {"type": "NamesAccepted", "status": "True"}, {"type": "Established", "status": "True"}]}});
        assert_eq!(assess(&crd, &established), Readiness::Ready);
        assert!(matches!(assess(&crd, &json!({})), Readiness::Waiting(_)));

        let job = reference("batch/v1", "Job");
        let failed = json!({"status": {"conditions": [{"type": "Failed", "status": "True",
            "reason": "BackoffLimitExceeded"}]}});
        assert!(
            matches!(assess(&job, &failed), Readiness::Failed(m) if m.contains("BackoffLimitExceeded"))
        );

        let gateway = reference("gateway.networking.k8s.io/v1", "Gateway");
        let programmed = json!({"metadata": {"generation": 1}, "status": {
            "addresses": [{"value": "34.1.2.3"}],
            "conditions": [{"type": "Programmed", "status": "True", "observedGeneration": 1}]}});
        assert_eq!(assess(&gateway, &programmed), Readiness::Ready);
        assert_eq!(external_address(&programmed).as_deref(), Some("34.1.2.3"));

        let service = reference("v1", "Service");
        let pending = json!({"spec": {"type": "LoadBalancer"}, "status": {"loadBalancer": {}}});
        assert!(matches!(assess(&service, &pending), Readiness::Waiting(_)));
        let cluster_ip = json!({"spec": {"type": "ClusterIP"}});
        assert_eq!(assess(&service, &cluster_ip), Readiness::Ready);
    }
}
