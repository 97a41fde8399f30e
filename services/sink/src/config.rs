//! The `[sink]` section.

use serde::Deserialize;

use scimtrail_core::config::{ConfigError, Validate};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkConfig {
    /// Webhook URLs every alert is POSTed to. From the environment, comma
    /// separated: `SCIMTRAIL__SINK__WEBHOOKS=https://a.example/hook,https://b.example/hook`.
    #[serde(default)]
    pub webhooks: Vec<String>,
    /// Timeout of one delivery attempt, in milliseconds.
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: u64,
    /// Wait before the first retry, in milliseconds; doubles on every attempt.
    #[serde(default = "default_initial_backoff_ms")]
    pub initial_backoff_ms: u64,
    /// Longest wait between retries, in milliseconds.
    #[serde(default = "default_max_backoff_ms")]
    pub max_backoff_ms: u64,
}

fn default_request_timeout_ms() -> u64 {
    10_000
}
fn default_initial_backoff_ms() -> u64 {
    500
}
fn default_max_backoff_ms() -> u64 {
    60_000
}

impl Default for SinkConfig {
    fn default() -> Self {
        SinkConfig {
            webhooks: Vec::new(),
            request_timeout_ms: default_request_timeout_ms(),
            initial_backoff_ms: default_initial_backoff_ms(),
            max_backoff_ms: default_max_backoff_ms(),
        }
    }
}

impl Validate for SinkConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.webhooks.is_empty() {
            return Err(ConfigError::invalid(
                "sink.webhooks",
                "at least one webhook URL is needed, or alerts would be acknowledged without being delivered",
            ));
        }
        for (i, url) in self.webhooks.iter().enumerate() {
            match reqwest::Url::parse(url) {
                Ok(u) if matches!(u.scheme(), "http" | "https") => {}
                Ok(u) => {
                    return Err(ConfigError::invalid(
                        format!("sink.webhooks[{i}]"),
                        format!("scheme `{}` is not http or https", u.scheme()),
                    ))
                }
                Err(e) => {
                    return Err(ConfigError::invalid(
                        format!("sink.webhooks[{i}]"),
                        format!("`{url}` is not a URL: {e}"),
                    ))
                }
            }
        }
        if self.request_timeout_ms == 0 {
            return Err(ConfigError::invalid(
                "sink.request_timeout_ms",
                "must be positive",
            ));
        }
        if self.initial_backoff_ms == 0 || self.max_backoff_ms < self.initial_backoff_ms {
            return Err(ConfigError::invalid(
                "sink.max_backoff_ms",
                "backoffs must be positive and max_backoff_ms ≥ initial_backoff_ms",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhooks_are_required_and_must_be_http_urls() {
        let mut c = SinkConfig::default();
        assert!(c
            .validate()
            .expect_err("none")
            .to_string()
            .contains("sink.webhooks"));
        c.webhooks = vec!["http://127.0.0.1:1/x".into(), "ftp://x".into()];
        assert!(c
            .validate()
            .expect_err("ftp")
            .to_string()
            .contains("sink.webhooks[1]"));
        c.webhooks = vec!["not a url".into()];
        assert!(c
            .validate()
            .expect_err("junk")
            .to_string()
            .contains("sink.webhooks[0]"));
        c.webhooks = vec!["https://hooks.example.test/a".into()];
        assert!(c.validate().is_ok());
    }
}
