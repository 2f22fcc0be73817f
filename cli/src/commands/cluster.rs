//! `bfctl cluster create | status | delete | token`: what each prints.

use super::prelude::*;
use crate::gke;
use crate::plan::gke::Gke;
use crate::progress::OperationProgress;

pub(crate) fn create_command(cli: &Cli, gke: &Gke) -> anyhow::Result<()> {
    crate::note!(
        "cluster {}: making sure it exists (project {}, {})",
        gke.cluster.0,
        gke.project.0,
        gke.location.0
    );
    let config = cli.load_config()?;
    let trust = crate::registry::recorded_trust(&config, &cli.state_dir)?;
    let progress = OperationProgress::new(&format!("cluster {}", gke.cluster.0));
    let created = runtime()?.block_on(gke::create(
        gke,
        trust.as_ref(),
        cli.kubeconfig.as_deref(),
        &mut |state| progress.update(&state.status, state.percent, state.stage.as_deref()),
    ));
    let created = match created {
        Ok(created) => created,
        Err(error) => {
            progress.finish("failed");
            return Err(error);
        }
    };
    progress.finish(&created.action);
    if matches!(cli.output, Output::Json) {
        crate::out!("{}", serde_json::to_string_pretty(&created)?);
        return Ok(());
    }
    match created.action.as_str() {
        "created" => crate::out!("created {}", created.cluster),
        "resumed" => crate::out!(
            "{}: followed the create an earlier run started, to its end",
            created.cluster
        ),
        _ => crate::out!("{} exists", created.cluster),
    }
    for change in &created.changed {
        crate::out!("changed in place: {change}");
    }
    if !created.differences.is_empty() {
        crate::out!("it differs from bfctl.yaml, and bfctl did not change this:");
        for difference in &created.differences {
            crate::out!("  {difference}");
        }
    }
    crate::out!(
        "kubeconfig context {} written to {} (credentials from `bfctl cluster token`); set kubeContext: {} in bfctl.yaml, or use it as the current context",
        created.context,
        created.kubeconfig,
        created.context
    );
    Ok(())
}

pub(crate) fn status_command(cli: &Cli, gke: &Gke) -> anyhow::Result<()> {
    let status = runtime()?.block_on(gke::status(gke))?;
    if matches!(cli.output, Output::Json) {
        crate::out!("{}", serde_json::to_string_pretty(&status)?);
    } else if !status.exists {
        crate::out!(
            "{}: does not exist (`bfctl cluster create` makes it)",
            status.cluster
        );
    } else {
        crate::out!("cluster     {}", status.cluster);
        crate::out!("status      {}", status.status);
        crate::out!("version     {}", status.version);
        crate::out!("endpoint    {}", status.endpoint);
        crate::out!("nodes       {}", status.nodes);
        crate::out!("gateway API {}", status.gateway_api_channel);
        crate::out!(
            "made by     {}",
            if status.made_by_bfctl {
                "bfctl"
            } else {
                "not bfctl"
            }
        );
        crate::out!("POOL       STATUS        MACHINE            NESTED-VIRT  AUTOSCALING");
        for pool in &status.pools {
            crate::out!(
                "{:<10} {:<13} {:<18} {:<12} {}-{}",
                pool.name,
                pool.status,
                pool.machine_type,
                if pool.nested_virtualization {
                    "yes"
                } else {
                    "no"
                },
                pool.min_nodes,
                pool.max_nodes
            );
        }
        for operation in &status.running_operations {
            crate::out!("running: {operation}");
        }
    }
    if status.status != "RUNNING" {
        return Err(crate::exit::check_failed(format!(
            "cluster {} is {}",
            status.cluster, status.status
        )));
    }
    Ok(())
}

pub(crate) fn delete_command(cli: &Cli, gke: &Gke, yes: bool) -> anyhow::Result<()> {
    let runtime = runtime()?;
    // Deleting the cluster would leave the Gateway's load balancer (and
    // any LoadBalancer Service's) behind: the pipeline goes first.
    let config = cli.load_config()?;
    let target = cli.target(true);
    let left = runtime.block_on(async {
        let connected = cluster::connect(&config, &target).await;
        match connected {
            Ok(connection) => Ok(Some(
                kube_apply::inventory::list(&connection, config.install_name())
                    .await
                    .map_err(anyhow::Error::from)?,
            )),
            Err(error) => Err(error),
        }
    });
    match left {
        Ok(Some(owned)) if !owned.is_empty() => bail!(
            "install '{}' still has {} objects on cluster {} (its Gateway's load balancer would outlive the cluster): run `bfctl teardown` first, then this again",
            config.install_name(),
            owned.len(),
            gke.cluster.0
        ),
        Ok(_) => {}
        Err(error) => {
            // No cluster, or no context for it: nothing of the pipeline
            // can be on it only if the cluster itself is gone.
            let status = runtime.block_on(gke::status(gke))?;
            if status.exists {
                bail!(
                    "cannot check whether install '{}' is still on cluster {}: {error:#}. Run `bfctl cluster create` (it rewrites the kubeconfig context), then `bfctl teardown`, then this again",
                    config.install_name(),
                    gke.cluster.0
                );
            }
        }
    }
    if !yes
        && !super::teardown::ask(&format!(
            "delete GKE cluster {} in {} (project {}) and every node in it? [y/N] ",
            gke.cluster.0, gke.location.0, gke.project.0
        ))
    {
        return Err(crate::exit::check_failed("not deleted"));
    }
    let progress = OperationProgress::new(&format!("cluster {}", gke.cluster.0));
    let deleted = runtime.block_on(gke::delete(gke, &mut |state| {
        progress.update(&state.status, state.percent, state.stage.as_deref())
    }));
    match deleted {
        Ok(true) => {
            progress.finish("deleted");
            crate::out!(
                "deleted {}; the kubeconfig context {} stays (it names a cluster that is gone)",
                gke.cluster_path(),
                gke::kubeconfig::context_name(gke)
            );
            Ok(())
        }
        Ok(false) => {
            progress.finish("absent");
            crate::out!("{} does not exist: nothing to delete", gke.cluster_path());
            Ok(())
        }
        Err(error) => {
            progress.finish("failed");
            Err(error)
        }
    }
}

pub(crate) fn token_command() -> anyhow::Result<()> {
    let credential = runtime()?.block_on(gke::exec_credential())?;
    crate::out!("{}", serde_json::to_string(&credential)?);
    Ok(())
}
