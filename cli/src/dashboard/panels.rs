//! The dashboard's panels: one definition each, from which both the Grafana
//! dashboard `up` provisions and the page `bfctl dashboard` serves are made.
//!
//! A panel is a query (a command of the Redis data source plugin, see
//! [`super::frame`] for the frame each one yields), the Grafana
//! transformations that turn that frame into what the visualization reads,
//! and the visualization. [`Panel::check`] says whether a frame has what the
//! visualization needs, so a panel whose data cannot render fails a test
//! instead of showing "No data" to the person watching Black Friday.

use blackfriday_proto::Category;
use serde_json::{Value, json};

use super::frame::{Frame, Transformation, Values};

/// How a panel shows its frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visual {
    /// Grafana `stat`, text mode "value and name": each shown field's name
    /// and its last value.
    Stat,
    /// Grafana `barchart`: one bar per row, the string field on the x axis.
    BarChart,
    /// Grafana `timeseries`: the time field against every number field.
    TimeSeries,
}

impl Visual {
    pub fn grafana_type(self) -> &'static str {
        match self {
            Visual::Stat => "stat",
            Visual::BarChart => "barchart",
            Visual::TimeSeries => "timeseries",
        }
    }
}

/// A plugin command (query type "Redis", `type: command`).
#[derive(Debug, Clone, PartialEq)]
pub enum Query {
    HGetAll {
        key: String,
    },
    HMGet {
        key: String,
        fields: Vec<&'static str>,
    },
    /// `ZRANGE key start stop [REV] WITHSCORES`.
    ZRange {
        key: String,
        start: i64,
        stop: i64,
        rev: bool,
    },
    /// `XRANGE key FROM_MS-0 TO_MS-0`: the dashboard's time range.
    XRange {
        key: String,
    },
}

impl Query {
    /// The query as a Grafana target (the plugin's `queryModel` JSON names).
    pub fn target(&self) -> Value {
        let mut target = json!({
            "refId": "A",
            "datasource": { "type": "redis-datasource", "uid": "valkey" },
            "type": "command",
            "query": "",
            "streaming": false,
        });
        let extra = match self {
            Query::HGetAll { key } => json!({ "command": "hgetall", "keyName": key }),
            Query::HMGet { key, fields } => {
                json!({ "command": "hmget", "keyName": key, "field": fields.join(" ") })
            }
            Query::ZRange {
                key,
                start,
                stop,
                rev,
            } => {
                let mut zrange = json!({
                    "command": "zrange",
                    "keyName": key,
                    "min": start.to_string(),
                    "max": stop.to_string(),
                });
                if *rev {
                    zrange["zrangeQuery"] = json!("REV");
                }
                zrange
            }
            Query::XRange { key } => json!({ "command": "xrange", "keyName": key }),
        };
        if let (Some(target), Some(extra)) = (target.as_object_mut(), extra.as_object()) {
            target.extend(extra.clone());
        }
        target
    }

    /// The Valkey command the plugin sends, as `redis-cli` would show it.
    pub fn command_line(&self, window_ms: Option<(i64, i64)>) -> String {
        self.args(window_ms).join(" ")
    }

    /// The command's words.
    pub fn args(&self, window_ms: Option<(i64, i64)>) -> Vec<String> {
        match self {
            Query::HGetAll { key } => vec!["HGETALL".into(), key.clone()],
            Query::HMGet { key, fields } => {
                let mut args = vec!["HMGET".into(), key.clone()];
                args.extend(fields.iter().map(|f| f.to_string()));
                args
            }
            Query::ZRange {
                key,
                start,
                stop,
                rev,
            } => {
                let mut args = vec![
                    "ZRANGE".into(),
                    key.clone(),
                    start.to_string(),
                    stop.to_string(),
                ];
                if *rev {
                    args.push("REV".into());
                }
                args.push("WITHSCORES".into());
                args
            }
            Query::XRange { key } => {
                let (from, to) = window_ms
                    .map(|(from, to)| (format!("{from}-0"), format!("{to}-0")))
                    .unwrap_or_else(|| ("FROM_MS-0".into(), "TO_MS-0".into()));
                vec!["XRANGE".into(), key.clone(), from, to]
            }
        }
    }
}

/// One panel.
#[derive(Debug, Clone)]
pub struct Panel {
    pub id: u32,
    pub title: String,
    pub visual: Visual,
    pub query: Query,
    pub transformations: Vec<Transformation>,
    /// A Grafana unit for the numbers ("currencyUSD", "ms", "none").
    pub unit: &'static str,
    /// For a stat: the fields it shows (all of them when empty).
    pub shown: Vec<&'static str>,
    /// Grafana's grid: x, y, width, height.
    pub grid: (u32, u32, u32, u32),
}

impl Panel {
    /// The frame after the panel's transformations.
    pub fn transform(&self, frame: Frame) -> Frame {
        self.transformations
            .iter()
            .fold(frame, |frame, t| t.apply(frame))
    }

    /// Whether the (transformed) frame has what the visualization needs.
    pub fn check(&self, frame: &Frame) -> Result<(), String> {
        let rows = frame.rows()?;
        let numbers: Vec<&str> = frame.numbers().map(|(name, _)| name).collect();
        match self.visual {
            Visual::TimeSeries => {
                let time = frame
                    .fields
                    .iter()
                    .find(|f| matches!(f.values, Values::Time(_)))
                    .ok_or("a time series needs a time field")?;
                if numbers.is_empty() {
                    return Err(format!("no number field beside {}", time.name));
                }
                if rows == 0 {
                    return Err("no rows in the time range".into());
                }
            }
            Visual::BarChart => {
                let strings = frame
                    .fields
                    .iter()
                    .filter(|f| matches!(f.values, Values::String(_)))
                    .count();
                if strings == 0 {
                    return Err("a bar chart needs a string field for its x axis".into());
                }
                if numbers.is_empty() {
                    return Err("a bar chart needs a number field for its bars".into());
                }
                if rows == 0 {
                    return Err("no bars".into());
                }
            }
            Visual::Stat => {
                if numbers.is_empty() {
                    return Err("a stat needs a number field".into());
                }
                if rows != 1 {
                    return Err(format!(
                        "a stat of the last value expects 1 row, got {rows}"
                    ));
                }
                for name in &self.shown {
                    if frame.field(name).is_none() {
                        return Err(format!("the stat shows {name}, which the frame lacks"));
                    }
                }
                if frame.fields.iter().any(|f| f.name.is_empty()) {
                    return Err("a stat's name (the field's name) is empty".into());
                }
            }
        }
        Ok(())
    }

    /// The panel as Grafana dashboard JSON.
    pub fn grafana_json(&self) -> Value {
        let (x, y, w, h) = self.grid;
        let options = match self.visual {
            Visual::Stat => json!({
                "reduceOptions": {
                    "values": false,
                    "calcs": ["lastNotNull"],
                    "fields": if self.shown.is_empty() {
                        String::new()
                    } else {
                        format!("/^({})$/", self.shown.join("|"))
                    },
                },
                "textMode": "value_and_name",
                "colorMode": "none",
                "graphMode": "none",
                "justifyMode": "auto",
            }),
            Visual::BarChart => json!({
                "xField": "Field",
                "orientation": "auto",
                "showValue": "always",
                "legend": { "showLegend": false, "displayMode": "list", "placement": "bottom" },
            }),
            Visual::TimeSeries => json!({
                "legend": { "showLegend": true, "displayMode": "list", "placement": "bottom" },
                "tooltip": { "mode": "multi" },
            }),
        };
        json!({
            "id": self.id,
            "type": self.visual.grafana_type(),
            "title": self.title,
            "gridPos": { "x": x, "y": y, "w": w, "h": h },
            "datasource": { "type": "redis-datasource", "uid": "valkey" },
            "targets": [self.query.target()],
            "transformations": self.transformations.iter().map(Transformation::to_json).collect::<Vec<_>>(),
            "fieldConfig": { "defaults": { "unit": self.unit }, "overrides": [] },
            "options": options,
        })
    }
}

/// Every panel, for a consumer started with `carnet`.
pub fn panels(carnet: &str, carnet_category: Category) -> Vec<Panel> {
    let category = carnet_category.name();
    let by_category = |id, title: &str, key: &str, unit, x| Panel {
        id,
        title: title.into(),
        visual: Visual::BarChart,
        query: Query::HGetAll { key: key.into() },
        transformations: vec![Transformation::ReduceSeriesToRows],
        unit,
        shown: Vec::new(),
        grid: (x, 0, 8, 8),
    };
    let extreme = |id, title: &str, key: &str, x| Panel {
        id,
        title: title.into(),
        visual: Visual::Stat,
        query: Query::HMGet {
            key: key.into(),
            fields: vec!["precio", "producto", "categoria"],
        },
        transformations: Vec::new(),
        unit: "none",
        shown: vec!["precio", "producto", "categoria"],
        grid: (x, 8, 6, 5),
    };
    let ranked = |id, title: String, key: String, rev, x, y| Panel {
        id,
        title,
        visual: Visual::Stat,
        query: Query::ZRange {
            key,
            start: 0,
            stop: 0,
            rev,
        },
        transformations: Vec::new(),
        unit: "none",
        shown: Vec::new(),
        grid: (x, y, 6, 5),
    };
    vec![
        by_category(
            1,
            "Number of sales per category",
            "bf:ventas_por_categoria",
            "none",
            0,
        ),
        by_category(
            2,
            "Average price per category",
            "bf:precio_promedio_por_categoria",
            "none",
            8,
        ),
        by_category(
            3,
            "Average quantity per category",
            "bf:cantidad_promedio_por_categoria",
            "none",
            16,
        ),
        extreme(4, "Highest price", "bf:precio:max", 0),
        extreme(5, "Lowest price", "bf:precio:min", 6),
        ranked(
            6,
            "Best-selling product (units)".into(),
            "bf:productos:unidades".into(),
            true,
            12,
            8,
        ),
        ranked(
            7,
            "Worst-selling product (units)".into(),
            "bf:productos:unidades".into(),
            false,
            18,
            8,
        ),
        ranked(
            8,
            format!("{category} (carnet {carnet}): best product (units)"),
            format!("bf:cat:{category}:productos:unidades"),
            true,
            0,
            13,
        ),
        ranked(
            9,
            format!("{category} (carnet {carnet}): worst product (units)"),
            format!("bf:cat:{category}:productos:unidades"),
            false,
            6,
            13,
        ),
        Panel {
            id: 10,
            title: format!("{category}: tracked product's price over time"),
            visual: Visual::TimeSeries,
            query: Query::XRange {
                key: "bf:carnet:precios".into(),
            },
            transformations: vec![Transformation::Exclude(vec!["$streamId", "venta_id"])],
            unit: "none",
            shown: Vec::new(),
            grid: (12, 13, 12, 8),
        },
        Panel {
            id: 11,
            title: "Sales applied per batch, and the batch's oldest sale-to-Valkey latency (ms)"
                .into(),
            visual: Visual::TimeSeries,
            query: Query::XRange {
                key: "bf:aplicado".into(),
            },
            transformations: vec![Transformation::Exclude(vec![
                "$streamId",
                "unidades",
                "dead_letters",
            ])],
            unit: "none",
            shown: Vec::new(),
            grid: (0, 21, 24, 8),
        },
    ]
}

/// The whole Grafana dashboard: read-only (`editable: false`; the file
/// provider refuses saves by default), refreshed every 5 s over the last
/// 15 minutes.
pub fn grafana_dashboard(carnet: &str, carnet_category: Category) -> Value {
    json!({
        "title": "Black Friday",
        "uid": "blackfriday",
        "schemaVersion": 39,
        "editable": false,
        "refresh": "5s",
        "time": { "from": "now-15m", "to": "now" },
        "panels": panels(carnet, carnet_category)
            .iter()
            .map(Panel::grafana_json)
            .collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panel_ids_are_unique_and_targets_name_the_plugin_fields() {
        let panels = panels("201900006", Category::Hogar);
        let mut ids: Vec<u32> = panels.iter().map(|p| p.id).collect();
        ids.dedup();
        assert_eq!(ids.len(), panels.len());
        let best = &panels[5].query;
        assert_eq!(
            best.command_line(None),
            "ZRANGE bf:productos:unidades 0 0 REV WITHSCORES"
        );
        assert_eq!(best.target()["zrangeQuery"], "REV");
        assert_eq!(best.target()["keyName"], "bf:productos:unidades");
        let series = &panels[9].query;
        assert_eq!(
            series.command_line(Some((1, 2))),
            "XRANGE bf:carnet:precios 1-0 2-0"
        );
    }
}
