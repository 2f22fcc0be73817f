//! The consumer: a member of the Kafka consumer group on topic `ventas` that
//! keeps the dashboard's aggregates in Valkey with exactly-once effect.
//!
//! # Layout
//!
//! ```text
//! group.rs        polling, rebalances and resyncs: the heart of exactly-once
//! aggregate.rs    a batch of sales folded into the changes Valkey makes
//! store.rs        the atomic apply (apply.lua) and the stored offsets
//! apply.lua       the one script that writes aggregates and offsets together
//! dead_letter.rs  where undecodable records go
//! metrics.rs      what /metrics shows
//! cli.rs          the command line; run, by the binary and `bfctl service consumer`
//! ```
//!
//! docs/valkey-schema.md lists every key written.

pub mod aggregate;
pub mod cli;
pub mod dead_letter;
pub mod group;
pub mod metrics;
pub mod store;

pub use cli::run;
