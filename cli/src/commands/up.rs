//! `bfctl up` on a cluster (build and push first, then the engine) and
//! `bfctl up --local`; what each prints.

use super::build::build_images;
use super::disk::disk_push;
use super::prelude::*;

pub(crate) fn up_command(
    cli: &Cli,
    options: &UpOptions,
    offline: bool,
    skip_build: bool,
) -> anyhow::Result<()> {
    let config = cli.load_config()?;
    for warning in config.deploy_warnings() {
        crate::note!("warning: {warning}");
    }
    if !skip_build {
        for warning in config.registry_warnings() {
            crate::note!("warning: {warning}");
        }
        // Cheap when nothing changed: cargo's own cache, the image cache,
        // and a push that finds every blob already there.
        for image in build_images(&config, &cli.state_dir, true, "release", &[])? {
            crate::note!(
                "image {}: {}{}",
                image.service,
                image.digest,
                if image.cached { " (unchanged)" } else { "" }
            );
        }
        // The VM disk: rebuilt and pushed only when its recipe changed.
        let recipe = crate::build::disk::LoadedRecipe::load(Path::new("disk"))?;
        let state = crate::build::image::ImageState::load(&cli.state_dir)?;
        if crate::build::disk::container::recorded_is_current(
            &state,
            &config.registry.url,
            &recipe.inputs,
        ) {
            crate::note!("image valkey-disk: unchanged");
        } else {
            let (_, report) = disk_push(&config, &cli.state_dir, Path::new("disk"), &[])?;
            crate::note!("image valkey-disk: {}", report.digest);
        }
    }
    let (report, notes) = runtime()?.block_on(async {
        cluster::up(
            &config,
            &cli.target(offline),
            options,
            cluster::progress(cli.verbose > 0),
            Interrupt::on_ctrl_c(crate::output::interrupt_notice),
        )
        .await
    })?;
    for note in notes {
        crate::note!("note: {note}");
    }
    report_up(&report, matches!(cli.output, Output::Json))
}

/// Prints the outcome of `up` and turns failures into an error.
pub(crate) fn report_up(report: &kube_apply::UpReport, json: bool) -> anyhow::Result<()> {
    if json {
        crate::out!("{}", serde_json::to_string_pretty(report)?);
    } else {
        for used in report.used_not_owned() {
            crate::out!(
                "not this install's, used as it is: {}{}",
                used.object,
                used.note
                    .as_ref()
                    .map(|n| format!(" ({n})"))
                    .unwrap_or_default()
            );
        }
        for kept in &report.kept {
            crate::out!("not pruned: {kept}");
        }
        for (name, other) in &report.other_installs {
            let label = if name.is_empty() {
                "objects from an older bfctl, with no install label".to_string()
            } else {
                format!("another install, '{name}'")
            };
            let remove = if name.is_empty() {
                "delete them by hand if they are no longer wanted".to_string()
            } else {
                format!("to remove it: bfctl teardown --install {name}")
            };
            crate::out!(
                "{label}, is in this cluster ({} objects{}); this up left it alone; {remove}",
                other.objects,
                if other.namespaces.is_empty() {
                    String::new()
                } else {
                    format!(", namespaces {}", other.namespaces.join(", "))
                },
            );
        }
        if report.unchanged() {
            let objects: usize = report.steps.iter().map(|s| s.objects.len()).sum();
            crate::out!(
                "everything is unchanged: {objects} objects in {} steps, all ready ({:.1}s)",
                report.steps.len(),
                report.elapsed_ms as f64 / 1000.0
            );
        } else if report.succeeded() {
            let changed = report
                .steps
                .iter()
                .flat_map(|s| s.objects.iter())
                .filter(|o| o.outcome.changed())
                .count();
            crate::out!(
                "up: {changed} objects created or changed, {} pruned, every step ready ({:.1}s)",
                report.pruned.len(),
                report.elapsed_ms as f64 / 1000.0
            );
        }
    }
    if report.interrupted {
        let stopped = report.interrupted_steps();
        return Err(crate::exit::interrupted(format!(
            "interrupted{}: nothing is half-applied; run `bfctl up` again to finish",
            if stopped.is_empty() {
                String::new()
            } else {
                format!(" while {} ran", stopped.join(", "))
            }
        )));
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

/// bfctl.yaml when there is one, else the example's values (the carnet,
/// the `local:` section).
pub(crate) fn up_local_command(
    cli: &Cli,
    dir: &Path,
    options: &crate::local::LocalOptions,
    timeout: std::time::Duration,
) -> anyhow::Result<()> {
    crate::note!(
        "starting the local pipeline in {}: broker, valkey, {} producers, gateway, {} consumers",
        dir.display(),
        options.producers,
        options.consumers
    );
    let started = std::time::Instant::now();
    let progress = crate::cluster::progress(cli.verbose > 0);
    let state = crate::local::up(dir, options, timeout, progress.as_ref())?;
    if matches!(cli.output, Output::Json) {
        let mut shown = serde_json::to_value(&state)?;
        shown["valkeyPassword"] = "(in state.json)".into();
        crate::out!("{}", serde_json::to_string_pretty(&shown)?);
    } else {
        for process in &state.processes {
            crate::out!(
                "{:<12} {:<10} pid {:<8} {}",
                process.name,
                process.source,
                process.pid,
                process.address
            );
        }
        crate::out!(
            "ready in {:.1} s; send traffic to {}/venta (logs and data in {})",
            started.elapsed().as_secs_f64(),
            state.gateway_url,
            dir.display()
        );
        if state.dashboard_url.is_empty() {
            crate::out!(
                "no live dashboard (see {})",
                crate::local::supervisor::events_path(dir).display()
            );
        } else {
            crate::out!("live dashboard: {}", state.dashboard_url);
        }
    }
    Ok(())
}
