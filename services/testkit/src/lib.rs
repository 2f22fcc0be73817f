//! Real servers on 127.0.0.1 for the tests, the benchmarks and the demo.
//!
//! Everything here starts actual processes: a `tansu` Kafka-protocol broker
//! with sqlite storage, a `valkey-server` with a password and AOF, and the
//! workspace's own gateway, producer and consumer binaries. Each listens on
//! 127.0.0.1 on a free port, keeps its data and log under a temporary
//! directory, and is killed when its handle is dropped, whatever the path out.

pub mod binaries;
pub mod broker;
pub mod catalog;
pub mod http_load;
pub mod pipeline;
pub mod process;
pub mod totals;
pub mod valkey;

use std::time::{Duration, Instant};

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
