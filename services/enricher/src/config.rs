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
    /// PKCS#8 PEM Ed25519 private key (`openssl genpkey -algorithm ed25519`)
    /// that signs chain checkpoints. Unset: no checkpoints are written.
    #[serde(default)]
    pub checkpoint_key_file: Option<std::path::PathBuf>,
    /// Sign a checkpoint of a partition's chain head after this many events...
    #[serde(default = "default_checkpoint_every_events")]
    pub checkpoint_every_events: u64,
    /// ...or when this many seconds have passed since the last (checked as
    /// events arrive).
    #[serde(default = "default_checkpoint_interval_secs")]
    pub checkpoint_interval_secs: u64,
    /// YAML role directory mapping principals to roles (see docs/enricher.md).
    /// Unset: events carry no roles and no principal is flagged unknown.
    #[serde(default)]
    pub roles_file: Option<std::path::PathBuf>,
    /// How often the role directory's modification time is checked; a
    /// changed file is reloaded, a bad one rejected and the last good kept.
    #[serde(default = "default_roles_reload_secs")]
    pub roles_reload_secs: u64,
    /// How strictly PATCH requests are applied: `lenient` (default) accepts
    /// the deviations real clients send (Entra ID's `"Replace"`, remove with
    /// a value, booleans as strings) because the service provider accepted
    /// them too; `strict` follows RFC 7644 to the letter and marks anything
    /// else `partial`.
    #[serde(default)]
    pub patch_compat: PatchCompat,
    /// What makes a change privileged (`[enricher.privileged]`).
    #[serde(default)]
    pub privileged: crate::flags::PrivilegedConfig,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PatchCompat {
    #[default]
    Lenient,
    Strict,
}

fn default_roles_reload_secs() -> u64 {
    5
}

fn default_checkpoint_every_events() -> u64 {
    1000
}

fn default_checkpoint_interval_secs() -> u64 {
    60
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
            checkpoint_key_file: None,
            checkpoint_every_events: default_checkpoint_every_events(),
            checkpoint_interval_secs: default_checkpoint_interval_secs(),
            roles_file: None,
            roles_reload_secs: default_roles_reload_secs(),
            patch_compat: PatchCompat::default(),
            privileged: Default::default(),
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
        if self.checkpoint_every_events == 0 || self.checkpoint_interval_secs == 0 {
            return Err(ConfigError::invalid(
                "enricher.checkpoint_every_events",
                "checkpoint_every_events and checkpoint_interval_secs must be positive",
            ));
        }
        if let Some(path) = &self.roles_file {
            crate::roles::Directory::load(path)
                .map_err(|e| ConfigError::invalid("enricher.roles_file", e))?;
        }
        if self.roles_reload_secs == 0 {
            return Err(ConfigError::invalid(
                "enricher.roles_reload_secs",
                "must be positive",
            ));
        }
        for (key, list) in [
            ("enricher.privileged.groups", &self.privileged.groups),
            ("enricher.privileged.roles", &self.privileged.roles),
            (
                "enricher.privileged.entitlements",
                &self.privileged.entitlements,
            ),
            (
                "enricher.privileged.attributes",
                &self.privileged.attributes,
            ),
        ] {
            if list.iter().any(|v| v.trim().is_empty()) {
                return Err(ConfigError::invalid(key, "names must not be empty"));
            }
        }
        if let Some(path) = &self.checkpoint_key_file {
            scimtrail_core::chain::Signer::from_pem_file(path)
                .map_err(|e| ConfigError::invalid("enricher.checkpoint_key_file", e))?;
        }
        Ok(())
    }
}
