//! `cargo bench -p bfctl --bench images`: `bfctl build --push` timings and
//! sizes against Debian's docker-registry on 127.0.0.1, on a base made of
//! this host's glibc files: a cold build and push (empty registry, empty
//! image cache, binaries already compiled), a no-change rebuild and push,
//! and the image sizes. Prints a Markdown table for docs/benchmarks.md.

#[path = "../tests/support/host_base.rs"]
mod host_base;
// Shared with the tests, which use more of it.
#[allow(dead_code)]
#[path = "../tests/support/registry.rs"]
mod registry;

// host_base.rs refers to `super::registry`.
use std::path::Path;
use std::time::Instant;

use bfctl::build::image::build::{BuildOptions, build_all};
use bfctl::build::image::registry::RegistryOptions;
use bfctl::plan::config::Config;
use oci_client::secrets::RegistryAuth;

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    let registry = registry::TestRegistry::start(None);
    let base = runtime.block_on(host_base::push_host_base(&registry));
    let config = Config::parse(
        &format!(
            "registry:\n  url: {}/bf\n  credentials: none\ncarnet: \"201900006\"\nimages:\n  base: {base}\n",
            registry.host
        ),
        "bench bfctl.yaml",
    )?;
    let state = tempfile::tempdir()?;
    let anonymous = RegistryOptions {
        insecure: false,
        ca_files: Vec::new(),
        auth: RegistryAuth::Anonymous,
    };
    let options = BuildOptions {
        workspace: Path::new(env!("CARGO_MANIFEST_DIR")).join(".."),
        state_dir: state.path().to_path_buf(),
        profile: "release".into(),
        push: true,
        registry: anonymous.clone(),
        base_registry: anonymous,
    };
    // Compile first, so the timings are the image work, not rustc.
    bfctl::build::image::native::cargo_build(
        &options.workspace,
        &["gateway", "producer", "consumer"],
        "release",
        |_| {},
    )?;
    let started = Instant::now();
    let cold = runtime.block_on(build_all(&config, &options, |_| {}))?;
    let cold_time = started.elapsed();
    let started = Instant::now();
    let warm = runtime.block_on(build_all(&config, &options, |_| {}))?;
    let warm_time = started.elapsed();

    println!("| step | time | bytes uploaded |");
    println!("|---|---|---|");
    let uploaded = |built: &[bfctl::build::image::build::Built]| -> u64 {
        built
            .iter()
            .filter_map(|b| b.push.as_ref())
            .map(|p| p.bytes_uploaded)
            .sum()
    };
    println!(
        "| build + push, empty registry and cache | {:.1} s | {} |",
        cold_time.as_secs_f64(),
        uploaded(&cold)
    );
    println!(
        "| rebuild + push, nothing changed | {:.2} s | {} |",
        warm_time.as_secs_f64(),
        uploaded(&warm)
    );
    println!();
    println!("| image | compressed size | digest |");
    println!("|---|---|---|");
    for image in &cold {
        println!(
            "| {} | {:.1} MB | {} |",
            image.service,
            image.size as f64 / 1e6,
            image.digest
        );
    }
    Ok(())
}
