//! Engine tests: one per behaviour, over in-process events.

use std::sync::Arc;

use prometheus::Registry;

use scimtrail_core::schema::{
    fixtures, Actor, Alert, AttributeChange, AuditAction, ChangeKind, EnrichedAuditEvent,
    EventFlag, MembershipChange, Outcome,
};

use super::*;

pub(super) const MIN: i64 = 60_000;

/// An engine over `yaml` with `lateness_ms`, and its registry.
pub(super) fn engine_with(yaml: &str, lateness_ms: i64) -> (Engine, Registry) {
    let rules = RuleSet::parse(yaml, "test.yaml").unwrap_or_else(|e| panic!("{e}"));
    let registry = Registry::new();
    let engine = Engine::new(
        Arc::new(rules),
        EngineOptions {
            allowed_lateness_ms: lateness_ms,
            max_evidence: 20,
            max_keys: 1_000_000,
        },
        EngineMetrics::new(&registry),
    );
    (engine, registry)
}

pub(super) fn engine(yaml: &str) -> Engine {
    engine_with(yaml, 0).0
}

/// A successful PATCH of User `resource` in `gh` by `principal` at `t_ms`.
pub(super) fn ev(id: &str, principal: &str, t_ms: i64) -> EnrichedAuditEvent {
    let mut e = fixtures::audit_event(id);
    e.event_time = t_ms;
    e.principal.id = principal.into();
    fixtures::enriched(e)
}

pub(super) fn with(
    mut e: EnrichedAuditEvent,
    f: impl FnOnce(&mut EnrichedAuditEvent),
) -> EnrichedAuditEvent {
    f(&mut e);
    e
}

pub(super) fn action(e: EnrichedAuditEvent, a: AuditAction) -> EnrichedAuditEvent {
    with(e, |e| e.event.action = a)
}

pub(super) fn resource(e: EnrichedAuditEvent, id: &str) -> EnrichedAuditEvent {
    with(e, |e| e.event.resource.id = Some(id.into()))
}

pub(super) fn deactivation(e: EnrichedAuditEvent) -> EnrichedAuditEvent {
    with(e, |e| {
        e.flags.push(EventFlag::Deactivated);
        e.changes.push(AttributeChange {
            path: "active".into(),
            kind: ChangeKind::Changed,
            before: Some("true".into()),
            after: Some("false".into()),
        });
    })
}

pub(super) fn actor(e: EnrichedAuditEvent, roles: &[&str]) -> EnrichedAuditEvent {
    with(e, |e| {
        e.actor = Some(Actor {
            principal_id: e.event.principal.id.clone(),
            display_name: None,
            roles: roles.iter().map(|r| r.to_string()).collect(),
        })
    })
}

/// Routes `e` to every partitioning of the engine's rules (partition 0).
pub(super) fn push(engine: &mut Engine, e: &EnrichedAuditEvent) -> Vec<Alert> {
    let mut out = Vec::new();
    for p in engine.rules().partitionings() {
        if let Some(k) = p.key_of(e) {
            out.extend(engine.process(0, &p.id, &k, e));
        }
    }
    out
}

/// Moves every partitioning's watermark to `time` (as an event
/// `allowed_lateness` later would).
pub(super) fn flush_to(engine: &mut Engine, time: i64) -> Vec<Alert> {
    let clock = time.saturating_add(engine.allowed_lateness_ms());
    let mut out = Vec::new();
    for p in engine.rules().partitionings() {
        out.extend(engine.advance_watermark(0, &p.id, clock));
    }
    out
}

/// Feeds `events` in order, then moves the watermark to the newest of them
/// (so every one is evaluated) and commits.
pub(super) fn feed(engine: &mut Engine, events: &[EnrichedAuditEvent]) -> Vec<Alert> {
    let mut out: Vec<Alert> = events.iter().flat_map(|e| push(engine, e)).collect();
    if let Some(newest) = events.iter().map(|e| e.event.event_time).max() {
        out.extend(flush_to(engine, newest));
    }
    engine.commit();
    out
}

fn metric(registry: &Registry, name: &str, label: Option<(&str, &str)>) -> f64 {
    let text = scimtrail_core::metrics::render(registry);
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(&format!("{name} ")) || l.starts_with(&format!("{name}{{")))
        .filter(|l| label.is_none_or(|(k, v)| l.contains(&format!("{k}=\"{v}\""))))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

const BURST: &str = r#"
rules:
  - id: burst.principal
    title: Burst
    severity: high
    description: d
    where: 'action ne "READ"'
    threshold: {more_than: 3, window: 60s}
"#;

fn patches(prefix: &str, principal: &str, times_s: &[i64]) -> Vec<EnrichedAuditEvent> {
    times_s
        .iter()
        .enumerate()
        .map(|(i, t)| ev(&format!("{prefix}{i}"), principal, t * 1000))
        .collect()
}

#[test]
fn threshold_fires_on_the_event_that_crosses() {
    let mut e = engine(BURST);
    let alerts = feed(&mut e, &patches("e", "p", &[100, 101, 102, 103]));
    assert_eq!(alerts.len(), 1);
    let a = &alerts[0];
    assert_eq!((a.count, a.threshold), (4, 3));
    assert_eq!(a.last_event_time, 103_000);
    assert_eq!((a.window_start, a.window_end), (100_000, 160_000));
    assert_eq!(a.first_event_time, 100_000);
    assert_eq!(a.evidence_event_ids, vec!["e0", "e1", "e2", "e3"]);
    assert_eq!(a.principal.as_deref(), Some("p"));
    assert_eq!(a.rule_kind, "threshold");
    assert_eq!(
        a.group_key.get("principal.id").map(String::as_str),
        Some("p")
    );
    assert_eq!(
        a.alert_id,
        alert_id(
            "burst.principal",
            &[("principal.id".into(), "p".into())],
            100_000
        )
    );
}

#[test]
fn threshold_exactly_at_the_limit_does_not_fire() {
    let mut e = engine(BURST);
    assert!(feed(&mut e, &patches("e", "p", &[0, 1, 2])).is_empty());
}

#[test]
fn threshold_events_spread_wider_than_the_window_do_not_fire() {
    let mut e = engine(BURST);
    let times: Vec<i64> = (0..20).map(|i| i * 25).collect();
    assert!(feed(&mut e, &patches("e", "p", &times)).is_empty());
}

#[test]
fn threshold_keys_are_counted_apart() {
    let mut e = engine(BURST);
    let mut evs = patches("p", "p", &[0, 1, 2]);
    evs.extend(patches("q", "q", &[0, 1, 2]));
    assert!(feed(&mut e, &evs).is_empty());
}

#[test]
fn a_burst_is_alerted_once_however_long_the_window_takes_to_slide_past() {
    let mut e = engine(BURST);
    let mut evs = patches("b", "p", &[0, 0, 1, 1, 2, 2, 3, 3, 4, 4]);
    // Ordinary traffic every 20 s afterwards: never more than 3 per minute.
    evs.extend(patches(
        "n",
        "p",
        &(0..30).map(|i| 80 + i * 20).collect::<Vec<_>>(),
    ));
    let alerts = feed(&mut e, &evs);
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    assert_eq!(alerts[0].count, 4);
}

#[test]
fn crossings_within_the_suppression_period_are_counted_and_reported_in_the_next_alert() {
    let (mut e, registry) = engine_with(BURST, 0);
    // 12 events in 12 s: crossings at the 4th, 8th and 12th; the last two
    // are within a minute of the first alert's window start.
    let mut evs = patches("a", "p", &(0..12).collect::<Vec<_>>());
    // A minute later, a new burst: a new alert reporting the two suppressed.
    evs.extend(patches("b", "p", &[100, 101, 102, 103]));
    let alerts = feed(&mut e, &evs);
    assert_eq!(alerts.len(), 2, "{alerts:#?}");
    assert_eq!(alerts[0].suppressed, 0);
    assert_eq!(alerts[1].suppressed, 2);
    assert!(
        alerts[1]
            .summary
            .contains("2 further crossings were suppressed"),
        "{}",
        alerts[1].summary
    );
    assert_ne!(alerts[0].alert_id, alerts[1].alert_id);
    assert_eq!(
        metric(
            &registry,
            "scimtrail_detector_alerts_suppressed_total",
            Some(("rule", "burst.principal"))
        ),
        2.0
    );
    assert_eq!(
        metric(
            &registry,
            "scimtrail_detector_alerts_total",
            Some(("severity", "high"))
        ),
        2.0
    );
}

#[test]
fn suppress_for_sets_the_dedup_period() {
    let yaml = BURST.replace("    threshold:", "    suppress_for: 1s\n    threshold:");
    let mut e = engine(&yaml);
    let alerts = feed(&mut e, &patches("a", "p", &(0..12).collect::<Vec<_>>()));
    assert_eq!(
        alerts.len(),
        3,
        "every crossing alerts once the second is over"
    );
}

#[test]
fn distinct_threshold_counts_values_not_events() {
    let yaml = r#"
rules:
  - id: mass-deactivation
    title: Mass deactivation
    severity: high
    description: d
    where: 'flags eq "DEACTIVATED" and resource.type eq "User"'
    group_by: [target.system]
    threshold: {more_than: 3, window: 5m, distinct: resource.id}
"#;
    let mut e = engine(yaml);
    // The same user deactivated 10 times: one distinct value.
    let same: Vec<_> = (0..10)
        .map(|i| {
            deactivation(resource(
                ev(&format!("s{i}"), "okta-provisioner", i * 1000),
                "u1",
            ))
        })
        .collect();
    assert!(feed(&mut e, &same).is_empty());
    let users: Vec<_> = (0..4)
        .map(|i| {
            deactivation(resource(
                ev(&format!("d{i}"), "okta-provisioner", 1_000_000 + i * 40_000),
                &format!("user{i}"),
            ))
        })
        .collect();
    let alerts = feed(&mut e, &users);
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].count, 4);
    assert_eq!(
        alerts[0].summary,
        "okta-provisioner deactivated 4 users in gh within 2 min (more than 3 in 5 min)"
    );
    assert_eq!(alerts[0].title, "Mass deactivation: gh");
}

#[test]
fn events_later_than_the_lateness_are_counted_and_ignored() {
    let (mut e, registry) = engine_with(BURST, 5_000);
    push(&mut e, &ev("new", "p", 1_000_000));
    // Evaluated: 10 s later on the partition.
    push(&mut e, &ev("newer", "p", 1_010_000));
    for i in 0..5 {
        assert!(push(&mut e, &ev(&format!("old{i}"), "p", 10_000 + i)).is_empty());
    }
    e.commit();
    assert_eq!(
        metric(
            &registry,
            "scimtrail_detector_late_events_total",
            Some(("rule", "burst.principal"))
        ),
        5.0
    );
}

#[test]
fn an_alert_waits_for_the_watermark_to_pass_its_crossing() {
    let (mut e, _) = engine_with(BURST, 30_000);
    let mut out = Vec::new();
    for x in patches("e", "p", &[0, 1, 2, 3]) {
        out.extend(push(&mut e, &x));
    }
    assert!(out.is_empty(), "an earlier event may still arrive");
    // Another principal's event on the same partition moves the watermark.
    let later = push(&mut e, &ev("other", "q", 33_000));
    assert_eq!(later.len(), 1);
    assert_eq!(later[0].window_start, 0);
}

#[test]
fn out_of_order_events_within_the_lateness_give_the_same_alert() {
    let in_order = patches("e", "p", &[5, 4, 3, 2, 1, 0]);
    let mut reversed = in_order.clone();
    reversed.reverse();
    let a = feed(&mut engine_with(BURST, 10_000).0, &in_order);
    let b = feed(&mut engine_with(BURST, 10_000).0, &reversed);
    assert_eq!(a, b);
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].window_start, 0, "the earliest events are counted");
}

#[test]
fn an_aborted_batch_is_evaluated_again_exactly_once() {
    let (mut e, registry) = engine_with(BURST, 0);
    for x in patches("e", "p", &[0, 1]) {
        push(&mut e, &x);
    }
    e.commit();
    let batch = patches("f", "p", &[2, 3]);
    let first: Vec<Alert> = batch.iter().flat_map(|x| push(&mut e, x)).collect();
    assert_eq!(first.len(), 1);
    e.rollback();
    let again: Vec<Alert> = batch.iter().flat_map(|x| push(&mut e, x)).collect();
    e.commit();
    assert_eq!(again, first, "the same alert, counted once");
    assert_eq!(
        metric(
            &registry,
            "scimtrail_detector_alerts_total",
            Some(("rule", "burst.principal"))
        ),
        1.0
    );
}

const POLICY: &str = r#"
rules:
  - id: non-admin-change
    title: Not allowed
    severity: high
    description: d
    policy:
      window: 10m
      roles:
        provisioning-admin: {actions: ["*"], privileged: true}
        service-connector:
          actions: [CREATE, REPLACE, PATCH, DELETE]
          resource_types: [User, Group]
        helpdesk: {actions: [PATCH], resource_types: [User], attributes: [active, name]}
        auditor: {actions: [READ]}
"#;

fn admin_group(e: EnrichedAuditEvent) -> EnrichedAuditEvent {
    with(e, |e| {
        e.event.resource.kind = "Group".into();
        e.event.resource.display_name = Some("Domain Admins".into());
        e.event.resource.user_name = None;
        e.flags.push(EventFlag::Privileged);
        e.privileged.push("group:Domain Admins".into());
        e.memberships.push(MembershipChange {
            group_id: Some("g1".into()),
            group_name: Some("Domain Admins".into()),
            member_id: "u9".into(),
            member_name: None,
            member_type: Some("User".into()),
            kind: ChangeKind::Added,
        });
    })
}

#[test]
fn policy_alerts_on_an_auditor_writing() {
    let mut e = engine(POLICY);
    let alerts = feed(&mut e, &[actor(ev("w", "audit-bot", 0), &["auditor"])]);
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].rule_kind, "policy");
    assert_eq!(
        alerts[0].summary,
        "audit-bot changed User u1 in gh: not allowed: auditor may not PATCH"
    );
}

#[test]
fn policy_alerts_on_a_connector_adding_members_to_a_privileged_group() {
    let mut e = engine(POLICY);
    let ok = actor(ev("ok", "okta-provisioner", 0), &["service-connector"]);
    let bad = admin_group(actor(
        ev("bad", "okta-provisioner", 1000),
        &["service-connector"],
    ));
    let alerts = feed(&mut e, &[ok, bad]);
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].evidence_event_ids, vec!["bad"]);
    assert!(
        alerts[0].summary.ends_with(
            "added members to Group Domain Admins in gh: not allowed: service-connector may not make privileged changes (group:Domain Admins)"
        ),
        "{}",
        alerts[0].summary
    );
}

#[test]
fn policy_allows_an_event_if_any_role_allows_it() {
    let mut e = engine(POLICY);
    let evs = [
        admin_group(actor(
            ev("a", "alice", 0),
            &["auditor", "provisioning-admin"],
        )),
        actor(ev("b", "bob", 0), &["helpdesk"]),
        with(actor(ev("c", "carol", 0), &["helpdesk"]), |e| {
            e.changes.push(AttributeChange {
                path: "name.givenName".into(),
                kind: ChangeKind::Changed,
                before: Some("\"A\"".into()),
                after: Some("\"B\"".into()),
            })
        }),
    ];
    assert!(feed(&mut e, &evs).is_empty());
}

#[test]
fn policy_checks_attributes_and_resource_types() {
    let mut e = engine(POLICY);
    let evs = [
        with(actor(ev("a", "hd1", 0), &["helpdesk"]), |e| {
            e.changes.push(AttributeChange {
                path: r#"emails[type eq "work"].value"#.into(),
                kind: ChangeKind::Changed,
                before: None,
                after: None,
            })
        }),
        with(actor(ev("b", "hd2", 0), &["helpdesk"]), |e| {
            e.event.resource.kind = "Group".into()
        }),
    ];
    let alerts = feed(&mut e, &evs);
    assert_eq!(alerts.len(), 2);
    assert!(
        alerts[0]
            .summary
            .ends_with("helpdesk may not change emails.value"),
        "{}",
        alerts[0].summary
    );
    assert!(
        alerts[1].summary.ends_with("helpdesk may not act on Group"),
        "{}",
        alerts[1].summary
    );
}

#[test]
fn policy_alerts_on_unknown_principals_and_denials_unless_configured_otherwise() {
    let mut e = engine(POLICY);
    let unknown = with(actor(ev("u", "stranger", 0), &[]), |e| {
        e.flags.push(EventFlag::UnknownPrincipal)
    });
    let no_actor = ev("n", "nobody", 0);
    let denied = action(
        actor(ev("d", "alice", 0), &["provisioning-admin"]),
        AuditAction::AccessDenied,
    );
    let alerts = feed(&mut e, &[unknown.clone(), no_actor.clone(), denied.clone()]);
    assert_eq!(alerts.len(), 3, "{alerts:#?}");
    assert!(alerts[0].summary.contains("not in the role directory"));
    assert!(alerts[2].summary.contains("denied"));

    let lenient = POLICY.replace(
        "      window: 10m\n",
        "      window: 10m\n      unknown_principal: allow\n      access_denied: ignore\n",
    );
    let mut e = engine(&lenient);
    assert!(feed(&mut e, &[unknown, no_actor, denied]).is_empty());
}

#[test]
fn a_burst_of_unauthorized_events_gives_one_alert_and_counts_the_rest() {
    let (mut e, registry) = engine_with(POLICY, 0);
    let evs: Vec<_> = (0..100)
        .map(|i| actor(ev(&format!("w{i}"), "audit-bot", i * 1000), &["auditor"]))
        .collect();
    let alerts = feed(&mut e, &evs);
    assert_eq!(alerts.len(), 1);
    assert_eq!(
        metric(
            &registry,
            "scimtrail_detector_alerts_suppressed_total",
            Some(("rule", "non-admin-change"))
        ),
        99.0
    );
    // After the 10 min window, the next violation alerts and reports them.
    let next = feed(
        &mut e,
        &[actor(ev("later", "audit-bot", 700_000), &["auditor"])],
    );
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].suppressed, 99);
}

const SEQUENCE: &str = r#"
rules:
  - id: identity-change-before-deprovisioning
    title: Identity change before deprovisioning
    severity: high
    description: d
    where: 'resource.type eq "User"'
    match:
      sequence:
        first: 'flags eq "IDENTITY_CHANGE"'
        then: 'flags eq "DEACTIVATED" or action eq "DELETE"'
        within: 1h
"#;

fn identity_change(e: EnrichedAuditEvent) -> EnrichedAuditEvent {
    with(e, |e| {
        e.flags.push(EventFlag::IdentityChange);
        e.event.resource.user_name = Some("bjensen".into());
    })
}

#[test]
fn sequence_fires_when_then_follows_first_within_the_time() {
    let mut e = engine(SEQUENCE);
    let alerts = feed(
        &mut e,
        &[
            identity_change(ev("rename", "okta-provisioner", 0)),
            ev("unrelated", "okta-provisioner", 60_000),
            deactivation(ev("deact", "okta-provisioner", 4 * MIN)),
        ],
    );
    assert_eq!(alerts.len(), 1);
    let a = &alerts[0];
    assert_eq!(a.evidence_event_ids, vec!["rename", "deact"]);
    assert_eq!(a.window_start, 0);
    assert_eq!(a.group_key.len(), 3);
    assert_eq!(
        a.summary,
        "User u1 in gh: changed by okta-provisioner, then deactivated by okta-provisioner 4 min later"
    );
}

#[test]
fn sequence_does_not_fire_out_of_order_or_too_late_or_on_other_resources() {
    let mut e = engine(SEQUENCE);
    let evs = [
        deactivation(ev("deact-first", "p", 0)),
        identity_change(ev("rename-after", "p", 60_000)),
        identity_change(resource(ev("rename-u2", "p", 2 * MIN), "u2")),
        deactivation(resource(ev("deact-u3", "p", 3 * MIN), "u3")),
        identity_change(resource(ev("rename-u4", "p", 4 * MIN), "u4")),
        deactivation(resource(ev("deact-u4", "p", 4 * MIN + 61 * MIN), "u4")),
    ];
    assert!(feed(&mut e, &evs).is_empty());
}

#[test]
fn match_raises_single_event_alerts_deduplicated_per_key() {
    let yaml = r#"
rules:
  - id: privileged-group-escalation
    title: Privileged group escalation
    severity: critical
    description: d
    where: 'resource.type eq "Group" and flags eq "PRIVILEGED" and memberships[kind eq "ADDED"]'
    match: {}
"#;
    let mut e = engine(yaml);
    let alerts = feed(
        &mut e,
        &[
            admin_group(ev("g1", "okta-provisioner", 0)),
            admin_group(ev("g2", "okta-provisioner", 1000)),
            admin_group(ev("g3", "alice", 2000)),
            ev("plain", "okta-provisioner", 3000),
        ],
    );
    assert_eq!(alerts.len(), 2, "one per principal within the hour");
    assert_eq!(
        alerts[0].summary,
        "okta-provisioner added members to Group Domain Admins in gh"
    );
    assert_eq!(alerts[0].threshold, 0);
    assert_eq!(alerts[0].count, 1);
}

const NEW_IP: &str = r#"
rules:
  - id: new-source-ip
    title: New source IP
    severity: low
    description: d
    new_value: {field: source.ip, lookback: 1d, max_values: 3}
"#;

fn from_ip(e: EnrichedAuditEvent, ip: &str) -> EnrichedAuditEvent {
    with(e, |e| e.event.source.ip = Some(ip.into()))
}

#[test]
fn new_value_learns_from_the_first_event_then_alerts_on_new_values() {
    let mut e = engine(NEW_IP);
    let hour = 3_600_000;
    let evs = [
        from_ip(ev("a", "p", 0), "10.0.0.1"),
        from_ip(ev("b", "p", 1000), "10.0.0.1"),
        from_ip(ev("c", "p", 2000), "203.0.113.9"),
        from_ip(ev("d", "p", 3000), "203.0.113.9"),
        from_ip(ev("x", "p", 23 * hour), "203.0.113.9"),
        // 10.0.0.1 was last seen 40 hours ago: new again.
        from_ip(ev("e", "p", 40 * hour), "10.0.0.1"),
    ];
    let alerts = feed(&mut e, &evs);
    assert_eq!(alerts.len(), 2, "{alerts:#?}");
    assert_eq!(alerts[0].evidence_event_ids, vec!["c"]);
    assert_eq!(
        alerts[0].summary,
        "p changed User u1 in gh with a new source.ip 203.0.113.9 (not seen in the last 1 d)"
    );
    assert_eq!(alerts[1].evidence_event_ids, vec!["e"]);
}

#[test]
fn new_value_alerts_on_the_first_event_when_configured() {
    let mut e = engine(&NEW_IP.replace("max_values: 3", "max_values: 3, alert_on_first: true"));
    assert_eq!(
        feed(&mut e, &[from_ip(ev("a", "p", 0), "10.0.0.1")]).len(),
        1
    );
}

#[test]
fn new_value_keeps_only_the_newest_values_per_key() {
    let yaml = NEW_IP.replace("severity: low", "severity: low\n    suppress_for: 1ms");
    let mut e = engine(&yaml);
    let ips = ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.1"];
    let evs: Vec<_> = ips
        .iter()
        .enumerate()
        .map(|(i, ip)| from_ip(ev(&format!("e{i}"), "p", i as i64 * 1000), ip))
        .collect();
    // .1 learned, .2 .3 .4 new (.1 evicted at the 4th), .1 new again.
    assert_eq!(feed(&mut e, &evs).len(), 4);
}

const ERRORS: &str = r#"
rules:
  - id: error-spike
    title: Error spike
    severity: medium
    description: d
    error_rate: {window: 5m, ratio: 0.5, min_count: 10}
"#;

fn failed(e: EnrichedAuditEvent) -> EnrichedAuditEvent {
    with(e, |e| e.event.outcome = Outcome::Failure)
}

#[test]
fn error_rate_fires_at_the_ratio_once_there_are_enough_requests() {
    let mut e = engine(ERRORS);
    // 4 ok, then failures: at the 10th request 6 of 10 failed.
    let mut evs: Vec<_> = (0..4)
        .map(|i| ev(&format!("ok{i}"), "p", i * 1000))
        .collect();
    evs.extend((4..12).map(|i| failed(ev(&format!("f{i}"), "p", i * 1000))));
    let alerts = feed(&mut e, &evs);
    assert_eq!(alerts.len(), 1);
    let a = &alerts[0];
    assert_eq!((a.count, a.threshold), (6, 10));
    assert_eq!(a.last_event_time, 9000);
    assert_eq!(a.evidence_event_ids.len(), 6);
    assert_eq!(
        a.summary,
        "6 of 10 requests to gh failed (60%) within 9 s, at or above the 50% limit (at least 10 requests in 5 min)"
    );
}

#[test]
fn error_rate_needs_the_minimum_count() {
    let mut e = engine(ERRORS);
    let evs: Vec<_> = (0..9)
        .map(|i| failed(ev(&format!("f{i}"), "p", i * 1000)))
        .collect();
    assert!(feed(&mut e, &evs).is_empty());
}

const OFF_HOURS: &str = r#"
rules:
  - id: off-hours
    title: Off hours
    severity: medium
    description: d
    where: 'principal.type eq "user"'
    schedule:
      time_zone: Europe/Berlin
      days: [mon-fri]
      hours: ["08:00-18:00"]
"#;

fn human(e: EnrichedAuditEvent) -> EnrichedAuditEvent {
    with(e, |e| e.event.principal.kind = "user".into())
}

fn at(rfc3339: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .map(|t| t.timestamp_millis())
        .unwrap_or_else(|e| panic!("{rfc3339}: {e}"))
}

#[test]
fn schedule_alerts_outside_the_hours_in_the_time_zone() {
    let mut e = engine(OFF_HOURS);
    let evs = [
        // Wednesday 07:30 UTC is 08:30 in Berlin in winter: allowed.
        human(ev("winter-ok", "bjensen", at("2026-01-07T07:30:00Z"))),
        // Wednesday 06:30 UTC in summer is 08:30 CEST: allowed.
        human(ev("summer-ok", "ajones", at("2026-07-08T06:30:00Z"))),
        // Service principals are not people.
        ev("service", "okta-provisioner", at("2026-01-10T03:00:00Z")),
        // Saturday.
        human(ev("saturday", "cdoe", at("2026-01-10T10:00:00Z"))),
        // Wednesday 17:30 UTC is 18:30 in Berlin.
        human(ev("evening", "dlee", at("2026-01-07T17:30:00Z"))),
    ];
    let alerts = feed(&mut e, &evs);
    let ids: Vec<_> = alerts
        .iter()
        .map(|a| a.evidence_event_ids[0].as_str())
        .collect();
    assert_eq!(ids, vec!["saturday", "evening"]);
    assert_eq!(
        alerts[1].summary,
        "dlee changed User u1 in gh at Wed 2026-01-07 18:30 CET, outside mon-fri 08:00-18:00 (Europe/Berlin)"
    );
}

#[test]
fn schedule_hours_may_wrap_past_midnight() {
    let yaml = OFF_HOURS
        .replace("08:00-18:00", "22:00-06:00")
        .replace("mon-fri", "mon-sun");
    let mut e = engine(&yaml);
    let evs = [
        human(ev("night", "a", at("2026-01-07T23:30:00Z"))),
        human(ev("noon", "b", at("2026-01-07T11:00:00Z"))),
    ];
    let alerts = feed(&mut e, &evs);
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].evidence_event_ids, vec!["noon"]);
}

#[test]
fn state_survives_a_restart_through_the_changelog() {
    let events = patches("e", "p", &[0, 1, 2, 3, 4, 5, 6, 7]);
    let whole = feed(&mut engine_with(BURST, 2_000).0, &events);

    let (mut first, _) = engine_with(BURST, 2_000);
    let mut split: Vec<Alert> = events[..3]
        .iter()
        .flat_map(|x| push(&mut first, x))
        .collect();
    first.commit();
    let changes = first.take_changes();
    assert!(!changes.is_empty());
    let (mut second, _) = engine_with(BURST, 2_000);
    for (k, v) in &changes {
        if let Some(bytes) = v {
            second
                .restore(0, k, bytes)
                .unwrap_or_else(|e| panic!("{e}"));
        }
    }
    split.extend(feed(&mut second, &events[3..]));
    assert_eq!(split, whole);
}

#[test]
fn state_entries_round_trip_and_are_versioned() {
    let (mut e, _) = engine_with(
        &format!("{BURST}{}", &NEW_IP["rules:\n".len() + 1..]),
        60_000,
    );
    for x in patches("e", "p", &[0, 1]) {
        push(&mut e, &from_ip(x, "10.0.0.1"));
    }
    e.commit();
    let changes = e.take_changes();
    let (k, bytes) = changes
        .iter()
        .find_map(|(k, v)| v.as_ref().map(|b| (k.clone(), b.clone())))
        .expect("an entry");
    assert_eq!(bytes[0], 1, "version byte");
    assert_eq!(k, "principal.id\u{1f}p");
    let (mut other, _) = engine_with(
        &format!("{BURST}{}", &NEW_IP["rules:\n".len() + 1..]),
        60_000,
    );
    other
        .restore(0, &k, &bytes)
        .unwrap_or_else(|e| panic!("{e}"));
    let again = other.take_changes();
    assert!(again.is_empty(), "restored state is not written back");
    // Re-encode through a change to compare.
    other.set_rules(Arc::clone(other.rules()));
    assert_eq!(other.state_keys(), 1);
    let mut bad = bytes.clone();
    bad[0] = 9;
    let err = other.restore(0, &k, &bad).expect_err("unknown version");
    assert!(err.to_string().contains("version 9"), "{err}");
}

#[test]
fn large_state_entries_are_compressed_and_restore_to_the_same_alerts() {
    // A window that fills for a while before it crosses.
    let yaml = BURST.replace("more_than: 3", "more_than: 250");
    assert_ne!(yaml, BURST);
    let times: Vec<i64> = (0..300).map(|i| i / 10).collect();
    let events = patches("e", "p", &times);
    let whole = feed(&mut engine_with(&yaml, 60_000).0, &events);
    assert_eq!(whole.len(), 1);
    let (mut first, _) = engine_with(&yaml, 60_000);
    let mut split = feed(&mut first, &events[..200]);
    let changes = first.take_changes();
    let (k, bytes) = changes
        .iter()
        .find_map(|(k, v)| v.as_ref().map(|b| (k.clone(), b.clone())))
        .expect("an entry");
    assert_eq!(bytes[0], 2, "a busy key's entry is zstd-compressed");
    let (mut second, _) = engine_with(&yaml, 60_000);
    second
        .restore(0, &k, &bytes)
        .unwrap_or_else(|e| panic!("{e}"));
    split.extend(feed(&mut second, &events[200..]));
    assert_eq!(split, whole);
}

#[test]
fn no_changes_are_reported_twice_and_deleted_keys_become_tombstones() {
    let mut e = engine(BURST);
    feed(&mut e, &patches("e", "p", &[0]));
    let first = e.take_changes();
    assert_eq!(first.len(), 1);
    assert!(first[0].1.is_some());
    assert!(e.take_changes().is_empty());
    // Two minutes later the window is empty: the key goes.
    feed(&mut e, &[ev("x", "q", 200_000)]);
    e.advance_watermark(0, "principal.id", 20 * MIN);
    e.commit();
    let later = e.take_changes();
    assert!(
        later
            .iter()
            .any(|(k, v)| k == "principal.id\u{1f}p" && v.is_none()),
        "{later:?}"
    );
}

fn two_bursts(title: &str, other_more_than: u32) -> String {
    format!(
        r#"
rules:
  - id: burst.principal
    title: {title}
    severity: high
    description: d
    threshold: {{more_than: 3, window: 60s}}
  - id: other
    title: Other
    severity: low
    description: d
    threshold: {{more_than: {other_more_than}, window: 60s}}
"#
    )
}

#[test]
fn reload_keeps_state_of_unchanged_rules_and_drops_the_rest() {
    let mut e = engine(&two_bursts("Burst", 3));
    feed(&mut e, &patches("e", "p", &[0, 1, 2]));
    // burst.principal changes only its title; `other` its threshold.
    let rules =
        RuleSet::parse(&two_bursts("Burst of changes", 4), "t").unwrap_or_else(|e| panic!("{e}"));
    e.set_rules(Arc::new(rules));
    let alerts = feed(&mut e, &patches("f", "p", &[3]));
    let fired: Vec<_> = alerts.iter().map(|a| a.rule_id.as_str()).collect();
    assert_eq!(
        fired,
        vec!["burst.principal"],
        "other starts counting afresh"
    );
    assert_eq!(
        alerts[0].title, "Burst of changes: p",
        "the new title is used"
    );
}

#[test]
fn revoked_partitions_lose_their_state_without_tombstones() {
    let mut e = engine(BURST);
    let x = ev("a", "p", 0);
    e.process(1, "principal.id", "p", &x);
    e.process(2, "principal.id", "q", &ev("b", "q", 0));
    e.commit();
    e.take_changes();
    e.partitions_revoked(&[1]);
    assert_eq!(e.state_keys(), 1);
    assert!(e.take_changes().is_empty());
}

#[test]
fn the_key_cap_sheds_the_oldest_keys_loudly() {
    let rules = RuleSet::parse(BURST, "t").unwrap_or_else(|e| panic!("{e}"));
    let registry = Registry::new();
    let mut e = Engine::new(
        Arc::new(rules),
        EngineOptions {
            allowed_lateness_ms: 0,
            max_evidence: 5,
            max_keys: 100,
        },
        EngineMetrics::new(&registry),
    );
    for i in 0..101 {
        push(&mut e, &ev(&format!("e{i}"), &format!("p{i:03}"), i * 100));
    }
    e.commit();
    assert_eq!(e.state_keys(), 95);
    assert_eq!(
        metric(&registry, "scimtrail_detector_state_shed_total", None),
        6.0
    );
    assert_eq!(
        metric(&registry, "scimtrail_detector_window_keys", None),
        95.0
    );
    let changes = e.take_changes();
    let gone: Vec<&str> = changes
        .iter()
        .filter(|(_, v)| v.is_none())
        .map(|(k, _)| k.as_str())
        .collect();
    assert_eq!(gone.len(), 6);
    assert!(
        gone.iter()
            .all(|k| k.as_bytes()[k.len() - 1] <= b'5' && k.contains("p00")),
        "{gone:?}"
    );
}

#[test]
fn events_of_unknown_partitionings_are_ignored() {
    let mut e = engine(BURST);
    assert!(e
        .process(0, "target.system", "gh", &ev("a", "p", 0))
        .is_empty());
    assert_eq!(e.state_keys(), 0);
}

#[test]
fn partitionings_are_distinct_in_file_order_and_skip_disabled_rules() {
    let yaml = format!(
        "{SEQUENCE}{}{}",
        &ERRORS["rules:\n".len() + 1..],
        BURST["rules:\n".len() + 1..]
            .replace("burst.principal", "off")
            .replace(
                "    threshold:",
                "    enabled: false\n    group_by: [source.ip]\n    threshold:"
            )
    );
    let rules = RuleSet::parse(&yaml, "t").unwrap_or_else(|e| panic!("{e}"));
    let ids: Vec<String> = rules.partitionings().into_iter().map(|p| p.id).collect();
    assert_eq!(
        ids,
        vec!["target.system,resource.type,resource.id", "target.system"]
    );
    let p = &rules.partitionings()[0];
    assert_eq!(
        p.key_of(&ev("a", "p", 0)).as_deref(),
        Some("gh\u{1f}User\u{1f}u1")
    );
    let no_id = with(ev("b", "p", 0), |e| e.event.resource.id = None);
    assert_eq!(p.key_of(&no_id), None);
}

const DOCS: &str = include_str!("../../../../docs/rules.md");

#[test]
fn the_default_pack_is_valid_and_every_rule_has_a_runbook() {
    let pack = RuleSet::parse(DEFAULT_PACK, "default.yaml").unwrap_or_else(|e| panic!("{e}"));
    let ids: Vec<&str> = pack.rules().map(|r| r.id.as_str()).collect();
    assert_eq!(
        ids,
        vec![
            "burst.principal",
            "mass-deactivation",
            "mass-deletion",
            "privileged-group-escalation",
            "non-admin-change",
            "identity-change-before-deprovisioning",
            "error-spike",
            "denied-access-burst",
            "off-hours-human-change",
        ]
    );
    for r in pack.rules() {
        assert!(r.enabled);
        assert_eq!(
            r.runbook_url.as_deref(),
            Some(format!("docs/rules.md#{}", r.id).as_str())
        );
        assert!(
            DOCS.contains(&format!("<a id=\"{}\"></a>\n### {}\n", r.id, r.id)),
            "docs/rules.md has no runbook section for {}",
            r.id
        );
    }
    // Today's burst rule, unchanged.
    let burst = pack.rule("burst.principal").expect("burst rule");
    assert_eq!(burst.group_by, vec!["principal.id"]);
    assert_eq!(burst.severity, scimtrail_core::schema::Severity::High);
    assert_eq!(burst.window_ms(), 60_000);
    assert_eq!(RuleSet::default_pack().rules().count(), 9);
    assert_eq!(
        pack.partitionings()
            .into_iter()
            .map(|p| p.id)
            .collect::<Vec<_>>(),
        vec![
            "principal.id",
            "target.system",
            "target.system,resource.type,resource.id"
        ]
    );
}

#[test]
fn the_docs_list_every_view_field() {
    for f in view::FIELDS {
        assert!(
            DOCS.contains(&format!("| `{}` |", f.path)),
            "docs/rules.md does not list view field {}",
            f.path
        );
    }
}

#[test]
fn the_condition_examples_in_the_docs_are_valid() {
    let start = DOCS.find("## Conditions").expect("a Conditions section");
    let block = DOCS[start..]
        .split("```text\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("a code block");
    let mut n = 0;
    for line in block.lines().filter(|l| !l.trim().is_empty()) {
        config::parse_condition(line, "where", "docs").unwrap_or_else(|e| panic!("{e}"));
        n += 1;
    }
    assert!(n >= 5);
}

#[test]
fn a_rules_file_loads_from_disk_and_names_it_in_errors() {
    let dir = std::env::temp_dir().join(format!("scimtrail-rules-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let good = dir.join("good.yaml");
    std::fs::write(&good, BURST).expect("write");
    assert_eq!(RuleSet::load(&good).map(|r| r.rules().count()), Ok(1));
    let bad = dir.join("bad.yaml");
    std::fs::write(&bad, BURST.replace("60s", "60x")).expect("write");
    let e = RuleSet::load(&bad).map(|_| ()).expect_err("invalid");
    assert!(
        e.to_string()
            .starts_with(&format!("{}: rules[0]", bad.display())),
        "{e}"
    );
    let missing = RuleSet::load(&dir.join("missing.yaml"))
        .map(|_| ())
        .expect_err("missing");
    assert!(missing.to_string().contains("cannot read"), "{missing}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
#[ignore = "prints sizes"]
fn print_sizes() {
    use super::state::*;
    eprintln!(
        "KeyState {} RuleState {} Body {} Mark {} Info {} Pending {} Obs {}",
        std::mem::size_of::<KeyState>(),
        std::mem::size_of::<RuleState>(),
        std::mem::size_of::<Body>(),
        std::mem::size_of::<Mark>(),
        std::mem::size_of::<Info>(),
        std::mem::size_of::<Pending>(),
        std::mem::size_of::<Obs>()
    );
}

#[test]
fn the_engine_moves_between_threads_and_rule_sets_are_shared() {
    fn send<T: Send>() {}
    fn send_sync<T: Send + Sync>() {}
    send::<Engine>();
    send_sync::<RuleSet>();
    send_sync::<EngineMetrics>();
}

#[test]
fn restored_state_of_a_changed_rule_is_dropped_and_deleted() {
    let (mut a, _) = engine_with(&two_bursts("Burst", 3), 0);
    feed(&mut a, &patches("e", "p", &[0, 1, 2]));
    let changes = a.take_changes();
    // The instance that takes over runs `other` with another threshold.
    let (mut b, _) = engine_with(&two_bursts("Burst", 4), 0);
    for (k, v) in &changes {
        b.restore(0, k, v.as_deref().expect("a value"))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let alerts = feed(&mut b, &patches("f", "p", &[3]));
    let fired: Vec<_> = alerts.iter().map(|x| x.rule_id.as_str()).collect();
    assert_eq!(fired, vec!["burst.principal"]);
    // State of a partitioning no rule uses any more is deleted on restore.
    let (mut c, _) = engine_with(
        &BURST.replace(
            "    threshold:",
            "    group_by: [target.system]\n    threshold:",
        ),
        0,
    );
    let (k, v) = &changes[0];
    c.restore(0, k, v.as_deref().expect("a value"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.state_keys(), 0);
    assert_eq!(c.take_changes(), vec![(k.clone(), None)]);
}

#[test]
fn unreadable_state_is_an_error_naming_the_key() {
    let mut e = engine(BURST);
    let err = e
        .restore(0, "principal.id\u{1f}p", b"\x01{not json")
        .expect_err("unreadable");
    assert!(
        err.to_string()
            .starts_with("rule state: \"principal.id\\u{1f}p\": unreadable state"),
        "{err}"
    );
    assert!(e.restore(0, "principal.id\u{1f}p", b"").is_err());
}
