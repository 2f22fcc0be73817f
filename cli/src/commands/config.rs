//! `bfctl config init | check`: write the commented example, or parse and
//! show the configuration with its warnings.

use super::prelude::*;

pub(crate) fn config_init(path: &Path, force: bool) -> anyhow::Result<()> {
    if path.exists() && !force {
        bail!("{} exists; pass --force to overwrite it", path.display());
    }
    std::fs::write(path, config::EXAMPLE).with_context(|| format!("writing {}", path.display()))?;
    crate::note!(
        "wrote {}: set registry.url and carnet, then run `bfctl config check`",
        path.display()
    );
    Ok(())
}

pub(crate) fn config_check(path: &Path, output: Output) -> anyhow::Result<()> {
    let config = config::Config::load(path)?;
    let warnings = config.warnings();
    match output {
        Output::Json => {
            let report = serde_json::json!({ "config": config, "warnings": warnings });
            crate::out!("{}", serde_json::to_string_pretty(&report)?);
        }
        Output::Text => {
            for warning in &warnings {
                crate::note!("warning: {warning}");
            }
            crate::out_partial!("{}", crate::yaml::to_string(&config)?);
            crate::note!("{}: ok", path.display());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_init_writes_a_checkable_example_and_never_clobbers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bfctl.yaml");
        config_init(&path, false).unwrap();
        assert!(config::Config::load(&path).is_ok());
        std::fs::write(&path, "mine").unwrap();
        let error = config_init(&path, false).unwrap_err().to_string();
        assert!(error.contains("--force"), "{error}");
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "mine",
            "nothing lost"
        );
        config_init(&path, true).unwrap();
        assert!(config_check(&path, Output::Json).is_ok());
    }
}
