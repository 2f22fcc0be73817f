//! `bfctl registry create | status | delete` (zot, or Artifact Registry):
//! what each prints. Nothing
//! secret is printed: the accounts' passwords and the keys stay in
//! `.bfctl/registry/` (mode 0600) and Secret Manager.

use super::prelude::*;
use crate::plan::registry::RegistryKind;
use crate::progress::OperationProgress;

/// Which registry bfctl provides, or why none.
fn provided(config: &config::Config) -> anyhow::Result<RegistryKind> {
    match config.registry.kind {
        RegistryKind::External => bail!(
            "registry.kind is external (the default): bfctl pushes to {} and provides no registry; set registry.kind: zot (and registry.zot) for bfctl to make one",
            if config.registry.url.is_empty() {
                "registry.url"
            } else {
                &config.registry.url
            }
        ),
        kind => Ok(kind),
    }
}

fn print_artifact(report: &crate::registry::artifact::ArtifactReport) {
    crate::out!("{:<9} repository {}", report.state, report.repository);
    crate::out!("registry    {}", report.url);
    if report.size_bytes > 0 {
        crate::out!("stored      {:.1} MB", report.size_bytes as f64 / 1e6);
    }
    if !report.nodes.is_empty() {
        crate::out!("cluster     {}", report.nodes);
    }
}

/// Runs the Artifact Registry side of a command and prints it.
fn artifact_command(
    cli: &Cli,
    work: impl std::future::Future<Output = anyhow::Result<crate::registry::artifact::ArtifactReport>>,
) -> anyhow::Result<()> {
    let report = runtime()?.block_on(work)?;
    if matches!(cli.output, Output::Json) {
        crate::out!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_artifact(&report);
    }
    if !report.healthy && report.state != "deleted" && report.state != "absent" {
        return Err(crate::exit::check_failed(report.nodes.clone()));
    }
    Ok(())
}

pub(crate) fn create_command(
    cli: &Cli,
    rotate_certificates: bool,
    wait: std::time::Duration,
) -> anyhow::Result<()> {
    let config = cli.load_config()?;
    if provided(&config)? == RegistryKind::ArtifactRegistry {
        return artifact_command(
            cli,
            crate::registry::artifact::create(&config, &cli.state_dir),
        );
    }
    let plan = crate::registry::ZotPlan::of(&config)?;
    crate::note!(
        "registry {}: making sure it exists (project {}, {})",
        plan.name,
        plan.project,
        plan.zone
    );
    let progress = OperationProgress::new(&format!("registry {}", plan.name));
    let created = runtime()?.block_on(crate::registry::create_zot(
        &config,
        &cli.state_dir,
        rotate_certificates,
        wait,
        &mut |step| progress.update(step, None, None),
    ));
    let created = match created {
        Ok(created) => created,
        Err(error) => {
            progress.finish("failed");
            return Err(error);
        }
    };
    progress.finish("ready");
    if matches!(cli.output, Output::Json) {
        crate::out!("{}", serde_json::to_string_pretty(&created)?);
        return Ok(());
    }
    for (resource, state) in &created.resources {
        crate::out!("{state:<9} {resource}");
    }
    crate::out!(
        "registry    {} (the cluster pulls from {})",
        created.url,
        created.pull_host
    );
    crate::out!(
        "certificate valid until {} ({} days), for {}",
        created.certificate.not_after,
        created.certificate.days_left,
        created.certificate.names.join(", ")
    );
    crate::out!("answers     {}", created.answers);
    crate::out!("cluster     {}", created.cluster_trust);
    crate::out!(
        "bfctl pushes with the account and CA in {} (no docker login); `bfctl up` builds and pushes there",
        cli.state_dir.join("registry").display()
    );
    Ok(())
}

pub(crate) fn status_command(cli: &Cli) -> anyhow::Result<()> {
    let config = cli.load_config()?;
    if provided(&config)? == RegistryKind::ArtifactRegistry {
        return artifact_command(cli, crate::registry::artifact::status(&config));
    }
    let status = runtime()?.block_on(crate::registry::status_zot(&config, &cli.state_dir))?;
    if matches!(cli.output, Output::Json) {
        crate::out!("{}", serde_json::to_string_pretty(&status)?);
    } else {
        crate::out!(
            "registry    {}",
            if status.url.is_empty() {
                "(not created from here)"
            } else {
                &status.url
            }
        );
        for resource in &status.resources {
            crate::out!(
                "{:<12} {:<40} {}",
                resource.state,
                resource.resource,
                resource.detail
            );
        }
        if let Some(certificate) = &status.certificate {
            crate::out!(
                "certificate valid until {} ({} days left)",
                certificate.not_after,
                certificate.days_left
            );
        }
        crate::out!("answers     {}", status.answers);
        if !status.stored.is_empty() {
            crate::out!("stored      {}", status.stored);
        }
        crate::out!("cluster     {}", status.cluster_trust);
    }
    if !status.healthy {
        return Err(crate::exit::check_failed("the registry is not whole"));
    }
    Ok(())
}

pub(crate) fn delete_command(cli: &Cli, yes: bool, keep_data: bool) -> anyhow::Result<()> {
    let config = cli.load_config()?;
    if provided(&config)? == RegistryKind::ArtifactRegistry {
        let plan = crate::registry::artifact::ArtifactPlan::of(&config)?;
        if !yes
            && !super::teardown::ask(&format!(
                "delete Artifact Registry repository {} and every image in it? [y/N] ",
                plan.name()
            ))
        {
            return Err(crate::exit::check_failed("not deleted"));
        }
        return artifact_command(
            cli,
            crate::registry::artifact::delete(&config, &cli.state_dir),
        );
    }
    let plan = crate::registry::ZotPlan::of(&config)?;
    let doomed = crate::registry::deletion_plan(&config, keep_data)?;
    if !yes
        && !super::teardown::ask(&format!(
            "delete the registry {} (project {}): {}{}? [y/N] ",
            plan.name,
            plan.project,
            doomed.join(", "),
            if keep_data {
                ""
            } else {
                ", and every image on its data disk"
            }
        ))
    {
        return Err(crate::exit::check_failed("not deleted"));
    }
    let progress = OperationProgress::new(&format!("registry {}", plan.name));
    let deleted = runtime()?.block_on(crate::registry::delete_zot(
        &config,
        &cli.state_dir,
        keep_data,
        &mut |step| progress.update(&format!("deleting {step}"), None, None),
    ));
    let deleted = match deleted {
        Ok(deleted) => deleted,
        Err(error) => {
            progress.finish("failed");
            return Err(error);
        }
    };
    progress.finish("deleted");
    if matches!(cli.output, Output::Json) {
        crate::out!("{}", serde_json::to_string_pretty(&deleted)?);
        return Ok(());
    }
    for resource in &deleted.resources {
        crate::out!("{:<12} {}", resource.state, resource.resource);
    }
    if deleted.left.is_empty() {
        crate::out!("nothing of registry {} is left", plan.name);
    } else {
        crate::out!("left:");
        for left in &deleted.left {
            crate::out!("  {left}");
        }
    }
    Ok(())
}
