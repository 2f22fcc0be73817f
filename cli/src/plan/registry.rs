//! The `registry:` section of bfctl.yaml beyond `url`: which registry bfctl
//! pushes to, and, for the ones bfctl provides, how it makes them.
//!
//! * `kind: external` (the default): `url` and credentials someone else
//!   manages;
//! * `kind: zot`: `bfctl registry create` runs Zot on a Compute Engine VM
//!   (`zot:` below), with TLS from bfctl's own CA and two accounts; its
//!   address is recorded in `.bfctl/registry/` and becomes the `url`;
//! * `kind: artifact-registry`: `bfctl registry create` makes a Docker
//!   repository in Artifact Registry (`artifactRegistry:` below).
//!
//! Values are checked while parsing, so an error names the key and its
//! line.

use serde::{Deserialize, Serialize};

use super::config::{Bounded, DnsLabel};
use super::gke::{Location, MachineType, ProjectId};

/// The image pull Secret, in the pipeline's namespace, that the workloads
/// and the VM's containerDisk use to pull from a registry bfctl provides.
pub const PULL_SECRET: &str = "bfctl-registry-pull";

/// Who provides the registry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RegistryKind {
    /// A URL and credentials someone else manages.
    #[default]
    External,
    /// Zot on a Compute Engine VM that bfctl provisions.
    Zot,
    /// A Docker repository in Artifact Registry that bfctl creates.
    ArtifactRegistry,
}

/// Zot on a Compute Engine VM.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Zot {
    /// The project (default: `gke.project`).
    #[serde(default)]
    pub project: Option<ProjectId>,
    /// The zone of the VM and its data disk (default: `gke.location` when
    /// it is a zone).
    #[serde(default)]
    pub zone: Option<Location>,
    /// The VM's name; the address, data disk, firewall rules and secrets
    /// are named after it.
    #[serde(default = "default_name")]
    pub name: DnsLabel,
    #[serde(default = "default_machine")]
    pub machine_type: MachineType,
    /// The persistent disk that holds the images.
    #[serde(default = "fifty")]
    pub data_disk_gb: Bounded<10, 65536>,
    /// The registry's port (TLS).
    #[serde(default = "default_port")]
    pub port: Bounded<1, 65535>,
    /// A DNS name for the registry, added to the certificate (the address
    /// is always in it). Empty: none.
    #[serde(default)]
    pub dns_name: String,
    /// The VPC network.
    #[serde(default = "default_network")]
    pub network: DnsLabel,
    /// Besides the cluster's nodes, who may reach the registry: CIDR
    /// ranges. Empty: the address bfctl calls from.
    #[serde(default)]
    pub allowed_sources: Vec<String>,
    /// The path images go under (`ADDRESS:PORT/REPOSITORY/gateway`).
    #[serde(default = "default_repository")]
    pub repository: DnsLabel,
}

impl Zot {
    /// The region of the zone (`europe-west1` of `europe-west1-b`).
    pub fn region(zone: &str) -> &str {
        zone.rsplit_once('-').map_or(zone, |(region, _)| region)
    }

    /// Checks what parsing cannot: the CIDR ranges and the DNS name.
    pub fn check(&self) -> Result<(), String> {
        for source in &self.allowed_sources {
            if !is_cidr(source) {
                return Err(format!(
                    "registry.zot.allowedSources: {source:?} is not an IPv4 CIDR range (203.0.113.7/32)"
                ));
            }
            if source.ends_with("/0") {
                return Err(format!(
                    "registry.zot.allowedSources: {source:?} admits the whole Internet; list the addresses that push (the registry needs no more)"
                ));
            }
        }
        let dns_ok = self.dns_name.is_empty()
            || (self.dns_name.len() <= 253
                && self
                    .dns_name
                    .split('.')
                    .all(|label| DnsLabel::try_from(label.to_ascii_lowercase()).is_ok()));
        if !dns_ok {
            return Err(format!(
                "registry.zot.dnsName {:?} is not a DNS name",
                self.dns_name
            ));
        }
        Ok(())
    }
}

/// A Docker-format repository in Artifact Registry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ArtifactRegistry {
    /// The project (default: `gke.project`).
    #[serde(default)]
    pub project: Option<ProjectId>,
    /// A region (`europe-west1`) or `us`, `europe`, `asia`.
    pub location: String,
    #[serde(default = "default_repository")]
    pub repository: DnsLabel,
}

/// `a.b.c.d/n` with each part in range.
pub fn is_cidr(text: &str) -> bool {
    let Some((address, bits)) = text.split_once('/') else {
        return false;
    };
    address.parse::<std::net::Ipv4Addr>().is_ok() && bits.parse::<u8>().is_ok_and(|b| b <= 32)
}

fn default_name() -> DnsLabel {
    DnsLabel("bfctl-registry".into())
}

fn default_machine() -> MachineType {
    MachineType("e2-small".into())
}

fn fifty() -> Bounded<10, 65536> {
    Bounded(50)
}

fn default_port() -> Bounded<1, 65535> {
    Bounded(5000)
}

fn default_network() -> DnsLabel {
    DnsLabel("default".into())
}

fn default_repository() -> DnsLabel {
    DnsLabel("blackfriday".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_ranges_are_checked() {
        assert!(is_cidr("203.0.113.7/32"));
        assert!(is_cidr("10.0.0.0/8"));
        assert!(!is_cidr("10.0.0.0"));
        assert!(!is_cidr("10.0.0.300/8"));
        assert!(!is_cidr("10.0.0.0/33"));
    }
}
