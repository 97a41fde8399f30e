//! Raw exchange → `AuditEvent`: the ingest stage.
//!
//! Pure: no Kafka here. Each raw record ends in exactly one of: an event, a
//! dead letter with a reason ([`Poison`]), or (a read that is not recorded)
//! nothing.

use prometheus::{IntCounterVec, Registry};
use serde_json::Value;

use scimtrail_core::runner::{InputRecord, Output, Poison, Stage, StageError};
use scimtrail_core::schema::raw::RawExchange;
use scimtrail_core::schema::{
    AuditAction, AuditEvent, AvroCodec, Outcome, Principal, Request, Resource, Response, ScimError,
    Source, Target,
};

use crate::config::IngestConfig;

const REDACTED: &str = "[REDACTED]";

/// The ingest stage.
pub struct Normalizer {
    config: IngestConfig,
    codec: AvroCodec<AuditEvent>,
    output_topic: String,
    skipped: IntCounterVec,
    clock: fn() -> i64,
}

fn wall_clock_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Normalizer {
    pub fn new(
        config: IngestConfig,
        codec: AvroCodec<AuditEvent>,
        output_topic: String,
        registry: &Registry,
    ) -> Self {
        let skipped = scimtrail_core::metrics::counter_vec(
            registry,
            "ingest",
            "records_skipped_total",
            "Valid raw records that produce no event, by reason (read: reads are not recorded).",
            &["reason"],
        );
        skipped.with_label_values(&["read"]);
        Normalizer {
            config,
            codec,
            output_topic,
            skipped,
            clock: wall_clock_ms,
        }
    }

    /// Fixes the clock (tests).
    pub fn with_clock(mut self, clock: fn() -> i64) -> Self {
        self.clock = clock;
        self
    }

    /// Normalizes one raw record. `Ok(None)`: valid, but nothing to record.
    pub fn normalize(&self, payload: &[u8]) -> Result<Option<AuditEvent>, Poison> {
        normalize(&self.config, payload, (self.clock)())
    }
}

impl Stage for Normalizer {
    fn process(
        &mut self,
        record: &InputRecord<'_>,
        out: &mut Vec<Output>,
    ) -> Result<(), StageError> {
        let payload = record.payload.ok_or_else(|| {
            Poison::new("empty", "record has no value (tombstone or empty payload)")
        })?;
        match self.normalize(payload)? {
            None => {
                self.skipped.with_label_values(&["read"]).inc();
                Ok(())
            }
            Some(event) => {
                let bytes = self.codec.encode(&event).map_err(|e| {
                    Poison::new("unencodable", format!("cannot encode the AuditEvent: {e}"))
                })?;
                out.push(Output::keyed(
                    self.output_topic.clone(),
                    event.partition_key(),
                    bytes,
                ));
                Ok(())
            }
        }
    }
}

/// What the request path addresses.
struct Addressed<'a> {
    endpoint: &'a str,
    id: Option<&'a str>,
    search: bool,
}

fn parse_path(path: &str) -> Result<Addressed<'_>, Poison> {
    let path = path.split(['?', '#']).next().unwrap_or(path);
    let Some(rest) = path.strip_prefix('/') else {
        return Err(Poison::new(
            "invalid_path",
            format!("request.path `{path}` must start with `/`"),
        ));
    };
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    match segments.as_slice() {
        [] => Err(Poison::new(
            "invalid_path",
            "request.path `/` names no SCIM endpoint",
        )),
        [endpoint] => Ok(Addressed {
            endpoint,
            id: None,
            search: *endpoint == ".search",
        }),
        [endpoint, ".search"] => Ok(Addressed {
            endpoint,
            id: None,
            search: true,
        }),
        [endpoint, id] => Ok(Addressed {
            endpoint,
            id: Some(id),
            search: false,
        }),
        _ => Err(Poison::new(
            "invalid_path",
            format!("request.path `{path}` has more segments than /<ResourceType>/<id>"),
        )),
    }
}

fn redact(v: &mut Value, names: &[String]) {
    match v {
        Value::Object(map) => {
            for (k, val) in map.iter_mut() {
                // Extension attributes are addressed as `urn:…:attr`.
                let leaf = k.rsplit(':').next().unwrap_or(k);
                if names.iter().any(|n| n.eq_ignore_ascii_case(leaf)) {
                    *val = Value::String(REDACTED.into());
                } else {
                    redact(val, names);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| redact(i, names)),
        _ => {}
    }
}

fn str_attr(body: Option<&Value>, name: &str) -> Option<String> {
    body.and_then(|b| b.get(name))
        .and_then(Value::as_str)
        .map(str::to_string)
}

fn non_empty(field: &str, v: &str) -> Result<(), Poison> {
    if v.trim().is_empty() {
        return Err(Poison::new(
            "invalid_shape",
            format!("`{field}` must not be empty"),
        ));
    }
    Ok(())
}

/// The normalization itself; `now_ms` is the ingest time.
pub fn normalize(
    cfg: &IngestConfig,
    payload: &[u8],
    now_ms: i64,
) -> Result<Option<AuditEvent>, Poison> {
    if payload.len() > cfg.max_record_bytes {
        return Err(Poison::new(
            "too_large",
            format!(
                "record is {} bytes, over ingest.max_record_bytes ({})",
                payload.len(),
                cfg.max_record_bytes
            ),
        ));
    }
    let value: Value = serde_json::from_slice(payload)
        .map_err(|e| Poison::new("invalid_json", format!("not JSON: {e}")))?;
    if !value.is_object() {
        return Err(Poison::new("invalid_shape", "record must be a JSON object"));
    }
    let raw: RawExchange = serde_path_to_error::deserialize(&value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        let at = if path == "." {
            String::new()
        } else {
            format!(" at `{path}`")
        };
        Poison::new(
            "invalid_shape",
            format!("does not match the raw contract{at}: {inner}"),
        )
    })?;
    non_empty("id", &raw.id)?;
    non_empty("source.system", &raw.source.system)?;
    non_empty("principal.id", &raw.principal.id)?;
    non_empty("target.system", &raw.target.system)?;
    if raw.id.len() > 256 {
        return Err(Poison::new(
            "invalid_shape",
            "`id` is longer than 256 characters",
        ));
    }
    let event_time = chrono::DateTime::parse_from_rfc3339(&raw.time)
        .map_err(|e| {
            Poison::new(
                "invalid_time",
                format!("`time` `{}` is not RFC 3339: {e}", raw.time),
            )
        })?
        .timestamp_millis();
    let method = raw.request.method.to_ascii_uppercase();
    if !matches!(method.as_str(), "GET" | "POST" | "PUT" | "PATCH" | "DELETE") {
        return Err(Poison::new(
            "unknown_method",
            format!(
                "`request.method` `{}` is not one of GET, POST, PUT, PATCH, DELETE",
                raw.request.method
            ),
        ));
    }
    let addressed = parse_path(&raw.request.path)?;
    if let Some(r) = &raw.response {
        if !(100..=599).contains(&r.status) {
            return Err(Poison::new(
                "invalid_shape",
                format!("`response.status` {} is not an HTTP status", r.status),
            ));
        }
    }
    let status = raw.response.as_ref().map(|r| r.status);
    let denied = matches!(status, Some(401 | 403));

    let action = if denied {
        AuditAction::AccessDenied
    } else {
        match (method.as_str(), addressed.id, addressed.search) {
            ("GET", _, _) | ("POST", _, true) => AuditAction::Read,
            ("POST", None, false) if addressed.endpoint == "Bulk" => {
                return Err(Poison::new(
                    "unsupported",
                    "/Bulk requests are not expanded into events by this version; the record is kept here for replay",
                ))
            }
            ("POST", None, false) => AuditAction::Create,
            ("POST", Some(id), _) => {
                return Err(Poison::new(
                    "invalid_path",
                    format!("POST to a resource (`{}`, id `{id}`); creates go to the collection", raw.request.path),
                ))
            }
            ("PUT", Some(_), _) => AuditAction::Replace,
            ("PATCH", Some(_), _) => AuditAction::Patch,
            ("DELETE", Some(_), _) => AuditAction::Delete,
            (m, None, _) => {
                return Err(Poison::new(
                    "invalid_path",
                    format!("{m} `{}` needs a resource id in the path", raw.request.path),
                ))
            }
            (m, _, _) => {
                return Err(Poison::new("unknown_method", format!("unsupported method {m}")));
            }
        }
    };
    if action == AuditAction::Read && !cfg.record_reads {
        return Ok(None);
    }

    let outcome = match status {
        None => Outcome::Unknown,
        Some(s) if (200..300).contains(&s) => Outcome::Success,
        Some(s) if s >= 400 => Outcome::Failure,
        // 1xx/3xx: the request did not complete as a SCIM operation.
        Some(_) => Outcome::Unknown,
    };

    let mut req_body = raw.request.body.clone().filter(|b| !b.is_null());
    let mut resp_body = raw
        .response
        .as_ref()
        .and_then(|r| r.body.clone())
        .filter(|b| !b.is_null());
    if let Some(b) = req_body.as_mut() {
        redact(b, &cfg.redact_attributes);
    }
    if let Some(b) = resp_body.as_mut() {
        redact(b, &cfg.redact_attributes);
    }

    let is_resource = |b: &&Value| b.get("schemas").is_some() || b.get("id").is_some();
    let resource_body = resp_body
        .as_ref()
        .filter(is_resource)
        .filter(|_| outcome == Outcome::Success);
    let id = addressed.id.map(str::to_string).or_else(|| {
        if action == AuditAction::Create {
            str_attr(resource_body, "id")
        } else {
            None
        }
    });
    let pick =
        |name: &str| str_attr(resource_body, name).or_else(|| str_attr(req_body.as_ref(), name));

    let error = if outcome == Outcome::Failure {
        let b = resp_body.as_ref();
        Some(ScimError {
            scim_type: str_attr(b, "scimType"),
            detail: str_attr(b, "detail").or_else(|| status.map(|s| format!("HTTP {s}"))),
        })
    } else {
        None
    };

    Ok(Some(AuditEvent {
        event_id: raw.id,
        event_time,
        ingest_time: now_ms,
        action,
        outcome,
        principal: Principal {
            id: raw.principal.id,
            kind: raw.principal.kind.unwrap_or_else(|| "unknown".into()),
        },
        source: Source {
            system: raw.source.system,
            ip: raw.source.ip,
            user_agent: raw.source.user_agent,
        },
        target: Target {
            system: raw.target.system,
            base_url: raw.target.base_url,
        },
        resource: Resource {
            kind: scimtrail_core::schema::raw::resource_type(addressed.endpoint).to_string(),
            id,
            external_id: pick("externalId"),
            user_name: pick("userName"),
            display_name: pick("displayName"),
        },
        request: Request {
            method,
            path: raw.request.path,
            body: req_body.map(|b| b.to_string()),
        },
        response: raw.response.map(|r| Response {
            status: i32::from(r.status),
            body: resp_body.map(|b| b.to_string()),
        }),
        error,
        correlation_id: raw.correlation_id,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cfg() -> IngestConfig {
        IngestConfig::default()
    }

    fn raw(method: &str, path: &str, status: Option<u16>) -> Value {
        let mut v = json!({
            "id": "x-1",
            "time": "2026-11-29T10:00:00.250Z",
            "source": {"system": "okta-prod", "ip": "203.0.113.7", "user_agent": "Okta"},
            "principal": {"id": "okta-provisioner", "type": "service"},
            "target": {"system": "github-enterprise", "base_url": "https://scim.example.test/scim/v2"},
            "request": {"method": method, "path": path, "body": {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "bjensen", "password": "hunter2"}},
            "correlation_id": "c-1"
        });
        if let Some(s) = status {
            v["response"] = json!({"status": s, "body": {"id": "2819c223", "userName": "bjensen", "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"]}});
        }
        v
    }

    fn run(v: &Value) -> Result<Option<AuditEvent>, Poison> {
        normalize(&cfg(), v.to_string().as_bytes(), 42)
    }

    #[test]
    fn create_takes_the_id_from_the_response() {
        let e = run(&raw("POST", "/Users", Some(201)))
            .expect("valid")
            .expect("event");
        assert_eq!(e.action, AuditAction::Create);
        assert_eq!(e.outcome, Outcome::Success);
        assert_eq!(e.resource.kind, "User");
        assert_eq!(e.resource.id.as_deref(), Some("2819c223"));
        assert_eq!(e.resource.user_name.as_deref(), Some("bjensen"));
        assert_eq!(e.event_time, 1_795_946_400_250);
        assert_eq!(e.ingest_time, 42);
        assert_eq!(e.principal.kind, "service");
        assert_eq!(
            e.partition_key(),
            "github-enterprise\u{1f}User\u{1f}2819c223"
        );
    }

    #[test]
    fn methods_map_to_actions() {
        for (m, p, a) in [
            ("PUT", "/Users/abc", AuditAction::Replace),
            ("patch", "/Groups/g1", AuditAction::Patch),
            ("DELETE", "/Users/abc", AuditAction::Delete),
        ] {
            let e = run(&raw(m, p, Some(200))).expect("valid").expect("event");
            assert_eq!(e.action, a, "{m} {p}");
            assert_eq!(e.request.method, m.to_ascii_uppercase());
        }
        let e = run(&raw("PATCH", "/Devices/d1", Some(200)))
            .expect("valid")
            .expect("event");
        assert_eq!(e.resource.kind, "Devices");
        assert_eq!(e.resource.id.as_deref(), Some("d1"));
    }

    #[test]
    fn failures_carry_the_scim_error() {
        let mut v = raw("POST", "/Users", Some(409));
        v["response"]["body"] = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"], "status": "409", "scimType": "uniqueness", "detail": "userName taken"});
        let e = run(&v).expect("valid").expect("event");
        assert_eq!(e.outcome, Outcome::Failure);
        assert_eq!(e.resource.id, None);
        let err = e.error.clone().expect("error");
        assert_eq!(err.scim_type.as_deref(), Some("uniqueness"));
        assert_eq!(err.detail.as_deref(), Some("userName taken"));
        assert!(
            e.partition_key().ends_with("userName:bjensen"),
            "{}",
            e.partition_key()
        );
    }

    #[test]
    fn denied_requests_are_recorded_even_for_reads() {
        let e = run(&raw("GET", "/Users/abc", Some(403)))
            .expect("valid")
            .expect("event");
        assert_eq!(e.action, AuditAction::AccessDenied);
        assert_eq!(e.outcome, Outcome::Failure);
    }

    #[test]
    fn reads_are_skipped_unless_configured() {
        assert_eq!(
            run(&raw("GET", "/Users?filter=x", Some(200))).expect("valid"),
            None
        );
        let c = IngestConfig {
            record_reads: true,
            ..cfg()
        };
        let e = normalize(
            &c,
            raw("POST", "/Users/.search", Some(200))
                .to_string()
                .as_bytes(),
            0,
        )
        .expect("valid")
        .expect("event");
        assert_eq!(e.action, AuditAction::Read);
    }

    #[test]
    fn no_response_is_unknown_outcome() {
        let e = run(&raw("DELETE", "/Users/abc", None))
            .expect("valid")
            .expect("event");
        assert_eq!(e.outcome, Outcome::Unknown);
        assert!(e.response.is_none());
    }

    #[test]
    fn passwords_are_redacted_everywhere() {
        let mut v = raw("POST", "/Users", Some(201));
        v["request"]["body"]["urn:ietf:params:scim:schemas:extension:x:2.0:User:PassWord"] =
            json!("s3cret");
        let e = run(&v).expect("valid").expect("event");
        let body = e.request.body.expect("body");
        assert!(
            !body.contains("hunter2") && !body.contains("s3cret"),
            "{body}"
        );
        assert!(body.contains(REDACTED));
    }

    #[test]
    fn invalid_records_name_the_problem() {
        let cases: Vec<(Vec<u8>, &str, &str)> = vec![
            (b"not json".to_vec(), "invalid_json", "not JSON"),
            (b"[1,2]".to_vec(), "invalid_shape", "object"),
            (
                {
                    let mut v = raw("POST", "/Users", None);
                    v["principal"].as_object_mut().map(|o| o.remove("id"));
                    v.to_string().into_bytes()
                },
                "invalid_shape",
                "principal",
            ),
            (
                {
                    let mut v = raw("POST", "/Users", None);
                    v["time"] = json!("yesterday");
                    v.to_string().into_bytes()
                },
                "invalid_time",
                "yesterday",
            ),
            (
                raw("TRACE", "/Users", None).to_string().into_bytes(),
                "unknown_method",
                "TRACE",
            ),
            (
                raw("PATCH", "/Users", None).to_string().into_bytes(),
                "invalid_path",
                "needs a resource id",
            ),
            (
                raw("POST", "Users", None).to_string().into_bytes(),
                "invalid_path",
                "must start with",
            ),
            (
                raw("POST", "/Users/a/b/c", None).to_string().into_bytes(),
                "invalid_path",
                "segments",
            ),
            (
                raw("POST", "/Bulk", Some(200)).to_string().into_bytes(),
                "unsupported",
                "Bulk",
            ),
            (
                {
                    let mut v = raw("POST", "/Users", None);
                    v["source"]["system"] = json!("");
                    v.to_string().into_bytes()
                },
                "invalid_shape",
                "source.system",
            ),
            (
                {
                    let mut v = raw("POST", "/Users", None);
                    v["response"] = json!({"status": 999});
                    v.to_string().into_bytes()
                },
                "invalid_shape",
                "999",
            ),
            (vec![b' '; 2 * 1024 * 1024], "too_large", "max_record_bytes"),
        ];
        for (payload, kind, needle) in cases {
            let err = normalize(&cfg(), &payload, 0).expect_err("must be rejected");
            assert_eq!(err.kind, kind, "{err}");
            assert!(err.reason.contains(needle), "{err} should mention {needle}");
        }
    }

    /// The JSON Schema in `schemas/` and the normalizer agree on what is valid.
    #[test]
    fn json_schema_and_normalizer_agree() {
        let schema: Value =
            serde_json::from_str(scimtrail_core::schema::RAW_JSON_SCHEMA).expect("schema is JSON");
        let validator = jsonschema::validator_for(&schema).expect("schema compiles");
        let mut samples = vec![
            raw("POST", "/Users", Some(201)),
            raw("PUT", "/Users/1", Some(200)),
            raw("DELETE", "/Groups/1", None),
            raw("TRACE", "/Users", None),
            raw("POST", "Users", None),
        ];
        let mut missing = raw("POST", "/Users", None);
        missing.as_object_mut().map(|o| o.remove("target"));
        samples.push(missing);
        let mut bad_status = raw("POST", "/Users", None);
        bad_status["response"] = json!({"status": "200"});
        samples.push(bad_status);
        let mut nulls = raw("POST", "/Users", Some(201));
        nulls["source"]["ip"] = Value::Null;
        nulls["correlation_id"] = Value::Null;
        samples.push(nulls);
        for s in samples {
            let by_schema = validator.is_valid(&s);
            let by_code = run(&s).is_ok();
            assert_eq!(by_schema, by_code, "disagreement on {s}");
        }
    }
}
