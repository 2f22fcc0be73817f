//! `bfctl disk build | push`: the Valkey VM disk.

use super::build::target_registry;
use super::prelude::*;

/// `bfctl disk build`: the qcow2, built or read from the cache.
pub(crate) fn disk_build(
    state_dir: &Path,
    recipe_dir: &Path,
    force: bool,
) -> anyhow::Result<crate::build::disk::build::BuiltDisk> {
    use crate::build::disk::{LoadedRecipe, build};
    let recipe = LoadedRecipe::load(recipe_dir)?;
    let options = build::DiskBuildOptions {
        out_dir: state_dir.join("disk"),
        package_cache: std::env::var_os("HOME")
            .map(|home| PathBuf::from(home).join(".cache/bfctl/debs")),
        force,
    };
    let started = std::time::Instant::now();
    build::build(&recipe, &options, |line| {
        crate::note!("[{:6.1}s] disk: {line}", started.elapsed().as_secs_f64());
    })
}

pub(crate) fn disk_build_command(cli: &Cli, recipe_dir: &Path, force: bool) -> anyhow::Result<()> {
    let built = disk_build(&cli.state_dir, recipe_dir, force)?;
    if matches!(cli.output, Output::Json) {
        crate::out!("{}", serde_json::to_string_pretty(&built)?);
    } else {
        crate::out!(
            "{} {} {:.1} MiB{} ({} packages)",
            built.path.display(),
            built.digest,
            built.size as f64 / 1048576.0,
            if built.cached {
                " (cached)".to_string()
            } else {
                format!(", built in {:.0} s", built.build_seconds)
            },
            built.packages.len()
        );
    }
    Ok(())
}

/// Builds the disk if needed and pushes it; returns the push report.
pub(crate) fn disk_push(
    config: &config::Config,
    state_dir: &Path,
    recipe_dir: &Path,
    ca_files: &[PathBuf],
) -> anyhow::Result<(
    crate::build::disk::build::BuiltDisk,
    crate::build::image::registry::PushReport,
)> {
    use crate::build::disk::{LoadedRecipe, container};
    let built = disk_build(state_dir, recipe_dir, false)?;
    let recipe = LoadedRecipe::load(recipe_dir)?;
    crate::note!("disk: assembling the containerDisk image");
    let image = container::assemble(&built.path, recipe.recipe.source_date_epoch, &built.inputs)?;
    crate::note!(
        "disk: pushing to {}/{}",
        config.registry.url,
        container::IMAGE_NAME
    );
    let report = runtime()?.block_on(container::push_and_record(
        &image,
        &config.registry.url,
        &target_registry(config, state_dir, ca_files)?,
        state_dir,
        &built.inputs,
    ))?;
    Ok((built, report))
}

pub(crate) fn disk_push_command(
    cli: &Cli,
    recipe_dir: &Path,
    ca_files: &[PathBuf],
) -> anyhow::Result<()> {
    let config = cli.load_config()?;
    for warning in config.registry_warnings() {
        crate::note!("warning: {warning}");
    }
    let (built, report) = disk_push(&config, &cli.state_dir, recipe_dir, ca_files)?;
    if matches!(cli.output, Output::Json) {
        let both = serde_json::json!({"disk": built, "push": report});
        crate::out!("{}", serde_json::to_string_pretty(&both)?);
    } else {
        crate::out!(
            "pushed {} ({} blobs sent, {} already there, {} bytes)",
            report.reference,
            report.blobs_uploaded,
            report.blobs_present,
            report.bytes_uploaded
        );
    }
    Ok(())
}
