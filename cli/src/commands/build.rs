//! `bfctl build [--push]`: the three service images.

use super::prelude::*;

pub(crate) fn build_command(
    cli: &Cli,
    push: bool,
    profile: &str,
    ca_files: &[PathBuf],
) -> anyhow::Result<()> {
    let config = cli.load_config()?;
    if push {
        for warning in config.registry_warnings() {
            crate::note!("warning: {warning}");
        }
    }
    let built = build_images(&config, &cli.state_dir, push, profile, ca_files)?;
    if matches!(cli.output, Output::Json) {
        crate::out!("{}", serde_json::to_string_pretty(&built)?);
        return Ok(());
    }
    for image in &built {
        let pushed = match &image.push {
            Some(report) => format!(
                "pushed {} ({} blobs sent, {} already there, {} bytes)",
                report.reference,
                report.blobs_uploaded,
                report.blobs_present,
                report.bytes_uploaded
            ),
            None => "not pushed".to_string(),
        };
        crate::out!(
            "{:<9} {} {:.1} MB{} {pushed}",
            image.service,
            image.digest,
            image.size as f64 / 1e6,
            if image.cached { " (cached)" } else { "" },
        );
    }
    Ok(())
}

/// How to reach `registry.url`, with the configured credentials.
pub(crate) fn target_registry(
    config: &config::Config,
    state_dir: &Path,
    ca_files: &[PathBuf],
) -> anyhow::Result<crate::build::image::registry::RegistryOptions> {
    let url = crate::registry::store::require_url(config)?;
    if config.registry.credentials == config::CredentialSource::Provided {
        // The registry bfctl provides: its push account and its CA.
        let access = crate::registry::push_access(config, state_dir)?;
        let mut trusted = ca_files.to_vec();
        trusted.extend(access.ca_files);
        return Ok(crate::build::image::registry::RegistryOptions {
            insecure: false,
            ca_files: trusted,
            auth: oci_client::secrets::RegistryAuth::Basic(access.username, access.password),
        });
    }
    let host = crate::build::image::registry_host(url)?;
    Ok(crate::build::image::registry::RegistryOptions {
        insecure: config.registry.insecure,
        ca_files: ca_files.to_vec(),
        auth: crate::build::image::credentials::for_registry(&host, config.registry.credentials)?,
    })
}

/// Builds (and pushes) the three images, with progress on stderr.
pub(crate) fn build_images(
    config: &config::Config,
    state_dir: &Path,
    push: bool,
    profile: &str,
    ca_files: &[PathBuf],
) -> anyhow::Result<Vec<crate::build::image::build::Built>> {
    use crate::build::image::{build, credentials, registry::RegistryOptions, registry_host};
    let target = target_registry(config, state_dir, ca_files)?;
    let base_host = registry_host(&config.images.base)?;
    // A base kept in the target registry is read as the target is reached
    // (its CA and account: the registry bfctl provides needs both).
    let base_registry = if registry_host(&config.registry.url).is_ok_and(|host| host == base_host) {
        target.clone()
    } else {
        RegistryOptions {
            insecure: config.registry.insecure,
            ca_files: ca_files.to_vec(),
            auth: credentials::for_registry(&base_host, config::CredentialSource::DockerConfig)?,
        }
    };
    let options = build::BuildOptions {
        workspace: std::env::current_dir().context("reading the current directory")?,
        state_dir: state_dir.to_path_buf(),
        profile: profile.to_string(),
        push,
        registry: target,
        base_registry,
    };
    let started = std::time::Instant::now();
    runtime()?.block_on(build::build_all(config, &options, |line| {
        crate::note!("[{:6.1}s] build: {line}", started.elapsed().as_secs_f64());
    }))
}
