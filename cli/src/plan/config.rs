//! `bfctl.yaml`: what to deploy and how. `bfctl config init` writes the
//! commented example (`cli/bfctl.example.yaml`), which doubles as the
//! reference documentation of every key.
//!
//! Parsing is strict: an unknown key, a wrong type or an out-of-range value
//! is an error that names the key and its line. Values that are only wrong
//! together (min above max, say) are checked after parsing and name the keys.

use std::fmt;
use std::path::Path;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

/// The commented example written by `bfctl config init`.
pub const EXAMPLE: &str = include_str!("../../bfctl.example.yaml");

/// Versions this build of bfctl knows how to install.
pub const SUPPORTED_STRIMZI: &[&str] = &["1.2.0"];
/// Kafka versions Strimzi 1.2.0 runs (its operator's STRIMZI_KAFKA_IMAGES).
pub const SUPPORTED_KAFKA: &[&str] = &["4.2.0", "4.2.1"];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Config {
    #[serde(default = "default_namespace")]
    pub namespace: DnsLabel,
    /// The install's name: every object bfctl applies is labelled with it,
    /// and prune and teardown touch only objects that carry it. Empty: the
    /// namespace's name.
    #[serde(default)]
    pub install: String,
    #[serde(default)]
    pub kube_context: String,
    pub registry: Registry,
    #[serde(default)]
    pub gateway: Scaling,
    #[serde(default)]
    pub producer: Scaling,
    #[serde(default)]
    pub consumer: Consumer,
    #[serde(default)]
    pub kafka: Kafka,
    #[serde(default)]
    pub valkey: Valkey,
    pub carnet: Carnet,
    #[serde(default)]
    pub ingress: Ingress,
    #[serde(default)]
    pub kubevirt: KubeVirt,
    #[serde(default)]
    pub versions: Versions,
    #[serde(default)]
    pub operators: Operators,
    #[serde(default)]
    pub images: Images,
    #[serde(default)]
    pub local: Local,
    /// The GKE cluster `bfctl cluster create|status|delete` manages
    /// (none: the cluster is made elsewhere).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gke: Option<super::gke::Gke>,
}

/// Where `bfctl up --local` gets its broker and Valkey (see
/// `bfctl::local::servers`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Local {
    /// An existing Kafka, `host:port[,host:port]`; empty starts one.
    #[serde(default)]
    pub kafka_bootstrap: String,
    /// An existing Valkey, `redis://HOST:PORT[/DB]`; empty starts one.
    #[serde(default)]
    pub valkey_url: String,
    /// The environment variable holding that Valkey's password.
    #[serde(default = "default_valkey_password_env")]
    pub valkey_password_env: String,
    /// Whether the official container images may be used.
    #[serde(default)]
    pub docker: crate::local::container::DockerUse,
    #[serde(default = "default_kafka_image")]
    pub kafka_image: String,
    #[serde(default = "default_valkey_image")]
    pub valkey_image: String,
}

fn default_valkey_password_env() -> String {
    crate::local::servers::DEFAULT_VALKEY_PASSWORD_ENV.into()
}
fn default_kafka_image() -> String {
    crate::local::servers::DEFAULT_KAFKA_IMAGE.into()
}
fn default_valkey_image() -> String {
    crate::local::servers::DEFAULT_VALKEY_IMAGE.into()
}

impl Default for Local {
    fn default() -> Local {
        Local {
            kafka_bootstrap: String::new(),
            valkey_url: String::new(),
            valkey_password_env: default_valkey_password_env(),
            docker: Default::default(),
            kafka_image: default_kafka_image(),
            valkey_image: default_valkey_image(),
        }
    }
}

impl Local {
    /// The choices `up --local` starts from (flags override them).
    pub fn server_choices(&self) -> crate::local::servers::ServerChoices {
        let non_empty = |s: &String| (!s.trim().is_empty()).then(|| s.trim().to_string());
        crate::local::servers::ServerChoices {
            kafka_bootstrap: non_empty(&self.kafka_bootstrap),
            valkey_url: non_empty(&self.valkey_url),
            valkey_password_env: self.valkey_password_env.clone(),
            docker: self.docker,
            kafka_image: self.kafka_image.clone(),
            valkey_image: self.valkey_image.clone(),
        }
    }
}

/// How `bfctl build` makes the service images.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Images {
    /// The base image, pinned by digest; empty for none (static binaries).
    #[serde(default = "default_base_image")]
    pub base: String,
    /// `org.opencontainers.image.source` of the images.
    #[serde(default = "default_image_source")]
    pub source: String,
    /// How the images are made.
    #[serde(default)]
    pub builder: Builder,
}

/// `native`: cargo build and an image assembled in Rust (no Docker);
/// `docker`: `services/Dockerfile` built by the Docker Engine.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Builder {
    #[default]
    Native,
    Docker,
}

impl Default for Images {
    fn default() -> Images {
        Images {
            base: default_base_image(),
            source: default_image_source(),
            builder: Builder::default(),
        }
    }
}

/// distroless cc for Debian 12 (glibc 2.36, user nonroot), a multi-platform
/// index digest taken from a public repository's pin of 2026-10-08: it could
/// not be pulled where this build was made.
fn default_base_image() -> String {
    "gcr.io/distroless/cc-debian12@sha256:9dac0a79194e45a7da0158a9c6da57b217585af0786db3845d1f0ec1a0dd182f".into()
}
fn default_image_source() -> String {
    "https://github.com/blackfriday/bfctl".into()
}

/// Where operator manifests come from (see `bfctl::plan::operators`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Operators {
    /// Base URL serving the release files by name instead of upstream (an
    /// internal mirror); empty means upstream.
    #[serde(default)]
    pub mirror: String,
    /// sha256 per file name, for files this bfctl has no pin for, or to
    /// replace a pin after checking the new file by hand.
    #[serde(default)]
    pub sha256: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Registry {
    /// Who provides it: someone else (`external`), or bfctl (`zot`,
    /// `artifact-registry`; see [`super::registry`]).
    #[serde(default)]
    pub kind: super::registry::RegistryKind,
    /// `host[:port][/path]`. For a registry bfctl provides, left empty:
    /// `bfctl registry create` records it.
    #[serde(default)]
    pub url: String,
    /// Where the cluster pulls from, when not `url` (a registry bfctl
    /// provides: its address inside the VPC). Set by bfctl, never read
    /// from bfctl.yaml.
    #[serde(skip)]
    pub pull_url: String,
    #[serde(default)]
    pub credentials: CredentialSource,
    #[serde(default)]
    pub insecure: bool,
    #[serde(default)]
    pub zot: Option<super::registry::Zot>,
    #[serde(default)]
    pub artifact_registry: Option<super::registry::ArtifactRegistry>,
}

impl Registry {
    /// The base of the image references the cluster pulls (`pull_url`
    /// when set, else `url`).
    pub fn pull_base(&self) -> &str {
        if self.pull_url.is_empty() {
            self.url.trim_end_matches('/')
        } else {
            self.pull_url.trim_end_matches('/')
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum CredentialSource {
    #[default]
    DockerConfig,
    Env,
    None,
    /// The accounts bfctl made for a registry it provides (files of mode
    /// 0600 in `.bfctl/registry/`); set by bfctl, never read from
    /// bfctl.yaml.
    #[serde(skip_deserializing)]
    Provided,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Scaling {
    #[serde(default = "one")]
    pub min_replicas: Bounded<1, 100>,
    #[serde(default = "five")]
    pub max_replicas: Bounded<1, 100>,
    #[serde(default = "fifty")]
    pub target_cpu_percent: Bounded<1, 100>,
}

impl Default for Scaling {
    fn default() -> Scaling {
        Scaling {
            min_replicas: one(),
            max_replicas: five(),
            target_cpu_percent: fifty(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Consumer {
    #[serde(default = "two")]
    pub replicas: Bounded<1, 100>,
}

impl Default for Consumer {
    fn default() -> Consumer {
        Consumer { replicas: two() }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Kafka {
    #[serde(default = "six")]
    pub partitions: Bounded<1, 1000>,
    #[serde(default = "one")]
    pub replication: Bounded<1, 5>,
    #[serde(default)]
    pub storage: KafkaStorage,
}

impl Default for Kafka {
    fn default() -> Kafka {
        Kafka {
            partitions: six(),
            replication: one(),
            storage: KafkaStorage::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KafkaStorage {
    #[serde(default = "ten_gi")]
    pub size: Quantity,
    #[serde(default)]
    pub class: String,
}

impl Default for KafkaStorage {
    fn default() -> KafkaStorage {
        KafkaStorage {
            size: ten_gi(),
            class: String::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Valkey {
    #[serde(default = "one_gi")]
    pub memory: Quantity,
    #[serde(default = "five_gi")]
    pub data_volume_size: Quantity,
    #[serde(default = "default_password_secret")]
    pub password_secret: DnsLabel,
}

impl Default for Valkey {
    fn default() -> Valkey {
        Valkey {
            memory: one_gi(),
            data_volume_size: five_gi(),
            password_secret: default_password_secret(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Ingress {
    #[serde(default)]
    pub mode: IngressMode,
    #[serde(default = "default_gateway_class")]
    pub gateway_class: String,
    #[serde(default)]
    pub host: String,
}

impl Default for Ingress {
    fn default() -> Ingress {
        Ingress {
            mode: IngressMode::default(),
            gateway_class: default_gateway_class(),
            host: String::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IngressMode {
    #[default]
    GatewayApi,
    Nginx,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KubeVirt {
    #[serde(default)]
    pub use_emulation: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Versions {
    #[serde(default = "default_strimzi")]
    pub strimzi: String,
    #[serde(default = "default_kafka")]
    pub kafka: String,
    #[serde(default = "default_kubevirt")]
    pub kubevirt: String,
    #[serde(default = "default_ingress_nginx")]
    pub ingress_nginx: String,
}

impl Default for Versions {
    fn default() -> Versions {
        Versions {
            strimzi: default_strimzi(),
            kafka: default_kafka(),
            kubevirt: default_kubevirt(),
            ingress_nginx: default_ingress_nginx(),
        }
    }
}

/// An integer in `MIN..=MAX`, checked while parsing so the error has a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "i64")]
pub struct Bounded<const MIN: i64, const MAX: i64>(pub i64);

impl<const MIN: i64, const MAX: i64> TryFrom<i64> for Bounded<MIN, MAX> {
    type Error = String;
    fn try_from(value: i64) -> Result<Self, String> {
        if (MIN..=MAX).contains(&value) {
            Ok(Bounded(value))
        } else {
            Err(format!(
                "{value} is out of range: must be between {MIN} and {MAX}"
            ))
        }
    }
}

impl<const MIN: i64, const MAX: i64> From<Bounded<MIN, MAX>> for i64 {
    fn from(value: Bounded<MIN, MAX>) -> i64 {
        value.0
    }
}

impl<const MIN: i64, const MAX: i64> fmt::Display for Bounded<MIN, MAX> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A Kubernetes name: a DNS-1123 label.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DnsLabel(pub String);

impl TryFrom<String> for DnsLabel {
    type Error = String;
    fn try_from(value: String) -> Result<DnsLabel, String> {
        let valid = !value.is_empty()
            && value.len() <= 63
            && value
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !value.starts_with('-')
            && !value.ends_with('-');
        if valid {
            Ok(DnsLabel(value))
        } else {
            Err(format!(
                "{value:?} is not a valid name: lowercase letters, digits and '-', at most 63, not starting or ending with '-'"
            ))
        }
    }
}

impl From<DnsLabel> for String {
    fn from(value: DnsLabel) -> String {
        value.0
    }
}

/// A Kubernetes quantity such as `10Gi` or `512Mi` (binary suffixes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Quantity(pub String);

impl TryFrom<String> for Quantity {
    type Error = String;
    fn try_from(value: String) -> Result<Quantity, String> {
        let digits = value.trim_end_matches(|c: char| c.is_ascii_alphabetic());
        let suffix = &value[digits.len()..];
        let number_ok =
            !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit()) && digits != "0";
        if number_ok && ["Ki", "Mi", "Gi", "Ti"].contains(&suffix) {
            Ok(Quantity(value))
        } else {
            Err(format!(
                "{value:?} is not a size: expected a whole number with Ki, Mi, Gi or Ti, such as 10Gi"
            ))
        }
    }
}

impl From<Quantity> for String {
    fn from(value: Quantity) -> String {
        value.0
    }
}

/// A carnet (student id): text ending in a digit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Carnet(pub String);

impl TryFrom<String> for Carnet {
    type Error = String;
    fn try_from(value: String) -> Result<Carnet, String> {
        if value
            .trim()
            .chars()
            .last()
            .is_some_and(|c| c.is_ascii_digit())
        {
            Ok(Carnet(value.trim().to_string()))
        } else {
            Err(format!(
                "{value:?} must end in a digit (its last digit picks the tracked category)"
            ))
        }
    }
}

impl From<Carnet> for String {
    fn from(value: Carnet) -> String {
        value.0
    }
}

fn default_namespace() -> DnsLabel {
    DnsLabel("blackfriday".into())
}
fn default_password_secret() -> DnsLabel {
    DnsLabel("valkey-password".into())
}
fn default_gateway_class() -> String {
    "gke-l7-global-external-managed".into()
}
fn default_strimzi() -> String {
    "1.2.0".into()
}
fn default_kafka() -> String {
    "4.2.1".into()
}
fn default_kubevirt() -> String {
    "v1.9.0".into()
}
fn default_ingress_nginx() -> String {
    "controller-v1.15.1".into()
}
fn one<const MIN: i64, const MAX: i64>() -> Bounded<MIN, MAX> {
    Bounded(1)
}
fn two<const MIN: i64, const MAX: i64>() -> Bounded<MIN, MAX> {
    Bounded(2)
}
fn five<const MIN: i64, const MAX: i64>() -> Bounded<MIN, MAX> {
    Bounded(5)
}
fn six<const MIN: i64, const MAX: i64>() -> Bounded<MIN, MAX> {
    Bounded(6)
}
fn fifty<const MIN: i64, const MAX: i64>() -> Bounded<MIN, MAX> {
    Bounded(50)
}
fn one_gi() -> Quantity {
    Quantity("1Gi".into())
}
fn five_gi() -> Quantity {
    Quantity("5Gi".into())
}
fn ten_gi() -> Quantity {
    Quantity("10Gi".into())
}

impl Config {
    /// Parses `text` (from `origin`, named in errors) and checks it.
    pub fn parse(text: &str, origin: &str) -> anyhow::Result<Config> {
        let config: Config = crate::yaml::parse(text, origin)?;
        config
            .check()
            .with_context(|| format!("{origin}: invalid configuration"))?;
        Ok(config)
    }

    pub fn load(path: &Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path).with_context(|| {
            format!(
                "reading {} (create one with `bfctl config init`)",
                path.display()
            )
        })?;
        Config::parse(&text, &path.display().to_string())
    }

    /// Checks what parsing alone cannot: values that are only wrong together.
    fn check(&self) -> anyhow::Result<()> {
        for (name, scaling) in [("gateway", &self.gateway), ("producer", &self.producer)] {
            if scaling.min_replicas > scaling.max_replicas {
                bail!(
                    "{name}.minReplicas ({}) is above {name}.maxReplicas ({})",
                    scaling.min_replicas,
                    scaling.max_replicas
                );
            }
        }
        if self.consumer.replicas.0 > self.kafka.partitions.0 {
            bail!(
                "consumer.replicas ({}) is above kafka.partitions ({}): the extra consumers would sit idle",
                self.consumer.replicas,
                self.kafka.partitions
            );
        }
        if !self.install.is_empty() && DnsLabel::try_from(self.install.clone()).is_err() {
            bail!(
                "install {:?}: expected a DNS label (lower-case letters, digits and '-', at most 63), or empty for the namespace's name",
                self.install
            );
        }
        self.check_registry()?;
        if !SUPPORTED_STRIMZI.contains(&self.versions.strimzi.as_str()) {
            bail!(
                "versions.strimzi {:?}: this bfctl installs {}",
                self.versions.strimzi,
                SUPPORTED_STRIMZI.join(", ")
            );
        }
        if !SUPPORTED_KAFKA.contains(&self.versions.kafka.as_str()) {
            bail!(
                "versions.kafka {:?}: Strimzi {} runs Kafka {}",
                self.versions.kafka,
                self.versions.strimzi,
                SUPPORTED_KAFKA.join(", ")
            );
        }
        if !self.versions.kubevirt.starts_with("v1.9.") {
            bail!(
                "versions.kubevirt {:?}: this bfctl installs KubeVirt v1.9.x",
                self.versions.kubevirt
            );
        }
        for (file, digest) in &self.operators.sha256 {
            if digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
                bail!("operators.sha256.{file}: {digest:?} is not a sha256 (64 hex digits)");
            }
        }
        if let Some(gke) = &self.gke {
            gke.check().map_err(anyhow::Error::msg)?;
        }
        Ok(())
    }

    /// Whether the Valkey VM runs on a pool with nested virtualization
    /// (a `gke:` cluster's `virt` pool): then it is placed there and
    /// KubeVirt does not emulate.
    pub fn has_virt_pool(&self) -> bool {
        self.gke.is_some()
    }

    /// `kubevirt.useEmulation`, unless the VM has a pool with nested
    /// virtualization, where emulation would only slow it down.
    pub fn use_emulation(&self) -> bool {
        self.kubevirt.use_emulation && !self.has_virt_pool()
    }

    /// The install's name (`install`, or the namespace when empty).
    pub fn install_name(&self) -> &str {
        if self.install.is_empty() {
            &self.namespace.0
        } else {
            &self.install
        }
    }

    /// Warnings about what `bfctl up` deploys (the ingress it installs).
    pub fn deploy_warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        if self.kubevirt.use_emulation && self.has_virt_pool() {
            warnings.push(
                "kubevirt.useEmulation is ignored: the gke.virt pool has nested virtualization, so the VM runs with KVM".into(),
            );
        }
        if self.ingress.mode == IngressMode::Nginx {
            warnings.push(format!(
                "ingress.mode nginx: ingress-nginx is retired upstream ({} is its final release, with no more security fixes); prefer gateway-api",
                self.versions.ingress_nginx
            ));
        }
        warnings
    }

    /// The `registry:` section: `url` for an external registry; for one
    /// bfctl provides, its own section, and where it is.
    fn check_registry(&self) -> anyhow::Result<()> {
        use super::registry::RegistryKind;
        let registry = &self.registry;
        let gke_project = self.gke.as_ref().map(|gke| &gke.project);
        match registry.kind {
            RegistryKind::External => {
                if registry.url.trim().is_empty() || registry.url.contains("://") {
                    bail!(
                        "registry.url {:?}: expected host[:port][/path], without a scheme",
                        registry.url
                    );
                }
            }
            RegistryKind::Zot => {
                let Some(zot) = &registry.zot else {
                    bail!(
                        "registry.kind is zot, but there is no registry.zot section (at least its zone; `bfctl config init` shows it)"
                    );
                };
                zot.check().map_err(anyhow::Error::msg)?;
                if zot.project.is_none() && gke_project.is_none() {
                    bail!("registry.zot.project: needed when there is no gke: section");
                }
                let zone_from_gke = self.gke.as_ref().is_some_and(|gke| gke.location.is_zone());
                match &zot.zone {
                    Some(zone) if !zone.is_zone() => bail!(
                        "registry.zot.zone {:?} is a region: the VM and its disk need a zone (such as {}-b)",
                        zone.0,
                        zone.0
                    ),
                    None if !zone_from_gke => bail!(
                        "registry.zot.zone: needed (gke.location is not a zone to take it from)"
                    ),
                    _ => {}
                }
                if registry.insecure {
                    bail!(
                        "registry.insecure with kind zot: the registry bfctl provides speaks TLS only"
                    );
                }
            }
            RegistryKind::ArtifactRegistry => {
                let Some(artifact) = &registry.artifact_registry else {
                    bail!(
                        "registry.kind is artifact-registry, but there is no registry.artifactRegistry section (its location at least)"
                    );
                };
                if artifact.project.is_none() && gke_project.is_none() {
                    bail!(
                        "registry.artifactRegistry.project: needed when there is no gke: section"
                    );
                }
            }
        }
        if registry.kind != RegistryKind::External && registry.url.contains("://") {
            bail!(
                "registry.url {:?}: expected host[:port][/path], without a scheme",
                registry.url
            );
        }
        Ok(())
    }

    /// Warnings about pushing to the registry (`build --push`, `disk push`,
    /// `up` when it builds).
    pub fn registry_warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        if self.registry.insecure {
            warnings.push(format!(
                "registry.insecure: images for {} travel over plain HTTP",
                self.registry.url
            ));
        }
        warnings
    }

    /// Every warning (`bfctl config check`).
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = self.deploy_warnings();
        warnings.extend(self.registry_warnings());
        warnings
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minimal() -> &'static str {
        "registry:\n  url: zot.example.com/bf\ncarnet: \"201900006\"\n"
    }

    #[test]
    fn the_example_parses_and_states_the_defaults() {
        let example = Config::parse(EXAMPLE, "bfctl.example.yaml").unwrap();
        let mut defaults = Config::parse(minimal(), "minimal").unwrap();
        defaults.registry.url = example.registry.url.clone();
        assert_eq!(example, defaults, "the example must show the defaults");
        assert_eq!(example.namespace.0, "blackfriday");
        assert_eq!(example.kafka.partitions.0, 6);
        assert_eq!(example.gateway.max_replicas.0, 5);
        assert_eq!(example.gateway.target_cpu_percent.0, 50);
        assert_eq!(example.versions.kafka, "4.2.1");
    }

    /// The example with its commented `gke:` block switched on.
    fn example_with_gke() -> String {
        let mut on = false;
        EXAMPLE
            .lines()
            .map(|line| {
                if line == "# gke:" {
                    on = true;
                }
                match line.strip_prefix("# ") {
                    Some(rest) if on && !rest.trim_start().starts_with('#') => {
                        format!("{rest}\n")
                    }
                    _ if on && line.trim_start().starts_with("#   #") => String::new(),
                    _ => format!("{line}\n"),
                }
            })
            .collect()
    }

    #[test]
    fn the_examples_zot_block_parses_and_a_provided_registry_needs_no_url() {
        // The commented registry lines, switched on, in place of the url.
        let mut on = false;
        let text: String = EXAMPLE
            .lines()
            .filter_map(|line| {
                if line == "  # kind: zot" {
                    on = true;
                }
                if on && !line.starts_with("  # ") {
                    on = false;
                }
                if line.starts_with("  url:") {
                    return None;
                }
                Some(match line.strip_prefix("  # ").filter(|_| on) {
                    Some(rest) => format!("  {rest}\n"),
                    None => format!("{line}\n"),
                })
            })
            .collect();
        let config = Config::parse(&text, "example with zot").unwrap();
        let zot = config.registry.zot.as_ref().expect("the zot block is on");
        assert_eq!(
            config.registry.kind,
            super::super::registry::RegistryKind::Zot
        );
        assert_eq!(zot.port.0, 5000);
        assert_eq!(zot.machine_type.0, "e2-small");
        assert!(config.registry.url.is_empty());
        let open = error_of(&text.replace("allowedSources: []", "allowedSources: [\"0.0.0.0/0\"]"));
        assert!(open.contains("admits the whole Internet"), "{open}");
        let region = error_of(&text.replace("zone: europe-west1-b", "zone: europe-west1"));
        assert!(region.contains("is a region"), "{region}");
    }

    #[test]
    fn the_examples_gke_block_parses_with_its_documented_defaults() {
        let config = Config::parse(&example_with_gke(), "example with gke").unwrap();
        let gke = config.gke.as_ref().expect("the gke block is on");
        assert_eq!(gke.project.0, "my-project-id");
        assert!(gke.location.is_zone());
        let defaults: crate::plan::gke::Gke = crate::yaml::parse(
            "project: my-project-id\nlocation: europe-west1-b\n",
            "minimal gke",
        )
        .unwrap();
        assert_eq!(gke, &defaults, "the example must show the gke defaults");
        assert!(config.has_virt_pool());
        assert!(!config.use_emulation());
    }

    #[test]
    fn gke_values_are_checked_with_key_and_line() {
        let base = example_with_gke();
        let case = |from: &str, to: &str| {
            assert!(base.contains(from), "{from}");
            error_of(&base.replacen(from, to, 1))
        };
        let error = case("machineType: n2-standard-4", "machineType: e2-standard-4");
        assert!(
            error.contains("gke.virt.machineType") && error.contains("cannot run nested VMs"),
            "{error}"
        );
        let error = case("imageType: UBUNTU_CONTAINERD", "imageType: COS");
        assert!(error.contains("gke.virt.imageType"), "{error}");
        let error = case("location: europe-west1-b", "location: europe");
        assert!(error.contains("gke.location"), "{error}");
        let error = case("releaseChannel: REGULAR", "releaseChannel: NIGHTLY");
        assert!(error.contains("gke.releaseChannel"), "{error}");
        let error = case("    maxNodes: 3", "    maxNodes: 0");
        assert!(error.contains("gke.general.maxNodes"), "{error}");
        let error = case(
            "    minNodes: 1\n    maxNodes: 3",
            "    minNodes: 4\n    maxNodes: 3",
        );
        assert!(
            error.contains("gke.general.minNodes (4) is above gke.general.maxNodes (3)"),
            "{error}"
        );
        for error in [
            case("machineType: n2-standard-4", "machineType: e2-standard-4"),
            case("location: europe-west1-b", "location: europe"),
        ] {
            assert!(error.contains(", line "), "{error}");
        }
    }

    fn error_of(text: &str) -> String {
        format!("{:#}", Config::parse(text, "bfctl.yaml").unwrap_err())
    }

    #[test]
    fn unknown_keys_name_the_key_and_line() {
        let error = error_of("registry:\n  url: r\ncarnet: \"1\"\nkafka:\n  partitons: 3\n");
        assert!(error.contains("kafka.partitons: unknown field"), "{error}");
        assert!(error.contains("line 5"), "{error}");
    }

    #[test]
    fn bad_values_name_the_key_and_line() {
        let cases = [
            ("kafka:\n  partitions: 0\n", "kafka.partitions:", "line 5"),
            ("namespace: Black_Friday\n", "namespace:", "line 4"),
            ("valkey:\n  memory: lots\n", "valkey.memory:", "line 5"),
            ("ingress:\n  mode: traefik\n", "ingress.mode:", "line 5"),
            (
                "gateway:\n  maxReplicas: -1\n",
                "gateway.maxReplicas:",
                "line 5",
            ),
        ];
        for (extra, key, line) in cases {
            let error = error_of(&format!("{}{extra}", minimal()));
            assert!(error.contains(key), "{extra}: {error}");
            assert!(error.contains(line), "{extra}: {error}");
        }
        let error = error_of("registry:\n  url: r\ncarnet: \"20190000x\"\n");
        assert!(
            error.contains("carnet") && error.contains("digit"),
            "{error}"
        );
    }

    #[test]
    fn values_wrong_together_name_both_keys() {
        let error = error_of(&format!(
            "{}gateway:\n  minReplicas: 4\n  maxReplicas: 2\n",
            minimal()
        ));
        assert!(
            error.contains("gateway.minReplicas") && error.contains("gateway.maxReplicas"),
            "{error}"
        );
        let error = error_of(&format!("{}consumer:\n  replicas: 8\n", minimal()));
        assert!(
            error.contains("consumer.replicas") && error.contains("kafka.partitions"),
            "{error}"
        );
        let error = error_of(&format!("{}versions:\n  kafka: 3.9.0\n", minimal()));
        assert!(error.contains("versions.kafka"), "{error}");
        let error = error_of("registry:\n  url: https://zot\ncarnet: \"1\"\n");
        assert!(error.contains("registry.url"), "{error}");
    }

    #[test]
    fn nginx_mode_warns_that_it_is_retired() {
        let config =
            Config::parse(&format!("{}ingress:\n  mode: nginx\n", minimal()), "x").unwrap();
        assert!(config.warnings().iter().any(|w| w.contains("retired")));
        assert!(Config::parse(minimal(), "x").unwrap().warnings().is_empty());
    }
}
