//! scimtrail-detector: rules over the enriched audit stream.
//!
//! Two exactly-once tasks per instance, as a Kafka Streams topology would have:
//! 1. **repartition** (group `<prefix>-detector-repartition`): reads
//!    `audit.enriched.v1` (keyed by resource) and re-keys each event by every
//!    partitioning (`group_by` fields) the enabled rules use onto the internal
//!    topic `<internal_prefix>detector-by-key` ([`repartition`]);
//! 2. **rules** (group `<prefix>-detector-rules`): reads that topic, so every
//!    event of one group key reaches one instance, evaluates the rules
//!    ([`rules`]) and writes `Alert`s to `audit.alerts.v1` ([`evaluate`]).
//!
//! **Delivery:** exactly-once per task through the transactional runner.
//! **State:** the engine's windows, seen values and suppression are written
//! to the compacted changelog `<internal_prefix>detector-state` in the same
//! transaction and restored on assignment. **Rules:** from
//! `detector.rules_file` (or the built-in default pack), hot-reloaded on change
//! or SIGHUP ([`reload`]).

pub mod config;
pub mod evaluate;
pub mod reload;
pub mod repartition;
pub mod rules;

use std::path::PathBuf;

use scimtrail_core::app::{App, Startup};
use scimtrail_core::kafka::{TopicSpec, TopicStatus};
use scimtrail_core::metrics::RunnerMetrics;
use scimtrail_core::runner::{self, RunnerSpec};
use scimtrail_core::schema::avro::Codecs;
use scimtrail_core::schema::Framing;

pub use config::DetectorConfig;

pub const SERVICE: &str = "detector";

/// Where this service's configuration comes from.
pub const STARTUP: Startup = Startup {
    service: SERVICE,
    default_admin_listen: "127.0.0.1:9103",
    list_keys: &[],
};

/// Validates the configuration without starting (`--check-config`).
pub fn check_config(config_file: Option<PathBuf>) -> anyhow::Result<()> {
    STARTUP.check::<DetectorConfig>(config_file)
}

/// Largest rule-state changelog entry (one key's windows, compressed): the
/// changelog topic's `max.message.bytes` and the rules task's producer's
/// `message.max.bytes`, unless configured otherwise. Below the consumers'
/// default `fetch.max.bytes` (50 MB), so a restore reads it.
pub const MAX_STATE_ENTRY_BYTES: u32 = 32 * 1024 * 1024;

/// Name (after the internal prefix) of the repartition topic.
pub const BY_KEY: &str = "detector-by-key";

/// Runs the service until SIGTERM/SIGINT.
pub async fn run(config_file: Option<PathBuf>) -> anyhow::Result<()> {
    let app: App<DetectorConfig> = App::start(STARTUP, config_file).await?;
    let common = app.config.common.clone();
    let cfg = app.config.stage.clone();
    let rule_set = cfg
        .rules()
        .map_err(|e| anyhow::anyhow!("detector.rules_file: {e}"))?;
    tracing::info!(
        message = "rules loaded",
        file = %cfg.rules_file.as_ref().map_or("(default pack)".to_string(), |p| p.display().to_string()),
        enabled = rule_set.rules().filter(|r| r.enabled).count(),
        partitionings = rule_set.partitionings().len(),
    );
    let rules = reload::Rules::new(rule_set);
    let reloads = scimtrail_core::metrics::counter_vec(
        &app.registry,
        SERVICE,
        "rules_reloads_total",
        "Reloads of the rules file after it changed or on SIGHUP, by result (ok, rejected).",
        &["result"],
    );
    for r in ["ok", "rejected"] {
        reloads.with_label_values(&[r]);
    }
    if let Some(path) = &cfg.rules_file {
        rules.watch(
            path.clone(),
            reload::watch(std::time::Duration::from_secs(cfg.rules_reload_secs)),
            rules::RuleSet::load,
            reloads,
            app.shutdown.clone(),
        )?;
    }

    let by_key = common.topics.internal(BY_KEY);
    let changelog = common.topics.internal(evaluate::CHANGELOG);
    let mut compacted = common.topics.settings.clone();
    compacted.insert("cleanup.policy".into(), "compact".into());
    compacted.remove("retention.ms");
    // One entry holds a key's whole window: a busy target's error-rate window
    // can outgrow Kafka's default 1 MB record, and a state entry that cannot
    // be written fails its transaction again and again.
    compacted
        .entry("max.message.bytes".into())
        .or_insert_with(|| MAX_STATE_ENTRY_BYTES.to_string());
    // Internal topics belong to the detector and are created by it, like a
    // Kafka Streams application's repartition and changelog topics. The
    // changelog must have the repartition topic's partition count: a key's
    // state lives on its input partition's number.
    let created = scimtrail_core::kafka::ensure_topics(
        &common.kafka,
        &[
            TopicSpec {
                name: by_key.clone(),
                partitions: common.topics.partitions,
                replication_factor: common.topics.replication_factor,
                settings: common.topics.settings.clone(),
            },
            TopicSpec {
                name: changelog.clone(),
                partitions: common.topics.partitions,
                replication_factor: common.topics.replication_factor,
                settings: compacted,
            },
        ],
    )
    .await?;
    let counts: Vec<i32> = created
        .iter()
        .map(|(_, s)| match s {
            TopicStatus::Created => common.topics.partitions,
            TopicStatus::Exists { partitions } => *partitions,
        })
        .collect();
    if counts.first() != counts.get(1) {
        anyhow::bail!(
            "topics {by_key} and {changelog} have {counts:?} partitions: they must have the same number"
        );
    }
    let sources = {
        let kafka = common.kafka.clone();
        let enriched = common.topics.enriched.clone();
        tokio::task::spawn_blocking(move || {
            scimtrail_core::kafka::partition_counts(&kafka, std::slice::from_ref(&enriched))
                .map(|c| c.get(&enriched).copied().unwrap_or(0))
        })
        .await??
    };
    let framing = Framing::from_config(&common.schema_registry)?;
    let topics = common.topics.clone();
    let codecs = tokio::task::spawn_blocking(move || Codecs::new(framing, &topics)).await??;

    let metrics = RunnerMetrics::new(&app.registry, SERVICE);
    let repartition = runner::spawn(
        RunnerSpec {
            task: "repartition".into(),
            stage: SERVICE.into(),
            group_id: format!("{}-{SERVICE}-repartition", common.kafka.group_prefix),
            input_topics: vec![common.topics.enriched.clone()],
            dlq_topic: common.topics.dlq.clone(),
        },
        common.kafka.clone(),
        repartition::ByKey::new(codecs.enriched.clone(), by_key.clone(), rules.clone()),
        metrics.clone(),
        app.health.task("repartition"),
        app.shutdown.clone(),
    );
    let evaluate_stage = evaluate::Evaluate::new(
        codecs,
        common.topics.alerts.clone(),
        changelog,
        rules,
        rules::EngineOptions {
            allowed_lateness_ms: cfg.allowed_lateness_ms(),
            max_evidence: cfg.max_evidence,
            max_keys: cfg.max_keys,
        },
        rules::EngineMetrics::new(&app.registry),
        usize::try_from(sources).unwrap_or(0),
    );
    let mut rules_kafka = common.kafka.clone();
    rules_kafka
        .producer_properties
        .entry("message.max.bytes".to_string())
        .or_insert_with(|| serde_json::Value::from(MAX_STATE_ENTRY_BYTES));
    let evaluate = runner::spawn(
        RunnerSpec {
            task: "rules".into(),
            stage: SERVICE.into(),
            group_id: format!("{}-{SERVICE}-rules", common.kafka.group_prefix),
            input_topics: vec![by_key],
            dlq_topic: common.topics.dlq.clone(),
        },
        rules_kafka,
        evaluate_stage,
        metrics,
        app.health.task("rules"),
        app.shutdown.clone(),
    );
    // One task failing stops the other: a half-running detector would look
    // healthy while raising nothing.
    let shutdown = app.shutdown.clone();
    let stop_on_error = |r: anyhow::Result<()>| {
        if r.is_err() {
            shutdown.cancel();
        }
        r
    };
    let (a, b) = tokio::join!(
        async { stop_on_error(repartition.await.map_err(Into::into)) },
        async { stop_on_error(evaluate.await.map_err(Into::into)) }
    );
    a?;
    b?;
    tracing::info!(message = "stopped cleanly");
    Ok(())
}
