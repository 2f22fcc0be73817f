//! The local pipeline's supervisor (`bfctl local-supervise`, started detached
//! by `up --local`).
//!
//! It brings the pipeline up through the same dependency-graph engine as
//! the cluster path ([`kube_apply::run_graph`]):
//!
//! ```text
//! broker ──┬─> producers ──> gateway
//!          └─> consumers ──> consumer-group
//! valkey ──┘
//! ```
//!
//! Independent steps run in parallel; a step starts once the steps it
//! depends on are ready; the first failure stops new steps, and everything
//! started is stopped again, so a failed `up` leaves nothing running. Every
//! engine event is appended to `events.jsonl`, which the waiting `up` shows
//! with the same progress display as the cluster path. `consumer-group`
//! waits until the consumers own every partition between them: until then a
//! sale can sit in an unowned partition, which is what made the first
//! seconds of a load test slow.
//!
//! Then it records what runs where in `state.json` and watches, like a
//! kubelet: a process that exits (broker, Valkey or a service) is started
//! again with the same command (same ports, same data) after a backoff of
//! 0.5 s that doubles, up to 30 s, while it keeps exiting within a minute;
//! three such exits in a row mark it crash-looping. Its restarts and last
//! exit (code or signal) go into the state for `status --local`. A broker
//! or Valkey container is started again the same way (its log kept). On
//! SIGTERM it stops restarting, then stops the services, then the servers.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use bollard::Docker;
use localrun::launcher::{Launcher, PipelineOptions, Service};

use super::container;
use super::servers::{self, Origin, Server, ValkeyServer, blocking};
use super::{LocalOptions, LocalProcess, LocalState, Phase, state_path};
use kube_apply::{Done, Event, GraphNode, Interrupt, Observer, StepReport, StepResult, run_graph};

/// What a local step did: a process or server it started (what a
/// Kubernetes step reports as applied objects).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Started {
    pub what: String,
}

impl Done for Started {
    fn changed(&self) -> bool {
        true
    }
}

/// The file the supervisor appends its engine events to, one JSON per line.
pub fn events_path(dir: &Path) -> PathBuf {
    dir.join("events.jsonl")
}

/// What one step of the local graph does.
#[derive(Debug, Clone, Copy)]
enum Work {
    Broker,
    Valkey,
    Producers,
    Gateway,
    Consumers,
    ConsumerGroup,
}

#[derive(Debug, Clone)]
struct LocalStep {
    name: String,
    depends_on: Vec<String>,
    work: Work,
}

impl GraphNode for LocalStep {
    fn name(&self) -> &str {
        &self.name
    }
    fn depends_on(&self) -> &[String] {
        &self.depends_on
    }
}

/// The graph drawn in the module documentation.
fn steps() -> Vec<LocalStep> {
    let step = |name: &str, depends_on: &[&str], work| LocalStep {
        name: name.into(),
        depends_on: depends_on.iter().map(|d| d.to_string()).collect(),
        work,
    };
    vec![
        step("broker", &[], Work::Broker),
        step("valkey", &[], Work::Valkey),
        step("producers", &["broker"], Work::Producers),
        step("gateway", &["producers"], Work::Gateway),
        step("consumers", &["broker", "valkey"], Work::Consumers),
        step("consumer-group", &["consumers"], Work::ConsumerGroup),
    ]
}

/// What runs; field order is the order things stop in.
#[derive(Default)]
struct Running {
    gateway: Option<Service>,
    producers: Vec<Service>,
    consumers: Vec<Service>,
    valkey: Option<ValkeyServer>,
    broker: Option<Server<localrun::broker::Broker>>,
}

impl Running {
    /// Stops the services, then the servers (removing containers).
    async fn stop(mut self, docker: Option<&Docker>) {
        drop(self.gateway.take());
        self.producers.clear();
        self.consumers.clear();
        if let Some(valkey) = self.valkey.take() {
            valkey.server.stop(docker).await;
        }
        if let Some(broker) = self.broker.take() {
            broker.stop(docker).await;
        }
    }
}

struct Supervisor {
    dir: PathBuf,
    options: LocalOptions,
    docker: Option<Docker>,
    running: Mutex<Running>,
    observer: Arc<dyn Observer>,
    /// Each process's restarts, by name.
    healing: Mutex<std::collections::BTreeMap<String, Healing>>,
}

/// The first wait before a restart; it doubles with each restart that did
/// not last a minute, up to [`MAX_BACKOFF`] (a kubelet does the same).
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A process that ran this long has recovered: its backoff starts over.
const STABLE: Duration = Duration::from_secs(60);
/// Exits in a row, each within [`STABLE`] of starting, that make a process
/// crash-looping.
const CRASH_LOOP_EXITS: u32 = 3;

/// A process's restart history.
struct Healing {
    started: Instant,
    backoff: Duration,
    /// When the next restart is due (it exited and waits).
    due: Option<Instant>,
    restarts: u32,
    quick_exits: u32,
    last_exit: Option<String>,
}

impl Healing {
    fn new(now: Instant) -> Healing {
        Healing {
            started: now,
            backoff: FIRST_BACKOFF,
            due: None,
            restarts: 0,
            quick_exits: 0,
            last_exit: None,
        }
    }

    fn crash_looping(&self) -> bool {
        self.quick_exits >= CRASH_LOOP_EXITS
    }
}

impl Running {
    /// The processes bfctl started (not containers, not configured
    /// servers), by name.
    fn children(&mut self) -> Vec<(String, &mut localrun::process::ChildProcess)> {
        let mut children = Vec::new();
        if let Some(Origin::Process(broker)) = self.broker.as_mut().map(|b| &mut b.origin) {
            children.push(("broker".to_string(), broker.process_mut()));
        }
        if let Some(Origin::Process(valkey)) = self.valkey.as_mut().map(|v| &mut v.server.origin) {
            children.push(("valkey".to_string(), valkey.process_mut()));
        }
        for service in self
            .producers
            .iter_mut()
            .chain(self.consumers.iter_mut())
            .chain(self.gateway.iter_mut())
        {
            children.push((service.process.name().to_string(), &mut service.process));
        }
        children
    }
}

impl Supervisor {
    fn running(&self) -> std::sync::MutexGuard<'_, Running> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What starting services needs: the broker's address, and Valkey's
    /// for the consumers (`need_valkey`).
    fn launcher(&self, need_valkey: bool) -> anyhow::Result<Launcher> {
        let running = self.running();
        let broker = running.broker.as_ref().context("the broker is not up")?;
        let (valkey_url, valkey_password) = match &running.valkey {
            Some(valkey) => (valkey.url.clone(), valkey.password.clone()),
            None if need_valkey => anyhow::bail!("Valkey is not up"),
            None => (String::new(), String::new()),
        };
        // tansu holds every fetch for the full wait: poll it with a short one.
        let consumer_args = match broker.origin {
            Origin::Process(_) => localrun::broker::tansu_consumer_args(),
            _ => Vec::new(),
        };
        Ok(Launcher {
            dir: self.dir.clone(),
            bootstrap: broker.address.clone(),
            valkey_url,
            valkey_password,
            options: PipelineOptions {
                producers: self.options.producers,
                consumers: self.options.consumers,
                partitions: self.options.partitions,
                carnet: Some(self.options.carnet.clone()),
                consumer_args,
                start_gateway: true,
                gateway_port: Some(self.options.gateway_port),
            },
            // This very program runs them (`bfctl service NAME`): no cargo,
            // no sources, no build at run time.
            services: localrun::launcher::Services::OneProgram(
                std::env::current_exe().context("locating the bfctl executable")?,
            ),
        })
    }

    fn note(&self, step: &str, message: String) {
        self.observer.event(Event::Note {
            step: step.to_string(),
            message,
        });
    }

    async fn run_step(self: Arc<Self>, step: LocalStep) -> StepReport<Started> {
        let started = Instant::now();
        let result = self.clone().work(&step).await;
        let (result, objects) = match result {
            Ok(objects) => (StepResult::Ready, objects),
            Err(error) => (StepResult::Failed(format!("{error:#}")), Vec::new()),
        };
        StepReport {
            name: step.name,
            result,
            elapsed_ms: started.elapsed().as_millis(),
            objects,
        }
    }

    /// Starts `count` services one after another (`start` makes number
    /// `i`), notes each as it answers and keeps it in `running` (`keep`).
    async fn start_services(
        &self,
        step: &str,
        count: usize,
        need_valkey: bool,
        start: fn(&Launcher, usize) -> anyhow::Result<Service>,
        keep: fn(&mut Running) -> &mut Vec<Service>,
    ) -> anyhow::Result<Vec<Started>> {
        let mut objects = Vec::new();
        for index in 0..count {
            let launcher = self.launcher(need_valkey)?;
            let service = blocking(move || start(&launcher, index)).await?;
            let what = describe(&service);
            self.note(step, format!("{what} answers"));
            keep(&mut self.running()).push(service);
            objects.push(Started { what });
        }
        Ok(objects)
    }

    async fn work(self: Arc<Self>, step: &LocalStep) -> anyhow::Result<Vec<Started>> {
        let name = step.name.clone();
        let note = |message: String| self.note(&name, message);
        let started = |what: String| Started { what };
        match step.work {
            Work::Broker => {
                let broker = servers::start_broker(
                    &self.dir,
                    &self.options.servers,
                    self.options.partitions,
                    self.docker.as_ref(),
                    &note,
                )
                .await?;
                let what = format!("broker at {} ({})", broker.address, broker.source());
                self.running().broker = Some(broker);
                Ok(vec![started(what)])
            }
            Work::Valkey => {
                let valkey = servers::start_valkey(
                    &self.dir,
                    &self.options.servers,
                    self.docker.as_ref(),
                    &note,
                )
                .await?;
                let what = format!(
                    "valkey at {} ({})",
                    valkey.server.address,
                    valkey.server.source()
                );
                self.running().valkey = Some(valkey);
                Ok(vec![started(what)])
            }
            Work::Producers => {
                let count = self.options.producers;
                self.start_services(&name, count, false, Launcher::producer, |r| {
                    &mut r.producers
                })
                .await
            }
            Work::Gateway => {
                let launcher = self.launcher(false)?;
                let ports: Vec<u16> = self.running().producers.iter().map(|p| p.port).collect();
                note(format!(
                    "starting in front of {} producers, waiting for /readyz",
                    ports.len()
                ));
                let gateway = blocking(move || launcher.gateway(&ports)).await?;
                let what = describe(&gateway);
                self.running().gateway = Some(gateway);
                Ok(vec![started(what)])
            }
            Work::Consumers => {
                let count = self.options.consumers;
                self.start_services(&name, count, true, Launcher::consumer, |r| &mut r.consumers)
                    .await
            }
            Work::ConsumerGroup => {
                let ports: Vec<(String, u16)> = self
                    .running()
                    .consumers
                    .iter()
                    .map(|c| (c.process.name().to_string(), c.metrics_port))
                    .collect();
                let partitions = self.options.partitions;
                let observer = self.observer.clone();
                blocking(move || wait_for_stable_group(&ports, partitions, observer.as_ref()))
                    .await?;
                Ok(Vec::new())
            }
        }
    }

    /// What `state.json` lists.
    fn processes(&self) -> Vec<LocalProcess> {
        let running = self.running();
        let mut processes = Vec::new();
        if let Some(broker) = &running.broker {
            processes.push(server_entry("broker", broker, broker_pid(broker)));
        }
        if let Some(valkey) = &running.valkey {
            processes.push(server_entry(
                "valkey",
                &valkey.server,
                match &valkey.server.origin {
                    Origin::Process(process) => process.process().pid().unwrap_or(0),
                    _ => 0,
                },
            ));
        }
        for service in running
            .producers
            .iter()
            .chain(&running.gateway)
            .chain(&running.consumers)
        {
            let name = service.process.name().to_string();
            processes.push(LocalProcess {
                address: if service.port == 0 {
                    String::new()
                } else {
                    format!("127.0.0.1:{}", service.port)
                },
                health_url: Some(format!("http://127.0.0.1:{}/healthz", service.metrics_port)),
                pid: service.process.pid().unwrap_or(0),
                log: service.process.log_path().to_path_buf(),
                exited: false,
                source: "process".into(),
                container: None,
                name,
                restarts: 0,
                last_exit: None,
                crash_looping: false,
            });
        }
        processes
    }
}

fn broker_pid(broker: &Server<localrun::broker::Broker>) -> u32 {
    match &broker.origin {
        Origin::Process(process) => process.process().pid().unwrap_or(0),
        _ => 0,
    }
}

fn server_entry<P>(name: &str, server: &Server<P>, pid: u32) -> LocalProcess {
    LocalProcess {
        name: name.into(),
        pid,
        address: server.address.clone(),
        health_url: None,
        log: server.log.clone(),
        exited: false,
        source: server.source().into(),
        container: match &server.origin {
            Origin::Container(container) => Some(container.id.clone()),
            _ => None,
        },
        restarts: 0,
        last_exit: None,
        crash_looping: false,
    }
}

fn describe(service: &Service) -> String {
    format!(
        "{} (pid {})",
        service.process.name(),
        service.process.pid().unwrap_or(0)
    )
}

/// Waits until the consumers' `bf_consumer_assigned_partitions` add up to
/// every partition, each consumer owns at least one (when there are enough
/// partitions), and that has held for a second: the group has settled.
fn wait_for_stable_group(
    consumers: &[(String, u16)],
    partitions: i32,
    observer: &dyn Observer,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut settled_since: Option<Instant> = None;
    let mut last = String::new();
    loop {
        let owned: Vec<i64> = consumers
            .iter()
            .map(|(_, port)| {
                localrun::launcher::http_get(*port, "/metrics")
                    .map(|(_, body)| {
                        localrun::launcher::sum_metric(&body, "bf_consumer_assigned_partitions")
                            as i64
                    })
                    .unwrap_or(-1)
            })
            .collect();
        let total: i64 = owned.iter().filter(|n| **n > 0).sum();
        let everyone = consumers.len() as i64 > partitions as i64 || owned.iter().all(|n| *n > 0);
        let summary = consumers
            .iter()
            .zip(&owned)
            .map(|((name, _), n)| format!("{name}: {n}"))
            .collect::<Vec<_>>()
            .join(", ");
        if summary != last {
            observer.event(Event::Note {
                step: "consumer-group".into(),
                message: format!("partitions owned: {summary} (of {partitions})"),
            });
            last = summary.clone();
            settled_since = None;
        }
        if total == partitions as i64 && everyone {
            let since = *settled_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= Duration::from_secs(1) {
                return Ok(());
            }
        } else {
            settled_since = None;
        }
        if started.elapsed() > Duration::from_secs(120) {
            anyhow::bail!(
                "the consumer group did not settle within 120 s; partitions owned: {summary} (of {partitions})"
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Appends engine events to `events.jsonl`.
struct EventLog {
    file: Mutex<std::fs::File>,
}

impl Observer for EventLog {
    fn event(&self, event: Event) {
        if let Ok(line) = serde_json::to_string(&event) {
            let mut file = self.file.lock().unwrap_or_else(|e| e.into_inner());
            let _ = writeln!(file, "{line}");
            let _ = file.flush();
        }
    }
}

/// Set by SIGTERM/SIGINT.
static STOP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

extern "C" fn request_stop(_: libc::c_int) {
    STOP.store(true, std::sync::atomic::Ordering::SeqCst);
}

fn stop_requested() -> bool {
    STOP.load(std::sync::atomic::Ordering::SeqCst)
}

/// `bfctl local-supervise`: brings the pipeline up, records it, watches it
/// until SIGTERM, then stops it.
pub fn supervise(
    dir: &Path,
    options: LocalOptions,
    beside: Option<BesideHook>,
) -> anyhow::Result<()> {
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
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        // Processes are started from blocking-pool threads, and the kernel
        // sends PR_SET_PDEATHSIG when the *thread* that forked a child
        // exits. Idle blocking threads normally exit after 10 s, which would
        // kill what they started; they must live as long as the supervisor.
        .thread_keep_alive(Duration::from_secs(100 * 365 * 24 * 3600))
        .enable_all()
        .build()
        .context("starting the supervisor's runtime")?;
    runtime.block_on(supervise_async(dir, options, beside))
}

async fn supervise_async(
    dir: &Path,
    options: LocalOptions,
    beside: Option<BesideHook>,
) -> anyhow::Result<()> {
    let supervisor_pid = std::process::id();
    let mut state = LocalState {
        phase: Phase::Starting,
        error: None,
        supervisor_pid,
        options: options.clone(),
        gateway_url: String::new(),
        dashboard_url: String::new(),
        kafka_bootstrap: String::new(),
        valkey_url: String::new(),
        valkey_password: String::new(),
        processes: Vec::new(),
    };
    state.save(dir)?;
    let events = std::fs::File::create(events_path(dir))
        .with_context(|| format!("creating {}", events_path(dir).display()))?;
    let observer: Arc<dyn Observer> = Arc::new(EventLog {
        file: Mutex::new(events),
    });
    let docker = servers::docker_for(&options.servers, &|message| {
        observer.event(Event::Note {
            step: "broker".into(),
            message,
        })
    })
    .await;
    let supervisor = Arc::new(Supervisor {
        dir: dir.to_path_buf(),
        options,
        docker,
        running: Mutex::new(Running::default()),
        observer: observer.clone(),
        healing: Mutex::new(std::collections::BTreeMap::new()),
    });

    // SIGTERM during start-up: stop starting new steps.
    let (trigger, interrupt) = Interrupt::new();
    tokio::spawn(async move {
        while !stop_requested() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let _ = trigger.send(true);
    });
    let graph = steps();
    let outcome = run_graph(&graph, observer.clone(), interrupt, |step| {
        supervisor.clone().run_step(step)
    })
    .await?;
    let failures: Vec<String> = outcome
        .steps
        .iter()
        .filter_map(|step| match &step.result {
            StepResult::Failed(error) => Some(format!("{}: {error}", step.name)),
            _ => None,
        })
        .collect();
    if outcome.interrupted || !failures.is_empty() {
        let running = std::mem::take(&mut *supervisor.running());
        running.stop(supervisor.docker.as_ref()).await;
        state.phase = Phase::Failed;
        state.error = Some(if failures.is_empty() {
            "stopped while starting".into()
        } else {
            failures.join("; ")
        });
        state.save(dir)?;
        anyhow::bail!("{}", state.error.clone().unwrap_or_default());
    }

    {
        let running = supervisor.running();
        let gateway = running.gateway.as_ref().context("no gateway after start")?;
        state.gateway_url = format!("http://127.0.0.1:{}", gateway.port);
        state.kafka_bootstrap = running
            .broker
            .as_ref()
            .map(|b| b.address.clone())
            .unwrap_or_default();
        if let Some(valkey) = &running.valkey {
            state.valkey_url = valkey.url.clone();
            state.valkey_password = valkey.password.clone();
        }
    }
    state.processes = supervisor.processes();
    if let Some(beside) = beside {
        match beside(&state, stopping()).await {
            Ok(url) => state.dashboard_url = url,
            // The pipeline runs all the same; `up` says why there is no page.
            Err(error) => supervisor.note("dashboard", format!("no dashboard: {error:#}")),
        }
    }
    state.phase = Phase::Ready;
    state.save(dir)?;
    crate::note!(
        "supervisor {supervisor_pid}: ready, gateway at {}",
        state.gateway_url
    );

    while !stop_requested() {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if watch(&supervisor, &mut state).await {
            state.save(dir)?;
        }
    }
    crate::note!("supervisor {supervisor_pid}: stopping");
    let running = std::mem::take(&mut *supervisor.running());
    running.stop(supervisor.docker.as_ref()).await;
    std::fs::remove_file(state_path(dir)).ok();
    Ok(())
}

/// What the supervisor serves beside a ready pipeline (the live
/// dashboard, wired in by the command layer): given the state and a future
/// that completes when the supervisor stops, it starts serving and returns
/// its address.
pub type BesideHook = Box<
    dyn FnOnce(
            &LocalState,
            std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
        ) -> std::pin::Pin<
            Box<dyn std::future::Future<Output = anyhow::Result<String>> + Send>,
        > + Send,
>;

/// Completes when the supervisor is asked to stop.
fn stopping() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
    Box::pin(async {
        while !stop_requested() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
}

/// What one look at a process or container means for it.
enum Decision {
    Nothing,
    /// It has just exited: noted, a restart scheduled.
    Exited,
    /// Its restart is due.
    Restart,
}

impl Healing {
    /// Decides on what was seen (`exit`: how it ended, None while it runs).
    fn look(&mut self, exit: Option<String>, now: Instant) -> Decision {
        match (exit, self.due) {
            (None, _) => {
                if now.saturating_duration_since(self.started) >= STABLE
                    && self.backoff != FIRST_BACKOFF
                {
                    self.backoff = FIRST_BACKOFF;
                    self.quick_exits = 0;
                }
                Decision::Nothing
            }
            (Some(exit), None) => {
                self.quick_exits = if now.saturating_duration_since(self.started) < STABLE {
                    self.quick_exits + 1
                } else {
                    1
                };
                self.due = Some(now + self.backoff);
                self.last_exit = Some(exit);
                Decision::Exited
            }
            (Some(_), Some(due)) if now >= due => Decision::Restart,
            (Some(_), Some(_)) => Decision::Nothing,
        }
    }

    /// It was started again.
    fn restarted(&mut self, now: Instant) {
        self.restarts += 1;
        self.started = now;
        self.due = None;
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
    }

    /// Its restart failed: try again after the same wait.
    fn retry(&mut self, now: Instant) {
        self.due = Some(now + self.backoff);
    }

    /// What `state.json` says of it.
    fn record(&self, entry: &mut LocalProcess, running: bool) {
        entry.exited = !running;
        entry.restarts = self.restarts;
        entry.last_exit = self.last_exit.clone();
        entry.crash_looping = self.crash_looping();
    }
}

/// Heals what exited since the last look, like a kubelet: a process or a
/// container is started again (the same command: same ports, same data)
/// after a backoff that doubles while it keeps failing within a minute;
/// three such exits in a row make it crash-looping (it is still
/// restarted). True when the state changed.
async fn watch(supervisor: &Supervisor, state: &mut LocalState) -> bool {
    let now = Instant::now();
    let mut changed = false;
    {
        let mut running = supervisor.running();
        let mut healing = supervisor.healing.lock().unwrap_or_else(|e| e.into_inner());
        for (name, child) in running.children() {
            let heal = healing
                .entry(name.clone())
                .or_insert_with(|| Healing::new(now));
            let Some(entry) = state.processes.iter_mut().find(|p| p.name == name) else {
                continue;
            };
            match heal.look(child.exit(), now) {
                Decision::Nothing => continue,
                Decision::Exited => {
                    crate::note!(
                        "supervisor: {name} exited ({}); restarting in {:.1} s",
                        heal.last_exit.as_deref().unwrap_or(""),
                        heal.backoff.as_secs_f64()
                    );
                    heal.record(entry, false);
                }
                Decision::Restart => match child.restart() {
                    Ok(()) => {
                        heal.restarted(now);
                        entry.pid = child.pid().unwrap_or(0);
                        heal.record(entry, true);
                        crate::note!("supervisor: {name} restarted (pid {})", entry.pid);
                    }
                    Err(error) => {
                        heal.retry(now);
                        crate::note!("supervisor: restarting {name} failed: {error:#}");
                    }
                },
            }
            changed = true;
        }
    }
    let Some(docker) = &supervisor.docker else {
        return changed;
    };
    let containers: Vec<(String, String)> = state
        .processes
        .iter()
        .filter_map(|p| p.container.clone().map(|id| (p.name.clone(), id)))
        .collect();
    for (name, id) in containers {
        let exit = container::exit_of(docker, &id).await;
        let decision = {
            let mut healing = supervisor.healing.lock().unwrap_or_else(|e| e.into_inner());
            healing
                .entry(name.clone())
                .or_insert_with(|| Healing::new(now))
                .look(exit, now)
        };
        let Some(entry) = state.processes.iter_mut().find(|p| p.name == name) else {
            continue;
        };
        match decision {
            Decision::Nothing => continue,
            Decision::Exited => {
                // Keep its output where status looks for the log.
                let tail = container::log_tail(docker, &id, 200).await;
                if let Some(parent) = entry.log.parent() {
                    let _ = std::fs::create_dir_all(parent);
                    let _ = std::fs::write(&entry.log, tail);
                }
                let healing = supervisor.healing.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(heal) = healing.get(&name) {
                    crate::note!("supervisor: container {name} exited; restarting it");
                    heal.record(entry, false);
                }
            }
            Decision::Restart => {
                let started = container::start(docker, &id).await;
                let mut healing = supervisor.healing.lock().unwrap_or_else(|e| e.into_inner());
                let Some(heal) = healing.get_mut(&name) else {
                    continue;
                };
                match started {
                    Ok(()) => {
                        heal.restarted(now);
                        heal.record(entry, true);
                        crate::note!("supervisor: container {name} started again");
                    }
                    Err(error) => {
                        heal.retry(now);
                        crate::note!("supervisor: {error:#}");
                    }
                }
            }
        }
        changed = true;
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restarts_back_off_doubling_crash_loop_and_start_over_after_a_stable_minute() {
        let start = Instant::now();
        let at = |millis: u64| start + Duration::from_millis(millis);
        let mut heal = Healing::new(start);
        assert!(matches!(heal.look(None, at(100)), Decision::Nothing));
        assert!(matches!(
            heal.look(Some("exit code 1".into()), at(200)),
            Decision::Exited
        ));
        assert!(matches!(
            heal.look(Some("exit code 1".into()), at(600)),
            Decision::Nothing
        ));
        assert!(matches!(
            heal.look(Some("exit code 1".into()), at(700)),
            Decision::Restart
        ));
        heal.restarted(at(700));
        assert_eq!((heal.restarts, heal.backoff), (1, Duration::from_secs(1)));
        // Two more quick exits: crash-looping, the wait doubling each time.
        let mut now = 700;
        for expected in [2u64, 4] {
            now += 100;
            assert!(matches!(
                heal.look(Some("killed".into()), at(now)),
                Decision::Exited
            ));
            now += expected * 1000 / 2;
            assert!(matches!(
                heal.look(Some("killed".into()), at(now)),
                Decision::Restart
            ));
            heal.restarted(at(now));
            assert_eq!(heal.backoff, Duration::from_secs(expected));
        }
        assert!(heal.crash_looping(), "{} quick exits", heal.quick_exits);
        // Up for a minute: the backoff and the count start over.
        assert!(matches!(
            heal.look(None, at(now + 61_000)),
            Decision::Nothing
        ));
        assert_eq!(heal.backoff, FIRST_BACKOFF);
        assert!(!heal.crash_looping());
        // The wait never passes 30 s.
        for _ in 0..10 {
            heal.restarted(at(now));
        }
        assert_eq!(heal.backoff, MAX_BACKOFF);
    }

    #[test]
    fn the_local_graph_is_valid_and_ordered_as_documented() {
        let graph = steps();
        kube_apply::check_graph(&graph).unwrap();
        let depends = |name: &str| {
            graph
                .iter()
                .find(|s| s.name == name)
                .map(|s| s.depends_on.clone())
                .unwrap()
        };
        assert!(depends("broker").is_empty() && depends("valkey").is_empty());
        assert_eq!(depends("consumers"), ["broker", "valkey"]);
        assert_eq!(depends("gateway"), ["producers"]);
        assert_eq!(depends("consumer-group"), ["consumers"]);
    }
}
