//! `bfctl build --push` against a real registry (Debian's docker-registry on
//! 127.0.0.1): deterministic digests, a second push that sends 0 bytes,
//! what skopeo sees, the local Docker Engine pulling and running the image,
//! and clear errors for bad registries and bases.
//!
//! No image can be pulled from outside here, so the base image is made from
//! this host's own glibc files and pushed to the test registry first; the
//! builder then reads it by digest like any base.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use bfctl::build::image::build::{BuildOptions, build_all};
use bfctl::build::image::layer::{self, LayerFile};
use bfctl::build::image::oci::{self, Base, ImageSpec};
use bfctl::build::image::registry::{RegistryClient, RegistryOptions};
use bfctl::plan::config::Config;
use oci_client::secrets::RegistryAuth;
use support::host_base::push_host_base;
use support::registry::TestRegistry;

fn anonymous() -> RegistryOptions {
    RegistryOptions {
        insecure: false,
        ca_files: Vec::new(),
        auth: RegistryAuth::Anonymous,
    }
}

/// The smallest image: one file, no base. For the registry error paths.
fn one_file_image() -> oci::Image {
    oci::assemble(
        &ImageSpec {
            entrypoint: vec!["/x".into()],
            exposed_ports: Vec::new(),
            user: "65532:65532".into(),
            env: Vec::new(),
            labels: Vec::new(),
            created: oci::rfc3339(0),
        },
        &Base::default(),
        vec![
            layer::build(
                &[LayerFile {
                    path: "/x".into(),
                    mode: 0o755,
                    uid: 0,
                    gid: 0,
                    data: b"x".to_vec(),
                }],
                0,
            )
            .unwrap(),
        ],
    )
    .unwrap()
}

fn config_for(registry: &str, base: &str) -> Config {
    Config::parse(
        &format!(
            "registry:\n  url: {registry}/bf\n  credentials: none\ncarnet: \"201900006\"\nimages:\n  base: {base}\n"
        ),
        "test bfctl.yaml",
    )
    .unwrap()
}

fn options(state_dir: &Path, push: bool) -> BuildOptions {
    BuildOptions {
        workspace: Path::new(env!("CARGO_MANIFEST_DIR")).join(".."),
        state_dir: state_dir.to_path_buf(),
        profile: "release".into(),
        push,
        registry: anonymous(),
        base_registry: anonymous(),
    }
}

fn run(program: &str, args: &[&str]) -> (bool, String) {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {program}: {e}"));
    (
        output.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}

fn http_status(port: u16, path: &str) -> Option<u16> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    answer.split_whitespace().nth(1)?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_images_are_deterministic_pushed_once_and_run_under_docker() {
    let registry = TestRegistry::start(None);
    let base = push_host_base(&registry).await;
    let config = config_for(&registry.host, &base);
    let state = tempfile::tempdir().unwrap();

    let first = build_all(&config, &options(state.path(), true), |line| {
        eprintln!("{line}")
    })
    .await
    .unwrap();
    assert_eq!(first.len(), 3);
    for image in &first {
        let push = image.push.as_ref().unwrap();
        assert!(push.bytes_uploaded > 0);
        eprintln!(
            "{}: {} {:.1} MB compressed, {} bytes uploaded",
            image.service,
            image.digest,
            image.size as f64 / 1e6,
            push.bytes_uploaded
        );
    }

    // Same inputs: same digests, nothing re-assembled, 0 bytes sent.
    let second = build_all(&config, &options(state.path(), true), |_| {})
        .await
        .unwrap();
    for (a, b) in first.iter().zip(&second) {
        assert_eq!(a.digest, b.digest);
        assert!(b.cached, "{} was rebuilt", b.service);
        assert_eq!(b.push.as_ref().unwrap().bytes_uploaded, 0, "{}", b.service);
    }
    // Assembled again from scratch (no cache): still the same bytes.
    std::fs::remove_dir_all(state.path().join("images")).unwrap();
    let third = build_all(&config, &options(state.path(), false), |_| {})
        .await
        .unwrap();
    for (a, c) in first.iter().zip(&third) {
        assert_eq!(a.digest, c.digest, "{} is not reproducible", a.service);
        assert!(!c.cached);
    }
    // Recorded for render/up.
    let recorded = bfctl::build::image::ImageState::load(state.path()).unwrap();
    let (refs, missing) = bfctl::build::image_refs(&config, &recorded);
    assert_eq!(
        missing,
        vec!["valkey-disk"],
        "only the VM disk is not built here"
    );
    assert_eq!(
        refs.gateway,
        format!("{}/bf/gateway@{}", registry.host, first[0].digest)
    );

    // What skopeo sees.
    let gateway = format!("docker://{}", refs.gateway);
    let (ok, inspected) = run("skopeo", &["inspect", "--tls-verify=false", &gateway]);
    assert!(ok, "{inspected}");
    let inspected: serde_json::Value = serde_json::from_str(&inspected).unwrap();
    assert_eq!(inspected["Digest"], first[0].digest);
    assert!(inspected["Labels"]["org.opencontainers.image.revision"].is_string());
    let (ok, config_json) = run(
        "skopeo",
        &["inspect", "--tls-verify=false", "--config", &gateway],
    );
    assert!(ok, "{config_json}");
    let image_config: serde_json::Value = serde_json::from_str(&config_json).unwrap();
    assert_eq!(image_config["config"]["User"], "65532:65532");
    assert_eq!(
        image_config["config"]["Entrypoint"][0],
        "/usr/local/bin/gateway"
    );

    // The local Docker Engine pulls each image by digest and runs it,
    // read-only, without capabilities: every service answers its liveness
    // check (no broker or Valkey is reachable from the containers).
    let unreachable = [
        "-e",
        "KAFKA_BROKERS=127.0.0.1:1",
        "-e",
        "VALKEY_URL=redis://127.0.0.1:1/0",
    ];
    for (reference, port_inside, extra) in [
        (
            &refs.gateway,
            8080,
            vec!["-e", "PRODUCER_TARGETS=127.0.0.1:1"],
        ),
        (&refs.producer, 9090, unreachable.to_vec()),
        (
            &refs.consumer,
            9090,
            [unreachable.as_slice(), &["-e", "CARNET=201900006"]].concat(),
        ),
    ] {
        assert_runs_and_answers(reference, port_inside, &extra);
    }
}

fn assert_runs_and_answers(reference: &str, port_inside: u16, extra: &[&str]) {
    let (ok, pulled) = run("docker", &["pull", reference]);
    assert!(ok, "{pulled}");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let name = format!("bfctl-test-{port}");
    let publish = format!("127.0.0.1:{port}:{port_inside}");
    let mut args = vec![
        "run",
        "-d",
        "--name",
        &name,
        "--read-only",
        "--cap-drop",
        "ALL",
        "-p",
        &publish,
    ];
    args.extend_from_slice(extra);
    args.push(reference);
    let (ok, started) = run("docker", &args);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut answered = None;
    while ok && Instant::now() < deadline {
        answered = http_status(port, "/healthz");
        if answered == Some(200) {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let (_, logs) = run("docker", &["logs", &name]);
    let _ = run("docker", &["rm", "-f", &name]);
    let _ = run("docker", &["rmi", reference]);
    assert!(ok, "{started}");
    assert_eq!(answered, Some(200), "{reference} logs:\n{logs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_registries_and_bases_are_clear_errors() {
    // Nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let nowhere = format!("127.0.0.1:{port}");
    let image = one_file_image();
    let client = RegistryClient::new(&nowhere, &anonymous()).unwrap();
    let error = format!(
        "{:#}",
        client
            .push(&format!("{nowhere}/bf/x"), &image)
            .await
            .unwrap_err()
    );
    assert!(
        error.contains("unreachable") && error.contains(&nowhere),
        "{error}"
    );

    // Wrong credentials on a registry that wants them; then the right ones.
    let registry = TestRegistry::start(Some(("ana", "right")));
    let repository = format!("{}/bf/x", registry.host);
    let wrong = RegistryOptions {
        auth: RegistryAuth::Basic("ana".into(), "wrong".into()),
        ..anonymous()
    };
    let client = RegistryClient::new(&registry.host, &wrong).unwrap();
    let error = format!("{:#}", client.push(&repository, &image).await.unwrap_err());
    assert!(
        error.contains(&registry.host) && (error.contains("credentials") || error.contains("401")),
        "{error}"
    );
    let right = RegistryOptions {
        auth: RegistryAuth::Basic("ana".into(), "right".into()),
        ..anonymous()
    };
    let client = RegistryClient::new(&registry.host, &right).unwrap();
    let pushed = client.push(&repository, &image).await.unwrap();
    assert_eq!(pushed.digest, image.digest());
    let (ok, listed) = run(
        "skopeo",
        &[
            "inspect",
            "--tls-verify=false",
            "--creds",
            "ana:right",
            &format!("docker://{repository}@{}", image.digest()),
        ],
    );
    assert!(ok, "{listed}");

    // A base that does not exist, and one not pinned by digest.
    let missing = format!("{}/nothing@sha256:{}", registry.host, "0".repeat(64));
    let error = format!("{:#}", client.base(&missing).await.unwrap_err());
    assert!(error.contains("nothing"), "{error}");
    let error = format!(
        "{:#}",
        client
            .base(&format!("{}/base:latest", registry.host))
            .await
            .unwrap_err()
    );
    assert!(error.contains("pinned by digest"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dockerfile_is_built_by_the_engine_through_bollard_and_pushed() {
    use bfctl::build::image::docker::{DockerBuild, build_and_push};
    let registry = TestRegistry::start(Some(("ana", "right")));
    let context = tempfile::tempdir().unwrap();
    std::fs::write(
        context.path().join("Dockerfile"),
        "FROM scratch\nARG GREETING\nCOPY hello.txt /hello.txt\nLABEL greeting=${GREETING}\n",
    )
    .unwrap();
    std::fs::write(context.path().join("hello.txt"), "hola\n").unwrap();
    let tag = format!("{}/bf/scratch:test", registry.host);
    let auth = RegistryAuth::Basic("ana".into(), "right".into());
    let build = DockerBuild {
        context: context.path().to_path_buf(),
        dockerfile: "Dockerfile".into(),
        tag: tag.clone(),
        build_args: vec![("GREETING".into(), "hola".into())],
    };
    let mut lines = Vec::new();
    let built = build_and_push(&build, true, &auth, |line| lines.push(line.to_string()))
        .await
        .unwrap();
    let _ = run("docker", &["rmi", &tag]);
    assert!(
        lines.iter().any(|l| l.contains("COPY hello.txt")),
        "build output streamed: {lines:?}"
    );
    let digest = built.pushed_digest.expect("a digest");
    let (ok, inspected) = run(
        "skopeo",
        &[
            "inspect",
            "--tls-verify=false",
            "--creds",
            "ana:right",
            &format!("docker://{tag}"),
        ],
    );
    assert!(ok, "{inspected}");
    let inspected: serde_json::Value = serde_json::from_str(&inspected).unwrap();
    assert_eq!(inspected["Digest"], digest);
    assert_eq!(inspected["Labels"]["greeting"], "hola");

    // No Dockerfile; a Dockerfile whose COPY source is missing.
    let missing = DockerBuild {
        dockerfile: "Nope.Dockerfile".into(),
        ..build.clone()
    };
    let error = format!(
        "{:#}",
        build_and_push(&missing, false, &auth, |_| {})
            .await
            .unwrap_err()
    );
    assert!(error.contains("Nope.Dockerfile not found"), "{error}");
    std::fs::write(
        context.path().join("Broken.Dockerfile"),
        "FROM scratch\nCOPY absent.txt /\n",
    )
    .unwrap();
    let broken = DockerBuild {
        dockerfile: "Broken.Dockerfile".into(),
        tag: format!("{}/bf/broken:test", registry.host),
        ..build
    };
    let error = format!(
        "{:#}",
        build_and_push(&broken, true, &auth, |_| {})
            .await
            .unwrap_err()
    );
    assert!(
        error.contains("docker build of") && error.contains("absent.txt"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_registry_needs_its_ca_and_then_takes_the_push() {
    let (registry, ca) = TestRegistry::start_tls();
    let image = one_file_image();
    let repository = format!("{}/bf/x", registry.host);
    // Without the CA: plain HTTP to a TLS port (loopback default) fails.
    let client = RegistryClient::new(&registry.host, &anonymous()).unwrap();
    assert!(client.push(&repository, &image).await.is_err());
    // With the CA: TLS, verified.
    let with_ca = RegistryOptions {
        ca_files: vec![ca.clone()],
        ..anonymous()
    };
    let client = RegistryClient::new(&registry.host, &with_ca).unwrap();
    let pushed = client.push(&repository, &image).await.unwrap();
    assert_eq!(pushed.digest, image.digest());
    // A CA that did not sign the certificate is refused.
    let (other, _) = TestRegistry::start_tls();
    let wrong_ca = RegistryOptions {
        ca_files: vec![ca],
        ..anonymous()
    };
    let client = RegistryClient::new(&other.host, &wrong_ca).unwrap();
    let error = format!(
        "{:#}",
        client
            .push(&format!("{}/bf/x", other.host), &image)
            .await
            .unwrap_err()
    );
    assert!(
        error.contains(&other.host) && error.to_lowercase().contains("certificate"),
        "{error}"
    );
}
