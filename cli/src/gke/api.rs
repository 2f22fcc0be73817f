//! The GKE v1 REST API (container.googleapis.com), as bfctl calls it:
//! reqwest with a bearer token from Google's Application Default
//! Credentials (the `gcp_auth` crate: the `GOOGLE_APPLICATION_CREDENTIALS`
//! key file, gcloud's ADC file, the metadata server, in that order).
//!
//! Why not the official `google-cloud-container-v1`: bfctl needs six calls
//! of one API, and reqwest (already here for the registry) with gcp_auth
//! (ring, like the rest of bfctl's TLS) covers them; the official client
//! brings its own HTTP and TLS stack and generated types for the whole
//! API. Errors keep Google's shape (`{"error": {"code", "message",
//! "status", "details"}}`) and are turned into sentences a user can act on
//! ([`ApiFailure`]).
//!
//! The endpoint is `https://container.googleapis.com` unless
//! `BFCTL_GKE_ENDPOINT` names another (a local fake in the tests, or a
//! private endpoint).

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

/// The scope every call asks for.
pub const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";

/// Where the API is, unless `BFCTL_GKE_ENDPOINT` says otherwise.
pub const DEFAULT_ENDPOINT: &str = "https://container.googleapis.com";

/// A failed call, as the user should read it.
#[derive(Debug, thiserror::Error)]
pub enum ApiFailure {
    #[error("{0}")]
    NoCredentials(String),
    #[error(
        "the Kubernetes Engine API is not enabled in project {project}: enable it at {url} (or `gcloud services enable container.googleapis.com --project {project}`), wait a minute, and run this again"
    )]
    ServiceDisabled { project: String, url: String },
    #[error(
        "permission denied: {message} (grant the role roles/container.admin, or one holding that permission, to the account bfctl uses)"
    )]
    PermissionDenied { message: String },
    #[error(
        "quota exceeded: {message} (ask for more at https://console.cloud.google.com/iam-admin/quotas, or use smaller or fewer nodes)"
    )]
    Quota { message: String },
    #[error("{message}")]
    NotFound { message: String },
    #[error("{message}")]
    AlreadyExists { message: String },
    #[error("HTTP {code} {status}: {message}")]
    Other {
        code: u16,
        status: String,
        message: String,
    },
    #[error(
        "cannot reach {endpoint}: {message} (nothing is lost: run the same command again, it picks up where this one stopped)"
    )]
    Network { endpoint: String, message: String },
}

impl ApiFailure {
    pub fn is_not_found(&self) -> bool {
        matches!(self, ApiFailure::NotFound { .. })
    }

    /// From Google's error body.
    fn from_body(code: u16, body: &Value, project: &str) -> ApiFailure {
        let error = &body["error"];
        let status = error["status"].as_str().unwrap_or_default().to_string();
        let message = error["message"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| body.to_string());
        let details = error["details"].as_array().cloned().unwrap_or_default();
        let reason = details
            .iter()
            .find_map(|d| d["reason"].as_str())
            .unwrap_or_default();
        if reason == "SERVICE_DISABLED" {
            let url = details
                .iter()
                .find_map(|d| d["metadata"]["activationUrl"].as_str())
                .map(str::to_string)
                .unwrap_or_else(|| {
                    format!(
                        "https://console.developers.google.com/apis/api/container.googleapis.com/overview?project={project}"
                    )
                });
            return ApiFailure::ServiceDisabled {
                project: project.to_string(),
                url,
            };
        }
        match (code, status.as_str()) {
            (403, "PERMISSION_DENIED") => ApiFailure::PermissionDenied { message },
            (429, _) | (_, "RESOURCE_EXHAUSTED") => ApiFailure::Quota { message },
            (404, _) => ApiFailure::NotFound { message },
            (409, _) => ApiFailure::AlreadyExists { message },
            _ => ApiFailure::Other {
                code,
                status,
                message,
            },
        }
    }
}

/// A client of the GKE API for one project.
#[derive(Clone)]
pub struct GkeApi {
    http: reqwest::Client,
    endpoint: String,
    project: String,
    tokens: Arc<dyn gcp_auth::TokenProvider>,
}

impl GkeApi {
    /// Finds credentials (Application Default Credentials) and builds the
    /// client. No credentials is an error that says where bfctl looked.
    pub async fn connect(project: &str) -> Result<GkeApi, ApiFailure> {
        crate::ensure_tls_provider();
        let tokens = gcp_auth::provider().await.map_err(|error| {
            ApiFailure::NoCredentials(format!(
                "no Google Cloud credentials found ({error}). bfctl looked at: the key file named by GOOGLE_APPLICATION_CREDENTIALS ({}), gcloud's application default credentials (~/.config/gcloud/application_default_credentials.json), the metadata server (only on Google Cloud) and the gcloud command. Set GOOGLE_APPLICATION_CREDENTIALS to a service-account key file, or run `gcloud auth application-default login`",
                std::env::var("GOOGLE_APPLICATION_CREDENTIALS")
                    .map(|path| path.to_string())
                    .unwrap_or_else(|_| "unset".into())
            ))
        })?;
        let endpoint = std::env::var("BFCTL_GKE_ENDPOINT")
            .ok()
            .filter(|e| !e.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_ENDPOINT.to_string());
        let http = reqwest::Client::builder()
            .user_agent(concat!("bfctl/", env!("CARGO_PKG_VERSION")))
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|error| ApiFailure::Network {
                endpoint: endpoint.clone(),
                message: error.to_string(),
            })?;
        Ok(GkeApi {
            http,
            endpoint: endpoint.trim_end_matches('/').to_string(),
            project: project.to_string(),
            tokens,
        })
    }

    /// An access token for the cloud-platform scope, and when it expires
    /// (RFC 3339), for `bfctl cluster token`.
    pub async fn access_token(&self) -> Result<(String, String), ApiFailure> {
        let token = self.tokens.token(&[SCOPE]).await.map_err(|error| {
            ApiFailure::NoCredentials(format!("getting an access token: {error}"))
        })?;
        let expiry = jiff::Timestamp::from_second(token.expires_at().timestamp())
            .map(|t| t.to_string())
            .unwrap_or_default();
        Ok((token.as_str().to_string(), expiry))
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, ApiFailure> {
        let (token, _) = self.access_token().await?;
        let url = format!("{}/v1/{path}", self.endpoint);
        let mut request = self.http.request(method, &url).bearer_auth(token);
        if let Some(body) = body {
            request = request.json(body);
        }
        let network = |error: reqwest::Error| ApiFailure::Network {
            endpoint: self.endpoint.clone(),
            message: error.to_string(),
        };
        let response = request.send().await.map_err(network)?;
        let code = response.status().as_u16();
        let text = response.text().await.map_err(network)?;
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if (200..300).contains(&code) {
            Ok(value)
        } else {
            Err(ApiFailure::from_body(code, &value, &self.project))
        }
    }

    pub async fn get_cluster(&self, name: &str) -> Result<Value, ApiFailure> {
        self.call(reqwest::Method::GET, name, None).await
    }

    /// Every cluster of the project, in every location.
    pub async fn list_all_clusters(&self) -> Result<Vec<Value>, ApiFailure> {
        let listed = self
            .call(
                reqwest::Method::GET,
                &format!("projects/{}/locations/-/clusters", self.project),
                None,
            )
            .await?;
        Ok(listed["clusters"].as_array().cloned().unwrap_or_default())
    }

    pub async fn create_cluster(&self, parent: &str, cluster: &Value) -> Result<Value, ApiFailure> {
        self.call(
            reqwest::Method::POST,
            &format!("{parent}/clusters"),
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
            Some(&serde_json::json!({ "autoscaling": autoscaling })),
        )
        .await
    }

    /// `clusters.update` with a `ClusterUpdate`.
    pub async fn update_cluster(&self, name: &str, update: &Value) -> Result<Value, ApiFailure> {
        self.call(
            reqwest::Method::PUT,
            name,
            Some(&serde_json::json!({ "update": update })),
        )
        .await
    }

    pub async fn delete_cluster(&self, name: &str) -> Result<Value, ApiFailure> {
        self.call(reqwest::Method::DELETE, name, None).await
    }

    /// `projects/P/locations/L/operations/OP`.
    pub async fn get_operation(&self, name: &str) -> Result<Value, ApiFailure> {
        self.call(reqwest::Method::GET, name, None).await
    }

    /// Operations of a location (`parent` is `projects/P/locations/L`).
    pub async fn list_operations(&self, parent: &str) -> Result<Vec<Value>, ApiFailure> {
        let listed = self
            .call(reqwest::Method::GET, &format!("{parent}/operations"), None)
            .await?;
        Ok(listed["operations"].as_array().cloned().unwrap_or_default())
    }
}
