//! The `bfctl` binary against the in-process fake API server: `up`, a
//! second `up` that changes nothing, `status` (text and JSON) and
//! `teardown`, as a user runs them. Run with `--nocapture` to see the
//! transcript.

mod support;

use std::time::Duration;

use fake_apiserver::FakeApiServer;
use support::cli::{FakeCluster, bfctl};

/// A fake API server and a directory holding its kubeconfig and a
/// bfctl.yaml (plus `extra` configuration lines).
async fn fake_cluster(extra: &str) -> (FakeApiServer, tempfile::TempDir, std::path::PathBuf) {
    let cluster = FakeCluster::start(extra).await;
    (cluster.api, cluster.dir, cluster.kubeconfig)
}

/// A real local pipeline on 127.0.0.1 whose gateway is the fake Gateway's
/// address, so that `loadtest --cluster` sends real load that stays on this
/// machine. Its processes die with the thread that started them
/// (PR_SET_PDEATHSIG), so one thread starts them and keeps them until
/// [`PipelineBehindTheGateway::stop`] (a tokio blocking thread may exit
/// when idle).
struct PipelineBehindTheGateway {
    stop: std::sync::mpsc::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl PipelineBehindTheGateway {
    /// With `follow_consumers`, the pipeline keeps as many consumer processes as the fake `consumer` Deployment
    /// has replicas, each one's metrics shown as its pod's: scaling the
    /// Deployment scales a real consumer group. Returns the gateway's URL.
    async fn start(api: &FakeApiServer, follow_consumers: bool) -> (Self, String) {
        let (url_sender, url) = std::sync::mpsc::channel::<Result<String, String>>();
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let follower_api = api.clone();
        let thread = std::thread::spawn(move || {
            // One consumer (the default): following starts from there.
            let options = testkit::pipeline::PipelineOptions::default();
            let mut pipeline = match testkit::pipeline::Pipeline::start(options) {
                Ok(pipeline) => pipeline,
                Err(error) => {
                    let _ = url_sender.send(Err(format!("{error:#}")));
                    return;
                }
            };
            let _ = url_sender.send(pipeline.gateway_url().map_err(|e| e.to_string()));
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                stopped.recv_timeout(Duration::from_millis(100))
            {
                if follow_consumers {
                    follow_the_consumer_deployment(&follower_api, &mut pipeline);
                }
            }
        });
        let gateway_url = tokio::task::spawn_blocking(move || url.recv().unwrap())
            .await
            .unwrap()
            .expect("a local pipeline behind the fake Gateway");
        api.set_gateway_address(gateway_url.trim_start_matches("http://"));
        (PipelineBehindTheGateway { stop, thread }, gateway_url)
    }

    async fn stop(self) {
        self.stop.send(()).unwrap();
        let thread = self.thread;
        tokio::task::spawn_blocking(move || thread.join().unwrap())
            .await
            .unwrap();
    }
}

/// A fake cluster (with `extra` configuration) where `bfctl up` ran, with
/// a real pipeline behind its Gateway whose consumers follow the consumer
/// Deployment.
async fn up_with_a_pipeline(
    extra: &str,
) -> (
    FakeApiServer,
    tempfile::TempDir,
    std::path::PathBuf,
    PipelineBehindTheGateway,
    String,
) {
    let (api, dir, kubeconfig) = fake_cluster(extra).await;
    let (pipeline, gateway_url) = PipelineBehindTheGateway::start(&api, true).await;
    let up = bfctl(
        dir.path(),
        &kubeconfig,
        &["up", "--skip-build", "--timeout", "30"],
    )
    .await;
    assert_eq!(up.code, 0, "{}", up.stderr);
    (api, dir, kubeconfig, pipeline, gateway_url)
}

/// One step of keeping the pipeline's consumers equal to the fake
/// Deployment's replicas, and their metrics shown as the pods'.
fn follow_the_consumer_deployment(api: &FakeApiServer, pipeline: &mut testkit::pipeline::Pipeline) {
    let wanted = api
        .get("Deployment", "blackfriday", "consumer")
        .and_then(|d| d["spec"]["replicas"].as_u64())
        .unwrap_or(1) as usize;
    while pipeline.consumers.len() < wanted {
        if pipeline.add_consumer().is_err() {
            break;
        }
    }
    pipeline.consumers.truncate(wanted);
    for (index, consumer) in pipeline.consumers.iter().enumerate() {
        if let Ok((_, body)) = testkit::pipeline::http_get(consumer.metrics_port, "/metrics") {
            api.set_pod_metrics_for(&format!("consumer-{index}"), &body);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_again_status_and_teardown_through_the_binary() {
    let (api, dir, kubeconfig) = fake_cluster("").await;

    api.set_pod_metrics("bf_consumer_lag 3\nbf_consumer_lag_other 9\nbf_consumer_valkey_up 1\nbf_consumer_valkey_keys 27\n");
    // The Gateway's address is a real pipeline's gateway on 127.0.0.1, so
    // that `loadtest --cluster` has somewhere real (and local) to send load.
    let (pipeline, gateway_url) = PipelineBehindTheGateway::start(&api, false).await;
    let up = bfctl(
        dir.path(),
        &kubeconfig,
        &["up", "--skip-build", "--timeout", "30"],
    )
    .await;
    assert_eq!(up.code, 0);
    assert!(up.stdout.contains("every step ready"), "{}", up.stdout);
    assert!(up.stderr.contains("kafka: ready"), "{}", up.stderr);

    let again = bfctl(dir.path(), &kubeconfig, &["up", "--skip-build"]).await;
    assert_eq!(again.code, 0);
    assert!(
        again.stdout.starts_with("everything is unchanged"),
        "{}",
        again.stdout
    );

    let status = bfctl(dir.path(), &kubeconfig, &["status"]).await;
    assert_eq!(status.code, 0);
    assert!(
        status.stdout.contains(&format!("traffic: {gateway_url}")),
        "{}",
        status.stdout
    );
    assert!(
        status.stdout.contains("overall: healthy"),
        "{}",
        status.stdout
    );
    assert!(
        status
            .stdout
            .contains("consumers: 2 answering, lag 6 records; Valkey reachable, 27 keys"),
        "{}",
        status.stdout
    );

    let json = bfctl(dir.path(), &kubeconfig, &["status", "--output", "json"]).await;
    let parsed: serde_json::Value = serde_json::from_str(&json.stdout).expect("status JSON");
    assert_eq!(parsed["healthy"], true);
    let gateway = parsed["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "gateway")
        .unwrap();
    assert_eq!(gateway["objects"][0]["replicas"]["ready"], 1);

    // `loadtest --cluster` (load where `status` says traffic goes, counted
    // by the consumers) is in the tests below, whose consumers' metrics are
    // the real pipeline's.
    pipeline.stop().await;

    let teardown = bfctl(dir.path(), &kubeconfig, &["teardown"]).await;
    assert_eq!(teardown.code, 0);
    assert!(
        teardown
            .stdout
            .contains("nothing of install 'blackfriday' is left"),
        "{}",
        teardown.stdout
    );
    let status = bfctl(dir.path(), &kubeconfig, &["status"]).await;
    assert!(
        status
            .stdout
            .contains("namespace                missing      1 objects"),
        "{}",
        status.stdout
    );
    api.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_replicas_scale_the_deployment_and_count_by_the_consumers() {
    let (api, dir, kubeconfig, pipeline, _) =
        up_with_a_pipeline("consumer:\n  replicas: 1\n").await;

    let reports = dir.path().join("reports");
    let compared = bfctl(
        dir.path(),
        &kubeconfig,
        &[
            "loadtest",
            "--cluster",
            "--consumer-replicas",
            "1,2",
            "--users",
            "5",
            "--duration",
            "2",
            "--report-dir",
            reports.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(compared.code, 0, "{}", compared.stderr);
    assert!(
        compared
            .stderr
            .contains("partitions owned: consumer-0: 3, consumer-1: 3 (of 6)")
            || compared.stderr.contains("consumer-1: 3, consumer-0: 3"),
        "{}",
        compared.stderr
    );
    let scaled: Vec<String> = api
        .log()
        .into_iter()
        .filter(|line| line.starts_with("SCALE"))
        .collect();
    assert_eq!(
        scaled,
        [
            "SCALE Deployment blackfriday/consumer 1",
            "SCALE Deployment blackfriday/consumer 2",
            "SCALE Deployment blackfriday/consumer 1",
        ],
        "scaled per count, then back to consumer.replicas"
    );
    let table = std::fs::read_to_string(reports.join("replicas.md")).unwrap();
    assert_eq!(table.lines().count(), 4, "{table}");
    for row in table.lines().skip(2) {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        assert!(cells[4].parse::<i64>().unwrap() > 0, "{row}");
        assert_eq!(
            cells[4], cells[5],
            "accepted = counted by the consumers: {row}"
        );
        assert_eq!((cells[6], cells[7]), ("0", "0"), "{row}");
    }
    pipeline.stop().await;
    api.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_cluster_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    // A port nothing listens on: bind one, then drop it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(
        &kubeconfig,
        format!("apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: http://127.0.0.1:{port}\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\nusers:\n- name: u\n  user: {{}}\n"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("bfctl.yaml"),
        "registry:\n  url: zot.example.com/bf\ncarnet: \"201900006\"\n",
    )
    .unwrap();
    let run = bfctl(dir.path(), &kubeconfig, &["up", "--skip-build"]).await;
    assert_eq!(run.code, 2);
    assert!(
        run.stderr
            .contains("the Kubernetes API server did not answer"),
        "{}",
        run.stderr
    );
}

/// `loadtest --cluster --chaos`: the built-in cluster plan against the
/// fake API server with a real pipeline behind the fake Gateway. Each
/// fault is the right call (a pod of each Deployment and the Strimzi broker
/// pod deleted by name, the Valkey VM restarted through KubeVirt's
/// subresource), each is waited on until the pipeline is whole again (the
/// deleted pod replaced, the VM's new instance Ready), and the verdict is
/// read from the consumers' view of Valkey's count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_on_a_cluster_deletes_pods_restarts_the_vm_and_reads_the_verdict() {
    let (api, dir, kubeconfig, pipeline, gateway_url) = up_with_a_pipeline("").await;
    // A pod of another team in the same namespace, labelled like ours: never
    // a victim (victims are found by this install's Deployment's selector).
    api.insert_as(
        "someone",
        serde_json::json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "aaa-theirs", "namespace": "blackfriday",
                "labels": {"app.kubernetes.io/name": "other"}},
            "spec": {"containers": [{"name": "c", "image": "theirs"}]},
            "status": {"phase": "Running"}}),
    );

    let run = bfctl(
        dir.path(),
        &kubeconfig,
        &[
            "loadtest",
            "--cluster",
            "--chaos",
            "--users",
            "5",
            "--duration",
            "18",
            "--chart",
            dir.path().join("chaos.svg").to_str().unwrap(),
            "--output",
            "json",
        ],
    )
    .await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    // The load went where `status` says traffic goes.
    assert_eq!(report["target"], gateway_url.as_str(), "{report:#}");
    let faults = report["faults"].as_array().unwrap();
    assert_eq!(faults.len(), 5, "{report:#}");
    for fault in faults {
        assert!(fault["recoveredAfter"].as_f64().is_some(), "{fault:#}");
    }
    let faulted: Vec<String> = api
        .log()
        .into_iter()
        .filter(|line| line.starts_with("DELETE Pod") || line.starts_with("RESTART"))
        .collect();
    assert_eq!(
        faulted,
        [
            "DELETE Pod blackfriday/consumer-0",
            "DELETE Pod blackfriday/ventas-kafka-dual-role-0",
            "RESTART VirtualMachine blackfriday/valkey",
            "DELETE Pod blackfriday/producer-0",
            "DELETE Pod blackfriday/gateway-0",
        ],
        "{report:#}"
    );
    assert!(api.get("Pod", "blackfriday", "aaa-theirs").is_some());
    let check = &report["pipeline"];
    assert_eq!(
        check["countedBy"], "Valkey's count, as the consumers last read it",
        "{report:#}"
    );
    let accepted = report["salesAccepted"].as_i64().unwrap();
    assert!(accepted > 0, "{report:#}");
    assert_eq!(check["salesCounted"].as_i64(), Some(accepted), "{report:#}");
    assert_eq!(
        (&check["lost"], &check["duplicated"]),
        (&0.into(), &0.into())
    );
    // The fake's restart refuses what virt-api refuses: no such VM (404),
    // a VM whose runStrategy is Halted (409).
    let restart = |name: &str| {
        format!(
            "{}/apis/subresources.kubevirt.io/v1/namespaces/blackfriday/virtualmachines/{name}/restart",
            api.url()
        )
    };
    let client = reqwest::Client::new();
    let missing = client
        .put(restart("missing"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    api.insert_as(
        "someone",
        serde_json::json!({"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
            "metadata": {"name": "halted", "namespace": "blackfriday"},
            "spec": {"runStrategy": "Halted", "template": {"spec": {}}}}),
    );
    let halted = client
        .put(restart("halted"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(halted.status(), 409);
    let text = halted.text().await.unwrap();
    assert!(
        text.contains("RunStategy Halted does not support manual restart requests"),
        "{text}"
    );
    pipeline.stop().await;
    api.stop();
}

/// `dashboard --cluster`: the address it prints reaches Grafana through the
/// API server's port-forward (the fake forwards the `grafana-0` pod's port
/// 3000 to a stand-in HTTP server), a connection per port-forward; with no
/// Grafana of this install it refuses, naming what is missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_on_a_cluster_port_forwards_grafana_through_the_api_server() {
    let (api, dir, kubeconfig) = fake_cluster("").await;

    // Before `up`: nothing of this install to forward to.
    let missing = bfctl(dir.path(), &kubeconfig, &["dashboard", "--cluster"]).await;
    assert_eq!(missing.code, 2, "{}", missing.stderr);
    assert!(
        missing.stderr.contains("Deployment") && missing.stderr.contains("grafana"),
        "{}",
        missing.stderr
    );

    let up = bfctl(
        dir.path(),
        &kubeconfig,
        &["up", "--skip-build", "--timeout", "30"],
    )
    .await;
    assert_eq!(up.code, 0, "{}", up.stderr);

    // Grafana's stand-in: what its health endpoint answers.
    let grafana = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let grafana_address = grafana.local_addr().unwrap();
    let app = axum::Router::new().route(
        "/api/health",
        axum::routing::get(|| async { r#"{"database":"ok","version":"12.3.0"}"# }),
    );
    let stand_in = tokio::spawn(async move { axum::serve(grafana, app).await });
    api.forward_pod_port("grafana-0", 3000, grafana_address);

    let mut forwarding = tokio::process::Command::new(support::cli::binary())
        .current_dir(dir.path())
        .args(["--kubeconfig"])
        .arg(&kubeconfig)
        .args(["--cache-dir"])
        .arg(dir.path().join("cache"))
        .args(["dashboard", "--cluster", "--output", "json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdout = forwarding.stdout.take().unwrap();
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
    let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("dashboard --cluster prints its address")
        .unwrap()
        .expect("a line");
    let printed: serde_json::Value = serde_json::from_str(&first).unwrap();
    assert_eq!(printed["pod"], "grafana-0", "{printed}");
    let url = printed["url"].as_str().unwrap().to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");

    // Two requests, two connections: each port-forwarded on its own.
    for _ in 0..2 {
        let body = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .unwrap()
            .get(format!("{url}api/health"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(body, r#"{"database":"ok","version":"12.3.0"}"#);
    }
    let forwards = api
        .log()
        .iter()
        .filter(|line| *line == "PORTFORWARD Pod blackfriday/grafana-0:3000")
        .count();
    assert_eq!(forwards, 2, "{:?}", api.log());

    forwarding.kill().await.unwrap();
    stand_in.abort();
}
