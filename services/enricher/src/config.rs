//! The `[enricher]` section.

use serde::Deserialize;

use scimtrail_core::config::{ConfigError, Validate};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnricherConfig {
    /// Include the full resource before and after each change in the event
    /// (`before`/`after`). Turn off to keep events small; `changes` stays.
    #[serde(default = "default_true")]
    pub include_snapshots: bool,
    /// Top-level attributes left out of diffs because the service provider, not
    /// the client, changes them on every write.
    #[serde(default = "default_ignored")]
    pub ignored_attributes: Vec<String>,
}

fn default_true() -> bool {
    true
}

fn default_ignored() -> Vec<String> {
    vec!["meta".into()]
}

impl Default for EnricherConfig {
    fn default() -> Self {
        EnricherConfig {
            include_snapshots: true,
            ignored_attributes: default_ignored(),
        }
    }
}

impl Validate for EnricherConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.ignored_attributes.iter().any(|a| a.trim().is_empty()) {
            return Err(ConfigError::invalid(
                "enricher.ignored_attributes",
                "names must not be empty",
            ));
        }
        Ok(())
    }
}
