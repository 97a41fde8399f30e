//! Dead-letter record headers. A dead letter keeps the original key and bytes
//! untouched; these headers say where it came from and why it was rejected, so an
//! operator can fix the producer and replay it.

/// Human-readable reason the record was rejected.
pub const REASON: &str = "scimtrail.dlq.reason";
/// Bounded reason kind (also the metric label), e.g. `invalid_json`.
pub const KIND: &str = "scimtrail.dlq.kind";
/// Service that rejected it.
pub const STAGE: &str = "scimtrail.dlq.stage";
/// Source topic, partition and offset of the original record.
pub const SOURCE_TOPIC: &str = "scimtrail.dlq.source.topic";
pub const SOURCE_PARTITION: &str = "scimtrail.dlq.source.partition";
pub const SOURCE_OFFSET: &str = "scimtrail.dlq.source.offset";
/// When it was rejected, RFC 3339.
pub const TIME: &str = "scimtrail.dlq.time";

/// The headers of a dead letter for `record`, rejected by `stage` for
/// `poison`: ours first, then the record's own, for full fidelity on replay.
pub fn headers<M: rdkafka::Message>(
    stage: &str,
    poison: &Poison,
    record: &M,
) -> rdkafka::message::OwnedHeaders {
    use rdkafka::message::{Header, Headers, OwnedHeaders};
    let time = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let partition = record.partition().to_string();
    let offset = record.offset().to_string();
    let mut h = OwnedHeaders::new();
    for (key, value) in [
        (REASON, poison.reason.as_str()),
        (KIND, poison.kind),
        (STAGE, stage),
        (SOURCE_TOPIC, record.topic()),
        (SOURCE_PARTITION, partition.as_str()),
        (SOURCE_OFFSET, offset.as_str()),
        (TIME, time.as_str()),
    ] {
        h = h.insert(Header {
            key,
            value: Some(value),
        });
    }
    if let Some(orig) = record.headers() {
        for hd in orig.iter() {
            h = h.insert(Header {
                key: hd.key,
                value: hd.value,
            });
        }
    }
    h
}

/// Why a record could not be processed. The runner routes it to the DLQ inside
/// the same transaction as the batch's output, so it is neither lost nor retried
/// forever, and the records around it flow on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}: {reason}")]
pub struct Poison {
    /// Bounded, machine-readable kind (metric label).
    pub kind: &'static str,
    /// What is wrong, for a human who has to fix the producer.
    pub reason: String,
}

impl Poison {
    pub fn new(kind: &'static str, reason: impl Into<String>) -> Self {
        Poison {
            kind,
            reason: reason.into(),
        }
    }
}
