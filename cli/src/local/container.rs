//! The broker and Valkey as containers, through the Docker Engine (bollard):
//! the official images (`apache/kafka` in KRaft mode, `valkey/valkey`) when
//! an engine answers and the image is present or can be pulled.
//!
//! Every container bfctl starts here is labelled with the local directory it
//! belongs to, publishes its port on 127.0.0.1 only, and keeps its data in a
//! bind mount under that directory. The supervisor removes its containers
//! when it stops; `teardown --local` removes any a killed supervisor left.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig, PortBinding};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptionsBuilder, ListContainersOptionsBuilder,
    LogsOptionsBuilder, RemoveContainerOptionsBuilder,
};
use futures_util::StreamExt;

/// The label naming the local directory a container belongs to.
pub const DIR_LABEL: &str = "bfctl.local.dir";
/// The label naming its role (`broker` or `valkey`).
pub const ROLE_LABEL: &str = "bfctl.local.role";

/// Whether broker and Valkey may come from container images.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    serde::Serialize,
    serde::Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum DockerUse {
    /// When an engine answers and the image is there or can be pulled.
    #[default]
    Auto,
    /// Never: a configured address or binaries from PATH.
    Never,
}

/// The Docker Engine, if one answers within two seconds.
pub async fn engine() -> Option<Docker> {
    let docker = Docker::connect_with_local_defaults().ok()?;
    match tokio::time::timeout(Duration::from_secs(2), docker.ping()).await {
        Ok(Ok(_)) => Some(docker),
        _ => None,
    }
}

/// Makes sure `image` is present, pulling it if needed. The error says why
/// it cannot be had (the caller falls back to binaries).
pub async fn ensure_image(docker: &Docker, image: &str) -> Result<(), String> {
    if docker.inspect_image(image).await.is_ok() {
        return Ok(());
    }
    let options = CreateImageOptionsBuilder::new().from_image(image).build();
    let pull = async {
        let mut stream = docker.create_image(Some(options), None, None);
        while let Some(item) = stream.next().await {
            item.map_err(|error| error.to_string())?;
        }
        Ok::<(), String>(())
    };
    match tokio::time::timeout(Duration::from_secs(600), pull).await {
        Ok(result) => result,
        Err(_) => Err("pulling took over 10 minutes".into()),
    }
}

/// What to run: one server, one published port.
#[derive(Debug, Clone)]
pub struct ContainerSpec {
    /// `broker` or `valkey`: the role label and part of the name.
    pub role: &'static str,
    pub image: String,
    pub cmd: Option<Vec<String>>,
    pub env: Vec<String>,
    /// The port inside the container, published on 127.0.0.1:`host_port`.
    pub container_port: u16,
    pub host_port: u16,
    /// Host directory mounted at `mount_at`.
    pub data_dir: PathBuf,
    pub mount_at: String,
}

/// A container bfctl started.
#[derive(Debug, Clone)]
pub struct Container {
    pub id: String,
    pub name: String,
    pub image: String,
}

/// A Docker-safe name for this directory's container of `role`.
pub fn container_name(local_dir: &Path, role: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(local_dir.as_os_str().as_encoded_bytes());
    let short: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
    format!("bfctl-local-{short}-{role}")
}

/// Creates and starts the container (a leftover of the same name is removed
/// first).
pub async fn run(
    docker: &Docker,
    local_dir: &Path,
    spec: &ContainerSpec,
) -> anyhow::Result<Container> {
    let name = container_name(local_dir, spec.role);
    remove(docker, &name).await;
    std::fs::create_dir_all(&spec.data_dir)
        .with_context(|| format!("creating {}", spec.data_dir.display()))?;
    let port_key = format!("{}/tcp", spec.container_port);
    let host_config = HostConfig {
        binds: Some(vec![format!(
            "{}:{}",
            spec.data_dir.display(),
            spec.mount_at
        )]),
        port_bindings: Some(HashMap::from([(
            port_key.clone(),
            Some(vec![PortBinding {
                host_ip: Some("127.0.0.1".into()),
                host_port: Some(spec.host_port.to_string()),
            }]),
        )])),
        ..Default::default()
    };
    let body = ContainerCreateBody {
        image: Some(spec.image.clone()),
        cmd: spec.cmd.clone(),
        env: Some(spec.env.clone()),
        exposed_ports: Some(vec![port_key]),
        labels: Some(HashMap::from([
            (DIR_LABEL.to_string(), local_dir.display().to_string()),
            (ROLE_LABEL.to_string(), spec.role.to_string()),
        ])),
        host_config: Some(host_config),
        ..Default::default()
    };
    let created = docker
        .create_container(
            Some(CreateContainerOptionsBuilder::new().name(&name).build()),
            body,
        )
        .await
        .with_context(|| format!("creating container {name} from {}", spec.image))?;
    if let Err(error) = docker.start_container(&created.id, None).await {
        remove(docker, &created.id).await;
        return Err(error).with_context(|| format!("starting container {name}"));
    }
    Ok(Container {
        id: created.id,
        name,
        image: spec.image.clone(),
    })
}

/// Whether the container is running.
pub async fn is_running(docker: &Docker, id: &str) -> bool {
    docker
        .inspect_container(id, None)
        .await
        .ok()
        .and_then(|c| c.state)
        .and_then(|state| state.running)
        .unwrap_or(false)
}

/// How the container ended, once it has ("exit code 137"); None while it
/// runs, or when the engine cannot say.
pub async fn exit_of(docker: &Docker, id: &str) -> Option<String> {
    let state = docker.inspect_container(id, None).await.ok()?.state?;
    if state.running.unwrap_or(false) {
        return None;
    }
    Some(match (state.oom_killed, state.exit_code) {
        (Some(true), _) => "killed: out of memory".to_string(),
        (_, Some(code)) => format!("exit code {code}"),
        _ => "exited".to_string(),
    })
}

/// Starts an exited container again: the same ports, data and command.
pub async fn start(docker: &Docker, id: &str) -> anyhow::Result<()> {
    docker
        .start_container(id, None)
        .await
        .with_context(|| format!("starting container {id} again"))
}

/// Kills the container (SIGKILL to its first process, as `docker kill`).
pub async fn kill(docker: &Docker, id: &str) -> anyhow::Result<()> {
    docker
        .kill_container(
            id,
            Some(
                bollard::query_parameters::KillContainerOptionsBuilder::default()
                    .signal("SIGKILL")
                    .build(),
            ),
        )
        .await
        .with_context(|| format!("killing container {id}"))
}

/// Freezes every process of the container (`docker pause`).
pub async fn pause(docker: &Docker, id: &str) -> anyhow::Result<()> {
    docker
        .pause_container(id)
        .await
        .with_context(|| format!("pausing container {id}"))
}

/// Thaws a paused container (`docker unpause`).
pub async fn unpause(docker: &Docker, id: &str) -> anyhow::Result<()> {
    docker
        .unpause_container(id)
        .await
        .with_context(|| format!("unpausing container {id}"))
}

/// Stops the container: SIGTERM, SIGKILL after `grace` (`docker stop`).
pub async fn stop(docker: &Docker, id: &str, grace: Duration) -> anyhow::Result<()> {
    docker
        .stop_container(
            id,
            Some(
                bollard::query_parameters::StopContainerOptionsBuilder::default()
                    .t(grace.as_secs() as i32)
                    .build(),
            ),
        )
        .await
        .with_context(|| format!("stopping container {id}"))
}

/// The container's last `lines` lines of output.
pub async fn log_tail(docker: &Docker, id: &str, lines: usize) -> String {
    let options = LogsOptionsBuilder::new()
        .stdout(true)
        .stderr(true)
        .tail(&lines.to_string())
        .build();
    let mut stream = docker.logs(id, Some(options));
    let mut out = String::new();
    while let Some(Ok(chunk)) = stream.next().await {
        out.push_str(&chunk.to_string());
    }
    out
}

/// Force-removes a container (stopping it); a missing one is fine.
pub async fn remove(docker: &Docker, id_or_name: &str) -> bool {
    let options = RemoveContainerOptionsBuilder::new().force(true).build();
    docker
        .remove_container(id_or_name, Some(options))
        .await
        .is_ok()
}

/// Removes every container labelled with `local_dir`; returns their names.
pub async fn remove_all_of(docker: &Docker, local_dir: &Path) -> anyhow::Result<Vec<String>> {
    let filters = HashMap::from([(
        "label",
        vec![format!("{DIR_LABEL}={}", local_dir.display())],
    )]);
    let options = ListContainersOptionsBuilder::new()
        .all(true)
        .filters(&filters)
        .build();
    let containers = docker
        .list_containers(Some(options))
        .await
        .context("listing containers")?;
    let mut removed = Vec::new();
    for container in containers {
        let Some(id) = container.id else { continue };
        let name = container
            .names
            .and_then(|names| names.first().cloned())
            .unwrap_or_else(|| id.clone());
        if remove(docker, &id).await {
            removed.push(format!("container {}", name.trim_start_matches('/')));
        }
    }
    Ok(removed)
}

/// `apache/kafka` as a single KRaft node (broker and controller). The
/// listener uses the host port inside the container too, so the advertised
/// address `127.0.0.1:PORT` is right from both sides.
pub fn kafka_spec(
    image: &str,
    host_port: u16,
    partitions: i32,
    data_dir: PathBuf,
) -> ContainerSpec {
    let env = [
        ("KAFKA_NODE_ID", "1".to_string()),
        ("KAFKA_PROCESS_ROLES", "broker,controller".into()),
        (
            "KAFKA_LISTENERS",
            format!("PLAINTEXT://:{host_port},CONTROLLER://:9093"),
        ),
        (
            "KAFKA_ADVERTISED_LISTENERS",
            format!("PLAINTEXT://127.0.0.1:{host_port}"),
        ),
        ("KAFKA_CONTROLLER_LISTENER_NAMES", "CONTROLLER".into()),
        (
            "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP",
            "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT".into(),
        ),
        ("KAFKA_CONTROLLER_QUORUM_VOTERS", "1@localhost:9093".into()),
        ("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "1".into()),
        ("KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR", "1".into()),
        ("KAFKA_TRANSACTION_STATE_LOG_MIN_ISR", "1".into()),
        ("KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS", "0".into()),
        ("KAFKA_NUM_PARTITIONS", partitions.to_string()),
        ("KAFKA_LOG_DIRS", "/var/lib/kafka/data".into()),
    ];
    ContainerSpec {
        role: "broker",
        image: image.to_string(),
        cmd: None,
        env: env.iter().map(|(k, v)| format!("{k}={v}")).collect(),
        container_port: host_port,
        host_port,
        data_dir,
        mount_at: "/var/lib/kafka/data".into(),
    }
}

/// `valkey/valkey` with a password and AOF, its data in `/data`.
pub fn valkey_spec(
    image: &str,
    host_port: u16,
    password: &str,
    data_dir: PathBuf,
) -> ContainerSpec {
    ContainerSpec {
        role: "valkey",
        image: image.to_string(),
        cmd: Some(
            [
                "valkey-server",
                "--port",
                "6379",
                "--requirepass",
                password,
                "--appendonly",
                "yes",
                "--appendfsync",
                "everysec",
                "--save",
                "",
                "--dir",
                "/data",
            ]
            .map(String::from)
            .to_vec(),
        ),
        env: Vec::new(),
        container_port: 6379,
        host_port,
        data_dir,
        mount_at: "/data".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_advertises_the_published_port_on_loopback() {
        let spec = kafka_spec("apache/kafka:4.2.0", 41000, 6, PathBuf::from("/tmp/x"));
        assert!(
            spec.env
                .contains(&"KAFKA_ADVERTISED_LISTENERS=PLAINTEXT://127.0.0.1:41000".to_string())
        );
        assert!(
            spec.env
                .contains(&"KAFKA_LISTENERS=PLAINTEXT://:41000,CONTROLLER://:9093".to_string())
        );
        assert_eq!((spec.container_port, spec.host_port), (41000, 41000));
    }

    #[test]
    fn names_differ_per_directory_and_role() {
        let a = container_name(Path::new("/a/.bfctl/local"), "valkey");
        let b = container_name(Path::new("/b/.bfctl/local"), "valkey");
        assert_ne!(a, b);
        assert!(a.starts_with("bfctl-local-") && a.ends_with("-valkey"));
    }
}
