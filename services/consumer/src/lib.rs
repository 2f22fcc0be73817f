//! The consumer: a member of the Kafka consumer group on topic `ventas` that
//! keeps the dashboard's aggregates in Valkey with exactly-once effect.
//!
//! * [`group`]: polling, rebalances and resyncs, the heart of exactly-once;
//! * [`aggregate`]: folding a batch of sales into the changes Valkey makes;
//! * [`store`] with `apply.lua`: the atomic apply and the stored offsets;
//! * [`dead_letter`]: where undecodable records go;
//! * [`metrics`]: what `/metrics` shows;
//! * [`cli`]: the command line, [`run`] by the binary and by `bfctl service consumer`.
//!
//! docs/valkey-schema.md lists every key written.

pub mod aggregate;
pub mod cli;
pub mod dead_letter;
pub mod group;
pub mod metrics;
pub mod store;

pub use cli::run;
