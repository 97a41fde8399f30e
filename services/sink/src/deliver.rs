//! Delivering one alert to one webhook, retried with exponential backoff and
//! jitter until the endpoint acknowledges it (2xx) or the service shuts down.
//! The `webhook-id` header is the alert id, stable across retries, so a
//! receiver can drop the duplicates that at-least-once delivery can produce.

use std::time::{Duration, Instant};

use prometheus::{IntCounterVec, Registry};
use rand::Rng;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use scimtrail_core::admin::TaskHealth;
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
    /// Metric label per webhook URL: its host and port, never its path or
    /// query, which can hold secrets (Slack-style webhook URLs).
    destinations: std::collections::HashMap<String, String>,
    initial_backoff: Duration,
    max_backoff: Duration,
    attempts: IntCounterVec,
    latency: prometheus::HistogramVec,
}

/// `host:port` of a URL, for metric labels and logs.
pub fn destination_label(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => format!(
            "{}:{}",
            u.host_str().unwrap_or("unknown"),
            u.port_or_known_default().unwrap_or(0)
        ),
        Err(_) => "invalid".into(),
    }
}

impl Deliverer {
    pub fn new(cfg: &SinkConfig, registry: &Registry) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(cfg.request_timeout_ms))
            .user_agent(concat!("scimtrail-sink/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let destinations: std::collections::HashMap<String, String> = cfg
            .webhooks
            .iter()
            .map(|u| (u.clone(), destination_label(u)))
            .collect();
        let d = Deliverer {
            http,
            destinations,
            initial_backoff: Duration::from_millis(cfg.initial_backoff_ms),
            max_backoff: Duration::from_millis(cfg.max_backoff_ms),
            attempts: scimtrail_core::metrics::counter_vec(
                registry,
                "sink",
                "webhook_attempts_total",
                "Webhook delivery attempts by destination and outcome (delivered, http_error, network_error).",
                &["destination", "outcome"],
            ),
            latency: scimtrail_core::metrics::register(
                registry,
                prometheus::HistogramVec::new(
                    prometheus::HistogramOpts::new(
                        "scimtrail_sink_webhook_request_duration_seconds",
                        "Duration of one webhook request, by destination.",
                    )
                    .buckets(vec![
                        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                    ]),
                    &["destination"],
                )?,
            ),
        };
        for dest in d.destinations.values() {
            for outcome in [Attempt::Delivered, Attempt::Rejected(0), Attempt::Failed] {
                d.attempts
                    .with_label_values(&[dest.as_str(), outcome.label()]);
            }
        }
        Ok(d)
    }

    /// One POST of `body` to `url`.
    pub async fn attempt(&self, url: &str, alert: &Alert, body: &[u8]) -> Attempt {
        let destination = self
            .destinations
            .get(url)
            .cloned()
            .unwrap_or_else(|| destination_label(url));
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
        self.latency
            .with_label_values(&[destination.as_str()])
            .observe(started.elapsed().as_secs_f64());
        let outcome = match result {
            Ok(r) if r.status().is_success() => Attempt::Delivered,
            Ok(r) => Attempt::Rejected(r.status().as_u16()),
            Err(e) => {
                tracing::debug!(message = "webhook request failed", destination = %destination, error = %e);
                Attempt::Failed
            }
        };
        self.attempts
            .with_label_values(&[destination.as_str(), outcome.label()])
            .inc();
        outcome
    }

    /// Delivers until acknowledged; `false` when shutdown interrupted it (the
    /// alert is then not acknowledged and is delivered again after restart).
    pub async fn deliver(
        &self,
        url: &str,
        alert: &Alert,
        body: &[u8],
        health: &TaskHealth,
        shutdown: &CancellationToken,
    ) -> bool {
        let mut backoff = self.initial_backoff;
        let mut n = 0u32;
        loop {
            n += 1;
            // Retrying a dead endpoint is the loop working as intended, not a
            // stall: a restart would not help it.
            health.beat();
            let outcome = self.attempt(url, alert, body).await;
            if outcome == Attempt::Delivered {
                if n > 1 {
                    tracing::info!(message = "webhook delivered after retries", destination = %destination_label(url), alert_id = %alert.alert_id, attempts = n);
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
                destination = %destination_label(url),
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};

    use axum::extract::State;
    use axum::http::{HeaderMap, StatusCode};

    use scimtrail_core::admin::Health;
    use scimtrail_core::schema::Severity;

    #[derive(Clone, Default)]
    struct Hook {
        /// Status codes to answer, in order; 204 once exhausted.
        script: Arc<Mutex<Vec<u16>>>,
        ids: Arc<Mutex<Vec<String>>>,
    }

    async fn hook(State(h): State<Hook>, headers: HeaderMap) -> StatusCode {
        let id = headers
            .get("webhook-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        h.ids.lock().expect("lock").push(id);
        let mut s = h.script.lock().expect("lock");
        let code = if s.is_empty() { 204 } else { s.remove(0) };
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    async fn serve(script: Vec<u16>) -> (String, Hook) {
        let h = Hook {
            script: Arc::new(Mutex::new(script)),
            ..Hook::default()
        };
        let app = axum::Router::new().fallback(hook).with_state(h.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (format!("http://{addr}/hook"), h)
    }

    fn alert() -> Alert {
        Alert {
            alert_id: "a1".into(),
            rule_id: "burst.principal".into(),
            rule_kind: "threshold".into(),
            severity: Severity::High,
            title: "t".into(),
            summary: "s".into(),
            group_key: BTreeMap::new(),
            window_start: 0,
            window_end: 60_000,
            count: 21,
            threshold: 20,
            first_event_time: 0,
            last_event_time: 1_000,
            evidence_event_ids: vec![],
            principal: None,
            labels: BTreeMap::new(),
            description: None,
            runbook_url: None,
            suppressed: 0,
        }
    }

    fn deliverer() -> Deliverer {
        let cfg = SinkConfig {
            webhooks: vec!["http://unused".into()],
            request_timeout_ms: 2_000,
            initial_backoff_ms: 10,
            max_backoff_ms: 40,
        };
        Deliverer::new(&cfg, &Registry::new()).expect("client")
    }

    #[tokio::test]
    async fn retries_until_acknowledged_with_a_stable_webhook_id() {
        let (url, hook) = serve(vec![500, 503, 429]).await;
        let d = deliverer();
        let health = Health::new().task("sink");
        let body = serde_json::to_vec(&WebhookPayload::new(&alert())).expect("json");
        assert!(
            d.deliver(&url, &alert(), &body, &health, &CancellationToken::new())
                .await
        );
        assert_eq!(*hook.ids.lock().expect("lock"), vec!["a1"; 4]);
        let dest = destination_label(&url);
        assert_eq!(
            d.attempts
                .with_label_values(&[dest.as_str(), "http_error"])
                .get(),
            3
        );
        assert_eq!(
            d.attempts
                .with_label_values(&[dest.as_str(), "delivered"])
                .get(),
            1
        );
    }

    #[tokio::test]
    async fn unreachable_endpoint_is_retried_until_shutdown() {
        // Nothing listens on port 9 of loopback: connection refused.
        let d = deliverer();
        let health = Health::new().task("sink");
        let stop = CancellationToken::new();
        let s = stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            s.cancel();
        });
        let delivered = d
            .deliver("http://127.0.0.1:9/hook", &alert(), b"{}", &health, &stop)
            .await;
        assert!(!delivered, "shutdown leaves the alert unacknowledged");
        assert!(
            d.attempts
                .with_label_values(&["127.0.0.1:9", "network_error"])
                .get()
                >= 2
        );
    }

    #[test]
    fn destination_labels_never_carry_paths_or_secrets() {
        assert_eq!(
            destination_label("https://hooks.slack.test/services/T0/B0/SECRET"),
            "hooks.slack.test:443"
        );
        assert_eq!(
            destination_label("http://127.0.0.1:8088/a?token=x"),
            "127.0.0.1:8088"
        );
    }

    #[test]
    fn payload_follows_the_standard_webhooks_shape() {
        let a = alert();
        let v = serde_json::to_value(WebhookPayload::new(&a)).expect("json");
        assert_eq!(v["type"], "scimtrail.alert.v1");
        assert_eq!(v["timestamp"], "1970-01-01T00:00:01.000Z");
        assert_eq!(v["data"]["alert_id"], "a1");
    }
}
