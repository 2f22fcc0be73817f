//! `bfctl up`, `status` and `teardown` against a cluster: configuration in,
//! plan built ([`crate::plan`]), kube-apply run with bfctl's
//! [`IDENTITY`](crate::plan::identity::IDENTITY), report out (the commands
//! print it).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;

use kube_apply::inventory::{self, UsedObject};
use kube_apply::teardown::{self, TeardownOptions, TeardownReport};
use kube_apply::{Cluster, Interrupt, ObjectRef, Observer, UpOptions, UpReport};

use crate::plan::config::{Config, IngressMode};
use crate::plan::identity::{IDENTITY, KINDS};
use crate::plan::operators::{self, Fetcher};
use crate::plan::{self, Plan};
use crate::progress::Progress;

pub mod grafana;
pub mod status;

use status::Status;

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
/// With a `gke:` section and no `kubeContext`, the context is the one
/// `bfctl cluster create` writes.
pub async fn connect(config: &Config, target: &Target) -> anyhow::Result<Cluster> {
    crate::ensure_tls_provider();
    let context = match (&config.gke, config.kube_context.is_empty()) {
        (Some(gke), true) => crate::gke::kubeconfig::context_name(gke),
        _ => config.kube_context.clone(),
    };
    let hint = |error: anyhow::Error| {
        match &config.gke {
        Some(gke) => error.context(format!(
            "reaching GKE cluster {} through context {context} (does it exist? `bfctl cluster status`; `bfctl cluster create` makes it and writes the context)",
            gke.cluster.0
        )),
        None => error,
    }
    };
    let mut cluster = Cluster::connect(
        &IDENTITY,
        target.kubeconfig.as_deref(),
        &context,
        &config.namespace.0,
    )
    .await
    .map_err(|error| hint(error.into()))?;
    if target.verbose {
        cluster = cluster.traced(crate::output::api_tracer());
    }
    cluster
        .check_reachable()
        .await
        .map_err(|error| hint(error.into()))?;
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
    groups.extend(inventory_groups());
    groups
}

/// The plan and what a person should be told about it.
pub struct PlannedCluster {
    pub plan: Plan,
    pub cluster: Cluster,
    /// Notes for the user (images without a recorded digest, operator
    /// files not in the cache).
    pub notes: Vec<String>,
}

/// Builds the full plan: operator bundles fetched, Secrets generated or kept.
/// With `operators_optional` (status), operator files that cannot be had
/// (offline, empty cache) are replaced by what the install applied of them.
pub async fn full_plan(
    config: &Config,
    cluster: &Cluster,
    target: &Target,
    operators_optional: bool,
) -> anyhow::Result<PlannedCluster> {
    let fetcher = Fetcher::new(
        target
            .cache_dir
            .clone()
            .unwrap_or_else(Fetcher::default_cache_dir),
        target.offline,
    )?;
    let mut notes = Vec::new();
    let operator_steps = match operators::steps(config, &fetcher).await {
        Ok(steps) => steps,
        Err(error) if operators_optional => {
            notes.push(format!(
                "operator files not available ({error:#}); their objects are shown as this install applied them"
            ));
            operator_steps_from_inventory(cluster, config.install_name()).await?
        }
        Err(error) => return Err(error.context("fetching operator manifests")),
    };
    let mut secrets = plan::valkey_secrets(cluster, config).await?;
    let state_dir = target
        .state_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(crate::STATE_DIR));
    // The provided registry's pull Secret; `status` goes on without it
    // (the registry may be gone while the pipeline is still there).
    match crate::registry::pull_secret(config, &state_dir) {
        Ok(secret) => secrets.extend(secret),
        Err(error) if operators_optional => notes.push(format!("{error:#}")),
        Err(error) => return Err(error),
    }
    let (images, missing) =
        crate::build::image_refs(config, &crate::build::image::ImageState::load(&state_dir)?);
    if !missing.is_empty() {
        notes.push(format!(
            "no pushed digest recorded for {} (run `bfctl build --push` and `bfctl disk push`); using :latest tags",
            missing.join(", ")
        ));
    }
    let plan = plan::build(config, &images, operator_steps, secrets)?;
    let cluster = cluster.clone().with_groups(groups_of(&plan));
    Ok(PlannedCluster {
        plan,
        cluster,
        notes,
    })
}

/// The operator steps as the install applied them (its labelled objects,
/// grouped by step): what `status` shows when the operator files cannot be
/// read.
async fn operator_steps_from_inventory(
    cluster: &Cluster,
    install: &str,
) -> anyhow::Result<Vec<kube_apply::Step>> {
    let mut steps: Vec<kube_apply::Step> = Vec::new();
    for owned in inventory::list(cluster, install).await? {
        if !operators::is_operator_step(owned.component()) {
            continue;
        }
        let name = owned.component().to_string();
        let mut manifest = owned.live.clone();
        manifest["apiVersion"] = owned.object.api_version.clone().into();
        manifest["kind"] = owned.object.kind.clone().into();
        match steps.iter_mut().find(|s| s.name == name) {
            Some(step) => step.objects.push(manifest),
            None => steps.push(kube_apply::Step {
                name,
                depends_on: Vec::new(),
                objects: vec![manifest],
            }),
        }
    }
    Ok(steps)
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

/// `bfctl up` on a cluster; the notes (images without a digest) come with
/// the report.
pub async fn up(
    config: &Config,
    target: &Target,
    options: &UpOptions,
    observer: Arc<dyn Observer>,
    interrupt: Interrupt,
) -> anyhow::Result<(UpReport, Vec<String>)> {
    let cluster = connect(config, target).await?;
    check_ingress(config, &cluster).await?;
    let planned = full_plan(config, &cluster, target, false).await?;
    let options = UpOptions {
        install: config.install_name().to_string(),
        ..options.clone()
    };
    let report = kube_apply::up(
        &planned.cluster,
        planned.plan.steps,
        &options,
        observer,
        interrupt,
    )
    .await?;
    if report.succeeded() {
        record_uses(&planned.cluster, config, &report).await?;
    }
    Ok((report, planned.notes))
}

/// Writes the install's record of what it uses but does not own (see
/// [`kube_apply::inventory::record`]).
async fn record_uses(cluster: &Cluster, config: &Config, report: &UpReport) -> anyhow::Result<()> {
    let uses: Vec<UsedObject> = report
        .used_not_owned()
        .into_iter()
        .map(|used| UsedObject {
            object: used.object.clone(),
            reason: used.note.clone().unwrap_or_default(),
        })
        .collect();
    let mut record =
        inventory::record(&IDENTITY, &config.namespace.0, config.install_name(), &uses);
    crate::plan::render::add_inventory_labels(
        &mut record,
        IDENTITY.record_component,
        config.install_name(),
    )?;
    kube_apply::apply_owned(cluster, &record, config.install_name()).await?;
    Ok(())
}

/// `bfctl status` once.
pub async fn status(config: &Config, target: &Target) -> anyhow::Result<Status> {
    let cluster = connect(config, target).await?;
    let planned = full_plan(config, &cluster, target, true).await?;
    let mut status = status::collect(&planned.cluster, &planned.plan.steps).await?;
    status.notes = planned.notes;
    Ok(status)
}

/// `bfctl status --watch`: the status whenever it changes, until Ctrl-C.
pub async fn watch_status(
    config: &Config,
    target: &Target,
    mut show: impl FnMut(&Status),
) -> anyhow::Result<()> {
    let cluster = connect(config, target).await?;
    let planned = full_plan(config, &cluster, target, true).await?;
    let mut last = None;
    loop {
        let current = status::collect(&planned.cluster, &planned.plan.steps).await?;
        let text = status::to_text(&current);
        if last.as_ref() != Some(&text) {
            show(&current);
            last = Some(text);
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}

/// `bfctl teardown` on a cluster: one install, from its inventory alone
/// (no operator files, no plan). `install` overrides the configuration's.
pub async fn teardown(
    config: &Config,
    target: &Target,
    options: &TeardownOptions,
    observer: &dyn Observer,
    confirm: &(dyn Fn(&[String]) -> bool + Sync),
) -> anyhow::Result<TeardownReport> {
    let cluster = connect(config, target)
        .await?
        .with_groups(inventory_groups());
    Ok(teardown::teardown(&cluster, options, observer, confirm).await?)
}

/// The API groups of every kind in the inventory.
fn inventory_groups() -> BTreeSet<String> {
    let mut groups: BTreeSet<String> = KINDS
        .iter()
        .map(|(api_version, _)| {
            api_version
                .split_once('/')
                .map_or("", |(group, _)| group)
                .to_string()
        })
        .collect();
    groups.insert("apiextensions.k8s.io".into());
    groups
}

/// A progress display for the commands above.
pub fn progress(verbose: bool) -> Arc<dyn Observer> {
    Arc::new(Progress::new(verbose))
}
