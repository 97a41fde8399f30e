//! The rules task: evaluates the rules over the re-keyed stream and writes
//! `Alert`s to `audit.alerts.v1`.
//!
//! Reads `<internal_prefix>detector-by-key`, where every event of one group
//! key is on one partition (see [`crate::repartition`]), and hands each to the
//! [rules engine](crate::rules::Engine) with its partitioning and key.
//!
//! **Delivery:** exactly-once through the transactional runner: alerts and the
//! engine's state changes are written in the transaction that consumed the
//! events behind them, and the engine rolls back with an aborted one.
//! **State:** windows, seen values and suppression live in the engine per key
//! and are written to the compacted changelog `<internal_prefix>detector-state`
//! (key: `<partitioning>` U+001F `<key>`, the same key as the input, so the
//! default partitioner puts a key's state on its input partition's number).
//! On assignment a partition's state is read back from the changelog before
//! its first record, so a restart, a crash or a rebalance neither misses nor
//! repeats an alert.
//! **Event time:** alerts are final once the partition's event time is
//! `allowed_lateness` past the events behind them; when a partition goes
//! quiet, its clock is advanced by the wall clock after the same delay, so the
//! last alerts of a burst do not wait for the next event.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use scimtrail_core::runner::{InputRecord, Output, Poison, Stage, StageError, Tail};
use scimtrail_core::schema::avro::Codecs;
use scimtrail_core::schema::Alert;

use crate::reload::Rules;
use crate::repartition::split_routing_key;
use crate::rules::{Engine, EngineMetrics, EngineOptions};

/// Name, after the internal prefix, of the engine's state changelog.
pub const CHANGELOG: &str = "detector-state";

pub struct Evaluate {
    codecs: Codecs,
    alerts_topic: String,
    changelog_topic: String,
    engine: Engine,
    rules: Rules,
    generation: u64,
    /// Per (partitioning, input partition): the event time reached by each
    /// source (enriched) partition feeding it.
    clocks: HashMap<(String, i32), SourceClocks>,
    /// A source silent this long (wall clock) stops holding the watermark back.
    source_idle: Duration,
    /// Partitions of the enriched topic: the sources every input partition
    /// can receive from.
    sources: usize,
}

/// How far each source partition has come, for one input partition. The
/// repartition topic merges the enriched topic's partitions, which progress
/// at their own pace (very differently while catching up), so the event time
/// a key's events have reached is the minimum over the sources still
/// sending, not the newest event seen: an event from a lagging source is then
/// on time rather than late.
///
/// Until every source has been heard from (or `idle` has passed since the
/// first event), there is no watermark at all: the first source to deliver
/// after an assignment may be far ahead of the others, and a clock taken from
/// it alone would make their events late.
#[derive(Debug)]
struct SourceClocks {
    /// source partition → (newest event time, when it arrived).
    sources: HashMap<i32, (i64, Instant)>,
    /// When the first event arrived (or the state was restored).
    born: Instant,
    /// The newest event time of the state restored for the partition: with
    /// no event after an assignment, the clock moves on from there.
    restored: Option<i64>,
}

impl SourceClocks {
    fn new() -> Self {
        SourceClocks {
            sources: HashMap::new(),
            born: Instant::now(),
            restored: None,
        }
    }

    /// The newest event time of any source (or of the restored state).
    fn newest(&self) -> Option<i64> {
        self.sources
            .values()
            .map(|(t, _)| *t)
            .chain(self.restored)
            .max()
    }

    fn observe(&mut self, source: i32, time: i64) {
        let now = Instant::now();
        let entry = self.sources.entry(source).or_insert((time, now));
        *entry = (entry.0.max(time), now);
    }

    /// The watermark: the minimum over sources heard from within `idle`;
    /// with every source idle, the newest time of any. `None` while fewer
    /// than `expected` sources have been heard from, for at most `idle`.
    fn watermark(&self, idle: Duration, expected: usize) -> Option<i64> {
        if self.sources.len() < expected && self.born.elapsed() < idle {
            return None;
        }
        let active = self
            .sources
            .values()
            .filter(|(_, at)| at.elapsed() < idle)
            .map(|(t, _)| *t)
            .min();
        active.or_else(|| self.sources.values().map(|(t, _)| *t).max())
    }

    /// Wall time since the last event of any source (or since the state
    /// was restored, before any).
    fn quiet(&self) -> Duration {
        self.sources
            .values()
            .map(|(_, at)| at.elapsed())
            .min()
            .unwrap_or_else(|| self.born.elapsed())
    }
}

impl Evaluate {
    /// `sources`: the partition count of the enriched topic.
    pub fn new(
        codecs: Codecs,
        alerts_topic: String,
        changelog_topic: String,
        rules: Rules,
        options: EngineOptions,
        metrics: EngineMetrics,
        sources: usize,
    ) -> Self {
        let (current, generation) = rules.snapshot();
        let lateness_ms = options.allowed_lateness_ms;
        Evaluate {
            codecs,
            alerts_topic,
            changelog_topic,
            engine: Engine::new(current, options, metrics),
            rules,
            generation,
            clocks: HashMap::new(),
            source_idle: Duration::from_millis(lateness_ms.max(2_000) as u64),
            sources,
        }
    }

    fn emit(&mut self, alerts: Vec<Alert>, out: &mut Vec<Output>) -> Result<(), StageError> {
        for alert in alerts {
            tracing::info!(
                message = "alert raised",
                rule = %alert.rule_id,
                alert_id = %alert.alert_id,
                severity = ?alert.severity,
                count = alert.count,
                suppressed = alert.suppressed,
            );
            let bytes =
                self.codecs.alert.encode(&alert).map_err(|e| {
                    Poison::new("unencodable", format!("cannot encode the alert: {e}"))
                })?;
            out.push(Output::keyed(
                self.alerts_topic.clone(),
                alert.alert_id.clone(),
                bytes,
            ));
        }
        Ok(())
    }
}

impl Stage for Evaluate {
    fn process(
        &mut self,
        record: &InputRecord<'_>,
        out: &mut Vec<Output>,
    ) -> Result<(), StageError> {
        if let Some(current) = self.rules.if_changed(&mut self.generation) {
            self.engine.set_rules(current);
        }
        let routing = record
            .key
            .and_then(|k| std::str::from_utf8(k).ok())
            .and_then(split_routing_key)
            .ok_or_else(|| {
                Poison::new(
                    "invalid_key",
                    "a repartitioned record's key must be `<partitioning>` U+001F `<key>`",
                )
            })?;
        let (partitioning, key) = (routing.0.to_string(), routing.1.to_string());
        let event = record.decode(&self.codecs.enriched, "an EnrichedAuditEvent")?;
        let time = event.event.event_time;
        // The enriched partition it came from: its chain link says.
        let source = event.chain.as_ref().map_or(-1, |c| c.partition);
        let clocks = self
            .clocks
            .entry((partitioning.clone(), record.partition))
            .or_insert_with(SourceClocks::new);
        clocks.observe(source, time);
        // No watermark yet: hold every event (the engine keeps its clock).
        let clock = clocks
            .watermark(self.source_idle, self.sources)
            .unwrap_or(i64::MIN);
        let alerts = self
            .engine
            .process_at(record.partition, &partitioning, &key, &event, clock);
        self.emit(alerts, out)
    }

    fn idle(&mut self, out: &mut Vec<Output>) {
        let mut alerts = Vec::new();
        for ((partitioning, partition), clocks) in self.clocks.iter_mut() {
            let quiet = clocks.quiet();
            if quiet < self.source_idle {
                continue;
            }
            // Every source has been quiet: assume event time moved on with
            // the wall clock, so the last alerts of a burst do not wait for
            // the next event.
            let Some(newest) = clocks.newest() else {
                continue;
            };
            let clock = newest.saturating_add(quiet.as_millis() as i64);
            alerts.extend(
                self.engine
                    .advance_watermark(*partition, partitioning, clock),
            );
            for (t, at) in clocks.sources.values_mut() {
                *t = clock;
                *at = Instant::now();
            }
            if clocks.restored.is_some() {
                clocks.restored = Some(clock);
                clocks.born = Instant::now();
            }
        }
        if let Err(e) = self.emit(alerts, out) {
            tracing::error!(message = "alerts of an idle partition could not be encoded", error = ?e);
        }
    }

    /// The changed keys' state, once per transaction: a key that many
    /// records of the batch changed is written once, not once per record.
    fn before_commit(&mut self, out: &mut Vec<Output>) {
        for (key, state) in self.engine.take_changes() {
            out.push(match state {
                Some(bytes) => Output::keyed(self.changelog_topic.clone(), key, bytes),
                None => Output::tombstone(self.changelog_topic.clone(), key),
            });
        }
    }

    fn commit(&mut self) {
        self.engine.commit();
    }

    fn abort(&mut self) {
        self.engine.rollback();
    }

    fn partitions_revoked(&mut self, partitions: &[(String, i32)]) {
        let ids: Vec<i32> = partitions.iter().map(|(_, p)| *p).collect();
        self.engine.partitions_revoked(&ids);
        self.clocks.retain(|(_, p), _| !ids.contains(p));
    }

    fn resumes_from(&self) -> Option<String> {
        Some(self.alerts_topic.clone())
    }

    /// Restores the partition's rule state from the changelog.
    fn resume(&mut self, partition: i32, tail: &mut dyn Tail) -> Result<(), String> {
        let started = Instant::now();
        let mut latest: HashMap<String, Option<Vec<u8>>> = HashMap::new();
        let read = tail.scan(&self.changelog_topic, &mut |key, payload| {
            if let Some(key) = key.and_then(|k| std::str::from_utf8(k).ok()) {
                latest.insert(key.to_string(), payload.map(<[u8]>::to_vec));
            }
        })?;
        let mut restored = 0usize;
        for (key, bytes) in latest {
            let Some(bytes) = bytes else { continue };
            match self.engine.restore(partition, &key, &bytes) {
                Ok(Some(newest)) => {
                    restored += 1;
                    if let Some((pid, _)) = split_routing_key(&key) {
                        let clocks = self
                            .clocks
                            .entry((pid.to_string(), partition))
                            .or_insert_with(SourceClocks::new);
                        clocks.restored = Some(clocks.restored.unwrap_or(i64::MIN).max(newest));
                    }
                }
                Ok(None) => {}
                // One unreadable entry loses that key's windows, not the
                // partition: it starts empty, loudly.
                Err(e) => {
                    tracing::warn!(message = "rule state not restored", key = %key, error = %e)
                }
            }
        }
        self.engine.commit();
        tracing::info!(
            message = "rule state restored",
            partition,
            records = read,
            keys = restored,
            seconds = started.elapsed().as_secs_f64()
        );
        Ok(())
    }
}
