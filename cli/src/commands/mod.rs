//! One file per command: each turns the parsed command line
//! ([`crate::cli`]) into work through the library, and is the only layer
//! that prints what came of it (progress goes through
//! [`crate::progress`]). [`run`] picks the command.

mod build;
mod config;
mod disk;
mod loadtest;
mod render;
mod status;
mod teardown;
mod up;

/// What the command files share.
mod prelude {
    pub(crate) use std::path::{Path, PathBuf};

    pub(crate) use anyhow::{Context, bail};

    pub(crate) use super::{STATE_DIR, runtime};
    pub(crate) use crate::cli::{Cli, Output};
    pub(crate) use crate::cluster;
    pub(crate) use crate::cluster::status;
    pub(crate) use crate::plan::{config, render};
    pub(crate) use kube_apply::{Interrupt, UpOptions};
}

use anyhow::Context;

use crate::cli::{Cli, Command, ConfigCommand, DiskCommand, LoadEngine, ServiceName};

/// Where bfctl keeps what it built (images.json, the image cache).
pub(crate) const STATE_DIR: &str = ".bfctl";

pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// Runs the command; its error's exit status is [`crate::exit::code_of`].
pub fn run(cli: &Cli) -> anyhow::Result<()> {
    match &cli.command {
        Command::Build {
            push,
            profile,
            ca_file,
        } => build::build_command(cli, *push, profile, ca_file),
        Command::Up {
            local: true,
            producers,
            consumers,
            partitions,
            gateway_port,
            local_dir,
            timeout,
            kafka_bootstrap,
            valkey_url,
            docker,
            kafka_image,
            valkey_image,
            ..
        } => {
            let config = up::local_config(cli)?;
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
            let options = crate::local::LocalOptions {
                producers: *producers,
                consumers: *consumers,
                partitions: *partitions,
                gateway_port: *gateway_port,
                carnet: config.carnet.0.clone(),
                servers,
            };
            up::up_local_command(cli, local_dir, &options, *timeout)
        }
        Command::Up {
            local: false,
            force,
            offline,
            timeout,
            skip_build,
            ..
        } => up::up_command(cli, *force, *offline, *timeout, *skip_build),
        Command::Status {
            local: true,
            local_dir,
            ..
        } => status::status_local_command(cli, local_dir),
        Command::Status {
            local: false,
            watch,
            offline,
            ..
        } => status::status_command(cli, *watch, *offline),
        Command::Teardown {
            local: true,
            purge,
            local_dir,
            ..
        } => teardown::teardown_local_command(cli, local_dir, *purge),
        Command::Teardown {
            local: false,
            keep_data,
            offline,
            timeout,
            install,
            remove_finalizers,
            yes,
            ..
        } => teardown::teardown_command(
            cli,
            &teardown::TeardownFlags {
                keep_data: *keep_data,
                offline: *offline,
                timeout: *timeout,
                install: install.as_deref(),
                remove_finalizers: *remove_finalizers,
                yes: *yes,
            },
        ),
        Command::Loadtest {
            users,
            duration,
            drain_timeout,
            consumer_replicas: Some(list),
            report_dir,
            cluster: true,
            ..
        } => loadtest::replicas_cluster_command(
            cli,
            list,
            report_dir,
            *users,
            *duration,
            *drain_timeout,
        ),
        Command::Loadtest {
            users,
            duration,
            drain_timeout,
            local_dir,
            consumer_replicas: Some(list),
            report_dir,
            cluster: false,
            ..
        } => loadtest::replicas_command(
            cli,
            local_dir,
            list,
            report_dir,
            *users,
            *duration,
            *drain_timeout,
        ),
        Command::Loadtest {
            users,
            duration,
            target,
            drain_timeout,
            local_dir,
            consumer_replicas: None,
            rate,
            chart,
            engine,
            locustfile,
            spawn_rate,
            cluster,
            ..
        } => {
            let target = match cluster {
                true => Some(loadtest::cluster_target(cli)?),
                false => target.clone(),
            };
            let engine = match engine {
                LoadEngine::Builtin => crate::loadtest::Engine::Builtin,
                LoadEngine::Locust => crate::loadtest::Engine::Locust {
                    locustfile: locustfile.clone(),
                    spawn_rate: *spawn_rate,
                },
            };
            loadtest::loadtest_command(
                cli,
                local_dir,
                target.as_deref(),
                (*users, *duration, *rate),
                (&engine, *drain_timeout),
                chart,
            )
        }
        Command::Service { name, args } => {
            let program = match name {
                ServiceName::Gateway => "gateway",
                ServiceName::Producer => "producer",
                ServiceName::Consumer => "consumer",
            };
            let argv =
                std::iter::once(std::ffi::OsString::from(program)).chain(args.iter().cloned());
            match name {
                ServiceName::Gateway => gateway::run(argv),
                ServiceName::Producer => producer::run(argv),
                ServiceName::Consumer => consumer::run(argv),
            }
        }
        Command::LocalSupervise { dir, options } => {
            let options: crate::local::LocalOptions =
                serde_json::from_str(options).context("--options is not LocalOptions JSON")?;
            crate::local::supervisor::supervise(dir, options)
        }
        Command::Render { out_dir } => render::render_command(&cli.config, out_dir.as_deref()),
        Command::Disk(DiskCommand::Build { recipe, force }) => {
            disk::disk_build_command(cli, recipe, *force)
        }
        Command::Disk(DiskCommand::Push { recipe, ca_file }) => {
            disk::disk_push_command(cli, recipe, ca_file)
        }
        Command::Config(ConfigCommand::Init { force }) => config::config_init(&cli.config, *force),
        Command::Config(ConfigCommand::Check) => config::config_check(&cli.config, cli.output),
    }
}
