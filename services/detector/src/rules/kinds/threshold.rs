//! `threshold`: more than N matching events — or N distinct values of a
//! field among them — per key within a sliding window of event time. Fires on
//! the event that crosses (the window is `(t − window, t]` at that event);
//! the events an alert (or a suppressed crossing) counted are not counted
//! again, so one burst raises one alert however long the window takes to
//! slide past it.

use std::collections::BTreeSet;

use serde_json::Value;

use scimtrail_core::schema::Alert;

use super::super::alert::{self, human_duration, Ctx, Draft};
use super::super::config::ThresholdSpec;
use super::super::state::{Body, Info, Mark, Obs, RuleState};
use super::super::view;

pub(super) fn observe(s: &ThresholdSpec, view: &Value) -> Option<Obs> {
    let values = match &s.distinct {
        None => Vec::new(),
        Some(field) => {
            let v = view::values_at(view, field);
            if v.is_empty() {
                // Nothing to count distinctly.
                return None;
            }
            v
        }
    };
    Some(Obs::Count { values })
}

pub(super) fn apply(
    s: &ThresholdSpec,
    ctx: &mut Ctx<'_>,
    rs: &mut RuleState,
    info: &Info,
    values: Vec<String>,
) -> Option<Alert> {
    if !matches!(rs.body, Body::Window(_)) {
        rs.body = Body::Window(Vec::new());
    }
    let Body::Window(marks) = &mut rs.body else {
        return None;
    };
    marks.push(Mark::new(
        info,
        values.into_iter().map(Into::into).collect(),
    ));
    let horizon = info.time.saturating_sub(s.window_ms);
    marks.retain(|m| m.time > horizon);
    let count = match &s.distinct {
        None => marks.len() as u64,
        Some(_) => marks
            .iter()
            .flat_map(|m| m.values.iter())
            .collect::<BTreeSet<_>>()
            .len() as u64,
    };
    if count <= s.more_than {
        return None;
    }
    // Counted now, whether the alert is raised or suppressed.
    let counted: Vec<Mark> = std::mem::take(marks);
    let first = counted.first().map_or(info.time, |m| m.time);
    ctx.fire(&mut rs.dedup, info.time, || {
        let owned: Vec<Info> = counted.iter().map(Mark::info).collect();
        let infos: Vec<&Info> = owned.iter().collect();
        Draft {
            window_start: first,
            count,
            threshold: s.more_than,
            first,
            last: info.time,
            evidence: infos.iter().map(|i| i.id.to_string()).collect(),
            principal: alert::sole_principal(infos.iter().copied()),
            summary: summary(s, &infos, count),
        }
    })
}

/// `okta-provisioner deactivated 21 users in github-enterprise within 3 min
/// (more than 20 in 5 min)`.
fn summary(s: &ThresholdSpec, infos: &[&Info], count: u64) -> String {
    let who = alert::subject(infos.iter().copied());
    let targets = alert::targets(infos.iter().copied());
    let span = match (infos.first(), infos.last()) {
        (Some(a), Some(b)) => human_duration(b.time - a.time),
        _ => human_duration(0),
    };
    let verbs: BTreeSet<&str> = infos.iter().map(|i| alert::verb(i).0).collect();
    let types: BTreeSet<&str> = infos.iter().map(|i| &*i.rtype).collect();
    let one_verb = (verbs.len() == 1)
        .then(|| verbs.iter().next().copied())
        .flatten();
    let one_type = (types.len() == 1)
        .then(|| types.iter().next().copied())
        .flatten();
    let what = match (&s.distinct, one_verb, one_type) {
        // Distinct resources of one type: "deactivated 21 users".
        (Some(d), Some(v), Some(t)) if d == "resource.id" => {
            format!("{v} {count} {}", alert::plural(t, count))
        }
        (Some(d), _, _) => format!(
            "made {} ({}) touching {count} distinct {d} values",
            plural_changes(infos.len()),
            alert::breakdown(infos.iter().copied())
        ),
        // Events, not necessarily distinct resources: "changed users 21 times".
        (None, Some(v), Some(t)) => format!("{v} {} {count} times", alert::plural(t, 2)),
        (None, _, _) => format!(
            "made {} ({}) to {}",
            plural_changes(infos.len()),
            alert::breakdown(infos.iter().copied()),
            alert::list(
                types
                    .iter()
                    .map(|t| alert::plural(t, 2))
                    .collect::<Vec<_>>()
                    .iter()
                    .map(String::as_str)
            )
        ),
    };
    format!(
        "{who} {what} in {targets} within {span} (more than {} in {})",
        s.more_than,
        human_duration(s.window_ms)
    )
}

fn plural_changes(n: usize) -> String {
    if n == 1 {
        "1 request".into()
    } else {
        format!("{n} requests")
    }
}
