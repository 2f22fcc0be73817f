//! The step graph: named steps, each waiting for the steps it depends on,
//! independent steps in parallel. Generic over what a step is ([`GraphNode`])
//! and what it reports ([`Done`]): [`crate::up`] runs Kubernetes steps with
//! it, and a caller can run any other kind (bfctl's local pipeline runs its
//! processes with it).
//!
//! * After a failure the steps already running finish and nothing new
//!   starts; steps never started are reported as skipped, with what they
//!   waited for.
//! * An [`Interrupt`] (Ctrl-C) stops new steps from starting; running
//!   steps see it too and stop between objects.
//! * Progress goes to an [`Observer`] as [`Event`]s; nothing is printed here.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::client::{ApplyOutcome, ObjectRef};
use crate::error::{Error, Result};

/// What a graph run tells its observer as it goes. The step events are
/// generic; `Applied`, `Waiting` and `Deleted` are about Kubernetes objects
/// (other runners say what they do with `Note`). Serializable, so that a
/// detached runner can hand its events to the process that waits for it.
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
    /// What a step is doing, when it is not about one object (a process
    /// starting, a consumer group settling).
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

    /// An interrupt fired by Ctrl-C; `on_first` runs when it fires (to
    /// tell the user); a second Ctrl-C exits at once with status 130.
    pub fn on_ctrl_c(on_first: impl FnOnce() + Send + 'static) -> Interrupt {
        let (sender, interrupt) = Interrupt::new();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                on_first();
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

    /// Returns once it has fired.
    pub async fn wait(&mut self) {
        while !*self.0.borrow() {
            if self.0.changed().await.is_err() {
                // The sender is gone: it can never fire.
                std::future::pending::<()>().await;
            }
        }
    }
}

/// How one step ended. `D` is what the step did, one entry per thing
/// (an applied object's outcome for a Kubernetes step, see
/// [`crate::AppliedObject`]; a started process for another runner's).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StepReport<D> {
    pub name: String,
    pub result: StepResult,
    pub elapsed_ms: u128,
    pub objects: Vec<D>,
}

/// What a step did to one thing: whether it changed something, for the
/// "N changed" of a finished step.
pub trait Done: Clone + Send + Sync + Serialize + 'static {
    fn changed(&self) -> bool;
}

impl<D> StepReport<D> {
    /// A report with nothing done yet.
    pub fn started(name: &str) -> StepReport<D> {
        StepReport {
            name: name.to_string(),
            result: StepResult::Ready,
            elapsed_ms: 0,
            objects: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "state", content = "message", rename_all = "lowercase")]
pub enum StepResult {
    Ready,
    Failed(String),
    Skipped(String),
    Interrupted,
}

/// A node of a dependency graph: a name, and the names it waits for.
/// Kubernetes [`crate::Step`]s are run by [`crate::up`]; any other kind of
/// step (a local process) by [`run_graph`] directly.
pub trait GraphNode: Clone + Send + Sync + 'static {
    fn name(&self) -> &str;
    fn depends_on(&self) -> &[String];
}

/// Checks the graph: unique names, known dependencies, no cycles.
pub fn check_graph<N: GraphNode>(steps: &[N]) -> Result<()> {
    let names: BTreeSet<&str> = steps.iter().map(|s| s.name()).collect();
    if names.len() != steps.len() {
        return Err(Error::Graph("step names must be unique".into()));
    }
    for step in steps {
        for dependency in step.depends_on() {
            if !names.contains(dependency.as_str()) {
                return Err(Error::Graph(format!(
                    "step {} depends on unknown step {dependency}",
                    step.name()
                )));
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
            return Err(Error::Graph("the steps form a dependency cycle".into()));
        }
    }
    Ok(())
}

/// How a graph run ended: one report per step, in the steps' order.
pub struct GraphOutcome<D> {
    pub steps: Vec<StepReport<D>>,
    pub interrupted: bool,
}

/// Runs every step once the steps it depends on are ready, independent
/// steps in parallel, and tells the observer as each starts and ends. After
/// a failure the steps already running finish and nothing new starts; the
/// steps never started are reported as skipped, with what they waited for.
pub async fn run_graph<N, D, F, Fut>(
    steps: &[N],
    observer: Arc<dyn Observer>,
    interrupt: Interrupt,
    run: F,
) -> Result<GraphOutcome<D>>
where
    N: GraphNode,
    D: Done,
    F: Fn(N) -> Fut,
    Fut: std::future::Future<Output = StepReport<D>> + Send + 'static,
{
    check_graph(steps)?;
    let mut reports: BTreeMap<String, StepReport<D>> = BTreeMap::new();
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
        let report =
            joined.map_err(|error| Error::Graph(format!("a step's task failed: {error}")))?;
        match &report.result {
            StepResult::Ready => {
                observer.event(Event::StepReady {
                    step: report.name.clone(),
                    elapsed: Duration::from_millis(report.elapsed_ms as u64),
                    changed: report.objects.iter().filter(|o| o.changed()).count(),
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
