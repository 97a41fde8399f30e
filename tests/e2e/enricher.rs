//! The enricher through Kafka: each kind of change, exactly.

use std::collections::HashMap;
use std::time::Duration;

use rdkafka::Message;
use serde_json::{json, Value};

use scimtrail_core::schema::avro::Codecs;
use scimtrail_core::schema::{ChangeKind, EnrichedAuditEvent, EventFlag};

use crate::harness::*;

/// One raw exchange, `n` seconds into the test's minute.
#[allow(clippy::too_many_arguments)]
fn raw(
    id: &str,
    n: u32,
    principal: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
    status: u16,
    response: Option<Value>,
) -> Value {
    json!({
        "id": id,
        "time": format!("2026-03-01T00:00:{n:02}Z"),
        "source": {"system": "okta"},
        "principal": {"id": principal, "type": "service"},
        "target": {"system": "github"},
        "request": {"method": method, "path": path, "body": body},
        "response": {"status": status, "body": response},
        "correlation_id": format!("txn-{id}"),
    })
}

fn patch(ops: Value) -> Option<Value> {
    Some(json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops}))
}

fn changes(e: &EnrichedAuditEvent) -> Vec<(String, ChangeKind, Option<String>, Option<String>)> {
    e.changes
        .iter()
        .map(|c| (c.path.clone(), c.kind, c.before.clone(), c.after.clone()))
        .collect()
}

fn s(v: &str) -> Option<String> {
    Some(v.to_string())
}

#[tokio::test]
async fn every_kind_of_change_is_enriched_exactly() {
    let _serial = SERIAL.lock().await;
    let dir = std::env::temp_dir().join(format!("scimtrail-roles-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("dir");
    let roles = dir.join("roles.yaml");
    std::fs::write(
        &roles,
        "principals:\n  okta-provisioner:\n    display_name: Okta connector\n    roles: [service-connector]\n",
    )
    .expect("roles");
    let stages = Stages {
        ingest: true,
        enricher: true,
        detector: false,
        sink: false,
    };
    let mut p = Pipeline::start_with(
        "enrich",
        stages,
        2,
        0,
        vec![
            (
                "SCIMTRAIL__ENRICHER__ROLES_FILE".into(),
                roles.display().to_string(),
            ),
            (
                "SCIMTRAIL__ENRICHER__PRIVILEGED__GROUPS".into(),
                "Admins".into(),
            ),
            ("SCIMTRAIL__ENRICHER__ROLES_RELOAD_SECS".into(), "1".into()),
        ],
    )
    .await;
    let names = p.names.clone();
    let okta = "okta-provisioner";
    let user = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "id": "u1",
        "userName": "ann@example.com", "active": true, "title": "Rep",
        "emails": [{"type": "work", "value": "ann@example.com", "primary": true}],
        "meta": {"version": "W/\"1\""}});
    let mut replaced = user.clone();
    replaced["userName"] = json!("ann.b@example.com");
    replaced["active"] = json!(false);
    replaced["emails"] = json!([{"type": "work", "value": "ann.b@example.com", "primary": true}]);
    let mut drifted = replaced.clone();
    drifted["title"] = json!("Lead");
    drifted["active"] = json!(true);
    let exchanges = vec![
        raw(
            "c1",
            1,
            okta,
            "POST",
            "/Users",
            Some(user.clone()),
            201,
            Some(user.clone()),
        ),
        raw(
            "p1",
            2,
            okta,
            "PATCH",
            "/Users/u1",
            patch(json!([{"op": "replace", "path": "active", "value": false}])),
            204,
            None,
        ),
        raw(
            "p2",
            3,
            okta,
            "PATCH",
            "/Users/u1",
            patch(
                json!([{"op": "replace", "path": "emails[type eq \"work\"].value", "value": "ann.a@example.com"}]),
            ),
            204,
            None,
        ),
        raw(
            "r1",
            4,
            okta,
            "PUT",
            "/Users/u1",
            Some(replaced.clone()),
            200,
            Some(replaced.clone()),
        ),
        raw(
            "g1",
            5,
            okta,
            "POST",
            "/Groups",
            Some(json!({"displayName": "Admins"})),
            201,
            Some(json!({"id": "g1", "displayName": "Admins", "members": []})),
        ),
        raw(
            "m1",
            6,
            okta,
            "PATCH",
            "/Groups/g1",
            patch(
                json!([{"op": "add", "path": "members", "value": [{"value": "u1", "display": "Ann"}]}]),
            ),
            204,
            None,
        ),
        raw(
            "m2",
            7,
            okta,
            "PATCH",
            "/Groups/g1",
            patch(json!([{"op": "remove", "path": "members[value eq \"u1\"]"}])),
            204,
            None,
        ),
        raw(
            "x1",
            8,
            "mallory",
            "POST",
            "/Users",
            Some(json!({"userName": "m"})),
            201,
            Some(json!({"id": "u2", "userName": "m"})),
        ),
        // The service provider also re-activated the user: drift.
        raw(
            "d1",
            9,
            okta,
            "PATCH",
            "/Users/u1",
            patch(json!([{"op": "replace", "path": "title", "value": "Lead"}])),
            200,
            Some(drifted.clone()),
        ),
        raw("del", 10, okta, "DELETE", "/Users/u1", None, 204, None),
    ];
    let records: Vec<(Option<String>, Vec<u8>)> = exchanges
        .iter()
        .map(|v| {
            (
                Some(scimtrail_core::schema::raw::record_key(v)),
                v.to_string().into_bytes(),
            )
        })
        .collect();
    produce(&names.raw, &records).await;
    let codecs = Codecs::single_object().expect("codecs");
    let got: HashMap<String, EnrichedAuditEvent> = consume(
        &names.enriched,
        exchanges.len(),
        Duration::from_secs(120),
        Duration::from_secs(2),
    )
    .await
    .iter()
    .map(|m| {
        let e = codecs
            .enriched
            .decode(m.payload().expect("payload"))
            .expect("decodes");
        (e.event.event_id.clone(), e)
    })
    .collect();
    assert_eq!(got.len(), exchanges.len());
    let ev = |id: &str| got.get(id).unwrap_or_else(|| panic!("no event {id}"));

    // Create: every attribute added, `meta` ignored, the actor and trace set.
    let c1 = ev("c1");
    assert!(!c1.partial && c1.flags.is_empty(), "{:?}", c1.flags);
    assert_eq!(
        c1.changes
            .iter()
            .map(|c| c.path.as_str())
            .collect::<Vec<_>>(),
        vec![
            "active",
            r#"emails[type eq "work"]"#,
            "id",
            "schemas",
            "title",
            "userName"
        ]
    );
    let actor = c1.actor.as_ref().expect("actor");
    assert_eq!(actor.roles, vec!["service-connector".to_string()]);
    let trace = c1.trace.as_ref().expect("trace");
    assert_eq!(
        (
            trace.source_system.as_str(),
            trace.target_system.as_str(),
            trace.correlation_id.as_deref()
        ),
        ("okta", "github", Some("txn-c1"))
    );
    assert!(
        trace.captured_time <= trace.ingested_time && trace.ingested_time <= trace.enriched_time
    );

    // Deactivation by PATCH, applied to the known state.
    let p1 = ev("p1");
    assert_eq!(
        changes(p1),
        vec![("active".into(), ChangeKind::Changed, s("true"), s("false"))]
    );
    assert_eq!(p1.flags, vec![EventFlag::Deactivated]);
    assert_eq!(p1.trace.as_ref().expect("trace").lineage[0].event_id, "c1");

    // A value filter selects the element to change.
    let p2 = ev("p2");
    assert!(!p2.partial);
    assert_eq!(
        changes(p2),
        vec![(
            r#"emails[type eq "work"].value"#.into(),
            ChangeKind::Changed,
            s(r#""ann@example.com""#),
            s(r#""ann.a@example.com""#)
        )]
    );
    assert_eq!(p2.flags, vec![EventFlag::IdentityChange]);

    // Replace: the whole resource, identity change flagged.
    let r1 = ev("r1");
    assert!(r1.flags.contains(&EventFlag::IdentityChange));
    assert!(changes(r1).contains(&(
        "userName".into(),
        ChangeKind::Changed,
        s(r#""ann@example.com""#),
        s(r#""ann.b@example.com""#)
    )));

    // Membership of a privileged group, with the member's name remembered
    // from the add when the remove does not give it.
    let m1 = ev("m1");
    assert_eq!(m1.privileged, vec!["group:Admins".to_string()]);
    assert_eq!(m1.flags, vec![EventFlag::Privileged]);
    let m = &m1.memberships[0];
    assert_eq!(
        (
            m.group_name.as_deref(),
            m.member_id.as_str(),
            m.member_name.as_deref(),
            m.kind
        ),
        (Some("Admins"), "u1", Some("Ann"), ChangeKind::Added)
    );
    let m2 = ev("m2");
    assert!(!m2.partial);
    let m = &m2.memberships[0];
    assert_eq!(
        (m.member_id.as_str(), m.member_name.as_deref(), m.kind),
        ("u1", Some("Ann"), ChangeKind::Removed)
    );

    // A principal the role directory does not know.
    let x1 = ev("x1");
    assert_eq!(x1.flags, vec![EventFlag::UnknownPrincipal]);
    assert!(x1.actor.as_ref().expect("actor").roles.is_empty());

    // The answer disagreed with the request: drift, and the answer wins.
    let d1 = ev("d1");
    assert!(d1.flags.contains(&EventFlag::Drift) && d1.flags.contains(&EventFlag::Activated));
    assert_eq!(
        d1.drift
            .iter()
            .map(|c| (c.path.as_str(), c.before.as_deref(), c.after.as_deref()))
            .collect::<Vec<_>>(),
        vec![("active", Some("false"), Some("true"))]
    );
    let title = d1
        .trace
        .as_ref()
        .expect("trace")
        .lineage
        .iter()
        .find(|o| o.path == "title")
        .expect("title lineage");
    assert_eq!(title.event_id, "c1");

    // Delete: everything removed, and the state is gone from the changelog.
    let del = ev("del");
    assert!(!del.partial && del.after.is_none());
    assert!(del
        .changes
        .iter()
        .all(|c| c.kind == ChangeKind::Removed && c.after.is_none()));
    let changelog = consume(
        &format!("{}.internal.enricher-state", names.prefix),
        1,
        Duration::from_secs(30),
        Duration::from_secs(1),
    )
    .await;
    let last_of = |key: &str| {
        changelog
            .iter()
            .filter(|m| m.key().is_some_and(|k| k.ends_with(key.as_bytes())))
            .max_by_key(|m| m.offset())
            .map(|m| m.payload().map(<[u8]>::to_vec))
    };
    assert_eq!(
        last_of("\u{1f}User\u{1f}u1"),
        Some(None),
        "u1 ends in a tombstone"
    );
    let g1 = last_of("\u{1f}Group\u{1f}g1").flatten().expect("g1 state");
    let g1 = scimtrail_enricher::state::Packed::from_bytes(&g1)
        .unpack()
        .expect("unpacks");
    assert_eq!(g1.resource["displayName"], "Admins");
    assert!(g1.resource.get("members").is_none_or(|m| m == &json!([])));

    // The role directory is reloaded while the enricher runs: mallory,
    // unknown above, is an auditor from the next event on.
    std::fs::write(
        &roles,
        "principals:\n  okta-provisioner:\n    roles: [service-connector]\n  mallory:\n    roles: [auditor]\n",
    )
    .expect("roles");
    std::fs::File::options()
        .write(true)
        .open(&roles)
        .and_then(|f| f.set_modified(std::time::SystemTime::now() + Duration::from_secs(60)))
        .expect("mtime");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let later = raw("x2", 11, "mallory", "DELETE", "/Users/u2", None, 204, None);
    produce(
        &names.raw,
        &[(
            Some(scimtrail_core::schema::raw::record_key(&later)),
            later.to_string().into_bytes(),
        )],
    )
    .await;
    let x2 = consume(
        &names.enriched,
        exchanges.len() + 1,
        Duration::from_secs(60),
        Duration::ZERO,
    )
    .await
    .iter()
    .filter_map(|m| codecs.enriched.decode(m.payload().expect("payload")).ok())
    .find(|e| e.event.event_id == "x2")
    .expect("x2 enriched");
    assert_eq!(
        x2.actor.as_ref().map(|a| a.roles.clone()),
        Some(vec!["auditor".to_string()]),
        "the reloaded directory is in use"
    );
    assert!(!x2.flags.contains(&EventFlag::UnknownPrincipal));

    // `scimtrail trace`: the title's history, each step naming its setter.
    let out = std::process::Command::new(bin("scimtrail"))
        .args([
            "trace",
            "--resource",
            "u1",
            "--attribute",
            "title",
            "--type",
            "user",
            "--json",
        ])
        .envs(names.env())
        .output()
        .expect("run scimtrail trace");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let steps: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    let summary: Vec<(&str, &str, Value)> = steps
        .iter()
        .map(|s| {
            (
                s["event_id"].as_str().unwrap_or(""),
                s["kind"].as_str().unwrap_or(""),
                s["previous"].clone(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("c1", "ADDED", Value::Null),
            ("d1", "CHANGED", json!(["c1", "okta"])),
            ("del", "REMOVED", json!(["d1", "okta"])),
        ]
    );
    let _ = std::fs::remove_dir_all(&dir);
    for s in &mut p.services {
        assert!(
            s.terminate(Duration::from_secs(30)),
            "{} did not stop",
            s.name
        );
    }
}
