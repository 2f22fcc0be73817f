//! The `docker` builder: a Dockerfile built by the Docker Engine through its
//! API (bollard), build output streamed to the progress display, then
//! tagged and pushed with the registry credentials. This is the path for
//! machines that cannot build Linux binaries natively.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use bollard::Docker;
use bollard::auth::DockerCredentials;
use bollard::query_parameters::{BuildImageOptionsBuilder, PushImageOptionsBuilder};
use futures_util::StreamExt;
use oci_client::secrets::RegistryAuth;

/// Folders never sent as build context (the cargo target dir alone is GBs).
const EXCLUDED: &[&str] = &["target", ".git", ".bfctl"];

#[derive(Debug, Clone)]
pub struct DockerBuild {
    /// The build context directory.
    pub context: PathBuf,
    /// The Dockerfile, relative to the context.
    pub dockerfile: String,
    /// `host/repo:tag` to tag (and push) the result as.
    pub tag: String,
    pub build_args: Vec<(String, String)>,
}

/// What the engine built and, when pushed, the digest the registry holds.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DockerBuilt {
    pub tag: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pushed_digest: Option<String>,
}

/// The context as a tar (sorted paths, so identical contexts send identical
/// bytes and the engine's cache hits), without what the context's
/// `.dockerignore` excludes (and never `target`, `.git` or `.bfctl`). The
/// Dockerfile is always sent, as the Docker CLI does.
pub fn context_tar(context: &Path, dockerfile: &Path) -> anyhow::Result<Vec<u8>> {
    let ignore = dockerignore(context)?;
    let mut files = Vec::new();
    collect(context, context, &ignore, &mut files)?;
    if context.join(dockerfile).is_file() && !files.iter().any(|f| f == dockerfile) {
        files.push(dockerfile.to_path_buf());
    }
    files.sort();
    let mut tar = tar::Builder::new(Vec::new());
    tar.follow_symlinks(false);
    for relative in files {
        let path = context.join(&relative);
        tar.append_path_with_name(&path, &relative)
            .with_context(|| format!("adding {} to the build context", path.display()))?;
    }
    tar.into_inner().context("finishing the build context")
}

/// The context's `.dockerignore` as a matcher (the `ignore` crate's
/// gitignore engine). Docker's patterns are relative to the context root,
/// so each is anchored there (`*.md` excludes `README.md`, not
/// `docs/x.md`; `**/*.md` excludes both); `!` re-includes, later lines win.
fn dockerignore(context: &Path) -> anyhow::Result<ignore::gitignore::Gitignore> {
    let mut builder = ignore::gitignore::GitignoreBuilder::new(context);
    for excluded in EXCLUDED {
        builder
            .add_line(None, &format!("/{excluded}"))
            .context("an exclusion of bfctl's own")?;
    }
    let path = context.join(".dockerignore");
    if path.is_file() {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (negation, pattern) = match line.strip_prefix('!') {
                Some(rest) => ("!", rest.trim()),
                None => ("", line),
            };
            let pattern = pattern.trim_start_matches("./").trim_start_matches('/');
            let anchored = if pattern.starts_with("**") {
                format!("{negation}{pattern}")
            } else {
                format!("{negation}/{pattern}")
            };
            builder
                .add_line(Some(path.clone()), &anchored)
                .with_context(|| {
                    format!(
                        "{}:{}: cannot read pattern {line:?}",
                        path.display(),
                        number + 1
                    )
                })?;
        }
    }
    builder
        .build()
        .with_context(|| format!("reading {}", path.display()))
}

fn collect(
    root: &Path,
    directory: &Path,
    ignore: &ignore::gitignore::Gitignore,
    files: &mut Vec<PathBuf>,
) -> anyhow::Result<()> {
    for entry in
        std::fs::read_dir(directory).with_context(|| format!("reading {}", directory.display()))?
    {
        let entry = entry?;
        let path = entry.path();
        let relative = path.strip_prefix(root)?.to_path_buf();
        let is_dir = entry.file_type()?.is_dir();
        if ignore.matched(&relative, is_dir).is_ignore() {
            continue;
        }
        if is_dir {
            collect(root, &path, ignore, files)?;
        } else {
            files.push(relative);
        }
    }
    Ok(())
}

fn credentials_for(host: &str, auth: &RegistryAuth) -> Option<DockerCredentials> {
    match auth {
        RegistryAuth::Basic(username, password) => Some(DockerCredentials {
            username: Some(username.clone()),
            password: Some(password.clone()),
            serveraddress: Some(host.to_string()),
            ..Default::default()
        }),
        RegistryAuth::Bearer(token) => Some(DockerCredentials {
            registrytoken: Some(token.clone()),
            serveraddress: Some(host.to_string()),
            ..Default::default()
        }),
        RegistryAuth::Anonymous => None,
    }
}

/// Builds `build` with the local engine; with `push`, pushes the tag.
pub async fn build_and_push(
    build: &DockerBuild,
    push: bool,
    auth: &RegistryAuth,
    mut progress: impl FnMut(&str),
) -> anyhow::Result<DockerBuilt> {
    let dockerfile = build.context.join(&build.dockerfile);
    if !dockerfile.is_file() {
        bail!(
            "Dockerfile {} not found (context {})",
            dockerfile.display(),
            build.context.display()
        );
    }
    let docker = Docker::connect_with_local_defaults()
        .context("connecting to the Docker Engine (is it running? DOCKER_HOST?)")?;
    docker
        .ping()
        .await
        .context("the Docker Engine does not answer (is it running? DOCKER_HOST?)")?;
    let context = context_tar(&build.context, Path::new(&build.dockerfile))?;
    let tag_reference = super::parse_reference(&build.tag)?;
    let host = tag_reference.registry().to_string();
    let args: HashMap<String, String> = build.build_args.iter().cloned().collect();
    let options = BuildImageOptionsBuilder::new()
        .dockerfile(&build.dockerfile)
        .t(&build.tag)
        .rm(true)
        .forcerm(true)
        .buildargs(&args)
        .build();
    let mut stream = docker.build_image(options, None, Some(bollard::body_full(context.into())));
    while let Some(message) = stream.next().await {
        let info = message.with_context(|| format!("docker build of {}", build.tag))?;
        if let Some(error) = info.error_detail.and_then(|e| e.message) {
            bail!("docker build of {} failed: {}", build.tag, error.trim());
        }
        if let Some(line) = info.stream {
            let line = line.trim();
            if !line.is_empty() {
                progress(line);
            }
        }
    }
    let mut built = DockerBuilt {
        tag: build.tag.clone(),
        pushed_digest: None,
    };
    if !push {
        return Ok(built);
    }
    let name = format!("{host}/{}", tag_reference.repository());
    let tag = tag_reference.tag().unwrap_or("latest");
    let options = PushImageOptionsBuilder::new().tag(tag).build();
    let mut stream = docker.push_image(&name, Some(options), credentials_for(&host, auth));
    while let Some(message) = stream.next().await {
        let info = message.with_context(|| format!("docker push of {}", build.tag))?;
        if let Some(error) = info.error_detail.and_then(|e| e.message) {
            bail!("docker push of {} failed: {}", build.tag, error.trim());
        }
        if let Some(status) = info.status {
            // The last status says "<tag>: digest: sha256:… size: N".
            if let Some(rest) = status.split("digest: ").nth(1) {
                built.pushed_digest = rest.split_whitespace().next().map(str::to_string);
            }
            progress(&status);
        }
    }
    if built.pushed_digest.is_none() {
        bail!("docker push of {} reported no digest", build.tag);
    }
    Ok(built)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(context: &Path) -> Vec<String> {
        let bytes = context_tar(context, Path::new("Dockerfile")).unwrap();
        let mut archive = tar::Archive::new(bytes.as_slice());
        archive
            .entries()
            .unwrap()
            .map(|entry| entry.unwrap().path().unwrap().display().to_string())
            .collect()
    }

    #[test]
    fn the_context_honours_dockerignore_as_docker_reads_it() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for file in [
            "Dockerfile",
            "README.md",
            "docs/guide.md",
            "src/main.rs",
            "secrets/key.pem",
            "secrets/public.pem",
            "target/debug/big",
            "logs/a.log",
            "logs/keep.log",
        ] {
            let path = root.join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, file).unwrap();
        }
        // Without a .dockerignore only bfctl's own exclusions apply.
        assert!(!sent(root).iter().any(|p| p.starts_with("target")));
        std::fs::write(
            root.join(".dockerignore"),
            "# comments and blank lines are skipped

*.md
secrets
!secrets/public.pem
logs/*.log
!logs/keep.log
Dockerfile
",
        )
        .unwrap();
        assert_eq!(
            sent(root),
            [
                ".dockerignore",
                "Dockerfile",
                "docs/guide.md",
                "logs/keep.log",
                "src/main.rs"
            ]
        );
    }
}
