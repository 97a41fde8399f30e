use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use rdkafka::Message;
use serde_json::{json, Value};

use scimtrail_core::schema::avro::Codecs;
use scimtrail_core::schema::{AuditAction, ChangeKind, Outcome};

use crate::harness::*;

fn invalid_raw() -> Vec<(Vec<u8>, &'static str)> {
    let valid = json!({
        "id": "bad-x", "time": "2026-01-01T00:00:00Z",
        "source": {"system": "okta-prod"}, "principal": {"id": "okta-provisioner"},
        "target": {"system": "github-enterprise"},
        "request": {"method": "POST", "path": "/Users", "body": {"userName": "x"}}
    });
    let with = |f: &dyn Fn(&mut Value)| {
        let mut v = valid.clone();
        f(&mut v);
        v.to_string().into_bytes()
    };
    vec![
        (b"{this is not json".to_vec(), "invalid_json"),
        (
            with(&|v| {
                v["principal"] = json!({"type": "service"});
            }),
            "invalid_shape",
        ),
        (
            with(&|v| {
                v["request"]["method"] = json!("TRACE");
            }),
            "unknown_method",
        ),
        (
            with(&|v| {
                v["time"] = json!("last tuesday");
            }),
            "invalid_time",
        ),
        (
            with(&|v| {
                v["request"]["path"] = json!("/Bulk");
            }),
            "unsupported",
        ),
    ]
}

/// A create of a user with a 400 KB attribute, answered with the resource.
fn oversized_create() -> Value {
    let blob = "x".repeat(400 * 1024);
    json!({
        "id": "oversized-1", "time": "2026-01-01T00:01:00Z",
        "source": {"system": "okta-prod"}, "principal": {"id": "okta-provisioner", "type": "service"},
        "target": {"system": "github-enterprise"},
        "request": {"method": "POST", "path": "/Users", "body": {"userName": "big", "description": blob}},
        "response": {"status": 201, "body": {"id": "big-1", "userName": "big", "description": blob,
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"]}}
    })
}

/// Raw traffic with a burst by a principal that makes no other changes, so
/// the expected alert is known exactly: 60 ordinary exchanges five seconds
/// apart (at most 12 per minute, under any threshold of 20), then 30 changes
/// by `mass-deleter` within 20 seconds.
fn traffic() -> Vec<Value> {
    generate(&[
        "--start",
        "2026-01-01T00:00:00Z",
        "--step-ms",
        "5000",
        "--rate",
        "100000",
        "--count",
        "60",
        "--seed",
        "7",
        "--failure-ratio",
        "0.1",
        "--burst-principal",
        "mass-deleter",
        "--burst-size",
        "30",
        "--burst-within",
        "20",
        "--burst-after",
        "30",
    ])
}

#[tokio::test]
async fn pipeline_delivers_each_event_once_dead_letters_bad_input_and_alerts_on_the_burst() {
    let _serial = SERIAL.lock().await;
    // The receiver fails its first two calls: the sink must retry, not drop.
    // Only the burst rule of the default pack, so the expected alerts are
    // known exactly (tests/e2e/detector.rs covers the other kinds).
    let rules = std::env::temp_dir().join(format!("scimtrail-rules-{}.yaml", uuid::Uuid::new_v4()));
    let pack = scimtrail_detector::rules::DEFAULT_PACK;
    let burst = pack
        .split("\n  - id: ")
        .find(|r| r.starts_with("burst.principal"))
        .expect("burst.principal in the default pack");
    std::fs::write(&rules, format!("rules:\n  - id: {burst}")).expect("write rules");
    let mut p = Pipeline::start_with(
        "pipeline",
        Stages::ALL,
        2,
        2,
        vec![(
            "SCIMTRAIL__DETECTOR__RULES_FILE".into(),
            rules.display().to_string(),
        )],
    )
    .await;
    let names = p.names.clone();
    let codecs = Codecs::single_object().expect("codecs");

    let valid = traffic();
    let invalid = invalid_raw();
    let mut records: Vec<(Option<String>, Vec<u8>)> = valid
        .iter()
        .map(|v| {
            (
                Some(scimtrail_core::schema::raw::record_key(v)),
                v.to_string().into_bytes(),
            )
        })
        .collect();
    // A valid exchange whose enriched event (before/after snapshots and the
    // diff repeat its 400 KB attribute) outgrows Kafka's 1 MB message limit:
    // the enricher cannot produce it, so it dead-letters its AuditEvent instead
    // of retrying the batch forever or skipping its neighbours.
    let huge = oversized_create();
    records.insert(
        40,
        (
            Some(scimtrail_core::schema::raw::record_key(&huge)),
            huge.to_string().into_bytes(),
        ),
    );
    // Poison between good records: it must not hold back its neighbours.
    for (i, (bytes, _)) in invalid.iter().enumerate() {
        records.insert(10 + i * 15, (Some(format!("bad-{i}")), bytes.clone()));
    }
    produce(&names.raw, &records).await;
    // And records that are not what the enricher, the detector and the sink
    // read: each dead-letters its poison and carries on.
    let junk = b"\xc3\x01garbage".to_vec();
    for topic in [&names.events, &names.enriched, &names.alerts] {
        produce(topic, &[(Some("junk".into()), junk.clone())]).await;
    }

    // Every valid exchange becomes exactly one enriched event.
    let enriched = consume(
        &names.enriched,
        valid.len() + 1,
        Duration::from_secs(120),
        Duration::from_secs(3),
    )
    .await;
    let want: BTreeSet<String> = valid
        .iter()
        .map(|v| v["id"].as_str().expect("id").to_string())
        .collect();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut decoded = Vec::new();
    for m in &enriched {
        if m.key() == Some(b"junk".as_slice()) {
            continue; // the detector's poison, produced above
        }
        let e = codecs
            .enriched
            .decode(m.payload().expect("payload"))
            .expect("enriched decodes");
        *seen.entry(e.event.event_id.clone()).or_default() += 1;
        decoded.push((m.partition(), e));
    }
    let dups: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(dups.is_empty(), "duplicated events: {dups:?}");
    let got: BTreeSet<String> = seen.keys().cloned().collect();
    assert_eq!(got, want, "enriched ids differ from the valid raw ids");

    // Each enriched partition is one intact hash chain, though two enricher
    // instances share the partitions and the oversized event was dropped.
    let chains = verify_chains(&enriched, b"junk");
    assert_eq!(chains.values().sum::<usize>(), valid.len());
    // Every 10 events of a partition the enricher signed a checkpoint of its head.
    let expected_checkpoints: usize = chains.values().map(|n| n / 10).sum();
    let checkpoints = consume(
        &names.checkpoints,
        expected_checkpoints,
        Duration::from_secs(30),
        Duration::from_secs(1),
    )
    .await;
    let counts = verify_checkpoints(&checkpoints, &enriched, &p.checkpoint_key, b"junk");
    for (partition, n) in &chains {
        assert_eq!(
            counts.get(partition).copied().unwrap_or(0),
            n / 10,
            "checkpoints of partition {partition}"
        );
    }
    // And so does the independent verifier an analyst would write (docs/enricher.md).
    for (partition, length) in &chains {
        assert_eq!(
            verify_chain_with_python(&enriched, *partition, b"junk"),
            *length
        );
    }

    // The enricher writes each event to the partition number it read it from.
    let events = consume(
        &names.events,
        valid.len() + 1,
        Duration::from_secs(30),
        Duration::from_secs(1),
    )
    .await;
    let event_partition: HashMap<String, i32> = events
        .iter()
        .filter_map(|m| {
            codecs
                .audit_event
                .decode(m.payload()?)
                .ok()
                .map(|e| (e.event_id, m.partition()))
        })
        .collect();
    for (partition, e) in &decoded {
        assert_eq!(
            event_partition.get(&e.event.event_id),
            Some(partition),
            "event {} moved partition",
            e.event.event_id
        );
    }

    // Attribute-level before/after: a successful user PATCH after its create has
    // an exact, non-partial diff.
    let user_patches: Vec<_> = decoded
        .iter()
        .map(|(_, e)| e)
        .filter(|e| {
            e.event.action == AuditAction::Patch
                && e.event.outcome == Outcome::Success
                && e.event.resource.kind == "User"
        })
        .collect();
    assert!(
        !user_patches.is_empty(),
        "the traffic has successful user PATCHes"
    );
    for e in &user_patches {
        assert!(!e.partial, "user PATCH {} is partial", e.event.event_id);
        assert!(
            !e.changes.is_empty(),
            "user PATCH {} lists no change",
            e.event.event_id
        );
        assert!(e
            .changes
            .iter()
            .all(|c| c.kind != ChangeKind::Changed || (c.before.is_some() && c.after.is_some())));
    }
    let creates: Vec<_> = decoded
        .iter()
        .map(|(_, e)| e)
        .filter(|e| e.event.action == AuditAction::Create && e.event.outcome == Outcome::Success)
        .collect();
    assert!(creates
        .iter()
        .all(|e| e.before.is_none() && e.changes.iter().all(|c| c.kind == ChangeKind::Added)));
    let failures = decoded
        .iter()
        .filter(|(_, e)| e.event.outcome == Outcome::Failure)
        .count();
    assert!(failures > 0, "the traffic includes failures");
    assert!(decoded
        .iter()
        .filter(|(_, e)| e.event.outcome == Outcome::Failure)
        .all(|(_, e)| e.changes.is_empty() && e.event.error.is_some()));

    // Exactly the invalid records are dead-lettered, bytes intact, reason attached.
    let expected_dead = invalid.len() + 3 + 1;
    let dlq = consume(
        &names.dlq,
        expected_dead,
        Duration::from_secs(30),
        Duration::from_secs(2),
    )
    .await;
    assert_eq!(dlq.len(), expected_dead, "dead letters");
    let mut by_kind: BTreeMap<(String, String), Vec<u8>> = BTreeMap::new();
    for m in &dlq {
        let h = headers(m);
        assert!(!h["scimtrail.dlq.reason"].is_empty());
        by_kind.insert(
            (
                h["scimtrail.dlq.stage"].clone(),
                h["scimtrail.dlq.kind"].clone(),
            ),
            m.payload().unwrap_or_default().to_vec(),
        );
    }
    for (bytes, kind) in &invalid {
        let payload = by_kind
            .get(&("ingest".to_string(), kind.to_string()))
            .unwrap_or_else(|| panic!("no dead letter of kind {kind} from ingest"));
        assert_eq!(payload, bytes, "dead letter keeps the original bytes");
    }
    let unproducible = by_kind
        .get(&("enricher".to_string(), "unproducible".to_string()))
        .expect("the oversized event is dead-lettered by the enricher");
    let event = codecs
        .audit_event
        .decode(unproducible)
        .expect("the dead letter is its AuditEvent");
    assert_eq!(event.event_id, "oversized-1");
    assert!(
        !seen.contains_key("oversized-1"),
        "the oversized event was not enriched"
    );
    for stage in ["enricher", "detector", "sink"] {
        assert!(
            by_kind.contains_key(&(stage.to_string(), "invalid_avro".to_string())),
            "{stage} dead-lettered its poison: {:?}",
            by_kind.keys().collect::<Vec<_>>()
        );
    }

    // Exactly one alert, for the burst, delivered despite the receiver's failures.
    let calls = p
        .receiver
        .wait_for(1, Duration::from_secs(60), Duration::from_secs(4))
        .await;
    assert_eq!(calls.len(), 1, "expected exactly one alert, got {calls:#?}");
    assert_eq!(
        p.receiver.failures_left(),
        0,
        "the sink retried through the failures"
    );
    let alert = &calls[0].body["data"];
    assert_eq!(alert["rule_id"], "burst.principal");
    assert_eq!(alert["principal"], "mass-deleter");
    assert_eq!(alert["group_key"]["principal.id"], "mass-deleter");
    assert!(alert["runbook_url"]
        .as_str()
        .is_some_and(|u| u.contains("burst.principal")));
    assert_eq!(alert["count"], 21, "fires on the event that crosses 20");
    assert_eq!(alert["threshold"], 20);
    assert_eq!(
        alert["evidence_event_ids"].as_array().map(Vec::len),
        Some(20)
    );
    assert_eq!(calls[0].webhook_id.as_deref(), alert["alert_id"].as_str());
    let burst_ids: BTreeSet<&str> = valid
        .iter()
        .filter(|v| v["principal"]["id"] == "mass-deleter")
        .filter_map(|v| v["id"].as_str())
        .collect();
    for id in alert["evidence_event_ids"].as_array().expect("evidence") {
        assert!(
            burst_ids.contains(id.as_str().expect("id")),
            "evidence {id} is not a burst event"
        );
    }

    // Offsets were committed with the output: every input record is accounted for.
    for (group, topic) in [
        (names.group("ingest"), &names.raw),
        (names.group("enricher"), &names.events),
        (names.group("detector-repartition"), &names.enriched),
        (names.group("sink"), &names.alerts),
    ] {
        assert_eq!(
            unprocessed(&group, topic, 3).await,
            0,
            "{group} left records of {topic} uncommitted"
        );
    }

    // Every metric the dashboards and alert rules query is exported by the
    // service it names (deploy/metrics.txt lists them).
    let wanted = std::fs::read_to_string(repo_root().join("deploy/metrics.txt"))
        .expect("deploy/metrics.txt");
    let mut exported: HashMap<String, String> = HashMap::new();
    for s in &p.services {
        let stage = s.name.split('-').next().unwrap_or_default().to_string();
        exported
            .entry(stage)
            .or_default()
            .push_str(&s.metrics().await);
    }
    let mut missing = Vec::new();
    for name in wanted
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let owners: Vec<&String> = match name.strip_prefix("scimtrail_") {
            Some(rest) if !name.starts_with("scimtrail_build_info") => exported
                .keys()
                .filter(|stage| rest.starts_with(&format!("{stage}_")))
                .collect(),
            Some(_) => exported.keys().collect(),
            None => continue, // Prometheus' own series, such as `up`
        };
        assert!(
            !owners.is_empty(),
            "deploy/metrics.txt names {name}, which no service owns"
        );
        for stage in owners {
            if !exported[stage].contains(&format!("# TYPE {name} ")) {
                missing.push(format!("{stage}: {name}"));
            }
        }
    }
    assert!(missing.is_empty(), "metrics not exported: {missing:#?}");

    // Every service shuts down cleanly on SIGTERM.
    for s in p.services.iter_mut() {
        assert!(
            s.terminate(Duration::from_secs(30)),
            "{} did not exit cleanly on SIGTERM",
            s.name
        );
    }
}

#[tokio::test]
async fn enricher_killed_and_scaled_mid_stream_keeps_state_and_chains_exact() {
    let _serial = SERIAL.lock().await;
    let stages = Stages {
        ingest: true,
        enricher: true,
        detector: false,
        sink: false,
    };
    let mut p = Pipeline::start("crash", stages, 2, 0).await;
    let names = p.names.clone();
    let codecs = Codecs::single_object().expect("codecs");
    let valid = generate(&[
        "--start",
        "2026-02-01T00:00:00Z",
        "--step-ms",
        "1000",
        "--rate",
        "100000",
        "--count",
        "1500",
        "--seed",
        "11",
    ]);
    let records: Vec<(Option<String>, Vec<u8>)> = valid
        .iter()
        .map(|v| {
            (
                Some(scimtrail_core::schema::raw::record_key(v)),
                v.to_string().into_bytes(),
            )
        })
        .collect();

    // Produce in slices while the pipeline runs, and kill one enricher when part
    // of the stream is through; the last third comes after a scale-out.
    let raw_topic = names.raw.clone();
    let (first, last) = records.split_at(1000);
    let first = first.to_vec();
    let producer = tokio::spawn(async move {
        for chunk in first.chunks(50) {
            produce(&raw_topic, chunk).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let partial = consume(
        &names.enriched,
        300,
        Duration::from_secs(120),
        Duration::ZERO,
    )
    .await;
    assert!(partial.len() >= 300);
    p.service("enricher-1").kill9();
    tokio::time::sleep(Duration::from_millis(500)).await;
    p.service("enricher-1").restart();
    p.service("enricher-1").wait_ready().await;
    producer.await.expect("producer task");
    // A third instance joins: partitions move to it and it restores their
    // state from the changelog before the rest of the stream arrives.
    p.scale_out("enricher", 3);
    p.service("enricher-3").wait_ready().await;
    produce(&names.raw, last).await;

    let enriched = consume(
        &names.enriched,
        valid.len(),
        Duration::from_secs(180),
        Duration::from_secs(5),
    )
    .await;
    let mut seen: HashMap<String, usize> = HashMap::new();
    for m in &enriched {
        let e = codecs
            .enriched
            .decode(m.payload().expect("payload"))
            .expect("decodes");
        *seen.entry(e.event.event_id).or_default() += 1;
    }
    let dups = seen.values().filter(|n| **n > 1).count();
    assert_eq!(dups, 0, "events duplicated after the crash");
    let want: BTreeSet<String> = valid
        .iter()
        .map(|v| v["id"].as_str().expect("id").to_string())
        .collect();
    let got: BTreeSet<String> = seen.into_keys().collect();
    let missing: Vec<_> = want.difference(&got).take(5).collect();
    assert!(
        missing.is_empty(),
        "events lost after the crash, e.g. {missing:?}"
    );
    assert_eq!(enriched.len(), valid.len());
    // Across the crash the chains continue: no gap, no fork, no restart at 0.
    let chains = verify_chains(&enriched, b"junk");
    // And the resource state was restored from the changelog: each event's
    // enrichment is exactly what one enricher that never stopped computes
    // from the same events in the same order.
    let mut by_partition: BTreeMap<i32, Vec<scimtrail_core::schema::EnrichedAuditEvent>> =
        BTreeMap::new();
    for m in &enriched {
        let e = codecs
            .enriched
            .decode(m.payload().expect("payload"))
            .expect("decodes");
        by_partition.entry(m.partition()).or_default().push(e);
    }
    let mut reference = scimtrail_enricher::Enricher::new(
        scimtrail_enricher::EnricherConfig::default(),
        Codecs::single_object().expect("codecs"),
        names.enriched.clone(),
        "unused".into(),
        &prometheus::Registry::new(),
    );
    let mut compared = 0;
    for (partition, mut events) in by_partition {
        events.sort_by_key(|e| e.chain.as_ref().map(|c| c.sequence));
        for got in events {
            let mut want = reference.enrich(got.event.clone(), partition);
            want.enriched_time = got.enriched_time;
            if let (Some(w), Some(g)) = (want.trace.as_mut(), got.trace.as_ref()) {
                w.enriched_time = g.enriched_time;
            }
            want.chain = got.chain.clone();
            assert_eq!(
                got, want,
                "event {} was enriched differently than without the crash",
                got.event.event_id
            );
            compared += 1;
        }
    }
    assert_eq!(compared, valid.len());
    let joined = p.service("enricher-3").metrics().await;
    let restored: f64 = joined
        .lines()
        .find_map(|l| l.strip_prefix("scimtrail_enricher_state_restored_records_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0);
    assert!(
        restored > 0.0,
        "the joining instance restored no state:\n{joined}"
    );
    assert_eq!(chains.len(), 3, "every partition has a chain");
    // Checkpoints made before and after the crash all name real chain heads.
    let checkpoints = consume(
        &names.checkpoints,
        valid.len() / 10 - 12,
        Duration::from_secs(30),
        Duration::from_secs(1),
    )
    .await;
    let counts = verify_checkpoints(&checkpoints, &enriched, &p.checkpoint_key, b"junk");
    // A resume restarts the count, so each can cost at most one checkpoint.
    assert!(counts.values().sum::<usize>() >= valid.len() / 10 - 12);

    assert_eq!(
        unprocessed(&names.group("enricher"), &names.events, 3).await,
        0,
        "enricher offsets after recovery"
    );
    // The restarted instance fenced its predecessor's open transaction rather
    // than waiting for it to time out.
    let metrics = p.service("enricher-1").metrics().await;
    assert!(
        metrics.contains("scimtrail_enricher_transactions_total"),
        "{metrics}"
    );
}
