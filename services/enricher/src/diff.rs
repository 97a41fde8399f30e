//! Attribute-level difference between two SCIM resources.
//!
//! Attribute names compare case-insensitively (RFC 7643 §2.1). Complex
//! attributes are compared sub-attribute by sub-attribute (`name.givenName`);
//! schema extensions by their URN (`urn:…:enterprise:2.0:User:department`);
//! multi-valued attributes as a whole value (`emails`).

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
        let bv = find(b, name).map(|(_, v)| v).filter(|v| !v.is_null());
        let av = find(a, name).map(|(_, v)| v).filter(|v| !v.is_null());
        match (bv, av) {
            (None, None) => {}
            (Some(Value::Object(bo)), Some(Value::Object(ao))) => {
                diff_objects(&path, child_join, bo, ao, ignored, false, out)
            }
            // A complex attribute that appears or disappears is listed by its
            // sub-attributes, like any other change to it.
            (None, Some(Value::Object(ao))) => {
                diff_objects(&path, child_join, &Map::new(), ao, ignored, false, out)
            }
            (Some(Value::Object(bo)), None) => {
                diff_objects(&path, child_join, bo, &Map::new(), ignored, false, out)
            }
            (Some(x), Some(y)) if x == y => {}
            (x, y) => out.push(AttributeChange {
                path,
                kind: match (x, y) {
                    (None, _) => ChangeKind::Added,
                    (_, None) => ChangeKind::Removed,
                    _ => ChangeKind::Changed,
                },
                before: x.map(Value::to_string),
                after: y.map(Value::to_string),
            }),
        }
    }
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
                    "emails",
                    ChangeKind::Added,
                    None,
                    Some(r#"[{"value":"b@x.test"}]"#)
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
    fn identical_resources_have_no_changes() {
        let r = json!({"userName": "a", "emails": [{"value": "x"}]});
        assert!(diff(Some(&r), Some(&r), &ignored()).is_empty());
    }
}
