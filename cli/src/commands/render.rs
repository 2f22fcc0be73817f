//! `bfctl render`: the manifests, to stdout or one file per component.

use super::prelude::*;

pub(crate) fn render_command(
    cli: &Cli,
    config_path: &Path,
    out_dir: Option<&Path>,
) -> anyhow::Result<()> {
    let mut config = config::Config::load(config_path)?;
    crate::registry::store::resolve(&mut config, &cli.state_dir)?;
    for warning in config.deploy_warnings() {
        crate::note!("warning: {warning}");
    }
    let state = crate::build::image::ImageState::load(&cli.state_dir)?;
    let (images, missing) = crate::build::image_refs(&config, &state);
    if !missing.is_empty() {
        crate::note!(
            "note: no pushed digest recorded for {} (run `bfctl build --push` and `bfctl disk push`); rendered as :latest",
            missing.join(", ")
        );
    }
    let components = render::render(&config, &images)?;
    match out_dir {
        Some(dir) => {
            for path in render::write_to_dir(&components, dir)? {
                crate::note!("wrote {}", path.display());
            }
        }
        None => {
            for component in &components {
                for object in &component.objects {
                    crate::out_partial!("---\n{}", crate::yaml::to_string(object)?);
                }
            }
        }
    }
    Ok(())
}
