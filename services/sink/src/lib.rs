//! scimtrail-sink: delivers alerts to webhooks.
//!
//! **Delivery:** at-least-once, effectively once for receivers that honour the
//! `webhook-id` header. The consumer reads `audit.alerts.v1` (read_committed)
//! and stores an alert's offset only after every configured webhook
//! acknowledged it with a 2xx; failures are retried with exponential backoff
//! until they succeed, so an alert is never dropped. Stored offsets are
//! committed periodically, on rebalance and at shutdown; a crash re-delivers at
//! most the alerts since the last commit.
//! **Ordering:** alerts of one partition are delivered in order; a webhook that
//! keeps failing holds back the alerts behind it (visible in
//! `scimtrail_sink_webhook_attempts_total{outcome!="delivered"}` and
//! `scimtrail_sink_consumer_lag`).
//! Undecodable records go to the dead-letter topic and do not block the rest.

pub mod config;
pub mod deliver;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientContext, Message};

use scimtrail_core::admin::TaskHealth;
use scimtrail_core::app::{App, Startup};
use scimtrail_core::schema::avro::Codecs;
use scimtrail_core::schema::Framing;

pub use config::SinkConfig;
use deliver::{Deliverer, WebhookPayload};

pub const SERVICE: &str = "sink";

/// Where this service's configuration comes from.
pub const STARTUP: Startup = Startup {
    service: SERVICE,
    default_admin_listen: "127.0.0.1:9104",
    list_keys: &["sink.webhooks"],
};

/// Validates the configuration without starting (`--check-config`).
pub fn check_config(config_file: Option<PathBuf>) -> anyhow::Result<()> {
    STARTUP.check::<SinkConfig>(config_file)
}

struct SinkContext {
    health: Arc<TaskHealth>,
    rebalances: prometheus::IntCounterVec,
    lag: prometheus::IntGaugeVec,
}

impl ClientContext for SinkContext {
    fn stats(&self, statistics: rdkafka::Statistics) {
        scimtrail_core::metrics::record_consumer_lag(&self.lag, SERVICE, &statistics);
    }
}

impl ConsumerContext for SinkContext {
    fn post_rebalance(&self, _: &rdkafka::consumer::BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                self.rebalances.with_label_values(&["assign"]).inc();
                tracing::info!(message = "partitions assigned", count = tpl.count());
                self.health.set_ready(true);
            }
            Rebalance::Revoke(tpl) => {
                self.rebalances.with_label_values(&["revoke"]).inc();
                tracing::info!(message = "partitions revoked", count = tpl.count());
            }
            Rebalance::Error(e) => tracing::warn!(message = "rebalance error", error = %e),
        }
    }
}

/// Runs the service until SIGTERM/SIGINT.
pub async fn run(config_file: Option<PathBuf>) -> anyhow::Result<()> {
    let app: App<SinkConfig> = App::start(STARTUP, config_file).await?;
    let common = app.config.common.clone();
    let cfg = app.config.stage.clone();
    let framing = Framing::from_config(&common.schema_registry)?;
    let topics = common.topics.clone();
    let codecs = tokio::task::spawn_blocking(move || Codecs::new(framing, &topics)).await??;
    let registry = &app.registry;
    let consumed = scimtrail_core::metrics::counter(
        registry,
        SERVICE,
        "alerts_consumed_total",
        "Alerts read from the alerts topic.",
    );
    let delivered = scimtrail_core::metrics::counter(
        registry,
        SERVICE,
        "alerts_delivered_total",
        "Alerts acknowledged by every webhook (their offsets may then be committed).",
    );
    let dead = scimtrail_core::metrics::counter_vec(
        registry,
        SERVICE,
        "dead_letters_total",
        "Records sent to the dead-letter topic, by reason.",
        &["reason"],
    );
    dead.with_label_values(&["invalid_avro"]);
    let health = app.health.task(SERVICE);

    let group_id = format!("{}-{SERVICE}", common.kafka.group_prefix);
    let cc = scimtrail_core::kafka::consumer_config(
        &common.kafka,
        &group_id,
        &[
            ("isolation.level", "read_committed"),
            // Offsets are stored by hand after delivery, committed in the background.
            ("enable.auto.commit", "true"),
            ("auto.commit.interval.ms", "1000"),
            ("enable.auto.offset.store", "false"),
            ("auto.offset.reset", "earliest"),
        ],
    )?;
    let consumer: StreamConsumer<SinkContext> = cc.create_with_context(SinkContext {
        health: health.clone(),
        rebalances: scimtrail_core::metrics::counter_vec(
            registry,
            SERVICE,
            "rebalances_total",
            "Consumer group rebalances, by kind.",
            &["kind"],
        ),
        lag: scimtrail_core::metrics::consumer_lag_gauge(registry, SERVICE),
    })?;
    let latency = scimtrail_core::metrics::record_latency_histogram(registry, SERVICE)
        .with_label_values(&[SERVICE]);
    consumer.subscribe(&[&common.topics.alerts])?;
    let producer: FutureProducer =
        scimtrail_core::kafka::producer_config(&common.kafka)?.create()?;
    let deliverer = Deliverer::new(&cfg, registry)?;
    let shutdown = app.shutdown.clone();
    tracing::info!(message = "sink started", webhooks = cfg.webhooks.len(), topic = %common.topics.alerts);

    loop {
        health.beat();
        let msg = tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
            m = consumer.recv() => m,
        };
        let msg = match msg {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(message = "consumer error", error = %e);
                continue;
            }
        };
        consumed.inc();
        let payload = msg.payload().unwrap_or_default();
        // Decoding may ask the schema registry (blocking HTTP), hence
        // block_in_place; while the registry is unreachable the alert waits,
        // it is not dead-lettered.
        let mut wait = Duration::from_millis(500);
        let decoded = loop {
            match tokio::task::block_in_place(|| codecs.alert.decode(payload)) {
                Err(e) if e.is_transient() => {
                    tracing::warn!(message = "cannot decode the alert yet; will retry", error = %e);
                    health.beat();
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = shutdown.cancelled() => break None,
                    }
                    wait = (wait * 2).min(Duration::from_secs(30));
                }
                other => break Some(other),
            }
        };
        let Some(decoded) = decoded else {
            break; // shutting down; the alert stays unacknowledged
        };
        match decoded {
            Ok(alert) => {
                let body = serde_json::to_vec(&WebhookPayload::new(&alert))?;
                let mut all = true;
                for url in &cfg.webhooks {
                    if !deliverer
                        .deliver(url, &alert, &body, &health, &shutdown)
                        .await
                    {
                        all = false;
                        break;
                    }
                }
                if !all {
                    // Shutting down mid-retry: leave the offset unstored so the
                    // alert is delivered again after restart.
                    break;
                }
                delivered.inc();
                if let Some(ts) = msg.timestamp().to_millis() {
                    let now = chrono::Utc::now().timestamp_millis();
                    latency.observe((now - ts).max(0) as f64 / 1000.0);
                }
                tracing::info!(message = "alert delivered", alert_id = %alert.alert_id, rule = %alert.rule_id);
            }
            Err(e) => {
                let reason = format!("not an Alert: {e}");
                tracing::warn!(message = "record rejected to the dead-letter topic", partition = msg.partition(), offset = msg.offset(), reason = %reason);
                let poison = scimtrail_core::dlq::Poison::new("invalid_avro", reason);
                let headers = scimtrail_core::dlq::headers(SERVICE, &poison, &msg);
                let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&common.topics.dlq)
                    .payload(payload)
                    .headers(headers);
                if let Some(k) = msg.key() {
                    record = record.key(k);
                }
                // Only a dead letter that Kafka acknowledged lets the offset move on.
                if let Err((e, _)) = producer.send(record, Duration::from_secs(60)).await {
                    anyhow::bail!("cannot write to the dead-letter topic: {e}");
                }
                dead.with_label_values(&["invalid_avro"]).inc();
            }
        }
        consumer.store_offset_from_message(&msg)?;
    }
    tracing::info!(message = "sink stopping; committing delivered offsets");
    if let Err(e) = consumer.commit_consumer_state(CommitMode::Sync) {
        // Nothing stored since the last commit is the common case.
        tracing::debug!(message = "final commit", error = %e);
    }
    consumer.unsubscribe();
    tracing::info!(message = "stopped cleanly");
    Ok(())
}
