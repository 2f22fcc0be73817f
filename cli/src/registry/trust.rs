//! The cluster's trust of the registry bfctl provides: GKE's containerd
//! configuration (`privateRegistryAccessConfig`) names the CA's Secret
//! Manager secret for the address the nodes pull from. Set on a cluster
//! bfctl made (by `registry create`, or by `cluster create` when the
//! registry came first), taken out by `registry delete`; every other
//! registry the cluster trusts is kept.

use std::path::Path;

use serde_json::{Value, json};

use super::store::Store;
use super::{ResourceState, ZotPlan, zot};
use crate::google::api::{GKE, GoogleApi};
use crate::plan::config::Config;
use crate::plan::gke::Gke;
use crate::plan::registry::RegistryKind;

/// The containerd configuration that makes a cluster's nodes trust the
/// registry's CA (held in Secret Manager) for `host`.
pub fn containerd_trust(project: &str, host: &str, ca_secret: &str) -> Value {
    json!({
        "privateRegistryAccessConfig": {
            "enabled": true,
            "certificateAuthorityDomainConfig": [{
                "fqdns": [host],
                "gcpSecretManagerCertificateConfig": {
                    "secretUri": format!("projects/{project}/secrets/{ca_secret}/versions/latest")
                }
            }]
        }
    })
}

/// The containerd trust for the registry recorded in `state_dir`, for
/// `cluster create` (None: kind is not zot, or no registry yet).
pub fn recorded_trust(config: &Config, state_dir: &Path) -> anyhow::Result<Option<Value>> {
    if config.registry.kind != RegistryKind::Zot {
        return Ok(None);
    }
    let Some(recorded) = Store::under(state_dir).recorded()? else {
        return Ok(None);
    };
    let host = if recorded.pull_host.is_empty() {
        &recorded.host
    } else {
        &recorded.pull_host
    };
    Ok(Some(containerd_trust(
        &recorded.project,
        host,
        &zot::SecretNames::of(&recorded.name).ca,
    )))
}

/// Whether a live cluster's containerd configuration trusts `host`.
pub fn cluster_trusts(cluster: &Value, host: &str) -> bool {
    cluster["nodePoolDefaults"]["nodeConfigDefaults"]["containerdConfig"]
        ["privateRegistryAccessConfig"]["certificateAuthorityDomainConfig"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|domain| {
            domain["fqdns"]
                .as_array()
                .is_some_and(|fqdns| fqdns.iter().any(|f| f == host))
        })
}

/// The `gke:` cluster as GKE shows it, with a client: None when it does
/// not exist.
pub(super) async fn gke_cluster(gke: &Gke) -> anyhow::Result<(GoogleApi, Option<Value>)> {
    let api = GoogleApi::connect(&gke.project.0, &GKE).await?;
    match api.get_cluster(&gke.cluster_path()).await {
        Ok(cluster) => Ok((api, Some(cluster))),
        Err(failure) if failure.is_not_found() => Ok((api, None)),
        Err(failure) => Err(failure.into()),
    }
}

/// The cluster's containerd configuration with the entry for `host`
/// replaced by `entry` (None: removed); every other registry it trusts is
/// kept.
fn with_trust_entry(cluster: &Value, host: &str, entry: Option<Value>) -> Value {
    let mut containerd =
        cluster["nodePoolDefaults"]["nodeConfigDefaults"]["containerdConfig"].clone();
    if !containerd.is_object() {
        containerd = json!({});
    }
    let access = &mut containerd["privateRegistryAccessConfig"];
    let mut domains: Vec<Value> = access["certificateAuthorityDomainConfig"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|domain| {
            !domain["fqdns"]
                .as_array()
                .is_some_and(|fqdns| fqdns.iter().any(|f| f == host))
        })
        .cloned()
        .collect();
    domains.extend(entry);
    access["enabled"] = Value::Bool(!domains.is_empty());
    access["certificateAuthorityDomainConfig"] = Value::Array(domains);
    containerd
}

/// Sends a cluster its new containerd configuration and follows the
/// operation.
async fn set_containerd(api: &GoogleApi, gke: &Gke, containerd: Value) -> anyhow::Result<()> {
    let operation = api
        .update_cluster(
            &gke.cluster_path(),
            &json!({ "desiredContainerdConfig": containerd }),
        )
        .await?;
    let op_path = crate::gke::cluster::operation_path(&operation, &gke.parent());
    crate::gke::cluster::follow(api, &op_path, crate::gke::OPERATION_TIMEOUT, |_| {}).await?;
    Ok(())
}

/// Sets the trust on the `gke:` cluster when it exists and bfctl made it.
pub(super) async fn trust_on_cluster(
    config: &Config,
    plan: &ZotPlan,
    pull_host: &str,
    ca_secret: &str,
) -> anyhow::Result<String> {
    let Some(gke) = &config.gke else {
        return Ok(
            "no gke: section: give the cluster's nodes the CA in .bfctl/registry/ca.pem yourself"
                .into(),
        );
    };
    let (api, cluster) = gke_cluster(gke).await?;
    let Some(cluster) = cluster else {
        return Ok(format!(
            "cluster {} does not exist yet: `bfctl cluster create` sets the trust",
            gke.cluster.0
        ));
    };
    if cluster_trusts(&cluster, pull_host) {
        return Ok(format!("cluster {} trusts it already", gke.cluster.0));
    }
    if !crate::gke::cluster::made_by_bfctl(&cluster) {
        return Ok(format!(
            "cluster {} was not made by bfctl: not changed; give its nodes the CA yourself",
            gke.cluster.0
        ));
    }
    let ours = containerd_trust(&plan.project, pull_host, ca_secret)["privateRegistryAccessConfig"]
        ["certificateAuthorityDomainConfig"][0]
        .clone();
    set_containerd(&api, gke, with_trust_entry(&cluster, pull_host, Some(ours))).await?;
    Ok(format!(
        "cluster {}: its nodes now trust the registry's CA for {pull_host}",
        gke.cluster.0
    ))
}

/// Takes the registry out of the `gke:` cluster's containerd trust (its CA
/// secret is gone), keeping every other registry it trusts; only on a
/// cluster bfctl made.
pub(super) async fn untrust_on_cluster(
    config: &Config,
    pull_host: &str,
) -> anyhow::Result<Option<ResourceState>> {
    let Some(gke) = &config.gke else {
        return Ok(None);
    };
    let (api, Some(cluster)) = gke_cluster(gke).await? else {
        return Ok(None);
    };
    if !cluster_trusts(&cluster, pull_host) || !crate::gke::cluster::made_by_bfctl(&cluster) {
        return Ok(None);
    }
    set_containerd(&api, gke, with_trust_entry(&cluster, pull_host, None)).await?;
    Ok(Some(ResourceState {
        resource: format!("cluster {}'s trust of {pull_host}", gke.cluster.0),
        state: "deleted".into(),
        detail: String::new(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_trust_of_other_registries_is_kept_when_bfctls_is_set_or_removed() {
        let theirs = json!({"fqdns": ["10.0.0.5:443"], "gcpSecretManagerCertificateConfig": {"secretUri": "projects/p/secrets/theirs/versions/1"}});
        let cluster = json!({"nodePoolDefaults": {"nodeConfigDefaults": {"containerdConfig": {
            "privateRegistryAccessConfig": {"enabled": true, "certificateAuthorityDomainConfig": [theirs.clone()]}
        }}}});
        let ours = containerd_trust("p", "10.132.0.9:5000", "bfctl-registry-ca")
            ["privateRegistryAccessConfig"]["certificateAuthorityDomainConfig"][0]
            .clone();
        let set = with_trust_entry(&cluster, "10.132.0.9:5000", Some(ours.clone()));
        assert_eq!(
            set["privateRegistryAccessConfig"]["certificateAuthorityDomainConfig"],
            json!([theirs.clone(), ours])
        );
        let trusting =
            json!({"nodePoolDefaults": {"nodeConfigDefaults": {"containerdConfig": set}}});
        assert!(cluster_trusts(&trusting, "10.132.0.9:5000"));
        let removed = with_trust_entry(&trusting, "10.132.0.9:5000", None);
        assert_eq!(
            removed["privateRegistryAccessConfig"],
            json!({"enabled": true, "certificateAuthorityDomainConfig": [theirs]})
        );
        let none = with_trust_entry(&json!({}), "10.132.0.9:5000", None);
        assert_eq!(none["privateRegistryAccessConfig"]["enabled"], false);
    }
}
