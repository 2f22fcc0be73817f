//! Finding (and first building) the workspace's service binaries.
//!
//! Tests run from `target/<profile>/deps/`; the services live in
//! `target/<profile>/`. The first call runs `cargo build` for them with the
//! same profile, so tests never run stale binaries.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use anyhow::{Context, bail};

pub const SERVICES: [&str; 3] = ["gateway", "producer", "consumer"];

fn profile_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the running executable")?;
    let mut dir = exe
        .parent()
        .context("executable has no directory")?
        .to_path_buf();
    if dir.ends_with("deps") || dir.ends_with("examples") {
        dir.pop();
    }
    Ok(dir)
}

fn build_once() -> Result<PathBuf, String> {
    let dir = profile_dir().map_err(|e| format!("{e:#}"))?;
    let release = dir.file_name().is_some_and(|name| name == "release");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../../Cargo.toml");
    let mut command = Command::new(cargo);
    command.args(["build", "--quiet", "--manifest-path", manifest]);
    for service in SERVICES {
        command.args(["-p", service]);
    }
    if release {
        command.arg("--release");
    }
    let status = command
        .status()
        .map_err(|e| format!("running cargo build: {e}"))?;
    if !status.success() {
        return Err(format!("cargo build of the services failed ({status})"));
    }
    Ok(dir)
}

/// The path of a service binary built from the current sources.
pub fn service_binary(name: &str) -> anyhow::Result<PathBuf> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let dir = match BUILT.get_or_init(build_once) {
        Ok(dir) => dir.clone(),
        Err(error) => bail!("{error}"),
    };
    let path = dir.join(name);
    if !path.exists() {
        bail!("{} is missing after cargo build", path.display());
    }
    Ok(path)
}

/// The directory holding the service binaries built from the current
/// sources (built on first use).
pub fn services_dir() -> anyhow::Result<PathBuf> {
    let gateway = service_binary("gateway")?;
    gateway
        .parent()
        .map(PathBuf::from)
        .context("the gateway binary has no directory")
}

pub use localrun::tool;
