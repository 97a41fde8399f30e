//! The role directory: which roles each principal holds.
//!
//! A YAML file (`enricher.roles_file`) maps principal ids to a display name
//! and roles:
//!
//! ```yaml
//! principals:
//!   okta-provisioner:
//!     display_name: Okta SCIM connector
//!     roles: [service-connector]
//!   alice@example.com:
//!     roles: [provisioning-admin]
//! ```
//!
//! It is re-read when its modification time changes (checked every
//! `enricher.roles_reload_secs`). A file that does not parse is rejected with
//! a log line naming the problem and a metric, and the directory in use stays
//! as it was: a typo never leaves every principal unknown.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub roles: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Directory {
    #[serde(default)]
    pub principals: HashMap<String, Entry>,
}

impl Directory {
    pub fn parse(text: &str) -> Result<Directory, String> {
        let dir: Directory = serde_yaml_ng::from_str(text).map_err(|e| e.to_string())?;
        for (id, entry) in &dir.principals {
            if id.trim().is_empty() {
                return Err("principals: an id is empty".into());
            }
            if let Some(r) = entry.roles.iter().find(|r| r.trim().is_empty()) {
                return Err(format!("principals.{id}.roles: empty role name {r:?}"));
            }
        }
        Ok(dir)
    }

    pub fn load(path: &Path) -> Result<Directory, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Directory::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn lookup(&self, principal: &str) -> Option<&Entry> {
        self.principals.get(principal)
    }
}

/// The directory in use, swapped whole on reload
/// ([`scimtrail_core::reload`]).
pub type Roles = scimtrail_core::reload::Reloadable<Directory>;

/// How the enricher watches its role directory.
pub fn watch(every: Duration) -> scimtrail_core::reload::Watch {
    scimtrail_core::reload::Watch {
        what: "role directory",
        every,
        on_sighup: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_principals_and_rejects_mistakes_with_their_place() {
        let d = Directory::parse(
            "principals:\n  okta:\n    display_name: Okta\n    roles: [service-connector]\n  alice: {roles: [auditor]}\n",
        )
        .expect("parses");
        assert_eq!(
            d.lookup("okta").map(|e| e.roles.clone()),
            Some(vec!["service-connector".to_string()])
        );
        assert!(d.lookup("mallory").is_none());
        let err = Directory::parse("principals:\n  okta:\n    role: [x]\n").expect_err("typo");
        assert!(err.contains("role"), "{err}");
        let err = Directory::parse("principals:\n  okta: {roles: [\"\"]}\n").expect_err("empty");
        assert!(err.contains("principals.okta.roles"), "{err}");
    }

    #[test]
    fn a_file_that_is_not_a_directory_is_rejected_with_its_name() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("roles.yaml");
        std::fs::write(&path, "principals: [not, a, map]\n").expect("write");
        let err = Directory::load(&path).expect_err("a list is no directory");
        assert!(err.contains("roles.yaml"), "{err}");
        // Reloading (scimtrail_core::reload) keeps the directory in use.
        let roles = Roles::new(Directory::parse("principals: {a: {}}").expect("parses"));
        let reloads = prometheus::IntCounterVec::new(prometheus::Opts::new("r", "r"), &["result"])
            .expect("metric");
        assert!(!roles.reload(&path, "role directory", Directory::load, &reloads));
        assert!(roles.current().lookup("a").is_some());
    }
}
