//! `bfctl teardown` on a cluster (asking before removing finalizers) and
//! `bfctl teardown --local`.

use super::prelude::*;

pub(crate) fn teardown_command(
    cli: &Cli,
    options: &kube_apply::teardown::TeardownOptions,
    offline: bool,
    yes: bool,
) -> anyhow::Result<()> {
    let config = cli.load_config()?;
    let confirm = move |objects: &[String]| -> bool {
        crate::note!(
            "these objects are still being deleted, held by finalizers:\n  {}",
            objects.join("\n  ")
        );
        if yes {
            crate::note!("removing their finalizers (--yes)");
            return true;
        }
        ask("remove their finalizers? Their controllers' cleanup will not run [y/N] ")
    };
    let progress = cluster::progress(cli.verbose > 0);
    let report = runtime()?.block_on(cluster::teardown(
        &config,
        &cli.target(offline),
        options,
        progress.as_ref(),
        &confirm,
    ))?;
    if matches!(cli.output, Output::Json) {
        crate::out!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        crate::out!(
            "teardown of install '{}': {} objects deleted",
            report.install,
            report.deleted.len()
        );
        for terminating in &report.terminating {
            crate::out!("already being deleted: {terminating}");
        }
        for removed in &report.finalizers_removed {
            crate::out!("finalizers removed: {removed}");
        }
        for kept in &report.kept {
            crate::out!("kept: {} ({})", kept.object, kept.reason);
        }
        if report.left.is_empty() {
            crate::out!("nothing of install '{}' is left", report.install);
        }
        for left in &report.left {
            crate::out!("left: {left}");
        }
        for step in &report.next_steps {
            crate::out!("next: {step}");
        }
    }
    if report.left.is_empty() {
        Ok(())
    } else {
        Err(crate::exit::check_failed(format!(
            "{} objects of install '{}' are left; see above",
            report.left.len(),
            report.install
        )))
    }
}

/// Asks a yes/no question on the terminal; no terminal means no.
pub(crate) fn ask(question: &str) -> bool {
    use std::io::{BufRead, IsTerminal, Write};
    if !std::io::stdin().is_terminal() {
        crate::note!("not asking: standard input is not a terminal (pass --yes to go ahead)");
        return false;
    }
    crate::note_partial!("{question}");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    if std::io::stdin().lock().read_line(&mut answer).is_err() {
        return false;
    }
    matches!(answer.trim(), "y" | "Y" | "yes")
}

pub(crate) fn teardown_local_command(cli: &Cli, dir: &Path, purge: bool) -> anyhow::Result<()> {
    let report = crate::local::teardown(dir, purge)?;
    if matches!(cli.output, Output::Json) {
        crate::out!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        if report.stopped.is_empty() {
            crate::out!("nothing was running in {}", dir.display());
        }
        for stopped in &report.stopped {
            crate::out!("stopped {stopped}");
        }
        for left in &report.left {
            crate::out!("left: {left}");
        }
        for untouched in &report.untouched {
            crate::out!("not stopped (configured, not started by bfctl): {untouched}");
        }
        if report.purged {
            crate::out!("deleted {}", dir.display());
        } else if dir.exists() && report.left.is_empty() {
            crate::out!(
                "kept data and logs in {} (--purge deletes them)",
                dir.display()
            );
        }
    }
    if report.left.is_empty() {
        Ok(())
    } else {
        Err(crate::exit::check_failed(format!(
            "{} processes are still running; see above",
            report.left.len()
        )))
    }
}
