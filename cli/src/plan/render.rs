//! Rendering `manifests-templates/` into Kubernetes objects.
//!
//! The templates and the component graph (`components.yaml`) are compiled
//! into the binary. Rendering fills them from the configuration and the image
//! references, parses every document, and labels every object with the
//! inventory labels the apply engine uses to find (and prune) what it owns.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use blackfriday_proto::Category;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::plan::config::Config;

pub use super::components::{ComponentSpec, components, topological_order};

/// Label every bfctl object carries: which component rendered it.
pub use crate::plan::identity::{COMPONENT_LABEL, INSTALL_LABEL, MANAGED_BY_LABEL, PART_OF_LABEL};

/// The Strimzi `Kafka` resource's name; its bootstrap Service follows from it.
pub const KAFKA_CLUSTER: &str = "ventas-kafka";
/// Grafana 12.3.0, pinned by the digest of its multi-platform index (as
/// published on Docker Hub; no image can be pulled here to read it again).
pub const GRAFANA_IMAGE: &str = "docker.io/grafana/grafana:12.3.0@sha256:70d9599b186ce287be0d2c5ba9a78acb2e86c1a68c9c41449454d0fc3eeb84e8";
/// The Redis data source plugin, pinned: the version whose `pkg/` source
/// the panels' frames are read from (crate::dashboard::frame).
pub const REDIS_DATASOURCE_PLUGIN: &str = "redis-datasource@2.2.0";

/// The templates, by file name (what `components.yaml` names).
pub(crate) const TEMPLATES: &[(&str, &str)] = &[
    (
        "namespace.yaml",
        include_str!("../../../manifests-templates/namespace.yaml"),
    ),
    (
        "kafka.yaml",
        include_str!("../../../manifests-templates/kafka.yaml"),
    ),
    (
        "valkey.yaml",
        include_str!("../../../manifests-templates/valkey.yaml"),
    ),
    (
        "network-policies.yaml",
        include_str!("../../../manifests-templates/network-policies.yaml"),
    ),
    (
        "producer.yaml",
        include_str!("../../../manifests-templates/producer.yaml"),
    ),
    (
        "consumer.yaml",
        include_str!("../../../manifests-templates/consumer.yaml"),
    ),
    (
        "gateway.yaml",
        include_str!("../../../manifests-templates/gateway.yaml"),
    ),
    (
        "ingress.yaml",
        include_str!("../../../manifests-templates/ingress.yaml"),
    ),
    (
        "grafana.yaml",
        include_str!("../../../manifests-templates/grafana.yaml"),
    ),
];

/// The image each workload runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageRefs {
    pub gateway: String,
    pub producer: String,
    pub consumer: String,
    pub valkey_disk: String,
    pub grafana: String,
}

impl ImageRefs {
    /// Tags under the configured registry, for rendering before anything was
    /// built. [`crate::build::image_refs`] replaces them with the digests
    /// that were pushed.
    pub fn unbuilt(config: &Config) -> ImageRefs {
        let base = config.registry.pull_base();
        ImageRefs {
            gateway: format!("{base}/gateway:latest"),
            producer: format!("{base}/producer:latest"),
            consumer: format!("{base}/consumer:latest"),
            valkey_disk: format!("{base}/valkey-disk:latest"),
            grafana: GRAFANA_IMAGE.to_string(),
        }
    }
}

/// A component with its rendered objects.
#[derive(Debug, Clone)]
pub struct RenderedComponent {
    pub spec: ComponentSpec,
    pub objects: Vec<Value>,
}

impl RenderedComponent {
    /// The objects as JSON, the form the API server takes.
    pub fn json_objects(&self) -> anyhow::Result<Vec<Value>> {
        Ok(self.objects.clone())
    }
}

fn tera() -> anyhow::Result<tera::Tera> {
    let mut tera = tera::Tera::default();
    tera.add_raw_templates(TEMPLATES.iter().copied())
        .context("parsing manifests-templates")?;
    tera.autoescape_on(vec![]);
    Ok(tera)
}

fn context(config: &Config, images: &ImageRefs) -> anyhow::Result<tera::Context> {
    let mut context = tera::Context::new();
    context.insert("config", config);
    context.insert("namespace", &config.namespace.0);
    context.insert("images", images);
    context.insert("grafana_plugins", REDIS_DATASOURCE_PLUGIN);
    context.insert("kafka_cluster", KAFKA_CLUSTER);
    context.insert(
        "kafka_bootstrap",
        &format!(
            "{KAFKA_CLUSTER}-kafka-bootstrap.{}.svc.cluster.local:9092",
            config.namespace.0
        ),
    );
    let replication = config.kafka.replication.0;
    context.insert("min_insync_replicas", &if replication >= 3 { 2 } else { 1 });
    context.insert(
        "valkey_cloud_init_secret",
        &format!("{}-cloud-init", config.valkey.password_secret.0),
    );
    let category = Category::for_carnet(&config.carnet.0).context("carnet must end in a digit")?;
    context.insert("carnet_category", category.name());
    context.insert("virt_pool", &config.has_virt_pool());
    context.insert(
        "image_pull_secret",
        if config.registry.kind == super::registry::RegistryKind::Zot {
            super::registry::PULL_SECRET
        } else {
            ""
        },
    );
    context.insert("virt_pool_label", super::gke::VIRT_POOL_LABEL);
    context.insert("virt_pool_value", super::gke::VIRT_POOL_VALUE);
    Ok(context)
}

/// Adds the inventory labels to an object given as JSON (operator bundles,
/// generated Secrets).
pub fn add_inventory_labels(
    object: &mut serde_json::Value,
    component: &str,
    install: &str,
) -> anyhow::Result<()> {
    let metadata = object
        .get_mut("metadata")
        .and_then(serde_json::Value::as_object_mut)
        .context("object without metadata")?;
    let labels = metadata
        .entry("labels")
        .or_insert_with(|| serde_json::Value::Object(Default::default()));
    if labels.is_null() {
        *labels = serde_json::Value::Object(Default::default());
    }
    let labels = labels
        .as_object_mut()
        .context("metadata.labels is not a map")?;
    labels.insert(PART_OF_LABEL.into(), "blackfriday".into());
    labels.insert(MANAGED_BY_LABEL.into(), "bfctl".into());
    labels.insert(COMPONENT_LABEL.into(), component.into());
    labels.insert(INSTALL_LABEL.into(), install.into());
    Ok(())
}

/// Renders every component.
pub fn render(config: &Config, images: &ImageRefs) -> anyhow::Result<Vec<RenderedComponent>> {
    let tera = tera()?;
    let mut context = context(config, images)?;
    // The dashboard is made from the panel definitions the local page
    // shares (crate::dashboard), not from a template.
    let category = Category::for_carnet(&config.carnet.0).context("carnet must end in a digit")?;
    let dashboard = crate::dashboard::grafana_dashboard(&config.carnet.0, category);
    let dashboard =
        serde_json::to_string_pretty(&dashboard).context("writing the Grafana dashboard")?;
    context.insert("dashboard_json", &dashboard);

    let mut rendered = Vec::new();
    for spec in components()? {
        let mut objects = Vec::new();
        for template in &spec.templates {
            let text = tera
                .render(template, &context)
                .with_context(|| format!("rendering {template}"))?;
            let documents = crate::yaml::parse_documents(&text, template)
                .with_context(|| format!("{template} is not valid YAML once rendered"))?;
            for (index, mut object) in documents.into_iter().enumerate() {
                add_inventory_labels(&mut object, &spec.name, config.install_name())
                    .with_context(|| format!("{template}: document {}", index + 1))?;
                objects.push(object);
            }
        }
        rendered.push(RenderedComponent { spec, objects });
    }
    Ok(rendered)
}

/// Writes one multi-document file per component, numbered in apply order,
/// into `dir` (created if missing). Returns the files written.
pub fn write_to_dir(
    components: &[RenderedComponent],
    dir: &Path,
) -> anyhow::Result<Vec<std::path::PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let order = topological_order(
        &components
            .iter()
            .map(|c| c.spec.clone())
            .collect::<Vec<_>>(),
    )?;
    let by_name: BTreeMap<&str, &RenderedComponent> = components
        .iter()
        .map(|c| (c.spec.name.as_str(), c))
        .collect();
    let mut written = Vec::new();
    for (index, name) in order.iter().enumerate() {
        let component = by_name[name.as_str()];
        let mut text = String::new();
        for object in &component.objects {
            text.push_str("---\n");
            text.push_str(&crate::yaml::to_string(object)?);
        }
        let path = dir.join(format!("{:02}-{name}.yaml", index + 1));
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}
