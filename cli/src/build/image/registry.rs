//! Talking to an OCI registry through the distribution API (`oci-client`):
//! pushing an assembled image without re-sending blobs the registry already
//! has, and reading a base image by digest.
//!
//! Plain HTTP is used only for registries on loopback or when
//! `registry.insecure` allows it; everything else is TLS (with extra CA
//! certificates when given).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, bail};
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Reference, RegistryOperation};
use serde_json::Value;

use crate::build::image::oci::{Base, Descriptor, Image, MANIFEST_MEDIA_TYPE};

/// How to reach one registry.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// Allow plain HTTP to a registry that is not on loopback.
    pub insecure: bool,
    /// PEM files of extra CA certificates.
    pub ca_files: Vec<std::path::PathBuf>,
    pub auth: RegistryAuth,
}

/// What a push did.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PushReport {
    /// `host/repo@sha256:…`
    pub reference: String,
    pub digest: String,
    pub blobs_uploaded: usize,
    pub blobs_present: usize,
    pub bytes_uploaded: u64,
}

pub struct RegistryClient {
    client: oci_client::Client,
    auth: RegistryAuth,
    uploaded: Arc<AtomicU64>,
}

/// Whether `host[:port]` is on loopback.
pub fn is_loopback(host: &str) -> bool {
    let name = host
        .rsplit_once(':')
        .filter(|(_, port)| port.chars().all(|c| c.is_ascii_digit()))
        .map_or(host, |(name, _)| name);
    name == "localhost"
        || name
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl RegistryClient {
    pub fn new(registry_host: &str, options: &RegistryOptions) -> anyhow::Result<RegistryClient> {
        crate::ensure_tls_provider();
        // A registry on loopback may speak plain HTTP (a local test or
        // mirror), unless a CA is given, which means it speaks TLS.
        let plain_http =
            (is_loopback(registry_host) && options.ca_files.is_empty()) || options.insecure;
        let mut extra_root_certificates = Vec::new();
        for path in &options.ca_files {
            let data = std::fs::read(path)
                .with_context(|| format!("reading CA certificate {}", path.display()))?;
            extra_root_certificates.push(oci_client::client::Certificate {
                encoding: oci_client::client::CertificateEncoding::Pem,
                data,
            });
        }
        let config = ClientConfig {
            protocol: if plain_http {
                ClientProtocol::HttpsExcept(vec![registry_host.to_string()])
            } else {
                ClientProtocol::Https
            },
            extra_root_certificates,
            connect_timeout: Some(std::time::Duration::from_secs(10)),
            read_timeout: Some(std::time::Duration::from_secs(120)),
            ..ClientConfig::default()
        };
        Ok(RegistryClient {
            client: oci_client::Client::new(config),
            auth: options.auth.clone(),
            uploaded: Arc::new(AtomicU64::new(0)),
        })
    }

    async fn authenticate(
        &self,
        reference: &Reference,
        operation: RegistryOperation,
    ) -> anyhow::Result<()> {
        self.client
            .auth(reference, &self.auth, operation)
            .await
            .map(|_| ())
            .map_err(|error| describe(error, reference))
    }

    /// Pushes `image` as `repository` (`host/path/name`), skipping blobs the
    /// registry has; base layers come from `base_source` when missing.
    pub async fn push(&self, repository: &str, image: &Image) -> anyhow::Result<PushReport> {
        let tag_reference: Reference = format!("{repository}:latest")
            .parse()
            .with_context(|| format!("{repository:?} is not a valid image repository"))?;
        self.authenticate(&tag_reference, RegistryOperation::Push)
            .await?;
        self.uploaded.store(0, Ordering::Relaxed);
        let mut report = PushReport {
            reference: format!("{repository}@{}", image.digest()),
            digest: image.digest(),
            blobs_uploaded: 0,
            blobs_present: 0,
            bytes_uploaded: 0,
        };
        // Base layers first (copied from the base's registry when missing),
        // then ours, then the config: a manifest is pushed only once every
        // blob it names is there, so a failed push leaves nothing referenced.
        if let Some(base) = &image.base.reference {
            let source: Reference = base
                .parse()
                .with_context(|| format!("base image {base:?}"))?;
            for layer in &image.base.layers {
                if self.has_blob(&tag_reference, &layer.digest).await? {
                    report.blobs_present += 1;
                    continue;
                }
                let bytes = self.pull_blob(&source, layer).await?;
                self.push_blob(&tag_reference, bytes, &layer.digest).await?;
                report.blobs_uploaded += 1;
            }
        }
        let ours = image
            .layers
            .iter()
            .map(|l| (l.compressed.clone(), l.digest.clone()))
            .chain(std::iter::once((
                image.config.clone(),
                crate::build::image::sha256_digest(&image.config),
            )));
        for (bytes, digest) in ours {
            if self.has_blob(&tag_reference, &digest).await? {
                report.blobs_present += 1;
                continue;
            }
            self.push_blob(&tag_reference, bytes, &digest).await?;
            report.blobs_uploaded += 1;
        }
        let manifest_reference: Reference = format!("{repository}@{}", image.digest())
            .parse()
            .context("building the manifest reference")?;
        let exists = self
            .client
            .fetch_manifest_digest(&manifest_reference, &self.auth)
            .await
            .is_ok();
        if !exists {
            self.client
                .push_manifest_raw(
                    &tag_reference,
                    image.manifest.clone(),
                    MANIFEST_MEDIA_TYPE.parse().context("manifest media type")?,
                )
                .await
                .map_err(|error| describe(error, &tag_reference))?;
            self.uploaded
                .fetch_add(image.manifest.len() as u64, Ordering::Relaxed);
        }
        report.bytes_uploaded = self.uploaded.load(Ordering::Relaxed);
        Ok(report)
    }

    async fn has_blob(&self, reference: &Reference, digest: &str) -> anyhow::Result<bool> {
        self.client
            .blob_exists(reference, digest)
            .await
            .map_err(|error| describe(error, reference))
    }

    async fn push_blob(
        &self,
        reference: &Reference,
        bytes: Vec<u8>,
        digest: &str,
    ) -> anyhow::Result<()> {
        let size = bytes.len() as u64;
        self.client
            .push_blob(reference, bytes, digest)
            .await
            .map_err(|error| describe(error, reference))
            .with_context(|| format!("uploading blob {digest}"))?;
        self.uploaded.fetch_add(size, Ordering::Relaxed);
        Ok(())
    }

    async fn pull_blob(&self, source: &Reference, layer: &Descriptor) -> anyhow::Result<Vec<u8>> {
        let descriptor = oci_client::manifest::OciDescriptor {
            media_type: layer.media_type.clone(),
            digest: layer.digest.clone(),
            size: layer.size as i64,
            ..Default::default()
        };
        let mut bytes = Vec::new();
        self.client
            .pull_blob(source, &descriptor, &mut bytes)
            .await
            .map_err(|error| describe(error, source))
            .with_context(|| format!("copying base layer {}", layer.digest))?;
        Ok(bytes)
    }

    /// Reads a base image, which must be named by digest (`…@sha256:…`), for
    /// linux/amd64.
    pub async fn base(&self, reference: &str) -> anyhow::Result<Base> {
        let parsed: Reference = reference
            .parse()
            .with_context(|| format!("base image {reference:?} is not a valid reference"))?;
        if parsed.digest().is_none() {
            bail!("base image {reference:?} must be pinned by digest (…@sha256:…)");
        }
        self.authenticate(&parsed, RegistryOperation::Pull).await?;
        let (manifest, _digest, config) = self
            .client
            .pull_manifest_and_config(&parsed, &self.auth)
            .await
            .map_err(|error| describe(error, &parsed))
            .with_context(|| format!("reading base image {reference}"))?;
        let config: Value = serde_json::from_str(&config)
            .with_context(|| format!("base image {reference}: config is not JSON"))?;
        let strings = |pointer: &str| -> Vec<String> {
            config
                .pointer(pointer)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        };
        Ok(Base {
            reference: Some(reference.to_string()),
            layers: manifest
                .layers
                .iter()
                .map(|l| Descriptor {
                    media_type: l.media_type.clone(),
                    digest: l.digest.clone(),
                    size: l.size as u64,
                })
                .collect(),
            diff_ids: strings("/rootfs/diff_ids"),
            env: strings("/config/Env"),
        })
    }

    /// The bytes of a base image's layer (for the libc check).
    pub async fn base_layer(&self, reference: &str, layer: &Descriptor) -> anyhow::Result<Vec<u8>> {
        let parsed: Reference = reference.parse()?;
        self.pull_blob(&parsed, layer).await
    }
}

/// Turns the client's errors into messages that say what failed where.
fn describe(
    error: oci_client::errors::OciDistributionError,
    reference: &Reference,
) -> anyhow::Error {
    use oci_client::errors::OciDistributionError as E;
    let registry = reference.resolve_registry();
    match error {
        E::AuthenticationFailure(message) => anyhow::anyhow!(
            "registry {registry} refused the credentials ({message}); check registry.credentials and the Docker config or BFCTL_REGISTRY_USERNAME/PASSWORD"
        ),
        E::UnauthorizedError { url } => anyhow::anyhow!(
            "registry {registry} answered 401 Unauthorized for {url}: wrong or missing credentials"
        ),
        E::ImageManifestNotFoundError(message) => {
            anyhow::anyhow!("{reference} does not exist in {registry}: {message}")
        }
        E::RequestError(source) => {
            // reqwest's message is "error sending request"; the cause
            // (refused, TLS, DNS) is further down the chain.
            let mut causes = vec![source.to_string()];
            let mut next = std::error::Error::source(&source);
            while let Some(cause) = next {
                causes.push(cause.to_string());
                next = cause.source();
            }
            anyhow::anyhow!("registry {registry} is unreachable: {}", causes.join(": "))
        }
        other => anyhow::anyhow!("registry {registry}: {other}"),
    }
}
