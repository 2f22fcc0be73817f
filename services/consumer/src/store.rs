//! Valkey as the consumer's source of truth: the dashboard aggregates and, in
//! the same atomic script call, the next offset of every partition.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use redis::{IntoConnectionInfo, Script};

/// Where and how to reach Valkey.
#[derive(Clone)]
pub struct ValkeySettings {
    /// `redis://host:port/db` (no password in it).
    pub url: String,
    pub password: Option<String>,
    pub timeout: Duration,
}

/// What happened to a batch.
#[derive(Debug, PartialEq, Eq)]
pub enum ApplyOutcome {
    /// Written; the tracked product (if any), Valkey's clock in ms, and
    /// Valkey's total of sales applied (`bf:stats ventas`) after it.
    Applied {
        tracked_product: Option<String>,
        valkey_time_ms: i64,
        sales_total: i64,
    },
    /// Part of the batch was already applied (by another group member or an
    /// earlier try): nothing was written.
    Fenced { partition: i32, stored_next: i64 },
}

pub struct Store {
    client: redis::Client,
    connection: Option<redis::Connection>,
    script: Script,
    timeout: Duration,
}

impl Store {
    pub fn new(settings: &ValkeySettings) -> anyhow::Result<Store> {
        let mut info = settings
            .url
            .as_str()
            .into_connection_info()
            .with_context(|| format!("invalid Valkey URL {:?}", settings.url))?;
        if let Some(password) = &settings.password {
            let redis_settings = info.redis_settings().clone().set_password(password);
            info = info.set_redis_settings(redis_settings);
        }
        Ok(Store {
            client: redis::Client::open(info).context("creating Valkey client")?,
            connection: None,
            script: Script::new(include_str!("apply.lua")),
            timeout: settings.timeout,
        })
    }

    /// Checks Valkey answers; returns how many keys it holds.
    /// PING, then the number of keys and the total of sales applied
    /// (`bf:stats ventas`, 0 before the first batch).
    pub fn probe(&mut self) -> redis::RedisResult<(i64, i64)> {
        self.with_connection(|connection, _| {
            redis::cmd("PING").query::<()>(connection)?;
            let keys = redis::cmd("DBSIZE").query(connection)?;
            let sales: Option<i64> = redis::cmd("HGET")
                .arg("bf:stats")
                .arg("ventas")
                .query(connection)?;
            Ok((keys, sales.unwrap_or(0)))
        })
    }

    /// Runs `operation` on the open connection, opening one when there is
    /// none. Any error drops the connection, so the next call starts afresh;
    /// the caller then re-reads the stored offsets (see `group::resync`),
    /// because a batch whose reply was lost may or may not have been applied,
    /// and a restarted Valkey may have lost its last second of writes.
    fn with_connection<T>(
        &mut self,
        operation: impl FnOnce(&mut redis::Connection, &Script) -> redis::RedisResult<T>,
    ) -> redis::RedisResult<T> {
        let mut connection = match self.connection.take() {
            Some(connection) => connection,
            None => {
                let connection = self.client.get_connection_with_timeout(self.timeout)?;
                connection.set_read_timeout(Some(self.timeout))?;
                connection.set_write_timeout(Some(self.timeout))?;
                connection
            }
        };
        let value = operation(&mut connection, &self.script)?;
        self.connection = Some(connection);
        Ok(value)
    }

    /// The stored next offset per partition of `topic`.
    pub fn load_offsets(&mut self, topic: &str) -> redis::RedisResult<BTreeMap<i32, i64>> {
        let key = format!("bf:offsets:{topic}");
        self.with_connection(|connection, _| {
            redis::cmd("HGETALL")
                .arg(&key)
                .query::<BTreeMap<i32, i64>>(connection)
        })
    }

    /// The product whose price series is kept, once one was chosen.
    pub fn tracked_product(&mut self) -> redis::RedisResult<Option<String>> {
        self.with_connection(|connection, _| {
            redis::cmd("HGET")
                .arg("bf:carnet")
                .arg("producto")
                .query::<Option<String>>(connection)
        })
    }

    /// Applies one batch payload atomically.
    pub fn apply(&mut self, payload: &str) -> redis::RedisResult<ApplyOutcome> {
        let reply = self.with_connection(|connection, script| {
            script.arg(payload).invoke::<Vec<String>>(connection)
        })?;
        parse_reply(&reply)
    }
}

fn parse_reply(reply: &[String]) -> redis::RedisResult<ApplyOutcome> {
    let bad = || {
        redis::RedisError::from((
            redis::ErrorKind::UnexpectedReturnType,
            "unexpected reply from the apply script",
            format!("{reply:?}"),
        ))
    };
    match reply {
        [kind, tracked, now, total] if kind == "applied" => Ok(ApplyOutcome::Applied {
            tracked_product: Some(tracked.clone()).filter(|t| !t.is_empty()),
            valkey_time_ms: now.parse().map_err(|_| bad())?,
            sales_total: total.parse().map_err(|_| bad())?,
        }),
        [kind, partition, stored] if kind == "fenced" => Ok(ApplyOutcome::Fenced {
            partition: partition.parse().map_err(|_| bad())?,
            stored_next: stored.parse().map_err(|_| bad())?,
        }),
        _ => Err(bad()),
    }
}
