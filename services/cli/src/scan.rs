//! Reading the enriched topic from the start (or from a time) up to its end
//! as of now, for commands that look back: `scimtrail trace` and
//! `scimtrail backtest`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{Message, Offset, TopicPartitionList};

use scimtrail_core::config::CommonConfig;
use scimtrail_core::kafka::EndOfPartitionIsNotAnError;
use scimtrail_core::schema::avro::Codecs;
use scimtrail_core::schema::EnrichedAuditEvent;

/// What a scan reports, in order: the number of partitions holding records,
/// then their events, each partition's end as it is reached.
pub enum Scan<'a> {
    Partitions(usize),
    Event(&'a EnrichedAuditEvent),
    Done(i32),
}

/// Reads every partition of `common.topics.enriched` (read_committed) from
/// its beginning, or from the first record at or after `from`, up to its end
/// as of the start. Records that do not decode are skipped. `purpose` names
/// the throwaway consumer group. Returns the number of records read.
pub fn enriched_topic(
    common: &CommonConfig,
    codecs: &Codecs,
    from: Option<chrono::DateTime<chrono::Utc>>,
    purpose: &str,
    visit: &mut dyn FnMut(Scan<'_>),
) -> anyhow::Result<u64> {
    let topic = &common.topics.enriched;
    let consumer: BaseConsumer<EndOfPartitionIsNotAnError> =
        scimtrail_core::kafka::consumer_config(
            &common.kafka,
            &format!("scimtrail-{purpose}-{}", uuid::Uuid::new_v4()),
            &[
                ("enable.auto.commit", "false"),
                ("isolation.level", "read_committed"),
                ("enable.partition.eof", "true"),
            ],
        )?
        .create_with_context(EndOfPartitionIsNotAnError)?;
    let timeout = Duration::from_millis(common.kafka.operation_timeout_ms);
    let partitions =
        scimtrail_core::kafka::partition_counts(&common.kafka, std::slice::from_ref(topic))?
            .get(topic)
            .copied()
            .unwrap_or(0);
    let mut tpl = TopicPartitionList::new();
    let mut ends: BTreeMap<i32, i64> = BTreeMap::new();
    for p in 0..partitions {
        let (low, high) = consumer.fetch_watermarks(topic, p, timeout)?;
        if high > low {
            ends.insert(p, high);
            let start = match from {
                Some(t) => Offset::Offset(t.timestamp_millis()),
                None => Offset::Beginning,
            };
            tpl.add_partition_offset(topic, p, start)?;
        }
    }
    if from.is_some() {
        tpl = consumer.offsets_for_times(tpl, timeout)?;
    }
    consumer.assign(&tpl)?;
    let mut open: Vec<i32> = ends.keys().copied().collect();
    visit(Scan::Partitions(open.len()));
    let mut read = 0u64;
    let mut idle = Instant::now();
    let close = |open: &mut Vec<i32>, p: i32, visit: &mut dyn FnMut(Scan<'_>)| {
        if open.contains(&p) {
            open.retain(|x| *x != p);
            visit(Scan::Done(p));
        }
    };
    while !open.is_empty() {
        match consumer.poll(Duration::from_millis(500)) {
            None if idle.elapsed() > timeout => {
                anyhow::bail!(
                    "{topic}: no data for {timeout:?} before the end of partitions {open:?}"
                )
            }
            None => {}
            Some(Ok(m)) => {
                idle = Instant::now();
                read += 1;
                if let Some(e) = m.payload().and_then(|p| codecs.enriched.decode(p).ok()) {
                    visit(Scan::Event(&e));
                }
                if ends
                    .get(&m.partition())
                    .is_some_and(|end| m.offset() + 1 >= *end)
                {
                    close(&mut open, m.partition(), visit);
                }
            }
            Some(Err(KafkaError::PartitionEOF(p))) => close(&mut open, p, visit),
            Some(Err(e)) => return Err(e.into()),
        }
    }
    Ok(read)
}
