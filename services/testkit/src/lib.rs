//! The test harness: real servers on 127.0.0.1 for the tests and the
//! benchmarks (a dev-dependency only; what bfctl itself runs is in
//! `localrun`, re-exported here).
//!
//! # Layout
//!
//! ```text
//! binaries.rs  the workspace's service binaries, built by cargo first
//! pipeline.rs  a whole pipeline under a temporary directory
//! ```

pub mod binaries;
pub mod pipeline;

pub use localrun::{broker, catalog, free_port, http_load, process, totals, valkey, wait_for};
