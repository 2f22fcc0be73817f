//! The GKE v1 calls bfctl makes (container.googleapis.com), on the shared
//! Google client ([`GoogleApi`] with [`GKE`]).

use serde_json::Value;

pub use crate::google::api::{ApiFailure, GKE, GoogleApi, SCOPE};

impl GoogleApi {
    pub async fn get_cluster(&self, name: &str) -> Result<Value, ApiFailure> {
        self.call(reqwest::Method::GET, name, &[], None).await
    }

    /// Every cluster of the project, in every location.
    pub async fn list_all_clusters(&self) -> Result<Vec<Value>, ApiFailure> {
        let listed = self
            .call(
                reqwest::Method::GET,
                &format!("projects/{}/locations/-/clusters", self.project()),
                &[],
                None,
            )
            .await?;
        Ok(listed["clusters"].as_array().cloned().unwrap_or_default())
    }

    pub async fn create_cluster(&self, parent: &str, cluster: &Value) -> Result<Value, ApiFailure> {
        self.call(
            reqwest::Method::POST,
            &format!("{parent}/clusters"),
            &[],
            Some(&serde_json::json!({ "cluster": cluster })),
        )
        .await
    }

    /// `nodePools.setAutoscaling` on `projects/P/locations/L/clusters/C/nodePools/N`.
    pub async fn set_autoscaling(
        &self,
        pool: &str,
        autoscaling: &Value,
    ) -> Result<Value, ApiFailure> {
        self.call(
            reqwest::Method::POST,
            &format!("{pool}:setAutoscaling"),
            &[],
            Some(&serde_json::json!({ "autoscaling": autoscaling })),
        )
        .await
    }

    /// `clusters.update` with a `ClusterUpdate`.
    pub async fn update_cluster(&self, name: &str, update: &Value) -> Result<Value, ApiFailure> {
        self.call(
            reqwest::Method::PUT,
            name,
            &[],
            Some(&serde_json::json!({ "update": update })),
        )
        .await
    }

    pub async fn delete_cluster(&self, name: &str) -> Result<Value, ApiFailure> {
        self.call(reqwest::Method::DELETE, name, &[], None).await
    }

    /// `projects/P/locations/L/operations/OP`.
    pub async fn get_operation(&self, name: &str) -> Result<Value, ApiFailure> {
        self.call(reqwest::Method::GET, name, &[], None).await
    }

    /// Operations of a location (`parent` is `projects/P/locations/L`).
    pub async fn list_operations(&self, parent: &str) -> Result<Vec<Value>, ApiFailure> {
        let listed = self
            .call(
                reqwest::Method::GET,
                &format!("{parent}/operations"),
                &[],
                None,
            )
            .await?;
        Ok(listed["operations"].as_array().cloned().unwrap_or_default())
    }
}
