//! The Black Friday pipeline's parts as real processes on 127.0.0.1, and
//! load for it: what bfctl's local mode and the tests both run.
//!
//! # Layout
//!
//! ```text
//! process.rs    a child process that dies with its parent, with its log
//! broker.rs     a `tansu` Kafka-protocol broker (sqlite storage), topics
//! valkey.rs     a `valkey-server` with a password and AOF
//! launcher.rs   the gateway, producer and consumer, ready when healthy
//! metrics.rs    reading what their /metrics says (prometheus-parse)
//! catalog.rs    Black Friday sales in the Locustfile's mix
//! http_load.rs  those sales sent as HTTP load, closed or open loop
//! totals.rs     what Valkey must hold for the sales that were accepted
//! ```
//!
//! Each server listens on 127.0.0.1 on a free port, keeps its data and log
//! under a directory it is given, and is killed when its handle is
//! dropped, whatever the path out.

pub mod broker;
pub mod catalog;
pub mod http_load;
pub mod launcher;
pub mod metrics;
pub mod process;
pub mod totals;
pub mod valkey;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;

/// A free TCP port on 127.0.0.1 (the OS picks it; the socket is closed
/// before returning, so a server can bind it right after).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("the OS hands out a free loopback port")
}

/// Polls `check` every 50 ms until it returns `Some`, or fails after `timeout`
/// with `what` and the last error.
pub fn wait_for<T>(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> Result<Option<T>, String>,
) -> anyhow::Result<T> {
    let deadline = Instant::now() + timeout;
    let mut last = String::from("not checked yet");
    loop {
        match check() {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => {}
            Err(error) => last = error,
        }
        if Instant::now() >= deadline {
            anyhow::bail!("timed out after {timeout:?} waiting for {what} (last: {last})");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A program on PATH (or in cargo's bin directory, where `cargo install`
/// puts `tansu`), or a clear error saying how to install it.
pub fn tool(program: &str, install_hint: &str) -> anyhow::Result<PathBuf> {
    which::which(program)
        .or_else(|_| which::which_in(program, Some(dirs_cargo_bin()), "."))
        .with_context(|| format!("`{program}` not found on PATH; install it with: {install_hint}"))
}

fn dirs_cargo_bin() -> PathBuf {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")))
        .unwrap_or_default()
        .join("bin")
}
