//! Faults in the local pipeline: signals to its processes, the Docker
//! Engine's kill, pause and stop for its broker and Valkey containers.
//! The supervisor (`crate::local::supervisor`) is what heals them: it
//! starts an exited process or container again with the same command, the
//! way a kubelet would. "Whole" is what `status --local` says: every part
//! running, and those with a health endpoint answering it.
//!
//! Only what the supervisor started is touched: a server given by address
//! in bfctl.yaml (`configured`) is not bfctl's to kill, and a fault on it is
//! refused.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};

use super::FaultInjector;
use super::plan::{Action, Fault, Target};
use crate::local::{LocalProcess, LocalState, container};

/// The local pipeline in `dir`.
pub struct LocalInjector {
    pub dir: PathBuf,
}

impl LocalInjector {
    /// The process a fault on `target` hits: the first of its kind, as the
    /// supervisor last recorded it (its pid changes with each restart).
    fn victim(&self, target: Target) -> anyhow::Result<LocalProcess> {
        let state = LocalState::load(&self.dir)?
            .with_context(|| format!("no local pipeline in {}", self.dir.display()))?;
        let process = state
            .processes
            .into_iter()
            .find(|p| p.name.starts_with(target.name()))
            .with_context(|| format!("the local pipeline has no {}", target.name()))?;
        if process.source == "configured" {
            bail!(
                "the {} at {} is a server bfctl.yaml names, not one bfctl started: it is not bfctl's to fault",
                target.name(),
                process.address
            );
        }
        Ok(process)
    }
}

impl FaultInjector for LocalInjector {
    fn inject(&mut self, fault: &Fault) -> anyhow::Result<String> {
        let victim = self.victim(fault.target)?;
        match &victim.container {
            Some(id) => container_fault(id, &victim.name, fault),
            None => process_fault(&victim, fault),
        }
    }

    /// A server bfctl.yaml names is not bfctl's to fault. And a broker run
    /// from the `tansu` binary is not restarted: tansu 0.6.0 loses its
    /// idempotent producers' state on a graceful stop, and once it is back
    /// every produce from the running producer panics its storage task, so
    /// it stays up answering nothing (its log: `more or less than one row`
    /// in `idempotent_message_check`). A SIGKILL keeps that state (its
    /// write-ahead log); a broker container (`apache/kafka`) stops cleanly.
    fn refuses(&self, target: Target, action: Action) -> Option<String> {
        let victim = match self.victim(target) {
            Ok(victim) => victim,
            Err(error) => return Some(format!("{error:#}")),
        };
        (target == Target::Broker && action == Action::Restart && victim.source == "process").then(|| {
            "a broker run from the tansu binary is not restarted: tansu 0.6.0 loses its idempotent producers' state on a graceful stop and then fails every produce (kill and pause work; the apache/kafka container can be restarted)".to_string()
        })
    }

    fn not_whole(&mut self) -> anyhow::Result<Vec<String>> {
        let status = crate::local::status(&self.dir)?;
        let mut missing: Vec<String> = status
            .processes
            .iter()
            .filter(|p| !p.running || p.healthy == Some(false))
            .map(|p| {
                format!(
                    "{} {}",
                    p.name,
                    if p.running {
                        "not healthy"
                    } else {
                        "not running"
                    }
                )
            })
            .collect();
        if !status.supervisor_running {
            missing.push("the supervisor is not running".into());
        }
        Ok(missing)
    }
}

fn signal(pid: u32, signal: libc::c_int, name: &str) -> anyhow::Result<()> {
    anyhow::ensure!(pid > 1, "no process id recorded");
    // SAFETY: kill(2) on a pid the supervisor recorded for its own child.
    if unsafe { libc::kill(pid as libc::pid_t, signal) } != 0 {
        bail!(
            "sending {name} to pid {pid}: {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

fn process_fault(victim: &LocalProcess, fault: &Fault) -> anyhow::Result<String> {
    let (name, pid) = (&victim.name, victim.pid);
    match fault.action {
        Action::Kill => {
            signal(pid, libc::SIGKILL, "SIGKILL")?;
            Ok(format!("SIGKILL to {name} (pid {pid})"))
        }
        Action::Pause => {
            signal(pid, libc::SIGSTOP, "SIGSTOP")?;
            std::thread::sleep(fault.pause());
            signal(pid, libc::SIGCONT, "SIGCONT")?;
            Ok(format!(
                "SIGSTOP to {name} (pid {pid}), SIGCONT {:.1} s later",
                fault.pause().as_secs_f64()
            ))
        }
        Action::Restart => {
            signal(pid, libc::SIGTERM, "SIGTERM")?;
            let deadline = std::time::Instant::now() + STOP_GRACE;
            while crate::local::is_alive(pid) && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            if crate::local::is_alive(pid) {
                signal(pid, libc::SIGKILL, "SIGKILL")?;
                return Ok(format!(
                    "SIGTERM to {name} (pid {pid}), SIGKILL {} s later (it had not stopped); the supervisor starts it again",
                    STOP_GRACE.as_secs()
                ));
            }
            Ok(format!(
                "SIGTERM to {name} (pid {pid}); the supervisor starts it again"
            ))
        }
        Action::DeletePod => bail!("delete-pod is a cluster fault"),
    }
}

/// How long a restarted process has to stop after SIGTERM before it is
/// killed, as `docker stop` gives a container: tansu 0.6.0 under load may
/// stop its storage and keep its listener, failing every request, without
/// exiting (seen in `local_chaos.rs`).
const STOP_GRACE: Duration = Duration::from_secs(10);

fn container_fault(id: &str, name: &str, fault: &Fault) -> anyhow::Result<String> {
    let short = &id[..id.len().min(12)];
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting a runtime")?;
    runtime.block_on(async {
        let docker = container::engine()
            .await
            .context("the Docker Engine does not answer")?;
        match fault.action {
            Action::Kill => {
                container::kill(&docker, id).await?;
                Ok(format!("killed container {name} ({short})"))
            }
            Action::Pause => {
                container::pause(&docker, id).await?;
                tokio::time::sleep(fault.pause()).await;
                container::unpause(&docker, id).await?;
                Ok(format!(
                    "paused container {name} ({short}), unpaused {:.1} s later",
                    fault.pause().as_secs_f64()
                ))
            }
            Action::Restart => {
                container::stop(&docker, id, STOP_GRACE).await?;
                Ok(format!(
                    "stopped container {name} ({short}); the supervisor starts it again"
                ))
            }
            Action::DeletePod => bail!("delete-pod is a cluster fault"),
        }
    })
}
