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

/// A program on PATH, or a clear error saying how to install it.
pub fn tool(program: &str, install_hint: &str) -> anyhow::Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([dirs_cargo_bin()])
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
        .with_context(|| format!("`{program}` not found on PATH; install it with: {install_hint}"))
}

fn dirs_cargo_bin() -> PathBuf {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")))
        .unwrap_or_default()
        .join("bin")
}
