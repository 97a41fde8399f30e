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
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use prometheus::IntCounterVec;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

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

/// The directory in use, swapped whole on reload.
#[derive(Debug, Clone, Default)]
pub struct Roles(Arc<RwLock<Arc<Directory>>>);

impl Roles {
    pub fn new(dir: Directory) -> Self {
        Roles(Arc::new(RwLock::new(Arc::new(dir))))
    }

    pub fn current(&self) -> Arc<Directory> {
        match self.0.read() {
            Ok(d) => d.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn replace(&self, dir: Directory) {
        match self.0.write() {
            Ok(mut d) => *d = Arc::new(dir),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(dir),
        }
    }

    /// Re-reads `path` whenever its modification time changes, until
    /// `shutdown`. `reloads` counts outcomes by `result` (`ok`, `rejected`).
    pub fn watch(
        &self,
        path: PathBuf,
        every: Duration,
        reloads: IntCounterVec,
        shutdown: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let roles = self.clone();
        // The file as loaded at start-up: a change made before the task
        // first runs is still a change.
        let mut seen = modified(&path);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(every) => {}
                }
                let now = modified(&path);
                if now == seen {
                    continue;
                }
                seen = now;
                match Directory::load(&path) {
                    Ok(dir) => {
                        tracing::info!(message = "role directory reloaded", file = %path.display(), principals = dir.principals.len());
                        roles.replace(dir);
                        reloads.with_label_values(&["ok"]).inc();
                    }
                    Err(reason) => {
                        tracing::error!(message = "role directory rejected; the previous one stays in use", %reason);
                        reloads.with_label_values(&["rejected"]).inc();
                    }
                }
            }
        })
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
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

    #[tokio::test]
    async fn reloads_on_change_and_keeps_the_last_good_directory() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("roles.yaml");
        std::fs::write(&path, "principals: {a: {roles: [auditor]}}\n").expect("write");
        let roles = Roles::new(Directory::load(&path).expect("load"));
        let registry = prometheus::Registry::new();
        let reloads = scimtrail_core::metrics::counter_vec(
            &registry,
            "enricher",
            "roles_reloads_total",
            "test",
            &["result"],
        );
        let stop = CancellationToken::new();
        let task = roles.watch(
            path.clone(),
            Duration::from_millis(20),
            reloads.clone(),
            stop.clone(),
        );
        let wait_for = |want: u64, result: &'static str| {
            let reloads = reloads.clone();
            async move {
                for _ in 0..200 {
                    if reloads.with_label_values(&[result]).get() >= want {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                panic!("no {result} reload");
            }
        };
        // Modification times can be coarse: make each write visibly newer.
        let touch = |text: &str, secs: u64| {
            std::fs::write(&path, text).expect("write");
            let f = std::fs::File::options()
                .write(true)
                .open(&path)
                .expect("open");
            f.set_modified(SystemTime::now() + Duration::from_secs(secs))
                .expect("mtime");
        };
        touch("principals: {a: {roles: [provisioning-admin]}}\n", 10);
        wait_for(1, "ok").await;
        assert_eq!(
            roles.current().lookup("a").map(|e| e.roles[0].clone()),
            Some("provisioning-admin".into())
        );
        touch("principals: [not, a, map]\n", 20);
        wait_for(1, "rejected").await;
        assert!(roles.current().lookup("a").is_some());
        stop.cancel();
        task.await.expect("task");
    }
}
