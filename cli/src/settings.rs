//! Flags and `bfctl.yaml` turned into what each command takes, in one place
//! (ripgrep and uv do the same): the command files never read a flag's raw
//! form. Durations become [`Duration`]s, `--local` flags become
//! [`LocalOptions`] (the configuration's `local:` section, overridden by
//! flags), teardown flags become kube-apply [`TeardownOptions`] with the
//! operators bfctl installs, the load engine its typed form.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use kube_apply::UpOptions;
use kube_apply::teardown::TeardownOptions;

use crate::cli::{
    Cli, ClusterCommand, Command, ConfigCommand, DiskCommand, LoadEngine, RegistryCommand,
    ServiceName,
};
use crate::loadtest::Engine;
use crate::local::LocalOptions;
use crate::plan::config::{self, Config};
use crate::plan::gke::Gke;

/// A command, ready to run.
pub enum Settings<'a> {
    Build {
        push: bool,
        profile: &'a str,
        ca_files: &'a [PathBuf],
    },
    UpLocal {
        dir: &'a Path,
        options: LocalOptions,
        timeout: Duration,
    },
    Up {
        options: UpOptions,
        offline: bool,
        skip_build: bool,
        /// The GKE cluster to create first (`--create-cluster`).
        create_cluster: Option<Gke>,
    },
    StatusLocal {
        dir: &'a Path,
    },
    DashboardLocal {
        dir: &'a Path,
        listen: std::net::SocketAddr,
    },
    DashboardCluster {
        listen: std::net::SocketAddr,
    },
    Status {
        watch: bool,
        offline: bool,
    },
    TeardownLocal {
        dir: &'a Path,
        purge: bool,
    },
    Teardown {
        options: TeardownOptions,
        offline: bool,
        /// Remove finalizers without asking.
        yes: bool,
    },
    Loadtest {
        dir: &'a Path,
        /// The gateway URL given, if any.
        target: Option<&'a str>,
        /// Read the target from the cluster's status instead.
        on_cluster: bool,
        load: Load,
        engine: Engine,
        chart: &'a Path,
        /// Faults to inject, if any.
        chaos: Option<ChaosChoice<'a>>,
    },
    Replicas {
        dir: &'a Path,
        counts: &'a str,
        report_dir: &'a Path,
        load: Load,
        on_cluster: bool,
    },
    Service {
        name: ServiceName,
        argv: Vec<OsString>,
    },
    LocalSupervise {
        dir: &'a Path,
        options: LocalOptions,
    },
    Render {
        config_path: &'a Path,
        out_dir: Option<&'a Path>,
    },
    DiskBuild {
        recipe: &'a Path,
        force: bool,
    },
    DiskPush {
        recipe: &'a Path,
        ca_files: &'a [PathBuf],
    },
    ConfigInit {
        path: &'a Path,
        force: bool,
    },
    ConfigCheck {
        path: &'a Path,
    },
    ClusterCreate {
        gke: Gke,
    },
    ClusterStatus {
        gke: Gke,
    },
    ClusterDelete {
        gke: Gke,
        yes: bool,
    },
    ClusterToken,
    RegistryCreate {
        rotate_certificates: bool,
        wait: Duration,
    },
    RegistryStatus,
    RegistryDelete {
        yes: bool,
        keep_data: bool,
    },
}

/// The `gke:` section, which the cluster commands need.
fn gke_of(cli: &Cli) -> anyhow::Result<Gke> {
    cli.load_config()?.gke.with_context(|| {
        format!(
            "{} has no gke: section; add one (`bfctl config init` shows it) to let bfctl manage a GKE cluster",
            cli.config.display()
        )
    })
}

/// Which chaos plan `loadtest --chaos` runs.
#[derive(Debug, Clone, Copy)]
pub struct ChaosChoice<'a> {
    pub plan: ChaosPlanSource<'a>,
    /// How long a fault may take to heal.
    pub recovery_timeout: Duration,
}

#[derive(Debug, Clone, Copy)]
pub enum ChaosPlanSource<'a> {
    BuiltIn,
    File(&'a Path),
    Seed(u64),
}

/// The load of a load test.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    pub users: usize,
    pub duration: Duration,
    /// Total requests per second (None: as fast as the users go).
    pub rate: Option<f64>,
    /// How long to wait for the count to catch up after the load.
    pub drain_timeout: Duration,
}

/// The configuration the local pipeline uses: `bfctl.yaml` when it exists,
/// the example otherwise (a newcomer has none yet).
pub fn local_config(cli: &Cli) -> anyhow::Result<Config> {
    if cli.config.exists() {
        return cli.load_config();
    }
    Config::parse(config::EXAMPLE, "the example configuration")
}

impl<'a> Settings<'a> {
    /// Reads the flags (and `bfctl.yaml` where a command's options come
    /// from it).
    pub fn from_cli(cli: &'a Cli) -> anyhow::Result<Settings<'a>> {
        let seconds = Duration::from_secs;
        Ok(match &cli.command {
            Command::Build {
                push,
                profile,
                ca_file,
            } => Settings::Build {
                push: *push,
                profile,
                ca_files: ca_file,
            },
            Command::Up {
                local: true,
                producers,
                consumers,
                partitions,
                gateway_port,
                dashboard_port,
                local_dir,
                timeout,
                kafka_bootstrap,
                valkey_url,
                docker,
                kafka_image,
                valkey_image,
                ..
            } => {
                let config = local_config(cli)?;
                let mut servers = config.local.server_choices();
                if let Some(bootstrap) = kafka_bootstrap {
                    servers.kafka_bootstrap = Some(bootstrap.clone());
                }
                if let Some(url) = valkey_url {
                    servers.valkey_url = Some(url.clone());
                }
                if let Some(docker) = docker {
                    servers.docker = *docker;
                }
                if let Some(image) = kafka_image {
                    servers.kafka_image = image.clone();
                }
                if let Some(image) = valkey_image {
                    servers.valkey_image = image.clone();
                }
                Settings::UpLocal {
                    dir: local_dir,
                    options: LocalOptions {
                        producers: *producers,
                        consumers: *consumers,
                        partitions: *partitions,
                        gateway_port: *gateway_port,
                        dashboard_port: *dashboard_port,
                        carnet: config.carnet.0.clone(),
                        servers,
                    },
                    timeout: seconds(*timeout),
                }
            }
            Command::Up {
                local: false,
                force,
                offline,
                timeout,
                skip_build,
                create_cluster,
                ..
            } => Settings::Up {
                create_cluster: match create_cluster {
                    true => Some(gke_of(cli)?),
                    false => None,
                },
                options: UpOptions {
                    install: cli.load_config()?.install_name().to_string(),
                    force: *force,
                    timeout: seconds(*timeout),
                    poll: seconds(2),
                },
                offline: *offline,
                skip_build: *skip_build,
            },
            Command::Status {
                local: true,
                local_dir,
                ..
            } => Settings::StatusLocal { dir: local_dir },
            Command::Dashboard {
                cluster: false,
                listen,
                local_dir,
            } => Settings::DashboardLocal {
                dir: local_dir,
                listen: *listen,
            },
            Command::Dashboard {
                cluster: true,
                listen,
                ..
            } => Settings::DashboardCluster { listen: *listen },
            Command::Status {
                local: false,
                watch,
                offline,
                ..
            } => Settings::Status {
                watch: *watch,
                offline: *offline,
            },
            Command::Teardown {
                local: true,
                purge,
                local_dir,
                ..
            } => Settings::TeardownLocal {
                dir: local_dir,
                purge: *purge,
            },
            Command::Teardown {
                local: false,
                keep_data,
                offline,
                timeout,
                install,
                remove_finalizers,
                yes,
                ..
            } => {
                let install = match install {
                    Some(install) => install.clone(),
                    None => cli.load_config()?.install_name().to_string(),
                };
                Settings::Teardown {
                    options: crate::plan::operators::teardown_options(
                        &install,
                        *keep_data,
                        seconds(*timeout),
                        *remove_finalizers,
                    ),
                    offline: *offline,
                    yes: *yes,
                }
            }
            Command::Loadtest {
                users,
                duration,
                target,
                drain_timeout,
                local_dir,
                consumer_replicas,
                report_dir,
                rate,
                chart,
                engine,
                locustfile,
                spawn_rate,
                cluster,
                chaos,
                chaos_plan,
                chaos_seed,
                recovery_timeout,
            } => {
                let plan = match (chaos_plan, chaos_seed) {
                    (Some(file), _) => Some(ChaosPlanSource::File(file)),
                    (None, Some(seed)) => Some(ChaosPlanSource::Seed(*seed)),
                    (None, None) => chaos.then_some(ChaosPlanSource::BuiltIn),
                };
                let load = Load {
                    users: *users,
                    duration: seconds(*duration),
                    rate: *rate,
                    drain_timeout: seconds(*drain_timeout),
                };
                match consumer_replicas {
                    Some(counts) => Settings::Replicas {
                        dir: local_dir,
                        counts,
                        report_dir,
                        load,
                        on_cluster: *cluster,
                    },
                    None => Settings::Loadtest {
                        dir: local_dir,
                        target: target.as_deref(),
                        on_cluster: *cluster,
                        load,
                        engine: match engine {
                            LoadEngine::Builtin => Engine::Builtin,
                            LoadEngine::Locust => Engine::Locust {
                                locustfile: locustfile.clone(),
                                spawn_rate: *spawn_rate,
                            },
                        },
                        chart,
                        chaos: plan.map(|plan| ChaosChoice {
                            plan,
                            recovery_timeout: seconds(*recovery_timeout),
                        }),
                    },
                }
            }
            Command::Service { name, args } => {
                let program = match name {
                    ServiceName::Gateway => "gateway",
                    ServiceName::Producer => "producer",
                    ServiceName::Consumer => "consumer",
                };
                Settings::Service {
                    name: *name,
                    argv: std::iter::once(OsString::from(program))
                        .chain(args.iter().cloned())
                        .collect(),
                }
            }
            Command::LocalSupervise { dir, options } => Settings::LocalSupervise {
                dir,
                options: serde_json::from_str(options)
                    .context("--options is not LocalOptions JSON")?,
            },
            Command::Render { out_dir } => Settings::Render {
                config_path: &cli.config,
                out_dir: out_dir.as_deref(),
            },
            Command::Disk(DiskCommand::Build { recipe, force }) => Settings::DiskBuild {
                recipe,
                force: *force,
            },
            Command::Disk(DiskCommand::Push { recipe, ca_file }) => Settings::DiskPush {
                recipe,
                ca_files: ca_file,
            },
            Command::Config(ConfigCommand::Init { force }) => Settings::ConfigInit {
                path: &cli.config,
                force: *force,
            },
            Command::Config(ConfigCommand::Check) => Settings::ConfigCheck { path: &cli.config },
            Command::Cluster(ClusterCommand::Create) => {
                Settings::ClusterCreate { gke: gke_of(cli)? }
            }
            Command::Cluster(ClusterCommand::Status) => {
                Settings::ClusterStatus { gke: gke_of(cli)? }
            }
            Command::Cluster(ClusterCommand::Delete { yes }) => Settings::ClusterDelete {
                gke: gke_of(cli)?,
                yes: *yes,
            },
            Command::Cluster(ClusterCommand::Token) => Settings::ClusterToken,
            Command::Registry(RegistryCommand::Create {
                rotate_certificates,
                wait,
            }) => Settings::RegistryCreate {
                rotate_certificates: *rotate_certificates,
                wait: seconds(*wait),
            },
            Command::Registry(RegistryCommand::Status) => Settings::RegistryStatus,
            Command::Registry(RegistryCommand::Delete { yes, keep_data }) => {
                Settings::RegistryDelete {
                    yes: *yes,
                    keep_data: *keep_data,
                }
            }
        })
    }
}
