//! Property: any arrival order within the allowed lateness gives the same
//! alerts as event-time order — ids, counts, evidence, summaries, all of it.

use proptest::prelude::*;

use scimtrail_core::schema::{
    AttributeChange, AuditAction, ChangeKind, EnrichedAuditEvent, EventFlag, Outcome,
};

use super::tests::{actor, engine_with, ev, flush_to, with};

/// One rule of every kind, tuned so that random traffic crosses them often.
const ALL_KINDS: &str = r#"
rules:
  - id: burst
    title: Burst
    severity: high
    description: d
    where: 'action ne "ACCESS_DENIED"'
    threshold: {more_than: 3, window: 60s}
  - id: distinct
    title: Distinct
    severity: medium
    description: d
    group_by: [target.system]
    where: 'flags eq "DEACTIVATED"'
    threshold: {more_than: 2, window: 2m, distinct: resource.id}
  - id: errors
    title: Errors
    severity: medium
    description: d
    group_by: [target.system]
    error_rate: {window: 2m, ratio: 0.5, min_count: 4}
  - id: sequence
    title: Sequence
    severity: high
    description: d
    match:
      window: 5m
      sequence: {first: 'flags eq "IDENTITY_CHANGE"', then: 'flags eq "DEACTIVATED"', within: 3m}
  - id: new-ip
    title: New IP
    severity: low
    description: d
    suppress_for: 30s
    new_value: {field: source.ip, lookback: 5m, max_values: 2}
  - id: policy
    title: Policy
    severity: high
    description: d
    policy:
      window: 2m
      roles:
        admin: {actions: ["*"], privileged: true}
        auditor: {actions: [READ]}
  - id: schedule
    title: Schedule
    severity: low
    description: d
    schedule: {time_zone: UTC, days: [mon-sun], hours: ["00:00-00:07"], window: 2m}
"#;

const LATENESS: i64 = 30_000;

#[derive(Debug, Clone)]
struct Spec {
    t_s: i64,
    principal: u8,
    resource: u8,
    target: u8,
    action: u8,
    failed: bool,
    deactivated: bool,
    identity: bool,
    ip: u8,
    auditor: bool,
    jitter_ms: i64,
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        (0i64..900, 0u8..3, 0u8..5, 0u8..2, 0u8..4),
        (
            any::<bool>(),
            0u8..4,
            0u8..5,
            0u8..3,
            0u8..6,
            0i64..LATENESS,
        ),
    )
        .prop_map(
            |((t_s, principal, resource, target, action), (failed, d, i, ip, a, jitter_ms))| Spec {
                t_s,
                principal,
                resource,
                target,
                action,
                failed,
                deactivated: d == 0,
                identity: i == 0,
                ip,
                auditor: a == 0,
                jitter_ms,
            },
        )
}

fn event(i: usize, s: &Spec) -> EnrichedAuditEvent {
    let e = ev(
        &format!("e{i:03}"),
        &format!("p{}", s.principal),
        s.t_s * 1000,
    );
    let roles: &[&str] = if s.auditor { &["auditor"] } else { &["admin"] };
    let e = actor(e, roles);
    with(e, |e| {
        e.event.resource.id = Some(format!("u{}", s.resource));
        e.event.target.system = format!("t{}", s.target);
        e.event.action = match s.action {
            0 => AuditAction::Patch,
            1 => AuditAction::Delete,
            2 => AuditAction::Create,
            _ => AuditAction::AccessDenied,
        };
        if s.failed {
            e.event.outcome = Outcome::Failure;
        }
        if s.deactivated {
            e.flags.push(EventFlag::Deactivated);
        }
        if s.identity {
            e.flags.push(EventFlag::IdentityChange);
            e.changes.push(AttributeChange {
                path: "userName".into(),
                kind: ChangeKind::Changed,
                before: Some("\"a\"".into()),
                after: Some("\"b\"".into()),
            });
        }
        e.event.source.ip = Some(format!("10.0.0.{}", s.ip));
    })
}

/// Runs `events` in the given order through a fresh engine (two input
/// partitions, keys spread over them) and returns the alerts sorted by id.
fn run(events: &[EnrichedAuditEvent]) -> Vec<scimtrail_core::schema::Alert> {
    let (mut engine, _) = engine_with(ALL_KINDS, LATENESS);
    let partitionings = engine.rules().partitionings();
    let mut alerts = Vec::new();
    for e in events {
        for p in &partitionings {
            if let Some(k) = p.key_of(e) {
                let partition = (k.len() % 2) as i32;
                alerts.extend(engine.process(partition, &p.id, &k, e));
            }
        }
    }
    let newest = events.iter().map(|e| e.event.event_time).max().unwrap_or(0);
    for partition in 0..2 {
        for p in &partitionings {
            alerts.extend(engine.advance_watermark(partition, &p.id, newest + LATENESS));
        }
    }
    // Also flush through the helper's path, which must be a no-op now.
    alerts.extend(flush_to(&mut engine, newest));
    engine.commit();
    alerts.sort_by(|a, b| a.alert_id.cmp(&b.alert_id));
    alerts
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn shuffling_within_the_lateness_gives_the_same_alerts(specs in prop::collection::vec(spec(), 1..150)) {
        let events: Vec<EnrichedAuditEvent> =
            specs.iter().enumerate().map(|(i, s)| event(i, s)).collect();
        let mut in_time_order = events.clone();
        in_time_order.sort_by(|a, b| {
            (a.event.event_time, &a.event.event_id).cmp(&(b.event.event_time, &b.event.event_id))
        });
        // Arrival order: event time plus a delay below the lateness, so no
        // event arrives after one more than the lateness newer.
        let mut arrival: Vec<(i64, usize)> = specs
            .iter()
            .enumerate()
            .map(|(i, s)| (s.t_s * 1000 + s.jitter_ms, i))
            .collect();
        arrival.sort();
        let shuffled: Vec<EnrichedAuditEvent> =
            arrival.iter().map(|(_, i)| events[*i].clone()).collect();

        let expected = run(&in_time_order);
        let got = run(&shuffled);
        prop_assert_eq!(&got, &expected);
    }
}

#[test]
fn the_property_traffic_crosses_every_kind() {
    // Guards the property against vacuity: the same kind of traffic raises
    // alerts of every rule.
    let specs: Vec<Spec> = (0..300)
        .map(|i| Spec {
            t_s: (i * 7) % 600,
            principal: (i % 3) as u8,
            resource: (i % 5) as u8,
            target: (i % 2) as u8,
            action: (i % 4) as u8,
            failed: i % 3 != 0,
            deactivated: i % 4 == 0,
            identity: i % 5 == 1,
            ip: ((i / 2) % 3) as u8,
            auditor: i % 6 == 0,
            jitter_ms: 0,
        })
        .collect();
    let mut events: Vec<EnrichedAuditEvent> =
        specs.iter().enumerate().map(|(i, s)| event(i, s)).collect();
    events.sort_by_key(|e| e.event.event_time);
    let alerts = run(&events);
    let rules: std::collections::BTreeSet<&str> =
        alerts.iter().map(|a| a.rule_id.as_str()).collect();
    assert_eq!(
        rules.into_iter().collect::<Vec<_>>(),
        vec!["burst", "distinct", "errors", "new-ip", "policy", "schedule", "sequence"]
    );
}
