//! Running the `bfctl` binary against a fake cluster, as a user would: a
//! fake API server, the operator release files served with their pins, and
//! a directory holding the kubeconfig and a bfctl.yaml.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bfctl::plan::operators::sha256_hex;

use super::release_files::{release_files, serve_files};
use fake_apiserver::FakeApiServer;

/// One run of the binary.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

/// The binary under test: this build's, or the one `BFCTL_BIN` names (to
/// show that a test fails against an older bfctl).
pub fn binary() -> std::path::PathBuf {
    std::env::var_os("BFCTL_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_bfctl")))
}

/// Runs `bfctl --kubeconfig K --cache-dir DIR/cache ARGS` in `dir` and
/// prints the transcript (shown with `--nocapture`).
pub async fn bfctl(dir: &Path, kubeconfig: &Path, args: &[&str]) -> Run {
    bfctl_with_cache(dir, kubeconfig, &dir.join("cache"), args).await
}

/// [`bfctl`] with another operator cache.
pub async fn bfctl_with_cache(dir: &Path, kubeconfig: &Path, cache: &Path, args: &[&str]) -> Run {
    let mut command = tokio::process::Command::new(binary());
    command
        .current_dir(dir)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--cache-dir")
        .arg(cache);
    run(command, args).await
}

/// Runs `command` with `args` (no input) and prints the transcript.
pub async fn run(mut command: tokio::process::Command, args: &[&str]) -> Run {
    let started = Instant::now();
    let output = command
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .expect("running bfctl");
    let run = Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        elapsed: started.elapsed(),
    };
    eprintln!(
        "$ bfctl {}    # exit {}, {:.2}s\n{}{}",
        args.join(" "),
        run.code,
        run.elapsed.as_secs_f64(),
        run.stderr,
        run.stdout
    );
    run
}

/// A fake cluster and a directory with its kubeconfig and a bfctl.yaml
/// (`extra` configuration lines added).
pub struct FakeCluster {
    pub api: FakeApiServer,
    pub dir: tempfile::TempDir,
    pub kubeconfig: PathBuf,
    /// The operator mirror's URL and the pins, for more bfctl.yaml files.
    operators: String,
}

impl FakeCluster {
    pub async fn start(extra: &str) -> FakeCluster {
        let api =
            FakeApiServer::start(Duration::from_millis(100), "gke-l7-global-external-managed")
                .await;
        Self::start_with(api, extra).await
    }

    /// [`FakeCluster::start`] with the API server behind TLS, its
    /// certificate signed by a CA of its own (`api.ca_pem`).
    pub async fn start_tls(extra: &str) -> FakeCluster {
        let api =
            FakeApiServer::start_tls(Duration::from_millis(100), "gke-l7-global-external-managed")
                .await;
        Self::start_with(api, extra).await
    }

    async fn start_with(api: FakeApiServer, extra: &str) -> FakeCluster {
        let files = release_files();
        let pins: String = files
            .iter()
            .map(|(name, bytes)| format!("    {name}: {}\n", sha256_hex(bytes)))
            .collect();
        let (mirror, _) = serve_files(files).await;
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = api.kubeconfig(dir.path());
        let cluster = FakeCluster {
            api,
            dir,
            kubeconfig,
            operators: format!("operators:\n  mirror: {mirror}\n  sha256:\n{pins}"),
        };
        cluster.write_config("bfctl.yaml", extra);
        cluster
    }

    /// Writes another bfctl.yaml (in the same directory) for the same
    /// cluster; returns its path. `extra` may bring its own `registry:`.
    pub fn write_config(&self, name: &str, extra: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        let registry = if extra.contains("registry:") {
            ""
        } else {
            "registry:\n  url: zot.example.com/bf\n"
        };
        std::fs::write(
            &path,
            format!("{registry}carnet: \"201900006\"\n{extra}{}", self.operators),
        )
        .unwrap();
        path
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Runs bfctl in the cluster's directory.
    pub async fn bfctl(&self, args: &[&str]) -> Run {
        bfctl(self.path(), &self.kubeconfig, args).await
    }
}
