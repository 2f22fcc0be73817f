//! Starting the pipeline's services (gateway, producer, consumer) as real
//! processes on 127.0.0.1, each with its own ports and log file, ready when
//! their health endpoint answers: [`Launcher`]. Where the programs come
//! from is [`Services`]: the workspace's three binaries, or one program
//! that carries them all (`bfctl service NAME`).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};

use blackfriday_proto::record::Sale;

use crate::catalog::SaleBody;
use crate::process::ChildProcess;
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

pub use crate::metrics::sum_metric;

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
    /// Where the services' programs are.
    pub services: Services,
}

/// Where the services' programs are.
#[derive(Clone, Debug)]
pub enum Services {
    /// A directory holding the `gateway`, `producer` and `consumer` binaries.
    Binaries(PathBuf),
    /// One program that runs each as `PROGRAM service NAME ARGS…` (bfctl).
    OneProgram(PathBuf),
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
        let process = match &self.services {
            Services::OneProgram(exe) => {
                let mut with_name = vec!["service".to_string(), binary.to_string()];
                with_name.extend(args.iter().cloned());
                ChildProcess::start(name, exe, &with_name, envs, &self.log(name))?
            }
            Services::Binaries(dir) => {
                let program = dir.join(binary);
                if !program.is_file() {
                    bail!("{} is missing", program.display());
                }
                ChildProcess::start(name, &program, args, envs, &self.log(name))?
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
