//! `bfctl loadtest`: one load test, or the consumer replica comparison
//! (local or on a cluster), with its report, table and charts.

use super::prelude::*;
use crate::loadtest::chaos::{ChaosPlan, Place};
use crate::settings::{ChaosChoice, ChaosPlanSource, Load};

/// The cluster's external gateway URL, from `bfctl status`.
pub(crate) fn cluster_target(cli: &Cli) -> anyhow::Result<String> {
    let config = cli.load_config()?;
    let status = runtime()?.block_on(cluster::status(&config, &cli.target(false)))?;
    status.external_url.context(
        "the cluster has no external address yet (`bfctl status` shows the Gateway or Ingress)",
    )
}

pub(crate) fn loadtest_command(
    cli: &Cli,
    dir: &Path,
    target: Option<&str>,
    load: Load,
    engine: &crate::loadtest::Engine,
    chart: &Path,
    chaos: Option<ChaosChoice>,
) -> anyhow::Result<()> {
    let local = crate::local::LocalState::load(dir)?.filter(|state| {
        state.phase == crate::local::Phase::Ready && crate::local::is_alive(state.supervisor_pid)
    });
    let target = match (target, &local) {
        (Some(url), _) => url.to_string(),
        (None, Some(state)) => state.gateway_url.clone(),
        (None, None) => bail!(
            "no --target given and no local pipeline runs in {} (start one with `bfctl up --local`)",
            dir.display()
        ),
    };
    // Valkey is checked when the target is the local pipeline's gateway.
    let local = local.filter(|state| state.gateway_url == target.trim_end_matches('/'));
    let options = single_load(&target, load)?;
    let chaos = match chaos {
        Some(choice) => {
            anyhow::ensure!(
                local.is_some(),
                "--chaos injects faults into the local pipeline in {} (or a cluster's, with --cluster); none runs behind {target}",
                dir.display()
            );
            let injector = crate::loadtest::chaos::local::LocalInjector {
                dir: dir.to_path_buf(),
            };
            Some(chaos_of(choice, Place::Local, load, Box::new(injector))?)
        }
        None => None,
    };
    announce(load, &options.target);
    let mut probe = local
        .as_ref()
        .map(crate::loadtest::probe::LocalProbe::new)
        .transpose()?;
    let report = crate::loadtest::run_with(
        &options,
        engine,
        probe
            .as_mut()
            .map(|p| p as &mut dyn crate::loadtest::probe::PipelineProbe),
        chaos,
    )?;
    report_loadtest(cli, &report, chart)
}

/// `loadtest --cluster`: the load against the cluster's external address,
/// counted by the consumers (see `crate::loadtest::probe::ClusterProbe`),
/// with faults injected through the API server when asked.
pub(crate) fn cluster_loadtest_command(
    cli: &Cli,
    load: Load,
    engine: &crate::loadtest::Engine,
    chart: &Path,
    chaos: Option<ChaosChoice>,
) -> anyhow::Result<()> {
    let config = cli.load_config()?;
    let runtime = std::sync::Arc::new(runtime()?);
    let cluster = runtime.block_on(cluster::connect(&config, &cli.target(false)))?;
    let target = cluster_target(cli)?;
    let options = single_load(&target, load)?;
    let chaos = match chaos {
        Some(choice) => {
            let injector = crate::loadtest::chaos::cluster::ClusterInjector::new(
                runtime.clone(),
                cluster.clone(),
                config.install_name(),
                crate::plan::render::KAFKA_CLUSTER,
            );
            Some(chaos_of(choice, Place::Cluster, load, Box::new(injector))?)
        }
        None => None,
    };
    announce(load, &options.target);
    let mut probe = crate::loadtest::probe::ClusterProbe::new(runtime.clone(), cluster);
    let report = crate::loadtest::run_with(&options, engine, Some(&mut probe), chaos)?;
    report_loadtest(cli, &report, chart)
}

/// One load test's options: the load as asked (with its rate), checked.
fn single_load(target: &str, load: Load) -> anyhow::Result<crate::loadtest::LoadtestOptions> {
    let options = crate::loadtest::LoadtestOptions {
        rate: load.rate,
        ..replica_load(target, load)
    };
    options.check()?;
    Ok(options)
}

fn announce(load: Load, target: &str) {
    crate::note!(
        "loadtest: {} users for {} s against {target}",
        load.users,
        load.duration.as_secs()
    );
}

/// The chaos plan asked for, checked against the place and the load
/// before anything starts.
fn chaos_of(
    choice: ChaosChoice,
    place: Place,
    load: Load,
    injector: Box<dyn crate::loadtest::chaos::FaultInjector>,
) -> anyhow::Result<crate::loadtest::chaos::Chaos> {
    let plan = match choice.plan {
        ChaosPlanSource::BuiltIn => ChaosPlan::default_for(place, load.duration),
        ChaosPlanSource::File(path) => ChaosPlan::read(path)?,
        ChaosPlanSource::Seed(seed) => {
            ChaosPlan::random(place, load.duration, seed, &|target, action| {
                injector.refuses(target, action).is_none()
            })
        }
    };
    plan.check(place, load.duration)?;
    for (index, fault) in plan.faults.iter().enumerate() {
        if let Some(why) = injector.refuses(fault.target, fault.action) {
            bail!("fault {} ({}): {why}", index + 1, fault.describe());
        }
    }
    for fault in &plan.faults {
        crate::note!("chaos: at {:>5.1} s {}", fault.at, fault.describe());
    }
    Ok(crate::loadtest::chaos::Chaos {
        plan,
        injector,
        recovery_timeout: choice.recovery_timeout,
    })
}

/// Writes the chart, prints the report (or JSON), and fails (exit 1) when
/// sales were lost or duplicated.
fn report_loadtest(
    cli: &Cli,
    report: &crate::loadtest::LoadtestReport,
    chart: &Path,
) -> anyhow::Result<()> {
    if let Some(parent) = chart.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    crate::loadtest::write_timeline_chart(report, chart)
        .with_context(|| format!("writing {}", chart.display()))?;
    if matches!(cli.output, Output::Json) {
        crate::out!("{}", serde_json::to_string_pretty(report)?);
    } else {
        crate::out_partial!("{}", crate::loadtest::to_text(report));
        crate::out!(
            "chart           {} (and {})",
            chart.display(),
            crate::loadtest::png_path(chart).display()
        );
    }
    if report.pipeline.is_some() && !crate::loadtest::is_exact(report) {
        return Err(crate::exit::check_failed(
            "the pipeline lost or duplicated sales; see the report",
        ));
    }
    Ok(())
}

/// `loadtest --consumer-replicas`: the same load against a fresh local
/// pipeline per consumer count; a Markdown table and an SVG chart.
pub(crate) fn replicas_command(
    cli: &Cli,
    dir: &Path,
    list: &str,
    report_dir: &Path,
    load: Load,
) -> anyhow::Result<()> {
    use crate::loadtest::{self, ReplicaRun};
    let counts = loadtest::parse_replicas(list)?;
    let state = crate::local::LocalState::load(dir)?
        .filter(|state| crate::local::is_alive(state.supervisor_pid))
        .with_context(|| {
            format!(
                "--consumer-replicas runs against the local pipeline; start one with `bfctl up --local --local-dir {}`",
                dir.display()
            )
        })?;
    let mut runs = Vec::new();
    for consumers in counts {
        crate::note!("replicas: restarting the local pipeline with {consumers} consumers");
        let report = crate::local::teardown(dir, true)?;
        anyhow::ensure!(report.left.is_empty(), "could not stop: {:?}", report.left);
        let options = crate::local::LocalOptions {
            consumers,
            ..state.options.clone()
        };
        let started = crate::local::up(
            dir,
            &options,
            std::time::Duration::from_secs(600),
            crate::cluster::progress(cli.verbose > 0).as_ref(),
        )?;
        let load = replica_load(&started.gateway_url, load);
        let mut probe = crate::loadtest::probe::LocalProbe::new(&started)?;
        let report = crate::loadtest::run(&load, Some(&mut probe))?;
        crate::note_partial!("{}", crate::loadtest::to_text(&report));
        runs.push(ReplicaRun { consumers, report });
    }
    write_replica_report(cli, report_dir, &runs)
}

/// `loadtest --consumer-replicas LIST --cluster`: for each count, scale the
/// consumer Deployment, wait until it is ready and the group has settled,
/// and load the cluster's external address the same way; the count comes
/// from the consumers' own counters (see `crate::loadtest::probe`). The Deployment is
/// put back to `consumer.replicas` from bfctl.yaml afterwards.
pub(crate) fn replicas_cluster_command(
    cli: &Cli,
    list: &str,
    report_dir: &Path,
    load: Load,
) -> anyhow::Result<()> {
    use crate::loadtest::{self, ReplicaRun};
    let counts = loadtest::parse_replicas(list)?;
    let config = cli.load_config()?;
    let runtime = std::sync::Arc::new(runtime()?);
    let cluster = runtime.block_on(cluster::connect(&config, &cli.target(false)))?;
    // Only this install's consumer Deployment is ever scaled.
    let consumer = kube_apply::ObjectRef {
        api_version: "apps/v1".into(),
        kind: "Deployment".into(),
        namespace: Some(cluster.default_namespace().to_string()),
        name: "consumer".into(),
    };
    runtime.block_on(kube_apply::inventory::ensure_owned(
        &cluster,
        &consumer,
        config.install_name(),
        "run `bfctl up` first",
    ))?;
    let target = cluster_target(cli)?;
    let partitions = config.kafka.partitions.0;
    let settle = std::time::Duration::from_secs(600);
    let note = |message: String| crate::note!("replicas: {message}");
    let mut runs = Vec::new();
    let mut outcome = Ok(());
    for consumers in counts {
        note(format!("scaling the consumers to {consumers}"));
        let replicas = i32::try_from(consumers).context("replica count")?;
        if let Err(error) = runtime.block_on(crate::loadtest::probe::scale_consumers(
            &cluster, replicas, partitions, settle, &note,
        )) {
            outcome = Err(error);
            break;
        }
        let load = replica_load(&target, load);
        let mut probe = crate::loadtest::probe::ClusterProbe::new(runtime.clone(), cluster.clone());
        match crate::loadtest::run(&load, Some(&mut probe)) {
            Ok(report) => {
                crate::note_partial!("{}", crate::loadtest::to_text(&report));
                runs.push(ReplicaRun { consumers, report });
            }
            Err(error) => {
                outcome = Err(error);
                break;
            }
        }
    }
    let configured = i32::try_from(config.consumer.replicas.0).context("consumer.replicas")?;
    note(format!(
        "putting the consumers back to {configured} (consumer.replicas)"
    ));
    runtime.block_on(cluster.scale_deployment(
        cluster.default_namespace(),
        "consumer",
        configured,
    ))?;
    outcome?;
    write_replica_report(cli, report_dir, &runs)
}

/// The load every count of a replica comparison gets: closed loop, the
/// same seed, so that the runs differ only in the consumers.
/// The load test options for one run (no rate limit: the replica
/// comparison measures what the pipeline absorbs).
pub(crate) fn replica_load(target: &str, load: Load) -> crate::loadtest::LoadtestOptions {
    crate::loadtest::LoadtestOptions {
        target: target.to_string(),
        users: load.users,
        duration: load.duration,
        drain_timeout: load.drain_timeout,
        seed: 2026,
        rate: None,
    }
}

/// Writes replicas.md and replicas.svg, prints them (or JSON), and fails
/// when a run lost or duplicated sales.
pub(crate) fn write_replica_report(
    cli: &Cli,
    report_dir: &Path,
    runs: &[crate::loadtest::ReplicaRun],
) -> anyhow::Result<()> {
    use crate::loadtest;
    std::fs::create_dir_all(report_dir)
        .with_context(|| format!("creating {}", report_dir.display()))?;
    let table = loadtest::replica_table(runs);
    std::fs::write(report_dir.join("replicas.md"), &table)?;
    loadtest::write_replica_chart(runs, &report_dir.join("replicas.svg"))?;
    if matches!(cli.output, Output::Json) {
        crate::out!("{}", serde_json::to_string_pretty(runs)?);
    } else {
        crate::out_partial!("{table}");
        crate::out!(
            "wrote {}, {} and {}",
            report_dir.join("replicas.md").display(),
            report_dir.join("replicas.svg").display(),
            report_dir.join("replicas.png").display()
        );
    }
    if runs
        .iter()
        .all(|run| crate::loadtest::is_exact(&run.report))
    {
        Ok(())
    } else {
        Err(crate::exit::check_failed(
            "a run lost or duplicated sales; see the table",
        ))
    }
}
