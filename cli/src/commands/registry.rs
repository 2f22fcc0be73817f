//! `bfctl registry create | status | delete`: what each prints. Nothing
//! secret is printed: the accounts' passwords and the keys stay in
//! `.bfctl/registry/` (mode 0600) and Secret Manager.

use super::prelude::*;
use crate::plan::registry::RegistryKind;
use crate::progress::OperationProgress;

fn zot_only(config: &config::Config) -> anyhow::Result<()> {
    match config.registry.kind {
        RegistryKind::Zot => Ok(()),
        RegistryKind::External => bail!(
            "registry.kind is external (the default): bfctl pushes to {} and provides no registry; set registry.kind: zot (and registry.zot) for bfctl to make one",
            if config.registry.url.is_empty() {
                "registry.url"
            } else {
                &config.registry.url
            }
        ),
        RegistryKind::ArtifactRegistry => bail!(
            "registry.kind artifact-registry is not built yet (bfctl provides kind zot); create the repository with `gcloud artifacts repositories create` and use kind external"
        ),
    }
}

pub(crate) fn create_command(
    cli: &Cli,
    rotate_certificates: bool,
    wait: std::time::Duration,
) -> anyhow::Result<()> {
    let config = cli.load_config()?;
    zot_only(&config)?;
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
    zot_only(&config)?;
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
                "{:<12} {:<34} {}",
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
    zot_only(&config)?;
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
