//! One look at the local pipeline for the live page: every panel's command
//! run against Valkey in one `MULTI` (so the panels agree with each other),
//! each reply turned into the frame the Grafana plugin would build and
//! transformed as the Grafana panel does, plus the pipeline's own figures.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use serde::Serialize;

use super::frame::{self, Frame, StreamEntry};
use super::panels::{Panel, Query};

/// The panels' time range, as the Grafana dashboard's (`now-15m` to `now`).
pub const WINDOW_MS: i64 = 15 * 60 * 1000;
/// The span throughput and latency are taken over.
pub const RECENT_MS: i64 = 2_000;

/// One panel as the page draws it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PanelView {
    pub id: u32,
    pub title: String,
    /// `stat`, `barchart` or `timeseries`.
    pub visual: &'static str,
    /// The Valkey command the Grafana plugin sends for it.
    pub command: String,
    pub frame: Frame,
    /// Why Grafana could not draw it (missing data, wrong shape).
    pub problem: Option<String>,
}

/// The pipeline's own figures.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PipelineView {
    /// `bf:stats ventas`: every sale applied.
    pub sales_total: i64,
    /// Sales applied per second over the last [`RECENT_MS`].
    pub sales_per_second: f64,
    /// The highest sale-to-Valkey latency of the batches applied over the
    /// last [`RECENT_MS`] (the oldest sale of each batch), if any.
    pub latency_ms: Option<f64>,
    /// Sales in Kafka not yet applied (end offsets against stored offsets);
    /// `None` when the broker could not be read.
    pub pending: Option<i64>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    pub time_ms: i64,
    pub pipeline: PipelineView,
    pub panels: Vec<PanelView>,
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Every panel's frame, transformed, from one atomic read of Valkey.
/// Also what the panel check reads.
pub fn read_panels(
    valkey: &mut redis::Connection,
    panels: &[Panel],
    now_ms: i64,
) -> anyhow::Result<(Vec<PanelView>, i64, Vec<StreamEntry>)> {
    let window = Some((now_ms - WINDOW_MS, now_ms));
    let mut pipe = redis::pipe();
    pipe.atomic();
    for panel in panels {
        let args = panel.query.args(window);
        let mut command = redis::cmd(&args[0]);
        for arg in &args[1..] {
            command.arg(arg);
        }
        pipe.add_command(command);
    }
    pipe.cmd("HGET").arg("bf:stats").arg("ventas");
    pipe.cmd("XRANGE")
        .arg("bf:aplicado")
        .arg(format!("{}-0", now_ms - RECENT_MS))
        .arg("+");
    let mut replies: Vec<redis::Value> = pipe.query(valkey).context("reading the panels")?;
    let recent = replies.pop().context("no reply for bf:aplicado")?;
    let total = replies.pop().context("no reply for bf:stats")?;
    let recent: Vec<StreamEntry> =
        redis::from_redis_value(recent).context("reading bf:aplicado")?;
    let total: Option<i64> = redis::from_redis_value(total).context("reading bf:stats")?;
    let mut views = Vec::new();
    for (panel, reply) in panels.iter().zip(replies) {
        let command = panel.query.command_line(window);
        let frame = frame_of(&panel.query, reply).with_context(|| format!("reading {command}"))?;
        let frame = panel.transform(frame);
        views.push(PanelView {
            id: panel.id,
            title: panel.title.clone(),
            visual: panel.visual.grafana_type(),
            problem: panel.check(&frame).err(),
            command,
            frame,
        });
    }
    Ok((views, total.unwrap_or(0), recent))
}

/// The frame the plugin builds of one reply.
pub fn frame_of(query: &Query, reply: redis::Value) -> anyhow::Result<Frame> {
    Ok(match query {
        Query::HGetAll { .. } => frame::hgetall(&redis::from_redis_value::<Vec<String>>(reply)?),
        Query::HMGet { fields, .. } => {
            let fields: Vec<String> = fields.iter().map(|f| f.to_string()).collect();
            frame::hmget(
                &fields,
                &redis::from_redis_value::<Vec<Option<String>>>(reply)?,
            )
        }
        Query::ZRange { .. } => frame::zrange(&redis::from_redis_value::<Vec<String>>(reply)?),
        Query::XRange { .. } => frame::xrange(&redis::from_redis_value::<Vec<StreamEntry>>(reply)?),
    })
}

/// Throughput and the highest latency from the recent `bf:aplicado` entries.
fn recent_figures(recent: &[StreamEntry]) -> (f64, Option<f64>) {
    let field = |entry: &StreamEntry, name: &str| {
        entry
            .1
            .iter()
            .find(|(key, _)| key == name)
            .and_then(|(_, value)| value.parse::<f64>().ok())
    };
    // `+ 0.0`: an empty sum is -0.0, which would show as "-0".
    let sales: f64 = recent
        .iter()
        .filter_map(|e| field(e, "ventas"))
        .sum::<f64>()
        + 0.0;
    let latency = recent
        .iter()
        .filter_map(|e| field(e, "latencia_max_ms"))
        .reduce(f64::max);
    (sales * 1000.0 / RECENT_MS as f64, latency)
}

/// Opens a connection to the pipeline's Valkey.
pub type Connect = Box<dyn Fn() -> anyhow::Result<redis::Connection> + Send>;
/// Counts the sales in Kafka not yet applied (`None`: cannot tell now).
pub type Pending = Box<dyn FnMut() -> Option<i64> + Send>;

/// Reads a pipeline for the page.
pub struct LiveSource {
    panels: Vec<Panel>,
    connect: Connect,
    pending: Pending,
    valkey: Option<redis::Connection>,
}

impl LiveSource {
    pub fn new(panels: Vec<Panel>, connect: Connect, pending: Pending) -> LiveSource {
        LiveSource {
            panels,
            connect,
            pending,
            valkey: None,
        }
    }

    pub fn snapshot(&mut self) -> anyhow::Result<Snapshot> {
        let time_ms = now_ms();
        let read = match self.valkey.as_mut() {
            Some(valkey) => read_panels(valkey, &self.panels, time_ms).ok(),
            None => None,
        };
        let (panels, sales_total, recent) = match read {
            Some(read) => read,
            None => {
                // Not connected yet, or Valkey was restarted: a new
                // connection, one more try.
                let valkey = self.valkey.insert((self.connect)()?);
                read_panels(valkey, &self.panels, time_ms)?
            }
        };
        let (sales_per_second, latency_ms) = recent_figures(&recent);
        Ok(Snapshot {
            time_ms,
            pipeline: PipelineView {
                sales_total,
                sales_per_second,
                latency_ms,
                pending: (self.pending)(),
            },
            panels,
        })
    }
}
