//! `bfctl up --local`, `status --local` and `teardown --local`: the whole
//! pipeline on this machine, no cluster.
//!
//! `up --local` starts a **supervisor**: bfctl itself, re-run detached as
//! `bfctl local-supervise` in its own session. The supervisor starts the
//! Kafka-protocol broker (`tansu` with sqlite storage), Valkey (a generated
//! password, AOF on), the producers, the gateway and the consumers, in that
//! order, each one waited for (broker metadata, authenticated PING, health
//! endpoints); it writes what runs where into `state.json` and then watches
//! the processes. Its children die with it (PR_SET_PDEATHSIG), so nothing
//! outlives a teardown or a crash of the supervisor. `up --local` returns
//! once the state says `ready` (or reports the supervisor's error).
//!
//! Everything lives under one directory (default `.bfctl/local/`): the state
//! file, every process's log, the broker's and Valkey's data.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use testkit::process::tail_lines;

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
    pub carnet: String,
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
}

impl LocalProcess {
    /// Its Prometheus endpoint (beside /healthz on the same port).
    pub fn metrics_url(&self) -> Option<String> {
        self.health_url
            .as_ref()
            .map(|url| url.replace("/healthz", "/metrics"))
    }
}

/// `state.json`: written by the supervisor, read by every other command.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LocalState {
    /// `starting`, `ready` or `failed`.
    pub phase: String,
    pub error: Option<String>,
    pub supervisor_pid: u32,
    pub options: LocalOptions,
    pub gateway_url: String,
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
        let path = state_path(dir);
        let partial = path.with_extension("json.partial");
        std::fs::write(&partial, serde_json::to_vec_pretty(self)?)
            .and_then(|()| std::fs::rename(&partial, &path))
            .with_context(|| format!("writing {}", path.display()))
    }

    /// A Valkey connection with the pipeline's password.
    pub fn valkey(&self) -> anyhow::Result<redis::Connection> {
        let address = self.valkey_url.trim_start_matches("redis://");
        let url = format!("redis://:{}@{address}", self.valkey_password);
        let client = redis::Client::open(url).context("the Valkey URL in state.json")?;
        let connection = client
            .get_connection_with_timeout(Duration::from_secs(3))
            .with_context(|| format!("connecting to Valkey at {}", self.valkey_url))?;
        connection.set_read_timeout(Some(Duration::from_secs(10)))?;
        Ok(connection)
    }
}

/// Whether a process with this id exists.
pub fn is_alive(pid: u32) -> bool {
    // SAFETY: kill(2) with signal 0 only checks that the process exists.
    pid != 0 && unsafe { libc::kill(pid as libc::pid_t, 0) } == 0
}

/// `up --local`: starts the supervisor and waits until the pipeline is
/// ready (or failed). A pipeline already running in `dir` is an error.
pub fn up(dir: &Path, options: &LocalOptions, timeout: Duration) -> anyhow::Result<LocalState> {
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
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let dir = dir
        .canonicalize()
        .with_context(|| format!("resolving {}", dir.display()))?;
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
    loop {
        if let Some(state) = LocalState::load(&dir)? {
            match state.phase.as_str() {
                "ready" => return Ok(state),
                "failed" => bail!(
                    "the local pipeline did not start: {}",
                    state.error.unwrap_or_default()
                ),
                _ => {}
            }
        }
        if let Some(status) = child.try_wait()? {
            let tail = tail_lines(&supervisor_log, 30);
            bail!("the local supervisor exited ({status}) before the pipeline was ready:\n{tail}");
        }
        if started.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "the local pipeline was not ready within {timeout:?}; the supervisor was stopped. Its log:\n{}",
                tail_lines(&supervisor_log, 30)
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// What `status --local` reports about one process.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProcessStatus {
    pub name: String,
    pub pid: u32,
    pub running: bool,
    /// Its health endpoint answered 200 (`None`: it has none).
    pub healthy: Option<bool>,
    pub address: String,
    /// The last lines of its log, when it is not running.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_log_lines: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LocalStatus {
    pub dir: PathBuf,
    pub supervisor_running: bool,
    pub gateway_url: String,
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
            let running = !process.exited && is_alive(process.pid);
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
                *lag.get_or_insert(0.0) += testkit::pipeline::sum_metric(&body, "bf_consumer_lag");
            }
            ProcessStatus {
                name: process.name.clone(),
                pid: process.pid,
                running,
                healthy,
                address: process.address.clone(),
                last_log_lines: (!running).then(|| tail_lines(&process.log, 10)),
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
        supervisor_running: is_alive(state.supervisor_pid),
        gateway_url: state.gateway_url.clone(),
        processes,
        sales_counted,
        consumer_lag: lag,
    })
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
    out.push_str(&format!(
        "{:<12} {:>8} {:<9} {:<8} {}\n",
        "PROCESS", "PID", "STATE", "HEALTH", "ADDRESS"
    ));
    for process in &status.processes {
        out.push_str(&format!(
            "{:<12} {:>8} {:<9} {:<8} {}\n",
            process.name,
            process.pid,
            if process.running { "running" } else { "EXITED" },
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
            "--- {} exited; its last log lines:\n{}\n",
            process.name,
            process.last_log_lines.as_deref().unwrap_or("")
        ));
    }
    if let Some(sales) = status.sales_counted {
        out.push_str(&format!("sales counted in Valkey: {sales}\n"));
    }
    if let Some(lag) = status.consumer_lag {
        out.push_str(&format!("consumer lag: {lag:.0} records\n"));
    }
    out.push_str(&format!("send traffic to: {}/venta\n", status.gateway_url));
    out
}

/// What `teardown --local` did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LocalTeardown {
    pub stopped: Vec<String>,
    /// Processes still alive afterwards (should be none).
    pub left: Vec<String>,
    pub purged: bool,
}

/// `teardown --local [--purge]`: stops the supervisor (and so every
/// process), then with `purge` deletes the directory (data and logs).
pub fn teardown(dir: &Path, purge: bool) -> anyhow::Result<LocalTeardown> {
    let mut report = LocalTeardown {
        stopped: Vec::new(),
        left: Vec::new(),
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
        for process in &state.processes {
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
        if report.left.is_empty() {
            std::fs::remove_file(state_path(dir)).ok();
        }
    }
    if purge && report.left.is_empty() && dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("deleting {}", dir.display()))?;
        report.purged = true;
    }
    Ok(report)
}

/// Set by SIGTERM/SIGINT in the supervisor.
static STOP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

extern "C" fn request_stop(_: libc::c_int) {
    STOP.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// The supervisor (`bfctl local-supervise`, started by [`up`]): starts the
/// pipeline, records it, watches it until SIGTERM, then stops it.
pub fn supervise(dir: &Path, options: LocalOptions) -> anyhow::Result<()> {
    // SAFETY: the handler only stores to an atomic.
    unsafe {
        libc::signal(
            libc::SIGTERM,
            request_stop as *const () as libc::sighandler_t,
        );
        libc::signal(
            libc::SIGINT,
            request_stop as *const () as libc::sighandler_t,
        );
    }
    let supervisor_pid = std::process::id();
    let mut state = LocalState {
        phase: "starting".into(),
        error: None,
        supervisor_pid,
        options: options.clone(),
        gateway_url: String::new(),
        kafka_bootstrap: String::new(),
        valkey_url: String::new(),
        valkey_password: String::new(),
        processes: Vec::new(),
    };
    state.save(dir)?;
    let pipeline_options = testkit::pipeline::PipelineOptions {
        producers: options.producers,
        consumers: options.consumers,
        partitions: options.partitions,
        carnet: Some(options.carnet.clone()),
        consumer_args: Vec::new(),
        start_gateway: true,
        gateway_port: Some(options.gateway_port),
    };
    eprintln!(
        "supervisor {supervisor_pid}: starting broker, valkey, producers, gateway, consumers"
    );
    let mut pipeline = match testkit::pipeline::Pipeline::start_in(dir, pipeline_options) {
        Ok(pipeline) => pipeline,
        Err(error) => {
            state.phase = "failed".into();
            state.error = Some(format!("{error:#}"));
            state.save(dir)?;
            return Err(error);
        }
    };
    state.gateway_url = pipeline.gateway_url()?;
    state.kafka_bootstrap = pipeline.broker.bootstrap();
    state.valkey_url = pipeline.valkey.url();
    state.valkey_password = pipeline.valkey.password.clone();
    state.processes = processes_of(&pipeline);
    state.phase = "ready".into();
    state.save(dir)?;
    eprintln!(
        "supervisor {supervisor_pid}: ready, gateway at {}",
        state.gateway_url
    );

    while !STOP.load(std::sync::atomic::Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(500));
        let mut changed = false;
        let mut check = |name: &str, process: &mut testkit::process::ChildProcess| {
            if process.is_running() {
                return;
            }
            let entry = state.processes.iter_mut().find(|p| p.name == name);
            if let Some(entry) = entry.filter(|entry| !entry.exited) {
                eprintln!("supervisor: {name} exited");
                entry.exited = true;
                changed = true;
            }
        };
        check("broker", pipeline.broker.process_mut());
        check("valkey", pipeline.valkey.process_mut());
        for service in pipeline
            .producers
            .iter_mut()
            .chain(pipeline.consumers.iter_mut())
            .chain(pipeline.gateway.iter_mut())
        {
            let name = service.process.name().to_string();
            check(&name, &mut service.process);
        }
        if changed {
            state.save(dir)?;
        }
    }
    eprintln!("supervisor {supervisor_pid}: stopping");
    // Services first, then the servers they use (the Pipeline's drop order).
    drop(pipeline);
    std::fs::remove_file(state_path(dir)).ok();
    Ok(())
}

fn processes_of(pipeline: &testkit::pipeline::Pipeline) -> Vec<LocalProcess> {
    let mut processes = vec![
        LocalProcess {
            name: "broker".into(),
            pid: pipeline.broker.process().pid().unwrap_or(0),
            address: pipeline.broker.bootstrap(),
            health_url: None,
            log: pipeline.broker.process().log_path().to_path_buf(),
            exited: false,
        },
        LocalProcess {
            name: "valkey".into(),
            pid: pipeline.valkey.process().pid().unwrap_or(0),
            address: pipeline
                .valkey
                .url()
                .trim_start_matches("redis://")
                .trim_end_matches("/0")
                .into(),
            health_url: None,
            log: pipeline.valkey.process().log_path().to_path_buf(),
            exited: false,
        },
    ];
    for service in pipeline
        .producers
        .iter()
        .chain(&pipeline.gateway)
        .chain(&pipeline.consumers)
    {
        let name = service.process.name().to_string();
        let health = if name.starts_with("consumer") || name.starts_with("producer") {
            format!("http://127.0.0.1:{}/healthz", service.metrics_port)
        } else {
            format!("http://127.0.0.1:{}/healthz", service.port)
        };
        processes.push(LocalProcess {
            address: if service.port == 0 {
                String::new()
            } else {
                format!("127.0.0.1:{}", service.port)
            },
            name,
            pid: service.process.pid().unwrap_or(0),
            health_url: Some(health),
            log: service.process.log_path().to_path_buf(),
            exited: false,
        });
    }
    processes
}
