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
