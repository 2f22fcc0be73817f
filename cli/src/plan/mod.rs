//! What `bfctl up` applies, worked out before anything is applied: the
//! configuration read ([`config`], with its optional [`gke`] cluster), the components of
//! `manifests-templates/components.yaml` ([`components`]) rendered with
//! bfctl's labels ([`render`], [`identity`]), the pinned operators
//! ([`operators`]), and the generated Secrets ([`secrets`]), turned into
//! kube-apply steps: each component depends on its declared components and
//! on the operator it needs.

pub mod components;
pub mod config;
pub mod gke;
pub mod identity;
pub mod operators;
pub mod registry;
pub mod render;
pub mod secrets;

use std::collections::BTreeSet;

use serde_json::Value;

use kube_apply::Step;

use config::Config;
use render::ImageRefs;

pub use secrets::{PASSWORD_KEY, secrets_for, valkey_secrets};

/// Steps and which of them install operators.
pub struct Plan {
    pub steps: Vec<Step>,
    pub operator_steps: BTreeSet<String>,
}

/// Builds the plan. `operator_steps` come from [`operators::steps`] (empty
/// when the operators are managed elsewhere); `secrets` from
/// [`secrets::valkey_secrets`].
pub fn build(
    config: &Config,
    images: &ImageRefs,
    operator_steps: Vec<Step>,
    secrets: Vec<Value>,
) -> anyhow::Result<Plan> {
    let operator_names: BTreeSet<String> = operator_steps.iter().map(|s| s.name.clone()).collect();
    let mut steps = operator_steps;
    let mut secrets = Some(secrets);
    for component in render::render(config, images)? {
        let mut depends_on = component.spec.depends_on.clone();
        if let Some(operator) = &component.spec.operator
            && let Some(step) = operators::step_for(operator, config)
            && operator_names.contains(step)
        {
            depends_on.push(step.to_string());
        }
        let mut objects = component.json_objects()?;
        // The image pull Secret of a registry bfctl provides comes with
        // the namespace, before any workload pulls.
        if component.spec.name == "namespace"
            && let Some(all) = secrets.as_mut()
        {
            let (pull, rest): (Vec<Value>, Vec<Value>) = all
                .drain(..)
                .partition(|s| s["type"] == "kubernetes.io/dockerconfigjson");
            *all = rest;
            objects.extend(pull);
        }
        // The Valkey VM boots with the password; the consumer and Grafana
        // (both after valkey) read it.
        if component.spec.name == "valkey" {
            let mut generated = secrets.take().unwrap_or_default();
            generated.append(&mut objects);
            objects = generated;
        }
        steps.push(Step {
            name: component.spec.name.clone(),
            depends_on,
            objects,
        });
    }
    Ok(Plan {
        steps,
        operator_steps: operator_names,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_wait_for_the_operators_they_need() {
        let config = Config::parse(crate::plan::config::EXAMPLE, "example").unwrap();
        let images = ImageRefs::unbuilt(&config);
        let operator = |name: &str| Step {
            name: name.into(),
            depends_on: Vec::new(),
            objects: Vec::new(),
        };
        let plan = build(
            &config,
            &images,
            vec![
                operator(operators::STRIMZI_STEP),
                operator(operators::KUBEVIRT_STEP),
            ],
            secrets_for(&config, "pw").unwrap(),
        )
        .unwrap();
        let step = |name: &str| plan.steps.iter().find(|s| s.name == name).unwrap();
        assert!(
            step("kafka")
                .depends_on
                .contains(&operators::STRIMZI_STEP.to_string())
        );
        assert!(
            step("valkey")
                .depends_on
                .contains(&operators::KUBEVIRT_STEP.to_string())
        );
        // gateway-api mode installs no ingress operator.
        assert_eq!(step("ingress").depends_on, vec!["gateway".to_string()]);
        let valkey_kinds: Vec<&str> = step("valkey")
            .objects
            .iter()
            .filter_map(|o| o["kind"].as_str())
            .collect();
        assert_eq!(&valkey_kinds[..2], ["Secret", "Secret"]);
        kube_apply::check_graph(&plan.steps).unwrap();
    }
}
