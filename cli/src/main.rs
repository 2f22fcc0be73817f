//! `bfctl`: builds, deploys, inspects, tears down and load-tests the Black
//! Friday sales pipeline (gateway → producer → Kafka → consumer → Valkey).
//!
//! Every command is declared with its help; the ones whose issue is still
//! open say so and exit with an error.

use bfctl::deploy::{self, Target};
use bfctl::engine::{Interrupt, UpOptions};
use bfctl::teardown::TeardownOptions;
use bfctl::{config, render, status};

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(name = "bfctl", version, about, long_about = None)]
struct Cli {
    /// Configuration file.
    #[arg(long, short = 'c', global = true, default_value = "bfctl.yaml")]
    config: PathBuf,
    /// Output format for commands that report.
    #[arg(long, global = true, value_enum, default_value_t = Output::Text)]
    output: Output,
    /// Show more detail: -v lists every object and every Kubernetes API call.
    #[arg(long, short = 'v', global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Kubeconfig file (default: $KUBECONFIG, then ~/.kube/config). The
    /// context is `kubeContext` in bfctl.yaml (empty: the current one).
    #[arg(long, global = true, value_name = "FILE")]
    kubeconfig: Option<PathBuf>,
    /// Where downloaded operator manifests are cached (default:
    /// ~/.cache/bfctl/operators).
    #[arg(long, global = true, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Output {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Build and push images, install operators, apply the manifests in order and wait until ready.
    ///
    /// Steps run in dependency order (operators, namespace, Kafka and the
    /// Valkey VM, then the services and the ingress), independent ones in
    /// parallel, each waiting until its objects are ready. Applies are
    /// server-side as field manager `bfctl`; objects bfctl applied before
    /// and no longer renders are pruned. Ctrl-C stops after the requests in
    /// flight; run it again to finish.
    Up {
        /// Run the whole pipeline on this machine instead of a cluster.
        #[arg(long)]
        local: bool,
        /// Take ownership of fields another field manager owns.
        #[arg(long)]
        force: bool,
        /// Use cached operator manifests only; never download.
        #[arg(long)]
        offline: bool,
        /// Seconds each object may take to become ready.
        #[arg(long, default_value_t = 600, value_name = "SECONDS")]
        timeout: u64,
        /// Do not build and push the images first; use the digests recorded
        /// by the last `bfctl build --push`.
        #[arg(long)]
        skip_build: bool,
    },
    /// Show what runs, what is healthy, what lags and where to send traffic.
    Status {
        #[arg(long)]
        local: bool,
        /// Keep watching; print whenever something changes (Ctrl-C ends).
        #[arg(long)]
        watch: bool,
        /// Use cached operator manifests only; never download.
        #[arg(long)]
        offline: bool,
    },
    /// Remove everything in reverse order and list what is left.
    ///
    /// Workloads go first, then custom resources (waiting for their
    /// finalizers), then the operators, the CRDs bfctl installed and the
    /// namespaces. Running it twice is harmless.
    Teardown {
        #[arg(long)]
        local: bool,
        /// Keep the PersistentVolumeClaims (Kafka logs, Valkey AOF) and the
        /// namespace holding them.
        #[arg(long)]
        keep_data: bool,
        /// Use cached operator manifests only; never download.
        #[arg(long)]
        offline: bool,
        /// Seconds each phase may take to disappear.
        #[arg(long, default_value_t = 600, value_name = "SECONDS")]
        timeout: u64,
    },
    /// Drive Black Friday load and report what the pipeline did.
    Loadtest,
    /// Render the Kubernetes manifests from the templates (to stdout, or one
    /// file per component, numbered in apply order, into a directory).
    Render {
        /// Directory to write into.
        #[arg(short = 'o', long = "out-dir", value_name = "DIR")]
        out_dir: Option<PathBuf>,
    },
    /// Build the gateway, producer and consumer images (and push them).
    ///
    /// `cargo build --release`, then each image assembled without Docker:
    /// the binary as one layer on the base image (`images.base`, by
    /// digest), non-root, with OCI labels dated from SOURCE_DATE_EPOCH or
    /// the last commit, so the same sources give the same digests. With
    /// --push, only blobs the registry lacks are sent, and the digests are
    /// recorded in .bfctl/images.json for `render` and `up`.
    Build {
        /// Push to `registry.url` and record the digests.
        #[arg(long)]
        push: bool,
        /// Cargo profile of the binaries.
        #[arg(long, default_value = "release")]
        profile: String,
        /// Extra CA certificate (PEM) for the registries; repeatable.
        #[arg(long, value_name = "PEM")]
        ca_file: Vec<PathBuf>,
    },
    /// Build and push the Valkey VM disk.
    Disk,
    /// Write or check the configuration file.
    #[command(subcommand)]
    Config(ConfigCommand),
}

#[derive(Subcommand, Debug)]
enum ConfigCommand {
    /// Write a commented example configuration (every key, with its default).
    Init {
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Parse and check the configuration; print it resolved, with warnings.
    Check,
}

impl Command {
    /// The open issue that delivers this command, if it is not done yet.
    fn pending_issue(&self) -> Option<u32> {
        Some(match self {
            Command::Up { local: true, .. }
            | Command::Status { local: true, .. }
            | Command::Teardown { local: true, .. } => 6,
            Command::Loadtest => 6,
            Command::Disk => 5,
            Command::Up { .. }
            | Command::Status { .. }
            | Command::Teardown { .. }
            | Command::Config(_)
            | Command::Build { .. }
            | Command::Render { .. } => return None,
        })
    }
}

fn config_init(path: &Path, force: bool) -> anyhow::Result<()> {
    if path.exists() && !force {
        bail!("{} exists; pass --force to overwrite it", path.display());
    }
    std::fs::write(path, config::EXAMPLE).with_context(|| format!("writing {}", path.display()))?;
    eprintln!(
        "wrote {}: set registry.url and carnet, then run `bfctl config check`",
        path.display()
    );
    Ok(())
}

fn config_check(path: &Path, output: Output) -> anyhow::Result<()> {
    let config = config::Config::load(path)?;
    let warnings = config.warnings();
    match output {
        Output::Json => {
            let report = serde_json::json!({ "config": config, "warnings": warnings });
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
        Output::Text => {
            for warning in &warnings {
                eprintln!("warning: {warning}");
            }
            print!("{}", serde_yaml::to_string(&config)?);
            eprintln!("{}: ok", path.display());
        }
    }
    Ok(())
}

fn render_command(config_path: &Path, out_dir: Option<&Path>) -> anyhow::Result<()> {
    let config = config::Config::load(config_path)?;
    for warning in config.warnings() {
        eprintln!("warning: {warning}");
    }
    let state = bfctl::image::ImageState::load(Path::new(STATE_DIR))?;
    let (images, missing) = render::ImageRefs::resolve(&config, &state);
    if !missing.is_empty() {
        eprintln!(
            "note: no pushed digest recorded for {} (run `bfctl build --push`); rendered as :latest",
            missing.join(", ")
        );
    }
    let components = render::render(&config, &images)?;
    match out_dir {
        Some(dir) => {
            for path in render::write_to_dir(&components, dir)? {
                eprintln!("wrote {}", path.display());
            }
        }
        None => {
            for component in &components {
                for object in &component.objects {
                    print!("---\n{}", serde_yaml::to_string(object)?);
                }
            }
        }
    }
    Ok(())
}

impl Cli {
    fn target(&self, offline: bool) -> Target {
        Target {
            kubeconfig: self.kubeconfig.clone(),
            cache_dir: self.cache_dir.clone(),
            offline,
            verbose: self.verbose > 0,
            state_dir: None,
        }
    }

    fn load_config(&self) -> anyhow::Result<config::Config> {
        let config = config::Config::load(&self.config)?;
        for warning in config.warnings() {
            eprintln!("warning: {warning}");
        }
        Ok(config)
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn up_command(
    cli: &Cli,
    force: bool,
    offline: bool,
    timeout: u64,
    skip_build: bool,
) -> anyhow::Result<()> {
    let config = cli.load_config()?;
    if !skip_build {
        // Cheap when nothing changed: cargo's own cache, the image cache,
        // and a push that finds every blob already there.
        for image in build_images(&config, true, "release", &[])? {
            eprintln!(
                "image {}: {}{}",
                image.service,
                image.digest,
                if image.cached { " (unchanged)" } else { "" }
            );
        }
    }
    let options = UpOptions {
        force,
        timeout: std::time::Duration::from_secs(timeout),
        ..UpOptions::default()
    };
    let report = runtime()?.block_on(async {
        deploy::up(
            &config,
            &cli.target(offline),
            &options,
            deploy::progress(cli.verbose > 0),
            Interrupt::on_ctrl_c(),
        )
        .await
    })?;
    deploy::report_up(&report, matches!(cli.output, Output::Json))
}

fn status_command(cli: &Cli, watch: bool, offline: bool) -> anyhow::Result<()> {
    let config = cli.load_config()?;
    let json = matches!(cli.output, Output::Json);
    let runtime = runtime()?;
    if watch {
        return runtime.block_on(deploy::watch_status(&config, &cli.target(offline), json));
    }
    let status = runtime.block_on(deploy::status(&config, &cli.target(offline)))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&status)?);
    } else {
        print!("{}", status::to_text(&status));
    }
    Ok(())
}

fn teardown_command(cli: &Cli, keep_data: bool, offline: bool, timeout: u64) -> anyhow::Result<()> {
    let config = cli.load_config()?;
    let options = TeardownOptions {
        keep_data,
        timeout: std::time::Duration::from_secs(timeout),
        poll: std::time::Duration::from_secs(2),
    };
    let progress = deploy::progress(cli.verbose > 0);
    let report = runtime()?.block_on(deploy::teardown(
        &config,
        &cli.target(offline),
        &options,
        progress.as_ref(),
    ))?;
    if matches!(cli.output, Output::Json) {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("teardown: {} objects deleted", report.deleted.len());
        for kept in &report.kept {
            println!("kept (--keep-data): {kept}");
        }
        if report.left.is_empty() {
            println!("nothing bfctl applied is left");
        }
        for left in &report.left {
            println!("left: {left}");
        }
    }
    if report.left.is_empty() {
        Ok(())
    } else {
        bail!("{} objects are left; see above", report.left.len())
    }
}

/// Where bfctl keeps what it built (images.json, the image cache).
const STATE_DIR: &str = ".bfctl";

fn build_command(cli: &Cli, push: bool, profile: &str, ca_files: &[PathBuf]) -> anyhow::Result<()> {
    let config = cli.load_config()?;
    let built = build_images(&config, push, profile, ca_files)?;
    if matches!(cli.output, Output::Json) {
        println!("{}", serde_json::to_string_pretty(&built)?);
        return Ok(());
    }
    for image in &built {
        let pushed = match &image.push {
            Some(report) => format!(
                "pushed {} ({} blobs sent, {} already there, {} bytes)",
                report.reference,
                report.blobs_uploaded,
                report.blobs_present,
                report.bytes_uploaded
            ),
            None => "not pushed".to_string(),
        };
        println!(
            "{:<9} {} {:.1} MB{} {pushed}",
            image.service,
            image.digest,
            image.size as f64 / 1e6,
            if image.cached { " (cached)" } else { "" },
        );
    }
    Ok(())
}

/// Builds (and pushes) the three images, with progress on stderr.
fn build_images(
    config: &config::Config,
    push: bool,
    profile: &str,
    ca_files: &[PathBuf],
) -> anyhow::Result<Vec<bfctl::image::build::Built>> {
    use bfctl::image::{build, credentials, registry::RegistryOptions};
    let host = |reference: &str| reference.split('/').next().unwrap_or("").to_string();
    let options = build::BuildOptions {
        workspace: std::env::current_dir().context("reading the current directory")?,
        state_dir: PathBuf::from(STATE_DIR),
        profile: profile.to_string(),
        push,
        registry: RegistryOptions {
            insecure: config.registry.insecure,
            ca_files: ca_files.to_vec(),
            auth: credentials::for_registry(
                &host(&config.registry.url),
                config.registry.credentials,
            )?,
        },
        base_registry: RegistryOptions {
            insecure: config.registry.insecure,
            ca_files: ca_files.to_vec(),
            auth: credentials::for_registry(
                &host(&config.images.base),
                config::CredentialSource::DockerConfig,
            )?,
        },
    };
    let started = std::time::Instant::now();
    runtime()?.block_on(build::build_all(config, &options, |line| {
        eprintln!("[{:6.1}s] build: {line}", started.elapsed().as_secs_f64());
    }))
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    match &cli.command {
        Command::Build {
            push,
            profile,
            ca_file,
        } => build_command(cli, *push, profile, ca_file),
        Command::Up {
            local: false,
            force,
            offline,
            timeout,
            skip_build,
        } => up_command(cli, *force, *offline, *timeout, *skip_build),
        Command::Status {
            local: false,
            watch,
            offline,
        } => status_command(cli, *watch, *offline),
        Command::Teardown {
            local: false,
            keep_data,
            offline,
            timeout,
        } => teardown_command(cli, *keep_data, *offline, *timeout),
        Command::Render { out_dir } => render_command(&cli.config, out_dir.as_deref()),
        Command::Config(ConfigCommand::Init { force }) => config_init(&cli.config, *force),
        Command::Config(ConfigCommand::Check) => config_check(&cli.config, cli.output),
        other => match other.pending_issue() {
            Some(issue) => bail!(
                "`{other:?}` is not implemented yet (issue #{issue}). Until then, `bash .ci/demo` runs the local pipeline with a load test."
            ),
            None => bail!("`{other:?}` has no implementation"),
        },
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("bfctl: {error:#}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_tree_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn each_unfinished_command_names_its_issue() {
        let cli = Cli::try_parse_from(["bfctl", "up", "--local"]).unwrap();
        assert_eq!(cli.command.pending_issue(), Some(6));
        let cli = Cli::try_parse_from(["bfctl", "disk", "--output", "json"]).unwrap();
        assert_eq!(cli.command.pending_issue(), Some(5));
        let error = run(&cli).unwrap_err().to_string();
        assert!(error.contains("issue #5"), "{error}");
        let cli = Cli::try_parse_from(["bfctl", "teardown", "--keep-data"]).unwrap();
        assert_eq!(cli.command.pending_issue(), None);
    }

    #[test]
    fn config_init_writes_a_checkable_example_and_never_clobbers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bfctl.yaml");
        config_init(&path, false).unwrap();
        assert!(config::Config::load(&path).is_ok());
        std::fs::write(&path, "mine").unwrap();
        let error = config_init(&path, false).unwrap_err().to_string();
        assert!(error.contains("--force"), "{error}");
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "mine",
            "nothing lost"
        );
        config_init(&path, true).unwrap();
        assert!(config_check(&path, Output::Json).is_ok());
    }
}
