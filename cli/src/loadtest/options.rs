//! What a load test is asked to do: the target, the users, how long, the
//! rate, the drain timeout; which engine generates the load; the replica
//! counts of a comparison.

use std::time::Duration;

use anyhow::Context;

#[derive(Debug, Clone)]
pub struct LoadtestOptions {
    /// `http://host:port` of the gateway.
    pub target: String,
    pub users: usize,
    pub duration: Duration,
    /// How long to wait for the pipeline to drain afterwards.
    pub drain_timeout: Duration,
    pub seed: u64,
    /// Open loop at this many requests per second (`users` bounds how many
    /// are in flight); `None`: closed loop.
    pub rate: Option<f64>,
}

impl LoadtestOptions {
    pub fn check(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            (1..=10_000).contains(&self.users),
            "--users must be between 1 and 10000 (got {})",
            self.users
        );
        anyhow::ensure!(
            self.duration >= Duration::from_secs(1) && self.duration <= Duration::from_secs(3600),
            "--duration must be between 1 s and 1 h (got {:?})",
            self.duration
        );
        if let Some(rate) = self.rate {
            anyhow::ensure!(
                rate.is_finite() && rate > 0.0 && rate <= 1_000_000.0,
                "--rate must be between 0 and 1000000 requests per second (got {rate})"
            );
        }
        let url = reqwest::Url::parse(&self.target)
            .with_context(|| format!("--target {:?} is not a URL", self.target))?;
        anyhow::ensure!(
            url.scheme() == "http" || url.scheme() == "https",
            "--target {:?} must be an http(s) URL",
            self.target
        );
        Ok(())
    }
}

/// Which load generator runs.
#[derive(Debug, Clone, PartialEq)]
pub enum Engine {
    /// The Rust generator (testkit's), closed or open loop.
    Builtin,
    /// `locust --headless` with this locustfile, users spawned at this
    /// rate per second; its CSV statistics are read back.
    Locust {
        locustfile: std::path::PathBuf,
        spawn_rate: f64,
    },
}

/// Parses `1,2,4`.
pub fn parse_replicas(text: &str) -> anyhow::Result<Vec<usize>> {
    let counts: Vec<usize> = text
        .split(',')
        .map(|part| {
            part.trim()
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=64).contains(n))
                .with_context(|| {
                    format!("--consumer-replicas: {part:?} is not a count between 1 and 64")
                })
        })
        .collect::<anyhow::Result<_>>()?;
    anyhow::ensure!(!counts.is_empty(), "--consumer-replicas is empty");
    Ok(counts)
}
