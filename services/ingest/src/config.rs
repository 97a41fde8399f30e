//! The `[ingest]` section.

use serde::Deserialize;

use scimtrail_core::config::{ConfigError, Validate};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestConfig {
    /// Largest raw record accepted, in bytes; larger ones go to the DLQ
    /// (`too_large`) instead of being parsed.
    #[serde(default = "default_max_record_bytes")]
    pub max_record_bytes: usize,
    /// Also record successful reads (GET, `POST /.search`) as READ events. Off by
    /// default: reads change nothing and can dwarf the writes. Denied reads
    /// (401/403) are always recorded as ACCESS_DENIED.
    #[serde(default)]
    pub record_reads: bool,
    /// Attribute names whose values are replaced by `[REDACTED]` wherever they
    /// appear in request and response bodies (matched case-insensitively).
    #[serde(default = "default_redact")]
    pub redact_attributes: Vec<String>,
}

fn default_max_record_bytes() -> usize {
    1024 * 1024
}

fn default_redact() -> Vec<String> {
    vec!["password".into()]
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            max_record_bytes: default_max_record_bytes(),
            record_reads: false,
            redact_attributes: default_redact(),
        }
    }
}

impl Validate for IngestConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.max_record_bytes < 1024 {
            return Err(ConfigError::invalid(
                "ingest.max_record_bytes",
                "must be at least 1024",
            ));
        }
        Ok(())
    }
}
