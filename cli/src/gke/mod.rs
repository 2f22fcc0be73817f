//! `bfctl cluster create | status | delete | token`: the GKE Standard
//! cluster bfctl.yaml's `gke:` describes, from an empty project to a
//! kubeconfig context `bfctl up` can use.
//!
//! * [`api`]: the GKE v1 REST API with Application Default Credentials;
//! * [`cluster`]: the `Cluster` asked for, differences from a live one,
//!   following an `Operation`;
//! * [`kubeconfig`]: the context, merged into the user's kubeconfig, whose
//!   credentials come from `bfctl cluster token`.
//!
//! This module decides and reports; the command layer prints.

pub mod api;
pub mod cluster;
pub mod kubeconfig;

use std::path::Path;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use crate::plan::gke::Gke;
use api::{GKE, GoogleApi};

/// How long a create or delete may take before bfctl stops following it
/// (the operation goes on; running the command again follows it).
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(45 * 60);

/// What `cluster create` did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Created {
    pub cluster: String,
    /// `created`, `resumed` (an earlier create's operation followed) or
    /// `existing`.
    pub action: String,
    /// For an existing cluster: what was changed in place to match
    /// bfctl.yaml (autoscaling bounds, the Gateway API channel).
    pub changed: Vec<String>,
    /// What differs and was not changed, each with why.
    pub differences: Vec<String>,
    pub context: String,
    pub kubeconfig: String,
}

/// `bfctl cluster create`: idempotent. `seen` hears the operation's states.
/// `registry_trust` is the containerd configuration that makes the nodes
/// trust a registry bfctl provides (set on a new cluster; a live one gets
/// it from `bfctl registry create`).
pub async fn create(
    gke: &Gke,
    registry_trust: Option<&Value>,
    kubeconfig: Option<&Path>,
    seen: &mut dyn FnMut(&cluster::OperationState),
) -> anyhow::Result<Created> {
    let api = GoogleApi::connect(&gke.project.0, &GKE).await?;
    let path = gke.cluster_path();
    let mut wanted = cluster::cluster_request(gke);
    if let Some(trust) = registry_trust {
        // The cluster's default for pools made later, and each pool made now.
        wanted["nodePoolDefaults"] =
            serde_json::json!({ "nodeConfigDefaults": { "containerdConfig": trust } });
        for pool in wanted["nodePools"].as_array_mut().into_iter().flatten() {
            pool["config"]["containerdConfig"] = trust.clone();
        }
    }
    let mut action = "existing";
    let mut changed = Vec::new();
    let mut differences = Vec::new();
    let live = match api.get_cluster(&path).await {
        Ok(live) => Some(live),
        Err(failure) if failure.is_not_found() => None,
        Err(failure) => return Err(failure.into()),
    };
    let live = match live {
        Some(live) => {
            if let Some(operation) = cluster::running_operation(&api, gke).await? {
                action = "resumed";
                let op_path = cluster::operation_path(&operation, &gke.parent());
                cluster::follow(&api, &op_path, OPERATION_TIMEOUT, |s| seen(s)).await?;
                api.get_cluster(&path).await?
            } else {
                // Only a cluster bfctl made is changed; another's is
                // compared and left as it is.
                let ours = cluster::made_by_bfctl(&live);
                for difference in cluster::differences(&wanted, &live) {
                    match &difference.fix {
                        Some(_) if !ours => differences.push(format!(
                            "{} (not changed: the cluster was not made by bfctl, it has no {}={} label)",
                            difference.text,
                            cluster::MANAGED_BY_LABEL.0,
                            cluster::MANAGED_BY_LABEL.1
                        )),
                        Some(fix) => {
                            let operation = cluster::apply_fix(&api, &path, fix).await?;
                            let op_path = cluster::operation_path(&operation, &gke.parent());
                            cluster::follow(&api, &op_path, OPERATION_TIMEOUT, |s| seen(s)).await?;
                            changed.push(difference.text);
                        }
                        None => {
                            differences.push(format!("{} ({})", difference.text, difference.why))
                        }
                    }
                }
                if changed.is_empty() {
                    live
                } else {
                    api.get_cluster(&path).await?
                }
            }
        }
        None => {
            // A name GKE would accept here but that the project already
            // uses elsewhere is almost always a wrong location.
            let elsewhere: Vec<String> = api
                .list_all_clusters()
                .await?
                .iter()
                .filter(|c| c["name"] == gke.cluster.0.as_str())
                .filter_map(|c| c["location"].as_str().map(str::to_string))
                .collect();
            if !elsewhere.is_empty() {
                anyhow::bail!(
                    "project {} already has a cluster named {} in {} (not in {}): set gke.location to {} to use it, or choose another gke.cluster",
                    gke.project.0,
                    gke.cluster.0,
                    elsewhere.join(", "),
                    gke.location.0,
                    elsewhere[0]
                );
            }
            action = "created";
            let operation = api.create_cluster(&gke.parent(), &wanted).await?;
            let op_path = cluster::operation_path(&operation, &gke.parent());
            cluster::follow(&api, &op_path, OPERATION_TIMEOUT, |s| seen(s)).await?;
            api.get_cluster(&path).await?
        }
    };
    let endpoint = live["endpoint"].as_str().unwrap_or_default();
    if endpoint.is_empty() {
        anyhow::bail!(
            "cluster {path} has no endpoint yet (status {}); run `bfctl cluster create` again once it is RUNNING",
            live["status"].as_str().unwrap_or("unknown")
        );
    }
    let file = kubeconfig::path(kubeconfig)?;
    let bfctl = std::env::current_exe()
        .map_err(|error| anyhow::anyhow!("locating the bfctl executable: {error}"))?;
    let context = kubeconfig::merge(
        &file,
        gke,
        endpoint,
        live["masterAuth"]["clusterCaCertificate"]
            .as_str()
            .unwrap_or(""),
        &bfctl,
    )?;
    Ok(Created {
        cluster: path,
        action: action.into(),
        changed,
        differences,
        context,
        kubeconfig: file.display().to_string(),
    })
}

/// What `cluster status` shows.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterStatus {
    pub cluster: String,
    pub exists: bool,
    pub status: String,
    pub version: String,
    pub endpoint: String,
    /// Nodes in the whole cluster, as GKE counts them.
    pub nodes: i64,
    pub gateway_api_channel: String,
    pub pools: Vec<PoolStatus>,
    /// Operations on the cluster that have not finished.
    pub running_operations: Vec<String>,
    /// Whether bfctl made it (its `managed-by: bfctl` label).
    pub made_by_bfctl: bool,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PoolStatus {
    pub name: String,
    pub status: String,
    pub machine_type: String,
    pub nested_virtualization: bool,
    pub min_nodes: i64,
    pub max_nodes: i64,
}

/// `bfctl cluster status`.
pub async fn status(gke: &Gke) -> anyhow::Result<ClusterStatus> {
    let api = GoogleApi::connect(&gke.project.0, &GKE).await?;
    let path = gke.cluster_path();
    let live = match api.get_cluster(&path).await {
        Ok(live) => live,
        Err(failure) if failure.is_not_found() => {
            return Ok(ClusterStatus {
                cluster: path,
                exists: false,
                status: "absent".into(),
                version: String::new(),
                endpoint: String::new(),
                nodes: 0,
                gateway_api_channel: String::new(),
                pools: Vec::new(),
                running_operations: Vec::new(),
                made_by_bfctl: false,
            });
        }
        Err(failure) => return Err(failure.into()),
    };
    let text = |value: &Value| value.as_str().unwrap_or_default().to_string();
    let int = |value: &Value| {
        value
            .as_i64()
            .or_else(|| value.as_str().and_then(|s| s.parse().ok()))
            .unwrap_or(0)
    };
    let pools = live["nodePools"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|pool| PoolStatus {
            name: text(&pool["name"]),
            status: text(&pool["status"]),
            machine_type: text(&pool["config"]["machineType"]),
            nested_virtualization: pool["config"]["advancedMachineFeatures"]
                ["enableNestedVirtualization"]
                == true,
            min_nodes: int(&pool["autoscaling"]["minNodeCount"]),
            max_nodes: int(&pool["autoscaling"]["maxNodeCount"]),
        })
        .collect();
    let running_operations = api
        .list_operations(&gke.parent())
        .await?
        .iter()
        .filter(|o| {
            o["status"] != "DONE"
                && o["targetLink"]
                    .as_str()
                    .is_some_and(|link| link.ends_with(&path))
        })
        .map(|o| {
            format!(
                "{} {} ({})",
                text(&o["operationType"]),
                text(&o["name"]),
                text(&o["status"])
            )
        })
        .collect();
    Ok(ClusterStatus {
        cluster: path,
        exists: true,
        status: text(&live["status"]),
        version: text(&live["currentMasterVersion"]),
        endpoint: text(&live["endpoint"]),
        nodes: int(&live["currentNodeCount"]),
        gateway_api_channel: text(&live["networkConfig"]["gatewayApiConfig"]["channel"]),
        pools,
        running_operations,
        made_by_bfctl: cluster::made_by_bfctl(&live),
    })
}

/// `bfctl cluster delete` once the caller made sure nothing of the
/// pipeline is left on it: deletes a cluster bfctl made and follows the
/// operation. Returns false when there was none.
pub async fn delete(
    gke: &Gke,
    seen: &mut dyn FnMut(&cluster::OperationState),
) -> anyhow::Result<bool> {
    let api = GoogleApi::connect(&gke.project.0, &GKE).await?;
    let path = gke.cluster_path();
    let live = match api.get_cluster(&path).await {
        Ok(live) => live,
        Err(failure) if failure.is_not_found() => return Ok(false),
        Err(failure) => return Err(failure.into()),
    };
    if !cluster::made_by_bfctl(&live) {
        anyhow::bail!(
            "cluster {path} was not made by bfctl (it has no {}={} label): bfctl will not delete it; delete it in the console or with gcloud if that is what you want",
            cluster::MANAGED_BY_LABEL.0,
            cluster::MANAGED_BY_LABEL.1
        );
    }
    let operation = match cluster::running_operation(&api, gke).await? {
        Some(running) if running["operationType"] == "DELETE_CLUSTER" => running,
        _ => api.delete_cluster(&path).await?,
    };
    let op_path = cluster::operation_path(&operation, &gke.parent());
    cluster::follow(&api, &op_path, OPERATION_TIMEOUT, |s| seen(s)).await?;
    Ok(true)
}

/// `bfctl cluster token`: a client.authentication.k8s.io/v1 ExecCredential
/// with a Google access token (Application Default Credentials; no
/// bfctl.yaml needed).
pub async fn exec_credential() -> anyhow::Result<Value> {
    let api = GoogleApi::connect("", &GKE).await?;
    let (token, expiry) = api.access_token().await?;
    Ok(serde_json::json!({
        "apiVersion": "client.authentication.k8s.io/v1",
        "kind": "ExecCredential",
        "status": { "token": token, "expirationTimestamp": expiry }
    }))
}
