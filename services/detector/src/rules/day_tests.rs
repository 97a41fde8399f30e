//! The default pack over a generated day of SCIM provisioning traffic with
//! planted incidents raises exactly the planted alerts.
//!
//! Normal traffic: two service connectors around the clock (okta-provisioner
//! into github-enterprise, workday-sync into slack) patching, creating, now
//! and then deleting and deactivating users, changing identities and group
//! memberships, with a few failures; an administrator and a helpdesk agent
//! during working hours; an auditor reading. A role directory is configured,
//! so every event has an actor. Then the incidents, one per default rule.

use std::collections::BTreeMap;
use std::sync::Arc;

use scimtrail_core::schema::{
    fixtures, Actor, Alert, AttributeChange, AuditAction, ChangeKind, EnrichedAuditEvent,
    EventFlag, MembershipChange, Outcome,
};

use super::*;

const HOUR: i64 = 3_600_000;
const MINUTE: i64 = 60_000;
/// 2026-03-04T00:00:00Z, a Wednesday.
const DAY: i64 = 1_772_582_400_000;
const LATENESS: i64 = 30_000;
const PARTITIONS: i32 = 4;

/// A deterministic pseudo-random sequence (64-bit LCG, high bits).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

struct Who {
    id: &'static str,
    kind: &'static str,
    roles: &'static [&'static str],
    ip: &'static str,
}

const OKTA: Who = Who {
    id: "okta-provisioner",
    kind: "service",
    roles: &["service-connector"],
    ip: "10.1.0.5",
};
const WORKDAY: Who = Who {
    id: "workday-sync",
    kind: "service",
    roles: &["service-connector"],
    ip: "10.1.0.9",
};
const ALICE: Who = Who {
    id: "alice@example.com",
    kind: "user",
    roles: &["provisioning-admin"],
    ip: "192.0.2.10",
};
const BOB: Who = Who {
    id: "bob@example.com",
    kind: "user",
    roles: &["helpdesk"],
    ip: "192.0.2.11",
};
const AUDITOR: Who = Who {
    id: "audit-bot",
    kind: "service",
    roles: &["auditor"],
    ip: "10.1.0.20",
};
const BULK: Who = Who {
    id: "bulk-import",
    kind: "service",
    roles: &["provisioning-admin"],
    ip: "10.1.0.30",
};
const MALLORY: Who = Who {
    id: "mallory-script",
    kind: "service",
    roles: &[],
    ip: "198.51.100.66",
};

struct Day {
    events: Vec<EnrichedAuditEvent>,
    n: usize,
}

impl Day {
    /// A successful PATCH of a User by `who`; the caller adds the rest.
    fn event(&mut self, who: &Who, t: i64, target: &str, user: &str) -> EnrichedAuditEvent {
        self.n += 1;
        let mut e = fixtures::audit_event(&format!("ev-{:05}", self.n));
        e.event_time = t;
        e.ingest_time = t + 500;
        e.principal.id = who.id.into();
        e.principal.kind = who.kind.into();
        e.source.system = "okta-prod".into();
        e.source.ip = Some(who.ip.into());
        e.target.system = target.into();
        e.resource.id = Some(user.into());
        e.resource.user_name = Some(format!("{user}@example.com"));
        e.request.path = format!("/Users/{user}");
        let mut x = fixtures::enriched(e);
        x.actor = Some(Actor {
            principal_id: who.id.into(),
            display_name: None,
            roles: who.roles.iter().map(|r| r.to_string()).collect(),
        });
        if who.roles.is_empty() {
            x.flags.push(EventFlag::UnknownPrincipal);
        }
        x.changes.push(AttributeChange {
            path: "title".into(),
            kind: ChangeKind::Changed,
            before: Some("\"Engineer\"".into()),
            after: Some("\"Senior Engineer\"".into()),
        });
        x
    }

    fn push(&mut self, e: EnrichedAuditEvent) {
        self.events.push(e);
    }
}

fn deactivate(mut e: EnrichedAuditEvent) -> EnrichedAuditEvent {
    e.flags.push(EventFlag::Deactivated);
    e.changes = vec![AttributeChange {
        path: "active".into(),
        kind: ChangeKind::Changed,
        before: Some("true".into()),
        after: Some("false".into()),
    }];
    e
}

fn rename(mut e: EnrichedAuditEvent) -> EnrichedAuditEvent {
    e.flags.push(EventFlag::IdentityChange);
    e.changes = vec![AttributeChange {
        path: "userName".into(),
        kind: ChangeKind::Changed,
        before: Some("\"old@example.com\"".into()),
        after: Some("\"new@example.com\"".into()),
    }];
    e
}

fn delete(mut e: EnrichedAuditEvent) -> EnrichedAuditEvent {
    e.event.action = AuditAction::Delete;
    e.event.request.method = "DELETE".into();
    e.changes.clear();
    e
}

fn to_group(mut e: EnrichedAuditEvent, group: &str, privileged: bool) -> EnrichedAuditEvent {
    e.event.resource.kind = "Group".into();
    e.event.resource.id = Some(format!("g-{}", group.to_lowercase().replace(' ', "-")));
    e.event.resource.user_name = None;
    e.event.resource.display_name = Some(group.into());
    e.changes = vec![AttributeChange {
        path: r#"members[value eq "u-777"]"#.into(),
        kind: ChangeKind::Added,
        before: None,
        after: Some(r#"{"value":"u-777"}"#.into()),
    }];
    e.memberships.push(MembershipChange {
        group_id: e.event.resource.id.clone(),
        group_name: Some(group.into()),
        member_id: "u-777".into(),
        member_name: None,
        member_type: Some("User".into()),
        kind: ChangeKind::Added,
    });
    if privileged {
        e.flags.push(EventFlag::Privileged);
        e.privileged.push(format!("group:{group}"));
    }
    e
}

fn fail(mut e: EnrichedAuditEvent) -> EnrichedAuditEvent {
    e.event.outcome = Outcome::Failure;
    e
}

fn normal_traffic(day: &mut Day) {
    let mut rng = Lcg(7);
    // okta-provisioner: a change every 30 s, all day.
    for i in 0..(24 * 120) {
        let t = DAY + i * 30_000 + rng.next(20_000) as i64;
        let user = format!("u-{:03}", rng.next(1000));
        let mut e = day.event(&OKTA, t, "github-enterprise", &user);
        if i % 40 == 0 {
            // A deactivation every 20 min, each of another user.
            e = deactivate(day.event(&OKTA, t, "github-enterprise", &format!("u-2{i:04}")));
        } else if i % 60 == 7 {
            // An identity change every 30 min, of users never deprovisioned.
            e = rename(day.event(&OKTA, t, "github-enterprise", &format!("u-3{i:04}")));
        } else if i % 20 == 3 {
            e = to_group(e, "Engineering", false);
        }
        if rng.next(100) < 4 {
            e = fail(e);
        }
        day.push(e);
    }
    // workday-sync: a request every 45 s, all day.
    for i in 0..(24 * 80) {
        let t = DAY + i * 45_000 + rng.next(30_000) as i64;
        let user = format!("u-1{:03}", rng.next(1000));
        let mut e = day.event(&WORKDAY, t, "slack", &user);
        match rng.next(100) {
            0..=9 => {
                e.event.action = AuditAction::Create;
                e.changes[0].kind = ChangeKind::Added;
            }
            10..=12 => e = delete(e),
            _ => {}
        }
        if rng.next(100) < 5 {
            e = fail(e);
        }
        day.push(e);
    }
    // alice (admin) and bob (helpdesk): working hours only.
    for i in 0..32 {
        let t = DAY + 9 * HOUR + i * 15 * MINUTE + rng.next(60_000) as i64;
        let e = day.event(
            &ALICE,
            t,
            "github-enterprise",
            &format!("u-{:03}", rng.next(1000)),
        );
        day.push(e);
    }
    for i in 0..16 {
        let t = DAY + 9 * HOUR + i * 30 * MINUTE + rng.next(60_000) as i64;
        let mut e = day.event(
            &BOB,
            t,
            "github-enterprise",
            &format!("u-{:03}", rng.next(1000)),
        );
        e.changes[0].path = r#"phoneNumbers[type eq "work"].value"#.into();
        day.push(e);
    }
    // The auditor reads.
    for i in 0..144 {
        let mut e = day.event(
            &AUDITOR,
            DAY + i * 10 * MINUTE,
            "github-enterprise",
            "u-001",
        );
        e.event.action = AuditAction::Read;
        e.changes.clear();
        day.push(e);
    }
}

/// The incidents, each with the (rule, group key) alerts it must raise.
fn incidents(day: &mut Day) -> Vec<(&'static str, Vec<(&'static str, String)>)> {
    let mut planted = Vec::new();
    let key = |pairs: &[(&'static str, &str)]| -> Vec<(&'static str, String)> {
        pairs.iter().map(|(k, v)| (*k, v.to_string())).collect()
    };

    // 1. Mass deactivation: 25 users in 2.5 min.
    for i in 0..25 {
        let e = day.event(
            &OKTA,
            DAY + 10 * HOUR + i * 6_000,
            "github-enterprise",
            &format!("u-5{i:03}"),
        );
        day.push(deactivate(e));
    }
    planted.push((
        "mass-deactivation",
        key(&[("target.system", "github-enterprise")]),
    ));

    // 2. Mass deletion: 12 users in 2 min.
    for i in 0..12 {
        let e = day.event(
            &WORKDAY,
            DAY + 11 * HOUR + i * 10_000,
            "slack",
            &format!("u-6{i:03}"),
        );
        day.push(delete(e));
    }
    planted.push(("mass-deletion", key(&[("target.system", "slack")])));

    // 3. A service connector adds a member to Domain Admins.
    let e = day.event(&OKTA, DAY + 12 * HOUR, "github-enterprise", "x");
    day.push(to_group(e, "Domain Admins", true));
    planted.push((
        "privileged-group-escalation",
        key(&[("principal.id", "okta-provisioner")]),
    ));
    planted.push((
        "non-admin-change",
        key(&[("principal.id", "okta-provisioner")]),
    ));

    // 4. The auditor writes.
    let e = day.event(&AUDITOR, DAY + 13 * HOUR, "github-enterprise", "u-042");
    day.push(e);
    planted.push(("non-admin-change", key(&[("principal.id", "audit-bot")])));

    // 5. An identity change, then the account's deactivation 20 min later.
    let e = day.event(&OKTA, DAY + 14 * HOUR, "github-enterprise", "u-4242");
    day.push(rename(e));
    let e = day.event(
        &OKTA,
        DAY + 14 * HOUR + 20 * MINUTE,
        "github-enterprise",
        "u-4242",
    );
    day.push(deactivate(e));
    planted.push((
        "identity-change-before-deprovisioning",
        key(&[
            ("resource.id", "u-4242"),
            ("resource.type", "User"),
            ("target.system", "github-enterprise"),
        ]),
    ));

    // 6. Slack fails 4 requests in 5 for 3 minutes.
    for i in 0..30 {
        let e = day.event(
            &WORKDAY,
            DAY + 15 * HOUR + i * 6_000,
            "slack",
            &format!("u-7{i:03}"),
        );
        day.push(if i % 5 == 0 { e } else { fail(e) });
    }
    planted.push(("error-spike", key(&[("target.system", "slack")])));

    // 7. An unknown script is denied 8 times in 2 minutes.
    for i in 0..8 {
        let mut e = day.event(
            &MALLORY,
            DAY + 16 * HOUR + i * 15_000,
            "github-enterprise",
            "u-001",
        );
        e.event.action = AuditAction::AccessDenied;
        e.event.outcome = Outcome::Failure;
        e.changes.clear();
        day.push(e);
    }
    planted.push((
        "denied-access-burst",
        key(&[("principal.id", "mallory-script")]),
    ));

    // 8. The administrator changes a user at 22:30.
    let e = day.event(
        &ALICE,
        DAY + 22 * HOUR + 30 * MINUTE,
        "github-enterprise",
        "u-100",
    );
    day.push(e);
    planted.push((
        "off-hours-human-change",
        key(&[("principal.id", "alice@example.com")]),
    ));

    // 9. A bulk import makes 25 changes in 25 seconds.
    for i in 0..25 {
        let e = day.event(
            &BULK,
            DAY + 17 * HOUR + i * 1_000,
            "github-enterprise",
            &format!("u-8{i:03}"),
        );
        day.push(e);
    }
    planted.push(("burst.principal", key(&[("principal.id", "bulk-import")])));

    planted
}

fn partition_of(key: &str) -> i32 {
    (key.bytes().map(u32::from).sum::<u32>() % PARTITIONS as u32) as i32
}

fn run_day(events: &[EnrichedAuditEvent]) -> Vec<Alert> {
    let rules = Arc::new(RuleSet::default_pack());
    let mut engine = Engine::new(
        rules,
        EngineOptions {
            allowed_lateness_ms: LATENESS,
            ..EngineOptions::default()
        },
        EngineMetrics::new(&prometheus::Registry::new()),
    );
    let partitionings = engine.rules().partitionings();
    let mut alerts = Vec::new();
    for (i, e) in events.iter().enumerate() {
        for p in &partitionings {
            if let Some(k) = p.key_of(e) {
                alerts.extend(engine.process(partition_of(&k), &p.id, &k, e));
            }
        }
        // Transactions of 500 events, their changes taken as the Kafka loop would.
        if i % 500 == 499 {
            engine.take_changes();
            engine.commit();
        }
    }
    let end = DAY + 25 * HOUR;
    for partition in 0..PARTITIONS {
        for p in &partitionings {
            alerts.extend(engine.advance_watermark(partition, &p.id, end));
        }
    }
    engine.commit();
    alerts
}

#[test]
fn the_default_pack_raises_exactly_the_planted_alerts_over_a_generated_day() {
    let mut day = Day {
        events: Vec::new(),
        n: 0,
    };
    normal_traffic(&mut day);
    let planted = incidents(&mut day);
    let mut events = day.events;
    // Capture order: event time, with a few seconds of disorder.
    let mut rng = Lcg(11);
    events.sort_by_cached_key(|e| e.event.event_time + rng.next(5_000) as i64);

    let alerts = run_day(&events);
    let got: Vec<(String, BTreeMap<String, String>)> = {
        let mut v: Vec<_> = alerts
            .iter()
            .map(|a| (a.rule_id.clone(), a.group_key.clone()))
            .collect();
        v.sort();
        v
    };
    let want: Vec<(String, BTreeMap<String, String>)> = {
        let mut v: Vec<_> = planted
            .iter()
            .map(|(rule, key)| {
                (
                    rule.to_string(),
                    key.iter()
                        .map(|(k, v)| (k.to_string(), v.clone()))
                        .collect(),
                )
            })
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        got,
        want,
        "alerts:\n{}",
        alerts
            .iter()
            .map(|a| format!("{} {:?}: {}", a.rule_id, a.group_key, a.summary))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(events.len() > 5000, "a day of traffic: {}", events.len());

    // Every alert reads like a sentence and carries its runbook.
    for a in &alerts {
        assert!(a
            .runbook_url
            .as_deref()
            .is_some_and(|u| u.ends_with(&format!("#{}", a.rule_id))));
        assert!(!a.evidence_event_ids.is_empty());
    }
    let summary = |rule: &str| {
        alerts
            .iter()
            .find(|a| a.rule_id == rule)
            .map(|a| a.summary.clone())
            .unwrap_or_default()
    };
    assert_eq!(
        summary("mass-deactivation"),
        "okta-provisioner deactivated 21 users in github-enterprise within 2 min (more than 20 in 5 min)"
    );
    assert_eq!(
        summary("mass-deletion"),
        "workday-sync deleted 11 users in slack within 2 min (more than 10 in 5 min)"
    );
    assert_eq!(
        summary("burst.principal"),
        "bulk-import changed users 21 times in github-enterprise within 20 s (more than 20 in 1 min)"
    );
    assert_eq!(
        summary("denied-access-burst"),
        "mallory-script was denied access to users 6 times in github-enterprise within 2 min (more than 5 in 5 min)"
    );
    assert_eq!(
        summary("error-spike"),
        "10 of 20 requests to slack failed (50%) within 5 min, at or above the 50% limit (at least 20 requests in 5 min)"
    );

    // A replay gives the same alerts, byte for byte.
    let again = run_day(&events);
    assert_eq!(again, alerts);
    let bytes = |a: &[Alert]| serde_json::to_vec(a).unwrap_or_default();
    assert_eq!(bytes(&again), bytes(&alerts));
    assert_eq!(run_day(&events), alerts);
}
