//! The thirteen things a real Kubernetes v1.34 API server showed that the
//! old fake hid (issue 12), each through the `bfctl` binary as a user runs
//! it, against the fake API server that now behaves like the recorded one
//! (the `fake-apiserver` crate). Run with `--nocapture` for transcripts.

mod support;

use std::time::Duration;

use support::cli::{FakeCluster, bfctl_with_cache};

/// Observation 1: a teardown that deletes the CRDs ends clean: exit 0 and
/// its summary, although the kinds are gone (LIST answers 404 text/plain).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn teardown_after_the_crds_go_exits_0_with_its_summary() {
    let cluster = FakeCluster::start("").await;
    assert_eq!(cluster.bfctl(&["up", "--skip-build"]).await.code, 0);
    let teardown = cluster.bfctl(&["teardown"]).await;
    assert_eq!(teardown.code, 0, "{}", teardown.stderr);
    assert!(
        teardown
            .stdout
            .contains("nothing of install 'blackfriday' is left"),
        "{}",
        teardown.stdout
    );
    assert!(
        !cluster.api.serves("kafka.strimzi.io", "kafkas"),
        "the CRDs are gone, and with them the kind"
    );
    assert!(!teardown.stderr.contains("404 page not found"));
    // A second teardown finds nothing and says so.
    let again = cluster.bfctl(&["teardown"]).await;
    assert_eq!(again.code, 0);
    assert!(
        again.stdout.contains("0 objects deleted"),
        "{}",
        again.stdout
    );
    cluster.api.stop();
}

/// Observation 2: a second install (another namespace) never deletes or
/// re-points the first one's objects; `up` names the other install.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_install_leaves_the_first_untouched() {
    let cluster = FakeCluster::start("").await;
    assert_eq!(cluster.bfctl(&["up", "--skip-build"]).await.code, 0);
    let other = cluster.write_config("other.yaml", "namespace: bf2\n");
    let other = other.to_str().unwrap();
    let second = cluster.bfctl(&["-c", other, "up", "--skip-build"]).await;
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert!(
        second
            .stdout
            .contains("another install, 'blackfriday', is in this cluster")
            && second
                .stdout
                .contains("bfctl teardown --install blackfriday"),
        "{}",
        second.stdout
    );
    let api = &cluster.api;
    for (kind, namespace, name) in [
        ("Namespace", "", "blackfriday"),
        ("PersistentVolumeClaim", "blackfriday", "valkey-data"),
        ("Kafka", "blackfriday", "ventas-kafka"),
        ("KafkaTopic", "blackfriday", "ventas"),
        ("Deployment", "blackfriday", "strimzi-cluster-operator"),
        ("Kafka", "bf2", "ventas-kafka"),
    ] {
        let live = api
            .get(kind, namespace, name)
            .unwrap_or_else(|| panic!("{kind} {namespace}/{name} is gone"));
        assert!(live["metadata"].get("deletionTimestamp").is_none());
    }
    // Each install's Strimzi operator has bindings of its own.
    let first = api
        .get(
            "ClusterRoleBinding",
            "",
            "strimzi-cluster-operator-blackfriday",
        )
        .unwrap();
    assert_eq!(first["subjects"][0]["namespace"], "blackfriday");
    let second_binding = api
        .get("ClusterRoleBinding", "", "strimzi-cluster-operator-bf2")
        .unwrap();
    assert_eq!(second_binding["subjects"][0]["namespace"], "bf2");

    // Tearing the second down leaves the first whole, and says what it
    // used of the first without owning it.
    let teardown = cluster.bfctl(&["-c", other, "teardown"]).await;
    assert_eq!(teardown.code, 0, "{}", teardown.stdout);
    assert!(
        teardown
            .stdout
            .contains("kept: CustomResourceDefinition kafkas.kafka.strimzi.io (not this install's: bfctl install 'blackfriday'"),
        "{}",
        teardown.stdout
    );
    assert!(api.get("Kafka", "bf2", "ventas-kafka").is_none());
    assert!(api.get("Namespace", "", "bf2").is_none());
    for (kind, namespace, name) in [
        ("Kafka", "blackfriday", "ventas-kafka"),
        ("PersistentVolumeClaim", "blackfriday", "valkey-data"),
        ("CustomResourceDefinition", "", "kafkas.kafka.strimzi.io"),
        ("Deployment", "kubevirt", "virt-operator"),
    ] {
        assert!(api.get(kind, namespace, name).is_some(), "{kind} {name}");
    }
    // And the first one, told by name, goes whole.
    let first_down = cluster
        .bfctl(&["teardown", "--install", "blackfriday"])
        .await;
    assert_eq!(first_down.code, 0, "{}", first_down.stdout);
    assert!(api.get("Kafka", "blackfriday", "ventas-kafka").is_none());
    cluster.api.stop();
}

/// The Strimzi CRDs as someone else installed them, established.
fn install_strimzi_crds_as_another_team(cluster: &FakeCluster) {
    let shared = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/fixtures/strimzi-1.2.0");
    for entry in std::fs::read_dir(&shared).unwrap() {
        let path = entry.unwrap().path();
        if !path.to_str().unwrap().contains("-Crd-") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let crd: serde_json::Value = bfctl::yaml::parse(&text, "a CRD").unwrap();
        cluster.api.insert_as("helm", crd);
    }
}

/// Observation 3: CRDs that existed before bfctl are used as they are (no
/// conflict, no --force), never deleted, and another team's Kafka survives
/// the teardown; an incompatible CRD is a clear error naming the versions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pre_existing_crds_and_other_teams_resources_survive_teardown() {
    let cluster = FakeCluster::start("").await;
    install_strimzi_crds_as_another_team(&cluster);
    // The controllers establish them; then another team has a Kafka.
    let api = &cluster.api;
    for _ in 0..100 {
        if api.serves("kafka.strimzi.io", "kafkas") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    api.insert_as(
        "other-team",
        serde_json::json!({"apiVersion": "kafka.strimzi.io/v1", "kind": "Kafka",
            "metadata": {"name": "theirs", "namespace": "other-team"}, "spec": {"kafka": {}}}),
    );
    let up = cluster.bfctl(&["up", "--skip-build"]).await;
    assert_eq!(up.code, 0, "{}", up.stderr);
    assert!(
        up.stdout.contains(
            "not this install's, used as it is: CustomResourceDefinition kafkas.kafka.strimzi.io"
        ),
        "{}",
        up.stdout
    );
    let teardown = cluster.bfctl(&["teardown"]).await;
    assert_eq!(teardown.code, 0, "{}", teardown.stdout);
    assert!(
        teardown.stdout.contains(
            "kept: CustomResourceDefinition kafkas.kafka.strimzi.io (not this install's: not made by bfctl: it existed before"
        ),
        "{}",
        teardown.stdout
    );
    assert!(api.get("Kafka", "other-team", "theirs").is_some());
    assert!(
        api.get("CustomResourceDefinition", "", "kafkas.kafka.strimzi.io")
            .is_some()
    );
    assert!(api.get("Kafka", "blackfriday", "ventas-kafka").is_none());
    cluster.api.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incompatible_crd_and_a_foreign_object_are_refused_and_force_never_leads_to_deletion() {
    let cluster = FakeCluster::start("").await;
    let api = &cluster.api;
    // Another team's kafkatopics CRD that serves only an old version.
    api.insert_as(
        "helm",
        serde_json::json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "kafkatopics.kafka.strimzi.io"},
            "spec": {"group": "kafka.strimzi.io", "scope": "Namespaced",
                "names": {"kind": "KafkaTopic", "plural": "kafkatopics", "singular": "kafkatopic", "listKind": "KafkaTopicList"},
                "versions": [{"name": "v1beta2", "served": true, "storage": true}]}}),
    );
    let up = cluster
        .bfctl(&["up", "--skip-build", "--timeout", "20"])
        .await;
    assert_eq!(up.code, 2);
    assert!(
        up.stderr.contains(
            "CustomResourceDefinition kafkatopics.kafka.strimzi.io exists and is not this install's"
        ) && up.stderr.contains("it serves v1beta2, and bfctl needs v1"),
        "{}",
        up.stderr
    );
    // Not even --force replaces it.
    let forced = cluster
        .bfctl(&["up", "--skip-build", "--force", "--timeout", "20"])
        .await;
    assert_eq!(forced.code, 2);
    api.vanish(
        "CustomResourceDefinition",
        "",
        "kafkatopics.kafka.strimzi.io",
    );

    // A ClusterRole of the Strimzi bundle that someone else made differently.
    api.insert_as(
        "someone",
        serde_json::json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "strimzi-kafka-client"},
            "rules": [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "watch"]}]}),
    );
    let refused = cluster
        .bfctl(&["up", "--skip-build", "--timeout", "20"])
        .await;
    assert_eq!(refused.code, 2);
    assert!(
        refused.stderr.contains("ClusterRole strimzi-kafka-client exists and is not this install's (not made by bfctl: it existed before); it differs from what bfctl renders at .rules"),
        "{}",
        refused.stderr
    );
    let forced = cluster
        .bfctl(&["up", "--skip-build", "--force", "--timeout", "20"])
        .await;
    assert_eq!(forced.code, 0, "{}", forced.stderr);
    let taken = api.get("ClusterRole", "", "strimzi-kafka-client").unwrap();
    assert!(
        taken["metadata"]["labels"]
            .get("bfctl.io/install")
            .is_none(),
        "--force takes fields, not ownership: {taken}"
    );
    let teardown = cluster.bfctl(&["teardown"]).await;
    assert_eq!(teardown.code, 0, "{}", teardown.stdout);
    assert!(
        api.get("ClusterRole", "", "strimzi-kafka-client").is_some(),
        "--force never turns into a deletion of someone else's object"
    );
    cluster.api.stop();
}

/// Observation 4: objects being deleted are waited out and created again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_recreates_objects_that_were_being_deleted() {
    let cluster = FakeCluster::start("").await;
    assert_eq!(cluster.bfctl(&["up", "--skip-build"]).await.code, 0);
    let api = &cluster.api;
    let uid_before =
        api.get("KafkaTopic", "blackfriday", "ventas-dlq").unwrap()["metadata"]["uid"].clone();
    // Another client deletes the topics; their finalizer holds them a while
    // (the topic operator deletes the topic in Kafka first).
    api.set_cleanup_delay(Duration::from_secs(2));
    assert!(api.delete_as_other("KafkaTopic", "blackfriday", "ventas-dlq"));
    assert!(api.delete_as_other("KafkaTopic", "blackfriday", "ventas"));
    let held = api.get("KafkaTopic", "blackfriday", "ventas-dlq").unwrap();
    assert!(held["metadata"].get("deletionTimestamp").is_some());
    let up = cluster
        .bfctl(&["up", "--skip-build", "--timeout", "20"])
        .await;
    assert_eq!(up.code, 0, "{}", up.stderr);
    assert!(
        up.stderr.contains(
            "KafkaTopic blackfriday/ventas: being deleted (finalizer strimzi.io/topic-operator"
        ),
        "{}",
        up.stderr
    );
    let again = api.get("KafkaTopic", "blackfriday", "ventas-dlq").unwrap();
    assert!(again["metadata"].get("deletionTimestamp").is_none());
    assert_ne!(again["metadata"]["uid"], uid_before, "created anew");
    cluster.api.stop();
}

/// Observation 5: a namespace stuck on finalizers whose controller is gone
/// is named with the finalizer, the controller and the way out; teardown
/// reports terminating objects as such and `--remove-finalizers` ends it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_stuck_on_finalizers_is_named_with_the_way_out() {
    let cluster = FakeCluster::start("").await;
    assert_eq!(cluster.bfctl(&["up", "--skip-build"]).await.code, 0);
    let api = &cluster.api;
    // The Kafka cluster (and with it the topic operator) is gone; then the
    // namespace is deleted: the topics keep their finalizer.
    assert!(api.vanish("Kafka", "blackfriday", "ventas-kafka"));
    assert!(api.delete_as_other("Namespace", "", "blackfriday"));
    let mut stuck = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if let Some(namespace) = api.get("Namespace", "", "blackfriday")
            && namespace
                .to_string()
                .contains("NamespaceFinalizersRemaining")
        {
            stuck = true;
            break;
        }
    }
    assert!(stuck, "the namespace reports its remaining finalizers");

    let up = cluster
        .bfctl(&["up", "--skip-build", "--timeout", "2"])
        .await;
    assert_eq!(up.code, 2);
    assert!(
        up.stderr
            .contains("Namespace blackfriday is still being deleted")
            && up
                .stderr
                .contains("strimzi.io/topic-operator in 2 resource instances")
            && up.stderr.contains("Strimzi's topic operator")
            && up.stderr.contains("bfctl teardown --remove-finalizers"),
        "{}",
        up.stderr
    );

    let teardown = cluster.bfctl(&["teardown", "--timeout", "2"]).await;
    assert_eq!(teardown.code, 1, "something is left: {}", teardown.stdout);
    assert!(
        teardown
            .stdout
            .contains("already being deleted: KafkaTopic blackfriday/ventas"),
        "{}",
        teardown.stdout
    );
    assert!(
        !teardown.stdout.contains("deleted KafkaTopic")
            && !teardown.stderr.contains("deleted KafkaTopic"),
        "terminating topics are not reported as deleted: {}",
        teardown.stderr
    );
    assert!(
        teardown.stdout.contains("left: KafkaTopic blackfriday/ventas: being deleted (finalizer strimzi.io/topic-operator")
            && teardown.stdout.contains("kubectl patch kafkatopic.kafka.strimzi.io ventas -n blackfriday --type merge"),
        "{}",
        teardown.stdout
    );
    // Without a terminal and without --yes, nothing is removed.
    let not_asked = cluster
        .bfctl(&["teardown", "--timeout", "2", "--remove-finalizers"])
        .await;
    assert_eq!(not_asked.code, 1);
    assert!(
        not_asked.stderr.contains("pass --yes"),
        "{}",
        not_asked.stderr
    );
    let forced = cluster
        .bfctl(&["teardown", "--timeout", "5", "--remove-finalizers", "--yes"])
        .await;
    assert_eq!(forced.code, 0, "{}", forced.stdout);
    assert!(
        forced
            .stdout
            .contains("finalizers removed: KafkaTopic blackfriday/ventas"),
        "{}",
        forced.stdout
    );
    assert!(api.get("Namespace", "", "blackfriday").is_none());
    cluster.api.stop();
}

/// Observation 6: status and teardown work with an empty operator cache
/// and no way to download: what to delete comes from the install itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_and_teardown_work_offline_with_an_empty_cache() {
    let cluster = FakeCluster::start("").await;
    assert_eq!(cluster.bfctl(&["up", "--skip-build"]).await.code, 0);
    cluster.api.set_pod_metrics(HEALTHY_METRICS);
    let empty = cluster.path().join("empty-cache");
    let status = bfctl_with_cache(
        cluster.path(),
        &cluster.kubeconfig,
        &empty,
        &["status", "--offline"],
    )
    .await;
    assert_eq!(status.code, 0, "{}{}", status.stdout, status.stderr);
    assert!(
        status.stdout.contains("operator-strimzi")
            && status.stdout.contains("note: operator files not available"),
        "{}",
        status.stdout
    );
    let teardown = bfctl_with_cache(
        cluster.path(),
        &cluster.kubeconfig,
        &empty,
        &["teardown", "--offline"],
    )
    .await;
    assert_eq!(teardown.code, 0, "{}{}", teardown.stdout, teardown.stderr);
    assert!(
        cluster
            .api
            .get("Deployment", "blackfriday", "strimzi-cluster-operator")
            .is_none()
    );
    assert!(
        cluster
            .api
            .get("Deployment", "kubevirt", "virt-operator")
            .is_none()
    );
    cluster.api.stop();
}

const HEALTHY_METRICS: &str =
    "bf_consumer_lag 3\nbf_consumer_valkey_up 1\nbf_consumer_valkey_keys 27\n";

/// Observations 7 and 8: an autoscaler that cannot scale is not ready;
/// "healthy" only when every figure could be read and is healthy; exit 0
/// healthy, 1 not; errors are one readable line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_is_honest_about_autoscalers_consumers_and_its_exit_code() {
    let cluster = FakeCluster::start("").await;
    assert_eq!(cluster.bfctl(&["up", "--skip-build"]).await.code, 0);
    let api = &cluster.api;
    api.set_pod_metrics(HEALTHY_METRICS);
    let healthy = cluster.bfctl(&["status"]).await;
    assert_eq!(healthy.code, 0, "{}", healthy.stdout);
    assert!(healthy.stdout.contains("overall: healthy"));

    // The pods' IPs are ones the API server will not proxy to.
    api.refuse_pod_proxy(true);
    let refused = cluster.bfctl(&["status"]).await;
    assert_eq!(refused.code, 1, "{}", refused.stdout);
    assert!(
        refused
            .stdout
            .contains("HTTP 400 BadRequest: address not allowed")
            && refused.stdout.contains("overall: not healthy: consumer ")
            && !refused.stdout.contains("consumers: 2 answering"),
        "{}",
        refused.stdout
    );
    assert!(!refused.stdout.contains("Status {") && !refused.stdout.contains("Some("));
    let json = cluster.bfctl(&["status", "--output", "json"]).await;
    assert_eq!(json.code, 1);
    let parsed: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(parsed["healthy"], false);
    api.refuse_pod_proxy(false);

    // No metrics server: the autoscalers cannot scale.
    let without = FakeCluster::start("").await;
    without.api.without_metrics_server();
    assert_eq!(without.bfctl(&["up", "--skip-build"]).await.code, 0);
    without.api.set_pod_metrics(HEALTHY_METRICS);
    let mut status = without.bfctl(&["status"]).await;
    for _ in 0..20 {
        if status.stdout.contains("ScalingActive=False") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        status = without.bfctl(&["status"]).await;
    }
    assert_eq!(status.code, 1);
    assert!(
        status.stdout.contains("HorizontalPodAutoscaler blackfriday/gateway failed: ScalingActive=False (FailedGetResourceMetric)")
            && status.stdout.contains("is a metrics server (metrics.k8s.io) installed?")
            && status.stdout.contains("overall: not healthy"),
        "{}",
        status.stdout
    );
    cluster.api.stop();
    without.api.stop();
}

/// Observations 9, 10 and 11: every request says who sends it; a command
/// says only the warnings that concern it; CRD waits are one line per step;
/// the first no-op `up` changes nothing (a claim's resourceVersion bump on
/// a no-op apply is not a change).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_agent_quiet_output_and_a_no_op_up_that_reports_no_change() {
    let cluster =
        FakeCluster::start("registry:\n  url: zot.example.com/bf\n  insecure: true\n").await;
    let up = cluster.bfctl(&["up", "--skip-build"]).await;
    assert_eq!(up.code, 0, "{}", up.stderr);
    let crd_lines = up
        .stderr
        .lines()
        .filter(|l| l.contains("Established"))
        .count();
    assert!(
        crd_lines <= 2,
        "one line per operator step, not per CRD: {crd_lines}\n{}",
        up.stderr
    );
    assert!(
        !up.stderr.contains("registry.insecure"),
        "up --skip-build pushes nothing"
    );
    assert_eq!(up.stderr.matches(":latest").count(), 1, "{}", up.stderr);

    let again = cluster.bfctl(&["up", "--skip-build"]).await;
    assert_eq!(again.code, 0);
    assert!(
        again.stdout.starts_with("everything is unchanged"),
        "{}",
        again.stdout
    );
    assert!(!again.stderr.contains("configured"), "{}", again.stderr);

    cluster.api.set_pod_metrics(HEALTHY_METRICS);
    let status = cluster.bfctl(&["status"]).await;
    assert!(
        !status.stderr.contains("registry.insecure") && !status.stderr.contains(":latest"),
        "{}",
        status.stderr
    );
    let teardown = cluster.bfctl(&["teardown"]).await;
    assert!(!teardown.stderr.contains("registry.insecure") && !teardown.stderr.contains(":latest"));

    let agents = cluster.api.user_agents();
    assert_eq!(
        agents.into_iter().collect::<Vec<_>>(),
        [format!("bfctl/{}", env!("CARGO_PKG_VERSION"))]
    );
    cluster.api.stop();
}

/// Observation 12: a no-op `up` sends no apply at all (the 10 Strimzi CRDs
/// were re-applied every time); its time is in docs/benchmarks.md.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_no_op_up_applies_nothing() {
    let cluster = FakeCluster::start("").await;
    assert_eq!(cluster.bfctl(&["up", "--skip-build"]).await.code, 0);
    cluster.api.clear_log();
    let before = cluster.api.requests();
    let again = cluster.bfctl(&["up", "--skip-build"]).await;
    assert_eq!(again.code, 0);
    assert!(cluster.api.log().is_empty(), "{:?}", cluster.api.log());
    eprintln!(
        "no-op up against the fake API server: {:?}, {} requests",
        again.elapsed,
        cluster.api.requests() - before
    );
    cluster.api.stop();
}

/// Observation 13: Ctrl-C exits 130 and names the steps it stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_exits_130_and_names_the_steps_it_stopped() {
    use tokio::io::AsyncBufReadExt;
    let cluster = FakeCluster::start("").await;
    cluster.api.set_never_ready(&["ventas-kafka"]);
    let mut child = tokio::process::Command::new(support::cli::binary())
        .current_dir(cluster.path())
        .arg("--kubeconfig")
        .arg(&cluster.kubeconfig)
        .arg("--cache-dir")
        .arg(cluster.path().join("cache"))
        .args(["up", "--skip-build", "--timeout", "120"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    while let Ok(Ok(Some(line))) = tokio::time::timeout_at(deadline, lines.next_line()).await {
        let waiting = line.contains("kafka: waiting for Kafka");
        seen.push(line);
        if waiting {
            break;
        }
    }
    let pid = child.id().unwrap() as i32;
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    while let Ok(Ok(Some(line))) = tokio::time::timeout_at(deadline, lines.next_line()).await {
        seen.push(line);
    }
    let status = child.wait().await.unwrap();
    let stderr = seen.join("\n");
    eprintln!("{stderr}");
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("kafka: interrupted (Ctrl-C)"), "{stderr}");
    assert!(
        stderr.contains("interrupted while kafka ran")
            || stderr.contains("interrupted while ") && stderr.contains("kafka"),
        "{stderr}"
    );
    cluster.api.stop();
}

/// Never touching what is not this install's, outside `up` too: the
/// consumer replica comparison scales only this install's Deployment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_replica_comparison_never_scales_a_deployment_that_is_not_this_installs() {
    let cluster = FakeCluster::start("").await;
    cluster.api.insert_as(
        "someone",
        serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "consumer", "namespace": "blackfriday"},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "theirs"}},
                "template": {"metadata": {"labels": {"app": "theirs"}},
                    "spec": {"containers": [{"name": "c", "image": "theirs"}]}}}}),
    );
    let run = cluster
        .bfctl(&["loadtest", "--cluster", "--consumer-replicas", "1"])
        .await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("Deployment blackfriday/consumer is not this install's (not made by bfctl: it existed before)"),
        "{}",
        run.stderr
    );
    assert!(
        !cluster
            .api
            .log()
            .iter()
            .any(|line| line.starts_with("SCALE")),
        "{:?}",
        cluster.api.log()
    );
    cluster.api.stop();
}
