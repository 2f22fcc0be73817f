//! The cluster bfctl.yaml's `gke:` asks for, as the GKE API's `Cluster`
//! (two node pools: `general`, and `virt` with nested virtualization,
//! labelled and tainted for the VM), how it differs from a live one, and
//! following a long-running `Operation` to its end.

use std::time::Duration;

use serde_json::{Value, json};

use super::api::{ApiFailure, GoogleApi};
use crate::plan::gke::{Gke, NODE_TAG, VIRT_POOL_LABEL, VIRT_POOL_VALUE};

/// The resource label that marks a cluster as made by bfctl: `cluster
/// delete` deletes nothing else.
pub const MANAGED_BY_LABEL: (&str, &str) = ("managed-by", "bfctl");

/// Whether a live cluster carries bfctl's [`MANAGED_BY_LABEL`].
pub fn made_by_bfctl(live: &Value) -> bool {
    live["resourceLabels"][MANAGED_BY_LABEL.0] == MANAGED_BY_LABEL.1
}

/// The `Cluster` body of a create request.
pub fn cluster_request(gke: &Gke) -> Value {
    let general = &gke.general;
    let virt = &gke.virt;
    json!({
        "name": gke.cluster.0,
        "resourceLabels": { MANAGED_BY_LABEL.0: MANAGED_BY_LABEL.1 },
        "releaseChannel": { "channel": gke.release_channel },
        "networkConfig": { "gatewayApiConfig": { "channel": gke.gateway_api_channel } },
        "nodePools": [
            {
                "name": "general",
                "initialNodeCount": general.min_nodes.0.max(1),
                "config": {
                    "machineType": general.machine_type.0,
                    "diskSizeGb": general.disk_size_gb.0,
                    "oauthScopes": [super::api::SCOPE],
                    "tags": [NODE_TAG],
                },
                "autoscaling": {
                    "enabled": true,
                    "minNodeCount": general.min_nodes.0,
                    "maxNodeCount": general.max_nodes.0,
                },
                "management": { "autoRepair": true, "autoUpgrade": true },
            },
            {
                "name": "virt",
                "initialNodeCount": virt.min_nodes.0.max(1),
                "config": {
                    "machineType": virt.machine_type.0,
                    "diskSizeGb": virt.disk_size_gb.0,
                    "imageType": virt.image_type.api_name(),
                    "advancedMachineFeatures": { "enableNestedVirtualization": true },
                    "labels": { VIRT_POOL_LABEL: VIRT_POOL_VALUE },
                    "taints": [{ "key": VIRT_POOL_LABEL, "value": VIRT_POOL_VALUE, "effect": "NO_SCHEDULE" }],
                    "oauthScopes": [super::api::SCOPE],
                    "tags": [NODE_TAG],
                },
                "autoscaling": {
                    "enabled": true,
                    "minNodeCount": virt.min_nodes.0,
                    "maxNodeCount": virt.max_nodes.0,
                },
                "management": { "autoRepair": true, "autoUpgrade": true },
            }
        ]
    })
}

/// A difference between the cluster asked for and the live one.
#[derive(Debug, Clone, PartialEq)]
pub struct Difference {
    /// `node pool virt: machineType: wanted n2-standard-4, the cluster has …`
    pub text: String,
    /// How to change it in place, when that is safe; `None` with `why`.
    pub fix: Option<Fix>,
    pub why: &'static str,
}

/// A change GKE makes in place without replacing nodes.
#[derive(Debug, Clone, PartialEq)]
pub enum Fix {
    /// A pool's autoscaling bounds (`nodePools.setAutoscaling`).
    Autoscaling { pool: String, min: i64, max: i64 },
    /// The Gateway API channel (`clusters.update`, desiredGatewayApiConfig).
    GatewayApi { channel: String },
}

const FIXED_AT_CREATION: &str = "fixed when a node pool is made: changing it means a new pool, and bfctl does not replace pools under a running pipeline";
const RELEASE_CHANNEL: &str = "a release channel change moves the cluster's upgrade track; change it in the console or with gcloud if that is what you want";

/// What differs between the cluster asked for and the live one, each with
/// the in-place fix when there is a safe one.
pub fn differences(wanted: &Value, live: &Value) -> Vec<Difference> {
    let mut found = Vec::new();
    let text = |value: &Value| match value {
        Value::Null => "(not set)".to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let same = |want: &Value, have: &Value| match (want, have) {
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        (Value::Number(a), Value::String(b)) | (Value::String(b), Value::Number(a)) => {
            b.parse::<f64>().ok() == a.as_f64()
        }
        (a, b) => a == b,
    };
    let describe = |what: &str, want: &Value, have: &Value| {
        format!(
            "{what}: wanted {}, the cluster has {}",
            text(want),
            text(have)
        )
    };
    let want = &wanted["networkConfig"]["gatewayApiConfig"]["channel"];
    let have = &live["networkConfig"]["gatewayApiConfig"]["channel"];
    if !same(want, have) {
        found.push(Difference {
            text: describe("gatewayApiChannel", want, have),
            fix: Some(Fix::GatewayApi {
                channel: text(want),
            }),
            why: "",
        });
    }
    let want = &wanted["releaseChannel"]["channel"];
    let have = &live["releaseChannel"]["channel"];
    if !same(want, have) {
        found.push(Difference {
            text: describe("releaseChannel", want, have),
            fix: None,
            why: RELEASE_CHANNEL,
        });
    }
    let pools = |cluster: &Value| -> Vec<Value> {
        cluster["nodePools"].as_array().cloned().unwrap_or_default()
    };
    let live_pools = pools(live);
    for pool in pools(wanted) {
        let name = pool["name"].as_str().unwrap_or_default().to_string();
        let Some(have) = live_pools.iter().find(|p| p["name"] == name.as_str()) else {
            found.push(Difference {
                text: format!("node pool {name}: missing from the cluster"),
                fix: None,
                why: "bfctl adds no pool to an existing cluster; delete the cluster and create it again, or add the pool in the console",
            });
            continue;
        };
        for (what, pointer) in [
            ("machineType", "/config/machineType"),
            ("diskSizeGb", "/config/diskSizeGb"),
            ("imageType", "/config/imageType"),
            (
                "nested virtualization",
                "/config/advancedMachineFeatures/enableNestedVirtualization",
            ),
        ] {
            if let Some(want) = pool.pointer(pointer) {
                let have = have.pointer(pointer).cloned().unwrap_or(Value::Null);
                if !same(want, &have) {
                    found.push(Difference {
                        text: describe(&format!("node pool {name}: {what}"), want, &have),
                        fix: None,
                        why: FIXED_AT_CREATION,
                    });
                }
            }
        }
        let bounds = ["/autoscaling/minNodeCount", "/autoscaling/maxNodeCount"];
        let differing: Vec<String> = bounds
            .iter()
            .filter_map(|pointer| {
                let want = pool.pointer(pointer)?;
                let have = have.pointer(pointer).cloned().unwrap_or(Value::Null);
                (!same(want, &have)).then(|| {
                    describe(
                        &format!("node pool {name}: {}", &pointer[1..].replace('/', ".")),
                        want,
                        &have,
                    )
                })
            })
            .collect();
        if !differing.is_empty() {
            found.push(Difference {
                text: differing.join("; "),
                fix: Some(Fix::Autoscaling {
                    pool: name.clone(),
                    min: pool["autoscaling"]["minNodeCount"].as_i64().unwrap_or(0),
                    max: pool["autoscaling"]["maxNodeCount"].as_i64().unwrap_or(1),
                }),
                why: "",
            });
        }
    }
    found
}

/// Applies a fix; returns the operation to follow.
pub async fn apply_fix(
    api: &GoogleApi,
    cluster_path: &str,
    fix: &Fix,
) -> Result<Value, ApiFailure> {
    match fix {
        Fix::Autoscaling { pool, min, max } => {
            api.set_autoscaling(
                &format!("{cluster_path}/nodePools/{pool}"),
                &json!({"enabled": true, "minNodeCount": min, "maxNodeCount": max}),
            )
            .await
        }
        Fix::GatewayApi { channel } => {
            api.update_cluster(
                cluster_path,
                &json!({"desiredGatewayApiConfig": {"channel": channel}}),
            )
            .await
        }
    }
}

/// Where an operation stands, for a progress display.
#[derive(Debug, Clone, PartialEq)]
pub struct OperationState {
    pub status: String,
    pub percent: Option<u64>,
    /// The stage running now, if the operation says.
    pub stage: Option<String>,
}

impl OperationState {
    pub fn of(operation: &Value) -> OperationState {
        let progress = &operation["progress"];
        let percent = progress["metrics"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|m| m["name"] == "percent done")
            .and_then(|m| {
                m["intValue"]
                    .as_str()
                    .and_then(|v| v.parse().ok())
                    .or_else(|| m["intValue"].as_u64())
            });
        let stage = progress["stages"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|s| s["status"] == "RUNNING")
            .and_then(|s| s["name"].as_str())
            .map(str::to_string);
        OperationState {
            status: operation["status"]
                .as_str()
                .unwrap_or("UNKNOWN")
                .to_string(),
            percent,
            stage,
        }
    }
}

/// `projects/P/locations/L/operations/OP` of an operation as the API
/// answers it (its `selfLink` names it; `name` is the short id).
pub fn operation_path(operation: &Value, location_parent: &str) -> String {
    let short = operation["name"].as_str().unwrap_or_default();
    format!("{location_parent}/operations/{short}")
}

/// Polls an operation until DONE; `seen` hears every new state. An
/// operation that ends with an `error` is an error naming it.
pub async fn follow(
    api: &GoogleApi,
    path: &str,
    timeout: Duration,
    mut seen: impl FnMut(&OperationState),
) -> anyhow::Result<Value> {
    let started = std::time::Instant::now();
    let mut pause = Duration::from_millis(100);
    let mut last: Option<OperationState> = None;
    loop {
        let operation = api.get_operation(path).await?;
        let state = OperationState::of(&operation);
        if last.as_ref() != Some(&state) {
            seen(&state);
            last = Some(state.clone());
        }
        if state.status == "DONE" {
            if let Some(message) = operation["error"]["message"].as_str() {
                anyhow::bail!(
                    "operation {} ({}) failed: {message}",
                    operation["name"].as_str().unwrap_or(path),
                    operation["operationType"].as_str().unwrap_or("")
                );
            }
            return Ok(operation);
        }
        if started.elapsed() > timeout {
            anyhow::bail!(
                "operation {path} is still {} after {} min; it goes on in Google Cloud: run the same command again to follow it",
                state.status,
                timeout.as_secs() / 60
            );
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(2));
    }
}

/// The operation still running on a cluster, if any (a create or delete
/// that an earlier bfctl started and did not see end).
pub async fn running_operation(api: &GoogleApi, gke: &Gke) -> Result<Option<Value>, ApiFailure> {
    let target = gke.cluster_path();
    Ok(api
        .list_operations(&gke.parent())
        .await?
        .into_iter()
        .find(|operation| {
            operation["status"] != "DONE"
                && operation["targetLink"]
                    .as_str()
                    .is_some_and(|link| link.ends_with(&target))
        }))
}
