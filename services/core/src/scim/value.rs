//! JSON helpers shared by the filter evaluator and the PATCH engine: SCIM's
//! case-insensitive attribute names (RFC 7643 §2.1), its "unassigned" state
//! (§2.5) and value equality under `caseExact`.

use std::borrow::Cow;
use std::cmp::Ordering;

use chrono::{DateTime, FixedOffset};
use serde_json::{Map, Value};

use super::schema::{AttrType, AttributeDef};

/// The value of attribute `name`, matched case-insensitively.
pub(crate) fn get_ci<'v>(obj: &'v Map<String, Value>, name: &str) -> Option<&'v Value> {
    // The exact spelling is the common case and a hash lookup.
    obj.get(name).or_else(|| {
        obj.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    })
}

/// The key under which attribute `name` is stored, if it is.
pub(crate) fn key_of(obj: &Map<String, Value>, name: &str) -> Option<String> {
    if obj.contains_key(name) {
        return Some(name.to_string());
    }
    obj.keys().find(|k| k.eq_ignore_ascii_case(name)).cloned()
}

/// Whether a value counts as assigned: RFC 7643 §2.5 makes null and an empty
/// array equivalent to no value; an empty complex value carries nothing
/// either.
pub(crate) fn is_assigned(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) => false,
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(o)) => !o.is_empty(),
        Some(_) => true,
    }
}

/// `s` lower-cased for case-insensitive comparison, without copying when it
/// already is.
pub(crate) fn fold(s: &str) -> Cow<'_, str> {
    if s.bytes().all(|b| b.is_ascii() && !b.is_ascii_uppercase()) {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(s.to_lowercase())
    }
}

/// Parses an RFC 3339 instant (`xsd:dateTime` as RFC 7643 §2.3.5 uses it).
pub(crate) fn parse_datetime(s: &str) -> Option<DateTime<FixedOffset>> {
    // Cheap rejection before chrono: every instant starts with a 4-digit year.
    let b = s.as_bytes();
    if b.len() < 10 || !b[..4].iter().all(u8::is_ascii_digit) || b[4] != b'-' {
        return None;
    }
    DateTime::parse_from_rfc3339(s).ok()
}

pub(crate) fn cmp_numbers(a: &serde_json::Number, b: &serde_json::Number) -> Option<Ordering> {
    if let (Some(x), Some(y)) = (a.as_i64(), b.as_i64()) {
        return Some(x.cmp(&y));
    }
    if let (Some(x), Some(y)) = (a.as_u64(), b.as_u64()) {
        return Some(x.cmp(&y));
    }
    a.as_f64()?.partial_cmp(&b.as_f64()?)
}

/// Whether two strings are the same value of an attribute defined by `def`.
pub(crate) fn strings_equal(a: &str, b: &str, def: Option<&AttributeDef>) -> bool {
    if a == b {
        return true;
    }
    if def.is_some_and(|d| d.kind == AttrType::DateTime) {
        if let (Some(x), Some(y)) = (parse_datetime(a), parse_datetime(b)) {
            return x == y;
        }
    }
    !def.is_some_and(|d| d.case_exact) && fold(a) == fold(b)
}

/// Whether two values of an attribute defined by `def` are the same value:
/// strings under the attribute's `caseExact`, numbers numerically, complex
/// values sub-attribute by sub-attribute (null ones ignored), multi-valued
/// ones regardless of order.
pub(crate) fn values_equal(a: &Value, b: &Value, def: Option<&AttributeDef>) -> bool {
    match (a, b) {
        (Value::String(x), Value::String(y)) => strings_equal(x, y, def),
        (Value::Number(x), Value::Number(y)) => cmp_numbers(x, y) == Some(Ordering::Equal),
        (Value::Object(x), Value::Object(y)) => {
            let assigned =
                |o: &'_ Map<String, Value>| o.iter().filter(|(_, v)| is_assigned(Some(v))).count();
            assigned(x) == assigned(y)
                && x.iter()
                    .filter(|(_, v)| is_assigned(Some(v)))
                    .all(|(k, v)| {
                        let sub = def.and_then(|d| d.sub_attribute(k));
                        get_ci(y, k).is_some_and(|w| values_equal(v, w, sub))
                    })
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len()
                && x.iter().all(|v| y.iter().any(|w| values_equal(v, w, def)))
                && y.iter().all(|w| x.iter().any(|v| values_equal(v, w, def)))
        }
        _ => a == b,
    }
}

/// [`values_equal`] over possibly absent values, absent meaning unassigned.
pub(crate) fn same_state(a: Option<&Value>, b: Option<&Value>, def: Option<&AttributeDef>) -> bool {
    match (is_assigned(a), is_assigned(b)) {
        (false, false) => true,
        (true, true) => match (a, b) {
            (Some(x), Some(y)) => values_equal(x, y, def),
            _ => false,
        },
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn null_empty_array_and_absence_are_the_same_state() {
        assert!(same_state(None, Some(&Value::Null), None));
        assert!(same_state(Some(&json!([])), None, None));
        assert!(!same_state(Some(&json!("")), None, None));
    }

    #[test]
    fn complex_values_compare_by_assigned_sub_attributes_in_any_key_case() {
        let a = json!({"value": "A@x", "type": "work", "display": null});
        let b = json!({"Value": "a@x", "TYPE": "Work"});
        assert!(values_equal(&a, &b, None));
        assert!(!values_equal(&a, &json!({"value": "a@x"}), None));
    }

    #[test]
    fn case_exact_strings_differ_by_case() {
        let def = AttributeDef::new("id", AttrType::String).with_case_exact();
        assert!(!values_equal(&json!("Ab"), &json!("ab"), Some(&def)));
        assert!(values_equal(&json!("Ab"), &json!("ab"), None));
    }

    #[test]
    fn date_times_compare_as_instants() {
        let def = AttributeDef::new("created", AttrType::DateTime);
        assert!(values_equal(
            &json!("2011-05-13T04:42:34Z"),
            &json!("2011-05-13T06:42:34+02:00"),
            Some(&def)
        ));
    }

    #[test]
    fn multi_valued_equality_ignores_order() {
        assert!(values_equal(&json!(["a", "b"]), &json!(["B", "a"]), None));
        assert!(!values_equal(&json!(["a", "a"]), &json!(["a", "b"]), None));
    }
}
