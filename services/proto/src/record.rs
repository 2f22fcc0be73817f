//! The Kafka record format of topic `ventas`, and the validated [`Sale`].
//!
//! # Encoding, version 1
//!
//! * **key**: the sale id (`venta_id`, a UUIDv7 made by the gateway). Sale ids
//!   are unique, so records spread evenly over all partitions whatever the
//!   product mix; nothing downstream needs per-product ordering (the price
//!   series is ordered by the sale's own timestamp).
//! * **value**: one version byte, `0x01`, followed by a protobuf-encoded
//!   [`ProductSaleRequest`](crate::pb::ProductSaleRequest) with every field set.
//!
//! A reader that meets another version byte must not guess: it sends the
//! record to the dead-letter topic. A future version 2 gets a new byte, and
//! consumers learn to read it before producers start writing it.

use prost::Message;

use crate::Category;
use crate::pb::ProductSaleRequest;

/// The first byte of every version-1 record value.
pub const RECORD_VERSION_1: u8 = 1;

/// Largest accepted price, so that amounts in cents fit comfortably in an i64.
pub const MAX_PRICE: f64 = 1_000_000_000.0;
/// Accepted quantities per sale.
pub const QUANTITY_RANGE: std::ops::RangeInclusive<i32> = 1..=10_000;
/// Longest accepted product id, in characters.
pub const MAX_PRODUCT_ID_CHARS: usize = 128;
/// Longest accepted sale id, in characters.
pub const MAX_SALE_ID_CHARS: usize = 64;

/// A sale whose every field was checked. Prices are kept in integer cents so
/// that sums are exact whatever order sales are added in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sale {
    pub sale_id: String,
    pub category: Category,
    pub product_id: String,
    pub price_cents: i64,
    pub quantity: i32,
    pub timestamp_ms: i64,
}

/// A field of a sale that is out of range, named as in the JSON and protobuf.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct InvalidField {
    pub field: &'static str,
    pub problem: String,
}

impl InvalidField {
    fn new(field: &'static str, problem: impl Into<String>) -> InvalidField {
        InvalidField {
            field,
            problem: problem.into(),
        }
    }
}

/// Why a record value could not be turned into a [`Sale`].
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("empty record value")]
    Empty,
    #[error("unsupported record version {0} (this build reads version {RECORD_VERSION_1})")]
    UnsupportedVersion(u8),
    #[error("malformed protobuf payload: {0}")]
    Protobuf(#[from] prost::DecodeError),
    #[error("invalid sale: {0}")]
    Invalid(#[from] InvalidField),
}

/// Checks a price and converts it to cents (rounded half away from zero).
pub fn price_to_cents(price: f64) -> Result<i64, InvalidField> {
    if !price.is_finite() {
        return Err(InvalidField::new("precio", "must be a finite number"));
    }
    if price <= 0.0 {
        return Err(InvalidField::new("precio", "must be greater than 0"));
    }
    if price > MAX_PRICE {
        return Err(InvalidField::new(
            "precio",
            format!("must be at most {MAX_PRICE}"),
        ));
    }
    let cents = (price * 100.0).round() as i64;
    if cents == 0 {
        return Err(InvalidField::new("precio", "must be at least 0.01"));
    }
    Ok(cents)
}

/// Checks a quantity against [`QUANTITY_RANGE`].
pub fn check_quantity(quantity: i64) -> Result<i32, InvalidField> {
    i32::try_from(quantity)
        .ok()
        .filter(|q| QUANTITY_RANGE.contains(q))
        .ok_or_else(|| {
            InvalidField::new(
                "cantidad_vendida",
                format!(
                    "must be between {} and {}",
                    QUANTITY_RANGE.start(),
                    QUANTITY_RANGE.end()
                ),
            )
        })
}

/// Checks a product id: 1 to [`MAX_PRODUCT_ID_CHARS`] characters, no control characters.
pub fn check_product_id(product_id: &str) -> Result<(), InvalidField> {
    check_id("producto_id", product_id, MAX_PRODUCT_ID_CHARS)
}

fn check_id(field: &'static str, value: &str, max_chars: usize) -> Result<(), InvalidField> {
    if value.is_empty() {
        return Err(InvalidField::new(field, "must not be empty"));
    }
    if value.chars().count() > max_chars {
        return Err(InvalidField::new(
            field,
            format!("must be at most {max_chars} characters"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(InvalidField::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

impl Sale {
    /// The protobuf form, as sent over gRPC and written to Kafka.
    pub fn to_proto(&self) -> ProductSaleRequest {
        ProductSaleRequest {
            categoria: self.category.number(),
            producto_id: self.product_id.clone(),
            precio: self.price_cents as f64 / 100.0,
            cantidad_vendida: self.quantity,
            venta_id: self.sale_id.clone(),
            timestamp_ms: self.timestamp_ms,
        }
    }

    /// The Kafka record value (version 1).
    pub fn encode_record(&self) -> Vec<u8> {
        encode_record(&self.to_proto())
    }
}

impl TryFrom<&ProductSaleRequest> for Sale {
    type Error = InvalidField;

    /// Validates every field, including the ones the gateway fills in.
    fn try_from(request: &ProductSaleRequest) -> Result<Sale, InvalidField> {
        let category = Category::from_number(request.categoria.into())
            .map_err(|e| InvalidField::new("categoria", e.to_string()))?;
        check_product_id(&request.producto_id)?;
        let price_cents = price_to_cents(request.precio)?;
        let quantity = check_quantity(request.cantidad_vendida.into())?;
        check_id("venta_id", &request.venta_id, MAX_SALE_ID_CHARS)?;
        if request.timestamp_ms <= 0 {
            return Err(InvalidField::new("timestamp_ms", "must be set"));
        }
        Ok(Sale {
            sale_id: request.venta_id.clone(),
            category,
            product_id: request.producto_id.clone(),
            price_cents,
            quantity,
            timestamp_ms: request.timestamp_ms,
        })
    }
}

/// Encodes a sale as a version-1 record value.
pub fn encode_record(sale: &ProductSaleRequest) -> Vec<u8> {
    let mut value = Vec::with_capacity(1 + sale.encoded_len());
    value.push(RECORD_VERSION_1);
    // Encoding into a Vec cannot run out of space.
    sale.encode(&mut value)
        .expect("a Vec grows to fit any protobuf message");
    value
}

/// Decodes and validates a record value.
pub fn decode_record(value: &[u8]) -> Result<Sale, RecordError> {
    let (&version, payload) = value.split_first().ok_or(RecordError::Empty)?;
    if version != RECORD_VERSION_1 {
        return Err(RecordError::UnsupportedVersion(version));
    }
    let request = ProductSaleRequest::decode(payload)?;
    Ok(Sale::try_from(&request)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Sale {
        Sale {
            sale_id: "0190f3a2-7c1e-7000-8000-000000000001".into(),
            category: Category::Hogar,
            product_id: "lampara-led".into(),
            price_cents: 1250,
            quantity: 3,
            timestamp_ms: 1_764_300_000_000,
        }
    }

    #[test]
    fn record_round_trips() {
        let sale = sample();
        let value = sale.encode_record();
        assert_eq!(value[0], RECORD_VERSION_1);
        assert_eq!(decode_record(&value).unwrap(), sale);
    }

    #[test]
    fn rejects_other_versions_garbage_and_invalid_sales() {
        let mut value = sample().encode_record();
        value[0] = 2;
        assert!(matches!(
            decode_record(&value),
            Err(RecordError::UnsupportedVersion(2))
        ));
        assert!(matches!(decode_record(&[]), Err(RecordError::Empty)));
        assert!(matches!(
            decode_record(&[1, 0xff, 0xff, 0xff]),
            Err(RecordError::Protobuf(_))
        ));
        let mut invalid = sample().to_proto();
        invalid.cantidad_vendida = 0;
        assert!(matches!(
            decode_record(&encode_record(&invalid)),
            Err(RecordError::Invalid(InvalidField {
                field: "cantidad_vendida",
                ..
            }))
        ));
    }

    #[test]
    fn prices_become_exact_cents() {
        assert_eq!(price_to_cents(12.5), Ok(1250));
        assert_eq!(price_to_cents(0.1 + 0.2), Ok(30));
        assert_eq!(price_to_cents(19.99), Ok(1999));
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY, 0.004, MAX_PRICE * 2.0] {
            assert_eq!(price_to_cents(bad).unwrap_err().field, "precio", "{bad}");
        }
    }

    #[test]
    fn quantity_and_product_limits() {
        assert_eq!(check_quantity(1), Ok(1));
        assert_eq!(check_quantity(10_000), Ok(10_000));
        for bad in [0, -3, 10_001, i64::MAX] {
            assert!(check_quantity(bad).is_err(), "{bad}");
        }
        assert!(check_product_id("p-1").is_ok());
        assert!(check_product_id("").is_err());
        assert!(check_product_id(&"x".repeat(MAX_PRODUCT_ID_CHARS + 1)).is_err());
        assert!(check_product_id("a\nb").is_err());
    }
}
