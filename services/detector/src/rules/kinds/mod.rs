//! Rule kinds: what each sees in an event when it arrives (`observe`), and
//! what it does with that in event-time order (`apply`), one file per kind.
//!
//! `observe` runs on the whole event (conditions need it) and returns a small
//! [`Obs`]; `apply` runs on the key's state when the watermark reaches the
//! event, so its result does not depend on arrival order.

mod error_rate;
mod matching;
mod new_value;
mod policy;
mod schedule;
mod threshold;

use serde_json::Value;

use scimtrail_core::schema::{Alert, EnrichedAuditEvent};
use scimtrail_core::scim::NoSchema;

use super::alert::Ctx;
use super::config::{Kind, Rule};
use super::state::{Body, Info, Obs, RuleState};

/// What `rule` sees in `event` (whose view is `view`), if anything.
pub(crate) fn observe(rule: &Rule, event: &EnrichedAuditEvent, view: &Value) -> Option<Obs> {
    if let Some(c) = &rule.condition {
        if !c.matches(view, &NoSchema) {
            return None;
        }
    }
    match &rule.kind {
        Kind::Threshold(s) => threshold::observe(s, view),
        Kind::ErrorRate(s) => error_rate::observe(s, view),
        Kind::Policy(s) => policy::observe(s, event),
        Kind::Match(s) => matching::observe(s, view),
        Kind::NewValue(s) => new_value::observe(s, view),
        Kind::Schedule(s) => schedule::observe(s, event),
    }
}

/// Applies one observation, in event-time order, to the rule's state.
pub(crate) fn apply(ctx: &mut Ctx<'_>, rs: &mut RuleState, info: &Info, obs: Obs) -> Option<Alert> {
    let rule = ctx.rule;
    match (&rule.kind, obs) {
        (Kind::Threshold(s), Obs::Count { values }) => threshold::apply(s, ctx, rs, info, values),
        (Kind::ErrorRate(s), Obs::Rate { failed }) => error_rate::apply(s, ctx, rs, info, failed),
        (Kind::Match(s), Obs::Seq { first, then }) => {
            matching::apply_sequence(s, ctx, rs, info, first, then)
        }
        (Kind::NewValue(s), Obs::Values { values }) => new_value::apply(s, ctx, rs, info, values),
        (Kind::Policy(_) | Kind::Match(_) | Kind::Schedule(_), Obs::Hit { note }) => {
            single(ctx, rs, info, note)
        }
        // An observation of another kind: the rule changed under stored
        // state with the same fingerprint, which cannot happen; ignore it.
        _ => None,
    }
}

/// Forgets what can no longer matter for events after `now`.
pub(crate) fn prune(rule: &Rule, rs: &mut RuleState, now: i64) {
    let horizon = |len: i64| now.saturating_sub(len);
    match (&rule.kind, &mut rs.body) {
        (Kind::Threshold(s), Body::Window(marks)) => {
            let h = horizon(s.window_ms);
            marks.retain(|m| m.time > h);
        }
        (Kind::ErrorRate(s), Body::Window(marks)) => {
            let h = horizon(s.window_ms);
            marks.retain(|m| m.time > h);
        }
        (Kind::Match(s), Body::Firsts(firsts)) => {
            if let Some(seq) = &s.sequence {
                let h = horizon(seq.within_ms);
                firsts.retain(|f| f.time >= h);
            }
        }
        (Kind::NewValue(s), Body::Seen(seen)) => {
            let h = horizon(s.lookback_ms);
            seen.retain(|(_, t)| *t > h);
        }
        _ => {}
    }
    if rs.dedup.idle(now) {
        rs.dedup = Default::default();
    }
}

/// The earliest event time at which [`prune`] would change something.
pub(crate) fn expiry(rule: &Rule, rs: &RuleState) -> i64 {
    let body = match (&rule.kind, &rs.body) {
        (Kind::Threshold(s), Body::Window(m)) => m.first().map(|m| m.time + s.window_ms),
        (Kind::ErrorRate(s), Body::Window(m)) => m.first().map(|m| m.time + s.window_ms),
        (Kind::Match(s), Body::Firsts(f)) => s
            .sequence
            .as_ref()
            .and_then(|q| f.first().map(|f| f.time + q.within_ms + 1)),
        (Kind::NewValue(s), Body::Seen(seen)) => seen
            .iter()
            .map(|(_, t)| *t)
            .min()
            .map(|t| t + s.lookback_ms),
        _ => None,
    };
    let dedup = (rs.dedup.suppressed == 0 && rs.dedup.suppressed_until != i64::MIN)
        .then_some(rs.dedup.suppressed_until);
    body.into_iter().chain(dedup).min().unwrap_or(i64::MAX)
}

/// Single-event kinds (policy, match, schedule): every hit is a crossing.
fn single(
    ctx: &mut Ctx<'_>,
    rs: &mut RuleState,
    info: &Info,
    note: Option<String>,
) -> Option<Alert> {
    let rule = ctx.rule;
    let kind = rule.kind_name();
    ctx.fire(&mut rs.dedup, info.time, || super::alert::Draft {
        window_start: info.time,
        count: 1,
        threshold: 0,
        first: info.time,
        last: info.time,
        evidence: vec![info.id.to_string()],
        principal: Some(info.principal.to_string()),
        summary: match kind {
            "policy" => policy::summary(info, note.as_deref()),
            "schedule" => schedule::summary(rule, info, note.as_deref()),
            _ => matching::summary(info),
        },
    })
}
