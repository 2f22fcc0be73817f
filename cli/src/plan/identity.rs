//! bfctl as kube-apply knows it: the labels every object bfctl applies
//! carries, the digest annotation, its field manager, and the kinds it
//! ever applies (where prune and teardown look). Changing any of these
//! changes which objects bfctl considers its own: never do it lightly.
//!
//! **An install** is one `bfctl up` target: a name (`install:` in
//! bfctl.yaml, by default the namespace). Every object bfctl applies carries
//! `app.kubernetes.io/managed-by=bfctl` and `bfctl.io/install=<name>`,
//! cluster-scoped ones included (see [`super::render`]).

use kube_apply::Identity;

pub use kube_apply::identity::{MANAGED_BY_LABEL, PART_OF_LABEL};

/// The step (component or operator bundle) an object was applied by.
pub const COMPONENT_LABEL: &str = "bfctl.io/component";
/// The install an object belongs to.
pub const INSTALL_LABEL: &str = "bfctl.io/install";
/// A digest of the manifest bfctl last applied to an object.
pub const APPLIED_ANNOTATION: &str = "bfctl.io/applied";

/// bfctl, described once for kube-apply.
pub const IDENTITY: Identity = Identity {
    manager: "bfctl",
    user_agent: concat!("bfctl/", env!("CARGO_PKG_VERSION")),
    install_label: INSTALL_LABEL,
    component_label: COMPONENT_LABEL,
    applied_annotation: APPLIED_ANNOTATION,
    kinds: KINDS,
    record_name: "bfctl-install",
    record_component: "inventory",
    finalizer_way_out: "`bfctl teardown --remove-finalizers` (asks first)",
};

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
