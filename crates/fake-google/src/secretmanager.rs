//! A fake Secret Manager v1: secrets, their versions, their IAM policies.
//! Where each behaviour comes from:
//!
//! * every request is first checked against `secretmanager.v1.json` (the
//!   real API description, [`crate::discovery`]);
//! * errors have the newer shape (`code`, `message`, `status`); the
//!   messages follow what gcloud prints of the service's answers ("Secret
//!   [projects/P/secrets/S] not found or has no versions.", "Secret
//!   [projects/P/secrets/S] already exists.");
//! * `create` takes `secretId` as a query parameter and needs
//!   `replication` (the API description: "Required. Immutable. The
//!   replication policy"); versions are numbered from 1 and `latest` is the
//!   newest; `access` answers the payload base64 in `payload.data`;
//! * `getIamPolicy` answers `{version, etag}` (no `bindings` while there is
//!   none) and `setIamPolicy` replaces the policy, as IAM's `Policy`
//!   describes.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::discovery::{ApiError, Call};

#[derive(Default)]
pub struct SecretState {
    pub secrets: BTreeMap<String, Secret>,
}

pub struct Secret {
    pub resource: Value,
    pub versions: Vec<String>,
    pub policy: Value,
}

fn not_found(name: &str) -> ApiError {
    ApiError::new(
        404,
        "NOT_FOUND",
        format!("Secret [{name}] not found or has no versions."),
    )
}

impl SecretState {
    /// The latest payload of a secret (base64), for tests.
    pub fn latest(&self, name: &str) -> Option<String> {
        self.secrets
            .get(name)
            .and_then(|s| s.versions.last().cloned())
    }

    pub fn answer(
        &mut self,
        call: &Call,
        query: &[(String, String)],
        body: Option<Value>,
    ) -> Result<Value, ApiError> {
        let params = &call.params;
        let method = call.id.trim_start_matches("secretmanager.projects.");
        match method {
            "secrets.get" => {
                let name = &params["name"];
                self.secrets
                    .get(name)
                    .map(|s| s.resource.clone())
                    .ok_or_else(|| not_found(name))
            }
            "secrets.create" => {
                let parent = &params["parent"];
                let Some(id) = query
                    .iter()
                    .find(|(k, _)| k == "secretId")
                    .map(|(_, v)| v.clone())
                else {
                    return Err(ApiError::invalid("secret_id must be set"));
                };
                let mut resource = body.unwrap_or_default();
                if resource["replication"].is_null() {
                    return Err(ApiError::invalid("Secret.replication must be specified."));
                }
                let name = format!("{parent}/secrets/{id}");
                if self.secrets.contains_key(&name) {
                    return Err(ApiError::new(
                        409,
                        "ALREADY_EXISTS",
                        format!("Secret [{name}] already exists."),
                    ));
                }
                resource["name"] = name.clone().into();
                resource["createTime"] = "2026-12-04T12:00:00Z".into();
                resource["etag"] = "\"1\"".into();
                self.secrets.insert(
                    name,
                    Secret {
                        resource: resource.clone(),
                        versions: Vec::new(),
                        policy: json!({"version": 1, "etag": "BwAAAA=="}),
                    },
                );
                Ok(resource)
            }
            "secrets.addVersion" => {
                let parent = &params["parent"];
                let Some(secret) = self.secrets.get_mut(parent) else {
                    return Err(not_found(parent));
                };
                let Some(data) = body.as_ref().and_then(|b| b["payload"]["data"].as_str()) else {
                    return Err(ApiError::invalid("payload.data must be set"));
                };
                secret.versions.push(data.to_string());
                Ok(json!({
                    "name": format!("{parent}/versions/{}", secret.versions.len()),
                    "state": "ENABLED",
                    "createTime": "2026-12-04T12:00:00Z"
                }))
            }
            "secrets.versions.access" => {
                let name = &params["name"];
                let (secret, version) = name.rsplit_once("/versions/").unwrap_or((name, ""));
                let Some(found) = self.secrets.get(secret) else {
                    return Err(not_found(secret));
                };
                let data = if version == "latest" {
                    found.versions.last()
                } else {
                    version
                        .parse::<usize>()
                        .ok()
                        .and_then(|n| found.versions.get(n.wrapping_sub(1)))
                };
                match data {
                    Some(data) => Ok(json!({"name": name, "payload": {"data": data}})),
                    None => Err(not_found(secret)),
                }
            }
            "secrets.getIamPolicy" => {
                let resource = &params["resource"];
                self.secrets
                    .get(resource)
                    .map(|s| s.policy.clone())
                    .ok_or_else(|| not_found(resource))
            }
            "secrets.setIamPolicy" => {
                let resource = &params["resource"];
                let Some(secret) = self.secrets.get_mut(resource) else {
                    return Err(not_found(resource));
                };
                let mut policy = body.unwrap_or_default()["policy"].clone();
                policy["etag"] = "BwAAAB==".into();
                secret.policy = policy.clone();
                Ok(policy)
            }
            "secrets.delete" => {
                let name = &params["name"];
                match self.secrets.remove(name) {
                    Some(_) => Ok(json!({})),
                    None => Err(not_found(name)),
                }
            }
            other => Err(ApiError::new(
                501,
                "UNIMPLEMENTED",
                format!("the fake does not implement secretmanager.projects.{other}"),
            )),
        }
    }
}
