//! `bfctl cluster create | status | token | delete` through the binary,
//! against a fake GKE API that checks every request against the real API
//! description (`../shared/fixtures/google-apis/container.v1.json`) and a
//! fake token endpoint that verifies the service account's signed JWT
//! (the `fake-google` crate). The cluster the fake GKE reports points at the
//! in-process fake Kubernetes API server behind TLS (with the CA that
//! signed its certificate), so the written kubeconfig context, with bfctl as
//! its exec credential plugin, carries kubectl, `up`, `teardown` and
//! `cluster delete`'s check for a pipeline left on it.
//!
//! Not here: a real GKE (`e2e_gke.rs` uses one when given a project).

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use fake_google::{ApiError, FakeGke};
use serde_json::{Value, json};
use support::cli::{FakeCluster, Run, binary};

const PROJECT: &str = "my-project-id";
const CLUSTER: &str = "projects/my-project-id/locations/europe-west1-b/clusters/blackfriday";
const GKE_BLOCK: &str = "gke:\n  project: my-project-id\n  location: europe-west1-b\n";

struct World {
    gke: FakeGke,
    kube: FakeCluster,
    kubeconfig: PathBuf,
}

impl World {
    async fn start(step: Duration) -> World {
        let gke = FakeGke::start(
            &fake_google::google_apis_dir().join("container.v1.json"),
            PROJECT,
            step,
        )
        .await;
        // The cluster's API server, behind TLS: GKE reports its address
        // and the CA that signed its certificate.
        let kube = FakeCluster::start_tls(GKE_BLOCK).await;
        gke.set_endpoint(
            &kube.api.address.to_string(),
            kube.api.ca_pem.as_deref().expect("a CA"),
        );
        let kubeconfig = kube.path().join("gke-kubeconfig");
        World {
            gke,
            kube,
            kubeconfig,
        }
    }

    /// Runs bfctl with the service account's key as the only credentials
    /// (HOME is the test's directory: no gcloud ADC file), the fake GKE as
    /// the endpoint, and the kubeconfig bfctl writes.
    async fn bfctl(&self, args: &[&str]) -> Run {
        self.bfctl_env(args, Some(&self.gke.account.key_file)).await
    }

    async fn bfctl_env(&self, args: &[&str], key_file: Option<&Path>) -> Run {
        let mut command = tokio::process::Command::new(binary());
        command
            .current_dir(self.kube.path())
            .env("HOME", self.kube.path())
            .env("BFCTL_GKE_ENDPOINT", self.gke.url())
            .env_remove("KUBECONFIG")
            .env_remove("CLOUDSDK_CONFIG")
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(self.kube.path().join("cache"));
        match key_file {
            Some(key) => command.env("GOOGLE_APPLICATION_CREDENTIALS", key),
            None => command.env_remove("GOOGLE_APPLICATION_CREDENTIALS"),
        };
        support::cli::run(command, args).await
    }

    fn creates(&self) -> usize {
        self.gke
            .log()
            .iter()
            .filter(|id| id.as_str() == "container.projects.locations.clusters.create")
            .count()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_status_token_up_teardown_and_delete() {
    let world = World::start(Duration::from_millis(150)).await;

    let created = world.bfctl(&["cluster", "create"]).await;
    assert_eq!(created.code, 0, "{}", created.stderr);
    assert!(
        created.stdout.contains(&format!("created {CLUSTER}")),
        "{}",
        created.stdout
    );
    assert!(
        created.stderr.contains("RUNNING"),
        "progress shown: {}",
        created.stderr
    );
    let cluster = world.gke.cluster(CLUSTER).expect("the cluster");
    let virt = &cluster["nodePools"][1];
    assert_eq!(virt["name"], "virt");
    assert_eq!(
        virt["config"]["advancedMachineFeatures"]["enableNestedVirtualization"],
        true
    );
    assert_eq!(virt["config"]["imageType"], "UBUNTU_CONTAINERD");
    assert_eq!(virt["config"]["taints"][0]["effect"], "NO_SCHEDULE");
    assert_eq!(
        cluster["networkConfig"]["gatewayApiConfig"]["channel"],
        "CHANNEL_STANDARD"
    );

    // The context: the fake Kubernetes API as the server, bfctl as the
    // exec plugin.
    let written: Value = bfctl::yaml::parse(
        &std::fs::read_to_string(&world.kubeconfig).unwrap(),
        "kubeconfig",
    )
    .unwrap();
    let context = "gke_my-project-id_europe-west1-b_blackfriday";
    assert_eq!(written["current-context"], context);
    let exec = &written["users"][0]["user"]["exec"];
    assert_eq!(exec["args"], json!(["cluster", "token"]));

    // kubectl through the same context: its token comes from `bfctl
    // cluster token`, run by kubectl as the exec plugin.
    let issued = world.gke.account.issued_count();
    let kubectl = tokio::process::Command::new("kubectl")
        .env("HOME", world.kube.path())
        .env(
            "GOOGLE_APPLICATION_CREDENTIALS",
            &world.gke.account.key_file,
        )
        .env_remove("KUBECONFIG")
        .arg("--kubeconfig")
        .arg(&world.kubeconfig)
        .args(["get", "namespaces", "-o", "name"])
        .output()
        .await
        .expect("kubectl is installed (ENVIRONMENT.md)");
    eprintln!(
        "$ kubectl get namespaces -o name    # {}\n{}{}",
        kubectl.status,
        String::from_utf8_lossy(&kubectl.stderr),
        String::from_utf8_lossy(&kubectl.stdout)
    );
    assert!(kubectl.status.success());
    assert!(
        world.gke.account.issued_count() > issued,
        "kubectl ran bfctl cluster token, which got a token"
    );

    // Idempotent: a second create sends no create.
    let again = world.bfctl(&["cluster", "create"]).await;
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(again.stdout.contains("exists"), "{}", again.stdout);
    assert_eq!(world.creates(), 1);

    let status = world
        .bfctl(&["cluster", "status", "--output", "json"])
        .await;
    assert_eq!(status.code, 0, "{}", status.stderr);
    let status: Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(status["status"], "RUNNING");
    assert_eq!(status["madeByBfctl"], true);
    assert_eq!(status["pools"][1]["nestedVirtualization"], true);

    let token = world.bfctl(&["cluster", "token"]).await;
    assert_eq!(token.code, 0, "{}", token.stderr);
    let credential: Value = serde_json::from_str(&token.stdout).unwrap();
    assert_eq!(credential["kind"], "ExecCredential");
    let access = credential["status"]["token"].as_str().unwrap();
    assert!(world.gke.account.accepts(access), "a token the fake issued");
    assert!(
        credential["status"]["expirationTimestamp"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );

    // The pipeline through that context (credentials from `bfctl cluster
    // token`), and delete refusing while it is there.
    let up = world
        .bfctl(&["up", "--skip-build", "--timeout", "60"])
        .await;
    assert_eq!(up.code, 0, "{}", up.stderr);
    let refused = world.bfctl(&["cluster", "delete", "--yes"]).await;
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("bfctl teardown"),
        "{}",
        refused.stderr
    );
    assert!(world.gke.cluster(CLUSTER).is_some());
    let teardown = world.bfctl(&["teardown", "--timeout", "30"]).await;
    assert_eq!(teardown.code, 0, "{}", teardown.stderr);

    let deleted = world.bfctl(&["cluster", "delete", "--yes"]).await;
    assert_eq!(deleted.code, 0, "{}", deleted.stderr);
    assert!(world.gke.cluster(CLUSTER).is_none(), "the cluster is gone");
    let gone = world.bfctl(&["cluster", "status"]).await;
    assert_eq!(gone.code, 1, "{}", gone.stdout);
    assert!(gone.stdout.contains("does not exist"), "{}", gone.stdout);
    world.gke.stop();
}

fn service_disabled() -> ApiError {
    let mut error = ApiError::new(
        403,
        "PERMISSION_DENIED",
        "Kubernetes Engine API has not been used in project 123 before or it is disabled.",
    );
    error.details = vec![json!({
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": "SERVICE_DISABLED",
        "domain": "googleapis.com",
        "metadata": {
            "service": "container.googleapis.com",
            "activationUrl": "https://console.developers.google.com/apis/api/container.googleapis.com/overview?project=123"
        }
    })];
    error
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_say_what_to_do() {
    let world = World::start(Duration::from_millis(100)).await;

    // Before the cluster exists, `up` says how to make it.
    let early = world.bfctl(&["up", "--skip-build", "--timeout", "5"]).await;
    assert_eq!(early.code, 2);
    assert!(
        early.stderr.contains("bfctl cluster create"),
        "{}",
        early.stderr
    );

    let no_credentials = world.bfctl_env(&["cluster", "status"], None).await;
    assert_eq!(no_credentials.code, 2);
    assert!(
        no_credentials
            .stderr
            .contains("no Google Cloud credentials found")
            && no_credentials
                .stderr
                .contains("GOOGLE_APPLICATION_CREDENTIALS"),
        "{}",
        no_credentials.stderr
    );

    world.gke.fail_next(
        "container.projects.locations.clusters.get",
        service_disabled(),
    );
    let disabled = world.bfctl(&["cluster", "create"]).await;
    assert_eq!(disabled.code, 2);
    assert!(
        disabled.stderr.contains("not enabled")
            && disabled.stderr.contains("https://console.developers.google.com/apis/api/container.googleapis.com/overview?project=123"),
        "{}",
        disabled.stderr
    );

    world.gke.fail_next(
        "container.projects.locations.clusters.get",
        ApiError::new(
            403,
            "PERMISSION_DENIED",
            "Required \"container.clusters.get\" permission(s) for \"projects/my-project-id/locations/europe-west1-b/clusters/blackfriday\".",
        ),
    );
    let denied = world.bfctl(&["cluster", "status"]).await;
    assert_eq!(denied.code, 2);
    assert!(
        denied.stderr.contains("container.clusters.get"),
        "{}",
        denied.stderr
    );

    world.gke.fail_next(
        "container.projects.locations.clusters.create",
        ApiError::new(
            429,
            "RESOURCE_EXHAUSTED",
            "Insufficient regional quota to satisfy request: resource \"CPUS\": request requires '8.0' and is short '4.0'.",
        ),
    );
    let quota = world.bfctl(&["cluster", "create"]).await;
    assert_eq!(quota.code, 2);
    assert!(
        quota.stderr.contains("quota exceeded") && quota.stderr.contains("CPUS"),
        "{}",
        quota.stderr
    );

    world.gke.fail_operation(
        "CREATE_CLUSTER",
        "Google Compute Engine: Not all instances running in IGM after 35m.",
    );
    let failed = world.bfctl(&["cluster", "create"]).await;
    assert_eq!(failed.code, 2);
    assert!(
        failed
            .stderr
            .contains("failed: Google Compute Engine: Not all instances running"),
        "{}",
        failed.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_taken_in_another_location_is_named() {
    let world = World::start(Duration::from_millis(100)).await;
    world.gke.insert_cluster(
        "projects/my-project-id/locations/us-central1/clusters/blackfriday",
        json!({"name": "blackfriday", "location": "us-central1", "status": "RUNNING"}),
    );
    let taken = world.bfctl(&["cluster", "create"]).await;
    assert_eq!(taken.code, 2);
    assert!(
        taken
            .stderr
            .contains("already has a cluster named blackfriday in us-central1")
            && taken.stderr.contains("gke.location"),
        "{}",
        taken.stderr
    );
    assert_eq!(world.creates(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_cut_off_midway_is_followed_not_repeated() {
    let world = World::start(Duration::from_secs(2)).await;
    let mut first = tokio::process::Command::new(binary());
    first
        .current_dir(world.kube.path())
        .env("HOME", world.kube.path())
        .env("BFCTL_GKE_ENDPOINT", world.gke.url())
        .env(
            "GOOGLE_APPLICATION_CREDENTIALS",
            &world.gke.account.key_file,
        )
        .arg("--kubeconfig")
        .arg(&world.kubeconfig)
        .args(["cluster", "create"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = first.spawn().expect("bfctl");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while world.creates() == 0 {
        assert!(std::time::Instant::now() < deadline, "no create seen");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The connection is gone midway: bfctl is killed while it follows.
    child.kill().await.expect("killing bfctl");
    let resumed = world.bfctl(&["cluster", "create"]).await;
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    assert!(
        resumed.stdout.contains("followed the create"),
        "{}",
        resumed.stdout
    );
    assert_eq!(world.creates(), 1, "created once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_with_create_cluster_makes_the_cluster_first() {
    let world = World::start(Duration::from_millis(100)).await;
    let up = world
        .bfctl(&["up", "--skip-build", "--create-cluster", "--timeout", "60"])
        .await;
    assert_eq!(up.code, 0, "{}", up.stderr);
    assert!(
        up.stdout.contains(&format!("created {CLUSTER}")),
        "{}",
        up.stdout
    );
    assert_eq!(world.creates(), 1);
    let again = world
        .bfctl(&["up", "--skip-build", "--create-cluster", "--timeout", "60"])
        .await;
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(world.creates(), 1, "the cluster is made once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_cluster_is_compared_and_changed_only_where_safe() {
    let world = World::start(Duration::from_millis(100)).await;
    let created = world.bfctl(&["cluster", "create"]).await;
    assert_eq!(created.code, 0, "{}", created.stderr);
    // bfctl.yaml now asks for more general nodes, another virt machine
    // and the experimental Gateway API channel.
    world.kube.write_config(
        "bfctl.yaml",
        &format!(
            "{GKE_BLOCK}  gatewayApiChannel: CHANNEL_EXPERIMENTAL\n  general:\n    maxNodes: 5\n  virt:\n    machineType: c3-standard-8\n"
        ),
    );
    let compared = world.bfctl(&["cluster", "create"]).await;
    assert_eq!(compared.code, 0, "{}", compared.stderr);
    assert!(
        compared.stdout.contains(
            "changed in place: node pool general: autoscaling.maxNodeCount: wanted 5, the cluster has 3"
        ) && compared
            .stdout
            .contains("changed in place: gatewayApiChannel: wanted CHANNEL_EXPERIMENTAL"),
        "{}",
        compared.stdout
    );
    assert!(
        compared.stdout.contains(
            "node pool virt: machineType: wanted c3-standard-8, the cluster has n2-standard-4 (fixed when a node pool is made"
        ),
        "{}",
        compared.stdout
    );
    let cluster = world.gke.cluster(CLUSTER).unwrap();
    assert_eq!(cluster["nodePools"][0]["autoscaling"]["maxNodeCount"], 5);
    assert_eq!(
        cluster["nodePools"][1]["config"]["machineType"],
        "n2-standard-4"
    );
    assert_eq!(world.creates(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_bfctl_did_not_make_is_compared_but_never_changed_or_deleted() {
    let world = World::start(Duration::from_millis(100)).await;
    let created = world.bfctl(&["cluster", "create"]).await;
    assert_eq!(created.code, 0, "{}", created.stderr);
    // Someone else's cluster of that name: no managed-by label.
    let mut theirs = world.gke.cluster(CLUSTER).unwrap();
    theirs["resourceLabels"] = json!({});
    world.gke.insert_cluster(CLUSTER, theirs);
    world.kube.write_config(
        "bfctl.yaml",
        &format!("{GKE_BLOCK}  general:\n    maxNodes: 5\n"),
    );
    let compared = world.bfctl(&["cluster", "create"]).await;
    assert_eq!(compared.code, 0, "{}", compared.stderr);
    assert!(
        !compared.stdout.contains("changed in place"),
        "{}",
        compared.stdout
    );
    assert!(
        compared
            .stdout
            .contains("not changed: the cluster was not made by bfctl"),
        "{}",
        compared.stdout
    );
    assert_eq!(
        world.gke.cluster(CLUSTER).unwrap()["nodePools"][0]["autoscaling"]["maxNodeCount"],
        3
    );
    let refused = world.bfctl(&["cluster", "delete", "--yes"]).await;
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("was not made by bfctl"),
        "{}",
        refused.stderr
    );
    assert!(world.gke.cluster(CLUSTER).is_some());
}
