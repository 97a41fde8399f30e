//! `AuditEvent` → `EnrichedAuditEvent`: the enricher stage. Pure; no Kafka here.

use prometheus::{IntCounterVec, IntGauge, Registry};
use serde_json::Value;

use scimtrail_core::chain;
use scimtrail_core::runner::{InputRecord, Output, Poison, Stage, StageError, Tail};
use scimtrail_core::schema::avro::Codecs;
use scimtrail_core::schema::{AuditAction, AuditEvent, EnrichedAuditEvent, Outcome};
use scimtrail_core::state::TxState;

use crate::config::EnricherConfig;
use crate::diff::diff;

/// A partition's chain head and checkpoint bookkeeping.
#[derive(Debug, Clone, Copy)]
struct ChainState {
    head: chain::Head,
    since_checkpoint: u64,
    last_checkpoint_ms: i64,
}

/// When and where checkpoints are written.
pub struct Checkpoints {
    pub signer: chain::Signer,
    pub topic: String,
    pub every_events: u64,
    pub interval_ms: i64,
}

impl Checkpoints {
    fn due(&self, state: &ChainState, now: i64) -> bool {
        state.since_checkpoint >= self.every_events
            || now - state.last_checkpoint_ms >= self.interval_ms
    }
}

pub struct Enricher {
    config: EnricherConfig,
    codecs: Codecs,
    output_topic: String,
    /// Last known state of each resource, by resource key.
    state: TxState<String, Value>,
    /// Head of the hash chain of each output partition (same number as input).
    heads: TxState<i32, ChainState>,
    /// Partition and previous head of the last link made, for `output_rejected`.
    last_link: Option<(i32, Option<ChainState>)>,
    /// Signs chain checkpoints, when a key is configured.
    checkpoints: Option<Checkpoints>,
    partial: IntCounterVec,
    resources: IntGauge,
    clock: fn() -> i64,
}

fn wall_clock_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Enricher {
    pub fn new(
        config: EnricherConfig,
        codecs: Codecs,
        output_topic: String,
        registry: &Registry,
    ) -> Self {
        let partial = scimtrail_core::metrics::counter_vec(
            registry,
            "enricher",
            "partial_diffs_total",
            "Events whose state before was unknown, so their diff is partial, by action.",
            &["action"],
        );
        for a in [
            AuditAction::Replace,
            AuditAction::Patch,
            AuditAction::Delete,
        ] {
            partial.with_label_values(&[a.as_str()]);
        }
        Enricher {
            config,
            codecs,
            output_topic,
            state: TxState::new(),
            heads: TxState::new(),
            last_link: None,
            checkpoints: None,
            partial,
            resources: scimtrail_core::metrics::gauge(
                registry,
                "enricher",
                "resources_tracked",
                "Resources whose last known state is held by this instance.",
            ),
            clock: wall_clock_ms,
        }
    }

    /// Signs a checkpoint of each partition's chain head every
    /// `every_events` events or `interval_ms` (checked as events arrive).
    pub fn with_checkpoints(mut self, checkpoints: Checkpoints) -> Self {
        self.checkpoints = Some(checkpoints);
        self
    }

    pub fn with_clock(mut self, clock: fn() -> i64) -> Self {
        self.clock = clock;
        self
    }

    /// Computes the enrichment of one event and advances the state.
    pub fn enrich(&mut self, event: AuditEvent, partition: i32) -> EnrichedAuditEvent {
        let key = event.partition_key();
        let before = self.state.get(&key).cloned();
        let parse = |s: &Option<String>| {
            s.as_deref()
                .and_then(|b| serde_json::from_str::<Value>(b).ok())
        };
        let req = parse(&event.request.body);
        let resp = event
            .response
            .as_ref()
            .and_then(|r| parse(&r.body))
            .filter(|b| b.is_object() && (b.get("id").is_some() || b.get("schemas").is_some()));

        let mut partial = false;
        let after: Option<Value> = if event.outcome != Outcome::Success {
            // A failed or unconfirmed request changed nothing we can know of.
            before.clone()
        } else {
            match event.action {
                AuditAction::Create | AuditAction::Replace => {
                    if event.action == AuditAction::Replace && before.is_none() {
                        partial = true;
                    }
                    resp.or(req.clone()).map(|mut r| {
                        if let (Some(obj), Some(id)) = (r.as_object_mut(), &event.resource.id) {
                            obj.entry("id").or_insert_with(|| Value::String(id.clone()));
                        }
                        r
                    })
                }
                AuditAction::Patch => match (resp, &before, &req) {
                    // The service provider's answer is authoritative.
                    (Some(r), _, _) => {
                        partial = before.is_none();
                        Some(r)
                    }
                    (None, Some(b), Some(p)) => match crate::patch::apply(b, p) {
                        Ok(a) => Some(a),
                        Err(e) => {
                            tracing::debug!(message = "PATCH not applied; diff is partial", event_id = %event.event_id, reason = %e);
                            partial = true;
                            None
                        }
                    },
                    _ => {
                        partial = true;
                        None
                    }
                },
                AuditAction::Delete => {
                    partial = before.is_none();
                    None
                }
                AuditAction::Read | AuditAction::AccessDenied | AuditAction::Other => {
                    before.clone()
                }
            }
        };

        let changes = if event.outcome == Outcome::Success && event.action.is_write() {
            if partial && after.is_none() && event.action == AuditAction::Patch {
                // Unknown before and after: what the request asked for is all we know.
                patch_intent(req.as_ref())
            } else {
                let known_before = if partial { None } else { before.as_ref() };
                diff(
                    known_before,
                    after.as_ref(),
                    &self.config.ignored_attributes,
                )
            }
        } else {
            Vec::new()
        };
        if partial {
            self.partial
                .with_label_values(&[event.action.as_str()])
                .inc();
        }

        if event.outcome == Outcome::Success && event.action.is_write() {
            match (&event.action, &after) {
                (AuditAction::Delete, _) => {
                    self.state.remove(&key);
                }
                (_, Some(a)) => self.state.insert(key, partition, a.clone()),
                // The state can no longer be trusted.
                (_, None) => {
                    self.state.remove(&key);
                }
            }
        }
        self.resources.set(self.state.len() as i64);

        let snap = |v: &Option<Value>| {
            if self.config.include_snapshots {
                v.as_ref().map(Value::to_string)
            } else {
                None
            }
        };
        let is_write = event.outcome == Outcome::Success && event.action.is_write();
        EnrichedAuditEvent {
            before: if is_write && !partial {
                snap(&before)
            } else {
                None
            },
            after: if is_write { snap(&after) } else { None },
            enriched_time: (self.clock)(),
            changes,
            partial,
            event,
            // Linked by `process`, which knows the output partition.
            chain: None,
        }
    }
}

/// Changes a PATCH asked for, when the resource it applied to is unknown: each
/// operation's path and value, nothing invented about the state before.
fn patch_intent(req: Option<&Value>) -> Vec<scimtrail_core::schema::AttributeChange> {
    use scimtrail_core::schema::{AttributeChange, ChangeKind};
    let Some(ops) = req
        .and_then(|r| r.get("Operations"))
        .and_then(Value::as_array)
    else {
        return Vec::new();
    };
    ops.iter()
        .filter_map(|op| {
            let kind = op.get("op")?.as_str()?.to_ascii_lowercase();
            let path = op
                .get("path")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let value = op.get("value").map(Value::to_string);
            Some(AttributeChange {
                path,
                kind: if kind == "remove" {
                    ChangeKind::Removed
                } else {
                    ChangeKind::Changed
                },
                before: None,
                after: if kind == "remove" { None } else { value },
            })
        })
        .collect()
}

impl Stage for Enricher {
    fn process(
        &mut self,
        record: &InputRecord<'_>,
        out: &mut Vec<Output>,
    ) -> Result<(), StageError> {
        let event = record.decode(&self.codecs.audit_event, "an AuditEvent")?;
        let key = event.partition_key();
        let mut enriched = self.enrich(event, record.partition);
        let partition = record.partition;
        let prior = self.heads.get(&partition).copied();
        let head = chain::append(prior.map(|c| c.head), partition, &mut enriched)
            .map_err(|e| Poison::new("unchainable", e.to_string()))?;
        let now = (self.clock)();
        let mut state = ChainState {
            head,
            since_checkpoint: prior.map_or(0, |c| c.since_checkpoint) + 1,
            last_checkpoint_ms: prior.map_or(now, |c| c.last_checkpoint_ms),
        };
        let checkpoint = match &self.checkpoints {
            Some(cp) if cp.due(&state, now) => {
                state.since_checkpoint = 0;
                state.last_checkpoint_ms = now;
                Some(
                    cp.signer
                        .checkpoint(&self.output_topic, partition, head, now)
                        .map_err(|e| Poison::new("unchainable", e.to_string()))?,
                )
            }
            _ => None,
        };
        self.heads.insert(partition, partition, state);
        self.last_link = Some((partition, prior));
        let bytes = self.codecs.enriched.encode(&enriched).map_err(|e| {
            Poison::new(
                "unencodable",
                format!("cannot encode the EnrichedAuditEvent: {e}"),
            )
        })?;
        out.push(Output::keyed(self.output_topic.clone(), key, bytes).on_partition(partition));
        // After the event it vouches for: if the event cannot be written, the
        // runner stops at it and the checkpoint is not written either.
        if let (Some(cp), Some(config)) = (checkpoint, &self.checkpoints) {
            let bytes = self.codecs.checkpoint.encode(&cp).map_err(|e| {
                Poison::new("unencodable", format!("cannot encode the checkpoint: {e}"))
            })?;
            let key = format!("{}/{partition}", self.output_topic);
            out.push(Output::keyed(config.topic.clone(), key, bytes));
        }
        Ok(())
    }

    fn commit(&mut self) {
        self.state.commit();
        self.heads.commit();
    }

    fn abort(&mut self) {
        self.state.rollback();
        self.heads.rollback();
        self.resources.set(self.state.len() as i64);
    }

    fn output_rejected(&mut self) {
        // The event was not written: the chain must not point past it.
        if let Some((partition, previous)) = self.last_link.take() {
            match previous {
                Some(h) => self.heads.insert(partition, partition, h),
                None => {
                    self.heads.remove(&partition);
                }
            }
        }
    }

    fn partitions_revoked(&mut self, partitions: &[(String, i32)]) {
        self.state.drop_partitions(partitions);
        self.heads.drop_partitions(partitions);
        self.resources.set(self.state.len() as i64);
    }

    fn resumes_from(&self) -> Option<String> {
        Some(self.output_topic.clone())
    }

    /// Continues the chain of output partition `partition` from its last
    /// committed link, reading back from the end in growing spans.
    fn resume(&mut self, partition: i32, tail: &mut dyn Tail) -> Result<(), String> {
        let mut span = 64i64;
        loop {
            let (records, from_start) = tail.last(span)?;
            let found = records.iter().rev().find_map(|bytes| {
                let event = self.codecs.enriched.decode(bytes).ok()?;
                event.chain.filter(|link| link.partition == partition)
            });
            if let Some(link) = found {
                let head = chain::Head::of(&link).map_err(|e| e.to_string())?;
                tracing::info!(
                    message = "chain resumed",
                    partition,
                    sequence = head.sequence
                );
                let state = ChainState {
                    head,
                    since_checkpoint: 0,
                    last_checkpoint_ms: (self.clock)(),
                };
                self.heads.insert(partition, partition, state);
                self.heads.commit();
                return Ok(());
            }
            if from_start {
                tracing::info!(message = "chain starts", partition);
                self.heads.remove(&partition);
                self.heads.commit();
                return Ok(());
            }
            span = span.saturating_mul(16);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use scimtrail_core::schema::{fixtures, ChangeKind, Response};
    use serde_json::json;

    fn enricher() -> Enricher {
        Enricher::new(
            EnricherConfig::default(),
            Codecs::single_object().expect("codecs"),
            "out".into(),
            &Registry::new(),
        )
        .with_clock(|| 7)
    }

    fn event(
        id: &str,
        action: AuditAction,
        status: i32,
        req: Option<Value>,
        resp: Option<Value>,
    ) -> AuditEvent {
        let mut e = fixtures::audit_event(id);
        e.action = action;
        e.outcome = if status < 300 {
            Outcome::Success
        } else {
            Outcome::Failure
        };
        e.request.body = req.map(|v| v.to_string());
        e.response = Some(Response {
            status,
            body: resp.map(|v| v.to_string()),
        });
        e
    }

    fn paths(e: &EnrichedAuditEvent) -> Vec<(String, ChangeKind)> {
        e.changes.iter().map(|c| (c.path.clone(), c.kind)).collect()
    }

    #[test]
    fn create_patch_replace_delete_give_exact_before_and_after() {
        let mut en = enricher();
        let user = json!({"id": "u1", "userName": "bj", "active": true, "title": "Rep"});
        let e = en.enrich(
            event("1", AuditAction::Create, 201, None, Some(user.clone())),
            0,
        );
        assert!(!e.partial);
        assert_eq!(e.before, None);
        assert_eq!(paths(&e).len(), 4);

        // PATCH answered with 204: applied to the known state.
        let p = json!({"Operations": [{"op": "replace", "path": "active", "value": false}]});
        let e = en.enrich(event("2", AuditAction::Patch, 204, Some(p), None), 0);
        assert!(!e.partial);
        assert_eq!(paths(&e), vec![("active".to_string(), ChangeKind::Changed)]);
        assert_eq!(e.changes[0].before.as_deref(), Some("true"));
        assert_eq!(e.changes[0].after.as_deref(), Some("false"));

        let e = en.enrich(
            event(
                "3",
                AuditAction::Replace,
                200,
                None,
                Some(json!({"id": "u1", "userName": "bj", "active": false})),
            ),
            0,
        );
        assert_eq!(paths(&e), vec![("title".to_string(), ChangeKind::Removed)]);

        let e = en.enrich(event("4", AuditAction::Delete, 204, None, None), 0);
        assert!(!e.partial);
        assert_eq!(e.after, None);
        assert!(paths(&e).iter().all(|(_, k)| *k == ChangeKind::Removed));
        assert_eq!(en.state.len(), 0);
    }

    #[test]
    fn patch_of_unknown_resource_is_partial_and_invents_no_before() {
        let mut en = enricher();
        let p = json!({"Operations": [{"op": "replace", "path": "active", "value": false}]});
        let e = en.enrich(event("1", AuditAction::Patch, 204, Some(p), None), 0);
        assert!(e.partial);
        assert_eq!(e.before, None);
        assert_eq!(e.changes.len(), 1);
        assert_eq!(e.changes[0].before, None);
        assert_eq!(e.changes[0].after.as_deref(), Some("false"));
    }

    #[test]
    fn failures_change_nothing() {
        let mut en = enricher();
        en.enrich(
            event(
                "1",
                AuditAction::Create,
                201,
                None,
                Some(json!({"id": "u1", "userName": "a"})),
            ),
            0,
        );
        let e = en.enrich(event("2", AuditAction::Delete, 404, None, None), 0);
        assert!(e.changes.is_empty());
        assert_eq!(en.state.len(), 1);
    }

    #[test]
    fn aborted_transaction_rolls_state_back() {
        let mut en = enricher();
        en.enrich(
            event(
                "1",
                AuditAction::Create,
                201,
                None,
                Some(json!({"id": "u1", "title": "A"})),
            ),
            0,
        );
        en.commit();
        en.enrich(
            event(
                "2",
                AuditAction::Replace,
                200,
                None,
                Some(json!({"id": "u1", "title": "B"})),
            ),
            0,
        );
        en.abort();
        let e = en.enrich(
            event(
                "2",
                AuditAction::Replace,
                200,
                None,
                Some(json!({"id": "u1", "title": "B"})),
            ),
            0,
        );
        assert_eq!(e.changes[0].before.as_deref(), Some("\"A\""));
    }

    #[test]
    fn revoked_partitions_drop_their_state() {
        let mut en = enricher();
        en.enrich(
            event(
                "1",
                AuditAction::Create,
                201,
                None,
                Some(json!({"id": "u1"})),
            ),
            2,
        );
        en.partitions_revoked(&[("t".into(), 1)]);
        assert_eq!(en.state.len(), 1);
        en.partitions_revoked(&[("t".into(), 2)]);
        assert_eq!(en.state.len(), 0);
    }

    #[test]
    fn stage_writes_to_the_partition_it_read_from() {
        let mut en = enricher();
        let codecs = Codecs::single_object().expect("codecs");
        let ev = event(
            "1",
            AuditAction::Create,
            201,
            None,
            Some(json!({"id": "u1"})),
        );
        let bytes = codecs.audit_event.encode(&ev).expect("encode");
        let mut out = Vec::new();
        en.process(
            &InputRecord {
                topic: "in",
                partition: 2,
                offset: 0,
                key: None,
                payload: Some(&bytes),
                timestamp: None,
            },
            &mut out,
        )
        .expect("ok");
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].partition, Some(2));
        let back = codecs.enriched.decode(&out[0].payload).expect("decode");
        assert_eq!(back.event, ev);
        let bad = en.process(
            &InputRecord {
                topic: "in",
                partition: 0,
                offset: 1,
                key: None,
                payload: Some(b"junk"),
                timestamp: None,
            },
            &mut out,
        );
        match bad.expect_err("poison") {
            StageError::Poison(p) => assert_eq!(p.kind, "invalid_avro"),
            other => panic!("expected poison, got {other:?}"),
        }
    }
}
