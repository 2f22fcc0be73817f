//! `bfctl build [--push]`: the service images, built, published and
//! recorded by digest, as three separate steps (like ko):
//!
//! * **build**: [`native::cargo_build`] makes the binaries;
//! * **assemble**: [`layer::build`] and [`oci::assemble`] make a
//!   deterministic image on a base read by digest ([`registry`]);
//! * **publish**: [`registry::RegistryClient::push`] sends only the blobs the
//!   registry lacks;
//! * **resolve**: the digests go to `.bfctl/images.json`, which `bfctl
//!   render` and `bfctl up` read to name every image `…@sha256:…`.

pub mod build;
pub mod credentials;
pub mod docker;
pub mod layer;
pub mod native;
pub mod oci;
pub mod registry;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// `sha256:<hex>` of some bytes.
/// An image reference (or a repository, `host[:port]/path`), parsed once by
/// `oci_client::Reference`: the only place bfctl takes references apart.
pub fn parse_reference(reference: &str) -> anyhow::Result<oci_client::Reference> {
    reference.parse::<oci_client::Reference>().with_context(|| {
        format!("{reference:?} is not an image reference (host[:port]/path[:tag|@digest])")
    })
}

/// The registry host (`host[:port]`) of a reference or repository.
pub fn registry_host(reference: &str) -> anyhow::Result<String> {
    Ok(parse_reference(reference)?.registry().to_string())
}

pub fn sha256_digest(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// `sha256:<hex>` of a file's bytes, read in pieces.
pub fn sha256_digest_file(path: &Path) -> anyhow::Result<String> {
    use std::io::Read;
    let mut file =
        std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut hash = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let read = file
            .read(&mut buffer)
            .with_context(|| format!("reading {}", path.display()))?;
        if read == 0 {
            break;
        }
        hash.update(&buffer[..read]);
    }
    let hex: String = hash.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("sha256:{hex}"))
}

/// One of the three services.
#[derive(Debug, Clone, Copy)]
pub struct Service {
    pub name: &'static str,
    pub exposed_ports: &'static [&'static str],
}

pub const SERVICES: [Service; 3] = [
    Service {
        name: "gateway",
        exposed_ports: &["8080/tcp"],
    },
    Service {
        name: "producer",
        exposed_ports: &["50051/tcp", "9090/tcp"],
    },
    Service {
        name: "consumer",
        exposed_ports: &["9090/tcp"],
    },
];

/// The non-root user every image runs as (distroless's `nonroot`).
pub const USER: &str = "65532:65532";

/// What a build recorded for one image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Recorded {
    /// `host/repo@sha256:…`, what the manifests name.
    pub reference: String,
    pub digest: String,
    /// Hash of everything the image was made from.
    pub inputs: String,
    /// Compressed size in bytes.
    pub size: u64,
}

/// `.bfctl/images.json`: image name → what was last built and pushed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ImageState {
    pub images: BTreeMap<String, Recorded>,
}

impl ImageState {
    pub fn path(state_dir: &Path) -> PathBuf {
        state_dir.join("images.json")
    }

    /// The recorded state; empty when nothing was built yet.
    pub fn load(state_dir: &Path) -> anyhow::Result<ImageState> {
        let path = Self::path(state_dir);
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text)
                .with_context(|| format!("{} is damaged; delete it to rebuild", path.display())),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(ImageState::default()),
            Err(error) => Err(error).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// Writes atomically (a rename), so a crash never leaves half a file.
    pub fn save(&self, state_dir: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(state_dir)
            .with_context(|| format!("creating {}", state_dir.display()))?;
        crate::files::write_atomically(&Self::path(state_dir), &serde_json::to_vec_pretty(self)?)
    }
}

/// SOURCE_DATE_EPOCH, else the last commit's time, else 0.
pub fn source_date_epoch(workspace: &Path) -> u64 {
    if let Some(epoch) = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        return epoch;
    }
    git(workspace, &["log", "-1", "--format=%ct"])
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The commit the sources are at (with `-dirty` when they differ from it).
pub fn revision(workspace: &Path) -> String {
    let commit = git(workspace, &["rev-parse", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let dirty = git(
        workspace,
        &["status", "--porcelain", "--untracked-files=no"],
    )
    .is_some_and(|status| !status.is_empty());
    if dirty {
        format!("{commit}-dirty")
    } else {
        commit
    }
}

fn git(workspace: &Path, args: &[&str]) -> Option<String> {
    let output = std::process::Command::new("git")
        .current_dir(workspace)
        .args(args)
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_string())
}

/// The image spec of a service.
pub fn spec_for(service: &Service, epoch: u64, revision: &str, source: &str) -> oci::ImageSpec {
    let created = oci::rfc3339(epoch);
    oci::ImageSpec {
        entrypoint: vec![format!("/usr/local/bin/{}", service.name)],
        exposed_ports: service
            .exposed_ports
            .iter()
            .map(|p| p.to_string())
            .collect(),
        user: USER.to_string(),
        env: Vec::new(),
        labels: vec![
            ("org.opencontainers.image.created".into(), created.clone()),
            ("org.opencontainers.image.revision".into(), revision.into()),
            ("org.opencontainers.image.source".into(), source.into()),
            ("org.opencontainers.image.title".into(), service.name.into()),
        ],
        created,
    }
}

/// The layer holding a service's binary.
pub fn binary_layer(
    service: &Service,
    binary: Vec<u8>,
    epoch: u64,
) -> anyhow::Result<layer::Layer> {
    layer::build(
        &[layer::LayerFile {
            path: format!("/usr/local/bin/{}", service.name),
            mode: 0o755,
            uid: 0,
            gid: 0,
            data: binary,
        }],
        epoch,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_taken_apart_by_oci_client() {
        assert_eq!(
            registry_host("zot.example.com/bf").unwrap(),
            "zot.example.com"
        );
        assert_eq!(
            registry_host("127.0.0.1:5000/bf/gateway:latest").unwrap(),
            "127.0.0.1:5000"
        );
        assert_eq!(
            registry_host("grafana/grafana:12.3.0").unwrap(),
            "docker.io"
        );
        assert!(registry_host("Not A Reference").is_err());
    }
}
