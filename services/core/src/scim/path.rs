//! Attribute paths (RFC 7644 §3.10) and the PATCH `path` grammar of
//! RFC 7644 §3.5.2:
//!
//! ```text
//! PATH      = attrPath / valuePath [subAttr]
//! attrPath  = [URI ":"] ATTRNAME *1subAttr
//! valuePath = attrPath "[" valFilter "]"
//! ```
//!
//! A schema URN qualifies an attribute: everything up to the last `:` before
//! the attribute name is the URN (`urn:…:enterprise:2.0:User:manager.value`).
//! A URN with no attribute after it names a whole extension object; when the
//! text after the last `:` is not an attribute name (`urn:acme:2.0`) the
//! parser says so by returning the URN as the attribute name with no URN.
//! When it is (`urn:…:enterprise:2.0:User`, where `User` could be an
//! attribute of `urn:…:enterprise:2.0`), only a schema can tell, and the
//! PATCH engine resolves it against the resource's extensions.

use std::fmt;
use std::str::FromStr;

use super::filter::{Filter, FilterError, Parser};
use super::schema::starts_with_ignore_case;

/// An attribute path: optional schema URN, attribute name, optional
/// sub-attribute (`name.givenName`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AttrPath {
    /// The schema URN qualifying the attribute, without the trailing `:`.
    pub urn: Option<String>,
    /// The attribute name; a whole URN when the path names an extension.
    pub name: String,
    pub sub: Option<String>,
}

impl AttrPath {
    /// An unqualified attribute with no sub-attribute.
    pub fn new(name: impl Into<String>) -> Self {
        AttrPath {
            urn: None,
            name: name.into(),
            sub: None,
        }
    }

    /// The same path with sub-attribute `sub`.
    pub fn with_sub(mut self, sub: impl Into<String>) -> Self {
        self.sub = Some(sub.into());
        self
    }

    /// Whether the path names a schema URN rather than an attribute in it.
    pub fn is_schema_urn(&self) -> bool {
        self.urn.is_none() && starts_with_ignore_case(&self.name, "urn:")
    }

    /// Parses the text of an attribute path. Shared with the filter parser,
    /// which hands over the maximal run of path characters.
    pub(super) fn from_token(token: &str, at: usize) -> Result<AttrPath, FilterError> {
        if token.is_empty() {
            return Err(FilterError::new(at, "expected an attribute name"));
        }
        if starts_with_ignore_case(token, "urn:") {
            if token.ends_with(':') {
                return Err(FilterError::new(
                    at + token.len(),
                    "expected an attribute name after the schema URN",
                ));
            }
            // `urn:` has a colon at 3, so the last one is at 3 or later.
            let colon = token.rfind(':').unwrap_or(3);
            let (urn, rest) = (&token[..colon], &token[colon + 1..]);
            if colon > 3 {
                if let Ok((name, sub)) = split_name(rest, at + colon + 1) {
                    return Ok(AttrPath {
                        urn: Some(urn.to_string()),
                        name,
                        sub,
                    });
                }
            }
            if token.contains(['[', ']', '"', ' ']) {
                return Err(FilterError::new(at, "invalid schema URN"));
            }
            return Ok(AttrPath::new(token));
        }
        let (name, sub) = split_name(token, at)?;
        Ok(AttrPath {
            urn: None,
            name,
            sub,
        })
    }
}

/// Splits `name[.sub]`, checking both against ABNF `ATTRNAME`.
fn split_name(text: &str, at: usize) -> Result<(String, Option<String>), FilterError> {
    let mut parts = text.splitn(3, '.');
    let name = parts.next().unwrap_or_default();
    check_attr_name(name, at)?;
    let sub = match parts.next() {
        None => None,
        Some(sub) => {
            check_attr_name(sub, at + name.len() + 1)?;
            Some(sub.to_string())
        }
    };
    if parts.next().is_some() {
        return Err(FilterError::new(
            at,
            format!("`{text}` has more than one sub-attribute; SCIM attributes nest one level"),
        ));
    }
    Ok((name.to_string(), sub))
}

/// ABNF `ATTRNAME = ALPHA *(nameChar)`, `nameChar = "-" / "_" / DIGIT / ALPHA`,
/// plus the leading `$` of RFC 7643's `$ref`.
pub(super) fn check_attr_name(name: &str, at: usize) -> Result<(), FilterError> {
    let body = name.strip_prefix('$').unwrap_or(name);
    let mut chars = body.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else if name.is_empty() {
        Err(FilterError::new(at, "expected an attribute name"))
    } else {
        Err(FilterError::new(
            at,
            format!(
                "`{name}` is not an attribute name (a letter, then letters, digits, `-` or `_`)"
            ),
        ))
    }
}

impl fmt::Display for AttrPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(urn) = &self.urn {
            write!(f, "{urn}:")?;
        }
        f.write_str(&self.name)?;
        if let Some(sub) = &self.sub {
            write!(f, ".{sub}")?;
        }
        Ok(())
    }
}

impl FromStr for AttrPath {
    type Err = FilterError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut p = Parser::new(text);
        let path = p.attr_path()?;
        p.expect_end("end of attribute path")?;
        Ok(path)
    }
}

/// Why a PATCH `path` did not parse; the two map to the RFC 7644 §3.12
/// `scimType`s `invalidPath` and `invalidFilter`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("invalid path: {0}")]
    Path(FilterError),
    #[error("invalid filter in path: {0}")]
    Filter(FilterError),
}

/// A parsed PATCH `path`: an attribute path, optionally a value filter on it
/// and a sub-attribute of the matching values
/// (`emails[type eq "work"].value`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatchPath {
    pub attr: AttrPath,
    /// The `[...]` value filter; `attr` then has no sub-attribute.
    pub filter: Option<Filter>,
    /// The sub-attribute after the filter.
    pub sub_attr: Option<String>,
}

impl PatchPath {
    pub fn parse(text: &str) -> Result<PatchPath, PathError> {
        let mut p = Parser::new(text);
        p.skip_ws();
        let attr = p.attr_path().map_err(PathError::Path)?;
        let mut filter = None;
        let mut sub_attr = None;
        if p.peek() == Some(b'[') {
            if attr.sub.is_some() {
                return Err(PathError::Path(FilterError::new(
                    p.pos(),
                    "a value filter must follow a multi-valued attribute, not a sub-attribute",
                )));
            }
            filter = Some(Filter::from_expr(
                p.value_filter().map_err(PathError::Filter)?,
            ));
            if p.peek() == Some(b'.') {
                p.bump();
                let at = p.pos();
                let name = p.take_name_chars();
                check_attr_name(name, at).map_err(PathError::Path)?;
                sub_attr = Some(name.to_string());
            }
        }
        p.skip_ws();
        p.expect_end("end of path").map_err(PathError::Path)?;
        Ok(PatchPath {
            attr,
            filter,
            sub_attr,
        })
    }
}

impl fmt::Display for PatchPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.attr)?;
        if let Some(filter) = &self.filter {
            write!(f, "[{filter}]")?;
        }
        if let Some(sub) = &self.sub_attr {
            write!(f, ".{sub}")?;
        }
        Ok(())
    }
}

impl FromStr for PatchPath {
    type Err = PathError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        PatchPath::parse(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(text: &str) -> PatchPath {
        PatchPath::parse(text).unwrap_or_else(|e| panic!("`{text}` parses: {e}"))
    }

    #[test]
    fn rfc7644_3_5_2_example_paths_parse() {
        // Figure 8 of RFC 7644.
        let p = path("members");
        assert_eq!(p.attr, AttrPath::new("members"));
        let p = path("name.familyName");
        assert_eq!(p.attr, AttrPath::new("name").with_sub("familyName"));
        let p = path(r#"addresses[type eq "work"]"#);
        assert_eq!(p.attr.name, "addresses");
        assert!(p.filter.is_some() && p.sub_attr.is_none());
        let p = path(r#"members[value eq "2819c223-7f76-453a-919d-413861904646"]"#);
        assert!(p.filter.is_some());
        let p = path(r#"members[value eq "2819c223-7f76-453a-919d-413861904646"].displayName"#);
        assert_eq!(p.sub_attr.as_deref(), Some("displayName"));
    }

    #[test]
    fn urn_qualified_paths_split_at_the_last_colon() {
        let p = path("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value");
        assert_eq!(
            p.attr.urn.as_deref(),
            Some("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User")
        );
        assert_eq!(p.attr.name, "manager");
        assert_eq!(p.attr.sub.as_deref(), Some("value"));
    }

    #[test]
    fn a_bare_extension_urn_is_kept_whole_when_it_ends_in_a_version() {
        let p = path("urn:acme:scim:ext:2.0");
        assert!(p.attr.is_schema_urn());
        assert_eq!(p.attr.name, "urn:acme:scim:ext:2.0");
        // Ambiguous without a schema: split, and the engine decides.
        let p = path("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User");
        assert_eq!(
            p.attr.urn.as_deref(),
            Some("urn:ietf:params:scim:schemas:extension:enterprise:2.0")
        );
        assert_eq!(p.attr.name, "User");
    }

    #[test]
    fn filtered_path_on_an_extension_attribute() {
        let p = path(r#"urn:acme:ext:1.0:User:badges[type eq "door"].value"#);
        assert_eq!(p.attr.urn.as_deref(), Some("urn:acme:ext:1.0:User"));
        assert_eq!(p.attr.name, "badges");
        assert_eq!(p.sub_attr.as_deref(), Some("value"));
    }

    #[test]
    fn paths_display_as_they_parse() {
        for text in [
            "members",
            "name.familyName",
            r#"emails[type eq "work" and value co "@example.com"].value"#,
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value",
            "urn:acme:scim:ext:2.0",
            "$ref",
        ] {
            let p = path(text);
            assert_eq!(p.to_string(), text);
            assert_eq!(path(&p.to_string()), p);
        }
    }

    #[test]
    fn malformed_paths_are_invalid_path_errors() {
        for text in [
            "",
            "name.",
            ".name",
            "name.givenName.x",
            "1abc",
            "emails[",
            "emails]",
            "name.givenName[value eq 1]",
            r#"emails[type eq "work"]."#,
            r#"emails[type eq "work"]x"#,
            "urn:",
            "urn:acme:",
            "emails value",
        ] {
            match PatchPath::parse(text) {
                Err(PathError::Path(e)) => assert!(!e.message.is_empty(), "{text}"),
                Err(PathError::Filter(e)) if text == "emails[" => {
                    assert!(!e.message.is_empty())
                }
                other => panic!("`{text}`: expected an invalid path, got {other:?}"),
            }
        }
    }

    #[test]
    fn malformed_value_filters_are_invalid_filter_errors() {
        for text in [
            "emails[type]",
            r#"emails[type eq "work""#,
            r#"emails[type xx "work"]"#,
            r#"emails[type eq work]"#,
        ] {
            assert!(
                matches!(PatchPath::parse(text), Err(PathError::Filter(_))),
                "{text}"
            );
        }
    }

    #[test]
    fn error_positions_point_into_the_path() {
        let Err(PathError::Filter(e)) = PatchPath::parse(r#"emails[type eq "work" an value pr]"#)
        else {
            panic!("expected a filter error");
        };
        assert_eq!(e.position, 22);
    }

    #[test]
    fn attr_path_from_str_rejects_filters() {
        assert!("emails[type eq 1]".parse::<AttrPath>().is_err());
        assert_eq!(
            "name.givenName".parse::<AttrPath>().expect("parses"),
            AttrPath::new("name").with_sub("givenName")
        );
    }
}
