//! Registry credentials: from the environment (`BFCTL_REGISTRY_USERNAME`,
//! `BFCTL_REGISTRY_PASSWORD`), or from the Docker config file the way the
//! docker CLI reads it (`auths` entries, then `credHelpers`/`credsStore`
//! helpers run as `docker-credential-<name> get`).

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{Context, bail};
use base64::Engine as _;
use oci_client::secrets::RegistryAuth;
use serde_json::Value;

use crate::plan::config::CredentialSource;

pub const USERNAME_VARIABLE: &str = "BFCTL_REGISTRY_USERNAME";
pub const PASSWORD_VARIABLE: &str = "BFCTL_REGISTRY_PASSWORD";

/// The credentials for `host` from `source`.
pub fn for_registry(host: &str, source: CredentialSource) -> anyhow::Result<RegistryAuth> {
    match source {
        CredentialSource::None => Ok(RegistryAuth::Anonymous),
        CredentialSource::Env => match (
            std::env::var(USERNAME_VARIABLE),
            std::env::var(PASSWORD_VARIABLE),
        ) {
            (Ok(user), Ok(password)) => Ok(RegistryAuth::Basic(user, password)),
            _ => bail!(
                "registry.credentials is env, but {USERNAME_VARIABLE} and {PASSWORD_VARIABLE} are not both set"
            ),
        },
        CredentialSource::DockerConfig => from_docker_config(host, &docker_config_path()),
        CredentialSource::Provided => bail!(
            "the registry bfctl provides has its own credentials (.bfctl/registry/); they are not read here"
        ),
    }
}

/// `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
pub fn docker_config_path() -> PathBuf {
    std::env::var_os("DOCKER_CONFIG")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".docker")))
        .unwrap_or_else(|| PathBuf::from(".docker"))
        .join("config.json")
}

/// Reads `host`'s credentials from a Docker config file; anonymous when the
/// file or the entry is absent.
pub fn from_docker_config(host: &str, path: &std::path::Path) -> anyhow::Result<RegistryAuth> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Ok(RegistryAuth::Anonymous);
        }
        Err(error) => return Err(error).with_context(|| format!("reading {}", path.display())),
    };
    let config: Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    let helper = config
        .pointer(&format!(
            "/credHelpers/{}",
            host.replace('~', "~0").replace('/', "~1")
        ))
        .or_else(|| config.get("credsStore"))
        .and_then(Value::as_str);
    if let Some(entry) = config.get("auths").and_then(|auths| {
        auths
            .get(host)
            .or_else(|| auths.get(format!("https://{host}")))
            .or_else(|| auths.get(format!("http://{host}")))
    }) && let Some(encoded) = entry.get("auth").and_then(Value::as_str)
    {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .with_context(|| format!("{}: auths.{host}.auth is not base64", path.display()))?;
        let decoded = String::from_utf8(decoded)
            .with_context(|| format!("{}: auths.{host}.auth is not UTF-8", path.display()))?;
        let (user, password) = decoded.split_once(':').with_context(|| {
            format!("{}: auths.{host}.auth is not user:password", path.display())
        })?;
        return Ok(RegistryAuth::Basic(user.to_string(), password.to_string()));
    }
    match helper {
        Some(helper) => from_helper(helper, host),
        None => Ok(RegistryAuth::Anonymous),
    }
}

/// Runs `docker-credential-<helper> get` with the host on stdin.
fn from_helper(helper: &str, host: &str) -> anyhow::Result<RegistryAuth> {
    let program = format!("docker-credential-{helper}");
    let mut child = Command::new(&program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("running credential helper {program} (from the Docker config)"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(host.as_bytes())?;
    }
    let output = child.wait_with_output()?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        if stderr.contains("credentials not found") {
            return Ok(RegistryAuth::Anonymous);
        }
        bail!("{program} get {host}: {}", stderr.trim());
    }
    let answer: Value = serde_json::from_slice(&output.stdout)
        .with_context(|| format!("{program} printed something that is not JSON"))?;
    let text = |key: &str| {
        answer
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    Ok(RegistryAuth::Basic(text("Username"), text("Secret")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auths_entries_and_helpers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        let encoded = base64::engine::general_purpose::STANDARD.encode("ana:s3cret");
        std::fs::write(
            &path,
            format!(r#"{{"auths": {{"127.0.0.1:5000": {{"auth": "{encoded}"}}}}}}"#),
        )
        .unwrap();
        assert_eq!(
            from_docker_config("127.0.0.1:5000", &path).unwrap(),
            RegistryAuth::Basic("ana".into(), "s3cret".into())
        );
        assert_eq!(
            from_docker_config("other:5000", &path).unwrap(),
            RegistryAuth::Anonymous
        );
        std::fs::write(
            &path,
            r#"{"credHelpers": {"reg.example": "bfctl-test-missing"}}"#,
        )
        .unwrap();
        let error = from_docker_config("reg.example", &path).unwrap_err();
        assert!(
            format!("{error:#}").contains("docker-credential-bfctl-test-missing"),
            "{error:#}"
        );
        assert_eq!(
            from_docker_config("x", &dir.path().join("absent.json")).unwrap(),
            RegistryAuth::Anonymous
        );
    }
}
