//! A fake Compute Engine v1 (`/compute/v1/...`): addresses, disks,
//! firewall rules, instances, the project, and their operations. Where each
//! behaviour comes from:
//!
//! * every request is first checked against `compute.v1.json` (the real
//!   API description, [`crate::discovery`]);
//! * errors have Compute's older shape, no `status` and an `errors` list
//!   with a `reason` (`notFound`, `alreadyExists`, `resourceInUseByAnother
//!   Resource`), the messages as googleapis/google-cloud-java#11032 quotes
//!   a real 404 ("The resource 'projects/…' was not found");
//! * insert, patch, delete and reset answer an `Operation` (`kind`
//!   `compute#operation`, `zone` or `region` as URLs, `targetLink`) that
//!   goes PENDING → RUNNING → DONE over time, its effect applied at DONE;
//!   a failed one ends DONE with `error.errors[{code, message}]` (the API
//!   description's `Operation.error`);
//! * an address insert reserves the next address of a pool the test sets
//!   (status RESERVED, IN_USE once an instance holds it); a disk is READY;
//!   an instance is RUNNING once its insert is done, and its insert fails
//!   when a disk it attaches does not exist (RESOURCE_NOT_FOUND); deleting
//!   a disk an instance uses is refused (400 resourceInUseByAnotherResource,
//!   as the API says for disks attached to instances);
//! * the project's `defaultServiceAccount` is
//!   `PROJECT_NUMBER-compute@developer.gserviceaccount.com`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::discovery::{ApiError, Call};

/// The fake's Compute state.
pub struct ComputeState {
    pub resources: BTreeMap<String, Value>,
    operations: Vec<Operation>,
    pub external_pool: Vec<String>,
    pub internal_pool: Vec<String>,
    step: Duration,
    /// The next operation of `operationType` ends with this error code.
    pub fail_operation: BTreeMap<String, (String, String)>,
}

struct Operation {
    name: String,
    /// `zones/Z`, `regions/R` or `global`.
    scope: String,
    kind: String,
    target: String,
    started: Instant,
    error: Option<(String, String)>,
    applied: bool,
    effect: Effect,
}

enum Effect {
    Insert(Value),
    Replace(Value),
    Delete,
    Reset,
}

const BASE: &str = "https://www.googleapis.com/compute/v1/";

fn not_found(path: &str) -> ApiError {
    ApiError::legacy(
        404,
        "notFound",
        format!("The resource '{path}' was not found"),
    )
}

impl ComputeState {
    pub fn new(step: Duration) -> ComputeState {
        ComputeState {
            resources: BTreeMap::new(),
            operations: Vec::new(),
            external_pool: (10..60).map(|n| format!("203.0.113.{n}")).collect(),
            internal_pool: (10..60).map(|n| format!("10.132.0.{n}")).collect(),
            step,
            fail_operation: BTreeMap::new(),
        }
    }

    fn status_of(&self, operation: &Operation) -> &'static str {
        crate::operation_status(operation.started, self.step)
    }

    /// Applies what finished operations did.
    pub fn reconcile(&mut self) {
        let done = self.step * 3;
        let mut effects = Vec::new();
        for operation in &mut self.operations {
            if !operation.applied && operation.started.elapsed() >= done {
                operation.applied = true;
                if operation.error.is_none() {
                    let effect = std::mem::replace(&mut operation.effect, Effect::Reset);
                    effects.push((operation.target.clone(), effect));
                }
            }
        }
        for (target, effect) in effects {
            match effect {
                Effect::Insert(mut resource) | Effect::Replace(mut resource) => {
                    if resource["kind"] == "compute#instance" {
                        resource["status"] = "RUNNING".into();
                    }
                    self.resources.insert(target, resource);
                }
                Effect::Delete => {
                    self.resources.remove(&target);
                }
                Effect::Reset => {}
            }
        }
        // Addresses an instance holds are IN_USE.
        let held: Vec<String> = self
            .resources
            .values()
            .filter(|r| r["kind"] == "compute#instance")
            .flat_map(|i| {
                let nic = &i["networkInterfaces"][0];
                [
                    nic["networkIP"].as_str().unwrap_or("").to_string(),
                    nic["accessConfigs"][0]["natIP"]
                        .as_str()
                        .unwrap_or("")
                        .to_string(),
                ]
            })
            .collect();
        for resource in self.resources.values_mut() {
            if resource["kind"] == "compute#address" {
                let used = resource["address"]
                    .as_str()
                    .is_some_and(|a| held.iter().any(|h| h == a));
                resource["status"] = if used { "IN_USE" } else { "RESERVED" }.into();
            }
        }
    }

    fn operation_json(&self, operation: &Operation, project: &str) -> Value {
        let status = self.status_of(operation);
        let mut value = json!({
            "kind": "compute#operation",
            "id": operation.name.trim_start_matches("operation-"),
            "name": operation.name,
            "operationType": operation.kind,
            "targetLink": format!("{BASE}{}", operation.target),
            "status": status,
            "progress": if status == "DONE" { 100 } else { 0 },
            "insertTime": "2026-12-04T12:00:00.000-08:00",
            "selfLink": format!("{BASE}projects/{project}/{}/operations/{}", operation.scope, operation.name),
        });
        if let Some(zone) = operation.scope.strip_prefix("zones/") {
            value["zone"] = format!("{BASE}projects/{project}/zones/{zone}").into();
        } else if let Some(region) = operation.scope.strip_prefix("regions/") {
            value["region"] = format!("{BASE}projects/{project}/regions/{region}").into();
        }
        if status == "DONE"
            && let Some((code, message)) = &operation.error
        {
            value["error"] = json!({"errors": [{"code": code, "message": message}]});
            value["httpErrorStatusCode"] = 400.into();
        }
        value
    }

    fn new_operation(
        &mut self,
        project: &str,
        scope: &str,
        kind: &str,
        target: &str,
        effect: Effect,
        error: Option<(String, String)>,
    ) -> Value {
        let name = format!("operation-{}-{kind}", self.operations.len() + 1);
        let error = error.or_else(|| self.fail_operation.remove(kind));
        let operation = Operation {
            name,
            scope: scope.to_string(),
            kind: kind.to_string(),
            target: target.to_string(),
            started: Instant::now(),
            error,
            applied: false,
            effect,
        };
        let value = self.operation_json(&operation, project);
        self.operations.push(operation);
        value
    }

    /// Answers a call that matched a Compute method.
    pub fn answer(&mut self, call: &Call, body: Option<Value>) -> Result<Value, ApiError> {
        self.reconcile();
        let params = &call.params;
        let project = params.get("project").cloned().unwrap_or_default();
        let method = call.id.trim_start_matches("compute.");
        let (collection, verb) = method.rsplit_once('.').unwrap_or((method, ""));
        // Where the collection lives, and the resource's own parameter.
        let (scope, param) = match collection {
            "addresses" => (
                format!(
                    "regions/{}",
                    params.get("region").cloned().unwrap_or_default()
                ),
                "address",
            ),
            "disks" => (
                format!("zones/{}", params.get("zone").cloned().unwrap_or_default()),
                "disk",
            ),
            "instances" => (
                format!("zones/{}", params.get("zone").cloned().unwrap_or_default()),
                "instance",
            ),
            "firewalls" => ("global".to_string(), "firewall"),
            "zoneOperations" | "regionOperations" | "globalOperations" => {
                let scope = if let Some(zone) = params.get("zone") {
                    format!("zones/{zone}")
                } else if let Some(region) = params.get("region") {
                    format!("regions/{region}")
                } else {
                    "global".into()
                };
                let name = params.get("operation").cloned().unwrap_or_default();
                return match self
                    .operations
                    .iter()
                    .find(|o| o.name == name && o.scope == scope)
                {
                    Some(operation) => Ok(self.operation_json(operation, &project)),
                    None => Err(not_found(&format!(
                        "projects/{project}/{scope}/operations/{name}"
                    ))),
                };
            }
            "projects" if verb == "get" => {
                return Ok(json!({
                    "kind": "compute#project",
                    "name": project,
                    "id": "123456789012",
                    "defaultServiceAccount": "123456789012-compute@developer.gserviceaccount.com",
                }));
            }
            other => {
                return Err(ApiError::new(
                    501,
                    "UNIMPLEMENTED",
                    format!("the fake does not implement compute.{other}.{verb}"),
                ));
            }
        };
        let kind_name = match collection {
            "addresses" => "address",
            "disks" => "disk",
            "instances" => "instance",
            _ => "firewall",
        };
        let base = format!("projects/{project}/{scope}/{collection}");
        match verb {
            "get" => {
                let path = format!("{base}/{}", params.get(param).cloned().unwrap_or_default());
                self.resources
                    .get(&path)
                    .cloned()
                    .ok_or_else(|| not_found(&path))
            }
            "insert" => {
                let mut resource = body.unwrap_or_default();
                let name = resource["name"].as_str().unwrap_or_default().to_string();
                if name.is_empty() {
                    return Err(ApiError::legacy(
                        400,
                        "required",
                        "Required field 'resource.name' not specified",
                    ));
                }
                let path = format!("{base}/{name}");
                let pending = self
                    .operations
                    .iter()
                    .any(|o| o.target == path && !o.applied);
                if self.resources.contains_key(&path) || pending {
                    return Err(ApiError::legacy(
                        409,
                        "alreadyExists",
                        format!("The resource '{path}' already exists"),
                    ));
                }
                resource["kind"] = format!("compute#{kind_name}").into();
                resource["selfLink"] = format!("{BASE}{path}").into();
                resource["id"] = (1000 + self.resources.len()).to_string().into();
                resource["creationTimestamp"] = "2026-12-04T12:00:00.000-08:00".into();
                let mut error = None;
                match collection {
                    "addresses" => {
                        let pool = if resource["addressType"] == "INTERNAL" {
                            &mut self.internal_pool
                        } else {
                            &mut self.external_pool
                        };
                        if pool.is_empty() {
                            error = Some((
                                "QUOTA_EXCEEDED".into(),
                                "Quota 'STATIC_ADDRESSES' exceeded.".into(),
                            ));
                        } else {
                            resource["address"] = pool.remove(0).into();
                        }
                        resource["status"] = "RESERVED".into();
                    }
                    "disks" => {
                        resource["status"] = "READY".into();
                        if resource.get("sizeGb").is_none() {
                            resource["sizeGb"] = "500".into();
                        }
                    }
                    "instances" => {
                        resource["status"] = "PROVISIONING".into();
                        for disk in resource["disks"].as_array().cloned().unwrap_or_default() {
                            if let Some(source) = disk["source"].as_str() {
                                let source = source.trim_start_matches(BASE).to_string();
                                if !self.resources.contains_key(&source) {
                                    error = Some((
                                        "RESOURCE_NOT_FOUND".into(),
                                        format!("The resource '{source}' was not found"),
                                    ));
                                }
                            }
                        }
                    }
                    _ => {}
                }
                let effect = Effect::Insert(resource);
                Ok(self.new_operation(&project, &scope, "insert", &path, effect, error))
            }
            "patch" => {
                let path = format!("{base}/{}", params.get(param).cloned().unwrap_or_default());
                let Some(mut resource) = self.resources.get(&path).cloned() else {
                    return Err(not_found(&path));
                };
                if let (Some(target), Some(patch)) = (
                    resource.as_object_mut(),
                    body.as_ref().and_then(Value::as_object),
                ) {
                    for (key, value) in patch {
                        target.insert(key.clone(), value.clone());
                    }
                }
                Ok(self.new_operation(
                    &project,
                    &scope,
                    "patch",
                    &path,
                    Effect::Replace(resource),
                    None,
                ))
            }
            "delete" => {
                let path = format!("{base}/{}", params.get(param).cloned().unwrap_or_default());
                if !self.resources.contains_key(&path) {
                    return Err(not_found(&path));
                }
                if collection == "disks" {
                    let user = self.resources.iter().find(|(_, r)| {
                        r["kind"] == "compute#instance"
                            && r["disks"].as_array().into_iter().flatten().any(|d| {
                                d["source"]
                                    .as_str()
                                    .is_some_and(|s| s.trim_start_matches(BASE) == path)
                            })
                    });
                    if let Some((instance, _)) = user {
                        return Err(ApiError::legacy(
                            400,
                            "resourceInUseByAnotherResource",
                            format!(
                                "The disk resource '{path}' is already being used by '{instance}'"
                            ),
                        ));
                    }
                }
                Ok(self.new_operation(&project, &scope, "delete", &path, Effect::Delete, None))
            }
            "reset" => {
                let path = format!("{base}/{}", params.get(param).cloned().unwrap_or_default());
                if !self.resources.contains_key(&path) {
                    return Err(not_found(&path));
                }
                Ok(self.new_operation(&project, &scope, "reset", &path, Effect::Reset, None))
            }
            other => Err(ApiError::new(
                501,
                "UNIMPLEMENTED",
                format!("the fake does not implement compute.{collection}.{other}"),
            )),
        }
    }

    /// The operations' types, in order (for tests).
    pub fn operation_log(&self) -> Vec<String> {
        self.operations
            .iter()
            .map(|o| format!("{} {}", o.kind, o.target))
            .collect()
    }
}
