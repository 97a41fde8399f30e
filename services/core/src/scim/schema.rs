//! Attribute definitions (RFC 7643 §2, §7) and the built-in resource schemas:
//! User (§4.1), Group (§4.2), the Enterprise User extension (§4.3) and the
//! common attributes every resource has (§3.1).
//!
//! Characteristics (`caseExact`, `mutability`, `multiValued`, `required`) are
//! taken from the JSON representation in RFC 7643 §8.7.1, which is what
//! service providers publish on `/Schemas`. Where §8.7.1 and the prose
//! disagree, §8.7.1 wins and the definition says so; the two that matter:
//!
//! - Group `displayName` is `required: false` in §8.7.1 although §4.2 calls it
//!   REQUIRED: removing it is therefore not a `mutability` error here.
//! - The Enterprise User's `manager.value` is `required: false` in §8.7.1,
//!   whose description string nevertheless says "REQUIRED." (§4.3's prose
//!   says RECOMMENDED): removing it is not a `mutability` error either.
//! - `addresses` has no `primary` sub-attribute in §8.7.1, but §4.1.2 and the
//!   RFC 7644 §3.5.2.3 replace example give it one, so it is defined.
//!
//! Attributes a schema does not define are not rejected: deployments add
//! their own extensions, and an audit trail that refused them would lose the
//! change. They are handled permissively (see [`ResourceSchema::for_type`]).

use std::sync::LazyLock;

use super::path::AttrPath;

/// The core schema of a User resource.
pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
/// The core schema of a Group resource.
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
/// The Enterprise User extension (RFC 7643 §4.3).
pub const ENTERPRISE_USER_SCHEMA: &str =
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
/// The URN prefix shared by the RFC's core schemas.
pub(crate) const CORE_SCHEMA_PREFIX: &str = "urn:ietf:params:scim:schemas:core:";

/// An attribute's data type (RFC 7643 §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttrType {
    String,
    Boolean,
    Decimal,
    Integer,
    DateTime,
    Binary,
    Reference,
    Complex,
}

/// When an attribute may be changed (RFC 7643 §2.2, `mutability`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutability {
    /// Set by the service provider only.
    ReadOnly,
    ReadWrite,
    /// May be given a value once, while it has none.
    Immutable,
    /// May be set but is never returned (`password`).
    WriteOnly,
}

/// One attribute or sub-attribute definition (RFC 7643 §7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttributeDef {
    pub name: String,
    pub kind: AttrType,
    pub multi_valued: bool,
    /// Whether string values compare case-sensitively (filters, duplicates).
    pub case_exact: bool,
    pub mutability: Mutability,
    /// Whether removing the attribute is a `mutability` error (RFC 7644 §3.5.2.2).
    pub required: bool,
    /// Sub-attributes of a complex attribute; empty otherwise.
    pub sub_attributes: Vec<AttributeDef>,
}

impl AttributeDef {
    /// A singular, optional, read-write, case-insensitive attribute: the
    /// RFC 7643 §2.2 defaults.
    pub fn new(name: impl Into<String>, kind: AttrType) -> Self {
        AttributeDef {
            name: name.into(),
            kind,
            multi_valued: false,
            case_exact: false,
            mutability: Mutability::ReadWrite,
            required: false,
            sub_attributes: Vec::new(),
        }
    }

    /// A complex attribute with the given sub-attributes.
    pub fn complex(name: impl Into<String>, subs: Vec<AttributeDef>) -> Self {
        AttributeDef {
            sub_attributes: subs,
            ..AttributeDef::new(name, AttrType::Complex)
        }
    }

    pub fn with_multi_valued(mut self) -> Self {
        self.multi_valued = true;
        self
    }

    pub fn with_case_exact(mut self) -> Self {
        self.case_exact = true;
        self
    }

    pub fn with_required(mut self) -> Self {
        self.required = true;
        self
    }

    pub fn with_mutability(mut self, mutability: Mutability) -> Self {
        self.mutability = mutability;
        self
    }

    /// The sub-attribute `name`, matched case-insensitively (RFC 7643 §2.1).
    pub fn sub_attribute(&self, name: &str) -> Option<&AttributeDef> {
        self.sub_attributes
            .iter()
            .find(|a| a.name.eq_ignore_ascii_case(name))
    }

    pub fn is_complex(&self) -> bool {
        self.kind == AttrType::Complex
    }
}

/// Finds the definition of an attribute path, for case rules and types.
///
/// `None` means "not defined": callers then treat the attribute as a singular,
/// case-insensitive string (multi-valued if its value is a JSON array).
pub trait AttributeLookup {
    fn attribute(&self, path: &AttrPath) -> Option<&AttributeDef>;
}

/// A lookup that defines nothing: every attribute compares as a
/// case-insensitive string. Used for filters over JSON that has no SCIM
/// schema, such as views of audit events.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoSchema;

impl AttributeLookup for NoSchema {
    fn attribute(&self, _path: &AttrPath) -> Option<&AttributeDef> {
        None
    }
}

/// The attributes of one resource type: its core schema, the common
/// attributes, and its schema extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceSchema {
    resource_type: String,
    core_urn: Option<String>,
    attributes: Vec<AttributeDef>,
    /// Each extension as a complex attribute named by its URN, which is how it
    /// appears in a resource (RFC 7643 §3.3).
    extensions: Vec<AttributeDef>,
}

impl ResourceSchema {
    /// A schema from parts. `attributes` should include the common attributes
    /// ([`common_attributes`]) if the resource has them.
    pub fn new(
        resource_type: impl Into<String>,
        core_urn: Option<String>,
        attributes: Vec<AttributeDef>,
        extensions: Vec<(String, Vec<AttributeDef>)>,
    ) -> Self {
        ResourceSchema {
            resource_type: resource_type.into(),
            core_urn,
            attributes,
            extensions: extensions
                .into_iter()
                .map(|(urn, attrs)| AttributeDef::complex(urn, attrs))
                .collect(),
        }
    }

    /// The built-in schema for a resource type name, matched
    /// case-insensitively: `User` (with the Enterprise User extension),
    /// `Group`, or, for anything else, a permissive schema that defines only
    /// the common attributes. Undefined attributes are singular,
    /// case-insensitive and read-write; one whose current or new value is a
    /// JSON array is treated as multi-valued.
    pub fn for_type(resource_type: &str) -> &'static ResourceSchema {
        if resource_type.eq_ignore_ascii_case("User") {
            &USER
        } else if resource_type.eq_ignore_ascii_case("Group") {
            &GROUP
        } else {
            &PERMISSIVE
        }
    }

    pub fn resource_type(&self) -> &str {
        &self.resource_type
    }

    /// The core schema URN, if the type has a known one.
    pub fn core_urn(&self) -> Option<&str> {
        self.core_urn.as_deref()
    }

    /// Top-level attributes of the core schema, common attributes included.
    pub fn attributes(&self) -> &[AttributeDef] {
        &self.attributes
    }

    /// The schema extensions, each as a complex attribute named by its URN.
    pub fn extensions(&self) -> &[AttributeDef] {
        &self.extensions
    }

    /// The top-level core attribute `name` (case-insensitive).
    pub fn core_attribute(&self, name: &str) -> Option<&AttributeDef> {
        self.attributes
            .iter()
            .find(|a| a.name.eq_ignore_ascii_case(name))
    }

    /// The extension whose URN is `urn` (case-insensitive).
    pub fn extension(&self, urn: &str) -> Option<&AttributeDef> {
        self.extensions
            .iter()
            .find(|a| a.name.eq_ignore_ascii_case(urn))
    }

    /// Whether `urn` names this type's core schema.
    pub fn is_core_urn(&self, urn: &str) -> bool {
        match &self.core_urn {
            Some(core) => core.eq_ignore_ascii_case(urn),
            // A type we do not know still has its core attributes at the top
            // level; the RFC's core schemas share one prefix.
            None => starts_with_ignore_case(urn, CORE_SCHEMA_PREFIX),
        }
    }
}

impl AttributeLookup for ResourceSchema {
    fn attribute(&self, path: &AttrPath) -> Option<&AttributeDef> {
        let top = match &path.urn {
            None if starts_with_ignore_case(&path.name, "urn:") => self.extension(&path.name)?,
            None => self.core_attribute(&path.name)?,
            Some(urn) if self.is_core_urn(urn) => self.core_attribute(&path.name)?,
            Some(urn) => match self.extension(urn) {
                Some(ext) => ext.sub_attribute(&path.name)?,
                // `urn:…:User` split at its last colon: the whole extension.
                None if path.sub.is_none() => self.extension(&format!("{urn}:{}", path.name))?,
                None => return None,
            },
        };
        match &path.sub {
            None => Some(top),
            Some(sub) => top.sub_attribute(sub),
        }
    }
}

impl<T: AttributeLookup + ?Sized> AttributeLookup for &T {
    fn attribute(&self, path: &AttrPath) -> Option<&AttributeDef> {
        (**self).attribute(path)
    }
}

pub(crate) fn starts_with_ignore_case(s: &str, prefix: &str) -> bool {
    s.len() >= prefix.len() && s.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
}

/// The RFC 7643 §3 `schemas` attribute and the §3.1 common attributes.
pub fn common_attributes() -> Vec<AttributeDef> {
    use AttrType::*;
    use Mutability::*;
    vec![
        // §3: REQUIRED; the URIs are compared case-insensitively here because
        // clients disagree on the case of the `urn:` prefix.
        AttributeDef::new("schemas", Reference)
            .with_multi_valued()
            .with_required(),
        // §3.1: "id" is REQUIRED, case-exact and issued by the service provider.
        AttributeDef::new("id", String)
            .with_case_exact()
            .with_mutability(ReadOnly)
            .with_required(),
        // §3.1: "externalId" is case-exact and set by the provisioning client.
        AttributeDef::new("externalId", String).with_case_exact(),
        AttributeDef::complex(
            "meta",
            vec![
                AttributeDef::new("resourceType", String)
                    .with_case_exact()
                    .with_mutability(ReadOnly),
                AttributeDef::new("created", DateTime).with_mutability(ReadOnly),
                AttributeDef::new("lastModified", DateTime).with_mutability(ReadOnly),
                AttributeDef::new("location", Reference)
                    .with_case_exact()
                    .with_mutability(ReadOnly),
                AttributeDef::new("version", String)
                    .with_case_exact()
                    .with_mutability(ReadOnly),
            ],
        )
        .with_mutability(ReadOnly),
    ]
}

/// A multi-valued complex attribute with the RFC 7643 §2.4 default
/// sub-attributes `value`, `display`, `type` and `primary`.
fn multi_complex(name: &str, value_kind: AttrType) -> AttributeDef {
    AttributeDef::complex(
        name,
        vec![
            AttributeDef::new("value", value_kind),
            AttributeDef::new("display", AttrType::String),
            AttributeDef::new("type", AttrType::String),
            AttributeDef::new("primary", AttrType::Boolean),
        ],
    )
    .with_multi_valued()
}

fn user_schema() -> ResourceSchema {
    use AttrType::*;
    use Mutability::*;
    let mut attributes = common_attributes();
    attributes.extend([
        AttributeDef::new("userName", String).with_required(),
        AttributeDef::complex(
            "name",
            [
                "formatted",
                "familyName",
                "givenName",
                "middleName",
                "honorificPrefix",
                "honorificSuffix",
            ]
            .into_iter()
            .map(|n| AttributeDef::new(n, String))
            .collect(),
        ),
        AttributeDef::new("displayName", String),
        AttributeDef::new("nickName", String),
        AttributeDef::new("profileUrl", Reference),
        AttributeDef::new("title", String),
        AttributeDef::new("userType", String),
        AttributeDef::new("preferredLanguage", String),
        AttributeDef::new("locale", String),
        AttributeDef::new("timezone", String),
        AttributeDef::new("active", Boolean),
        AttributeDef::new("password", String).with_mutability(WriteOnly),
        multi_complex("emails", String),
        multi_complex("phoneNumbers", String),
        multi_complex("ims", String),
        multi_complex("photos", Reference),
        AttributeDef::complex(
            "addresses",
            vec![
                AttributeDef::new("formatted", String),
                AttributeDef::new("streetAddress", String),
                AttributeDef::new("locality", String),
                AttributeDef::new("region", String),
                AttributeDef::new("postalCode", String),
                AttributeDef::new("country", String),
                AttributeDef::new("type", String),
                AttributeDef::new("primary", Boolean),
            ],
        )
        .with_multi_valued(),
        // §4.1.2: group membership is changed through the Group resource.
        AttributeDef::complex(
            "groups",
            vec![
                AttributeDef::new("value", String).with_mutability(ReadOnly),
                AttributeDef::new("$ref", Reference).with_mutability(ReadOnly),
                AttributeDef::new("display", String).with_mutability(ReadOnly),
                AttributeDef::new("type", String).with_mutability(ReadOnly),
            ],
        )
        .with_multi_valued()
        .with_mutability(ReadOnly),
        multi_complex("entitlements", String),
        multi_complex("roles", String),
        multi_complex("x509Certificates", Binary),
    ]);
    let enterprise = vec![
        AttributeDef::new("employeeNumber", String),
        AttributeDef::new("costCenter", String),
        AttributeDef::new("organization", String),
        AttributeDef::new("division", String),
        AttributeDef::new("department", String),
        AttributeDef::complex(
            "manager",
            vec![
                // §8.7.1 has `required: false` (its description says
                // "REQUIRED.", §4.3's prose RECOMMENDED).
                AttributeDef::new("value", String),
                AttributeDef::new("$ref", Reference),
                AttributeDef::new("displayName", String).with_mutability(ReadOnly),
            ],
        ),
    ];
    ResourceSchema::new(
        "User",
        Some(USER_SCHEMA.to_string()),
        attributes,
        vec![(ENTERPRISE_USER_SCHEMA.to_string(), enterprise)],
    )
}

fn group_schema() -> ResourceSchema {
    use AttrType::*;
    use Mutability::*;
    let mut attributes = common_attributes();
    attributes.extend([
        // §8.7.1 has `required: false` (§4.2's prose says REQUIRED).
        AttributeDef::new("displayName", String),
        // §4.2: members may be added and removed, but a member's
        // sub-attributes never change.
        AttributeDef::complex(
            "members",
            vec![
                AttributeDef::new("value", String).with_mutability(Immutable),
                AttributeDef::new("$ref", Reference).with_mutability(Immutable),
                AttributeDef::new("type", String).with_mutability(Immutable),
            ],
        )
        .with_multi_valued(),
    ]);
    ResourceSchema::new(
        "Group",
        Some(GROUP_SCHEMA.to_string()),
        attributes,
        Vec::new(),
    )
}

static USER: LazyLock<ResourceSchema> = LazyLock::new(user_schema);
static GROUP: LazyLock<ResourceSchema> = LazyLock::new(group_schema);
static PERMISSIVE: LazyLock<ResourceSchema> =
    LazyLock::new(|| ResourceSchema::new("*", None, common_attributes(), Vec::new()));

#[cfg(test)]
mod tests {
    use super::*;

    fn def<'a>(schema: &'a ResourceSchema, path: &str) -> &'a AttributeDef {
        let path: AttrPath = path.parse().expect("test path parses");
        schema
            .attribute(&path)
            .unwrap_or_else(|| panic!("{path} is defined"))
    }

    #[test]
    fn user_characteristics_follow_rfc7643_8_7_1() {
        let user = ResourceSchema::for_type("User");
        assert!(!def(user, "userName").case_exact);
        assert!(def(user, "userName").required);
        assert!(def(user, "id").case_exact);
        assert_eq!(def(user, "id").mutability, Mutability::ReadOnly);
        assert!(def(user, "externalId").case_exact);
        assert_eq!(def(user, "meta").mutability, Mutability::ReadOnly);
        assert_eq!(def(user, "meta.lastModified").kind, AttrType::DateTime);
        assert!(def(user, "emails").multi_valued);
        assert!(!def(user, "emails.value").case_exact);
        assert_eq!(def(user, "emails.primary").kind, AttrType::Boolean);
        assert_eq!(def(user, "groups").mutability, Mutability::ReadOnly);
        assert_eq!(def(user, "password").mutability, Mutability::WriteOnly);
        assert_eq!(def(user, "active").kind, AttrType::Boolean);
        assert!(!def(user, "name").multi_valued);
        assert_eq!(def(user, "x509Certificates.value").kind, AttrType::Binary);
    }

    #[test]
    fn group_members_are_immutable_once_set() {
        let group = ResourceSchema::for_type("group");
        assert!(def(group, "members").multi_valued);
        assert_eq!(def(group, "members").mutability, Mutability::ReadWrite);
        assert_eq!(
            def(group, "members.value").mutability,
            Mutability::Immutable
        );
        assert!(!def(group, "displayName").required);
    }

    #[test]
    fn enterprise_extension_is_found_by_urn_and_by_qualified_attribute() {
        let user = ResourceSchema::for_type("User");
        let ext = def(user, ENTERPRISE_USER_SCHEMA);
        assert!(ext.is_complex());
        assert_eq!(
            def(user, &format!("{ENTERPRISE_USER_SCHEMA}:employeeNumber")).name,
            "employeeNumber"
        );
        assert_eq!(
            def(
                user,
                &format!("{ENTERPRISE_USER_SCHEMA}:manager.displayName")
            )
            .mutability,
            Mutability::ReadOnly
        );
        assert_eq!(
            def(user, &format!("{ENTERPRISE_USER_SCHEMA}:manager.value")).mutability,
            Mutability::ReadWrite
        );
        // §8.7.1 schema wins over prose.
        assert!(!def(user, &format!("{ENTERPRISE_USER_SCHEMA}:manager.value")).required);
    }

    #[test]
    fn core_urn_prefix_resolves_to_core_attributes() {
        let user = ResourceSchema::for_type("User");
        assert_eq!(
            def(user, &format!("{USER_SCHEMA}:userName")).name,
            "userName"
        );
        assert_eq!(
            def(
                user,
                "URN:IETF:PARAMS:SCIM:SCHEMAS:CORE:2.0:USER:NAME.GIVENNAME"
            )
            .name,
            "givenName"
        );
    }

    #[test]
    fn lookups_ignore_attribute_name_case() {
        let user = ResourceSchema::for_type("User");
        assert_eq!(def(user, "USERNAME").name, "userName");
        assert_eq!(def(user, "Emails.Value").name, "value");
    }

    #[test]
    fn unknown_types_define_only_the_common_attributes() {
        let other = ResourceSchema::for_type("Device");
        assert_eq!(other.core_urn(), None);
        assert_eq!(def(other, "id").mutability, Mutability::ReadOnly);
        assert!(other
            .attribute(&"serialNumber".parse().expect("parses"))
            .is_none());
        assert!(other.is_core_urn("urn:ietf:params:scim:schemas:core:2.0:Device"));
    }

    #[test]
    fn unknown_attributes_of_known_types_are_undefined() {
        let user = ResourceSchema::for_type("User");
        assert!(user
            .attribute(&"costCentre".parse().expect("parses"))
            .is_none());
        assert!(user
            .attribute(&"urn:acme:ext:User:badge".parse().expect("parses"))
            .is_none());
        assert!(user
            .attribute(&"name.nickname".parse().expect("parses"))
            .is_none());
    }
}
