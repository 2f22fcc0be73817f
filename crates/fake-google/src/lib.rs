//! Fakes of Google Cloud for tests: a dev-only crate. Every request is
//! checked against the API's own Discovery document (`discovery`), so a
//! request the real service would refuse is refused here too, with the
//! real error shape.
//!
//! # Layout
//!
//! ```text
//! discovery.rs  methods, path templates, parameter patterns and body schemas
//!               from a Discovery document; ApiError, Google's error shape
//! token.rs      a service-account key file and the token endpoint that
//!               verifies its signed JWT assertions
//! gke.rs        FakeGke: the GKE v1 API (clusters, operations) and the
//!               token endpoint, on 127.0.0.1; the same server answers
//!               Compute Engine and Secret Manager
//! compute.rs    Compute Engine v1: addresses, disks, firewall rules,
//!               instances, operations
//! secretmanager.rs  Secret Manager v1: secrets, versions, IAM policies
//! artifactregistry.rs  Artifact Registry v1: repositories, operations,
//!               IAM policies
//! ```

pub mod artifactregistry;
pub mod compute;
pub mod discovery;
pub mod gke;
pub mod secretmanager;
pub mod token;

pub use discovery::{Api, ApiError, Call};
pub use gke::FakeGke;

/// Where a fake operation is: PENDING for one `step`, RUNNING for two,
/// then DONE (the states GKE's and Compute's `Operation` name).
pub(crate) fn operation_status(
    started: std::time::Instant,
    step: std::time::Duration,
) -> &'static str {
    let elapsed = started.elapsed();
    if elapsed < step {
        "PENDING"
    } else if elapsed < step * 3 {
        "RUNNING"
    } else {
        "DONE"
    }
}

/// Where the shared fixtures keep the Google API descriptions: the
/// `shared/` folder beside the checkout.
pub fn google_apis_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/google-apis")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn gke() -> Api {
        Api::load(&google_apis_dir().join("container.v1.json")).expect("container.v1.json")
    }

    const PARENT: &str = "/v1/projects/my-project/locations/europe-west1-b";

    #[test]
    fn a_create_matches_its_method_and_names_its_parent() {
        let api = gke();
        assert!(api.method_count() > 50, "{}", api.method_count());
        let body = json!({"cluster": {"name": "bf", "nodePools": [{"name": "general",
            "initialNodeCount": 1,
            "config": {"machineType": "e2-standard-4", "diskSizeGb": 50,
                       "advancedMachineFeatures": {"enableNestedVirtualization": true}},
            "autoscaling": {"enabled": true, "minNodeCount": 1, "maxNodeCount": 3}}],
            "releaseChannel": {"channel": "REGULAR"},
            "networkConfig": {"gatewayApiConfig": {"channel": "CHANNEL_STANDARD"}}}});
        let call = api
            .check("POST", &format!("{PARENT}/clusters"), &[], Some(&body))
            .unwrap();
        assert_eq!(call.id, "container.projects.locations.clusters.create");
        assert_eq!(
            call.params["parent"],
            "projects/my-project/locations/europe-west1-b"
        );
        let get = api
            .check("GET", &format!("{PARENT}/clusters/bf"), &[], None)
            .unwrap();
        assert_eq!(get.id, "container.projects.locations.clusters.get");
        let delete = api
            .check("DELETE", &format!("{PARENT}/clusters/bf"), &[], None)
            .unwrap();
        assert_eq!(delete.id, "container.projects.locations.clusters.delete");
        let operation = api
            .check(
                "GET",
                &format!("{PARENT}/operations/operation-1"),
                &[],
                None,
            )
            .unwrap();
        assert_eq!(operation.id, "container.projects.locations.operations.get");
    }

    #[test]
    fn unknown_fields_wrong_types_and_enums_are_refused_as_google_refuses_them() {
        let api = gke();
        let create = |cluster: serde_json::Value| {
            api.check(
                "POST",
                &format!("{PARENT}/clusters"),
                &[],
                Some(&json!({ "cluster": cluster })),
            )
            .unwrap_err()
        };
        let unknown =
            create(json!({"name": "bf", "nodePools": [{"config": {"nestedVirt": true}}]}));
        assert_eq!(unknown.code, 400);
        assert_eq!(unknown.status, "INVALID_ARGUMENT");
        assert_eq!(
            unknown.message,
            "Invalid JSON payload received. Unknown name \"nestedVirt\" at 'cluster.node_pools[0].config': Cannot find field."
        );
        assert_eq!(
            unknown.body()["error"]["status"],
            "INVALID_ARGUMENT",
            "the real error shape"
        );
        let wrong_type =
            create(json!({"name": "bf", "nodePools": [{"config": {"diskSizeGb": "big"}}]}));
        assert!(
            wrong_type
                .message
                .contains("'cluster.node_pools[0].config.disk_size_gb'"),
            "{}",
            wrong_type.message
        );
        let wrong_enum = create(json!({"name": "bf", "releaseChannel": {"channel": "NIGHTLY"}}));
        assert!(
            wrong_enum.message.contains("TYPE_ENUM"),
            "{}",
            wrong_enum.message
        );
    }

    #[test]
    fn paths_outside_the_patterns_and_unknown_query_parameters_are_refused() {
        let api = gke();
        let missing = api
            .check("GET", "/v1/projects/p/clusters/bf", &[], None)
            .unwrap_err();
        assert_eq!(missing.code, 404);
        let query = api
            .check(
                "GET",
                &format!("{PARENT}/clusters/bf"),
                &[("verbose".into(), "1".into())],
                None,
            )
            .unwrap_err();
        assert!(
            query.message.contains("Unknown name \"verbose\""),
            "{}",
            query.message
        );
        let known = api.check(
            "GET",
            &format!("{PARENT}/clusters/bf"),
            &[("prettyPrint".into(), "false".into())],
            None,
        );
        assert!(known.is_ok(), "{known:?}");
        let wrong_verb = api
            .check("PATCH", &format!("{PARENT}/clusters/bf"), &[], None)
            .unwrap_err();
        assert_eq!(wrong_verb.code, 405);
    }

    #[test]
    fn a_custom_verb_picks_its_own_method_and_compute_paths_carry_the_service_path() {
        let secrets = Api::load(&google_apis_dir().join("secretmanager.v1.json")).unwrap();
        let policy = secrets
            .check("GET", "/v1/projects/p/secrets/s:getIamPolicy", &[], None)
            .unwrap();
        assert_eq!(policy.id, "secretmanager.projects.secrets.getIamPolicy");
        let get = secrets
            .check("GET", "/v1/projects/p/secrets/s", &[], None)
            .unwrap();
        assert_eq!(get.id, "secretmanager.projects.secrets.get");
        let compute = Api::load(&google_apis_dir().join("compute.v1.json")).unwrap();
        let insert = compute
            .check(
                "POST",
                "/compute/v1/projects/p/regions/europe-west1/addresses",
                &[],
                Some(&json!({"name": "a", "addressType": "EXTERNAL"})),
            )
            .unwrap();
        assert_eq!(insert.id, "compute.addresses.insert");
        let without_service_path = compute
            .check(
                "GET",
                "/projects/p/regions/europe-west1/addresses/a",
                &[],
                None,
            )
            .unwrap_err();
        assert_eq!(without_service_path.code, 404);
        let wrong_enum = compute
            .check(
                "POST",
                "/compute/v1/projects/p/regions/europe-west1/addresses",
                &[],
                Some(&json!({"name": "a", "addressType": "PUBLIC"})),
            )
            .unwrap_err();
        assert_eq!(wrong_enum.code, 400);
        let unknown = compute
            .check(
                "POST",
                "/compute/v1/projects/p/zones/europe-west1-b/instances",
                &[],
                Some(&json!({"name": "vm", "networkInterfaces": [{"externalIp": "1.2.3.4"}]})),
            )
            .unwrap_err();
        assert_eq!(unknown.code, 400);
        assert_eq!(
            unknown.message,
            "Invalid JSON payload received. Unknown name \"externalIp\" at 'network_interfaces[0]': Cannot find field."
        );
    }
}
