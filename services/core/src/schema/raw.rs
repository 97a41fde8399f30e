//! The raw contract: one captured SCIM exchange as JSON on `scim.raw.v1`.
//! `schemas/scim-raw.schema.json` documents it; a test keeps the two in step.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RawExchange {
    pub id: String,
    /// RFC 3339.
    pub time: String,
    pub source: RawSource,
    pub principal: RawPrincipal,
    pub target: RawTarget,
    pub request: RawRequest,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<RawResponse>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RawSource {
    pub system: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RawPrincipal {
    pub id: String,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RawTarget {
    pub system: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RawRequest {
    pub method: String,
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RawResponse {
    pub status: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<serde_json::Value>,
}

/// Resource type served at a SCIM endpoint: the core types by their schema
/// name (`Users` → `User`, `Groups` → `Group`), other types by their endpoint.
pub fn resource_type(endpoint: &str) -> &str {
    match endpoint {
        "Users" => "User",
        "Groups" => "Group",
        other => other,
    }
}

/// The key to produce a raw record with: its resource (target system, resource
/// type, id from the path or, for a create, from the response), the same key
/// ingest gives the resulting `AuditEvent`, so one resource's exchanges stay in
/// order on one partition from the start.
pub fn record_key(record: &serde_json::Value) -> String {
    use serde_json::Value;
    let text = |p: &str| record.pointer(p).and_then(Value::as_str).unwrap_or("");
    let path = text("/request/path");
    let path = path.split(['?', '#']).next().unwrap_or(path);
    let mut segments = path.trim_start_matches('/').split('/');
    let endpoint = segments.next().unwrap_or("");
    let id = segments
        .next()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| text("/response/body/id"));
    super::types::resource_key(text("/target/system"), resource_type(endpoint), id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn records_of_one_resource_share_a_key() {
        let create = json!({"target": {"system": "gh"}, "request": {"method": "POST", "path": "/Users"},
            "response": {"status": 201, "body": {"id": "u1"}}});
        let patch = json!({"target": {"system": "gh"}, "request": {"method": "PATCH", "path": "/Users/u1?x=1"}});
        assert_eq!(record_key(&create), record_key(&patch));
        assert_eq!(record_key(&patch), "gh\u{1f}User\u{1f}u1");
        assert_eq!(resource_type("Devices"), "Devices");
    }
}
