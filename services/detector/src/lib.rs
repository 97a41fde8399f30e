//! scimtrail-detector: rules over the enriched audit stream.
//!
//! Two exactly-once tasks per instance, as a Kafka Streams topology would have:
//! 1. **repartition** (group `<prefix>-detector-repartition`): reads
//!    `audit.enriched.v1` (keyed by resource) and re-keys each change by
//!    principal onto the internal topic `<internal_prefix>detector-by-principal`;
//! 2. **burst** (group `<prefix>-detector-burst`): reads that topic, so every
//!    event of one principal reaches one instance, keeps event-time windows per
//!    principal and writes `Alert`s to `audit.alerts.v1`.
//!
//! **Delivery:** exactly-once per task through the transactional runner; window
//! state rolls back with an aborted transaction. **Ordering:** per principal, in
//! the order the repartition task wrote them; windows tolerate event-time
//! disorder up to `allowed_lateness_secs`. **State:** in memory per assigned
//! partition; a restart or reassignment starts that partition's windows empty.

pub mod burst;
pub mod config;
pub mod repartition;
pub mod rules;

use std::path::PathBuf;

use scimtrail_core::app::{App, Startup};
use scimtrail_core::kafka::TopicSpec;
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

/// Name (after the internal prefix) of the by-principal repartition topic.
pub const BY_PRINCIPAL: &str = "detector-by-principal";

/// Runs the service until SIGTERM/SIGINT.
pub async fn run(config_file: Option<PathBuf>) -> anyhow::Result<()> {
    let app: App<DetectorConfig> = App::start(STARTUP, config_file).await?;
    let common = app.config.common.clone();
    let by_principal = common.topics.internal(BY_PRINCIPAL);
    // Internal topics belong to the detector and are created by it, like a
    // Kafka Streams application's repartition topics.
    scimtrail_core::kafka::ensure_topics(
        &common.kafka,
        &[TopicSpec {
            name: by_principal.clone(),
            partitions: common.topics.partitions,
            replication_factor: common.topics.replication_factor,
            settings: common.topics.settings.clone(),
        }],
    )
    .await?;
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
        repartition::ByPrincipal::new(codecs.enriched.clone(), by_principal.clone()),
        metrics.clone(),
        app.health.task("repartition"),
        app.shutdown.clone(),
    );
    let burst_stage = burst::Burst::new(
        &app.config.stage,
        codecs,
        common.topics.alerts.clone(),
        &app.registry,
    )?;
    let burst = runner::spawn(
        RunnerSpec {
            task: "burst".into(),
            stage: SERVICE.into(),
            group_id: format!("{}-{SERVICE}-burst", common.kafka.group_prefix),
            input_topics: vec![by_principal],
            dlq_topic: common.topics.dlq.clone(),
        },
        common.kafka.clone(),
        burst_stage,
        metrics,
        app.health.task("burst"),
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
        async { stop_on_error(burst.await.map_err(Into::into)) }
    );
    a?;
    b?;
    tracing::info!(message = "stopped cleanly");
    Ok(())
}
