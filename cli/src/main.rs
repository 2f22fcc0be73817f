//! `bfctl`: builds, deploys, inspects, tears down and load-tests the Black
//! Friday sales pipeline (gateway → producer → Kafka → consumer → Valkey).
//!
//! Every command is declared with its help; the ones whose issue is still
//! open say so and exit with an error.

use bfctl::{config, render};

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(name = "bfctl", version, about, long_about = None)]
struct Cli {
    /// Configuration file.
    #[arg(long, short = 'c', global = true, default_value = "bfctl.yaml")]
    config: PathBuf,
    /// Output format for commands that report.
    #[arg(long, global = true, value_enum, default_value_t = Output::Text)]
    output: Output,
    /// Show more detail (repeat for more).
    #[arg(long, short = 'v', global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Output {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Build and push images, install operators, apply the manifests in order and wait until ready.
    Up {
        /// Run the whole pipeline on this machine instead of a cluster.
        #[arg(long)]
        local: bool,
    },
    /// Show what runs, what is healthy, what lags and where to send traffic.
    Status {
        #[arg(long)]
        local: bool,
    },
    /// Remove everything in reverse order and list what is left.
    Teardown {
        #[arg(long)]
        local: bool,
    },
    /// Drive Black Friday load and report what the pipeline did.
    Loadtest,
    /// Render the Kubernetes manifests from the templates (to stdout, or one
    /// file per component, numbered in apply order, into a directory).
    Render {
        /// Directory to write into.
        #[arg(short = 'o', long = "out-dir", value_name = "DIR")]
        out_dir: Option<PathBuf>,
    },
    /// Build (and push) the service images.
    Build,
    /// Build and push the Valkey VM disk.
    Disk,
    /// Write or check the configuration file.
    #[command(subcommand)]
    Config(ConfigCommand),
}

#[derive(Subcommand, Debug)]
enum ConfigCommand {
    /// Write a commented example configuration (every key, with its default).
    Init {
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Parse and check the configuration; print it resolved, with warnings.
    Check,
}

impl Command {
    /// The open issue that delivers this command, if it is not done yet.
    fn pending_issue(&self) -> Option<u32> {
        Some(match self {
            Command::Up { local: true }
            | Command::Status { local: true }
            | Command::Teardown { local: true } => 6,
            Command::Loadtest => 6,
            Command::Up { .. } | Command::Status { .. } | Command::Teardown { .. } => 3,
            Command::Build => 4,
            Command::Disk => 5,
            Command::Config(_) | Command::Render { .. } => return None,
        })
    }
}

fn config_init(path: &Path, force: bool) -> anyhow::Result<()> {
    if path.exists() && !force {
        bail!("{} exists; pass --force to overwrite it", path.display());
    }
    std::fs::write(path, config::EXAMPLE).with_context(|| format!("writing {}", path.display()))?;
    eprintln!(
        "wrote {}: set registry.url and carnet, then run `bfctl config check`",
        path.display()
    );
    Ok(())
}

fn config_check(path: &Path, output: Output) -> anyhow::Result<()> {
    let config = config::Config::load(path)?;
    let warnings = config.warnings();
    match output {
        Output::Json => {
            let report = serde_json::json!({ "config": config, "warnings": warnings });
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
        Output::Text => {
            for warning in &warnings {
                eprintln!("warning: {warning}");
            }
            print!("{}", serde_yaml::to_string(&config)?);
            eprintln!("{}: ok", path.display());
        }
    }
    Ok(())
}

fn render_command(config_path: &Path, out_dir: Option<&Path>) -> anyhow::Result<()> {
    let config = config::Config::load(config_path)?;
    for warning in config.warnings() {
        eprintln!("warning: {warning}");
    }
    eprintln!(
        "note: images are rendered as :latest tags until `bfctl build --push` records digests (issue #4)"
    );
    let components = render::render(&config, &render::ImageRefs::unbuilt(&config))?;
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

fn run(cli: &Cli) -> anyhow::Result<()> {
    let _ = cli.verbose;
    match &cli.command {
        Command::Render { out_dir } => render_command(&cli.config, out_dir.as_deref()),
        Command::Config(ConfigCommand::Init { force }) => config_init(&cli.config, *force),
        Command::Config(ConfigCommand::Check) => config_check(&cli.config, cli.output),
        other => match other.pending_issue() {
            Some(issue) => bail!(
                "`{other:?}` is not implemented yet (issue #{issue}). Until then, `bash .ci/demo` runs the local pipeline with a load test."
            ),
            None => bail!("`{other:?}` has no implementation"),
        },
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("bfctl: {error:#}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_tree_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn each_unfinished_command_names_its_issue() {
        let cli = Cli::try_parse_from(["bfctl", "up", "--local"]).unwrap();
        assert_eq!(cli.command.pending_issue(), Some(6));
        let cli = Cli::try_parse_from(["bfctl", "teardown", "--output", "json"]).unwrap();
        assert_eq!(cli.command.pending_issue(), Some(3));
        let error = run(&cli).unwrap_err().to_string();
        assert!(error.contains("issue #3"), "{error}");
    }

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
