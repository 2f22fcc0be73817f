//! The `consumer` binary: see the library (`lib.rs`) for what it does. The
//! same code runs as `bfctl service consumer` in the local pipeline.

fn main() -> anyhow::Result<()> {
    consumer::run(std::env::args_os().collect())
}
