//! End to end against the real GKE API, only when `BFCTL_E2E_GKE_PROJECT`
//! names a project bfctl may create a cluster in (credentials: the usual
//! Application Default Credentials). Without it the test says it was
//! skipped and passes: Google Cloud cannot be reached where the default test
//! command runs.
//!
//! It writes a bfctl.yaml with a `gke:` block (`BFCTL_E2E_GKE_LOCATION`,
//! default europe-west1-b; a cluster named `bfctl-e2e-<seconds>`), runs
//! `bfctl cluster create` (a real cluster: several minutes and real
//! money), `cluster create` again (nothing created), `cluster status`
//! (RUNNING, the virt pool with nested virtualization), `cluster token`,
//! and `cluster delete --yes`, then `cluster status` (gone). A second test
//! makes, checks and deletes the registry bfctl provides (Zot on a VM, and
//! an Artifact Registry repository).

use std::process::Command;

fn bfctl(dir: &std::path::Path, args: &[&str]) -> (Option<i32>, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_bfctl"))
        .current_dir(dir)
        .arg("--kubeconfig")
        .arg(dir.join("kubeconfig"))
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("running bfctl");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    eprintln!(
        "$ bfctl {} # {:?}\n{}{stdout}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code(), stdout)
}

#[test]
fn create_status_and_delete_a_real_gke_cluster() {
    let Ok(project) = std::env::var("BFCTL_E2E_GKE_PROJECT") else {
        eprintln!("skipped: BFCTL_E2E_GKE_PROJECT is not set (no real GKE to test against)");
        return;
    };
    let location =
        std::env::var("BFCTL_E2E_GKE_LOCATION").unwrap_or_else(|_| "europe-west1-b".into());
    let name = format!(
        "bfctl-e2e-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bfctl.yaml"),
        format!(
            "registry:\n  url: example.invalid/bf\ncarnet: \"201900006\"\ngke:\n  project: {project}\n  location: {location}\n  cluster: {name}\n  general:\n    minNodes: 1\n    maxNodes: 1\n"
        ),
    )
    .unwrap();
    let (code, _) = bfctl(dir.path(), &["cluster", "create"]);
    assert_eq!(code, Some(0), "cluster create");
    let (code, out) = bfctl(dir.path(), &["cluster", "create"]);
    assert_eq!(code, Some(0), "a second create");
    assert!(out.contains("exists"), "{out}");
    let (code, out) = bfctl(dir.path(), &["cluster", "status", "--output", "json"]);
    assert_eq!(code, Some(0), "status");
    let status: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(status["pools"][1]["nestedVirtualization"], true);
    let (code, _) = bfctl(dir.path(), &["cluster", "token"]);
    assert_eq!(code, Some(0), "token");
    let (code, _) = bfctl(dir.path(), &["cluster", "delete", "--yes"]);
    assert_eq!(code, Some(0), "delete");
    let (code, out) = bfctl(dir.path(), &["cluster", "status"]);
    assert_eq!(code, Some(1));
    assert!(out.contains("does not exist"), "{out}");
}

/// The registry bfctl provides, for real (a VM, addresses, a disk,
/// firewall rules, secrets: minutes and real money): `registry create`
/// (it waits until Zot answers over TLS to the push account and refuses an
/// anonymous caller), `registry status`, then `registry delete --yes`, and
/// an Artifact Registry repository made and deleted. Only with
/// `BFCTL_E2E_GKE_PROJECT`; the firewall admits the address bfctl calls
/// from.
#[test]
fn create_status_and_delete_a_real_registry() {
    let Ok(project) = std::env::var("BFCTL_E2E_GKE_PROJECT") else {
        eprintln!(
            "skipped: BFCTL_E2E_GKE_PROJECT is not set (no real Compute Engine, Secret Manager or Artifact Registry to test against)"
        );
        return;
    };
    let location =
        std::env::var("BFCTL_E2E_GKE_LOCATION").unwrap_or_else(|_| "europe-west1-b".into());
    let region = location
        .rsplit_once('-')
        .map_or(location.as_str(), |(r, _)| r)
        .to_string();
    let suffix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bfctl.yaml"),
        format!(
            "registry:\n  kind: zot\n  zot:\n    project: {project}\n    zone: {location}\n    name: bfctl-e2e-{suffix}\ncarnet: \"201900006\"\n"
        ),
    )
    .unwrap();
    let (code, _) = bfctl(dir.path(), &["registry", "create", "--wait", "900"]);
    let (status, out) = bfctl(dir.path(), &["registry", "status"]);
    let (deleted, _) = bfctl(dir.path(), &["registry", "delete", "--yes"]);
    assert_eq!(code, Some(0), "registry create");
    assert_eq!(status, Some(0), "registry status: {out}");
    assert_eq!(deleted, Some(0), "registry delete");

    std::fs::write(
        dir.path().join("bfctl.yaml"),
        format!(
            "registry:\n  kind: artifact-registry\n  artifactRegistry:\n    project: {project}\n    location: {region}\n    repository: bfctl-e2e-{suffix}\ncarnet: \"201900006\"\n"
        ),
    )
    .unwrap();
    let (code, out) = bfctl(dir.path(), &["registry", "create"]);
    let (deleted, _) = bfctl(dir.path(), &["registry", "delete", "--yes"]);
    assert!(out.contains("repository"), "{out}");
    assert!(
        matches!(code, Some(0) | Some(1)),
        "registry create (1: the nodes' role is not granted)"
    );
    assert_eq!(deleted, Some(0), "registry delete");
}
