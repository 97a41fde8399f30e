//! The rules file: its serde types (`deny_unknown_fields` everywhere) and the
//! pure validation step that turns them into [`Rule`]s. Every error names the
//! file, the rule (index and id) and the field; see `docs/rules.md`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use chrono::Weekday;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use scimtrail_core::schema::{AuditAction, Severity};
use scimtrail_core::scim::filter::Expr;
use scimtrail_core::scim::{AttrPath, Filter};

use super::error::RulesError;
use super::view::{self, FieldType};

/// Most fields a rule may group by.
pub const MAX_GROUP_BY: usize = 3;
/// Longest window, lookback or suppression period accepted.
const MAX_DURATION_MS: i64 = 400 * 24 * 3600 * 1000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    /// Format version; only 1 exists.
    #[serde(default)]
    version: Option<u32>,
    rules: Vec<serde_yaml_ng::Value>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    id: String,
    title: String,
    severity: String,
    description: String,
    #[serde(default)]
    runbook_url: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default, rename = "where")]
    condition: Option<String>,
    #[serde(default = "enabled_default")]
    enabled: bool,
    #[serde(default)]
    group_by: Option<Vec<String>>,
    #[serde(default)]
    suppress_for: Option<String>,
    #[serde(default)]
    threshold: Option<RawThreshold>,
    #[serde(default)]
    policy: Option<RawPolicy>,
    #[serde(default, rename = "match")]
    matching: Option<RawMatch>,
    #[serde(default)]
    new_value: Option<RawNewValue>,
    #[serde(default)]
    error_rate: Option<RawErrorRate>,
    #[serde(default)]
    schedule: Option<RawSchedule>,
}

fn enabled_default() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawThreshold {
    more_than: u64,
    window: String,
    #[serde(default)]
    distinct: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawErrorRate {
    window: String,
    ratio: f64,
    min_count: u64,
    #[serde(default)]
    failure: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    roles: BTreeMap<String, RawGrant>,
    #[serde(default)]
    unknown_principal: Option<String>,
    #[serde(default)]
    access_denied: Option<String>,
    #[serde(default)]
    window: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawGrant {
    actions: Vec<String>,
    #[serde(default)]
    resource_types: Option<Vec<String>>,
    #[serde(default)]
    attributes: Option<Vec<String>>,
    #[serde(default)]
    privileged: bool,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawMatch {
    #[serde(default)]
    window: Option<String>,
    #[serde(default)]
    sequence: Option<RawSequence>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawSequence {
    first: String,
    then: String,
    within: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawNewValue {
    field: String,
    lookback: String,
    #[serde(default)]
    max_values: Option<usize>,
    #[serde(default)]
    alert_on_first: bool,
    #[serde(default)]
    window: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawSchedule {
    time_zone: String,
    days: Vec<String>,
    hours: Vec<String>,
    #[serde(default)]
    window: Option<String>,
}

/// A validated rule.
#[derive(Debug, Clone)]
pub struct Rule {
    pub id: String,
    pub title: String,
    pub severity: Severity,
    pub description: String,
    pub runbook_url: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub enabled: bool,
    /// The `where` condition as written.
    pub condition_text: Option<String>,
    /// Fields the rule's state is grouped (and routed) by.
    pub group_by: Vec<String>,
    /// Crossings within this long after an alert's window start are
    /// suppressed (counted, reported in the next alert).
    pub suppress_ms: i64,
    pub(crate) condition: Option<Filter>,
    pub(crate) kind: Kind,
    /// Hash of what decides the rule's behaviour (not its title, description,
    /// runbook or labels): state is kept across a reload only when it is equal.
    pub(crate) fingerprint: u64,
}

impl Rule {
    /// `threshold`, `policy`, `match`, `new_value`, `error_rate` or `schedule`.
    pub fn kind_name(&self) -> &'static str {
        self.kind.name()
    }

    /// Id of the partitioning the rule's state lives in.
    pub fn partitioning_id(&self) -> String {
        self.group_by.join(",")
    }

    /// The window alerts of this rule span.
    pub fn window_ms(&self) -> i64 {
        self.kind.window_ms()
    }
}

#[derive(Debug, Clone)]
pub(crate) enum Kind {
    Threshold(ThresholdSpec),
    ErrorRate(ErrorRateSpec),
    Policy(PolicySpec),
    Match(MatchSpec),
    NewValue(NewValueSpec),
    Schedule(ScheduleSpec),
}

impl Kind {
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Kind::Threshold(_) => "threshold",
            Kind::ErrorRate(_) => "error_rate",
            Kind::Policy(_) => "policy",
            Kind::Match(_) => "match",
            Kind::NewValue(_) => "new_value",
            Kind::Schedule(_) => "schedule",
        }
    }

    pub(crate) fn window_ms(&self) -> i64 {
        match self {
            Kind::Threshold(s) => s.window_ms,
            Kind::ErrorRate(s) => s.window_ms,
            Kind::Policy(s) => s.window_ms,
            Kind::Match(s) => s.window_ms,
            Kind::NewValue(s) => s.window_ms,
            Kind::Schedule(s) => s.window_ms,
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct ThresholdSpec {
    pub more_than: u64,
    pub window_ms: i64,
    pub distinct: Option<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct ErrorRateSpec {
    pub window_ms: i64,
    pub ratio: f64,
    pub min_count: u64,
    pub failure: Filter,
}

#[derive(Debug, Clone)]
pub(crate) struct Grant {
    /// Empty: any.
    pub actions: BTreeSet<&'static str>,
    /// Lower case; `None`: any.
    pub resource_types: Option<BTreeSet<String>>,
    /// Lower case; `None`: any.
    pub attributes: Option<Vec<String>>,
    pub privileged: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct PolicySpec {
    /// By lower-case role name.
    pub roles: BTreeMap<String, Grant>,
    pub unknown_principal_alerts: bool,
    pub access_denied_alerts: bool,
    pub window_ms: i64,
}

#[derive(Debug, Clone)]
pub(crate) struct Sequence {
    pub first: Filter,
    pub then: Filter,
    pub within_ms: i64,
}

#[derive(Debug, Clone)]
pub(crate) struct MatchSpec {
    pub window_ms: i64,
    pub sequence: Option<Sequence>,
}

#[derive(Debug, Clone)]
pub(crate) struct NewValueSpec {
    pub field: String,
    pub lookback_ms: i64,
    pub max_values: usize,
    pub alert_on_first: bool,
    pub window_ms: i64,
}

#[derive(Debug, Clone)]
pub(crate) struct ScheduleSpec {
    pub tz: chrono_tz::Tz,
    /// Indexed by `Weekday::num_days_from_monday`.
    pub days: [bool; 7],
    /// Allowed local time-of-day ranges in minutes, `[start, end)`; a range
    /// with `end <= start` wraps past midnight.
    pub hours: Vec<(u32, u32)>,
    /// The allowed days and hours as written, for summaries.
    pub text: String,
    pub window_ms: i64,
}

/// Default window of the kinds that alert on single events: alerts of one
/// rule and key within it are deduplicated.
const SINGLE_EVENT_WINDOW: &str = "1h";
const DEFAULT_MAX_VALUES: usize = 100;

/// Parses a whole rules file.
pub(crate) fn parse_file(yaml: &str, origin: &str) -> Result<Vec<Rule>, RulesError> {
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(yaml)
        .map_err(|e| RulesError::file(origin, format!("not valid YAML: {e}")))?;
    if doc.is_null() {
        return Err(RulesError::file(
            origin,
            "the file is empty; expected `rules:`",
        ));
    }
    let file: RawFile = serde_path_to_error::deserialize(doc)
        .map_err(|e| RulesError::field(origin, e.path().to_string(), e.inner().to_string()))?;
    if let Some(v) = file.version {
        if v != 1 {
            return Err(RulesError::field(
                origin,
                "version",
                format!("unsupported version {v}; this scimtrail reads version 1"),
            ));
        }
    }
    let mut rules = Vec::with_capacity(file.rules.len());
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for (i, mut value) in file.rules.into_iter().enumerate() {
        let id = value.get("id").and_then(|v| v.as_str()).map(str::to_string);
        normalise_kind_sections(&mut value);
        let raw: RawRule = serde_path_to_error::deserialize(value).map_err(|e| {
            RulesError::field(origin, e.path().to_string(), e.inner().to_string())
                .in_rule(i, id.as_deref())
        })?;
        let rule = validate(raw, origin).map_err(|e| e.in_rule(i, id.as_deref()))?;
        if let Some(first) = seen.insert(rule.id.clone(), i) {
            return Err(RulesError::field(
                origin,
                "id",
                format!("duplicate id; rules[{first}] has it already"),
            )
            .in_rule(i, id.as_deref()));
        }
        rules.push(rule);
    }
    Ok(rules)
}

pub(crate) fn read_file(path: &Path) -> Result<String, RulesError> {
    std::fs::read_to_string(path)
        .map_err(|e| RulesError::file(&path.display().to_string(), format!("cannot read: {e}")))
}

/// `match:` with nothing after it is YAML null; it means `match: {}`.
fn normalise_kind_sections(value: &mut serde_yaml_ng::Value) {
    if let Some(map) = value.as_mapping_mut() {
        for kind in [
            "threshold",
            "policy",
            "match",
            "new_value",
            "error_rate",
            "schedule",
        ] {
            if let Some(v) = map.get_mut(kind) {
                if v.is_null() {
                    *v = serde_yaml_ng::Value::Mapping(Default::default());
                }
            }
        }
    }
}

fn validate(raw: RawRule, origin: &str) -> Result<Rule, RulesError> {
    let err = |field: &str, msg: String| RulesError::field(origin, field, msg);
    if !valid_id(&raw.id) {
        return Err(err(
            "id",
            format!(
                "{:?} is not a rule id: use letters, digits, `.`, `-` and `_` (at most 100)",
                raw.id
            ),
        ));
    }
    if raw.title.trim().is_empty() {
        return Err(err("title", "must not be empty".into()));
    }
    if raw.description.trim().is_empty() {
        return Err(err("description", "must not be empty".into()));
    }
    let severity = parse_severity(&raw.severity).ok_or_else(|| {
        err(
            "severity",
            format!(
                "invalid severity {:?} (use info, low, medium, high or critical)",
                raw.severity
            ),
        )
    })?;
    let condition = raw
        .condition
        .as_deref()
        .map(|text| parse_condition(text, "where", origin))
        .transpose()?;

    let kinds: Vec<&str> = [
        ("threshold", raw.threshold.is_some()),
        ("policy", raw.policy.is_some()),
        ("match", raw.matching.is_some()),
        ("new_value", raw.new_value.is_some()),
        ("error_rate", raw.error_rate.is_some()),
        ("schedule", raw.schedule.is_some()),
    ]
    .into_iter()
    .filter_map(|(k, present)| present.then_some(k))
    .collect();
    if kinds.len() != 1 {
        return Err(RulesError::file(
            origin,
            format!(
                "a rule has exactly one kind section (threshold, policy, match, new_value, error_rate or schedule); found {}",
                if kinds.is_empty() {
                    "none".to_string()
                } else {
                    kinds.join(", ")
                }
            ),
        ));
    }

    let window = |text: Option<&str>, field: &str| -> Result<i64, RulesError> {
        parse_duration(text.unwrap_or(SINGLE_EVENT_WINDOW)).map_err(|m| err(field, m))
    };
    let (kind, default_group_by): (Kind, &[&str]) = if let Some(t) = &raw.threshold {
        let window_ms = parse_duration(&t.window).map_err(|m| err("threshold.window", m))?;
        if let Some(d) = &t.distinct {
            check_value_field(d).map_err(|m| err("threshold.distinct", m))?;
        }
        (
            Kind::Threshold(ThresholdSpec {
                more_than: t.more_than,
                window_ms,
                distinct: t.distinct.clone(),
            }),
            &["principal.id"],
        )
    } else if let Some(r) = &raw.error_rate {
        let window_ms = parse_duration(&r.window).map_err(|m| err("error_rate.window", m))?;
        if !(r.ratio > 0.0 && r.ratio <= 1.0) {
            return Err(err(
                "error_rate.ratio",
                format!("{} is not a ratio in (0, 1]", r.ratio),
            ));
        }
        if r.min_count == 0 {
            return Err(err("error_rate.min_count", "must be at least 1".into()));
        }
        let failure = parse_condition(
            r.failure.as_deref().unwrap_or(r#"outcome eq "FAILURE""#),
            "error_rate.failure",
            origin,
        )?;
        (
            Kind::ErrorRate(ErrorRateSpec {
                window_ms,
                ratio: r.ratio,
                min_count: r.min_count,
                failure,
            }),
            &["target.system"],
        )
    } else if let Some(p) = &raw.policy {
        (Kind::Policy(validate_policy(p, origin)?), &["principal.id"])
    } else if let Some(m) = &raw.matching {
        let window_ms = window(m.window.as_deref(), "match.window")?;
        let sequence = m
            .sequence
            .as_ref()
            .map(|s| -> Result<Sequence, RulesError> {
                Ok(Sequence {
                    first: parse_condition(&s.first, "match.sequence.first", origin)?,
                    then: parse_condition(&s.then, "match.sequence.then", origin)?,
                    within_ms: parse_duration(&s.within)
                        .map_err(|m| err("match.sequence.within", m))?,
                })
            })
            .transpose()?;
        let default: &[&str] = if sequence.is_some() {
            &["target.system", "resource.type", "resource.id"]
        } else {
            &["principal.id"]
        };
        (
            Kind::Match(MatchSpec {
                window_ms,
                sequence,
            }),
            default,
        )
    } else if let Some(n) = &raw.new_value {
        check_value_field(&n.field).map_err(|m| err("new_value.field", m))?;
        let lookback_ms = parse_duration(&n.lookback).map_err(|m| err("new_value.lookback", m))?;
        let max_values = n.max_values.unwrap_or(DEFAULT_MAX_VALUES);
        if max_values == 0 || max_values > 10_000 {
            return Err(err(
                "new_value.max_values",
                format!("{max_values} is not between 1 and 10000"),
            ));
        }
        (
            Kind::NewValue(NewValueSpec {
                field: n.field.clone(),
                lookback_ms,
                max_values,
                alert_on_first: n.alert_on_first,
                window_ms: window(n.window.as_deref(), "new_value.window")?,
            }),
            &["principal.id"],
        )
    } else if let Some(s) = &raw.schedule {
        (
            Kind::Schedule(validate_schedule(s, origin)?),
            &["principal.id"],
        )
    } else {
        // Unreachable: exactly one section was checked above.
        return Err(RulesError::file(origin, "no kind section"));
    };

    let group_by: Vec<String> = match &raw.group_by {
        None => default_group_by.iter().map(|s| s.to_string()).collect(),
        Some(fields) => {
            if fields.is_empty() || fields.len() > MAX_GROUP_BY {
                return Err(err(
                    "group_by",
                    format!("name 1 to {MAX_GROUP_BY} fields, not {}", fields.len()),
                ));
            }
            let mut out = Vec::new();
            for (i, name) in fields.iter().enumerate() {
                let field = view::field(name).ok_or_else(|| {
                    err(
                        &format!("group_by[{i}]"),
                        format!("unknown field {name:?} (see the event view in docs/rules.md)"),
                    )
                })?;
                if !field.groupable {
                    return Err(err(
                        &format!("group_by[{i}]"),
                        format!(
                            "cannot group by {name:?}: group by single-valued text fields ({})",
                            groupable_list()
                        ),
                    ));
                }
                if out.iter().any(|f| f == field.path) {
                    return Err(err(
                        &format!("group_by[{i}]"),
                        format!("{name:?} is listed twice"),
                    ));
                }
                out.push(field.path.to_string());
            }
            out
        }
    };
    let suppress_ms = match &raw.suppress_for {
        Some(t) => parse_duration(t).map_err(|m| err("suppress_for", m))?,
        None => kind.window_ms(),
    };
    let fingerprint = fingerprint(&raw, &group_by);
    Ok(Rule {
        id: raw.id,
        title: raw.title,
        severity,
        description: raw.description.trim().to_string(),
        runbook_url: raw.runbook_url,
        labels: raw.labels,
        enabled: raw.enabled,
        condition_text: raw.condition,
        group_by,
        suppress_ms,
        condition,
        kind,
        fingerprint,
    })
}

fn validate_policy(p: &RawPolicy, origin: &str) -> Result<PolicySpec, RulesError> {
    let err = |field: String, msg: String| RulesError::field(origin, field, msg);
    let mut roles = BTreeMap::new();
    for (role, g) in &p.roles {
        let base = format!("policy.roles.{role}");
        let mut actions = BTreeSet::new();
        for (i, a) in g.actions.iter().enumerate() {
            if a == "*" {
                actions.clear();
                break;
            }
            let action = parse_action(a).ok_or_else(|| {
                err(
                    format!("{base}.actions[{i}]"),
                    format!(
                        "unknown action {a:?} (use CREATE, REPLACE, PATCH, DELETE, READ or \"*\")"
                    ),
                )
            })?;
            actions.insert(action.as_str());
        }
        if g.actions.is_empty() {
            return Err(err(
                format!("{base}.actions"),
                "list the allowed actions (or \"*\")".into(),
            ));
        }
        let star = |list: &Option<Vec<String>>| -> Option<Vec<String>> {
            match list {
                None => None,
                Some(l) if l.iter().any(|x| x == "*") => None,
                Some(l) => Some(l.iter().map(|x| x.to_ascii_lowercase()).collect()),
            }
        };
        let attributes = star(&g.attributes);
        if let Some(attrs) = &attributes {
            for (i, a) in attrs.iter().enumerate() {
                if a.parse::<AttrPath>().is_err() {
                    return Err(err(
                        format!("{base}.attributes[{i}]"),
                        format!(
                            "{a:?} is not an attribute path (e.g. name.givenName, emails, members)"
                        ),
                    ));
                }
            }
        }
        roles.insert(
            role.to_ascii_lowercase(),
            Grant {
                actions,
                resource_types: star(&g.resource_types).map(|v| v.into_iter().collect()),
                attributes,
                privileged: g.privileged,
            },
        );
    }
    let choice = |v: &Option<String>, field: &str, yes: &str, no: &str| match v.as_deref() {
        None => Ok(true),
        Some(x) if x.eq_ignore_ascii_case(yes) => Ok(true),
        Some(x) if x.eq_ignore_ascii_case(no) => Ok(false),
        Some(x) => Err(err(
            format!("policy.{field}"),
            format!("{x:?} is not {yes} or {no}"),
        )),
    };
    Ok(PolicySpec {
        roles,
        unknown_principal_alerts: choice(
            &p.unknown_principal,
            "unknown_principal",
            "alert",
            "allow",
        )?,
        access_denied_alerts: choice(&p.access_denied, "access_denied", "alert", "ignore")?,
        window_ms: parse_duration(p.window.as_deref().unwrap_or(SINGLE_EVENT_WINDOW))
            .map_err(|m| err("policy.window".into(), m))?,
    })
}

fn validate_schedule(s: &RawSchedule, origin: &str) -> Result<ScheduleSpec, RulesError> {
    let err = |field: String, msg: String| RulesError::field(origin, field, msg);
    let tz: chrono_tz::Tz = s.time_zone.parse().map_err(|_| {
        err(
            "schedule.time_zone".into(),
            format!(
                "unknown time zone {:?} (use an IANA name such as Europe/Berlin, America/New_York or UTC)",
                s.time_zone
            ),
        )
    })?;
    let mut days = [false; 7];
    if s.days.is_empty() {
        return Err(err("schedule.days".into(), "list at least one day".into()));
    }
    for (i, d) in s.days.iter().enumerate() {
        let bad = || {
            err(
                format!("schedule.days[{i}]"),
                format!("{d:?} is not a day or range of days (mon, tue, …, sun; mon-fri)"),
            )
        };
        match d.split_once('-') {
            Some((a, b)) => {
                let a = parse_day(a).ok_or_else(bad)?.num_days_from_monday() as usize;
                let b = parse_day(b).ok_or_else(bad)?.num_days_from_monday() as usize;
                let mut k = a;
                loop {
                    days[k] = true;
                    if k == b {
                        break;
                    }
                    k = (k + 1) % 7;
                }
            }
            None => days[parse_day(d).ok_or_else(bad)?.num_days_from_monday() as usize] = true,
        }
    }
    if s.hours.is_empty() {
        return Err(err(
            "schedule.hours".into(),
            "list at least one range, e.g. \"08:00-18:00\"".into(),
        ));
    }
    let mut hours = Vec::new();
    for (i, h) in s.hours.iter().enumerate() {
        let range = h
            .split_once('-')
            .and_then(|(a, b)| Some((parse_hhmm(a.trim())?, parse_hhmm(b.trim())?)))
            .filter(|(a, b)| a != b)
            .ok_or_else(|| {
                err(
                    format!("schedule.hours[{i}]"),
                    format!("{h:?} is not a time range such as \"08:00-18:00\" (24 h clock, end after start or wrapping past midnight)"),
                )
            })?;
        hours.push(range);
    }
    Ok(ScheduleSpec {
        tz,
        days,
        hours,
        text: format!(
            "{} {} ({})",
            s.days.join(","),
            s.hours.join(","),
            s.time_zone
        ),
        window_ms: parse_duration(s.window.as_deref().unwrap_or(SINGLE_EVENT_WINDOW))
            .map_err(|m| err("schedule.window".into(), m))?,
    })
}

fn parse_day(s: &str) -> Option<Weekday> {
    let s = s.trim().to_ascii_lowercase();
    Some(match s.get(..3)? {
        "mon" => Weekday::Mon,
        "tue" => Weekday::Tue,
        "wed" => Weekday::Wed,
        "thu" => Weekday::Thu,
        "fri" => Weekday::Fri,
        "sat" => Weekday::Sat,
        "sun" => Weekday::Sun,
        _ => return None,
    })
    .filter(|_| {
        matches!(
            s.as_str(),
            "mon"
                | "monday"
                | "tue"
                | "tuesday"
                | "wed"
                | "wednesday"
                | "thu"
                | "thursday"
                | "fri"
                | "friday"
                | "sat"
                | "saturday"
                | "sun"
                | "sunday"
        )
    })
}

/// `HH:MM` as minutes after midnight; `24:00` is the end of the day.
fn parse_hhmm(s: &str) -> Option<u32> {
    let (h, m) = s.split_once(':')?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    match (h, m) {
        (24, 0) => Some(24 * 60),
        (0..=23, 0..=59) => Some(h * 60 + m),
        _ => None,
    }
}

fn parse_severity(s: &str) -> Option<Severity> {
    Some(match s.to_ascii_lowercase().as_str() {
        "info" => Severity::Info,
        "low" => Severity::Low,
        "medium" => Severity::Medium,
        "high" => Severity::High,
        "critical" => Severity::Critical,
        _ => return None,
    })
}

fn parse_action(s: &str) -> Option<AuditAction> {
    Some(match s.to_ascii_uppercase().as_str() {
        "CREATE" => AuditAction::Create,
        "REPLACE" => AuditAction::Replace,
        "PATCH" => AuditAction::Patch,
        "DELETE" => AuditAction::Delete,
        "READ" => AuditAction::Read,
        _ => return None,
    })
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 100
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

/// `30s`, `5m`, `1h`, `1d` (also `500ms`, `2w`) as milliseconds.
pub(crate) fn parse_duration(text: &str) -> Result<i64, String> {
    let bad = || format!("invalid duration {text:?} (use 30s, 5m, 1h, 1d)");
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (num, unit) = t.split_at(split);
    let n: i64 = num.parse().map_err(|_| bad())?;
    let unit_ms: i64 = match unit {
        "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "w" => 7 * 86_400_000,
        _ => return Err(bad()),
    };
    let ms = n.checked_mul(unit_ms).ok_or_else(bad)?;
    if ms <= 0 {
        return Err(format!("duration {text:?} must be longer than zero"));
    }
    if ms > MAX_DURATION_MS {
        return Err(format!("duration {text:?} is longer than 400 days"));
    }
    Ok(ms)
}

pub(crate) fn parse_condition(text: &str, field: &str, origin: &str) -> Result<Filter, RulesError> {
    let filter = Filter::parse(text).map_err(|e| {
        RulesError::field(
            origin,
            field,
            format!(
                "invalid condition at position {}: {} (in `{text}`)",
                e.position, e.message
            ),
        )
    })?;
    check_paths(filter.expr(), None)
        .map_err(|m| RulesError::field(origin, field, format!("{m} (in `{text}`)")))?;
    Ok(filter)
}

/// Checks every attribute a condition names against the view, so a typo is
/// an error at load rather than a condition that silently never matches.
fn check_paths(expr: &Expr, within: Option<&str>) -> Result<(), String> {
    match expr {
        Expr::And(a, b) | Expr::Or(a, b) => {
            check_paths(a, within)?;
            check_paths(b, within)
        }
        Expr::Not(e) => check_paths(e, within),
        Expr::Present(p) | Expr::Compare(p, ..) => check_path(p, within).map(|_| ()),
        Expr::ValuePath(p, inner) => {
            let (full, ty) = check_path(p, within)?;
            match ty {
                Some(FieldType::Objects) => check_paths(inner, Some(&full)),
                // Lists of strings are filtered through `value`; JSON is not
                // checked further.
                Some(FieldType::Strings) | None => Ok(()),
                Some(FieldType::Json) => Ok(()),
                Some(_) => Err(format!(
                    "`{full}[...]`: a value filter needs a list field (diff, memberships, drift, flags, ...)"
                )),
            }
        }
    }
}

/// The full dotted name of `p` and its type; `None` type: inside JSON.
fn check_path(p: &AttrPath, within: Option<&str>) -> Result<(String, Option<FieldType>), String> {
    if p.urn.is_some() || p.is_schema_urn() {
        return Err(format!(
            "unknown field `{p}`: the event view has no schema URNs (see docs/rules.md)"
        ));
    }
    if let Some(parent) = within {
        if view::field(parent).is_some_and(|f| f.ty == FieldType::Json) {
            return Ok((format!("{parent}.{p}"), None));
        }
    }
    let base = match within {
        Some(parent) => format!("{parent}.{}", p.name),
        None => p.name.clone(),
    };
    let Some(field) = view::field(&base) else {
        if within.is_some_and(|w| view::field(w).is_some_and(|f| f.ty == FieldType::Strings))
            && p.name.eq_ignore_ascii_case("value")
        {
            return Ok((base, Some(FieldType::String)));
        }
        return Err(format!(
            "unknown field `{base}` (see the event view in docs/rules.md)"
        ));
    };
    match &p.sub {
        None => Ok((field.path.to_string(), Some(field.ty))),
        Some(_) if field.ty == FieldType::Json => Ok((
            format!("{base}.{}", p.sub.as_deref().unwrap_or_default()),
            None,
        )),
        Some(sub) => {
            let full = format!("{base}.{sub}");
            match view::field(&full) {
                Some(f) => Ok((f.path.to_string(), Some(f.ty))),
                None => Err(format!(
                    "unknown field `{full}` (see the event view in docs/rules.md)"
                )),
            }
        }
    }
}

/// `distinct` and `new_value.field`: any non-object field of the view.
fn check_value_field(name: &str) -> Result<(), String> {
    match view::field(name) {
        None => Err(format!(
            "unknown field {name:?} (see the event view in docs/rules.md)"
        )),
        Some(f) if matches!(f.ty, FieldType::Object | FieldType::Objects) => Err(format!(
            "{name:?} is an object; name one of its fields (e.g. {name}.id)"
        )),
        Some(_) => Ok(()),
    }
}

fn groupable_list() -> String {
    view::FIELDS
        .iter()
        .filter(|f| f.groupable)
        .map(|f| f.path)
        .collect::<Vec<_>>()
        .join(", ")
}

fn fingerprint(raw: &RawRule, group_by: &[String]) -> u64 {
    // What the rule does, not how it is described.
    let semantic = serde_json::json!({
        "where": raw.condition,
        "enabled": raw.enabled,
        "group_by": group_by,
        "suppress_for": raw.suppress_for,
        "threshold": raw.threshold,
        "policy": raw.policy,
        "match": raw.matching,
        "new_value": raw.new_value,
        "error_rate": raw.error_rate,
        "schedule": raw.schedule,
    });
    let digest = Sha256::digest(semantic.to_string().as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<Vec<Rule>, RulesError> {
        parse_file(yaml, "rules.yaml")
    }

    fn error(yaml: &str) -> String {
        match parse(yaml) {
            Ok(_) => panic!("expected an error for:\n{yaml}"),
            Err(e) => e.to_string(),
        }
    }

    const HEAD: &str =
        "rules:\n  - id: ok\n    title: T\n    severity: high\n    description: D\n    match: {}\n";

    fn with_rule(body: &str) -> String {
        format!(
            "{HEAD}  - id: mass-deletion\n    title: T\n    severity: high\n    description: D\n{body}"
        )
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("30s"), Ok(30_000));
        assert_eq!(parse_duration("5m"), Ok(300_000));
        assert_eq!(parse_duration("1h"), Ok(3_600_000));
        assert_eq!(parse_duration("1d"), Ok(86_400_000));
        assert_eq!(parse_duration("250ms"), Ok(250));
        for bad in ["5x", "", "m", "5", "-5m", "1.5h", "0s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_bad_duration_names_file_rule_and_field() {
        let e = error(&with_rule(
            "    threshold:\n      more_than: 5\n      window: 5x\n",
        ));
        assert_eq!(
            e,
            r#"rules.yaml: rules[1] (id "mass-deletion"): threshold.window: invalid duration "5x" (use 30s, 5m, 1h, 1d)"#
        );
    }

    #[test]
    fn unknown_fields_are_rejected_with_their_path() {
        let e = error(&with_rule(
            "    threshold:\n      more_than: 5\n      window: 5m\n      windw: 1m\n",
        ));
        assert!(
            e.starts_with(
                r#"rules.yaml: rules[1] (id "mass-deletion"): threshold.windw: unknown field `windw`, expected one of"#
            ),
            "{e}"
        );
        let e = error(&with_rule("    match: {}\n    severty: low\n"));
        assert!(e.contains("unknown field `severty`"), "{e}");
        let e = error("rules: []\nextra: 1\n");
        assert!(e.contains("unknown field `extra`"), "{e}");
        let e = error(&with_rule(
            "    policy:\n      roles:\n        auditor:\n          actions: [READ]\n          verbs: [x]\n",
        ));
        assert!(
            e.contains("policy.roles.auditor.verbs: unknown field `verbs`"),
            "{e}"
        );
    }

    #[test]
    fn duplicate_ids_are_rejected() {
        let e = error(&format!("{HEAD}{}", &HEAD["rules:\n".len()..]));
        assert_eq!(
            e,
            r#"rules.yaml: rules[1] (id "ok"): id: duplicate id; rules[0] has it already"#
        );
    }

    #[test]
    fn bad_severities_are_rejected() {
        let e = error(&HEAD.replace("high", "urgent"));
        assert_eq!(
            e,
            r#"rules.yaml: rules[0] (id "ok"): severity: invalid severity "urgent" (use info, low, medium, high or critical)"#
        );
    }

    #[test]
    fn filter_syntax_errors_carry_their_position() {
        let e = error(&with_rule(
            "    where: 'action eq \"DELETE\" andd resource.type pr'\n    match: {}\n",
        ));
        assert!(
            e.starts_with(r#"rules.yaml: rules[1] (id "mass-deletion"): where: invalid condition at position 19: expected `and`, `or` or the end of the filter, found `andd resourc`"#),
            "{e}"
        );
    }

    #[test]
    fn conditions_naming_unknown_fields_are_rejected() {
        let e = error(&with_rule(
            "    where: 'resource.typ eq \"User\"'\n    match: {}\n",
        ));
        assert!(e.contains("where: unknown field `resource.typ`"), "{e}");
        let e = error(&with_rule(
            "    where: 'diff[pth eq \"active\"]'\n    match: {}\n",
        ));
        assert!(e.contains("unknown field `diff.pth`"), "{e}");
        // Inside JSON values anything goes; lists of strings take `value`.
        parse(&with_rule(
            "    where: 'diff[after.value eq \"u1\"] and flags[value eq \"DRIFT\"]'\n    match: {}\n",
        ))
        .expect("valid");
    }

    #[test]
    fn time_zones_are_checked() {
        let e = error(&with_rule(
            "    schedule:\n      time_zone: Europe/Berlim\n      days: [mon-fri]\n      hours: [\"08:00-18:00\"]\n",
        ));
        assert!(
            e.contains("schedule.time_zone: unknown time zone \"Europe/Berlim\""),
            "{e}"
        );
        let e = error(&with_rule(
            "    schedule:\n      time_zone: UTC\n      days: [mon-fry]\n      hours: [\"08:00-18:00\"]\n",
        ));
        assert!(e.contains("schedule.days[0]"), "{e}");
        let e = error(&with_rule(
            "    schedule:\n      time_zone: UTC\n      days: [mon]\n      hours: [\"8-18\"]\n",
        ));
        assert!(e.contains("schedule.hours[0]"), "{e}");
    }

    #[test]
    fn group_by_fields_must_exist_and_be_groupable() {
        let e = error(&with_rule(
            "    group_by: [principal.name]\n    match: {}\n",
        ));
        assert!(
            e.contains("group_by[0]: unknown field \"principal.name\""),
            "{e}"
        );
        let e = error(&with_rule("    group_by: [diff.path]\n    match: {}\n"));
        assert!(e.contains("group_by[0]: cannot group by"), "{e}");
        let e = error(&with_rule(
            "    group_by: [action, outcome, principal.id, target.system]\n    match: {}\n",
        ));
        assert!(e.contains("group_by: name 1 to 3 fields, not 4"), "{e}");
    }

    #[test]
    fn a_rule_has_exactly_one_kind() {
        let e = error(&with_rule("    match: {}\n    schedule:\n      time_zone: UTC\n      days: [mon]\n      hours: [\"08:00-09:00\"]\n"));
        assert!(e.contains("exactly one kind section"), "{e}");
        assert!(e.contains("match, schedule"), "{e}");
        let e = error(&with_rule(""));
        assert!(e.contains("found none"), "{e}");
    }

    #[test]
    fn kind_specific_checks() {
        let e = error(&with_rule(
            "    error_rate:\n      window: 5m\n      ratio: 1.5\n      min_count: 10\n",
        ));
        assert!(e.contains("error_rate.ratio: 1.5 is not a ratio"), "{e}");
        let e = error(&with_rule(
            "    policy:\n      roles:\n        auditor:\n          actions: [WRITE]\n",
        ));
        assert!(
            e.contains("policy.roles.auditor.actions[0]: unknown action \"WRITE\""),
            "{e}"
        );
        let e = error(&with_rule(
            "    threshold:\n      more_than: 5\n      window: 5m\n      distinct: resource\n",
        ));
        assert!(
            e.contains("threshold.distinct: \"resource\" is an object"),
            "{e}"
        );
        let e = error(&with_rule(
            "    new_value:\n      field: source.ipaddr\n      lookback: 30d\n",
        ));
        assert!(e.contains("new_value.field: unknown field"), "{e}");
        let e = error(&with_rule(
            "    match:\n      sequence:\n        first: 'flags eq \"DEACTIVATED\"'\n        then: 'action eq'\n        within: 1h\n",
        ));
        assert!(
            e.contains("match.sequence.then: invalid condition at position 9"),
            "{e}"
        );
    }

    #[test]
    fn an_empty_match_section_is_a_match_rule() {
        let rules = parse(&with_rule("    match:\n")).expect("valid");
        assert_eq!(rules[1].kind_name(), "match");
        assert_eq!(rules[1].group_by, vec!["principal.id"]);
    }

    #[test]
    fn yaml_syntax_errors_name_the_file_and_line() {
        let e = error("rules:\n  - id: [unclosed\n");
        assert!(e.starts_with("rules.yaml: not valid YAML: "), "{e}");
        assert!(e.contains("line"), "{e}");
    }

    #[test]
    fn defaults_per_kind() {
        let rules = parse(&with_rule(
            "    match:\n      sequence:\n        first: 'flags eq \"IDENTITY_CHANGE\"'\n        then: 'flags eq \"DEACTIVATED\"'\n        within: 1h\n",
        ))
        .expect("valid");
        let r = &rules[1];
        assert_eq!(
            r.group_by,
            vec!["target.system", "resource.type", "resource.id"]
        );
        assert_eq!(r.suppress_ms, 3_600_000);
        assert!(r.enabled);
    }

    #[test]
    fn the_fingerprint_ignores_descriptions_but_not_behaviour() {
        let a = parse(&with_rule("    match: {}\n")).expect("valid");
        let b = parse(&with_rule("    match: {}\n").replace("description: D", "description: E"))
            .expect("valid");
        let c = parse(&with_rule("    match:\n      window: 2h\n")).expect("valid");
        assert_eq!(a[1].fingerprint, b[1].fingerprint);
        assert_ne!(a[1].fingerprint, c[1].fingerprint);
    }
}
