//! The `gateway` binary: see the library (`lib.rs`) for what it does. The
//! same code runs as `bfctl service gateway` in the local pipeline.

fn main() -> anyhow::Result<()> {
    gateway::run(std::env::args_os().collect())
}
