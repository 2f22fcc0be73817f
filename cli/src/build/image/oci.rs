//! Assembling an OCI image: the base image's layers, our layer on top, and
//! a config and manifest written as JSON with a fixed key order (the OCI
//! structs of `oci-spec` keep labels and ports in hash maps, whose order,
//! and so whose digest, would change from run to run).

use serde_json::{Value, json};

use crate::build::image::layer::Layer;
use crate::build::image::sha256_digest;

pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";
pub const LAYER_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// A blob the manifest points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
}

impl Descriptor {
    fn to_json(&self) -> Value {
        json!({"mediaType": self.media_type, "digest": self.digest, "size": self.size})
    }
}

/// What the image runs and says about itself.
#[derive(Debug, Clone)]
pub struct ImageSpec {
    pub entrypoint: Vec<String>,
    /// `8080/tcp` …
    pub exposed_ports: Vec<String>,
    /// `uid:gid`, never root.
    pub user: String,
    pub env: Vec<String>,
    /// OCI labels, in the order given.
    pub labels: Vec<(String, String)>,
    /// RFC 3339, from SOURCE_DATE_EPOCH.
    pub created: String,
}

/// The base an image starts from: its layers (already in some registry)
/// and what its config says.
#[derive(Debug, Clone, Default)]
pub struct Base {
    /// Where it came from, by digest (`None`: an empty base, for static
    /// binaries or a containerDisk).
    pub reference: Option<String>,
    pub layers: Vec<Descriptor>,
    pub diff_ids: Vec<String>,
    pub env: Vec<String>,
}

/// An assembled image, ready to push.
#[derive(Debug, Clone)]
pub struct Image {
    pub manifest: Vec<u8>,
    pub config: Vec<u8>,
    /// Our own layers (the base's are referenced by descriptor only).
    pub layers: Vec<Layer>,
    pub base: Base,
}

impl Image {
    /// The manifest digest: the image's identity.
    pub fn digest(&self) -> String {
        sha256_digest(&self.manifest)
    }

    /// Compressed size of every layer plus config and manifest.
    pub fn size(&self) -> u64 {
        self.base.layers.iter().map(|l| l.size).sum::<u64>()
            + self
                .layers
                .iter()
                .map(|l| l.compressed.len() as u64)
                .sum::<u64>()
            + self.config.len() as u64
            + self.manifest.len() as u64
    }
}

/// Puts `layers` on top of `base` with `spec`'s config.
pub fn assemble(spec: &ImageSpec, base: &Base, layers: Vec<Layer>) -> anyhow::Result<Image> {
    let mut env = base.env.clone();
    for variable in &spec.env {
        let name = variable.split('=').next().unwrap_or("");
        env.retain(|existing| existing.split('=').next() != Some(name));
        env.push(variable.clone());
    }
    let mut ports = serde_json::Map::new();
    for port in &spec.exposed_ports {
        ports.insert(port.clone(), json!({}));
    }
    let mut labels = serde_json::Map::new();
    for (key, value) in &spec.labels {
        labels.insert(key.clone(), value.clone().into());
    }
    let diff_ids: Vec<&String> = base
        .diff_ids
        .iter()
        .chain(layers.iter().map(|l| &l.diff_id))
        .collect();
    let config = json!({
        "created": spec.created,
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "User": spec.user,
            "Env": env,
            "Entrypoint": spec.entrypoint,
            "ExposedPorts": ports,
            "Labels": labels,
            "WorkingDir": "/",
        },
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    });
    let config = serde_json::to_vec(&config)?;
    let config_descriptor = Descriptor {
        media_type: CONFIG_MEDIA_TYPE.into(),
        digest: sha256_digest(&config),
        size: config.len() as u64,
    };
    let layer_descriptors: Vec<Value> = base
        .layers
        .iter()
        .cloned()
        .chain(layers.iter().map(|layer| Descriptor {
            media_type: LAYER_MEDIA_TYPE.into(),
            digest: layer.digest.clone(),
            size: layer.compressed.len() as u64,
        }))
        .map(|d| d.to_json())
        .collect();
    let mut manifest = json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "config": config_descriptor.to_json(),
        "layers": layer_descriptors,
    });
    if let Some(reference) = &base.reference {
        manifest["annotations"] = json!({
            "org.opencontainers.image.base.name": reference,
        });
    }
    Ok(Image {
        manifest: serde_json::to_vec(&manifest)?,
        config,
        layers,
        base: base.clone(),
    })
}

/// `created` in RFC 3339 from seconds since the epoch (UTC), by `jiff`
/// (whole seconds print without a fraction, so the same seconds give the
/// same bytes and the same image digest). Times past jiff's range (the
/// year 9999) are clamped to its end.
pub fn rfc3339(seconds: u64) -> String {
    i64::try_from(seconds)
        .ok()
        .and_then(|seconds| jiff::Timestamp::from_second(seconds).ok())
        .unwrap_or(jiff::Timestamp::MAX)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_795_824_000), "2026-11-28T00:00:00Z");
        assert_eq!(rfc3339(951_782_400 + 3_661), "2000-02-29T01:01:01Z");
        assert!(rfc3339(u64::MAX).starts_with("9999-"), "clamped");
    }
}
