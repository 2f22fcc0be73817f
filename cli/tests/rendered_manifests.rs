//! Every rendered object is checked against the real schemas: built-in kinds
//! with `kubernetes-validate` (Kubernetes 1.34, strict), Strimzi and Gateway
//! API objects against their CRDs, KubeVirt objects against its OpenAPI
//! document, all from ../shared/fixtures. Unknown fields are errors, as they
//! are for `kubectl apply` with strict field validation.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use bfctl::plan::config::Config;
use bfctl::plan::render::{self, ImageRefs, RenderedComponent};
use serde_json::Value as Json;

fn fixtures() -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures");
    assert!(
        path.is_dir(),
        "schemas missing: {} (the shared/ folder beside the repository)",
        path.display()
    );
    path
}

fn example_config() -> Config {
    Config::parse(bfctl::plan::config::EXAMPLE, "bfctl.example.yaml").expect("the example parses")
}

fn variant_config() -> Config {
    let text = bfctl::plan::config::EXAMPLE
        .replace("mode: gateway-api", "mode: nginx")
        .replace("host: \"\"", "host: ventas.example.com")
        .replace("class: \"\"", "class: premium-rwo")
        .replace("replication: 1", "replication: 3")
        .replace("carnet: \"201900006\"", "carnet: \"201900001\"")
        + "gke:\n  project: my-project-id\n  location: europe-west1\n";
    Config::parse(&text, "variant").expect("the variant parses")
}

fn rendered(config: &Config) -> Vec<RenderedComponent> {
    render::render(config, &ImageRefs::unbuilt(config)).expect("renders")
}

fn to_json(value: &Json) -> Json {
    value.clone()
}

/// CRD schemas by (group/version, kind).
fn crd_schemas() -> BTreeMap<(String, String), Json> {
    let mut schemas = BTreeMap::new();
    for dir in ["strimzi-1.2.0", "gateway-api-v1.6.1"] {
        for entry in std::fs::read_dir(fixtures().join(dir)).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            for crd in bfctl::yaml::parse_documents(&text, &path.display().to_string()).unwrap() {
                if crd["kind"] != "CustomResourceDefinition" {
                    continue;
                }
                let group = crd["spec"]["group"].as_str().unwrap().to_string();
                let kind = crd["spec"]["names"]["kind"].as_str().unwrap().to_string();
                for version in crd["spec"]["versions"].as_array().unwrap() {
                    let name = version["name"].as_str().unwrap();
                    schemas.insert(
                        (format!("{group}/{name}"), kind.clone()),
                        version["schema"]["openAPIV3Schema"].clone(),
                    );
                }
            }
        }
    }
    schemas
}

/// KubeVirt's OpenAPI (swagger 2) document as one JSON schema per kind.
fn kubevirt_schema(kind: &str) -> Json {
    let swagger: Json = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("kubevirt/swagger-v1.9.0-rc.2.json")).unwrap(),
    )
    .unwrap();
    serde_json::json!({
        "$ref": format!("#/definitions/v1.{kind}"),
        "definitions": swagger["definitions"],
    })
}

/// Fields of `object` that `schema` does not declare (where it declares properties).
fn unknown_fields(object: &Json, schema: &Json, root: &Json, path: &str, found: &mut Vec<String>) {
    let schema = match schema.get("$ref").and_then(Json::as_str) {
        Some(reference) => {
            let name = reference.trim_start_matches("#/definitions/");
            &root["definitions"][name]
        }
        None => schema,
    };
    if schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Json::Bool(true)) {
        return;
    }
    match object {
        Json::Object(map) => {
            let properties = schema.get("properties").and_then(Json::as_object);
            for (key, value) in map {
                match properties.and_then(|p| p.get(key)) {
                    Some(child) => {
                        unknown_fields(value, child, root, &format!("{path}.{key}"), found)
                    }
                    None if properties.is_some()
                        && schema.get("additionalProperties").is_none() =>
                    {
                        found.push(format!("{path}.{key}"))
                    }
                    None => {
                        if let Some(additional) =
                            schema.get("additionalProperties").filter(|a| a.is_object())
                        {
                            unknown_fields(
                                value,
                                additional,
                                root,
                                &format!("{path}.{key}"),
                                found,
                            );
                        }
                    }
                }
            }
        }
        Json::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (index, item) in items.iter().enumerate() {
                    unknown_fields(item, item_schema, root, &format!("{path}[{index}]"), found);
                }
            }
        }
        _ => {}
    }
}

fn validate_custom(object: &Json, schema: &Json, root: &Json) -> Vec<String> {
    let validator = jsonschema::validator_for(schema).expect("the fixture schema compiles");
    let mut problems: Vec<String> = validator
        .iter_errors(object)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    let mut unknown = Vec::new();
    unknown_fields(object, schema, root, "", &mut unknown);
    problems.extend(
        unknown
            .into_iter()
            .map(|field| format!("unknown field {field}")),
    );
    problems
}

fn kubernetes_validate(objects: &[&Json]) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for (index, object) in objects.iter().enumerate() {
        let path = dir.path().join(format!("{index:03}.yaml"));
        std::fs::write(&path, bfctl::yaml::to_string(object).unwrap()).unwrap();
        files.push(path);
    }
    let output = Command::new("kubernetes-validate")
        .args(["-k", "1.34.0", "--strict", "--quiet"])
        .args(&files)
        .output()
        .map_err(|e| {
            format!("running kubernetes-validate (pip install kubernetes-validate): {e}")
        })?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

fn validate_all(components: &[RenderedComponent]) {
    let crds = crd_schemas();
    let mut builtin = Vec::new();
    let mut failures = Vec::new();
    let mut custom_checked = 0;
    let objects: Vec<Json> = components
        .iter()
        .flat_map(|c| c.objects.iter().map(to_json))
        .collect();
    for object in &objects {
        let api_version = object["apiVersion"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let kind = object["kind"].as_str().unwrap_or_default().to_string();
        let problems = if api_version == "kubevirt.io/v1" {
            let schema = kubevirt_schema(&kind);
            validate_custom(object, &schema, &schema)
        } else if let Some(schema) = crds.get(&(api_version.clone(), kind.clone())) {
            validate_custom(object, schema, schema)
        } else {
            // Built-in kinds; kubernetes-validate rejects kinds it has no schema for.
            builtin.push(object);
            continue;
        };
        custom_checked += 1;
        if !problems.is_empty() {
            failures.push(format!(
                "{api_version} {kind} {}:\n  {}",
                object["metadata"]["name"],
                problems.join("\n  ")
            ));
        }
    }
    if let Err(report) = kubernetes_validate(&builtin) {
        failures.push(format!("kubernetes-validate:\n{report}"));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        custom_checked >= 5,
        "only {custom_checked} custom objects were checked"
    );
    assert!(
        builtin.len() >= 15,
        "only {} built-in objects were checked",
        builtin.len()
    );
}

#[test]
fn the_example_configuration_renders_valid_objects() {
    validate_all(&rendered(&example_config()));
}

#[test]
fn the_nginx_three_broker_variant_renders_valid_objects() {
    validate_all(&rendered(&variant_config()));
}

#[test]
fn with_a_gke_virt_pool_the_vm_is_placed_on_it() {
    let vm = |config: &Config| {
        rendered(config)
            .into_iter()
            .flat_map(|c| c.objects)
            .find(|o| o["kind"] == "VirtualMachine")
            .expect("a VirtualMachine")
    };
    let placed = vm(&variant_config());
    let spec = &placed["spec"]["template"]["spec"];
    assert_eq!(spec["nodeSelector"]["bfctl.io/pool"], "virt", "{spec}");
    assert_eq!(spec["tolerations"][0]["key"], "bfctl.io/pool");
    assert_eq!(spec["tolerations"][0]["effect"], "NoSchedule");
    let anywhere = vm(&example_config());
    let spec = &anywhere["spec"]["template"]["spec"];
    assert!(spec.get("nodeSelector").is_none() && spec.get("tolerations").is_none());
}

#[test]
fn validation_catches_a_wrong_field() {
    // The checks above must be able to fail: a misspelt field in a Kafka object.
    let crds = crd_schemas();
    let mut kafka = rendered(&example_config())
        .into_iter()
        .flat_map(|c| c.objects)
        .map(|o| to_json(&o))
        .find(|o| o["kind"] == "Kafka")
        .unwrap();
    kafka["spec"]["kafka"]["listners"] = kafka["spec"]["kafka"]["listeners"].take();
    let schema = &crds[&("kafka.strimzi.io/v1".to_string(), "Kafka".to_string())];
    let problems = validate_custom(&kafka, schema, schema);
    assert!(
        problems.iter().any(|p| p.contains("listeners")),
        "{problems:?}"
    );
    assert!(
        problems.iter().any(|p| p.contains("listners")),
        "{problems:?}"
    );
    let mut deployment = serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"}, "spec": {"replicas": "two"}});
    assert!(kubernetes_validate(&[&deployment]).is_err());
    deployment["spec"] = serde_json::json!({"selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "i", "bogus": 1}]}}});
    assert!(
        kubernetes_validate(&[&deployment]).is_err(),
        "strict mode rejects unknown fields"
    );
}

/// The example configuration renders exactly as in tests/golden/example.yaml.
/// After an intended change: `BFCTL_UPDATE_GOLDEN=1 cargo test -p bfctl --test rendered_manifests`.
#[test]
fn the_example_configuration_matches_its_golden_file() {
    let mut text = String::new();
    for component in rendered(&example_config()) {
        text.push_str(&format!(
            "# component: {} (after: {})\n",
            component.spec.name,
            component.spec.depends_on.join(", ")
        ));
        for object in &component.objects {
            text.push_str("---\n");
            text.push_str(&bfctl::yaml::to_string(object).unwrap());
        }
    }
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/example.yaml");
    if std::env::var_os("BFCTL_UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(golden.parent().unwrap()).unwrap();
        std::fs::write(&golden, &text).unwrap();
    }
    let expected =
        std::fs::read_to_string(&golden).expect("golden file (BFCTL_UPDATE_GOLDEN=1 writes it)");
    assert!(
        expected == text,
        "rendered output differs from {}; diff it, then update if intended",
        golden.display()
    );
}

#[test]
fn components_come_after_their_dependencies_and_workloads_are_locked_down() {
    let components = rendered(&example_config());
    let order = render::topological_order(
        &components
            .iter()
            .map(|c| c.spec.clone())
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let position = |name: &str| order.iter().position(|n| n == name).unwrap();
    assert_eq!(order[0], "namespace");
    assert!(position("kafka") < position("producer"));
    assert!(position("producer") < position("gateway"));
    assert!(position("valkey") < position("consumer") && position("kafka") < position("consumer"));
    assert!(position("gateway") < position("ingress"));

    let objects: Vec<Json> = components
        .iter()
        .flat_map(|c| c.objects.iter().map(to_json))
        .collect();
    for object in &objects {
        let labels = &object["metadata"]["labels"];
        assert_eq!(
            labels["app.kubernetes.io/managed-by"], "bfctl",
            "{}",
            object["metadata"]["name"]
        );
        assert!(labels["bfctl.io/component"].is_string());
    }
    for deployment in objects.iter().filter(|o| o["kind"] == "Deployment") {
        let pod = &deployment["spec"]["template"]["spec"];
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
        assert_eq!(
            pod["securityContext"]["seccompProfile"]["type"],
            "RuntimeDefault"
        );
        for container in pod["containers"].as_array().unwrap() {
            let security = &container["securityContext"];
            assert_eq!(
                security["readOnlyRootFilesystem"], true,
                "{}",
                deployment["metadata"]["name"]
            );
            assert_eq!(security["allowPrivilegeEscalation"], false);
            assert_eq!(security["capabilities"]["drop"], serde_json::json!(["ALL"]));
            assert!(
                container["resources"]["requests"].is_object()
                    && container["resources"]["limits"].is_object()
            );
            assert!(
                container["readinessProbe"].is_object() && container["livenessProbe"].is_object()
                    || deployment["metadata"]["name"] == "grafana"
            );
        }
    }
    let service = |name: &str| {
        objects
            .iter()
            .find(|o| o["kind"] == "Service" && o["metadata"]["name"] == name)
            .unwrap()
    };
    assert_eq!(
        service("gateway")["spec"]["type"],
        "ClusterIP",
        "only the Gateway/Ingress is exposed"
    );
    assert_eq!(service("producer-headless")["spec"]["clusterIP"], "None");
    let hpa = objects
        .iter()
        .find(|o| o["kind"] == "HorizontalPodAutoscaler" && o["metadata"]["name"] == "gateway")
        .unwrap();
    assert_eq!(
        (
            hpa["spec"]["minReplicas"].as_i64(),
            hpa["spec"]["maxReplicas"].as_i64()
        ),
        (Some(1), Some(5))
    );
    let topic = objects
        .iter()
        .find(|o| o["kind"] == "KafkaTopic" && o["metadata"]["name"] == "ventas")
        .unwrap();
    assert_eq!(topic["spec"]["partitions"], 6);
}

#[test]
fn the_kubevirt_cr_with_a_virt_pool_matches_kubevirts_schema() {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/operators/kubevirt-cr.yaml"),
    )
    .unwrap();
    let mut objects = bfctl::yaml::parse_documents(&text, "kubevirt-cr.yaml").unwrap();
    bfctl::plan::operators::configure_kubevirt_cr(&mut objects, false, true);
    let cr = &objects[0];
    assert_eq!(
        cr["spec"]["workloads"]["nodePlacement"]["tolerations"][0]["key"],
        "bfctl.io/pool"
    );
    let schema = kubevirt_schema("KubeVirt");
    let problems = validate_custom(cr, &schema, &schema);
    assert!(problems.is_empty(), "{problems:?}");
    // The check can fail: a misspelt placement field is caught.
    let mut wrong = cr.clone();
    wrong["spec"]["workloads"]["nodePlacment"] = wrong["spec"]["workloads"]["nodePlacement"].take();
    assert!(!validate_custom(&wrong, &schema, &schema).is_empty());
}
