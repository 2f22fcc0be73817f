//! A chaos plan: which faults `bfctl loadtest --chaos` injects, and when.
//!
//! Three ways to get one:
//! * the built-in default ([`ChaosPlan::default_for`]): one fault per part
//!   of the pipeline, spread over the load;
//! * a file (`--chaos-plan FILE`, YAML):
//!   ```yaml
//!   faults:
//!     - at: 5            # seconds after the load starts
//!       target: consumer # consumer, producer, gateway, broker, valkey
//!       action: kill     # kill, pause, restart, delete-pod
//!     - at: 15
//!       target: valkey
//!       action: pause
//!       pauseSeconds: 3  # SIGSTOP, then SIGCONT this much later
//!   ```
//! * a seed (`--chaos-seed N`, [`ChaosPlan::random`]): a random plan that is
//!   the same for the same seed, duration and place, and covers every
//!   target and every action the place supports.
//!
//! What each action means where (the injectors, `local.rs`, `cluster.rs`):
//!
//! | action | local | cluster |
//! |---|---|---|
//! | `kill` | SIGKILL (a container: the engine's kill) | - |
//! | `pause` | SIGSTOP, SIGCONT after `pauseSeconds` (a container: pause, unpause) | - |
//! | `restart` | SIGTERM (SIGKILL after 10 s), the supervisor starts it again (a container: `docker stop`) | Valkey: KubeVirt's `restart` subresource of the VM |
//! | `delete-pod` | - | deletes a consumer, producer or gateway pod, or the Kafka broker pod |

use anyhow::{Context, bail};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// What a fault hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    Consumer,
    Producer,
    Gateway,
    Broker,
    Valkey,
}

impl Target {
    pub const ALL: [Target; 5] = [
        Target::Consumer,
        Target::Producer,
        Target::Gateway,
        Target::Broker,
        Target::Valkey,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Target::Consumer => "consumer",
            Target::Producer => "producer",
            Target::Gateway => "gateway",
            Target::Broker => "broker",
            Target::Valkey => "valkey",
        }
    }
}

/// What is done to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    Kill,
    Pause,
    Restart,
    DeletePod,
}

impl Action {
    pub fn name(self) -> &'static str {
        match self {
            Action::Kill => "kill",
            Action::Pause => "pause",
            Action::Restart => "restart",
            Action::DeletePod => "delete-pod",
        }
    }
}

/// Where the faults are injected: what each place can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    Local,
    Cluster,
}

impl Place {
    /// Whether `action` on `target` can be injected here.
    pub fn supports(self, target: Target, action: Action) -> bool {
        match self {
            Place::Local => action != Action::DeletePod,
            Place::Cluster => match target {
                Target::Valkey => action == Action::Restart,
                _ => action == Action::DeletePod,
            },
        }
    }

    fn actions(self) -> &'static [Action] {
        match self {
            Place::Local => &[Action::Kill, Action::Pause, Action::Restart],
            Place::Cluster => &[Action::DeletePod, Action::Restart],
        }
    }

    fn name(self) -> &'static str {
        match self {
            Place::Local => "the local pipeline",
            Place::Cluster => "a cluster",
        }
    }
}

/// One fault.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Fault {
    /// Seconds after the load starts (later if the fault before has not
    /// recovered by then).
    pub at: f64,
    pub target: Target,
    pub action: Action,
    /// For `pause`: how long the target stays stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause_seconds: Option<f64>,
}

/// How long a pause lasts unless the plan says.
pub const DEFAULT_PAUSE_SECONDS: f64 = 3.0;

impl Fault {
    pub fn pause(&self) -> std::time::Duration {
        std::time::Duration::from_secs_f64(self.pause_seconds.unwrap_or(DEFAULT_PAUSE_SECONDS))
    }

    /// `kill consumer`, `pause valkey for 3 s`.
    pub fn describe(&self) -> String {
        match self.action {
            Action::Pause => format!(
                "pause {} for {:.0} s",
                self.target.name(),
                self.pause().as_secs_f64()
            ),
            action => format!("{} {}", action.name(), self.target.name()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChaosPlan {
    pub faults: Vec<Fault>,
}

impl ChaosPlan {
    /// The built-in plan: one fault per part of the pipeline, the ones
    /// users fear most first, spread over the first three quarters of the
    /// load.
    pub fn default_for(place: Place, duration: std::time::Duration) -> ChaosPlan {
        let faults: Vec<(Target, Action)> = match place {
            Place::Local => vec![
                (Target::Consumer, Action::Kill),
                (Target::Broker, Action::Kill),
                (Target::Valkey, Action::Pause),
                (Target::Producer, Action::Restart),
                (Target::Gateway, Action::Kill),
            ],
            Place::Cluster => vec![
                (Target::Consumer, Action::DeletePod),
                (Target::Broker, Action::DeletePod),
                (Target::Valkey, Action::Restart),
                (Target::Producer, Action::DeletePod),
                (Target::Gateway, Action::DeletePod),
            ],
        };
        ChaosPlan::spread(faults, duration)
    }

    /// A random plan, the same for the same seed: five faults, every target
    /// once and every action the place supports at least once, in a random
    /// order, spread over the load with some jitter. `allowed` says what
    /// the pipeline at hand can take (see [`super::FaultInjector::refuses`]).
    pub fn random(
        place: Place,
        duration: std::time::Duration,
        seed: u64,
        allowed: &dyn Fn(Target, Action) -> bool,
    ) -> ChaosPlan {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut targets = Target::ALL.to_vec();
        targets.shuffle(&mut rng);
        let mut actions = place.actions().to_vec();
        actions.shuffle(&mut rng);
        let can = |target: Target, action: Action| {
            place.supports(target, action) && allowed(target, action)
        };
        let count = actions.len();
        // Target i takes action i + r of the shuffled cycle, for the first
        // rotation r that every target can take: five targets then cover
        // every action. Where none fits (a cluster: one action per target),
        // each takes the first action it can.
        let rotation = (0..count).find(|rotation| {
            targets
                .iter()
                .enumerate()
                .all(|(index, target)| can(*target, actions[(index + rotation) % count]))
        });
        let faults: Vec<(Target, Action)> = targets
            .into_iter()
            .enumerate()
            .map(|(index, target)| {
                let action = match rotation {
                    Some(rotation) => actions[(index + rotation) % count],
                    None => (0..count)
                        .map(|offset| actions[(index + offset) % count])
                        .find(|action| can(target, *action))
                        .unwrap_or(Action::Restart),
                };
                (target, action)
            })
            .collect();
        let mut plan = ChaosPlan::spread(faults, duration);
        let slot = ChaosPlan::slot(duration, plan.faults.len());
        for fault in &mut plan.faults {
            fault.at = (fault.at + rng.random_range(-0.3..0.3) * slot).max(1.0);
            fault.at = (fault.at * 10.0).round() / 10.0;
        }
        plan
    }

    /// The faults one per slot over the first three quarters of the load,
    /// each in the middle of its slot: the last quarter is left for the
    /// last fault to heal while sales still flow (a consumer's group
    /// takes several seconds to notice it is gone).
    fn spread(faults: Vec<(Target, Action)>, duration: std::time::Duration) -> ChaosPlan {
        let slot = ChaosPlan::slot(duration, faults.len());
        ChaosPlan {
            faults: faults
                .into_iter()
                .enumerate()
                .map(|(index, (target, action))| Fault {
                    at: (slot * (index as f64 + 0.5) * 10.0).round() / 10.0,
                    target,
                    action,
                    pause_seconds: None,
                })
                .collect(),
        }
    }

    fn slot(duration: std::time::Duration, faults: usize) -> f64 {
        duration.as_secs_f64() * 0.75 / faults.max(1) as f64
    }

    /// Reads a plan file.
    pub fn read(path: &std::path::Path) -> anyhow::Result<ChaosPlan> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the chaos plan {}", path.display()))?;
        crate::yaml::parse(&text, &path.display().to_string())
    }

    /// Fails, naming the fault, when a fault cannot be injected here or
    /// falls outside the load.
    pub fn check(&self, place: Place, duration: std::time::Duration) -> anyhow::Result<()> {
        if self.faults.is_empty() {
            bail!("the chaos plan has no faults");
        }
        for (index, fault) in self.faults.iter().enumerate() {
            let which = format!("fault {} ({})", index + 1, fault.describe());
            if !place.supports(fault.target, fault.action) {
                let supported: Vec<&str> = place
                    .actions()
                    .iter()
                    .filter(|action| place.supports(fault.target, **action))
                    .map(|action| action.name())
                    .collect();
                bail!(
                    "{which}: {} cannot be done to the {} on {}; there: {}",
                    fault.action.name(),
                    fault.target.name(),
                    place.name(),
                    supported.join(", ")
                );
            }
            if !(fault.at.is_finite() && fault.at >= 0.0 && fault.at < duration.as_secs_f64()) {
                bail!(
                    "{which}: at {} s is outside the load (0 to {} s; raise --duration)",
                    fault.at,
                    duration.as_secs()
                );
            }
            if let Some(pause) = fault.pause_seconds {
                if !(pause.is_finite() && pause > 0.0 && pause <= 300.0) {
                    bail!("{which}: pauseSeconds must be above 0 and at most 300 (got {pause})");
                }
                if fault.action != Action::Pause {
                    bail!("{which}: pauseSeconds is for `pause` only");
                }
            }
        }
        let mut sorted = self.faults.clone();
        sorted.sort_by(|a, b| a.at.total_cmp(&b.at));
        if sorted != self.faults {
            bail!("the chaos plan's faults must be in the order of their `at`");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_seed_gives_the_same_plan_covering_every_target_and_action() {
        for place in [Place::Local, Place::Cluster] {
            for seed in 0..50 {
                let plan = ChaosPlan::random(place, Duration::from_secs(60), seed, &|_, _| true);
                assert_eq!(
                    plan,
                    ChaosPlan::random(place, Duration::from_secs(60), seed, &|_, _| true)
                );
                plan.check(place, Duration::from_secs(60)).unwrap();
                for target in Target::ALL {
                    assert!(plan.faults.iter().any(|f| f.target == target), "{plan:?}");
                }
                for action in place.actions() {
                    assert!(
                        plan.faults.iter().any(|f| f.action == *action),
                        "{seed} {plan:?}"
                    );
                }
            }
        }
        assert_ne!(
            ChaosPlan::random(Place::Local, Duration::from_secs(60), 1, &|_, _| true),
            ChaosPlan::random(Place::Local, Duration::from_secs(60), 2, &|_, _| true)
        );
        // What the pipeline cannot take is never drawn, and every action
        // is still covered.
        let no_broker_restart = |target: Target, action: Action| {
            !(target == Target::Broker && action == Action::Restart)
        };
        for seed in 0..50 {
            let plan = ChaosPlan::random(
                Place::Local,
                Duration::from_secs(60),
                seed,
                &no_broker_restart,
            );
            assert!(
                plan.faults
                    .iter()
                    .all(|f| no_broker_restart(f.target, f.action)),
                "{plan:?}"
            );
            for action in Place::Local.actions() {
                assert!(
                    plan.faults.iter().any(|f| f.action == *action),
                    "{seed} {plan:?}"
                );
            }
        }
    }

    #[test]
    fn the_default_plans_hold_and_bad_plans_say_what_is_wrong() {
        for place in [Place::Local, Place::Cluster] {
            ChaosPlan::default_for(place, Duration::from_secs(30))
                .check(place, Duration::from_secs(30))
                .unwrap();
        }
        let plan: ChaosPlan = crate::yaml::parse(
            "faults:\n  - at: 5\n    target: valkey\n    action: delete-pod\n",
            "plan.yaml",
        )
        .unwrap();
        let error = plan
            .check(Place::Local, Duration::from_secs(30))
            .unwrap_err();
        assert!(
            error.to_string().contains("fault 1 (delete-pod valkey)"),
            "{error}"
        );
        let error = plan
            .check(Place::Cluster, Duration::from_secs(30))
            .unwrap_err();
        assert!(error.to_string().contains("there: restart"), "{error}");
        let late: ChaosPlan = crate::yaml::parse(
            "faults:\n  - at: 50\n    target: consumer\n    action: kill\n",
            "plan.yaml",
        )
        .unwrap();
        let error = late
            .check(Place::Local, Duration::from_secs(30))
            .unwrap_err();
        assert!(error.to_string().contains("raise --duration"), "{error}");
        let unknown = crate::yaml::parse::<ChaosPlan>(
            "faults:\n  - at: 5\n    target: kafka\n    action: kill\n",
            "plan.yaml",
        )
        .unwrap_err();
        assert!(format!("{unknown:#}").contains("kafka"), "{unknown:#}");
    }
}
