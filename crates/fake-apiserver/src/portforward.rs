//! The pod `portforward` subresource over WebSocket, as the kubelet serves
//! it behind the API server (kubernetes `pkg/kubelet/cri/streaming/
//! portforward/websocket.go`, `handleWebSocketStreams`):
//!
//! - subprotocol `v4.channel.k8s.io`: binary frames whose first byte is the
//!   channel;
//! - for the i-th requested port, channel 2i carries data and 2i+1 errors;
//!   the server opens each with the port number as two bytes, little endian
//!   (kube-rs's `Portforwarder` refuses a connection without them);
//! - the data channel is a TCP connection to the port in the pod; a port
//!   that cannot be reached is a text message on the error channel.
//!
//! Here the "pod's port" is an address the test registered with
//! [`crate::FakeApiServer::forward_pod_port`]. Simplified: one port per
//! request (what `kubectl port-forward` and bfctl ask), no SPDY.

use std::collections::BTreeMap;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::FakeApiServer;
use crate::store::status_response;

const PROTOCOL: &str = "v4.channel.k8s.io";

pub(crate) async fn handle(
    State(server): State<FakeApiServer>,
    Path((namespace, pod)): Path<(String, String)>,
    Query(query): Query<BTreeMap<String, String>>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let Some(port) = query.get("ports").and_then(|p| p.parse::<u16>().ok()) else {
        return status_response(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "query parameter \"ports\" is required: one port",
        );
    };
    let target = {
        let mut inner = server.lock();
        let exists = inner
            .objects
            .keys()
            .any(|k| k.1 == "pods" && k.2 == namespace && k.3 == pod);
        if !exists {
            return status_response(
                StatusCode::NOT_FOUND,
                "NotFound",
                &format!("pods \"{pod}\" not found"),
            );
        }
        inner
            .log
            .push(format!("PORTFORWARD Pod {namespace}/{pod}:{port}"));
        inner.pod_ports.get(&(pod.clone(), port)).copied()
    };
    upgrade
        .protocols([PROTOCOL])
        .on_upgrade(move |socket| forward(socket, pod, port, target))
        .into_response()
}

async fn forward(
    mut socket: WebSocket,
    pod: String,
    port: u16,
    target: Option<std::net::SocketAddr>,
) {
    let opening = port.to_le_bytes();
    for channel in [0u8, 1u8] {
        let frame = vec![channel, opening[0], opening[1]];
        if socket.send(Message::Binary(frame.into())).await.is_err() {
            return;
        }
    }
    let connected = match target {
        Some(address) => tokio::net::TcpStream::connect(address).await.ok(),
        None => None,
    };
    let Some(stream) = connected else {
        let mut frame = vec![1u8];
        frame.extend_from_slice(
            format!(
                "error forwarding port {port} to pod {pod}: failed to connect to localhost:{port}: connection refused"
            )
            .as_bytes(),
        );
        let _ = socket.send(Message::Binary(frame.into())).await;
        let _ = socket.send(Message::Close(None)).await;
        return;
    };
    let (mut from_pod, mut to_pod) = stream.into_split();
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        tokio::select! {
            read = from_pod.read(&mut buffer) => match read {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let mut frame = Vec::with_capacity(n + 1);
                    frame.push(0u8);
                    frame.extend_from_slice(&buffer[..n]);
                    if socket.send(Message::Binary(frame.into())).await.is_err() {
                        break;
                    }
                }
            },
            message = socket.recv() => match message {
                Some(Ok(Message::Binary(data))) => {
                    if data.first() == Some(&0) && data.len() > 1
                        && to_pod.write_all(&data[1..]).await.is_err()
                    {
                        break;
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
        }
    }
    let _ = to_pod.shutdown().await;
    let _ = socket.send(Message::Close(None)).await;
}
