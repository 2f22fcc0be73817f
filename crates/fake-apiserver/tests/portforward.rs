//! The fake's pod port-forward, spoken to with kube-rs's `Portforwarder`
//! (which checks the opening frames kubernetes'
//! `pkg/kubelet/cri/streaming/portforward/websocket.go` sends): bytes go
//! both ways; a port nothing listens on is an error-channel message; a pod
//! that does not exist is a 404.

use std::time::Duration;

use fake_apiserver::FakeApiServer;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn client(api: &FakeApiServer) -> kube::Client {
    // In the whole workspace's build rustls has two providers to choose
    // from (kube's and oci-client's): pick ring, as bfctl does.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = kube::Config::new(api.url().parse().unwrap());
    kube::Client::try_from(config).unwrap()
}

fn pod(api: &FakeApiServer, name: &str) {
    api.insert_as(
        "kubelet",
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "ns"},
            "spec": {"containers": [{"name": "c", "image": "i"}]}
        }),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_go_both_ways_and_failures_are_said() {
    let api = FakeApiServer::start_bare(Duration::from_millis(10)).await;
    pod(&api, "echo");
    // The "container": an echo server.
    let echo = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    api.forward_pod_port("echo", 8080, echo.local_addr().unwrap());
    tokio::spawn(async move {
        let (mut connection, _) = echo.accept().await.unwrap();
        let mut buffer = [0u8; 64];
        let n = connection.read(&mut buffer).await.unwrap();
        connection.write_all(&buffer[..n]).await.unwrap();
    });
    let pods: Api<Pod> = Api::namespaced(client(&api).await, "ns");

    let mut forwarder = pods.portforward("echo", &[8080]).await.unwrap();
    let mut stream = forwarder.take_stream(8080).unwrap();
    stream.write_all(b"hello").await.unwrap();
    let mut answer = [0u8; 5];
    tokio::time::timeout(Duration::from_secs(10), stream.read_exact(&mut answer))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&answer, b"hello");
    assert_eq!(api.log(), ["PORTFORWARD Pod ns/echo:8080"]);

    // A port nothing listens on: the error channel says so.
    let mut refused = pods.portforward("echo", &[9999]).await.unwrap();
    let error = tokio::time::timeout(Duration::from_secs(10), refused.take_error(9999).unwrap())
        .await
        .unwrap();
    assert!(
        error
            .as_deref()
            .is_some_and(|e| e.contains("error forwarding port 9999 to pod echo")),
        "{error:?}"
    );

    // No such pod: 404, before any upgrade.
    match pods.portforward("nobody", &[8080]).await {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 404, "{status:?}"),
        Err(other) => panic!("expected a 404 Status, got {other}"),
        Ok(_) => panic!("expected a 404 Status"),
    }
    api.stop();
}
