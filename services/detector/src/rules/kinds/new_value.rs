//! `new_value`: a value of a field not seen for the key within a lookback —
//! a principal acting from a new IP address or user agent, or on a new
//! target system. Each key remembers the last-seen time of its newest
//! `max_values` values; the first event of a key only teaches it (unless
//! `alert_on_first`).

use std::collections::BTreeMap;

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
    let learned = matches!(&rs.body, Body::Seen { seen } if !seen.is_empty());
    if !matches!(rs.body, Body::Seen { .. }) {
        rs.body = Body::Seen {
            seen: BTreeMap::new(),
        };
    }
    let Body::Seen { seen } = &mut rs.body else {
        return None;
    };
    let horizon = info.time.saturating_sub(s.lookback_ms);
    seen.retain(|_, t| *t > horizon);
    let mut new = Vec::new();
    for v in values {
        if !seen.contains_key(&v) {
            new.push(v.clone());
        }
        seen.insert(v, info.time);
    }
    while seen.len() > s.max_values {
        // The value seen longest ago goes (ties: the smallest value).
        let Some(oldest) = seen
            .iter()
            .min_by_key(|(v, t)| (**t, (*v).clone()))
            .map(|(v, _)| v.clone())
        else {
            break;
        };
        seen.remove(&oldest);
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
        evidence: vec![info.id.clone()],
        principal: Some(info.principal.clone()),
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
