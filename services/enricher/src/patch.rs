//! Applying an RFC 7644 §3.5.2 PATCH request to a resource, for the operations
//! whose effect is unambiguous without the resource's schema: `add`, `replace`
//! and `remove` on attribute paths (`title`, `name.givenName`,
//! `urn:…:User:department`) and path-less `add`/`replace` of a value object.
//! Value filters (`members[value eq "…"]`) are reported as [`Unsupported`]; the
//! enricher then relies on the response body or marks the diff partial rather
//! than guess. The full engine (filters, `caseExact`, `primary` rules) is
//! tracked separately.

use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot apply PATCH: {0}")]
pub struct Unsupported(pub String);

/// Applies `patch` (a PatchOp message) to a copy of `resource`. All or nothing.
pub fn apply(resource: &Value, patch: &Value) -> Result<Value, Unsupported> {
    let ops = patch
        .get("Operations")
        .or_else(|| patch.get("operations"))
        .and_then(Value::as_array)
        .ok_or_else(|| Unsupported("no Operations array".into()))?;
    let mut out = resource.clone();
    let root = out
        .as_object_mut()
        .ok_or_else(|| Unsupported("resource is not an object".into()))?;
    for op in ops {
        let kind = op
            .get("op")
            .and_then(Value::as_str)
            .ok_or_else(|| Unsupported("operation without `op`".into()))?
            .to_ascii_lowercase();
        let path = op.get("path").and_then(Value::as_str);
        let value = op.get("value");
        match (kind.as_str(), path) {
            ("add" | "replace", None) => {
                let Some(Value::Object(obj)) = value else {
                    return Err(Unsupported(format!(
                        "{kind} without path needs an object value"
                    )));
                };
                for (k, v) in obj {
                    set(root, &[k.as_str()], v.clone(), kind == "add")?;
                }
            }
            ("add" | "replace", Some(p)) => {
                let v = value.ok_or_else(|| Unsupported(format!("{kind} `{p}` without value")))?;
                set(root, &segments(p)?, v.clone(), kind == "add")?;
            }
            ("remove", Some(p)) => remove(root, &segments(p)?),
            ("remove", None) => return Err(Unsupported("remove needs a path".into())),
            (other, _) => return Err(Unsupported(format!("unknown op `{other}`"))),
        }
    }
    Ok(out)
}

/// Splits a path into object keys: a leading schema URN is one key.
fn segments(path: &str) -> Result<Vec<&str>, Unsupported> {
    if path.contains('[') {
        return Err(Unsupported(format!("value filter in path `{path}`")));
    }
    if path.starts_with("urn:") {
        // `urn:…:User:manager.value` → ["urn:…:User", "manager", "value"]
        let (urn, attr) = match path.rfind(':') {
            Some(i) => (&path[..i], &path[i + 1..]),
            None => (path, ""),
        };
        let mut v = vec![urn];
        v.extend(attr.split('.').filter(|s| !s.is_empty()));
        return Ok(v);
    }
    Ok(path.split('.').collect())
}

fn key_of(map: &Map<String, Value>, name: &str) -> String {
    map.keys()
        .find(|k| k.eq_ignore_ascii_case(name))
        .cloned()
        .unwrap_or_else(|| name.to_string())
}

fn set(
    map: &mut Map<String, Value>,
    path: &[&str],
    value: Value,
    add: bool,
) -> Result<(), Unsupported> {
    let Some((first, rest)) = path.split_first() else {
        return Err(Unsupported("empty path".into()));
    };
    let key = key_of(map, first);
    if rest.is_empty() {
        match (map.get_mut(&key), value) {
            // add to a multi-valued attribute appends the new values (§3.5.2.1).
            (Some(Value::Array(existing)), Value::Array(new)) if add => {
                for v in new {
                    if !existing.contains(&v) {
                        existing.push(v);
                    }
                }
            }
            // add/replace of a complex value merges its sub-attributes.
            (Some(Value::Object(existing)), Value::Object(new)) => {
                for (k, v) in new {
                    let k2 = key_of(existing, &k);
                    existing.insert(k2, v);
                }
            }
            (_, v) => {
                map.insert(key, v);
            }
        }
        return Ok(());
    }
    let child = map.entry(key).or_insert_with(|| Value::Object(Map::new()));
    match child {
        Value::Object(inner) => set(inner, rest, value, add),
        _ => Err(Unsupported(format!("`{first}` is not a complex attribute"))),
    }
}

fn remove(map: &mut Map<String, Value>, path: &[&str]) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    let key = key_of(map, first);
    if rest.is_empty() {
        map.remove(&key);
    } else if let Some(Value::Object(inner)) = map.get_mut(&key) {
        remove(inner, rest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn op(ops: Value) -> Value {
        json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops})
    }

    #[test]
    fn replace_add_remove_on_simple_and_sub_attributes() {
        let r = json!({"userName": "bjensen", "active": true, "name": {"givenName": "Barbara"}, "emails": [{"value": "a@x"}], "title": "Rep"});
        let p = op(json!([
            {"op": "Replace", "path": "active", "value": false},
            {"op": "replace", "path": "NAME.givenName", "value": "Babs"},
            {"op": "add", "path": "emails", "value": [{"value": "b@x"}]},
            {"op": "remove", "path": "title"}
        ]));
        let after = apply(&r, &p).expect("applies");
        assert_eq!(
            after,
            json!({"userName": "bjensen", "active": false, "name": {"givenName": "Babs"}, "emails": [{"value": "a@x"}, {"value": "b@x"}]})
        );
    }

    #[test]
    fn pathless_and_extension_paths() {
        let r = json!({"userName": "a"});
        let p = op(json!([
            {"op": "add", "value": {"displayName": "A", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "X"}}},
            {"op": "replace", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value", "value": "m1"}
        ]));
        let after = apply(&r, &p).expect("applies");
        assert_eq!(after["displayName"], "A");
        let ext = &after["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"];
        assert_eq!(ext["department"], "X");
        assert_eq!(ext["manager"]["value"], "m1");
    }

    #[test]
    fn filters_are_reported_not_guessed() {
        let r = json!({"members": [{"value": "u1"}]});
        let p = op(json!([{"op": "remove", "path": "members[value eq \"u1\"]"}]));
        assert!(apply(&r, &p).is_err());
        assert!(apply(&r, &json!({})).is_err());
    }
}
