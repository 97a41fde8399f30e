//! What one Kafka transaction costs on this broker, step by step: the floor
//! under every hop of the detector (each hop is a transaction).
//!
//! One transactional producer with the runner's settings
//! (`transactional_producer_config`) commits N small
//! transactions one after the other, each as the runner's: begin, produce one
//! record, `send_offsets_to_transaction` for a consumer group, commit. A
//! `read_committed` consumer stamps when each record becomes visible. Two
//! ways, N each (after [`WARMUP`] unmeasured):
//!
//! - **as the runner commits**: `commit_transaction` right after the
//!   offsets. rust-rdkafka's `commit_transaction` first calls its
//!   `BaseProducer::flush`, which, while a record is in flight, waits in
//!   `BaseProducer::poll` slices of up to 100 ms, and that `poll` (since
//!   rust-rdkafka 0.37) returns only when its time is up, not when the
//!   delivery report arrives;
//! - **deliveries drained first**: the same, but before the commit the
//!   producer is polled 1 ms at a time until nothing is in flight, so the
//!   commit's flush has nothing to wait for. This is not what the runner
//!   does; it shows what the 100 ms slices cost.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Message, Offset, TopicPartitionList};
use serde::Serialize;

use scimtrail_core::config::KafkaConfig;
use scimtrail_core::kafka::{TopicSpec, TopicStatus};

use crate::latency::Percentiles;

/// Unmeasured transactions before those measured, each way.
const WARMUP: usize = 5;

/// Both ways of committing, measured.
#[derive(Debug, Clone, Serialize)]
pub struct TxnProbe {
    pub transactions: usize,
    /// As the runner commits.
    pub as_the_runner_commits: Steps,
    /// With the deliveries drained by 1 ms polls before the commit.
    pub deliveries_drained_first: Steps,
}

/// Each step's time over the transactions, in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Steps {
    /// `begin_transaction` and the produce (enqueue only).
    pub begin_and_produce_ms: Percentiles,
    /// Polling until the record was acknowledged (0 when not drained first).
    pub drain_ms: Percentiles,
    /// `send_offsets_to_transaction` (AddOffsetsToTxn, TxnOffsetCommit).
    pub send_offsets_ms: Percentiles,
    /// `commit_transaction` until it returned (its flush, then EndTxn).
    pub commit_ms: Percentiles,
    /// From `commit_transaction`'s return until a `read_committed` consumer
    /// received the record.
    pub visible_after_commit_ms: Percentiles,
    /// From `begin_transaction` to the record's visibility.
    pub total_ms: Percentiles,
}

/// Runs the probe on fresh topics named after `run_id`.
pub fn run(
    rt: &tokio::runtime::Runtime,
    kafka: &KafkaConfig,
    run_id: &str,
    transactions: usize,
) -> anyhow::Result<TxnProbe> {
    let topic = format!("bench.{run_id}.txn-probe");
    let offsets_topic = format!("bench.{run_id}.txn-probe-input");
    let specs: Vec<TopicSpec> = [&topic, &offsets_topic]
        .iter()
        .map(|name| TopicSpec {
            name: name.to_string(),
            partitions: 1,
            replication_factor: 1,
            settings: Default::default(),
        })
        .collect();
    for (name, status) in rt.block_on(scimtrail_core::kafka::ensure_topics(kafka, &specs))? {
        if status != TopicStatus::Created {
            anyhow::bail!("topic {name} already existed: {status:?}; the bench needs fresh topics");
        }
    }
    let group = format!("bench-{run_id}-txn-probe");
    let producer: BaseProducer = scimtrail_core::kafka::transactional_producer_config(
        kafka,
        &format!("{group}-{}", kafka.instance_id()),
    )?
    .create()?;
    producer.init_transactions(Duration::from_secs(30))?;
    let group_consumer: BaseConsumer =
        scimtrail_core::kafka::transactional_consumer_config(kafka, &group)?.create()?;
    let metadata = group_consumer
        .group_metadata()
        .ok_or_else(|| anyhow::anyhow!("the probe's consumer has no group metadata"))?;

    // Arrival time of each record, by its value (the transaction's index).
    let arrivals: Arc<Mutex<Vec<(usize, Instant)>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut config = scimtrail_core::kafka::base_config(kafka)?;
    config
        .set("group.id", format!("{group}-observer"))
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .set(
            "fetch.wait.max.ms",
            crate::latency::OBSERVER_FETCH_WAIT_MS.to_string(),
        );
    let observer: BaseConsumer = config.create()?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(&topic, 0, Offset::Beginning)?;
    observer.assign(&tpl)?;
    let watcher = {
        let (arrivals, stop) = (Arc::clone(&arrivals), Arc::clone(&stop));
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if let Some(Ok(m)) = observer.poll(Duration::from_millis(20)) {
                    let at = Instant::now();
                    let index = m
                        .payload()
                        .and_then(|p| std::str::from_utf8(p).ok())
                        .and_then(|s| s.parse::<usize>().ok());
                    if let (Some(i), Ok(mut a)) = (index, arrivals.lock()) {
                        a.push((i, at));
                    }
                }
            }
        })
    };
    // Let the observer's first fetch happen before anything is measured.
    std::thread::sleep(Duration::from_millis(500));

    let rounds = WARMUP + transactions;
    let mut marks = Vec::with_capacity(2 * rounds);
    for i in 0..2 * rounds {
        let drain_first = i >= rounds;
        let begun = Instant::now();
        producer.begin_transaction()?;
        let value = i.to_string();
        producer
            .send(
                BaseRecord::<str, str>::to(&topic)
                    .key("probe")
                    .payload(&value),
            )
            .map_err(|(e, _)| e)?;
        let produced = Instant::now();
        if drain_first {
            let until = produced + Duration::from_secs(30);
            while producer.in_flight_count() > 0 && Instant::now() < until {
                producer.poll(Duration::from_millis(1));
            }
        }
        let drained = Instant::now();
        let mut offsets = TopicPartitionList::new();
        offsets.add_partition_offset(&offsets_topic, 0, Offset::Offset(i as i64 + 1))?;
        producer.send_offsets_to_transaction(&offsets, &metadata, Duration::from_secs(30))?;
        let offsets_sent = Instant::now();
        producer.commit_transaction(Duration::from_secs(30))?;
        let committed = Instant::now();
        marks.push([begun, produced, drained, offsets_sent, committed]);
        // Apart, as the detector's hops are at 1,000 events/s.
        std::thread::sleep(Duration::from_millis(20));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while arrivals.lock().map_or(0, |a| a.len()) < marks.len() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::Relaxed);
    watcher
        .join()
        .map_err(|_| anyhow::anyhow!("the probe's observer panicked"))?;
    let arrived: Vec<(usize, Instant)> = arrivals.lock().map(|a| a.clone()).unwrap_or_default();
    let steps = |range: std::ops::Range<usize>| -> Steps {
        let ms = |a: Instant, b: Instant| b.saturating_duration_since(a).as_secs_f64() * 1000.0;
        let mut v: [Vec<f64>; 6] = Default::default();
        for i in range {
            let Some([begun, produced, drained, offsets_sent, committed]) = marks.get(i).copied()
            else {
                continue;
            };
            v[0].push(ms(begun, produced));
            v[1].push(ms(produced, drained));
            v[2].push(ms(drained, offsets_sent));
            v[3].push(ms(offsets_sent, committed));
            if let Some((_, at)) = arrived.iter().find(|(j, _)| *j == i) {
                v[4].push(ms(committed, *at));
                v[5].push(ms(begun, *at));
            }
        }
        let [a, b, c, d, e, f] = v;
        Steps {
            begin_and_produce_ms: Percentiles::of(a),
            drain_ms: Percentiles::of(b),
            send_offsets_ms: Percentiles::of(c),
            commit_ms: Percentiles::of(d),
            visible_after_commit_ms: Percentiles::of(e),
            total_ms: Percentiles::of(f),
        }
    };
    let probe = TxnProbe {
        transactions,
        as_the_runner_commits: steps(WARMUP..rounds),
        deliveries_drained_first: steps(rounds + WARMUP..2 * rounds),
    };
    for (how, s) in [
        ("as the runner commits", &probe.as_the_runner_commits),
        ("deliveries drained first", &probe.deliveries_drained_first),
    ] {
        eprintln!(
            "bench: one transaction, {how} (p50 / p99 ms): drain {:.1} / {:.1}, send offsets {:.1} / {:.1}, commit {:.1} / {:.1}, then visible {:.1} / {:.1}; begin to visible {:.1} / {:.1}",
            s.drain_ms.p50_ms,
            s.drain_ms.p99_ms,
            s.send_offsets_ms.p50_ms,
            s.send_offsets_ms.p99_ms,
            s.commit_ms.p50_ms,
            s.commit_ms.p99_ms,
            s.visible_after_commit_ms.p50_ms,
            s.visible_after_commit_ms.p99_ms,
            s.total_ms.p50_ms,
            s.total_ms.p99_ms,
        );
    }
    Ok(probe)
}
