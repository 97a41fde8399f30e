//! The rules in use, and their hot reload.
//!
//! Both tasks of an instance share one [`Rules`] handle. The rules file is
//! re-read when its modification time changes (checked every
//! `detector.rules_reload_secs`) or on SIGHUP; a file that does not load is
//! rejected with an error log line and
//! `scimtrail_detector_rules_reloads_total{result="rejected"}`, and the
//! running rules stay.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use prometheus::IntCounterVec;
use tokio_util::sync::CancellationToken;

use crate::rules::RuleSet;

#[derive(Clone)]
pub struct Rules {
    current: Arc<RwLock<Arc<RuleSet>>>,
    generation: Arc<AtomicU64>,
}

impl Rules {
    pub fn new(rules: RuleSet) -> Self {
        Rules {
            current: Arc::new(RwLock::new(Arc::new(rules))),
            generation: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The rules in use and their generation (bumped on every reload).
    pub fn current(&self) -> (Arc<RuleSet>, u64) {
        let rules = match self.current.read() {
            Ok(r) => r.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        (rules, self.generation.load(Ordering::Acquire))
    }

    /// Cheap check for stages: has a reload happened since `seen`?
    pub fn changed_since(&self, seen: u64) -> bool {
        self.generation.load(Ordering::Acquire) != seen
    }

    pub fn replace(&self, rules: RuleSet) {
        match self.current.write() {
            Ok(mut r) => *r = Arc::new(rules),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(rules),
        }
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Reloads `path` when it changes or on SIGHUP, until `shutdown`.
    pub fn watch(
        &self,
        path: PathBuf,
        every: Duration,
        reloads: IntCounterVec,
        shutdown: CancellationToken,
    ) -> anyhow::Result<tokio::task::JoinHandle<()>> {
        let rules = self.clone();
        let mut seen = modified(&path);
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
        Ok(tokio::spawn(async move {
            loop {
                let forced = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(every) => false,
                    _ = hup.recv() => true,
                };
                let now = modified(&path);
                if !forced && now == seen {
                    continue;
                }
                seen = now;
                rules.reload(&path, &reloads);
            }
        }))
    }

    fn reload(&self, path: &Path, reloads: &IntCounterVec) {
        match RuleSet::load(path) {
            Ok(new) => {
                let enabled = new.rules().filter(|r| r.enabled).count();
                tracing::info!(message = "rules reloaded", file = %path.display(), enabled);
                self.replace(new);
                reloads.with_label_values(&["ok"]).inc();
            }
            Err(e) => {
                tracing::error!(message = "rules file rejected; the running rules stay", error = %e);
                reloads.with_label_values(&["rejected"]).inc();
            }
        }
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rejected_file_keeps_the_running_rules() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("rules.yaml");
        std::fs::write(&path, "rules: [oops\n").expect("write");
        let rules = Rules::new(RuleSet::default_pack());
        let reloads =
            IntCounterVec::new(prometheus::Opts::new("r", "r"), &["result"]).expect("metric");
        rules.reload(&path, &reloads);
        assert_eq!(reloads.with_label_values(&["rejected"]).get(), 1);
        assert!(!rules.changed_since(0));
        let pack = crate::rules::DEFAULT_PACK;
        std::fs::write(&path, pack).expect("write");
        rules.reload(&path, &reloads);
        assert!(rules.changed_since(0));
        assert_eq!(reloads.with_label_values(&["ok"]).get(), 1);
    }
}
