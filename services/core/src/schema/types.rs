//! Rust types of the Avro records in `schemas/`. Field names and order follow the
//! `.avsc` files; the codec resolves them against the parsed schema, and the
//! round-trip and golden-bytes tests pin the mapping.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AuditAction {
    Create,
    Replace,
    Patch,
    Delete,
    Read,
    AccessDenied,
    Other,
}

impl AuditAction {
    /// Whether the action changes a resource (and so counts as a change).
    pub fn is_write(self) -> bool {
        matches!(
            self,
            Self::Create | Self::Replace | Self::Patch | Self::Delete
        )
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "CREATE",
            Self::Replace => "REPLACE",
            Self::Patch => "PATCH",
            Self::Delete => "DELETE",
            Self::Read => "READ",
            Self::AccessDenied => "ACCESS_DENIED",
            Self::Other => "OTHER",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Outcome {
    Success,
    Failure,
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    pub system: String,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    pub system: String,
    pub base_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resource {
    #[serde(rename = "type")]
    pub kind: String,
    pub id: Option<String>,
    pub external_id: Option<String>,
    pub user_name: Option<String>,
    pub display_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// JSON text.
    pub body: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    pub status: i32,
    /// JSON text.
    pub body: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScimError {
    pub scim_type: Option<String>,
    pub detail: Option<String>,
}

/// `schemas/audit_event.avsc`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    pub event_id: String,
    /// Milliseconds since the Unix epoch.
    pub event_time: i64,
    pub ingest_time: i64,
    pub action: AuditAction,
    pub outcome: Outcome,
    pub principal: Principal,
    pub source: Source,
    pub target: Target,
    pub resource: Resource,
    pub request: Request,
    pub response: Option<Response>,
    pub error: Option<ScimError>,
    pub correlation_id: Option<String>,
}

impl AuditEvent {
    /// The Kafka key: every event of one resource lands on one partition, so the
    /// enricher's per-resource state is local. A resource without an id (a failed
    /// create) is keyed by the most specific name it has.
    pub fn partition_key(&self) -> String {
        let id = self
            .resource
            .id
            .as_deref()
            .map(str::to_string)
            .or_else(|| {
                self.resource
                    .external_id
                    .as_ref()
                    .map(|e| format!("externalId:{e}"))
            })
            .or_else(|| {
                self.resource
                    .user_name
                    .as_ref()
                    .map(|u| format!("userName:{u}"))
            })
            .or_else(|| {
                self.resource
                    .display_name
                    .as_ref()
                    .map(|d| format!("displayName:{d}"))
            })
            .unwrap_or_else(|| format!("event:{}", self.event_id));
        resource_key(&self.target.system, &self.resource.kind, &id)
    }
}

/// Key of a resource: target system, resource type and id joined by U+001F
/// (unit separator), which none of them can contain in practice.
pub fn resource_key(target: &str, kind: &str, id: &str) -> String {
    format!("{target}\u{1f}{kind}\u{1f}{id}")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ChangeKind {
    Added,
    Removed,
    Changed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttributeChange {
    pub path: String,
    pub kind: ChangeKind,
    /// JSON text.
    pub before: Option<String>,
    /// JSON text.
    pub after: Option<String>,
}

/// The attribute a change path is about: value filters removed
/// (`members[value eq "u1"]` → `members`, `emails[type eq "work"].value` →
/// `emails.value`), so lineage stays one entry per attribute however many
/// elements it has.
pub fn attribute_of(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for c in path.chars() {
        if depth > 0 {
            match (in_string, escaped, c) {
                (true, true, _) => escaped = false,
                (true, false, '\\') => escaped = true,
                (_, false, '"') => in_string = !in_string,
                (false, _, '[') => depth += 1,
                (false, _, ']') => depth -= 1,
                _ => {}
            }
            continue;
        }
        if c == '[' {
            depth = 1;
        } else {
            out.push(c);
        }
    }
    out
}

impl AttributeChange {
    /// The attribute this change is about (see [`attribute_of`]).
    pub fn attribute(&self) -> String {
        attribute_of(&self.path)
    }
}

/// An event's link in the hash chain of its output partition
/// (see [`crate::chain`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainLink {
    pub partition: i32,
    pub sequence: i64,
    /// Lower-case hex.
    pub prev_hash: String,
    /// Lower-case hex.
    pub hash: String,
}

/// `schemas/enriched_audit_event.avsc`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrichedAuditEvent {
    pub event: AuditEvent,
    pub enriched_time: i64,
    pub changes: Vec<AttributeChange>,
    pub partial: bool,
    pub before: Option<String>,
    pub after: Option<String>,
    /// `None` only in events written before chains existed.
    #[serde(default)]
    pub chain: Option<ChainLink>,
    #[serde(default)]
    pub actor: Option<Actor>,
    #[serde(default)]
    pub flags: Vec<EventFlag>,
    #[serde(default)]
    pub privileged: Vec<String>,
    #[serde(default)]
    pub memberships: Vec<MembershipChange>,
    #[serde(default)]
    pub drift: Vec<AttributeChange>,
    #[serde(default)]
    pub trace: Option<Trace>,
}

/// The principal behind a change, with its roles (`Actor` in the schema).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub principal_id: String,
    pub display_name: Option<String>,
    #[serde(default)]
    pub roles: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EventFlag {
    Privileged,
    Activated,
    Deactivated,
    IdentityChange,
    Drift,
    UnknownPrincipal,
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembershipChange {
    pub group_id: Option<String>,
    pub group_name: Option<String>,
    pub member_id: String,
    pub member_name: Option<String>,
    pub member_type: Option<String>,
    pub kind: ChangeKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trace {
    pub source_system: String,
    pub target_system: String,
    pub correlation_id: Option<String>,
    pub captured_time: i64,
    pub ingested_time: i64,
    pub enriched_time: i64,
    #[serde(default)]
    pub lineage: Vec<AttributeOrigin>,
}

/// The event that last set an attribute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttributeOrigin {
    pub path: String,
    pub event_id: String,
    pub event_time: i64,
    pub source_system: String,
    pub principal_id: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

/// `schemas/alert.avsc`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    pub alert_id: String,
    pub rule_id: String,
    pub rule_kind: String,
    pub severity: Severity,
    pub title: String,
    pub summary: String,
    pub group_key: BTreeMap<String, String>,
    pub window_start: i64,
    pub window_end: i64,
    pub count: i64,
    pub threshold: i64,
    pub first_event_time: i64,
    pub last_event_time: i64,
    pub evidence_event_ids: Vec<String>,
    pub principal: Option<String>,
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub runbook_url: Option<String>,
    #[serde(default)]
    pub suppressed: i64,
}

/// `schemas/chain_checkpoint.avsc` (see [`crate::chain::Signer`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainCheckpoint {
    pub topic: String,
    pub partition: i32,
    pub sequence: i64,
    /// Lower-case hex.
    pub head_hash: String,
    /// Milliseconds since the Unix epoch.
    pub time: i64,
    pub key_id: String,
    /// Lower-case hex Ed25519 signature.
    pub signature: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_attribute_is_its_change_path_without_value_filters() {
        assert_eq!(attribute_of(r#"members[value eq "u1"]"#), "members");
        assert_eq!(
            attribute_of(r#"emails[type eq "work"].value"#),
            "emails.value"
        );
        assert_eq!(attribute_of(r#"x[value eq "a]\"b"]"#), "x");
        assert_eq!(attribute_of("name.givenName"), "name.givenName");
    }
}
