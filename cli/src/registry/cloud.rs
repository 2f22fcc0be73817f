//! The Compute Engine v1 and Secret Manager v1 calls the registry needs, on
//! the shared Google client: get-or-insert for each resource (an address, a
//! disk, a firewall rule, a VM, a secret), following Compute's operations,
//! and granting a service account access to a secret.
//!
//! Every resource bfctl makes carries the label `managed-by: bfctl` (or,
//! for firewall rules, which have no labels, a description that says so);
//! `registry delete` removes only resources that carry it.

use std::time::Duration;

use base64::Engine as _;
use reqwest::Method;
use serde_json::{Value, json};

use crate::google::api::{ApiFailure, GoogleApi};

/// The label (and the firewall rules' description prefix) that marks a
/// resource as bfctl's.
pub const MANAGED_BY: (&str, &str) = ("managed-by", "bfctl");
pub const FIREWALL_DESCRIPTION: &str = "managed-by=bfctl: the registry's port";

/// Whether a resource is bfctl's.
pub fn made_by_bfctl(resource: &Value) -> bool {
    resource["labels"][MANAGED_BY.0] == MANAGED_BY.1
        || resource["description"]
            .as_str()
            .is_some_and(|d| d.starts_with("managed-by=bfctl"))
}

/// A resource: GET it, or None when it does not exist.
pub async fn get(api: &GoogleApi, path: &str) -> Result<Option<Value>, ApiFailure> {
    match api.call(Method::GET, path, &[], None).await {
        Ok(value) => Ok(Some(value)),
        Err(failure) if failure.is_not_found() => Ok(None),
        Err(failure) => Err(failure),
    }
}

/// Polls a Compute Engine operation until DONE. One that ends with
/// `error.errors` is an error naming them.
pub async fn follow(
    api: &GoogleApi,
    operation: &Value,
    timeout: Duration,
    mut seen: impl FnMut(&str),
) -> anyhow::Result<Value> {
    let name = operation["name"].as_str().unwrap_or_default();
    let scope = |field: &str| {
        operation[field]
            .as_str()
            .and_then(|url| url.rsplit('/').next())
            .map(str::to_string)
    };
    let project = api.project().to_string();
    let path = if let Some(zone) = scope("zone") {
        format!("projects/{project}/zones/{zone}/operations/{name}")
    } else if let Some(region) = scope("region") {
        format!("projects/{project}/regions/{region}/operations/{name}")
    } else {
        format!("projects/{project}/global/operations/{name}")
    };
    let started = std::time::Instant::now();
    let mut pause = Duration::from_millis(100);
    let mut current = operation.clone();
    loop {
        let status = current["status"].as_str().unwrap_or("").to_string();
        seen(&status);
        if status == "DONE" {
            if let Some(errors) = current["error"]["errors"].as_array() {
                let said: Vec<String> = errors
                    .iter()
                    .map(|e| {
                        format!(
                            "{}: {}",
                            e["code"].as_str().unwrap_or(""),
                            e["message"].as_str().unwrap_or("")
                        )
                    })
                    .collect();
                anyhow::bail!(
                    "{} of {} failed: {}",
                    current["operationType"].as_str().unwrap_or("operation"),
                    current["targetLink"].as_str().unwrap_or(name),
                    said.join("; ")
                );
            }
            return Ok(current);
        }
        if started.elapsed() > timeout {
            anyhow::bail!(
                "operation {path} is still {status} after {} s; it goes on in Google Cloud: run the same command again",
                timeout.as_secs()
            );
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(2));
        current = api.call(Method::GET, &path, &[], None).await?;
    }
}

/// The resource at `path`; inserted into `collection` with `body` when it
/// does not exist (and the operation followed). The second value says
/// whether it was created now.
pub async fn get_or_insert(
    api: &GoogleApi,
    path: &str,
    collection: &str,
    body: &Value,
    timeout: Duration,
) -> anyhow::Result<(Value, bool)> {
    if let Some(found) = get(api, path).await? {
        if !made_by_bfctl(&found) {
            anyhow::bail!(
                "{path} exists and was not made by bfctl (no {}={} label): bfctl neither uses nor changes it; choose another registry.zot.name",
                MANAGED_BY.0,
                MANAGED_BY.1
            );
        }
        return Ok((found, false));
    }
    let operation = api.call(Method::POST, collection, &[], Some(body)).await?;
    follow(api, &operation, timeout, |_| {}).await?;
    let created = get(api, path)
        .await?
        .ok_or_else(|| anyhow::anyhow!("{path} was created but cannot be read back"))?;
    Ok((created, true))
}

/// Deletes a Compute resource and follows the operation; Ok(false) when
/// it was already gone.
pub async fn delete(api: &GoogleApi, path: &str, timeout: Duration) -> anyhow::Result<bool> {
    match api.call(Method::DELETE, path, &[], None).await {
        Ok(operation) => {
            follow(api, &operation, timeout, |_| {}).await?;
            Ok(true)
        }
        Err(failure) if failure.is_not_found() => Ok(false),
        Err(failure) => Err(failure.into()),
    }
}

/// A Secret Manager secret holding `data` as its latest version: created
/// (labelled) when missing, a version added when the latest differs.
/// Says which of the three it was.
pub async fn put_secret(
    secrets: &GoogleApi,
    name: &str,
    data: &[u8],
) -> anyhow::Result<SecretWrite> {
    let project = secrets.project().to_string();
    let path = format!("projects/{project}/secrets/{name}");
    let written = match get(secrets, &path).await? {
        Some(existing) if !made_by_bfctl(&existing) => anyhow::bail!(
            "Secret Manager secret {path} exists and was not made by bfctl (no {}={} label): bfctl will not write into it; choose another registry.zot.name",
            MANAGED_BY.0,
            MANAGED_BY.1
        ),
        Some(_) => {
            if let Some(latest) = get(secrets, &format!("{path}/versions/latest:access")).await?
                && let Some(encoded) = latest["payload"]["data"].as_str()
                && base64::engine::general_purpose::STANDARD
                    .decode(encoded)
                    .is_ok_and(|bytes| bytes == data)
            {
                return Ok(SecretWrite::Unchanged);
            }
            SecretWrite::Updated
        }
        None => {
            secrets
                .call(
                    Method::POST,
                    &format!("projects/{project}/secrets"),
                    &[("secretId", name)],
                    Some(&json!({
                        "replication": { "automatic": {} },
                        "labels": { MANAGED_BY.0: MANAGED_BY.1 }
                    })),
                )
                .await?;
            SecretWrite::Created
        }
    };
    secrets
        .call(
            Method::POST,
            &format!("{path}:addVersion"),
            &[],
            Some(&json!({
                "payload": { "data": base64::engine::general_purpose::STANDARD.encode(data) }
            })),
        )
        .await?;
    Ok(written)
}

/// What [`put_secret`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretWrite {
    Created,
    /// A new version: the data changed.
    Updated,
    Unchanged,
}

/// The role that reads a secret's payload.
pub const SECRET_ACCESSOR: &str = "roles/secretmanager.secretAccessor";

/// Grants `member` (`serviceAccount:…`) [`SECRET_ACCESSOR`] on a secret,
/// keeping every other binding; nothing is sent when it already has it.
pub async fn grant_secret_access(
    secrets: &GoogleApi,
    name: &str,
    member: &str,
) -> anyhow::Result<bool> {
    let path = format!("projects/{}/secrets/{name}", secrets.project());
    let mut policy = secrets
        .call(Method::GET, &format!("{path}:getIamPolicy"), &[], None)
        .await?;
    let mut bindings = policy["bindings"].as_array().cloned().unwrap_or_default();
    if let Some(binding) = bindings.iter_mut().find(|b| b["role"] == SECRET_ACCESSOR) {
        let members = binding["members"].as_array().cloned().unwrap_or_default();
        if members.iter().any(|m| m == member) {
            return Ok(false);
        }
        let mut members = members;
        members.push(member.into());
        binding["members"] = Value::Array(members);
    } else {
        bindings.push(json!({ "role": SECRET_ACCESSOR, "members": [member] }));
    }
    policy["bindings"] = Value::Array(bindings);
    secrets
        .call(
            Method::POST,
            &format!("{path}:setIamPolicy"),
            &[],
            Some(&json!({ "policy": policy })),
        )
        .await?;
    Ok(true)
}

/// Deletes a secret bfctl made; Ok(false) when gone or not bfctl's.
pub async fn delete_secret(secrets: &GoogleApi, name: &str) -> anyhow::Result<SecretDeletion> {
    let path = format!("projects/{}/secrets/{name}", secrets.project());
    match get(secrets, &path).await? {
        None => Ok(SecretDeletion::Absent),
        Some(existing) if !made_by_bfctl(&existing) => Ok(SecretDeletion::NotOurs),
        Some(_) => {
            secrets.call(Method::DELETE, &path, &[], None).await?;
            Ok(SecretDeletion::Deleted)
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretDeletion {
    Deleted,
    Absent,
    NotOurs,
}
