//! `new_value`: a value of a field not seen for the key within a lookback —
//! a principal acting from a new IP address or user agent, or on a new
//! target system. Each key remembers the last-seen time of its newest
//! `max_values` values; the first event of a key only teaches it (unless
//! `alert_on_first`).

use serde_json::Value;

use scimtrail_core::schema::Alert;

use super::super::alert::{self, human_duration, Ctx, Draft};
use super::super::config::NewValueSpec;
use super::super::state::{Body, Info, Obs, RuleState};
use super::super::view;

pub(super) fn observe(s: &NewValueSpec, view: &Value) -> Option<Obs> {
    let values = view::values_at(view, &s.field);
    (!values.is_empty()).then_some(Obs::Values { values })
}

pub(super) fn apply(
    s: &NewValueSpec,
    ctx: &mut Ctx<'_>,
    rs: &mut RuleState,
    info: &Info,
    values: Vec<String>,
) -> Option<Alert> {
    let learned = matches!(&rs.body, Body::Seen(seen) if !seen.is_empty());
    if !matches!(rs.body, Body::Seen(_)) {
        rs.body = Body::Seen(Vec::new());
    }
    let Body::Seen(seen) = &mut rs.body else {
        return None;
    };
    let horizon = info.time.saturating_sub(s.lookback_ms);
    seen.retain(|(_, t)| *t > horizon);
    let mut new = Vec::new();
    for v in values {
        match seen.binary_search_by(|(x, _)| (**x).cmp(v.as_str())) {
            Ok(at) => seen[at].1 = info.time,
            Err(at) => {
                seen.insert(at, (v.as_str().into(), info.time));
                new.push(v);
            }
        }
    }
    while seen.len() > s.max_values {
        // The value seen longest ago goes (ties: the smallest value).
        let Some(oldest) = seen
            .iter()
            .enumerate()
            .min_by_key(|(_, (v, t))| (*t, v.clone()))
            .map(|(at, _)| at)
        else {
            break;
        };
        seen.remove(oldest);
    }
    if new.is_empty() || !(learned || s.alert_on_first) {
        return None;
    }
    ctx.fire(&mut rs.dedup, info.time, || Draft {
        window_start: info.time,
        count: new.len() as u64,
        threshold: 0,
        first: info.time,
        last: info.time,
        evidence: vec![info.id.to_string()],
        principal: Some(info.principal.to_string()),
        summary: format!(
            "{} {} {} in {} with a new {} {} (not seen in the last {})",
            info.principal,
            alert::verb(info).0,
            alert::resource(info),
            info.target,
            s.field,
            alert::list(new.iter().map(String::as_str)),
            human_duration(s.lookback_ms),
        ),
    })
}
