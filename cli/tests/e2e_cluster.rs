//! End to end against a real cluster, only when `BFCTL_E2E_KUBECONFIG` names
//! a kubeconfig (and `BFCTL_E2E_CONFIG` a bfctl.yaml for it). Without them
//! the test says it was skipped and passes: no cluster can run where the
//! default test command runs.
//!
//! It runs `bfctl up`, a second `up` that must change nothing, `status
//! --output json` that must be healthy, a short `loadtest --cluster
//! --consumer-replicas 1,2`, and `teardown` (skipped with
//! `BFCTL_E2E_KEEP=1`). It creates real cloud resources (load balancers,
//! volumes): point it at a throwaway cluster.

use std::process::Command;
use std::time::Instant;

fn bfctl(kubeconfig: &str, config: &str, args: &[&str]) -> (bool, String) {
    let started = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_bfctl"))
        .args(["--kubeconfig", kubeconfig, "--config", config])
        .args(args)
        .output()
        .expect("running bfctl");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    eprintln!(
        "$ bfctl {} # {:?}, {:.1}s\n{}{stdout}",
        args.join(" "),
        output.status,
        started.elapsed().as_secs_f64(),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), stdout)
}

#[test]
fn up_status_teardown_on_a_real_cluster() {
    let Ok(kubeconfig) = std::env::var("BFCTL_E2E_KUBECONFIG") else {
        eprintln!(
            "skipped: BFCTL_E2E_KUBECONFIG is not set (set it and BFCTL_E2E_CONFIG to run bfctl against a real cluster)"
        );
        return;
    };
    let config = std::env::var("BFCTL_E2E_CONFIG").expect(
        "BFCTL_E2E_CONFIG must name the bfctl.yaml for the cluster in BFCTL_E2E_KUBECONFIG",
    );

    let (ok, _) = bfctl(&kubeconfig, &config, &["up", "--timeout", "1800"]);
    assert!(ok, "bfctl up failed");
    let started = Instant::now();
    let (ok, stdout) = bfctl(&kubeconfig, &config, &["up", "--skip-build"]);
    assert!(
        ok && stdout.starts_with("everything is unchanged"),
        "{stdout}"
    );
    eprintln!("no-op up took {:?}", started.elapsed());
    let (ok, stdout) = bfctl(&kubeconfig, &config, &["status", "--output", "json"]);
    assert!(ok);
    let status: serde_json::Value = serde_json::from_str(&stdout).expect("status JSON");
    assert_eq!(status["healthy"], true, "{stdout}");
    assert!(
        status["externalUrl"].is_string(),
        "no external URL: {stdout}"
    );
    // A short replica comparison: the Deployment scaled to 1, then 2
    // consumers, each loaded through the external address, every accepted
    // sale counted by the consumers (then back to consumer.replicas).
    let reports = std::env::temp_dir().join("bfctl-e2e-reports");
    let (ok, _) = bfctl(
        &kubeconfig,
        &config,
        &[
            "loadtest",
            "--cluster",
            "--consumer-replicas",
            "1,2",
            "--users",
            "20",
            "--duration",
            "10",
            "--report-dir",
            reports.to_str().expect("a UTF-8 temporary directory"),
        ],
    );
    assert!(ok, "the replica comparison on the cluster failed");
    if std::env::var("BFCTL_E2E_KEEP").as_deref() != Ok("1") {
        let (ok, stdout) = bfctl(&kubeconfig, &config, &["teardown", "--timeout", "1800"]);
        assert!(ok, "teardown left objects: {stdout}");
    }
}
