//! The rules in use, and their hot reload.
//!
//! Both tasks of an instance share one [`Rules`] handle. The rules file is
//! re-read when its modification time changes (checked every
//! `detector.rules_reload_secs`) or on SIGHUP ([`scimtrail_core::reload`]); a
//! file that does not load is rejected with an error log line and
//! `scimtrail_detector_rules_reloads_total{result="rejected"}`, and the
//! running rules stay.

use std::time::Duration;

use scimtrail_core::reload::{Reloadable, Watch};

use crate::rules::RuleSet;

/// The rules in use.
pub type Rules = Reloadable<RuleSet>;

/// How the detector watches its rules file.
pub fn watch(every: Duration) -> Watch {
    Watch {
        what: "rules file",
        every,
        on_sighup: true,
    }
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
        let reloads = prometheus::IntCounterVec::new(prometheus::Opts::new("r", "r"), &["result"])
            .expect("metric");
        assert!(!rules.reload(&path, "rules file", RuleSet::load, &reloads));
        assert_eq!(reloads.with_label_values(&["rejected"]).get(), 1);
        assert!(!rules.changed_since(0));
        std::fs::write(&path, crate::rules::DEFAULT_PACK).expect("write");
        assert!(rules.reload(&path, "rules file", RuleSet::load, &reloads));
        assert!(rules.changed_since(0));
        assert_eq!(reloads.with_label_values(&["ok"]).get(), 1);
    }
}
