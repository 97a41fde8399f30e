//! Normalising results, classifying disagreements, and the allow-list.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use serde_json::{Map, Value};

/// What an engine answered for one case.
#[derive(Clone, Debug)]
pub enum Outcome {
    Ok(Value),
    /// scimType (or `crash: ...` / `resource: ...` for a broken engine or case).
    Err {
        scim_type: String,
        detail: String,
    },
}

impl Outcome {
    pub fn short(&self) -> String {
        match self {
            Outcome::Ok(_) => "ok".into(),
            Outcome::Err { scim_type, .. } => format!("error:{scim_type}"),
        }
    }

    pub fn is_crash(&self) -> bool {
        matches!(self, Outcome::Err { scim_type, .. } if scim_type.starts_with("crash") || scim_type.starts_with("resource"))
    }

    pub fn display(&self) -> String {
        match self {
            Outcome::Ok(v) => format!(
                "ok {}",
                serde_json::to_string(&normalise(v)).unwrap_or_default()
            ),
            Outcome::Err { scim_type, detail } => {
                format!("error {scim_type}: {}", first_line(detail))
            }
        }
    }

    /// From an oracle's answer line.
    pub fn from_oracle(answer: &Value) -> Outcome {
        if answer.get("ok") == Some(&Value::Bool(true)) {
            Outcome::Ok(answer.get("result").cloned().unwrap_or(Value::Null))
        } else {
            Outcome::Err {
                scim_type: answer
                    .get("error")
                    .and_then(Value::as_str)
                    .unwrap_or("crash: no error")
                    .to_string(),
                detail: answer
                    .get("detail")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
            }
        }
    }
}

fn first_line(s: &str) -> String {
    let line = s.lines().collect::<Vec<_>>().join(" / ");
    if line.chars().count() > 160 {
        line.chars().take(160).collect::<String>() + "…"
    } else {
        line
    }
}

/// The canonical form results are compared in:
/// - `meta` (top level) is dropped: it is the service provider's, readOnly,
///   and each engine treats `lastModified`/`version` its own way;
/// - attribute names are compared case-insensitively (RFC 7643 §2.1): keys are
///   lowercased; two keys that collide once lowercased (an engine that wrote
///   `DisplayName` beside `displayName`) both stay, the second marked, so the
///   result cannot compare equal to one holding a single attribute;
/// - unassigned attributes are dropped: null, `[]` and `{}` are the same state
///   as absence (RFC 7643 §2.5);
/// - `schemas` compares as a set (RFC 7643 §3: a list of URIs, no order);
/// - multi-valued attributes compare as sets of values: RFC 7643 §2.4 gives
///   their values no order, so arrays are sorted by their canonical text.
///
/// Values are never changed: `"Work"` and `"work"` stay different results.
pub fn normalise(result: &Value) -> Value {
    let mut v = result.clone();
    if let Value::Object(o) = &mut v {
        o.retain(|k, _| !k.eq_ignore_ascii_case("meta"));
    }
    canonical(&v).unwrap_or(Value::Object(Map::new()))
}

fn canonical(v: &Value) -> Option<Value> {
    match v {
        Value::Null => None,
        Value::Array(items) => {
            let mut out: Vec<Value> = items.iter().filter_map(canonical).collect();
            if out.is_empty() {
                return None;
            }
            out.sort_by_cached_key(|x| x.to_string());
            Some(Value::Array(out))
        }
        Value::Object(o) => {
            let mut out = Map::new();
            let mut keys: Vec<&String> = o.keys().collect();
            keys.sort();
            for k in keys {
                let Some(c) = canonical(&o[k]) else { continue };
                let mut key = k.to_lowercase();
                while out.contains_key(&key) {
                    key.push_str("#duplicate-attribute");
                }
                out.insert(key, c);
            }
            if out.is_empty() {
                None
            } else {
                Some(Value::Object(out))
            }
        }
        other => Some(other.clone()),
    }
}

/// How two outcomes differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// Both succeeded with different results.
    Result,
    /// One succeeded, the other failed.
    Outcome,
    /// Both failed, with different scimTypes.
    ErrorType,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Result => "result",
            Kind::Outcome => "outcome",
            Kind::ErrorType => "error-type",
        }
    }
}

/// None when the two outcomes agree.
pub fn differ(a: &Outcome, b: &Outcome) -> Option<Kind> {
    match (a, b) {
        (Outcome::Ok(x), Outcome::Ok(y)) => (normalise(x) != normalise(y)).then_some(Kind::Result),
        (Outcome::Err { scim_type: x, .. }, Outcome::Err { scim_type: y, .. }) => {
            (x != y).then_some(Kind::ErrorType)
        }
        _ => Some(Kind::Outcome),
    }
}

/// `deviations.json`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllowList {
    #[serde(rename = "$comment", default)]
    pub _comment: Option<Value>,
    pub deviations: Vec<Deviation>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deviation {
    pub id: String,
    pub oracle: String,
    #[serde(rename = "match")]
    pub matcher: Matcher,
    /// What the oracle does.
    pub oracle_behaviour: String,
    /// What the RFC says, with the section.
    pub rfc: String,
    /// Who is right: "scimtrail", the oracle's name, or "RFC leaves it open".
    pub verdict: String,
    #[serde(default)]
    pub note: Option<String>,
}

/// Which disagreements a deviation explains. Every given field must hold.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Matcher {
    /// The case carries all these tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// The case carries none of these tags.
    #[serde(default)]
    pub not_tags: Vec<String>,
    /// Kinds of disagreement ("result", "outcome", "error-type"); any if empty.
    #[serde(default)]
    pub kind: Vec<String>,
    /// scimtrail's outcome: "ok", "error", or "error:<scimType>"; any if empty.
    /// ("error" never matches an engine that crashed: only "crash" does.)
    #[serde(default)]
    pub scimtrail: Vec<String>,
    /// The oracle's outcome, same forms.
    #[serde(default)]
    pub oracle_outcome: Vec<String>,
}

fn outcome_matches(patterns: &[String], o: &Outcome) -> bool {
    patterns.is_empty()
        || patterns.iter().any(|p| match (p.as_str(), o) {
            ("ok", Outcome::Ok(_)) => true,
            ("crash", o) => o.is_crash(),
            ("error", o @ Outcome::Err { .. }) => !o.is_crash(),
            (p, Outcome::Err { scim_type, .. }) => {
                p.strip_prefix("error:") == Some(scim_type.as_str())
            }
            _ => false,
        })
}

impl Deviation {
    pub fn explains(
        &self,
        oracle: &str,
        tags: &BTreeSet<String>,
        kind: Kind,
        scimtrail: &Outcome,
        theirs: &Outcome,
    ) -> bool {
        let m = &self.matcher;
        // An engine that broke is explained only by an entry that says so.
        let crash_named = m.oracle_outcome.iter().any(|p| p == "crash");
        self.oracle == oracle
            && !scimtrail.is_crash()
            && (!theirs.is_crash() || crash_named)
            && m.tags.iter().all(|t| tags.contains(t))
            && !m.not_tags.iter().any(|t| tags.contains(t))
            && (m.kind.is_empty() || m.kind.iter().any(|k| k == kind.as_str()))
            && outcome_matches(&m.scimtrail, scimtrail)
            && outcome_matches(&m.oracle_outcome, theirs)
    }
}

/// Counts for the summary table.
#[derive(Default, Debug)]
pub struct Tally {
    pub cases: usize,
    /// Per oracle: agreements.
    pub agree: BTreeMap<String, usize>,
    /// Per deviation id: disagreements it explains.
    pub allowed: BTreeMap<String, usize>,
    /// Per oracle: disagreements nothing explains.
    pub unexplained: BTreeMap<String, usize>,
}

/// For two successful results: the top-level attributes (normalised) on
/// which they differ, `name: a | b`, so a report shows the difference rather
/// than two whole resources.
pub fn result_diff(a: &Value, b: &Value) -> String {
    let (a, b) = (normalise(a), normalise(b));
    let empty = Map::new();
    let (ao, bo) = (
        a.as_object().unwrap_or(&empty),
        b.as_object().unwrap_or(&empty),
    );
    let keys: BTreeSet<&String> = ao.keys().chain(bo.keys()).collect();
    let show = |v: Option<&Value>| {
        v.map(Value::to_string)
            .unwrap_or_else(|| "(unassigned)".into())
    };
    keys.into_iter()
        .filter(|k| ao.get(*k) != bo.get(*k))
        .map(|k| format!("{k}: {} | {}", show(ao.get(k)), show(bo.get(k))))
        .collect::<Vec<_>>()
        .join("\n      ")
}
