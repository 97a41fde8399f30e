//! The `[detector]` section.

use std::path::PathBuf;

use serde::Deserialize;

use scimtrail_core::config::{ConfigError, Validate};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectorConfig {
    /// YAML rules file (docs/rules.md). Unset: the built-in default pack
    /// for SCIM provisioning (`services/detector/rules/default.yaml`).
    #[serde(default)]
    pub rules_file: Option<PathBuf>,
    /// How often the rules file's modification time is checked; a changed
    /// file is reloaded (also on SIGHUP), a bad one rejected and the running
    /// rules kept.
    #[serde(default = "default_rules_reload_secs")]
    pub rules_reload_secs: u64,
    /// How far (in event time, seconds, fractions allowed) events of one key
    /// may arrive out of order and still be evaluated in order. Alerts wait
    /// this long in event time before they are final, so it is also the
    /// alert delay: `0` raises an alert on the crossing event itself, at the
    /// cost of ignoring (and counting as late) any event of the key that
    /// arrives after a newer one. A partition that goes quiet is advanced by
    /// the wall clock after `max(this, 2 s)`.
    #[serde(default = "default_lateness_secs")]
    pub allowed_lateness_secs: f64,
    /// Most event ids listed as evidence in one alert.
    #[serde(default = "default_max_evidence")]
    pub max_evidence: usize,
    /// Most keys (principals, targets, resources... over all rules) held in
    /// memory; beyond it the keys idle longest are shed, with a log line and
    /// `scimtrail_detector_state_shed_total`.
    #[serde(default = "default_max_keys")]
    pub max_keys: usize,
}

fn default_rules_reload_secs() -> u64 {
    5
}
fn default_lateness_secs() -> f64 {
    2.0
}
fn default_max_evidence() -> usize {
    20
}
fn default_max_keys() -> usize {
    1_000_000
}

impl Default for DetectorConfig {
    fn default() -> Self {
        DetectorConfig {
            rules_file: None,
            rules_reload_secs: default_rules_reload_secs(),
            allowed_lateness_secs: default_lateness_secs(),
            max_evidence: default_max_evidence(),
            max_keys: default_max_keys(),
        }
    }
}

impl Validate for DetectorConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if let Some(path) = &self.rules_file {
            crate::rules::RuleSet::load(path)
                .map_err(|e| ConfigError::invalid("detector.rules_file", e.to_string()))?;
        }
        if self.rules_reload_secs == 0 {
            return Err(ConfigError::invalid(
                "detector.rules_reload_secs",
                "must be positive",
            ));
        }
        if !(0.0..=3600.0).contains(&self.allowed_lateness_secs) {
            return Err(ConfigError::invalid(
                "detector.allowed_lateness_secs",
                "must be between 0 and 3600 (alerts wait this long)",
            ));
        }
        if self.max_evidence == 0 {
            return Err(ConfigError::invalid(
                "detector.max_evidence",
                "must be at least 1",
            ));
        }
        if self.max_keys == 0 {
            return Err(ConfigError::invalid(
                "detector.max_keys",
                "must be at least 1",
            ));
        }
        Ok(())
    }
}

impl DetectorConfig {
    /// `allowed_lateness_secs` in whole milliseconds.
    pub fn allowed_lateness_ms(&self) -> i64 {
        (self.allowed_lateness_secs * 1000.0).round() as i64
    }

    /// The rules to start with.
    pub fn rules(&self) -> Result<crate::rules::RuleSet, crate::rules::RulesError> {
        match &self.rules_file {
            Some(path) => crate::rules::RuleSet::load(path),
            None => Ok(crate::rules::RuleSet::default_pack()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_rules_file_is_refused_at_start_with_its_problem() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("rules.yaml");
        std::fs::write(
            &path,
            "rules:\n  - id: x\n    title: t\n    severity: loud\n",
        )
        .expect("write");
        let c = DetectorConfig {
            rules_file: Some(path),
            ..DetectorConfig::default()
        };
        let err = c.validate().expect_err("bad severity").to_string();
        assert!(err.contains("detector.rules_file"), "{err}");
        assert!(DetectorConfig::default().validate().is_ok());
    }
}
