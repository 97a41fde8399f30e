//! What a change means: group membership changes with names, privileged
//! changes, activation, identity changes. Derived from the attribute-level
//! changes, so a rule sees the same facts an analyst reads in `changes`.

use serde::Deserialize;
use serde_json::Value;

use scimtrail_core::schema::{
    AttributeChange, AuditAction, ChangeKind, EventFlag, MembershipChange,
};

use crate::state::attribute_of;

/// `[enricher.privileged]`: what makes a change privileged. Names compare
/// case-insensitively.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrivilegedConfig {
    /// Groups, by `displayName` or `id`, whose membership or attributes are
    /// privileged (e.g. `Domain Admins`, `github-org-owners`).
    #[serde(default)]
    pub groups: Vec<String>,
    /// Values of a User's `roles` that are privileged (e.g. `admin`).
    #[serde(default)]
    pub roles: Vec<String>,
    /// Values of a User's `entitlements` that are privileged.
    #[serde(default)]
    pub entitlements: Vec<String>,
    /// Attributes whose change is privileged in itself, such as an admin
    /// flag in a custom extension (`urn:…:User:isAdmin`); a sub-attribute of
    /// a listed attribute counts too.
    #[serde(default)]
    pub attributes: Vec<String>,
}

/// The facts derived from one event's changes.
#[derive(Debug, Default, PartialEq)]
pub struct Facts {
    pub flags: Vec<EventFlag>,
    pub privileged: Vec<String>,
    pub memberships: Vec<MembershipChange>,
}

/// What the facts are derived from.
pub struct Subject<'a> {
    pub action: AuditAction,
    pub resource_type: &'a str,
    pub resource_id: Option<&'a str>,
    pub display_name: Option<&'a str>,
    pub before: Option<&'a Value>,
    pub after: Option<&'a Value>,
    pub changes: &'a [AttributeChange],
    pub partial: bool,
}

pub fn derive(subject: &Subject<'_>, config: &PrivilegedConfig) -> Facts {
    let mut facts = Facts::default();
    let is_group = subject.resource_type.eq_ignore_ascii_case("Group");
    let group_name = str_attr(subject.after, "displayName")
        .or_else(|| str_attr(subject.before, "displayName"))
        .or(subject.display_name);
    if is_group {
        facts.memberships = memberships(subject, group_name);
    }

    let listed = |list: &[String], v: &str| list.iter().any(|g| g.eq_ignore_ascii_case(v));
    if is_group && !subject.changes.is_empty() {
        let hit = [group_name, subject.resource_id]
            .into_iter()
            .flatten()
            .find(|n| listed(&config.groups, n));
        if let Some(name) = hit {
            facts.privileged.push(format!("group:{name}"));
        }
    }
    for c in subject.changes {
        let attr = attribute_of(&c.path);
        let top = attr.split('.').next().unwrap_or("");
        for (name, list) in [
            ("roles", &config.roles),
            ("entitlements", &config.entitlements),
        ] {
            if !top.eq_ignore_ascii_case(name) {
                continue;
            }
            for v in element_values(c) {
                if listed(list, &v) {
                    facts.privileged.push(format!("{name}:{v}"));
                }
            }
        }
        for a in &config.attributes {
            let lower = attr.to_ascii_lowercase();
            let want = a.to_ascii_lowercase();
            if lower == want || lower.starts_with(&format!("{want}.")) {
                facts.privileged.push(format!("attribute:{a}"));
            }
        }
    }
    facts.privileged.sort();
    facts.privileged.dedup();
    if !facts.privileged.is_empty() {
        facts.flags.push(EventFlag::Privileged);
    }

    // A partial PATCH lists what the request asked for, so its changes are
    // real changes with an unknown before; a partial replace lists the whole
    // resource as added, which says nothing about what changed.
    let intent = subject.partial && subject.action == AuditAction::Patch;
    let known = !subject.partial || intent;
    for c in subject.changes {
        let attr = attribute_of(&c.path);
        if attr.eq_ignore_ascii_case("active") {
            // A resource created inactive was never active: only a change of
            // a known value (or of an unknown one, for a partial diff) counts.
            match (c.before.as_deref(), c.after.as_deref()) {
                (Some("true"), Some("false")) => facts.flags.push(EventFlag::Deactivated),
                (Some("false"), Some("true")) => facts.flags.push(EventFlag::Activated),
                (None, Some("false")) if intent => facts.flags.push(EventFlag::Deactivated),
                (None, Some("true")) if intent => facts.flags.push(EventFlag::Activated),
                _ => {}
            }
        }
        let identity = attr.eq_ignore_ascii_case("userName")
            || attr
                .split('.')
                .next()
                .is_some_and(|t| t.eq_ignore_ascii_case("emails"));
        if identity
            && known
            && subject.action != AuditAction::Create
            && subject.action != AuditAction::Delete
        {
            facts.flags.push(EventFlag::IdentityChange);
        }
    }
    facts.flags.sort();
    facts.flags.dedup();
    facts
}

fn str_attr<'a>(resource: Option<&'a Value>, name: &str) -> Option<&'a str> {
    resource?
        .as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))?
        .1
        .as_str()
}

/// `members[value eq "u1"]` → `u1` (the element a change is about).
pub fn selected_value(path: &str, attribute: &str) -> Option<String> {
    let open = path.find('[')?;
    if !path[..open].eq_ignore_ascii_case(attribute) || !path.ends_with(']') {
        return None;
    }
    let inner = path[open + 1..path.len() - 1].trim();
    let mut parts = inner.splitn(3, char::is_whitespace);
    let (attr, op, literal) = (parts.next()?, parts.next()?, parts.next()?.trim());
    if !attr.eq_ignore_ascii_case("value") || !op.eq_ignore_ascii_case("eq") {
        return None;
    }
    match serde_json::from_str::<Value>(literal).ok()? {
        Value::String(s) => Some(s),
        other => Some(other.to_string()),
    }
}

/// The `value`s a change to a multi-valued attribute adds or removes: from
/// the element filter in its path, or from the element(s) themselves.
fn element_values(c: &AttributeChange) -> Vec<String> {
    let attr = c.path.split('[').next().unwrap_or("");
    if let Some(v) = selected_value(&c.path, attr) {
        return vec![v];
    }
    let mut out = Vec::new();
    for side in [&c.before, &c.after].into_iter().flatten() {
        match serde_json::from_str::<Value>(side) {
            Ok(Value::Array(items)) => items.iter().for_each(|i| push_value(i, &mut out)),
            Ok(item) => push_value(&item, &mut out),
            Err(_) => {}
        }
    }
    out
}

fn push_value(item: &Value, out: &mut Vec<String>) {
    match item {
        Value::Object(m) => {
            if let Some(Value::String(v)) = m
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("value"))
                .map(|(_, v)| v)
            {
                out.push(v.clone());
            }
        }
        Value::String(s) => out.push(s.clone()),
        _ => {}
    }
}

fn memberships(subject: &Subject<'_>, group_name: Option<&str>) -> Vec<MembershipChange> {
    let known_members = |id: &str| -> Option<(Option<String>, Option<String>)> {
        for side in [subject.after, subject.before].into_iter().flatten() {
            let members = side
                .as_object()?
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("members"))
                .and_then(|(_, v)| v.as_array());
            if let Some(m) = members
                .into_iter()
                .flatten()
                .find(|m| str_attr(Some(m), "value") == Some(id))
            {
                return Some((
                    str_attr(Some(m), "display").map(str::to_string),
                    str_attr(Some(m), "type").map(str::to_string),
                ));
            }
        }
        None
    };
    let mut out = Vec::new();
    for c in subject.changes {
        let Some(member_id) = selected_value(&c.path, "members") else {
            continue;
        };
        // Whole elements only: `members[value eq "u1"].display` is a rename.
        let element = match c.kind {
            ChangeKind::Added => c.after.as_deref(),
            ChangeKind::Removed => c.before.as_deref(),
            ChangeKind::Changed => continue,
        };
        let element: Option<Value> = element.and_then(|e| serde_json::from_str(e).ok());
        let (mut name, mut kind) = (
            str_attr(element.as_ref(), "display").map(str::to_string),
            str_attr(element.as_ref(), "type").map(str::to_string),
        );
        if name.is_none() || kind.is_none() {
            if let Some((n, k)) = known_members(&member_id) {
                name = name.or(n);
                kind = kind.or(k);
            }
        }
        out.push(MembershipChange {
            group_id: subject.resource_id.map(str::to_string),
            group_name: group_name.map(str::to_string),
            member_id,
            member_name: name,
            member_type: kind,
            kind: c.kind,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diff::diff;
    use serde_json::json;

    fn subject<'a>(
        action: AuditAction,
        kind: &'a str,
        before: Option<&'a Value>,
        after: Option<&'a Value>,
        changes: &'a [AttributeChange],
    ) -> Subject<'a> {
        Subject {
            action,
            resource_type: kind,
            resource_id: Some("g1"),
            display_name: None,
            before,
            after,
            changes,
            partial: false,
        }
    }

    #[test]
    fn membership_changes_name_the_members_and_flag_privileged_groups() {
        let before =
            json!({"displayName": "Admins", "members": [{"value": "u1", "display": "Ann"}]});
        let after = json!({"displayName": "Admins", "members": [{"value": "u2", "display": "Bob", "type": "User"}]});
        let changes = diff(Some(&before), Some(&after), &[]);
        let config = PrivilegedConfig {
            groups: vec!["admins".into()],
            ..Default::default()
        };
        let f = derive(
            &subject(
                AuditAction::Patch,
                "Group",
                Some(&before),
                Some(&after),
                &changes,
            ),
            &config,
        );
        assert_eq!(f.flags, vec![EventFlag::Privileged]);
        assert_eq!(f.privileged, vec!["group:Admins".to_string()]);
        let got: Vec<_> = f
            .memberships
            .iter()
            .map(|m| (m.member_id.as_str(), m.member_name.as_deref(), m.kind))
            .collect();
        assert_eq!(
            got,
            vec![
                ("u1", Some("Ann"), ChangeKind::Removed),
                ("u2", Some("Bob"), ChangeKind::Added)
            ]
        );
        assert_eq!(f.memberships[0].group_name.as_deref(), Some("Admins"));
        // The same change to an ordinary group is not privileged.
        let f = derive(
            &subject(
                AuditAction::Patch,
                "Group",
                Some(&before),
                Some(&after),
                &changes,
            ),
            &PrivilegedConfig::default(),
        );
        assert!(f.flags.is_empty() && f.memberships.len() == 2);
    }

    #[test]
    fn deactivation_identity_and_privileged_roles_are_flagged() {
        let before = json!({"userName": "a", "active": true, "roles": [{"value": "user"}]});
        let after = json!({"userName": "b", "active": false, "roles": [{"value": "user"}, {"value": "Admin"}]});
        let changes = diff(Some(&before), Some(&after), &[]);
        let config = PrivilegedConfig {
            roles: vec!["admin".into()],
            attributes: vec!["urn:x:User:isAdmin".into()],
            ..Default::default()
        };
        let f = derive(
            &subject(
                AuditAction::Replace,
                "User",
                Some(&before),
                Some(&after),
                &changes,
            ),
            &config,
        );
        assert_eq!(
            f.flags,
            vec![
                EventFlag::Privileged,
                EventFlag::Deactivated,
                EventFlag::IdentityChange
            ]
        );
        assert_eq!(f.privileged, vec!["roles:Admin".to_string()]);
        // A create sets a userName and `active`; it changes neither.
        let changes = diff(None, Some(&after), &[]);
        let f = derive(
            &subject(AuditAction::Create, "User", None, Some(&after), &changes),
            &PrivilegedConfig::default(),
        );
        assert!(f.flags.is_empty(), "{:?}", f.flags);
    }

    #[test]
    fn selected_values_are_read_from_element_paths() {
        assert_eq!(
            selected_value(r#"members[value eq "u 1"]"#, "members").as_deref(),
            Some("u 1")
        );
        assert_eq!(
            selected_value(r#"Members[Value EQ "x\"y"]"#, "members").as_deref(),
            Some("x\"y")
        );
        assert_eq!(
            selected_value(r#"members[type eq "User"]"#, "members"),
            None
        );
        assert_eq!(selected_value("members", "members"), None);
    }
}
