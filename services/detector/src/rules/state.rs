//! Per-key state: what the engine holds for one partitioning key (all rules of
//! that partitioning), and its durable encoding.
//!
//! **Wire format, version 1**: one byte `1`, then JSON of [`WireKey`] (short
//! field names; rules named by id and definition fingerprint, so state read
//! back under changed rules is dropped rule by rule rather than misread).
//!
//! **Memory.** A million keys must fit in 512 MiB, so the layout is tight:
//! strings that repeat across keys (principals, targets, resource types) are
//! interned `Arc<str>`s, ids are `Box<str>`, lists are `Vec`s shrunk after
//! use, and the last evaluated event is remembered by a hash of its id.

use std::collections::HashSet;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use scimtrail_core::schema::{AuditAction, EnrichedAuditEvent, EventFlag};

use super::config::Rule;

pub(crate) const WIRE_VERSION: u8 = 1;
/// The same JSON, zstd-compressed: used for entries larger than
/// [`COMPRESS_ABOVE`] (busy keys hold thousands of window entries, whose
/// JSON repeats itself).
pub(crate) const WIRE_VERSION_ZSTD: u8 = 2;
const COMPRESS_ABOVE: usize = 512;

/// Bits of [`Info::bits`].
pub(crate) mod bits {
    pub const DEACTIVATED: u8 = 1;
    pub const ACTIVATED: u8 = 2;
    pub const IDENTITY: u8 = 4;
    pub const PRIVILEGED: u8 = 8;
    pub const FAILED: u8 = 16;
    pub const MEMBERS_ADDED: u8 = 32;
    pub const MEMBERS_REMOVED: u8 = 64;
}

/// What the engine keeps of one event: enough for evidence and summaries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Info {
    #[serde(rename = "t")]
    pub time: i64,
    #[serde(rename = "i")]
    pub id: Box<str>,
    #[serde(rename = "a")]
    pub action: AuditAction,
    #[serde(rename = "b", default)]
    pub bits: u8,
    #[serde(rename = "p")]
    pub principal: Arc<str>,
    #[serde(rename = "s")]
    pub target: Arc<str>,
    #[serde(rename = "y")]
    pub rtype: Arc<str>,
    /// userName, displayName or id of the resource.
    #[serde(rename = "n", default, skip_serializing_if = "Option::is_none")]
    pub name: Option<Box<str>>,
}

impl Info {
    pub(crate) fn of(e: &EnrichedAuditEvent, strings: &mut Interner) -> Info {
        let ev = &e.event;
        let mut b = 0u8;
        for f in &e.flags {
            b |= match f {
                EventFlag::Deactivated => bits::DEACTIVATED,
                EventFlag::Activated => bits::ACTIVATED,
                EventFlag::IdentityChange => bits::IDENTITY,
                EventFlag::Privileged => bits::PRIVILEGED,
                _ => 0,
            };
        }
        if ev.outcome == scimtrail_core::schema::Outcome::Failure {
            b |= bits::FAILED;
        }
        for m in &e.memberships {
            b |= match m.kind {
                scimtrail_core::schema::ChangeKind::Added => bits::MEMBERS_ADDED,
                scimtrail_core::schema::ChangeKind::Removed => bits::MEMBERS_REMOVED,
                scimtrail_core::schema::ChangeKind::Changed => 0,
            };
        }
        Info {
            time: ev.event_time,
            id: ev.event_id.as_str().into(),
            action: ev.action,
            bits: b,
            principal: strings.get(&ev.principal.id),
            target: strings.get(&ev.target.system),
            rtype: strings.get(&ev.resource.kind),
            name: ev
                .resource
                .user_name
                .as_deref()
                .or(ev.resource.display_name.as_deref())
                .or(ev.resource.id.as_deref())
                .map(Into::into),
        }
    }

    /// The order events are evaluated in: event time, then a hash of the
    /// id (then the id): the same for every arrival order.
    pub(crate) fn order(&self) -> (i64, u64, &str) {
        (self.time, id_hash(&self.id), &self.id)
    }

    fn intern(&mut self, strings: &mut Interner) {
        self.principal = strings.get(&self.principal);
        self.target = strings.get(&self.target);
        self.rtype = strings.get(&self.rtype);
    }
}

/// FNV-1a, 64 bits: a hash of an event id that is the same in every process
/// and version (unlike `std`'s hasher).
pub(crate) fn id_hash(id: &str) -> u64 {
    id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// One shared copy of each principal, target and resource type name.
#[derive(Debug, Default)]
pub(crate) struct Interner(HashSet<Arc<str>>);

impl Interner {
    pub(crate) fn get(&mut self, s: &str) -> Arc<str> {
        if let Some(a) = self.0.get(s) {
            return Arc::clone(a);
        }
        let a: Arc<str> = Arc::from(s);
        self.0.insert(Arc::clone(&a));
        a
    }

    /// Forgets the names no state refers to any more.
    pub(crate) fn trim(&mut self) {
        self.0.retain(|a| Arc::strong_count(a) > 1);
    }
}

/// What a rule saw in one event, decided when the event arrived (conditions
/// need the whole event; the state only this).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) enum Obs {
    /// Single-event kinds: the event is a hit; `note` says why (policy
    /// reason, local time, new values).
    #[serde(rename = "h")]
    Hit {
        #[serde(rename = "n", default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
    /// threshold: a matching event, with its `distinct` values.
    #[serde(rename = "c")]
    Count {
        #[serde(rename = "v", default, skip_serializing_if = "Vec::is_empty")]
        values: Vec<String>,
    },
    /// error_rate: a request, failed or not.
    #[serde(rename = "r")]
    Rate {
        #[serde(rename = "f")]
        failed: bool,
    },
    /// match with a sequence: which steps the event matches.
    #[serde(rename = "q")]
    Seq {
        #[serde(rename = "a")]
        first: bool,
        #[serde(rename = "b")]
        then: bool,
    },
    /// new_value: the field's values in the event.
    #[serde(rename = "v")]
    Values {
        #[serde(rename = "v")]
        values: Vec<String>,
    },
}

/// An event waiting for the watermark, with what each rule saw in it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Pending {
    pub info: Info,
    /// (index of the rule in the rule set, observation).
    pub obs: Vec<(u32, Obs)>,
}

/// An event counted by a threshold or error_rate window: an [`Info`]
/// without the resource name (windows hold the most events; summaries of
/// counts do not name resources).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Mark {
    #[serde(rename = "t")]
    pub time: i64,
    #[serde(rename = "i")]
    id: Box<str>,
    #[serde(rename = "a")]
    action: AuditAction,
    #[serde(rename = "b", default)]
    bits: u8,
    #[serde(rename = "p")]
    principal: Arc<str>,
    #[serde(rename = "s")]
    target: Arc<str>,
    #[serde(rename = "y")]
    rtype: Arc<str>,
    /// `distinct` values (threshold) or `["x"]` for a failure (error_rate).
    #[serde(rename = "v", default, skip_serializing_if = "<[_]>::is_empty")]
    pub values: Box<[Box<str>]>,
}

impl Mark {
    pub(crate) fn new(i: &Info, values: Box<[Box<str>]>) -> Mark {
        Mark {
            time: i.time,
            id: i.id.clone(),
            action: i.action,
            bits: i.bits,
            principal: Arc::clone(&i.principal),
            target: Arc::clone(&i.target),
            rtype: Arc::clone(&i.rtype),
            values,
        }
    }

    /// The event as an [`Info`] (for an alert's text).
    pub(crate) fn info(&self) -> Info {
        Info {
            time: self.time,
            id: self.id.clone(),
            action: self.action,
            bits: self.bits,
            principal: Arc::clone(&self.principal),
            target: Arc::clone(&self.target),
            rtype: Arc::clone(&self.rtype),
            name: None,
        }
    }

    fn intern(&mut self, strings: &mut Interner) {
        self.principal = strings.get(&self.principal);
        self.target = strings.get(&self.target);
        self.rtype = strings.get(&self.rtype);
    }
}

/// Deduplication: alerts of one rule and key are raised at most once per
/// suppression period; the crossings in between are counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Dedup {
    #[serde(rename = "u")]
    pub suppressed_until: i64,
    #[serde(rename = "c", default)]
    pub suppressed: u64,
}

impl Default for Dedup {
    fn default() -> Self {
        Dedup {
            suppressed_until: i64::MIN,
            suppressed: 0,
        }
    }
}

impl Dedup {
    /// Nothing to remember any more at `now`.
    pub(crate) fn idle(&self, now: i64) -> bool {
        self.suppressed == 0 && now >= self.suppressed_until
    }
}

/// A rule's state for one key, by kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Body {
    /// Single-event kinds keep nothing but the dedup state.
    #[serde(rename = "n")]
    None,
    /// threshold and error_rate: the uncounted events of the window, oldest first.
    #[serde(rename = "w")]
    Window(Vec<Mark>),
    /// sequences: events that matched `first` within `within`, oldest first.
    #[serde(rename = "q")]
    Firsts(Vec<Info>),
    /// new_value: (value, last seen), sorted by value.
    #[serde(rename = "v")]
    Seen(Vec<(Box<str>, i64)>),
}

impl Body {
    fn is_empty(&self) -> bool {
        match self {
            Body::None => true,
            Body::Window(m) => m.is_empty(),
            Body::Firsts(f) => f.is_empty(),
            Body::Seen(s) => s.is_empty(),
        }
    }

    fn shrink(&mut self) {
        fn tight<T>(v: &mut Vec<T>) {
            if v.capacity() > v.len() + v.len() / 4 + 1 {
                v.shrink_to_fit();
            }
        }
        match self {
            Body::None => {}
            Body::Window(m) => tight(m),
            Body::Firsts(f) => tight(f),
            Body::Seen(s) => tight(s),
        }
    }

    fn intern(&mut self, strings: &mut Interner) {
        match self {
            Body::Window(m) => m.iter_mut().for_each(|m| m.intern(strings)),
            Body::Firsts(f) => f.iter_mut().for_each(|i| i.intern(strings)),
            Body::None | Body::Seen(_) => {}
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RuleState {
    /// Index of the rule in the current rule set.
    pub rule: u32,
    pub dedup: Dedup,
    pub body: Body,
}

impl RuleState {
    pub(crate) fn new(rule: u32) -> Self {
        RuleState {
            rule,
            dedup: Dedup::default(),
            body: Body::None,
        }
    }

    pub(crate) fn is_idle(&self, now: i64) -> bool {
        self.body.is_empty() && self.dedup.idle(now)
    }
}

/// Everything held for one partitioning key.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct KeyState {
    /// Newest event time seen for the key (for shedding the oldest keys).
    pub newest: i64,
    /// The last event evaluated, as (time, hash of id), or [`NOT_YET`]: an
    /// event at or before it in evaluation order is late. (Not an `Option`:
    /// eight bytes less per key.)
    pub done: (i64, u64),
    /// Events not evaluated yet, in evaluation order.
    pub pending: Vec<Pending>,
    pub rules: Vec<RuleState>,
}

/// `KeyState::done` of a key that has evaluated nothing yet.
pub(crate) const NOT_YET: (i64, u64) = (i64::MIN, 0);

impl Default for KeyState {
    fn default() -> Self {
        KeyState {
            newest: i64::MIN,
            done: NOT_YET,
            pending: Vec::new(),
            rules: Vec::new(),
        }
    }
}

impl KeyState {
    pub(crate) fn is_empty(&self) -> bool {
        self.pending.is_empty() && self.rules.is_empty()
    }

    pub(crate) fn earliest_pending(&self) -> Option<i64> {
        self.pending.first().map(|p| p.info.time)
    }

    /// Gives back the spare capacity of its lists.
    pub(crate) fn shrink(&mut self) {
        for r in &mut self.rules {
            r.body.shrink();
        }
        if self.rules.capacity() > self.rules.len() {
            self.rules.shrink_to_fit();
        }
        if self.pending.is_empty() && self.pending.capacity() > 0 {
            self.pending = Vec::new();
        }
    }

    pub(crate) fn rule_mut(&mut self, rule: u32) -> &mut RuleState {
        let at = match self.rules.iter().position(|r| r.rule == rule) {
            Some(at) => at,
            None => {
                self.rules.push(RuleState::new(rule));
                self.rules.len() - 1
            }
        };
        &mut self.rules[at]
    }

    /// Remaps rule indices after a rule-set change; `map(old)` is the new
    /// index of a kept rule. Returns whether anything changed.
    pub(crate) fn remap(&mut self, map: &dyn Fn(u32) -> Option<u32>) -> bool {
        let before = (self.rules.clone(), self.pending.clone());
        self.rules.retain_mut(|r| match map(r.rule) {
            Some(n) => {
                r.rule = n;
                true
            }
            None => false,
        });
        for p in self.pending.iter_mut() {
            p.obs.retain_mut(|(r, _)| match map(*r) {
                Some(n) => {
                    *r = n;
                    true
                }
                None => false,
            });
        }
        self.pending.retain(|p| !p.obs.is_empty());
        before != (self.rules.clone(), self.pending.clone())
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct WireKey {
    #[serde(rename = "n")]
    newest: i64,
    #[serde(rename = "d", default, skip_serializing_if = "Option::is_none")]
    done: Option<(i64, u64)>,
    #[serde(rename = "p", default, skip_serializing_if = "Vec::is_empty")]
    pending: Vec<WirePending>,
    #[serde(rename = "r", default, skip_serializing_if = "Vec::is_empty")]
    rules: Vec<WireRule>,
}

#[derive(Debug, Serialize, Deserialize)]
struct WirePending {
    #[serde(rename = "e")]
    info: Info,
    /// (rule id, fingerprint, observation).
    #[serde(rename = "o")]
    obs: Vec<(String, u64, Obs)>,
}

#[derive(Debug, Serialize, Deserialize)]
struct WireRule {
    #[serde(rename = "id")]
    id: String,
    #[serde(rename = "fp")]
    fingerprint: u64,
    #[serde(rename = "d")]
    dedup: Dedup,
    #[serde(rename = "b")]
    body: Body,
}

/// Encodes a key's state with the rule set its indices refer to.
pub(crate) fn encode(state: &KeyState, rules: &[Rule]) -> Vec<u8> {
    let name = |i: u32| {
        rules
            .get(i as usize)
            .map(|r| (r.id.clone(), r.fingerprint))
            .unwrap_or_default()
    };
    let wire = WireKey {
        newest: state.newest,
        done: (state.done != NOT_YET).then_some(state.done),
        pending: state
            .pending
            .iter()
            .map(|p| WirePending {
                info: p.info.clone(),
                obs: p
                    .obs
                    .iter()
                    .map(|(r, o)| {
                        let (id, fp) = name(*r);
                        (id, fp, o.clone())
                    })
                    .collect(),
            })
            .collect(),
        rules: state
            .rules
            .iter()
            .map(|r| {
                let (id, fingerprint) = name(r.rule);
                WireRule {
                    id,
                    fingerprint,
                    dedup: r.dedup,
                    body: r.body.clone(),
                }
            })
            .collect(),
    };
    let mut out = vec![WIRE_VERSION];
    // Serializing plain data structures to a Vec does not fail.
    if serde_json::to_writer(&mut out, &wire).is_err() {
        out.truncate(1);
    }
    if out.len() > COMPRESS_ABOVE {
        if let Ok(packed) = zstd::bulk::compress(&out[1..], 1) {
            let mut z = Vec::with_capacity(packed.len() + 1);
            z.push(WIRE_VERSION_ZSTD);
            z.extend_from_slice(&packed);
            return z;
        }
    }
    out
}

/// Decodes a key's state against `rules`; state of rules that are gone or
/// whose definition changed is dropped.
pub(crate) fn decode(
    bytes: &[u8],
    rules: &[Rule],
    strings: &mut Interner,
) -> Result<KeyState, String> {
    let (&version, body) = bytes
        .split_first()
        .ok_or_else(|| "empty state".to_string())?;
    let unpacked;
    let json = match version {
        WIRE_VERSION => body,
        WIRE_VERSION_ZSTD => {
            unpacked = zstd::stream::decode_all(body)
                .map_err(|e| format!("unreadable compressed state: {e}"))?;
            &unpacked[..]
        }
        _ => {
            return Err(format!(
                "state format version {version} is not known to this scimtrail (it reads {WIRE_VERSION} and {WIRE_VERSION_ZSTD})"
            ))
        }
    };
    let wire: WireKey =
        serde_json::from_slice(json).map_err(|e| format!("unreadable state: {e}"))?;
    let index = |id: &str, fp: u64| -> Option<u32> {
        rules
            .iter()
            .position(|r| r.enabled && r.id == id && r.fingerprint == fp)
            .map(|i| i as u32)
    };
    let mut state = KeyState {
        newest: wire.newest,
        done: wire.done.unwrap_or(NOT_YET),
        pending: Vec::new(),
        rules: Vec::new(),
    };
    for p in wire.pending {
        let obs: Vec<(u32, Obs)> = p
            .obs
            .into_iter()
            .filter_map(|(id, fp, o)| index(&id, fp).map(|i| (i, o)))
            .collect();
        if !obs.is_empty() {
            let mut info = p.info;
            info.intern(strings);
            state.pending.push(Pending { info, obs });
        }
    }
    for r in wire.rules {
        if let Some(i) = index(&r.id, r.fingerprint) {
            let mut body = r.body;
            body.intern(strings);
            state.rules.push(RuleState {
                rule: i,
                dedup: r.dedup,
                body,
            });
        }
    }
    state.shrink();
    Ok(state)
}
