//! Delivering one alert to one webhook, retried with exponential backoff and
//! jitter until the endpoint acknowledges it (2xx) or the service shuts down.
//! The `webhook-id` header is the alert id, stable across retries, so a
//! receiver can drop the duplicates that at-least-once delivery can produce.

use std::time::{Duration, Instant};

use prometheus::{Histogram, IntCounterVec, Registry};
use rand::Rng;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use scimtrail_core::schema::Alert;

use crate::config::SinkConfig;

/// The JSON body of a webhook call: `{type, timestamp, data}` as the Standard
/// Webhooks spec recommends.
#[derive(Debug, Serialize)]
pub struct WebhookPayload<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// RFC 3339 time of the alert's crossing event.
    pub timestamp: String,
    pub data: &'a Alert,
}

impl<'a> WebhookPayload<'a> {
    pub fn new(alert: &'a Alert) -> Self {
        let timestamp = chrono::DateTime::from_timestamp_millis(alert.last_event_time)
            .unwrap_or_default()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        WebhookPayload {
            kind: "scimtrail.alert.v1",
            timestamp,
            data: alert,
        }
    }
}

/// Outcome of one attempt (metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    Delivered,
    Rejected(u16),
    Failed,
}

impl Attempt {
    fn label(self) -> &'static str {
        match self {
            Attempt::Delivered => "delivered",
            Attempt::Rejected(_) => "http_error",
            Attempt::Failed => "network_error",
        }
    }
}

pub struct Deliverer {
    http: reqwest::Client,
    initial_backoff: Duration,
    max_backoff: Duration,
    attempts: IntCounterVec,
    latency: Histogram,
}

impl Deliverer {
    pub fn new(cfg: &SinkConfig, registry: &Registry) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(cfg.request_timeout_ms))
            .user_agent(concat!("scimtrail-sink/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Deliverer {
            http,
            initial_backoff: Duration::from_millis(cfg.initial_backoff_ms),
            max_backoff: Duration::from_millis(cfg.max_backoff_ms),
            attempts: scimtrail_core::metrics::counter_vec(
                registry,
                "sink",
                "webhook_attempts_total",
                "Webhook delivery attempts by outcome (delivered, http_error, network_error).",
                &["outcome"],
            ),
            latency: scimtrail_core::metrics::histogram(
                registry,
                "sink",
                "webhook_request_duration_seconds",
                "Duration of one webhook request.",
                vec![
                    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                ],
            ),
        })
    }

    /// One POST of `body` to `url`.
    pub async fn attempt(&self, url: &str, alert: &Alert, body: &[u8]) -> Attempt {
        let started = Instant::now();
        let result = self
            .http
            .post(url)
            .header("content-type", "application/json")
            .header("webhook-id", &alert.alert_id)
            .header(
                "webhook-timestamp",
                chrono::Utc::now().timestamp().to_string(),
            )
            .body(body.to_vec())
            .send()
            .await;
        self.latency.observe(started.elapsed().as_secs_f64());
        let outcome = match result {
            Ok(r) if r.status().is_success() => Attempt::Delivered,
            Ok(r) => Attempt::Rejected(r.status().as_u16()),
            Err(e) => {
                tracing::debug!(message = "webhook request failed", url, error = %e);
                Attempt::Failed
            }
        };
        self.attempts.with_label_values(&[outcome.label()]).inc();
        outcome
    }

    /// Delivers until acknowledged; `false` when shutdown interrupted it (the
    /// alert is then not acknowledged and is delivered again after restart).
    pub async fn deliver(
        &self,
        url: &str,
        alert: &Alert,
        body: &[u8],
        shutdown: &CancellationToken,
    ) -> bool {
        let mut backoff = self.initial_backoff;
        let mut n = 0u32;
        loop {
            n += 1;
            let outcome = self.attempt(url, alert, body).await;
            if outcome == Attempt::Delivered {
                if n > 1 {
                    tracing::info!(message = "webhook delivered after retries", url, alert_id = %alert.alert_id, attempts = n);
                }
                return true;
            }
            // Full jitter keeps many sinks from retrying a recovering endpoint in lockstep.
            let wait = Duration::from_millis(
                rand::rng()
                    .random_range(backoff.as_millis() as u64 / 2..=backoff.as_millis() as u64),
            );
            tracing::warn!(
                message = "webhook delivery failed; will retry",
                url,
                alert_id = %alert.alert_id,
                attempt = n,
                outcome = ?outcome,
                retry_in_ms = wait.as_millis() as u64,
            );
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.cancelled() => return false,
            }
            backoff = (backoff * 2).min(self.max_backoff);
        }
    }
}
