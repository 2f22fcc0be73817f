//! The Secrets bfctl generates rather than renders: the Valkey password and
//! the cloud-init user-data that gives the VM the same password. A password
//! already in the cluster is kept, never regenerated.

use anyhow::Context;
use base64::Engine as _;
use rand::Rng;
use rand::distr::Alphanumeric;
use serde_json::{Value, json};

use kube_apply::{Cluster, ObjectRef};

use super::config::Config;
use super::render;

/// The Valkey password Secret's key.
pub const PASSWORD_KEY: &str = "password";

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
