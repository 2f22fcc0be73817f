//! The `gke:` section of bfctl.yaml: the GKE Standard cluster `bfctl cluster
//! create | status | delete` manages. Optional: without it bfctl deploys to
//! whatever cluster the kubeconfig names.
//!
//! Two node pools: `general` for the services, Kafka and Grafana, and
//! `virt` for the Valkey VM, with nested virtualization
//! (`config.advancedMachineFeatures.enableNestedVirtualization`), a label and
//! a taint so that only the VM's launcher pods (and KubeVirt's node agent)
//! land there. Values are checked while parsing, so an error names the key
//! and its line; a machine series that cannot nest virtualization is
//! refused before any call, with the reason and the documentation.

use serde::{Deserialize, Serialize};

use super::config::{Bounded, DnsLabel};

/// GKE's page on nested virtualization (requirements and limits).
pub const NESTED_VIRTUALIZATION_DOCS: &str =
    "https://cloud.google.com/kubernetes-engine/docs/how-to/nested-virtualization";

/// The label and taint of the `virt` pool's nodes: the VirtualMachine
/// selects and tolerates them, and KubeVirt's virt-handler tolerates them.
pub const VIRT_POOL_LABEL: &str = "bfctl.io/pool";
pub const VIRT_POOL_VALUE: &str = "virt";

/// The network tag of every node of a cluster bfctl makes: the firewall of
/// the registry bfctl provides admits nodes by it.
pub const NODE_TAG: &str = "bfctl-node";

/// The toleration of the `virt` pool's taint.
pub fn virt_pool_toleration() -> serde_json::Value {
    serde_json::json!({
        "key": VIRT_POOL_LABEL,
        "operator": "Equal",
        "value": VIRT_POOL_VALUE,
        "effect": "NoSchedule"
    })
}

/// Machine series whose VMs can run nested VMs: Intel-powered, not E2, not
/// memory-optimized (Compute Engine's nested virtualization restrictions:
/// no AMD or Arm processors, no E2, no M-series).
pub const NESTED_VIRTUALIZATION_SERIES: &[&str] = &["n1", "n2", "n4", "c2", "c3", "c4", "h3"];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Gke {
    /// The Google Cloud project id.
    pub project: ProjectId,
    /// A region (`europe-west1`: a regional cluster) or a zone
    /// (`europe-west1-b`: a zonal one).
    pub location: Location,
    /// The cluster's name.
    #[serde(default = "default_cluster")]
    pub cluster: DnsLabel,
    #[serde(default)]
    pub release_channel: ReleaseChannel,
    #[serde(default)]
    pub gateway_api_channel: GatewayApiChannel,
    #[serde(default)]
    pub general: GeneralPool,
    #[serde(default)]
    pub virt: VirtPool,
}

fn default_cluster() -> DnsLabel {
    DnsLabel("blackfriday".into())
}

/// GKE release channels.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ReleaseChannel {
    Rapid,
    #[default]
    Regular,
    Stable,
    Extended,
}

/// The Gateway API channel GKE installs (its CRDs and controller).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum GatewayApiChannel {
    ChannelDisabled,
    ChannelExperimental,
    #[default]
    ChannelStandard,
}

/// The pool for the services, Kafka and Grafana.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GeneralPool {
    #[serde(default = "default_general_machine")]
    pub machine_type: MachineType,
    /// Autoscaling bounds, nodes per zone.
    #[serde(default = "one")]
    pub min_nodes: Bounded<0, 1000>,
    #[serde(default = "three")]
    pub max_nodes: Bounded<1, 1000>,
    #[serde(default = "fifty")]
    pub disk_size_gb: Bounded<10, 65536>,
}

impl Default for GeneralPool {
    fn default() -> GeneralPool {
        GeneralPool {
            machine_type: default_general_machine(),
            min_nodes: one(),
            max_nodes: three(),
            disk_size_gb: fifty(),
        }
    }
}

/// The pool for the Valkey VM: nested virtualization, labelled and tainted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct VirtPool {
    #[serde(default = "default_virt_machine")]
    pub machine_type: NestedVirtualizationMachine,
    #[serde(default)]
    pub image_type: VirtImageType,
    #[serde(default = "one")]
    pub min_nodes: Bounded<0, 1000>,
    #[serde(default = "one")]
    pub max_nodes: Bounded<1, 1000>,
    #[serde(default = "fifty")]
    pub disk_size_gb: Bounded<10, 65536>,
}

impl Default for VirtPool {
    fn default() -> VirtPool {
        VirtPool {
            machine_type: default_virt_machine(),
            image_type: VirtImageType::default(),
            min_nodes: one(),
            max_nodes: one(),
            disk_size_gb: fifty(),
        }
    }
}

/// Node images GKE documents for nested virtualization (COS needs GKE
/// 1.28.4-gke.1083000 or later, which every release channel now runs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum VirtImageType {
    #[default]
    UbuntuContainerd,
    CosContainerd,
}

impl VirtImageType {
    pub fn api_name(self) -> &'static str {
        match self {
            VirtImageType::UbuntuContainerd => "UBUNTU_CONTAINERD",
            VirtImageType::CosContainerd => "COS_CONTAINERD",
        }
    }
}

fn one<const MIN: i64, const MAX: i64>() -> Bounded<MIN, MAX> {
    Bounded(1)
}
fn three<const MIN: i64, const MAX: i64>() -> Bounded<MIN, MAX> {
    Bounded(3)
}
fn fifty<const MIN: i64, const MAX: i64>() -> Bounded<MIN, MAX> {
    Bounded(50)
}
fn default_general_machine() -> MachineType {
    MachineType("e2-standard-4".into())
}
fn default_virt_machine() -> NestedVirtualizationMachine {
    NestedVirtualizationMachine("n2-standard-4".into())
}

/// A Google Cloud project id: 6 to 30 lowercase letters, digits and '-',
/// starting with a letter, not ending with '-'.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ProjectId(pub String);

impl TryFrom<String> for ProjectId {
    type Error = String;
    fn try_from(value: String) -> Result<ProjectId, String> {
        let valid = (6..=30).contains(&value.len())
            && value.starts_with(|c: char| c.is_ascii_lowercase())
            && !value.ends_with('-')
            && value
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if valid {
            Ok(ProjectId(value))
        } else {
            Err(format!(
                "{value:?} is not a project id: 6 to 30 lowercase letters, digits and '-', starting with a letter (the id, not the project's display name)"
            ))
        }
    }
}

impl From<ProjectId> for String {
    fn from(value: ProjectId) -> String {
        value.0
    }
}

/// A region (`europe-west1`) or a zone (`europe-west1-b`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Location(pub String);

impl Location {
    /// A zone ends in `-<letter>`; a region in a digit.
    pub fn is_zone(&self) -> bool {
        self.0.rsplit_once('-').is_some_and(|(_, last)| {
            last.len() == 1 && last.chars().all(|c| c.is_ascii_lowercase())
        })
    }
}

impl TryFrom<String> for Location {
    type Error = String;
    fn try_from(value: String) -> Result<Location, String> {
        let parts: Vec<&str> = value.split('-').collect();
        let word = |part: &str| !part.is_empty() && part.chars().all(|c| c.is_ascii_lowercase());
        let region_end = |part: &str| {
            let letters = part.trim_end_matches(|c: char| c.is_ascii_digit());
            word(letters) && letters.len() < part.len()
        };
        let valid = match parts.as_slice() {
            [area, place] => word(area) && region_end(place),
            [area, place, zone] => word(area) && region_end(place) && zone.len() == 1 && word(zone),
            _ => false,
        };
        if valid {
            Ok(Location(value))
        } else {
            Err(format!(
                "{value:?} is not a region (europe-west1) or a zone (europe-west1-b)"
            ))
        }
    }
}

impl From<Location> for String {
    fn from(value: Location) -> String {
        value.0
    }
}

/// A Compute Engine machine type such as `e2-standard-4`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct MachineType(pub String);

impl MachineType {
    /// The machine series: `n2` of `n2-standard-4`.
    pub fn series(&self) -> &str {
        self.0.split('-').next().unwrap_or("")
    }
}

impl TryFrom<String> for MachineType {
    type Error = String;
    fn try_from(value: String) -> Result<MachineType, String> {
        let valid = value.contains('-')
            && value.starts_with(|c: char| c.is_ascii_lowercase())
            && value
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if valid {
            Ok(MachineType(value))
        } else {
            Err(format!(
                "{value:?} is not a machine type: expected something like e2-standard-4"
            ))
        }
    }
}

impl From<MachineType> for String {
    fn from(value: MachineType) -> String {
        value.0
    }
}

/// A machine type whose series supports nested virtualization.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct NestedVirtualizationMachine(pub String);

impl TryFrom<String> for NestedVirtualizationMachine {
    type Error = String;
    fn try_from(value: String) -> Result<NestedVirtualizationMachine, String> {
        let machine = MachineType::try_from(value)?;
        let series = machine.series();
        if NESTED_VIRTUALIZATION_SERIES.contains(&series) {
            Ok(NestedVirtualizationMachine(machine.0))
        } else {
            Err(format!(
                "{:?}: the {series} series cannot run nested VMs (Compute Engine offers nested virtualization only on Intel machines, and not on E2 or memory-optimized ones); use one of the {} series, e.g. n2-standard-4. See {NESTED_VIRTUALIZATION_DOCS}",
                machine.0,
                NESTED_VIRTUALIZATION_SERIES.join(", ")
            ))
        }
    }
}

impl From<NestedVirtualizationMachine> for String {
    fn from(value: NestedVirtualizationMachine) -> String {
        value.0
    }
}

impl Gke {
    /// Checks what parsing alone cannot (each pool's min against its max).
    pub fn check(&self) -> Result<(), String> {
        for (name, min, max) in [
            (
                "general",
                self.general.min_nodes.0,
                self.general.max_nodes.0,
            ),
            ("virt", self.virt.min_nodes.0, self.virt.max_nodes.0),
        ] {
            if min > max {
                return Err(format!(
                    "gke.{name}.minNodes ({min}) is above gke.{name}.maxNodes ({max})"
                ));
            }
        }
        Ok(())
    }

    /// `projects/P/locations/L`: the parent of the cluster in the GKE API.
    pub fn parent(&self) -> String {
        format!("projects/{}/locations/{}", self.project.0, self.location.0)
    }

    /// `projects/P/locations/L/clusters/C`.
    pub fn cluster_path(&self) -> String {
        format!("{}/clusters/{}", self.parent(), self.cluster.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_are_regions_or_zones() {
        for region in ["europe-west1", "us-central1", "northamerica-northeast2"] {
            let location = Location::try_from(region.to_string()).unwrap();
            assert!(!location.is_zone(), "{region}");
        }
        for zone in ["europe-west1-b", "us-central1-a"] {
            assert!(
                Location::try_from(zone.to_string()).unwrap().is_zone(),
                "{zone}"
            );
        }
        for bad in [
            "europe",
            "Europe-west1",
            "europe-west",
            "europe-west1-bb",
            "",
        ] {
            assert!(Location::try_from(bad.to_string()).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_series_that_nest_virtualization_are_taken_for_the_virt_pool() {
        assert!(NestedVirtualizationMachine::try_from("n2-standard-4".to_string()).is_ok());
        assert!(NestedVirtualizationMachine::try_from("c3-standard-8".to_string()).is_ok());
        for refused in [
            "e2-standard-4",
            "n2d-standard-4",
            "t2a-standard-4",
            "m3-ultramem-32",
        ] {
            let error = NestedVirtualizationMachine::try_from(refused.to_string()).unwrap_err();
            assert!(
                error.contains("cannot run nested VMs")
                    && error.contains(NESTED_VIRTUALIZATION_DOCS),
                "{error}"
            );
        }
    }

    #[test]
    fn project_ids_are_ids_not_names() {
        assert!(ProjectId::try_from("my-project-123".to_string()).is_ok());
        for bad in ["My Project", "abc", "1project", "project-"] {
            assert!(ProjectId::try_from(bad.to_string()).is_err(), "{bad}");
        }
    }
}
