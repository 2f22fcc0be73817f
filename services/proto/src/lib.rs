//! The Black Friday wire contract.
//!
//! # Layout
//!
//! ```text
//! lib.rs       pb: the gRPC service blackfriday.ProductSaleService and its
//!              messages, generated from proto/blackfriday.proto; limits
//! category.rs  Category: the four product categories, by number or name
//! record.rs    how a sale is written to the Kafka topic `ventas` (versioned)
//! topics.rs    (feature `admin`) creating topics for local runs and tests
//! ```

pub mod record;
#[cfg(feature = "admin")]
pub mod topics;

mod category;

pub use category::{Category, UnknownCategory};

/// Code generated from `proto/blackfriday.proto`.
pub mod pb {
    tonic::include_proto!("blackfriday");
}

/// The Kafka topic every accepted sale is written to.
pub const SALES_TOPIC: &str = "ventas";

/// The most sales one `ProcesarVentas` call may carry; producers refuse more.
pub const MAX_SALES_PER_CALL: usize = 1000;

/// Where records that cannot be decoded go.
pub const DEAD_LETTER_TOPIC: &str = "ventas-dlq";
