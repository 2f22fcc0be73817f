//! `bfctl`: builds, deploys, inspects, tears down and load-tests the Black
//! Friday sales pipeline (gateway → producer → Kafka → consumer → Valkey).
//! Parsing is in `bfctl::cli`, the commands in `bfctl::commands`; this file
//! only wires them and turns the outcome into an exit status
//! (`bfctl::exit`: 0 done, 1 a check failed, 2 error, 130 interrupted).

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = bfctl::cli::Cli::parse();
    match bfctl::commands::run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            bfctl::output::error(&error);
            ExitCode::from(bfctl::exit::code_of(&error))
        }
    }
}
