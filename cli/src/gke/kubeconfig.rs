//! The kubeconfig context for a GKE cluster, merged into the user's
//! kubeconfig without touching any other entry: the server
//! `https://<endpoint>`, the CA from `masterAuth.clusterCaCertificate`, and
//! an exec credential plugin that is bfctl itself (`bfctl cluster token`),
//! so kubectl and bfctl need neither gcloud nor gke-gcloud-auth-plugin.
//!
//! The file is read and written as YAML values, so whatever else it holds
//! (other contexts, extensions, preferences) stays as it was; it is
//! replaced whole or not at all.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde_json::{Value, json};

use crate::plan::gke::Gke;

/// The context's name, as gcloud names it: `gke_PROJECT_LOCATION_CLUSTER`.
pub fn context_name(gke: &Gke) -> String {
    format!("gke_{}_{}_{}", gke.project.0, gke.location.0, gke.cluster.0)
}

/// The kubeconfig bfctl writes to: `--kubeconfig`, else the first file of
/// `KUBECONFIG`, else `~/.kube/config`.
pub fn path(given: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(path) = given {
        return Ok(path.to_path_buf());
    }
    if let Some(first) = std::env::var_os("KUBECONFIG")
        .and_then(|v| std::env::split_paths(&v).next())
        .filter(|p| !p.as_os_str().is_empty())
    {
        return Ok(first);
    }
    let home = std::env::var_os("HOME").context("HOME is not set: pass --kubeconfig FILE")?;
    Ok(PathBuf::from(home).join(".kube/config"))
}

/// Adds or replaces the cluster, user and context named [`context_name`];
/// sets the current context only when none is set. `endpoint` is the
/// cluster's address (`https://` is put before it), `ca` its CA
/// certificate, base64 PEM as GKE gives it; `bfctl` the program the exec
/// plugin runs.
pub fn merge(
    file: &Path,
    gke: &Gke,
    endpoint: &str,
    ca: &str,
    bfctl: &Path,
) -> anyhow::Result<String> {
    let mut config: Value = if file.exists() {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        if text.trim().is_empty() {
            json!({})
        } else {
            crate::yaml::parse(&text, &file.display().to_string())?
        }
    } else {
        json!({})
    };
    if !config.is_object() {
        anyhow::bail!("{} is not a kubeconfig (not a map)", file.display());
    }
    let name = context_name(gke);
    let mut cluster = json!({ "server": format!("https://{endpoint}") });
    if !ca.is_empty() {
        cluster["certificate-authority-data"] = ca.into();
    }
    upsert(&mut config, "clusters", &name, "cluster", cluster);
    upsert(
        &mut config,
        "users",
        &name,
        "user",
        json!({
            "exec": {
                "apiVersion": "client.authentication.k8s.io/v1",
                "command": bfctl.display().to_string(),
                "args": ["cluster", "token"],
                "installHint": "bfctl gets this cluster's tokens (`bfctl cluster token`): install bfctl, or run `bfctl cluster create` again to point here at where it is",
                "provideClusterInfo": false,
                "interactiveMode": "Never",
            }
        }),
    );
    upsert(
        &mut config,
        "contexts",
        &name,
        "context",
        json!({ "cluster": name, "user": name }),
    );
    config["apiVersion"] = "v1".into();
    config["kind"] = "Config".into();
    if config["current-context"].as_str().is_none_or(str::is_empty) {
        config["current-context"] = name.clone().into();
    }
    if let Some(parent) = file.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    crate::files::write_atomically(file, crate::yaml::to_string(&config)?.as_bytes())
        .with_context(|| format!("writing {}", file.display()))?;
    Ok(name)
}

/// Replaces the entry called `name` in the list `list` (or appends it).
fn upsert(config: &mut Value, list: &str, name: &str, key: &str, value: Value) {
    if !config[list].is_array() {
        config[list] = json!([]);
    }
    let entries = config[list].as_array_mut().expect("just made an array");
    let entry = json!({ "name": name, key: value });
    match entries.iter_mut().find(|e| e["name"] == name) {
        Some(existing) => *existing = entry,
        None => entries.push(entry),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merging_keeps_every_other_entry_and_the_current_context() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config");
        std::fs::write(
            &file,
            "apiVersion: v1\nkind: Config\ncurrent-context: theirs\nclusters:\n- name: theirs\n  cluster:\n    server: https://10.0.0.1\ncontexts:\n- name: theirs\n  context:\n    cluster: theirs\n    user: theirs\nusers:\n- name: theirs\n  user:\n    token: abc\npreferences: {}\n",
        )
        .unwrap();
        let gke: Gke =
            crate::yaml::parse("project: my-project\nlocation: europe-west1-b\n", "t").unwrap();
        let name = merge(
            &file,
            &gke,
            "203.0.113.5",
            "Q0E=",
            Path::new("/usr/bin/bfctl"),
        )
        .unwrap();
        assert_eq!(name, "gke_my-project_europe-west1-b_blackfriday");
        // Twice: replaced, not duplicated.
        merge(
            &file,
            &gke,
            "203.0.113.6",
            "Q0E=",
            Path::new("/usr/bin/bfctl"),
        )
        .unwrap();
        let written: Value =
            crate::yaml::parse(&std::fs::read_to_string(&file).unwrap(), "written").unwrap();
        assert_eq!(written["current-context"], "theirs");
        assert_eq!(written["clusters"].as_array().unwrap().len(), 2);
        assert_eq!(written["users"][0]["user"]["token"], "abc");
        let ours = &written["clusters"][1]["cluster"];
        assert_eq!(ours["server"], "https://203.0.113.6");
        assert_eq!(ours["certificate-authority-data"], "Q0E=");
        let exec = &written["users"][1]["user"]["exec"];
        assert_eq!(exec["command"], "/usr/bin/bfctl");
        assert_eq!(exec["args"], json!(["cluster", "token"]));
        assert_eq!(exec["apiVersion"], "client.authentication.k8s.io/v1");
    }
}
