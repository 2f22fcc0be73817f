//! A real Valkey server with a password and AOF persistence.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;

use crate::process::ChildProcess;
use crate::tool;
use crate::{free_port, wait_for};

pub const VALKEY_INSTALL: &str = "apt-get install -t bookworm-backports valkey-server valkey-tools (see ../shared/ENVIRONMENT.md)";

/// A connection to the Valkey at `url` (`redis://host:port/db`, without a
/// password) with `password` (empty: none).
pub fn connect(url: &str, password: &str) -> anyhow::Result<redis::Connection> {
    let address = url.trim_start_matches("redis://");
    let url = if password.is_empty() {
        format!("redis://{address}")
    } else {
        format!("redis://:{password}@{address}")
    };
    let client = redis::Client::open(url)?;
    let connection = client.get_connection_with_timeout(Duration::from_secs(2))?;
    connection.set_read_timeout(Some(Duration::from_secs(10)))?;
    Ok(connection)
}

/// Waits until the Valkey at `url` answers an authenticated PING.
pub fn wait_for_ping(url: &str, password: &str, timeout: Duration) -> anyhow::Result<()> {
    wait_for(&format!("Valkey at {url} to answer PING"), timeout, || {
        let mut connection = connect(url, password).map_err(|e| format!("{e:#}"))?;
        redis::cmd("PING")
            .query::<String>(&mut connection)
            .map(|_| Some(()))
            .map_err(|e| e.to_string())
    })
}

pub struct Valkey {
    pub port: u16,
    pub password: String,
    process: ChildProcess,
}

impl Valkey {
    /// Starts valkey-server on 127.0.0.1 with `requirepass`, `appendonly yes`
    /// and its files in `dir`, and waits for an authenticated PING.
    pub fn start(dir: &Path) -> anyhow::Result<Valkey> {
        let server = tool("valkey-server", VALKEY_INSTALL)?;
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let port = free_port();
        let password = format!("test-{}", rand::random::<u64>());
        let args: Vec<String> = [
            "--bind",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--requirepass",
            &password,
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--save",
            "",
            "--dir",
            &dir.display().to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let process = ChildProcess::start("valkey", &server, &args, &[], &dir.join("valkey.log"))?;
        let valkey = Valkey {
            port,
            password,
            process,
        };
        valkey.wait_ready()?;
        Ok(valkey)
    }

    /// The server's process.
    pub fn process(&self) -> &ChildProcess {
        &self.process
    }

    /// The server's process, to check on it.
    pub fn process_mut(&mut self) -> &mut ChildProcess {
        &mut self.process
    }

    /// `redis://127.0.0.1:PORT/0`, without the password.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    pub fn connect(&self) -> anyhow::Result<redis::Connection> {
        connect(&self.url(), &self.password)
    }

    fn wait_ready(&self) -> anyhow::Result<()> {
        wait_for_ping(&self.url(), &self.password, Duration::from_secs(20))
            .with_context(|| format!("valkey log:\n{}", self.process.log_tail(20)))
    }

    /// SIGKILL and start again on the same port and files (AOF replay).
    pub fn crash_and_restart(&mut self) -> anyhow::Result<()> {
        self.process.restart()?;
        self.wait_ready()
    }
}
