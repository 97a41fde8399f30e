//! The engine: per-key state of every rule, evaluated in event-time order
//! behind a per-partition watermark, following the Kafka transaction.
//!
//! For each (partitioning, partition) the engine keeps the newest event time
//! seen (its *clock*); the watermark is the clock minus the allowed lateness.
//! An arriving event is observed by the rules of its partitioning at once
//! (conditions run on the whole event) and waits, as a small [`Pending`]
//! record, in its key's state until the watermark reaches it; then the rules
//! apply it in event-time order (ties by a hash of the event id). So the
//! alerts do not depend on the arrival order within the lateness, and with a
//! lateness of 0 every event is evaluated as it arrives. An event arriving after its key has
//! evaluated a later one is late: counted in `late_events_total{rule}` and
//! ignored.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use prometheus::{IntCounter, IntCounterVec, IntGauge, Registry};

use scimtrail_core::schema::{Alert, EnrichedAuditEvent, Severity};

use super::alert::{Ctx, Delta};
use super::error::RulesError;
use super::kinds;
use super::state::{self, id_hash, Info, Interner, KeyState, Obs, Pending, NOT_YET};
use super::{view, RuleSet, KEY_SEPARATOR};

/// How often (in event time) state that can no longer matter is swept.
const SWEEP_EVERY_MS: i64 = 10 * 60 * 1000;

/// Engine settings (from the detector's configuration).
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// How far behind the newest event of its partition an event may arrive
    /// and still be evaluated in order, in milliseconds; also how long, in
    /// event time, an alert waits for earlier events to arrive.
    pub allowed_lateness_ms: i64,
    /// Most event ids listed as evidence in one alert.
    pub max_evidence: usize,
    /// Most keys (over all partitionings) held; beyond it the keys with the
    /// oldest newest-event time are shed, loudly.
    pub max_keys: usize,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            allowed_lateness_ms: 30_000,
            max_evidence: 20,
            max_keys: 1_000_000,
        }
    }
}

/// The engine's metrics. Names and labels of the first three are those of the
/// burst rule before it, which dashboards and alert rules use.
#[derive(Clone)]
pub struct EngineMetrics {
    /// `scimtrail_detector_alerts_total{rule,severity}`.
    pub alerts: IntCounterVec,
    /// `scimtrail_detector_alerts_suppressed_total{rule}`.
    pub suppressed: IntCounterVec,
    /// `scimtrail_detector_late_events_total{rule}`.
    pub late: IntCounterVec,
    /// `scimtrail_detector_window_keys`: keys with rule state on this
    /// instance, over all partitionings (the burst rule's gauge, generalised).
    pub state_keys: IntGauge,
    /// `scimtrail_detector_state_shed_total`: keys dropped because more than
    /// `max_keys` were held.
    pub shed: IntCounter,
}

impl EngineMetrics {
    pub fn new(registry: &Registry) -> Self {
        use scimtrail_core::metrics::{counter, counter_vec, gauge};
        EngineMetrics {
            alerts: counter_vec(
                registry,
                "detector",
                "alerts_total",
                "Alerts raised, by rule and severity.",
                &["rule", "severity"],
            ),
            suppressed: counter_vec(
                registry,
                "detector",
                "alerts_suppressed_total",
                "Crossings not raised as alerts because the rule and key alerted within the suppression period, by rule; reported in the next alert.",
                &["rule"],
            ),
            late: counter_vec(
                registry,
                "detector",
                "late_events_total",
                "Events older than the allowed lateness, ignored by the rule, by rule.",
                &["rule"],
            ),
            state_keys: gauge(
                registry,
                "detector",
                "window_keys",
                "Keys (over all partitionings) with rule state on this instance.",
            ),
            shed: counter(
                registry,
                "detector",
                "state_shed_total",
                "Keys whose rule state was dropped because more than the configured maximum were held.",
            ),
        }
    }
}

pub(crate) fn severity_label(s: Severity) -> &'static str {
    match s {
        Severity::Info => "info",
        Severity::Low => "low",
        Severity::Medium => "medium",
        Severity::High => "high",
        Severity::Critical => "critical",
    }
}

#[derive(Debug, Clone)]
struct Slot {
    partition: i32,
    /// Boxed: the map's buckets (about twice as many as keys) stay small.
    state: Box<KeyState>,
}

/// Entry in the index of keys with pending events:
/// (partitioning id, partition, earliest pending time, state key).
type IndexEntry = (String, i32, i64, String);

/// The slots, one map per partitioning: keys without the partitioning id
/// in front (at a million keys, that prefix alone would be 40 MiB).
#[derive(Default)]
struct Keyed {
    /// A B-tree rather than a hash map: no buckets to pay for and a
    /// deterministic iteration order.
    by_pid: BTreeMap<String, BTreeMap<Box<str>, Slot>>,
    len: usize,
}

fn split(state_key: &str) -> (&str, &str) {
    state_key
        .split_once(KEY_SEPARATOR)
        .unwrap_or((state_key, ""))
}

fn full_key(pid: &str, key: &str) -> String {
    format!("{pid}{KEY_SEPARATOR}{key}")
}

impl Keyed {
    fn get(&self, k: &str) -> Option<&Slot> {
        let (p, r) = split(k);
        self.by_pid.get(p)?.get(r)
    }

    fn get_mut(&mut self, k: &str) -> Option<&mut Slot> {
        let (p, r) = split(k);
        self.by_pid.get_mut(p)?.get_mut(r)
    }

    fn contains_key(&self, k: &str) -> bool {
        self.get(k).is_some()
    }

    fn insert(&mut self, k: &str, slot: Slot) {
        let (p, r) = split(k);
        let map = self.by_pid.entry(p.to_string()).or_default();
        if map.insert(r.into(), slot).is_none() {
            self.len += 1;
        }
    }

    fn entry_or_insert_with(&mut self, k: &str, slot: impl FnOnce() -> Slot) -> &mut Slot {
        let (p, r) = split(k);
        let map = self.by_pid.entry(p.to_string()).or_default();
        if !map.contains_key(r) {
            self.len += 1;
        }
        map.entry(r.into()).or_insert_with(slot)
    }

    fn remove(&mut self, k: &str) -> Option<Slot> {
        let (p, r) = split(k);
        let map = self.by_pid.get_mut(p)?;
        let slot = map.remove(r)?;
        self.len -= 1;
        if map.is_empty() {
            self.by_pid.remove(p);
        }
        Some(slot)
    }

    fn len(&self) -> usize {
        self.len
    }

    fn retain(&mut self, mut keep: impl FnMut(&Slot) -> bool) {
        for map in self.by_pid.values_mut() {
            map.retain(|_, s| keep(s));
        }
        self.by_pid.retain(|_, m| !m.is_empty());
        self.len = self.by_pid.values().map(BTreeMap::len).sum();
    }

    /// (partitioning id, key, slot) of every key, in order.
    fn iter(&self) -> impl Iterator<Item = (&str, &str, &Slot)> {
        self.by_pid
            .iter()
            .flat_map(|(p, m)| m.iter().map(move |(k, s)| (p.as_str(), &**k, s)))
    }
}

/// Keyed state with an undo log (rolled back with an aborted transaction),
/// per-partition ownership, a change log for the changelog topic, and an
/// index of the keys with pending events.
#[derive(Default)]
struct Store {
    map: Keyed,
    undo: HashMap<String, Option<Slot>>,
    dirty: BTreeSet<String>,
    index: BTreeSet<IndexEntry>,
}

/// The partitioning id of a state key.
fn pid_of(state_key: &str) -> &str {
    state_key
        .split_once(KEY_SEPARATOR)
        .map_or(state_key, |(p, _)| p)
}

fn index_entry(k: &str, slot: &Slot) -> Option<IndexEntry> {
    slot.state
        .earliest_pending()
        .map(|t| (pid_of(k).to_string(), slot.partition, t, k.to_string()))
}

impl Store {
    fn get(&self, k: &str) -> Option<&Slot> {
        self.map.get(k)
    }

    fn remember(&mut self, k: &str) {
        if !self.undo.contains_key(k) {
            self.undo.insert(k.to_string(), self.map.get(k).cloned());
        }
    }

    fn unindex(&mut self, k: &str) {
        if let Some(e) = self.map.get(k).and_then(|s| index_entry(k, s)) {
            self.index.remove(&e);
        }
    }

    fn reindex(&mut self, k: &str) {
        if let Some(e) = self.map.get(k).and_then(|s| index_entry(k, s)) {
            self.index.insert(e);
        }
    }

    /// Runs `f` on the state of `k` (empty if absent, then owned by
    /// `partition`); an empty result removes the key.
    fn with<R>(&mut self, k: &str, partition: i32, f: impl FnOnce(&mut KeyState) -> R) -> R {
        let existed = self.map.contains_key(k);
        self.remember(k);
        self.unindex(k);
        let slot = self.map.entry_or_insert_with(k, || Slot {
            partition,
            state: Box::default(),
        });
        let r = f(&mut slot.state);
        if slot.state.is_empty() {
            self.map.remove(k);
        } else {
            self.reindex(k);
        }
        if existed || self.map.contains_key(k) {
            self.dirty.insert(k.to_string());
        }
        r
    }

    fn remove(&mut self, k: &str) {
        if self.map.contains_key(k) {
            self.remember(k);
            self.unindex(k);
            self.map.remove(k);
            self.dirty.insert(k.to_string());
        }
    }

    /// Restored from the changelog: committed already, so neither undone nor
    /// written back.
    fn insert_committed(&mut self, k: &str, slot: Slot) {
        self.unindex(k);
        self.map.insert(k, slot);
        self.reindex(k);
    }

    fn commit(&mut self) {
        self.undo.clear();
    }

    fn rollback(&mut self) {
        let undo: Vec<(String, Option<Slot>)> = self.undo.drain().collect();
        for (k, prior) in undo {
            self.unindex(&k);
            self.map.remove(&k);
            if let Some(slot) = prior {
                self.map.insert(&k, slot);
                self.reindex(&k);
            }
            // Written again at the next take: its current value is what the
            // committed changelog holds, so rewriting it is harmless.
            self.dirty.insert(k);
        }
    }

    fn drop_partitions(&mut self, gone: &HashSet<i32>) {
        self.map.retain(|s| !gone.contains(&s.partition));
        self.index.retain(|(_, p, _, _)| !gone.contains(p));
        let map = &self.map;
        self.dirty.retain(|k| map.contains_key(k.as_str()));
        self.undo.clear();
    }

    /// Keys of (pid, partition) with an event pending at or before `w`, in
    /// order of their earliest pending event.
    fn pending_keys(&self, pid: &str, partition: i32, w: i64) -> Vec<String> {
        let lo = (pid.to_string(), partition, i64::MIN, String::new());
        let hi = (pid.to_string(), partition, w, char::MAX.to_string());
        self.index
            .range(lo..=hi)
            .map(|(_, _, _, k)| k.clone())
            .collect()
    }
}

/// The rules engine. See the module documentation for its ordering and
/// delivery guarantees.
pub struct Engine {
    rules: Arc<RuleSet>,
    opts: EngineOptions,
    metrics: EngineMetrics,
    store: Store,
    /// Newest event time per (partitioning id, partition).
    clocks: HashMap<(String, i32), i64>,
    clock_undo: HashMap<(String, i32), Option<i64>>,
    /// Metric changes of the open transaction.
    deltas: Vec<Delta>,
    /// Watermark at which the next sweep of expired state runs.
    next_sweep: i64,
    strings: Interner,
}

impl Engine {
    pub fn new(rules: Arc<RuleSet>, opts: EngineOptions, metrics: EngineMetrics) -> Engine {
        let engine = Engine {
            rules,
            opts: EngineOptions {
                max_keys: opts.max_keys.max(1),
                max_evidence: opts.max_evidence.max(1),
                allowed_lateness_ms: opts.allowed_lateness_ms.max(0),
            },
            metrics,
            store: Store::default(),
            clocks: HashMap::new(),
            clock_undo: HashMap::new(),
            deltas: Vec::new(),
            next_sweep: i64::MIN,
            strings: Interner::default(),
        };
        engine.init_labels();
        engine
    }

    /// Creates each enabled rule's series at 0, so `increase()` sees its
    /// first alert.
    fn init_labels(&self) {
        for r in self.rules.rules().filter(|r| r.enabled) {
            self.metrics
                .alerts
                .with_label_values(&[r.id.as_str(), severity_label(r.severity)]);
            self.metrics.suppressed.with_label_values(&[r.id.as_str()]);
            self.metrics.late.with_label_values(&[r.id.as_str()]);
        }
    }

    /// The rules in use.
    pub fn rules(&self) -> &Arc<RuleSet> {
        &self.rules
    }

    /// The allowed lateness in milliseconds.
    pub fn allowed_lateness_ms(&self) -> i64 {
        self.opts.allowed_lateness_ms
    }

    /// Keys with state held (over all partitionings).
    pub fn state_keys(&self) -> usize {
        self.store.map.len()
    }

    /// Hot reload. The state of rules whose id and definition (everything but
    /// title, description, runbook and labels) are unchanged is kept; the
    /// state of other rules is dropped, and keys of partitionings no longer
    /// used are deleted (written as tombstones by the next
    /// [`Engine::take_changes`]). Rules added start with the next event.
    pub fn set_rules(&mut self, rules: Arc<RuleSet>) {
        let old = Arc::clone(&self.rules);
        let map: Vec<Option<u32>> = old
            .all()
            .iter()
            .map(|r| {
                rules
                    .all()
                    .iter()
                    .position(|n| n.enabled && n.id == r.id && n.fingerprint == r.fingerprint)
                    .map(|i| i as u32)
            })
            .collect();
        let remap = |i: u32| map.get(i as usize).copied().flatten();
        let keys: Vec<String> = self
            .store
            .map
            .iter()
            .map(|(p, k, _)| full_key(p, k))
            .collect();
        for k in keys {
            let in_use = rules.partitioning(pid_of(&k)).is_some();
            self.store.unindex(&k);
            let Some(slot) = self.store.map.get_mut(&k) else {
                continue;
            };
            let changed = if in_use {
                slot.state.remap(&remap)
            } else {
                *slot.state = KeyState::default();
                true
            };
            if slot.state.is_empty() {
                self.store.map.remove(&k);
            } else {
                self.store.reindex(&k);
            }
            if changed {
                self.store.dirty.insert(k);
            }
        }
        // Keep a rollback after the reload consistent with the new indices.
        for slot in self.store.undo.values_mut().flatten() {
            slot.state.remap(&remap);
        }
        let undo = std::mem::take(&mut self.store.undo);
        self.store.undo = undo
            .into_iter()
            .map(|(k, v)| (k, v.filter(|s| !s.state.is_empty())))
            .collect();
        self.clocks
            .retain(|(pid, _), _| rules.partitioning(pid).is_some());
        self.rules = rules;
        self.init_labels();
        self.metrics.state_keys.set(self.store.map.len() as i64);
    }

    /// Feeds one event routed under `key` of `partitioning`, read from input
    /// partition `partition`. Returns the alerts that became final: this
    /// event's and those of any key of the partition whose pending events the
    /// advancing watermark reached (in event-time order per key).
    pub fn process(
        &mut self,
        partition: i32,
        partitioning: &str,
        key: &str,
        event: &EnrichedAuditEvent,
    ) -> Vec<Alert> {
        let t = event.event.event_time;
        self.process_at(partition, partitioning, key, event, t)
    }

    /// [`Engine::process`] with the partition's clock given by the caller
    /// rather than taken from the event: a watermark that is the minimum over
    /// the input's source partitions, so an event from a source that lags
    /// the others is not late merely because another source is ahead.
    pub fn process_at(
        &mut self,
        partition: i32,
        partitioning: &str,
        key: &str,
        event: &EnrichedAuditEvent,
        clock: i64,
    ) -> Vec<Alert> {
        let rules = Arc::clone(&self.rules);
        let Some((_, members)) = rules.partitioning(partitioning) else {
            tracing::debug!(
                message = "event for a partitioning no rule uses",
                partitioning
            );
            return Vec::new();
        };
        let view = view::of(event);
        let obs: Vec<(u32, Obs)> = members
            .iter()
            .filter_map(|&i| {
                let rule = rules.all().get(i as usize)?;
                kinds::observe(rule, event, &view).map(|o| (i, o))
            })
            .collect();
        let t = event.event.event_time;
        if !obs.is_empty() {
            let sk = format!("{partitioning}{KEY_SEPARATOR}{key}");
            let id = event.event.event_id.as_str();
            let hash = id_hash(id);
            let late = self
                .store
                .get(&sk)
                .is_some_and(|s| s.state.done != NOT_YET && (t, hash) <= s.state.done);
            if late {
                for (i, _) in &obs {
                    if let Some(r) = rules.all().get(*i as usize) {
                        self.deltas.push(Delta::Late { rule: r.id.clone() });
                    }
                }
            } else {
                let info = Info::of(event, &mut self.strings);
                self.store.with(&sk, partition, move |st| {
                    if st.pending.is_empty() && st.rules.is_empty() && st.done == NOT_YET {
                        st.newest = t;
                    }
                    st.newest = st.newest.max(t);
                    let order = (t, hash, id);
                    let at = st.pending.partition_point(|p| p.info.order() < order);
                    let duplicate = st.pending.get(at).is_some_and(|p| p.info.order() == order);
                    if !duplicate {
                        st.pending.insert(at, Pending { info, obs });
                    }
                });
            }
        }
        let mut alerts = Vec::new();
        self.advance(partition, partitioning, clock, &mut alerts);
        self.shed_if_needed();
        self.metrics.state_keys.set(self.store.map.len() as i64);
        alerts
    }

    /// Moves the clock of (partitioning, partition) to at least `event_time`
    /// without an event — for a heartbeat or an idle partition — and returns
    /// the alerts that became final.
    pub fn advance_watermark(
        &mut self,
        partition: i32,
        partitioning: &str,
        event_time: i64,
    ) -> Vec<Alert> {
        let mut alerts = Vec::new();
        if self.rules.partitioning(partitioning).is_some() {
            self.advance(partition, partitioning, event_time, &mut alerts);
            self.metrics.state_keys.set(self.store.map.len() as i64);
        }
        alerts
    }

    fn advance(&mut self, partition: i32, pid: &str, t: i64, alerts: &mut Vec<Alert>) {
        let ck = (pid.to_string(), partition);
        let old = self.clocks.get(&ck).copied();
        let clock = match old {
            Some(o) if o >= t => o,
            _ => {
                self.clock_undo.entry(ck.clone()).or_insert(old);
                self.clocks.insert(ck, t);
                t
            }
        };
        let w = clock.saturating_sub(self.opts.allowed_lateness_ms);
        for k in self.store.pending_keys(pid, partition, w) {
            self.evaluate(&k, partition, w, alerts);
        }
        if w >= self.next_sweep {
            self.sweep();
            self.next_sweep = (w / SWEEP_EVERY_MS + 1).saturating_mul(SWEEP_EVERY_MS);
        }
    }

    /// Applies the pending events of `k` up to `w`, in order.
    fn evaluate(&mut self, k: &str, partition: i32, w: i64, alerts: &mut Vec<Alert>) {
        let rules = Arc::clone(&self.rules);
        let group = group_pairs(&rules, k);
        let max_evidence = self.opts.max_evidence;
        let Engine { store, deltas, .. } = self;
        store.with(k, partition, |st| {
            let due = st.pending.partition_point(|p| p.info.time <= w);
            let ready: Vec<Pending> = st.pending.drain(..due).collect();
            for p in ready {
                for (ri, obs) in p.obs {
                    let Some(rule) = rules.all().get(ri as usize) else {
                        continue;
                    };
                    let rs = st.rule_mut(ri);
                    kinds::prune(rule, rs, p.info.time);
                    let mut ctx = Ctx {
                        rule,
                        group: &group,
                        max_evidence,
                        deltas,
                    };
                    if let Some(a) = kinds::apply(&mut ctx, rs, &p.info, obs) {
                        alerts.push(a);
                    }
                }
                st.done = (p.info.time, id_hash(&p.info.id));
            }
            if st.done != NOT_YET {
                let now = st.done.0;
                prune_all(&rules, st, now);
            }
            st.shrink();
        });
    }

    /// Drops rule state that cannot matter for events within the lateness
    /// any more (windows slid past, lookbacks expired, suppression over), so
    /// keys that fall silent do not stay in memory.
    fn sweep(&mut self) {
        let rules = Arc::clone(&self.rules);
        let lateness = self.opts.allowed_lateness_ms;
        let due: Vec<(String, i32, i64)> = self
            .store
            .map
            .iter()
            .filter_map(|(pid, k, slot)| {
                let clock = self.clocks.get(&(pid.to_string(), slot.partition))?;
                let w = clock.saturating_sub(lateness);
                let expiry = slot
                    .state
                    .rules
                    .iter()
                    .filter_map(|rs| {
                        rules
                            .all()
                            .get(rs.rule as usize)
                            .map(|r| kinds::expiry(r, rs))
                    })
                    .min()
                    .unwrap_or(i64::MAX);
                (expiry <= w).then(|| (full_key(pid, k), slot.partition, w))
            })
            .collect();
        for (k, partition, w) in due {
            self.store.with(&k, partition, |st| {
                prune_all(&rules, st, w);
                st.shrink();
            });
        }
        self.strings.trim();
    }

    fn shed_if_needed(&mut self) {
        let held = self.store.map.len();
        if held <= self.opts.max_keys {
            return;
        }
        // Shed 5% below the cap, so that shedding is rare and each time
        // frees room for many new keys.
        let target = self.opts.max_keys - self.opts.max_keys / 20;
        let excess = held - target;
        let mut by_age: Vec<(i64, &str, &str)> = self
            .store
            .map
            .iter()
            .map(|(p, k, s)| (s.state.newest, p, k))
            .collect();
        by_age.select_nth_unstable(excess - 1);
        let victims: Vec<String> = by_age[..excess]
            .iter()
            .map(|(_, p, k)| full_key(p, k))
            .collect();
        let newest_shed = by_age[..excess]
            .iter()
            .map(|(t, _, _)| *t)
            .max()
            .unwrap_or_default();
        for k in &victims {
            self.store.remove(k);
        }
        tracing::warn!(
            message = "rule state holds more keys than detector max_keys: shed the oldest",
            shed = excess,
            max_keys = self.opts.max_keys,
            newest_shed_event_time = %view::time_text(newest_shed),
        );
        self.deltas.push(Delta::Shed(excess as u64));
    }

    /// The transaction committed: state changes are final; metrics count them.
    pub fn commit(&mut self) {
        self.store.commit();
        self.clock_undo.clear();
        for d in self.deltas.drain(..) {
            match d {
                Delta::Alert { rule, severity } => self
                    .metrics
                    .alerts
                    .with_label_values(&[rule.as_str(), severity_label(severity)])
                    .inc(),
                Delta::Suppressed { rule } => self
                    .metrics
                    .suppressed
                    .with_label_values(&[rule.as_str()])
                    .inc(),
                Delta::Late { rule } => self.metrics.late.with_label_values(&[rule.as_str()]).inc(),
                Delta::Shed(n) => self.metrics.shed.inc_by(n),
            }
        }
    }

    /// The transaction aborted: state is as at the last commit.
    pub fn rollback(&mut self) {
        self.store.rollback();
        for (ck, prior) in self.clock_undo.drain() {
            match prior {
                Some(t) => {
                    self.clocks.insert(ck, t);
                }
                None => {
                    self.clocks.remove(&ck);
                }
            }
        }
        self.deltas.clear();
        self.metrics.state_keys.set(self.store.map.len() as i64);
    }

    /// The partitions now belong to another instance, which restores their
    /// state from the changelog: drop it here (no tombstones). Call between
    /// transactions.
    pub fn partitions_revoked(&mut self, partitions: &[i32]) {
        let gone: HashSet<i32> = partitions.iter().copied().collect();
        self.store.drop_partitions(&gone);
        self.clocks.retain(|(_, p), _| !gone.contains(p));
        self.clock_undo.clear();
        self.metrics.state_keys.set(self.store.map.len() as i64);
    }

    /// The state entries changed since the last call, in key order: `(state
    /// key, Some(bytes))`, or `None` for a deleted entry (a tombstone). Write
    /// them to the changelog in the transaction that produced them. The state
    /// key is `<partitioning id>` U+001F `<key>`.
    pub fn take_changes(&mut self) -> Vec<(String, Option<Vec<u8>>)> {
        let dirty = std::mem::take(&mut self.store.dirty);
        dirty
            .into_iter()
            .map(|k| {
                let bytes = self
                    .store
                    .get(&k)
                    .map(|s| state::encode(&s.state, self.rules.all()));
                (k, bytes)
            })
            .collect()
    }

    /// Restores one changelog entry of `partition` (on assignment, before its
    /// records are processed). State of rules that changed or are gone, and
    /// of partitionings no rule uses, is dropped (and deleted by the next
    /// [`Engine::take_changes`]). Returns the newest event time the key had
    /// seen, when its state was kept: the caller owns the clock, and must
    /// move it on (e.g. when the partition stays quiet) for the key's
    /// pending events to be evaluated.
    pub fn restore(
        &mut self,
        partition: i32,
        state_key: &str,
        bytes: &[u8],
    ) -> Result<Option<i64>, RulesError> {
        let st =
            state::decode(bytes, self.rules.all(), &mut self.strings).map_err(|m| RulesError {
                origin: "rule state".into(),
                rule_index: None,
                rule_id: None,
                field: Some(format!("{state_key:?}")),
                message: m,
            })?;
        let pid = pid_of(state_key);
        if self.rules.partitioning(pid).is_none() || st.is_empty() {
            self.store.unindex(state_key);
            self.store.map.remove(state_key);
            self.store.dirty.insert(state_key.to_string());
            return Ok(None);
        }
        // The clock is not moved to the key's newest event: other sources of
        // the partition may still be behind it (see `process_at`).
        let newest = st.newest;
        self.store.insert_committed(
            state_key,
            Slot {
                partition,
                state: Box::new(st),
            },
        );
        self.metrics.state_keys.set(self.store.map.len() as i64);
        Ok(Some(newest))
    }
}

/// Prunes every rule state of `st` at `now` and drops the idle ones.
fn prune_all(rules: &RuleSet, st: &mut KeyState, now: i64) {
    st.rules
        .retain_mut(|rs| match rules.all().get(rs.rule as usize) {
            Some(rule) => {
                kinds::prune(rule, rs, now);
                !rs.is_idle(now)
            }
            None => false,
        });
}

/// The (field, value) pairs of a state key's group key.
fn group_pairs(rules: &RuleSet, state_key: &str) -> Vec<(String, String)> {
    let (pid, key) = state_key
        .split_once(KEY_SEPARATOR)
        .unwrap_or((state_key, ""));
    let fields = rules
        .partitioning(pid)
        .map(|(p, _)| p.fields.clone())
        .unwrap_or_default();
    let values: Vec<&str> = key.splitn(fields.len().max(1), KEY_SEPARATOR).collect();
    fields
        .into_iter()
        .zip(values.into_iter().map(str::to_string))
        .collect()
}
