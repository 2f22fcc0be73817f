//! `bfctl`: builds, deploys, inspects, tears down and load-tests the Black
//! Friday sales pipeline (gateway → producer → Kafka → consumer → Valkey).
//!
//! This is the command skeleton: every command is declared with its help, and
//! the ones whose issue is still open say so and exit with an error.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(name = "bfctl", version, about, long_about = None)]
struct Cli {
    /// Configuration file.
    #[arg(long, short = 'c', global = true, default_value = "bfctl.yaml")]
    config: PathBuf,
    /// Output format for commands that report.
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = Output::Text)]
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
    /// Render the Kubernetes manifests from the templates.
    Render,
    /// Build (and push) the service images.
    Build,
    /// Build and push the Valkey VM disk.
    Disk,
}

impl Command {
    /// The open issue that delivers this command.
    fn issue(&self) -> u32 {
        match self {
            Command::Up { local: true }
            | Command::Status { local: true }
            | Command::Teardown { local: true } => 6,
            Command::Loadtest => 6,
            Command::Up { .. }
            | Command::Status { .. }
            | Command::Teardown { .. }
            | Command::Render => 3,
            Command::Build => 4,
            Command::Disk => 5,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let _ = (&cli.config, cli.output, cli.verbose);
    eprintln!(
        "bfctl: `{:?}` is not implemented yet (issue #{}). Until then, `bash .ci/demo` runs the local pipeline with a load test.",
        cli.command,
        cli.command.issue()
    );
    ExitCode::from(2)
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
        assert_eq!(cli.command.issue(), 6);
        let cli = Cli::try_parse_from(["bfctl", "render", "-o", "json"]).unwrap();
        assert_eq!(cli.command.issue(), 3);
    }
}
