//! The `[detector]` section.

use serde::Deserialize;

use scimtrail_core::config::{ConfigError, Validate};
use scimtrail_core::schema::Severity;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectorConfig {
    /// Burst rule: alert when one principal makes more than this many changes
    /// (creates, replaces, patches, deletes; failed attempts included)...
    #[serde(default = "default_threshold")]
    pub burst_threshold: u32,
    /// ...within this many seconds of event time.
    #[serde(default = "default_window_secs")]
    pub burst_window_secs: u64,
    /// Severity of burst alerts: info, low, medium, high or critical.
    #[serde(default = "default_severity")]
    pub burst_severity: String,
    /// How far behind the newest event of a principal an event may arrive and
    /// still be counted, in seconds. Older events are counted as late and ignored.
    #[serde(default = "default_lateness_secs")]
    pub allowed_lateness_secs: u64,
    /// Most event ids listed as evidence in one alert.
    #[serde(default = "default_max_evidence")]
    pub max_evidence: usize,
}

fn default_threshold() -> u32 {
    20
}
fn default_window_secs() -> u64 {
    60
}
fn default_severity() -> String {
    "high".into()
}
fn default_lateness_secs() -> u64 {
    30
}
fn default_max_evidence() -> usize {
    20
}

impl Default for DetectorConfig {
    fn default() -> Self {
        DetectorConfig {
            burst_threshold: default_threshold(),
            burst_window_secs: default_window_secs(),
            burst_severity: default_severity(),
            allowed_lateness_secs: default_lateness_secs(),
            max_evidence: default_max_evidence(),
        }
    }
}

impl DetectorConfig {
    pub fn severity(&self) -> Result<Severity, ConfigError> {
        match self.burst_severity.to_ascii_lowercase().as_str() {
            "info" => Ok(Severity::Info),
            "low" => Ok(Severity::Low),
            "medium" => Ok(Severity::Medium),
            "high" => Ok(Severity::High),
            "critical" => Ok(Severity::Critical),
            other => Err(ConfigError::invalid(
                "detector.burst_severity",
                format!("`{other}` is not one of info, low, medium, high, critical"),
            )),
        }
    }
}

impl Validate for DetectorConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.burst_threshold == 0 {
            return Err(ConfigError::invalid(
                "detector.burst_threshold",
                "must be at least 1",
            ));
        }
        if self.burst_window_secs == 0 || self.burst_window_secs > 7 * 24 * 3600 {
            return Err(ConfigError::invalid(
                "detector.burst_window_secs",
                "must be between 1 and 604800 (one week)",
            ));
        }
        if self.max_evidence == 0 {
            return Err(ConfigError::invalid(
                "detector.max_evidence",
                "must be at least 1",
            ));
        }
        self.severity().map(|_| ())
    }
}
