//! The schemas in `schemas/` are the contract between services: these tests pin
//! their Rust mapping, their encoding, their documentation and their evolution.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use apache_avro::schema_compatibility::SchemaCompatibility;
use apache_avro::Schema;
use serde_json::Value;

use scimtrail_core::schema::avro::Codecs;
use scimtrail_core::schema::*;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn sample_event() -> AuditEvent {
    AuditEvent {
        event_id: "7d3c1f5e-golden".into(),
        event_time: 1_767_225_600_123,
        ingest_time: 1_767_225_600_456,
        action: AuditAction::Patch,
        outcome: Outcome::Failure,
        principal: Principal {
            id: "okta-provisioner".into(),
            kind: "service".into(),
        },
        source: Source {
            system: "okta-prod".into(),
            ip: Some("203.0.113.7".into()),
            user_agent: None,
        },
        target: Target {
            system: "github-enterprise".into(),
            base_url: Some("https://scim.example.test/scim/v2".into()),
        },
        resource: Resource {
            kind: "User".into(),
            id: Some("2819c223".into()),
            external_id: None,
            user_name: Some("bjensen".into()),
            display_name: None,
        },
        request: Request {
            method: "PATCH".into(),
            path: "/Users/2819c223".into(),
            body: Some("{\"Operations\":[]}".into()),
        },
        response: Some(Response {
            status: 404,
            body: None,
        }),
        error: Some(ScimError {
            scim_type: Some("noTarget".into()),
            detail: Some("no such user".into()),
        }),
        correlation_id: None,
    }
}

fn sample_enriched() -> EnrichedAuditEvent {
    EnrichedAuditEvent {
        event: sample_event(),
        enriched_time: 1_767_225_600_789,
        changes: vec![
            AttributeChange {
                path: "active".into(),
                kind: ChangeKind::Changed,
                before: Some("true".into()),
                after: Some("false".into()),
            },
            AttributeChange {
                path: "title".into(),
                kind: ChangeKind::Removed,
                before: Some("\"Rep\"".into()),
                after: None,
            },
        ],
        partial: false,
        before: Some("{}".into()),
        after: None,
        chain: Some(ChainLink {
            partition: 2,
            sequence: 41,
            prev_hash: "00".repeat(32),
            hash: "ab".repeat(32),
        }),
        actor: Some(Actor {
            principal_id: "okta-provisioner".into(),
            display_name: Some("Okta".into()),
            roles: vec!["service-connector".into()],
        }),
        flags: vec![EventFlag::Deactivated, EventFlag::Privileged],
        privileged: vec!["group:Admins".into()],
        memberships: vec![MembershipChange {
            group_id: Some("g1".into()),
            group_name: Some("Admins".into()),
            member_id: "u1".into(),
            member_name: None,
            member_type: Some("User".into()),
            kind: ChangeKind::Removed,
        }],
        drift: vec![AttributeChange {
            path: "title".into(),
            kind: ChangeKind::Changed,
            before: Some("\"A\"".into()),
            after: Some("\"B\"".into()),
        }],
        trace: Some(Trace {
            source_system: "okta".into(),
            target_system: "github".into(),
            correlation_id: Some("c1".into()),
            captured_time: 1,
            ingested_time: 2,
            enriched_time: 3,
            lineage: vec![AttributeOrigin {
                path: "active".into(),
                event_id: "e0".into(),
                event_time: 0,
                source_system: "okta".into(),
                principal_id: "okta-provisioner".into(),
            }],
        }),
    }
}

fn sample_alert() -> Alert {
    Alert {
        alert_id: "0123456789abcdef0123456789abcdef".into(),
        rule_id: "burst.principal".into(),
        rule_kind: "threshold".into(),
        severity: Severity::High,
        title: "Burst of changes by okta-provisioner".into(),
        summary: "okta-provisioner made 21 changes".into(),
        group_key: BTreeMap::from([("principal".into(), "okta-provisioner".into())]),
        window_start: 1_767_225_600_000,
        window_end: 1_767_225_660_000,
        count: 21,
        threshold: 20,
        first_event_time: 1_767_225_600_000,
        last_event_time: 1_767_225_620_000,
        evidence_event_ids: vec!["a".into(), "b".into()],
        principal: Some("okta-provisioner".into()),
        labels: BTreeMap::new(),
        description: Some("More than 20 changes by one principal in 60 s.".into()),
        runbook_url: Some("https://example.test/runbook".into()),
        suppressed: 3,
    }
}

#[test]
fn every_type_round_trips_through_its_schema() {
    let c = Codecs::single_object().expect("schemas parse");
    let e = sample_event();
    assert_eq!(
        c.audit_event
            .decode(&c.audit_event.encode(&e).expect("encode"))
            .expect("decode"),
        e
    );
    let mut e2 = sample_event();
    e2.response = None;
    e2.error = None;
    for a in [
        AuditAction::Create,
        AuditAction::Replace,
        AuditAction::Delete,
        AuditAction::Read,
        AuditAction::AccessDenied,
        AuditAction::Other,
    ] {
        e2.action = a;
        assert_eq!(
            c.audit_event
                .decode(&c.audit_event.encode(&e2).expect("encode"))
                .expect("decode"),
            e2
        );
    }
    let en = sample_enriched();
    assert_eq!(
        c.enriched
            .decode(&c.enriched.encode(&en).expect("encode"))
            .expect("decode"),
        en
    );
    let cp = ChainCheckpoint {
        topic: "audit.enriched.v1".into(),
        partition: 1,
        sequence: 999,
        head_hash: "cd".repeat(32),
        time: 1_767_225_600_000,
        key_id: "0123456789abcdef".into(),
        signature: "ef".repeat(64),
    };
    assert_eq!(
        c.checkpoint
            .decode(&c.checkpoint.encode(&cp).expect("encode"))
            .expect("decode"),
        cp
    );
    let al = sample_alert();
    assert_eq!(
        c.alert
            .decode(&c.alert.encode(&al).expect("encode"))
            .expect("decode"),
        al
    );
}

/// The bytes on the wire are a public contract: changing them is a schema
/// change. Regenerate with `SCIMTRAIL_BLESS=1 cargo test -p scimtrail-core --test schemas`
/// only together with a compatible schema change.
#[test]
fn golden_bytes_are_stable() {
    let c = Codecs::single_object().expect("schemas parse");
    let cases = [
        (
            "audit_event",
            c.audit_event.encode(&sample_event()).expect("encode"),
        ),
        (
            "enriched_audit_event",
            c.enriched.encode(&sample_enriched()).expect("encode"),
        ),
        ("alert", c.alert.encode(&sample_alert()).expect("encode")),
    ];
    for (name, bytes) in cases {
        let path = repo().join(format!("schemas/golden/{name}.hex"));
        let hex = hex::encode(&bytes);
        if std::env::var_os("SCIMTRAIL_BLESS").is_some() {
            std::fs::write(&path, format!("{hex}\n")).expect("write golden");
        }
        let want =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(hex, want.trim(), "{name}: encoding changed");
        // Single-object encoding: C3 01 and the schema's Rabin fingerprint.
        assert_eq!(&bytes[..2], &[0xC3, 0x01]);
    }
}

#[test]
fn decoding_rejects_foreign_and_truncated_bytes() {
    let c = Codecs::single_object().expect("schemas parse");
    let good = c.audit_event.encode(&sample_event()).expect("encode");
    assert!(c.audit_event.decode(&[]).is_err());
    assert!(c.audit_event.decode(b"{\"json\":true}").is_err());
    // Cut anywhere, a record is an error, never a record with defaults filled in.
    for cut in 2..good.len() {
        assert!(
            c.audit_event.decode(&good[..cut]).is_err(),
            "decoded a record cut at {cut} bytes"
        );
    }
    // Another type's fingerprint is recognised as such.
    let alert = c.alert.encode(&sample_alert()).expect("encode");
    let err = c.audit_event.decode(&alert).expect_err("wrong type");
    assert!(err.to_string().contains("fingerprint"), "{err}");
    // Confluent framing without a registry says so.
    let err = c
        .audit_event
        .decode(&[0, 0, 0, 0, 7, 1])
        .expect_err("no registry");
    assert!(err.to_string().contains("schema_registry.url"), "{err}");
}

fn every_field_has_doc(v: &Value, at: &str, missing: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::Array(fields)) = m.get("fields") {
                for f in fields {
                    let name = f["name"].as_str().unwrap_or("?");
                    if f.get("doc")
                        .and_then(Value::as_str)
                        .is_none_or(str::is_empty)
                    {
                        missing.push(format!("{at}.{name}"));
                    }
                    every_field_has_doc(&f["type"], &format!("{at}.{name}"), missing);
                }
            }
            for (k, x) in m {
                if k != "fields" {
                    every_field_has_doc(x, at, missing);
                }
            }
        }
        Value::Array(items) => items
            .iter()
            .for_each(|x| every_field_has_doc(x, at, missing)),
        _ => {}
    }
}

#[test]
fn every_field_is_documented() {
    for name in [
        "audit_event",
        "enriched_audit_event",
        "alert",
        "chain_checkpoint",
    ] {
        let text =
            std::fs::read_to_string(repo().join(format!("schemas/{name}.avsc"))).expect("read");
        let v: Value = serde_json::from_str(&text).expect("JSON");
        let mut missing = Vec::new();
        every_field_has_doc(&v, name, &mut missing);
        assert!(missing.is_empty(), "fields without doc: {missing:?}");
    }
}

#[test]
fn enriched_event_embeds_the_audit_event_schema_verbatim() {
    let audit = Schema::parse_str(AUDIT_EVENT_AVSC).expect("parse");
    let enriched: Value = serde_json::from_str(ENRICHED_AUDIT_EVENT_AVSC).expect("JSON");
    let embedded = enriched["fields"][0]["type"].to_string();
    assert_eq!(enriched["fields"][0]["name"], "event");
    let embedded = Schema::parse_str(&embedded).expect("parse embedded");
    assert_eq!(embedded.canonical_form(), audit.canonical_form());
}

/// Every committed version of a schema, oldest first, then the working tree's.
fn versions(file: &str) -> Vec<(String, Schema)> {
    let root = repo();
    let out = Command::new("git")
        .args([
            "log",
            "--format=%H",
            "--reverse",
            "--",
            &format!("schemas/{file}"),
        ])
        .current_dir(&root)
        .output()
        .expect("git is needed to check schema evolution against history");
    assert!(
        out.status.success(),
        "git log failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut v = Vec::new();
    for commit in String::from_utf8_lossy(&out.stdout).lines() {
        let show = Command::new("git")
            .args(["show", &format!("{commit}:schemas/{file}")])
            .current_dir(&root)
            .output()
            .expect("git show");
        if !show.status.success() {
            continue; // deleted in that commit
        }
        let text = String::from_utf8_lossy(&show.stdout);
        let schema = Schema::parse_str(&text)
            .unwrap_or_else(|e| panic!("{file} at {commit} does not parse: {e}"));
        v.push((commit[..12].to_string(), schema));
    }
    let current = std::fs::read_to_string(root.join("schemas").join(file)).expect("read");
    v.push((
        "working tree".into(),
        Schema::parse_str(&current).expect("current schema parses"),
    ));
    v
}

/// Backward compatibility, transitively: the current schema (and every later
/// version) can read data written with any earlier committed version, so
/// consumers can be upgraded before or after producers and old records in
/// Kafka stay readable.
#[test]
fn schema_changes_are_backward_compatible_with_every_committed_version() {
    for file in [
        "audit_event.avsc",
        "enriched_audit_event.avsc",
        "alert.avsc",
        "chain_checkpoint.avsc",
    ] {
        let v = versions(file);
        for (i, (new_at, new)) in v.iter().enumerate() {
            for (old_at, old) in &v[..i] {
                if let Err(e) = SchemaCompatibility::can_read(old, new) {
                    panic!("{file}: the version in {new_at} cannot read data written with the version in {old_at}: {e}");
                }
            }
        }
    }
}

/// The check above catches the breaking changes people actually make.
#[test]
fn compatibility_check_detects_breaking_changes() {
    let old = Schema::parse_str(AUDIT_EVENT_AVSC).expect("parse");
    let mut v: Value = serde_json::from_str(AUDIT_EVENT_AVSC).expect("JSON");
    let fields = v["fields"].as_array_mut().expect("fields");
    // A new required field without a default.
    fields.push(serde_json::json!({"name": "tenant", "type": "string", "doc": "x"}));
    let added_required = Schema::parse_str(&v.to_string()).expect("parse");
    assert!(SchemaCompatibility::can_read(&old, &added_required).is_err());
    // The same field with a default is fine.
    let mut v2: Value = serde_json::from_str(AUDIT_EVENT_AVSC).expect("JSON");
    v2["fields"].as_array_mut().expect("fields").push(serde_json::json!({"name": "tenant", "type": ["null", "string"], "default": null, "doc": "x"}));
    let added_optional = Schema::parse_str(&v2.to_string()).expect("parse");
    assert!(SchemaCompatibility::can_read(&old, &added_optional).is_ok());
    // A changed field type.
    let mut v3: Value = serde_json::from_str(AUDIT_EVENT_AVSC).expect("JSON");
    v3["fields"][0]["type"] = serde_json::json!("long");
    let retyped = Schema::parse_str(&v3.to_string()).expect("parse");
    assert!(SchemaCompatibility::can_read(&old, &retyped).is_err());
}

/// Single-object encoding names the writer's schema by its fingerprint only,
/// so a reader can decode records written before a schema change only if it
/// knows the earlier version: every committed version must be in
/// `schemas/history/` (run `scripts/schema-history` after a schema change).
#[test]
fn every_committed_schema_version_is_kept_for_readers() {
    use scimtrail_core::schema::history::HISTORY;
    for stem in [
        "audit_event",
        "enriched_audit_event",
        "alert",
        "chain_checkpoint",
    ] {
        let kept: Vec<String> = HISTORY
            .iter()
            .filter(|(s, _)| *s == stem)
            .map(|(_, t)| {
                Schema::parse_str(t)
                    .expect("history parses")
                    .canonical_form()
            })
            .collect();
        let v = versions(&format!("{stem}.avsc"));
        let (current_at, current) = v.last().expect("current");
        assert_eq!(current_at, "working tree");
        for (at, old) in &v[..v.len() - 1] {
            let form = old.canonical_form();
            assert!(
                form == current.canonical_form() || kept.contains(&form),
                "{stem}.avsc as committed in {at} is not in schemas/history/: run scripts/schema-history"
            );
        }
    }
}

/// A record written with each earlier version decodes with today's codec,
/// the fields added since taking their defaults.
#[test]
fn records_written_with_earlier_schemas_still_decode() {
    use apache_avro::headers::{HeaderBuilder, RabinFingerprintHeader};
    use scimtrail_core::schema::history::HISTORY;
    let c = Codecs::single_object().expect("codecs");
    let mut checked = 0;
    for (stem, text) in HISTORY {
        let old = Schema::parse_str(text).expect("parse");
        let write = |value: apache_avro::types::Value| {
            let mut bytes = RabinFingerprintHeader::from_schema(&old).build_header();
            let value = value.resolve(&old).expect("the record fits the old schema");
            bytes.extend(apache_avro::to_avro_datum(&old, value).expect("encode"));
            bytes
        };
        match *stem {
            "enriched_audit_event" => {
                let mut sample = sample_enriched();
                let bytes = write(apache_avro::to_value(&sample).expect("value"));
                let back = c
                    .enriched
                    .decode(&bytes)
                    .expect("an earlier version decodes");
                // What the old schema could carry survives; the rest defaults.
                assert_eq!(back.event, sample.event);
                assert_eq!(back.changes, sample.changes);
                assert_eq!((back.actor.clone(), back.trace.clone()), (None, None));
                assert!(back.flags.is_empty() && back.drift.is_empty());
                sample.chain = back.chain.clone();
                assert_eq!(back.before, sample.before);
            }
            "alert" => {
                let sample = sample_alert();
                let bytes = write(apache_avro::to_value(&sample).expect("value"));
                let back = c.alert.decode(&bytes).expect("an earlier version decodes");
                assert_eq!(back.alert_id, sample.alert_id);
                assert_eq!((back.description, back.suppressed), (None, 0));
            }
            other => panic!("no decode check for earlier versions of {other}"),
        }
        checked += 1;
    }
    assert_eq!(checked, HISTORY.len());
}
