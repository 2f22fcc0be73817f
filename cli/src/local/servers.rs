//! Where the local pipeline's broker and Valkey come from, in this order of
//! preference:
//!
//! 1. **An address from the configuration** (`local.kafkaBootstrap`,
//!    `local.valkeyUrl`, or the `--kafka-bootstrap` / `--valkey-url` flags):
//!    an existing server, which bfctl checks but never starts or stops.
//! 2. **The official container image** (`apache/kafka` in KRaft mode,
//!    `valkey/valkey`) when a Docker Engine answers and the image is present
//!    or can be pulled (see [`super::container`]).
//! 3. **A binary from PATH**: `tansu` with sqlite storage, `valkey-server`.
//!
//! Each fallback is said as a note on the step, with the reason: no engine,
//! an image that cannot be had, or a container that does not come up. A
//! Valkey that bfctl starts always gets a generated password and AOF.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use bollard::Docker;
use localrun::broker::Broker;
use localrun::valkey::Valkey;
use serde::{Deserialize, Serialize};

use super::container::{self, Container, DockerUse};

/// The choices `up --local` makes about the broker and Valkey.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerChoices {
    /// An existing Kafka: `host:port[,host:port...]`.
    pub kafka_bootstrap: Option<String>,
    /// An existing Valkey: `redis://host:port[/db]`.
    pub valkey_url: Option<String>,
    /// The environment variable that holds that Valkey's password.
    pub valkey_password_env: String,
    pub docker: DockerUse,
    pub kafka_image: String,
    pub valkey_image: String,
}

pub const DEFAULT_VALKEY_PASSWORD_ENV: &str = "BFCTL_LOCAL_VALKEY_PASSWORD";
pub const DEFAULT_KAFKA_IMAGE: &str = "apache/kafka:4.2.0";
pub const DEFAULT_VALKEY_IMAGE: &str = "valkey/valkey:8.1";

impl Default for ServerChoices {
    fn default() -> ServerChoices {
        ServerChoices {
            kafka_bootstrap: None,
            valkey_url: None,
            valkey_password_env: DEFAULT_VALKEY_PASSWORD_ENV.into(),
            docker: DockerUse::Auto,
            kafka_image: DEFAULT_KAFKA_IMAGE.into(),
            valkey_image: DEFAULT_VALKEY_IMAGE.into(),
        }
    }
}

/// How a server came to run.
pub enum Origin<P> {
    /// Named in the configuration: not ours to start or stop.
    Configured,
    /// A process bfctl started (killed when dropped).
    Process(P),
    /// A container bfctl started (removed by [`Server::stop`]).
    Container(Container),
}

/// The broker or Valkey, running.
pub struct Server<P> {
    /// `host:port` (the first one, for a list of brokers).
    pub address: String,
    pub origin: Origin<P>,
    /// Its log file (a container's output is copied there when it exits).
    pub log: PathBuf,
}

impl<P> Server<P> {
    /// `configured`, `container` or `process`.
    pub fn source(&self) -> &'static str {
        match self.origin {
            Origin::Configured => "configured",
            Origin::Process(_) => "process",
            Origin::Container(_) => "container",
        }
    }

    /// Stops what bfctl started: kills the process, removes the container.
    pub async fn stop(self, docker: Option<&Docker>) {
        match self.origin {
            Origin::Configured => {}
            Origin::Process(process) => drop(process),
            Origin::Container(container) => {
                if let Some(docker) = docker {
                    container::remove(docker, &container.id).await;
                }
            }
        }
    }
}

/// Valkey, running, with what connecting needs.
pub struct ValkeyServer {
    pub server: Server<Valkey>,
    /// `redis://host:port/db`, without the password.
    pub url: String,
    pub password: String,
}

/// Runs a blocking start-and-wait off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .context("a start task panicked")?
}

/// Whether to try containers: the engine, if allowed and answering.
pub async fn docker_for(choices: &ServerChoices, note: &(dyn Fn(String) + Sync)) -> Option<Docker> {
    if choices.docker == DockerUse::Never {
        return None;
    }
    let engine = container::engine().await;
    if engine.is_none() {
        note("no Docker Engine answers; broker and Valkey run from PATH".into());
    }
    engine
}

/// The image, or why it cannot be used (said as a note).
async fn usable_image(
    docker: Option<&Docker>,
    image: &str,
    fallback: &str,
    note: &(dyn Fn(String) + Sync),
) -> bool {
    let Some(docker) = docker else { return false };
    note(format!("looking for image {image}"));
    match container::ensure_image(docker, image).await {
        Ok(()) => true,
        Err(why) => {
            note(format!(
                "image {image} cannot be had ({why}); using {fallback}"
            ));
            false
        }
    }
}

/// Runs `spec` and waits until `ready` (blocking) succeeds. A container
/// that does not come up is removed, and the error carries its last output.
async fn run_container(
    docker: &Docker,
    dir: &Path,
    spec: &container::ContainerSpec,
    note: &(dyn Fn(String) + Sync),
    ready: impl FnOnce() -> anyhow::Result<()> + Send + 'static,
) -> anyhow::Result<Container> {
    let started = container::run(docker, dir, spec).await?;
    note(format!(
        "started container {} ({})",
        started.name, started.image
    ));
    let exited = async {
        // A container that stops is not going to answer: fail at once
        // rather than at the end of the wait.
        while container::is_running(docker, &started.id).await {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    };
    let outcome = tokio::select! {
        outcome = blocking(ready) => outcome,
        () = exited => Err(anyhow::anyhow!("the container exited")),
    };
    if let Err(error) = outcome {
        let tail = container::log_tail(docker, &started.id, 30).await;
        container::remove(docker, &started.id).await;
        return Err(error.context(format!("container {} log:\n{tail}", started.name)));
    }
    Ok(started)
}

/// The broker, with the `ventas` topic of `partitions` partitions.
pub async fn start_broker(
    dir: &Path,
    choices: &ServerChoices,
    partitions: i32,
    docker: Option<&Docker>,
    note: &(dyn Fn(String) + Sync),
) -> anyhow::Result<Server<Broker>> {
    let log = dir.join("broker").join("broker.log");
    let mut server = None;
    if let Some(bootstrap) = &choices.kafka_bootstrap {
        note(format!("using the configured Kafka at {bootstrap}"));
        let check = bootstrap.clone();
        blocking(move || {
            localrun::broker::wait_for_metadata(&check, Duration::from_secs(15))
                .with_context(|| format!("the configured Kafka at {check} does not answer"))
        })
        .await?;
        server = Some(Server {
            address: bootstrap.clone(),
            origin: Origin::Configured,
            log: log.clone(),
        });
    } else if usable_image(docker, &choices.kafka_image, "tansu from PATH", note).await
        && let Some(docker) = docker
    {
        let port = localrun::free_port();
        let data = dir.join("broker").join("data");
        std::fs::create_dir_all(&data).with_context(|| format!("creating {}", data.display()))?;
        // The image runs Kafka as uid 1000: let it write its data directory.
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o777))
            .with_context(|| format!("opening {} to the container", data.display()))?;
        let spec = container::kafka_spec(&choices.kafka_image, port, partitions, data);
        let address = format!("127.0.0.1:{port}");
        let check = address.clone();
        let ready = move || localrun::broker::wait_for_metadata(&check, Duration::from_secs(120));
        match run_container(docker, dir, &spec, note, ready).await {
            Ok(started) => {
                server = Some(Server {
                    address,
                    origin: Origin::Container(started),
                    log: log.clone(),
                })
            }
            Err(error) => note(format!(
                "the {} container did not come up ({error:#}); using tansu from PATH",
                choices.kafka_image
            )),
        }
    }
    let server = match server {
        Some(server) => server,
        None => {
            let broker_dir = dir.join("broker");
            let broker = blocking(move || Broker::start(&broker_dir)).await?;
            note(format!(
                "started tansu (pid {})",
                broker.process().pid().unwrap_or(0)
            ));
            Server {
                address: broker.bootstrap(),
                log: broker.process().log_path().to_path_buf(),
                origin: Origin::Process(broker),
            }
        }
    };
    let bootstrap = server.address.clone();
    blocking(move || {
        localrun::broker::create_topic(&bootstrap, blackfriday_proto::SALES_TOPIC, partitions)
    })
    .await
    .context("creating the sales topic")?;
    note(format!(
        "topic {} has {partitions} partitions",
        blackfriday_proto::SALES_TOPIC
    ));
    Ok(server)
}

/// Valkey, answering an authenticated PING.
pub async fn start_valkey(
    dir: &Path,
    choices: &ServerChoices,
    docker: Option<&Docker>,
    note: &(dyn Fn(String) + Sync),
) -> anyhow::Result<ValkeyServer> {
    let log = dir.join("valkey").join("valkey.log");
    if let Some(url) = &choices.valkey_url {
        let url = normalize_valkey_url(url)?;
        let password = std::env::var(&choices.valkey_password_env).unwrap_or_default();
        note(format!(
            "using the configured Valkey at {url} (password from ${}{})",
            choices.valkey_password_env,
            if password.is_empty() {
                ", which is empty"
            } else {
                ""
            }
        ));
        let (check, secret) = (url.clone(), password.clone());
        blocking(move || {
            localrun::valkey::wait_for_ping(&check, &secret, Duration::from_secs(15))
                .with_context(|| format!("the configured Valkey at {check} does not answer"))
        })
        .await?;
        return Ok(ValkeyServer {
            server: Server {
                address: address_of(&url),
                origin: Origin::Configured,
                log,
            },
            url,
            password,
        });
    }
    if usable_image(
        docker,
        &choices.valkey_image,
        "valkey-server from PATH",
        note,
    )
    .await
        && let Some(docker) = docker
    {
        let port = localrun::free_port();
        let password = format!("local-{:032x}", rand::random::<u128>());
        let spec = container::valkey_spec(
            &choices.valkey_image,
            port,
            &password,
            dir.join("valkey").join("data"),
        );
        let url = format!("redis://127.0.0.1:{port}/0");
        let (check, secret) = (url.clone(), password.clone());
        let ready =
            move || localrun::valkey::wait_for_ping(&check, &secret, Duration::from_secs(60));
        match run_container(docker, dir, &spec, note, ready).await {
            Ok(started) => {
                return Ok(ValkeyServer {
                    server: Server {
                        address: format!("127.0.0.1:{port}"),
                        origin: Origin::Container(started),
                        log,
                    },
                    url,
                    password,
                });
            }
            Err(error) => note(format!(
                "the {} container did not come up ({error:#}); using valkey-server from PATH",
                choices.valkey_image
            )),
        }
    }
    let valkey_dir = dir.join("valkey");
    let valkey = blocking(move || Valkey::start(&valkey_dir)).await?;
    note(format!(
        "started valkey-server (pid {})",
        valkey.process().pid().unwrap_or(0)
    ));
    Ok(ValkeyServer {
        url: valkey.url(),
        password: valkey.password.clone(),
        server: Server {
            address: address_of(&valkey.url()),
            log: valkey.process().log_path().to_path_buf(),
            origin: Origin::Process(valkey),
        },
    })
}

/// `redis://host:port[/db]` → `redis://host:port/db` (db 0 when absent);
/// anything else is an error that shows the expected form.
pub fn normalize_valkey_url(url: &str) -> anyhow::Result<String> {
    let rest = url.strip_prefix("redis://").with_context(|| {
        format!("the Valkey URL {url:?} must look like redis://HOST:PORT or redis://HOST:PORT/DB")
    })?;
    anyhow::ensure!(
        !rest.contains('@'),
        "the Valkey URL {url:?} carries a password; put it in the environment variable named by --valkey-password-env instead"
    );
    let (host_port, db) = rest.split_once('/').unwrap_or((rest, "0"));
    let (host, port) = host_port
        .rsplit_once(':')
        .with_context(|| format!("the Valkey URL {url:?} has no port (redis://HOST:PORT)"))?;
    anyhow::ensure!(!host.is_empty(), "the Valkey URL {url:?} has no host");
    port.parse::<u16>()
        .with_context(|| format!("the Valkey URL {url:?} has an invalid port {port:?}"))?;
    let db = if db.is_empty() { "0" } else { db };
    db.parse::<u32>()
        .with_context(|| format!("the Valkey URL {url:?} has an invalid database {db:?}"))?;
    Ok(format!("redis://{host_port}/{db}"))
}

fn address_of(url: &str) -> String {
    let rest = url.trim_start_matches("redis://");
    rest.split('/').next().unwrap_or(rest).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valkey_urls_are_checked_and_given_a_database() {
        assert_eq!(
            normalize_valkey_url("redis://127.0.0.1:6379").unwrap(),
            "redis://127.0.0.1:6379/0"
        );
        assert_eq!(
            normalize_valkey_url("redis://valkey.example:6380/2").unwrap(),
            "redis://valkey.example:6380/2"
        );
        for bad in [
            "http://127.0.0.1:6379",
            "redis://127.0.0.1",
            "redis://:secret@127.0.0.1:6379",
            "redis://127.0.0.1:99999",
            "redis://127.0.0.1:6379/x",
        ] {
            assert!(normalize_valkey_url(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn the_address_drops_scheme_and_database() {
        assert_eq!(address_of("redis://127.0.0.1:6379/0"), "127.0.0.1:6379");
    }
}
