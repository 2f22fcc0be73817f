//! Operator release files served over HTTP on 127.0.0.1, as a mirror.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The release files the tests serve: the real Strimzi 1.2.0 bundle from
/// ../shared/fixtures and the KubeVirt stand-ins from tests/fixtures.
pub fn release_files() -> BTreeMap<String, Vec<u8>> {
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/strimzi-1.2.0");
    let mut names: Vec<PathBuf> = std::fs::read_dir(&shared)
        .unwrap_or_else(|e| panic!("{}: {e}", shared.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    names.sort();
    let mut bundle = Vec::new();
    for path in names {
        bundle.extend(b"---\n");
        bundle.extend(std::fs::read(&path).unwrap());
        bundle.push(b'\n');
    }
    let local = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/operators");
    let mut files = BTreeMap::new();
    files.insert("strimzi-cluster-operator-1.2.0.yaml".to_string(), bundle);
    for name in ["kubevirt-operator.yaml", "kubevirt-cr.yaml"] {
        files.insert(name.to_string(), std::fs::read(local.join(name)).unwrap());
    }
    files
}

/// Serves `files` by name on 127.0.0.1; counts requests.
pub async fn serve_files(files: BTreeMap<String, Vec<u8>>) -> (String, Arc<Mutex<usize>>) {
    let requests = Arc::new(Mutex::new(0usize));
    let counter = requests.clone();
    let files = Arc::new(files);
    let app = axum::Router::new().route(
        "/{name}",
        axum::routing::get(
            move |axum::extract::Path(name): axum::extract::Path<String>| {
                let files = files.clone();
                let counter = counter.clone();
                async move {
                    *counter.lock().unwrap() += 1;
                    match files.get(&name) {
                        Some(bytes) => Ok(bytes.clone()),
                        None => Err(axum::http::StatusCode::NOT_FOUND),
                    }
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{address}"), requests)
}
