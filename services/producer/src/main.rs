//! The `producer` binary: see the library (`lib.rs`) for what it does. The
//! same code runs as `bfctl service producer` in the local pipeline.

fn main() -> anyhow::Result<()> {
    producer::run(std::env::args_os().collect())
}
