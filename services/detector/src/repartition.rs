//! Re-keys the enriched stream for the rules, as Kafka Streams does before a
//! grouped aggregation: the enriched topic is keyed by resource, but rules
//! group by principal, target or anything else, so every event of one group
//! key must reach one instance. For each event and each distinct
//! partitioning of the enabled rules (`group_by` fields), one record goes to
//! the internal topic `<internal_prefix>detector-by-key`, keyed
//! `<partitioning id>` U+001F `<key>`; the event is forwarded without what no
//! rule reads (snapshots, HTTP bodies, lineage). An event without a value for a partitioning's fields is not
//! routed for it (no rule of that partitioning could group it).
//!
//! Exactly-once like every runner task: an event reaches the repartition topic
//! once per partitioning, atomically with the enriched topic's offset.

use std::sync::Arc;

use scimtrail_core::runner::{InputRecord, Output, Poison, Stage, StageError};
use scimtrail_core::schema::{AvroCodec, EnrichedAuditEvent};

use crate::reload::Rules;
use crate::rules::{Partitioning, KEY_SEPARATOR};

/// Header naming the partitioning of a repartitioned record (for people
/// reading the topic; the key carries it too).
pub const PARTITIONING_HEADER: &str = "scimtrail-partitioning";

pub struct ByKey {
    codec: AvroCodec<EnrichedAuditEvent>,
    output_topic: String,
    rules: Rules,
    generation: u64,
    partitionings: Arc<Vec<Partitioning>>,
}

impl ByKey {
    pub fn new(codec: AvroCodec<EnrichedAuditEvent>, output_topic: String, rules: Rules) -> Self {
        let (current, generation) = rules.snapshot();
        ByKey {
            codec,
            output_topic,
            rules,
            generation,
            partitionings: Arc::new(current.partitionings()),
        }
    }
}

/// The routing key of `key` under partitioning `id`.
pub fn routing_key(id: &str, key: &str) -> String {
    format!("{id}{KEY_SEPARATOR}{key}")
}

/// Splits a routing key into (partitioning id, key).
pub fn split_routing_key(routing: &str) -> Option<(&str, &str)> {
    routing.split_once(KEY_SEPARATOR)
}

impl Stage for ByKey {
    fn process(
        &mut self,
        record: &InputRecord<'_>,
        out: &mut Vec<Output>,
    ) -> Result<(), StageError> {
        if let Some(current) = self.rules.if_changed(&mut self.generation) {
            self.partitionings = Arc::new(current.partitionings());
        }
        let mut event = record.decode(&self.codec, "an EnrichedAuditEvent")?;
        // Rules never read the resource snapshots, the HTTP bodies or the
        // lineage (docs/rules.md, "The event view"): the re-keyed copies go
        // without them, a third of the bytes, written and read once per
        // partitioning.
        event.before = None;
        event.after = None;
        event.trace = None;
        event.event.request.body = None;
        if let Some(r) = event.event.response.as_mut() {
            r.body = None;
        }
        let payload = self.codec.encode(&event).map_err(|e| {
            Poison::new(
                "unencodable",
                format!("cannot encode the re-keyed event: {e}"),
            )
        })?;
        for p in self.partitionings.iter() {
            let Some(key) = p.key_of(&event) else {
                continue;
            };
            let mut o = Output::keyed(
                self.output_topic.clone(),
                routing_key(&p.id, &key),
                payload.to_vec(),
            );
            o.headers
                .push((PARTITIONING_HEADER.to_string(), p.id.clone().into_bytes()));
            out.push(o);
        }
        Ok(())
    }
}
