//! The plan `bfctl up` applies: operator steps, then the components of
//! `manifests-templates/components.yaml`, each depending on its declared
//! components and on the operator it needs, plus the generated Secrets.

use std::collections::BTreeSet;

use anyhow::Context;
use base64::Engine as _;
use rand::Rng;
use rand::distr::Alphanumeric;
use serde_json::{Value, json};

use crate::cluster::{Cluster, ObjectRef};
use crate::config::Config;
use crate::engine::Step;
use crate::operators;
use crate::render::{self, ImageRefs};

/// The Valkey password Secret's key.
pub const PASSWORD_KEY: &str = "password";

/// Steps and which of them install operators.
pub struct Plan {
    pub steps: Vec<Step>,
    pub operator_steps: BTreeSet<String>,
}

/// Builds the plan. `operator_steps` come from [`operators::steps`] (empty
/// when the operators are managed elsewhere); `secrets` from
/// [`valkey_secrets`].
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

/// The Valkey password Secret and the cloud-init Secret built from it. An
/// existing password is kept: regenerating it would lock the consumer out of
/// a VM that already booted with the old one.
pub async fn valkey_secrets(cluster: &Cluster, config: &Config) -> anyhow::Result<Vec<Value>> {
    let namespace = &config.namespace.0;
    let name = &config.valkey.password_secret.0;
    let reference = ObjectRef {
        api_version: "v1".into(),
        kind: "Secret".into(),
        namespace: Some(namespace.clone()),
        name: name.clone(),
    };
    let existing = cluster.get(&reference).await?;
    let password = match existing
        .as_ref()
        .and_then(|secret| secret.pointer(&format!("/data/{PASSWORD_KEY}")))
        .and_then(Value::as_str)
    {
        Some(encoded) => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .with_context(|| format!("{reference}: data.{PASSWORD_KEY} is not base64"))?;
            String::from_utf8(bytes)
                .with_context(|| format!("{reference}: data.{PASSWORD_KEY} is not UTF-8"))?
        }
        None => generate_password(),
    };
    secrets_for(config, &password)
}

/// The NoCloud user-data that gives the VM its Valkey password. The disk's
/// `bfctl-seed` reads `write_files` entries with base64 one-line content
/// (disk/rootfs/usr/local/sbin/bfctl-seed); real cloud-init reads the same
/// document, and its runcmd restarts Valkey, which cloud-init may have
/// started before writing the file.
pub fn cloud_init_user_data(password: &str) -> String {
    let content =
        base64::engine::general_purpose::STANDARD.encode(format!("requirepass \"{password}\"\n"));
    format!(
        "#cloud-config\n\
         write_files:\n\
         \x20 - path: /etc/valkey/bfctl-password.conf\n\
         \x20   permissions: '0640'\n\
         \x20   owner: root:valkey\n\
         \x20   encoding: b64\n\
         \x20   content: {content}\n\
         runcmd:\n\
         \x20 - [systemctl, restart, valkey-server]\n"
    )
}

/// 32 random letters and digits.
pub fn generate_password() -> String {
    rand::rng()
        .sample_iter(Alphanumeric)
        .take(32)
        .map(char::from)
        .collect()
}

/// The two Secrets for a given password.
pub fn secrets_for(config: &Config, password: &str) -> anyhow::Result<Vec<Value>> {
    let namespace = &config.namespace.0;
    let name = &config.valkey.password_secret.0;
    let encode = |text: &str| base64::engine::general_purpose::STANDARD.encode(text);
    let user_data = cloud_init_user_data(password);
    let mut secrets = vec![
        json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": namespace},
            "type": "Opaque",
            "data": {PASSWORD_KEY: encode(password)}
        }),
        json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": format!("{name}-cloud-init"), "namespace": namespace},
            "type": "Opaque",
            "data": {"userdata": encode(&user_data)}
        }),
    ];
    for secret in &mut secrets {
        render::add_inventory_labels(secret, "valkey", config.install_name())?;
    }
    Ok(secrets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_wait_for_the_operators_they_need() {
        let config = Config::parse(crate::config::EXAMPLE, "example").unwrap();
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
        crate::engine::check_graph(&plan.steps).unwrap();
    }
}
