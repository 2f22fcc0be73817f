//! Grafana through the API server (`bfctl dashboard --cluster`): a local
//! port on 127.0.0.1 whose every connection is port-forwarded, through the
//! API server's `portforward` subresource, to port 3000 of a pod of this
//! install's `grafana` Deployment, as `kubectl port-forward` does. The
//! Deployment is proved this install's before any pod of it is used.

use anyhow::Context;
use kube_apply::{Cluster, ObjectRef};
use serde_json::Value;

/// Grafana's HTTP port in its container (`manifests-templates/grafana.yaml`).
pub const GRAFANA_PORT: u16 = 3000;

/// This install's Grafana Deployment.
fn deployment(namespace: &str) -> ObjectRef {
    ObjectRef {
        api_version: "apps/v1".into(),
        kind: "Deployment".into(),
        namespace: Some(namespace.into()),
        name: "grafana".into(),
    }
}

/// Running, Ready and not being deleted.
fn serving(pod: &Value) -> bool {
    let running = pod.pointer("/status/phase").and_then(Value::as_str) == Some("Running");
    let ready = pod
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|conditions| {
            conditions.iter().any(|c| {
                c.get("type").and_then(Value::as_str) == Some("Ready")
                    && c.get("status").and_then(Value::as_str) == Some("True")
            })
        });
    running && ready && pod.pointer("/metadata/deletionTimestamp").is_none()
}

/// The name of a serving pod of this install's Grafana.
pub async fn grafana_pod(cluster: &Cluster, install: &str) -> anyhow::Result<String> {
    let deployment = deployment(cluster.default_namespace());
    kube_apply::inventory::ensure_owned(cluster, &deployment, install, "run `bfctl up` first")
        .await?;
    let pods = cluster.pods_of(&deployment).await?;
    pods.iter()
        .find(|pod| serving(pod))
        .and_then(|pod| pod.pointer("/metadata/name").and_then(Value::as_str))
        .map(str::to_string)
        .with_context(|| {
            format!(
                "{deployment} has no running, ready pod ({} pods): see `bfctl status`",
                pods.len()
            )
        })
}

/// Forwards every connection accepted on `listener` to Grafana until
/// `stop` completes. Each connection sets up its own forward, so a slow one
/// holds up no other; one whose forward fails (the pod was replaced) looks
/// the pod up again once, and if that fails too it is closed and
/// `refused` is told why: the next connection tries again.
pub async fn forward(
    cluster: Cluster,
    install: String,
    pod: String,
    listener: tokio::net::TcpListener,
    stop: impl std::future::Future<Output = ()>,
    refused: impl Fn(String) + Clone + Send + 'static,
) -> anyhow::Result<()> {
    tokio::pin!(stop);
    let pod = std::sync::Arc::new(tokio::sync::Mutex::new(pod));
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut stop => return Ok(()),
        };
        let (mut connection, _) = accepted.context("accepting a connection for Grafana")?;
        let (cluster, install, pod, refused) = (
            cluster.clone(),
            install.clone(),
            pod.clone(),
            refused.clone(),
        );
        tokio::spawn(async move {
            match forward_one(&cluster, &install, &pod).await {
                Ok(mut forwarded) => {
                    // Either side closing ends the connection; nothing to report.
                    let _ =
                        tokio::io::copy_bidirectional(&mut connection, &mut forwarded.stream).await;
                }
                Err(error) => refused(format!("a connection to Grafana was closed: {error:#}")),
            }
        });
    }
}

/// One port-forward to the current pod, looking it up again once if the
/// forward fails.
async fn forward_one(
    cluster: &Cluster,
    install: &str,
    pod: &tokio::sync::Mutex<String>,
) -> anyhow::Result<kube_apply::PortForward> {
    let namespace = cluster.default_namespace();
    let current = pod.lock().await.clone();
    match cluster
        .port_forward(namespace, &current, GRAFANA_PORT)
        .await
    {
        Ok(forwarded) => Ok(forwarded),
        Err(_) => {
            let found = grafana_pod(cluster, install).await?;
            *pod.lock().await = found.clone();
            Ok(cluster
                .port_forward(namespace, &found, GRAFANA_PORT)
                .await?)
        }
    }
}
