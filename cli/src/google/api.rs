//! Google Cloud REST APIs as bfctl calls them: reqwest with a bearer token
//! from Google's Application Default Credentials (the `gcp_auth` crate: the
//! `GOOGLE_APPLICATION_CREDENTIALS` key file, gcloud's ADC file, the
//! metadata server, in that order). One client, [`GoogleApi`], serves every
//! API bfctl uses; a [`Service`] says where each one is and what a user
//! needs to call it (the API to enable, the role to grant).
//!
//! Why not the official `google-cloud-*` crates: bfctl needs a few calls of
//! four APIs, and reqwest (already here for the registry) with gcp_auth
//! (ring, like the rest of bfctl's TLS) covers them; the official clients
//! bring their own HTTP and TLS stack and generated types for whole APIs
//! (docs/benchmarks.md compares the builds). Errors keep Google's shape
//! (`{"error": {"code", "message", "status", "details"}}`, or Compute
//! Engine's older `errors: [{"reason"}]`) and are turned into sentences a
//! user can act on ([`ApiFailure`]).
//!
//! Each service's endpoint can be replaced through an environment variable
//! (`BFCTL_GKE_ENDPOINT`, `BFCTL_COMPUTE_ENDPOINT`, …): a local fake in the
//! tests, or a private endpoint.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

/// The scope every call asks for.
pub const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";

/// One Google API: where it is and what calling it takes.
#[derive(Debug)]
pub struct Service {
    /// What users call it ("the Kubernetes Engine API").
    pub title: &'static str,
    /// Its host name, as `gcloud services enable` takes it.
    pub host: &'static str,
    /// Its path prefix (the Discovery document's `servicePath`).
    pub service_path: &'static str,
    /// The variable that replaces `https://HOST`.
    pub endpoint_variable: &'static str,
    /// The predefined role that lets an account do what bfctl does.
    pub role: &'static str,
}

pub const GKE: Service = Service {
    title: "Kubernetes Engine API",
    host: "container.googleapis.com",
    service_path: "v1/",
    endpoint_variable: "BFCTL_GKE_ENDPOINT",
    role: "roles/container.admin",
};

pub const COMPUTE: Service = Service {
    title: "Compute Engine API",
    host: "compute.googleapis.com",
    service_path: "compute/v1/",
    endpoint_variable: "BFCTL_COMPUTE_ENDPOINT",
    role: "roles/compute.admin",
};

pub const SECRET_MANAGER: Service = Service {
    title: "Secret Manager API",
    host: "secretmanager.googleapis.com",
    service_path: "v1/",
    endpoint_variable: "BFCTL_SECRETMANAGER_ENDPOINT",
    role: "roles/secretmanager.admin",
};

pub const ARTIFACT_REGISTRY: Service = Service {
    title: "Artifact Registry API",
    host: "artifactregistry.googleapis.com",
    service_path: "v1/",
    endpoint_variable: "BFCTL_ARTIFACTREGISTRY_ENDPOINT",
    role: "roles/artifactregistry.admin",
};

/// A failed call, as the user should read it.
#[derive(Debug, thiserror::Error)]
pub enum ApiFailure {
    #[error("{0}")]
    NoCredentials(String),
    #[error(
        "the {title} is not enabled in project {project}: enable it at {url} (or `gcloud services enable {host} --project {project}`), wait a minute, and run this again"
    )]
    ServiceDisabled {
        title: &'static str,
        host: &'static str,
        project: String,
        url: String,
    },
    #[error(
        "permission denied: {message} (grant the role {role}, or one holding that permission, to the account bfctl uses)"
    )]
    PermissionDenied { message: String, role: &'static str },
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
    fn from_body(code: u16, body: &Value, project: &str, service: &'static Service) -> ApiFailure {
        let error = &body["error"];
        let status = error["status"].as_str().unwrap_or_default().to_string();
        let message = error["message"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| body.to_string());
        let details = error["details"].as_array().cloned().unwrap_or_default();
        // Compute Engine names the reason in `errors`, the newer APIs in
        // an ErrorInfo among `details`.
        let reason = details
            .iter()
            .chain(error["errors"].as_array().into_iter().flatten())
            .find_map(|d| d["reason"].as_str())
            .unwrap_or_default();
        if reason == "SERVICE_DISABLED" {
            let url = details
                .iter()
                .find_map(|d| d["metadata"]["activationUrl"].as_str())
                .map(str::to_string)
                .unwrap_or_else(|| {
                    format!(
                        "https://console.developers.google.com/apis/api/{}/overview?project={project}",
                        service.host
                    )
                });
            return ApiFailure::ServiceDisabled {
                title: service.title,
                host: service.host,
                project: project.to_string(),
                url,
            };
        }
        match (code, status.as_str()) {
            (429, _) | (_, "RESOURCE_EXHAUSTED") => ApiFailure::Quota { message },
            (403, _) if reason.contains("quota") || reason.contains("QUOTA") => {
                ApiFailure::Quota { message }
            }
            (403, _) => ApiFailure::PermissionDenied {
                message,
                role: service.role,
            },
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

/// A client of one Google API for one project.
#[derive(Clone)]
pub struct GoogleApi {
    http: reqwest::Client,
    endpoint: String,
    project: String,
    service: &'static Service,
    tokens: Arc<dyn gcp_auth::TokenProvider>,
}

impl GoogleApi {
    /// Finds credentials (Application Default Credentials) and builds the
    /// client. No credentials is an error that says where bfctl looked.
    pub async fn connect(
        project: &str,
        service: &'static Service,
    ) -> Result<GoogleApi, ApiFailure> {
        crate::ensure_tls_provider();
        let tokens = gcp_auth::provider().await.map_err(|error| {
            ApiFailure::NoCredentials(format!(
                "no Google Cloud credentials found ({error}). bfctl looked at: the key file named by GOOGLE_APPLICATION_CREDENTIALS ({}), gcloud's application default credentials (~/.config/gcloud/application_default_credentials.json), the metadata server (only on Google Cloud) and the gcloud command. Set GOOGLE_APPLICATION_CREDENTIALS to a service-account key file, or run `gcloud auth application-default login`",
                std::env::var("GOOGLE_APPLICATION_CREDENTIALS")
                    .map(|path| path.to_string())
                    .unwrap_or_else(|_| "unset".into())
            ))
        })?;
        let endpoint = std::env::var(service.endpoint_variable)
            .ok()
            .filter(|e| !e.trim().is_empty())
            .unwrap_or_else(|| format!("https://{}", service.host));
        let http = reqwest::Client::builder()
            .user_agent(concat!("bfctl/", env!("CARGO_PKG_VERSION")))
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|error| ApiFailure::Network {
                endpoint: endpoint.clone(),
                message: error.to_string(),
            })?;
        Ok(GoogleApi {
            http,
            endpoint: endpoint.trim_end_matches('/').to_string(),
            project: project.to_string(),
            service,
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

    /// The project this client works in.
    pub fn project(&self) -> &str {
        &self.project
    }

    /// Calls `path` (after the service path: `projects/P/...`), with
    /// `query` pairs and a JSON body.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Value, ApiFailure> {
        let (token, _) = self.access_token().await?;
        let url = format!("{}/{}{path}", self.endpoint, self.service.service_path);
        let mut request = self.http.request(method, &url).bearer_auth(token);
        if !query.is_empty() {
            request = request.query(query);
        }
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
            Err(ApiFailure::from_body(
                code,
                &value,
                &self.project,
                self.service,
            ))
        }
    }
}
