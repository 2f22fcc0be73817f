//! The apply engine: applies a graph of steps to the cluster, each step once
//! its dependencies are ready, independent steps in parallel, and waits for
//! every object of a step to be ready before its dependants start.
//!
//! * Every object goes through server-side apply as field manager `bfctl`;
//!   a conflict with another manager stops the step and names the object
//!   (`--force` takes ownership of the fields). An object that already says
//!   exactly what bfctl would apply is not applied again. One that is not
//!   this install's is never taken: see [`crate::inventory`].
//! * An object being deleted (a leftover of a teardown, or held by a
//!   finalizer) is waited out, then created again; if its finalizer's
//!   controller is gone the failure names it and the way out.
//! * After a CustomResourceDefinition is applied the step waits for it to be
//!   Established and refreshes discovery, so the kinds it defines can be
//!   applied next.
//! * Each object is waited on with its own timeout; a timeout or failure names
//!   the object and the last thing its controller said.
//! * An interrupt (Ctrl-C) is honoured between objects: an apply request is
//!   never cut in half, no new object is started, and because every apply is
//!   idempotent a rerun of `bfctl up` finishes the job.
//! * When every step succeeded, objects this install applied in an earlier
//!   run that are no longer rendered are pruned, with the same safety rules
//!   as a teardown (see [`crate::inventory::why_keep`]); other installs are
//!   named, never touched.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::cluster::{ApplyOutcome, Cluster, ObjectError, ObjectRef};
use crate::inventory::{self, Owner};
use crate::readiness::{self, Readiness};

/// One node of the graph: objects applied together and waited on together.
#[derive(Debug, Clone)]
pub struct Step {
    pub name: String,
    pub depends_on: Vec<String>,
    pub objects: Vec<Value>,
}

#[derive(Debug, Clone)]
pub struct UpOptions {
    /// The install the objects belong to (see [`crate::inventory`]).
    pub install: String,
    /// Take ownership of fields another manager owns.
    pub force: bool,
    /// How long each object may take to become ready.
    pub timeout: Duration,
    /// How often statuses are read while waiting.
    pub poll: Duration,
}

impl Default for UpOptions {
    fn default() -> Self {
        UpOptions {
            install: "blackfriday".into(),
            force: false,
            timeout: Duration::from_secs(600),
            poll: Duration::from_secs(2),
        }
    }
}

/// What the engine tells its observer as it goes. Serializable, so that the
/// local pipeline's detached supervisor can hand its events to the `up`
/// that waits for it.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
#[serde(tag = "event", rename_all = "camelCase")]
pub enum Event {
    StepStarted {
        step: String,
    },
    Applied {
        step: String,
        object: ObjectRef,
        outcome: ApplyOutcome,
    },
    Waiting {
        step: String,
        object: ObjectRef,
        message: String,
    },
    /// What a step is doing, when it is not about one object (a local
    /// process starting, a consumer group settling).
    Note {
        step: String,
        message: String,
    },
    StepReady {
        step: String,
        elapsed: Duration,
        changed: usize,
    },
    StepFailed {
        step: String,
        error: String,
    },
    StepSkipped {
        step: String,
        reason: String,
    },
    /// Stopped by Ctrl-C while it ran.
    StepInterrupted {
        step: String,
    },
    Deleted {
        object: ObjectRef,
    },
}

/// Receives [`Event`]s (the progress display, or a test's recorder).
pub trait Observer: Send + Sync {
    fn event(&self, event: Event);
}

/// An observer that ignores everything.
pub struct Quiet;

impl Observer for Quiet {
    fn event(&self, _event: Event) {}
}

/// Set once the user interrupts; checked between objects.
#[derive(Clone)]
pub struct Interrupt(watch::Receiver<bool>);

impl Interrupt {
    /// An interrupt that never fires, and its trigger.
    pub fn new() -> (watch::Sender<bool>, Interrupt) {
        let (sender, receiver) = watch::channel(false);
        (sender, Interrupt(receiver))
    }

    /// An interrupt fired by Ctrl-C.
    pub fn on_ctrl_c() -> Interrupt {
        let (sender, interrupt) = Interrupt::new();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!(
                    "\ninterrupt: finishing the requests in flight, starting nothing new (Ctrl-C again to quit at once)"
                );
                let _ = sender.send(true);
                if tokio::signal::ctrl_c().await.is_ok() {
                    std::process::exit(130);
                }
            }
        });
        interrupt
    }

    pub fn fired(&self) -> bool {
        *self.0.borrow()
    }

    async fn wait(&mut self) {
        while !*self.0.borrow() {
            if self.0.changed().await.is_err() {
                // The sender is gone: it can never fire.
                std::future::pending::<()>().await;
            }
        }
    }
}

/// How one step ended.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StepReport {
    pub name: String,
    pub result: StepResult,
    pub elapsed_ms: u128,
    pub objects: Vec<AppliedObject>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AppliedObject {
    pub object: String,
    pub outcome: ApplyOutcome,
    /// Why an object that is not this install's was used as it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "state", content = "message", rename_all = "lowercase")]
pub enum StepResult {
    Ready,
    Failed(String),
    Skipped(String),
    Interrupted,
}

/// How a whole `up` ended.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UpReport {
    pub install: String,
    pub steps: Vec<StepReport>,
    pub pruned: Vec<String>,
    /// Objects prune left in place, with why (another install uses them).
    pub kept: Vec<String>,
    /// Other bfctl installs in the cluster, left alone: name → objects.
    pub other_installs: BTreeMap<String, OtherInstall>,
    pub interrupted: bool,
    pub elapsed_ms: u128,
}

#[derive(Debug, Clone, Serialize)]
pub struct OtherInstall {
    pub objects: usize,
    pub namespaces: Vec<String>,
}

impl UpReport {
    pub fn succeeded(&self) -> bool {
        !self.interrupted
            && self
                .steps
                .iter()
                .all(|step| matches!(step.result, StepResult::Ready))
    }

    /// True when no object changed: the "nothing to do" run.
    pub fn unchanged(&self) -> bool {
        self.succeeded()
            && self.pruned.is_empty()
            && self
                .steps
                .iter()
                .all(|step| step.objects.iter().all(|o| !o.outcome.changed()))
    }

    /// Steps Ctrl-C stopped while they ran.
    pub fn interrupted_steps(&self) -> Vec<&str> {
        self.steps
            .iter()
            .filter(|step| matches!(step.result, StepResult::Interrupted))
            .map(|step| step.name.as_str())
            .collect()
    }

    /// Objects used as they are because they are not this install's.
    pub fn used_not_owned(&self) -> Vec<&AppliedObject> {
        self.steps
            .iter()
            .flat_map(|step| step.objects.iter())
            .filter(|o| o.outcome == ApplyOutcome::NotOwned)
            .collect()
    }

    /// The failures, one line each, for the final error.
    pub fn failures(&self) -> Vec<String> {
        self.steps
            .iter()
            .filter_map(|step| match &step.result {
                StepResult::Failed(message) => Some(format!("{}: {message}", step.name)),
                _ => None,
            })
            .collect()
    }
}

/// A node of a dependency graph: a name, and the names it waits for. The
/// cluster's [`Step`]s and the local pipeline's steps are both run by
/// [`run_graph`].
pub trait GraphNode: Clone + Send + Sync + 'static {
    fn name(&self) -> &str;
    fn depends_on(&self) -> &[String];
}

impl GraphNode for Step {
    fn name(&self) -> &str {
        &self.name
    }
    fn depends_on(&self) -> &[String] {
        &self.depends_on
    }
}

/// Checks the graph: unique names, known dependencies, no cycles.
pub fn check_graph<N: GraphNode>(steps: &[N]) -> anyhow::Result<()> {
    let names: BTreeSet<&str> = steps.iter().map(|s| s.name()).collect();
    if names.len() != steps.len() {
        bail!("step names must be unique");
    }
    for step in steps {
        for dependency in step.depends_on() {
            if !names.contains(dependency.as_str()) {
                bail!("step {} depends on unknown step {dependency}", step.name());
            }
        }
    }
    let mut done: BTreeSet<&str> = BTreeSet::new();
    while done.len() < steps.len() {
        let before = done.len();
        for step in steps {
            if step.depends_on().iter().all(|d| done.contains(d.as_str())) {
                done.insert(step.name());
            }
        }
        if done.len() == before {
            bail!("the steps form a dependency cycle");
        }
    }
    Ok(())
}

/// How a graph run ended: one report per step, in the steps' order.
pub struct GraphOutcome {
    pub steps: Vec<StepReport>,
    pub interrupted: bool,
}

/// Runs every step once the steps it depends on are ready, independent
/// steps in parallel, and tells the observer as each starts and ends. After
/// a failure the steps already running finish and nothing new starts; the
/// steps never started are reported as skipped, with what they waited for.
pub async fn run_graph<N, F, Fut>(
    steps: &[N],
    observer: Arc<dyn Observer>,
    interrupt: Interrupt,
    run: F,
) -> anyhow::Result<GraphOutcome>
where
    N: GraphNode,
    F: Fn(N) -> Fut,
    Fut: std::future::Future<Output = StepReport> + Send + 'static,
{
    check_graph(steps)?;
    let mut reports: BTreeMap<String, StepReport> = BTreeMap::new();
    let mut running = JoinSet::new();
    let mut launched: BTreeSet<String> = BTreeSet::new();
    let mut ready: BTreeSet<String> = BTreeSet::new();
    let mut stop_launching = false;
    loop {
        if !stop_launching && !interrupt.fired() {
            for step in steps {
                if !launched.contains(step.name())
                    && step.depends_on().iter().all(|d| ready.contains(d))
                {
                    launched.insert(step.name().to_string());
                    observer.event(Event::StepStarted {
                        step: step.name().to_string(),
                    });
                    running.spawn(run(step.clone()));
                }
            }
        }
        let Some(joined) = running.join_next().await else {
            break;
        };
        let report = joined?;
        match &report.result {
            StepResult::Ready => {
                observer.event(Event::StepReady {
                    step: report.name.clone(),
                    elapsed: Duration::from_millis(report.elapsed_ms as u64),
                    changed: report
                        .objects
                        .iter()
                        .filter(|o| o.outcome.changed())
                        .count(),
                });
                ready.insert(report.name.clone());
            }
            StepResult::Failed(error) => {
                observer.event(Event::StepFailed {
                    step: report.name.clone(),
                    error: error.clone(),
                });
                // Steps already running finish; nothing new starts.
                stop_launching = true;
            }
            StepResult::Interrupted => {
                observer.event(Event::StepInterrupted {
                    step: report.name.clone(),
                });
                stop_launching = true;
            }
            StepResult::Skipped(_) => stop_launching = true,
        }
        reports.insert(report.name.clone(), report);
    }

    let interrupted = interrupt.fired();
    for step in steps {
        if !reports.contains_key(step.name()) {
            let reason = if interrupted {
                "interrupted before it started".to_string()
            } else {
                let blocked: Vec<&str> = step
                    .depends_on()
                    .iter()
                    .filter(|d| !ready.contains(*d))
                    .map(String::as_str)
                    .collect();
                if blocked.is_empty() {
                    "an earlier step failed".to_string()
                } else {
                    format!("waits for {}", blocked.join(", "))
                }
            };
            observer.event(Event::StepSkipped {
                step: step.name().to_string(),
                reason: reason.clone(),
            });
            reports.insert(
                step.name().to_string(),
                StepReport {
                    name: step.name().to_string(),
                    result: StepResult::Skipped(reason),
                    elapsed_ms: 0,
                    objects: Vec::new(),
                },
            );
        }
    }
    Ok(GraphOutcome {
        steps: steps
            .iter()
            .filter_map(|step| reports.remove(step.name()))
            .collect(),
        interrupted,
    })
}

/// Applies the steps in dependency order and waits for each to be ready;
/// prunes what this install no longer renders when all succeeded, and names
/// the other installs it found (never touching them).
pub async fn up(
    cluster: &Cluster,
    steps: Vec<Step>,
    options: &UpOptions,
    observer: Arc<dyn Observer>,
    interrupt: Interrupt,
) -> anyhow::Result<UpReport> {
    check_graph(&steps)?;
    let started = Instant::now();
    let rendered: BTreeSet<ObjectRef> = steps
        .iter()
        .flat_map(|step| step.objects.iter())
        .map(|object| ObjectRef::of(object).map(|r| with_namespace(r, cluster)))
        .collect::<anyhow::Result<_>>()?;

    let outcome = run_graph(&steps, observer.clone(), interrupt.clone(), |step| {
        let (cluster, options, observer, interrupt) = (
            cluster.clone(),
            options.clone(),
            observer.clone(),
            interrupt.clone(),
        );
        async move { run_step(&cluster, &step, &options, observer, interrupt).await }
    })
    .await?;
    let mut report = UpReport {
        install: options.install.clone(),
        steps: outcome.steps,
        pruned: Vec::new(),
        kept: Vec::new(),
        other_installs: BTreeMap::new(),
        interrupted: outcome.interrupted,
        elapsed_ms: 0,
    };
    if report.succeeded() {
        let scanned = inventory::scan(cluster).await?;
        let rendered_keys: BTreeSet<_> = rendered.iter().map(inventory::key).collect();
        for owned in &scanned {
            if owned.install() != options.install
                || rendered_keys.contains(&inventory::key(&owned.object))
                || owned.component() == inventory::RECORD_COMPONENT
                || owned.terminating()
            {
                continue;
            }
            if let Some(reason) =
                inventory::why_keep(cluster, &owned.object, &owned.live, &options.install).await?
            {
                report.kept.push(format!("{}: {reason}", owned.object));
                continue;
            }
            if cluster.delete(&owned.object).await? {
                observer.event(Event::Deleted {
                    object: owned.object.clone(),
                });
                report.pruned.push(owned.object.to_string());
            }
        }
        for (name, (objects, namespaces)) in inventory::other_installs(&scanned, &options.install) {
            report.other_installs.insert(
                name,
                OtherInstall {
                    objects,
                    namespaces: namespaces.into_iter().collect(),
                },
            );
        }
    }
    report.elapsed_ms = started.elapsed().as_millis();
    Ok(report)
}

/// Fills in the default namespace for namespaced objects rendered without one.
pub fn with_namespace(object: ObjectRef, cluster: &Cluster) -> ObjectRef {
    if object.namespace.is_none() && !is_cluster_scoped(&object) {
        ObjectRef {
            namespace: Some(cluster.default_namespace().to_string()),
            ..object
        }
    } else {
        object
    }
}

/// Kinds bfctl renders that live outside namespaces.
pub fn is_cluster_scoped(object: &ObjectRef) -> bool {
    matches!(
        (object.group(), object.kind.as_str()),
        ("", "Namespace" | "PersistentVolume")
            | ("apiextensions.k8s.io", "CustomResourceDefinition")
            | (
                "rbac.authorization.k8s.io",
                "ClusterRole" | "ClusterRoleBinding"
            )
            | ("admissionregistration.k8s.io", _)
            | ("scheduling.k8s.io", "PriorityClass")
            | ("gateway.networking.k8s.io", "GatewayClass")
            | ("networking.k8s.io", "IngressClass")
    )
}

async fn run_step(
    cluster: &Cluster,
    step: &Step,
    options: &UpOptions,
    observer: Arc<dyn Observer>,
    mut interrupt: Interrupt,
) -> StepReport {
    let started = Instant::now();
    let mut report = StepReport {
        name: step.name.clone(),
        result: StepResult::Ready,
        elapsed_ms: 0,
        objects: Vec::new(),
    };
    let mut to_wait: Vec<ObjectRef> = Vec::new();
    let mut crd_note_said = false;
    for manifest in &step.objects {
        if interrupt.fired() {
            report.result = StepResult::Interrupted;
            break;
        }
        let object = match ObjectRef::of(manifest) {
            Ok(object) => with_namespace(object, cluster),
            Err(error) => {
                report.result = StepResult::Failed(format!("{error:#}"));
                break;
            }
        };
        let applied = match apply_object(
            cluster,
            step,
            &object,
            manifest,
            options,
            observer.as_ref(),
            &mut interrupt,
        )
        .await
        {
            Ok(applied) => applied,
            Err(result) => {
                report.result = result;
                break;
            }
        };
        let outcome = applied.outcome;
        observer.event(Event::Applied {
            step: step.name.clone(),
            object: object.clone(),
            outcome,
        });
        report.objects.push(applied);
        if object.kind == "CustomResourceDefinition" {
            // Later objects (here or in dependants) may be of this kind: wait
            // until it is Established, then make discovery learn it. An
            // unchanged CRD is usually established already (one GET), and
            // discovery is refreshed anyway if a kind turns out unknown. The
            // waits of a step's CRDs are said once, not per CRD.
            if !crd_note_said {
                crd_note_said = true;
                observer.event(Event::Note {
                    step: step.name.clone(),
                    message: "waiting for its CustomResourceDefinitions to be Established".into(),
                });
            }
            if let Err(error) =
                wait_ready(cluster, step, &object, options, None, &mut interrupt).await
            {
                report.result = error;
                break;
            }
            if outcome.changed()
                && let Err(error) = cluster.refresh_discovery().await
            {
                report.result = StepResult::Failed(format!("{error:#}"));
                break;
            }
        } else if readiness::has_rule(&object) {
            to_wait.push(object);
        }
    }
    if matches!(report.result, StepResult::Ready) {
        // The objects of a step are waited on in parallel.
        let mut waits = JoinSet::new();
        for object in to_wait {
            let (cluster, step, options, observer, mut interrupt) = (
                cluster.clone(),
                step.clone(),
                options.clone(),
                observer.clone(),
                interrupt.clone(),
            );
            waits.spawn(async move {
                wait_ready(
                    &cluster,
                    &step,
                    &object,
                    &options,
                    Some(observer.as_ref()),
                    &mut interrupt,
                )
                .await
            });
        }
        while let Some(joined) = waits.join_next().await {
            let result = joined
                .unwrap_or_else(|error| Err(StepResult::Failed(format!("wait task: {error}"))));
            if let Err(failure) = result
                && matches!(report.result, StepResult::Ready)
            {
                report.result = failure;
            }
        }
    }
    report.elapsed_ms = started.elapsed().as_millis();
    report
}

/// Applies one object of this install outside the graph (the install's
/// record): skipped when it already holds the manifest.
pub async fn apply_owned(
    cluster: &Cluster,
    manifest: &Value,
    install: &str,
) -> Result<ApplyOutcome, ObjectError> {
    let object = with_namespace(
        ObjectRef::of(manifest).map_err(|source| ObjectError::Api {
            object: ObjectRef {
                api_version: String::new(),
                kind: "object".into(),
                namespace: None,
                name: "(unnamed)".into(),
            },
            source,
        })?,
        cluster,
    );
    let annotated = inventory::with_digest(manifest);
    let live = cluster.get(&object).await?;
    if let Some(live) = &live
        && inventory::owner(live, install) == Owner::ThisInstall
        && inventory::first_difference(&annotated, live).is_none()
    {
        return Ok(ApplyOutcome::Unchanged);
    }
    cluster.apply(&annotated, false, live.as_ref()).await
}

/// Reads the object, decides by its ownership what to do (see
/// [`crate::inventory`]), waits out a deletion in progress, and applies.
async fn apply_object(
    cluster: &Cluster,
    step: &Step,
    object: &ObjectRef,
    manifest: &Value,
    options: &UpOptions,
    observer: &dyn Observer,
    interrupt: &mut Interrupt,
) -> Result<AppliedObject, StepResult> {
    let failed = |error: ObjectError| StepResult::Failed(error.to_string());
    let mut live = match cluster.get(object).await {
        Ok(live) => live,
        Err(ObjectError::UnknownKind { .. }) => {
            // A CRD applied by another step may have become Established
            // since the last discovery.
            cluster
                .refresh_discovery()
                .await
                .map_err(|error| StepResult::Failed(format!("{object}: {error:#}")))?;
            cluster.get(object).await.map_err(failed)?
        }
        Err(error) => return Err(failed(error)),
    };
    if live
        .as_ref()
        .is_some_and(|l| l.pointer("/metadata/deletionTimestamp").is_some())
    {
        wait_deleted(cluster, step, object, options, observer, interrupt).await?;
        live = None;
    }
    let done = |outcome: ApplyOutcome, note: Option<String>| AppliedObject {
        object: object.to_string(),
        outcome,
        note,
    };
    let annotated = inventory::with_digest(manifest);
    let Some(live) = live else {
        let outcome = cluster
            .apply(&annotated, options.force, None)
            .await
            .map_err(failed)?;
        return Ok(done(outcome, None));
    };
    match inventory::owner(&live, &options.install) {
        Owner::ThisInstall => {
            let digest = inventory::manifest_digest(manifest);
            let recorded = live
                .pointer("/metadata/annotations")
                .and_then(|a| a.get(inventory::APPLIED_ANNOTATION))
                .and_then(Value::as_str);
            if recorded == Some(digest.as_str())
                && inventory::first_difference(&annotated, &live).is_none()
            {
                return Ok(done(ApplyOutcome::Unchanged, None));
            }
            let outcome = cluster
                .apply(&annotated, options.force, Some(&live))
                .await
                .map_err(failed)?;
            Ok(done(outcome, None))
        }
        owner => {
            let whose = owner.describe();
            if object.kind == "CustomResourceDefinition" {
                inventory::crd_compatible(object, manifest, &live).map_err(StepResult::Failed)?;
                return Ok(done(
                    ApplyOutcome::NotOwned,
                    Some(format!(
                        "{whose}; it serves the versions bfctl needs, so it is used as it is"
                    )),
                ));
            }
            let bare = inventory::without_bfctl_marks(manifest);
            match inventory::first_difference(&inventory::without_metadata_marks(manifest), &live) {
                None => Ok(done(
                    ApplyOutcome::NotOwned,
                    Some(format!("{whose}; it already holds what bfctl renders")),
                )),
                Some(_) if options.force => {
                    cluster
                        .apply(&bare, true, Some(&live))
                        .await
                        .map_err(failed)?;
                    Ok(done(
                        ApplyOutcome::NotOwned,
                        Some(format!(
                            "{whose}; --force took the fields bfctl sets, and it stays not this install's (teardown leaves it)"
                        )),
                    ))
                }
                Some(path) => Err(StepResult::Failed(format!(
                    "{object} exists and is not this install's ({whose}); it differs from what bfctl renders at {path}. bfctl will not change it: delete it, change its name, or rerun with --force to take the fields bfctl sets (it then stays not this install's: teardown leaves it)"
                ))),
            }
        }
    }
}

/// Waits until an object that is being deleted is gone, so that it can be
/// created again. A deletion that does not finish names what holds it.
async fn wait_deleted(
    cluster: &Cluster,
    step: &Step,
    object: &ObjectRef,
    options: &UpOptions,
    observer: &dyn Observer,
    interrupt: &mut Interrupt,
) -> Result<(), StepResult> {
    let deadline = Instant::now() + options.timeout;
    let mut interval = backoff_start(options.poll);
    let mut last = String::new();
    loop {
        let live = match cluster.get(object).await {
            Ok(None) => return Ok(()),
            Ok(Some(live)) => live,
            Err(error) => return Err(StepResult::Failed(error.to_string())),
        };
        let blocker = readiness::deletion_blocker(object, &live);
        if blocker != last {
            observer.event(Event::Waiting {
                step: step.name.clone(),
                object: object.clone(),
                message: format!("being deleted ({blocker}); it is created again once gone"),
            });
            last = blocker;
        }
        if Instant::now() >= deadline {
            return Err(StepResult::Failed(format!(
                "{object} is still being deleted after {}s, so it cannot be created again: {last}",
                options.timeout.as_secs_f64()
            )));
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = interrupt.wait() => return Err(StepResult::Interrupted),
        }
        interval = (interval * 2).min(options.poll);
    }
}

/// Polls one object until its rule says ready, it fails, the timeout passes
/// or the user interrupts. Without an observer it waits silently.
async fn wait_ready(
    cluster: &Cluster,
    step: &Step,
    object: &ObjectRef,
    options: &UpOptions,
    observer: Option<&dyn Observer>,
    interrupt: &mut Interrupt,
) -> Result<(), StepResult> {
    let target = readiness::wait_target(object);
    let deadline = Instant::now() + options.timeout;
    let mut last = String::from("not observed yet");
    let mut interval = backoff_start(options.poll);
    loop {
        let state = match cluster.get(&target).await {
            Ok(Some(live)) => readiness::assess(&target, &live),
            Ok(None) => Readiness::Waiting(format!("{} does not exist yet", target.kind)),
            Err(error) => Readiness::Waiting(format!("reading status failed: {error}")),
        };
        match state {
            Readiness::Ready => return Ok(()),
            Readiness::Failed(message) => {
                return Err(StepResult::Failed(format!("{object} failed: {message}")));
            }
            Readiness::Waiting(message) => {
                if message != last {
                    if let Some(observer) = observer {
                        observer.event(Event::Waiting {
                            step: step.name.clone(),
                            object: object.clone(),
                            message: message.clone(),
                        });
                    }
                    last = message;
                }
            }
        }
        if Instant::now() >= deadline {
            return Err(StepResult::Failed(format!(
                "{object} not ready after {}s; last condition: {last}",
                options.timeout.as_secs_f64()
            )));
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = interrupt.wait() => return Err(StepResult::Interrupted),
        }
        interval = (interval * 2).min(options.poll);
    }
}

/// Status polls start fast (most objects are ready within a second of being
/// applied) and back off to `poll`.
pub fn backoff_start(poll: Duration) -> Duration {
    Duration::from_millis(50).min(poll)
}
