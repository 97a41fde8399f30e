//! The input of the detector benchmark: realistic `EnrichedAuditEvent`s,
//! made in this process by the real enricher and produced once to the input
//! topic, as the enricher service would write them.
//!
//! The traffic is the throughput benchmark's ([`crate::corpus`]): the seeded
//! `scimtrail gen` exchanges, normalized by ingest's `normalize`. Each event
//! is Avro-encoded as ingest produces it and handed, as an input record of
//! the partition ingest's producer would pick (murmur2 of its key, as the
//! Java client and librdkafka's `murmur2_random` compute it), to the real
//! [`Enricher`] stage (`Stage::process`, with `Stage::commit` every
//! [`COMMIT_EVERY`] records as the runner commits its transactions). The
//! stage's enriched output (state, diff, flags, lineage, hash chain) is
//! produced unchanged: keyed as the enricher keys it, on the partition its
//! chain link names. Only the changelog outputs are dropped.
//!
//! So that every rule of the default pack has something to evaluate, the
//! enricher runs with what a deployment would configure: the generator's
//! privileged groups (`admins`, `org-owners`) in `[enricher.privileged]`,
//! and a role directory ([`ROLES`]) for the generator's three principals, so
//! events carry an `actor` and the policy rule runs.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use serde::Serialize;

use scimtrail_core::config::KafkaConfig;
use scimtrail_core::runner::{InputRecord, Output, Stage};
use scimtrail_core::schema::avro::Codecs;
use scimtrail_core::schema::EnrichedAuditEvent;
use scimtrail_enricher::flags::PrivilegedConfig;
use scimtrail_enricher::roles::{Directory, Roles};
use scimtrail_enricher::{Enricher, EnricherConfig};

use crate::corpus::{self, CorpusStats, Normalized};
use crate::progress::Progress;

/// Records per `Stage::commit`: the runner's default batch.
const COMMIT_EVERY: u64 = 500;

/// The role directory of the enricher that makes the input: the generator's
/// two connectors are service connectors, its one person a helpdesk account
/// (so some of what that person does breaks the default pack's policy).
pub const ROLES: &str = "\
principals:
  okta-provisioner:
    display_name: Okta SCIM connector
    roles: [service-connector]
  entra-sync:
    display_name: Entra ID provisioning
    roles: [service-connector]
  alice.admin:
    display_name: Alice (IT)
    roles: [helpdesk]
";

/// The groups the generator treats as privileged.
pub const PRIVILEGED_GROUPS: [&str; 2] = ["admins", "org-owners"];

/// What the enricher made of the input, to show the rules have work to do.
#[derive(Debug, Clone, Default, Serialize)]
pub struct EnrichedStats {
    /// The `AuditEvent`s fed to the enricher, and the enriched events
    /// produced (their payload sizes are those of the enriched events).
    pub corpus: CorpusStats,
    /// Enriched events per input partition (the partition of their chain link).
    pub by_partition: BTreeMap<i32, u64>,
    /// Events carrying each flag.
    pub by_flag: BTreeMap<String, u64>,
    /// Events with an `actor` (the principal found in the role directory).
    pub with_actor: u64,
    /// Events with membership changes.
    pub with_memberships: u64,
    /// Events the enricher marked partial (state before unknown).
    pub partial: u64,
    /// Time inside the enricher stage, per event, in microseconds.
    pub enricher_us_per_event: f64,
}

/// An enriched event kept for the latency runs, with where it goes.
#[derive(Debug, Clone)]
pub struct Kept {
    pub key: String,
    pub partition: i32,
    pub event: EnrichedAuditEvent,
}

/// The enricher stage configured as described in the module documentation.
fn enricher(codecs: Codecs, output_topic: &str) -> anyhow::Result<Enricher> {
    let config = EnricherConfig {
        privileged: PrivilegedConfig {
            groups: PRIVILEGED_GROUPS.iter().map(|g| g.to_string()).collect(),
            ..PrivilegedConfig::default()
        },
        ..EnricherConfig::default()
    };
    let directory =
        Directory::parse(ROLES).map_err(|e| anyhow::anyhow!("the bench's role directory: {e}"))?;
    // Its own registry: the enricher's metrics are not what is measured.
    let registry = prometheus::Registry::new();
    Ok(Enricher::new(
        config,
        codecs,
        output_topic.to_string(),
        "enricher-state".to_string(),
        &registry,
    )
    .with_roles(Roles::new(directory)))
}

/// Generates `events` exchanges, enriches them and produces the enriched
/// events to `topic` (of `partitions` partitions), waiting until all are
/// acknowledged. The first `keep` enriched events are returned too.
pub fn produce(
    kafka: &KafkaConfig,
    topic: &str,
    partitions: i32,
    gen_bin: &Path,
    events: u64,
    seed: u64,
    keep: usize,
) -> anyhow::Result<(EnrichedStats, Vec<Kept>)> {
    let started = Instant::now();
    let codecs = Codecs::single_object()?;
    let mut stage = enricher(codecs.clone(), topic)?;
    let producer = corpus::bulk_producer(kafka)?;
    let mut traffic = Normalized::spawn(gen_bin, events, seed)?;
    let mut stats = EnrichedStats {
        corpus: CorpusStats::new(),
        ..EnrichedStats::default()
    };
    let mut kept = Vec::with_capacity(keep);
    let mut progress = Progress::new("input", "enriched events produced", events);
    let mut out: Vec<Output> = Vec::new();
    let mut stage_seconds = 0.0;
    let mut offsets: BTreeMap<i32, i64> = BTreeMap::new();
    while let Some(event) = traffic.next_event()? {
        let key = event.partition_key();
        let payload = codecs.audit_event.encode(&event)?;
        let partition = partition_of(key.as_bytes(), partitions);
        let offset = offsets.entry(partition).or_default();
        let record = InputRecord {
            topic: "audit.events.v1",
            partition,
            offset: *offset,
            key: Some(key.as_bytes()),
            payload: Some(&payload),
            timestamp: Some(event.ingest_time),
        };
        *offset += 1;
        out.clear();
        let t = Instant::now();
        stage.process(&record, &mut out).map_err(|e| {
            anyhow::anyhow!("the enricher rejected event {}: {e:?}", event.event_id)
        })?;
        stage_seconds += t.elapsed().as_secs_f64();
        let enriched = out
            .iter()
            .find(|o| o.topic == topic)
            .ok_or_else(|| anyhow::anyhow!("the enricher wrote no event for {}", event.event_id))?;
        let (Some(key), Some(bytes), Some(partition)) =
            (&enriched.key, &enriched.payload, enriched.partition)
        else {
            anyhow::bail!(
                "the enricher's event for {} has no key, value or partition",
                event.event_id
            );
        };
        let key = String::from_utf8(key.clone())?;
        corpus::send(&producer, topic, &key, Some(partition), bytes)?;
        let decoded = codecs.enriched.decode(bytes)?;
        if decoded.chain.as_ref().map(|c| c.partition) != Some(partition) {
            anyhow::bail!(
                "event {}: its chain link does not name partition {partition}",
                event.event_id
            );
        }
        stats.corpus.add(&event, bytes.len() as u64);
        count(&mut stats, &decoded, partition);
        if kept.len() < keep {
            kept.push(Kept {
                key,
                partition,
                event: decoded,
            });
        }
        if stats.corpus.events.is_multiple_of(COMMIT_EVERY) {
            stage.commit();
        }
        progress.update(stats.corpus.events);
    }
    stage.commit();
    corpus::flush(&producer)?;
    progress.finish(stats.corpus.events);
    stats.corpus.finish(&traffic, started)?;
    traffic.finish()?;
    stats.enricher_us_per_event = stage_seconds * 1e6 / stats.corpus.events as f64;
    Ok((stats, kept))
}

fn count(stats: &mut EnrichedStats, event: &EnrichedAuditEvent, partition: i32) {
    *stats.by_partition.entry(partition).or_default() += 1;
    for flag in &event.flags {
        *stats
            .by_flag
            .entry(format!("{flag:?}").to_uppercase())
            .or_default() += 1;
    }
    stats.with_actor += u64::from(event.actor.is_some());
    stats.with_memberships += u64::from(!event.memberships.is_empty());
    stats.partial += u64::from(event.partial);
}

/// The partition the Java client's default partitioner (and librdkafka's
/// `murmur2_random`) gives a keyed record: murmur2 of the key, made positive,
/// modulo the partition count.
pub fn partition_of(key: &[u8], partitions: i32) -> i32 {
    let positive = (murmur2(key) & 0x7fff_ffff) as i32;
    positive % partitions.max(1)
}

/// Kafka's `Utils.murmur2` (seed 0x9747b28c).
fn murmur2(data: &[u8]) -> u32 {
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let mut h: u32 = 0x9747_b28c ^ (data.len() as u32);
    let chunks = data.chunks_exact(4);
    let tail = chunks.remainder();
    for c in chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    if !tail.is_empty() {
        for (i, b) in tail.iter().enumerate().rev() {
            h ^= u32::from(*b) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_kafkas_test_vectors() {
        // From Kafka's UtilsTest.testMurmur2.
        let cases: [(&str, i32); 6] = [
            ("21", -973_932_308),
            ("foobar", -790_332_482),
            ("a-little-bit-long-string", -985_981_536),
            ("a-little-bit-longer-string", -1_486_304_829),
            (
                "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            ("abc", 479_470_107),
        ];
        for (key, expected) in cases {
            assert_eq!(murmur2(key.as_bytes()) as i32, expected, "{key}");
        }
    }

    #[test]
    fn partitions_are_in_range_and_stable() {
        for key in ["a", "github-enterprise\u{1f}User\u{1f}42", ""] {
            let p = partition_of(key.as_bytes(), 3);
            assert!((0..3).contains(&p));
            assert_eq!(p, partition_of(key.as_bytes(), 3));
        }
    }

    #[test]
    fn the_role_directory_parses() {
        let dir = Directory::parse(ROLES).expect("parses");
        assert_eq!(dir.principals.len(), 3);
    }
}
