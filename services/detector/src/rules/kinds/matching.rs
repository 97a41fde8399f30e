//! `match`: single events that matter on their own (`where`), or a
//! `sequence` of two conditions on the same key within a time (`first`, then
//! `then` at most `within` later), e.g. an identity change followed by the
//! account's deactivation.

use serde_json::Value;

use scimtrail_core::schema::Alert;
use scimtrail_core::scim::NoSchema;

use super::super::alert::{self, human_duration, Ctx, Draft};
use super::super::config::MatchSpec;
use super::super::state::{Body, Info, Obs, RuleState};

/// Most `first` events remembered per key.
const MAX_FIRSTS: usize = 32;

pub(super) fn observe(s: &MatchSpec, view: &Value) -> Option<Obs> {
    match &s.sequence {
        None => Some(Obs::Hit { note: None }),
        Some(q) => {
            let first = q.first.matches(view, &NoSchema);
            let then = q.then.matches(view, &NoSchema);
            (first || then).then_some(Obs::Seq { first, then })
        }
    }
}

pub(super) fn apply_sequence(
    s: &MatchSpec,
    ctx: &mut Ctx<'_>,
    rs: &mut RuleState,
    info: &Info,
    first: bool,
    then: bool,
) -> Option<Alert> {
    let q = s.sequence.as_ref()?;
    if !matches!(rs.body, Body::Firsts(_)) {
        rs.body = Body::Firsts(Vec::new());
    }
    let Body::Firsts(firsts) = &mut rs.body else {
        return None;
    };
    let horizon = info.time.saturating_sub(q.within_ms);
    firsts.retain(|f| f.time >= horizon);
    let mut alert = None;
    if then {
        // The earliest remembered `first` pairs with this event; all of them
        // are used up, so one identity change raises one sequence alert.
        if let Some(f) = firsts.first().cloned() {
            firsts.clear();
            let then_info = info.clone();
            alert = ctx.fire(&mut rs.dedup, info.time, || Draft {
                window_start: f.time,
                count: 2,
                threshold: 1,
                first: f.time,
                last: then_info.time,
                evidence: vec![f.id.to_string(), then_info.id.to_string()],
                principal: alert::sole_principal([&f, &then_info]),
                summary: format!(
                    "{} in {}: {} by {}, then {} by {} {} later",
                    alert::resource(&then_info),
                    then_info.target,
                    alert::verb(&f).0,
                    f.principal,
                    alert::verb(&then_info).0,
                    then_info.principal,
                    human_duration(then_info.time - f.time),
                ),
            });
        }
    }
    if first {
        firsts.push(info.clone());
        if firsts.len() > MAX_FIRSTS {
            firsts.remove(0);
        }
    }
    alert
}

/// `okta-provisioner added members to Group Domain Admins in github-enterprise`.
pub(super) fn summary(i: &Info) -> String {
    format!(
        "{} {} {} in {}",
        i.principal,
        alert::verb(i).0,
        alert::resource(i),
        i.target
    )
}
