//! `bfctl dashboard`: the local pipeline's live page, in the foreground;
//! and the same page wired beside the pipeline the supervisor runs.

use super::prelude::*;
use crate::dashboard::live::LiveSource;
use crate::loadtest::probe::{LocalProbe, PipelineProbe};
use crate::local::LocalState;

/// The page's source for a local pipeline: its Valkey, its carnet's
/// panels, pending counted as `loadtest` counts it.
fn local_source(state: &LocalState) -> anyhow::Result<LiveSource> {
    let carnet = &state.options.carnet;
    let category = blackfriday_proto::Category::for_carnet(carnet)
        .with_context(|| format!("carnet {carnet} does not end in a digit"))?;
    let mut probe = LocalProbe::new(state)?;
    let connecting = state.clone();
    Ok(LiveSource::new(
        crate::dashboard::panels(carnet, category),
        Box::new(move || connecting.valkey()),
        Box::new(move || probe.pending().ok().flatten()),
    ))
}

/// What the supervisor of `up --local` serves beside the pipeline: the
/// live page on 127.0.0.1 (`dashboardPort`, 0 for any free port).
pub(crate) fn beside_the_pipeline() -> crate::local::supervisor::BesideHook {
    Box::new(|state, stopping| {
        let state = state.clone();
        Box::pin(async move {
            let address =
                std::net::SocketAddr::from(([127, 0, 0, 1], state.options.dashboard_port));
            let listener = crate::dashboard::server::bind(address).await?;
            let url = format!("http://{}/", listener.local_addr()?);
            let source = tokio::task::spawn_blocking(move || local_source(&state))
                .await
                .context("preparing the dashboard")??;
            tokio::spawn(async move {
                if let Err(error) =
                    crate::dashboard::server::serve(listener, source, stopping).await
                {
                    crate::note!("dashboard: {error:#}");
                }
            });
            Ok(url)
        })
    })
}

pub(crate) fn dashboard_local_command(
    cli: &Cli,
    dir: &Path,
    listen: std::net::SocketAddr,
) -> anyhow::Result<()> {
    let state = LocalState::load(dir)?.with_context(|| {
        format!(
            "no local pipeline in {}: start one with `bfctl up --local` (or name its directory with --local-dir)",
            dir.display()
        )
    })?;
    let source = local_source(&state)?;
    let runtime = runtime()?;
    runtime.block_on(async {
        let listener = crate::dashboard::server::bind(listen).await?;
        let url = format!("http://{}/", listener.local_addr()?);
        if matches!(cli.output, Output::Json) {
            crate::out!("{}", serde_json::json!({ "url": url }));
        } else {
            crate::out!("live dashboard: {url} (Ctrl-C stops it)");
        }
        let stopped = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        crate::dashboard::server::serve(listener, source, stopped).await
    })
}

/// `dashboard --cluster`: Grafana through the API server, until Ctrl-C.
pub(crate) fn dashboard_cluster_command(
    cli: &Cli,
    listen: std::net::SocketAddr,
) -> anyhow::Result<()> {
    let config = cli.load_config()?;
    let install = config.install_name().to_string();
    let runtime = runtime()?;
    runtime.block_on(async {
        let cluster = cluster::connect(&config, &cli.target(false)).await?;
        let pod = cluster::grafana::grafana_pod(&cluster, &install).await?;
        let listener = crate::dashboard::server::bind(listen).await?;
        let url = format!("http://{}/", listener.local_addr()?);
        let namespace = cluster.default_namespace().to_string();
        if matches!(cli.output, Output::Json) {
            crate::out!(
                "{}",
                serde_json::json!({ "url": url, "namespace": namespace, "pod": pod, "port": cluster::grafana::GRAFANA_PORT })
            );
        } else {
            crate::out!(
                "Grafana: {url} (port-forwarded through the API server to pod {namespace}/{pod}, port {}; Ctrl-C stops)",
                cluster::grafana::GRAFANA_PORT
            );
        }
        let stopped = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        let refused = |why: String| crate::note!("{why}");
        cluster::grafana::forward(cluster, install, pod, listener, stopped, refused).await
    })
}
