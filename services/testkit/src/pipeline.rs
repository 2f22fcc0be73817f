//! The whole pipeline on 127.0.0.1: broker, Valkey, producers, gateway and
//! consumers, each a real process, all under one temporary directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use blackfriday_proto::SALES_TOPIC;
use blackfriday_proto::record::Sale;

use crate::binaries::service_binary;
use crate::broker::Broker;
use crate::catalog::SaleBody;
use crate::process::ChildProcess;
use crate::totals::{Totals, wait_for_totals};
use crate::valkey::Valkey;
use crate::{free_port, wait_for};

/// One of our services: its process and its ports.
pub struct Service {
    pub process: ChildProcess,
    /// gRPC or HTTP port (0 for the consumer, which serves neither).
    pub port: u16,
    pub metrics_port: u16,
}

impl Service {
    /// The value of a Prometheus counter or gauge (summed over its label sets).
    pub fn metric(&self, name: &str) -> anyhow::Result<f64> {
        let body = http_get(self.metrics_port, "/metrics")?.1;
        Ok(sum_metric(&body, name))
    }

    fn wait_http_ok(&self, path: &str, timeout: Duration) -> anyhow::Result<()> {
        let port = self.metrics_port;
        wait_for(
            &format!("{} {path}", self.process.name()),
            timeout,
            || match http_get(port, path) {
                Ok((200, _)) => Ok(Some(())),
                Ok((status, body)) => Err(format!("{status}: {}", body.trim())),
                Err(error) => Err(error.to_string()),
            },
        )
        .with_context(|| {
            format!(
                "{} log:\n{}",
                self.process.name(),
                self.process.log_tail(30)
            )
        })
    }
}

/// Sums every sample of `name` in a Prometheus text body.
pub fn sum_metric(body: &str, name: &str) -> f64 {
    body.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let metric = series.split('{').next()?;
            (metric == name)
                .then(|| value.parse::<f64>().ok())
                .flatten()
        })
        .sum()
}

/// `GET http://127.0.0.1:port/path` → (status, body).
pub fn http_get(port: u16, path: &str) -> anyhow::Result<(u16, String)> {
    let response = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?
        .get(format!("http://127.0.0.1:{port}{path}"))
        .send()?;
    let status = response.status().as_u16();
    Ok((status, response.text()?))
}

#[derive(Clone, Debug)]
pub struct PipelineOptions {
    pub producers: usize,
    pub consumers: usize,
    pub partitions: i32,
    pub carnet: Option<String>,
    /// Extra arguments for every consumer.
    pub consumer_args: Vec<String>,
    pub start_gateway: bool,
    /// The gateway's port on 127.0.0.1 (`None`: any free port).
    pub gateway_port: Option<u16>,
}

impl Default for PipelineOptions {
    fn default() -> PipelineOptions {
        PipelineOptions {
            producers: 1,
            consumers: 1,
            partitions: 6,
            carnet: Some("201900006".into()),
            // Faster failover than the product defaults (10 s session, 15 s
            // stall), so crash tests spend less time waiting.
            consumer_args: [
                "--kafka-config",
                "session.timeout.ms=6000",
                "--rejoin-when-stalled-ms",
                "8000",
            ]
            .map(String::from)
            .into_iter()
            .chain(crate::broker::tansu_consumer_args())
            .collect(),
            start_gateway: true,
            gateway_port: None,
        }
    }
}

/// Starts the workspace's services against a given broker and Valkey, each
/// with its log under `dir`, and waits until each answers. Used by
/// [`Pipeline`] and by `bfctl up --local`, whose broker and Valkey may be
/// processes, containers or servers named in the configuration.
#[derive(Clone, Debug)]
pub struct Launcher {
    pub dir: PathBuf,
    /// The broker's `host:port`.
    pub bootstrap: String,
    /// `redis://host:port/0`, without the password.
    pub valkey_url: String,
    pub valkey_password: String,
    pub options: PipelineOptions,
    /// Where the services come from: `None`, the workspace's binaries
    /// (built first); `Some(exe)`, `exe service NAME ARGS…`, one program
    /// that carries them all (bfctl).
    pub services_from: Option<PathBuf>,
}

impl Launcher {
    fn log(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.log"))
    }

    /// Starts one of our service binaries and waits until `ready_path`
    /// answers 200 on `metrics_port`.
    fn spawn_service(
        &self,
        binary: &str,
        name: &str,
        args: &[String],
        envs: &[(String, String)],
        (port, metrics_port): (u16, u16),
        ready_path: &str,
    ) -> anyhow::Result<Service> {
        let process = match &self.services_from {
            Some(exe) => {
                let mut with_name = vec!["service".to_string(), binary.to_string()];
                with_name.extend(args.iter().cloned());
                ChildProcess::start(name, exe, &with_name, envs, &self.log(name))?
            }
            None => {
                ChildProcess::start(name, &service_binary(binary)?, args, envs, &self.log(name))?
            }
        };
        let service = Service {
            process,
            port,
            metrics_port,
        };
        service.wait_http_ok(ready_path, Duration::from_secs(30))?;
        Ok(service)
    }

    /// Producer number `index` (named `producer-{index}`).
    pub fn producer(&self, index: usize) -> anyhow::Result<Service> {
        let (port, metrics_port) = (free_port(), free_port());
        let args = vec![
            "--listen".into(),
            format!("127.0.0.1:{port}"),
            "--metrics-listen".into(),
            format!("127.0.0.1:{metrics_port}"),
            "--brokers".into(),
            self.bootstrap.clone(),
            "--create-topic-partitions".into(),
            self.options.partitions.to_string(),
        ];
        self.spawn_service(
            "producer",
            &format!("producer-{index}"),
            &args,
            &[],
            (port, metrics_port),
            "/metrics",
        )
    }

    /// Consumer number `index` (named `consumer-{index}`).
    pub fn consumer(&self, index: usize) -> anyhow::Result<Service> {
        let metrics_port = free_port();
        let mut args = vec![
            "--brokers".into(),
            self.bootstrap.clone(),
            "--valkey-url".into(),
            self.valkey_url.clone(),
            "--metrics-listen".into(),
            format!("127.0.0.1:{metrics_port}"),
        ];
        if let Some(carnet) = &self.options.carnet {
            args.extend(["--carnet".into(), carnet.clone()]);
        }
        args.extend(self.options.consumer_args.iter().cloned());
        let envs = [("VALKEY_PASSWORD".to_string(), self.valkey_password.clone())];
        self.spawn_service(
            "consumer",
            &format!("consumer-{index}"),
            &args,
            &envs,
            (0, metrics_port),
            "/healthz",
        )
    }

    /// The gateway in front of the producers on these gRPC ports (on
    /// 127.0.0.1), once it answers /readyz.
    pub fn gateway(&self, producer_ports: &[u16]) -> anyhow::Result<Service> {
        if producer_ports.is_empty() {
            bail!("start a producer before the gateway");
        }
        let targets: Vec<String> = producer_ports
            .iter()
            .map(|port| format!("127.0.0.1:{port}"))
            .collect();
        let gateway = self.gateway_with(&targets.join(","), &[])?;
        gateway.wait_http_ok("/readyz", Duration::from_secs(30))?;
        Ok(gateway)
    }

    /// A gateway with the given producer targets and extra arguments, once
    /// it serves /healthz.
    pub fn gateway_with(
        &self,
        producer_targets: &str,
        extra: &[String],
    ) -> anyhow::Result<Service> {
        let port = match self.options.gateway_port {
            Some(port) => {
                std::net::TcpListener::bind(("127.0.0.1", port)).with_context(|| {
                    format!("the gateway's port 127.0.0.1:{port} is taken; choose another")
                })?;
                port
            }
            None => free_port(),
        };
        let mut args = vec![
            "--listen".into(),
            format!("127.0.0.1:{port}"),
            "--producers".into(),
            producer_targets.into(),
            "--resolve-interval-ms".into(),
            "1000".into(),
            "--health-interval-ms".into(),
            "250".into(),
        ];
        args.extend(extra.iter().cloned());
        let name = format!("gateway-{port}");
        // The gateway serves /metrics on its HTTP port.
        self.spawn_service("gateway", &name, &args, &[], (port, port), "/healthz")
    }
}

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
    pub fn launcher(&self) -> Launcher {
        Launcher {
            dir: self.dir.clone(),
            bootstrap: self.broker.bootstrap(),
            valkey_url: self.valkey.url(),
            valkey_password: self.valkey.password.clone(),
            options: self.options.clone(),
            services_from: None,
        }
    }

    pub fn add_producer(&mut self) -> anyhow::Result<&Service> {
        let index = self.producers.len();
        let service = self.launcher().producer(index)?;
        self.producers.push(service);
        Ok(&self.producers[index])
    }

    pub fn add_consumer(&mut self) -> anyhow::Result<&Service> {
        let index = self.consumers.len();
        let service = self.launcher().consumer(index)?;
        self.consumers.push(service);
        Ok(&self.consumers[index])
    }

    /// Starts the gateway in front of every producer and waits for /readyz.
    pub fn start_gateway(&mut self) -> anyhow::Result<&Service> {
        let ports: Vec<u16> = self.producers.iter().map(|p| p.port).collect();
        let gateway = self.launcher().gateway(&ports)?;
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
        self.launcher().gateway_with(producer_targets, extra)
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

/// A sale body with a test-made id and the current time.
pub fn to_sale(body: &SaleBody, id: u64) -> anyhow::Result<Sale> {
    let request = blackfriday_proto::pb::ProductSaleRequest {
        categoria: body.categoria,
        producto_id: body.producto_id.clone(),
        precio: body.precio,
        cantidad_vendida: body.cantidad_vendida,
        venta_id: format!("test-{id:012}"),
        timestamp_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis() as i64,
    };
    Ok(Sale::try_from(&request)?)
}
