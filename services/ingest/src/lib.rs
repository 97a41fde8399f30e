//! scimtrail-ingest: the one place SCIM changes enter scimtrail.
//!
//! Reads captured exchanges (the raw JSON contract) from `scim.raw.v1`,
//! validates them and normalizes each into an `AuditEvent` on
//! `audit.events.v1`, keyed by (target system, resource type, resource id) so
//! every event of a resource lands on one partition. Invalid records go to the
//! dead-letter topic with a reason a human can act on.
//!
//! **Delivery:** exactly-once through the shared transactional runner: each raw
//! record yields exactly one event, one dead letter, or (reads, when not
//! recorded) nothing, committed atomically with its consumer offset.
//! **Ordering:** per raw partition; events of one resource keep their order when
//! the producer keys raw records by resource as well.

pub mod config;
pub mod normalize;

use std::path::PathBuf;

use scimtrail_core::app::{App, Startup};
use scimtrail_core::metrics::RunnerMetrics;
use scimtrail_core::runner::{self, RunnerSpec};
use scimtrail_core::schema::{AvroCodec, Framing};

pub use config::IngestConfig;
pub use normalize::Normalizer;

pub const SERVICE: &str = "ingest";

/// Where this service's configuration comes from.
pub const STARTUP: Startup = Startup {
    service: SERVICE,
    default_admin_listen: "127.0.0.1:9101",
    list_keys: &[],
};

/// Validates the configuration without starting (`--check-config`).
pub fn check_config(config_file: Option<PathBuf>) -> anyhow::Result<()> {
    STARTUP.check::<IngestConfig>(config_file)
}

/// Runs the service until SIGTERM/SIGINT.
pub async fn run(config_file: Option<PathBuf>) -> anyhow::Result<()> {
    let app: App<IngestConfig> = App::start(STARTUP, config_file).await?;
    let common = app.config.common.clone();
    let framing = Framing::from_config(&common.schema_registry)?;
    let subject = format!("{}-value", common.topics.events);
    let codec = tokio::task::spawn_blocking(move || {
        AvroCodec::with_framing(scimtrail_core::schema::AUDIT_EVENT_AVSC, framing, &subject)
    })
    .await??;
    let stage = Normalizer::new(
        app.config.stage.clone(),
        codec,
        common.topics.events.clone(),
        &app.registry,
    );
    let spec = RunnerSpec {
        task: SERVICE.into(),
        stage: SERVICE.into(),
        group_id: format!("{}-{SERVICE}", common.kafka.group_prefix),
        input_topics: vec![common.topics.raw.clone()],
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
