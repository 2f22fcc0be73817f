//! The whole pipeline on 127.0.0.1 for tests and benchmarks: broker,
//! Valkey, producers, gateway and consumers, each a real process (the
//! workspace's binaries, built first), all under one temporary directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use blackfriday_proto::SALES_TOPIC;

use localrun::broker::Broker;
pub use localrun::launcher::*;
use localrun::totals::{Totals, wait_for_totals};
use localrun::valkey::Valkey;

use crate::binaries::services_dir;

pub struct Pipeline {
    // Field order is drop order: services before the servers they use.
    pub gateway: Option<Service>,
    pub producers: Vec<Service>,
    pub consumers: Vec<Service>,
    pub valkey: Valkey,
    pub broker: Broker,
    pub options: PipelineOptions,
    dir: PathBuf,
    _temp: Option<tempfile::TempDir>,
}

impl Pipeline {
    /// Starts everything in a fresh temporary directory.
    pub fn start(options: PipelineOptions) -> anyhow::Result<Pipeline> {
        let temp = tempfile::Builder::new().prefix("bf-pipeline-").tempdir()?;
        let dir = temp.path().to_path_buf();
        let mut pipeline = Pipeline::start_in(&dir, options)?;
        pipeline._temp = Some(temp);
        Ok(pipeline)
    }

    /// Starts everything with state and logs under `dir` (kept afterwards).
    pub fn start_in(dir: &Path, options: PipelineOptions) -> anyhow::Result<Pipeline> {
        let broker = Broker::start(&dir.join("broker"))?;
        broker.create_topic(SALES_TOPIC, options.partitions)?;
        let valkey = Valkey::start(&dir.join("valkey"))?;
        let mut pipeline = Pipeline {
            gateway: None,
            producers: Vec::new(),
            consumers: Vec::new(),
            valkey,
            broker,
            options: options.clone(),
            dir: dir.to_path_buf(),
            _temp: None,
        };
        for _ in 0..options.producers {
            pipeline.add_producer()?;
        }
        for _ in 0..options.consumers {
            pipeline.add_consumer()?;
        }
        if options.start_gateway {
            pipeline.start_gateway()?;
        }
        Ok(pipeline)
    }

    /// What starting a service needs: the addresses of this pipeline's
    /// broker and Valkey, its options and its directory.
    pub fn launcher(&self) -> anyhow::Result<Launcher> {
        Ok(Launcher {
            dir: self.dir.clone(),
            bootstrap: self.broker.bootstrap(),
            valkey_url: self.valkey.url(),
            valkey_password: self.valkey.password.clone(),
            options: self.options.clone(),
            services: Services::Binaries(services_dir()?),
        })
    }

    pub fn add_producer(&mut self) -> anyhow::Result<&Service> {
        let index = self.producers.len();
        let service = self.launcher()?.producer(index)?;
        self.producers.push(service);
        Ok(&self.producers[index])
    }

    pub fn add_consumer(&mut self) -> anyhow::Result<&Service> {
        let index = self.consumers.len();
        let service = self.launcher()?.consumer(index)?;
        self.consumers.push(service);
        Ok(&self.consumers[index])
    }

    /// Starts the gateway in front of every producer and waits for /readyz.
    pub fn start_gateway(&mut self) -> anyhow::Result<&Service> {
        let ports: Vec<u16> = self.producers.iter().map(|p| p.port).collect();
        let gateway = self.launcher()?.gateway(&ports)?;
        self.gateway = Some(gateway);
        self.gateway.as_ref().context("gateway just started")
    }

    /// Starts a gateway with the given producer targets and extra arguments,
    /// waiting only for it to serve /healthz.
    pub fn start_gateway_with(
        &self,
        producer_targets: &str,
        extra: &[String],
    ) -> anyhow::Result<Service> {
        self.launcher()?.gateway_with(producer_targets, extra)
    }

    pub fn gateway_url(&self) -> anyhow::Result<String> {
        let gateway = self.gateway.as_ref().context("no gateway started")?;
        Ok(format!("http://127.0.0.1:{}", gateway.port))
    }

    pub fn valkey(&self) -> anyhow::Result<redis::Connection> {
        self.valkey.connect()
    }

    /// Waits until Valkey has counted `expected` (and `dead_letters`), then
    /// returns what it holds; on a timeout the error carries every log tail.
    pub fn counted(
        &self,
        expected: &Totals,
        dead_letters: i64,
        timeout: Duration,
    ) -> anyhow::Result<Totals> {
        let mut valkey = self.valkey()?;
        wait_for_totals(&mut valkey, expected, dead_letters, timeout)
            .map_err(|error| anyhow::anyhow!("{error:#}\n{}", self.logs()))
    }

    /// Logs of every process, for a failing test's message.
    pub fn logs(&self) -> String {
        let mut out = BTreeMap::new();
        for service in self
            .producers
            .iter()
            .chain(&self.consumers)
            .chain(&self.gateway)
        {
            out.insert(
                service.process.name().to_string(),
                service.process.log_tail(15),
            );
        }
        out.into_iter()
            .map(|(name, tail)| format!("--- {name}\n{tail}\n"))
            .collect()
    }
}

/// One point of the carnet's price series (`bf:carnet:precios`).
#[derive(Debug, Clone, PartialEq)]
pub struct PricePoint {
    /// The entry id's millisecond part (the sale's time, kept increasing).
    pub time_ms: i64,
    pub precio: String,
    pub venta_id: String,
}

/// The carnet's price series, oldest first, read with `XRANGE - +`.
pub fn carnet_series(valkey: &mut redis::Connection) -> anyhow::Result<Vec<PricePoint>> {
    type Entry = (String, Vec<(String, String)>);
    let entries: Vec<Entry> = redis::cmd("XRANGE")
        .arg("bf:carnet:precios")
        .arg("-")
        .arg("+")
        .query(valkey)
        .context("reading bf:carnet:precios")?;
    entries
        .into_iter()
        .map(|(id, fields)| {
            let time_ms = id
                .split('-')
                .next()
                .and_then(|ms| ms.parse().ok())
                .with_context(|| format!("stream id {id} has no millisecond part"))?;
            let field = |name: &str| {
                fields
                    .iter()
                    .find(|(key, _)| key == name)
                    .map(|(_, value)| value.clone())
                    .with_context(|| format!("entry {id} has no {name}"))
            };
            Ok(PricePoint {
                time_ms,
                precio: field("precio")?,
                venta_id: field("venta_id")?,
            })
        })
        .collect()
}

/// Checks what the consumer's script promises of the series: at most
/// `capacity` points, times never going back, no sale twice.
pub fn check_carnet_series(points: &[PricePoint], capacity: usize) -> anyhow::Result<()> {
    anyhow::ensure!(
        points.len() <= capacity,
        "{} points, more than {capacity}",
        points.len()
    );
    let mut seen = std::collections::BTreeSet::new();
    for pair in points.windows(2) {
        anyhow::ensure!(
            pair[0].time_ms <= pair[1].time_ms,
            "time goes back: {:?} then {:?}",
            pair[0],
            pair[1]
        );
    }
    for point in points {
        anyhow::ensure!(
            seen.insert(point.venta_id.as_str()),
            "sale {} is in the series twice",
            point.venta_id
        );
        point
            .precio
            .parse::<f64>()
            .with_context(|| format!("price {:?} is not a number", point.precio))?;
    }
    Ok(())
}
