//! HTTPS for the fake: a CA of its own and a certificate for 127.0.0.1
//! that it signs (rcgen), served with rustls, so a client verifies the
//! server as it would a real cluster's (GKE's `clusterCaCertificate`).

use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};

pub(crate) struct Certificates {
    pub(crate) ca_pem: String,
    cert_der: Vec<u8>,
    key_der: Vec<u8>,
}

pub(crate) fn certificates() -> Certificates {
    let ca_key = KeyPair::generate().expect("a CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "fake-apiserver CA");
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key).expect("the CA certificate");
    let key = KeyPair::generate().expect("a server key");
    let params = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .expect("server parameters");
    let cert = params.signed_by(&key, &ca).expect("the server certificate");
    Certificates {
        ca_pem: ca.pem(),
        cert_der: cert.der().to_vec(),
        key_der: key.serialize_der(),
    }
}

pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    certificates: Certificates,
    shutdown: Arc<tokio::sync::Notify>,
) {
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_no_client_auth()
    .with_single_cert(
        vec![certificates.cert_der.into()],
        rustls::pki_types::PrivateKeyDer::Pkcs8(certificates.key_der.into()),
    )
    .expect("the server certificate and key");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((tcp, _)) = accepted else { continue };
                let (acceptor, app) = (acceptor.clone(), app.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else { return };
                    let service = hyper_util::service::TowerToHyperService::new(app);
                    let _ = hyper_util::server::conn::auto::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .serve_connection_with_upgrades(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
                });
            }
            _ = shutdown.notified() => return,
        }
    }
}
