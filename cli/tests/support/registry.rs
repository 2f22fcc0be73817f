//! Debian's `docker-registry` (the CNCF distribution registry) on 127.0.0.1
//! on a free port, storing in a temporary directory, optionally with
//! htpasswd authentication. Killed when dropped.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct TestRegistry {
    child: Child,
    pub host: String,
    _dir: tempfile::TempDir,
}

impl TestRegistry {
    /// Starts a registry; with `user`, it requires that user and password.
    pub fn start(user: Option<(&str, &str)>) -> TestRegistry {
        Self::start_with(user, None)
    }

    /// Starts a registry serving TLS with a certificate for 127.0.0.1 made
    /// by openssl; returns it and the certificate's PEM path (its own CA).
    pub fn start_tls() -> (TestRegistry, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = |name: &str| dir.path().join(name);
        let openssl = |args: &[&str]| {
            let status = Command::new("openssl")
                .current_dir(dir.path())
                .args(args)
                .stderr(Stdio::null())
                .stdout(Stdio::null())
                .status()
                .expect("openssl");
            assert!(status.success(), "openssl {args:?}");
        };
        // A CA, and a server certificate for 127.0.0.1 signed by it (TLS
        // clients refuse a CA certificate used as the server's own).
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=bfctl test CA",
            "-keyout",
            "ca-key.pem",
            "-out",
            "ca.pem",
        ]);
        openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "key.pem",
            "-out",
            "server.csr",
        ]);
        std::fs::write(
            path("ext.cnf"),
            "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
        )
        .unwrap();
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca-key.pem",
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            "ext.cnf",
            "-out",
            "cert.pem",
        ]);
        let (cert, key) = (path("cert.pem"), path("key.pem"));
        let registry = Self::start_with(None, Some((cert.clone(), key)));
        let kept = registry._dir.path().join("ca.pem");
        std::fs::copy(path("ca.pem"), &kept).unwrap();
        (registry, kept)
    }

    fn start_with(user: Option<(&str, &str)>, tls: Option<(PathBuf, PathBuf)>) -> TestRegistry {
        let dir = tempfile::tempdir().unwrap();
        let htpasswd = user.map(|(name, password)| {
            let htpasswd = dir.path().join("htpasswd");
            let status = Command::new("htpasswd")
                .args(["-Bbc"])
                .arg(&htpasswd)
                .args([name, password])
                .stderr(Stdio::null())
                .status()
                .expect("htpasswd (apache2-utils) is installed by .ci/install-deps");
            assert!(status.success());
            htpasswd
        });
        Self::start_on(free_port(), htpasswd.as_deref(), tls, Some(dir))
    }

    /// Starts a registry on 127.0.0.1:`port` with an htpasswd file and a
    /// TLS certificate and key made elsewhere (bfctl's, for the registry it
    /// provides).
    pub fn start_on(
        port: u16,
        htpasswd: Option<&std::path::Path>,
        tls: Option<(PathBuf, PathBuf)>,
        dir: Option<tempfile::TempDir>,
    ) -> TestRegistry {
        let dir = dir.unwrap_or_else(|| tempfile::tempdir().unwrap());
        let host = format!("127.0.0.1:{port}");
        let mut config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {host}\n",
            dir.path().join("data").display()
        );
        // `tls` belongs to `http`, which the text ends with so far.
        if let Some((cert, key)) = &tls {
            config.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                cert.display(),
                key.display()
            ));
        }
        if let Some(htpasswd) = htpasswd {
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: bfctl-test\n    path: {}\n",
                htpasswd.display()
            ));
        }
        let config_path: PathBuf = dir.path().join("config.yml");
        std::fs::write(&config_path, config).unwrap();
        let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config_path)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("docker-registry is installed by .ci/install-deps");
        let registry = TestRegistry {
            child,
            host,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(&registry.host).is_err() {
            assert!(
                Instant::now() < deadline,
                "the registry did not start: {}",
                std::fs::read_to_string(registry._dir.path().join("registry.log"))
                    .unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        registry
    }
}

/// A free port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
