//! Where `up --local` gets its broker and Valkey: servers named in the
//! configuration (used, checked, never stopped), and container images run
//! through the real Docker Engine (images built here, since none can be
//! pulled). Everything on 127.0.0.1.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

mod support;
use support::local::{
    Teardown, bfctl, bfctl_with_env, counted_exactly, json, local_status, process, text,
};
use testkit::free_port;

const PASSWORD_ENV: &str = "BFCTL_LOCAL_VALKEY_PASSWORD";

#[test]
fn configured_broker_and_valkey_are_used_and_left_running() {
    let temp = tempfile::tempdir().unwrap();
    // "Existing" servers: started here, as someone else's would be.
    let broker = testkit::broker::Broker::start(&temp.path().join("their-broker")).unwrap();
    let valkey = testkit::valkey::Valkey::start(&temp.path().join("their-valkey")).unwrap();
    let dir = temp.path().join("local");
    let dir_arg = dir.to_str().unwrap();
    let _teardown = Teardown(&dir);
    let port = free_port().to_string();
    let bootstrap = broker.bootstrap();
    let valkey_url = valkey.url();
    let envs = [(PASSWORD_ENV, valkey.password.as_str())];

    // A malformed URL is refused before anything starts.
    let bad = bfctl(&[
        "up",
        "--local",
        "--local-dir",
        dir_arg,
        "--valkey-url",
        "http://127.0.0.1:6379",
    ]);
    assert!(!bad.status.success());
    assert!(text(&bad).contains("redis://HOST:PORT"), "{}", text(&bad));
    assert!(!dir.join("state.json").exists());

    // A configured broker that does not answer: the graph stops, and what
    // it had started (Valkey, in parallel) is stopped again.
    let closed = format!("127.0.0.1:{}", free_port());
    let refused = bfctl(&[
        "up",
        "--local",
        "--local-dir",
        dir_arg,
        "--gateway-port",
        &port,
        "--docker",
        "never",
        "--kafka-bootstrap",
        &closed,
    ]);
    assert!(!refused.status.success(), "{}", text(&refused));
    let shown = text(&refused);
    assert!(
        shown.contains(&format!("the configured Kafka at {closed} does not answer")),
        "{shown}"
    );
    assert!(shown.contains("nothing of it is left running"), "{shown}");
    assert!(shown.contains("producers: not started"), "{shown}");
    let pids = valkey_pids_under(&dir);
    assert!(pids.is_empty(), "valkey-server left running: {pids:?}");
    let _ = bfctl(&["teardown", "--local", "--purge", "--local-dir", dir_arg]);

    let up = bfctl_with_env(
        &[
            "up",
            "--local",
            "--local-dir",
            dir_arg,
            "--gateway-port",
            &port,
            "--docker",
            "never",
            "--consumers",
            "1",
            "--producers",
            "1",
            "--kafka-bootstrap",
            &bootstrap,
            "--valkey-url",
            &valkey_url,
            "--output",
            "json",
        ],
        &envs,
    );
    assert!(up.status.success(), "{}", text(&up));
    let state = json(&up);
    assert_eq!(state["kafkaBootstrap"], bootstrap.as_str());
    assert_eq!(state["valkeyUrl"], valkey_url.as_str());

    let status = json(&bfctl(&[
        "status",
        "--local",
        "--local-dir",
        dir_arg,
        "--output",
        "json",
    ]));
    for name in ["broker", "valkey"] {
        let entry = status["processes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("{name} missing: {status}"));
        assert_eq!(entry["source"], "configured", "{entry}");
        assert_eq!(entry["running"], true, "{entry}");
    }

    // The load lands in the configured servers, counted exactly once.
    let load = bfctl(&[
        "loadtest",
        "--local-dir",
        dir_arg,
        "--users",
        "10",
        "--duration",
        "2",
        "--output",
        "json",
    ]);
    let (_, accepted) = counted_exactly(&load, 50);
    assert!(broker.record_count(blackfriday_proto::SALES_TOPIC).unwrap() >= accepted);
    let mut connection = valkey.connect().unwrap();
    let counted: i64 = redis::cmd("HGET")
        .arg("bf:stats")
        .arg("ventas")
        .query(&mut connection)
        .unwrap();
    assert_eq!(counted, accepted);

    // Teardown stops bfctl's processes, not the configured servers.
    let down = bfctl(&[
        "teardown",
        "--local",
        "--local-dir",
        dir_arg,
        "--output",
        "json",
    ]);
    assert!(down.status.success(), "{}", text(&down));
    let down = json(&down);
    assert_eq!(down["untouched"].as_array().unwrap().len(), 2, "{down}");
    assert_eq!(down["left"].as_array().unwrap().len(), 0, "{down}");
    testkit::broker::wait_for_metadata(&bootstrap, Duration::from_secs(5)).unwrap();
    testkit::valkey::wait_for_ping(&valkey_url, &valkey.password, Duration::from_secs(5)).unwrap();
}

/// valkey-server processes whose command line names `dir`.
fn valkey_pids_under(dir: &Path) -> Vec<String> {
    let output = Command::new("pgrep")
        .args(["-f", &format!("valkey-server.*{}", dir.display())])
        .output()
        .expect("pgrep runs");
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .map(String::from)
        .collect()
}

/// An image made here without a registry: `FROM scratch` with host
/// programs (found on PATH) and the libraries they link, under the same
/// paths, plus `files` (path in the image, contents; made executable), with
/// `entrypoint` if given.
fn build_host_image(
    tag: &str,
    context: &Path,
    programs: &[&str],
    files: &[(&str, &str)],
    entrypoint: Option<&str>,
) -> Result<(), String> {
    let rootfs = context.join("rootfs");
    for program in programs {
        let binary = which(program).ok_or(format!("{program} is not on PATH"))?;
        let ldd = Command::new("ldd")
            .arg(&binary)
            .output()
            .map_err(|e| format!("ldd: {e}"))?;
        let mut copies = vec![(binary.clone(), Path::new("/usr/bin").join(program))];
        for line in String::from_utf8_lossy(&ldd.stdout).lines() {
            // "libx.so => /lib/x86_64-linux-gnu/libx.so (0x…)" or "/lib64/ld-linux… (0x…)"
            if let Some(path) = line.split_whitespace().find(|word| word.starts_with('/')) {
                copies.push((Path::new(path).to_path_buf(), Path::new(path).to_path_buf()));
            }
        }
        for (from, to) in copies {
            let target = rootfs.join(to.strip_prefix("/").unwrap());
            std::fs::create_dir_all(target.parent().unwrap()).unwrap();
            // Copies the file behind a symlink.
            std::fs::copy(&from, &target)
                .map_err(|e| format!("copying {}: {e}", from.display()))?;
        }
    }
    for (path, contents) in files {
        let target = rootfs.join(path.trim_start_matches('/'));
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::write(&target, contents).unwrap();
        std::fs::set_permissions(&target, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
    }
    let mut dockerfile = String::from("FROM scratch\nCOPY rootfs/ /\nENV PATH=/usr/bin\n");
    if let Some(entrypoint) = entrypoint {
        dockerfile.push_str(&format!("ENTRYPOINT [\"{entrypoint}\"]\n"));
    }
    std::fs::write(context.join("Dockerfile"), dockerfile).unwrap();
    let built = Command::new("docker")
        .args(["build", "-q", "-t", tag])
        .arg(context)
        .output()
        .map_err(|e| format!("docker build: {e}"))?;
    if !built.status.success() {
        return Err(format!(
            "docker build failed: {}",
            String::from_utf8_lossy(&built.stderr)
        ));
    }
    Ok(())
}

/// Stands in for `valkey/valkey`, which cannot be pulled here: the host's
/// valkey-server. bfctl runs it exactly as it runs the official one
/// (`valkey-server --requirepass … --dir /data`).
fn build_valkey_image(tag: &str, context: &Path) -> Result<(), String> {
    build_host_image(tag, context, &["valkey-server"], &[], None)
}

/// Stands in for `apache/kafka`: the part of its environment contract that
/// bfctl relies on (`KAFKA_LISTENERS`, `KAFKA_ADVERTISED_LISTENERS`,
/// `KAFKA_LOG_DIRS` in a bind mount, KRaft combined roles), served by the
/// host's tansu. What it cannot show is that Apache Kafka itself accepts
/// the rest of bfctl's settings.
fn build_kafka_image(tag: &str, context: &Path) -> Result<(), String> {
    let entrypoint = r#"#!/usr/bin/bash
set -eu
advertised=${KAFKA_ADVERTISED_LISTENERS#PLAINTEXT://}
listener=${KAFKA_LISTENERS%%,*}
port=${listener##*:}
[ "$KAFKA_PROCESS_ROLES" = "broker,controller" ] || { echo "KRaft combined mode expected"; exit 1; }
exec tansu broker --listener-url "tcp://0.0.0.0:$port" \
  --advertised-listener-url "tcp://$advertised" \
  --storage-engine "sqlite:///$KAFKA_LOG_DIRS/tansu.db"
"#;
    build_host_image(
        tag,
        context,
        &["bash", "tansu"],
        &[("/etc/kafka/docker/run", entrypoint)],
        Some("/etc/kafka/docker/run"),
    )
}

fn which(program: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|candidate| candidate.is_file())
    })
}

fn docker_answers() -> bool {
    Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .output()
        .is_ok_and(|output| output.status.success())
}

#[test]
fn broker_and_valkey_run_from_container_images_and_are_removed_by_teardown() {
    if !docker_answers() {
        eprintln!("skipped: no Docker Engine answers here");
        return;
    }
    let temp = tempfile::tempdir().unwrap();
    let (valkey_tag, kafka_tag) = ("bfctl-test/valkey:host", "bfctl-test/kafka:tansu");
    build_valkey_image(valkey_tag, &temp.path().join("valkey-image")).unwrap();
    build_kafka_image(kafka_tag, &temp.path().join("kafka-image")).unwrap();
    let dir = temp.path().join("local");
    let dir_arg = dir.to_str().unwrap();
    let _teardown = Teardown(&dir);
    let port = free_port().to_string();
    let up_args = [
        "up",
        "--local",
        "--local-dir",
        dir_arg,
        "--gateway-port",
        &port,
        "--consumers",
        "1",
        "--producers",
        "1",
        "--docker",
        "auto",
        "--valkey-image",
        valkey_tag,
        "--kafka-image",
        kafka_tag,
        "--output",
        "json",
    ];
    let up = bfctl(&up_args);
    assert!(up.status.success(), "{}", text(&up));
    let progress = String::from_utf8_lossy(&up.stderr);
    assert_eq!(
        progress.matches("started container bfctl-local-").count(),
        2,
        "{progress}"
    );

    let status = json(&bfctl(&[
        "status",
        "--local",
        "--local-dir",
        dir_arg,
        "--output",
        "json",
    ]));
    let find = |name: &str| {
        status["processes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .cloned()
            .unwrap()
    };
    for server in ["broker", "valkey"] {
        assert_eq!(find(server)["source"], "container", "{status}");
        assert_eq!(find(server)["running"], true, "{status}");
    }

    let load = bfctl(&[
        "loadtest",
        "--local-dir",
        dir_arg,
        "--users",
        "10",
        "--duration",
        "2",
        "--output",
        "json",
    ]);
    counted_exactly(&load, 50);
    // The data is in the local directory, through the bind mounts.
    assert!(
        dir.join("valkey/data/appendonlydir").is_dir(),
        "no AOF under {}",
        dir.display()
    );
    assert!(dir.join("broker/data/tansu.db").is_file());

    // The Valkey container killed: the supervisor starts it again (same
    // port, same data), and the pipeline counts every sale once after.
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("state.json")).unwrap()).unwrap();
    let valkey_container = state["processes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "valkey")
        .and_then(|p| p["container"].as_str())
        .unwrap()
        .to_string();
    let killed = std::process::Command::new("docker")
        .args(["kill", &valkey_container])
        .output()
        .unwrap();
    assert!(killed.status.success(), "{killed:?}");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let valkey = process(&local_status(dir_arg), "valkey");
        if valkey["running"] == true && valkey["restarts"] == 1 {
            assert_eq!(valkey["lastExit"], "exit code 137", "{valkey}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not started again: {valkey}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let after = bfctl(&[
        "loadtest",
        "--local-dir",
        dir_arg,
        "--users",
        "10",
        "--duration",
        "2",
        "--drain-timeout",
        "60",
        "--output",
        "json",
    ]);
    counted_exactly(&after, 50);

    // A supervisor killed outright cannot remove its container: teardown does.
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("state.json")).unwrap()).unwrap();
    let supervisor = state["supervisorPid"].as_i64().unwrap() as i32;
    // SAFETY: kill(2) on the supervisor this test started.
    unsafe { libc::kill(supervisor, libc::SIGKILL) };
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(containers_of(&dir).len(), 2, "the containers outlived it");
    let down = bfctl(&[
        "teardown",
        "--local",
        "--purge",
        "--local-dir",
        dir_arg,
        "--output",
        "json",
    ]);
    assert!(down.status.success(), "{}", text(&down));
    let down = json(&down);
    let removed = down["stopped"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s.as_str().unwrap().starts_with("container bfctl-local-"))
        .count();
    assert_eq!(removed, 2, "{down}");
    assert!(containers_of(&dir).is_empty(), "container left behind");

    // A container that does not come up: said, removed, and the binary used.
    let broken = "bfctl-test/kafka:broken";
    build_host_image(
        broken,
        &temp.path().join("broken-image"),
        &["bash"],
        &[(
            "/run",
            "#!/usr/bin/bash\necho 'this broker refuses to start'\nexit 1\n",
        )],
        Some("/run"),
    )
    .unwrap();
    let up = bfctl(&[
        "up",
        "--local",
        "--local-dir",
        dir_arg,
        "--gateway-port",
        &port,
        "--docker",
        "auto",
        "--valkey-image",
        valkey_tag,
        "--kafka-image",
        broken,
    ]);
    assert!(up.status.success(), "{}", text(&up));
    let progress = String::from_utf8_lossy(&up.stderr);
    assert!(
        progress.contains("the bfctl-test/kafka:broken container did not come up")
            && progress.contains("this broker refuses to start")
            && progress.contains("started tansu"),
        "{progress}"
    );
    assert_eq!(containers_of(&dir).len(), 1, "only Valkey's container runs");
    let down = bfctl(&["teardown", "--local", "--purge", "--local-dir", dir_arg]);
    assert!(down.status.success(), "{}", text(&down));
    assert!(containers_of(&dir).is_empty(), "container left behind");
}

/// Ids of containers labelled with this local directory.
fn containers_of(dir: &Path) -> Vec<String> {
    let label = format!("label=bfctl.local.dir={}", dir.display());
    let output = Command::new("docker")
        .args(["ps", "-aq", "--filter", &label])
        .output()
        .expect("docker ps runs");
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .map(String::from)
        .collect()
}
