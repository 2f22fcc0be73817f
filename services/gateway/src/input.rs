//! Turning request bodies into validated sales.
//!
//! Bodies are first parsed as JSON (a syntax error is the client's malformed
//! request: 400), then read field by field so that every out-of-range, missing
//! or mistyped value is reported with its field name (422).

use blackfriday_proto::Category;
use blackfriday_proto::record::{self, InvalidField, Sale};
use serde_json::Value;

/// Why a body was not accepted.
#[derive(Debug, PartialEq)]
pub enum InputError {
    /// Not JSON at all: 400.
    Malformed(String),
    /// JSON, but a field is missing, mistyped or out of range: 422.
    InvalidField { field: String, problem: String },
}

impl InputError {
    fn field(field: impl Into<String>, problem: impl Into<String>) -> InputError {
        InputError::InvalidField {
            field: field.into(),
            problem: problem.into(),
        }
    }

    fn from_invalid(prefix: &str, invalid: InvalidField) -> InputError {
        InputError::field(format!("{prefix}{}", invalid.field), invalid.problem)
    }
}

/// What the client sent for one sale, before the gateway adds id and time.
#[derive(Debug, Clone, PartialEq)]
pub struct SaleInput {
    pub category: Category,
    pub product_id: String,
    pub price_cents: i64,
    pub quantity: i32,
}

impl SaleInput {
    pub fn into_sale(self, sale_id: String, timestamp_ms: i64) -> Sale {
        Sale {
            sale_id,
            category: self.category,
            product_id: self.product_id,
            price_cents: self.price_cents,
            quantity: self.quantity,
            timestamp_ms,
        }
    }
}

/// Parses the body of `POST /venta`: one JSON object.
pub fn parse_one(body: &[u8]) -> Result<SaleInput, InputError> {
    let value = parse_json(body)?;
    read_sale(&value, "")
}

/// Parses the body of `POST /ventas`: a JSON array of 1 to `max` objects.
pub fn parse_many(body: &[u8], max: usize) -> Result<Vec<SaleInput>, InputError> {
    let value = parse_json(body)?;
    let items = value
        .as_array()
        .ok_or_else(|| InputError::field("ventas", "must be a JSON array of sales"))?;
    if items.is_empty() || items.len() > max {
        return Err(InputError::field(
            "ventas",
            format!("must hold between 1 and {max} sales, got {}", items.len()),
        ));
    }
    items
        .iter()
        .enumerate()
        .map(|(index, item)| read_sale(item, &format!("ventas[{index}].")))
        .collect()
}

fn parse_json(body: &[u8]) -> Result<Value, InputError> {
    serde_json::from_slice(body)
        .map_err(|error| InputError::Malformed(format!("malformed JSON: {error}")))
}

fn read_sale(value: &Value, prefix: &str) -> Result<SaleInput, InputError> {
    let object = value.as_object().ok_or_else(|| {
        let name = if prefix.is_empty() {
            "body"
        } else {
            prefix.trim_end_matches('.')
        };
        InputError::field(name, "must be a JSON object")
    })?;
    let field = |name: &'static str| {
        object
            .get(name)
            .filter(|v| !v.is_null())
            .ok_or_else(|| InputError::field(format!("{prefix}{name}"), "is required"))
    };

    let category = match field("categoria")? {
        Value::Number(n) => n
            .as_i64()
            .ok_or_else(|| {
                InputError::field(format!("{prefix}categoria"), "must be a whole number 1-4")
            })
            .and_then(|n| {
                Category::from_number(n)
                    .map_err(|e| InputError::field(format!("{prefix}categoria"), e.to_string()))
            })?,
        Value::String(name) => name
            .parse()
            .map_err(|e: blackfriday_proto::UnknownCategory| {
                InputError::field(format!("{prefix}categoria"), e.to_string())
            })?,
        _ => {
            return Err(InputError::field(
                format!("{prefix}categoria"),
                "must be a number 1-4 or a category name",
            ));
        }
    };

    let product_id = match field("producto_id")? {
        Value::String(id) => id.clone(),
        Value::Number(n) => n.to_string(),
        _ => {
            return Err(InputError::field(
                format!("{prefix}producto_id"),
                "must be a string",
            ));
        }
    };
    record::check_product_id(&product_id).map_err(|e| InputError::from_invalid(prefix, e))?;

    let price = field("precio")?
        .as_f64()
        .ok_or_else(|| InputError::field(format!("{prefix}precio"), "must be a number"))?;
    let price_cents =
        record::price_to_cents(price).map_err(|e| InputError::from_invalid(prefix, e))?;

    let quantity_value = field("cantidad_vendida")?;
    let quantity = quantity_value
        .as_i64()
        .or_else(|| quantity_value.as_u64().map(|_| i64::MAX))
        .ok_or_else(|| {
            InputError::field(
                format!("{prefix}cantidad_vendida"),
                "must be a whole number",
            )
        })?;
    let quantity =
        record::check_quantity(quantity).map_err(|e| InputError::from_invalid(prefix, e))?;

    Ok(SaleInput {
        category,
        product_id,
        price_cents,
        quantity,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(result: Result<SaleInput, InputError>) -> String {
        match result {
            Err(InputError::InvalidField { field, .. }) => field,
            other => panic!("expected an invalid field, got {other:?}"),
        }
    }

    #[test]
    fn accepts_the_locust_payload_with_number_or_name() {
        let sale = parse_one(
            br#"{"categoria": 1, "producto_id": "tv-55", "precio": 12.5, "cantidad_vendida": 2}"#,
        )
        .unwrap();
        assert_eq!(
            sale,
            SaleInput {
                category: Category::Electronica,
                product_id: "tv-55".into(),
                price_cents: 1250,
                quantity: 2
            }
        );
        let by_name = parse_one(
            br#"{"categoria": "Hogar", "producto_id": "x", "precio": 1, "cantidad_vendida": 1}"#,
        )
        .unwrap();
        assert_eq!(by_name.category, Category::Hogar);
    }

    #[test]
    fn malformed_json_is_not_a_field_error() {
        assert!(matches!(
            parse_one(b"{not json"),
            Err(InputError::Malformed(_))
        ));
        assert!(matches!(parse_one(b""), Err(InputError::Malformed(_))));
    }

    #[test]
    fn each_bad_value_names_its_field() {
        let cases = [
            (
                r#"{"categoria": 9, "producto_id": "a", "precio": 1, "cantidad_vendida": 1}"#,
                "categoria",
            ),
            (
                r#"{"categoria": "Juguetes", "producto_id": "a", "precio": 1, "cantidad_vendida": 1}"#,
                "categoria",
            ),
            (
                r#"{"producto_id": "a", "precio": 1, "cantidad_vendida": 1}"#,
                "categoria",
            ),
            (
                r#"{"categoria": 1, "producto_id": "", "precio": 1, "cantidad_vendida": 1}"#,
                "producto_id",
            ),
            (
                r#"{"categoria": 1, "producto_id": "a", "precio": 0, "cantidad_vendida": 1}"#,
                "precio",
            ),
            (
                r#"{"categoria": 1, "producto_id": "a", "precio": -2.5, "cantidad_vendida": 1}"#,
                "precio",
            ),
            (
                r#"{"categoria": 1, "producto_id": "a", "precio": "12", "cantidad_vendida": 1}"#,
                "precio",
            ),
            (
                r#"{"categoria": 1, "producto_id": "a", "precio": 1e400, "cantidad_vendida": 1}"#,
                "precio",
            ),
            (
                r#"{"categoria": 1, "producto_id": "a", "precio": 1, "cantidad_vendida": 0}"#,
                "cantidad_vendida",
            ),
            (
                r#"{"categoria": 1, "producto_id": "a", "precio": 1, "cantidad_vendida": 10001}"#,
                "cantidad_vendida",
            ),
            (
                r#"{"categoria": 1, "producto_id": "a", "precio": 1, "cantidad_vendida": 1.5}"#,
                "cantidad_vendida",
            ),
            (
                r#"{"categoria": 1, "producto_id": "a", "precio": 1, "cantidad_vendida": 18446744073709551615}"#,
                "cantidad_vendida",
            ),
            (r#"[1, 2]"#, "body"),
        ];
        for (body, expected) in cases {
            // serde_json rejects 1e400 as out of range while parsing: that is malformed, not a field.
            let result = parse_one(body.as_bytes());
            if body.contains("1e400") {
                assert!(matches!(result, Err(InputError::Malformed(_))), "{body}");
                continue;
            }
            assert_eq!(field_of(result), expected, "{body}");
        }
        let long = format!(
            r#"{{"categoria": 1, "producto_id": "{}", "precio": 1, "cantidad_vendida": 1}}"#,
            "p".repeat(record::MAX_PRODUCT_ID_CHARS + 1)
        );
        assert_eq!(field_of(parse_one(long.as_bytes())), "producto_id");
    }

    #[test]
    fn batches_name_the_index_and_enforce_bounds() {
        let good = r#"{"categoria": 2, "producto_id": "a", "precio": 3, "cantidad_vendida": 1}"#;
        let bad = r#"{"categoria": 2, "producto_id": "a", "precio": 3, "cantidad_vendida": 0}"#;
        assert_eq!(
            parse_many(format!("[{good},{good}]").as_bytes(), 10)
                .unwrap()
                .len(),
            2
        );
        match parse_many(format!("[{good},{bad}]").as_bytes(), 10) {
            Err(InputError::InvalidField { field, .. }) => {
                assert_eq!(field, "ventas[1].cantidad_vendida")
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse_many(b"[]", 10),
            Err(InputError::InvalidField { .. })
        ));
        let eleven = format!("[{}]", [good; 11].join(","));
        assert!(matches!(
            parse_many(eleven.as_bytes(), 10),
            Err(InputError::InvalidField { .. })
        ));
        assert!(matches!(
            parse_many(good.as_bytes(), 10),
            Err(InputError::InvalidField { .. })
        ));
    }
}
