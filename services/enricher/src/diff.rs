//! Attribute-level difference between two SCIM resources.
//!
//! Attribute names compare case-insensitively (RFC 7643 §2.1). Complex
//! attributes are compared sub-attribute by sub-attribute (`name.givenName`);
//! schema extensions by their URN (`urn:…:enterprise:2.0:User:department`).
//!
//! Multi-valued attributes of complex values are compared **element by
//! element**, each element named by a SCIM value filter on what identifies
//! it: its `type` when every element has a distinct one (`emails[type eq
//! "work"]`), else its `value` (`members[value eq "2819c223"]`), else its
//! `$ref`. An element present on one side only is ADDED or REMOVED whole; an
//! element on both sides is compared sub-attribute by sub-attribute
//! (`emails[type eq "work"].value`). Order never matters (RFC 7643 §2.4: the
//! values of a multi-valued attribute are unordered). Elements that nothing
//! identifies, and multi-valued attributes of simple values, are compared as
//! a whole value (`schemas`).

use serde_json::{Map, Value};

use scimtrail_core::schema::{AttributeChange, ChangeKind};

/// Changes from `before` to `after`; either may be absent (create, delete).
pub fn diff(
    before: Option<&Value>,
    after: Option<&Value>,
    ignored: &[String],
) -> Vec<AttributeChange> {
    let empty = Map::new();
    let b = before.and_then(Value::as_object).unwrap_or(&empty);
    let a = after.and_then(Value::as_object).unwrap_or(&empty);
    let mut out = Vec::new();
    diff_objects("", '.', b, a, ignored, true, &mut out);
    out
}

fn find<'a>(m: &'a Map<String, Value>, name: &str) -> Option<(&'a String, &'a Value)> {
    m.iter().find(|(k, _)| k.eq_ignore_ascii_case(name))
}

/// `join` separates `prefix` from the names below it: `:` inside a schema
/// extension (`urn:…:User:department`), `.` elsewhere.
fn diff_objects(
    prefix: &str,
    join: char,
    b: &Map<String, Value>,
    a: &Map<String, Value>,
    ignored: &[String],
    top: bool,
    out: &mut Vec<AttributeChange>,
) {
    let mut names: Vec<&String> = Vec::new();
    for k in b.keys().chain(a.keys()) {
        if !names.iter().any(|n| n.eq_ignore_ascii_case(k)) {
            names.push(k);
        }
    }
    names.sort_by_key(|n| n.to_ascii_lowercase());
    for name in names {
        if top && ignored.iter().any(|i| i.eq_ignore_ascii_case(name)) {
            continue;
        }
        let path = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}{join}{name}")
        };
        let child_join = if top && name.starts_with("urn:") {
            ':'
        } else {
            '.'
        };
        let bv = find(b, name).map(|(_, v)| v).filter(|v| !is_empty(v));
        let av = find(a, name).map(|(_, v)| v).filter(|v| !is_empty(v));
        diff_values(&path, child_join, bv, av, ignored, out);
    }
}

/// Absent, `null` and `[]` all mean "no value" (RFC 7643 §2.5).
fn is_empty(v: &Value) -> bool {
    v.is_null() || v.as_array().is_some_and(Vec::is_empty)
}

fn diff_values(
    path: &str,
    child_join: char,
    bv: Option<&Value>,
    av: Option<&Value>,
    ignored: &[String],
    out: &mut Vec<AttributeChange>,
) {
    let empty = Map::new();
    match (bv, av) {
        (None, None) => {}
        (Some(Value::Object(bo)), Some(Value::Object(ao))) => {
            diff_objects(path, child_join, bo, ao, ignored, false, out)
        }
        // A complex attribute that appears or disappears is listed by its
        // sub-attributes, like any other change to it.
        (None, Some(Value::Object(ao))) => {
            diff_objects(path, child_join, &empty, ao, ignored, false, out)
        }
        (Some(Value::Object(bo)), None) => {
            diff_objects(path, child_join, bo, &empty, ignored, false, out)
        }
        (Some(x), Some(y)) if x == y => {}
        (x, y) => {
            let none = Vec::new();
            let xs = x.and_then(Value::as_array);
            let ys = y.and_then(Value::as_array);
            let arrays = (xs.is_some() || x.is_none()) && (ys.is_some() || y.is_none());
            if arrays {
                let (xs, ys) = (xs.unwrap_or(&none), ys.unwrap_or(&none));
                if let Some(key) = identity(path, xs, ys) {
                    diff_elements(path, key, xs, ys, ignored, out);
                    return;
                }
                if same_set(xs, ys) {
                    return;
                }
            }
            out.push(change(path.to_string(), x, y));
        }
    }
}

fn change(path: String, x: Option<&Value>, y: Option<&Value>) -> AttributeChange {
    AttributeChange {
        path,
        kind: match (x, y) {
            (None, _) => ChangeKind::Added,
            (_, None) => ChangeKind::Removed,
            _ => ChangeKind::Changed,
        },
        before: x.map(Value::to_string),
        after: y.map(Value::to_string),
    }
}

/// The sub-attribute that identifies the elements of both sides, if any.
/// `members` and `groups` hold references whose `value` is the referenced
/// resource's id and whose `type` (`User`, `Group`) says nothing about which
/// one, so they are always named by `value`.
fn identity(path: &str, xs: &[Value], ys: &[Value]) -> Option<&'static str> {
    let all = || xs.iter().chain(ys.iter());
    if !all().all(Value::is_object) {
        return None;
    }
    let name = path.rsplit(['.', ':']).next().unwrap_or(path);
    let order: &[&'static str] =
        if name.eq_ignore_ascii_case("members") || name.eq_ignore_ascii_case("groups") {
            &["value", "$ref"]
        } else {
            &["type", "value", "$ref"]
        };
    order.iter().copied().find(|key| {
        let distinct = |side: &[Value]| {
            let mut seen: Vec<&Value> = Vec::with_capacity(side.len());
            side.iter().all(|e| match field(e, key) {
                Some(v) if !v.is_null() && !v.is_object() && !v.is_array() => {
                    let new = !seen.iter().any(|s| same_scalar(s, v));
                    seen.push(v);
                    new
                }
                _ => false,
            })
        };
        distinct(xs) && distinct(ys)
    })
}

fn field<'a>(element: &'a Value, name: &str) -> Option<&'a Value> {
    element
        .as_object()
        .and_then(|m| find(m, name))
        .map(|(_, v)| v)
}

/// Identifying values compare case-insensitively when they are strings:
/// `type` is a canonical value and `value`s such as e-mail addresses are
/// case-insensitive in practice, so a change of case alone is a sub-attribute
/// change, not a removal and an addition.
fn same_scalar(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::String(x), Value::String(y)) => x.eq_ignore_ascii_case(y),
        _ => a == b,
    }
}

fn diff_elements(
    path: &str,
    key: &str,
    xs: &[Value],
    ys: &[Value],
    ignored: &[String],
    out: &mut Vec<AttributeChange>,
) {
    let id_of = |e: &Value| field(e, key).cloned().unwrap_or(Value::Null);
    let selector = |id: &Value| format!("{path}[{key} eq {id}]");
    let mut changes: Vec<AttributeChange> = Vec::new();
    for x in xs {
        let id = id_of(x);
        match ys.iter().find(|y| same_scalar(&id_of(y), &id)) {
            None => changes.push(change(selector(&id), Some(x), None)),
            Some(y) => {
                if let (Some(xo), Some(yo)) = (x.as_object(), y.as_object()) {
                    diff_objects(&selector(&id), '.', xo, yo, ignored, false, &mut changes);
                }
            }
        }
    }
    for y in ys {
        let id = id_of(y);
        if !xs.iter().any(|x| same_scalar(&id_of(x), &id)) {
            changes.push(change(selector(&id), None, Some(y)));
        }
    }
    changes.sort_by(|a, b| a.path.cmp(&b.path));
    out.extend(changes);
}

/// The same values in any order.
fn same_set(xs: &[Value], ys: &[Value]) -> bool {
    xs.len() == ys.len() && xs.iter().all(|x| ys.contains(x)) && ys.iter().all(|y| xs.contains(y))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ignored() -> Vec<String> {
        vec!["meta".into()]
    }

    #[test]
    fn create_lists_every_attribute_as_added() {
        let after = json!({"userName": "bjensen", "name": {"givenName": "Barbara"}, "meta": {"version": "1"}});
        let d = diff(None, Some(&after), &ignored());
        let paths: Vec<_> = d.iter().map(|c| (c.path.as_str(), c.kind)).collect();
        assert_eq!(
            paths,
            vec![
                ("name.givenName", ChangeKind::Added),
                ("userName", ChangeKind::Added)
            ]
        );
        let gone = diff(Some(&after), None, &ignored());
        assert!(gone
            .iter()
            .all(|c| c.kind == ChangeKind::Removed && c.after.is_none()));
        assert_eq!(gone.len(), 2);
    }

    #[test]
    fn changes_are_attribute_level_and_case_insensitive() {
        let before = json!({"userName": "bjensen", "active": true, "name": {"givenName": "Barbara", "familyName": "Jensen"},
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "Sales"}, "title": "Rep"});
        let after = json!({"USERNAME": "bjensen", "active": false, "name": {"givenName": "Babs", "familyName": "Jensen"},
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "Tour"}, "emails": [{"value": "b@x.test"}]});
        let d = diff(Some(&before), Some(&after), &ignored());
        let got: Vec<_> = d
            .iter()
            .map(|c| {
                (
                    c.path.as_str(),
                    c.kind,
                    c.before.as_deref(),
                    c.after.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("active", ChangeKind::Changed, Some("true"), Some("false")),
                (
                    r#"emails[value eq "b@x.test"]"#,
                    ChangeKind::Added,
                    None,
                    Some(r#"{"value":"b@x.test"}"#)
                ),
                (
                    "name.givenName",
                    ChangeKind::Changed,
                    Some("\"Barbara\""),
                    Some("\"Babs\"")
                ),
                ("title", ChangeKind::Removed, Some("\"Rep\""), None),
                (
                    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
                    ChangeKind::Changed,
                    Some("\"Sales\""),
                    Some("\"Tour\"")
                ),
            ]
        );
    }

    #[test]
    fn multi_valued_attributes_change_element_by_element() {
        let before = json!({"displayName": "Admins", "members": [
            {"value": "u1", "display": "Ann", "type": "User"},
            {"value": "u2", "display": "Bob", "type": "User"}]});
        let after = json!({"displayName": "Admins", "members": [
            {"value": "u2", "display": "Robert", "type": "User"},
            {"value": "u3", "display": "Cy", "type": "User"}]});
        let d = diff(Some(&before), Some(&after), &ignored());
        let got: Vec<_> = d.iter().map(|c| (c.path.as_str(), c.kind)).collect();
        assert_eq!(
            got,
            vec![
                (r#"members[value eq "u1"]"#, ChangeKind::Removed),
                (r#"members[value eq "u2"].display"#, ChangeKind::Changed),
                (r#"members[value eq "u3"]"#, ChangeKind::Added),
            ]
        );
        assert_eq!(
            d[0].before.as_deref(),
            Some(r#"{"display":"Ann","type":"User","value":"u1"}"#)
        );
    }

    #[test]
    fn elements_with_distinct_types_are_named_by_type() {
        let before = json!({"emails": [{"type": "work", "value": "a@x.test", "primary": true},
                                       {"type": "home", "value": "h@x.test"}]});
        let after = json!({"emails": [{"type": "home", "value": "h@x.test"},
                                      {"type": "work", "value": "b@x.test", "primary": true}]});
        let d = diff(Some(&before), Some(&after), &ignored());
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].path, r#"emails[type eq "work"].value"#);
        assert_eq!(d[0].before.as_deref(), Some(r#""a@x.test""#));
        // Reordering alone is no change, for simple values too.
        let a = json!({"schemas": ["a", "b"], "emails": [{"value": "x"}, {"value": "y"}]});
        let b = json!({"schemas": ["b", "a"], "emails": [{"value": "y"}, {"value": "x"}]});
        assert!(diff(Some(&a), Some(&b), &ignored()).is_empty());
        // An empty array is no value.
        assert!(diff(Some(&json!({"members": []})), Some(&json!({})), &ignored()).is_empty());
    }

    #[test]
    fn identical_resources_have_no_changes() {
        let r = json!({"userName": "a", "emails": [{"value": "x"}]});
        assert!(diff(Some(&r), Some(&r), &ignored()).is_empty());
    }
}
