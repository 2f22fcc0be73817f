//! What people look at: the dashboard's panels (one definition for Grafana
//! and for the local page), the data frames Grafana's Redis data source
//! makes of Valkey's replies, and the live page `bfctl dashboard` serves.
//!
//! ```text
//! panels.rs   the panels: query (a plugin command), transformations,
//!             visualization; the Grafana dashboard JSON made from them
//! frame.rs    the plugin's frames per command, Grafana's transformations
//! live.rs     one atomic read of every panel + the pipeline's figures
//! server.rs   the page on 127.0.0.1 (page.html polls /api/snapshot)
//! ```

pub mod frame;
pub mod live;
pub mod panels;
pub mod server;

pub use panels::{Panel, grafana_dashboard, panels};
