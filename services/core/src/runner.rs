//! The exactly-once consume → transform → produce loop shared by ingest, the
//! enricher and the detector.
//!
//! **Guarantee.** Each input record's outputs (or its dead letter) and the
//! consumer offset past it are written in one Kafka transaction: readers with
//! `isolation.level=read_committed` see every input's effect exactly once, across
//! crashes, restarts and rebalances. This is the loop of rust-rdkafka's
//! transactions example: `init_transactions` once; per batch
//! `begin_transaction`, produce, `send_offsets_to_transaction` with
//! *last processed + 1* and the consumer's group metadata (KIP-447 fencing), and
//! `commit_transaction`.
//!
//! **Failures.** Errors are classified by librdkafka: *retriable* calls are
//! retried, errors that *require abort* abort the transaction, roll the stage's
//! state back ([`Stage::abort`]) and rewind the consumer to the batch's first
//! offsets so the batch is processed again; *fatal* errors (e.g. this producer
//! was fenced by a newer instance with the same transactional id) end the loop
//! with an error and the process exits for its supervisor to restart it.
//!
//! **Poison.** A record the stage rejects ([`Poison`]) goes to the dead-letter
//! topic, with its original key and bytes and the reason in headers, inside the
//! same transaction, so it is never lost, never retried forever, and the records
//! around it flow on.
//!
//! **Rebalances.** Rebalance callbacks run only inside `poll`, and the loop never
//! polls while a transaction is open, so a revocation never splits a
//! transaction; records already buffered from a revoked partition are dropped
//! unprocessed (the new owner reads them from the committed offset).
//!
//! **Ordering.** Records of one input partition are processed in offset order;
//! outputs keep that order within their output partition.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientContext, Message, Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use crate::admin::TaskHealth;
use crate::config::KafkaConfig;
pub use crate::dlq::Poison;
use crate::metrics::RunnerMetrics;

/// One input record as the stage sees it.
#[derive(Debug, Clone, Copy)]
pub struct InputRecord<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<&'a [u8]>,
    pub payload: Option<&'a [u8]>,
    /// Kafka record timestamp, milliseconds since the epoch.
    pub timestamp: Option<i64>,
}

impl InputRecord<'_> {
    /// The record's value decoded as `what` (e.g. "an AuditEvent"): poison
    /// when it is absent or not such a record, transient when the schema
    /// registry could not be asked.
    pub fn decode<T>(
        &self,
        codec: &crate::schema::AvroCodec<T>,
        what: &str,
    ) -> Result<T, StageError>
    where
        T: serde::Serialize + serde::de::DeserializeOwned,
    {
        let payload = self
            .payload
            .ok_or_else(|| Poison::new("empty", "record has no value"))?;
        codec
            .decode(payload)
            .map_err(|e| StageError::undecodable(e, what))
    }
}

/// One record to produce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub topic: String,
    pub key: Option<Vec<u8>>,
    /// `None` is a tombstone (deletes the key from a compacted topic).
    pub payload: Option<Vec<u8>>,
    /// An explicit partition; `None` lets the partitioner choose by key.
    pub partition: Option<i32>,
    pub headers: Vec<(String, Vec<u8>)>,
}

impl Output {
    /// A keyed record; the partitioner picks its partition from the key.
    pub fn keyed(topic: impl Into<String>, key: impl Into<Vec<u8>>, payload: Vec<u8>) -> Self {
        Output {
            topic: topic.into(),
            key: Some(key.into()),
            payload: Some(payload),
            partition: None,
            headers: Vec::new(),
        }
    }

    /// A tombstone for `key`: compaction removes the key's earlier records.
    pub fn tombstone(topic: impl Into<String>, key: impl Into<Vec<u8>>) -> Self {
        Output {
            topic: topic.into(),
            key: Some(key.into()),
            payload: None,
            partition: None,
            headers: Vec::new(),
        }
    }

    /// The same record on an explicit partition.
    pub fn on_partition(mut self, partition: i32) -> Self {
        self.partition = Some(partition);
        self
    }

    fn owned_headers(&self) -> OwnedHeaders {
        let mut h = OwnedHeaders::new_with_capacity(self.headers.len());
        for (key, value) in &self.headers {
            h = h.insert(Header {
                key,
                value: Some(value.as_slice()),
            });
        }
        h
    }
}

/// Why a stage did not transform a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StageError {
    /// The record can never be processed: it goes to the dead-letter topic.
    Poison(Poison),
    /// Processing failed for a reason that will pass (e.g. the schema registry
    /// is unreachable): the transaction aborts and the batch is retried after a
    /// backoff. Nothing is dead-lettered.
    Transient(String),
}

impl From<Poison> for StageError {
    fn from(p: Poison) -> Self {
        StageError::Poison(p)
    }
}

impl StageError {
    /// The error for a record that does not decode as `what`: transient when
    /// the schema registry could not be asked, poison otherwise.
    pub fn undecodable(e: crate::schema::CodecError, what: &str) -> Self {
        if e.is_transient() {
            StageError::Transient(format!("cannot decode {what}: {e}"))
        } else {
            StageError::Poison(Poison::new("invalid_avro", format!("not {what}: {e}")))
        }
    }
}

/// A pure transformation from input records to output records. The runner owns
/// Kafka, offsets, transactions, dead letters and metrics; a stage holds none of
/// them and is unit-tested without a broker.
pub trait Stage: Send {
    /// Transforms one record, appending its outputs to `out`. A
    /// [`StageError::Poison`] sends the record to the dead-letter topic instead
    /// (any outputs appended before the error are discarded); a
    /// [`StageError::Transient`] retries the batch.
    fn process(
        &mut self,
        record: &InputRecord<'_>,
        out: &mut Vec<Output>,
    ) -> Result<(), StageError>;

    /// Every record of the transaction has been processed and it is about
    /// to commit: append outputs that summarise the whole transaction rather
    /// than one record (a changelog entry per changed key, written once
    /// however many records changed it). They are produced in the
    /// transaction; if one cannot be, the transaction aborts and
    /// [`Stage::abort`] follows.
    fn before_commit(&mut self, _out: &mut Vec<Output>) {}

    /// The transaction holding everything since the last commit is durable.
    fn commit(&mut self) {}

    /// The transaction aborted: restore the state as of the last commit, the
    /// records since then will be processed again.
    fn abort(&mut self) {}

    /// Partitions now owned by this instance.
    fn partitions_assigned(&mut self, _partitions: &[(String, i32)]) {}

    /// The outputs of the record just processed could not be produced (they
    /// are too large for Kafka, say): the record goes to the dead-letter topic
    /// instead, and the stage must undo what assumed its outputs exist (e.g.
    /// a chain head that would otherwise point at a record never written).
    fn output_rejected(&mut self) {}

    /// A topic the stage writes and must continue after a restart or a
    /// rebalance: on assignment of input partition *p*, the runner calls
    /// [`Stage::resume`] with a reader of this topic's partition *p*.
    fn resumes_from(&self) -> Option<String> {
        None
    }

    /// Restores what the stage needs from the tail of its own output
    /// partition `partition` before it processes records of that partition.
    fn resume(&mut self, _partition: i32, _tail: &mut dyn Tail) -> Result<(), String> {
        Ok(())
    }

    /// Partitions taken away: drop their state, another instance owns them now.
    fn partitions_revoked(&mut self, _partitions: &[(String, i32)]) {}

    /// No record arrived for a while. A stage whose outputs wait on event
    /// time (windows that close when later events arrive) may produce them
    /// here; they are written in a transaction of their own, with no input
    /// offsets, and [`Stage::commit`] or [`Stage::abort`] follows as usual.
    fn idle(&mut self, _out: &mut Vec<Output>) {}
}

/// The committed end of an output partition (see [`Stage::resume`]).
pub trait Tail {
    /// The committed payloads among the last `span` offsets, in log order,
    /// and whether that reached the start of the partition.
    fn last(&mut self, span: i64) -> Result<(Vec<Vec<u8>>, bool), String>;

    /// Every committed record of partition *p* (the one being resumed) of
    /// another topic the stage owns, such as a compacted changelog of its
    /// state, in log order: key and payload (`None` for a tombstone).
    fn scan(&mut self, topic: &str, f: &mut crate::kafka::VisitRecord<'_>) -> Result<u64, String>;
}

struct PartitionTailOf<'a> {
    reader: &'a crate::kafka::PartitionTail,
    topic: &'a str,
    partition: i32,
    health: &'a TaskHealth,
}

impl Tail for PartitionTailOf<'_> {
    fn last(&mut self, span: i64) -> Result<(Vec<Vec<u8>>, bool), String> {
        self.reader
            .last(self.topic, self.partition, span)
            .map_err(|e| e.to_string())
    }

    fn scan(&mut self, topic: &str, f: &mut crate::kafka::VisitRecord<'_>) -> Result<u64, String> {
        // A long restore is progress, not a stall: keep /healthz alive while
        // records arrive (it still fails if the scan stops moving).
        let health = self.health;
        let mut n = 0u64;
        let mut visit = |key: Option<&[u8]>, payload: Option<&[u8]>| {
            n += 1;
            if n.is_multiple_of(4096) {
                health.beat();
            }
            f(key, payload)
        };
        let read = self
            .reader
            .scan(topic, self.partition, &mut visit)
            .map_err(|e| e.to_string());
        self.health.beat();
        read
    }
}

/// What one loop consumes and where it sends dead letters.
#[derive(Debug, Clone)]
pub struct RunnerSpec {
    /// Task name: metric label, log field and part of the transactional id.
    pub task: String,
    /// The service rejecting poison records (DLQ header).
    pub stage: String,
    pub group_id: String,
    pub input_topics: Vec<String>,
    pub dlq_topic: String,
}

#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("kafka ({context}): {source}")]
    Kafka {
        context: &'static str,
        #[source]
        source: KafkaError,
    },
    #[error("cannot resume output partition {partition}: {reason}")]
    Resume { partition: i32, reason: String },
    #[error("fatal transaction error ({context}): {source}; another instance with transactional id `{transactional_id}` may have fenced this one")]
    Fatal {
        context: &'static str,
        transactional_id: String,
        #[source]
        source: KafkaError,
    },
}

#[derive(Debug)]
enum RebalanceEvent {
    Assigned(Vec<(String, i32)>),
    Revoked(Vec<(String, i32)>),
}

struct RunnerContext {
    events: Mutex<Vec<RebalanceEvent>>,
    task: String,
    lag: prometheus::IntGaugeVec,
}

fn tpl_partitions(tpl: &TopicPartitionList) -> Vec<(String, i32)> {
    tpl.elements()
        .iter()
        .map(|e| (e.topic().to_string(), e.partition()))
        .collect()
}

impl ClientContext for RunnerContext {
    fn stats(&self, statistics: rdkafka::Statistics) {
        crate::metrics::record_consumer_lag(&self.lag, &self.task, &statistics);
    }
}

impl ConsumerContext for RunnerContext {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            if let Ok(mut ev) = self.events.lock() {
                ev.push(RebalanceEvent::Revoked(tpl_partitions(tpl)));
            }
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            if let Ok(mut ev) = self.events.lock() {
                ev.push(RebalanceEvent::Assigned(tpl_partitions(tpl)));
            }
        }
    }
}

/// How a transactional API error is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ErrorClass {
    Retriable,
    Abort,
    Fatal,
}

fn classify(e: &KafkaError) -> ErrorClass {
    match e {
        KafkaError::Transaction(rd) if rd.is_fatal() => ErrorClass::Fatal,
        KafkaError::Transaction(rd) if rd.txn_requires_abort() => ErrorClass::Abort,
        KafkaError::Transaction(rd) if rd.is_retriable() => ErrorClass::Retriable,
        // A produce failure before commit poisons only this transaction.
        KafkaError::MessageProduction(_) => ErrorClass::Abort,
        // commit_transaction flushes first; a flush that outlasts the timeout
        // is worth another wait (messages may be in flight up to the
        // transaction timeout).
        KafkaError::Flush(_) => ErrorClass::Retriable,
        _ => ErrorClass::Fatal,
    }
}

/// Produce errors that retrying cannot cure: the input record is dead-lettered
/// instead of the batch being retried forever.
fn unproducible(e: &KafkaError) -> bool {
    matches!(
        e,
        KafkaError::MessageProduction(
            RDKafkaErrorCode::MessageSizeTooLarge
                | RDKafkaErrorCode::InvalidMessageSize
                | RDKafkaErrorCode::UnknownPartition
        )
    )
}

/// The loop: owns one consumer and one transactional producer.
pub struct Runner<S: Stage> {
    spec: RunnerSpec,
    stage: S,
    consumer: BaseConsumer<RunnerContext>,
    producer: BaseProducer,
    transactional_id: String,
    metrics: RunnerMetrics,
    health: Arc<TaskHealth>,
    batch_max: usize,
    batch_wait: Duration,
    op_timeout: Duration,
    assigned: usize,
    /// Aborts since the last commit, for the retry backoff.
    aborts_in_a_row: u32,
    /// Reader of the stage's own output, when it resumes from it.
    tail: Option<(String, crate::kafka::PartitionTail)>,
}

/// Outcome of one batch.
enum BatchOutcome {
    Committed,
    Aborted,
}

impl<S: Stage> Runner<S> {
    /// Creates the clients and initialises transactions (fencing any previous
    /// incarnation with the same transactional id). Blocking.
    pub fn new(
        spec: RunnerSpec,
        kafka: &KafkaConfig,
        stage: S,
        metrics: RunnerMetrics,
        health: Arc<TaskHealth>,
        shutdown: &CancellationToken,
    ) -> Result<Self, RunnerError> {
        let transactional_id = format!("{}-{}", spec.group_id, kafka.instance_id());
        let consumer: BaseConsumer<RunnerContext> =
            crate::kafka::transactional_consumer_config(kafka, &spec.group_id)?
                .create_with_context(RunnerContext {
                    events: Mutex::new(Vec::new()),
                    task: spec.task.clone(),
                    lag: metrics.consumer_lag.clone(),
                })
                .map_err(|source| RunnerError::Kafka {
                    context: "create consumer",
                    source,
                })?;
        let producer: BaseProducer =
            crate::kafka::transactional_producer_config(kafka, &transactional_id)?
                .create()
                .map_err(|source| RunnerError::Kafka {
                    context: "create producer",
                    source,
                })?;
        let op_timeout = Duration::from_millis(kafka.operation_timeout_ms);
        let tail = match stage.resumes_from() {
            Some(topic) => Some((
                topic,
                crate::kafka::PartitionTail::new(kafka, &spec.group_id).map_err(|e| {
                    RunnerError::Resume {
                        partition: -1,
                        reason: e.to_string(),
                    }
                })?,
            )),
            None => None,
        };
        // Short attempts, retried until Kafka answers or shutdown is asked
        // for: a broker that is down at start-up leaves the service alive but
        // not ready, and SIGTERM still stops it within seconds.
        loop {
            health.beat();
            match producer.init_transactions(Duration::from_secs(5).min(op_timeout)) {
                Ok(()) => break,
                Err(e) if classify(&e) == ErrorClass::Retriable => {
                    if shutdown.is_cancelled() {
                        return Err(RunnerError::Kafka {
                            context: "init transactions (interrupted by shutdown)",
                            source: e,
                        });
                    }
                    tracing::warn!(message = "init_transactions failed; retrying", task = %spec.task, error = %e);
                    std::thread::sleep(Duration::from_millis(500));
                }
                Err(source) => {
                    return Err(RunnerError::Kafka {
                        context: "init transactions",
                        source,
                    })
                }
            }
        }
        // Export the gauges and outcomes from the start, not from their first
        // change, so dashboards and alert rules see them.
        metrics.backpressure.with_label_values(&[&spec.task]).set(0);
        metrics
            .assigned_partitions
            .with_label_values(&[&spec.task])
            .set(0);
        for outcome in ["committed", "aborted"] {
            metrics
                .transactions
                .with_label_values(&[&spec.task, outcome]);
        }
        let topics: Vec<&str> = spec.input_topics.iter().map(String::as_str).collect();
        consumer
            .subscribe(&topics)
            .map_err(|source| RunnerError::Kafka {
                context: "subscribe",
                source,
            })?;
        tracing::info!(
            message = "runner started",
            task = %spec.task,
            group_id = %spec.group_id,
            transactional_id = %transactional_id,
            input = ?spec.input_topics,
        );
        Ok(Runner {
            batch_max: kafka.batch_max_messages,
            batch_wait: Duration::from_millis(kafka.batch_max_wait_ms),
            op_timeout,
            spec,
            stage,
            consumer,
            producer,
            transactional_id,
            metrics,
            health,
            assigned: 0,
            aborts_in_a_row: 0,
            tail,
        })
    }

    /// Runs until `shutdown` is cancelled (then returns `Ok` after the batch in
    /// hand is committed) or a fatal error occurs. Blocking.
    pub fn run(mut self, shutdown: CancellationToken) -> Result<(), RunnerError> {
        while !shutdown.is_cancelled() {
            self.health.beat();
            let batch = self.collect_batch(&shutdown)?;
            if batch.is_empty() {
                if self.assigned > 0 {
                    self.flush_idle()?;
                }
                continue;
            }
            let started = Instant::now();
            match self.process_batch(&batch)? {
                BatchOutcome::Committed => {
                    self.aborts_in_a_row = 0;
                    self.metrics
                        .batch_seconds
                        .with_label_values(&[&self.spec.task])
                        .observe(started.elapsed().as_secs_f64());
                }
                BatchOutcome::Aborted => {
                    // Back off (200 ms doubling to 10 s) so a lasting problem
                    // is not hammered; each abort is counted and logged.
                    let wait = 200u64 << self.aborts_in_a_row.min(6);
                    self.aborts_in_a_row += 1;
                    self.sleep_unless(&shutdown, Duration::from_millis(wait.min(10_000)));
                }
            }
        }
        tracing::info!(message = "runner stopping; leaving consumer group", task = %self.spec.task);
        self.consumer.unsubscribe();
        self.health.set_ready(false);
        Ok(())
    }

    /// Sleeps up to `d`, waking early on shutdown.
    fn sleep_unless(&self, shutdown: &CancellationToken, d: Duration) {
        let until = Instant::now() + d;
        while !shutdown.is_cancelled() && Instant::now() < until {
            self.health.beat();
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn task(&self) -> &str {
        &self.spec.task
    }

    /// Applies rebalance events seen during the last poll; drops buffered
    /// records of revoked partitions.
    fn apply_rebalances(&mut self, batch: &mut Vec<OwnedMessage>) -> Result<(), RunnerError> {
        let events: Vec<RebalanceEvent> = match self.consumer.context().events.lock() {
            Ok(mut ev) => ev.drain(..).collect(),
            Err(_) => return Ok(()),
        };
        for ev in events {
            match ev {
                RebalanceEvent::Assigned(parts) => {
                    self.assigned += parts.len();
                    self.metrics
                        .rebalances
                        .with_label_values(&[self.task(), "assign"])
                        .inc();
                    tracing::info!(message = "partitions assigned", task = %self.spec.task, partitions = ?parts);
                    self.stage.partitions_assigned(&parts);
                    // No transaction is open here, and the previous owner of
                    // these partitions committed before releasing them, so the
                    // committed tail is final.
                    if let Some((topic, reader)) = &self.tail {
                        for (_, partition) in &parts {
                            let mut tail = PartitionTailOf {
                                reader,
                                topic,
                                partition: *partition,
                                health: &self.health,
                            };
                            self.stage.resume(*partition, &mut tail).map_err(|reason| {
                                RunnerError::Resume {
                                    partition: *partition,
                                    reason,
                                }
                            })?;
                        }
                    }
                    self.health.set_ready(true);
                }
                RebalanceEvent::Revoked(parts) => {
                    self.assigned = self.assigned.saturating_sub(parts.len());
                    self.metrics
                        .rebalances
                        .with_label_values(&[self.task(), "revoke"])
                        .inc();
                    tracing::info!(message = "partitions revoked", task = %self.spec.task, partitions = ?parts);
                    batch.retain(|m| {
                        !parts
                            .iter()
                            .any(|(t, p)| t == m.topic() && *p == m.partition())
                    });
                    self.stage.partitions_revoked(&parts);
                }
            }
            self.metrics
                .assigned_partitions
                .with_label_values(&[&self.spec.task])
                .set(self.assigned as i64);
        }
        Ok(())
    }

    fn collect_batch(
        &mut self,
        shutdown: &CancellationToken,
    ) -> Result<Vec<OwnedMessage>, RunnerError> {
        let mut batch: Vec<OwnedMessage> = Vec::new();
        let mut deadline: Option<Instant> = None;
        while batch.len() < self.batch_max && !shutdown.is_cancelled() {
            let timeout = match deadline {
                None => Duration::from_millis(500),
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => left,
                    _ => break,
                },
            };
            let polled = self.consumer.poll(timeout).map(|r| r.map(|m| m.detach()));
            self.apply_rebalances(&mut batch)?;
            match polled {
                None => {
                    if deadline.is_none() {
                        // Idle: return so the caller beats and checks shutdown.
                        break;
                    }
                }
                Some(Ok(m)) => {
                    if deadline.is_none() {
                        deadline = Some(Instant::now() + self.batch_wait);
                    }
                    batch.push(m);
                }
                Some(Err(e)) => {
                    tracing::warn!(message = "consumer error", task = %self.spec.task, error = %e);
                }
            }
        }
        Ok(batch)
    }

    fn process_batch(&mut self, batch: &[OwnedMessage]) -> Result<BatchOutcome, RunnerError> {
        if let Err(e) = self.producer.begin_transaction() {
            return Err(RunnerError::Fatal {
                context: "begin transaction",
                transactional_id: self.transactional_id.clone(),
                source: e,
            });
        }
        // First and last offsets of every partition in the batch, taken before
        // anything can fail: the last for the commit, the first to rewind to
        // after an abort (for every partition, processed or not).
        let mut offsets: BTreeMap<(String, i32), (i64, i64)> = BTreeMap::new();
        for m in batch {
            offsets
                .entry((m.topic().to_string(), m.partition()))
                .and_modify(|(_, last)| *last = m.offset())
                .or_insert((m.offset(), m.offset()));
        }
        let mut produced: HashMap<String, u64> = HashMap::new();
        let mut dead: HashMap<&'static str, u64> = HashMap::new();
        let mut out = Vec::new();
        let mut produce_error = None;
        let mut transient = None;
        for m in batch {
            let record = InputRecord {
                topic: m.topic(),
                partition: m.partition(),
                offset: m.offset(),
                key: m.key(),
                payload: m.payload(),
                timestamp: m.timestamp().to_millis(),
            };
            self.metrics
                .consumed
                .with_label_values(&[&self.spec.task, m.topic()])
                .inc();
            out.clear();
            let mut rejected = None;
            match self.stage.process(&record, &mut out) {
                Ok(()) => {
                    for o in &out {
                        match self.send_output(o) {
                            Ok(()) => *produced.entry(o.topic.clone()).or_default() += 1,
                            Err(e) if unproducible(&e) => {
                                self.stage.output_rejected();
                                rejected = Some(Poison::new(
                                    "unproducible",
                                    format!("its output to {} cannot be produced: {e}", o.topic),
                                ));
                                break;
                            }
                            Err(e) => {
                                produce_error = Some(e);
                                break;
                            }
                        }
                    }
                }
                Err(StageError::Poison(poison)) => rejected = Some(poison),
                Err(StageError::Transient(reason)) => {
                    transient = Some(reason);
                    break;
                }
            }
            if let Some(poison) = rejected {
                tracing::warn!(
                    message = "record rejected to the dead-letter topic",
                    task = %self.spec.task,
                    topic = m.topic(),
                    partition = m.partition(),
                    offset = m.offset(),
                    kind = poison.kind,
                    reason = %poison.reason,
                );
                *dead.entry(poison.kind).or_default() += 1;
                let headers = crate::dlq::headers(&self.spec.stage, &poison, m);
                let dlq = self.spec.dlq_topic.clone();
                match self.send(&dlq, m.key(), m.payload(), None, headers) {
                    Ok(()) => *produced.entry(dlq).or_default() += 1,
                    Err(e) => produce_error = Some(e),
                }
            }
            if produce_error.is_some() {
                break;
            }
        }
        if let Some(reason) = transient {
            tracing::warn!(message = "transient failure; aborting, the batch will be processed again", task = %self.spec.task, reason = %reason);
            self.abort(&offsets)?;
            return Ok(BatchOutcome::Aborted);
        }
        if produce_error.is_none() {
            produce_error = self
                .send_before_commit(&mut |t| *produced.entry(t.to_string()).or_default() += 1)
                .err();
        }
        let result = match produce_error {
            Some(e) => Err(("produce", e)),
            None => self.commit(&offsets),
        };
        match result {
            Ok(()) => {
                self.stage.commit();
                let now = chrono::Utc::now().timestamp_millis();
                let latency = self
                    .metrics
                    .record_latency
                    .with_label_values(&[&self.spec.task]);
                for m in batch {
                    if let Some(ts) = m.timestamp().to_millis() {
                        latency.observe((now - ts).max(0) as f64 / 1000.0);
                    }
                }
                self.count_committed(produced);
                for (kind, n) in dead {
                    self.metrics
                        .dead_letters
                        .with_label_values(&[&self.spec.task, kind])
                        .inc_by(n);
                }
                Ok(BatchOutcome::Committed)
            }
            Err((context, e)) => match classify(&e) {
                ErrorClass::Fatal => Err(RunnerError::Fatal {
                    context,
                    transactional_id: self.transactional_id.clone(),
                    source: e,
                }),
                ErrorClass::Abort | ErrorClass::Retriable => {
                    tracing::warn!(message = "aborting transaction; the batch will be processed again", task = %self.spec.task, context, error = %e);
                    self.abort(&offsets)?;
                    Ok(BatchOutcome::Aborted)
                }
            },
        }
    }

    /// Writes what [`Stage::idle`] produced, in a transaction of its own.
    fn flush_idle(&mut self) -> Result<(), RunnerError> {
        let mut out = Vec::new();
        self.stage.idle(&mut out);
        if out.is_empty() {
            return Ok(());
        }
        if let Err(e) = self.producer.begin_transaction() {
            return Err(RunnerError::Fatal {
                context: "begin transaction",
                transactional_id: self.transactional_id.clone(),
                source: e,
            });
        }
        let mut produced: BTreeMap<String, u64> = BTreeMap::new();
        let mut failed = None;
        for o in &out {
            match self.send_output(o) {
                Ok(()) => *produced.entry(o.topic.clone()).or_default() += 1,
                Err(e) => {
                    failed = Some(("produce", e));
                    break;
                }
            }
        }
        if failed.is_none() {
            failed = self
                .send_before_commit(&mut |t| *produced.entry(t.to_string()).or_default() += 1)
                .err()
                .map(|e| ("produce", e));
        }
        let result = match failed {
            Some(f) => Err(f),
            None => self.deliver_outputs().and_then(|()| {
                self.retrying("commit transaction", || {
                    self.producer.commit_transaction(self.op_timeout)
                })
            }),
        };
        match result {
            Ok(()) => {
                self.stage.commit();
                self.count_committed(produced);
                Ok(())
            }
            Err((context, e)) if classify(&e) == ErrorClass::Fatal => Err(RunnerError::Fatal {
                context,
                transactional_id: self.transactional_id.clone(),
                source: e,
            }),
            Err((context, e)) => {
                // Nothing was consumed, so nothing to rewind: the stage rolls
                // back and produces the same outputs at the next idle moment.
                tracing::warn!(message = "aborting idle transaction", task = %self.spec.task, context, error = %e);
                self.abort(&BTreeMap::new())
            }
        }
    }

    fn commit(
        &self,
        offsets: &BTreeMap<(String, i32), (i64, i64)>,
    ) -> Result<(), (&'static str, KafkaError)> {
        let mut tpl = TopicPartitionList::new();
        for ((topic, partition), (_, last)) in offsets {
            tpl.add_partition_offset(topic, *partition, Offset::Offset(last + 1))
                .map_err(|e| ("build offsets", e))?;
        }
        let Some(cgm) = self.consumer.group_metadata() else {
            // Only a consumer without a group lacks metadata: a configuration bug.
            return Err((
                "group metadata",
                KafkaError::ConsumerCommit(RDKafkaErrorCode::State),
            ));
        };
        self.deliver_outputs()?;
        self.retrying("send offsets", || {
            self.producer
                .send_offsets_to_transaction(&tpl, &cgm, self.op_timeout)
        })?;
        self.retrying("commit transaction", || {
            self.producer.commit_transaction(self.op_timeout)
        })?;
        // The offsets were committed by the transaction. Storing them in the
        // consumer too commits nothing (auto commit is off) but lets librdkafka
        // compute consumer lag, which it derives from the stored offset.
        if let Err(e) = self.consumer.store_offsets(&tpl) {
            tracing::debug!(message = "cannot store offsets for lag statistics", task = %self.spec.task, error = %e);
        }
        Ok(())
    }

    /// Waits until the transaction's outputs are acknowledged, before it is
    /// committed. `commit_transaction` waits for them too, but rust-rdkafka's
    /// flush polls in 100 ms slices that do not end when the last delivery
    /// does, so a transaction with outputs in flight took ~100 ms longer than
    /// its deliveries (measured: ~104 ms per small transaction against
    /// ~10 ms with deliveries drained first, bench/README.md) — which capped
    /// every stage at about ten transactions a second per instance. Polling in
    /// 1 ms steps here leaves nothing in flight for its flush.
    fn deliver_outputs(&self) -> Result<(), (&'static str, KafkaError)> {
        let deadline = Instant::now() + self.op_timeout;
        while self.producer.in_flight_count() > 0 {
            if Instant::now() >= deadline {
                return Err((
                    "deliver outputs",
                    KafkaError::Flush(RDKafkaErrorCode::OperationTimedOut),
                ));
            }
            self.producer.poll(Duration::from_millis(1));
        }
        Ok(())
    }

    /// Retries a transactional call while librdkafka says it is retriable.
    fn retrying(
        &self,
        context: &'static str,
        mut f: impl FnMut() -> Result<(), KafkaError>,
    ) -> Result<(), (&'static str, KafkaError)> {
        let mut attempts = 0;
        loop {
            match f() {
                Ok(()) => return Ok(()),
                Err(e) if classify(&e) == ErrorClass::Retriable && attempts < 5 => {
                    attempts += 1;
                    tracing::warn!(message = "retriable transaction error; retrying", task = %self.spec.task, context, error = %e);
                    std::thread::sleep(Duration::from_millis(100 * attempts));
                }
                Err(e) => return Err((context, e)),
            }
        }
    }

    fn abort(&mut self, offsets: &BTreeMap<(String, i32), (i64, i64)>) -> Result<(), RunnerError> {
        if let Err(e) = self.producer.abort_transaction(self.op_timeout) {
            return Err(RunnerError::Fatal {
                context: "abort transaction",
                transactional_id: self.transactional_id.clone(),
                source: e,
            });
        }
        self.stage.abort();
        self.metrics
            .transactions
            .with_label_values(&[&self.spec.task, "aborted"])
            .inc();
        for ((topic, partition), (first, _)) in offsets {
            // A partition not rewound would resume after the aborted batch and
            // skip it: rather stop, and resume from the committed offsets.
            if let Err(e) =
                self.consumer
                    .seek(topic, *partition, Offset::Offset(*first), self.op_timeout)
            {
                return Err(RunnerError::Kafka {
                    context: "rewind after abort",
                    source: e,
                });
            }
        }
        Ok(())
    }

    /// Produces one record, waiting (never dropping) while the local queue is full.
    /// Counts a committed transaction and the records it produced per topic.
    fn count_committed(&self, produced: impl IntoIterator<Item = (String, u64)>) {
        self.metrics
            .transactions
            .with_label_values(&[&self.spec.task, "committed"])
            .inc();
        for (topic, n) in produced {
            self.metrics
                .produced
                .with_label_values(&[&self.spec.task, &topic])
                .inc_by(n);
        }
    }

    /// Produces what [`Stage::before_commit`] appends, calling `produced`
    /// with the topic of each record sent.
    fn send_before_commit(&mut self, produced: &mut dyn FnMut(&str)) -> Result<(), KafkaError> {
        let mut out = Vec::new();
        self.stage.before_commit(&mut out);
        for o in &out {
            self.send_output(o)?;
            produced(&o.topic);
        }
        Ok(())
    }

    fn send_output(&self, o: &Output) -> Result<(), KafkaError> {
        self.send(
            &o.topic,
            o.key.as_deref(),
            o.payload.as_deref(),
            o.partition,
            o.owned_headers(),
        )
    }

    fn send(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        payload: Option<&[u8]>,
        partition: Option<i32>,
        headers: OwnedHeaders,
    ) -> Result<(), KafkaError> {
        let mut record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic).headers(headers);
        if let Some(p) = payload {
            record = record.payload(p);
        }
        if let Some(k) = key {
            record = record.key(k);
        }
        if let Some(p) = partition {
            record = record.partition(p);
        }
        let mut blocked = false;
        loop {
            match self.producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    if !blocked {
                        blocked = true;
                        self.health.set_backpressure(true);
                        self.metrics
                            .backpressure
                            .with_label_values(&[&self.spec.task])
                            .set(1);
                    }
                    self.producer.poll(Duration::from_millis(100));
                    self.health.beat();
                    record = r;
                }
                Err((e, _)) => return Err(e),
            }
        }
        if blocked {
            self.health.set_backpressure(false);
            self.metrics
                .backpressure
                .with_label_values(&[&self.spec.task])
                .set(0);
        }
        self.producer.poll(Duration::ZERO);
        Ok(())
    }
}

/// Runs a stage's loop on a blocking thread until shutdown or a fatal error.
pub async fn spawn<S: Stage + 'static>(
    spec: RunnerSpec,
    kafka: KafkaConfig,
    stage: S,
    metrics: RunnerMetrics,
    health: Arc<TaskHealth>,
    shutdown: CancellationToken,
) -> Result<(), RunnerError> {
    let task = spec.task.clone();
    let joined = tokio::task::spawn_blocking(move || {
        let runner = match Runner::new(spec, &kafka, stage, metrics, health, &shutdown) {
            Ok(r) => r,
            // Asked to stop before Kafka ever answered: nothing to drain.
            Err(e) if shutdown.is_cancelled() => {
                tracing::info!(message = "stopped before the runner started", reason = %e);
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        runner.run(shutdown)
    })
    .await;
    match joined {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(message = "runner thread panicked", task = %task, error = %e);
            Err(RunnerError::Kafka {
                context: "runner thread",
                source: KafkaError::Canceled,
            })
        }
    }
}
