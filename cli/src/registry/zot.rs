//! What runs on the registry VM: Zot's configuration and the
//! Container-Optimized OS user-data that starts it.
//!
//! The configuration (`config.json`) holds no secret: the TLS key and the
//! htpasswd file live in Secret Manager, and the VM fetches them at boot
//! with its own service account's token from the metadata server, into a
//! directory only root reads. Nothing secret is in the VM's metadata, its
//! image or the configuration.
//!
//! Access: the push account may read, create and update; the pull account
//! may only read; nobody else anything (no `anonymousPolicy`, an empty
//! `defaultPolicy`). Storage: the data disk, with deduplication and garbage
//! collection. Keys are those of Zot's `pkg/api/config/config.go` and its
//! `examples/` (the test below lists which file documents each).

use serde_json::{Value, json};

use super::accounts::{PULL_USER, PUSH_USER};

/// Zot's official image. A release tag: ghcr.io cannot be reached from
/// here to read its digest; `bfctl registry status` shows the digest the
/// VM runs.
pub const ZOT_IMAGE: &str = "ghcr.io/project-zot/zot-linux-amd64:v2.1.15";

/// Where things are on the VM.
pub const DATA_MOUNT: &str = "/mnt/disks/zot-data";
pub const CONFIG_DIR: &str = "/etc/zot";
pub const SECRET_DIR: &str = "/etc/zot/secret";

/// The names of the Secret Manager secrets, after the registry's name.
#[derive(Debug, Clone)]
pub struct SecretNames {
    pub ca: String,
    pub certificate: String,
    pub key: String,
    pub htpasswd: String,
}

impl SecretNames {
    pub fn of(name: &str) -> SecretNames {
        SecretNames {
            ca: format!("{name}-ca"),
            certificate: format!("{name}-tls-certificate"),
            key: format!("{name}-tls-key"),
            htpasswd: format!("{name}-htpasswd"),
        }
    }

    pub fn all(&self) -> [&str; 4] {
        [&self.ca, &self.certificate, &self.key, &self.htpasswd]
    }
}

/// Zot's `config.json` for a registry on `port`.
pub fn config(port: i64) -> Value {
    json!({
        "distSpecVersion": "1.1.1",
        "storage": {
            "rootDirectory": "/var/lib/registry",
            "dedupe": true,
            "gc": true,
            "gcDelay": "1h",
            "gcInterval": "24h"
        },
        "http": {
            "address": "0.0.0.0",
            "port": port.to_string(),
            "realm": "bfctl",
            "tls": {
                "cert": format!("{SECRET_DIR}/server.pem"),
                "key": format!("{SECRET_DIR}/server-key.pem")
            },
            "auth": {
                "htpasswd": { "path": format!("{SECRET_DIR}/htpasswd") },
                "failDelay": 1
            },
            "accessControl": {
                "repositories": {
                    "**": {
                        "policies": [
                            { "users": [PUSH_USER], "actions": ["read", "create", "update"] },
                            { "users": [PULL_USER], "actions": ["read"] }
                        ],
                        "defaultPolicy": []
                    }
                }
            }
        },
        "log": { "level": "info" }
    })
}

/// The VM's user-data (cloud-init, which Container-Optimized OS runs):
/// formats the data disk once and mounts it, fetches the secrets from
/// Secret Manager, and runs Zot as a systemd unit that restarts it. Zot
/// runs as root in its container: the key and the htpasswd file are
/// readable by root only on the host.
pub fn user_data(project: &str, secrets: &SecretNames, port: i64, data_device: &str) -> String {
    let config = serde_json::to_string_pretty(&config(port)).unwrap_or_default();
    let indent = |text: &str| {
        text.lines()
            .map(|line| format!("      {line}"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let fetch = format!(
        r#"#!/bin/bash
# Fetches the registry's secrets from Secret Manager with this VM's
# service account (metadata server token). Only root reads them.
set -euo pipefail
umask 077
mkdir -p {SECRET_DIR}
token=$(curl -sf -H 'Metadata-Flavor: Google' \
  http://metadata.google.internal/computeMetadata/v1/instance/service-accounts/default/token \
  | sed -n 's/.*"access_token": *"\([^"]*\)".*/\1/p')
fetch() {{
  curl -sf -H "Authorization: Bearer $token" \
    "https://secretmanager.googleapis.com/v1/projects/{project}/secrets/$1/versions/latest:access" \
    | sed -n 's/.*"data": *"\([^"]*\)".*/\1/p' | base64 -d > "{SECRET_DIR}/$2"
}}
fetch {certificate} server.pem
fetch {key} server-key.pem
fetch {htpasswd} htpasswd
"#,
        certificate = secrets.certificate,
        key = secrets.key,
        htpasswd = secrets.htpasswd,
    );
    let unit = format!(
        r#"[Unit]
Description=Zot registry (bfctl)
Wants=network-online.target
After=network-online.target
[Service]
ExecStartPre=/bin/bash {CONFIG_DIR}/fetch-secrets.sh
ExecStartPre=-/usr/bin/docker rm -f zot
ExecStart=/usr/bin/docker run --rm --name zot --user 0:0 -p {port}:{port} -v {DATA_MOUNT}:/var/lib/registry -v {CONFIG_DIR}:/etc/zot:ro {ZOT_IMAGE}
ExecStop=/usr/bin/docker stop zot
Restart=always
RestartSec=5
"#
    );
    format!(
        r#"#cloud-config
write_files:
  - path: {CONFIG_DIR}/config.json
    permissions: '0644'
    owner: root
    content: |
{config}
  - path: {CONFIG_DIR}/fetch-secrets.sh
    permissions: '0700'
    owner: root
    content: |
{fetch}
  - path: /etc/systemd/system/zot.service
    permissions: '0644'
    owner: root
    content: |
{unit}
runcmd:
  - [bash, -c, "blkid {data_device} || mkfs.ext4 -F -m 0 {data_device}"]
  - [mkdir, -p, {DATA_MOUNT}]
  - [mount, -o, "discard,defaults", {data_device}, {DATA_MOUNT}]
  - [iptables, -w, -A, INPUT, -p, tcp, --dport, "{port}", -j, ACCEPT]
  - [systemctl, daemon-reload]
  - [systemctl, start, zot.service]
"#,
        config = indent(&config),
        fetch = indent(&fetch),
        unit = indent(&unit),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// Every key path Zot documents that bfctl uses, with where: Zot's
    /// `examples/README.md` ("Configuration Parameters"), its example
    /// configurations, and `pkg/api/config/config.go` (AccessControlConfig:
    /// `repositories`; PolicyGroup: policies, defaultPolicy,
    /// anonymousPolicy; Policy: users, actions), read with the search tool
    /// (project-zot/zot).
    const DOCUMENTED: &[(&str, &str)] = &[
        ("distSpecVersion", "examples/config-gc-periodic.json"),
        ("storage.rootDirectory", "examples/config-gc.json"),
        ("storage.dedupe", "examples/README.md (Storage)"),
        ("storage.gc", "examples/config-gc.json"),
        ("storage.gcDelay", "examples/config-gc.json"),
        ("storage.gcInterval", "examples/config-gc-periodic.json"),
        ("http.address", "examples/config-tls.json"),
        ("http.port", "examples/config-tls.json"),
        ("http.realm", "examples/config-tls.json"),
        ("http.tls.cert", "examples/config-tls.json"),
        ("http.tls.key", "examples/config-tls.json"),
        ("http.auth.htpasswd.path", "examples/config-policy.json"),
        ("http.auth.failDelay", "examples/config-policy.json"),
        (
            "http.accessControl.repositories.<pattern>.policies[].users",
            "pkg/api/config/config.go",
        ),
        (
            "http.accessControl.repositories.<pattern>.policies[].actions",
            "pkg/api/config/config.go",
        ),
        (
            "http.accessControl.repositories.<pattern>.defaultPolicy",
            "pkg/api/config/config.go",
        ),
        ("log.level", "examples/config-tls.json"),
    ];

    fn paths(value: &Value, at: &str, out: &mut BTreeSet<String>) {
        match value {
            Value::Object(map) => {
                for (key, item) in map {
                    // The repository patterns are keys of a map.
                    let key = if at.ends_with("accessControl.repositories") {
                        "<pattern>"
                    } else {
                        key
                    };
                    let next = if at.is_empty() {
                        key.to_string()
                    } else {
                        format!("{at}.{key}")
                    };
                    paths(item, &next, out);
                }
            }
            Value::Array(items) if items.iter().any(Value::is_object) => {
                for item in items {
                    paths(item, &format!("{at}[]"), out);
                }
            }
            _ => {
                out.insert(at.to_string());
            }
        }
    }

    #[test]
    fn the_zot_configuration_holds_only_documented_keys_and_no_anonymous_access() {
        let rendered = config(5000);
        let mut found = BTreeSet::new();
        paths(&rendered, "", &mut found);
        let documented: BTreeSet<&str> = DOCUMENTED.iter().map(|(key, _)| *key).collect();
        for key in &found {
            assert!(
                documented.contains(key.as_str()),
                "{key} is not a key Zot documents"
            );
        }
        let text = rendered.to_string();
        assert!(!text.contains("anonymousPolicy"), "{text}");
        let everyone = &rendered["http"]["accessControl"]["repositories"]["**"];
        assert_eq!(everyone["defaultPolicy"], json!([]));
        let policies = everyone["policies"].as_array().unwrap();
        assert_eq!(policies[1]["users"], json!([PULL_USER]));
        assert_eq!(policies[1]["actions"], json!(["read"]));
        assert!(rendered["http"]["tls"]["key"].is_string());
    }

    #[test]
    fn the_user_data_carries_no_secret_and_fetches_them_from_secret_manager() {
        let names = SecretNames::of("bfctl-registry");
        let data = user_data(
            "my-project",
            &names,
            5000,
            "/dev/disk/by-id/google-zot-data",
        );
        assert!(data.starts_with("#cloud-config\n"));
        assert!(!data.contains("PRIVATE KEY"));
        assert!(!data.contains("$2y$"));
        assert!(data.contains("secrets/$1/versions/latest:access"));
        assert!(data.contains("fetch bfctl-registry-tls-key server-key.pem"));
        assert!(data.contains(ZOT_IMAGE));
        // The user-data is YAML that a cloud-init parser reads back.
        let parsed: serde_json::Value = serde_saphyr::from_str(&data).unwrap();
        let files = parsed["write_files"].as_array().unwrap();
        let config_file: Value =
            serde_json::from_str(files[0]["content"].as_str().unwrap()).unwrap();
        assert_eq!(config_file, config(5000));
    }
}
