//! `bfctl render`: the manifests, to stdout or one file per component.

use super::prelude::*;

pub(crate) fn render_command(config_path: &Path, out_dir: Option<&Path>) -> anyhow::Result<()> {
    let config = config::Config::load(config_path)?;
    for warning in config.deploy_warnings() {
        eprintln!("warning: {warning}");
    }
    let state = crate::image::ImageState::load(Path::new(STATE_DIR))?;
    let (images, missing) = render::ImageRefs::resolve(&config, &state);
    if !missing.is_empty() {
        eprintln!(
            "note: no pushed digest recorded for {} (run `bfctl build --push` and `bfctl disk push`); rendered as :latest",
            missing.join(", ")
        );
    }
    let components = render::render(&config, &images)?;
    match out_dir {
        Some(dir) => {
            for path in render::write_to_dir(&components, dir)? {
                eprintln!("wrote {}", path.display());
            }
        }
        None => {
            for component in &components {
                for object in &component.objects {
                    print!("---\n{}", serde_yaml::to_string(object)?);
                }
            }
        }
    }
    Ok(())
}
