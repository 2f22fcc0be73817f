//! The apply engine, `status` and `teardown` against the in-process fake API
//! server (the `fake-apiserver` crate), with operator release files
//! served by a local HTTP server: ordering, parallelism, waits, timeouts,
//! reruns, conflicts, prune, interrupts and teardown order.

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bfctl::cluster::{self, Target};
use bfctl::plan::config::Config;
use bfctl::plan::operators::{sha256_hex, teardown_options};
use fake_apiserver::FakeApiServer;
use kube_apply::teardown::TeardownOptions;
use kube_apply::{Event, Interrupt, Observer, StepResult, UpOptions, UpReport};
use support::release_files::{release_files, serve_files};

const GATEWAY_CLASS: &str = "gke-l7-global-external-managed";

/// Records engine events with the time they arrived.
#[derive(Default)]
struct Recorder(Mutex<Vec<(Instant, Event)>>);

impl Observer for Recorder {
    fn event(&self, event: Event) {
        self.0.lock().unwrap().push((Instant::now(), event));
    }
}

impl Recorder {
    fn index_of(&self, wanted: impl Fn(&Event) -> bool) -> Option<usize> {
        self.0.lock().unwrap().iter().position(|(_, e)| wanted(e))
    }
    fn started(&self, step: &str) -> usize {
        self.index_of(|e| matches!(e, Event::StepStarted { step: s } if s == step))
            .unwrap_or_else(|| panic!("{step} never started"))
    }
    fn ready(&self, step: &str) -> usize {
        self.index_of(|e| matches!(e, Event::StepReady { step: s, .. } if s == step))
            .unwrap_or_else(|| panic!("{step} never became ready"))
    }
}

struct Harness {
    api: FakeApiServer,
    config: Config,
    target: Target,
    downloads: Arc<Mutex<usize>>,
    _dir: tempfile::TempDir,
}

impl Harness {
    async fn start(controller_delay: Duration) -> Harness {
        let files = release_files();
        let pins: String = files
            .iter()
            .map(|(name, bytes)| format!("    {name}: {}\n", sha256_hex(bytes)))
            .collect();
        let (mirror, downloads) = serve_files(files).await;
        let api = FakeApiServer::start(controller_delay, GATEWAY_CLASS).await;
        let dir = tempfile::tempdir().unwrap();
        let config = Config::parse(
            &format!(
                "registry:\n  url: zot.example.com/bf\ncarnet: \"201900006\"\noperators:\n  mirror: {mirror}\n  sha256:\n{pins}"
            ),
            "test bfctl.yaml",
        )
        .unwrap();
        let target = Target {
            kubeconfig: Some(api.kubeconfig(dir.path())),
            cache_dir: Some(dir.path().join("cache")),
            offline: false,
            verbose: false,
            state_dir: None,
        };
        Harness {
            api,
            config,
            target,
            downloads,
            _dir: dir,
        }
    }

    fn options(timeout: Duration) -> UpOptions {
        UpOptions {
            install: "blackfriday".into(),
            force: false,
            timeout,
            poll: Duration::from_millis(20),
        }
    }

    async fn up(&self, options: &UpOptions) -> (UpReport, Arc<Recorder>) {
        let recorder = Arc::new(Recorder::default());
        let (_keep, interrupt) = Interrupt::new();
        let (report, _notes) = cluster::up(
            &self.config,
            &self.target,
            options,
            recorder.clone(),
            interrupt,
        )
        .await
        .expect("up ran");
        (report, recorder)
    }

    async fn teardown(&self) -> kube_apply::teardown::TeardownReport {
        let options = TeardownOptions {
            poll: Duration::from_millis(20),
            ..teardown_options("blackfriday", false, Duration::from_secs(10), false)
        };
        cluster::teardown(
            &self.config,
            &self.target,
            &options,
            &kube_apply::Quiet,
            &|_: &[String]| false,
        )
        .await
        .expect("teardown ran")
    }
}

fn step_result<'a>(report: &'a UpReport, name: &str) -> &'a StepResult {
    &report
        .steps
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no step {name}"))
        .result
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_applies_in_dependency_order_in_parallel_and_a_second_up_changes_nothing() {
    let harness = Harness::start(Duration::from_millis(150)).await;
    let (report, events) = harness.up(&Harness::options(Duration::from_secs(20))).await;
    assert!(report.succeeded(), "{:#?}", report.failures());

    // Every step starts only after everything it depends on is ready.
    let plan_deps = [
        ("kafka", vec!["namespace", "operator-strimzi"]),
        ("valkey", vec!["namespace", "kubevirt"]),
        ("kubevirt", vec!["operator-kubevirt"]),
        ("producer", vec!["kafka"]),
        ("consumer", vec!["kafka", "valkey"]),
        ("gateway", vec!["producer"]),
        ("ingress", vec!["gateway"]),
        ("grafana", vec!["valkey"]),
    ];
    for (step, deps) in plan_deps {
        for dep in deps {
            assert!(
                events.ready(dep) < events.started(step),
                "{step} started before {dep} was ready"
            );
        }
    }
    // Independent steps run at the same time: both operators install
    // together, and the VM is waited on while Kafka still is.
    assert!(events.started("operator-kubevirt") < events.ready("operator-strimzi"));
    assert!(events.started("operator-strimzi") < events.ready("operator-kubevirt"));
    assert!(events.started("valkey") < events.ready("kafka"));

    // The Kafka CR was applied only after its CRD was established and
    // discovery refreshed (the fake serves the kind only from then on).
    let log = harness.api.log();
    let crd = log
        .iter()
        .position(|l| l == "APPLY CustomResourceDefinition kafkas.kafka.strimzi.io")
        .unwrap();
    let kafka = log
        .iter()
        .position(|l| l == "APPLY Kafka blackfriday/ventas-kafka")
        .unwrap();
    assert!(crd < kafka);
    // Strimzi's RoleBindings were rewritten from `myproject`.
    let binding = harness
        .api
        .get("RoleBinding", "blackfriday", "strimzi-cluster-operator")
        .expect("RoleBinding in the pipeline namespace");
    assert_eq!(binding["subjects"][0]["namespace"], "blackfriday");
    // The generated password Secret exists, and cloud-init carries it.
    let secret = harness
        .api
        .get("Secret", "blackfriday", "valkey-password")
        .unwrap();
    assert!(secret["data"]["password"].as_str().unwrap().len() >= 40);

    // Nothing changed: the second run applies nothing new and says so.
    harness.api.clear_log();
    let downloads = *harness.downloads.lock().unwrap();
    let started = Instant::now();
    let (again, _) = harness.up(&Harness::options(Duration::from_secs(20))).await;
    let elapsed = started.elapsed();
    assert!(again.unchanged(), "{:#?}", again.steps);
    assert!(harness.api.log().is_empty(), "{:?}", harness.api.log());
    assert_eq!(
        *harness.downloads.lock().unwrap(),
        downloads,
        "operator files come from the cache"
    );
    eprintln!("no-op up against the fake API server: {elapsed:?}");
    // The password was kept, not regenerated.
    assert_eq!(
        harness
            .api
            .get("Secret", "blackfriday", "valkey-password")
            .unwrap()["data"],
        secret["data"]
    );

    // Status agrees, names where to send traffic, and reads the consumers'
    // lag and Valkey figures through the API server's pod proxy.
    harness.api.set_pod_metrics(
        "# TYPE bf_consumer_lag gauge\nbf_consumer_lag 12\nbf_consumer_valkey_up 1\nbf_consumer_valkey_keys 27\n",
    );
    let status = cluster::status(&harness.config, &harness.target)
        .await
        .unwrap();
    assert!(
        status.healthy,
        "{}",
        bfctl::cluster::status::to_text(&status)
    );
    assert_eq!(status.external_url.as_deref(), Some("http://203.0.113.10"));
    assert_eq!(
        status.pipeline.consumers.len(),
        2,
        "one per consumer replica"
    );
    assert_eq!(status.pipeline.total_lag, Some(24));
    assert_eq!(status.pipeline.valkey_reachable, Some(true));
    assert_eq!(status.pipeline.valkey_keys, Some(27));
    harness
        .api
        .set_pod_metrics("bf_consumer_lag 0\nbf_consumer_valkey_up 0\n");
    let status = cluster::status(&harness.config, &harness.target)
        .await
        .unwrap();
    assert!(!status.healthy, "Valkey unreachable is not healthy");
    assert!(bfctl::cluster::status::to_text(&status).contains("Valkey NOT reachable"));
    harness.api.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_that_never_becomes_ready_times_out_by_name_and_a_rerun_continues() {
    let harness = Harness::start(Duration::from_millis(50)).await;
    harness.api.set_never_ready(&["ventas-kafka"]);
    let (report, _) = harness.up(&Harness::options(Duration::from_secs(4))).await;
    assert!(!report.succeeded());
    let StepResult::Failed(message) = step_result(&report, "kafka") else {
        panic!("kafka did not fail: {:?}", step_result(&report, "kafka"))
    };
    assert!(
        message.contains("Kafka blackfriday/ventas-kafka not ready after 4s")
            && message.contains("Insufficient memory"),
        "{message}"
    );
    // Its dependants never started; independent steps finished.
    for blocked in ["producer", "consumer", "gateway", "ingress"] {
        assert!(
            matches!(step_result(&report, blocked), StepResult::Skipped(_)),
            "{blocked}: {:?}",
            step_result(&report, blocked)
        );
    }
    for finished in ["valkey", "network-policies", "grafana"] {
        assert!(matches!(step_result(&report, finished), StepResult::Ready));
    }
    let error = report.failures().join("\n");
    assert!(
        error.contains("kafka: Kafka blackfriday/ventas-kafka"),
        "{error}"
    );

    // The cause goes away; the rerun finishes the rest.
    harness.api.set_never_ready(&[]);
    let (rerun, _) = harness.up(&Harness::options(Duration::from_secs(10))).await;
    assert!(rerun.succeeded(), "{:#?}", rerun.failures());
    assert!(
        harness
            .api
            .get("Deployment", "blackfriday", "gateway")
            .is_some()
    );
    harness.api.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupt_starts_nothing_new_and_a_rerun_finishes() {
    let harness = Harness::start(Duration::from_millis(50)).await;
    // Interrupt while Kafka is being waited on.
    harness.api.set_never_ready(&["ventas-kafka"]);
    let recorder = Arc::new(Recorder::default());
    let (trigger, interrupt) = Interrupt::new();
    // Fire once the engine is waiting on Kafka (however long it took to
    // get there on a busy machine).
    let watched = recorder.clone();
    let fire = tokio::spawn(async move {
        let deadline = Instant::now() + Duration::from_secs(60);
        while watched
            .index_of(|e| matches!(e, Event::Waiting { step, .. } if step == "kafka"))
            .is_none()
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let _ = trigger.send(true);
        trigger
    });
    let (report, _) = cluster::up(
        &harness.config,
        &harness.target,
        &Harness::options(Duration::from_secs(30)),
        recorder.clone(),
        interrupt,
    )
    .await
    .unwrap();
    let _trigger = fire.await.unwrap();
    assert!(report.interrupted);
    assert!(matches!(
        step_result(&report, "kafka"),
        StepResult::Interrupted
    ));
    assert!(matches!(
        step_result(&report, "producer"),
        StepResult::Skipped(_)
    ));
    assert!(
        harness
            .api
            .get("Deployment", "blackfriday", "producer")
            .is_none()
    );
    assert_eq!(report.interrupted_steps(), ["kafka"]);

    harness.api.set_never_ready(&[]);
    let (rerun, _) = harness.up(&Harness::options(Duration::from_secs(10))).await;
    assert!(rerun.succeeded(), "{:#?}", rerun.failures());
    harness.api.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicts_name_the_object_and_force_takes_ownership() {
    let harness = Harness::start(Duration::from_millis(30)).await;
    let (report, _) = harness.up(&Harness::options(Duration::from_secs(10))).await;
    assert!(report.succeeded());
    // Someone edits the gateway with kubectl.
    let mut edited = harness
        .api
        .get("Deployment", "blackfriday", "gateway")
        .unwrap();
    edited["spec"]["template"]["spec"]["containers"][0]["image"] = "evil:latest".into();
    harness.api.insert_as("kubectl-edit", edited);

    let (conflicted, _) = harness.up(&Harness::options(Duration::from_secs(10))).await;
    let StepResult::Failed(message) = step_result(&conflicted, "gateway") else {
        panic!("{:?}", step_result(&conflicted, "gateway"))
    };
    assert!(
        message.contains("Deployment blackfriday/gateway")
            && message.contains("kubectl-edit")
            && message.contains("--force"),
        "{message}"
    );
    let mut forced_options = Harness::options(Duration::from_secs(10));
    forced_options.force = true;
    let (forced, _) = harness.up(&forced_options).await;
    assert!(forced.succeeded(), "{:#?}", forced.failures());
    let image = harness
        .api
        .get("Deployment", "blackfriday", "gateway")
        .unwrap()["spec"]["template"]["spec"]["containers"][0]["image"]
        .clone();
    assert_eq!(image, "zot.example.com/bf/gateway:latest");
    harness.api.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_this_installs_objects_are_pruned_never_another_installs_or_controller_children() {
    let harness = Harness::start(Duration::from_millis(30)).await;
    let (report, _) = harness.up(&Harness::options(Duration::from_secs(10))).await;
    assert!(report.succeeded());
    // An object this install applied earlier and the templates no longer
    // render; the same kind of object of another install and of a bfctl
    // from before installs had names; and one a controller made with
    // copied labels.
    let labels = |install: Option<&str>| {
        let mut labels = serde_json::json!({"app.kubernetes.io/managed-by": "bfctl",
            "app.kubernetes.io/part-of": "blackfriday", "bfctl.io/component": "old"});
        if let Some(install) = install {
            labels["bfctl.io/install"] = install.into();
        }
        labels
    };
    let config_map = |name: &str, namespace: &str, install: Option<&str>| {
        serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": namespace, "labels": labels(install)}})
    };
    harness.api.insert_as(
        "bfctl",
        config_map("retired-settings", "blackfriday", Some("blackfriday")),
    );
    harness
        .api
        .insert_as("bfctl", config_map("theirs", "bf2", Some("bf2")));
    harness
        .api
        .insert_as("bfctl", config_map("older", "blackfriday", None));
    let kafka_uid = harness
        .api
        .get("Kafka", "blackfriday", "ventas-kafka")
        .unwrap()["metadata"]["uid"]
        .clone();
    harness.api.insert_as(
        "strimzi",
        serde_json::json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "ventas-kafka-kafka-bootstrap", "namespace": "blackfriday", "labels": labels(Some("blackfriday")),
                "ownerReferences": [{"apiVersion": "kafka.strimzi.io/v1", "kind": "Kafka", "name": "ventas-kafka", "uid": kafka_uid}]}}),
    );
    let (again, _) = harness.up(&Harness::options(Duration::from_secs(10))).await;
    assert!(again.succeeded());
    assert_eq!(again.pruned, vec!["ConfigMap blackfriday/retired-settings"]);
    for (namespace, name) in [
        ("blackfriday", "retired-settings"),
        ("bf2", "theirs"),
        ("blackfriday", "older"),
    ] {
        // A pruned object is gone or going (foreground deletion).
        let present = harness
            .api
            .get("ConfigMap", namespace, name)
            .is_some_and(|o| o["metadata"].get("deletionTimestamp").is_none());
        assert_eq!(present, name != "retired-settings", "{namespace}/{name}");
    }
    // The other installs are named, with what they hold.
    assert_eq!(again.other_installs["bf2"].objects, 1);
    assert_eq!(again.other_installs["bf2"].namespaces, ["bf2"]);
    assert_eq!(again.other_installs[""].objects, 1);
    assert!(
        harness
            .api
            .get("Service", "blackfriday", "ventas-kafka-kafka-bootstrap")
            .is_some()
    );
    harness.api.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn teardown_goes_workloads_custom_resources_operators_crds_namespaces_and_twice_is_fine() {
    let harness = Harness::start(Duration::from_millis(30)).await;
    let (report, _) = harness.up(&Harness::options(Duration::from_secs(10))).await;
    assert!(report.succeeded());
    harness.api.clear_log();
    let torn = harness.teardown().await;
    assert!(torn.left.is_empty(), "{:?}", torn.left);
    let log = harness.api.log();
    let last = |prefix: &str| log.iter().rposition(|l| l.starts_with(prefix)).unwrap();
    let first = |prefix: &str| log.iter().position(|l| l.starts_with(prefix)).unwrap();
    // workloads < custom resources < operators < CRDs < namespaces
    assert!(last("DELETE Deployment blackfriday/gateway") < first("DELETE Kafka "));
    assert!(last("DELETE VirtualMachine ") < first("DELETE KubeVirt "));
    assert!(
        last("DELETE Kafka ") < first("DELETE Deployment blackfriday/strimzi-cluster-operator")
    );
    assert!(last("DELETE KubeVirt ") < first("DELETE Deployment kubevirt/virt-operator"));
    assert!(
        last("DELETE Deployment kubevirt/virt-operator") < first("DELETE CustomResourceDefinition")
    );
    assert!(last("DELETE CustomResourceDefinition") < first("DELETE Namespace"));
    assert_eq!(
        harness.api.object_count(),
        1,
        "only GKE's GatewayClass is left"
    );

    let again = harness.teardown().await;
    assert!(
        again.deleted.is_empty() && again.left.is_empty(),
        "{again:?}"
    );
    harness.api.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_files_are_verified_cached_and_offline_uses_the_cache_only() {
    let harness = Harness::start(Duration::from_millis(10)).await;
    let files = release_files();
    let (mirror, _) = serve_files(files.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let file = |sha256: Option<String>| bfctl::plan::operators::ReleaseFile {
        file: "kubevirt-cr.yaml".into(),
        url: format!("{mirror}/kubevirt-cr.yaml"),
        sha256,
    };
    let right = sha256_hex(&files["kubevirt-cr.yaml"]);
    let online = bfctl::plan::operators::Fetcher::new(dir.path().to_path_buf(), false).unwrap();
    let offline = bfctl::plan::operators::Fetcher::new(dir.path().to_path_buf(), true).unwrap();

    let error = offline.fetch(&file(Some(right.clone()))).await.unwrap_err();
    assert!(format!("{error:#}").contains("--offline"), "{error:#}");
    let wrong = "0".repeat(64);
    let error = online.fetch(&file(Some(wrong))).await.unwrap_err();
    assert!(
        format!("{error:#}").contains(&right),
        "names the digest it got: {error:#}"
    );
    let error = online.fetch(&file(None)).await.unwrap_err();
    assert!(
        format!("{error:#}").contains("no pinned sha256"),
        "{error:#}"
    );
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "nothing unverified is cached"
    );

    assert_eq!(
        online.fetch(&file(Some(right.clone()))).await.unwrap(),
        files["kubevirt-cr.yaml"]
    );
    assert_eq!(
        offline.fetch(&file(Some(right))).await.unwrap(),
        files["kubevirt-cr.yaml"]
    );
    harness.api.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_data_keeps_the_volume_claims_and_their_namespace() {
    let harness = Harness::start(Duration::from_millis(30)).await;
    let (report, _) = harness.up(&Harness::options(Duration::from_secs(10))).await;
    assert!(report.succeeded());
    let options = TeardownOptions {
        poll: Duration::from_millis(20),
        ..teardown_options("blackfriday", true, Duration::from_secs(10), false)
    };
    let torn = cluster::teardown(
        &harness.config,
        &harness.target,
        &options,
        &kube_apply::Quiet,
        &|_: &[String]| false,
    )
    .await
    .unwrap();
    assert!(torn.left.is_empty(), "{:?}", torn.left);
    assert_eq!(
        torn.kept
            .iter()
            .map(|k| k.object.as_str())
            .collect::<Vec<_>>(),
        vec![
            "PersistentVolumeClaim blackfriday/valkey-data",
            "Namespace blackfriday"
        ]
    );
    assert!(
        harness
            .api
            .get("PersistentVolumeClaim", "blackfriday", "valkey-data")
            .is_some()
    );
    assert!(
        harness
            .api
            .get("Deployment", "blackfriday", "consumer")
            .is_none()
    );
    assert!(
        harness
            .api
            .get("Kafka", "blackfriday", "ventas-kafka")
            .is_none()
    );
    harness.api.stop();
}
