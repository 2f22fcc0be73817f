//! The test harness: real servers on 127.0.0.1 for the tests and the
//! benchmarks (a dev-dependency only; what bfctl itself runs is in
//! `localrun`, re-exported here).
//!
//! * [`binaries`]: the workspace's service binaries, built first;
//! * [`pipeline`]: a whole pipeline under a temporary directory.

pub mod binaries;
pub mod pipeline;

pub use localrun::{broker, catalog, free_port, http_load, process, totals, valkey, wait_for};
