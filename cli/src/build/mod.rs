//! What bfctl builds and pushes before anything is deployed:
//!
//! * [`image`]: the three service images (deterministic layers, pushed by
//!   digest) and the record of what was pushed (`.bfctl/images.json`);
//! * [`disk`]: the Valkey VM disk, built reproducibly, checked bootable,
//!   and pushed as a KubeVirt containerDisk (recorded in the same file).
//!
//! Only [`image_refs`] turns that record into the image references the
//! manifests carry.

pub mod disk;
pub mod image;

use crate::plan::config::Config;
use crate::plan::render::ImageRefs;

/// The digests `bfctl build --push` and `bfctl disk push` recorded for the
/// configured registry, and tags for the images not recorded (named in the
/// second value, so the caller can say so).
pub fn image_refs(config: &Config, state: &image::ImageState) -> (ImageRefs, Vec<&'static str>) {
    let mut refs = ImageRefs::unbuilt(config);
    let base = config.registry.url.trim_end_matches('/');
    // The same digests, pulled from where the cluster reaches the registry
    // (for the one bfctl provides: its address inside the VPC).
    let pull_base = config.registry.pull_base();
    let mut missing = Vec::new();
    for (name, slot) in [
        ("gateway", &mut refs.gateway),
        ("producer", &mut refs.producer),
        ("consumer", &mut refs.consumer),
        ("valkey-disk", &mut refs.valkey_disk),
    ] {
        match state.images.get(name) {
            Some(recorded)
                if recorded
                    .reference
                    .starts_with(&format!("{base}/{name}@sha256:")) =>
            {
                let digest = &recorded.reference[base.len() + name.len() + 2..];
                *slot = format!("{pull_base}/{name}@{digest}");
            }
            _ => missing.push(name),
        }
    }
    (refs, missing)
}
