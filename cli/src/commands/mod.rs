//! One file per command: each turns the parsed command line
//! ([`crate::cli`]) into work through the library, and is the only layer
//! that prints what came of it (progress goes through
//! [`crate::progress`]). [`run`] picks the command.

mod build;
mod cluster;
mod config;
mod dashboard;
mod disk;
mod loadtest;
mod registry;
mod render;
mod status;
mod teardown;
mod up;

/// What the command files share.
mod prelude {
    pub(crate) use std::path::{Path, PathBuf};

    pub(crate) use anyhow::{Context, bail};

    pub(crate) use super::runtime;
    pub(crate) use crate::cli::{Cli, Output};
    pub(crate) use crate::cluster;
    pub(crate) use crate::cluster::status;
    pub(crate) use crate::plan::{config, render};
    pub(crate) use kube_apply::{Interrupt, UpOptions};
}

use anyhow::Context;

use crate::cli::{Cli, ServiceName};
use crate::settings::Settings;

pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// Runs the command; its error's exit status is [`crate::exit::code_of`].
pub fn run(cli: &Cli) -> anyhow::Result<()> {
    match Settings::from_cli(cli)? {
        Settings::Build {
            push,
            profile,
            ca_files,
        } => build::build_command(cli, push, profile, ca_files),
        Settings::UpLocal {
            dir,
            options,
            timeout,
        } => up::up_local_command(cli, dir, &options, timeout),
        Settings::Up {
            options,
            offline,
            skip_build,
            create_cluster,
        } => {
            if let Some(gke) = &create_cluster {
                cluster::create_command(cli, gke)?;
            }
            up::up_command(cli, &options, offline, skip_build)
        }
        Settings::StatusLocal { dir } => status::status_local_command(cli, dir),
        Settings::DashboardLocal { dir, listen } => {
            dashboard::dashboard_local_command(cli, dir, listen)
        }
        Settings::DashboardCluster { listen } => dashboard::dashboard_cluster_command(cli, listen),
        Settings::Status { watch, offline } => status::status_command(cli, watch, offline),
        Settings::TeardownLocal { dir, purge } => teardown::teardown_local_command(cli, dir, purge),
        Settings::Teardown {
            options,
            offline,
            yes,
        } => teardown::teardown_command(cli, &options, offline, yes),
        Settings::Replicas {
            counts,
            report_dir,
            load,
            on_cluster: true,
            ..
        } => loadtest::replicas_cluster_command(cli, counts, report_dir, load),
        Settings::Replicas {
            dir,
            counts,
            report_dir,
            load,
            on_cluster: false,
        } => loadtest::replicas_command(cli, dir, counts, report_dir, load),
        Settings::Loadtest {
            dir,
            target,
            on_cluster,
            load,
            engine,
            chart,
            chaos,
        } => {
            if on_cluster {
                return loadtest::cluster_loadtest_command(cli, load, &engine, chart, chaos);
            }
            loadtest::loadtest_command(cli, dir, target, load, &engine, chart, chaos)
        }
        Settings::Service { name, argv } => match name {
            ServiceName::Gateway => gateway::run(argv),
            ServiceName::Producer => producer::run(argv),
            ServiceName::Consumer => consumer::run(argv),
        },
        Settings::LocalSupervise { dir, options } => crate::local::supervisor::supervise(
            dir,
            options,
            Some(dashboard::beside_the_pipeline()),
        ),
        Settings::Render {
            config_path,
            out_dir,
        } => render::render_command(cli, config_path, out_dir),
        Settings::DiskBuild { recipe, force } => disk::disk_build_command(cli, recipe, force),
        Settings::DiskPush { recipe, ca_files } => disk::disk_push_command(cli, recipe, ca_files),
        Settings::ConfigInit { path, force } => config::config_init(path, force),
        Settings::ConfigCheck { path } => config::config_check(path, cli.output),
        Settings::ClusterCreate { gke } => cluster::create_command(cli, &gke),
        Settings::ClusterStatus { gke } => cluster::status_command(cli, &gke),
        Settings::ClusterDelete { gke, yes } => cluster::delete_command(cli, &gke, yes),
        Settings::ClusterToken => cluster::token_command(),
        Settings::RegistryCreate {
            rotate_certificates,
            wait,
        } => registry::create_command(cli, rotate_certificates, wait),
        Settings::RegistryStatus => registry::status_command(cli),
        Settings::RegistryDelete { yes, keep_data } => {
            registry::delete_command(cli, yes, keep_data)
        }
    }
}
