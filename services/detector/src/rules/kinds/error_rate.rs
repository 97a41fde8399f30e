//! `error_rate`: failures / requests per key within a sliding window of
//! event time at or above a ratio, once there are at least `min_count`
//! requests. Fires on the event that crosses; counted requests are not
//! counted again.

use serde_json::Value;

use scimtrail_core::schema::Alert;
use scimtrail_core::scim::NoSchema;

use super::super::alert::{self, human_duration, Ctx, Draft};
use super::super::config::ErrorRateSpec;
use super::super::state::{Body, Info, Mark, Obs, RuleState};

pub(super) fn observe(s: &ErrorRateSpec, view: &Value) -> Option<Obs> {
    Some(Obs::Rate {
        failed: s.failure.matches(view, &NoSchema),
    })
}

const FAILED: &str = "x";

pub(super) fn apply(
    s: &ErrorRateSpec,
    ctx: &mut Ctx<'_>,
    rs: &mut RuleState,
    info: &Info,
    failed: bool,
) -> Option<Alert> {
    if !matches!(rs.body, Body::Window(_)) {
        rs.body = Body::Window(Vec::new());
    }
    let Body::Window(marks) = &mut rs.body else {
        return None;
    };
    marks.push(Mark::new(
        info,
        if failed {
            Box::new([FAILED.into()])
        } else {
            Box::new([])
        },
    ));
    let horizon = info.time.saturating_sub(s.window_ms);
    marks.retain(|m| m.time > horizon);
    let total = marks.len() as u64;
    let failures = marks.iter().filter(|m| !m.values.is_empty()).count() as u64;
    if total < s.min_count || (failures as f64) < s.ratio * total as f64 {
        return None;
    }
    let counted: Vec<Mark> = std::mem::take(marks);
    let first = counted.first().map_or(info.time, |m| m.time);
    ctx.fire(&mut rs.dedup, info.time, || {
        let owned: Vec<(bool, Info)> = counted
            .iter()
            .map(|m| (!m.values.is_empty(), m.info()))
            .collect();
        let failed: Vec<&Info> = owned.iter().filter(|(f, _)| *f).map(|(_, i)| i).collect();
        let all: Vec<&Info> = owned.iter().map(|(_, i)| i).collect();
        let pct = failures * 100 / total.max(1);
        Draft {
            window_start: first,
            count: failures,
            threshold: s.min_count,
            first,
            last: info.time,
            evidence: failed.iter().map(|i| i.id.to_string()).collect(),
            principal: alert::sole_principal(failed.iter().copied()),
            summary: format!(
                "{failures} of {total} requests to {} failed ({pct}%) within {}, at or above the {}% limit (at least {} requests in {})",
                alert::targets(all.iter().copied()),
                human_duration(info.time - first),
                (s.ratio * 100.0).round() as u64,
                s.min_count,
                human_duration(s.window_ms),
            ),
        }
    })
}
