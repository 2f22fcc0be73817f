//! `bfctl registry create | status | delete` through the binary: kind zot,
//! and kind artifact-registry at the end,
//! against the fake Google APIs (Compute Engine, Secret Manager, GKE: every
//! request checked against the real API descriptions in
//! `../shared/fixtures/google-apis/`), and what bfctl generates used for
//! real: Debian's `docker-registry` (the same OCI distribution API as Zot)
//! is started with bfctl's server certificate, key and htpasswd file, on the
//! address the fake Compute reserved (127.0.0.1), and `create` waits for it
//! to answer. Then `bfctl build --push` pushes to it with bfctl's stored
//! account and CA (no docker login), and a client without the CA, an
//! anonymous one and a wrong password are refused.
//!
//! What the distribution registry cannot show: Zot's access control (the
//! pull account's read-only policy). The rendered Zot configuration is
//! checked against Zot's documented keys in `registry::zot`'s unit tests.
//!
//! Not here: real Google Cloud (`e2e_gke.rs` when given a project).

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine as _;
use fake_google::{ApiError, FakeGke};
use serde_json::{Value, json};
use support::cli::{Run, binary};
use support::registry::{TestRegistry, free_port};

const PROJECT: &str = "my-project-id";
const CLUSTER: &str = "projects/my-project-id/locations/europe-west1-b/clusters/blackfriday";
const ZONE_PATH: &str = "projects/my-project-id/zones/europe-west1-b";
const ACCOUNT: &str = "serviceAccount:123456789012-compute@developer.gserviceaccount.com";

struct World {
    google: FakeGke,
    dir: tempfile::TempDir,
    port: u16,
}

impl World {
    async fn start(extra_config: &str) -> World {
        let google = FakeGke::start(
            &fake_google::google_apis_dir().join("container.v1.json"),
            PROJECT,
            Duration::from_millis(20),
        )
        .await;
        // The registry runs here: both its addresses are 127.0.0.1.
        google.set_address_pools(&["127.0.0.1"], &["127.0.0.1"]);
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        std::fs::write(
            dir.path().join("bfctl.yaml"),
            format!(
                "registry:\n  kind: zot\n  zot:\n    port: {port}\n    allowedSources: [\"203.0.113.7/32\"]\ncarnet: \"201900006\"\ngke:\n  project: {PROJECT}\n  location: europe-west1-b\n{extra_config}"
            ),
        )
        .unwrap();
        World { google, dir, port }
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    fn command(&self, cwd: &Path) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(binary());
        command
            .current_dir(cwd)
            .env("HOME", self.dir.path())
            .env(
                "GOOGLE_APPLICATION_CREDENTIALS",
                &self.google.account.key_file,
            )
            .env("BFCTL_GKE_ENDPOINT", self.google.url())
            .env("BFCTL_COMPUTE_ENDPOINT", self.google.url())
            .env("BFCTL_SECRETMANAGER_ENDPOINT", self.google.url())
            .env("BFCTL_PUBLIC_ADDRESS_URL", "http://127.0.0.1:9/unused")
            .env_remove("CLOUDSDK_CONFIG")
            .env_remove("DOCKER_CONFIG")
            .arg("--config")
            .arg(self.dir.path().join("bfctl.yaml"))
            .arg("--state-dir")
            .arg(self.state());
        command
    }

    async fn bfctl(&self, args: &[&str]) -> Run {
        support::cli::run(self.command(self.dir.path()), args).await
    }

    /// A cluster bfctl made, as GKE shows it.
    fn insert_cluster(&self) {
        self.google.insert_cluster(
            CLUSTER,
            json!({
                "name": "blackfriday",
                "location": "europe-west1-b",
                "status": "RUNNING",
                "resourceLabels": {"managed-by": "bfctl"},
                "nodePools": []
            }),
        );
    }

    /// Waits for bfctl to have recorded the registry, then starts the
    /// distribution registry with bfctl's certificate, key and htpasswd.
    async fn serve_when_recorded(&self) -> TestRegistry {
        let store = self.state().join("registry");
        let deadline = Instant::now() + Duration::from_secs(60);
        while !store.join("registry.json").exists() {
            assert!(Instant::now() < deadline, "bfctl recorded no registry");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        TestRegistry::start_on(
            self.port,
            Some(&store.join("htpasswd")),
            Some((store.join("server.pem"), store.join("server-key.pem"))),
            None,
        )
    }

    fn file(&self, name: &str) -> String {
        std::fs::read_to_string(self.state().join("registry").join(name)).unwrap()
    }

    fn accounts(&self) -> Value {
        serde_json::from_str(&self.file("accounts.json")).unwrap()
    }
}

fn https(ca: Option<&str>) -> reqwest::Client {
    bfctl::ensure_tls_provider();
    let mut builder = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .timeout(Duration::from_secs(5));
    if let Some(ca) = ca {
        builder =
            builder.add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).unwrap());
    }
    builder.build().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zot_registry_is_made_trusted_pushed_to_and_deleted() {
    let world = World::start("").await;
    world.insert_cluster();

    // create: the fakes answer, and the registry that bfctl's files
    // configure starts once bfctl recorded it.
    let create = tokio::spawn({
        let command = world.command(world.dir.path());
        async move { support::cli::run(command, &["registry", "create", "--wait", "60"]).await }
    });
    let _registry = world.serve_when_recorded().await;
    let created = create.await.unwrap();
    assert_eq!(created.code, 0, "{}", created.stderr);
    let host = format!("127.0.0.1:{}", world.port);
    for line in [
        "created   VM bfctl-registry".to_string(),
        "created   address bfctl-registry".to_string(),
        "created   firewall rule bfctl-registry-clients".to_string(),
        format!("registry    {host}/blackfriday"),
        format!("https://{host}/v2/: 200 to bfctl-push, 401 to an anonymous caller"),
        format!("cluster blackfriday: its nodes now trust the registry's CA for {host}"),
    ] {
        assert!(created.stdout.contains(&line), "{line}\n{}", created.stdout);
    }

    // Nothing secret was printed; the secrets are files only the owner reads.
    let accounts = world.accounts();
    for account in ["push", "pull"] {
        let password = accounts[account]["password"].as_str().unwrap();
        assert!(!created.stdout.contains(password) && !created.stderr.contains(password));
    }
    for file in ["ca-key.pem", "server-key.pem", "htpasswd", "accounts.json"] {
        let mode = std::fs::metadata(world.state().join("registry").join(file))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "{file} is readable by others: {mode:o}");
    }

    // What was asked of Google Cloud.
    let vm = world
        .google
        .compute_resource(&format!("{ZONE_PATH}/instances/bfctl-registry"))
        .expect("the VM");
    assert_eq!(vm["labels"]["managed-by"], "bfctl");
    assert_eq!(
        vm["networkInterfaces"][0]["accessConfigs"][0]["natIP"],
        "127.0.0.1"
    );
    let user_data = vm["metadata"]["items"][0]["value"].as_str().unwrap();
    assert!(user_data.starts_with("#cloud-config"));
    assert!(!user_data.contains("PRIVATE KEY") && !user_data.contains("$2y$"));
    let clients = world
        .google
        .compute_resource("projects/my-project-id/global/firewalls/bfctl-registry-clients")
        .unwrap();
    assert_eq!(clients["sourceRanges"], json!(["203.0.113.7/32"]));
    assert_eq!(
        clients["allowed"][0]["ports"],
        json!([world.port.to_string()])
    );
    let nodes = world
        .google
        .compute_resource("projects/my-project-id/global/firewalls/bfctl-registry-nodes")
        .unwrap();
    assert_eq!(nodes["sourceTags"], json!(["bfctl-node"]));
    let (key, policy) = world
        .google
        .secret("projects/my-project-id/secrets/bfctl-registry-tls-key")
        .unwrap();
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(key)
            .unwrap(),
        world.file("server-key.pem").as_bytes()
    );
    assert_eq!(
        policy["bindings"][0]["role"],
        "roles/secretmanager.secretAccessor"
    );
    assert_eq!(policy["bindings"][0]["members"], json!([ACCOUNT]));
    let cluster = world.google.cluster(CLUSTER).unwrap();
    let trust = &cluster["nodePoolDefaults"]["nodeConfigDefaults"]["containerdConfig"]["privateRegistryAccessConfig"];
    assert_eq!(trust["enabled"], true);
    assert_eq!(
        trust["certificateAuthorityDomainConfig"][0]["fqdns"],
        json!([host])
    );
    assert_eq!(
        trust["certificateAuthorityDomainConfig"][0]["gcpSecretManagerCertificateConfig"]["secretUri"],
        "projects/my-project-id/secrets/bfctl-registry-ca/versions/latest"
    );

    // The registry for real: TLS with bfctl's CA and accounts only.
    let ca = world.file("ca.pem");
    let v2 = format!("https://{host}/v2/");
    let with_ca = https(Some(&ca));
    let push = &accounts["push"];
    let status = |user: &str, password: &str| {
        let request = with_ca.get(&v2).basic_auth(user, Some(password));
        async move { request.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(
        status(
            push["username"].as_str().unwrap(),
            push["password"].as_str().unwrap()
        )
        .await,
        200
    );
    let pull = &accounts["pull"];
    assert_eq!(
        status(
            pull["username"].as_str().unwrap(),
            pull["password"].as_str().unwrap()
        )
        .await,
        200
    );
    assert_eq!(
        status(push["username"].as_str().unwrap(), "wrong-password").await,
        401
    );
    assert_eq!(
        with_ca.get(&v2).send().await.unwrap().status().as_u16(),
        401,
        "anonymous"
    );
    let without_ca = https(None).get(&v2).send().await;
    assert!(
        without_ca.is_err(),
        "a client without bfctl's CA must not trust the registry"
    );

    // status: every resource there, the certificate's expiry, the trust.
    let status = world.bfctl(&["registry", "status"]).await;
    assert_eq!(status.code, 0, "{}", status.stderr);
    assert!(status.stdout.contains("days left"), "{}", status.stdout);
    assert!(
        status
            .stdout
            .contains("stored      0 repositories, 0 tagged images"),
        "{}",
        status.stdout
    );
    assert!(
        status
            .stdout
            .contains(&format!("cluster blackfriday trusts {host}")),
        "{}",
        status.stdout
    );

    // A second create changes nothing.
    let again = world.bfctl(&["registry", "create", "--wait", "30"]).await;
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(!again.stdout.contains("created "), "{}", again.stdout);
    assert_eq!(
        world
            .google
            .secret_versions("projects/my-project-id/secrets/bfctl-registry-tls-key"),
        1
    );

    // Rotating: a new server certificate from the same CA, the VM reset,
    // the CA unchanged (the nodes' trust holds).
    let old_certificate = world.file("server.pem");
    let rotated = world
        .bfctl(&[
            "registry",
            "create",
            "--rotate-certificates",
            "--wait",
            "30",
        ])
        .await;
    assert_eq!(rotated.code, 0, "{}", rotated.stderr);
    assert_ne!(world.file("server.pem"), old_certificate);
    assert_eq!(world.file("ca.pem"), ca);
    assert!(
        rotated.stdout.contains("restarted VM bfctl-registry"),
        "{}",
        rotated.stdout
    );
    assert_eq!(
        world
            .google
            .secret_versions("projects/my-project-id/secrets/bfctl-registry-tls-key"),
        2
    );
    assert_eq!(
        world
            .google
            .secret_versions("projects/my-project-id/secrets/bfctl-registry-ca"),
        1
    );

    // delete --keep-data: everything but the data disk and the local files.
    let deleted = world
        .bfctl(&["registry", "delete", "--yes", "--keep-data"])
        .await;
    assert_eq!(deleted.code, 0, "{}", deleted.stderr);
    assert!(
        world
            .google
            .compute_resource(&format!("{ZONE_PATH}/instances/bfctl-registry"))
            .is_none()
    );
    assert!(
        world
            .google
            .compute_resource(&format!("{ZONE_PATH}/disks/bfctl-registry-data"))
            .is_some()
    );
    assert!(
        world
            .google
            .secret("projects/my-project-id/secrets/bfctl-registry-htpasswd")
            .is_none()
    );
    assert!(deleted.stdout.contains("left:"), "{}", deleted.stdout);
    assert!(
        deleted
            .stdout
            .contains("disk bfctl-registry-data (--keep-data"),
        "{}",
        deleted.stdout
    );
    assert!(world.state().join("registry/accounts.json").exists());
    let cluster = world.google.cluster(CLUSTER).unwrap();
    assert_eq!(
        cluster["nodePoolDefaults"]["nodeConfigDefaults"]["containerdConfig"]["privateRegistryAccessConfig"]
            ["certificateAuthorityDomainConfig"],
        json!([]),
        "the cluster no longer names the deleted CA secret"
    );

    // delete: the disk and the local files go too.
    let gone = world.bfctl(&["registry", "delete", "--yes"]).await;
    assert_eq!(gone.code, 0, "{}", gone.stderr);
    assert!(
        world
            .google
            .compute_resource(&format!("{ZONE_PATH}/disks/bfctl-registry-data"))
            .is_none()
    );
    assert!(
        gone.stdout
            .contains("nothing of registry bfctl-registry is left"),
        "{}",
        gone.stdout
    );
    assert!(!world.state().join("registry").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_is_not_bfctls_is_never_changed_and_errors_say_what_to_do() {
    let world = World::start("").await;
    // A firewall rule of that name made by someone else.
    world.google.insert_compute_resource(
        "projects/my-project-id/global/firewalls/bfctl-registry-clients",
        json!({"name": "bfctl-registry-clients", "kind": "compute#firewall", "sourceRanges": ["0.0.0.0/0"], "description": "the web team's"}),
    );
    let refused = world.bfctl(&["registry", "create", "--wait", "1"]).await;
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused.stderr.contains(
            "firewall rule bfctl-registry-clients (projects/my-project-id/global/firewalls/bfctl-registry-clients) exists and was not made by bfctl"
        ),
        "{}",
        refused.stderr
    );
    // Checked before anything was made: nothing half-made is left.
    assert!(
        world.google.compute_operations().is_empty(),
        "{:?}",
        world.google.compute_operations()
    );
    assert!(
        world
            .google
            .secret("projects/my-project-id/secrets/bfctl-registry-ca")
            .is_none()
    );
    let theirs = world
        .google
        .compute_resource("projects/my-project-id/global/firewalls/bfctl-registry-clients")
        .unwrap();
    assert_eq!(
        theirs["sourceRanges"],
        json!(["0.0.0.0/0"]),
        "left as it was"
    );
    // delete leaves it, and says so.
    let deleted = world.bfctl(&["registry", "delete", "--yes"]).await;
    assert_eq!(deleted.code, 0, "{}", deleted.stderr);
    assert!(
        deleted
            .stdout
            .contains("firewall rule bfctl-registry-clients (not made by bfctl)"),
        "{}",
        deleted.stdout
    );
    assert!(
        world
            .google
            .compute_resource("projects/my-project-id/global/firewalls/bfctl-registry-clients")
            .is_some()
    );

    // An address of that name that someone else reserved is not used.
    let world = World::start("").await;
    world.google.insert_compute_resource(
        "projects/my-project-id/regions/europe-west1/addresses/bfctl-registry",
        json!({"name": "bfctl-registry", "kind": "compute#address", "address": "198.51.100.4", "status": "IN_USE"}),
    );
    let taken = world.bfctl(&["registry", "create", "--wait", "1"]).await;
    assert_eq!(taken.code, 2, "{}", taken.stderr);
    assert!(taken.stderr.contains("address bfctl-registry (projects/my-project-id/regions/europe-west1/addresses/bfctl-registry) exists and was not made by bfctl"), "{}", taken.stderr);
    assert!(
        !world.state().join("registry/registry.json").exists(),
        "nothing recorded"
    );

    // Google's refusals become sentences.
    let world = World::start("").await;
    world.google.fail_next(
        "compute.addresses.insert",
        ApiError::legacy(403, "forbidden", "Required 'compute.addresses.create' permission for 'projects/my-project-id/regions/europe-west1/addresses/bfctl-registry'"),
    );
    let denied = world.bfctl(&["registry", "create", "--wait", "1"]).await;
    assert_eq!(denied.code, 2);
    assert!(
        denied.stderr.contains("grant the role roles/compute.admin"),
        "{}",
        denied.stderr
    );
    world.google.fail_compute_operation(
        "insert",
        "QUOTA_EXCEEDED",
        "Quota 'STATIC_ADDRESSES' exceeded.  Limit: 1.0 in region europe-west1.",
    );
    let quota = world.bfctl(&["registry", "create", "--wait", "1"]).await;
    assert_eq!(quota.code, 2);
    assert!(
        quota
            .stderr
            .contains("QUOTA_EXCEEDED: Quota 'STATIC_ADDRESSES' exceeded"),
        "{}",
        quota.stderr
    );

    // A registry.kind that is not zot is told what to do.
    let external = tempfile::tempdir().unwrap();
    std::fs::write(
        external.path().join("bfctl.yaml"),
        "registry:\n  url: r.example.com/bf\ncarnet: \"201900006\"\n",
    )
    .unwrap();
    let mut command = tokio::process::Command::new(binary());
    command.current_dir(external.path());
    let not_zot = support::cli::run(command, &["registry", "create"]).await;
    assert_eq!(not_zot.code, 2);
    assert!(
        not_zot.stderr.contains("set registry.kind: zot"),
        "{}",
        not_zot.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn build_push_uses_the_stored_account_and_ca_and_the_cluster_pulls_with_the_pull_account() {
    let world = World::start("").await;
    let create = tokio::spawn({
        let command = world.command(world.dir.path());
        async move { support::cli::run(command, &["registry", "create", "--wait", "60"]).await }
    });
    let _registry = world.serve_when_recorded().await;
    assert_eq!(create.await.unwrap().code, 0);
    let host = format!("127.0.0.1:{}", world.port);

    // A cluster made after the registry trusts it from the start: the
    // default for new pools and each pool made now (a request the fake
    // checks against container.v1.json).
    let cluster = world.bfctl(&["cluster", "create"]).await;
    assert_eq!(cluster.code, 0, "{}", cluster.stderr);
    let made = world.google.cluster(CLUSTER).expect("the cluster");
    for trust in [
        &made["nodePoolDefaults"]["nodeConfigDefaults"]["containerdConfig"],
        &made["nodePools"][0]["config"]["containerdConfig"],
        &made["nodePools"][1]["config"]["containerdConfig"],
    ] {
        assert_eq!(
            trust["privateRegistryAccessConfig"]["certificateAuthorityDomainConfig"][0]["fqdns"],
            json!([host])
        );
    }
    assert_eq!(
        made["nodePools"][0]["config"]["tags"],
        json!(["bfctl-node"])
    );

    // A base image (nothing can be pulled here), kept in the same registry
    // and pushed with bfctl's account.
    let accounts = world.accounts();
    let push = &accounts["push"];
    let base = support::host_base::push_host_base_with(
        &host,
        &bfctl::build::image::registry::RegistryOptions {
            insecure: false,
            ca_files: vec![world.state().join("registry/ca.pem")],
            auth: oci_client::secrets::RegistryAuth::Basic(
                push["username"].as_str().unwrap().into(),
                push["password"].as_str().unwrap().into(),
            ),
        },
    )
    .await;
    let config = world.dir.path().join("bfctl.yaml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, format!("{text}images:\n  base: {base}\n")).unwrap();

    // build --push from the workspace, with no docker login and no --ca-file.
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let pushed = support::cli::run(
        world.command(&workspace),
        &["build", "--push", "--output", "json"],
    )
    .await;
    assert_eq!(pushed.code, 0, "{}", pushed.stderr);
    let built: Value = serde_json::from_str(&pushed.stdout).unwrap();
    for image in built.as_array().unwrap() {
        let reference = image["push"]["reference"].as_str().unwrap();
        assert!(
            reference.starts_with(&format!("{host}/blackfriday/")),
            "{reference}"
        );
    }
    // The registry has them, as the pull account sees.
    let pull = &accounts["pull"];
    let tags = https(Some(&world.file("ca.pem")))
        .get(format!("https://{host}/v2/blackfriday/gateway/tags/list"))
        .basic_auth(
            pull["username"].as_str().unwrap(),
            pull["password"].as_str(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(tags.status().as_u16(), 200);

    // The Docker Engine pulls with the pull account, given the CA the way
    // Docker takes one (certs.d). Docker marks 127.0.0.0/8 as insecure by
    // default, so on loopback this shows the account, not the CA; the CA
    // is shown above with a client that verifies it.
    let gateway = built.as_array().unwrap()[0]["push"]["reference"]
        .as_str()
        .unwrap()
        .to_string();
    let certs = PathBuf::from(format!("/etc/docker/certs.d/{host}"));
    std::fs::create_dir_all(&certs).unwrap();
    std::fs::write(certs.join("ca.crt"), world.file("ca.pem")).unwrap();
    let docker_config = world.dir.path().join("docker");
    let docker = |args: &[&str], input: Option<&str>| {
        use std::io::Write;
        let mut child = std::process::Command::new("docker")
            .arg("--config")
            .arg(&docker_config)
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("docker");
        if let Some(input) = input {
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .unwrap();
        }
        let output = child.wait_with_output().unwrap();
        (
            output.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        )
    };
    let (anonymous_ok, anonymous) = docker(&["pull", &gateway], None);
    assert!(!anonymous_ok, "an anonymous pull is refused: {anonymous}");
    let (login_ok, login) = docker(
        &[
            "login",
            &host,
            "-u",
            pull["username"].as_str().unwrap(),
            "--password-stdin",
        ],
        pull["password"].as_str(),
    );
    assert!(login_ok, "{login}");
    let (pulled_ok, pulled) = docker(&["pull", &gateway], None);
    let _ = docker(&["rmi", &gateway], None);
    let _ = std::fs::remove_dir_all(&certs);
    assert!(pulled_ok, "{pulled}");

    // render: the workloads pull by digest with the pull Secret.
    let rendered = world.bfctl(&["render"]).await;
    assert_eq!(rendered.code, 0, "{}", rendered.stderr);
    assert!(
        !rendered.stdout.contains(pull["password"].as_str().unwrap()),
        "no password in manifests"
    );
    let objects: Vec<Value> =
        bfctl::yaml::parse_documents(&rendered.stdout, "bfctl render").unwrap();
    let mut deployments = 0;
    for object in &objects {
        match object["kind"].as_str() {
            Some("Deployment") if object["metadata"]["name"] != "grafana" => {
                deployments += 1;
                let pod = &object["spec"]["template"]["spec"];
                assert_eq!(
                    pod["imagePullSecrets"],
                    json!([{"name": "bfctl-registry-pull"}])
                );
                let image = pod["containers"][0]["image"].as_str().unwrap();
                assert!(
                    image.starts_with(&format!("{host}/blackfriday/"))
                        && image.contains("@sha256:"),
                    "{image}"
                );
            }
            Some("VirtualMachine") => {
                let disk = &object["spec"]["template"]["spec"]["volumes"][0]["containerDisk"];
                assert_eq!(disk["imagePullSecret"], "bfctl-registry-pull");
            }
            _ => {}
        }
    }
    assert_eq!(deployments, 3);

    // The pull Secret `up` applies with the namespace: the pull account
    // for the address the cluster pulls from, and nothing else.
    let mut config =
        bfctl::plan::config::Config::load(&world.dir.path().join("bfctl.yaml")).unwrap();
    bfctl::registry::store::resolve(&mut config, &world.state()).unwrap();
    let secret = bfctl::registry::pull_secret(&config, &world.state())
        .unwrap()
        .expect("a pull Secret for kind zot");
    assert_eq!(secret["type"], "kubernetes.io/dockerconfigjson");
    assert_eq!(secret["metadata"]["name"], "bfctl-registry-pull");
    assert_eq!(
        secret["metadata"]["labels"]["bfctl.io/install"],
        "blackfriday"
    );
    let docker_config: Value = serde_json::from_slice(
        &base64::engine::general_purpose::STANDARD
            .decode(secret["data"][".dockerconfigjson"].as_str().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(docker_config["auths"][&host]["username"], "bfctl-pull");
    assert_eq!(docker_config["auths"][&host]["password"], pull["password"]);
    assert!(
        !docker_config
            .to_string()
            .contains(push["password"].as_str().unwrap())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_artifact_registry_repository_is_made_checked_for_the_nodes_and_deleted() {
    let google = FakeGke::start(
        &fake_google::google_apis_dir().join("container.v1.json"),
        PROJECT,
        Duration::from_millis(20),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bfctl.yaml"),
        format!(
            "registry:\n  kind: artifact-registry\n  artifactRegistry:\n    location: europe-west1\ncarnet: \"201900006\"\ngke:\n  project: {PROJECT}\n  location: europe-west1-b\n"
        ),
    )
    .unwrap();
    google.insert_cluster(
        CLUSTER,
        json!({"name": "blackfriday", "location": "europe-west1-b", "status": "RUNNING",
               "resourceLabels": {"managed-by": "bfctl"},
               "nodePools": [{"name": "general", "config": {"serviceAccount": "nodes@my-project-id.iam.gserviceaccount.com"}}]}),
    );
    let bfctl = |args: &'static [&'static str]| {
        let mut command = tokio::process::Command::new(binary());
        command
            .current_dir(dir.path())
            .env("HOME", dir.path())
            .env("GOOGLE_APPLICATION_CREDENTIALS", &google.account.key_file)
            .env("BFCTL_GKE_ENDPOINT", google.url())
            .env("BFCTL_COMPUTE_ENDPOINT", google.url())
            .env("BFCTL_ARTIFACTREGISTRY_ENDPOINT", google.url())
            .env_remove("CLOUDSDK_CONFIG");
        support::cli::run(command, args)
    };
    const REPOSITORY: &str =
        "projects/my-project-id/locations/europe-west1/repositories/blackfriday";

    // The nodes' account cannot read it yet: made, and said what is missing.
    let created = bfctl(&["registry", "create"]).await;
    assert_eq!(created.code, 1, "{}", created.stderr);
    assert!(
        created
            .stdout
            .contains(&format!("created   repository {REPOSITORY}")),
        "{}",
        created.stdout
    );
    assert!(
        created
            .stdout
            .contains("registry    europe-west1-docker.pkg.dev/my-project-id/blackfriday"),
        "{}",
        created.stdout
    );
    assert!(
        created.stdout.contains("serviceAccount:nodes@my-project-id.iam.gserviceaccount.com holds no role")
            || created.stdout.contains("nodes@my-project-id.iam.gserviceaccount.com holds no role that reads the repository: missing roles/artifactregistry.reader"),
        "{}",
        created.stdout
    );
    let repository = google.repository(REPOSITORY).expect("the repository");
    assert_eq!(repository["format"], "DOCKER");
    assert_eq!(repository["labels"]["managed-by"], "bfctl");

    // Once granted, status is whole and create changes nothing.
    google.set_repository_policy(
        REPOSITORY,
        json!({"bindings": [{"role": "roles/artifactregistry.reader",
                             "members": ["serviceAccount:nodes@my-project-id.iam.gserviceaccount.com"]}]}),
    );
    let status = bfctl(&["registry", "status"]).await;
    assert_eq!(status.code, 0, "{}", status.stderr);
    assert!(
        status
            .stdout
            .contains("holds roles/artifactregistry.reader"),
        "{}",
        status.stdout
    );
    let again = bfctl(&["registry", "create"]).await;
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(again.stdout.contains("kept"), "{}", again.stdout);
    assert_eq!(
        google
            .log()
            .iter()
            .filter(|id| id.ends_with("repositories.create"))
            .count(),
        1
    );

    let deleted = bfctl(&["registry", "delete", "--yes"]).await;
    assert_eq!(deleted.code, 0, "{}", deleted.stderr);
    assert!(google.repository(REPOSITORY).is_none());
}
