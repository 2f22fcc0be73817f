//! The data frames Grafana's Redis data source makes of Valkey's replies,
//! and the Grafana transformations the panels apply to them.
//!
//! A panel works only if the frame it receives has the shape its
//! visualization needs (a time field for a time series, a string field and
//! numbers for a bar chart, a named number for a stat). What the plugin
//! builds is read from its source, RedisGrafana/grafana-redis-datasource
//! 2.2.0 (the version `up` installs), `pkg/`:
//!
//! | command | plugin function | frame |
//! |---|---|---|
//! | `hgetall` | `queryHGetAll` (`redis-hash.go`) | one field per hash field, named after it, **one row**; float64 when `strconv.ParseFloat` reads the value, else string |
//! | `hmget` | `queryHMGet` (`redis-hash.go`) | one field per requested field, one row, float64 or string the same way |
//! | `zrange` | `queryZRange` (`redis-zset.go`), `ZRANGE key min max [zrangeQuery] WITHSCORES` | one field per member, named after it, one row: its score as float64 |
//! | `xrange` | `queryXRange` + `createFrameFromRangeResponse` (`redis-stream.go`) | `$streamId` (string), `$time` (time from the id's milliseconds), then one field per entry field in first-seen order, float64 if its first value parses, else string; a value missing from an entry is 0 or "" |
//!
//! With no `start`/`end`, `xrange` asks for the dashboard's time range
//! (`FROM_MS-0` to `TO_MS-0`; plugin CHANGELOG 2.0.0: "XRANGE command based on
//! the selected time range").
//!
//! The one transformation used, Grafana's `reduce` in `seriesToRows` mode
//! (grafana `packages/grafana-data/src/transformations/transformers/reduce.ts`,
//! `reduceSeriesToRows`), makes of each non-time field a row: a string field
//! `Field` (the name) and one field per reducer named after it (`Last *` for
//! `lastNotNull`). `organize` with `excludeByName` drops fields.

use serde::Serialize;

/// The values of one field.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", content = "values", rename_all = "camelCase")]
pub enum Values {
    Number(Vec<f64>),
    String(Vec<String>),
    /// Milliseconds since the epoch.
    Time(Vec<i64>),
}

impl Values {
    pub fn len(&self) -> usize {
        match self {
            Values::Number(values) => values.len(),
            Values::String(values) => values.len(),
            Values::Time(values) => values.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The type's name as Grafana's data frames spell it.
    pub fn type_name(&self) -> &'static str {
        match self {
            Values::Number(_) => "number",
            Values::String(_) => "string",
            Values::Time(_) => "time",
        }
    }
}

/// One column of a frame.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Field {
    pub name: String,
    #[serde(flatten)]
    pub values: Values,
}

impl Field {
    fn number(name: &str, value: f64) -> Field {
        Field {
            name: name.to_string(),
            values: Values::Number(vec![value]),
        }
    }

    /// A one-row field, float64 when the text reads as one (the plugin's
    /// `strconv.ParseFloat` test), string otherwise.
    fn parsed(name: &str, text: &str) -> Field {
        match parse_float(text) {
            Some(value) => Field::number(name, value),
            None => Field {
                name: name.to_string(),
                values: Values::String(vec![text.to_string()]),
            },
        }
    }
}

/// A data frame: named columns of equal length.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Frame {
    pub name: String,
    pub fields: Vec<Field>,
}

impl Frame {
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// Rows, if every field has the same number (a frame's invariant).
    pub fn rows(&self) -> Result<usize, String> {
        let mut lengths = self
            .fields
            .iter()
            .map(|f| (f.name.as_str(), f.values.len()));
        let Some((_, first)) = lengths.next() else {
            return Ok(0);
        };
        for (name, length) in lengths {
            if length != first {
                return Err(format!("field {name} has {length} rows, not {first}"));
            }
        }
        Ok(first)
    }

    pub fn numbers(&self) -> impl Iterator<Item = (&str, &[f64])> {
        self.fields.iter().filter_map(|f| match &f.values {
            Values::Number(values) => Some((f.name.as_str(), values.as_slice())),
            _ => None,
        })
    }

    /// `name: type[rows]`, for messages and the docs.
    pub fn shape(&self) -> String {
        self.fields
            .iter()
            .map(|f| format!("{}: {}[{}]", f.name, f.values.type_name(), f.values.len()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Go's `strconv.ParseFloat(s, 64)` for the texts Valkey holds here
/// (decimal numbers; Rust also reads `inf` and `NaN` as Go does).
fn parse_float(text: &str) -> Option<f64> {
    text.parse::<f64>().ok()
}

/// `queryHGetAll`: `HGETALL key` as a flat list of field, value.
pub fn hgetall(flat: &[String]) -> Frame {
    Frame {
        name: "hgetall".into(),
        fields: flat
            .chunks_exact(2)
            .map(|pair| Field::parsed(&pair[0], &pair[1]))
            .collect(),
    }
}

/// `queryHMGet`: the requested fields and `HMGET`'s answers (a missing
/// field reads as "", as radix decodes a nil into a string).
pub fn hmget(fields: &[String], values: &[Option<String>]) -> Frame {
    Frame {
        name: "hmget".into(),
        fields: fields
            .iter()
            .zip(values)
            .map(|(name, value)| Field::parsed(name, value.as_deref().unwrap_or("")))
            .collect(),
    }
}

/// `queryZRange`: `ZRANGE … WITHSCORES` as a flat list of member, score.
pub fn zrange(flat: &[String]) -> Frame {
    Frame {
        name: "zrange".into(),
        fields: flat
            .chunks_exact(2)
            .map(|pair| Field::parsed(&pair[0], &pair[1]))
            .collect(),
    }
}

/// One stream entry: its id and its field, value pairs.
pub type StreamEntry = (String, Vec<(String, String)>);

/// `createFrameFromRangeResponse`: `XRANGE`'s entries.
pub fn xrange(entries: &[StreamEntry]) -> Frame {
    let mut ids = Vec::new();
    let mut times = Vec::new();
    let mut columns: Vec<Field> = Vec::new();
    for (row, (id, pairs)) in entries.iter().enumerate() {
        ids.push(id.clone());
        // `strconv.ParseInt` of the part before '-', 0 when it fails.
        times.push(
            id.split('-')
                .next()
                .and_then(|ms| ms.parse::<i64>().ok())
                .unwrap_or(0),
        );
        let mut seen = vec![false; columns.len()];
        for (key, text) in pairs {
            let index = match columns.iter().position(|c| &c.name == key) {
                Some(index) => index,
                None => {
                    // A new field: typed by this first value, earlier rows
                    // filled with 0 or "".
                    let values = match parse_float(text) {
                        Some(_) => Values::Number(vec![0.0; row]),
                        None => Values::String(vec![String::new(); row]),
                    };
                    columns.push(Field {
                        name: key.clone(),
                        values,
                    });
                    seen.push(false);
                    columns.len() - 1
                }
            };
            match &mut columns[index].values {
                // A number field takes ParseFloat's result, 0 on failure.
                Values::Number(values) => values.push(parse_float(text).unwrap_or(0.0)),
                Values::String(values) => values.push(text.clone()),
                Values::Time(_) => {}
            }
            seen[index] = true;
        }
        for (column, seen) in columns.iter_mut().zip(seen) {
            if !seen {
                match &mut column.values {
                    Values::Number(values) => values.push(0.0),
                    Values::String(values) => values.push(String::new()),
                    Values::Time(_) => {}
                }
            }
        }
    }
    let mut fields = vec![
        Field {
            name: "$streamId".into(),
            values: Values::String(ids),
        },
        Field {
            name: "$time".into(),
            values: Values::Time(times),
        },
    ];
    fields.extend(columns);
    Frame {
        name: "xrange".into(),
        fields,
    }
}

/// A Grafana transformation a panel applies to its frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Transformation {
    /// `reduce`, mode `seriesToRows`, reducer `lastNotNull`.
    ReduceSeriesToRows,
    /// `organize` with `excludeByName`.
    Exclude(Vec<&'static str>),
}

/// The name Grafana gives the `lastNotNull` reducer's column.
pub const LAST_NOT_NULL: &str = "Last *";

impl Transformation {
    pub fn apply(&self, frame: Frame) -> Frame {
        match self {
            Transformation::ReduceSeriesToRows => {
                let mut names = Vec::new();
                let mut last = Vec::new();
                for field in &frame.fields {
                    let value = match &field.values {
                        Values::Time(_) => continue,
                        Values::Number(values) => {
                            values.iter().rev().find(|v| !v.is_nan()).copied()
                        }
                        // Grafana's reducers read strings as numbers where they
                        // can; none of the panels reduces a string field.
                        Values::String(values) => values.last().and_then(|v| parse_float(v)),
                    };
                    names.push(field.name.clone());
                    last.push(value.unwrap_or(f64::NAN));
                }
                Frame {
                    name: frame.name,
                    fields: vec![
                        Field {
                            name: "Field".into(),
                            values: Values::String(names),
                        },
                        Field {
                            name: LAST_NOT_NULL.into(),
                            values: Values::Number(last),
                        },
                    ],
                }
            }
            Transformation::Exclude(names) => Frame {
                name: frame.name,
                fields: frame
                    .fields
                    .into_iter()
                    .filter(|f| !names.contains(&f.name.as_str()))
                    .collect(),
            },
        }
    }

    /// The transformation as dashboard JSON.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Transformation::ReduceSeriesToRows => serde_json::json!({
                "id": "reduce",
                "options": { "mode": "seriesToRows", "reducers": ["lastNotNull"] }
            }),
            Transformation::Exclude(names) => {
                let exclude: serde_json::Map<String, serde_json::Value> = names
                    .iter()
                    .map(|n| (n.to_string(), serde_json::Value::Bool(true)))
                    .collect();
                serde_json::json!({
                    "id": "organize",
                    "options": { "excludeByName": exclude }
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_hash_is_one_row_with_a_field_per_hash_field() {
        let frame = hgetall(&strings(&["Ropa", "12", "Hogar", "7.5", "note", "x"]));
        assert_eq!(
            frame.shape(),
            "Ropa: number[1], Hogar: number[1], note: string[1]"
        );
        let reduced = Transformation::ReduceSeriesToRows.apply(frame);
        assert_eq!(reduced.shape(), "Field: string[3], Last *: number[3]");
        assert_eq!(
            reduced.field("Field").unwrap().values,
            Values::String(strings(&["Ropa", "Hogar", "note"]))
        );
    }

    #[test]
    fn a_sorted_set_range_is_a_field_per_member() {
        let frame = zrange(&strings(&["tv-55", "120"]));
        assert_eq!(frame.shape(), "tv-55: number[1]");
    }

    #[test]
    fn hmget_keeps_the_requested_order_and_reads_missing_as_empty() {
        let frame = hmget(
            &strings(&["precio", "producto", "nada"]),
            &[Some("9.99".into()), Some("tv-55".into()), None],
        );
        assert_eq!(
            frame.shape(),
            "precio: number[1], producto: string[1], nada: string[1]"
        );
    }

    #[test]
    fn a_stream_range_is_time_stamped_rows_filled_where_fields_are_missing() {
        let entries: Vec<StreamEntry> = vec![
            ("1000-0".into(), vec![("precio".into(), "1.50".into())]),
            (
                "2000-3".into(),
                vec![
                    ("precio".into(), "oops".into()),
                    ("venta_id".into(), "s-1".into()),
                ],
            ),
        ];
        let frame = xrange(&entries);
        assert_eq!(
            frame.shape(),
            "$streamId: string[2], $time: time[2], precio: number[2], venta_id: string[2]"
        );
        assert_eq!(
            frame.field("$time").unwrap().values,
            Values::Time(vec![1000, 2000])
        );
        assert_eq!(
            frame.field("precio").unwrap().values,
            Values::Number(vec![1.5, 0.0])
        );
        assert_eq!(
            frame.field("venta_id").unwrap().values,
            Values::String(strings(&["", "s-1"]))
        );
        let kept = Transformation::Exclude(vec!["$streamId", "venta_id"]).apply(frame);
        assert_eq!(kept.shape(), "$time: time[2], precio: number[2]");
        assert_eq!(kept.rows(), Ok(2));
    }
}
