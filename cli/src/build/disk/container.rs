//! `bfctl disk push`: the qcow2 wrapped as a KubeVirt containerDisk (an OCI
//! image with one layer holding `/disk/valkey.qcow2`, owned by uid 107, the
//! user KubeVirt's launcher reads it as), assembled without Docker and
//! pushed with the same publisher as the service images.

use std::path::Path;

use anyhow::Context;

use crate::build::image::layer::{self, LayerFile};
use crate::build::image::oci::{self, Base, Image, ImageSpec};
use crate::build::image::registry::{PushReport, RegistryClient, RegistryOptions};
use crate::build::image::{ImageState, Recorded};

/// Where KubeVirt looks for the disk inside a containerDisk image.
pub const DISK_PATH_IN_IMAGE: &str = "/disk/valkey.qcow2";
/// The qemu user of KubeVirt's virt-launcher.
pub const KUBEVIRT_QEMU_UID: u64 = 107;
/// The name the disk is recorded under in `.bfctl/images.json` and pushed
/// as (`<registry>/valkey-disk`).
pub const IMAGE_NAME: &str = "valkey-disk";

/// The containerDisk image of the qcow2 at `qcow2`, dated `epoch`.
pub fn assemble(qcow2: &Path, epoch: u64, recipe_inputs: &str) -> anyhow::Result<Image> {
    let data = std::fs::read(qcow2).with_context(|| format!("reading {}", qcow2.display()))?;
    let layer = layer::build(
        &[LayerFile {
            path: DISK_PATH_IN_IMAGE.to_string(),
            mode: 0o440,
            uid: KUBEVIRT_QEMU_UID,
            gid: KUBEVIRT_QEMU_UID,
            data,
        }],
        epoch,
    )?;
    let created = oci::rfc3339(epoch);
    let spec = ImageSpec {
        entrypoint: Vec::new(),
        exposed_ports: Vec::new(),
        user: format!("{KUBEVIRT_QEMU_UID}:{KUBEVIRT_QEMU_UID}"),
        env: Vec::new(),
        labels: vec![
            ("org.opencontainers.image.created".into(), created.clone()),
            (
                "org.opencontainers.image.description".into(),
                "Valkey VM disk (KubeVirt containerDisk) built by bfctl disk build".into(),
            ),
            ("org.opencontainers.image.title".into(), IMAGE_NAME.into()),
            ("io.bfctl.disk.recipe".into(), recipe_inputs.into()),
        ],
        created,
    };
    oci::assemble(&spec, &Base::default(), vec![layer])
}

/// Pushes the disk's image to `<registry>/valkey-disk` and records it in
/// `state_dir/images.json` (with the recipe's inputs, so `bfctl up` knows
/// when the recorded disk is current).
pub async fn push_and_record(
    image: &Image,
    registry_url: &str,
    registry: &RegistryOptions,
    state_dir: &Path,
    recipe_inputs: &str,
) -> anyhow::Result<PushReport> {
    let repository = format!("{}/{IMAGE_NAME}", registry_url.trim_end_matches('/'));
    let host = crate::build::image::registry_host(&repository)?;
    let client = RegistryClient::new(&host, registry)?;
    let report = client.push(&repository, image).await?;
    let mut state = ImageState::load(state_dir)?;
    state.images.insert(
        IMAGE_NAME.to_string(),
        Recorded {
            reference: report.reference.clone(),
            digest: report.digest.clone(),
            inputs: recipe_inputs.to_string(),
            size: image.size(),
        },
    );
    state.save(state_dir)?;
    Ok(report)
}

/// Whether `images.json` holds a pushed disk built from `recipe_inputs` for
/// this registry.
pub fn recorded_is_current(state: &ImageState, registry_url: &str, recipe_inputs: &str) -> bool {
    let repository = format!("{}/{IMAGE_NAME}@", registry_url.trim_end_matches('/'));
    state
        .images
        .get(IMAGE_NAME)
        .is_some_and(|r| r.inputs == recipe_inputs && r.reference.starts_with(&repository))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_disk_is_owned_by_qemu_under_disk_and_the_digest_is_stable() {
        let dir = tempfile::tempdir().unwrap();
        let qcow2 = dir.path().join("valkey.qcow2");
        std::fs::write(&qcow2, b"QFI\xfb not really a qcow2").unwrap();
        let image = assemble(&qcow2, 1_735_689_600, "sha256:abc").unwrap();
        assert_eq!(
            image.digest(),
            assemble(&qcow2, 1_735_689_600, "sha256:abc")
                .unwrap()
                .digest()
        );
        let layer = &image.layers[0];
        let tar = flate2::read::GzDecoder::new(layer.compressed.as_slice());
        let mut archive = tar::Archive::new(tar);
        let entries: Vec<(String, u64, u32)> = archive
            .entries()
            .unwrap()
            .map(|entry| {
                let entry = entry.unwrap();
                let header = entry.header();
                (
                    entry.path().unwrap().display().to_string(),
                    header.uid().unwrap(),
                    header.mode().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            entries,
            vec![
                ("disk/".to_string(), 0, 0o755),
                ("disk/valkey.qcow2".to_string(), 107, 0o440)
            ]
        );
        let config: serde_json::Value = serde_json::from_slice(&image.config).unwrap();
        assert_eq!(config["config"]["User"], "107:107");
    }
}
