//! `bfctl status` (cluster, once or `--watch`) and `bfctl status --local`.

use super::prelude::*;

pub(crate) fn status_command(cli: &Cli, watch: bool, offline: bool) -> anyhow::Result<()> {
    let config = cli.load_config()?;
    let json = matches!(cli.output, Output::Json);
    let runtime = runtime()?;
    let show = |status: &status::Status| {
        if json {
            match serde_json::to_string(status) {
                Ok(text) => crate::out!("{text}"),
                Err(error) => crate::note!("bfctl: {error}"),
            }
        } else {
            crate::out!("{}", status::to_text(status));
        }
    };
    if watch {
        return runtime.block_on(cluster::watch_status(&config, &cli.target(offline), show));
    }
    let status = runtime.block_on(cluster::status(&config, &cli.target(offline)))?;
    if json {
        crate::out!("{}", serde_json::to_string_pretty(&status)?);
    } else {
        crate::out_partial!("{}", status::to_text(&status));
    }
    if status.healthy {
        Ok(())
    } else {
        Err(crate::exit::check_failed(format!(
            "not healthy: {}",
            status.problems.join("; ")
        )))
    }
}

pub(crate) fn status_local_command(cli: &Cli, dir: &Path) -> anyhow::Result<()> {
    let status = crate::local::status(dir)?;
    if matches!(cli.output, Output::Json) {
        crate::out!("{}", serde_json::to_string_pretty(&status)?);
    } else {
        crate::out_partial!("{}", crate::local::status_text(&status));
    }
    let down: Vec<&str> = status
        .processes
        .iter()
        .filter(|p| !p.running)
        .map(|p| p.name.as_str())
        .collect();
    if down.is_empty() && status.supervisor_running {
        Ok(())
    } else {
        Err(crate::exit::check_failed(format!(
            "not running: {}",
            if down.is_empty() {
                "the supervisor".to_string()
            } else {
                down.join(", ")
            }
        )))
    }
}
