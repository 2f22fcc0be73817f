//! The component graph, `manifests-templates/components.yaml`, compiled in:
//! each component names its templates, the components it waits for, and
//! the operator it needs. Checked when read: unique names, known
//! dependencies and templates, no cycles.

use std::collections::BTreeSet;

use anyhow::bail;
use serde::{Deserialize, Serialize};

use super::render::TEMPLATES;

const COMPONENTS: &str = include_str!("../../../manifests-templates/components.yaml");

/// One node of the component graph, as declared in `components.yaml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ComponentSpec {
    pub name: String,
    pub templates: Vec<String>,
    #[serde(default)]
    pub depends_on: Vec<String>,
    #[serde(default)]
    pub operator: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ComponentsFile {
    components: Vec<ComponentSpec>,
}

/// The component graph, checked: unique names, known dependencies, no cycles.
pub fn components() -> anyhow::Result<Vec<ComponentSpec>> {
    let file: ComponentsFile =
        crate::yaml::parse(COMPONENTS, "manifests-templates/components.yaml")?;
    let names: BTreeSet<&str> = file.components.iter().map(|c| c.name.as_str()).collect();
    if names.len() != file.components.len() {
        bail!("components.yaml: component names must be unique");
    }
    for component in &file.components {
        for dependency in &component.depends_on {
            if !names.contains(dependency.as_str()) {
                bail!(
                    "components.yaml: {} depends on unknown component {dependency}",
                    component.name
                );
            }
        }
        for template in &component.templates {
            if !TEMPLATES.iter().any(|(name, _)| name == template) {
                bail!(
                    "components.yaml: {} names template {template}, which is not compiled in",
                    component.name
                );
            }
        }
    }
    topological_order(&file.components)?;
    Ok(file.components)
}

/// Components in an order where each comes after its dependencies.
pub fn topological_order(components: &[ComponentSpec]) -> anyhow::Result<Vec<String>> {
    let mut done: Vec<String> = Vec::new();
    let mut remaining: Vec<&ComponentSpec> = components.iter().collect();
    while !remaining.is_empty() {
        let before = remaining.len();
        remaining.retain(|component| {
            if component.depends_on.iter().all(|d| done.contains(d)) {
                done.push(component.name.clone());
                false
            } else {
                true
            }
        });
        if remaining.len() == before {
            let stuck: Vec<_> = remaining.iter().map(|c| c.name.as_str()).collect();
            bail!(
                "components.yaml: dependency cycle among {}",
                stuck.join(", ")
            );
        }
    }
    Ok(done)
}
