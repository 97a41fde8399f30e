//! The input of the throughput benchmark: realistic `AuditEvent`s, produced
//! once to the input topic and then read by every stage measured.
//!
//! The traffic is the project's own synthetic SCIM traffic (`scimtrail gen`,
//! seeded, with a fixed start time and step, so a seed gives the same
//! exchanges on every run): user and group creates, PATCHes, PUTs, deletes,
//! membership changes and failed requests across four target systems. Each
//! raw exchange goes through ingest's `normalize` in this process, exactly as
//! the ingest service would turn it into an `AuditEvent`, and the event is
//! produced Avro single-object encoded, keyed by its partition key, as ingest
//! produces it. So the enricher sees what it sees in production, minus only
//! the ingest service's own transaction.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Lines};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientContext;
use serde::Serialize;

use scimtrail_core::config::KafkaConfig;
use scimtrail_core::schema::avro::Codecs;
use scimtrail_core::schema::{AuditEvent, Outcome};
use scimtrail_ingest::IngestConfig;

use crate::progress::Progress;

/// Event time of the first generated exchange: fixed, so a seed gives the
/// same traffic on every run (`scimtrail gen --start`).
const GEN_START: &str = "2025-01-01T00:00:00Z";

/// What was produced to the input topic.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CorpusStats {
    /// Raw exchanges read from the generator.
    pub exchanges: u64,
    /// Events produced (exchanges that normalize to an event).
    pub events: u64,
    /// Exchanges that normalize to nothing (successful reads) or are rejected
    /// by ingest; the generator should make none.
    pub skipped: u64,
    /// Avro payload sizes of the events, in bytes.
    pub payload_bytes_total: u64,
    pub payload_bytes_min: u64,
    pub payload_bytes_max: u64,
    pub payload_bytes_avg: f64,
    /// Events by action and by outcome, to show the mix is realistic.
    pub by_action: BTreeMap<String, u64>,
    pub by_outcome: BTreeMap<String, u64>,
    pub by_resource_type: BTreeMap<String, u64>,
    /// Time to generate, normalize and produce everything (acknowledged).
    pub seconds: f64,
}

/// Counts failed deliveries; the first error is kept for the message.
#[derive(Default)]
pub struct Deliveries {
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            self.failed.fetch_add(1, Ordering::Relaxed);
            if let Ok(mut first) = self.first_error.lock() {
                first.get_or_insert_with(|| e.to_string());
            }
        }
    }
}

/// The generator's exchanges, each normalized by ingest's own `normalize`:
/// the `AuditEvent`s ingest would produce, one at a time.
pub struct Normalized {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
    ingest: IngestConfig,
    now_ms: i64,
    /// Raw exchanges read so far.
    pub exchanges: u64,
    /// Exchanges that normalize to nothing or are rejected by ingest.
    pub skipped: u64,
}

impl Normalized {
    /// Starts `gen_bin gen --stdout` for `count` exchanges of seed `seed`.
    pub fn spawn(gen_bin: &Path, count: u64, seed: u64) -> anyhow::Result<Self> {
        let mut child = Command::new(gen_bin)
            .args(["gen", "--stdout", "--start", GEN_START, "--step-ms", "1000"])
            .args(["--count", &count.to_string(), "--seed", &seed.to_string()])
            // --stdout still paces records at --rate: as fast as possible.
            .args(["--rate", "1000000000"])
            .stdout(Stdio::piped())
            .stdin(Stdio::null())
            .spawn()
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot run the traffic generator {}: {e} (build it with `cargo build --release -p scimtrail-cli`, or pass --gen-bin)",
                    gen_bin.display()
                )
            })?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| anyhow::anyhow!("the generator's stdout is not piped"))?;
        Ok(Normalized {
            child,
            lines: BufReader::new(stdout).lines(),
            ingest: IngestConfig::default(),
            now_ms: chrono::Utc::now().timestamp_millis(),
            exchanges: 0,
            skipped: 0,
        })
    }

    /// The next event, or `None` at the end of the generator's output.
    pub fn next_event(&mut self) -> anyhow::Result<Option<AuditEvent>> {
        for line in self.lines.by_ref() {
            let line = line.map_err(|e| anyhow::anyhow!("reading the generator's output: {e}"))?;
            if line.trim().is_empty() {
                continue;
            }
            self.exchanges += 1;
            match scimtrail_ingest::normalize::normalize(&self.ingest, line.as_bytes(), self.now_ms)
            {
                Ok(Some(event)) => return Ok(Some(event)),
                Ok(None) | Err(_) => self.skipped += 1,
            }
        }
        Ok(None)
    }

    /// Waits for the generator to exit; an error if it failed.
    pub fn finish(mut self) -> anyhow::Result<()> {
        let status = self
            .child
            .wait()
            .map_err(|e| anyhow::anyhow!("waiting for the generator: {e}"))?;
        if !status.success() {
            anyhow::bail!("the traffic generator failed: {status}");
        }
        Ok(())
    }
}

impl CorpusStats {
    /// A fresh count (the minimum starts high, so the first event sets it).
    pub fn new() -> Self {
        CorpusStats {
            payload_bytes_min: u64::MAX,
            ..CorpusStats::default()
        }
    }

    /// Counts one produced event whose payload has `len` bytes.
    pub fn add(&mut self, event: &AuditEvent, len: u64) {
        self.events += 1;
        self.payload_bytes_total += len;
        self.payload_bytes_min = self.payload_bytes_min.min(len);
        self.payload_bytes_max = self.payload_bytes_max.max(len);
        *self
            .by_action
            .entry(event.action.as_str().to_string())
            .or_default() += 1;
        let outcome = match event.outcome {
            Outcome::Success => "SUCCESS",
            Outcome::Failure => "FAILURE",
            Outcome::Unknown => "UNKNOWN",
        };
        *self.by_outcome.entry(outcome.to_string()).or_default() += 1;
        *self
            .by_resource_type
            .entry(event.resource.kind.clone())
            .or_default() += 1;
    }

    /// Closes the count: the average, the generator's counts and the time.
    pub fn finish(&mut self, traffic: &Normalized, started: Instant) -> anyhow::Result<()> {
        if self.events == 0 {
            anyhow::bail!("the generator produced no events");
        }
        self.exchanges = traffic.exchanges;
        self.skipped = traffic.skipped;
        self.payload_bytes_avg = self.payload_bytes_total as f64 / self.events as f64;
        self.seconds = started.elapsed().as_secs_f64();
        Ok(())
    }
}

/// A producer for loading an input topic: bigger batches than the services'
/// latency-minded 5 ms, and failed deliveries counted.
pub fn bulk_producer(kafka: &KafkaConfig) -> anyhow::Result<BaseProducer<Deliveries>> {
    Ok(scimtrail_core::kafka::producer_config(kafka)?
        .set("linger.ms", "50")
        .create_with_context(Deliveries::default())?)
}

/// Waits until everything sent is acknowledged; an error if anything failed.
pub fn flush(producer: &BaseProducer<Deliveries>) -> anyhow::Result<()> {
    producer
        .flush(Duration::from_secs(120))
        .map_err(|e| anyhow::anyhow!("flushing the input: {e}"))?;
    let failed = producer.context().failed.load(Ordering::Relaxed);
    if failed > 0 {
        let first = producer
            .context()
            .first_error
            .lock()
            .ok()
            .and_then(|f| f.clone())
            .unwrap_or_default();
        anyhow::bail!("{failed} input events were not delivered; first error: {first}");
    }
    Ok(())
}

/// Generates `events` exchanges with `gen_bin gen --stdout`, normalizes them
/// and produces the events to `topic`, waiting until all are acknowledged.
pub fn produce(
    kafka: &KafkaConfig,
    topic: &str,
    gen_bin: &Path,
    events: u64,
    seed: u64,
) -> anyhow::Result<CorpusStats> {
    let started = Instant::now();
    let codecs = Codecs::single_object()?;
    let producer = bulk_producer(kafka)?;
    let mut traffic = Normalized::spawn(gen_bin, events, seed)?;
    let mut stats = CorpusStats::new();
    let mut progress = Progress::new("input", "events produced", events);
    while let Some(event) = traffic.next_event()? {
        let payload = codecs.audit_event.encode(&event)?;
        let key = event.partition_key();
        send(&producer, topic, &key, None, &payload)?;
        stats.add(&event, payload.len() as u64);
        progress.update(stats.events);
    }
    flush(&producer)?;
    progress.finish(stats.events);
    stats.finish(&traffic, started)?;
    traffic.finish()?;
    Ok(stats)
}

/// Enqueues one record, serving delivery reports while the queue is full.
/// `partition`: `None` leaves it to the partitioner (murmur2 of the key).
pub fn send(
    producer: &BaseProducer<Deliveries>,
    topic: &str,
    key: &str,
    partition: Option<i32>,
    payload: &[u8],
) -> anyhow::Result<()> {
    let mut record = BaseRecord::to(topic).key(key).payload(payload);
    if let Some(p) = partition {
        record = record.partition(p);
    }
    loop {
        match producer.send(record) {
            Ok(()) => break,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                producer.poll(Duration::from_millis(50));
                record = r;
            }
            Err((e, _)) => anyhow::bail!("producing to {topic}: {e}"),
        }
    }
    producer.poll(Duration::ZERO);
    Ok(())
}
