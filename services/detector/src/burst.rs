//! The burst rule: more than N changes by one principal within T seconds of
//! event time, one alert per principal per window.
//!
//! Reads the by-principal repartition topic, so all of a principal's events are
//! on one partition and its window is local. For each principal the stage keeps
//! the event times of the last T seconds (plus the allowed lateness), in event
//! time order. When an event arrives, the events in `(newest − T, newest]` that
//! no earlier alert has counted are counted (`newest`: the principal's latest
//! event time, so arrival order does not change the count); when the count
//! exceeds N the alert fires on that event — not at window end. Its window
//! starts at the earliest counted event; crossings before that window's end are
//! counted as suppressed instead of raising duplicates, and since counted events
//! are not counted again, one burst raises one alert however long the window
//! takes to slide past it. The alert id is derived from (rule, principal,
//! window start), so a replay of the same input raises identical alerts.

use std::collections::{BTreeMap, VecDeque};

use prometheus::{IntCounter, IntCounterVec, IntGauge, Registry};

use scimtrail_core::runner::{InputRecord, Output, Poison, Stage, StageError};
use scimtrail_core::schema::avro::Codecs;
use scimtrail_core::schema::{Alert, EnrichedAuditEvent, Severity};
use scimtrail_core::state::TxState;

use crate::config::DetectorConfig;

pub const RULE_ID: &str = "burst.principal";

#[derive(Debug, Clone)]
struct Seen {
    time: i64,
    event_id: String,
    target: String,
    action: &'static str,
    /// Counted by an alert already.
    alerted: bool,
}

#[derive(Debug, Clone, Default)]
struct Window {
    /// Sorted by event time.
    events: VecDeque<Seen>,
    newest: i64,
    suppressed_until: i64,
}

pub struct Burst {
    threshold: usize,
    window_ms: i64,
    lateness_ms: i64,
    max_evidence: usize,
    severity: Severity,
    codecs: Codecs,
    output_topic: String,
    state: TxState<String, Window>,
    fired: IntCounterVec,
    suppressed: IntCounter,
    late: IntCounter,
    principals: IntGauge,
}

impl Burst {
    pub fn new(
        cfg: &DetectorConfig,
        codecs: Codecs,
        output_topic: String,
        registry: &Registry,
    ) -> Result<Self, scimtrail_core::config::ConfigError> {
        let severity = cfg.severity()?;
        let fired = scimtrail_core::metrics::counter_vec(
            registry,
            "detector",
            "alerts_total",
            "Alerts raised, by rule and severity.",
            &["rule", "severity"],
        );
        fired.with_label_values(&[RULE_ID, severity_label(severity)]);
        Ok(Burst {
            threshold: cfg.burst_threshold as usize,
            window_ms: (cfg.burst_window_secs * 1000) as i64,
            lateness_ms: (cfg.allowed_lateness_secs * 1000) as i64,
            max_evidence: cfg.max_evidence,
            severity,
            codecs,
            output_topic,
            state: TxState::new(),
            fired,
            suppressed: scimtrail_core::metrics::counter_vec(
                registry,
                "detector",
                "alerts_suppressed_total",
                "Threshold crossings not raised again because their window already alerted, by rule.",
                &["rule"],
            )
            .with_label_values(&[RULE_ID]),
            late: scimtrail_core::metrics::counter_vec(
                registry,
                "detector",
                "late_events_total",
                "Events older than the allowed lateness, ignored by windows, by rule.",
                &["rule"],
            )
            .with_label_values(&[RULE_ID]),
            principals: scimtrail_core::metrics::gauge(
                registry,
                "detector",
                "window_keys",
                "Group keys (principals) with open burst windows on this instance.",
            ),
        })
    }

    /// Feeds one event; returns the alert it raises, if any.
    pub fn observe(&mut self, e: &EnrichedAuditEvent, partition: i32) -> Option<Alert> {
        if !e.event.action.is_write() {
            return None;
        }
        let principal = e.event.principal.id.clone();
        let t = e.event.event_time;
        let (window_ms, lateness_ms, threshold) =
            (self.window_ms, self.lateness_ms, self.threshold);
        let w = self
            .state
            .entry_or_insert_with(principal.clone(), partition, || Window {
                newest: i64::MIN,
                suppressed_until: i64::MIN,
                ..Window::default()
            });
        if w.newest != i64::MIN && t <= w.newest - window_ms - lateness_ms {
            self.late.inc();
            return None;
        }
        w.newest = w.newest.max(t);
        let at = w.events.partition_point(|s| s.time <= t);
        w.events.insert(
            at,
            Seen {
                time: t,
                event_id: e.event.event_id.clone(),
                target: e.event.target.system.clone(),
                action: e.event.action.as_str(),
                alerted: false,
            },
        );
        let horizon = w.newest - window_ms - lateness_ms;
        while w.events.front().is_some_and(|s| s.time <= horizon) {
            w.events.pop_front();
        }
        // The window ends at the newest event time seen for the principal, so
        // the count does not depend on the order in which events from different
        // input partitions arrive.
        let end = w.newest;
        let counted: Vec<&Seen> = w
            .events
            .iter()
            .filter(|s| s.time > end - window_ms && !s.alerted)
            .collect();
        if counted.len() <= threshold {
            return None;
        }
        if end < w.suppressed_until {
            self.suppressed.inc();
            return None;
        }
        let window_start = counted.first().map(|s| s.time).unwrap_or(t);
        w.suppressed_until = window_start + window_ms;
        let count = counted.len();
        let mut targets: BTreeMap<&str, usize> = BTreeMap::new();
        let mut actions: BTreeMap<&str, usize> = BTreeMap::new();
        for s in &counted {
            *targets.entry(s.target.as_str()).or_default() += 1;
            *actions.entry(s.action).or_default() += 1;
        }
        let evidence: Vec<String> = counted
            .iter()
            .take(self.max_evidence)
            .map(|s| s.event_id.clone())
            .collect();
        let summary = format!(
            "{principal} made {count} changes ({}) in {} within {}s of each other, over the threshold of {threshold} per {}s",
            actions.iter().map(|(a, n)| format!("{n} {a}")).collect::<Vec<_>>().join(", "),
            targets.keys().copied().collect::<Vec<_>>().join(", "),
            (end - window_start) / 1000,
            window_ms / 1000,
        );
        let alert = Alert {
            alert_id: crate::rules::alert_id(
                RULE_ID,
                &[("principal".to_string(), principal.clone())],
                window_start,
            ),
            rule_id: RULE_ID.into(),
            rule_kind: "threshold".into(),
            severity: self.severity,
            title: format!("Burst of changes by {principal}"),
            summary,
            group_key: BTreeMap::from([("principal".to_string(), principal.clone())]),
            window_start,
            window_end: window_start + window_ms,
            count: count as i64,
            threshold: threshold as i64,
            first_event_time: window_start,
            last_event_time: end,
            evidence_event_ids: evidence,
            principal: Some(principal),
            labels: BTreeMap::new(),
            description: None,
            runbook_url: None,
            suppressed: 0,
        };
        for seen in w.events.iter_mut() {
            if seen.time > end - window_ms {
                seen.alerted = true;
            }
        }
        self.fired
            .with_label_values(&[RULE_ID, severity_label(self.severity)])
            .inc();
        Some(alert)
    }
}

fn severity_label(s: Severity) -> &'static str {
    match s {
        Severity::Info => "info",
        Severity::Low => "low",
        Severity::Medium => "medium",
        Severity::High => "high",
        Severity::Critical => "critical",
    }
}

impl Stage for Burst {
    fn process(
        &mut self,
        record: &InputRecord<'_>,
        out: &mut Vec<Output>,
    ) -> Result<(), StageError> {
        let event = record.decode(&self.codecs.enriched, "an EnrichedAuditEvent")?;
        let alert = self.observe(&event, record.partition);
        self.principals.set(self.state.len() as i64);
        if let Some(alert) = alert {
            tracing::info!(
                message = "alert raised",
                rule = %alert.rule_id,
                alert_id = %alert.alert_id,
                principal = ?alert.principal,
                count = alert.count,
            );
            let bytes =
                self.codecs.alert.encode(&alert).map_err(|e| {
                    Poison::new("unencodable", format!("cannot encode the Alert: {e}"))
                })?;
            // Burst alerts always name their principal.
            let key = alert.principal.clone().unwrap_or_default();
            out.push(Output::keyed(self.output_topic.clone(), key, bytes));
        }
        Ok(())
    }

    fn commit(&mut self) {
        self.state.commit();
    }

    fn abort(&mut self) {
        self.state.rollback();
    }

    fn partitions_revoked(&mut self, partitions: &[(String, i32)]) {
        self.state.drop_partitions(partitions);
        self.principals.set(self.state.len() as i64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use scimtrail_core::schema::{fixtures, AuditAction};

    fn burst(threshold: u32, window_secs: u64) -> Burst {
        let cfg = DetectorConfig {
            burst_threshold: threshold,
            burst_window_secs: window_secs,
            allowed_lateness_secs: 10,
            ..DetectorConfig::default()
        };
        Burst::new(
            &cfg,
            Codecs::single_object().expect("codecs"),
            "alerts".into(),
            &Registry::new(),
        )
        .expect("valid")
    }

    fn ev(id: &str, principal: &str, t_secs: f64, action: AuditAction) -> EnrichedAuditEvent {
        let mut e = fixtures::audit_event(id);
        e.event_time = (t_secs * 1000.0) as i64;
        e.action = action;
        e.principal.id = principal.into();
        fixtures::enriched(e)
    }

    fn feed(b: &mut Burst, events: &[EnrichedAuditEvent]) -> Vec<Alert> {
        events.iter().filter_map(|e| b.observe(e, 0)).collect()
    }

    #[test]
    fn fires_on_the_event_that_crosses_the_threshold() {
        let mut b = burst(3, 60);
        let evs: Vec<_> = (0..4)
            .map(|i| ev(&format!("e{i}"), "p", 100.0 + i as f64, AuditAction::Delete))
            .collect();
        let alerts = feed(&mut b, &evs);
        assert_eq!(alerts.len(), 1);
        let a = &alerts[0];
        assert_eq!(a.count, 4);
        assert_eq!(a.last_event_time, 103_000);
        assert_eq!(a.window_start, 100_000);
        assert_eq!(a.window_end, 160_000);
        assert_eq!(a.evidence_event_ids, vec!["e0", "e1", "e2", "e3"]);
        assert!(a.summary.contains("4 DELETE"), "{}", a.summary);
    }

    #[test]
    fn exactly_the_threshold_does_not_fire() {
        let mut b = burst(3, 60);
        let evs: Vec<_> = (0..3)
            .map(|i| ev(&format!("e{i}"), "p", i as f64, AuditAction::Patch))
            .collect();
        assert!(feed(&mut b, &evs).is_empty());
    }

    #[test]
    fn events_spread_wider_than_the_window_do_not_fire() {
        let mut b = burst(3, 10);
        let evs: Vec<_> = (0..20)
            .map(|i| ev(&format!("e{i}"), "p", i as f64 * 4.0, AuditAction::Patch))
            .collect();
        assert!(feed(&mut b, &evs).is_empty());
    }

    #[test]
    fn one_alert_per_principal_per_window() {
        let mut b = burst(3, 60);
        // 30 events in 30 s: one alert; 30 more a minute later: a second one.
        let mut evs: Vec<_> = (0..30)
            .map(|i| ev(&format!("a{i}"), "p", i as f64, AuditAction::Patch))
            .collect();
        evs.extend(
            (0..30).map(|i| ev(&format!("b{i}"), "p", 100.0 + i as f64, AuditAction::Patch)),
        );
        let alerts = feed(&mut b, &evs);
        assert_eq!(alerts.len(), 2);
        assert_ne!(alerts[0].alert_id, alerts[1].alert_id);
    }

    #[test]
    fn a_burst_is_not_alerted_again_as_the_window_slides_past_it() {
        let mut b = burst(20, 60);
        // 30 changes in 15 s, then ordinary traffic every 5 s for five minutes.
        let mut evs: Vec<_> = (0..30)
            .map(|i| ev(&format!("b{i}"), "p", i as f64 * 0.5, AuditAction::Delete))
            .collect();
        evs.extend((0..60).map(|i| {
            ev(
                &format!("n{i}"),
                "p",
                20.0 + i as f64 * 5.0,
                AuditAction::Patch,
            )
        }));
        let alerts = feed(&mut b, &evs);
        assert_eq!(alerts.len(), 1, "{alerts:#?}");
        assert_eq!(alerts[0].count, 21);
    }

    #[test]
    fn principals_are_counted_apart_and_reads_are_ignored() {
        let mut b = burst(3, 60);
        let mut evs = Vec::new();
        for i in 0..3 {
            evs.push(ev(&format!("p{i}"), "p", i as f64, AuditAction::Patch));
            evs.push(ev(&format!("q{i}"), "q", i as f64, AuditAction::Patch));
            evs.push(ev(&format!("r{i}"), "p", i as f64, AuditAction::Read));
        }
        assert!(feed(&mut b, &evs).is_empty());
    }

    #[test]
    fn out_of_order_within_lateness_gives_the_same_alert() {
        let in_order: Vec<_> = (0..5)
            .map(|i| ev(&format!("e{i}"), "p", i as f64, AuditAction::Patch))
            .collect();
        let mut shuffled = in_order.clone();
        shuffled.swap(0, 3);
        let a = feed(&mut burst(4, 60), &in_order);
        let b = feed(&mut burst(4, 60), &shuffled);
        assert_eq!(a.len(), 1);
        assert_eq!(b.len(), 1);
        assert_eq!(a[0].alert_id, b[0].alert_id);
        assert_eq!(a[0].window_start, b[0].window_start);
    }

    #[test]
    fn events_later_than_the_lateness_are_ignored() {
        let mut b = burst(2, 5);
        assert!(b
            .observe(&ev("new", "p", 1000.0, AuditAction::Patch), 0)
            .is_none());
        for i in 0..5 {
            assert!(b
                .observe(
                    &ev(&format!("old{i}"), "p", 10.0 + i as f64, AuditAction::Patch),
                    0
                )
                .is_none());
        }
        assert_eq!(b.late.get(), 5);
    }

    #[test]
    fn aborted_batch_does_not_double_count() {
        let mut b = burst(3, 60);
        feed(
            &mut b,
            &[
                ev("e0", "p", 0.0, AuditAction::Patch),
                ev("e1", "p", 1.0, AuditAction::Patch),
            ],
        );
        b.commit();
        feed(
            &mut b,
            &[
                ev("e2", "p", 2.0, AuditAction::Patch),
                ev("e3", "p", 3.0, AuditAction::Patch),
            ],
        );
        b.abort();
        // Re-processing the aborted batch fires exactly once, as the first time would have.
        let alerts = feed(
            &mut b,
            &[
                ev("e2", "p", 2.0, AuditAction::Patch),
                ev("e3", "p", 3.0, AuditAction::Patch),
            ],
        );
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].count, 4);
    }
}
