//! Applying a graph of Kubernetes objects: each step once its dependencies
//! are ready, independent steps in parallel (see [`crate::graph`]), every
//! object of a step waited on before its dependants start.
//!
//! * Every object goes through server-side apply as the identity's field
//!   manager; a conflict with another manager stops the step and names the
//!   object (`force` takes ownership of the fields). An object that already
//!   says exactly what would be applied is not applied again.
//! * Ownership decides ([`crate::identity`]): this install's objects are
//!   applied; another's, or one that existed before, is never taken. If it
//!   already holds what is rendered it is used as it is (a CRD when it
//!   serves the versions needed); anything else is an error that says whose
//!   it is, and `force` takes the fields but leaves it unlabelled, so a
//!   teardown never deletes it.
//! * An object being deleted (a leftover of a teardown, or held by a
//!   finalizer) is waited out, then created again; if its finalizer's
//!   controller is gone the failure names it and the way out.
//! * After a CustomResourceDefinition is applied the step waits for it to be
//!   Established and refreshes discovery, so the kinds it defines can be
//!   applied next.
//! * Each object is waited on with its own timeout ([`crate::wait`]); a
//!   timeout or failure names the object and the last thing its controller
//!   said.
//! * An interrupt is honoured between objects: an apply request is never cut
//!   in half, no new object is started, and because every apply is
//!   idempotent a rerun finishes the job.
//! * When every step succeeded, what this install applied earlier and no
//!   longer renders is pruned ([`crate::prune`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;
use tokio::task::JoinSet;

use crate::client::{ApplyOutcome, Cluster, ObjectRef, with_namespace};
use crate::error::{Error, Result};
use crate::graph::{
    Done, Event, GraphNode, Interrupt, Observer, StepReport, StepResult, run_graph,
};
use crate::identity::{Owner, first_difference, without_metadata_marks};
use crate::prune::{self, OtherInstall};
use crate::readiness::{self, Readiness};
use crate::wait::{Check, Poll, WaitError, poll_until};

/// One node of the graph: objects applied together and waited on together.
#[derive(Debug, Clone)]
pub struct Step {
    pub name: String,
    pub depends_on: Vec<String>,
    pub objects: Vec<Value>,
}

impl GraphNode for Step {
    fn name(&self) -> &str {
        &self.name
    }
    fn depends_on(&self) -> &[String] {
        &self.depends_on
    }
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

impl UpOptions {
    fn poll(&self) -> Poll {
        Poll {
            timeout: self.timeout,
            every: self.poll,
        }
    }
}

/// What an apply did to one object.
#[derive(Debug, Clone, Serialize)]
pub struct AppliedObject {
    pub object: String,
    pub outcome: ApplyOutcome,
    /// Why an object that is not this install's was used as it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Done for AppliedObject {
    fn changed(&self) -> bool {
        self.outcome.changed()
    }
}

/// How a whole `up` ended.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UpReport {
    pub install: String,
    pub steps: Vec<StepReport<AppliedObject>>,
    pub pruned: Vec<String>,
    /// Objects prune left in place, with why (another install uses them).
    pub kept: Vec<String>,
    /// Other installs of the same tool in the cluster, left alone: name → objects.
    pub other_installs: BTreeMap<String, OtherInstall>,
    pub interrupted: bool,
    pub elapsed_ms: u128,
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

/// Applies the steps in dependency order and waits for each to be ready;
/// prunes what this install no longer renders when all succeeded, and names
/// the other installs it found (never touching them).
pub async fn up(
    cluster: &Cluster,
    steps: Vec<Step>,
    options: &UpOptions,
    observer: Arc<dyn Observer>,
    interrupt: Interrupt,
) -> Result<UpReport> {
    crate::graph::check_graph(&steps)?;
    let started = Instant::now();
    let rendered: BTreeSet<ObjectRef> = steps
        .iter()
        .flat_map(|step| step.objects.iter())
        .map(|object| ObjectRef::of(object).map(|r| with_namespace(r, cluster)))
        .collect::<Result<_, _>>()?;

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
        let pruned = prune::prune(cluster, &rendered, &options.install, observer.as_ref()).await?;
        report.pruned = pruned.deleted;
        report.kept = pruned.kept;
        report.other_installs = pruned.other_installs;
    }
    report.elapsed_ms = started.elapsed().as_millis();
    Ok(report)
}

async fn run_step(
    cluster: &Cluster,
    step: &Step,
    options: &UpOptions,
    observer: Arc<dyn Observer>,
    mut interrupt: Interrupt,
) -> StepReport<AppliedObject> {
    let started = Instant::now();
    let mut report = StepReport::started(&step.name);
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
                report.result = StepResult::Failed(error.to_string());
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
                report.result = StepResult::Failed(error.to_string());
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
) -> Result<ApplyOutcome> {
    let identity = cluster.identity();
    let object = with_namespace(ObjectRef::of(manifest)?, cluster);
    let annotated = identity.with_digest(manifest);
    let live = cluster.get(&object).await?;
    if let Some(live) = &live
        && identity.owner(live, install) == Owner::ThisInstall
        && first_difference(&annotated, live).is_none()
    {
        return Ok(ApplyOutcome::Unchanged);
    }
    cluster.apply(&annotated, false, live.as_ref()).await
}

/// Reads the object, decides by its ownership what to do (see
/// [`crate::identity`]), waits out a deletion in progress, and applies.
async fn apply_object(
    cluster: &Cluster,
    step: &Step,
    object: &ObjectRef,
    manifest: &Value,
    options: &UpOptions,
    observer: &dyn Observer,
    interrupt: &mut Interrupt,
) -> Result<AppliedObject, StepResult> {
    let identity = cluster.identity();
    let manager = identity.manager;
    let failed = |error: Error| StepResult::Failed(error.to_string());
    let mut live = match cluster.get(object).await {
        Ok(live) => live,
        Err(Error::UnknownKind { .. }) => {
            // A CRD applied by another step may have become Established
            // since the last discovery.
            cluster
                .refresh_discovery()
                .await
                .map_err(|error| StepResult::Failed(format!("{object}: {error}")))?;
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
    let annotated = identity.with_digest(manifest);
    let Some(live) = live else {
        let outcome = cluster
            .apply(&annotated, options.force, None)
            .await
            .map_err(failed)?;
        return Ok(done(outcome, None));
    };
    match identity.owner(&live, &options.install) {
        Owner::ThisInstall => {
            let digest = crate::identity::manifest_digest(manifest);
            if identity.recorded_digest(&live) == Some(digest.as_str())
                && first_difference(&annotated, &live).is_none()
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
            let whose = identity.describe(&owner);
            if object.kind == "CustomResourceDefinition" {
                identity
                    .crd_compatible(object, manifest, &live)
                    .map_err(StepResult::Failed)?;
                return Ok(done(
                    ApplyOutcome::NotOwned,
                    Some(format!(
                        "{whose}; it serves the versions {manager} needs, so it is used as it is"
                    )),
                ));
            }
            let bare = identity.without_marks(manifest);
            match first_difference(&without_metadata_marks(manifest), &live) {
                None => Ok(done(
                    ApplyOutcome::NotOwned,
                    Some(format!("{whose}; it already holds what {manager} renders")),
                )),
                Some(_) if options.force => {
                    cluster
                        .apply(&bare, true, Some(&live))
                        .await
                        .map_err(failed)?;
                    Ok(done(
                        ApplyOutcome::NotOwned,
                        Some(format!(
                            "{whose}; --force took the fields {manager} sets, and it stays not this install's (teardown leaves it)"
                        )),
                    ))
                }
                Some(path) => Err(StepResult::Failed(format!(
                    "{object} exists and is not this install's ({whose}); it differs from what {manager} renders at {path}. {manager} will not change it: delete it, change its name, or rerun with --force to take the fields {manager} sets (it then stays not this install's: teardown leaves it)"
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
    let way_out = cluster.identity().finalizer_way_out;
    let waited = poll_until(
        options.poll(),
        Some(interrupt),
        |blocker| {
            observer.event(Event::Waiting {
                step: step.name.clone(),
                object: object.clone(),
                message: format!("being deleted ({blocker}); it is created again once gone"),
            })
        },
        || async move {
            match cluster.get(object).await {
                Ok(None) => Check::Done(()),
                Ok(Some(live)) => {
                    Check::Waiting(readiness::deletion_blocker(object, &live, way_out))
                }
                Err(error) => Check::Failed(error.to_string()),
            }
        },
    )
    .await;
    waited.map_err(|error| match error {
        WaitError::Failed(message) => StepResult::Failed(message),
        WaitError::Interrupted => StepResult::Interrupted,
        WaitError::TimedOut { last } => StepResult::Failed(format!(
            "{object} is still being deleted after {}s, so it cannot be created again: {last}",
            options.timeout.as_secs_f64()
        )),
    })
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
    let target = &target;
    let waited = poll_until(
        options.poll(),
        Some(interrupt),
        |message| {
            if let Some(observer) = observer {
                observer.event(Event::Waiting {
                    step: step.name.clone(),
                    object: object.clone(),
                    message: message.to_string(),
                });
            }
        },
        || async move {
            let state = match cluster.get(target).await {
                Ok(Some(live)) => readiness::assess(target, &live),
                Ok(None) => Readiness::Waiting(format!("{} does not exist yet", target.kind)),
                Err(error) => Readiness::Waiting(format!("reading status failed: {error}")),
            };
            match state {
                Readiness::Ready => Check::Done(()),
                Readiness::Waiting(message) => Check::Waiting(message),
                Readiness::Failed(message) => Check::Failed(message),
            }
        },
    )
    .await;
    waited.map_err(|error| match error {
        WaitError::Failed(message) => StepResult::Failed(format!("{object} failed: {message}")),
        WaitError::Interrupted => StepResult::Interrupted,
        WaitError::TimedOut { last } => StepResult::Failed(format!(
            "{object} not ready after {}s; last condition: {}",
            options.timeout.as_secs_f64(),
            if last.is_empty() {
                "not observed yet"
            } else {
                &last
            }
        )),
    })
}
