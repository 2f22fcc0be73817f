//! `bfctl disk`: the Valkey VM disk, built from the recipe in `disk/` and
//! published as a KubeVirt containerDisk. Like the service images, in
//! separate steps:
//!
//! * **recipe** ([`Recipe`]): `disk/recipe.yaml` and the files under
//!   `disk/rootfs/`, hashed into the build cache's key;
//! * **host check** ([`tools`]): root and the host tools, all missing ones
//!   named at once, before any work starts;
//! * **build** ([`build`]): a Debian root filesystem from `mmdebstrap`,
//!   written into a GPT disk that boots with BIOS and UEFI, as a compressed
//!   qcow2 in `.bfctl/disk/`;
//! * **publish** ([`container`]): the qcow2 as `/disk/valkey.qcow2` (uid
//!   107) in an OCI image, pushed and recorded in `.bfctl/images.json` as
//!   `valkey-disk`, which the VirtualMachine's manifest then names by digest.
//!
//! docs/disk.md explains what is in the image and how it boots.

pub mod build;
pub mod container;
pub mod tools;

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Bumped whenever the build steps change what they write, so that disks
/// built by an older bfctl are rebuilt.
pub const BUILD_STEPS_VERSION: u32 = 1;

/// `disk/recipe.yaml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Recipe {
    /// Debian suite of the root filesystem (`trixie`).
    pub suite: String,
    pub mirror: String,
    /// Packages on top of the essential set.
    pub packages: Vec<String>,
    /// Kernel modules the initramfs loads to find the root disk.
    pub initramfs_modules: Vec<String>,
    #[serde(rename = "diskMiB")]
    pub disk_mib: u64,
    #[serde(rename = "espMiB")]
    pub esp_mib: u64,
    pub source_date_epoch: u64,
}

/// A recipe with the files it puts into the image, as read from disk.
#[derive(Debug, Clone)]
pub struct LoadedRecipe {
    pub dir: PathBuf,
    pub recipe: Recipe,
    /// `rootfs/` files: path relative to `/`, executable bit, bytes.
    pub overlay: Vec<OverlayFile>,
    /// sha256 of everything above and [`BUILD_STEPS_VERSION`].
    pub inputs: String,
}

#[derive(Debug, Clone)]
pub struct OverlayFile {
    pub path: String,
    pub executable: bool,
    pub data: Vec<u8>,
}

impl LoadedRecipe {
    /// Reads `dir/recipe.yaml` and `dir/rootfs/`. Errors name the file and,
    /// for YAML, the line.
    pub fn load(dir: &Path) -> anyhow::Result<LoadedRecipe> {
        let recipe_path = dir.join("recipe.yaml");
        let text = std::fs::read_to_string(&recipe_path)
            .with_context(|| format!("reading the disk recipe {}", recipe_path.display()))?;
        let recipe: Recipe = crate::yaml::parse(&text, &recipe_path.display().to_string())
            .context("not a valid disk recipe")?;
        recipe
            .check()
            .with_context(|| format!("in {}", recipe_path.display()))?;
        let mut overlay = Vec::new();
        read_overlay(&dir.join("rootfs"), Path::new(""), &mut overlay)?;
        overlay.sort_by(|a, b| a.path.cmp(&b.path));

        let mut hash = Sha256::new();
        hash.update(format!("bfctl disk build steps v{BUILD_STEPS_VERSION}\n"));
        hash.update(text.as_bytes());
        for file in &overlay {
            hash.update(format!(
                "\n{} {} {}\n",
                file.path,
                file.executable,
                file.data.len()
            ));
            hash.update(&file.data);
        }
        let inputs = format!("sha256:{:x}", hash.finalize());
        Ok(LoadedRecipe {
            dir: dir.to_path_buf(),
            recipe,
            overlay,
            inputs,
        })
    }
}

impl Recipe {
    fn check(&self) -> anyhow::Result<()> {
        let name_ok = |name: &str| {
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.:_=".contains(c))
        };
        anyhow::ensure!(
            name_ok(&self.suite),
            "suite {:?} is not a Debian suite name",
            self.suite
        );
        anyhow::ensure!(
            self.mirror.starts_with("http://") || self.mirror.starts_with("https://"),
            "mirror {:?} is not an http(s) URL",
            self.mirror
        );
        for package in &self.packages {
            anyhow::ensure!(
                name_ok(package),
                "packages: {package:?} is not a package name"
            );
        }
        anyhow::ensure!(
            self.packages
                .iter()
                .any(|p| p == "valkey-server" || p.starts_with("valkey-server=")),
            "packages must include valkey-server"
        );
        for module in &self.initramfs_modules {
            anyhow::ensure!(
                name_ok(module),
                "initramfsModules: {module:?} is not a module name"
            );
        }
        anyhow::ensure!(
            (32..=4096).contains(&self.esp_mib),
            "espMiB {} is outside 32-4096",
            self.esp_mib
        );
        anyhow::ensure!(
            self.disk_mib >= self.esp_mib + 512 && self.disk_mib <= 65_536,
            "diskMiB {} must be at least espMiB + 512 and at most 65536",
            self.disk_mib
        );
        Ok(())
    }
}

fn read_overlay(root: &Path, relative: &Path, out: &mut Vec<OverlayFile>) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let dir = root.join(relative);
    let entries = std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("reading {}", dir.display()))?;
        let path = relative.join(entry.file_name());
        let metadata = entry
            .metadata()
            .with_context(|| format!("reading {}", entry.path().display()))?;
        if metadata.is_dir() {
            read_overlay(root, &path, out)?;
        } else if metadata.is_file() {
            let data = std::fs::read(entry.path())
                .with_context(|| format!("reading {}", entry.path().display()))?;
            let path = path
                .to_str()
                .with_context(|| format!("{} is not UTF-8", entry.path().display()))?
                .to_string();
            out.push(OverlayFile {
                path,
                executable: metadata.permissions().mode() & 0o111 != 0,
                data,
            });
        } else {
            anyhow::bail!(
                "{}: only plain files and directories may be in the disk's rootfs/",
                entry.path().display()
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repository_recipe() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../disk")
    }

    #[test]
    fn the_repository_recipe_loads_with_its_overlay() {
        let loaded = LoadedRecipe::load(&repository_recipe()).unwrap();
        assert_eq!(loaded.recipe.suite, "trixie");
        let paths: Vec<&str> = loaded.overlay.iter().map(|f| f.path.as_str()).collect();
        assert!(paths.contains(&"usr/local/sbin/bfctl-seed"), "{paths:?}");
        let seed = loaded
            .overlay
            .iter()
            .find(|f| f.path == "usr/local/sbin/bfctl-seed")
            .unwrap();
        assert!(seed.executable);
        assert!(loaded.inputs.starts_with("sha256:"));
    }

    #[test]
    fn the_inputs_change_with_any_file_and_only_then() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("rootfs/etc")).unwrap();
        let recipe = std::fs::read_to_string(repository_recipe().join("recipe.yaml")).unwrap();
        std::fs::write(dir.path().join("recipe.yaml"), &recipe).unwrap();
        std::fs::write(dir.path().join("rootfs/etc/hostname"), "a\n").unwrap();
        let first = LoadedRecipe::load(dir.path()).unwrap().inputs;
        assert_eq!(LoadedRecipe::load(dir.path()).unwrap().inputs, first);
        std::fs::write(dir.path().join("rootfs/etc/hostname"), "b\n").unwrap();
        let second = LoadedRecipe::load(dir.path()).unwrap().inputs;
        assert_ne!(second, first);
        std::fs::write(
            dir.path().join("recipe.yaml"),
            recipe.replace("diskMiB: 2048", "diskMiB: 3072"),
        )
        .unwrap();
        assert_ne!(LoadedRecipe::load(dir.path()).unwrap().inputs, second);
    }

    #[test]
    fn bad_recipes_name_the_key_and_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("rootfs")).unwrap();
        let recipe = std::fs::read_to_string(repository_recipe().join("recipe.yaml")).unwrap();
        let write_and_load = |text: String| {
            std::fs::write(dir.path().join("recipe.yaml"), text).unwrap();
            format!("{:#}", LoadedRecipe::load(dir.path()).unwrap_err())
        };
        let error = write_and_load(recipe.replace("espMiB: 64", "espMiB: 64\nspeed: fast"));
        assert!(
            error.contains("unknown field `speed`") && error.contains("line"),
            "{error}"
        );
        let error = write_and_load(recipe.replace("diskMiB: 2048", "diskMiB: big"));
        assert!(
            error.contains("diskMiB") && error.contains("line"),
            "{error}"
        );
        let error = write_and_load(recipe.replace("  - valkey-server\n", ""));
        assert!(error.contains("valkey-server"), "{error}");
        let error = write_and_load(recipe.replace("  - zstd", "  - \"zstd; rm -rf /\""));
        assert!(error.contains("not a package name"), "{error}");
    }
}
