//! What bfctl keeps of the registry it provides, in `.bfctl/registry/`:
//!
//! ```text
//! registry.json     where it is (address, host, url), what was created
//! ca.pem            the CA the cluster and bfctl trust
//! ca-key.pem        0600: signs rotated server certificates
//! server.pem        the server certificate (also in Secret Manager)
//! server-key.pem    0600 (also in Secret Manager, for the VM)
//! htpasswd          0600: bcrypt hashes (also in Secret Manager)
//! accounts.json     0600: the push and pull accounts' passwords
//! ```
//!
//! `build --push`, `disk push` and `up` read `registry.json` for the URL
//! and push with the push account, trusting `ca.pem`: no `docker login`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::accounts::Accounts;
use super::pki::Pair;
use crate::files::{write_atomically, write_private};
use crate::plan::config::{Config, CredentialSource};
use crate::plan::registry::RegistryKind;

/// `registry.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Recorded {
    /// `zot` or `artifact-registry`.
    pub kind: String,
    pub project: String,
    /// The zone (zot) or location (Artifact Registry).
    pub location: String,
    pub name: String,
    /// The static address (zot).
    #[serde(default)]
    pub address: String,
    /// `host[:port]` images are pushed to and pulled from.
    pub host: String,
    /// `host[:port]/path`: what `registry.url` becomes.
    pub url: String,
    /// Where the cluster pulls from (the internal address), when it
    /// differs from `host`.
    #[serde(default)]
    pub pull_host: String,
    #[serde(default)]
    pub pull_url: String,
}

/// The registry's files.
pub struct Store {
    pub dir: PathBuf,
}

impl Store {
    /// The store under a state directory (`.bfctl`).
    pub fn under(state_dir: &Path) -> Store {
        Store {
            dir: state_dir.join("registry"),
        }
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    fn ensure_dir(&self) -> anyhow::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("creating {}", self.dir.display()))?;
        std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("making {} private", self.dir.display()))
    }

    pub fn recorded(&self) -> anyhow::Result<Option<Recorded>> {
        self.json("registry.json")
    }

    /// A JSON file bfctl wrote, when it exists.
    fn json<T: serde::de::DeserializeOwned>(&self, file: &str) -> anyhow::Result<Option<T>> {
        let path = self.path(file);
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text)
                .map(Some)
                .with_context(|| format!("{} is not what bfctl wrote", path.display())),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(error).with_context(|| format!("reading {}", path.display())),
        }
    }

    pub fn record(&self, recorded: &Recorded) -> anyhow::Result<()> {
        self.ensure_dir()?;
        write_atomically(
            &self.path("registry.json"),
            serde_json::to_string_pretty(recorded)?.as_bytes(),
        )
    }

    /// A certificate and its key (`NAME.pem`, `NAME-key.pem`), when made.
    fn pair(&self, name: &str) -> anyhow::Result<Option<Pair>> {
        let certificate = self.path(&format!("{name}.pem"));
        if !certificate.exists() {
            return Ok(None);
        }
        Ok(Some(Pair {
            certificate_pem: read(&certificate)?,
            key_pem: read(&self.path(&format!("{name}-key.pem")))?,
        }))
    }

    /// Writes a certificate, and its key readable by the owner only.
    fn save_pair(&self, name: &str, pair: &Pair) -> anyhow::Result<()> {
        self.ensure_dir()?;
        write_atomically(
            &self.path(&format!("{name}.pem")),
            pair.certificate_pem.as_bytes(),
        )?;
        write_private(
            &self.path(&format!("{name}-key.pem")),
            pair.key_pem.as_bytes(),
        )
    }

    /// The CA, when one was made.
    pub fn ca(&self) -> anyhow::Result<Option<Pair>> {
        self.pair("ca")
    }

    pub fn save_ca(&self, ca: &Pair) -> anyhow::Result<()> {
        self.save_pair("ca", ca)
    }

    /// The server certificate, when one was made.
    pub fn server(&self) -> anyhow::Result<Option<Pair>> {
        self.pair("server")
    }

    pub fn save_server(&self, server: &Pair) -> anyhow::Result<()> {
        self.save_pair("server", server)
    }

    pub fn accounts(&self) -> anyhow::Result<Option<Accounts>> {
        self.json("accounts.json")
    }

    /// The accounts and their htpasswd file.
    pub fn save_accounts(&self, accounts: &Accounts) -> anyhow::Result<()> {
        self.ensure_dir()?;
        write_private(
            &self.path("accounts.json"),
            serde_json::to_string_pretty(accounts)?.as_bytes(),
        )?;
        write_private(&self.path("htpasswd"), accounts.htpasswd()?.as_bytes())
    }

    /// Forgets everything (after `registry delete`).
    pub fn remove(&self) -> anyhow::Result<()> {
        match std::fs::remove_dir_all(&self.dir) {
            Ok(()) => Ok(()),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(error) => Err(error).with_context(|| format!("removing {}", self.dir.display())),
        }
    }
}

fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

/// Points a configuration at the registry bfctl provides: its URL (unless
/// bfctl.yaml names one) and bfctl's own credentials. Without a record, the
/// URL stays empty and [`require_url`] says what to run.
pub fn resolve(config: &mut Config, state_dir: &Path) -> anyhow::Result<()> {
    if config.registry.kind == RegistryKind::External {
        return Ok(());
    }
    let store = Store::under(state_dir);
    if let Some(recorded) = store.recorded()? {
        if config.registry.url.is_empty() {
            config.registry.url = recorded.url;
            config.registry.pull_url = recorded.pull_url;
        }
        if config.registry.kind == RegistryKind::Zot {
            config.registry.credentials = CredentialSource::Provided;
        }
    }
    if config.registry.kind == RegistryKind::ArtifactRegistry {
        // Its URL follows from bfctl.yaml alone.
        if config.registry.url.is_empty()
            && let Ok(plan) = super::artifact::ArtifactPlan::of(config)
        {
            config.registry.url = plan.url();
        }
        config.registry.credentials = CredentialSource::Provided;
    }
    Ok(())
}

/// The registry URL, or what to run to have one.
pub fn require_url(config: &Config) -> anyhow::Result<&str> {
    if config.registry.url.is_empty() {
        anyhow::bail!(
            "registry.kind is {}, and no registry was created yet: run `bfctl registry create` first (it records the registry's address in .bfctl/registry/)",
            serde_json::to_value(config.registry.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default()
        );
    }
    Ok(&config.registry.url)
}
