//! The command line: every command, flag and help text, as clap types.
//! [`crate::commands`] turns them into work; nothing here does any.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::cluster::Target;
use crate::plan::config;

#[derive(Parser, Debug)]
#[command(
    name = "bfctl",
    version,
    about,
    long_about = None,
    after_help = "Exit status: 0 done; 1 a check failed (sales lost or duplicated, status not healthy, something left after teardown); 2 error; 130 interrupted (Ctrl-C)."
)]
pub struct Cli {
    /// Configuration file.
    #[arg(long, short = 'c', global = true, default_value = "bfctl.yaml")]
    pub config: PathBuf,
    /// Where bfctl keeps what it built, pushed and provided (image digests,
    /// the disk, the registry's CA and accounts).
    #[arg(long, global = true, env = "BFCTL_STATE_DIR", default_value = crate::STATE_DIR)]
    pub state_dir: PathBuf,
    /// Output format for commands that report.
    #[arg(long, global = true, value_enum, default_value_t = Output::Text)]
    pub output: Output,
    /// Show more detail: -v lists every object and every Kubernetes API call.
    #[arg(long, short = 'v', global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Kubeconfig file (default: $KUBECONFIG, then ~/.kube/config). The
    /// context is `kubeContext` in bfctl.yaml (empty: the current one).
    #[arg(long, global = true, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// Where downloaded operator manifests are cached (default:
    /// ~/.cache/bfctl/operators).
    #[arg(long, global = true, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Output {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
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
        /// With a `gke:` section: run `bfctl cluster create` first (it
        /// makes the cluster if it is missing, and writes its context).
        #[arg(long)]
        create_cluster: bool,
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
        /// With --local: the live dashboard's port on 127.0.0.1 (0: any
        /// free port; `up` prints the address).
        #[arg(long, default_value_t = 0)]
        dashboard_port: u16,
        /// With --local: where state, logs and data live.
        #[arg(long, default_value = crate::local::DEFAULT_DIR, value_name = "DIR")]
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
        docker: Option<crate::local::container::DockerUse>,
        /// With --local: the Kafka image (default: `local.kafkaImage`,
        /// apache/kafka:4.2.0).
        #[arg(long, value_name = "IMAGE")]
        kafka_image: Option<String>,
        /// With --local: the Valkey image (default: `local.valkeyImage`,
        /// valkey/valkey:8.1).
        #[arg(long, value_name = "IMAGE")]
        valkey_image: Option<String>,
    },
    /// Serve the live dashboard on 127.0.0.1: the local pipeline's page, or
    /// with --cluster the cluster's Grafana through the API server.
    ///
    /// Locally the page shows the Grafana dashboard's panels (the same
    /// definitions, the same data frames) from the local pipeline's Valkey,
    /// and the pipeline's throughput, sale-to-Valkey latency and pending
    /// sales, refreshed every second. `bfctl up --local` already serves one
    /// and prints its address; this serves another. With --cluster, every
    /// connection to the printed address is port-forwarded through the API
    /// server to this install's Grafana pod (port 3000), as `kubectl
    /// port-forward` does. Both run in the foreground until Ctrl-C.
    Dashboard {
        /// Port-forward the cluster's Grafana instead of serving the local page.
        #[arg(long)]
        cluster: bool,
        /// Where to listen (127.0.0.1 only; port 0: any free port).
        #[arg(long, default_value = "127.0.0.1:0", value_name = "ADDRESS:PORT")]
        listen: std::net::SocketAddr,
        /// The local pipeline's directory.
        #[arg(long, default_value = crate::local::DEFAULT_DIR, value_name = "DIR")]
        local_dir: PathBuf,
    },
    /// Show what runs, what is healthy, what lags and where to send traffic.
    Status {
        /// The local pipeline (`bfctl up --local`) instead of the cluster.
        #[arg(long)]
        local: bool,
        #[arg(long, default_value = crate::local::DEFAULT_DIR, value_name = "DIR")]
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
        #[arg(long, default_value = crate::local::DEFAULT_DIR, value_name = "DIR")]
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
        #[arg(long, default_value = crate::local::DEFAULT_DIR, value_name = "DIR")]
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
        /// Inject faults while the load runs, from the built-in plan (one
        /// per part of the pipeline, over the first three quarters of
        /// --duration): locally
        /// SIGKILL, SIGSTOP/SIGCONT or restart of the consumer, producer,
        /// gateway, broker and Valkey; with --cluster, deleting pods and
        /// restarting the Valkey VM. Each fault is reported with the time
        /// the pipeline took to be whole again and the errors it caused;
        /// the verdict is read after recovery.
        #[arg(long, conflicts_with = "consumer_replicas")]
        chaos: bool,
        /// --chaos with the faults of this YAML file (`faults: [{at,
        /// target, action, pauseSeconds}]`; see docs/architecture.md).
        #[arg(long, value_name = "FILE", conflicts_with_all = ["chaos_seed", "consumer_replicas"])]
        chaos_plan: Option<PathBuf>,
        /// --chaos with a random plan, the same for the same seed: every
        /// target and every action, in a random order.
        #[arg(long, value_name = "SEED", conflicts_with = "consumer_replicas")]
        chaos_seed: Option<u64>,
        /// With --chaos: how long a fault may take to heal before it is
        /// reported as not recovered.
        #[arg(long, default_value_t = 120, value_name = "SECONDS")]
        recovery_timeout: u64,
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
    /// Create, inspect or delete the GKE cluster that bfctl.yaml's `gke:` describes.
    ///
    /// Credentials are Google's Application Default Credentials: the key
    /// file GOOGLE_APPLICATION_CREDENTIALS names, gcloud's ADC file
    /// (`gcloud auth application-default login`), or the metadata server on
    /// Google Cloud. No gcloud or gke-gcloud-auth-plugin is needed: the
    /// kubeconfig context bfctl writes gets its tokens from `bfctl cluster
    /// token`.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Create, inspect or delete the image registry bfctl provides
    /// (registry.kind zot: Zot on a Compute Engine VM, with TLS from bfctl's
    /// own CA and two accounts; registry.kind artifact-registry: a Docker
    /// repository in Artifact Registry, pushed to with an access token).
    ///
    /// Its address, CA and accounts are kept in .bfctl/registry/ (secrets
    /// with mode 0600); `bfctl build --push`, `bfctl disk push` and `bfctl
    /// up` use them, so no `docker login` is needed. Credentials for
    /// Google Cloud as for `bfctl cluster`.
    #[command(subcommand)]
    Registry(RegistryCommand),
}

#[derive(Subcommand, Debug)]
pub enum RegistryCommand {
    /// Make the registry, or finish making it: idempotent.
    ///
    /// Reserves its addresses, issues its certificate, makes its accounts,
    /// stores them in Secret Manager, makes the data disk, the firewall
    /// rules (the registry port only: from registry.zot.allowedSources, or
    /// the address bfctl calls from, and from the nodes of bfctl's
    /// clusters) and the VM; makes the gke: cluster trust its CA; then
    /// waits until the registry answers over TLS to the push account and
    /// refuses anonymous callers. Exit 0 done, 2 error.
    Create {
        /// Issue a new server certificate (same CA, so nothing that trusts
        /// the registry changes) and restart the VM with it; the images
        /// stay on the data disk.
        #[arg(long)]
        rotate_certificates: bool,
        /// How long to wait for the registry to answer, in seconds.
        #[arg(long, default_value_t = 600)]
        wait: u64,
    },
    /// Each resource, the certificate's expiry, what is stored and whether
    /// the cluster trusts it. Exit 0 when all is there and answering, 1
    /// otherwise.
    Status,
    /// Delete what `create` made (asks first; --yes for scripts), only
    /// resources labelled managed-by=bfctl.
    Delete {
        /// Do not ask.
        #[arg(long)]
        yes: bool,
        /// Keep the data disk (the images) and the accounts that go with it.
        #[arg(long)]
        keep_data: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum ClusterCommand {
    /// Create the cluster (both node pools) and write its kubeconfig context.
    ///
    /// Idempotent: an existing cluster is compared with bfctl.yaml (each
    /// difference said, nothing changed in place), a create that an earlier
    /// run started is followed to its end, and the context is written
    /// again. The context is `gke_PROJECT_LOCATION_CLUSTER`, merged into
    /// the kubeconfig (--kubeconfig, $KUBECONFIG or ~/.kube/config) without
    /// touching other entries; it becomes the current context only when
    /// none is set. Exit 0 done, 2 error.
    Create,
    /// The cluster's status, version, endpoint, node pools and running
    /// operations. Exit 0 when it is RUNNING, 1 otherwise.
    Status,
    /// Delete the cluster (asks first; --yes for scripts).
    ///
    /// Refuses while this install's pipeline is on it: `bfctl teardown`
    /// first removes the Gateway and its load balancer, which deleting the
    /// cluster would leave behind. Deletes only a cluster bfctl made (its
    /// `managed-by: bfctl` label).
    Delete {
        /// Do not ask.
        #[arg(long)]
        yes: bool,
    },
    /// Print an ExecCredential with a Google access token (the kubeconfig's
    /// exec plugin; kubectl runs it).
    Token,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ServiceName {
    Gateway,
    Producer,
    Consumer,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum LoadEngine {
    Builtin,
    Locust,
}

#[derive(Subcommand, Debug)]
pub enum DiskCommand {
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
pub enum ConfigCommand {
    /// Write a commented example configuration (every key, with its default).
    Init {
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Parse and check the configuration; print it resolved, with warnings.
    Check,
}

impl Cli {
    pub fn target(&self, offline: bool) -> Target {
        Target {
            kubeconfig: self.kubeconfig.clone(),
            cache_dir: self.cache_dir.clone(),
            offline,
            verbose: self.verbose > 0,
            state_dir: Some(self.state_dir.clone()),
        }
    }

    /// The configuration. Its warnings are said by the commands they
    /// concern (`up`, `build`, `render`, `config check`), not by every one.
    ///
    /// A registry bfctl provides is filled in from `.bfctl/registry/`
    /// (its URL and bfctl's own credentials).
    pub fn load_config(&self) -> anyhow::Result<config::Config> {
        let mut config = config::Config::load(&self.config)?;
        crate::registry::store::resolve(&mut config, &self.state_dir)?;
        Ok(config)
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
}
