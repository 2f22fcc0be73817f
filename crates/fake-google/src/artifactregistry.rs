//! A fake Artifact Registry v1: repositories, their long-running create and
//! delete operations, their IAM policies. Where each behaviour comes from:
//!
//! * every request is first checked against `artifactregistry.v1.json`
//!   (the real API description, [`crate::discovery`]);
//! * `create` takes `repositoryId` as a query parameter and answers a
//!   `google.longrunning` Operation (`name`, `done`, `error`, `response`:
//!   the API description's `Operation`); the repository exists once the
//!   operation is done, and `registryUri` is `LOCATION-docker.pkg.dev/
//!   PROJECT/REPOSITORY` (Artifact Registry's documented Docker host);
//! * a repository that exists is 409 ALREADY_EXISTS, one that does not is
//!   404 NOT_FOUND ("Requested entity was not found.", the message Google's
//!   newer APIs give);
//! * the fake names its operations `ar-operation-N`, so that the server it
//!   shares with the fake GKE (whose operations live under the same
//!   `projects/P/locations/L/operations/` path) can tell them apart; the
//!   real service's are UUIDs.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::discovery::{ApiError, Call};

pub struct ArtifactState {
    pub repositories: BTreeMap<String, Value>,
    pub policies: BTreeMap<String, Value>,
    operations: Vec<(String, Instant, String, Option<Value>)>,
    step: Duration,
}

impl ArtifactState {
    pub fn new(step: Duration) -> ArtifactState {
        ArtifactState {
            repositories: BTreeMap::new(),
            policies: BTreeMap::new(),
            operations: Vec::new(),
            step,
        }
    }

    /// Applies finished operations: a repository created, or deleted.
    fn reconcile(&mut self) {
        let step = self.step;
        let done: Vec<(String, Option<Value>)> = self
            .operations
            .iter_mut()
            .filter(|(_, started, _, _)| started.elapsed() >= step)
            .filter_map(|(_, _, target, effect)| effect.take().map(|e| (target.clone(), Some(e))))
            .collect();
        for (target, effect) in done {
            match effect {
                Some(Value::Null) => {
                    self.repositories.remove(&target);
                }
                Some(repository) => {
                    self.repositories.insert(target, repository);
                }
                None => {}
            }
        }
    }

    fn operation(&mut self, parent: &str, target: &str, effect: Value) -> Value {
        let name = format!(
            "{parent}/operations/ar-operation-{}",
            self.operations.len() + 1
        );
        self.operations.push((
            name.clone(),
            Instant::now(),
            target.to_string(),
            Some(effect),
        ));
        json!({ "name": name, "done": false })
    }

    pub fn answer(
        &mut self,
        call: &Call,
        query: &[(String, String)],
        body: Option<Value>,
    ) -> Result<Value, ApiError> {
        self.reconcile();
        let not_found = || ApiError::new(404, "NOT_FOUND", "Requested entity was not found.");
        let params = &call.params;
        match call
            .id
            .trim_start_matches("artifactregistry.projects.locations.")
        {
            "repositories.get" => self
                .repositories
                .get(&params["name"])
                .cloned()
                .ok_or_else(not_found),
            "repositories.create" => {
                let parent = params["parent"].clone();
                let Some(id) = query
                    .iter()
                    .find(|(k, _)| k == "repositoryId")
                    .map(|(_, v)| v.clone())
                else {
                    return Err(ApiError::invalid("repository_id must be set"));
                };
                let name = format!("{parent}/repositories/{id}");
                if self.repositories.contains_key(&name) {
                    return Err(ApiError::new(
                        409,
                        "ALREADY_EXISTS",
                        format!("the repository already exists: {name}"),
                    ));
                }
                let mut repository = body.unwrap_or_default();
                let location = parent.rsplit('/').next().unwrap_or_default();
                let project = parent.split('/').nth(1).unwrap_or_default();
                repository["name"] = name.clone().into();
                repository["registryUri"] =
                    format!("{location}-docker.pkg.dev/{project}/{id}").into();
                repository["createTime"] = "2026-12-04T12:00:00Z".into();
                Ok(self.operation(&parent, &name, repository))
            }
            "repositories.delete" => {
                let name = params["name"].clone();
                if !self.repositories.contains_key(&name) {
                    return Err(not_found());
                }
                let parent = name
                    .split("/repositories/")
                    .next()
                    .unwrap_or_default()
                    .to_string();
                Ok(self.operation(&parent, &name, Value::Null))
            }
            "repositories.getIamPolicy" => Ok(self
                .policies
                .get(&params["resource"])
                .cloned()
                .unwrap_or_else(|| json!({"version": 1, "etag": "BwAAAA=="}))),
            "repositories.setIamPolicy" => {
                let policy = body.unwrap_or_default()["policy"].clone();
                self.policies
                    .insert(params["resource"].clone(), policy.clone());
                Ok(policy)
            }
            "operations.get" => {
                let name = &params["name"];
                let step = self.step;
                match self.operations.iter().find(|(n, _, _, _)| n == name) {
                    Some((name, started, target, _)) => {
                        let done = started.elapsed() >= step;
                        let mut operation = json!({ "name": name, "done": done });
                        if done && let Some(repository) = self.repositories.get(target) {
                            operation["response"] = repository.clone();
                        }
                        Ok(operation)
                    }
                    None => Err(not_found()),
                }
            }
            other => Err(ApiError::new(
                501,
                "UNIMPLEMENTED",
                format!("the fake does not implement {other}"),
            )),
        }
    }
}
