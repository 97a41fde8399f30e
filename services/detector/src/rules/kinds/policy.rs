//! `policy`: which roles may do what. An event is allowed if any of the
//! actor's roles allows its action, resource type, every attribute it
//! changes and — for PRIVILEGED changes — privileged changes. Unknown
//! principals and ACCESS_DENIED events alert unless configured otherwise.

use scimtrail_core::schema::{AuditAction, EnrichedAuditEvent, EventFlag};

use super::super::alert;
use super::super::config::{Grant, PolicySpec};
use super::super::state::{Info, Obs};

pub(super) fn observe(s: &PolicySpec, e: &EnrichedAuditEvent) -> Option<Obs> {
    violation(s, e).map(|reason| Obs::Hit { note: Some(reason) })
}

/// Why `e` is not allowed, or `None` if it is.
pub(crate) fn violation(s: &PolicySpec, e: &EnrichedAuditEvent) -> Option<String> {
    let ev = &e.event;
    if ev.action == AuditAction::AccessDenied {
        return s.access_denied_alerts.then(|| {
            let status = ev
                .response
                .as_ref()
                .map(|r| format!(" (HTTP {})", r.status))
                .unwrap_or_default();
            format!("the request was denied{status}")
        });
    }
    let actor = e
        .actor
        .as_ref()
        .filter(|_| !e.flags.contains(&EventFlag::UnknownPrincipal));
    let Some(actor) = actor else {
        return s
            .unknown_principal_alerts
            .then(|| "the principal is not in the role directory".to_string());
    };
    let attributes: Vec<String> = e
        .changes
        .iter()
        .map(|c| c.attribute().to_ascii_lowercase())
        .chain((!e.memberships.is_empty()).then(|| "members".to_string()))
        .collect();
    let privileged = e.flags.contains(&EventFlag::Privileged);
    let mut reasons = Vec::new();
    for role in &actor.roles {
        let Some(grant) = s.roles.get(&role.to_ascii_lowercase()) else {
            continue;
        };
        match denied_by(grant, e, &attributes, privileged) {
            None => return None,
            Some(why) => reasons.push(format!("{role} {why}")),
        }
    }
    if reasons.is_empty() {
        return Some(if actor.roles.is_empty() {
            "the principal has no roles".to_string()
        } else {
            format!("no policy for its roles ({})", actor.roles.join(", "))
        });
    }
    Some(format!("not allowed: {}", reasons.join("; ")))
}

/// Why `grant` does not allow `e`, or `None` if it does.
fn denied_by(
    grant: &Grant,
    e: &EnrichedAuditEvent,
    attributes: &[String],
    privileged: bool,
) -> Option<String> {
    let ev = &e.event;
    let action = ev.action.as_str();
    if !grant.actions.is_empty() && !grant.actions.contains(action) {
        return Some(format!("may not {action}"));
    }
    if let Some(types) = &grant.resource_types {
        if !types.contains(&ev.resource.kind.to_ascii_lowercase()) {
            return Some(format!("may not act on {}", ev.resource.kind));
        }
    }
    if let Some(allowed) = &grant.attributes {
        if let Some(a) = attributes
            .iter()
            .find(|a| !allowed.iter().any(|p| covers(p, a)))
        {
            return Some(format!("may not change {a}"));
        }
    }
    if privileged && !grant.privileged {
        let what = if e.privileged.is_empty() {
            String::new()
        } else {
            format!(" ({})", e.privileged.join(", "))
        };
        return Some(format!("may not make privileged changes{what}"));
    }
    None
}

/// Whether allowed path `p` covers changed attribute `a`: equal, a
/// sub-attribute (`name` covers `name.givenname`) or an attribute of an
/// extension (`urn:…:user` covers `urn:…:user:department`).
fn covers(p: &str, a: &str) -> bool {
    a == p
        || a.strip_prefix(p)
            .is_some_and(|rest| rest.starts_with('.') || rest.starts_with(':'))
}

/// `audit-bot changed User bjensen in github-enterprise: not allowed: auditor may not PATCH`.
pub(super) fn summary(i: &Info, reason: Option<&str>) -> String {
    format!(
        "{} {} {} in {}: {}",
        i.principal,
        alert::verb(i).0,
        alert::resource(i),
        i.target,
        reason.unwrap_or("not allowed")
    )
}
