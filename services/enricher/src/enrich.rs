//! `AuditEvent` → `EnrichedAuditEvent`: the enricher stage. Pure; no Kafka here.
//!
//! For each event: the resource's last known state ([`crate::state`]) and the
//! request give the state after (a PATCH applied by the RFC 7644 engine, a
//! create or replace taken from the response or request), their difference
//! gives the attribute-level `changes`, and [`crate::flags`] derives
//! memberships and flags from them. The actor's roles come from the role
//! directory, the trace from the event's hops and the attributes' lineage.
//! The new state is written to the changelog in the same transaction as the
//! event, and the event is linked into its partition's hash chain.

use std::collections::BTreeMap;

use prometheus::{Histogram, IntCounter, IntCounterVec, IntGauge, Registry};
use serde_json::Value;

use scimtrail_core::chain;
use scimtrail_core::runner::{InputRecord, Output, Poison, Stage, StageError, Tail};
use scimtrail_core::schema::avro::Codecs;
use scimtrail_core::schema::{
    Actor, AttributeChange, AttributeOrigin, AuditAction, AuditEvent, ChangeKind,
    EnrichedAuditEvent, EventFlag, Outcome, Trace,
};
use scimtrail_core::scim::{self, Compat, PatchOptions, ResourceSchema, ScimType};
use scimtrail_core::state::TxState;

use crate::config::{EnricherConfig, PatchCompat};
use crate::diff::diff;
use crate::flags::{self, Subject};
use crate::roles::Roles;
use crate::state::{attribute_of, Known, Origin, Packed};

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

/// What an event did to the stored state of its resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateChange {
    Unchanged,
    Put(Packed),
    Delete,
}

struct Metrics {
    partial: IntCounterVec,
    resources: IntGauge,
    drift: IntCounter,
    patch_rejected: IntCounterVec,
    state_errors: IntCounter,
    unknown_principals: IntCounter,
    restored: IntCounter,
    restore_seconds: Histogram,
}

impl Metrics {
    fn new(registry: &Registry) -> Self {
        use scimtrail_core::metrics::{counter, counter_vec, gauge, histogram};
        let partial = counter_vec(
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
        Metrics {
            partial,
            resources: gauge(
                registry,
                "enricher",
                "resources_tracked",
                "Resources whose last known state is held by this instance.",
            ),
            drift: counter(
                registry,
                "enricher",
                "drift_total",
                "Events whose full response disagreed with the state computed from the request.",
            ),
            patch_rejected: {
                let c = counter_vec(
                    registry,
                    "enricher",
                    "patch_rejected_total",
                    "Successful PATCH requests the engine could not apply to the known state, by SCIM error type.",
                    &["scim_type"],
                );
                for t in [
                    ScimType::InvalidSyntax,
                    ScimType::InvalidPath,
                    ScimType::NoTarget,
                    ScimType::InvalidFilter,
                    ScimType::InvalidValue,
                    ScimType::Mutability,
                ] {
                    c.with_label_values(&[t.as_str()]);
                }
                c
            },
            state_errors: counter(
                registry,
                "enricher",
                "state_errors_total",
                "Stored resource states that could not be read back (treated as unknown).",
            ),
            unknown_principals: counter(
                registry,
                "enricher",
                "unknown_principals_total",
                "Events by a principal the role directory does not list.",
            ),
            restored: counter(
                registry,
                "enricher",
                "state_restored_records_total",
                "Changelog records read to restore resource state after an assignment.",
            ),
            restore_seconds: histogram(
                registry,
                "enricher",
                "state_restore_duration_seconds",
                "Time to restore one partition's resource state from the changelog.",
                vec![0.01, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0],
            ),
        }
    }
}

pub struct Enricher {
    config: EnricherConfig,
    codecs: Codecs,
    output_topic: String,
    changelog_topic: String,
    /// Last known state of each resource, by resource key, packed.
    state: TxState<String, Packed>,
    /// Head of the hash chain of each output partition (same number as input).
    heads: TxState<i32, ChainState>,
    /// Partition and previous head of the last link made, for `output_rejected`.
    last_link: Option<(i32, Option<ChainState>)>,
    /// Signs chain checkpoints, when a key is configured.
    checkpoints: Option<Checkpoints>,
    roles: Option<Roles>,
    patch_options: PatchOptions,
    metrics: Metrics,
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
        changelog_topic: String,
        registry: &Registry,
    ) -> Self {
        let patch_options = PatchOptions {
            compat: match config.patch_compat {
                PatchCompat::Lenient => Compat::Lenient,
                PatchCompat::Strict => Compat::Strict,
            },
        };
        Enricher {
            config,
            codecs,
            output_topic,
            changelog_topic,
            state: TxState::new(),
            heads: TxState::new(),
            last_link: None,
            checkpoints: None,
            roles: None,
            patch_options,
            metrics: Metrics::new(registry),
            clock: wall_clock_ms,
        }
    }

    /// Signs a checkpoint of each partition's chain head every
    /// `every_events` events or `interval_ms` (checked as events arrive).
    pub fn with_checkpoints(mut self, checkpoints: Checkpoints) -> Self {
        self.checkpoints = Some(checkpoints);
        self
    }

    /// Looks actors up in `roles`; without it events carry no roles.
    pub fn with_roles(mut self, roles: Roles) -> Self {
        self.roles = Some(roles);
        self
    }

    pub fn with_clock(mut self, clock: fn() -> i64) -> Self {
        self.clock = clock;
        self
    }

    /// The stored state of `key`, if it can be read.
    fn known(&self, key: &String) -> Option<Known> {
        let packed = self.state.get(key)?;
        match packed.unpack() {
            Ok(k) => Some(k),
            Err(e) => {
                tracing::warn!(message = "stored state unreadable; treating the resource as unknown", error = %e);
                self.metrics.state_errors.inc();
                None
            }
        }
    }

    /// Applies a PATCH to the known state with the RFC 7644 engine; `None`
    /// when the engine refuses what the service provider accepted.
    fn apply_patch(&self, event: &AuditEvent, before: &Value, request: &Value) -> Option<Value> {
        let schema = ResourceSchema::for_type(&event.resource.kind);
        match scim::apply(before, request, schema, &self.patch_options) {
            Ok(after) => Some(after),
            Err(e) => {
                tracing::debug!(message = "PATCH not applied; diff is partial", event_id = %event.event_id, scim_type = e.scim_type.as_str(), reason = %e);
                self.metrics
                    .patch_rejected
                    .with_label_values(&[e.scim_type.as_str()])
                    .inc();
                None
            }
        }
    }

    /// Computes the enrichment of one event and advances the state.
    pub fn enrich(&mut self, event: AuditEvent, partition: i32) -> EnrichedAuditEvent {
        self.enrich_with_state(event, partition).0
    }

    /// [`Enricher::enrich`], also saying what happened to the stored state
    /// (for the changelog).
    pub fn enrich_with_state(
        &mut self,
        event: AuditEvent,
        partition: i32,
    ) -> (EnrichedAuditEvent, StateChange) {
        let now = (self.clock)();
        let key = event.partition_key();
        let known = self.known(&key);
        let before = known.as_ref().map(|k| &k.resource);
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

        let success = event.outcome == Outcome::Success;
        let is_write = success && event.action.is_write();
        let mut partial = false;
        let mut drift = Vec::new();
        let after: Option<Value> = if !success {
            // A failed or unconfirmed request changed nothing we can know of.
            before.cloned()
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
                AuditAction::Patch => {
                    let computed = match (before, &req) {
                        (Some(b), Some(p)) => self.apply_patch(&event, b, p),
                        _ => None,
                    };
                    match (computed, resp) {
                        // The service provider's answer is authoritative; where
                        // it differs from what the request should have done,
                        // that is drift worth recording.
                        (Some(c), Some(r)) => {
                            drift = diff(Some(&c), Some(&r), &self.config.ignored_attributes);
                            Some(r)
                        }
                        (Some(c), None) => Some(c),
                        (None, Some(r)) => {
                            partial = before.is_none();
                            Some(r)
                        }
                        (None, None) => {
                            partial = true;
                            None
                        }
                    }
                }
                AuditAction::Delete => {
                    partial = before.is_none();
                    None
                }
                AuditAction::Read | AuditAction::AccessDenied | AuditAction::Other => {
                    before.cloned()
                }
            }
        };

        let changes = if is_write {
            if partial && event.action == AuditAction::Patch {
                // Unknown before: what the request asked for is all we know
                // of the change, even when the answer shows the whole
                // resource after it.
                patch_intent(req.as_ref())
            } else {
                let known_before = if partial { None } else { before };
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
            self.metrics
                .partial
                .with_label_values(&[event.action.as_str()])
                .inc();
        }

        let mut facts = flags::derive(
            &Subject {
                action: event.action,
                resource_type: &event.resource.kind,
                resource_id: event.resource.id.as_deref(),
                display_name: event.resource.display_name.as_deref(),
                before: if partial { None } else { before },
                after: after.as_ref(),
                changes: &changes,
                partial,
            },
            &self.config.privileged,
        );
        if !drift.is_empty() {
            self.metrics.drift.inc();
            facts.flags.push(EventFlag::Drift);
        }
        let actor = self.actor(&event, &mut facts.flags);
        facts.flags.sort();
        facts.flags.dedup();

        // Lineage: who set each changed attribute before this event, then
        // this event becomes the setter of each.
        let origin = Origin {
            event_id: event.event_id.clone(),
            event_time: event.event_time,
            source_system: event.source.system.clone(),
            principal_id: event.principal.id.clone(),
        };
        let prior = known.as_ref().filter(|_| !partial).map(|k| &k.lineage);
        let lineage = prior.map_or_else(Vec::new, |l| lineage_of(&changes, l));

        let state_change = if !is_write {
            StateChange::Unchanged
        } else {
            match (&event.action, &after) {
                (AuditAction::Delete, _) | (_, None) => {
                    // Deleted, or the state can no longer be trusted.
                    if self.state.remove(&key).is_some() {
                        StateChange::Delete
                    } else {
                        StateChange::Unchanged
                    }
                }
                (_, Some(a)) => {
                    let mut next: BTreeMap<String, Origin> = prior.cloned().unwrap_or_default();
                    for c in &changes {
                        next.insert(attribute_of(&c.path), origin.clone());
                    }
                    let known = Known {
                        resource: a.clone(),
                        lineage: next,
                    };
                    match Packed::pack(&known) {
                        Ok(packed) => {
                            self.state.insert(key, partition, packed.clone());
                            StateChange::Put(packed)
                        }
                        Err(e) => {
                            tracing::warn!(message = "resource state not stored", error = %e);
                            self.metrics.state_errors.inc();
                            self.state.remove(&key);
                            StateChange::Delete
                        }
                    }
                }
            }
        };
        self.metrics.resources.set(self.state.len() as i64);

        let snap = |v: Option<&Value>| {
            if self.config.include_snapshots {
                v.map(Value::to_string)
            } else {
                None
            }
        };
        let trace = Trace {
            source_system: event.source.system.clone(),
            target_system: event.target.system.clone(),
            correlation_id: event.correlation_id.clone(),
            captured_time: event.event_time,
            ingested_time: event.ingest_time,
            enriched_time: now,
            lineage,
        };
        let enriched = EnrichedAuditEvent {
            before: if is_write && !partial {
                snap(before)
            } else {
                None
            },
            after: if is_write { snap(after.as_ref()) } else { None },
            enriched_time: now,
            changes,
            partial,
            // Linked by `process`, which knows the output partition.
            chain: None,
            actor,
            flags: facts.flags,
            privileged: facts.privileged,
            memberships: facts.memberships,
            drift,
            trace: Some(trace),
            event,
        };
        (enriched, state_change)
    }

    fn actor(&self, event: &AuditEvent, flags: &mut Vec<EventFlag>) -> Option<Actor> {
        let roles = self.roles.as_ref()?;
        let dir = roles.current();
        let entry = dir.lookup(&event.principal.id);
        if entry.is_none() {
            flags.push(EventFlag::UnknownPrincipal);
            self.metrics.unknown_principals.inc();
        }
        Some(Actor {
            principal_id: event.principal.id.clone(),
            display_name: entry.and_then(|e| e.display_name.clone()),
            roles: entry.map(|e| e.roles.clone()).unwrap_or_default(),
        })
    }
}

/// For each changed attribute, the event that set it before (the closest
/// enclosing attribute's setter when the attribute itself has none).
fn lineage_of(
    changes: &[AttributeChange],
    prior: &BTreeMap<String, Origin>,
) -> Vec<AttributeOrigin> {
    let mut out: Vec<AttributeOrigin> = Vec::new();
    for c in changes {
        let attr = attribute_of(&c.path);
        if out.iter().any(|o| o.path == attr) {
            continue;
        }
        let mut probe = attr.as_str();
        let found = loop {
            if let Some(o) = prior.get(probe) {
                break Some(o);
            }
            match probe.rfind('.') {
                Some(i) => probe = &probe[..i],
                None => break None,
            }
        };
        if let Some(o) = found {
            out.push(AttributeOrigin {
                path: attr,
                event_id: o.event_id.clone(),
                event_time: o.event_time,
                source_system: o.source_system.clone(),
                principal_id: o.principal_id.clone(),
            });
        }
    }
    out
}

/// Changes a PATCH asked for, when the resource it applied to is unknown: each
/// operation's path and value, nothing invented about the state before.
/// Values added to or removed from a multi-valued attribute are listed per
/// element (`members[value eq "u1"]`), as a full diff would name them.
fn patch_intent(req: Option<&Value>) -> Vec<AttributeChange> {
    let Some(ops) = req
        .and_then(|r| {
            r.as_object()?
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("Operations"))
                .map(|(_, v)| v)
        })
        .and_then(Value::as_array)
    else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for op in ops {
        let Some(kind) = op
            .get("op")
            .and_then(Value::as_str)
            .map(str::to_ascii_lowercase)
        else {
            continue;
        };
        let path = op.get("path").and_then(Value::as_str).unwrap_or("");
        let value = op.get("value");
        let elements = value
            .and_then(Value::as_array)
            .filter(|items| !path.contains('[') && items.iter().all(|i| i.get("value").is_some()));
        match (kind.as_str(), elements) {
            ("add", Some(items)) | ("remove", Some(items)) => {
                for item in items {
                    let id = item.get("value").map(Value::to_string).unwrap_or_default();
                    let (before, after, k) = if kind == "add" {
                        (None, Some(item.to_string()), ChangeKind::Added)
                    } else {
                        (Some(item.to_string()), None, ChangeKind::Removed)
                    };
                    out.push(AttributeChange {
                        path: format!("{path}[value eq {id}]"),
                        kind: k,
                        before,
                        after,
                    });
                }
            }
            ("remove", _) => out.push(AttributeChange {
                path: path.to_string(),
                kind: ChangeKind::Removed,
                before: None,
                after: None,
            }),
            _ => out.push(AttributeChange {
                path: path.to_string(),
                kind: ChangeKind::Changed,
                before: None,
                after: value.map(Value::to_string),
            }),
        }
    }
    out
}

impl Stage for Enricher {
    fn process(
        &mut self,
        record: &InputRecord<'_>,
        out: &mut Vec<Output>,
    ) -> Result<(), StageError> {
        let event = record.decode(&self.codecs.audit_event, "an AuditEvent")?;
        let key = event.partition_key();
        let partition = record.partition;
        let (mut enriched, state_change) = self.enrich_with_state(event, partition);
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
        out.push(
            Output::keyed(self.output_topic.clone(), key.clone(), bytes).on_partition(partition),
        );
        match state_change {
            StateChange::Unchanged => {}
            StateChange::Put(packed) => out.push(
                Output::keyed(
                    self.changelog_topic.clone(),
                    key,
                    packed.as_bytes().to_vec(),
                )
                .on_partition(partition),
            ),
            StateChange::Delete => out
                .push(Output::tombstone(self.changelog_topic.clone(), key).on_partition(partition)),
        }
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
        self.metrics.resources.set(self.state.len() as i64);
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
        self.metrics.resources.set(self.state.len() as i64);
    }

    fn resumes_from(&self) -> Option<String> {
        Some(self.output_topic.clone())
    }

    /// Restores the partition's resource state from its changelog, then
    /// continues the chain of output partition `partition` from its last
    /// committed link, reading back from the end in growing spans.
    fn resume(&mut self, partition: i32, tail: &mut dyn Tail) -> Result<(), String> {
        self.restore_state(partition, tail)?;
        self.resume_chain(partition, tail)
    }
}

impl Enricher {
    fn restore_state(&mut self, partition: i32, tail: &mut dyn Tail) -> Result<(), String> {
        let started = std::time::Instant::now();
        let topic = self.changelog_topic.clone();
        let mut bad_keys = 0u64;
        let state = &mut self.state;
        let before = state.len();
        // Later records of a key replace earlier ones and tombstones delete
        // it: the log, replayed in order, ends in the committed state.
        let read = tail.scan(&topic, &mut |key, payload| {
            let Some(key) = key.and_then(|k| std::str::from_utf8(k).ok()) else {
                bad_keys += 1;
                return;
            };
            match payload {
                Some(bytes) => state.insert(key.to_string(), partition, Packed::from_bytes(bytes)),
                None => {
                    state.remove(&key.to_string());
                }
            }
        })?;
        self.state.commit();
        let live = self.state.len().saturating_sub(before);
        self.metrics.restored.inc_by(read);
        self.metrics
            .restore_seconds
            .observe(started.elapsed().as_secs_f64());
        self.metrics.resources.set(self.state.len() as i64);
        if bad_keys > 0 {
            tracing::warn!(
                message = "changelog records without a UTF-8 key skipped",
                partition,
                count = bad_keys
            );
        }
        tracing::info!(
            message = "resource state restored",
            partition,
            records = read,
            resources = live,
            seconds = started.elapsed().as_secs_f64()
        );
        Ok(())
    }

    fn resume_chain(&mut self, partition: i32, tail: &mut dyn Tail) -> Result<(), String> {
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
            "changelog".into(),
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
        assert_eq!(out.len(), 2, "the event and its resource's new state");
        assert_eq!(out[1].topic, "changelog");
        assert_eq!(out[1].partition, Some(2));
        assert_eq!(out[1].key.as_deref(), Some(ev.partition_key().as_bytes()));
        let known = Packed::from_bytes(out[1].payload.as_deref().expect("state"))
            .unpack()
            .expect("unpack");
        assert_eq!(known.resource, json!({"id": "u1"}));
        assert_eq!(out[0].partition, Some(2));
        let back = codecs
            .enriched
            .decode(out[0].payload.as_deref().expect("payload"))
            .expect("decode");
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

    /// A changelog and an output partition held in memory.
    struct FakeTail {
        changelog: Vec<(Vec<u8>, Option<Vec<u8>>)>,
        output: Vec<Vec<u8>>,
    }

    impl Tail for FakeTail {
        fn last(&mut self, span: i64) -> Result<(Vec<Vec<u8>>, bool), String> {
            let from = self.output.len().saturating_sub(span as usize);
            Ok((self.output[from..].to_vec(), from == 0))
        }
        fn scan(
            &mut self,
            topic: &str,
            f: &mut scimtrail_core::kafka::VisitRecord<'_>,
        ) -> Result<u64, String> {
            assert_eq!(topic, "changelog");
            for (k, v) in &self.changelog {
                f(Some(k), v.as_deref());
            }
            Ok(self.changelog.len() as u64)
        }
    }

    fn run(
        en: &mut Enricher,
        ev: &AuditEvent,
        partition: i32,
        tail: &mut FakeTail,
    ) -> EnrichedAuditEvent {
        let codecs = Codecs::single_object().expect("codecs");
        let bytes = codecs.audit_event.encode(ev).expect("encode");
        let mut out = Vec::new();
        en.process(
            &InputRecord {
                topic: "in",
                partition,
                offset: 0,
                key: None,
                payload: Some(&bytes),
                timestamp: None,
            },
            &mut out,
        )
        .expect("processed");
        en.commit();
        for o in out {
            if o.topic == "changelog" {
                tail.changelog.push((o.key.expect("key"), o.payload));
            } else {
                tail.output.push(o.payload.clone().expect("event"));
            }
        }
        codecs
            .enriched
            .decode(tail.output.last().expect("output"))
            .expect("decode")
    }

    #[test]
    fn state_and_lineage_survive_a_restart_through_the_changelog() {
        let mut tail = FakeTail {
            changelog: Vec::new(),
            output: Vec::new(),
        };
        let mut first = enricher();
        let user = json!({"id": "u1", "userName": "bj", "title": "Rep", "active": true});
        run(
            &mut first,
            &event("1", AuditAction::Create, 201, None, Some(user)),
            1,
            &mut tail,
        );
        let gone = {
            let mut e = event(
                "2",
                AuditAction::Create,
                201,
                None,
                Some(json!({"id": "u2"})),
            );
            e.resource.id = Some("u2".into());
            e
        };
        run(&mut first, &gone, 1, &mut tail);
        let mut del = event("3", AuditAction::Delete, 204, None, None);
        del.resource.id = Some("u2".into());
        run(&mut first, &del, 1, &mut tail);
        assert_eq!(
            tail.changelog.last().map(|(_, v)| v.is_none()),
            Some(true),
            "a delete writes a tombstone"
        );

        // A new instance: nothing in memory until the partition is resumed.
        let mut second = enricher();
        second.resume(1, &mut tail).expect("resume");
        assert_eq!(second.state.len(), 1);
        let p = json!({"Operations": [{"op": "replace", "path": "title", "value": "Lead"}]});
        let mut patch = event("4", AuditAction::Patch, 204, Some(p), None);
        patch.source.system = "workday".into();
        let e = run(&mut second, &patch, 1, &mut tail);
        assert!(!e.partial, "state was restored");
        assert_eq!(e.changes[0].before.as_deref(), Some("\"Rep\""));
        assert_eq!(
            e.chain.as_ref().map(|c| c.sequence),
            Some(3),
            "the chain continues"
        );
        let lineage = &e.trace.as_ref().expect("trace").lineage;
        assert_eq!(lineage.len(), 1);
        assert_eq!(
            (
                lineage[0].path.as_str(),
                lineage[0].event_id.as_str(),
                lineage[0].source_system.as_str()
            ),
            ("title", "1", "okta")
        );
        // The next change to the title names the PATCH as its setter.
        let p = json!({"Operations": [{"op": "replace", "path": "title", "value": "Head"}]});
        let e = run(
            &mut second,
            &event("5", AuditAction::Patch, 204, Some(p), None),
            1,
            &mut tail,
        );
        let lineage = &e.trace.as_ref().expect("trace").lineage;
        assert_eq!(
            (
                lineage[0].event_id.as_str(),
                lineage[0].source_system.as_str()
            ),
            ("4", "workday")
        );
    }

    #[test]
    fn a_response_that_disagrees_with_the_request_is_drift() {
        let mut en = enricher();
        en.enrich(
            event(
                "1",
                AuditAction::Create,
                201,
                None,
                Some(json!({"id": "u1", "title": "A", "active": true})),
            ),
            0,
        );
        let p = json!({"Operations": [{"op": "replace", "path": "title", "value": "B"}]});
        // The service provider also turned the user off.
        let resp = json!({"id": "u1", "title": "B", "active": false});
        let e = en.enrich(event("2", AuditAction::Patch, 200, Some(p), Some(resp)), 0);
        assert!(e.flags.contains(&EventFlag::Drift));
        assert!(e.flags.contains(&EventFlag::Deactivated));
        assert_eq!(e.drift.len(), 1);
        assert_eq!(
            (
                e.drift[0].path.as_str(),
                e.drift[0].before.as_deref(),
                e.drift[0].after.as_deref()
            ),
            ("active", Some("true"), Some("false"))
        );
        assert_eq!(e.changes.len(), 2, "the answer is the new state");
    }

    #[test]
    fn actors_get_their_roles_and_unknown_principals_are_flagged() {
        let dir = crate::roles::Directory::parse("principals:\n  okta-provisioner:\n    display_name: Okta\n    roles: [service-connector]\n").expect("dir");
        let mut en = enricher().with_roles(Roles::new(dir));
        let e = en.enrich(event("1", AuditAction::Delete, 204, None, None), 0);
        let actor = e.actor.expect("actor");
        assert_eq!(actor.roles, vec!["service-connector".to_string()]);
        assert_eq!(actor.display_name.as_deref(), Some("Okta"));
        assert!(!e.flags.contains(&EventFlag::UnknownPrincipal));
        let mut ev = event("2", AuditAction::Delete, 204, None, None);
        ev.principal.id = "mallory".into();
        let e = en.enrich(ev, 0);
        assert!(e.flags.contains(&EventFlag::UnknownPrincipal));
        assert!(e.actor.expect("actor").roles.is_empty());
    }

    #[test]
    fn membership_patches_of_unknown_groups_list_each_member() {
        let mut en = enricher();
        let p = json!({"Operations": [
            {"op": "add", "path": "members", "value": [{"value": "u1", "display": "Ann"}, {"value": "u2"}]},
            {"op": "remove", "path": "members[value eq \"u3\"]"}]});
        let mut ev = event("1", AuditAction::Patch, 204, Some(p), None);
        ev.resource.kind = "Group".into();
        ev.resource.id = Some("g1".into());
        let e = en.enrich(ev, 0);
        assert!(e.partial);
        let got: Vec<_> = e
            .memberships
            .iter()
            .map(|m| (m.member_id.as_str(), m.member_name.as_deref(), m.kind))
            .collect();
        assert_eq!(
            got,
            vec![
                ("u1", Some("Ann"), ChangeKind::Added),
                ("u2", None, ChangeKind::Added),
                ("u3", None, ChangeKind::Removed)
            ]
        );
    }

    #[test]
    fn value_filters_apply_and_the_compatibility_switch_decides_on_deviations() {
        let user = json!({"id": "u1", "emails": [{"type": "work", "value": "a@x.test"}, {"type": "home", "value": "h@x.test"}], "active": true});
        let entra = json!({"Operations": [{"op": "Replace", "path": "active", "value": "False"}]});
        let filtered = json!({"Operations": [{"op": "replace", "path": "emails[type eq \"work\"].value", "value": "b@x.test"}]});
        for (compat, entra_applies) in [(PatchCompat::Lenient, true), (PatchCompat::Strict, false)]
        {
            let config = EnricherConfig {
                patch_compat: compat,
                ..EnricherConfig::default()
            };
            let mut en = Enricher::new(
                config,
                Codecs::single_object().expect("codecs"),
                "out".into(),
                "changelog".into(),
                &Registry::new(),
            );
            en.enrich(
                event("1", AuditAction::Create, 201, None, Some(user.clone())),
                0,
            );
            let e = en.enrich(
                event("2", AuditAction::Patch, 204, Some(filtered.clone()), None),
                0,
            );
            assert_eq!(
                paths(&e),
                vec![(
                    r#"emails[type eq "work"].value"#.to_string(),
                    ChangeKind::Changed
                )]
            );
            let e = en.enrich(
                event("3", AuditAction::Patch, 204, Some(entra.clone()), None),
                0,
            );
            assert_eq!(e.partial, !entra_applies, "{compat:?}");
            if entra_applies {
                assert_eq!(e.flags, vec![EventFlag::Deactivated]);
            } else {
                assert_eq!(
                    en.metrics
                        .patch_rejected
                        .with_label_values(&["invalidSyntax"])
                        .get()
                        + en.metrics
                            .patch_rejected
                            .with_label_values(&["invalidValue"])
                            .get(),
                    1
                );
            }
        }
    }
}
