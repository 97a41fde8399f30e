//! The detector through Kafka, one test per rule kind, and its state across
//! `kill -9`: two instances of `scimtrail-detector` read enriched events
//! produced onto three partitions (as the enricher writes them: each event on
//! the partition its chain link names) and write alerts, which the tests read
//! back (read_committed) and compare with the alerts the scenario must raise
//! — no more, no fewer.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message};

use scimtrail_core::schema::avro::Codecs;
use scimtrail_core::schema::{
    fixtures, Actor, Alert, AttributeChange, AuditAction, ChainLink, ChangeKind,
    EnrichedAuditEvent, EventFlag, MembershipChange, Outcome,
};

use crate::harness::{bin, brokers, consume, Pipeline, Stages, SERIAL};

const DETECTOR_ONLY: Stages = Stages {
    ingest: false,
    enricher: false,
    detector: true,
    sink: false,
};

/// Saturday 2026-11-28 10:00:00 UTC, in milliseconds.
const SATURDAY: i64 = 1_795_860_000_000;
/// Wednesday 2026-11-25 10:00:00 UTC.
const WEDNESDAY: i64 = SATURDAY - 3 * 86_400_000;
const S: i64 = 1000;

/// A successful PATCH of User `resource` in `target` by `principal` at `t`.
fn ev(id: &str, principal: &str, resource: &str, target: &str, t: i64) -> EnrichedAuditEvent {
    let mut e = fixtures::audit_event(id);
    e.event_time = t;
    e.principal.id = principal.into();
    e.resource.id = Some(resource.into());
    e.target.system = target.into();
    fixtures::enriched(e)
}

fn with(mut e: EnrichedAuditEvent, f: impl FnOnce(&mut EnrichedAuditEvent)) -> EnrichedAuditEvent {
    f(&mut e);
    e
}

fn roles(e: EnrichedAuditEvent, roles: &[&str]) -> EnrichedAuditEvent {
    with(e, |e| {
        e.actor = Some(Actor {
            principal_id: e.event.principal.id.clone(),
            display_name: None,
            roles: roles.iter().map(|r| r.to_string()).collect(),
        })
    })
}

fn ip(e: EnrichedAuditEvent, ip: &str) -> EnrichedAuditEvent {
    with(e, |e| e.event.source.ip = Some(ip.into()))
}

fn deactivated(e: EnrichedAuditEvent) -> EnrichedAuditEvent {
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

/// Produces `events` as the enricher would: each on the partition of its
/// resource (of 3), with a chain link naming that partition.
async fn produce_enriched(topic: &str, events: &[EnrichedAuditEvent]) {
    let codecs = Codecs::single_object().expect("codecs");
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("enable.idempotence", "true")
        .create()
        .expect("producer");
    let mut sequences: BTreeMap<i32, i64> = BTreeMap::new();
    for e in events {
        let key = format!(
            "{}\u{1f}{}\u{1f}{}",
            e.event.target.system,
            e.event.resource.kind,
            e.event.resource.id.as_deref().unwrap_or("")
        );
        let partition = (key.bytes().map(u32::from).sum::<u32>() % 3) as i32;
        let seq = sequences.entry(partition).or_insert(0);
        *seq += 1;
        let mut e = e.clone();
        e.chain = Some(ChainLink {
            partition,
            sequence: *seq,
            prev_hash: String::new(),
            hash: String::new(),
        });
        let bytes = codecs.enriched.encode(&e).expect("encode");
        producer
            .send(
                FutureRecord::to(topic)
                    .partition(partition)
                    .key(&key)
                    .payload(&bytes),
                Duration::from_secs(30),
            )
            .await
            .expect("produce");
    }
}

/// Alerts in a stable order: by rule, then by crossing time.
fn by_rule_and_time(a: &Alert, b: &Alert) -> std::cmp::Ordering {
    (&a.rule_id, a.last_event_time, &a.alert_id).cmp(&(&b.rule_id, b.last_event_time, &b.alert_id))
}

async fn alerts_of(pipeline: &Pipeline, expected: usize) -> Vec<Alert> {
    let codecs = Codecs::single_object().expect("codecs");
    let records = consume(
        &pipeline.names.alerts,
        expected,
        Duration::from_secs(60),
        // Long enough for the idle watermark (2 s) and a batch: a surplus
        // alert would show.
        Duration::from_secs(5),
    )
    .await;
    let mut alerts: Vec<Alert> = records
        .iter()
        .map(|m| {
            codecs
                .alert
                .decode(m.payload().expect("payload"))
                .expect("an Alert")
        })
        .collect();
    alerts.sort_by(by_rule_and_time);
    alerts
}

/// Two detectors on the rules `rules` (written to a temporary file, whose
/// path is returned), with a lateness of 0.5 s and `extra` settings.
async fn detectors(test: &str, rules: &str, extra: &[(&str, &str)]) -> (Pipeline, PathBuf) {
    let file = std::env::temp_dir().join(format!("scimtrail-{test}-{}.yaml", uuid::Uuid::new_v4()));
    std::fs::write(&file, rules).expect("write rules");
    let mut env = vec![
        (
            "SCIMTRAIL__DETECTOR__RULES_FILE".to_string(),
            file.display().to_string(),
        ),
        (
            "SCIMTRAIL__DETECTOR__ALLOWED_LATENESS_SECS".to_string(),
            "0.5".to_string(),
        ),
    ];
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let pipeline = Pipeline::start_with(test, DETECTOR_ONLY, 2, 0, env).await;
    (pipeline, file)
}

/// Starts two detectors on `rules`, produces `events`, and returns the
/// alerts once `expected` arrived (and no more within the settle time).
async fn run(
    test: &str,
    rules: &str,
    events: &[EnrichedAuditEvent],
    expected: usize,
) -> Vec<Alert> {
    let _serial = SERIAL.lock().await;
    let (pipeline, file) = detectors(test, rules, &[]).await;
    produce_enriched(&pipeline.names.enriched, events).await;
    let alerts = alerts_of(&pipeline, expected).await;
    let summary: Vec<String> = alerts
        .iter()
        .map(|a| format!("{} {:?}: {}", a.rule_id, a.group_key, a.summary))
        .collect();
    assert_eq!(alerts.len(), expected, "alerts: {summary:#?}");
    // `scimtrail backtest` over the same topic, and over an export of it,
    // raises the same alerts, byte for byte: how an operator tests a rule is
    // how it will run.
    let topic = backtest(&pipeline, &file, &[]);
    assert_eq!(
        topic, alerts,
        "backtest over the topic and detector disagree"
    );
    let export = file.with_extension("jsonl");
    let out = std::process::Command::new(bin("scimtrail"))
        .arg("tail")
        .arg(&pipeline.names.enriched)
        .args(["--from-beginning", "--idle-exit", "2", "--values-only"])
        .envs(pipeline.names.env())
        .output()
        .expect("run scimtrail tail");
    assert!(
        out.status.success(),
        "tail failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(&export, &out.stdout).expect("write export");
    let exported = backtest(&pipeline, &file, &["--file".as_ref(), export.as_os_str()]);
    assert_eq!(
        exported, alerts,
        "backtest over an export and detector disagree"
    );
    let _ = std::fs::remove_file(&export);
    let _ = std::fs::remove_file(&file);
    alerts
}

/// The alerts `scimtrail backtest --json` prints for the rules in `rules`
/// over the pipeline's enriched topic (or what `extra` names), in order.
fn backtest(pipeline: &Pipeline, rules: &Path, extra: &[&std::ffi::OsStr]) -> Vec<Alert> {
    let out = std::process::Command::new(bin("scimtrail"))
        .args(["backtest", "--json", "--lateness-secs", "0.5", "--rules"])
        .arg(rules)
        .args(extra)
        .envs(pipeline.names.env())
        .output()
        .expect("run scimtrail backtest");
    assert!(
        out.status.success(),
        "backtest failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut alerts: Vec<Alert> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    alerts.sort_by(by_rule_and_time);
    alerts
}

fn key(a: &Alert, field: &str) -> String {
    a.group_key.get(field).cloned().unwrap_or_default()
}

#[tokio::test]
async fn threshold_rule_alerts_once_per_burst_through_kafka() {
    let rules = r#"
rules:
  - id: burst
    title: Burst
    severity: high
    description: More than 5 changes by one principal within 60 s.
    where: 'action ne "READ"'
    threshold: {more_than: 5, window: 60s}
  - id: many-users
    title: Many users
    severity: medium
    description: More than 3 distinct users changed in one target within 60 s.
    group_by: [target.system]
    threshold: {more_than: 3, window: 60s, distinct: resource.id}
"#;
    // 8 changes by p-burst to 8 users of gh within 8 s, spread over the
    // partitions; 3 by p-calm in slack to one user.
    let mut events: Vec<_> = (0..8)
        .map(|i| {
            ev(
                &format!("b{i}"),
                "p-burst",
                &format!("u{i}"),
                "gh",
                WEDNESDAY + i * S,
            )
        })
        .collect();
    events.extend((0..3).map(|i| ev(&format!("c{i}"), "p-calm", "u0", "slack", WEDNESDAY + i * S)));
    let alerts = run("threshold", rules, &events, 2).await;
    let burst = &alerts[0];
    assert_eq!(burst.rule_id, "burst");
    assert_eq!(key(burst, "principal.id"), "p-burst");
    assert_eq!((burst.count, burst.threshold), (6, 5));
    assert_eq!(
        burst.evidence_event_ids,
        ["b0", "b1", "b2", "b3", "b4", "b5"]
    );
    assert_eq!(burst.last_event_time, WEDNESDAY + 5 * S);
    let users = &alerts[1];
    assert_eq!(users.rule_id, "many-users");
    assert_eq!(key(users, "target.system"), "gh");
    assert_eq!((users.count, users.threshold), (4, 3));
}

#[tokio::test]
async fn policy_rule_alerts_on_unauthorized_actions_through_kafka() {
    let rules = r#"
rules:
  - id: policy
    title: Not allowed
    severity: high
    description: Changes the actor's roles do not allow.
    policy:
      roles:
        service-connector: {actions: [CREATE, REPLACE, PATCH, DELETE], resource_types: [User]}
        auditor: {actions: [READ]}
"#;
    let events = vec![
        // Allowed: a connector patching a user.
        roles(
            ev("ok", "okta", "u1", "gh", WEDNESDAY),
            &["service-connector"],
        ),
        // An auditor writing: twice, one alert (the second is suppressed).
        roles(
            ev("aud1", "audit-bot", "u2", "gh", WEDNESDAY + S),
            &["auditor"],
        ),
        roles(
            ev("aud2", "audit-bot", "u3", "gh", WEDNESDAY + 2 * S),
            &["auditor"],
        ),
        // A principal the role directory does not know.
        with(ev("unk", "mallory", "u4", "gh", WEDNESDAY + 3 * S), |e| {
            e.flags.push(EventFlag::UnknownPrincipal)
        }),
        // Denied access.
        with(
            ev("denied", "okta-old", "u5", "gh", WEDNESDAY + 4 * S),
            |e| {
                e.event.action = AuditAction::AccessDenied;
                e.event.outcome = Outcome::Failure;
            },
        ),
    ];
    let alerts = run("policy", rules, &events, 3).await;
    let by: BTreeMap<String, &Alert> = alerts.iter().map(|a| (key(a, "principal.id"), a)).collect();
    assert_eq!(
        by.keys().map(String::as_str).collect::<Vec<_>>(),
        ["audit-bot", "mallory", "okta-old"]
    );
    assert!(
        by["audit-bot"].summary.contains("auditor may not PATCH"),
        "{}",
        by["audit-bot"].summary
    );
    assert_eq!(by["audit-bot"].evidence_event_ids, ["aud1"]);
}

#[tokio::test]
async fn match_rules_alert_on_events_and_sequences_through_kafka() {
    let rules = r#"
rules:
  - id: privileged-grant
    title: Privileged grant
    severity: critical
    description: A member added to a privileged group.
    where: 'resource.type eq "Group" and flags eq "PRIVILEGED" and memberships[kind eq "ADDED"]'
    match: {}
  - id: rename-then-deactivate
    title: Renamed then deactivated
    severity: high
    description: An identity change followed by a deactivation within the hour.
    where: 'resource.type eq "User"'
    match:
      sequence:
        first: 'flags eq "IDENTITY_CHANGE"'
        then: 'flags eq "DEACTIVATED" or action eq "DELETE"'
        within: 1h
"#;
    let grant = with(ev("grant", "okta", "admins", "gh", WEDNESDAY), |e| {
        e.event.resource.kind = "Group".into();
        e.flags.push(EventFlag::Privileged);
        e.memberships.push(MembershipChange {
            group_id: Some("admins".into()),
            group_name: Some("admins".into()),
            member_id: "u9".into(),
            member_name: Some("mallory".into()),
            member_type: Some("User".into()),
            kind: ChangeKind::Added,
        });
    });
    let events = vec![
        grant,
        // Renamed at +1 min, deactivated at +10 min: the sequence.
        with(ev("rename", "okta", "u1", "gh", WEDNESDAY + 60 * S), |e| {
            e.flags.push(EventFlag::IdentityChange)
        }),
        deactivated(ev("deact", "okta", "u1", "gh", WEDNESDAY + 600 * S)),
        // Deactivated without a rename: nothing.
        deactivated(ev("plain", "okta", "u2", "gh", WEDNESDAY + 600 * S)),
        // Renamed, deactivated two hours later: too late.
        with(ev("rename-late", "okta", "u3", "gh", WEDNESDAY), |e| {
            e.flags.push(EventFlag::IdentityChange)
        }),
        deactivated(ev("deact-late", "okta", "u3", "gh", WEDNESDAY + 7200 * S)),
    ];
    let alerts = run("match", rules, &events, 2).await;
    assert_eq!(alerts[0].rule_id, "privileged-grant");
    assert_eq!(alerts[0].evidence_event_ids, ["grant"]);
    assert_eq!(alerts[1].rule_id, "rename-then-deactivate");
    assert_eq!(alerts[1].evidence_event_ids, ["rename", "deact"]);
    assert_eq!(key(&alerts[1], "resource.id"), "u1");
}

#[tokio::test]
async fn new_value_rule_alerts_on_a_new_source_ip_through_kafka() {
    let rules = r#"
rules:
  - id: new-ip
    title: New source IP
    severity: low
    description: A principal acting from an IP it has not used within a day.
    new_value: {field: source.ip, lookback: 1d}
"#;
    let events = vec![
        // Learns 10.0.0.1, uses it again, then a new address.
        ip(ev("n1", "okta", "u1", "gh", WEDNESDAY), "10.0.0.1"),
        ip(ev("n2", "okta", "u2", "gh", WEDNESDAY + S), "10.0.0.1"),
        ip(
            ev("n3", "okta", "u3", "gh", WEDNESDAY + 2 * S),
            "203.0.113.7",
        ),
        // Another principal only ever uses one address.
        ip(ev("m1", "scim-bridge", "u4", "gh", WEDNESDAY), "10.0.0.2"),
        ip(
            ev("m2", "scim-bridge", "u5", "gh", WEDNESDAY + S),
            "10.0.0.2",
        ),
    ];
    let alerts = run("new-value", rules, &events, 1).await;
    assert_eq!(key(&alerts[0], "principal.id"), "okta");
    assert_eq!(alerts[0].evidence_event_ids, ["n3"]);
    assert!(
        alerts[0].summary.contains("203.0.113.7"),
        "{}",
        alerts[0].summary
    );
}

#[tokio::test]
async fn error_rate_rule_alerts_on_an_error_spike_through_kafka() {
    let rules = r#"
rules:
  - id: errors
    title: Error spike
    severity: medium
    description: Half of at least 10 requests to one target failed within 5 minutes.
    error_rate: {window: 5m, ratio: 0.5, min_count: 10}
"#;
    let failed = |e: EnrichedAuditEvent| with(e, |e| e.event.outcome = Outcome::Failure);
    // gh: 4 successes then 8 failures; slack: 12 requests, 2 failed.
    let mut events: Vec<_> = (0..4)
        .map(|i| {
            ev(
                &format!("ok{i}"),
                "okta",
                &format!("u{i}"),
                "gh",
                WEDNESDAY + i * S,
            )
        })
        .collect();
    events.extend((4..12).map(|i| {
        failed(ev(
            &format!("f{i}"),
            "okta",
            &format!("u{i}"),
            "gh",
            WEDNESDAY + i * S,
        ))
    }));
    events.extend((0..12).map(|i| {
        let e = ev(
            &format!("s{i}"),
            "okta",
            &format!("u{i}"),
            "slack",
            WEDNESDAY + i * S,
        );
        if i % 6 == 0 {
            failed(e)
        } else {
            e
        }
    }));
    let alerts = run("error-rate", rules, &events, 1).await;
    assert_eq!(key(&alerts[0], "target.system"), "gh");
    assert_eq!((alerts[0].count, alerts[0].threshold), (6, 10));
    assert_eq!(alerts[0].last_event_time, WEDNESDAY + 9 * S);
}

#[tokio::test]
async fn schedule_rule_alerts_outside_working_hours_through_kafka() {
    let rules = r#"
rules:
  - id: off-hours
    title: Off hours
    severity: medium
    description: A person changing identities outside working hours.
    where: 'principal.type eq "user"'
    schedule: {time_zone: Europe/Berlin, days: [mon-fri], hours: ["08:00-18:00"]}
"#;
    let human = |e: EnrichedAuditEvent| with(e, |e| e.event.principal.kind = "user".into());
    let events = vec![
        // Wednesday 10:00 UTC is 11:00 in Berlin: allowed.
        human(ev("wed", "bjensen", "u1", "gh", WEDNESDAY)),
        // Saturday: not.
        human(ev("sat", "ajones", "u2", "gh", SATURDAY)),
        // A connector at the weekend is no person.
        ev("svc", "okta", "u3", "gh", SATURDAY),
        // Wednesday 17:30 UTC is 18:30 in Berlin: not.
        human(ev("eve", "cdoe", "u4", "gh", WEDNESDAY + 27_000 * S)),
    ];
    let alerts = run("schedule", rules, &events, 2).await;
    let who: Vec<String> = alerts.iter().map(|a| key(a, "principal.id")).collect();
    assert!(
        who.contains(&"ajones".to_string()) && who.contains(&"cdoe".to_string()),
        "{who:?}"
    );
    assert!(
        alerts
            .iter()
            .any(|a| a.summary.contains("Sat 2026-11-28 11:00 CET")),
        "{:?}",
        alerts
    );
}

/// The configuration of `topic` as the broker reports it.
async fn topic_config(topic: &str) -> BTreeMap<String, String> {
    use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
    let admin: AdminClient<rdkafka::client::DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .create()
        .expect("admin client");
    let described = admin
        .describe_configs(&[ResourceSpecifier::Topic(topic)], &AdminOptions::new())
        .await
        .expect("describe configs");
    let resource = described
        .into_iter()
        .next()
        .expect("one resource")
        .unwrap_or_else(|e| panic!("{topic}: {e}"));
    resource
        .entries
        .into_iter()
        .filter_map(|e| Some((e.name, e.value?)))
        .collect()
}

/// Waits until both detector tasks have committed everything produced so far.
async fn drained(pipeline: &Pipeline) {
    let names = &pipeline.names;
    let by_key = format!("{}.internal.detector-by-key", names.prefix);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let a =
            crate::harness::unprocessed(&names.group("detector-repartition"), &names.enriched, 3)
                .await;
        let b = crate::harness::unprocessed(&names.group("detector-rules"), &by_key, 3).await;
        if a == 0 && b == 0 {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "detector did not catch up: {a} enriched and {b} re-keyed records unprocessed"
        );
    }
}

#[tokio::test]
async fn rule_state_survives_kill_9_without_missed_or_repeated_alerts() {
    let _serial = SERIAL.lock().await;
    let rules = r#"
rules:
  - id: burst
    title: Burst
    severity: high
    description: More than 5 changes by one principal within 10 minutes.
    threshold: {more_than: 5, window: 10m}
  - id: new-ip
    title: New source IP
    severity: low
    description: A principal acting from an IP it has not used within a day.
    new_value: {field: source.ip, lookback: 1d}
"#;
    let (mut pipeline, file) = detectors("detector-kill9", rules, &[]).await;
    // The state lives in a compacted changelog that takes a busy key's
    // whole window (up to 32 MiB), as the detector created it.
    let config = topic_config(&format!(
        "{}.internal.detector-state",
        pipeline.names.prefix
    ))
    .await;
    assert_eq!(
        config.get("cleanup.policy").map(String::as_str),
        Some("compact")
    );
    assert_eq!(
        config.get("max.message.bytes"),
        Some(&scimtrail_detector::MAX_STATE_ENTRY_BYTES.to_string())
    );
    let topic = pipeline.names.enriched.clone();
    let change = |i: i64| {
        ip(
            ev(
                &format!("p{i}"),
                "okta",
                &format!("u{i}"),
                "gh",
                WEDNESDAY + i * S,
            ),
            "10.0.0.1",
        )
    };

    // Before the crash: 4 changes (under the threshold) from the one IP the
    // rule learns. Both instances die without a goodbye once that is committed.
    produce_enriched(&topic, &(0..4).map(change).collect::<Vec<_>>()).await;
    // The last events wait for the idle watermark; let it pass, then commit.
    tokio::time::sleep(Duration::from_secs(3)).await;
    drained(&pipeline).await;
    for s in ["detector-1", "detector-2"] {
        pipeline.service(s).kill9();
    }
    for s in ["detector-1", "detector-2"] {
        pipeline.service(s).restart();
    }
    // After it: 2 more changes cross the threshold only with the 4 before,
    // and a known IP stays known; a new one alerts. One instance is killed
    // again in the middle of it.
    let mut after: Vec<_> = (4..6).map(change).collect();
    after.push(ip(
        ev("p-new-ip", "okta", "u9", "gh", WEDNESDAY + 7 * S),
        "198.51.100.4",
    ));
    produce_enriched(&topic, &after).await;
    pipeline.service("detector-1").kill9();
    tokio::time::sleep(Duration::from_millis(500)).await;
    pipeline.service("detector-1").restart();
    let alerts = alerts_of(&pipeline, 2).await;
    assert_eq!(alerts.len(), 2, "{alerts:#?}");
    assert_eq!(alerts[0].rule_id, "burst");
    assert_eq!(
        alerts[0].evidence_event_ids,
        ["p0", "p1", "p2", "p3", "p4", "p5"]
    );
    assert_eq!(alerts[1].rule_id, "new-ip");
    assert_eq!(alerts[1].evidence_event_ids, ["p-new-ip"]);

    // Crash once more after the alerts: a 7th change in the window must not
    // raise the burst again (its events were used up), nor the new IP.
    drained(&pipeline).await;
    for s in ["detector-1", "detector-2"] {
        pipeline.service(s).kill9();
        pipeline.service(s).restart();
    }
    produce_enriched(
        &topic,
        &[ip(
            ev("p7", "okta", "u7", "gh", WEDNESDAY + 8 * S),
            "198.51.100.4",
        )],
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    drained(&pipeline).await;
    let alerts = alerts_of(&pipeline, 2).await;
    assert_eq!(
        alerts.len(),
        2,
        "an alert was repeated after kill -9: {alerts:#?}"
    );
    let _ = std::fs::remove_file(&file);
}

/// The value of `scimtrail_detector_rules_reloads_total{result}` on `service`.
async fn reloads(pipeline: &mut Pipeline, service: &str, result: &str) -> f64 {
    let text = pipeline.service(service).metrics().await;
    text.lines()
        .find(|l| {
            l.starts_with("scimtrail_detector_rules_reloads_total")
                && l.contains(&format!("result=\"{result}\""))
        })
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0)
}

async fn wait_reloads(pipeline: &mut Pipeline, result: &str, n: f64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    for s in ["detector-1", "detector-2"] {
        while reloads(pipeline, s, result).await < n {
            assert!(
                std::time::Instant::now() < deadline,
                "{s} did not count {n} {result} reloads"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

#[tokio::test]
async fn a_changed_rules_file_is_reloaded_and_a_bad_one_rejected_in_running_detectors() {
    let _serial = SERIAL.lock().await;
    let rules = |more_than: u32| {
        format!(
            r#"
rules:
  - id: burst
    title: Burst
    severity: high
    description: Many changes by one principal.
    threshold: {{more_than: {more_than}, window: 10m}}
"#
        )
    };
    let (mut pipeline, file) = detectors(
        "detector-reload",
        &rules(100),
        &[("SCIMTRAIL__DETECTOR__RULES_RELOAD_SECS", "1")],
    )
    .await;
    let topic = pipeline.names.enriched.clone();
    let changes = |who: &str, from: i64| -> Vec<EnrichedAuditEvent> {
        (0..6)
            .map(|i| {
                ev(
                    &format!("{who}{i}"),
                    who,
                    &format!("u{i}"),
                    "gh",
                    WEDNESDAY + (from + i) * S,
                )
            })
            .collect()
    };
    // Under the first file's threshold: nothing.
    produce_enriched(&topic, &changes("a", 0)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    drained(&pipeline).await;

    // A lower threshold, picked up without a restart (the file's mtime
    // must change: file systems with one-second resolution need the pause).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    std::fs::write(&file, rules(5)).expect("write rules");
    wait_reloads(&mut pipeline, "ok", 1.0).await;
    produce_enriched(&topic, &changes("b", 10)).await;
    let alerts = alerts_of(&pipeline, 1).await;
    assert_eq!(key(&alerts[0], "principal.id"), "b", "{alerts:#?}");

    // A broken file is rejected; the running rules stay.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    std::fs::write(&file, rules(5).replace("more_than", "more_then")).expect("write rules");
    wait_reloads(&mut pipeline, "rejected", 1.0).await;
    produce_enriched(&topic, &changes("c", 20)).await;
    let alerts = alerts_of(&pipeline, 2).await;
    let who: Vec<String> = alerts.iter().map(|a| key(a, "principal.id")).collect();
    assert_eq!(who, ["b", "c"]);
    let _ = std::fs::remove_file(&file);
}
