//! bfctl as a library: the pieces the `bfctl` binary is made of, public so
//! that integration tests can drive them. Kubernetes itself (apply, wait,
//! inventory, prune, teardown) is the `kube-apply` crate, which knows
//! nothing of bfctl; the services bfctl runs are the crates in `services/`.
//!
//! # Layout
//!
//! ```text
//! main.rs       parse, run, exit status (nothing else)
//! cli.rs        the command line (clap types); --help text
//! settings.rs   flags + bfctl.yaml -> the typed options each command takes
//! commands/     one file per command: runs it through the library and
//!               shows what came of it
//! output.rs     the only place that prints (with progress.rs: spinners or
//!               plain lines on stderr)
//! exit.rs       exit statuses: 0 done, 1 check failed, 2 error, 130 interrupted
//! files.rs      files written whole or not at all
//!
//! plan/         what `up` applies: config (bfctl.yaml), components, render,
//!               identity (bfctl's labels for kube-apply), operators (pinned,
//!               verified bundles), secrets; turned into kube-apply steps
//! build/        image (service images, pushed by digest, the digest record)
//!               and disk (the Valkey VM disk as a containerDisk)
//! cluster/      up/status/teardown on a cluster: kube-apply driven with the
//!               plan; status (health from the cluster and the consumers)
//! google/       the Google Cloud client every cloud room shares (credentials,
//!               endpoints, errors as sentences)
//! gke/          the GKE cluster itself: create/status/delete through the GKE
//!               API, the kubeconfig context, `cluster token`
//! registry/     the image registry bfctl provides: Zot on a Compute Engine VM
//!               (certificates, accounts, its configuration, the VM, address,
//!               disk, firewall, Secret Manager), or Artifact Registry
//! local/        the same pipeline on this machine: supervisor, servers
//!               (broker, Valkey), containers, state with a typed phase
//! loadtest/     load (built-in or Locust), probe (where counts are read),
//!               drain, report, chart: every accepted sale counted once
//! dashboard/    the panels (one source for Grafana and the local page), the
//!               frames Grafana's Redis plugin makes, the live page server
//! ```

pub mod build;
pub mod cli;
pub mod cluster;
pub mod commands;
pub mod dashboard;
pub mod exit;
pub mod files;
pub mod gke;
pub mod google;
pub mod loadtest;
pub mod local;
pub mod output;
pub mod plan;
pub mod progress;
pub mod registry;
pub mod settings;
pub mod yaml;

/// Selects rustls's crypto provider (ring) for the whole process. kube and
/// oci-client each enable a different provider, and with two enabled rustls
/// refuses to guess; every client constructor calls this first.
/// Where bfctl keeps what it built, pushed and provided (relative to the
/// working directory): image digests, the disk, the registry's files.
pub const STATE_DIR: &str = ".bfctl";

pub fn ensure_tls_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Err means another provider was installed first: that one is used.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}
