//! bfctl as a library: the pieces the `bfctl` binary is made of, public so
//! that integration tests can drive them.
//!
//! * [`cli`]: the command line (clap types); [`commands`]: one file per
//!   command, the layer that prints;
//! * [`config`]: `bfctl.yaml`, parsed strictly;
//! * [`render`]: the component graph and its templates, rendered to objects;
//! * [`cluster`]: the kube client, discovery and untyped object operations;
//! * [`readiness`]: when each kind counts as ready;
//! * [`engine`]: the dependency-ordered, parallel apply with waits;
//! * [`inventory`]: installs, what each owns (found by label), ownership rules;
//! * [`operators`]: pinned, verified, cached operator bundles;
//! * [`plan`]: operators + components + generated Secrets as engine steps;
//! * [`status`] and [`teardown`]: the other two cluster commands;
//! * [`progress`]: spinners or plain lines on stderr;
//! * [`deploy`]: the commands, wired together;
//! * [`exit`]: the exit statuses every command shares; [`files`]: files
//!   written whole or not at all;
//! * [`image`]: `bfctl build`: service images built, pushed and recorded by digest.
//! * [`local`] and [`loadtest`]: the pipeline on this machine, and load
//!   tests that check every accepted sale was counted ([`probe`]: where
//!   they read the count, locally or on a cluster);
//! * [`disk`]: `bfctl disk`: the Valkey VM disk, built, boot-ready and
//!   pushed as a containerDisk.

pub mod cli;
pub mod cluster;
pub mod commands;
pub mod config;
pub mod deploy;
pub mod disk;
pub mod engine;
pub mod exit;
pub mod files;
pub mod image;
pub mod inventory;
pub mod loadtest;
pub mod local;
pub mod operators;
pub mod plan;
pub mod probe;
pub mod progress;
pub mod readiness;
pub mod render;
pub mod status;
pub mod teardown;

/// Selects rustls's crypto provider (ring) for the whole process. kube and
/// oci-client each enable a different provider, and with two enabled rustls
/// refuses to guess; every client constructor calls this first.
pub fn ensure_tls_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Err means another provider was installed first: that one is used.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}
