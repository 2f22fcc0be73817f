//! `bfctl registry create | status | delete`: the image registry bfctl
//! provides, so that a new user needs none of their own.
//!
//! For `kind: zot`, in the order `create` makes them (each found or made,
//! so `create` can run again at any point):
//!
//! 1. two reserved addresses: an external one (bfctl pushes to it) and an
//!    internal one (the cluster's nodes pull from it, inside the VPC);
//! 2. a CA and a server certificate for both addresses (and the DNS name),
//!    two accounts and their htpasswd file ([`pki`], [`accounts`]), kept in
//!    `.bfctl/registry/` ([`store`]) and in Secret Manager, where the VM
//!    and the nodes read them with the project's default compute service
//!    account (granted `roles/secretmanager.secretAccessor` on them);
//! 3. a data disk, two firewall rules (the listed addresses or the caller's,
//!    and the nodes of bfctl's clusters by their network tag, on the
//!    registry port only), and the VM, Container-Optimized OS running Zot
//!    ([`zot`]);
//! 4. the cluster's trust ([`trust`]): GKE's containerd configuration names
//!    the CA's secret for the registry's internal address (when a `gke:`
//!    cluster bfctl made exists);
//! 5. a wait until `/v2/` answers over TLS to the push account, and refuses
//!    an anonymous caller.
//!
//! For `kind: artifact-registry`, [`artifact`]: a Docker repository, pushed
//! to with an access token, pulled from with the nodes' service account.
//!
//! This module decides and reports; the command layer prints.

pub mod accounts;
pub mod artifact;
pub mod cloud;
pub mod pki;
pub mod store;
pub mod trust;
pub mod zot;

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;
use serde_json::{Value, json};

use crate::google::api::{COMPUTE, GoogleApi, SCOPE, SECRET_MANAGER};
use crate::plan::config::Config;
use crate::plan::registry::{RegistryKind, Zot};
use cloud::{MANAGED_BY, get, get_or_insert};
use store::{Recorded, Store};
pub use trust::{cluster_trusts, containerd_trust, recorded_trust};
use trust::{gke_cluster, trust_on_cluster, untrust_on_cluster};

pub use crate::plan::gke::NODE_TAG;

/// Container-Optimized OS, the stable family.
pub const COS_IMAGE: &str = "projects/cos-cloud/global/images/family/cos-stable";

/// How long one Compute operation may take.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(10 * 60);

/// Where the registry is and who may reach it: bfctl.yaml's `registry.zot`
/// with the defaults filled in.
#[derive(Debug, Clone)]
pub struct ZotPlan {
    pub project: String,
    pub zone: String,
    pub region: String,
    pub name: String,
    pub machine_type: String,
    pub data_disk_gb: i64,
    pub port: i64,
    pub dns_name: String,
    pub network: String,
    pub allowed_sources: Vec<String>,
    pub repository: String,
}

impl ZotPlan {
    pub fn of(config: &Config) -> anyhow::Result<ZotPlan> {
        if config.registry.kind != RegistryKind::Zot {
            anyhow::bail!(
                "registry.kind is not zot: bfctl provides a registry only with kind zot (or artifact-registry)"
            );
        }
        let zot: &Zot = config
            .registry
            .zot
            .as_ref()
            .context("registry.zot: missing")?;
        let project = zot
            .project
            .as_ref()
            .map(|p| p.0.clone())
            .or_else(|| config.gke.as_ref().map(|g| g.project.0.clone()))
            .context("registry.zot.project: needed when there is no gke: section")?;
        let zone = zot
            .zone
            .as_ref()
            .map(|z| z.0.clone())
            .or_else(|| {
                config
                    .gke
                    .as_ref()
                    .filter(|g| g.location.is_zone())
                    .map(|g| g.location.0.clone())
            })
            .context("registry.zot.zone: needed")?;
        Ok(ZotPlan {
            region: Zot::region(&zone).to_string(),
            project,
            zone,
            name: zot.name.0.clone(),
            machine_type: zot.machine_type.0.clone(),
            data_disk_gb: zot.data_disk_gb.0,
            port: zot.port.0,
            dns_name: zot.dns_name.clone(),
            network: zot.network.0.clone(),
            allowed_sources: zot.allowed_sources.clone(),
            repository: zot.repository.0.clone(),
        })
    }

    fn address_path(&self, name: &str) -> String {
        format!(
            "projects/{}/regions/{}/addresses/{name}",
            self.project, self.region
        )
    }
    fn internal_name(&self) -> String {
        format!("{}-internal", self.name)
    }
    fn disk_name(&self) -> String {
        format!("{}-data", self.name)
    }
    fn clients_rule(&self) -> String {
        format!("{}-clients", self.name)
    }
    fn nodes_rule(&self) -> String {
        format!("{}-nodes", self.name)
    }
    fn zone_path(&self, collection: &str, name: &str) -> String {
        format!(
            "projects/{}/zones/{}/{collection}/{name}",
            self.project, self.zone
        )
    }
    fn firewall_path(&self, name: &str) -> String {
        format!("projects/{}/global/firewalls/{name}", self.project)
    }
}

/// What `registry create` did and where the registry is.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Created {
    pub url: String,
    /// Where the cluster pulls from.
    pub pull_host: String,
    pub address: String,
    pub internal_address: String,
    /// Each resource with `created`, `kept` (it was there) or `updated`.
    pub resources: Vec<(String, String)>,
    pub certificate: pki::CertificateFacts,
    /// Whether the cluster's nodes were told to trust the CA now.
    pub cluster_trust: String,
    /// `/v2/` with the push account, and without any.
    pub answers: String,
}

/// The registry's service account: the project's default compute one.
async fn default_service_account(compute: &GoogleApi) -> anyhow::Result<String> {
    let project = compute
        .call(
            reqwest::Method::GET,
            &format!("projects/{}", compute.project()),
            &[],
            None,
        )
        .await?;
    project["defaultServiceAccount"]
        .as_str()
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .context("the project has no default compute service account (was the Compute Engine API just enabled? wait a minute and run this again)")
}

/// The address bfctl calls from, as a /32, for the firewall when
/// `allowedSources` is empty. `BFCTL_PUBLIC_ADDRESS_URL` names the service
/// that tells it (default: checkip.amazonaws.com).
async fn caller_address() -> anyhow::Result<String> {
    let url = std::env::var("BFCTL_PUBLIC_ADDRESS_URL")
        .unwrap_or_else(|_| "https://checkip.amazonaws.com".to_string());
    let text = reqwest::Client::new()
        .get(&url)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .with_context(|| format!("asking {url} for the address bfctl calls from (set registry.zot.allowedSources to skip this)"))?
        .text()
        .await?;
    let address: std::net::Ipv4Addr = text.trim().parse().with_context(|| {
        format!("{url} answered {text:?}, not an IPv4 address (set registry.zot.allowedSources)")
    })?;
    Ok(format!("{address}/32"))
}

/// `bfctl registry create` for kind zot. `seen` hears each step.
pub async fn create_zot(
    config: &Config,
    state_dir: &Path,
    rotate_certificates: bool,
    wait: Duration,
    seen: &mut dyn FnMut(&str),
) -> anyhow::Result<Created> {
    let plan = ZotPlan::of(config)?;
    let store = Store::under(state_dir);
    let compute = GoogleApi::connect(&plan.project, &COMPUTE).await?;
    let secrets = GoogleApi::connect(&plan.project, &SECRET_MANAGER).await?;
    let mut resources = Vec::new();
    let note = |resources: &mut Vec<(String, String)>, what: String, created: bool| {
        resources.push((what, if created { "created" } else { "kept" }.to_string()));
    };
    seen("checking that every name is free or bfctl's");
    let mut taken = Vec::new();
    for (what, path) in compute_resources(&plan) {
        if let Some(live) = get(&compute, &path).await?
            && !cloud::made_by_bfctl(&live)
        {
            taken.push(format!("{what} ({path})"));
        }
    }
    for name in zot::SecretNames::of(&plan.name).all() {
        let path = format!("projects/{}/secrets/{name}", plan.project);
        if let Some(live) = get(&secrets, &path).await?
            && !cloud::made_by_bfctl(&live)
        {
            taken.push(format!("secret {name} ({path})"));
        }
    }
    if !taken.is_empty() {
        anyhow::bail!(
            "{} exists and was not made by bfctl (no {}={} label): bfctl neither uses nor changes it, and made nothing; choose another registry.zot.name",
            taken.join(", "),
            MANAGED_BY.0,
            MANAGED_BY.1
        );
    }
    seen("the project's default compute service account");
    let account = default_service_account(&compute).await?;

    seen("reserving the addresses");
    let regional = format!(
        "projects/{}/regions/{}/addresses",
        plan.project, plan.region
    );
    let (external, created) = get_or_insert(
        &compute,
        &plan.address_path(&plan.name),
        &regional,
        &json!({
            "name": plan.name,
            "addressType": "EXTERNAL",
            "description": "bfctl: the registry's address",
            "labels": { MANAGED_BY.0: MANAGED_BY.1 }
        }),
        OPERATION_TIMEOUT,
    )
    .await?;
    note(&mut resources, format!("address {}", plan.name), created);
    let (internal, created) = get_or_insert(
        &compute,
        &plan.address_path(&plan.internal_name()),
        &regional,
        &json!({
            "name": plan.internal_name(),
            "addressType": "INTERNAL",
            "purpose": "GCE_ENDPOINT",
            "subnetwork": format!("projects/{}/regions/{}/subnetworks/{}", plan.project, plan.region, plan.network),
            "description": "bfctl: the registry's address inside the VPC, for the cluster's nodes",
            "labels": { MANAGED_BY.0: MANAGED_BY.1 }
        }),
        OPERATION_TIMEOUT,
    )
    .await?;
    note(
        &mut resources,
        format!("address {}", plan.internal_name()),
        created,
    );
    let ip = |address: &Value, which: &str| -> anyhow::Result<IpAddr> {
        address["address"]
            .as_str()
            .and_then(|a| a.parse().ok())
            .with_context(|| format!("the {which} address has no IP yet: {address}"))
    };
    let (external_ip, internal_ip) = (ip(&external, "external")?, ip(&internal, "internal")?);

    seen("certificates and accounts");
    let ca = match store.ca()? {
        Some(ca) => ca,
        None => {
            let ca = pki::new_ca(&plan.name)?;
            store.save_ca(&ca)?;
            ca
        }
    };
    let mut wanted_names = vec![external_ip.to_string(), internal_ip.to_string()];
    if !plan.dns_name.is_empty() {
        wanted_names.push(plan.dns_name.clone());
    }
    let server = match store.server()? {
        Some(server)
            if !rotate_certificates
                && pki::facts(&server.certificate_pem).is_ok_and(|facts| {
                    wanted_names.iter().all(|n| facts.names.contains(n)) && facts.days_left > 30
                }) =>
        {
            server
        }
        _ => {
            let server = pki::server_certificate(&ca, external_ip, internal_ip, &plan.dns_name)?;
            store.save_server(&server)?;
            resources.push(("server certificate".into(), "created".into()));
            server
        }
    };
    let accounts = match store.accounts()? {
        Some(accounts) => accounts,
        None => {
            let accounts = accounts::Accounts::generate();
            store.save_accounts(&accounts)?;
            accounts
        }
    };
    let htpasswd = std::fs::read(store.path("htpasswd"))
        .with_context(|| format!("reading {}", store.path("htpasswd").display()))?;

    seen("Secret Manager");
    let names = zot::SecretNames::of(&plan.name);
    let member = format!("serviceAccount:{account}");
    let mut rotated = false;
    for (name, data) in [
        (&names.ca, ca.certificate_pem.as_bytes()),
        (&names.certificate, server.certificate_pem.as_bytes()),
        (&names.key, server.key_pem.as_bytes()),
        (&names.htpasswd, htpasswd.as_slice()),
    ] {
        let written = cloud::put_secret(&secrets, name, data).await?;
        rotated |= written != cloud::SecretWrite::Unchanged && name != &names.ca;
        cloud::grant_secret_access(&secrets, name, &member).await?;
        let state = match written {
            cloud::SecretWrite::Created => "created",
            cloud::SecretWrite::Updated => "updated",
            cloud::SecretWrite::Unchanged => "kept",
        };
        resources.push((format!("secret {name}"), state.to_string()));
    }

    seen("the data disk");
    let (_, created) = get_or_insert(
        &compute,
        &plan.zone_path("disks", &plan.disk_name()),
        &format!("projects/{}/zones/{}/disks", plan.project, plan.zone),
        &json!({
            "name": plan.disk_name(),
            "sizeGb": plan.data_disk_gb.to_string(),
            "type": format!("projects/{}/zones/{}/diskTypes/pd-balanced", plan.project, plan.zone),
            "description": "bfctl: the registry's images",
            "labels": { MANAGED_BY.0: MANAGED_BY.1 }
        }),
        OPERATION_TIMEOUT,
    )
    .await?;
    note(
        &mut resources,
        format!("disk {}", plan.disk_name()),
        created,
    );

    seen("firewall rules");
    let sources = if plan.allowed_sources.is_empty() {
        vec![caller_address().await?]
    } else {
        plan.allowed_sources.clone()
    };
    let network = format!("projects/{}/global/networks/{}", plan.project, plan.network);
    let rule = |name: String, from: Value| {
        let mut body = json!({
            "name": name,
            "network": network,
            "direction": "INGRESS",
            "priority": 1000,
            "allowed": [{ "IPProtocol": "tcp", "ports": [plan.port.to_string()] }],
            "targetTags": [plan.name],
            "description": cloud::FIREWALL_DESCRIPTION,
        });
        if let (Some(body), Some(from)) = (body.as_object_mut(), from.as_object()) {
            body.extend(from.clone());
        }
        body
    };
    for (name, from) in [
        (plan.clients_rule(), json!({ "sourceRanges": sources })),
        (plan.nodes_rule(), json!({ "sourceTags": [NODE_TAG] })),
    ] {
        let body = rule(name.clone(), from);
        let path = plan.firewall_path(&name);
        let (live, created) = get_or_insert(
            &compute,
            &path,
            &format!("projects/{}/global/firewalls", plan.project),
            &body,
            OPERATION_TIMEOUT,
        )
        .await?;
        let mut state = if created { "created" } else { "kept" };
        if !created {
            let differs = ["sourceRanges", "sourceTags", "allowed"].iter().any(|key| {
                body.get(*key)
                    .is_some_and(|want| live.get(*key) != Some(want))
            });
            if differs {
                let operation = compute
                    .call(reqwest::Method::PATCH, &path, &[], Some(&body))
                    .await?;
                cloud::follow(&compute, &operation, OPERATION_TIMEOUT, |_| {}).await?;
                state = "updated";
            }
        }
        resources.push((format!("firewall rule {name}"), state.to_string()));
    }

    seen("the VM");
    let instance_path = plan.zone_path("instances", &plan.name);
    let user_data = zot::user_data(
        &plan.project,
        &names,
        plan.port,
        "/dev/disk/by-id/google-zot-data",
    );
    let (_, created) = get_or_insert(
        &compute,
        &instance_path,
        &format!("projects/{}/zones/{}/instances", plan.project, plan.zone),
        &json!({
            "name": plan.name,
            "description": "bfctl: Zot, the pipeline's image registry",
            "machineType": format!("zones/{}/machineTypes/{}", plan.zone, plan.machine_type),
            "labels": { MANAGED_BY.0: MANAGED_BY.1 },
            "tags": { "items": [plan.name] },
            "disks": [
                {
                    "boot": true,
                    "autoDelete": true,
                    "initializeParams": { "sourceImage": COS_IMAGE, "diskSizeGb": "10" }
                },
                {
                    "boot": false,
                    "autoDelete": false,
                    "deviceName": "zot-data",
                    "source": plan.zone_path("disks", &plan.disk_name())
                }
            ],
            "networkInterfaces": [{
                "network": network,
                "networkIP": internal_ip.to_string(),
                "accessConfigs": [{ "type": "ONE_TO_ONE_NAT", "name": "External NAT", "natIP": external_ip.to_string() }]
            }],
            "serviceAccounts": [{ "email": account, "scopes": [SCOPE] }],
            "metadata": { "items": [
                { "key": "user-data", "value": user_data },
                { "key": "google-logging-enabled", "value": "true" }
            ]},
            "shieldedInstanceConfig": { "enableSecureBoot": true, "enableVtpm": true, "enableIntegrityMonitoring": true }
        }),
        OPERATION_TIMEOUT,
    )
    .await?;
    note(&mut resources, format!("VM {}", plan.name), created);
    if rotated && !created {
        // The VM reads its secrets when Zot starts: a reset restarts it
        // with the new ones; the images are on the data disk.
        seen("restarting the VM for the new certificate");
        let operation = compute
            .call(
                reqwest::Method::POST,
                &format!("{instance_path}/reset"),
                &[],
                None,
            )
            .await?;
        cloud::follow(&compute, &operation, OPERATION_TIMEOUT, |_| {}).await?;
        resources.push((format!("VM {}", plan.name), "restarted".into()));
    }

    let host_name = if plan.dns_name.is_empty() {
        external_ip.to_string()
    } else {
        plan.dns_name.clone()
    };
    let host = format!("{host_name}:{}", plan.port);
    let pull_host = format!("{internal_ip}:{}", plan.port);
    let recorded = Recorded {
        kind: "zot".into(),
        project: plan.project.clone(),
        location: plan.zone.clone(),
        name: plan.name.clone(),
        address: external_ip.to_string(),
        host: host.clone(),
        url: format!("{host}/{}", plan.repository),
        pull_host: pull_host.clone(),
        pull_url: format!("{pull_host}/{}", plan.repository),
    };
    store.record(&recorded)?;

    seen("the cluster's trust");
    let cluster_trust = trust_on_cluster(config, &plan, &pull_host, &names.ca).await?;

    seen("waiting for the registry to answer over TLS");
    let answers = wait_until_serving(&store, &host, &accounts.push, wait).await?;
    Ok(Created {
        url: recorded.url,
        pull_host,
        address: external_ip.to_string(),
        internal_address: internal_ip.to_string(),
        resources,
        certificate: pki::facts(&server.certificate_pem)?,
        cluster_trust,
        answers,
    })
}

/// Waits until `https://host/v2/` answers 200 to the push account, and
/// checks that it answers 401 to an anonymous caller.
pub async fn wait_until_serving(
    store: &Store,
    host: &str,
    push: &accounts::Account,
    wait: Duration,
) -> anyhow::Result<String> {
    crate::ensure_tls_provider();
    let ca = std::fs::read(store.path("ca.pem"))
        .with_context(|| format!("reading {}", store.path("ca.pem").display()))?;
    let client = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).context("the CA certificate")?)
        .timeout(Duration::from_secs(10))
        .build()?;
    let url = format!("https://{host}/v2/");
    let started = std::time::Instant::now();
    loop {
        let last = match client
            .get(&url)
            .basic_auth(&push.username, Some(&push.password))
            .send()
            .await
        {
            Ok(response) if response.status().is_success() => break,
            Ok(response) => format!("HTTP {}", response.status()),
            Err(error) => error_chain(&error),
        };
        if started.elapsed() > wait {
            anyhow::bail!(
                "the registry at {url} did not answer the push account within {} s (last: {last}); the VM may still be booting: run `bfctl registry create` again, or `bfctl registry status`",
                wait.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let anonymous = client.get(&url).send().await?.status();
    if anonymous.is_success() {
        anyhow::bail!("the registry at {url} answers anonymous requests: it must not");
    }
    Ok(format!(
        "{url}: 200 to {}, {} to an anonymous caller",
        push.username,
        anonymous.as_u16()
    ))
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

/// How bfctl itself pushes to the registry it provides.
pub struct PushAccess {
    pub username: String,
    pub password: String,
    /// The CA to trust (zot).
    pub ca_files: Vec<std::path::PathBuf>,
}

/// The push account and the CA of the registry bfctl provides, from
/// `.bfctl/registry/`.
pub fn push_access(config: &Config, state_dir: &Path) -> anyhow::Result<PushAccess> {
    let store = Store::under(state_dir);
    match config.registry.kind {
        RegistryKind::Zot => {
            let accounts = store.accounts()?.with_context(|| {
                format!(
                    "no registry accounts in {}: run `bfctl registry create` first",
                    store.dir.display()
                )
            })?;
            Ok(PushAccess {
                username: accounts.push.username,
                password: accounts.push.password,
                ca_files: vec![store.path("ca.pem")],
            })
        }
        RegistryKind::ArtifactRegistry => Ok(PushAccess {
            username: artifact::TOKEN_USER.into(),
            password: artifact::push_token(config)?,
            ca_files: Vec::new(),
        }),
        RegistryKind::External => anyhow::bail!("registry.kind external: no provided credentials"),
    }
}

/// One resource of the registry as `status` and `delete` report it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceState {
    pub resource: String,
    /// `present`, `absent`, `not bfctl's`, `deleted`, `kept`.
    pub state: String,
    /// What it says of itself (a VM's status, an address, a size).
    pub detail: String,
}

/// What `registry status` shows.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    pub url: String,
    pub resources: Vec<ResourceState>,
    pub certificate: Option<pki::CertificateFacts>,
    /// `/v2/` with the push account and without.
    pub answers: String,
    /// Repositories and the bytes their tagged images hold.
    pub stored: String,
    pub cluster_trust: String,
    pub healthy: bool,
}

/// The Compute resources of a registry, in the order `delete` removes them.
fn compute_resources(plan: &ZotPlan) -> Vec<(String, String)> {
    vec![
        (
            format!("VM {}", plan.name),
            plan.zone_path("instances", &plan.name),
        ),
        (
            format!("firewall rule {}", plan.clients_rule()),
            plan.firewall_path(&plan.clients_rule()),
        ),
        (
            format!("firewall rule {}", plan.nodes_rule()),
            plan.firewall_path(&plan.nodes_rule()),
        ),
        (
            format!("address {}", plan.name),
            plan.address_path(&plan.name),
        ),
        (
            format!("address {}", plan.internal_name()),
            plan.address_path(&plan.internal_name()),
        ),
        (
            format!("disk {}", plan.disk_name()),
            plan.zone_path("disks", &plan.disk_name()),
        ),
    ]
}

fn describe(resource: &Value) -> String {
    let text = |key: &str| resource[key].as_str().unwrap_or_default().to_string();
    if let Some(size) = resource["sizeGb"].as_str() {
        return format!("{size} GB, {}", text("status"));
    }
    if resource["address"].is_string() {
        return format!("{} ({})", text("address"), text("status"));
    }
    if resource["sourceRanges"].is_array() || resource["sourceTags"].is_array() {
        let from: Vec<String> = resource["sourceRanges"]
            .as_array()
            .or_else(|| resource["sourceTags"].as_array())
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
        return format!("from {}", from.join(", "));
    }
    text("status")
}

/// `bfctl registry status` for kind zot.
pub async fn status_zot(config: &Config, state_dir: &Path) -> anyhow::Result<Status> {
    let plan = ZotPlan::of(config)?;
    let store = Store::under(state_dir);
    let compute = GoogleApi::connect(&plan.project, &COMPUTE).await?;
    let secrets = GoogleApi::connect(&plan.project, &SECRET_MANAGER).await?;
    let mut resources = Vec::new();
    let mut healthy = true;
    for (what, path) in compute_resources(&plan) {
        let live = get(&compute, &path).await?;
        healthy &= live.is_some();
        resources.push(match live {
            Some(live) => ResourceState {
                resource: what,
                state: if cloud::made_by_bfctl(&live) {
                    "present"
                } else {
                    "not bfctl's"
                }
                .into(),
                detail: describe(&live),
            },
            None => ResourceState {
                resource: what,
                state: "absent".into(),
                detail: String::new(),
            },
        });
    }
    let names = zot::SecretNames::of(&plan.name);
    for name in names.all() {
        let path = format!("projects/{}/secrets/{name}", plan.project);
        let live = get(&secrets, &path).await?;
        healthy &= live.is_some();
        resources.push(ResourceState {
            resource: format!("secret {name}"),
            state: if live.is_some() { "present" } else { "absent" }.into(),
            detail: String::new(),
        });
    }
    let recorded = store.recorded()?;
    let certificate = store
        .server()?
        .map(|server| pki::facts(&server.certificate_pem))
        .transpose()?;
    let (answers, stored) = match (&recorded, store.accounts()?) {
        (Some(recorded), Some(accounts)) => {
            match wait_until_serving(&store, &recorded.host, &accounts.push, Duration::ZERO).await {
                Ok(answers) => (
                    answers,
                    stored_images(&store, &recorded.host, &accounts.push)
                        .await
                        .unwrap_or_else(|error| format!("unknown: {error:#}")),
                ),
                Err(error) => {
                    healthy = false;
                    (format!("{error:#}"), String::new())
                }
            }
        }
        _ => {
            healthy = false;
            (
                "never created from here (no .bfctl/registry/)".into(),
                String::new(),
            )
        }
    };
    let cluster_trust = match (&config.gke, &recorded) {
        (Some(gke), Some(recorded)) => match gke_cluster(gke).await?.1 {
            Some(cluster) if cluster_trusts(&cluster, &recorded.pull_host) => {
                format!("cluster {} trusts {}", gke.cluster.0, recorded.pull_host)
            }
            Some(_) => {
                healthy = false;
                format!(
                    "cluster {} does not trust {}: run `bfctl registry create` again",
                    gke.cluster.0, recorded.pull_host
                )
            }
            None => format!("cluster {} does not exist", gke.cluster.0),
        },
        _ => "no gke: cluster to check".into(),
    };
    Ok(Status {
        url: recorded.map(|r| r.url).unwrap_or_default(),
        resources,
        certificate,
        answers,
        stored,
        cluster_trust,
        healthy,
    })
}

/// Repositories in the registry and the bytes their tagged images hold
/// (the distribution API: catalog, tags, manifests).
async fn stored_images(
    store: &Store,
    host: &str,
    push: &accounts::Account,
) -> anyhow::Result<String> {
    let ca = std::fs::read(store.path("ca.pem"))?;
    let client = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&ca)?)
        .timeout(Duration::from_secs(10))
        .build()?;
    let get_json = |path: String| {
        let request = client
            .get(format!("https://{host}/v2/{path}"))
            .basic_auth(&push.username, Some(&push.password))
            .header(
                "Accept",
                "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json",
            );
        async move {
            let value: Value = request.send().await?.error_for_status()?.json().await?;
            anyhow::Ok(value)
        }
    };
    let catalog = get_json("_catalog".into()).await?;
    let repositories: Vec<String> = catalog["repositories"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r.as_str().map(str::to_string))
        .collect();
    let mut bytes = 0u64;
    let mut images = 0usize;
    for repository in &repositories {
        let tags = get_json(format!("{repository}/tags/list")).await?;
        for tag in tags["tags"].as_array().into_iter().flatten() {
            let Some(tag) = tag.as_str() else { continue };
            let manifest = get_json(format!("{repository}/manifests/{tag}")).await?;
            images += 1;
            bytes += manifest["layers"]
                .as_array()
                .into_iter()
                .flatten()
                .chain(std::iter::once(&manifest["config"]))
                .filter_map(|d| d["size"].as_u64())
                .sum::<u64>();
        }
    }
    Ok(format!(
        "{} repositories, {images} tagged images, {:.1} MB",
        repositories.len(),
        bytes as f64 / 1e6
    ))
}

/// What `registry delete` did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Deleted {
    pub resources: Vec<ResourceState>,
    /// What is left, each with why.
    pub left: Vec<String>,
}

/// What `registry delete` would remove (for the question it asks first).
pub fn deletion_plan(config: &Config, keep_data: bool) -> anyhow::Result<Vec<String>> {
    let plan = ZotPlan::of(config)?;
    let mut list: Vec<String> = compute_resources(&plan)
        .into_iter()
        .map(|(what, _)| what)
        .filter(|what| !(keep_data && what.starts_with("disk ")))
        .collect();
    list.extend(
        zot::SecretNames::of(&plan.name)
            .all()
            .iter()
            .map(|name| format!("secret {name}")),
    );
    Ok(list)
}

/// `bfctl registry delete` for kind zot: removes what bfctl made (labelled
/// so), and keeps the data disk and the local accounts with `keep_data`.
pub async fn delete_zot(
    config: &Config,
    state_dir: &Path,
    keep_data: bool,
    seen: &mut dyn FnMut(&str),
) -> anyhow::Result<Deleted> {
    let plan = ZotPlan::of(config)?;
    let store = Store::under(state_dir);
    let compute = GoogleApi::connect(&plan.project, &COMPUTE).await?;
    let secrets = GoogleApi::connect(&plan.project, &SECRET_MANAGER).await?;
    let mut resources = Vec::new();
    let mut left = Vec::new();
    for (what, path) in compute_resources(&plan) {
        if keep_data && what.starts_with("disk ") {
            left.push(format!(
                "{what} (--keep-data: the images; `bfctl registry create` uses it again)"
            ));
            resources.push(ResourceState {
                resource: what,
                state: "kept".into(),
                detail: String::new(),
            });
            continue;
        }
        seen(&what);
        let state = match get(&compute, &path).await? {
            None => "absent",
            Some(live) if !cloud::made_by_bfctl(&live) => {
                left.push(format!("{what} (not made by bfctl)"));
                "not bfctl's"
            }
            Some(_) => {
                cloud::delete(&compute, &path, OPERATION_TIMEOUT).await?;
                "deleted"
            }
        };
        resources.push(ResourceState {
            resource: what,
            state: state.into(),
            detail: String::new(),
        });
    }
    for name in zot::SecretNames::of(&plan.name).all() {
        seen(&format!("secret {name}"));
        let state = match cloud::delete_secret(&secrets, name).await? {
            cloud::SecretDeletion::Deleted => "deleted",
            cloud::SecretDeletion::Absent => "absent",
            cloud::SecretDeletion::NotOurs => {
                left.push(format!("secret {name} (not made by bfctl)"));
                "not bfctl's"
            }
        };
        resources.push(ResourceState {
            resource: format!("secret {name}"),
            state: state.into(),
            detail: String::new(),
        });
    }
    if let Some(recorded) = store.recorded()? {
        seen("the cluster's trust");
        if let Some(state) = untrust_on_cluster(config, &recorded.pull_host).await? {
            resources.push(state);
        }
    }
    if keep_data {
        left.push(format!(
            "{} (--keep-data: the accounts and CA that go with the kept images)",
            store.dir.display()
        ));
    } else {
        store.remove()?;
    }
    Ok(Deleted { resources, left })
}

/// The image pull Secret for a registry bfctl provides (kind zot): the
/// pull account for the address the cluster pulls from. None for other
/// kinds. The password goes only into this Secret.
pub fn pull_secret(config: &Config, state_dir: &Path) -> anyhow::Result<Option<Value>> {
    use base64::Engine as _;
    if config.registry.kind != RegistryKind::Zot {
        return Ok(None);
    }
    let store = Store::under(state_dir);
    let (Some(recorded), Some(accounts)) = (store.recorded()?, store.accounts()?) else {
        anyhow::bail!(
            "registry.kind is zot, but {} holds no registry: run `bfctl registry create` first",
            store.dir.display()
        );
    };
    let host = if recorded.pull_host.is_empty() {
        recorded.host
    } else {
        recorded.pull_host
    };
    let encode = |text: &str| base64::engine::general_purpose::STANDARD.encode(text);
    let pull = &accounts.pull;
    let docker_config = json!({ "auths": { host: {
        "username": pull.username,
        "password": pull.password,
        "auth": encode(&format!("{}:{}", pull.username, pull.password)),
    }}});
    let mut secret = json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": { "name": crate::plan::registry::PULL_SECRET, "namespace": config.namespace.0 },
        "type": "kubernetes.io/dockerconfigjson",
        "data": { ".dockerconfigjson": encode(&docker_config.to_string()) }
    });
    crate::plan::render::add_inventory_labels(&mut secret, "namespace", config.install_name())?;
    Ok(Some(secret))
}
