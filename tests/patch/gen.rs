//! The seeded case generator: realistic User and Group resources and PATCH
//! requests against them, each case tagged with what it exercises so that
//! `deviations.json` can name the behaviour an oracle departs on.
//!
//! Deterministic: the same seed and count give the same cases (the `rand` in
//! Cargo.lock; `StdRng` is only promised stable within one `rand` release).
//!
//! Tags (a case has several; `deviations.json` matches on them):
//! - `op:add|replace|remove`, `op-case` (op spelled `Add`, `REPLACE`...);
//! - target: `path:simple`, `path:sub` (complex sub-attribute), `path:complex`
//!   (a whole complex attribute), `path:mv` (a whole multi-valued attribute),
//!   `path:filter` (a valuePath), `path:filter-sub` (valuePath + sub-attribute),
//!   `path:ext` (enterprise-extension URN path), `pathless`, `core-urn-path`;
//! - filter: `filter:eq|ne|co|sw|ew|pr|gt|and|or|not|primary`,
//!   `filter-no-match`, `filter-matches-all`, `filter-matches-many`,
//!   `filter-attr-case`, `filter-op-case`, `filter-value-case`,
//!   `filter-ne-absent` (an `ne` comparison on a sub-attribute some value
//!   lacks);
//! - state: `target-absent`, `parent-absent`, `ext-absent`, `attr-case`;
//! - multi-valued: `mv-add`, `mv-add-duplicate`, `mv-add-object` (an add whose
//!   value is one object, not an array), `mv-replace-all`, `mv-remove-all`,
//!   `mv-sub-no-filter`, `remove-last-multi-value`, `primary-set`,
//!   `replace-filter-record`;
//! - complex: `complex-merge`; extension: `ext-remove-all`, `ext-fq-keys`
//!   (`urn:…:User:attr` keys in a path-less value), `ext-urn-as-attribute`
//!   (the extension URN itself as the path or as a key of the value);
//! - `filter-value-not-email`: a filter compares emails.value with a string
//!   that is no email address (a co/sw/ew fragment, or a value that matches
//!   nothing);
//! - Group: `group`, `members-add`, `members-add-duplicate`, `members-remove`,
//!   `group-displayname-remove`;
//! - errors the RFC asks for: `readonly`, `immutable`, `remove-required`,
//!   `remove-no-path`, `bad-op`, `missing-value`, `bad-path-syntax`,
//!   `bad-filter`, `unknown-attribute`, `type-mismatch`;
//! - `multi-op`, `atomic` (a valid operation followed by a failing one).

use std::collections::BTreeSet;

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use serde_json::{json, Map, Value};

pub const CORE_USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const CORE_GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
pub const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// One PATCH case: a resource, a request, and what it exercises.
#[derive(Clone, Debug)]
pub struct Case {
    pub id: String,
    pub tags: BTreeSet<String>,
    pub resource_type: String,
    pub resource: Value,
    pub request: Value,
}

impl Case {
    /// The line the oracles read.
    pub fn oracle_line(&self) -> String {
        json!({
            "id": self.id,
            "resource_type": self.resource_type,
            "resource": self.resource,
            "request": self.request,
        })
        .to_string()
    }
}

pub fn patch_request(ops: Vec<Value>) -> Value {
    json!({ "schemas": [PATCH_OP], "Operations": ops })
}

/// `count` cases from `seed`.
pub fn generate(seed: u64, count: usize) -> Vec<Case> {
    let mut g = Gen {
        rng: StdRng::seed_from_u64(seed),
        n: 0,
    };
    (0..count)
        .map(|i| {
            let mut case = if g.rng.random_bool(0.22) {
                g.group_case()
            } else {
                g.user_case()
            };
            case.id = format!("g{i:05}");
            case
        })
        .collect()
}

const GIVEN: &[&str] = &[
    "Barbara",
    "Ana",
    "Kenji",
    "Oluwaseun",
    "Marta",
    "Ingrid",
    "Diego",
    "Priya",
    "Li",
    "Tomasz",
];
const FAMILY: &[&str] = &[
    "Jensen", "Okafor", "Tanaka", "Kowalski", "Silva", "Nakamura", "Haddad", "Berg", "Moreau",
    "Rossi",
];
const DOMAINS: &[&str] = &["example.com", "example.org", "corp.example.net"];
const EMAIL_TYPES: &[&str] = &["work", "home", "other"];
const PHONE_TYPES: &[&str] = &["work", "home", "mobile"];
const ADDRESS_TYPES: &[&str] = &["work", "home"];
const ROLE_VALUES: &[&str] = &["admin", "auditor", "developer", "billing", "support"];
const SIMPLE_STRING_ATTRS: &[&str] = &[
    "displayName",
    "nickName",
    "title",
    "userType",
    "preferredLanguage",
    "locale",
    "timezone",
    "externalId",
];
const NAME_SUBS: &[&str] = &[
    "givenName",
    "familyName",
    "formatted",
    "middleName",
    "honorificPrefix",
    "honorificSuffix",
];
const ENTERPRISE_SIMPLE: &[&str] = &[
    "employeeNumber",
    "costCenter",
    "organization",
    "division",
    "department",
];

/// How a multi-valued attribute's entries look, for building values and filters.
struct MvSpec {
    attr: &'static str,
    /// String sub-attributes a filter may compare (besides `primary`).
    string_subs: &'static [&'static str],
    /// Sub-attributes a `.sub` path may target with a new string value.
    writable_subs: &'static [&'static str],
}

const MV_USER: &[MvSpec] = &[
    MvSpec {
        attr: "emails",
        string_subs: &["value", "type"],
        writable_subs: &["display", "type"],
    },
    MvSpec {
        attr: "phoneNumbers",
        string_subs: &["value", "type"],
        writable_subs: &["value", "display", "type"],
    },
    MvSpec {
        attr: "addresses",
        string_subs: &["type", "locality", "country"],
        writable_subs: &["locality", "streetAddress", "postalCode", "region"],
    },
    MvSpec {
        attr: "roles",
        string_subs: &["value", "type"],
        writable_subs: &["display", "type"],
    },
];

struct Gen {
    rng: StdRng,
    n: u64,
}

/// A filter built as a tree so that the generator knows which entries it
/// selects (compared exactly; a case whose filter changes letter case is
/// tagged and not counted).
#[derive(Clone, Debug)]
enum Filter {
    Cmp {
        attr: String,
        op: &'static str,
        value: Value,
    },
    Pr(String),
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
}

impl Filter {
    fn render(
        &self,
        attr_case: &dyn Fn(&str) -> String,
        op_case: &dyn Fn(&str) -> String,
    ) -> String {
        match self {
            Filter::Cmp { attr, op, value } => {
                format!("{} {} {}", attr_case(attr), op_case(op), value)
            }
            Filter::Pr(attr) => format!("{} {}", attr_case(attr), op_case("pr")),
            Filter::And(a, b) => format!(
                "{} {} {}",
                a.render(attr_case, op_case),
                op_case("and"),
                b.render(attr_case, op_case)
            ),
            Filter::Or(a, b) => format!(
                "{} {} {}",
                a.render(attr_case, op_case),
                op_case("or"),
                b.render(attr_case, op_case)
            ),
            Filter::Not(a) => format!("{} ({})", op_case("not"), a.render(attr_case, op_case)),
        }
    }

    /// Whether an entry matches, comparing strings exactly (the generator
    /// only uses this for values whose case it did not change).
    fn matches(&self, entry: &Value) -> bool {
        match self {
            Filter::Cmp { attr, op, value } => {
                let Some(have) = entry.get(attr.as_str()) else {
                    return *op == "ne";
                };
                match (have, value) {
                    (Value::String(h), Value::String(v)) => match *op {
                        "eq" => h == v,
                        "ne" => h != v,
                        "co" => h.contains(v.as_str()),
                        "sw" => h.starts_with(v.as_str()),
                        "ew" => h.ends_with(v.as_str()),
                        "gt" => h.as_str() > v.as_str(),
                        _ => false,
                    },
                    (Value::Bool(h), Value::Bool(v)) => match *op {
                        "eq" => h == v,
                        "ne" => h != v,
                        _ => false,
                    },
                    _ => false,
                }
            }
            Filter::Pr(attr) => entry.get(attr.as_str()).is_some_and(|v| !v.is_null()),
            Filter::And(a, b) => a.matches(entry) && b.matches(entry),
            Filter::Or(a, b) => a.matches(entry) || b.matches(entry),
            Filter::Not(a) => !a.matches(entry),
        }
    }

    fn kind_tags(&self, tags: &mut BTreeSet<String>) {
        match self {
            Filter::Cmp { attr, op, .. } => {
                tags.insert(format!("filter:{op}"));
                if attr == "primary" {
                    tags.insert("filter:primary".into());
                }
            }
            Filter::Pr(_) => {
                tags.insert("filter:pr".into());
            }
            Filter::And(a, b) => {
                tags.insert("filter:and".into());
                a.kind_tags(tags);
                b.kind_tags(tags);
            }
            Filter::Or(a, b) => {
                tags.insert("filter:or".into());
                a.kind_tags(tags);
                b.kind_tags(tags);
            }
            Filter::Not(a) => {
                tags.insert("filter:not".into());
                a.kind_tags(tags);
            }
        }
    }
}

fn upper_first(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

impl Gen {
    fn pick<'a>(&mut self, xs: &'a [&'a str]) -> &'a str {
        xs.choose(&mut self.rng).copied().unwrap_or("")
    }

    fn chance(&mut self, p: f64) -> bool {
        self.rng.random_bool(p)
    }

    fn next_n(&mut self) -> u64 {
        self.n += 1;
        self.n
    }

    fn hex_id(&mut self) -> String {
        format!(
            "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
            self.rng.random::<u32>(),
            self.rng.random::<u16>(),
            self.rng.random_range(0..0x1000u32),
            self.rng.random_range(0..0x1000u32),
            self.rng.random_range(0..(1u64 << 48))
        )
    }

    fn word(&mut self) -> String {
        let w = self.pick(&[
            "alpha", "bravo", "delta", "echo", "kilo", "lima", "nova", "oscar", "sierra", "tango",
        ]);
        format!("{w}{}", self.next_n())
    }

    fn email(&mut self) -> String {
        let local = self.word();
        let domain = self.pick(DOMAINS);
        format!("{local}@{domain}")
    }

    fn meta(&mut self, resource_type: &str, id: &str) -> Value {
        let day = self.rng.random_range(1..28);
        let plural = if resource_type == "User" {
            "Users"
        } else {
            "Groups"
        };
        json!({
            "resourceType": resource_type,
            "created": format!("2024-03-{day:02}T08:15:00Z"),
            "lastModified": format!("2025-01-{day:02}T17:45:30Z"),
            "version": format!("W/\"{:x}\"", self.rng.random::<u32>()),
            "location": format!("https://scim.example.com/v2/{plural}/{id}"),
        })
    }

    /// Attribute-name letter case as a client might send it (RFC 7643 §2.1:
    /// attribute names are case insensitive).
    fn vary_case(&mut self, name: &str) -> String {
        match self.rng.random_range(0..3) {
            0 => name.to_lowercase(),
            1 => name.to_uppercase(),
            _ => upper_first(name),
        }
    }

    /// A name for a path, case-varied with probability 0.1 (tagging it).
    fn name_in_path(&mut self, name: &str, tags: &mut BTreeSet<String>) -> String {
        if self.chance(0.1) {
            let v = self.vary_case(name);
            if v != name {
                tags.insert("attr-case".into());
            }
            v
        } else {
            name.to_string()
        }
    }

    fn op_name(&mut self, op: &str, tags: &mut BTreeSet<String>) -> String {
        tags.insert(format!("op:{op}"));
        if self.chance(0.05) {
            tags.insert("op-case".into());
            if self.chance(0.5) {
                upper_first(op)
            } else {
                op.to_uppercase()
            }
        } else {
            op.to_string()
        }
    }

    // ---------------------------------------------------------------- resources

    fn mv_entry(&mut self, attr: &str, ty: &str) -> Value {
        match attr {
            "emails" => json!({ "value": self.email(), "type": ty }),
            "phoneNumbers" => {
                json!({ "value": format!("+1 555 01{:02}", self.rng.random_range(0..100)), "type": ty })
            }
            "addresses" => {
                let city = self.pick(&["Hollywood", "Lyon", "Osaka", "Lagos", "Kraków"]);
                let country = self.pick(&["US", "FR", "JP", "NG", "PL"]);
                json!({
                    "type": ty,
                    "streetAddress": format!("{} Main Street", self.rng.random_range(1..999)),
                    "locality": city,
                    "postalCode": format!("{:05}", self.rng.random_range(0..99999)),
                    "country": country,
                })
            }
            _ => {
                let v = self.pick(ROLE_VALUES);
                let mut e = json!({ "value": format!("{v}-{}", self.next_n()) });
                if self.chance(0.5) {
                    e["type"] = json!(ty);
                }
                e
            }
        }
    }

    fn mv_types(attr: &str) -> &'static [&'static str] {
        match attr {
            "emails" => EMAIL_TYPES,
            "phoneNumbers" => PHONE_TYPES,
            "addresses" => ADDRESS_TYPES,
            _ => &["main", "project"],
        }
    }

    fn mv_entries(&mut self, attr: &str, max: usize) -> Vec<Value> {
        let count = self.rng.random_range(0..=max);
        let types = Self::mv_types(attr);
        let mut entries: Vec<Value> = (0..count)
            .map(|_| {
                let ty = self.pick(types);
                self.mv_entry(attr, ty)
            })
            .collect();
        if !entries.is_empty() && attr != "roles" && self.chance(0.7) {
            let p = self.rng.random_range(0..entries.len());
            entries[p]["primary"] = json!(true);
            for (i, e) in entries.iter_mut().enumerate() {
                if i != p && self.rng.random_bool(0.3) {
                    e["primary"] = json!(false);
                }
            }
        }
        if attr == "emails" && !entries.is_empty() && self.chance(0.2) {
            entries[0]["display"] = json!("Mail");
        }
        entries
    }

    fn user(&mut self) -> Value {
        let id = self.hex_id();
        let given = self.pick(GIVEN);
        let family = self.pick(FAMILY);
        let mut u = Map::new();
        let ext = self.chance(0.5);
        let schemas = if ext {
            json!([CORE_USER, ENTERPRISE])
        } else {
            json!([CORE_USER])
        };
        u.insert("schemas".into(), schemas);
        u.insert("id".into(), json!(id));
        if self.chance(0.5) {
            u.insert("externalId".into(), json!(format!("ext-{}", self.next_n())));
        }
        u.insert(
            "userName".into(),
            json!(format!(
                "{}.{}{}",
                given.to_lowercase(),
                family.to_lowercase(),
                self.next_n()
            )),
        );
        if self.chance(0.85) {
            let mut name = json!({ "givenName": given, "familyName": family });
            if self.chance(0.4) {
                name["formatted"] = json!(format!("{given} {family}"));
            }
            if self.chance(0.2) {
                name["middleName"] = json!("Jane");
            }
            u.insert("name".into(), name);
        }
        if self.chance(0.7) {
            u.insert("displayName".into(), json!(format!("{given} {family}")));
        }
        if self.chance(0.3) {
            u.insert(
                "nickName".into(),
                json!(given.chars().take(3).collect::<String>()),
            );
        }
        if self.chance(0.4) {
            u.insert(
                "title".into(),
                json!(self.pick(&["Engineer", "Manager", "Analyst"])),
            );
        }
        if self.chance(0.3) {
            u.insert("userType".into(), json!("Employee"));
        }
        if self.chance(0.3) {
            u.insert("locale".into(), json!("en-US"));
        }
        if self.chance(0.8) {
            u.insert("active".into(), json!(self.chance(0.8)));
        }
        for spec in MV_USER {
            let max = if spec.attr == "emails" { 3 } else { 2 };
            let entries = self.mv_entries(spec.attr, max);
            if !entries.is_empty() {
                u.insert(spec.attr.into(), Value::Array(entries));
            }
        }
        if self.chance(0.2) {
            u.insert(
                "groups".into(),
                json!([{ "value": self.hex_id(), "display": "Engineering", "type": "direct" }]),
            );
        }
        if ext {
            let mut e = json!({ "employeeNumber": format!("{}", 100000 + self.next_n()) });
            if self.chance(0.6) {
                e["department"] = json!(self.pick(&["R&D", "Sales", "Finance"]));
            }
            if self.chance(0.4) {
                e["costCenter"] = json!(format!("CC-{}", self.rng.random_range(1..99)));
            }
            if self.chance(0.5) {
                e["manager"] = json!({ "value": self.hex_id() });
            }
            u.insert(ENTERPRISE.into(), e);
        }
        u.insert("meta".into(), self.meta("User", &id));
        Value::Object(u)
    }

    fn member(&mut self) -> Value {
        let mut m = json!({ "value": self.hex_id() });
        if self.chance(0.6) {
            m["type"] = json!(if self.chance(0.8) { "User" } else { "Group" });
        }
        if self.chance(0.4) {
            m["display"] = json!(format!("{} {}", self.pick(GIVEN), self.pick(FAMILY)));
        }
        m
    }

    fn group(&mut self) -> Value {
        let id = self.hex_id();
        let mut g = Map::new();
        g.insert("schemas".into(), json!([CORE_GROUP]));
        g.insert("id".into(), json!(id));
        g.insert(
            "displayName".into(),
            json!(self.pick(&["Engineering", "Sales", "Admins", "Auditors", "On-call"])),
        );
        if self.chance(0.3) {
            g.insert("externalId".into(), json!(format!("grp-{}", self.next_n())));
        }
        let count = self.rng.random_range(0..=4);
        if count > 0 {
            let members: Vec<Value> = (0..count).map(|_| self.member()).collect();
            g.insert("members".into(), Value::Array(members));
        }
        g.insert("meta".into(), self.meta("Group", &id));
        Value::Object(g)
    }

    // --------------------------------------------------------------- operations

    fn case(
        &self,
        tags: BTreeSet<String>,
        resource_type: &str,
        resource: Value,
        ops: Vec<Value>,
    ) -> Case {
        Case {
            id: String::new(),
            tags,
            resource_type: resource_type.into(),
            resource,
            request: patch_request(ops),
        }
    }

    fn user_case(&mut self) -> Case {
        let user = self.user();
        let mut tags = BTreeSet::new();
        let roll = self.rng.random_range(0..100);
        let ops = match roll {
            0..=9 => vec![self.simple_op(&user, &mut tags)],
            10..=16 => vec![self.name_sub_op(&user, &mut tags)],
            17..=20 => vec![self.complex_op(&user, &mut tags)],
            21..=30 => vec![self.mv_op(&user, &mut tags)],
            31..=50 => vec![self.filter_op(&user, &mut tags)],
            51..=58 => vec![self.ext_op(&user, &mut tags)],
            59..=64 => vec![self.pathless_op(&user, &mut tags)],
            65..=67 => vec![self.core_urn_op(&user, &mut tags)],
            68..=69 => vec![self.mv_sub_no_filter_op(&user, &mut tags)],
            70..=81 => vec![self.error_op(&user, &mut tags)],
            82..=89 => {
                tags.insert("multi-op".into());
                let k = self.rng.random_range(2..=3);
                (0..k)
                    .map(|_| self.valid_user_op(&user, &mut tags))
                    .collect()
            }
            90..=93 => {
                tags.insert("multi-op".into());
                tags.insert("atomic".into());
                let first = self.valid_user_op(&user, &mut tags);
                let bad = self.error_op(&user, &mut tags);
                vec![first, bad]
            }
            _ => vec![self.primary_op(&user, &mut tags)],
        };
        self.case(tags, "User", user, ops)
    }

    fn valid_user_op(&mut self, user: &Value, tags: &mut BTreeSet<String>) -> Value {
        match self.rng.random_range(0..6) {
            0 => self.simple_op(user, tags),
            1 => self.name_sub_op(user, tags),
            2 => self.mv_op(user, tags),
            3 => self.filter_op(user, tags),
            4 => self.ext_op(user, tags),
            _ => self.pathless_op(user, tags),
        }
    }

    fn simple_value(&mut self, attr: &str) -> Value {
        match attr {
            "active" => json!(self.chance(0.5)),
            "locale" => json!(self.pick(&["fr-FR", "ja-JP", "en-GB"])),
            "preferredLanguage" => json!(self.pick(&["fr", "ja", "en-GB"])),
            "timezone" => json!(self.pick(&["Europe/Paris", "Asia/Tokyo", "America/Los_Angeles"])),
            _ => json!(format!(
                "{} {}",
                upper_first(&self.word()),
                self.pick(FAMILY)
            )),
        }
    }

    fn simple_op(&mut self, user: &Value, tags: &mut BTreeSet<String>) -> Value {
        tags.insert("path:simple".into());
        let mut attrs: Vec<&str> = SIMPLE_STRING_ATTRS.to_vec();
        attrs.push("active");
        attrs.push("userName");
        let attr = self.pick(&attrs).to_string();
        if user.get(&attr).is_none() {
            tags.insert("target-absent".into());
        }
        let path = self.name_in_path(&attr, tags);
        let which = self.pick(&["add", "replace", "remove"]);
        let op = self.op_name(which, tags);
        if which == "remove" {
            if attr == "userName" {
                tags.insert("remove-required".into());
            }
            json!({ "op": op, "path": path })
        } else {
            let mut value = self.simple_value(&attr);
            if attr == "userName" {
                value = json!(format!("renamed{}", self.next_n()));
            }
            json!({ "op": op, "path": path, "value": value })
        }
    }

    fn name_sub_op(&mut self, user: &Value, tags: &mut BTreeSet<String>) -> Value {
        tags.insert("path:sub".into());
        let sub = self.pick(NAME_SUBS);
        match user.get("name") {
            None => {
                tags.insert("parent-absent".into());
            }
            Some(n) if n.get(sub).is_none() => {
                tags.insert("target-absent".into());
            }
            _ => {}
        }
        let path = format!(
            "{}.{}",
            self.name_in_path("name", tags),
            self.name_in_path(sub, tags)
        );
        let which = self.pick(&["add", "replace", "remove"]);
        let op = self.op_name(which, tags);
        if which == "remove" {
            json!({ "op": op, "path": path })
        } else {
            json!({ "op": op, "path": path, "value": self.pick(GIVEN) })
        }
    }

    fn complex_op(&mut self, user: &Value, tags: &mut BTreeSet<String>) -> Value {
        tags.insert("path:complex".into());
        if user.get("name").is_none() {
            tags.insert("target-absent".into());
        }
        let which = self.pick(&["add", "replace", "remove"]);
        let op = self.op_name(which, tags);
        let path = self.name_in_path("name", tags);
        if which == "remove" {
            return json!({ "op": op, "path": path });
        }
        tags.insert("complex-merge".into());
        let mut value = Map::new();
        let n = self.rng.random_range(1..=2);
        for _ in 0..n {
            let sub = self.pick(NAME_SUBS);
            value.insert(sub.into(), json!(self.pick(GIVEN)));
        }
        json!({ "op": op, "path": path, "value": value })
    }

    fn mv_spec(&mut self) -> &'static MvSpec {
        MV_USER.choose(&mut self.rng).unwrap_or(&MV_USER[0])
    }

    fn mv_op(&mut self, user: &Value, tags: &mut BTreeSet<String>) -> Value {
        tags.insert("path:mv".into());
        let spec = self.mv_spec();
        let existing: Vec<Value> = user
            .get(spec.attr)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if existing.is_empty() {
            tags.insert("target-absent".into());
        }
        let path = self.name_in_path(spec.attr, tags);
        let types = Self::mv_types(spec.attr);
        match self.rng.random_range(0..10) {
            0..=4 => {
                let op = self.op_name("add", tags);
                tags.insert("mv-add".into());
                let ty = self.pick(types);
                let mut new = self.mv_entry(spec.attr, ty);
                if spec.attr != "roles" && self.chance(0.3) {
                    new["primary"] = json!(true);
                    if existing
                        .iter()
                        .any(|e| e.get("primary") == Some(&json!(true)))
                    {
                        tags.insert("primary-set".into());
                    }
                }
                let mut values = vec![new];
                if !existing.is_empty() && self.chance(0.3) {
                    tags.insert("mv-add-duplicate".into());
                    let dup = existing
                        .choose(&mut self.rng)
                        .cloned()
                        .unwrap_or(Value::Null);
                    values.push(dup);
                    if values[0].get("primary") == Some(&json!(true))
                        && values[1].get("primary") == Some(&json!(true))
                    {
                        values[0].as_object_mut().map(|o| o.remove("primary"));
                        tags.remove("primary-set");
                    }
                }
                if values.len() == 1 && self.chance(0.2) {
                    tags.insert("mv-add-object".into());
                    json!({ "op": op, "path": path, "value": values[0] })
                } else {
                    json!({ "op": op, "path": path, "value": values })
                }
            }
            5..=7 => {
                let op = self.op_name("replace", tags);
                tags.insert("mv-replace-all".into());
                let n = self.rng.random_range(1..=2);
                let mut values: Vec<Value> = (0..n)
                    .map(|_| {
                        let ty = self.pick(types);
                        self.mv_entry(spec.attr, ty)
                    })
                    .collect();
                if spec.attr != "roles" && self.chance(0.5) {
                    values[0]["primary"] = json!(true);
                }
                json!({ "op": op, "path": path, "value": values })
            }
            _ => {
                let op = self.op_name("remove", tags);
                tags.insert("mv-remove-all".into());
                json!({ "op": op, "path": path })
            }
        }
    }

    /// A filter over the entries of a multi-valued attribute, usually built
    /// from values they hold so that it selects some of them.
    fn filter_for(&mut self, spec: &MvSpec, entries: &[Value]) -> Filter {
        let leaf = |g: &mut Gen| -> Filter {
            let sub = g.pick(spec.string_subs).to_string();
            let sample = entries
                .choose(&mut g.rng)
                .and_then(|e| e.get(&sub))
                .and_then(Value::as_str)
                .map(str::to_string);
            let have = match sample {
                Some(s) if g.rng.random_bool(0.85) => s,
                _ => match sub.as_str() {
                    "type" => g.pick(Self::mv_types(spec.attr)).to_string(),
                    _ => format!("nomatch{}", g.next_n()),
                },
            };
            match g.rng.random_range(0..12) {
                0..=5 => Filter::Cmp {
                    attr: sub,
                    op: "eq",
                    value: json!(have),
                },
                6 => Filter::Cmp {
                    attr: sub,
                    op: "ne",
                    value: json!(have),
                },
                7 => {
                    let cut: String = have.chars().skip(1).take(3).collect();
                    Filter::Cmp {
                        attr: sub,
                        op: "co",
                        value: json!(cut),
                    }
                }
                8 => {
                    let cut: String = have.chars().take(2).collect();
                    Filter::Cmp {
                        attr: sub,
                        op: "sw",
                        value: json!(cut),
                    }
                }
                9 => {
                    let n = have.chars().count();
                    let cut: String = have.chars().skip(n.saturating_sub(4)).collect();
                    Filter::Cmp {
                        attr: sub,
                        op: "ew",
                        value: json!(cut),
                    }
                }
                10 => Filter::Pr(sub),
                _ => Filter::Cmp {
                    attr: sub,
                    op: "gt",
                    value: json!(have),
                },
            }
        };
        match self.rng.random_range(0..10) {
            0..=5 => leaf(self),
            6 => {
                let a = leaf(self);
                if spec.attr == "roles" {
                    Filter::And(Box::new(a), Box::new(leaf(self)))
                } else {
                    Filter::And(
                        Box::new(a),
                        Box::new(Filter::Cmp {
                            attr: "primary".into(),
                            op: "eq",
                            value: json!(true),
                        }),
                    )
                }
            }
            7 => Filter::Or(Box::new(leaf(self)), Box::new(leaf(self))),
            8 => Filter::Not(Box::new(leaf(self))),
            _ => Filter::Cmp {
                attr: "primary".into(),
                op: "eq",
                value: json!(true),
            },
        }
    }

    /// Renders a filter, now and then with letter-case changes (tagged).
    fn render_filter(&mut self, f: &Filter, tags: &mut BTreeSet<String>) -> (String, bool) {
        let attr_case = self.chance(0.08);
        let op_case = self.chance(0.06);
        let value_case = self.chance(0.06);
        let mut f = f.clone();
        if value_case {
            if let Some(changed) = upcase_first_string(&mut f) {
                if changed {
                    tags.insert("filter-value-case".into());
                }
            }
        }
        if attr_case {
            tags.insert("filter-attr-case".into());
        }
        if op_case {
            tags.insert("filter-op-case".into());
        }
        let text = f.render(
            &|a: &str| {
                if attr_case {
                    a.to_uppercase()
                } else {
                    a.to_string()
                }
            },
            &|o: &str| {
                if op_case {
                    o.to_uppercase()
                } else {
                    o.to_string()
                }
            },
        );
        (text, value_case || attr_case)
    }

    fn filter_op(&mut self, user: &Value, tags: &mut BTreeSet<String>) -> Value {
        let spec = self.mv_spec();
        let entries: Vec<Value> = user
            .get(spec.attr)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let filter = self.filter_for(spec, &entries);
        filter.kind_tags(tags);
        if spec.attr == "emails"
            && any_cmp(&filter, &|attr, v| {
                attr == "value" && v.as_str().is_some_and(|s| !s.contains('@'))
            })
        {
            // emails.value compared with a string that is no email address:
            // a partial one (co/sw/ew) or one that matches nothing.
            tags.insert("filter-value-not-email".into());
        }
        if ne_on_absent(&filter, &entries) {
            tags.insert("filter-ne-absent".into());
        }
        let (text, fuzzy) = self.render_filter(&filter, tags);
        let matched = entries.iter().filter(|e| filter.matches(e)).count();
        if entries.is_empty() {
            tags.insert("target-absent".into());
        }
        if !fuzzy {
            if matched == 0 {
                tags.insert("filter-no-match".into());
            } else if matched == entries.len() {
                tags.insert("filter-matches-all".into());
            }
            if matched > 1 {
                tags.insert("filter-matches-many".into());
            }
        }
        let attr = self.name_in_path(spec.attr, tags);
        let base = format!("{attr}[{text}]");
        match self.rng.random_range(0..10) {
            0..=3 => {
                let op = self.op_name("remove", tags);
                tags.insert("path:filter".into());
                if !fuzzy && matched == entries.len() && matched > 0 {
                    tags.insert("remove-last-multi-value".into());
                }
                json!({ "op": op, "path": base })
            }
            4 => {
                let op = self.op_name("remove", tags);
                tags.insert("path:filter-sub".into());
                let sub = self.pick(spec.writable_subs);
                json!({ "op": op, "path": format!("{base}.{sub}") })
            }
            5..=6 => {
                let which = self.pick(&["replace", "replace", "add"]);
                let op = self.op_name(which, tags);
                tags.insert("path:filter-sub".into());
                let sub = self.pick(spec.writable_subs);
                let value = if sub == "type" {
                    json!(self.pick(Self::mv_types(spec.attr)))
                } else {
                    json!(upper_first(&self.word()))
                };
                json!({ "op": op, "path": format!("{base}.{sub}"), "value": value })
            }
            7 => {
                let op = self.op_name("replace", tags);
                tags.insert("path:filter".into());
                tags.insert("replace-filter-record".into());
                let sub = self.pick(spec.writable_subs);
                let value = if sub == "type" {
                    json!(self.pick(Self::mv_types(spec.attr)))
                } else {
                    json!(upper_first(&self.word()))
                };
                json!({ "op": op, "path": base, "value": { sub: value } })
            }
            _ => {
                // primary through a filter: replace emails[...].primary true.
                if spec.attr == "roles" {
                    let op = self.op_name("replace", tags);
                    tags.insert("path:filter-sub".into());
                    return json!({ "op": op, "path": format!("{base}.display"), "value": "Role" });
                }
                let op = self.op_name("replace", tags);
                tags.insert("path:filter-sub".into());
                tags.insert("primary-set".into());
                json!({ "op": op, "path": format!("{base}.primary"), "value": true })
            }
        }
    }

    fn primary_op(&mut self, user: &Value, tags: &mut BTreeSet<String>) -> Value {
        // Set primary on a value chosen by its (unique) value.
        tags.insert("primary-set".into());
        tags.insert("path:filter-sub".into());
        tags.insert("filter:eq".into());
        let spec = &MV_USER[self.rng.random_range(0..2)];
        let entries: Vec<Value> = user
            .get(spec.attr)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let op = self.op_name("replace", tags);
        match entries
            .choose(&mut self.rng)
            .and_then(|e| e.get("value"))
            .and_then(Value::as_str)
        {
            Some(v) => {
                json!({ "op": op, "path": format!("{}[value eq \"{v}\"].primary", spec.attr), "value": true })
            }
            None => {
                tags.insert("filter-no-match".into());
                tags.insert("target-absent".into());
                json!({ "op": op, "path": format!("{}[value eq \"none@example.com\"].primary", spec.attr), "value": true })
            }
        }
    }

    fn ext_op(&mut self, user: &Value, tags: &mut BTreeSet<String>) -> Value {
        tags.insert("path:ext".into());
        let ext = user.get(ENTERPRISE);
        if ext.is_none() {
            tags.insert("ext-absent".into());
        }
        match self.rng.random_range(0..10) {
            0..=4 => {
                let attr = self.pick(ENTERPRISE_SIMPLE);
                if ext.and_then(|e| e.get(attr)).is_none() {
                    tags.insert("target-absent".into());
                }
                let name = self.name_in_path(attr, tags);
                let which = self.pick(&["add", "replace", "remove"]);
                let op = self.op_name(which, tags);
                let path = format!("{ENTERPRISE}:{name}");
                if which == "remove" {
                    json!({ "op": op, "path": path })
                } else {
                    json!({ "op": op, "path": path, "value": format!("V{}", self.next_n()) })
                }
            }
            5..=6 => {
                tags.insert("path:sub".into());
                if ext.and_then(|e| e.get("manager")).is_none() {
                    tags.insert("parent-absent".into());
                }
                let which = self.pick(&["add", "replace", "remove"]);
                let op = self.op_name(which, tags);
                let path = format!("{ENTERPRISE}:manager.value");
                if which == "remove" {
                    json!({ "op": op, "path": path })
                } else {
                    json!({ "op": op, "path": path, "value": self.hex_id() })
                }
            }
            7 => {
                // The extension as the target, its attributes in the value.
                tags.insert("complex-merge".into());
                tags.insert("ext-urn-as-attribute".into());
                let which = self.pick(&["add", "replace"]);
                let op = self.op_name(which, tags);
                let attr = self.pick(ENTERPRISE_SIMPLE);
                json!({ "op": op, "path": ENTERPRISE, "value": { attr: format!("W{}", self.next_n()) } })
            }
            8 => {
                tags.insert("ext-remove-all".into());
                tags.insert("ext-urn-as-attribute".into());
                let op = self.op_name("remove", tags);
                json!({ "op": op, "path": ENTERPRISE })
            }
            _ => {
                // Path-less, with the extension's attributes under its URN or
                // as fully qualified keys.
                tags.insert("pathless".into());
                let which = self.pick(&["add", "replace"]);
                let op = self.op_name(which, tags);
                let attr = self.pick(ENTERPRISE_SIMPLE);
                let v = format!("P{}", self.next_n());
                if self.chance(0.5) {
                    tags.insert("ext-urn-as-attribute".into());
                    json!({ "op": op, "value": { ENTERPRISE: { attr: v } } })
                } else {
                    tags.insert("ext-fq-keys".into());
                    json!({ "op": op, "value": { format!("{ENTERPRISE}:{attr}"): v } })
                }
            }
        }
    }

    fn pathless_op(&mut self, user: &Value, tags: &mut BTreeSet<String>) -> Value {
        tags.insert("pathless".into());
        let which = self.pick(&["add", "replace"]);
        let op = self.op_name(which, tags);
        let mut value = Map::new();
        let k = self.rng.random_range(1..=3);
        for _ in 0..k {
            match self.rng.random_range(0..5) {
                0 | 1 => {
                    let attr = self.pick(SIMPLE_STRING_ATTRS);
                    let key = self.name_in_path(attr, tags);
                    let v = self.simple_value(attr);
                    value.insert(key, v);
                }
                2 => {
                    tags.insert("complex-merge".into());
                    let sub = self.pick(NAME_SUBS);
                    let key = self.name_in_path("name", tags);
                    value.insert(key, json!({ sub: self.pick(GIVEN) }));
                    if user.get("name").is_none() {
                        tags.insert("target-absent".into());
                    }
                }
                3 => {
                    tags.insert("pathless-mv".into());
                    let ty = self.pick(EMAIL_TYPES);
                    let e = self.mv_entry("emails", ty);
                    value.insert("emails".into(), json!([e]));
                }
                _ => {
                    value.insert("active".into(), json!(self.chance(0.5)));
                }
            }
        }
        json!({ "op": op, "value": value })
    }

    fn core_urn_op(&mut self, user: &Value, tags: &mut BTreeSet<String>) -> Value {
        tags.insert("core-urn-path".into());
        let which = self.pick(&["add", "replace", "remove"]);
        let op = self.op_name(which, tags);
        let (path, value) = if self.chance(0.5) {
            tags.insert("path:simple".into());
            if user.get("displayName").is_none() {
                tags.insert("target-absent".into());
            }
            (
                format!("{CORE_USER}:displayName"),
                json!(format!("Core {}", self.next_n())),
            )
        } else {
            tags.insert("path:sub".into());
            if user.get("name").is_none() {
                tags.insert("parent-absent".into());
            }
            (
                format!("{CORE_USER}:name.familyName"),
                json!(self.pick(FAMILY)),
            )
        };
        if which == "remove" {
            json!({ "op": op, "path": path })
        } else {
            json!({ "op": op, "path": path, "value": value })
        }
    }

    fn mv_sub_no_filter_op(&mut self, user: &Value, tags: &mut BTreeSet<String>) -> Value {
        // `emails.display`: a sub-attribute of every value (RFC 7644 §3.5.2,
        // attrPath with subAttr on a multi-valued attribute, no filter).
        tags.insert("mv-sub-no-filter".into());
        let spec = &MV_USER[self.rng.random_range(0..2)];
        if user.get(spec.attr).is_none() {
            tags.insert("target-absent".into());
        }
        let which = self.pick(&["replace", "remove", "add"]);
        let op = self.op_name(which, tags);
        let path = format!("{}.display", spec.attr);
        if which == "remove" {
            json!({ "op": op, "path": path })
        } else {
            json!({ "op": op, "path": path, "value": "Shown" })
        }
    }

    fn error_op(&mut self, user: &Value, tags: &mut BTreeSet<String>) -> Value {
        match self.rng.random_range(0..13) {
            0 => {
                tags.insert("readonly".into());
                let which = self.pick(&["replace", "add", "remove"]);
                let op = self.op_name(which, tags);
                let path = self.pick(&[
                    "id",
                    "meta.created",
                    "meta.lastModified",
                    "meta.resourceType",
                    "meta",
                ]);
                if which == "remove" {
                    json!({ "op": op, "path": path })
                } else if path == "meta" {
                    json!({ "op": op, "path": path, "value": { "resourceType": "Group" } })
                } else if path == "id" {
                    json!({ "op": op, "path": path, "value": self.hex_id() })
                } else {
                    json!({ "op": op, "path": path, "value": "2030-01-01T00:00:00Z" })
                }
            }
            1 => {
                tags.insert("readonly".into());
                let which = self.pick(&["replace", "add"]);
                let op = self.op_name(which, tags);
                let path = self.pick(&["groups", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.displayName"]);
                if path == "groups" {
                    json!({ "op": op, "path": path, "value": [{ "value": self.hex_id(), "display": "Admins" }] })
                } else {
                    json!({ "op": op, "path": path, "value": "Boss" })
                }
            }
            2 => {
                tags.insert("remove-required".into());
                let op = self.op_name("remove", tags);
                json!({ "op": op, "path": "userName" })
            }
            3 => {
                tags.insert("remove-no-path".into());
                let op = self.op_name("remove", tags);
                json!({ "op": op })
            }
            4 => {
                tags.insert("bad-op".into());
                let op = self.pick(&["move", "copy", "test", "delete", ""]);
                json!({ "op": op, "path": "nickName", "value": "x" })
            }
            5 => {
                tags.insert("missing-value".into());
                let op = self.op_name("add", tags);
                json!({ "op": op, "path": "nickName" })
            }
            6 | 7 => {
                tags.insert("bad-path-syntax".into());
                let which = self.pick(&["add", "replace", "remove"]);
                let op = self.op_name(which, tags);
                let path = self.pick(&[
                    "emails[type eq \"work\"",
                    "name..givenName",
                    "name.",
                    ".displayName",
                    "emails]type eq \"work\"[",
                    "emails[type eq \"work\"]]",
                    "display Name",
                    "emails[type eq \"work\"].value.extra",
                    "",
                ]);
                if which == "remove" {
                    json!({ "op": op, "path": path })
                } else {
                    json!({ "op": op, "path": path, "value": "x" })
                }
            }
            8 => {
                tags.insert("bad-filter".into());
                let which = self.pick(&["replace", "remove"]);
                let op = self.op_name(which, tags);
                let path = self.pick(&[
                    "emails[type eq work]",
                    "emails[type zz \"work\"]",
                    "emails[type eq]",
                    "emails[]",
                    "emails[type eq \"work\" and]",
                    "emails[(type eq \"work\"]",
                    "emails[type eq \"work\" xor primary eq true]",
                ]);
                if which == "remove" {
                    json!({ "op": op, "path": path })
                } else {
                    json!({ "op": op, "path": path, "value": { "display": "x" } })
                }
            }
            9 | 10 => {
                tags.insert("unknown-attribute".into());
                let which = self.pick(&["add", "replace", "remove"]);
                let op = self.op_name(which, tags);
                let path = self.pick(&[
                    "foo",
                    "name.foo",
                    "emails[type eq \"work\"].foo",
                    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:foo",
                    "urn:example:params:scim:schemas:extension:acme:2.0:User:badge",
                    "nickname2",
                ]);
                if which == "remove" {
                    json!({ "op": op, "path": path })
                } else {
                    json!({ "op": op, "path": path, "value": "x" })
                }
            }
            11 => {
                tags.insert("unknown-attribute".into());
                tags.insert("pathless".into());
                let which = self.pick(&["add", "replace"]);
                let op = self.op_name(which, tags);
                json!({ "op": op, "value": { "nickName": "ok", "shoeSize": 44 } })
            }
            _ => {
                tags.insert("type-mismatch".into());
                let which = self.pick(&["add", "replace"]);
                let op = self.op_name(which, tags);
                let _ = user;
                match self.rng.random_range(0..5) {
                    0 => json!({ "op": op, "path": "active", "value": "yes" }),
                    1 => json!({ "op": op, "path": "displayName", "value": 42 }),
                    2 => json!({ "op": op, "path": "name", "value": "Barbara Jensen" }),
                    3 => json!({ "op": op, "path": "emails", "value": "b@example.com" }),
                    _ => json!({ "op": op, "path": "nickName", "value": ["a", "b"] }),
                }
            }
        }
    }

    // -------------------------------------------------------------------- Group

    fn group_case(&mut self) -> Case {
        let group = self.group();
        let mut tags = BTreeSet::from(["group".to_string()]);
        let members: Vec<Value> = group
            .get("members")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let roll = self.rng.random_range(0..100);
        let ops = match roll {
            0..=24 => {
                tags.insert("members-add".into());
                tags.insert("path:mv".into());
                let op = self.op_name("add", &mut tags);
                let mut values = vec![self.member()];
                if !members.is_empty() && self.chance(0.35) {
                    tags.insert("members-add-duplicate".into());
                    values.push(
                        members
                            .choose(&mut self.rng)
                            .cloned()
                            .unwrap_or(Value::Null),
                    );
                }
                if members.is_empty() {
                    tags.insert("target-absent".into());
                }
                let path = self.name_in_path("members", &mut tags);
                vec![json!({ "op": op, "path": path, "value": values })]
            }
            25..=49 => {
                tags.insert("members-remove".into());
                tags.insert("path:filter".into());
                tags.insert("filter:eq".into());
                let op = self.op_name("remove", &mut tags);
                let target = match members.choose(&mut self.rng) {
                    Some(m) if self.rng.random_bool(0.85) => {
                        if members.len() == 1 {
                            tags.insert("remove-last-multi-value".into());
                            tags.insert("filter-matches-all".into());
                        }
                        m["value"].as_str().unwrap_or_default().to_string()
                    }
                    _ => {
                        tags.insert("filter-no-match".into());
                        if members.is_empty() {
                            tags.insert("target-absent".into());
                        }
                        self.hex_id()
                    }
                };
                let path = self.name_in_path("members", &mut tags);
                vec![json!({ "op": op, "path": format!("{path}[value eq \"{target}\"]") })]
            }
            50..=57 => {
                tags.insert("path:mv".into());
                if self.chance(0.5) {
                    tags.insert("mv-remove-all".into());
                    let op = self.op_name("remove", &mut tags);
                    vec![json!({ "op": op, "path": "members" })]
                } else {
                    tags.insert("mv-replace-all".into());
                    let op = self.op_name("replace", &mut tags);
                    let values: Vec<Value> = (0..self.rng.random_range(1..=2))
                        .map(|_| self.member())
                        .collect();
                    vec![json!({ "op": op, "path": "members", "value": values })]
                }
            }
            58..=67 => {
                tags.insert("path:simple".into());
                let op = self.op_name("replace", &mut tags);
                let path = self.name_in_path("displayName", &mut tags);
                vec![json!({ "op": op, "path": path, "value": format!("Team {}", self.next_n()) })]
            }
            68..=71 => {
                tags.insert("path:simple".into());
                tags.insert("group-displayname-remove".into());
                let op = self.op_name("remove", &mut tags);
                vec![json!({ "op": op, "path": "displayName" })]
            }
            72..=79 => {
                tags.insert("pathless".into());
                tags.insert("members-add".into());
                tags.insert("pathless-mv".into());
                let op = self.op_name("add", &mut tags);
                let values = vec![self.member()];
                let mut value = json!({ "members": values });
                if self.chance(0.4) {
                    value["displayName"] = json!(format!("Team {}", self.next_n()));
                }
                vec![json!({ "op": op, "value": value })]
            }
            80..=85 => {
                tags.insert("immutable".into());
                tags.insert("path:filter-sub".into());
                tags.insert("filter:eq".into());
                let op = self.op_name("replace", &mut tags);
                let target = members
                    .choose(&mut self.rng)
                    .and_then(|m| m["value"].as_str())
                    .map(str::to_string);
                let target = target.unwrap_or_else(|| {
                    tags.insert("filter-no-match".into());
                    tags.insert("target-absent".into());
                    "no-such-member".into()
                });
                vec![
                    json!({ "op": op, "path": format!("members[value eq \"{target}\"].value"), "value": self.hex_id() }),
                ]
            }
            86..=91 => {
                // Remove members by type: can match several, all, or none.
                tags.insert("members-remove".into());
                tags.insert("path:filter".into());
                tags.insert("filter:eq".into());
                let op = self.op_name("remove", &mut tags);
                let ty = if self.chance(0.7) { "User" } else { "Group" };
                let matched = members
                    .iter()
                    .filter(|m| m.get("type") == Some(&json!(ty)))
                    .count();
                if members.is_empty() {
                    tags.insert("target-absent".into());
                }
                if matched == 0 {
                    tags.insert("filter-no-match".into());
                } else if matched == members.len() {
                    tags.insert("filter-matches-all".into());
                    tags.insert("remove-last-multi-value".into());
                }
                if matched > 1 {
                    tags.insert("filter-matches-many".into());
                }
                vec![json!({ "op": op, "path": format!("members[type eq \"{ty}\"]") })]
            }
            _ => {
                // The RFC 7644 §3.5.2.2 way to replace all members: remove, then add.
                tags.insert("multi-op".into());
                tags.insert("mv-remove-all".into());
                tags.insert("members-add".into());
                let remove = self.op_name("remove", &mut tags);
                let add = self.op_name("add", &mut tags);
                let values: Vec<Value> = (0..self.rng.random_range(1..=2))
                    .map(|_| self.member())
                    .collect();
                vec![
                    json!({ "op": remove, "path": "members" }),
                    json!({ "op": add, "path": "members", "value": values }),
                ]
            }
        };
        self.case(tags, "Group", group, ops)
    }
}

/// Whether some comparison of a filter satisfies `pred`.
/// Whether the filter has an `ne` comparison on a sub-attribute that some
/// value lacks (`roles[type ne "main"]` with a role without `type`).
fn ne_on_absent(f: &Filter, entries: &[Value]) -> bool {
    match f {
        Filter::Cmp { attr, op, .. } => {
            *op == "ne" && entries.iter().any(|e| e.get(attr.as_str()).is_none())
        }
        Filter::Pr(_) => false,
        Filter::And(a, b) | Filter::Or(a, b) => {
            ne_on_absent(a, entries) || ne_on_absent(b, entries)
        }
        Filter::Not(a) => ne_on_absent(a, entries),
    }
}

fn any_cmp(f: &Filter, pred: &dyn Fn(&str, &Value) -> bool) -> bool {
    match f {
        Filter::Cmp { attr, value, .. } => pred(attr, value),
        Filter::Pr(_) => false,
        Filter::And(a, b) | Filter::Or(a, b) => any_cmp(a, pred) || any_cmp(b, pred),
        Filter::Not(a) => any_cmp(a, pred),
    }
}

/// Changes the letter case of the first string compared in a filter;
/// Some(true) if a letter changed.
fn upcase_first_string(f: &mut Filter) -> Option<bool> {
    match f {
        Filter::Cmp {
            value: Value::String(s),
            ..
        } => {
            let up = s.to_uppercase();
            let changed = up != *s;
            *s = up;
            Some(changed)
        }
        Filter::Cmp { .. } | Filter::Pr(_) => None,
        Filter::And(a, b) | Filter::Or(a, b) => {
            upcase_first_string(a).or_else(|| upcase_first_string(b))
        }
        Filter::Not(a) => upcase_first_string(a),
    }
}
