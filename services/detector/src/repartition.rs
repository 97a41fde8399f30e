//! Re-keys the enriched stream by principal, as Kafka Streams does before a
//! grouped aggregation: the enriched topic is keyed by resource, but the burst
//! rule counts per principal, so every event of one principal must reach one
//! instance. The record bytes are forwarded unchanged; only the key changes.
//!
//! Exactly-once like every runner task: an event reaches the repartition topic
//! once, atomically with the enriched topic's offset.

use scimtrail_core::runner::{InputRecord, Output, Stage, StageError};
use scimtrail_core::schema::{AvroCodec, EnrichedAuditEvent};

pub struct ByPrincipal {
    codec: AvroCodec<EnrichedAuditEvent>,
    output_topic: String,
}

impl ByPrincipal {
    pub fn new(codec: AvroCodec<EnrichedAuditEvent>, output_topic: String) -> Self {
        ByPrincipal {
            codec,
            output_topic,
        }
    }
}

impl Stage for ByPrincipal {
    fn process(
        &mut self,
        record: &InputRecord<'_>,
        out: &mut Vec<Output>,
    ) -> Result<(), StageError> {
        let event = record.decode(&self.codec, "an EnrichedAuditEvent")?;
        // Only changes count towards bursts; reads and denials stay behind
        // until a rule needs them.
        if !event.event.action.is_write() {
            return Ok(());
        }
        out.push(Output::keyed(
            self.output_topic.clone(),
            event.event.principal.id,
            record.payload.unwrap_or_default().to_vec(),
        ));
        Ok(())
    }
}
