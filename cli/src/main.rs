//! `bfctl`: builds, deploys, inspects, tears down and load-tests the Black
//! Friday sales pipeline (gateway → producer → Kafka → consumer → Valkey).
//!
//! Every command is declared with its help.

use bfctl::deploy::{self, Target};
use bfctl::engine::{Interrupt, UpOptions};
use bfctl::teardown::TeardownOptions;
use bfctl::{config, render, status};

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "bfctl",
    version,
    about,
    long_about = None,
    after_help = "Exit status: 0 done; 1 a check failed (sales lost or duplicated, status not healthy, something left after teardown); 2 error; 130 interrupted (Ctrl-C)."
)]
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
        /// With --local: producer processes. One is the fastest on two
        /// cores (docs/benchmarks.md): every process shares the same cores.
        #[arg(long, default_value_t = 1)]
        producers: usize,
        /// With --local: consumer processes (one owns every partition;
        /// `loadtest --consumer-replicas` compares counts).
        #[arg(long, default_value_t = 1)]
        consumers: usize,
        /// With --local: partitions of the `ventas` topic.
        #[arg(long, default_value_t = 6)]
        partitions: i32,
        /// With --local: the gateway's port on 127.0.0.1.
        #[arg(long, default_value_t = 8080)]
        gateway_port: u16,
        /// With --local: where state, logs and data live.
        #[arg(long, default_value = bfctl::local::DEFAULT_DIR, value_name = "DIR")]
        local_dir: PathBuf,
        /// With --local: use this existing Kafka (host:port) instead of
        /// starting one (default: `local.kafkaBootstrap` in bfctl.yaml).
        #[arg(long, value_name = "HOST:PORT")]
        kafka_bootstrap: Option<String>,
        /// With --local: use this existing Valkey (redis://HOST:PORT[/DB])
        /// instead of starting one; its password comes from the variable
        /// named by `local.valkeyPasswordEnv` (BFCTL_LOCAL_VALKEY_PASSWORD).
        #[arg(long, value_name = "URL")]
        valkey_url: Option<String>,
        /// With --local: run broker and Valkey from the official images
        /// through Docker when possible (auto), or never.
        #[arg(long, value_enum, value_name = "WHEN")]
        docker: Option<bfctl::local::container::DockerUse>,
        /// With --local: the Kafka image (default: `local.kafkaImage`,
        /// apache/kafka:4.2.0).
        #[arg(long, value_name = "IMAGE")]
        kafka_image: Option<String>,
        /// With --local: the Valkey image (default: `local.valkeyImage`,
        /// valkey/valkey:8.1).
        #[arg(long, value_name = "IMAGE")]
        valkey_image: Option<String>,
    },
    /// Show what runs, what is healthy, what lags and where to send traffic.
    Status {
        /// The local pipeline (`bfctl up --local`) instead of the cluster.
        #[arg(long)]
        local: bool,
        #[arg(long, default_value = bfctl::local::DEFAULT_DIR, value_name = "DIR")]
        local_dir: PathBuf,
        /// Keep watching; print whenever something changes (Ctrl-C ends).
        #[arg(long)]
        watch: bool,
        /// Use cached operator manifests only; never download.
        #[arg(long)]
        offline: bool,
    },
    /// Remove this install's objects in reverse order and list what is left.
    ///
    /// Only objects labelled with this install (`install:` in bfctl.yaml,
    /// default the namespace) are touched, found in the cluster itself: no
    /// operator files are needed. Workloads go first, then custom resources
    /// (topics before their Kafka, waiting for finalizers), the operators,
    /// the CRDs this install created and the namespaces. What others still
    /// use is kept and said: a CRD while any of its resources exists, a
    /// ClusterRole another binding uses, KubeVirt while other VMs run.
    /// Exit 0 when nothing of the install is left, 1 when something is.
    /// Running it twice is harmless.
    Teardown {
        /// The local pipeline: stop every process.
        #[arg(long)]
        local: bool,
        /// With --local: also delete its directory (broker and Valkey data, logs).
        #[arg(long)]
        purge: bool,
        #[arg(long, default_value = bfctl::local::DEFAULT_DIR, value_name = "DIR")]
        local_dir: PathBuf,
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
        /// Remove another install (its name, as `bfctl up` reports it)
        /// instead of the one bfctl.yaml names.
        #[arg(long, value_name = "NAME")]
        install: Option<String>,
        /// When objects of this install stay after --timeout, held by
        /// finalizers whose controller is gone: remove their finalizers
        /// (asks first; the controller's cleanup is then skipped).
        #[arg(long)]
        remove_finalizers: bool,
        /// Do not ask (for scripts).
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Drive Black Friday load and report what the pipeline did.
    ///
    /// Closed loop: --users clients send sales (the Locust file's mix) for
    /// --duration. Against the local pipeline (the default target when one
    /// runs), it then waits for the pipeline to drain and compares the sales
    /// Valkey counted with the sales the gateway accepted: lost and
    /// duplicated counts, and the drain time. Exits non-zero if they differ.
    Loadtest {
        /// Concurrent users (closed loop).
        #[arg(long, default_value_t = 200)]
        users: usize,
        /// How long to send load, in seconds.
        #[arg(long, default_value_t = 20, value_name = "SECONDS")]
        duration: u64,
        /// Open loop: this many requests per second, due on a fixed schedule
        /// (latency counted from the due time); --users bounds how many are
        /// in flight. Without it: closed loop.
        #[arg(long, value_name = "PER_SECOND")]
        rate: Option<f64>,
        /// The load generator: the built-in Rust one, or Locust (headless,
        /// reading its CSV statistics).
        #[arg(long, value_enum, default_value_t = LoadEngine::Builtin)]
        engine: LoadEngine,
        /// With --engine locust: the Locust file.
        #[arg(long, default_value = "locust/locustfile.py", value_name = "FILE")]
        locustfile: PathBuf,
        /// With --engine locust: users started per second.
        #[arg(long, default_value_t = 10.0, value_name = "PER_SECOND")]
        spawn_rate: f64,
        /// Where the throughput/latency chart (SVG) goes.
        #[arg(
            long,
            default_value = ".bfctl/reports/loadtest.svg",
            value_name = "FILE"
        )]
        chart: PathBuf,
        /// The gateway's URL (default: the local pipeline's).
        #[arg(long, value_name = "URL")]
        target: Option<String>,
        /// Send the load to the cluster's external address, as `bfctl
        /// status` reports it (the Gateway's or Ingress's). With
        /// --consumer-replicas: scale the consumer Deployment for each
        /// count, and count sales by the consumers' own counters (Valkey
        /// runs inside the cluster's VM).
        #[arg(long, conflicts_with = "target")]
        cluster: bool,
        /// Seconds to wait for the pipeline to drain afterwards.
        #[arg(long, default_value_t = 120, value_name = "SECONDS")]
        drain_timeout: u64,
        #[arg(long, default_value = bfctl::local::DEFAULT_DIR, value_name = "DIR")]
        local_dir: PathBuf,
        /// Compare consumer counts, e.g. `1,2,4`: for each, the local
        /// pipeline is started afresh (its data deleted) with that many
        /// consumers and loaded the same way. Writes replicas.md and
        /// replicas.svg into --report-dir.
        #[arg(long, value_name = "LIST", conflicts_with = "target")]
        consumer_replicas: Option<String>,
        /// Where the replica comparison's table and chart go.
        #[arg(long, default_value = ".bfctl/reports", value_name = "DIR")]
        report_dir: PathBuf,
    },
    /// (internal) Runs one of the pipeline's services in this process, with
    /// the service's own arguments: how the local pipeline starts them.
    #[command(hide = true)]
    Service {
        #[arg(value_enum)]
        name: ServiceName,
        /// The service's arguments (see `bfctl service NAME --help`).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<std::ffi::OsString>,
    },
    /// (internal) The local pipeline's supervisor, started by `up --local`.
    #[command(hide = true)]
    LocalSupervise {
        #[arg(long)]
        dir: PathBuf,
        /// LocalOptions as JSON.
        #[arg(long)]
        options: String,
    },
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
    /// Build the Valkey VM disk, or push it as a KubeVirt containerDisk.
    #[command(subcommand)]
    Disk(DiskCommand),
    /// Write or check the configuration file.
    #[command(subcommand)]
    Config(ConfigCommand),
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ServiceName {
    Gateway,
    Producer,
    Consumer,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LoadEngine {
    Builtin,
    Locust,
}

#[derive(Subcommand, Debug)]
enum DiskCommand {
    /// Build valkey.qcow2 from the recipe (needs root and Debian's disk tools).
    ///
    /// A Debian root filesystem with valkey-server (mmdebstrap), in a GPT
    /// disk that boots with BIOS and UEFI, compressed as a qcow2 in
    /// .bfctl/disk/. No secret is in the image: the password comes from
    /// the cloud-init NoCloud seed at boot. Time stamps come from the
    /// recipe, so the same recipe and package versions give the same bytes;
    /// an unchanged recipe is not rebuilt. See docs/disk.md.
    Build {
        /// The recipe directory (recipe.yaml and rootfs/).
        #[arg(long, default_value = "disk", value_name = "DIR")]
        recipe: PathBuf,
        /// Rebuild even if the recipe did not change.
        #[arg(long)]
        force: bool,
    },
    /// Build the disk if needed, then push it to `registry.url` as
    /// valkey-disk (a containerDisk: /disk/valkey.qcow2, uid 107) and
    /// record its digest for `render` and `up`.
    Push {
        #[arg(long, default_value = "disk", value_name = "DIR")]
        recipe: PathBuf,
        /// Extra CA certificate (PEM) for the registry; repeatable.
        #[arg(long, value_name = "PEM")]
        ca_file: Vec<PathBuf>,
    },
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
    for warning in config.deploy_warnings() {
        eprintln!("warning: {warning}");
    }
    let state = bfctl::image::ImageState::load(Path::new(STATE_DIR))?;
    let (images, missing) = render::ImageRefs::resolve(&config, &state);
    if !missing.is_empty() {
        eprintln!(
            "note: no pushed digest recorded for {} (run `bfctl build --push` and `bfctl disk push`); rendered as :latest",
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

    /// The configuration. Its warnings are said by the commands they
    /// concern (`up`, `build`, `render`, `config check`), not by every one.
    fn load_config(&self) -> anyhow::Result<config::Config> {
        config::Config::load(&self.config)
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
    for warning in config.deploy_warnings() {
        eprintln!("warning: {warning}");
    }
    if !skip_build {
        for warning in config.registry_warnings() {
            eprintln!("warning: {warning}");
        }
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
        // The VM disk: rebuilt and pushed only when its recipe changed.
        let recipe = bfctl::disk::LoadedRecipe::load(Path::new("disk"))?;
        let state = bfctl::image::ImageState::load(Path::new(STATE_DIR))?;
        if bfctl::disk::container::recorded_is_current(&state, &config.registry.url, &recipe.inputs)
        {
            eprintln!("image valkey-disk: unchanged");
        } else {
            let (_, report) = disk_push(&config, Path::new("disk"), &[])?;
            eprintln!("image valkey-disk: {}", report.digest);
        }
    }
    let options = UpOptions {
        force,
        timeout: std::time::Duration::from_secs(timeout),
        ..UpOptions::default()
    };
    let (report, notes) = runtime()?.block_on(async {
        deploy::up(
            &config,
            &cli.target(offline),
            &options,
            deploy::progress(cli.verbose > 0),
            Interrupt::on_ctrl_c(),
        )
        .await
    })?;
    for note in notes {
        eprintln!("note: {note}");
    }
    report_up(&report, matches!(cli.output, Output::Json))
}

/// Prints the outcome of `up` and turns failures into an error.
fn report_up(report: &bfctl::engine::UpReport, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        for used in report.used_not_owned() {
            println!(
                "not this install's, used as it is: {}{}",
                used.object,
                used.note
                    .as_ref()
                    .map(|n| format!(" ({n})"))
                    .unwrap_or_default()
            );
        }
        for kept in &report.kept {
            println!("not pruned: {kept}");
        }
        for (name, other) in &report.other_installs {
            let label = if name.is_empty() {
                "objects from an older bfctl, with no install label".to_string()
            } else {
                format!("another install, '{name}'")
            };
            let remove = if name.is_empty() {
                "delete them by hand if they are no longer wanted".to_string()
            } else {
                format!("to remove it: bfctl teardown --install {name}")
            };
            println!(
                "{label}, is in this cluster ({} objects{}); this up left it alone; {remove}",
                other.objects,
                if other.namespaces.is_empty() {
                    String::new()
                } else {
                    format!(", namespaces {}", other.namespaces.join(", "))
                },
            );
        }
        if report.unchanged() {
            let objects: usize = report.steps.iter().map(|s| s.objects.len()).sum();
            println!(
                "everything is unchanged: {objects} objects in {} steps, all ready ({:.1}s)",
                report.steps.len(),
                report.elapsed_ms as f64 / 1000.0
            );
        } else if report.succeeded() {
            let changed = report
                .steps
                .iter()
                .flat_map(|s| s.objects.iter())
                .filter(|o| o.outcome.changed())
                .count();
            println!(
                "up: {changed} objects created or changed, {} pruned, every step ready ({:.1}s)",
                report.pruned.len(),
                report.elapsed_ms as f64 / 1000.0
            );
        }
    }
    if report.interrupted {
        let stopped = report.interrupted_steps();
        return Err(bfctl::exit::interrupted(format!(
            "interrupted{}: nothing is half-applied; run `bfctl up` again to finish",
            if stopped.is_empty() {
                String::new()
            } else {
                format!(" while {} ran", stopped.join(", "))
            }
        )));
    }
    let failures = report.failures();
    if !failures.is_empty() {
        bail!(
            "{} step(s) failed:\n  {}\nfix the cause and run `bfctl up` again: it continues where this run stopped",
            failures.len(),
            failures.join("\n  ")
        );
    }
    Ok(())
}

fn status_command(cli: &Cli, watch: bool, offline: bool) -> anyhow::Result<()> {
    let config = cli.load_config()?;
    let json = matches!(cli.output, Output::Json);
    let runtime = runtime()?;
    let show = |status: &status::Status| {
        if json {
            match serde_json::to_string(status) {
                Ok(text) => println!("{text}"),
                Err(error) => eprintln!("bfctl: {error}"),
            }
        } else {
            println!("{}", status::to_text(status));
        }
    };
    if watch {
        return runtime.block_on(deploy::watch_status(&config, &cli.target(offline), show));
    }
    let status = runtime.block_on(deploy::status(&config, &cli.target(offline)))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&status)?);
    } else {
        print!("{}", status::to_text(&status));
    }
    if status.healthy {
        Ok(())
    } else {
        Err(bfctl::exit::check_failed(format!(
            "not healthy: {}",
            status.problems.join("; ")
        )))
    }
}

struct TeardownFlags<'a> {
    keep_data: bool,
    offline: bool,
    timeout: u64,
    install: Option<&'a str>,
    remove_finalizers: bool,
    yes: bool,
}

fn teardown_command(cli: &Cli, flags: &TeardownFlags) -> anyhow::Result<()> {
    let config = cli.load_config()?;
    let options = TeardownOptions {
        install: flags.install.unwrap_or(config.install_name()).to_string(),
        keep_data: flags.keep_data,
        timeout: std::time::Duration::from_secs(flags.timeout),
        poll: std::time::Duration::from_secs(2),
        remove_finalizers: flags.remove_finalizers,
    };
    let yes = flags.yes;
    let confirm = move |objects: &[String]| -> bool {
        eprintln!(
            "these objects are still being deleted, held by finalizers:\n  {}",
            objects.join("\n  ")
        );
        if yes {
            eprintln!("removing their finalizers (--yes)");
            return true;
        }
        ask("remove their finalizers? Their controllers' cleanup will not run [y/N] ")
    };
    let progress = deploy::progress(cli.verbose > 0);
    let report = runtime()?.block_on(deploy::teardown(
        &config,
        &cli.target(flags.offline),
        &options,
        progress.as_ref(),
        &confirm,
    ))?;
    if matches!(cli.output, Output::Json) {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "teardown of install '{}': {} objects deleted",
            report.install,
            report.deleted.len()
        );
        for terminating in &report.terminating {
            println!("already being deleted: {terminating}");
        }
        for removed in &report.finalizers_removed {
            println!("finalizers removed: {removed}");
        }
        for kept in &report.kept {
            println!("kept: {} ({})", kept.object, kept.reason);
        }
        if report.left.is_empty() {
            println!("nothing of install '{}' is left", report.install);
        }
        for left in &report.left {
            println!("left: {left}");
        }
        for step in &report.next_steps {
            println!("next: {step}");
        }
    }
    if report.left.is_empty() {
        Ok(())
    } else {
        Err(bfctl::exit::check_failed(format!(
            "{} objects of install '{}' are left; see above",
            report.left.len(),
            report.install
        )))
    }
}

/// Asks a yes/no question on the terminal; no terminal means no.
fn ask(question: &str) -> bool {
    use std::io::{BufRead, IsTerminal, Write};
    if !std::io::stdin().is_terminal() {
        eprintln!("not asking: standard input is not a terminal (pass --yes to go ahead)");
        return false;
    }
    eprint!("{question}");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    if std::io::stdin().lock().read_line(&mut answer).is_err() {
        return false;
    }
    matches!(answer.trim(), "y" | "Y" | "yes")
}

/// bfctl.yaml when there is one, else the example's values (the carnet,
/// the `local:` section).
fn local_config(cli: &Cli) -> anyhow::Result<config::Config> {
    if cli.config.exists() {
        return cli.load_config();
    }
    config::Config::parse(config::EXAMPLE, "the example configuration")
}

fn up_local_command(
    cli: &Cli,
    dir: &Path,
    options: &bfctl::local::LocalOptions,
    timeout: u64,
) -> anyhow::Result<()> {
    eprintln!(
        "starting the local pipeline in {}: broker, valkey, {} producers, gateway, {} consumers",
        dir.display(),
        options.producers,
        options.consumers
    );
    let started = std::time::Instant::now();
    let progress = bfctl::deploy::progress(cli.verbose > 0);
    let state = bfctl::local::up(
        dir,
        options,
        std::time::Duration::from_secs(timeout),
        progress.as_ref(),
    )?;
    if matches!(cli.output, Output::Json) {
        let mut shown = serde_json::to_value(&state)?;
        shown["valkeyPassword"] = "(in state.json)".into();
        println!("{}", serde_json::to_string_pretty(&shown)?);
    } else {
        for process in &state.processes {
            println!(
                "{:<12} {:<10} pid {:<8} {}",
                process.name, process.source, process.pid, process.address
            );
        }
        println!(
            "ready in {:.1} s; send traffic to {}/venta (logs and data in {})",
            started.elapsed().as_secs_f64(),
            state.gateway_url,
            dir.display()
        );
    }
    Ok(())
}

fn status_local_command(cli: &Cli, dir: &Path) -> anyhow::Result<()> {
    let status = bfctl::local::status(dir)?;
    if matches!(cli.output, Output::Json) {
        println!("{}", serde_json::to_string_pretty(&status)?);
    } else {
        print!("{}", bfctl::local::status_text(&status));
    }
    let down: Vec<&str> = status
        .processes
        .iter()
        .filter(|p| !p.running)
        .map(|p| p.name.as_str())
        .collect();
    if down.is_empty() && status.supervisor_running {
        Ok(())
    } else {
        Err(bfctl::exit::check_failed(format!(
            "not running: {}",
            if down.is_empty() {
                "the supervisor".to_string()
            } else {
                down.join(", ")
            }
        )))
    }
}

fn teardown_local_command(cli: &Cli, dir: &Path, purge: bool) -> anyhow::Result<()> {
    let report = bfctl::local::teardown(dir, purge)?;
    if matches!(cli.output, Output::Json) {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        if report.stopped.is_empty() {
            println!("nothing was running in {}", dir.display());
        }
        for stopped in &report.stopped {
            println!("stopped {stopped}");
        }
        for left in &report.left {
            println!("left: {left}");
        }
        for untouched in &report.untouched {
            println!("not stopped (configured, not started by bfctl): {untouched}");
        }
        if report.purged {
            println!("deleted {}", dir.display());
        } else if dir.exists() && report.left.is_empty() {
            println!(
                "kept data and logs in {} (--purge deletes them)",
                dir.display()
            );
        }
    }
    if report.left.is_empty() {
        Ok(())
    } else {
        Err(bfctl::exit::check_failed(format!(
            "{} processes are still running; see above",
            report.left.len()
        )))
    }
}

/// The cluster's external gateway URL, from `bfctl status`.
fn cluster_target(cli: &Cli) -> anyhow::Result<String> {
    let config = cli.load_config()?;
    let status = runtime()?.block_on(deploy::status(&config, &cli.target(false)))?;
    status.external_url.context(
        "the cluster has no external address yet (`bfctl status` shows the Gateway or Ingress)",
    )
}

fn loadtest_command(
    cli: &Cli,
    dir: &Path,
    target: Option<&str>,
    (users, duration, rate): (usize, u64, Option<f64>),
    (engine, drain_timeout): (&bfctl::loadtest::Engine, u64),
    chart: &Path,
) -> anyhow::Result<()> {
    let local = bfctl::local::LocalState::load(dir)?
        .filter(|state| state.phase == "ready" && bfctl::local::is_alive(state.supervisor_pid));
    let target = match (target, &local) {
        (Some(url), _) => url.to_string(),
        (None, Some(state)) => state.gateway_url.clone(),
        (None, None) => bail!(
            "no --target given and no local pipeline runs in {} (start one with `bfctl up --local`)",
            dir.display()
        ),
    };
    // Valkey is checked when the target is the local pipeline's gateway.
    let local = local.filter(|state| state.gateway_url == target.trim_end_matches('/'));
    let options = bfctl::loadtest::LoadtestOptions {
        target,
        users,
        duration: std::time::Duration::from_secs(duration),
        drain_timeout: std::time::Duration::from_secs(drain_timeout),
        seed: 2026,
        rate,
    };
    options.check()?;
    eprintln!(
        "loadtest: {} users for {} s against {}",
        users, duration, options.target
    );
    let mut probe = local
        .as_ref()
        .map(bfctl::probe::LocalProbe::new)
        .transpose()?;
    let report = bfctl::loadtest::run_with(
        &options,
        engine,
        probe
            .as_mut()
            .map(|p| p as &mut dyn bfctl::probe::PipelineProbe),
    )?;
    if let Some(parent) = chart.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    std::fs::write(chart, bfctl::loadtest::timeline_chart(&report))
        .with_context(|| format!("writing {}", chart.display()))?;
    if matches!(cli.output, Output::Json) {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", bfctl::loadtest::to_text(&report));
        println!("chart           {}", chart.display());
    }
    if report.pipeline.is_some() && !bfctl::loadtest::is_exact(&report) {
        return Err(bfctl::exit::check_failed(
            "the pipeline lost or duplicated sales; see the report",
        ));
    }
    Ok(())
}

/// `loadtest --consumer-replicas`: the same load against a fresh local
/// pipeline per consumer count; a Markdown table and an SVG chart.
fn replicas_command(
    cli: &Cli,
    dir: &Path,
    list: &str,
    report_dir: &Path,
    users: usize,
    duration: u64,
    drain_timeout: u64,
) -> anyhow::Result<()> {
    use bfctl::loadtest::{self, ReplicaRun};
    let counts = loadtest::parse_replicas(list)?;
    let state = bfctl::local::LocalState::load(dir)?
        .filter(|state| bfctl::local::is_alive(state.supervisor_pid))
        .with_context(|| {
            format!(
                "--consumer-replicas runs against the local pipeline; start one with `bfctl up --local --local-dir {}`",
                dir.display()
            )
        })?;
    let mut runs = Vec::new();
    for consumers in counts {
        eprintln!("replicas: restarting the local pipeline with {consumers} consumers");
        let report = bfctl::local::teardown(dir, true)?;
        anyhow::ensure!(report.left.is_empty(), "could not stop: {:?}", report.left);
        let options = bfctl::local::LocalOptions {
            consumers,
            ..state.options.clone()
        };
        let started = bfctl::local::up(
            dir,
            &options,
            std::time::Duration::from_secs(600),
            bfctl::deploy::progress(cli.verbose > 0).as_ref(),
        )?;
        let load = replica_load(&started.gateway_url, users, duration, drain_timeout);
        let mut probe = bfctl::probe::LocalProbe::new(&started)?;
        let report = bfctl::loadtest::run(&load, Some(&mut probe))?;
        eprint!("{}", bfctl::loadtest::to_text(&report));
        runs.push(ReplicaRun { consumers, report });
    }
    write_replica_report(cli, report_dir, &runs)
}

/// `loadtest --consumer-replicas LIST --cluster`: for each count, scale the
/// consumer Deployment, wait until it is ready and the group has settled,
/// and load the cluster's external address the same way; the count comes
/// from the consumers' own counters (see `bfctl::probe`). The Deployment is
/// put back to `consumer.replicas` from bfctl.yaml afterwards.
fn replicas_cluster_command(
    cli: &Cli,
    list: &str,
    report_dir: &Path,
    users: usize,
    duration: u64,
    drain_timeout: u64,
) -> anyhow::Result<()> {
    use bfctl::loadtest::{self, ReplicaRun};
    let counts = loadtest::parse_replicas(list)?;
    let config = cli.load_config()?;
    let target = cluster_target(cli)?;
    let runtime = std::sync::Arc::new(runtime()?);
    let cluster = runtime.block_on(deploy::connect(&config, &cli.target(false)))?;
    let partitions = config.kafka.partitions.0;
    let settle = std::time::Duration::from_secs(600);
    let note = |message: String| eprintln!("replicas: {message}");
    let mut runs = Vec::new();
    let mut outcome = Ok(());
    for consumers in counts {
        note(format!("scaling the consumers to {consumers}"));
        let replicas = i32::try_from(consumers).context("replica count")?;
        if let Err(error) = runtime.block_on(bfctl::probe::scale_consumers(
            &cluster, replicas, partitions, settle, &note,
        )) {
            outcome = Err(error);
            break;
        }
        let load = replica_load(&target, users, duration, drain_timeout);
        let mut probe = bfctl::probe::ClusterProbe::new(runtime.clone(), cluster.clone());
        match bfctl::loadtest::run(&load, Some(&mut probe)) {
            Ok(report) => {
                eprint!("{}", bfctl::loadtest::to_text(&report));
                runs.push(ReplicaRun { consumers, report });
            }
            Err(error) => {
                outcome = Err(error);
                break;
            }
        }
    }
    let configured = i32::try_from(config.consumer.replicas.0).context("consumer.replicas")?;
    note(format!(
        "putting the consumers back to {configured} (consumer.replicas)"
    ));
    runtime.block_on(cluster.scale_deployment(
        cluster.default_namespace(),
        "consumer",
        configured,
    ))?;
    outcome?;
    write_replica_report(cli, report_dir, &runs)
}

/// The load every count of a replica comparison gets: closed loop, the
/// same seed, so that the runs differ only in the consumers.
fn replica_load(
    target: &str,
    users: usize,
    duration: u64,
    drain_timeout: u64,
) -> bfctl::loadtest::LoadtestOptions {
    bfctl::loadtest::LoadtestOptions {
        target: target.to_string(),
        users,
        duration: std::time::Duration::from_secs(duration),
        drain_timeout: std::time::Duration::from_secs(drain_timeout),
        seed: 2026,
        rate: None,
    }
}

/// Writes replicas.md and replicas.svg, prints them (or JSON), and fails
/// when a run lost or duplicated sales.
fn write_replica_report(
    cli: &Cli,
    report_dir: &Path,
    runs: &[bfctl::loadtest::ReplicaRun],
) -> anyhow::Result<()> {
    use bfctl::loadtest;
    std::fs::create_dir_all(report_dir)
        .with_context(|| format!("creating {}", report_dir.display()))?;
    let table = loadtest::replica_table(runs);
    std::fs::write(report_dir.join("replicas.md"), &table)?;
    std::fs::write(
        report_dir.join("replicas.svg"),
        loadtest::replica_chart(runs),
    )?;
    if matches!(cli.output, Output::Json) {
        println!("{}", serde_json::to_string_pretty(runs)?);
    } else {
        print!("{table}");
        println!(
            "wrote {} and {}",
            report_dir.join("replicas.md").display(),
            report_dir.join("replicas.svg").display()
        );
    }
    if runs
        .iter()
        .all(|run| bfctl::loadtest::is_exact(&run.report))
    {
        Ok(())
    } else {
        Err(bfctl::exit::check_failed(
            "a run lost or duplicated sales; see the table",
        ))
    }
}

/// Where bfctl keeps what it built (images.json, the image cache).
const STATE_DIR: &str = ".bfctl";

fn build_command(cli: &Cli, push: bool, profile: &str, ca_files: &[PathBuf]) -> anyhow::Result<()> {
    let config = cli.load_config()?;
    if push {
        for warning in config.registry_warnings() {
            eprintln!("warning: {warning}");
        }
    }
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

/// How to reach `registry.url`, with the configured credentials.
fn target_registry(
    config: &config::Config,
    ca_files: &[PathBuf],
) -> anyhow::Result<bfctl::image::registry::RegistryOptions> {
    let host = config.registry.url.split('/').next().unwrap_or("");
    Ok(bfctl::image::registry::RegistryOptions {
        insecure: config.registry.insecure,
        ca_files: ca_files.to_vec(),
        auth: bfctl::image::credentials::for_registry(host, config.registry.credentials)?,
    })
}

/// `bfctl disk build`: the qcow2, built or read from the cache.
fn disk_build(recipe_dir: &Path, force: bool) -> anyhow::Result<bfctl::disk::build::BuiltDisk> {
    use bfctl::disk::{LoadedRecipe, build};
    let recipe = LoadedRecipe::load(recipe_dir)?;
    let options = build::DiskBuildOptions {
        out_dir: Path::new(STATE_DIR).join("disk"),
        package_cache: std::env::var_os("HOME")
            .map(|home| PathBuf::from(home).join(".cache/bfctl/debs")),
        force,
    };
    let started = std::time::Instant::now();
    build::build(&recipe, &options, |line| {
        eprintln!("[{:6.1}s] disk: {line}", started.elapsed().as_secs_f64());
    })
}

fn disk_build_command(cli: &Cli, recipe_dir: &Path, force: bool) -> anyhow::Result<()> {
    let built = disk_build(recipe_dir, force)?;
    if matches!(cli.output, Output::Json) {
        println!("{}", serde_json::to_string_pretty(&built)?);
    } else {
        println!(
            "{} {} {:.1} MiB{} ({} packages)",
            built.path.display(),
            built.digest,
            built.size as f64 / 1048576.0,
            if built.cached {
                " (cached)".to_string()
            } else {
                format!(", built in {:.0} s", built.build_seconds)
            },
            built.packages.len()
        );
    }
    Ok(())
}

/// Builds the disk if needed and pushes it; returns the push report.
fn disk_push(
    config: &config::Config,
    recipe_dir: &Path,
    ca_files: &[PathBuf],
) -> anyhow::Result<(
    bfctl::disk::build::BuiltDisk,
    bfctl::image::registry::PushReport,
)> {
    use bfctl::disk::{LoadedRecipe, container};
    let built = disk_build(recipe_dir, false)?;
    let recipe = LoadedRecipe::load(recipe_dir)?;
    eprintln!("disk: assembling the containerDisk image");
    let image = container::assemble(&built.path, recipe.recipe.source_date_epoch, &built.inputs)?;
    eprintln!(
        "disk: pushing to {}/{}",
        config.registry.url,
        container::IMAGE_NAME
    );
    let report = runtime()?.block_on(container::push_and_record(
        &image,
        &config.registry.url,
        &target_registry(config, ca_files)?,
        Path::new(STATE_DIR),
        &built.inputs,
    ))?;
    Ok((built, report))
}

fn disk_push_command(cli: &Cli, recipe_dir: &Path, ca_files: &[PathBuf]) -> anyhow::Result<()> {
    let config = cli.load_config()?;
    for warning in config.registry_warnings() {
        eprintln!("warning: {warning}");
    }
    let (built, report) = disk_push(&config, recipe_dir, ca_files)?;
    if matches!(cli.output, Output::Json) {
        let both = serde_json::json!({"disk": built, "push": report});
        println!("{}", serde_json::to_string_pretty(&both)?);
    } else {
        println!(
            "pushed {} ({} blobs sent, {} already there, {} bytes)",
            report.reference, report.blobs_uploaded, report.blobs_present, report.bytes_uploaded
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
        registry: target_registry(config, ca_files)?,
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
            let options = bfctl::local::LocalOptions {
                producers: *producers,
                consumers: *consumers,
                partitions: *partitions,
                gateway_port: *gateway_port,
                carnet: config.carnet.0.clone(),
                servers,
            };
            up_local_command(cli, local_dir, &options, *timeout)
        }
        Command::Up {
            local: false,
            force,
            offline,
            timeout,
            skip_build,
            ..
        } => up_command(cli, *force, *offline, *timeout, *skip_build),
        Command::Status {
            local: true,
            local_dir,
            ..
        } => status_local_command(cli, local_dir),
        Command::Status {
            local: false,
            watch,
            offline,
            ..
        } => status_command(cli, *watch, *offline),
        Command::Teardown {
            local: true,
            purge,
            local_dir,
            ..
        } => teardown_local_command(cli, local_dir, *purge),
        Command::Teardown {
            local: false,
            keep_data,
            offline,
            timeout,
            install,
            remove_finalizers,
            yes,
            ..
        } => teardown_command(
            cli,
            &TeardownFlags {
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
        } => replicas_cluster_command(cli, list, report_dir, *users, *duration, *drain_timeout),
        Command::Loadtest {
            users,
            duration,
            drain_timeout,
            local_dir,
            consumer_replicas: Some(list),
            report_dir,
            cluster: false,
            ..
        } => replicas_command(
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
                true => Some(cluster_target(cli)?),
                false => target.clone(),
            };
            let engine = match engine {
                LoadEngine::Builtin => bfctl::loadtest::Engine::Builtin,
                LoadEngine::Locust => bfctl::loadtest::Engine::Locust {
                    locustfile: locustfile.clone(),
                    spawn_rate: *spawn_rate,
                },
            };
            loadtest_command(
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
            let options: bfctl::local::LocalOptions =
                serde_json::from_str(options).context("--options is not LocalOptions JSON")?;
            bfctl::local::supervisor::supervise(dir, options)
        }
        Command::Render { out_dir } => render_command(&cli.config, out_dir.as_deref()),
        Command::Disk(DiskCommand::Build { recipe, force }) => {
            disk_build_command(cli, recipe, *force)
        }
        Command::Disk(DiskCommand::Push { recipe, ca_file }) => {
            disk_push_command(cli, recipe, ca_file)
        }
        Command::Config(ConfigCommand::Init { force }) => config_init(&cli.config, *force),
        Command::Config(ConfigCommand::Check) => config_check(&cli.config, cli.output),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("bfctl: {error:#}");
            ExitCode::from(bfctl::exit::code_of(&error))
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
