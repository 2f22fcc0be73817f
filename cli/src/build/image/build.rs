//! Building all three service images, with a cache: an image whose inputs
//! (the binary's bytes, the base's digest, the spec) did not change is read
//! back from `.bfctl/images/` instead of being assembled again, and a push
//! sends only the blobs the registry does not have.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::build::image::layer::Layer;
use crate::build::image::oci::{self, Base, Descriptor, Image};
use crate::build::image::registry::{PushReport, RegistryClient, RegistryOptions};
use crate::build::image::{self as images, ImageState, Recorded, SERVICES, native, sha256_digest};
use crate::plan::config::Config;

#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// The repository root (holds the workspace Cargo.toml).
    pub workspace: PathBuf,
    /// Where images.json and the image cache live (`.bfctl`).
    pub state_dir: PathBuf,
    /// Cargo profile: `release` for real images.
    pub profile: String,
    pub push: bool,
    /// Credentials and TLS for the target registry.
    pub registry: RegistryOptions,
    /// Credentials and TLS for the base image's registry.
    pub base_registry: RegistryOptions,
}

/// One built image.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Built {
    pub service: String,
    pub digest: String,
    pub size: u64,
    /// Read from the cache: the inputs had not changed.
    pub cached: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub push: Option<PushReport>,
}

/// What is cached per image next to the layer blob.
#[derive(Serialize, Deserialize)]
struct CachedImage {
    inputs: String,
    manifest: String,
    config: String,
    base_reference: Option<String>,
    base_layers: Vec<(String, String, u64)>,
    base_diff_ids: Vec<String>,
    layer_digest: String,
    layer_diff_id: String,
}

/// Builds (and with `push`, publishes) the three images; records them.
pub async fn build_all(
    config: &Config,
    options: &BuildOptions,
    mut progress: impl FnMut(&str),
) -> anyhow::Result<Vec<Built>> {
    if config.images.builder == crate::plan::config::Builder::Docker {
        return build_with_docker(config, options, progress).await;
    }
    let packages: Vec<&str> = SERVICES.iter().map(|s| s.name).collect();
    progress("cargo build of gateway, producer, consumer");
    let binaries = native::cargo_build(&options.workspace, &packages, &options.profile, |line| {
        if line.starts_with("Compiling") || line.starts_with("Finished") {
            progress(line);
        }
    })?;
    let epoch = images::source_date_epoch(&options.workspace);
    let revision = images::revision(&options.workspace);
    let source = config.images.source.clone();
    let base_reference = config.images.base.trim().to_string();

    let mut base: Option<(Base, Option<(u32, u32)>)> = None;
    let mut state = ImageState::load(&options.state_dir)?;
    let mut built = Vec::new();
    for service in &SERVICES {
        let binary_path = binaries.join(service.name);
        let binary = std::fs::read(&binary_path)
            .with_context(|| format!("reading {}", binary_path.display()))?;
        let spec = images::spec_for(service, epoch, &revision, &source);
        let inputs = sha256_digest(
            format!("{}\n{base_reference}\n{spec:?}\n", sha256_digest(&binary)).as_bytes(),
        );
        let cache_dir = options.state_dir.join("images").join(service.name);
        let (image, cached) = match read_cache(&cache_dir, &inputs) {
            Some(image) => (image, true),
            None => {
                if base.is_none() {
                    base = Some(read_base(&base_reference, options, &mut progress).await?);
                }
                let (base, glibc) = base.as_ref().context("base read above")?;
                native::check_libc(service.name, &binary, *glibc)?;
                progress(&format!("{}: assembling the image", service.name));
                let service = *service;
                let layer = tokio::task::spawn_blocking(move || {
                    images::binary_layer(&service, binary, epoch)
                })
                .await??;
                let image = oci::assemble(&spec, base, vec![layer])?;
                write_cache(&cache_dir, &inputs, &image)?;
                (image, false)
            }
        };
        let push = if options.push {
            let repository = format!(
                "{}/{}",
                config.registry.url.trim_end_matches('/'),
                service.name
            );
            progress(&format!("{}: pushing to {repository}", service.name));
            let client =
                RegistryClient::new(&super::registry_host(&repository)?, &options.registry)?;
            let report = client.push(&repository, &image).await?;
            state.images.insert(
                service.name.to_string(),
                Recorded {
                    reference: report.reference.clone(),
                    digest: report.digest.clone(),
                    inputs: inputs.clone(),
                    size: image.size(),
                },
            );
            state.save(&options.state_dir)?;
            Some(report)
        } else {
            None
        };
        built.push(Built {
            service: service.name.to_string(),
            digest: image.digest(),
            size: image.size(),
            cached,
            push,
        });
    }
    Ok(built)
}

/// The `docker` builder: `services/Dockerfile` per service through the
/// engine; with `push`, pushed and recorded by the digest the push reports.
async fn build_with_docker(
    config: &Config,
    options: &BuildOptions,
    mut progress: impl FnMut(&str),
) -> anyhow::Result<Vec<Built>> {
    use crate::build::image::docker::{DockerBuild, build_and_push};
    let revision = images::revision(&options.workspace);
    let short: String = revision.chars().take(12).collect();
    let mut state = ImageState::load(&options.state_dir)?;
    let mut built = Vec::new();
    for service in &SERVICES {
        let repository = format!(
            "{}/{}",
            config.registry.url.trim_end_matches('/'),
            service.name
        );
        let build = DockerBuild {
            context: options.workspace.clone(),
            dockerfile: "services/Dockerfile".into(),
            tag: format!("{repository}:{}", short.trim_end_matches("-dirty")),
            build_args: vec![
                ("SERVICE".into(), service.name.into()),
                ("BASE".into(), config.images.base.clone()),
            ],
        };
        progress(&format!("{}: docker build {}", service.name, build.tag));
        let result = build_and_push(&build, options.push, &options.registry.auth, |line| {
            progress(&format!("{}: {line}", service.name))
        })
        .await?;
        if let Some(digest) = &result.pushed_digest {
            state.images.insert(
                service.name.to_string(),
                Recorded {
                    reference: format!("{repository}@{digest}"),
                    digest: digest.clone(),
                    inputs: revision.clone(),
                    size: 0,
                },
            );
            state.save(&options.state_dir)?;
        }
        built.push(Built {
            service: service.name.to_string(),
            digest: result.pushed_digest.clone().unwrap_or_default(),
            size: 0,
            cached: false,
            push: result.pushed_digest.map(|digest| PushReport {
                reference: format!("{repository}@{digest}"),
                digest,
                blobs_uploaded: 0,
                blobs_present: 0,
                bytes_uploaded: 0,
            }),
        });
    }
    Ok(built)
}

/// Reads the base by digest and its glibc version (`None` base: empty).
async fn read_base(
    reference: &str,
    options: &BuildOptions,
    progress: &mut impl FnMut(&str),
) -> anyhow::Result<(Base, Option<(u32, u32)>)> {
    if reference.is_empty() {
        return Ok((Base::default(), None));
    }
    progress(&format!("reading base image {reference}"));
    let client = RegistryClient::new(&super::registry_host(reference)?, &options.base_registry)?;
    let base = client.base(reference).await?;
    let mut layers: Vec<(Descriptor, Vec<u8>)> = Vec::new();
    for layer in &base.layers {
        layers.push((layer.clone(), client.base_layer(reference, layer).await?));
    }
    let glibc = native::base_glibc(&layers)?;
    Ok((base, glibc))
}

fn read_cache(dir: &Path, inputs: &str) -> Option<Image> {
    let meta: CachedImage =
        serde_json::from_slice(&std::fs::read(dir.join("image.json")).ok()?).ok()?;
    if meta.inputs != inputs {
        return None;
    }
    let compressed = std::fs::read(dir.join("layer.tar.gz")).ok()?;
    if sha256_digest(&compressed) != meta.layer_digest {
        return None;
    }
    Some(Image {
        manifest: meta.manifest.into_bytes(),
        config: meta.config.into_bytes(),
        layers: vec![Layer {
            compressed,
            digest: meta.layer_digest,
            diff_id: meta.layer_diff_id,
        }],
        base: Base {
            reference: meta.base_reference,
            layers: meta
                .base_layers
                .into_iter()
                .map(|(media_type, digest, size)| Descriptor {
                    media_type,
                    digest,
                    size,
                })
                .collect(),
            diff_ids: meta.base_diff_ids,
            env: Vec::new(),
        },
    })
}

fn write_cache(dir: &Path, inputs: &str, image: &Image) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let layer = image.layers.first().context("an image has our layer")?;
    std::fs::write(dir.join("layer.tar.gz"), &layer.compressed)?;
    let meta = CachedImage {
        inputs: inputs.to_string(),
        manifest: String::from_utf8(image.manifest.clone())?,
        config: String::from_utf8(image.config.clone())?,
        base_reference: image.base.reference.clone(),
        base_layers: image
            .base
            .layers
            .iter()
            .map(|l| (l.media_type.clone(), l.digest.clone(), l.size))
            .collect(),
        base_diff_ids: image.base.diff_ids.clone(),
        layer_digest: layer.digest.clone(),
        layer_diff_id: layer.diff_id.clone(),
    };
    std::fs::write(dir.join("image.json"), serde_json::to_vec(&meta)?)?;
    Ok(())
}
