//! `bfctl up --local`, `status --local` and `teardown --local`: the whole
//! pipeline on this machine, no cluster.
//!
//! `up --local` starts a **supervisor**: bfctl itself, re-run detached as
//! `bfctl local-supervise` in its own session ([`supervisor`]). The
//! supervisor brings up the broker and Valkey ([`servers`]: a configured
//! address, an official container image, or a binary from PATH), the
//! producers, the gateway and the consumers, through the same
//! dependency-graph engine as the cluster path; it writes what runs where
//! into `state.json` and then watches. Its child processes die with it
//! (PR_SET_PDEATHSIG) and it removes its containers when it stops, so
//! nothing outlives a teardown. `up --local` shows the supervisor's progress
//! with the cluster path's display and returns once the state says `ready`
//! (or reports the failure).
//!
//! Everything lives under one directory (default `.bfctl/local/`): the state
//! file, the event log, every process's log, the broker's and Valkey's data.

pub mod container;
pub mod servers;
pub mod supervisor;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use localrun::process::tail_lines;
use serde::{Deserialize, Serialize};

use kube_apply::{Event, Observer};

/// Where local mode keeps everything unless told otherwise.
pub const DEFAULT_DIR: &str = ".bfctl/local";

/// What `up --local` asks for.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LocalOptions {
    pub producers: usize,
    pub consumers: usize,
    pub partitions: i32,
    /// The gateway's port on 127.0.0.1.
    pub gateway_port: u16,
    /// The live dashboard's port on 127.0.0.1 (0: any free port).
    #[serde(default)]
    pub dashboard_port: u16,
    pub carnet: String,
    /// Where the broker and Valkey come from.
    #[serde(default)]
    pub servers: servers::ServerChoices,
}

/// One process of the local pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LocalProcess {
    pub name: String,
    pub pid: u32,
    /// Where it serves: `127.0.0.1:port` (empty for the consumers).
    pub address: String,
    /// Its health or metrics endpoint, if it has one.
    pub health_url: Option<String>,
    pub log: PathBuf,
    /// Set by the supervisor when the process exited.
    #[serde(default)]
    pub exited: bool,
    /// `process`, `container` or `configured` (an existing server bfctl
    /// neither started nor stops).
    #[serde(default = "process_source")]
    pub source: String,
    /// The container's id, when it runs in one.
    #[serde(default)]
    pub container: Option<String>,
    /// How many times the supervisor restarted it.
    #[serde(default)]
    pub restarts: u32,
    /// How it ended last ("killed by signal 9 (SIGKILL)", "exit code 1").
    #[serde(default)]
    pub last_exit: Option<String>,
    /// It exited three times in a row within a minute of starting.
    #[serde(default)]
    pub crash_looping: bool,
}

fn process_source() -> String {
    "process".into()
}

impl LocalProcess {
    /// Its Prometheus endpoint (beside /healthz on the same port).
    pub fn metrics_url(&self) -> Option<String> {
        self.health_url
            .as_ref()
            .map(|url| url.replace("/healthz", "/metrics"))
    }
}

/// Where the local pipeline is in its life, as the supervisor last wrote
/// it (`"starting"`, `"ready"`, `"failed"` in `state.json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// The supervisor is starting the servers and services.
    Starting,
    /// Every step is ready; the gateway takes sales.
    Ready,
    /// A step failed; the supervisor stopped what it had started.
    Failed,
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Phase::Starting => "starting",
            Phase::Ready => "ready",
            Phase::Failed => "failed",
        })
    }
}

/// `state.json`: written by the supervisor, read by every other command.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LocalState {
    pub phase: Phase,
    pub error: Option<String>,
    pub supervisor_pid: u32,
    pub options: LocalOptions,
    pub gateway_url: String,
    /// The live dashboard (`http://127.0.0.1:PORT/`), once it serves.
    #[serde(default)]
    pub dashboard_url: String,
    pub kafka_bootstrap: String,
    /// `redis://127.0.0.1:PORT/0` (the password is separate).
    pub valkey_url: String,
    pub valkey_password: String,
    pub processes: Vec<LocalProcess>,
}

pub fn state_path(dir: &Path) -> PathBuf {
    dir.join("state.json")
}

impl LocalState {
    /// The state in `dir`, if a pipeline was started there.
    pub fn load(dir: &Path) -> anyhow::Result<Option<LocalState>> {
        let path = state_path(dir);
        match std::fs::read(&path) {
            Ok(bytes) => Ok(Some(serde_json::from_slice(&bytes).with_context(|| {
                format!(
                    "{} is damaged; run `bfctl teardown --local`",
                    path.display()
                )
            })?)),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(error).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// Writes atomically (a rename), so readers never see half a file.
    pub fn save(&self, dir: &Path) -> anyhow::Result<()> {
        crate::files::write_atomically(&state_path(dir), &serde_json::to_vec_pretty(self)?)
    }

    /// A Valkey connection with the pipeline's password.
    pub fn valkey(&self) -> anyhow::Result<redis::Connection> {
        localrun::valkey::connect(&self.valkey_url, &self.valkey_password)
            .with_context(|| format!("connecting to Valkey at {}", self.valkey_url))
    }
}

/// Whether a process with this id exists.
pub fn is_alive(pid: u32) -> bool {
    // SAFETY: kill(2) with signal 0 only checks that the process exists.
    pid != 0 && unsafe { libc::kill(pid as libc::pid_t, 0) } == 0
}

/// `up --local`: starts the supervisor and waits until the pipeline is
/// ready (or failed). A pipeline already running in `dir` is an error.
pub fn up(
    dir: &Path,
    options: &LocalOptions,
    timeout: Duration,
    observer: &dyn Observer,
) -> anyhow::Result<LocalState> {
    if let Some(state) = LocalState::load(dir)? {
        if is_alive(state.supervisor_pid) {
            bail!(
                "a local pipeline is already running from {} (supervisor pid {}); \
                 `bfctl status --local` shows it, `bfctl teardown --local` stops it",
                dir.display(),
                state.supervisor_pid
            );
        }
        // A supervisor that died (machine restart, SIGKILL): its children
        // died with it; start afresh.
        std::fs::remove_file(state_path(dir)).ok();
    }
    anyhow::ensure!(options.producers >= 1, "--producers must be at least 1");
    anyhow::ensure!(options.consumers >= 1, "--consumers must be at least 1");
    anyhow::ensure!(
        (1..=1000).contains(&options.partitions),
        "--partitions must be between 1 and 1000"
    );
    std::net::TcpListener::bind(("127.0.0.1", options.gateway_port)).with_context(|| {
        format!(
            "127.0.0.1:{} (the gateway's port) is already in use; pass --gateway-port",
            options.gateway_port
        )
    })?;
    if let Some(url) = &options.servers.valkey_url {
        servers::normalize_valkey_url(url)?;
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let dir = dir
        .canonicalize()
        .with_context(|| format!("resolving {}", dir.display()))?;
    // Events of an earlier run must not be shown as this one's.
    let events_path = supervisor::events_path(&dir);
    match std::fs::remove_file(&events_path) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
            return Err(error).with_context(|| format!("removing {}", events_path.display()));
        }
        _ => {}
    }
    let supervisor_log = dir.join("supervisor.log");
    let log = std::fs::File::create(&supervisor_log)
        .with_context(|| format!("creating {}", supervisor_log.display()))?;
    let exe = std::env::current_exe().context("locating the bfctl executable")?;
    let mut command = std::process::Command::new(exe);
    command
        .arg("local-supervise")
        .arg("--dir")
        .arg(&dir)
        .arg("--options")
        .arg(serde_json::to_string(options)?)
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    // SAFETY: setsid(2) in the forked child before exec: async-signal-safe.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut command, || {
            libc::setsid();
            Ok(())
        });
    }
    let mut child = command.spawn().context("starting the local supervisor")?;
    let started = Instant::now();
    let mut events = EventReader::new(events_path);
    loop {
        events.forward(observer);
        if let Some(state) = LocalState::load(&dir)? {
            match state.phase {
                Phase::Ready => {
                    events.forward(observer);
                    return Ok(state);
                }
                Phase::Failed => {
                    // Whatever it said before giving up.
                    let _ = child.wait();
                    events.forward(observer);
                    bail!(
                        "the local pipeline did not start, and nothing of it is left running: {}",
                        state.error.unwrap_or_default()
                    )
                }
                Phase::Starting => {}
            }
        }
        if let Some(status) = child.try_wait()? {
            remove_containers(&dir);
            let tail = tail_lines(&supervisor_log, 30);
            bail!("the local supervisor exited ({status}) before the pipeline was ready:\n{tail}");
        }
        if started.elapsed() > timeout {
            // SIGTERM lets it stop what it started (containers included);
            // whatever remains after a minute is killed and removed.
            // SAFETY: kill(2) on our own child, not yet reaped.
            unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(60);
            while child.try_wait()?.is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(200));
            }
            let _ = child.kill();
            let _ = child.wait();
            remove_containers(&dir);
            bail!(
                "the local pipeline was not ready within {timeout:?}; the supervisor was stopped. Its log:\n{}",
                tail_lines(&supervisor_log, 30)
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Removes the containers of `dir` a supervisor that died could not remove
/// (best effort: this runs on a path that already reports an error).
fn remove_containers(dir: &Path) {
    let _ = block_on(async {
        if let Some(docker) = container::engine().await {
            let _ = container::remove_all_of(&docker, dir).await;
        }
    });
}

/// Reads the supervisor's `events.jsonl` as it grows and hands each whole
/// line's event to an observer (the progress display).
struct EventReader {
    path: PathBuf,
    offset: usize,
}

impl EventReader {
    fn new(path: PathBuf) -> EventReader {
        EventReader { path, offset: 0 }
    }

    fn forward(&mut self, observer: &dyn Observer) {
        let Ok(bytes) = std::fs::read(&self.path) else {
            return;
        };
        let Some(unread) = bytes.get(self.offset..) else {
            return;
        };
        // Only whole lines: the supervisor may be writing the next one.
        let Some(end) = unread.iter().rposition(|b| *b == b'\n') else {
            return;
        };
        for line in unread[..end].split(|b| *b == b'\n') {
            if let Ok(event) = serde_json::from_slice::<Event>(line) {
                observer.event(event);
            }
        }
        self.offset += end + 1;
    }
}

/// What `status --local` reports about one process.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProcessStatus {
    pub name: String,
    pub pid: u32,
    /// `process`, `container` or `configured`.
    pub source: String,
    pub running: bool,
    /// Its health endpoint answered 200 (`None`: it has none).
    pub healthy: Option<bool>,
    pub address: String,
    /// How many times the supervisor restarted it.
    pub restarts: u32,
    /// How it ended last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_exit: Option<String>,
    pub crash_looping: bool,
    /// The last lines of its log, when it is not running or has restarted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_log_lines: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LocalStatus {
    pub dir: PathBuf,
    /// As the supervisor last wrote it.
    pub phase: Phase,
    /// Why the last `up --local` failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub supervisor_running: bool,
    pub gateway_url: String,
    /// The live dashboard the supervisor serves (empty: none).
    pub dashboard_url: String,
    pub processes: Vec<ProcessStatus>,
    /// Valkey's `bf:stats` sales count, if reachable.
    pub sales_counted: Option<i64>,
    /// Sum of the consumers' `bf_consumer_lag` gauges.
    pub consumer_lag: Option<f64>,
}

/// `status --local`.
pub fn status(dir: &Path) -> anyhow::Result<LocalStatus> {
    let Some(state) = LocalState::load(dir)? else {
        bail!(
            "no local pipeline in {} (start one with `bfctl up --local`)",
            dir.display()
        );
    };
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()?;
    let mut lag: Option<f64> = None;
    let processes = state
        .processes
        .iter()
        .map(|process| {
            let running = !process.exited
                && match (process.source.as_str(), &process.container) {
                    ("configured", _) => address_answers(&process.address),
                    (_, Some(id)) => container_running(id),
                    _ => is_alive(process.pid),
                };
            let healthy = process.health_url.as_ref().map(|url| {
                running
                    && http
                        .get(url)
                        .send()
                        .is_ok_and(|response| response.status().is_success())
            });
            let consumer_metrics = process
                .metrics_url()
                .filter(|_| running && process.name.starts_with("consumer"));
            if let Some(body) = consumer_metrics
                .and_then(|metrics| http.get(&metrics).send().and_then(|r| r.text()).ok())
            {
                *lag.get_or_insert(0.0) += localrun::launcher::sum_metric(&body, "bf_consumer_lag");
            }
            ProcessStatus {
                name: process.name.clone(),
                pid: process.pid,
                source: process.source.clone(),
                running,
                healthy,
                address: process.address.clone(),
                restarts: process.restarts,
                last_exit: process.last_exit.clone(),
                crash_looping: process.crash_looping,
                last_log_lines: (!running || process.restarts > 0)
                    .then(|| tail_lines(&process.log, 10)),
            }
        })
        .collect();
    let sales_counted = state.valkey().ok().and_then(|mut valkey| {
        redis::cmd("HGET")
            .arg("bf:stats")
            .arg("ventas")
            .query::<Option<i64>>(&mut valkey)
            .ok()
            .map(|v| v.unwrap_or(0))
    });
    Ok(LocalStatus {
        dir: dir.to_path_buf(),
        phase: state.phase,
        error: state.error.clone(),
        supervisor_running: is_alive(state.supervisor_pid),
        gateway_url: state.gateway_url.clone(),
        dashboard_url: state.dashboard_url.clone(),
        processes,
        sales_counted,
        consumer_lag: lag,
    })
}

/// Whether something accepts TCP connections at `host:port`.
fn address_answers(address: &str) -> bool {
    use std::net::ToSocketAddrs;
    address
        .split(',')
        .next()
        .and_then(|first| first.to_socket_addrs().ok())
        .and_then(|mut addresses| addresses.next())
        .is_some_and(|address| {
            std::net::TcpStream::connect_timeout(&address, Duration::from_secs(2)).is_ok()
        })
}

/// Runs a little async work (a Docker call) from synchronous code.
fn block_on<T>(work: impl std::future::Future<Output = T>) -> anyhow::Result<T> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting a runtime")?
        .block_on(work))
}

fn container_running(id: &str) -> bool {
    block_on(async {
        match container::engine().await {
            Some(docker) => container::is_running(&docker, id).await,
            None => false,
        }
    })
    .unwrap_or(false)
}

/// Text for people.
pub fn status_text(status: &LocalStatus) -> String {
    let mut out = format!(
        "local pipeline in {} (supervisor {})\n",
        status.dir.display(),
        if status.supervisor_running {
            "running"
        } else {
            "NOT running"
        }
    );
    if status.phase != Phase::Ready {
        out.push_str(&format!("phase: {}\n", status.phase));
    }
    if let Some(error) = &status.error {
        out.push_str(&format!(
            "the last `bfctl up --local` failed: {error}\n`bfctl teardown --local` clears it\n"
        ));
        return out;
    }
    out.push_str(&format!(
        "{:<12} {:<10} {:>8} {:<12} {:>8} {:<8} {}\n",
        "PROCESS", "SOURCE", "PID", "STATE", "RESTARTS", "HEALTH", "ADDRESS"
    ));
    for process in &status.processes {
        out.push_str(&format!(
            "{:<12} {:<10} {:>8} {:<12} {:>8} {:<8} {}\n",
            process.name,
            process.source,
            process.pid,
            match (process.running, process.crash_looping) {
                (_, true) => "CRASHLOOPING",
                (true, false) => "running",
                (false, false) if process.last_exit.is_some() => "restarting",
                (false, false) => "EXITED",
            },
            process.restarts,
            match process.healthy {
                Some(true) => "ok",
                Some(false) => "FAILING",
                None => "-",
            },
            process.address
        ));
    }
    for process in status.processes.iter().filter(|p| !p.running) {
        out.push_str(&format!(
            "--- {} exited{}; its last log lines:\n{}\n",
            process.name,
            process
                .last_exit
                .as_deref()
                .map(|exit| format!(" ({exit})"))
                .unwrap_or_default(),
            process.last_log_lines.as_deref().unwrap_or("")
        ));
    }
    for process in status
        .processes
        .iter()
        .filter(|p| p.running && p.restarts > 0)
    {
        out.push_str(&format!(
            "--- {} restarted {} time{} by the supervisor; last exit: {}\n",
            process.name,
            process.restarts,
            if process.restarts == 1 { "" } else { "s" },
            process.last_exit.as_deref().unwrap_or("unknown")
        ));
    }
    if let Some(sales) = status.sales_counted {
        out.push_str(&format!("sales counted in Valkey: {sales}\n"));
    }
    if let Some(lag) = status.consumer_lag {
        out.push_str(&format!(
            "consumer lag: {lag:.0} records (as the consumers last reported it; they report every 5 s)\n"
        ));
    }
    if !status.gateway_url.is_empty() {
        out.push_str(&format!("send traffic to: {}/venta\n", status.gateway_url));
    }
    if !status.dashboard_url.is_empty() && status.supervisor_running {
        out.push_str(&format!("live dashboard: {}\n", status.dashboard_url));
    }
    out
}

/// What `teardown --local` did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LocalTeardown {
    pub stopped: Vec<String>,
    /// Processes still alive afterwards (should be none).
    pub left: Vec<String>,
    /// Configured servers: used, not started, so not stopped either.
    pub untouched: Vec<String>,
    pub purged: bool,
}

/// `teardown --local [--purge]`: stops the supervisor (and so every
/// process), then with `purge` deletes the directory (data and logs).
pub fn teardown(dir: &Path, purge: bool) -> anyhow::Result<LocalTeardown> {
    let mut report = LocalTeardown {
        stopped: Vec::new(),
        left: Vec::new(),
        untouched: Vec::new(),
        purged: false,
    };
    if let Some(state) = LocalState::load(dir)? {
        if is_alive(state.supervisor_pid) {
            // SAFETY: kill(2) on the supervisor's pid from state.json.
            unsafe { libc::kill(state.supervisor_pid as libc::pid_t, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(30);
            while is_alive(state.supervisor_pid) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            if is_alive(state.supervisor_pid) {
                // SAFETY: as above; the supervisor ignored SIGTERM.
                unsafe { libc::kill(state.supervisor_pid as libc::pid_t, libc::SIGKILL) };
                std::thread::sleep(Duration::from_millis(500));
            }
            report
                .stopped
                .push(format!("supervisor (pid {})", state.supervisor_pid));
        }
        for process in state.processes.iter().filter(|p| p.pid != 0) {
            // Children die with the supervisor; wait briefly for the kernel.
            let deadline = Instant::now() + Duration::from_secs(5);
            while is_alive(process.pid) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            if is_alive(process.pid) {
                report
                    .left
                    .push(format!("{} (pid {})", process.name, process.pid));
            } else {
                report
                    .stopped
                    .push(format!("{} (pid {})", process.name, process.pid));
            }
        }
        for process in state.processes.iter().filter(|p| p.source == "configured") {
            report
                .untouched
                .push(format!("{} at {}", process.name, process.address));
        }
    }
    // Containers a killed supervisor could not remove.
    if let Ok(canonical) = dir.canonicalize() {
        let removed = block_on(async {
            match container::engine().await {
                Some(docker) => container::remove_all_of(&docker, &canonical).await,
                None => Ok(Vec::new()),
            }
        })??;
        report.stopped.extend(removed);
    }
    if report.left.is_empty() {
        std::fs::remove_file(state_path(dir)).ok();
    }
    if purge && report.left.is_empty() && dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("deleting {}", dir.display()))?;
        report.purged = true;
    }
    Ok(report)
}
