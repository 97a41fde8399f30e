//! The event view: the JSON object rule conditions (`where`, sequence steps,
//! `error_rate.failure`) are evaluated on, and the fields `group_by`,
//! `distinct` and `new_value.field` name.
//!
//! The view is the enriched event flattened for operators: the `AuditEvent`'s
//! fields at the top (`action`, `principal.id`, `resource.type`), the
//! enrichment beside them (`actor.roles`, `flags`, `diff`, `memberships`), and
//! JSON text (`before`/`after` of a change) parsed into values so that
//! `diff[path eq "active" and after eq false]` compares a boolean. Names are
//! the Avro schema's (snake_case); SCIM filters match them case-insensitively.
//! [`FIELDS`] is the list documented in `docs/rules.md` (a test keeps the two
//! in step).

use chrono::{DateTime, SecondsFormat};
use serde_json::{json, Map, Value};

use scimtrail_core::schema::{AttributeChange, ChangeKind, EnrichedAuditEvent, EventFlag};

/// What a view field holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    String,
    /// RFC 3339 text; filters compare it as an instant.
    Time,
    Number,
    Bool,
    /// An object with the sub-fields listed after it.
    Object,
    /// A list of strings; a comparison matches if any element matches.
    Strings,
    /// A list of objects with the sub-fields listed after it; filter them
    /// with a value path (`diff[path eq "active"]`).
    Objects,
    /// Any JSON value (parsed from the event's JSON text).
    Json,
}

/// One documented field of the view.
#[derive(Debug, Clone, Copy)]
pub struct Field {
    /// Dotted path, e.g. `principal.id`, `diff.after`.
    pub path: &'static str,
    pub ty: FieldType,
    /// Whether `group_by` may name it: a single string every event may have.
    pub groupable: bool,
    pub doc: &'static str,
}

const fn f(path: &'static str, ty: FieldType, groupable: bool, doc: &'static str) -> Field {
    Field {
        path,
        ty,
        groupable,
        doc,
    }
}

// Short names for the table below (a glob import of the variants would
// shadow `String`).
const STR: FieldType = FieldType::String;
const TIME: FieldType = FieldType::Time;
const NUM: FieldType = FieldType::Number;
const BOOL: FieldType = FieldType::Bool;
const OBJ: FieldType = FieldType::Object;
const STRS: FieldType = FieldType::Strings;
const OBJS: FieldType = FieldType::Objects;
const JSON: FieldType = FieldType::Json;

/// Every field of the view, in the order `docs/rules.md` lists them.
pub const FIELDS: &[Field] = &[
    f("id", STR, false, "the event id"),
    f("time", TIME, false, "event time, RFC 3339 UTC with milliseconds"),
    f("action", STR, true, "CREATE, REPLACE, PATCH, DELETE, READ, ACCESS_DENIED or OTHER"),
    f("outcome", STR, true, "SUCCESS, FAILURE or UNKNOWN"),
    f("principal", OBJ, false, "who made the request"),
    f("principal.id", STR, true, "principal identifier, e.g. okta-provisioner"),
    f("principal.type", STR, true, "service, user or unknown"),
    f("actor", OBJ, false, "the principal in the role directory; null without a directory"),
    f("actor.id", STR, true, "the principal id the directory was asked about"),
    f("actor.display_name", STR, false, "display name from the directory"),
    f("actor.roles", STRS, false, "roles from the directory (empty for unknown principals)"),
    f("source", OBJ, false, "where the request came from"),
    f("source.system", STR, true, "sending system, e.g. okta-prod"),
    f("source.ip", STR, true, "client IP address"),
    f("source.user_agent", STR, true, "HTTP User-Agent"),
    f("target", OBJ, false, "the SCIM service provider"),
    f("target.system", STR, true, "receiving system, e.g. github-enterprise"),
    f("target.base_url", STR, true, "SCIM base URL"),
    f("resource", OBJ, false, "the resource acted on"),
    f("resource.type", STR, true, "User, Group or a custom resource type"),
    f("resource.id", STR, true, "resource id (null for a failed create)"),
    f("resource.external_id", STR, true, "externalId"),
    f("resource.user_name", STR, true, "userName of a User"),
    f("resource.display_name", STR, true, "displayName"),
    f("request", OBJ, false, "the HTTP request"),
    f("request.method", STR, true, "HTTP method, upper case"),
    f("request.path", STR, false, "path relative to the SCIM base URL"),
    f("response", OBJ, false, "the HTTP response; null when none was captured"),
    f("response.status", NUM, false, "HTTP status code"),
    f("error", OBJ, false, "SCIM error of a failure; null otherwise"),
    f("error.scim_type", STR, true, "scimType, e.g. uniqueness"),
    f("error.detail", STR, false, "detail text"),
    f("correlation_id", STR, true, "correlation id of the exchange"),
    f("partial", BOOL, false, "the state before was unknown (see docs/enricher.md)"),
    f("flags", STRS, false, "PRIVILEGED, ACTIVATED, DEACTIVATED, IDENTITY_CHANGE, DRIFT, UNKNOWN_PRINCIPAL"),
    f("privileged", STRS, false, "what made the change privileged: group:<name>, roles:<value>, entitlements:<value>, attribute:<name>"),
    f("diff", OBJS, false, "attribute-level changes (the enriched event's `changes`)"),
    f("diff.path", STR, false, "change path, e.g. active, emails[type eq \"work\"].value"),
    f("diff.attribute", STR, false, "the path without value filters, e.g. emails.value"),
    f("diff.kind", STR, false, "ADDED, REMOVED or CHANGED"),
    f("diff.before", JSON, false, "value before (parsed JSON; null if absent)"),
    f("diff.after", JSON, false, "value after (parsed JSON; null if absent)"),
    f("memberships", OBJS, false, "group members added or removed"),
    f("memberships.group_id", STR, false, "the group's id"),
    f("memberships.group_name", STR, false, "the group's displayName"),
    f("memberships.member_id", STR, false, "the member's id"),
    f("memberships.member_name", STR, false, "the member's display"),
    f("memberships.member_type", STR, false, "User or Group"),
    f("memberships.kind", STR, false, "ADDED or REMOVED"),
    f("drift", OBJS, false, "where the response disagreed with the computed state"),
    f("drift.path", STR, false, "attribute path"),
    f("drift.attribute", STR, false, "the path without value filters"),
    f("drift.kind", STR, false, "ADDED, REMOVED or CHANGED"),
    f("drift.before", JSON, false, "computed value"),
    f("drift.after", JSON, false, "answered value"),
];

/// The documented field named `path` (case-insensitive).
pub fn field(path: &str) -> Option<&'static Field> {
    FIELDS.iter().find(|f| f.path.eq_ignore_ascii_case(path))
}

/// The view conditions see for `event`.
pub fn of(event: &EnrichedAuditEvent) -> Value {
    let e = &event.event;
    let mut v = Map::new();
    v.insert("id".into(), json!(e.event_id));
    v.insert("time".into(), json!(time_text(e.event_time)));
    v.insert("action".into(), json!(e.action.as_str()));
    v.insert("outcome".into(), json!(outcome_str(e.outcome)));
    v.insert(
        "principal".into(),
        json!({"id": e.principal.id, "type": e.principal.kind}),
    );
    v.insert(
        "actor".into(),
        match &event.actor {
            Some(a) => json!({
                "id": a.principal_id,
                "display_name": a.display_name,
                "roles": a.roles,
            }),
            None => Value::Null,
        },
    );
    v.insert(
        "source".into(),
        json!({"system": e.source.system, "ip": e.source.ip, "user_agent": e.source.user_agent}),
    );
    v.insert(
        "target".into(),
        json!({"system": e.target.system, "base_url": e.target.base_url}),
    );
    v.insert(
        "resource".into(),
        json!({
            "type": e.resource.kind,
            "id": e.resource.id,
            "external_id": e.resource.external_id,
            "user_name": e.resource.user_name,
            "display_name": e.resource.display_name,
        }),
    );
    v.insert(
        "request".into(),
        json!({"method": e.request.method, "path": e.request.path}),
    );
    v.insert(
        "response".into(),
        match &e.response {
            Some(r) => json!({"status": r.status}),
            None => Value::Null,
        },
    );
    v.insert(
        "error".into(),
        match &e.error {
            Some(x) => json!({"scim_type": x.scim_type, "detail": x.detail}),
            None => Value::Null,
        },
    );
    v.insert("correlation_id".into(), json!(e.correlation_id));
    v.insert("partial".into(), json!(event.partial));
    v.insert(
        "flags".into(),
        Value::Array(event.flags.iter().map(|f| json!(flag_str(*f))).collect()),
    );
    v.insert("privileged".into(), json!(event.privileged));
    v.insert(
        "diff".into(),
        Value::Array(event.changes.iter().map(change).collect()),
    );
    v.insert(
        "memberships".into(),
        Value::Array(
            event
                .memberships
                .iter()
                .map(|m| {
                    json!({
                        "group_id": m.group_id,
                        "group_name": m.group_name,
                        "member_id": m.member_id,
                        "member_name": m.member_name,
                        "member_type": m.member_type,
                        "kind": kind_str(m.kind),
                    })
                })
                .collect(),
        ),
    );
    v.insert(
        "drift".into(),
        Value::Array(event.drift.iter().map(change).collect()),
    );
    Value::Object(v)
}

fn change(c: &AttributeChange) -> Value {
    json!({
        "path": c.path,
        "attribute": c.attribute(),
        "kind": kind_str(c.kind),
        "before": parse_json_text(c.before.as_deref()),
        "after": parse_json_text(c.after.as_deref()),
    })
}

/// JSON text as a value; text that is not JSON stays a string.
fn parse_json_text(text: Option<&str>) -> Value {
    match text {
        None => Value::Null,
        Some(t) => serde_json::from_str(t).unwrap_or_else(|_| Value::String(t.to_string())),
    }
}

/// Event time as RFC 3339 UTC with milliseconds.
pub fn time_text(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
        .unwrap_or_else(|| ms.to_string())
}

pub(crate) fn outcome_str(o: scimtrail_core::schema::Outcome) -> &'static str {
    use scimtrail_core::schema::Outcome;
    match o {
        Outcome::Success => "SUCCESS",
        Outcome::Failure => "FAILURE",
        Outcome::Unknown => "UNKNOWN",
    }
}

pub(crate) fn flag_str(f: EventFlag) -> &'static str {
    match f {
        EventFlag::Privileged => "PRIVILEGED",
        EventFlag::Activated => "ACTIVATED",
        EventFlag::Deactivated => "DEACTIVATED",
        EventFlag::IdentityChange => "IDENTITY_CHANGE",
        EventFlag::Drift => "DRIFT",
        EventFlag::UnknownPrincipal => "UNKNOWN_PRINCIPAL",
        EventFlag::Other => "OTHER",
    }
}

fn kind_str(k: ChangeKind) -> &'static str {
    match k {
        ChangeKind::Added => "ADDED",
        ChangeKind::Removed => "REMOVED",
        ChangeKind::Changed => "CHANGED",
    }
}

/// The value of a groupable field, read straight from the event (routing
/// calls this for every event, so it does not build the view). `None` when
/// the event does not have it, or `path` is not groupable.
pub fn scalar<'e>(event: &'e EnrichedAuditEvent, path: &str) -> Option<&'e str> {
    let e = &event.event;
    let p = path.to_ascii_lowercase();
    let v: Option<&'e str> = match p.as_str() {
        "action" => Some(e.action.as_str()),
        "outcome" => Some(outcome_str(e.outcome)),
        "principal.id" => Some(&e.principal.id),
        "principal.type" => Some(&e.principal.kind),
        "actor.id" => event.actor.as_ref().map(|a| a.principal_id.as_str()),
        "source.system" => Some(&e.source.system),
        "source.ip" => e.source.ip.as_deref(),
        "source.user_agent" => e.source.user_agent.as_deref(),
        "target.system" => Some(&e.target.system),
        "target.base_url" => e.target.base_url.as_deref(),
        "resource.type" => Some(&e.resource.kind),
        "resource.id" => e.resource.id.as_deref(),
        "resource.external_id" => e.resource.external_id.as_deref(),
        "resource.user_name" => e.resource.user_name.as_deref(),
        "resource.display_name" => e.resource.display_name.as_deref(),
        "request.method" => Some(&e.request.method),
        "error.scim_type" => e.error.as_ref().and_then(|x| x.scim_type.as_deref()),
        "correlation_id" => e.correlation_id.as_deref(),
        _ => None,
    };
    v.filter(|s| !s.is_empty())
}

/// The values at `path` in a view, as text: one for a single value, one per
/// element for lists (`memberships.member_id`), none for null or absent.
/// Objects and arrays of scalars nested deeper are given as JSON text.
pub fn values_at(view: &Value, path: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut parts = path.splitn(2, '.');
    let head = parts.next().unwrap_or_default();
    let rest = parts.next();
    collect(get_ci(view, head), rest, &mut out);
    out.sort();
    out.dedup();
    out
}

fn collect(v: Option<&Value>, rest: Option<&str>, out: &mut Vec<String>) {
    let Some(v) = v else { return };
    match (v, rest) {
        (Value::Array(items), _) => {
            for item in items {
                collect(Some(item), rest, out);
            }
        }
        (Value::Object(_), Some(rest)) => {
            let mut parts = rest.splitn(2, '.');
            let head = parts.next().unwrap_or_default();
            collect(get_ci(v, head), parts.next(), out);
        }
        (Value::Null, _) => {}
        (Value::String(s), None) => out.push(s.clone()),
        (other, None) => out.push(other.to_string()),
        (_, Some(_)) => {}
    }
}

fn get_ci<'v>(v: &'v Value, name: &str) -> Option<&'v Value> {
    let obj = v.as_object()?;
    obj.get(name).or_else(|| {
        obj.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use scimtrail_core::schema::{fixtures, Actor, MembershipChange};

    fn event() -> EnrichedAuditEvent {
        let mut e = fixtures::enriched(fixtures::audit_event("e1"));
        e.event.event_time = 1_767_225_600_000; // 2026-01-01T00:00:00Z
        e.actor = Some(Actor {
            principal_id: "okta-provisioner".into(),
            display_name: Some("Okta".into()),
            roles: vec!["service-connector".into()],
        });
        e.flags = vec![EventFlag::Deactivated, EventFlag::Privileged];
        e.changes = vec![AttributeChange {
            path: "active".into(),
            kind: ChangeKind::Changed,
            before: Some("true".into()),
            after: Some("false".into()),
        }];
        e.memberships = vec![
            MembershipChange {
                group_id: Some("g1".into()),
                group_name: Some("Admins".into()),
                member_id: "u1".into(),
                member_name: None,
                member_type: Some("User".into()),
                kind: ChangeKind::Added,
            },
            MembershipChange {
                group_id: Some("g1".into()),
                group_name: Some("Admins".into()),
                member_id: "u2".into(),
                member_name: None,
                member_type: Some("User".into()),
                kind: ChangeKind::Removed,
            },
        ];
        e
    }

    #[test]
    fn the_view_has_every_documented_field_and_no_other() {
        let v = of(&event());
        let obj = v.as_object().expect("object");
        for (k, val) in obj {
            assert!(field(k).is_some(), "view field {k} is not documented");
            if let Value::Object(sub) = val {
                for s in sub.keys() {
                    assert!(field(&format!("{k}.{s}")).is_some(), "{k}.{s}");
                }
            }
            if let Some(Value::Object(sub)) = val.as_array().and_then(|a| a.first()) {
                for s in sub.keys() {
                    assert!(field(&format!("{k}.{s}")).is_some(), "{k}.{s}");
                }
            }
        }
        for f in FIELDS {
            let top = f.path.split('.').next().unwrap_or_default();
            assert!(obj.contains_key(top), "documented {} missing", f.path);
        }
    }

    #[test]
    fn conditions_from_the_docs_match_the_view() {
        use scimtrail_core::scim::{Filter, NoSchema};
        let v = of(&event());
        for (text, want) in [
            (r#"action eq "PATCH" and resource.type eq "User""#, true),
            (r#"diff[path eq "active" and after eq false]"#, true),
            (r#"diff[path eq "active" and after eq true]"#, false),
            (r#"actor.roles co "connector""#, true),
            (r#"flags eq "DEACTIVATED""#, true),
            (
                r#"memberships[kind eq "ADDED" and group_name eq "admins"]"#,
                true,
            ),
            (r#"time ge "2025-12-31T23:00:00Z""#, true),
            (r#"time gt "2026-01-01T00:00:00.001Z""#, false),
            ("response eq null", true),
        ] {
            let filter = Filter::parse(text).expect("parses");
            assert_eq!(filter.matches(&v, &NoSchema), want, "{text}");
        }
    }

    #[test]
    fn groupable_fields_are_read_without_the_view() {
        let e = event();
        let v = of(&e);
        for f in FIELDS.iter().filter(|f| f.groupable) {
            let direct = scalar(&e, f.path).map(str::to_string);
            let via_view = values_at(&v, f.path).into_iter().next();
            assert_eq!(direct, via_view, "{}", f.path);
        }
        assert_eq!(scalar(&e, "diff.path"), None, "not groupable");
    }

    #[test]
    fn values_at_flattens_lists() {
        let v = of(&event());
        assert_eq!(values_at(&v, "memberships.member_id"), vec!["u1", "u2"]);
        assert_eq!(values_at(&v, "actor.roles"), vec!["service-connector"]);
        assert_eq!(values_at(&v, "diff.after"), vec!["false"]);
        assert!(values_at(&v, "source.ip").is_empty());
    }
}
