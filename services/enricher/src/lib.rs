//! scimtrail-enricher: what exactly changed.
//!
//! Reads `AuditEvent`s, applies each successful change to the resource's last
//! known state and emits an `EnrichedAuditEvent` with the attribute-level
//! before/after.
//!
//! **Delivery:** exactly-once through the shared transactional runner; the
//! in-memory state rolls back with an aborted transaction ([`TxState`]).
//! **Partitioning:** ingest keys events by resource, so one partition holds all
//! of a resource's events and the state is local. Each event is written to the
//! *same partition number* it was read from, so every output partition has
//! exactly one writer (the basis of the per-partition hash chain to come).
//! **State:** each resource's last known state is held per assigned partition
//! (packed, see [`state`]) and written to the compacted changelog topic
//! `<internal_prefix>enricher-state` in the same transaction as the event, so
//! it is exactly as durable as the output. On assignment, a partition's state
//! is read back from the changelog before its first record is processed; on
//! revocation it is dropped.
//!
//! [`TxState`]: scimtrail_core::state::TxState

pub mod config;
pub mod diff;
pub mod enrich;
pub mod flags;
pub mod roles;
pub mod state;

use std::path::PathBuf;

use scimtrail_core::app::{App, Startup};
use scimtrail_core::kafka::{TopicSpec, TopicStatus};
use scimtrail_core::metrics::RunnerMetrics;
use scimtrail_core::runner::{self, RunnerSpec};
use scimtrail_core::schema::avro::Codecs;
use scimtrail_core::schema::Framing;

pub use config::EnricherConfig;
pub use enrich::Enricher;

pub const SERVICE: &str = "enricher";

/// Where this service's configuration comes from.
pub const STARTUP: Startup = Startup {
    service: SERVICE,
    default_admin_listen: "127.0.0.1:9102",
    list_keys: &[
        "enricher.ignored_attributes",
        "enricher.privileged.groups",
        "enricher.privileged.roles",
        "enricher.privileged.entitlements",
        "enricher.privileged.attributes",
    ],
};

/// Validates the configuration without starting (`--check-config`).
pub fn check_config(config_file: Option<PathBuf>) -> anyhow::Result<()> {
    STARTUP.check::<EnricherConfig>(config_file)
}

/// Runs the service until SIGTERM/SIGINT.
pub async fn run(config_file: Option<PathBuf>) -> anyhow::Result<()> {
    let app: App<EnricherConfig> = App::start(STARTUP, config_file).await?;
    let common = app.config.common.clone();
    // Writing to the partition number read from needs at least as many output
    // partitions as input partitions; fail at start, not on the first event.
    let (kafka, topics) = (common.kafka.clone(), common.topics.clone());
    let counts = tokio::task::spawn_blocking(move || {
        scimtrail_core::kafka::partition_counts(
            &kafka,
            &[topics.events.clone(), topics.enriched.clone()],
        )
    })
    .await??;
    let (input, output) = (
        counts.get(&common.topics.events).copied().unwrap_or(0),
        counts.get(&common.topics.enriched).copied().unwrap_or(0),
    );
    if output < input {
        anyhow::bail!(
            "topic {} has {output} partitions, fewer than the {input} of {}: the enricher writes each event to the partition number it read it from",
            common.topics.enriched,
            common.topics.events
        );
    }
    // The changelog belongs to the enricher and is created by it, like a Kafka
    // Streams application's changelog topics: compacted, and with the input's
    // partition count so changelog partition p holds input partition p's state.
    let changelog = common.topics.internal(state::CHANGELOG);
    let mut settings = common.topics.settings.clone();
    settings.insert("cleanup.policy".into(), "compact".into());
    settings.remove("retention.ms");
    let created = scimtrail_core::kafka::ensure_topics(
        &common.kafka,
        &[TopicSpec {
            name: changelog.clone(),
            partitions: input,
            replication_factor: common.topics.replication_factor,
            settings,
        }],
    )
    .await?;
    if let Some((_, TopicStatus::Exists { partitions })) = created.first() {
        if *partitions < input {
            anyhow::bail!(
                "topic {changelog} has {partitions} partitions, fewer than the {input} of {}: changelog partition p holds the state of input partition p",
                common.topics.events
            );
        }
    }
    let framing = Framing::from_config(&common.schema_registry)?;
    let topics = common.topics.clone();
    let codecs = tokio::task::spawn_blocking(move || Codecs::new(framing, &topics)).await??;
    let mut stage = Enricher::new(
        app.config.stage.clone(),
        codecs,
        common.topics.enriched.clone(),
        changelog,
        &app.registry,
    );
    if let Some(path) = &app.config.stage.roles_file {
        let directory = roles::Directory::load(path)
            .map_err(|e| anyhow::anyhow!("enricher.roles_file: {e}"))?;
        tracing::info!(message = "role directory loaded", file = %path.display(), principals = directory.principals.len());
        let directory = roles::Roles::new(directory);
        let reloads = scimtrail_core::metrics::counter_vec(
            &app.registry,
            SERVICE,
            "roles_reloads_total",
            "Reloads of the role directory after it changed, by result (ok, rejected).",
            &["result"],
        );
        for r in ["ok", "rejected"] {
            reloads.with_label_values(&[r]);
        }
        directory.watch(
            path.clone(),
            roles::watch(std::time::Duration::from_secs(
                app.config.stage.roles_reload_secs,
            )),
            roles::Directory::load,
            reloads,
            app.shutdown.clone(),
        )?;
        stage = stage.with_roles(directory);
    }
    if let Some(path) = &app.config.stage.checkpoint_key_file {
        let signer = scimtrail_core::chain::Signer::from_pem_file(path)
            .map_err(|e| anyhow::anyhow!("enricher.checkpoint_key_file: {e}"))?;
        tracing::info!(message = "chain checkpoints on", key_id = signer.key_id(), topic = %common.topics.checkpoints);
        stage = stage.with_checkpoints(enrich::Checkpoints {
            signer,
            topic: common.topics.checkpoints.clone(),
            every_events: app.config.stage.checkpoint_every_events,
            interval_ms: (app.config.stage.checkpoint_interval_secs * 1000) as i64,
        });
    } else {
        tracing::warn!(message = "chain checkpoints off: enricher.checkpoint_key_file is not set");
    }
    let spec = RunnerSpec {
        task: SERVICE.into(),
        stage: SERVICE.into(),
        group_id: format!("{}-{SERVICE}", common.kafka.group_prefix),
        input_topics: vec![common.topics.events.clone()],
        dlq_topic: common.topics.dlq.clone(),
    };
    let metrics = RunnerMetrics::new(&app.registry, SERVICE);
    let health = app.health.task(SERVICE);
    runner::spawn(
        spec,
        common.kafka,
        stage,
        metrics,
        health,
        app.shutdown.clone(),
    )
    .await?;
    tracing::info!(message = "stopped cleanly");
    Ok(())
}
