//! The operators bfctl installs before the pipeline: Strimzi (Kafka),
//! KubeVirt (the Valkey VM) and, in `nginx` ingress mode, ingress-nginx.
//!
//! Their manifests are release files downloaded from pinned upstream URLs,
//! checked against a pinned sha256 and cached under the cache directory by
//! digest; `--offline` reads the cache only. A file without a pin is never
//! applied: bfctl prints the digest it downloaded so that a person can check
//! it against the release and pin it (`operators.sha256` in `bfctl.yaml`).
//!
//! The Strimzi bundle names namespace `myproject` in its RoleBindings; it is
//! rewritten to the pipeline's namespace, which the operator then watches.

use std::path::PathBuf;

use anyhow::{Context, bail};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::plan::config::{Config, IngressMode};
use kube_apply::Step;

/// The namespace Strimzi's install files are written for.
const STRIMZI_BUNDLE_NAMESPACE: &str = "myproject";

/// One release file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseFile {
    /// File name: the cache key's suffix and the name under a mirror.
    pub file: String,
    pub url: String,
    /// Pinned digest; `None` when this bfctl has none.
    pub sha256: Option<String>,
}

/// Digests pinned in this build, by file name. Files missing here must be
/// pinned in `bfctl.yaml` (`operators.sha256`) after checking them by hand.
///
/// No upstream file could be downloaded where this build was made. The
/// Strimzi digest is the one two unrelated public repositories pin for the
/// same release file; KubeVirt v1.9.0's two files and ingress-nginx
/// controller-v1.15.1's `deploy/static/provider/cloud/deploy.yaml` (16,384
/// bytes) are pinned as public repositories pin them or as computed from
/// the tagged files (issue 12). If a pin is wrong, bfctl refuses the file and
/// prints the digest it got: it never applies an unverified file.
const PINNED: &[(&str, &str)] = &[
    (
        "strimzi-cluster-operator-1.2.0.yaml",
        "a0b1ae3e375a7da0674eb3894df8aa955bc50abe8190bc9344e30b83bbee4775",
    ),
    (
        "kubevirt-operator.yaml",
        "f11307caafc3c23ffedf9887d8beb5a4419e2694da242fa68f63d1ec820de2e0",
    ),
    (
        "kubevirt-cr.yaml",
        "43106136dbce3312bdbfdeae612aacafc6c12da518d233f90645b4685d84a2af",
    ),
    (
        "ingress-nginx-deploy.yaml",
        "502fddca66b09c20dd48b6d0a792a9671cd663a3a0d2a8bda5ae990d13b6c5b2",
    ),
];

/// The versions the pins above are for: a pin is used only for its version
/// (another version's file of the same name needs its own pin in bfctl.yaml).
const PINNED_VERSIONS: &[(&str, &str)] = &[
    ("kubevirt-operator.yaml", "v1.9.0"),
    ("kubevirt-cr.yaml", "v1.9.0"),
    ("ingress-nginx-deploy.yaml", "controller-v1.15.1"),
];

fn release_file(config: &Config, file: &str, url: String) -> ReleaseFile {
    let configured = |file: &str| {
        if file.starts_with("kubevirt-") {
            config.versions.kubevirt.as_str()
        } else {
            config.versions.ingress_nginx.as_str()
        }
    };
    let version_matches = |file: &str| {
        PINNED_VERSIONS
            .iter()
            .filter(|(name, _)| *name == file)
            .all(|(_, version)| *version == configured(file))
    };
    let sha256 = config
        .operators
        .sha256
        .get(file)
        .cloned()
        .or_else(|| {
            PINNED
                .iter()
                .find(|(name, _)| *name == file && version_matches(name))
                .map(|(_, digest)| digest.to_string())
        })
        .map(|digest| digest.to_ascii_lowercase());
    let url = if config.operators.mirror.is_empty() {
        url
    } else {
        format!("{}/{file}", config.operators.mirror.trim_end_matches('/'))
    };
    ReleaseFile {
        file: file.to_string(),
        url,
        sha256,
    }
}

/// The Strimzi cluster operator bundle.
pub fn strimzi_files(config: &Config) -> Vec<ReleaseFile> {
    let version = &config.versions.strimzi;
    let file = format!("strimzi-cluster-operator-{version}.yaml");
    let url = format!(
        "https://github.com/strimzi/strimzi-kafka-operator/releases/download/{version}/{file}"
    );
    vec![release_file(config, &file, url)]
}

/// KubeVirt's operator, then its CR.
pub fn kubevirt_files(config: &Config) -> (ReleaseFile, ReleaseFile) {
    let version = &config.versions.kubevirt;
    let url = |file: &str| {
        format!("https://github.com/kubevirt/kubevirt/releases/download/{version}/{file}")
    };
    (
        release_file(
            config,
            "kubevirt-operator.yaml",
            url("kubevirt-operator.yaml"),
        ),
        release_file(config, "kubevirt-cr.yaml", url("kubevirt-cr.yaml")),
    )
}

/// ingress-nginx's final release, for clusters without a Gateway controller.
pub fn ingress_nginx_files(config: &Config) -> Vec<ReleaseFile> {
    let version = &config.versions.ingress_nginx;
    let file = "ingress-nginx-deploy.yaml";
    let url = format!(
        "https://raw.githubusercontent.com/kubernetes/ingress-nginx/{version}/deploy/static/provider/cloud/deploy.yaml"
    );
    vec![release_file(config, file, url)]
}

/// Downloads release files into a cache, verifying digests.
pub struct Fetcher {
    pub cache_dir: PathBuf,
    pub offline: bool,
    client: reqwest::Client,
}

impl Fetcher {
    pub fn new(cache_dir: PathBuf, offline: bool) -> anyhow::Result<Fetcher> {
        crate::ensure_tls_provider();
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(120))
            .build()
            .context("building the HTTP client")?;
        Ok(Fetcher {
            cache_dir,
            offline,
            client,
        })
    }

    /// The default cache: `$XDG_CACHE_HOME/bfctl/operators` or
    /// `~/.cache/bfctl/operators`.
    pub fn default_cache_dir() -> PathBuf {
        std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
            .unwrap_or_else(|| PathBuf::from(".bfctl/cache"))
            .join("bfctl/operators")
    }

    fn cache_path(&self, file: &ReleaseFile, digest: &str) -> PathBuf {
        self.cache_dir.join(format!("{digest}-{}", file.file))
    }

    /// The file's bytes, from the cache when a copy with the pinned digest
    /// is there, else downloaded (unless offline) and cached.
    pub async fn fetch(&self, file: &ReleaseFile) -> anyhow::Result<Vec<u8>> {
        if let Some(pin) = &file.sha256 {
            let cached = self.cache_path(file, pin);
            // A damaged cache entry fails the check and is replaced below.
            if let Ok(bytes) = std::fs::read(&cached)
                && sha256_hex(&bytes) == *pin
            {
                return Ok(bytes);
            }
        }
        if self.offline {
            bail!(
                "{} is not in the cache ({}) and --offline forbids downloading it; run once without --offline",
                file.file,
                self.cache_dir.display()
            );
        }
        let response = self
            .client
            .get(&file.url)
            .send()
            .await
            .with_context(|| format!("downloading {}", file.url))?;
        if !response.status().is_success() {
            bail!("downloading {}: HTTP {}", file.url, response.status());
        }
        let bytes = response
            .bytes()
            .await
            .with_context(|| format!("downloading {}", file.url))?
            .to_vec();
        let digest = sha256_hex(&bytes);
        match &file.sha256 {
            None => bail!(
                "{} has no pinned sha256, so bfctl will not apply it. The file at {} has sha256 {digest}; check it against the upstream release, then pin it in bfctl.yaml under operators.sha256.\"{}\"",
                file.file,
                file.url,
                file.file
            ),
            Some(pin) if *pin != digest => bail!(
                "{} from {} has sha256 {digest}, but {pin} is pinned: refusing to apply it",
                file.file,
                file.url
            ),
            Some(_) => {}
        }
        std::fs::create_dir_all(&self.cache_dir)
            .with_context(|| format!("creating {}", self.cache_dir.display()))?;
        let path = self.cache_path(file, &digest);
        crate::files::write_atomically(&path, &bytes)
            .with_context(|| format!("caching {}", path.display()))?;
        Ok(bytes)
    }

    /// Fetches and parses a multi-document YAML file into objects.
    pub async fn objects(&self, file: &ReleaseFile) -> anyhow::Result<Vec<Value>> {
        let bytes = self.fetch(file).await?;
        let text =
            String::from_utf8(bytes).with_context(|| format!("{} is not UTF-8", file.file))?;
        parse_documents(&text).with_context(|| format!("parsing {}", file.file))
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// The non-empty documents of a multi-document YAML text, as JSON values.
pub fn parse_documents(text: &str) -> anyhow::Result<Vec<Value>> {
    let mut objects = Vec::new();
    for json in crate::yaml::parse_documents(text, "the operator bundle")? {
        // `kind: List` documents carry their objects in `items`.
        if json.get("kind").and_then(Value::as_str) == Some("List") {
            objects.extend(json["items"].as_array().cloned().unwrap_or_default());
        } else {
            objects.push(json);
        }
    }
    Ok(objects)
}

/// Rewrites the Strimzi bundle's `myproject` namespace references, and
/// names its ClusterRoleBindings after the namespace: each install's
/// operator gets bindings of its own, so a second install never re-points
/// the first one's (the ClusterRoles they name are shared as they are).
pub fn rewrite_strimzi_namespace(objects: &mut [Value], namespace: &str) {
    for object in objects {
        if object.get("kind").and_then(Value::as_str) == Some("ClusterRoleBinding")
            && let Some(name) = object.pointer("/metadata/name").and_then(Value::as_str)
        {
            object["metadata"]["name"] = format!("{name}-{namespace}").into();
        }
        if object
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            == Some(STRIMZI_BUNDLE_NAMESPACE)
        {
            object["metadata"]["namespace"] = namespace.into();
        }
        if let Some(subjects) = object.get_mut("subjects").and_then(Value::as_array_mut) {
            for subject in subjects {
                if subject.get("namespace").and_then(Value::as_str)
                    == Some(STRIMZI_BUNDLE_NAMESPACE)
                {
                    subject["namespace"] = namespace.into();
                }
            }
        }
    }
}

/// Sets `useEmulation` on the KubeVirt CR and, when the VM has a node
/// pool of its own (tainted), lets KubeVirt's node agent (virt-handler)
/// run there too: without it no VM could start on those nodes.
pub fn configure_kubevirt_cr(objects: &mut [Value], use_emulation: bool, virt_pool: bool) {
    for object in objects {
        if object.get("kind").and_then(Value::as_str) == Some("KubeVirt") {
            object["spec"]["configuration"]["developerConfiguration"]["useEmulation"] =
                use_emulation.into();
            if virt_pool {
                object["spec"]["workloads"]["nodePlacement"]["tolerations"] =
                    serde_json::json!([super::gke::virt_pool_toleration()]);
            }
        }
    }
}

/// Step names of the operators; components name them through
/// `operator:` in components.yaml.
pub const STRIMZI_STEP: &str = "operator-strimzi";
pub const KUBEVIRT_OPERATOR_STEP: &str = "operator-kubevirt";
pub const KUBEVIRT_STEP: &str = "kubevirt";
pub const INGRESS_NGINX_STEP: &str = "operator-ingress-nginx";

/// Whether a step (an object's `bfctl.io/component` label) installs an
/// operator.
pub fn is_operator_step(step: &str) -> bool {
    matches!(
        step,
        STRIMZI_STEP | KUBEVIRT_OPERATOR_STEP | KUBEVIRT_STEP | INGRESS_NGINX_STEP
    )
}

/// The step a component with `operator: <name>` waits for, if any.
pub fn step_for(operator: &str, config: &Config) -> Option<&'static str> {
    match operator {
        "strimzi" => Some(STRIMZI_STEP),
        "kubevirt" => Some(KUBEVIRT_STEP),
        "ingress" => (config.ingress.mode == IngressMode::Nginx).then_some(INGRESS_NGINX_STEP),
        _ => None,
    }
}

/// Fetches the operator bundles and turns them into steps.
pub async fn steps(config: &Config, fetcher: &Fetcher) -> anyhow::Result<Vec<Step>> {
    let namespace = &config.namespace.0;
    let mut steps = Vec::new();

    let mut strimzi = Vec::new();
    for file in strimzi_files(config) {
        strimzi.extend(fetcher.objects(&file).await?);
    }
    rewrite_strimzi_namespace(&mut strimzi, namespace);
    let install = config.install_name();
    steps.push(labelled(
        STRIMZI_STEP,
        vec!["namespace".into()],
        strimzi,
        install,
    )?);

    let (operator_file, cr_file) = kubevirt_files(config);
    let operator = fetcher.objects(&operator_file).await?;
    steps.push(labelled(
        KUBEVIRT_OPERATOR_STEP,
        Vec::new(),
        operator,
        install,
    )?);
    let mut cr = fetcher.objects(&cr_file).await?;
    configure_kubevirt_cr(&mut cr, config.use_emulation(), config.has_virt_pool());
    steps.push(labelled(
        KUBEVIRT_STEP,
        vec![KUBEVIRT_OPERATOR_STEP.into()],
        cr,
        install,
    )?);

    if config.ingress.mode == IngressMode::Nginx {
        let mut nginx = Vec::new();
        for file in ingress_nginx_files(config) {
            nginx.extend(fetcher.objects(&file).await?);
        }
        steps.push(labelled(INGRESS_NGINX_STEP, Vec::new(), nginx, install)?);
    }
    Ok(steps)
}

fn labelled(
    name: &str,
    depends_on: Vec<String>,
    mut objects: Vec<Value>,
    install: &str,
) -> anyhow::Result<Step> {
    for object in &mut objects {
        crate::plan::render::add_inventory_labels(object, name, install)?;
    }
    Ok(Step {
        name: name.to_string(),
        depends_on,
        objects,
    })
}

/// What teardown needs to know of the operators bfctl installs: which
/// steps install each one, and what each serves to the whole cluster
/// (KubeVirt runs every VM, ingress-nginx every Ingress of its class, so
/// neither goes while others use them; Strimzi's operator watches only its
/// own install's namespace), and which custom resources go before the one
/// whose operator removes their finalizers (topics before their Kafka).
pub fn teardown_options(
    install: &str,
    keep_data: bool,
    timeout: std::time::Duration,
    remove_finalizers: bool,
) -> kube_apply::teardown::TeardownOptions {
    use kube_apply::teardown::{Operator, Served, TeardownOptions};
    let served = |api_version: &str, kind: &str, only_where: Option<(&str, &str)>| Served {
        api_version: api_version.into(),
        kind: kind.into(),
        only_where: only_where.map(|(pointer, value)| (pointer.into(), value.into())),
    };
    TeardownOptions {
        install: install.to_string(),
        keep_data,
        timeout,
        poll: std::time::Duration::from_secs(2),
        remove_finalizers,
        operators: vec![
            Operator {
                components: vec![STRIMZI_STEP.into()],
                serves: Vec::new(),
            },
            Operator {
                components: vec![KUBEVIRT_OPERATOR_STEP.into(), KUBEVIRT_STEP.into()],
                serves: vec![
                    served("kubevirt.io/v1", "VirtualMachine", None),
                    served("kubevirt.io/v1", "VirtualMachineInstance", None),
                ],
            },
            Operator {
                components: vec![INGRESS_NGINX_STEP.into()],
                serves: vec![served(
                    "networking.k8s.io/v1",
                    "Ingress",
                    Some(("/spec/ingressClassName", "nginx")),
                )],
            },
        ],
        dependent_kinds: [
            "KafkaTopic",
            "KafkaUser",
            "KafkaConnector",
            "KafkaRebalance",
        ]
        .into_iter()
        .map(|kind| ("kafka.strimzi.io".to_string(), kind.to_string()))
        .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strimzi_namespace_references_are_rewritten() {
        let mut objects = vec![
            json!({
                "kind": "RoleBinding",
                "metadata": {"name": "strimzi-cluster-operator", "namespace": "myproject"},
                "subjects": [{"kind": "ServiceAccount", "name": "strimzi-cluster-operator", "namespace": "myproject"}]
            }),
            json!({
                "kind": "ClusterRoleBinding",
                "metadata": {"name": "strimzi-cluster-operator"},
                "subjects": [{"kind": "ServiceAccount", "name": "strimzi-cluster-operator", "namespace": "myproject"}]
            }),
        ];
        rewrite_strimzi_namespace(&mut objects, "blackfriday");
        assert_eq!(objects[0]["metadata"]["namespace"], "blackfriday");
        assert_eq!(objects[0]["subjects"][0]["namespace"], "blackfriday");
        // A binding of its own per install: another namespace never re-points it.
        assert_eq!(
            objects[1]["metadata"]["name"],
            "strimzi-cluster-operator-blackfriday"
        );
        assert_eq!(objects[1]["subjects"][0]["namespace"], "blackfriday");
    }

    #[test]
    fn use_emulation_is_set_on_the_kubevirt_cr() {
        let mut objects = vec![json!({"kind": "KubeVirt", "spec": {}})];
        configure_kubevirt_cr(&mut objects, true, false);
        assert_eq!(
            objects[0]["spec"]["configuration"]["developerConfiguration"]["useEmulation"],
            true
        );
        assert!(objects[0]["spec"].get("workloads").is_none());
    }

    #[test]
    fn with_a_virt_pool_virt_handler_tolerates_its_taint() {
        let mut objects = vec![json!({"kind": "KubeVirt", "spec": {}})];
        configure_kubevirt_cr(&mut objects, false, true);
        assert_eq!(
            objects[0]["spec"]["workloads"]["nodePlacement"]["tolerations"][0]["key"],
            crate::plan::gke::VIRT_POOL_LABEL
        );
    }
}
