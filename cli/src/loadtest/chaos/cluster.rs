//! Faults in a cluster, through the API server: deleting a consumer,
//! producer or gateway pod (its Deployment's controller makes another),
//! deleting the Kafka broker pod (Strimzi's StrimziPodSet makes it again),
//! and restarting the Valkey VM through KubeVirt's `restart` subresource
//! (the VM's instance is stopped and a new one started).
//!
//! Never touch what is not ours: before any fault the object that owns the
//! victim (the Deployment, the `Kafka`, the `VirtualMachine`) must be this
//! install's (`kube_apply::inventory::ensure_owned`), and the victim is
//! found by that owner's own selector in the install's namespace.
//!
//! Whole again: the three Deployments ready (the same rule as `bfctl up`),
//! every broker pod Running and Ready, the Valkey VM's instance Ready; and
//! the pod or instance the fault removed gone (a new one with another uid
//! stands in: until the old one is gone, "ready" may still be its).
//!
//! Where the names come from: Strimzi labels broker pods
//! `strimzi.io/cluster`, `strimzi.io/kind=Kafka` and
//! `strimzi.io/broker-role=true` (strimzi-kafka-operator, `Labels.java`);
//! KubeVirt's restart is `PUT /apis/subresources.kubevirt.io/v1/namespaces/
//! NS/virtualmachines/NAME/restart` with a `RestartOptions` body (KubeVirt
//! API reference; what `virtctl restart` calls).

use std::sync::Arc;

use anyhow::{Context, bail};
use serde_json::{Value, json};

use super::FaultInjector;
use super::plan::{Action, Fault, Target};
use kube_apply::readiness::{self, Readiness};
use kube_apply::{Cluster, ObjectRef};

/// A cluster's pipeline, as `bfctl up` installed it.
pub struct ClusterInjector {
    runtime: Arc<tokio::runtime::Runtime>,
    cluster: Cluster,
    install: String,
    kafka_cluster: String,
    /// The uid of what the last fault removed (a pod or a VM instance).
    removed: Option<Removed>,
}

struct Removed {
    object: ObjectRef,
    uid: String,
}

/// The Valkey VM's name (valkey.yaml).
const VALKEY_VM: &str = "valkey";

impl ClusterInjector {
    pub fn new(
        runtime: Arc<tokio::runtime::Runtime>,
        cluster: Cluster,
        install: &str,
        kafka_cluster: &str,
    ) -> ClusterInjector {
        ClusterInjector {
            runtime,
            cluster,
            install: install.to_string(),
            kafka_cluster: kafka_cluster.to_string(),
            removed: None,
        }
    }

    fn namespace(&self) -> String {
        self.cluster.default_namespace().to_string()
    }

    fn object(&self, api_version: &str, kind: &str, name: &str) -> ObjectRef {
        ObjectRef {
            api_version: api_version.into(),
            kind: kind.into(),
            namespace: Some(self.namespace()),
            name: name.into(),
        }
    }

    fn deployment(&self, target: Target) -> ObjectRef {
        self.object("apps/v1", "Deployment", target.name())
    }

    fn kafka(&self) -> ObjectRef {
        self.object("kafka.strimzi.io/v1", "Kafka", &self.kafka_cluster)
    }

    fn broker_selector(&self) -> String {
        format!(
            "strimzi.io/cluster={},strimzi.io/kind=Kafka,strimzi.io/broker-role=true",
            self.kafka_cluster
        )
    }

    /// Fails unless `owner` is this install's.
    async fn ensure_ours(&self, owner: &ObjectRef) -> anyhow::Result<()> {
        kube_apply::inventory::ensure_owned(
            &self.cluster,
            owner,
            &self.install,
            "run `bfctl up` first",
        )
        .await?;
        Ok(())
    }

    /// The pods of the install's namespace matching `selector`, by name.
    async fn pods(&self, selector: &str) -> anyhow::Result<Vec<Value>> {
        let namespace = self.namespace();
        let mut pods: Vec<Value> = self
            .cluster
            .list("v1", "Pod", selector)
            .await
            .with_context(|| format!("listing the pods {selector}"))?
            .into_iter()
            .filter(|pod| {
                pod.pointer("/metadata/namespace").and_then(Value::as_str) == Some(&namespace)
            })
            .collect();
        pods.sort_by_key(|pod| name_of(pod).to_string());
        Ok(pods)
    }

    /// Deletes the first running pod of `pods` (`what`, found by `how`).
    async fn delete_pod(
        &mut self,
        pods: Vec<Value>,
        what: &str,
        how: &str,
    ) -> anyhow::Result<String> {
        let pod = pods
            .into_iter()
            .find(|pod| {
                pod.pointer("/status/phase").and_then(Value::as_str) == Some("Running")
                    && pod.pointer("/metadata/deletionTimestamp").is_none()
            })
            .with_context(|| format!("no running {what} pod ({how})"))?;
        let object = self.object("v1", "Pod", name_of(&pod));
        let uid = uid_of(&pod).to_string();
        self.cluster.delete(&object).await?;
        let done = format!("deleted pod {} (uid {uid})", object.name);
        self.removed = Some(Removed { object, uid });
        Ok(done)
    }

    async fn inject_async(&mut self, fault: &Fault) -> anyhow::Result<String> {
        match (fault.target, fault.action) {
            (Target::Consumer | Target::Producer | Target::Gateway, Action::DeletePod) => {
                let deployment = self.deployment(fault.target);
                self.ensure_ours(&deployment).await?;
                let pods = self.cluster.pods_of(&deployment).await?;
                let how = format!("selected by {deployment}");
                self.delete_pod(pods, fault.target.name(), &how).await
            }
            (Target::Broker, Action::DeletePod) => {
                self.ensure_ours(&self.kafka()).await?;
                let selector = self.broker_selector();
                let pods = self.pods(&selector).await?;
                self.delete_pod(pods, "Kafka broker", &selector).await
            }
            (Target::Valkey, Action::Restart) => {
                let vm = self.object("kubevirt.io/v1", "VirtualMachine", VALKEY_VM);
                self.ensure_ours(&vm).await?;
                let instance = vm.with_kind("VirtualMachineInstance");
                let uid = match self.cluster.get(&instance).await? {
                    Some(live) => uid_of(&live).to_string(),
                    None => bail!("{instance} does not exist: the VM is not running"),
                };
                let path = format!(
                    "/apis/subresources.kubevirt.io/v1/namespaces/{}/virtualmachines/{VALKEY_VM}/restart",
                    self.namespace()
                );
                self.cluster.put_subresource(&path, &json!({})).await?;
                self.removed = Some(Removed {
                    object: instance,
                    uid: uid.clone(),
                });
                Ok(format!(
                    "restarted VirtualMachine {VALKEY_VM} through KubeVirt (instance uid {uid})"
                ))
            }
            (target, action) => bail!(
                "{} of the {} is not a cluster fault",
                action.name(),
                target.name()
            ),
        }
    }

    /// Why `object` is not ready by `bfctl up`'s rule (`None`: it is).
    async fn not_ready(&self, object: &ObjectRef) -> anyhow::Result<Option<String>> {
        Ok(match self.cluster.get(object).await? {
            Some(live) => match readiness::assess(object, &live) {
                Readiness::Waiting(why) | Readiness::Failed(why) => {
                    Some(format!("{object}: {why}"))
                }
                Readiness::Ready => None,
            },
            None => Some(format!("{object} does not exist")),
        })
    }

    async fn not_whole_async(&mut self) -> anyhow::Result<Vec<String>> {
        let mut missing = Vec::new();
        for target in [Target::Gateway, Target::Producer, Target::Consumer] {
            missing.extend(self.not_ready(&self.deployment(target)).await?);
        }
        let brokers = self.pods(&self.broker_selector()).await?;
        if brokers.is_empty() {
            missing.push("no Kafka broker pod".into());
        }
        for pod in &brokers {
            if !pod_ready(pod) {
                missing.push(format!("broker pod {} not ready", name_of(pod)));
            }
        }
        let vm = self.object("kubevirt.io/v1", "VirtualMachine", VALKEY_VM);
        missing.extend(self.not_ready(&readiness::wait_target(&vm)).await?);
        if let Some(removed) = &self.removed {
            match self.cluster.get(&removed.object).await? {
                Some(live) if uid_of(&live) == removed.uid => missing.push(format!(
                    "{} (uid {}) is not gone yet",
                    removed.object, removed.uid
                )),
                _ => {}
            }
        }
        Ok(missing)
    }
}

impl FaultInjector for ClusterInjector {
    fn inject(&mut self, fault: &Fault) -> anyhow::Result<String> {
        let runtime = self.runtime.clone();
        runtime.block_on(self.inject_async(fault))
    }

    fn not_whole(&mut self) -> anyhow::Result<Vec<String>> {
        let runtime = self.runtime.clone();
        runtime.block_on(self.not_whole_async())
    }
}

fn name_of(object: &Value) -> &str {
    object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn uid_of(object: &Value) -> &str {
    object
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// Running, with its `Ready` condition true.
fn pod_ready(pod: &Value) -> bool {
    pod.pointer("/status/phase").and_then(Value::as_str) == Some("Running")
        && pod
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .is_some_and(|conditions| {
                conditions
                    .iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            })
        && pod.pointer("/metadata/deletionTimestamp").is_none()
}
