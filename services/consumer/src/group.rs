//! The consumer group member: polls batches from Kafka, folds them, and applies
//! each batch to Valkey in one atomic script call together with the offsets.
//!
//! Offsets live in Valkey, not in Kafka. When partitions are assigned, the
//! rebalance callback reads their stored offsets and assigns from there (from
//! the beginning when none are stored). After any Valkey error or a fenced
//! batch the member *resyncs*: it drops what it holds, reads the stored offsets
//! again and seeks every assigned partition to them. Together with the fence in
//! the script this gives exactly-once effect under crashes, restarts and
//! rebalances. Offsets are also committed to Kafka after each batch, only so
//! that the usual tools (and `bfctl status`) can show the group's lag.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::Context;
use blackfriday_proto::record::{Sale, decode_record};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::KafkaResult;
use rdkafka::message::Message;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientConfig, ClientContext, Offset, TopicPartitionList};

use crate::aggregate::{BatchInput, CarnetSettings, PartitionRange, build_payload};
use crate::dead_letter::{DeadLetter, DeadLetterTopic};
use crate::metrics::Metrics;
use crate::store::{ApplyOutcome, Store};

pub struct GroupSettings {
    pub client: ClientConfig,
    pub group_id: String,
    pub topic: String,
    pub dead_letter_topic: String,
    pub batch_max: usize,
    pub batch_wait: Duration,
    pub carnet: Option<CarnetSettings>,
    pub series_length: usize,
    /// Rejoin the group when a partition that is not ours has a backlog whose
    /// stored offset has not moved for this long (see [`StallWatch`]).
    pub rejoin_when_stalled: Duration,
}

/// Shared between the poll loop and the rebalance callback (which librdkafka
/// runs inside `poll`, on the same thread).
struct GroupContext {
    topic: String,
    store: Arc<Mutex<Store>>,
    assigned: Mutex<BTreeSet<i32>>,
    stop: Arc<AtomicBool>,
    metrics: Metrics,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock ends the process anyway; keep going.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Retries `operation` with exponential backoff (50 ms to 5 s) until it
/// succeeds or `stop` is set.
fn retry<T, E: std::fmt::Display>(
    what: &str,
    stop: &AtomicBool,
    metrics: &Metrics,
    mut operation: impl FnMut() -> Result<T, E>,
) -> Option<T> {
    let mut delay = Duration::from_millis(50);
    loop {
        match operation() {
            Ok(value) => return Some(value),
            Err(error) => {
                metrics.valkey_errors.inc();
                tracing::warn!(%error, retry_in = ?delay, "{what} failed");
            }
        }
        if stop.load(Ordering::Relaxed) {
            return None;
        }
        std::thread::sleep(delay);
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

impl GroupContext {
    fn stored_offsets(&self) -> Option<BTreeMap<i32, i64>> {
        retry(
            "reading offsets from Valkey",
            &self.stop,
            &self.metrics,
            || lock(&self.store).load_offsets(&self.topic),
        )
    }

    fn assigned(&self) -> BTreeSet<i32> {
        lock(&self.assigned).clone()
    }

    fn set_assigned(&self, partitions: BTreeSet<i32>) {
        self.metrics
            .assigned_partitions
            .set(partitions.len() as i64);
        *lock(&self.assigned) = partitions;
    }
}

fn offset_for(stored: &BTreeMap<i32, i64>, partition: i32) -> Offset {
    stored
        .get(&partition)
        .map(|next| Offset::Offset(*next))
        .unwrap_or(Offset::Beginning)
}

impl ClientContext for GroupContext {
    /// librdkafka's statistics (every `statistics.interval.ms`): the lag of
    /// the partitions this member holds, for `bfctl status` and dashboards.
    fn stats(&self, statistics: rdkafka::Statistics) {
        let lag: i64 = statistics
            .topics
            .get(&self.topic)
            .map(|topic| {
                topic
                    .partitions
                    .iter()
                    // -1 is librdkafka's internal partition; a negative lag is
                    // "unknown" (not assigned, or no offset yet).
                    .filter(|(partition, p)| **partition >= 0 && p.consumer_lag >= 0)
                    .map(|(_, p)| p.consumer_lag)
                    .sum()
            })
            .unwrap_or(0);
        self.metrics.lag.set(lag);
    }
}

impl ConsumerContext for GroupContext {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        let partitions: BTreeSet<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
        let result: KafkaResult<()> = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let Some(stored) = self.stored_offsets() else {
                    tracing::warn!(
                        "stopping before offsets could be read: not taking the assignment"
                    );
                    return;
                };
                for &partition in &partitions {
                    if let Err(error) = tpl.set_partition_offset(
                        &self.topic,
                        partition,
                        offset_for(&stored, partition),
                    ) {
                        tracing::error!(%error, partition, "cannot set the starting offset");
                    }
                }
                tracing::info!(
                    ?partitions,
                    ?stored,
                    "partitions assigned; resuming from offsets stored in Valkey"
                );
                let mut now_assigned = if cooperative {
                    self.assigned()
                } else {
                    BTreeSet::new()
                };
                now_assigned.extend(&partitions);
                self.set_assigned(now_assigned);
                if cooperative {
                    consumer.incremental_assign(tpl)
                } else {
                    consumer.assign(tpl)
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                tracing::info!(?partitions, "partitions revoked");
                let mut now_assigned = self.assigned();
                now_assigned.retain(|p| !partitions.contains(p));
                self.set_assigned(if cooperative {
                    now_assigned
                } else {
                    BTreeSet::new()
                });
                if cooperative {
                    consumer.incremental_unassign(tpl)
                } else {
                    consumer.unassign()
                }
            }
            other => {
                tracing::error!(error = ?other, "rebalance error: dropping the assignment");
                self.set_assigned(BTreeSet::new());
                consumer.unassign()
            }
        };
        if let Err(error) = result {
            tracing::error!(%error, "applying the rebalance failed");
        }
    }
}

/// One polled record.
struct Polled {
    partition: i32,
    offset: i64,
    decoded: Result<Sale, DeadLetter>,
}

fn poll_one(consumer: &BaseConsumer<GroupContext>, timeout: Duration) -> Option<Polled> {
    match consumer.poll(timeout)? {
        Ok(message) => {
            let partition = message.partition();
            let offset = message.offset();
            let payload = message.payload().unwrap_or_default();
            let decoded = decode_record(payload).map_err(|error| DeadLetter {
                partition,
                offset,
                key: message.key().map(<[u8]>::to_vec),
                value: message.payload().map(<[u8]>::to_vec),
                error: error.to_string(),
            });
            Some(Polled {
                partition,
                offset,
                decoded,
            })
        }
        Err(error) => {
            tracing::warn!(%error, "Kafka consumer error");
            None
        }
    }
}

/// Waits up to 100 ms for a first record, then takes what arrives within
/// `wait`, up to `max` records.
fn collect_batch(consumer: &BaseConsumer<GroupContext>, max: usize, wait: Duration) -> Vec<Polled> {
    let mut batch = Vec::new();
    let Some(first) = poll_one(consumer, Duration::from_millis(100)) else {
        return batch;
    };
    batch.push(first);
    let deadline = Instant::now() + wait;
    while batch.len() < max {
        let remaining = deadline.saturating_duration_since(Instant::now());
        match poll_one(consumer, remaining) {
            Some(polled) => batch.push(polled),
            None if remaining.is_zero() => break,
            None => {}
        }
    }
    batch
}

/// Notices partitions that nobody consumes.
///
/// A crashed member stays in the group until its session times out; the
/// coordinator must then hand its partitions to the others. Some brokers
/// (tansu 0.6 when the crashed member led the group) leave the survivors
/// waiting with nothing assigned. A partition with a backlog whose stored
/// offset does not move, and that is not ours, shows it; the cure is to
/// rejoin, which forms the group again. A healthy group never trips this: each
/// partition with a backlog is being applied, so its offset moves.
struct StallWatch {
    /// How long a partition may stall before the member rejoins.
    threshold: Duration,
    check_every: Duration,
    last_check: Instant,
    /// partition → (stored next offset, since when unchanged with a backlog)
    unchanged: BTreeMap<i32, (i64, Instant)>,
    /// The topic's partition count at the last check (0 before the first).
    known_partitions: usize,
}

impl StallWatch {
    fn new(threshold: Duration) -> StallWatch {
        StallWatch {
            threshold,
            check_every: (threshold / 3).max(Duration::from_millis(500)),
            last_check: Instant::now(),
            unchanged: BTreeMap::new(),
            known_partitions: 0,
        }
    }

    /// Partitions with a backlog, not in `mine`, stalled for the threshold.
    fn stalled(
        &mut self,
        consumer: &BaseConsumer<GroupContext>,
        topic: &str,
        mine: &BTreeSet<i32>,
    ) -> Vec<i32> {
        if self.last_check.elapsed() < self.check_every {
            return Vec::new();
        }
        // Holding every partition, none can be stalled elsewhere: no broker calls.
        if self.known_partitions > 0 && mine.len() >= self.known_partitions {
            self.last_check = Instant::now();
            self.unchanged.clear();
            return Vec::new();
        }
        self.last_check = Instant::now();
        let Ok(metadata) = consumer.fetch_metadata(Some(topic), Duration::from_secs(2)) else {
            return Vec::new();
        };
        let partitions: Vec<i32> = metadata
            .topics()
            .iter()
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect();
        self.known_partitions = partitions.len();
        if mine.len() >= self.known_partitions {
            self.unchanged.clear();
            return Vec::new();
        }
        let Ok(stored) = lock(&consumer.context().store).load_offsets(topic) else {
            return Vec::new();
        };
        let now = Instant::now();
        let mut stalled = Vec::new();
        for partition in partitions {
            let Ok((low, high)) =
                consumer.fetch_watermarks(topic, partition, Duration::from_secs(2))
            else {
                continue;
            };
            let next = stored.get(&partition).copied().unwrap_or(low);
            if mine.contains(&partition) || next >= high {
                self.unchanged.remove(&partition);
                continue;
            }
            let entry = self.unchanged.entry(partition).or_insert((next, now));
            if entry.0 != next {
                *entry = (next, now);
            } else if now.duration_since(entry.1) >= self.threshold {
                stalled.push(partition);
            }
        }
        stalled
    }
}

/// A new Kafka consumer, subscribed to the topic as a fresh group member.
fn subscribe(
    settings: &GroupSettings,
    store: Arc<Mutex<Store>>,
    metrics: Metrics,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<BaseConsumer<GroupContext>> {
    let context = GroupContext {
        topic: settings.topic.clone(),
        store,
        assigned: Mutex::new(BTreeSet::new()),
        stop,
        metrics,
    };
    // Defaults that `--kafka-config` may override: incremental rebalances
    // (members keep their partitions while others join or leave) and a
    // 10 s session, so a crashed member's partitions move on quickly; and
    // fetches that wait up to 100 ms for 256 KiB, so that a consumer keeping
    // up with live traffic sends the broker a few large fetches instead of
    // many small ones (measured in docs/benchmarks.md: the gateway's p99
    // with a consumer running went from 53 to 42 ms).
    let mut config = ClientConfig::new();
    config
        .set("partition.assignment.strategy", "cooperative-sticky")
        .set("session.timeout.ms", "10000")
        .set("fetch.min.bytes", "262144")
        .set("fetch.wait.max.ms", "100")
        .set("statistics.interval.ms", "5000");
    for (key, value) in settings.client.config_map() {
        config.set(key, value);
    }
    let consumer: BaseConsumer<GroupContext> = config
        .set("group.id", &settings.group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .create_with_context(context)
        .context("creating the Kafka consumer")?;
    consumer
        .subscribe(&[&settings.topic])
        .with_context(|| format!("subscribing to {}", settings.topic))?;
    Ok(consumer)
}

/// How often offsets are committed to Kafka (for lag display only).
const LAG_COMMIT_INTERVAL: Duration = Duration::from_secs(1);

/// Offsets applied since the last informational commit to Kafka.
struct LagCommit {
    last: Instant,
    pending: BTreeMap<i32, i64>,
}

pub struct Member {
    lag_commit: LagCommit,
    consumer: BaseConsumer<GroupContext>,
    dead_letters: DeadLetterTopic,
    settings: GroupSettings,
    tracked_product: Option<String>,
    stall_watch: StallWatch,
}

impl Member {
    pub fn join(
        settings: GroupSettings,
        store: Arc<Mutex<Store>>,
        metrics: Metrics,
        stop: Arc<AtomicBool>,
    ) -> anyhow::Result<Member> {
        let consumer = subscribe(&settings, store, metrics, stop)?;
        let dead_letters = DeadLetterTopic::new(
            &settings.client,
            &settings.dead_letter_topic,
            &settings.topic,
        )?;
        let stall_watch = StallWatch::new(settings.rejoin_when_stalled);
        Ok(Member {
            lag_commit: LagCommit {
                last: Instant::now(),
                pending: BTreeMap::new(),
            },
            consumer,
            dead_letters,
            settings,
            tracked_product: None,
            stall_watch,
        })
    }

    fn context(&self) -> &GroupContext {
        self.consumer.context()
    }

    /// Polls and applies batches until `stop` is set.
    pub fn run(mut self) -> anyhow::Result<()> {
        let context = self.context();
        self.tracked_product = retry(
            "reading the tracked product",
            &context.stop,
            &context.metrics,
            || lock(&context.store).tracked_product(),
        )
        .flatten();
        while !self.context().stop.load(Ordering::Relaxed) {
            let mut batch = collect_batch(
                &self.consumer,
                self.settings.batch_max,
                self.settings.batch_wait,
            );
            // Records of partitions revoked while the batch was collected belong to someone else now.
            let assigned = self.context().assigned();
            batch.retain(|polled| assigned.contains(&polled.partition));
            if !batch.is_empty() {
                self.process(batch);
            } else {
                // Idle: commit what the last batches applied, so the lag
                // reads 0 once everything is applied.
                self.commit_for_lag(&[]);
            }
            self.rejoin_if_partitions_stall(&assigned)?;
        }
        tracing::info!("leaving the consumer group");
        self.consumer.unsubscribe();
        Ok(())
    }

    fn process(&mut self, batch: Vec<Polled>) {
        let mut ranges: BTreeMap<i32, PartitionRange> = BTreeMap::new();
        let mut sales = Vec::with_capacity(batch.len());
        let mut letters = Vec::new();
        for polled in batch {
            ranges
                .entry(polled.partition)
                .and_modify(|range| range.next = polled.offset + 1)
                .or_insert(PartitionRange {
                    partition: polled.partition,
                    first: polled.offset,
                    next: polled.offset + 1,
                });
            match polled.decoded {
                Ok(sale) => sales.push(sale),
                Err(letter) => letters.push(letter),
            }
        }
        if !letters.is_empty() {
            for letter in &letters {
                tracing::warn!(partition = letter.partition, offset = letter.offset, error = %letter.error, "undecodable record: sending it to the dead-letter topic");
            }
            if let Err(error) = self.dead_letters.send_all(&letters) {
                tracing::error!(
                    error = format!("{error:#}"),
                    "dead-letter topic unavailable: retrying the batch"
                );
                std::thread::sleep(Duration::from_secs(1));
                self.resync();
                return;
            }
        }
        let ranges: Vec<PartitionRange> = ranges.into_values().collect();
        let payload = build_payload(&BatchInput {
            topic: &self.settings.topic,
            ranges: &ranges,
            sales: &sales,
            dead_letters: letters.len(),
            carnet: self.settings.carnet.as_ref(),
            tracked_product: self.tracked_product.as_deref(),
            series_length: self.settings.series_length,
        });
        let payload = match serde_json::to_string(&payload) {
            Ok(payload) => payload,
            Err(error) => {
                // Cannot happen with these plain types; never skip a batch silently.
                tracing::error!(%error, "encoding the batch payload failed");
                self.resync();
                return;
            }
        };
        let started = Instant::now();
        let outcome = lock(&self.context().store).apply(&payload);
        let metrics = &self.context().metrics;
        metrics
            .apply_seconds
            .observe(started.elapsed().as_secs_f64());
        match outcome {
            Ok(ApplyOutcome::Applied {
                tracked_product,
                valkey_time_ms,
                sales_total,
            }) => {
                metrics.batches_applied.inc();
                metrics.valkey_sales.set(sales_total);
                metrics.sales_applied.inc_by(sales.len() as u64);
                metrics.dead_letters.inc_by(letters.len() as u64);
                for sale in &sales {
                    let latency_ms = (valkey_time_ms - sale.timestamp_ms).max(0);
                    metrics
                        .sale_to_valkey_seconds
                        .observe(latency_ms as f64 / 1000.0);
                }
                self.tracked_product = tracked_product;
                self.commit_for_lag(&ranges);
            }
            Ok(ApplyOutcome::Fenced {
                partition,
                stored_next,
            }) => {
                metrics.batches_fenced.inc();
                tracing::info!(
                    partition,
                    stored_next,
                    "batch already (partly) applied elsewhere: resyncing"
                );
                self.resync();
            }
            Err(error) => {
                metrics.valkey_errors.inc();
                tracing::warn!(%error, "applying the batch to Valkey failed: resyncing");
                std::thread::sleep(Duration::from_millis(100));
                self.resync();
            }
        }
    }

    fn rejoin_if_partitions_stall(&mut self, mine: &BTreeSet<i32>) -> anyhow::Result<()> {
        let stalled = self
            .stall_watch
            .stalled(&self.consumer, &self.settings.topic, mine);
        if stalled.is_empty() {
            return Ok(());
        }
        tracing::warn!(
            ?stalled,
            threshold = ?self.stall_watch.threshold,
            "partitions with a backlog are not being consumed: rejoining the group with a new client"
        );
        let context = self.context();
        context.metrics.rejoins.inc();
        context.metrics.assigned_partitions.set(0);
        let (store, metrics, stop) = (
            context.store.clone(),
            context.metrics.clone(),
            context.stop.clone(),
        );
        // A new client, as a restarted process would have: leaving and joining
        // again on the same client does not always get an assignment back.
        self.consumer.unsubscribe();
        self.consumer = subscribe(&self.settings, store, metrics, stop)?;
        self.stall_watch = StallWatch::new(self.stall_watch.threshold);
        Ok(())
    }

    /// Informational commit so that the group's lag shows in Kafka tooling.
    fn commit_for_lag(&mut self, ranges: &[PartitionRange]) {
        for range in ranges {
            self.lag_commit.pending.insert(range.partition, range.next);
        }
        // At most once a second: each commit is work for the group
        // coordinator, and these commits are only for display.
        if self.lag_commit.pending.is_empty()
            || self.lag_commit.last.elapsed() < LAG_COMMIT_INTERVAL
        {
            return;
        }
        self.lag_commit.last = Instant::now();
        let mut tpl = TopicPartitionList::new();
        let assigned = self.context().assigned();
        for (partition, next) in std::mem::take(&mut self.lag_commit.pending) {
            if !assigned.contains(&partition) {
                continue;
            }
            if let Err(error) =
                tpl.add_partition_offset(&self.settings.topic, partition, Offset::Offset(next))
            {
                tracing::debug!(%error, "building the lag commit");
                return;
            }
        }
        if tpl.count() == 0 {
            return;
        }
        if let Err(error) = self.consumer.commit(&tpl, CommitMode::Async) {
            tracing::debug!(%error, "committing offsets to Kafka (for lag only) failed");
        }
    }

    /// Re-reads the stored offsets and seeks every assigned partition to them.
    fn resync(&self) {
        let context = self.context();
        context.metrics.resyncs.inc();
        retry(
            "resyncing offsets from Valkey",
            &context.stop,
            &context.metrics,
            || {
                let stored = lock(&context.store)
                    .load_offsets(&self.settings.topic)
                    .map_err(|e| e.to_string())?;
                for partition in context.assigned() {
                    let offset = offset_for(&stored, partition);
                    self.consumer
                        .seek(
                            &self.settings.topic,
                            partition,
                            offset,
                            Duration::from_secs(5),
                        )
                        .map_err(|error| {
                            format!("seeking partition {partition} to {offset:?}: {error}")
                        })?;
                }
                Ok::<_, String>(())
            },
        );
    }
}
