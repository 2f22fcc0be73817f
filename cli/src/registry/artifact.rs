//! `registry.kind: artifact-registry`: a Docker-format repository in
//! Artifact Registry (the managed choice: no VM, no certificate, no
//! accounts of bfctl's own).
//!
//! * `create` makes the repository (labelled `managed-by: bfctl`) through
//!   the Artifact Registry v1 API and follows its operation; it records
//!   `LOCATION-docker.pkg.dev/PROJECT/REPOSITORY` as the registry URL;
//! * bfctl pushes as `oauth2accesstoken` with an access token from the same
//!   Application Default Credentials (Artifact Registry's documented way
//!   for a client that holds a token);
//! * the cluster's nodes pull with their own service account: bfctl reads
//!   the repository's IAM policy and says when that account holds no role
//!   that reads it (a grant on the whole project is not visible there, and
//!   is said to be possible too).

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use reqwest::Method;
use serde::Serialize;
use serde_json::{Value, json};

use super::cloud::{MANAGED_BY, get, made_by_bfctl};
use super::store::{Recorded, Store};
use crate::google::api::{ARTIFACT_REGISTRY, COMPUTE, GKE, GoogleApi};
use crate::plan::config::Config;
use crate::plan::registry::RegistryKind;

/// The roles any of which lets an account pull from a repository.
pub const READ_ROLES: &[&str] = &[
    "roles/artifactregistry.reader",
    "roles/artifactregistry.writer",
    "roles/artifactregistry.repoAdmin",
    "roles/artifactregistry.admin",
];

/// The user name Artifact Registry takes with an access token.
pub const TOKEN_USER: &str = "oauth2accesstoken";

#[derive(Debug, Clone)]
pub struct ArtifactPlan {
    pub project: String,
    pub location: String,
    pub repository: String,
}

impl ArtifactPlan {
    pub fn of(config: &Config) -> anyhow::Result<ArtifactPlan> {
        if config.registry.kind != RegistryKind::ArtifactRegistry {
            anyhow::bail!("registry.kind is not artifact-registry");
        }
        let section = config
            .registry
            .artifact_registry
            .as_ref()
            .context("registry.artifactRegistry: missing")?;
        let project = section
            .project
            .as_ref()
            .map(|p| p.0.clone())
            .or_else(|| config.gke.as_ref().map(|g| g.project.0.clone()))
            .context("registry.artifactRegistry.project: needed when there is no gke: section")?;
        Ok(ArtifactPlan {
            project,
            location: section.location.clone(),
            repository: section.repository.0.clone(),
        })
    }

    pub fn parent(&self) -> String {
        format!("projects/{}/locations/{}", self.project, self.location)
    }

    pub fn name(&self) -> String {
        format!("{}/repositories/{}", self.parent(), self.repository)
    }

    pub fn host(&self) -> String {
        format!("{}-docker.pkg.dev", self.location)
    }

    pub fn url(&self) -> String {
        format!("{}/{}/{}", self.host(), self.project, self.repository)
    }
}

/// What `registry create` and `registry status` say of the repository.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactReport {
    pub url: String,
    pub repository: String,
    /// `created`, `kept`, `absent`, `deleted`, `not bfctl's`.
    pub state: String,
    pub size_bytes: u64,
    /// Whether the nodes' service account can pull, or what to grant.
    pub nodes: String,
    pub healthy: bool,
}

/// Polls a `google.longrunning` Operation until `done`.
async fn follow(api: &GoogleApi, operation: &Value, timeout: Duration) -> anyhow::Result<Value> {
    let name = operation["name"].as_str().unwrap_or_default().to_string();
    let started = std::time::Instant::now();
    let mut current = operation.clone();
    let mut pause = Duration::from_millis(100);
    loop {
        if current["done"] == true {
            if let Some(message) = current["error"]["message"].as_str() {
                anyhow::bail!("operation {name} failed: {message}");
            }
            return Ok(current);
        }
        if started.elapsed() > timeout {
            anyhow::bail!(
                "operation {name} has not finished after {} s; it goes on in Google Cloud: run the same command again",
                timeout.as_secs()
            );
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(2));
        current = api.call(Method::GET, &name, &[], None).await?;
    }
}

/// The service account the `gke:` cluster's nodes run as, if there is one.
async fn nodes_account(config: &Config) -> anyhow::Result<Option<String>> {
    let Some(gke) = &config.gke else {
        return Ok(None);
    };
    let api = GoogleApi::connect(&gke.project.0, &GKE).await?;
    let cluster = match api.get_cluster(&gke.cluster_path()).await {
        Ok(cluster) => cluster,
        Err(failure) if failure.is_not_found() => return Ok(None),
        Err(failure) => return Err(failure.into()),
    };
    let account = cluster["nodePools"][0]["config"]["serviceAccount"]
        .as_str()
        .unwrap_or("default")
        .to_string();
    if account != "default" && !account.is_empty() {
        return Ok(Some(account));
    }
    let compute = GoogleApi::connect(&gke.project.0, &COMPUTE).await?;
    let project = compute
        .call(
            Method::GET,
            &format!("projects/{}", gke.project.0),
            &[],
            None,
        )
        .await?;
    Ok(project["defaultServiceAccount"]
        .as_str()
        .map(str::to_string))
}

/// Whether the nodes can pull, read from the repository's IAM policy.
async fn nodes_can_pull(
    config: &Config,
    api: &GoogleApi,
    plan: &ArtifactPlan,
) -> anyhow::Result<(bool, String)> {
    let Some(account) = nodes_account(config).await? else {
        return Ok((
            true,
            "no gke: cluster to check: the nodes' service account needs roles/artifactregistry.reader on the repository".into(),
        ));
    };
    let member = format!("serviceAccount:{account}");
    let policy = api
        .call(
            Method::GET,
            &format!("{}:getIamPolicy", plan.name()),
            &[],
            None,
        )
        .await?;
    let granted = policy["bindings"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|binding| {
            READ_ROLES.iter().any(|role| binding["role"] == *role)
                && binding["members"]
                    .as_array()
                    .is_some_and(|members| members.iter().any(|m| m == member.as_str()))
        });
    Ok(match granted {
        Some(binding) => (
            true,
            format!(
                "the nodes' account {account} holds {} on the repository",
                binding["role"].as_str().unwrap_or_default()
            ),
        ),
        None => (
            false,
            format!(
                "the nodes' account {account} holds no role that reads the repository: missing roles/artifactregistry.reader. Grant it with `gcloud artifacts repositories add-iam-policy-binding {} --location {} --project {} --member {member} --role roles/artifactregistry.reader` (a grant on the whole project works too; bfctl reads only the repository's policy)",
                plan.repository, plan.location, plan.project
            ),
        ),
    })
}

fn report(
    plan: &ArtifactPlan,
    live: Option<&Value>,
    state: &str,
    nodes: (bool, String),
) -> ArtifactReport {
    let size_bytes = live
        .and_then(|r| {
            r["sizeBytes"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .or_else(|| r["sizeBytes"].as_u64())
        })
        .unwrap_or(0);
    ArtifactReport {
        url: plan.url(),
        repository: plan.name(),
        state: state.to_string(),
        size_bytes,
        healthy: nodes.0 && live.is_some(),
        nodes: nodes.1,
    }
}

/// `bfctl registry create` for Artifact Registry: idempotent.
pub async fn create(config: &Config, state_dir: &Path) -> anyhow::Result<ArtifactReport> {
    let plan = ArtifactPlan::of(config)?;
    let api = GoogleApi::connect(&plan.project, &ARTIFACT_REGISTRY).await?;
    let (live, state) = match get(&api, &plan.name()).await? {
        Some(live) => (live, "kept"),
        None => {
            let operation = api
                .call(
                    Method::POST,
                    &format!("{}/repositories", plan.parent()),
                    &[("repositoryId", plan.repository.as_str())],
                    Some(&json!({
                        "format": "DOCKER",
                        "description": "bfctl: the pipeline's images",
                        "labels": { MANAGED_BY.0: MANAGED_BY.1 }
                    })),
                )
                .await?;
            follow(&api, &operation, Duration::from_secs(300)).await?;
            let live = get(&api, &plan.name())
                .await?
                .with_context(|| format!("{} was created but cannot be read back", plan.name()))?;
            (live, "created")
        }
    };
    if live["format"] != "DOCKER" {
        anyhow::bail!(
            "{} exists with format {}, not DOCKER: choose another registry.artifactRegistry.repository",
            plan.name(),
            live["format"].as_str().unwrap_or("unknown")
        );
    }
    Store::under(state_dir).record(&Recorded {
        kind: "artifact-registry".into(),
        project: plan.project.clone(),
        location: plan.location.clone(),
        name: plan.repository.clone(),
        address: String::new(),
        host: plan.host(),
        url: plan.url(),
        pull_host: String::new(),
        pull_url: String::new(),
    })?;
    let nodes = nodes_can_pull(config, &api, &plan).await?;
    Ok(report(&plan, Some(&live), state, nodes))
}

/// `bfctl registry status` for Artifact Registry.
pub async fn status(config: &Config) -> anyhow::Result<ArtifactReport> {
    let plan = ArtifactPlan::of(config)?;
    let api = GoogleApi::connect(&plan.project, &ARTIFACT_REGISTRY).await?;
    match get(&api, &plan.name()).await? {
        Some(live) => {
            let nodes = nodes_can_pull(config, &api, &plan).await?;
            let state = if made_by_bfctl(&live) {
                "present"
            } else {
                "not bfctl's"
            };
            Ok(report(&plan, Some(&live), state, nodes))
        }
        None => Ok(report(&plan, None, "absent", (false, String::new()))),
    }
}

/// `bfctl registry delete` for Artifact Registry: only a repository bfctl
/// made, and every image in it.
pub async fn delete(config: &Config, state_dir: &Path) -> anyhow::Result<ArtifactReport> {
    let plan = ArtifactPlan::of(config)?;
    let api = GoogleApi::connect(&plan.project, &ARTIFACT_REGISTRY).await?;
    let state = match get(&api, &plan.name()).await? {
        None => "absent",
        Some(live) if !made_by_bfctl(&live) => "not bfctl's",
        Some(_) => {
            let operation = api.call(Method::DELETE, &plan.name(), &[], None).await?;
            follow(&api, &operation, Duration::from_secs(300)).await?;
            "deleted"
        }
    };
    Store::under(state_dir).remove()?;
    Ok(report(&plan, None, state, (true, String::new())))
}

/// An access token for pushing (`oauth2accesstoken`), from the same
/// credentials as every other call.
pub fn push_token(config: &Config) -> anyhow::Result<String> {
    let plan = ArtifactPlan::of(config)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting a runtime for the access token")?;
    runtime.block_on(async {
        let api = GoogleApi::connect(&plan.project, &ARTIFACT_REGISTRY).await?;
        let (token, _) = api.access_token().await?;
        anyhow::Ok(token)
    })
}
