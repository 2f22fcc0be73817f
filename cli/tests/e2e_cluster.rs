//! End to end against a real cluster, only when `BFCTL_E2E_KUBECONFIG` names
//! a kubeconfig (and `BFCTL_E2E_CONFIG` a bfctl.yaml for it). Without them
//! the test says it was skipped and passes: no cluster can run where the
//! default test command runs.
//!
//! It runs `bfctl up`, a second `up` that must change nothing, `status
//! --output json` that must be healthy (exit 0), a short `loadtest --cluster
//! --consumer-replicas 1,2`, `loadtest --cluster --chaos` (every cluster
//! fault kind healed, nothing lost), every Grafana panel's query run by the
//! real Grafana and Redis plugin through `dashboard --cluster` and its frame
//! checked as the panel needs it (admin password `admin`, or
//! `BFCTL_E2E_GRAFANA_PASSWORD`), then issue 12's scenarios on the real API:
//! a KafkaTopic deleted by someone else is recreated by the next `up`; a
//! second install (the same bfctl.yaml in namespace `<namespace>-e2e2`)
//! comes up beside the first, names it, and its teardown leaves the first
//! healthy; and the first's teardown works offline with an empty operator
//! cache, exits 0 and prints its summary, twice (the second run skipped with
//! `BFCTL_E2E_KEEP=1`). It creates real cloud resources (load balancers,
//! volumes): point it at a throwaway cluster.

use std::process::Command;
use std::time::Instant;

fn bfctl(kubeconfig: &str, config: &str, args: &[&str]) -> (bool, String) {
    let (code, stdout) = bfctl_code(kubeconfig, config, args);
    (code == Some(0), stdout)
}

fn bfctl_code(kubeconfig: &str, config: &str, args: &[&str]) -> (Option<i32>, String) {
    let started = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_bfctl"))
        .args(["--kubeconfig", kubeconfig, "--config", config])
        .args(args)
        .stdin(std::process::Stdio::null())
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
    (output.status.code(), stdout)
}

/// The same configuration in another namespace: a second install.
fn second_install_config(config: &str) -> (std::path::PathBuf, String) {
    let text = std::fs::read_to_string(config).expect("reading BFCTL_E2E_CONFIG");
    let mut value: serde_json::Value =
        bfctl::yaml::parse(&text, config).expect("BFCTL_E2E_CONFIG is YAML");
    let namespace = value["namespace"]
        .as_str()
        .unwrap_or("blackfriday")
        .to_string();
    let second = format!("{namespace}-e2e2");
    value["namespace"] = second.clone().into();
    value["install"] = "".into();
    let path = std::env::temp_dir().join("bfctl-e2e-second.yaml");
    std::fs::write(&path, bfctl::yaml::to_string(&value).unwrap()).unwrap();
    (path, namespace)
}

/// Runs every panel's query through the real Grafana (its `/api/ds/query`,
/// as the dashboard does), reached by `bfctl dashboard --cluster`, and
/// checks each returned frame with the panel's own check.
fn grafana_panels_render(kubeconfig: &str, config: &str) {
    use bfctl::dashboard::frame::{Field, Frame, Values};
    use std::io::BufRead;

    let text = std::fs::read_to_string(config).expect("reading BFCTL_E2E_CONFIG");
    let value: serde_json::Value = bfctl::yaml::parse(&text, config).expect("YAML");
    let carnet = value["carnet"].as_str().expect("carnet").to_string();
    let category = blackfriday_proto::Category::for_carnet(&carnet).expect("a carnet digit");
    let mut forwarding = Command::new(env!("CARGO_BIN_EXE_bfctl"))
        .args(["--kubeconfig", kubeconfig, "--config", config])
        .args(["dashboard", "--cluster", "--output", "json"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("running bfctl dashboard --cluster");
    let mut line = String::new();
    std::io::BufReader::new(forwarding.stdout.take().unwrap())
        .read_line(&mut line)
        .expect("dashboard --cluster prints its address");
    let printed: serde_json::Value = serde_json::from_str(&line).expect("JSON");
    let url = printed["url"].as_str().expect("url").to_string();
    let password = std::env::var("BFCTL_E2E_GRAFANA_PASSWORD").unwrap_or_else(|_| "admin".into());
    let client = reqwest::blocking::Client::new();
    for panel in bfctl::dashboard::panels(&carnet, category) {
        let mut query = panel.query.target();
        query["datasource"] = serde_json::json!({ "type": "redis-datasource", "uid": "valkey" });
        let answer: serde_json::Value = client
            .post(format!("{url}api/ds/query"))
            .basic_auth("admin", Some(&password))
            .json(&serde_json::json!({ "queries": [query], "from": "now-15m", "to": "now" }))
            .send()
            .and_then(|r| r.json())
            .unwrap_or_else(|e| panic!("panel {}: {e}", panel.id));
        let frame = &answer["results"]["A"]["frames"][0];
        let fields = frame["schema"]["fields"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let values = frame["data"]["values"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let fields = fields
            .iter()
            .zip(values)
            .map(|(field, column)| {
                let column = column.as_array().cloned().unwrap_or_default();
                let values = match field["type"].as_str() {
                    Some("number") => {
                        Values::Number(column.iter().filter_map(|v| v.as_f64()).collect())
                    }
                    Some("time") => {
                        Values::Time(column.iter().filter_map(|v| v.as_i64()).collect())
                    }
                    _ => Values::String(
                        column
                            .iter()
                            .map(|v| v.as_str().unwrap_or_default().to_string())
                            .collect(),
                    ),
                };
                Field {
                    name: field["name"].as_str().unwrap_or_default().to_string(),
                    values,
                }
            })
            .collect();
        let frame = panel.transform(Frame {
            name: String::new(),
            fields,
        });
        if let Err(problem) = panel.check(&frame) {
            panic!(
                "panel {} \"{}\": {problem}\n{answer:#}",
                panel.id, panel.title
            );
        }
        eprintln!("panel {} renders: {}", panel.id, frame.shape());
    }
    let _ = forwarding.kill();
    let _ = forwarding.wait();
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

    // Faults under load (issue 16): the built-in cluster plan deletes a
    // consumer, the Kafka broker, a producer and a gateway pod and restarts
    // the Valkey VM through KubeVirt; each must heal, and every accepted
    // sale must be counted once.
    let (ok, stdout) = bfctl(
        &kubeconfig,
        &config,
        &[
            "loadtest",
            "--cluster",
            "--chaos",
            "--users",
            "20",
            "--duration",
            "300",
            "--recovery-timeout",
            "240",
            "--drain-timeout",
            "300",
            "--output",
            "json",
        ],
    );
    assert!(ok, "the chaos load test on the cluster failed: {stdout}");
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("loadtest JSON");
    assert_eq!(report["pipeline"]["lost"], 0, "{stdout}");
    assert_eq!(report["pipeline"]["duplicated"], 0, "{stdout}");
    for fault in report["faults"].as_array().expect("faults") {
        assert!(fault["recoveredAfter"].is_number(), "{fault}");
    }

    // What people look at (issue 17): Grafana through `dashboard --cluster`,
    // every panel's query run by the real Grafana and plugin, the frames it
    // returns transformed as the panel does and checked for what the panel
    // needs.
    grafana_panels_render(&kubeconfig, &config);

    // A KafkaTopic deleted by someone else is waited out and created again.
    let (_, namespace) = second_install_config(&config);
    let deleted = Command::new("kubectl")
        .args([
            "--kubeconfig",
            &kubeconfig,
            "-n",
            &namespace,
            "delete",
            "kafkatopic",
            "ventas-dlq",
            "--wait=false",
        ])
        .status()
        .expect("running kubectl");
    assert!(deleted.success());
    let (ok, _) = bfctl(
        &kubeconfig,
        &config,
        &["up", "--skip-build", "--timeout", "600"],
    );
    assert!(ok, "up did not recreate the deleted topic");

    // A second install beside the first: named, never touching it.
    let (second, first_namespace) = second_install_config(&config);
    let second = second.to_str().unwrap();
    let (ok, stdout) = bfctl(
        &kubeconfig,
        second,
        &["up", "--skip-build", "--timeout", "1800"],
    );
    assert!(
        ok && stdout.contains(&format!("another install, '{first_namespace}'")),
        "{stdout}"
    );
    let (ok, stdout) = bfctl(&kubeconfig, second, &["teardown", "--timeout", "1800"]);
    assert!(ok, "the second install's teardown left objects: {stdout}");
    let (code, stdout) = bfctl_code(&kubeconfig, &config, &["status"]);
    assert_eq!(
        code,
        Some(0),
        "the first install is no longer healthy: {stdout}"
    );

    if std::env::var("BFCTL_E2E_KEEP").as_deref() != Ok("1") {
        // Offline, with an empty operator cache: the inventory is enough.
        let empty = std::env::temp_dir().join("bfctl-e2e-empty-cache");
        let _ = std::fs::remove_dir_all(&empty);
        let (ok, stdout) = bfctl(
            &kubeconfig,
            &config,
            &[
                "--cache-dir",
                empty.to_str().unwrap(),
                "teardown",
                "--offline",
                "--timeout",
                "1800",
            ],
        );
        assert!(
            ok && stdout.contains("nothing of install"),
            "teardown left objects: {stdout}"
        );
        let (ok, stdout) = bfctl(&kubeconfig, &config, &["teardown"]);
        assert!(ok && stdout.contains("0 objects deleted"), "{stdout}");
    }
}
