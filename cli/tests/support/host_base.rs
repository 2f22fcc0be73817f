//! A base image made of this host's glibc files (no image can be pulled
//! from outside here), pushed to a test registry; the builder then reads it
//! by digest like any base.

use bfctl::build::image::layer::{self, LayerFile};
use bfctl::build::image::oci::{self, Base, ImageSpec};
use bfctl::build::image::registry::{RegistryClient, RegistryOptions};
use oci_client::secrets::RegistryAuth;

use super::registry::TestRegistry;

/// A base image holding this host's dynamic loader and the libraries the
/// services link against, plus a passwd with the nonroot user.
pub async fn push_host_base(registry: &TestRegistry) -> String {
    let anonymous = RegistryOptions {
        insecure: false,
        ca_files: Vec::new(),
        auth: RegistryAuth::Anonymous,
    };
    push_host_base_with(&registry.host, &anonymous).await
}

/// [`push_host_base`] to `host` reached with `options`.
pub async fn push_host_base_with(host: &str, options: &RegistryOptions) -> String {
    let mut files = vec![LayerFile {
        path: "/etc/passwd".into(),
        mode: 0o644,
        uid: 0,
        gid: 0,
        data: b"root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n".to_vec(),
    }];
    for path in [
        "/lib64/ld-linux-x86-64.so.2",
        "/lib/x86_64-linux-gnu/libc.so.6",
        "/lib/x86_64-linux-gnu/libm.so.6",
        "/lib/x86_64-linux-gnu/libgcc_s.so.1",
        "/lib/x86_64-linux-gnu/libz.so.1",
    ] {
        files.push(LayerFile {
            path: path.into(),
            mode: 0o755,
            uid: 0,
            gid: 0,
            data: std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}")),
        });
    }
    let layer = layer::build(&files, 0).unwrap();
    let spec = ImageSpec {
        entrypoint: Vec::new(),
        exposed_ports: Vec::new(),
        user: "65532:65532".into(),
        env: vec!["PATH=/usr/local/bin:/usr/bin:/bin".into()],
        labels: Vec::new(),
        created: oci::rfc3339(0),
    };
    let image = oci::assemble(&spec, &Base::default(), vec![layer]).unwrap();
    let repository = format!("{host}/base");
    let client = RegistryClient::new(host, options).unwrap();
    client.push(&repository, &image).await.unwrap().reference
}
