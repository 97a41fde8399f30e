//! `scimtrail trace --resource R --attribute A`: an attribute's history
//! across systems, read from the enriched topic.
//!
//! The resource is matched by id, `userName`, `externalId` or `displayName`
//! in every target system (the same person has a different id in each), so
//! one command shows where a value came from and where it went. Each line is
//! one change to the attribute, in event-time order, with the event that set
//! the attribute before it (the enricher's lineage).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::json;

use scimtrail_core::config::CommonConfig;
use scimtrail_core::schema::avro::Codecs;
use scimtrail_core::schema::{EnrichedAuditEvent, Framing};

#[derive(clap::Args, Debug)]
pub struct TraceArgs {
    /// The resource: its id, userName, externalId or displayName (matched
    /// exactly, case-insensitively, in every target system).
    #[arg(long)]
    resource: String,
    /// The attribute, e.g. `emails`, `name.givenName`, `members`; its
    /// sub-attributes and elements are included.
    #[arg(long)]
    attribute: String,
    /// Only this target system.
    #[arg(long)]
    target: Option<String>,
    /// Only this resource type (`User`, `Group`, ...).
    #[arg(long = "type")]
    resource_type: Option<String>,
    /// Start at this time (RFC 3339) instead of the beginning of the topic.
    #[arg(long)]
    from: Option<chrono::DateTime<chrono::Utc>>,
    /// Print JSON lines instead of a table.
    #[arg(long)]
    json: bool,
}

/// One change to the traced attribute.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Step {
    pub time: i64,
    pub event_id: String,
    pub source_system: String,
    pub target_system: String,
    pub resource: String,
    pub action: String,
    pub principal: String,
    pub path: String,
    pub kind: String,
    pub before: Option<String>,
    pub after: Option<String>,
    /// The event that set the attribute before, and where it came from.
    pub previous: Option<(String, String)>,
}

fn eq(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// Whether `event` is about the traced resource by one of its own names,
/// in the selected target and type.
fn names_it(e: &EnrichedAuditEvent, args: &TraceArgs) -> bool {
    let r = &e.event.resource;
    let names = [
        r.id.as_deref(),
        r.user_name.as_deref(),
        r.external_id.as_deref(),
        r.display_name.as_deref(),
    ];
    names.into_iter().flatten().any(|n| eq(n, &args.resource)) && selected(e, args)
}

fn selected(e: &EnrichedAuditEvent, args: &TraceArgs) -> bool {
    !(args
        .target
        .as_deref()
        .is_some_and(|t| !eq(t, &e.event.target.system))
        || args
            .resource_type
            .as_deref()
            .is_some_and(|t| !eq(t, &e.event.resource.kind)))
}

/// Collects steps over a stream. A PATCH or DELETE usually carries only the
/// resource's id, not the `userName` or `displayName` an operator knows it
/// by, so steps are kept per resource and those of every resource that any
/// event names are reported.
#[derive(Default)]
pub struct Collector {
    named: std::collections::HashSet<String>,
    steps: HashMap<String, Vec<Step>>,
}

impl Collector {
    pub fn add(&mut self, e: &EnrichedAuditEvent, args: &TraceArgs) {
        if !selected(e, args) {
            return;
        }
        let key = e.event.partition_key();
        if names_it(e, args) {
            self.named.insert(key.clone());
        }
        let found = attribute_steps(e, args);
        if !found.is_empty() {
            self.steps.entry(key).or_default().extend(found);
        }
    }

    pub fn finish(self) -> Vec<Step> {
        let named = self.named;
        self.steps
            .into_iter()
            .filter(|(k, _)| named.contains(k))
            .flat_map(|(_, s)| s)
            .collect()
    }
}

/// The changes of `event` to the traced attribute, whatever the resource.
fn attribute_steps(e: &EnrichedAuditEvent, args: &TraceArgs) -> Vec<Step> {
    let r = &e.event.resource;
    let want = args.attribute.to_ascii_lowercase();
    let lineage = e.trace.as_ref().map(|t| &t.lineage[..]).unwrap_or(&[]);
    e.changes
        .iter()
        .filter(|c| {
            let a = c.attribute().to_ascii_lowercase();
            a == want || a.starts_with(&format!("{want}.")) || a.starts_with(&format!("{want}:"))
        })
        .map(|c| {
            let attr = c.attribute();
            Step {
                time: e.event.event_time,
                event_id: e.event.event_id.clone(),
                source_system: e.event.source.system.clone(),
                target_system: e.event.target.system.clone(),
                resource: format!("{}/{}", r.kind, r.id.as_deref().unwrap_or("?")),
                action: e.event.action.as_str().to_string(),
                principal: e.event.principal.id.clone(),
                path: c.path.clone(),
                kind: format!("{:?}", c.kind).to_ascii_uppercase(),
                before: c.before.clone(),
                after: c.after.clone(),
                previous: lineage
                    .iter()
                    .find(|o| o.path == attr)
                    .map(|o| (o.event_id.clone(), o.source_system.clone())),
            }
        })
        .collect()
}

pub async fn run(common: &CommonConfig, args: TraceArgs) -> anyhow::Result<()> {
    let framing = Framing::from_config(&common.schema_registry)?;
    let topics = common.topics.clone();
    let codecs = tokio::task::spawn_blocking(move || Codecs::new(framing, &topics)).await??;
    let common = common.clone();
    let json_out = args.json;
    let (mut found, scanned, took) =
        tokio::task::spawn_blocking(move || scan(&common, &codecs, &args)).await??;
    found.sort_by(|a, b| (a.time, &a.event_id).cmp(&(b.time, &b.event_id)));
    for s in &found {
        if json_out {
            println!("{}", json!(s));
        } else {
            let time = chrono::DateTime::from_timestamp_millis(s.time)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
                .unwrap_or_else(|| s.time.to_string());
            let previous = s
                .previous
                .as_ref()
                .map(|(id, src)| format!("  (before: set by {id} from {src})"))
                .unwrap_or_default();
            println!(
                "{time}  {} → {}  {} {}  by {}  {} {}: {} → {}{previous}",
                s.source_system,
                s.target_system,
                s.action,
                s.resource,
                s.principal,
                s.kind,
                s.path,
                s.before.as_deref().unwrap_or("∅"),
                s.after.as_deref().unwrap_or("∅"),
            );
        }
    }
    eprintln!(
        "{} change(s) in {scanned} events scanned in {:.1}s",
        found.len(),
        took.as_secs_f64()
    );
    Ok(())
}

/// Reads every partition of the enriched topic up to its end as of the start.
fn scan(
    common: &CommonConfig,
    codecs: &Codecs,
    args: &TraceArgs,
) -> anyhow::Result<(Vec<Step>, u64, Duration)> {
    let started = Instant::now();
    let mut found = Collector::default();
    let scanned = crate::scan::enriched_topic(common, codecs, args.from, "trace", &mut |s| {
        if let crate::scan::Scan::Event(e) = s {
            found.add(e, args);
        }
    })?;
    Ok((found.finish(), scanned, started.elapsed()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use scimtrail_core::schema::{fixtures, AttributeChange, AttributeOrigin, ChangeKind, Trace};

    fn steps(e: &EnrichedAuditEvent, a: &TraceArgs) -> Vec<Step> {
        let mut c = Collector::default();
        c.add(e, a);
        c.finish()
    }

    fn args(resource: &str, attribute: &str) -> TraceArgs {
        TraceArgs {
            resource: resource.into(),
            attribute: attribute.into(),
            target: None,
            resource_type: None,
            from: None,
            json: false,
        }
    }

    #[test]
    fn matches_the_resource_by_any_name_and_the_attribute_with_its_parts() {
        let mut e = fixtures::enriched(fixtures::audit_event("e1"));
        e.event.resource.user_name = Some("Ann@Example.com".into());
        e.changes = vec![
            AttributeChange {
                path: r#"emails[type eq "work"].value"#.into(),
                kind: ChangeKind::Changed,
                before: Some("\"a\"".into()),
                after: Some("\"b\"".into()),
            },
            AttributeChange {
                path: "emailsVerified".into(),
                kind: ChangeKind::Added,
                before: None,
                after: Some("true".into()),
            },
        ];
        e.trace = Some(Trace {
            source_system: "okta".into(),
            target_system: "gh".into(),
            correlation_id: None,
            captured_time: 1,
            ingested_time: 2,
            enriched_time: 3,
            lineage: vec![AttributeOrigin {
                path: "emails.value".into(),
                event_id: "e0".into(),
                event_time: 0,
                source_system: "workday".into(),
                principal_id: "hr".into(),
            }],
        });
        let s = steps(&e, &args("ann@example.com", "emails"));
        assert_eq!(s.len(), 1, "{s:?}");
        assert_eq!(s[0].previous, Some(("e0".into(), "workday".into())));
        assert!(steps(&e, &args("u1", "EMAILS")).len() == 1);
        assert!(steps(&e, &args("someone-else", "emails")).is_empty());
        let mut only_other = args("u1", "emails");
        only_other.target = Some("other".into());
        assert!(steps(&e, &only_other).is_empty());
    }

    #[test]
    fn events_without_the_name_count_once_another_event_names_the_resource() {
        let mut create = fixtures::enriched(fixtures::audit_event("c"));
        create.event.resource.display_name = Some("Admins".into());
        let mut patch = fixtures::enriched(fixtures::audit_event("p"));
        patch.changes = vec![AttributeChange {
            path: r#"members[value eq "u9"]"#.into(),
            kind: ChangeKind::Added,
            before: None,
            after: Some(r#"{"value":"u9"}"#.into()),
        }];
        let mut other = patch.clone();
        other.event.resource.id = Some("u2".into());
        let a = args("admins", "members");
        let mut c = Collector::default();
        for e in [&patch, &other, &create] {
            c.add(e, &a);
        }
        let found = c.finish();
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].event_id, "p");
    }
}
