//! `bfctl up`, `status` and `teardown` against a cluster: configuration in,
//! plan built, engine run, report out. The binary's `main` only parses flags.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};

use crate::cluster::{Cluster, ObjectRef};
use crate::config::{Config, IngressMode};
use crate::engine::{self, Interrupt, Observer, UpOptions, UpReport};
use crate::operators::{self, Fetcher};
use crate::plan::{self, Plan};
use crate::progress::Progress;
use crate::render::ImageRefs;
use crate::status::{self, Status};
use crate::teardown::{self, TeardownOptions, TeardownReport};

/// How to reach the cluster and where operator files are cached.
#[derive(Debug, Clone, Default)]
pub struct Target {
    /// Kubeconfig file; `None` uses `KUBECONFIG` or `~/.kube/config`.
    pub kubeconfig: Option<PathBuf>,
    /// Operator manifest cache; `None` is the user's cache directory.
    pub cache_dir: Option<PathBuf>,
    /// Use the operator cache only.
    pub offline: bool,
    /// Print every API call.
    pub verbose: bool,
    /// Where `bfctl build` recorded image digests (default `.bfctl`).
    pub state_dir: Option<PathBuf>,
}

/// Connects with discovery limited to the groups the plan uses.
pub async fn connect(config: &Config, target: &Target) -> anyhow::Result<Cluster> {
    let cluster = Cluster::connect(
        target.kubeconfig.as_deref(),
        &config.kube_context,
        &config.namespace.0,
    )
    .await?
    .verbose(target.verbose);
    cluster.check_reachable().await?;
    Ok(cluster)
}

fn groups_of(plan: &Plan) -> BTreeSet<String> {
    let mut groups: BTreeSet<String> = plan
        .steps
        .iter()
        .flat_map(|step| step.objects.iter())
        .filter_map(|object| ObjectRef::of(object).ok())
        .map(|object| object.group().to_string())
        .collect();
    for (api_version, _) in crate::inventory::KINDS {
        let group = api_version.split_once('/').map_or("", |(group, _)| group);
        groups.insert(group.to_string());
    }
    groups.insert("apiextensions.k8s.io".into());
    groups
}

/// Builds the full plan: operator bundles fetched, Secrets generated or kept.
pub async fn full_plan(
    config: &Config,
    cluster: &Cluster,
    target: &Target,
) -> anyhow::Result<(Plan, Cluster)> {
    let fetcher = Fetcher::new(
        target
            .cache_dir
            .clone()
            .unwrap_or_else(Fetcher::default_cache_dir),
        target.offline,
    )?;
    let operator_steps = operators::steps(config, &fetcher)
        .await
        .context("fetching operator manifests")?;
    let secrets = plan::valkey_secrets(cluster, config).await?;
    let state_dir = target
        .state_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(".bfctl"));
    let (images, missing) =
        ImageRefs::resolve(config, &crate::image::ImageState::load(&state_dir)?);
    if !missing.is_empty() {
        eprintln!(
            "note: no pushed digest recorded for {} (run `bfctl build --push` and `bfctl disk push`); using :latest tags",
            missing.join(", ")
        );
    }
    let plan = plan::build(config, &images, operator_steps, secrets)?;
    let cluster = cluster.clone().with_groups(groups_of(&plan));
    Ok((plan, cluster))
}

/// In gateway-api mode the cluster must already have the GatewayClass (GKE
/// provides it when its Gateway controller is enabled).
pub async fn check_ingress(config: &Config, cluster: &Cluster) -> anyhow::Result<()> {
    if config.ingress.mode != IngressMode::GatewayApi {
        return Ok(());
    }
    let class = ObjectRef {
        api_version: "gateway.networking.k8s.io/v1".into(),
        kind: "GatewayClass".into(),
        namespace: None,
        name: config.ingress.gateway_class.clone(),
    };
    if cluster.get(&class).await?.is_none() {
        bail!(
            "GatewayClass {} is not in the cluster: enable GKE's Gateway controller (gcloud container clusters update CLUSTER --gateway-api=standard), set ingress.gatewayClass to a class the cluster has, or set ingress.mode: nginx",
            config.ingress.gateway_class
        );
    }
    Ok(())
}

/// `bfctl up` on a cluster.
pub async fn up(
    config: &Config,
    target: &Target,
    options: &UpOptions,
    observer: Arc<dyn Observer>,
    interrupt: Interrupt,
) -> anyhow::Result<UpReport> {
    let cluster = connect(config, target).await?;
    check_ingress(config, &cluster).await?;
    let (plan, cluster) = full_plan(config, &cluster, target).await?;
    engine::up(&cluster, plan.steps, options, observer, interrupt).await
}

/// Prints the outcome of `up` and turns failures into an error.
pub fn report_up(report: &UpReport, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else if report.unchanged() {
        let objects: usize = report.steps.iter().map(|s| s.objects.len()).sum();
        println!(
            "everything is unchanged: {objects} objects in {} steps, all ready ({:.1}s)",
            report.steps.len(),
            report.elapsed_ms as f64 / 1000.0
        );
    } else if report.succeeded() {
        let changed: usize = report
            .steps
            .iter()
            .flat_map(|s| s.objects.iter())
            .filter(|o| o.outcome != crate::cluster::ApplyOutcome::Unchanged)
            .count();
        println!(
            "up: {changed} objects created or changed, {} pruned, every step ready ({:.1}s)",
            report.pruned.len(),
            report.elapsed_ms as f64 / 1000.0
        );
    }
    if report.interrupted {
        bail!("interrupted: nothing is half-applied; run `bfctl up` again to finish");
    }
    let failures = report.failures();
    if !failures.is_empty() {
        bail!(
            "{} step(s) failed:\n  {}\nfix the cause and run `bfctl up` again: it continues where this run stopped",
            failures.len(),
            failures.join("\n  ")
        );
    }
    Ok(())
}

/// `bfctl status` once.
pub async fn status(config: &Config, target: &Target) -> anyhow::Result<Status> {
    let cluster = connect(config, target).await?;
    let (plan, cluster) = full_plan(config, &cluster, target).await?;
    status::collect(&cluster, &plan.steps).await
}

/// `bfctl status --watch`: prints whenever something changes, until Ctrl-C.
pub async fn watch_status(config: &Config, target: &Target, json: bool) -> anyhow::Result<()> {
    let cluster = connect(config, target).await?;
    let (plan, cluster) = full_plan(config, &cluster, target).await?;
    let mut last = String::new();
    loop {
        let current = status::collect(&cluster, &plan.steps).await?;
        let text = if json {
            serde_json::to_string(&current)?
        } else {
            status::to_text(&current)
        };
        if text != last {
            println!("{text}");
            last = text;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}

/// `bfctl teardown` on a cluster.
pub async fn teardown(
    config: &Config,
    target: &Target,
    options: &TeardownOptions,
    observer: &dyn Observer,
) -> anyhow::Result<TeardownReport> {
    let cluster = connect(config, target).await?;
    let (plan, cluster) = full_plan(config, &cluster, target).await?;
    teardown::teardown(
        &cluster,
        &plan.steps,
        &plan.operator_steps,
        options,
        observer,
    )
    .await
}

/// A progress display for the commands above.
pub fn progress(verbose: bool) -> Arc<dyn Observer> {
    Arc::new(Progress::new(verbose))
}
