//! The RFC 7644 §3.5.2 PATCH engine: applies a `PatchOp` request to a
//! resource and returns the new resource, or the error a conforming service
//! provider would have answered with.
//!
//! Operations run in order, each on the result of the previous one, and the
//! request is atomic (§3.5.2): the input is never modified and any failing
//! operation fails the whole request. Attribute names match
//! case-insensitively (RFC 7643 §2.1) and keep the resource's spelling;
//! values compare under the attribute's `caseExact`.
//!
//! # Decisions where the RFC is silent or ambiguous
//!
//! - **`op` case** (§3.5.2): the RFC lists `"add"`, `"remove"` and
//!   `"replace"` and says nothing about case. The case-insensitivity rules it
//!   does have cover attribute names (RFC 7643 §2.1) and filter operators
//!   (§3.4.2.2), not member values, and Microsoft lists its capitalised ops
//!   as a known compliance issue. So [`Compat::Strict`] accepts only the
//!   lower-case tokens; [`Compat::Lenient`] accepts any case.
//! - **`add` through a filter that matches nothing** (§3.5.2.1 does not cover
//!   filters): the §3.12 definition of `noTarget` — "the specified path value
//!   contains a filter that yields no match" — applies, in both modes, except
//!   for the lenient Entra form listed below.
//! - **`remove` through a filter that matches nothing**: `noTarget` by the
//!   same §3.12 definition in strict mode; a no-op in lenient mode.
//! - **`remove` of an absent attribute** (no filter): a no-op; §3.12's
//!   `noTarget` is about filters, and removal is idempotent.
//! - **`remove` of a `required` or `readOnly` attribute**: §3.5.2.2 says the
//!   server SHALL answer `mutability` when such an attribute "is removed or
//!   becomes unassigned", so both modes fail, whichever operation (`remove`,
//!   or `add`/`replace` with `null`) unassigns it.
//! - **Which attributes are `required`: the RFC 7643 §8.7.1 schema wins over
//!   prose.** Where RFC 7643's prose (§4's attribute descriptions, or the
//!   `description` strings inside §8.7.1) calls an attribute REQUIRED but
//!   the §8.7.1 schema representation gives it `"required": false`, the
//!   schema characteristic is followed: it is what service providers publish
//!   on `/Schemas` and what clients check against. So removing Group
//!   `displayName` (§4.2 prose: REQUIRED; §8.7.1: `"required": false`) or
//!   the Enterprise User's `manager.value` (§8.7.1: `"required": false`,
//!   although its description string says "REQUIRED."; §4.3's prose says
//!   RECOMMENDED) succeeds, in both modes, rather than failing with
//!   §3.5.2.2's `mutability` (see `schema.rs`).
//! - **`readOnly` attributes** (§3.5.2, RFC 7643 §2.2): an operation that
//!   leaves their value unchanged is accepted (nothing was modified); one
//!   that changes them fails with `mutability`.
//! - **`immutable` attributes**: may gain a value while they have none;
//!   changing or removing an existing value fails. A Group's `members` can
//!   still be added, removed and replaced as a whole: it is the members'
//!   sub-attributes that are immutable (RFC 7643 §4.2), so rewriting a
//!   member in place (`members[value eq "x"].value`) fails.
//! - **`null` and `[]` values**: RFC 7643 §2.5 makes them the unassigned
//!   state, so `replace` with either, and `add` with `null`, remove the
//!   attribute. `add` of `[]` adds nothing.
//! - **`add` to a multi-valued attribute** (§3.5.2.1: "If the target
//!   location already contains the value specified, no changes SHOULD be
//!   made"): a complex value with the same `value` sub-attribute as an
//!   existing one is that value — its other sub-attributes are merged in —
//!   so re-adding a group member is a no-op however much of it the client
//!   repeats, and immutable sub-attributes it already has keep their value.
//!   Values without a `value` sub-attribute are duplicates only when equal
//!   in every sub-attribute.
//! - **A single value for a multi-valued attribute** (§3.5.2.1: "a new value
//!   is added") is taken as a one-element array.
//! - **`replace` of a complex attribute** merges the given sub-attributes
//!   (§3.5.2.3: "Sub-attributes that are not specified in the value
//!   parameter are left unchanged"). So does `replace` through a filter
//!   without a sub-attribute (`addresses[type eq "work"]` with an object):
//!   each matching value is such a complex target, so the value's
//!   sub-attributes replace (or, with `null`, unassign) those of every
//!   matching value and the others stay; "all matching record values SHALL be
//!   replaced" is read as replacing them by the merge. Both independent
//!   engines of the conformance suite do the same, and for a trail that
//!   replays requests to predict the server's state a merge loses nothing.
//!   A value that is not an object (an undefined attribute of strings)
//!   replaces the matching value whole; an array is `invalidValue`.
//! - **`primary`** (RFC 7643 §2.4, RFC 7644 §3.5.2): when an operation sets
//!   `primary: true` on one value, every other value of the attribute that
//!   has `primary: true` gets `false`. An operation that would leave two
//!   values primary fails with `invalidValue`.
//! - **Schema extensions** (RFC 7643 §3.3): adding the first attribute of an
//!   extension adds its URN to `schemas`, and removing its last attribute
//!   (or the extension) removes it, so `schemas` keeps describing the
//!   resource. Nothing happens when the resource has no `schemas` array.
//! - **Attributes the schema does not define** are accepted in both modes
//!   (deployments extend the schemas) and handled as singular strings, or
//!   multi-valued when the current or new value is an array.
//!
//! # Lenient deviations
//!
//! [`Compat::Lenient`] accepts what production clients send although the
//! RFC does not allow it. Each item names the client known to send it.
//!
//! 1. `op` in any case: `"Add"`, `"Replace"`, `"Remove"` — Microsoft Entra ID
//!    (default behaviour without the `aadOptscim062020` flag).
//! 2. `remove` with a `value` listing the values to remove,
//!    `{"op":"Remove","path":"members","value":[{"value":"id1"}]}` — Entra ID
//!    group membership removals. Only the listed values are removed (matched
//!    by their `value` sub-attribute). Strict mode answers `invalidValue`
//!    rather than ignore the `value` and remove every member.
//! 3. Booleans sent as strings, `"True"`/`"False"` in any case — Entra ID
//!    (`active`, `primary`).
//! 4. A complex attribute sent as its bare `value`,
//!    `{"path":"urn:…:enterprise:2.0:User:manager","value":"26118915-…"}` —
//!    Entra ID's `manager`. It becomes `{"value": "26118915-…"}`.
//! 5. `add` through a value filter that matches nothing, when the filter is
//!    `eq` comparisons joined by `and`
//!    (`emails[type eq "work"].value`): a new value is created from the
//!    comparisons and the operation's value — Entra ID, which adds an
//!    attribute it has not provisioned before this way.
//! 6. `remove` through a filter that matches nothing is a no-op: clients
//!    re-send removals (Entra ID retries and re-runs a sync cycle after a
//!    partial failure) and servers answer them with success.
//! 7. `Operations` (and an operation's `op`, `path`, `value`) in any case,
//!    and no `PatchOp` URN in `schemas` — hand-written and scripted clients.
//! 8. `readOnly` attributes inside a value object (not named by the path)
//!    are ignored rather than rejected: clients that replace with a copy of
//!    the resource as they read it (`id`, `meta`, `groups`, a manager's
//!    `displayName`). A path that names a `readOnly` attribute still fails.

use std::fmt;

use serde_json::{Map, Value};

use super::filter::{CompareOp, Expr, Filter, Literal};
use super::path::{AttrPath, PatchPath, PathError};
use super::schema::{starts_with_ignore_case, AttrType, AttributeDef, Mutability, ResourceSchema};
use super::value::{get_ci, is_assigned, key_of, parse_datetime, same_state, values_equal};

/// The `schemas` URI of a PATCH request (RFC 7644 §3.5.2).
pub const PATCH_OP_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// How closely requests must follow the RFC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compat {
    /// RFC 7644 as written.
    Strict,
    /// Also what production clients send; see the module documentation for
    /// each tolerated deviation and the client that needs it.
    #[default]
    Lenient,
}

/// Options for [`apply`].
///
/// The default is [`Compat::Lenient`]: scimtrail replays requests that real
/// identity providers sent and real servers accepted, and an audit trail
/// that rejected Entra ID's dialect would lose most of its changes. Strict
/// mode is for checking a client's conformance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PatchOptions {
    pub compat: Compat,
}

impl PatchOptions {
    pub fn strict() -> Self {
        PatchOptions {
            compat: Compat::Strict,
        }
    }

    pub fn lenient() -> Self {
        PatchOptions {
            compat: Compat::Lenient,
        }
    }
}

/// The RFC 7644 §3.12 `scimType` of a failed PATCH (all are HTTP 400).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScimType {
    InvalidSyntax,
    InvalidPath,
    NoTarget,
    InvalidFilter,
    InvalidValue,
    Mutability,
}

impl ScimType {
    /// The RFC's token, as sent in an error response's `scimType`.
    pub fn as_str(self) -> &'static str {
        match self {
            ScimType::InvalidSyntax => "invalidSyntax",
            ScimType::InvalidPath => "invalidPath",
            ScimType::NoTarget => "noTarget",
            ScimType::InvalidFilter => "invalidFilter",
            ScimType::InvalidValue => "invalidValue",
            ScimType::Mutability => "mutability",
        }
    }
}

impl fmt::Display for ScimType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a PATCH request cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{scim_type}{}: {detail}", in_operation(.operation))]
pub struct PatchError {
    pub scim_type: ScimType,
    pub detail: String,
    /// Index (from 0) into `Operations` of the failing operation; `None` when
    /// the request as a whole is malformed.
    pub operation: Option<usize>,
}

fn in_operation(operation: &Option<usize>) -> String {
    operation.map_or_else(String::new, |i| format!(" in operation {i}"))
}

impl PatchError {
    fn new(scim_type: ScimType, detail: impl Into<String>) -> Self {
        PatchError {
            scim_type,
            detail: detail.into(),
            operation: None,
        }
    }

    fn at(mut self, index: usize) -> Self {
        self.operation.get_or_insert(index);
        self
    }
}

fn invalid_syntax(detail: impl Into<String>) -> PatchError {
    PatchError::new(ScimType::InvalidSyntax, detail)
}
fn invalid_path(detail: impl Into<String>) -> PatchError {
    PatchError::new(ScimType::InvalidPath, detail)
}
fn no_target(detail: impl Into<String>) -> PatchError {
    PatchError::new(ScimType::NoTarget, detail)
}
fn invalid_value(detail: impl Into<String>) -> PatchError {
    PatchError::new(ScimType::InvalidValue, detail)
}
fn mutability(detail: impl Into<String>) -> PatchError {
    PatchError::new(ScimType::Mutability, detail)
}

/// Applies `request`, a `PatchOp` message, to a copy of `resource`.
pub fn apply(
    resource: &Value,
    request: &Value,
    schema: &ResourceSchema,
    opts: &PatchOptions,
) -> Result<Value, PatchError> {
    let ctx = Ctx {
        schema,
        lenient: opts.compat == Compat::Lenient,
    };
    let ops = operations(request, &ctx)?;
    let Value::Object(resource) = resource else {
        return Err(invalid_syntax("the resource is not a JSON object"));
    };
    let mut doc = resource.clone();
    for (i, raw) in ops.iter().enumerate() {
        let op = Operation::parse(raw, &ctx).map_err(|e| e.at(i))?;
        op.apply(&mut doc, &ctx).map_err(|e| e.at(i))?;
    }
    Ok(Value::Object(doc))
}

struct Ctx<'s> {
    schema: &'s ResourceSchema,
    lenient: bool,
}

impl Ctx<'_> {
    /// A member of a JSON object the RFC names exactly; any case in lenient
    /// mode.
    fn member<'v>(&self, obj: &'v Map<String, Value>, name: &str) -> Option<&'v Value> {
        if self.lenient {
            get_ci(obj, name)
        } else {
            obj.get(name)
        }
    }

    /// Whether `v` is `true`, or (lenient) a string spelling it.
    fn is_true(&self, v: &Value) -> bool {
        match v {
            Value::Bool(b) => *b,
            Value::String(s) => self.lenient && s.eq_ignore_ascii_case("true"),
            _ => false,
        }
    }
}

fn operations<'r>(request: &'r Value, ctx: &Ctx<'_>) -> Result<&'r Vec<Value>, PatchError> {
    let Value::Object(req) = request else {
        return Err(invalid_syntax("the PATCH request is not a JSON object"));
    };
    if !ctx.lenient {
        let declared = req
            .get("schemas")
            .and_then(Value::as_array)
            .is_some_and(|s| {
                s.iter().any(|u| {
                    u.as_str()
                        .is_some_and(|u| u.eq_ignore_ascii_case(PATCH_OP_SCHEMA))
                })
            });
        if !declared {
            return Err(invalid_syntax(format!(
                "`schemas` must contain \"{PATCH_OP_SCHEMA}\" (RFC 7644 §3.5.2)"
            )));
        }
    }
    match ctx.member(req, "Operations") {
        Some(Value::Array(ops)) if !ops.is_empty() => Ok(ops),
        Some(Value::Array(_)) => Err(invalid_syntax(
            "`Operations` is empty; RFC 7644 §3.5.2 requires one or more operations",
        )),
        Some(_) => Err(invalid_syntax("`Operations` is not an array")),
        None => Err(invalid_syntax("the request has no `Operations` array")),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Add,
    Replace,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OpKind {
    Add,
    Remove,
    Replace,
}

struct Operation<'r> {
    kind: OpKind,
    path: Option<&'r str>,
    value: Option<&'r Value>,
}

impl<'r> Operation<'r> {
    fn parse(raw: &'r Value, ctx: &Ctx<'_>) -> Result<Self, PatchError> {
        let Value::Object(obj) = raw else {
            return Err(invalid_syntax("the operation is not a JSON object"));
        };
        let op = match ctx.member(obj, "op") {
            Some(Value::String(op)) => op.as_str(),
            Some(_) => return Err(invalid_syntax("`op` is not a string")),
            None => return Err(invalid_syntax("the operation has no `op`")),
        };
        let kind = match op {
            "add" => OpKind::Add,
            "remove" => OpKind::Remove,
            "replace" => OpKind::Replace,
            _ if ctx.lenient && op.eq_ignore_ascii_case("add") => OpKind::Add,
            _ if ctx.lenient && op.eq_ignore_ascii_case("remove") => OpKind::Remove,
            _ if ctx.lenient && op.eq_ignore_ascii_case("replace") => OpKind::Replace,
            _ => {
                return Err(invalid_syntax(format!(
                    "unknown op \"{op}\"; RFC 7644 §3.5.2 defines {}",
                    r#""add", "remove" and "replace""#
                )))
            }
        };
        let path = match ctx.member(obj, "path") {
            None | Some(Value::Null) => None,
            Some(Value::String(p)) => Some(p.as_str()),
            Some(_) => return Err(invalid_path("`path` is not a string")),
        };
        Ok(Operation {
            kind,
            path,
            value: ctx.member(obj, "value"),
        })
    }

    fn apply(&self, doc: &mut Map<String, Value>, ctx: &Ctx<'_>) -> Result<(), PatchError> {
        let path = self
            .path
            .map(|p| {
                PatchPath::parse(p).map_err(|e| match e {
                    PathError::Path(e) => invalid_path(format!("invalid path \"{p}\" {e}")),
                    PathError::Filter(e) => PatchError::new(
                        ScimType::InvalidFilter,
                        format!("invalid filter in path \"{p}\" {e}"),
                    ),
                })
            })
            .transpose()?;
        let before = Snapshot::take(doc, ctx.schema);
        let mut targets_read_only = false;
        match (self.kind, &path) {
            (OpKind::Add | OpKind::Replace, path) => {
                let mode = if self.kind == OpKind::Add {
                    Mode::Add
                } else {
                    Mode::Replace
                };
                let Some(value) = self.value else {
                    return Err(invalid_value(format!(
                        "{} requires a `value` (RFC 7644 §3.5.2)",
                        if mode == Mode::Add { "add" } else { "replace" }
                    )));
                };
                match path {
                    None => assign_pathless(doc, value, mode, ctx)?,
                    Some(path) => {
                        let target = Target::resolve(path, doc, ctx)?;
                        targets_read_only = target.is_read_only();
                        target.assign(doc, value.clone(), mode, ctx)?;
                    }
                }
            }
            (OpKind::Remove, None) => {
                return Err(no_target("remove requires a `path` (RFC 7644 §3.5.2.2)"))
            }
            (OpKind::Remove, Some(path)) => {
                let target = Target::resolve(path, doc, ctx)?;
                targets_read_only = target.is_read_only();
                target.remove(doc, self.value.filter(|v| !v.is_null()), ctx)?;
            }
        }
        before.guard(doc, ctx, targets_read_only)?;
        before.sync_schemas(doc);
        Ok(())
    }
}

/// A path-less `add` or `replace`: the value is an object of attributes
/// (RFC 7644 §3.5.2.1, §3.5.2.3) whose keys may be attribute paths
/// (`name.givenName`, `urn:…:User:department`) or extension URNs.
fn assign_pathless(
    doc: &mut Map<String, Value>,
    value: &Value,
    mode: Mode,
    ctx: &Ctx<'_>,
) -> Result<(), PatchError> {
    let Value::Object(attrs) = value else {
        return Err(invalid_value(
            "without a path, the value must be an object of attributes (RFC 7644 §3.5.2.1)",
        ));
    };
    for (key, v) in attrs {
        let path = PatchPath::parse(key).map_err(|e| {
            invalid_path(format!("value key \"{key}\" is not an attribute path: {e}"))
        })?;
        if path.filter.is_some() {
            return Err(invalid_path(format!(
                "value key \"{key}\" has a value filter; only a path may"
            )));
        }
        Target::resolve(&path, doc, ctx)?.assign(doc, v.clone(), mode, ctx)?;
    }
    Ok(())
}

/// One object key on the way from the resource to the target, with its
/// definition if the schema has one.
#[derive(Debug)]
struct Step<'s> {
    name: String,
    def: Option<&'s AttributeDef>,
}

impl Step<'_> {
    /// The key to create: the schema's spelling when there is one.
    fn key(&self) -> String {
        self.def
            .map_or_else(|| self.name.clone(), |d| d.name.clone())
    }
}

/// Which values of a multi-valued attribute an operation applies to.
enum Select<'p> {
    /// Every value: `emails.type` names a sub-attribute of all of them.
    All,
    Matching(&'p Filter),
}

/// A resolved PATCH path.
struct Target<'s, 'p> {
    /// Object keys from the resource down to the attribute (1 to 3: an
    /// extension, an attribute, a sub-attribute).
    steps: Vec<Step<'s>>,
    /// Set when the last step is multi-valued and the path selects values.
    select: Option<Select<'p>>,
    /// Sub-attribute of the selected values.
    sub: Option<Step<'s>>,
    /// The multi-valued attribute, for schema lookups inside the filter.
    attr: AttrPath,
}

impl<'s, 'p> Target<'s, 'p> {
    fn resolve(
        path: &'p PatchPath,
        doc: &Map<String, Value>,
        ctx: &Ctx<'s>,
    ) -> Result<Self, PatchError> {
        let schema = ctx.schema;
        let a = &path.attr;
        let mut steps = Vec::with_capacity(3);
        match &a.urn {
            None if a.is_schema_urn() => steps.push(Step {
                name: a.name.clone(),
                def: schema.extension(&a.name),
            }),
            None => steps.push(Step {
                name: a.name.clone(),
                def: schema.core_attribute(&a.name),
            }),
            Some(urn) if is_core_urn(urn, doc, schema) => steps.push(Step {
                name: a.name.clone(),
                def: schema.core_attribute(&a.name),
            }),
            Some(urn) => {
                let whole = format!("{urn}:{}", a.name);
                if let Some(ext) = schema.extension(urn) {
                    steps.push(Step {
                        name: urn.clone(),
                        def: Some(ext),
                    });
                    steps.push(Step {
                        name: a.name.clone(),
                        def: ext.sub_attribute(&a.name),
                    });
                } else if a.sub.is_none()
                    && path.filter.is_none()
                    && (schema.extension(&whole).is_some() || is_extension_of(doc, &whole))
                {
                    // `urn:…:enterprise:2.0:User`: the extension itself.
                    let def = schema.extension(&whole);
                    steps.push(Step { name: whole, def });
                } else {
                    steps.push(Step {
                        name: urn.clone(),
                        def: None,
                    });
                    steps.push(Step {
                        name: a.name.clone(),
                        def: None,
                    });
                }
            }
        }
        if let Some(sub) = &a.sub {
            let def = steps
                .last()
                .and_then(|s| s.def)
                .and_then(|d| d.sub_attribute(sub));
            steps.push(Step {
                name: sub.clone(),
                def,
            });
        }

        let mut select = None;
        let mut sub = None;
        if let Some(filter) = &path.filter {
            select = Some(Select::Matching(filter));
            let last = steps.last().and_then(|s| s.def);
            if let Some(def) = last.filter(|d| !d.multi_valued) {
                return Err(invalid_path(format!(
                    "\"{}\" is not multi-valued, so a value filter cannot select its values",
                    def.name
                )));
            }
            sub = path.sub_attr.as_ref().map(|s| Step {
                name: s.clone(),
                def: last.and_then(|d| d.sub_attribute(s)),
            });
        } else if steps.len() >= 2 && is_multi_valued_in(&steps[..steps.len() - 1], doc) {
            // `emails.type`: the sub-attribute of every value.
            sub = steps.pop();
            select = Some(Select::All);
        }
        for step in &steps[..steps.len() - 1] {
            if let Some(def) = step.def.filter(|d| !d.is_complex()) {
                return Err(invalid_path(format!(
                    "\"{}\" is not a complex attribute and has no sub-attributes",
                    def.name
                )));
            }
        }

        let attr = match steps.as_slice() {
            [ext, attr] => AttrPath {
                urn: Some(ext.name.clone()),
                name: attr.name.clone(),
                sub: None,
            },
            _ => AttrPath::new(steps.last().map_or("", |s| s.name.as_str())),
        };
        Ok(Target {
            steps,
            select,
            sub,
            attr,
        })
    }

    fn last(&self) -> &Step<'s> {
        // `resolve` always pushes at least one step.
        &self.steps[self.steps.len() - 1]
    }

    /// Whether the path itself names a `readOnly` attribute (or one inside
    /// one), which no compatibility mode lets an operation change.
    fn is_read_only(&self) -> bool {
        self.steps
            .iter()
            .chain(&self.sub)
            .any(|s| s.def.is_some_and(|d| d.mutability == Mutability::ReadOnly))
    }

    fn assign(
        &self,
        doc: &mut Map<String, Value>,
        value: Value,
        mode: Mode,
        ctx: &Ctx<'_>,
    ) -> Result<(), PatchError> {
        match &self.select {
            None => {
                let container = container_mut(doc, &self.steps, true)?
                    .ok_or_else(|| no_target("the path's parent does not exist"))?;
                let last = self.last();
                assign(container, &last.name, last.def, value, mode, ctx)
            }
            Some(select) => self.assign_selected(doc, select, value, mode, ctx),
        }
    }

    /// `add`/`replace` on the values a filter (or a sub-attribute path)
    /// selects.
    fn assign_selected(
        &self,
        doc: &mut Map<String, Value>,
        select: &Select<'_>,
        value: Value,
        mode: Mode,
        ctx: &Ctx<'_>,
    ) -> Result<(), PatchError> {
        let last = self.last();
        let sets_primary = match &self.sub {
            Some(sub) => sub.name.eq_ignore_ascii_case("primary") && ctx.is_true(&value),
            None => value
                .as_object()
                .and_then(|o| get_ci(o, "primary"))
                .is_some_and(|p| ctx.is_true(p)),
        };
        let matched = self.matching(doc, select, ctx);
        if matched.is_empty() {
            if let (Mode::Add, true, Select::Matching(filter)) = (mode, ctx.lenient, select) {
                if let Some(seed) = seed_from_filter(filter.expr()) {
                    return self.add_seeded(doc, seed, value, sets_primary, ctx);
                }
            }
            return Err(self.nothing_matched(select));
        }
        let Some(values) = values_mut(doc, &self.steps) else {
            return Err(self.nothing_matched(select));
        };
        for &i in &matched {
            let before = values[i].clone();
            match (&self.sub, mode) {
                (Some(sub), _) => {
                    let Value::Object(el) = &mut values[i] else {
                        return Err(invalid_path(format!(
                            "the values of \"{}\" are not complex and have no \"{}\"",
                            last.name, sub.name
                        )));
                    };
                    assign(el, &sub.name, sub.def, value.clone(), mode, ctx)?;
                }
                (None, Mode::Replace) => {
                    if value.is_array() {
                        return Err(invalid_value(format!(
                            "replacing the values of \"{}\" a filter selects takes one value, not an array",
                            last.name
                        )));
                    }
                    let value = match last.def {
                        Some(def) => conform_one(value.clone(), def, &last.name, ctx)?,
                        None => value.clone(),
                    };
                    match (&mut values[i], value) {
                        // A complex value: §3.5.2.3, "Sub-attributes that are
                        // not specified in the value parameter are left
                        // unchanged".
                        (Value::Object(el), Value::Object(fields)) => {
                            for (k, v) in fields {
                                let def = last.def.and_then(|d| d.sub_attribute(&k));
                                assign(el, &k, def, v, Mode::Replace, ctx)?;
                            }
                        }
                        (slot, value) => *slot = value,
                    }
                }
                (None, Mode::Add) => {
                    let (Value::Object(el), Value::Object(fields)) = (&mut values[i], &value)
                    else {
                        return Err(invalid_value(format!(
                            "adding to the values of \"{}\" a filter selects takes an object of sub-attributes",
                            last.name
                        )));
                    };
                    for (k, v) in fields {
                        let def = last.def.and_then(|d| d.sub_attribute(k));
                        assign(el, k, def, v.clone(), Mode::Add, ctx)?;
                    }
                }
            }
            let sub_read_only = self
                .sub
                .as_ref()
                .and_then(|s| s.def)
                .is_some_and(|d| d.mutability == Mutability::ReadOnly);
            guard_value(&before, &mut values[i], last.def, ctx, sub_read_only)?;
        }
        let primaries: Vec<usize> = if sets_primary {
            matched.clone()
        } else {
            Vec::new()
        };
        demote_other_primaries(values, &primaries)?;
        if mode == Mode::Replace && self.sub.is_none() {
            dedupe(values, last.def);
        }
        // A value whose every sub-attribute was unassigned is no value.
        values.retain(
            |v| !matches!(v, Value::Object(o) if o.values().all(|s| !is_assigned(Some(s)))),
        );
        if values.is_empty() {
            remove_attribute(doc, &self.steps);
        }
        Ok(())
    }

    /// Lenient deviation 5: creates the value an `add` through an `eq`
    /// filter names.
    fn add_seeded(
        &self,
        doc: &mut Map<String, Value>,
        mut seed: Map<String, Value>,
        value: Value,
        sets_primary: bool,
        ctx: &Ctx<'_>,
    ) -> Result<(), PatchError> {
        let last = self.last();
        if value.is_null() {
            // Adding nothing to a value that does not exist.
            return Ok(());
        }
        match (&self.sub, value) {
            (Some(sub), value) => assign(&mut seed, &sub.name, sub.def, value, Mode::Add, ctx)?,
            (None, Value::Object(fields)) => {
                for (k, v) in fields {
                    let def = last.def.and_then(|d| d.sub_attribute(&k));
                    assign(&mut seed, &k, def, v, Mode::Add, ctx)?;
                }
            }
            (None, _) => {
                return Err(invalid_value(format!(
                "adding to the values of \"{}\" a filter selects takes an object of sub-attributes",
                last.name
            )))
            }
        }
        let element = match last.def {
            Some(def) => conform_one(Value::Object(seed), def, &last.name, ctx)?,
            None => Value::Object(seed),
        };
        let container = container_mut(doc, &self.steps, true)?
            .ok_or_else(|| no_target("the path's parent does not exist"))?;
        let key = key_of(container, &last.name).unwrap_or_else(|| last.key());
        let slot = container.entry(key).or_insert(Value::Null);
        let mut values = take_values(slot);
        values.push(element);
        let primaries = if sets_primary {
            vec![values.len() - 1]
        } else {
            Vec::new()
        };
        demote_other_primaries(&mut values, &primaries)?;
        *slot = Value::Array(values);
        Ok(())
    }

    fn remove(
        &self,
        doc: &mut Map<String, Value>,
        value: Option<&Value>,
        ctx: &Ctx<'_>,
    ) -> Result<(), PatchError> {
        if let Some(value) = value {
            if !ctx.lenient {
                return Err(invalid_value(
                    "remove takes no `value`; RFC 7644 §3.5.2.2 selects the values to remove with a filter in the path",
                ));
            }
            if self.select.is_none() && self.is_multi_valued(doc) {
                self.remove_listed(doc, value);
                return Ok(());
            }
            // A singular attribute is removed whatever value was listed.
        }
        let Some(select) = &self.select else {
            if let Some(container) = container_mut(doc, &self.steps, false)? {
                if let Some(key) = key_of(container, &self.last().name) {
                    container.remove(&key);
                }
            }
            prune_empty(doc, &self.steps);
            return Ok(());
        };
        let matched = self.matching(doc, select, ctx);
        if matched.is_empty() {
            return match select {
                Select::Matching(_) if !ctx.lenient => Err(self.nothing_matched(select)),
                _ => Ok(()),
            };
        }
        let last = self.last();
        let Some(values) = values_mut(doc, &self.steps) else {
            return Ok(());
        };
        match &self.sub {
            Some(sub) => {
                let read_only = sub
                    .def
                    .is_some_and(|d| d.mutability == Mutability::ReadOnly);
                for &i in &matched {
                    let before = values[i].clone();
                    if let Value::Object(el) = &mut values[i] {
                        if let Some(key) = key_of(el, &sub.name) {
                            el.remove(&key);
                        }
                    }
                    guard_value(&before, &mut values[i], last.def, ctx, read_only)?;
                }
                values.retain(
                    |v| !matches!(v, Value::Object(o) if o.values().all(|s| !is_assigned(Some(s)))),
                );
            }
            None => {
                let mut i = 0;
                values.retain(|_| {
                    i += 1;
                    !matched.contains(&(i - 1))
                });
            }
        }
        if values.is_empty() {
            remove_attribute(doc, &self.steps);
        }
        Ok(())
    }

    /// Lenient deviation 2: `remove` of the listed values.
    fn remove_listed(&self, doc: &mut Map<String, Value>, listed: &Value) {
        let def = self.last().def;
        let listed: Vec<&Value> = match listed {
            Value::Array(items) => items.iter().collect(),
            other => vec![other],
        };
        let Some(values) = values_mut(doc, &self.steps) else {
            return;
        };
        values.retain(|v| !listed.iter().any(|l| same_value(v, l, def)));
        if values.is_empty() {
            remove_attribute(doc, &self.steps);
        }
    }

    fn is_multi_valued(&self, doc: &Map<String, Value>) -> bool {
        match self.last().def {
            Some(def) => def.multi_valued,
            None => current(doc, &self.steps).is_some_and(Value::is_array),
        }
    }

    /// Indices of the values the selection picks.
    fn matching(&self, doc: &Map<String, Value>, select: &Select<'_>, ctx: &Ctx<'_>) -> Vec<usize> {
        let Some(current) = current(doc, &self.steps) else {
            return Vec::new();
        };
        let values: &[Value] = match current {
            Value::Array(values) => values,
            _ => return Vec::new(),
        };
        values
            .iter()
            .enumerate()
            .filter(|(_, v)| match select {
                Select::All => true,
                Select::Matching(f) => f.matches_element(v, &self.attr, ctx.schema),
            })
            .map(|(i, _)| i)
            .collect()
    }

    fn nothing_matched(&self, select: &Select<'_>) -> PatchError {
        match select {
            Select::Matching(filter) => no_target(format!(
                "no value of \"{}\" matches [{filter}]",
                self.last().name
            )),
            Select::All => no_target(format!("\"{}\" has no values", self.last().name)),
        }
    }
}

/// Whether `urn` names the resource's core schema: the schema's own, or
/// (for types without a known schema) the resource's first `schemas` entry.
fn is_core_urn(urn: &str, doc: &Map<String, Value>, schema: &ResourceSchema) -> bool {
    if schema.is_core_urn(urn) {
        return true;
    }
    schema.core_urn().is_none()
        && get_ci(doc, urn).is_none()
        && get_ci(doc, "schemas")
            .and_then(Value::as_array)
            .and_then(|s| s.first())
            .and_then(Value::as_str)
            .is_some_and(|first| first.eq_ignore_ascii_case(urn))
}

/// Whether the resource carries `urn` as an extension, as an object or in
/// its `schemas`.
fn is_extension_of(doc: &Map<String, Value>, urn: &str) -> bool {
    get_ci(doc, urn).is_some_and(Value::is_object)
        || get_ci(doc, "schemas")
            .and_then(Value::as_array)
            .is_some_and(|s| {
                s.iter()
                    .any(|u| u.as_str().is_some_and(|u| u.eq_ignore_ascii_case(urn)))
            })
}

/// Whether the last of `steps` is a multi-valued attribute: by its
/// definition, or by its current value when it has none.
fn is_multi_valued_in(steps: &[Step<'_>], doc: &Map<String, Value>) -> bool {
    match steps.last().and_then(|s| s.def) {
        Some(def) => def.multi_valued,
        None => current(doc, steps).is_some_and(Value::is_array),
    }
}

/// The current value at `steps`, if any.
fn current<'d>(doc: &'d Map<String, Value>, steps: &[Step<'_>]) -> Option<&'d Value> {
    let (last, parents) = steps.split_last()?;
    let mut obj = doc;
    for step in parents {
        obj = get_ci(obj, &step.name)?.as_object()?;
    }
    get_ci(obj, &last.name)
}

/// The object that holds the last of `steps`. With `create`, missing
/// complex values on the way are created; without, `None` means one is
/// missing.
fn container_mut<'d>(
    doc: &'d mut Map<String, Value>,
    steps: &[Step<'_>],
    create: bool,
) -> Result<Option<&'d mut Map<String, Value>>, PatchError> {
    let mut obj = doc;
    for step in &steps[..steps.len().saturating_sub(1)] {
        let key = match key_of(obj, &step.name) {
            Some(key) => key,
            None if create => step.key(),
            None => return Ok(None),
        };
        let slot = obj.entry(key).or_insert(Value::Null);
        if slot.is_null() {
            if !create {
                return Ok(None);
            }
            *slot = Value::Object(Map::new());
        }
        obj = match slot {
            Value::Object(inner) => inner,
            _ => {
                return Err(invalid_path(format!(
                    "\"{}\" is not a complex attribute and has no sub-attributes",
                    step.name
                )))
            }
        };
    }
    Ok(Some(obj))
}

/// The values of the multi-valued attribute at `steps`.
fn values_mut<'d>(
    doc: &'d mut Map<String, Value>,
    steps: &[Step<'_>],
) -> Option<&'d mut Vec<Value>> {
    let container = container_mut(doc, steps, false).ok()??;
    let key = key_of(container, &steps.last()?.name)?;
    container.get_mut(&key)?.as_array_mut()
}

/// Removes the attribute at `steps` and any complex value left empty.
fn remove_attribute(doc: &mut Map<String, Value>, steps: &[Step<'_>]) {
    if let Ok(Some(container)) = container_mut(doc, steps, false) {
        if let Some(last) = steps.last() {
            if let Some(key) = key_of(container, &last.name) {
                container.remove(&key);
            }
        }
    }
    prune_empty(doc, steps);
}

/// After a removal: a complex value (or extension) with nothing left in it
/// is unassigned, so it goes too.
fn prune_empty(doc: &mut Map<String, Value>, steps: &[Step<'_>]) {
    for depth in (1..steps.len()).rev() {
        let parent = &steps[..depth];
        let Ok(Some(container)) = container_mut(doc, parent, false) else {
            return;
        };
        let Some(key) = key_of(container, &parent[depth - 1].name) else {
            return;
        };
        if is_assigned(container.get(&key)) {
            return;
        }
        container.remove(&key);
    }
}

/// The values in `slot`, taken out of it: unassigned is none, a single
/// value is the only one.
fn take_values(slot: &mut Value) -> Vec<Value> {
    match slot.take() {
        Value::Array(values) => values,
        Value::Null => Vec::new(),
        single => vec![single],
    }
}

/// Gives attribute `name` of `obj` the value `value`, with `add` or
/// `replace` semantics: multi-valued attributes gain values (add) or have
/// them replaced (replace), complex ones merge sub-attributes, simple ones
/// are overwritten. `null` (and `[]` for replace) unassigns.
fn assign(
    obj: &mut Map<String, Value>,
    name: &str,
    def: Option<&AttributeDef>,
    value: Value,
    mode: Mode,
    ctx: &Ctx<'_>,
) -> Result<(), PatchError> {
    let key = key_of(obj, name);
    let value = conform(value, def, name, ctx)?;
    if value.is_null() {
        if let Some(key) = key {
            obj.remove(&key);
        }
        return Ok(());
    }
    let existing = key.as_ref().and_then(|k| obj.get(k));
    let multi = match def {
        Some(def) => def.multi_valued,
        None => value.is_array() || existing.is_some_and(Value::is_array),
    };
    let key = key.unwrap_or_else(|| def.map_or_else(|| name.to_string(), |d| d.name.clone()));
    if multi {
        let items = match value {
            Value::Array(items) => items,
            single => vec![single],
        };
        return assign_values(obj, key, def, items, mode, ctx);
    }
    let complex = match def {
        Some(def) => def.is_complex(),
        None => value.is_object() && existing.is_none_or(|e| e.is_object() || e.is_null()),
    };
    match value {
        Value::Object(fields) if complex => {
            let slot = obj.entry(key.clone()).or_insert(Value::Null);
            if !slot.is_object() {
                *slot = Value::Object(Map::new());
            }
            if let Value::Object(target) = slot {
                for (k, v) in fields {
                    let sub = def.and_then(|d| d.sub_attribute(&k));
                    assign(target, &k, sub, v, mode, ctx)?;
                }
            }
            if !is_assigned(obj.get(&key)) {
                obj.remove(&key);
            }
        }
        other => {
            obj.insert(key, other);
        }
    }
    Ok(())
}

/// `add`/`replace` of values of a multi-valued attribute.
fn assign_values(
    obj: &mut Map<String, Value>,
    key: String,
    def: Option<&AttributeDef>,
    items: Vec<Value>,
    mode: Mode,
    ctx: &Ctx<'_>,
) -> Result<(), PatchError> {
    if items.iter().filter(|v| is_primary(v)).count() > 1 {
        return Err(invalid_value(format!(
            "more than one value of \"{key}\" has primary: true (RFC 7643 §2.4)"
        )));
    }
    match mode {
        Mode::Replace => {
            if items.is_empty() {
                obj.remove(&key);
            } else {
                obj.insert(key, Value::Array(items));
            }
        }
        Mode::Add => {
            if items.is_empty() {
                return Ok(());
            }
            let slot = obj.entry(key).or_insert(Value::Null);
            let mut values = take_values(slot);
            let mut primaries = Vec::new();
            for item in items {
                let sets_primary = is_primary(&item);
                let index = match values.iter().position(|v| same_value(v, &item, def)) {
                    Some(i) => {
                        merge_value(&mut values[i], item, def, ctx)?;
                        i
                    }
                    None => {
                        values.push(item);
                        values.len() - 1
                    }
                };
                if sets_primary {
                    primaries.push(index);
                }
            }
            demote_other_primaries(&mut values, &primaries)?;
            *slot = Value::Array(values);
        }
    }
    Ok(())
}

/// Whether `candidate` is the value `existing` of a multi-valued attribute:
/// complex values with a `value` sub-attribute are identified by it.
fn same_value(existing: &Value, candidate: &Value, def: Option<&AttributeDef>) -> bool {
    let value_def = def.and_then(|d| d.sub_attribute("value"));
    match (existing, candidate) {
        (Value::Object(a), Value::Object(b)) => {
            if let (Some(x), Some(y)) = (get_ci(a, "value"), get_ci(b, "value")) {
                if is_assigned(Some(y)) {
                    return values_equal(x, y, value_def);
                }
            }
        }
        // A bare value against a complex one: its `value` (lenient
        // deviations 2 and 4 let clients name a member by its id alone).
        (Value::Object(a), bare) if !bare.is_object() && !bare.is_array() => {
            return get_ci(a, "value").is_some_and(|x| values_equal(x, bare, value_def));
        }
        _ => {}
    }
    values_equal(existing, candidate, def)
}

/// Merges an added complex value into the existing value it duplicates.
/// Immutable sub-attributes that already have a value keep it: the client is
/// re-adding the value (a group member with its `$ref` spelled differently),
/// not asking to rewrite it.
fn merge_value(
    existing: &mut Value,
    added: Value,
    def: Option<&AttributeDef>,
    ctx: &Ctx<'_>,
) -> Result<(), PatchError> {
    let (Value::Object(_), Value::Object(fields)) = (&*existing, added) else {
        return Ok(());
    };
    let before = existing.clone();
    if let Value::Object(el) = existing {
        for (k, v) in fields {
            let sub = def.and_then(|d| d.sub_attribute(&k));
            let settled = sub.is_some_and(|d| d.mutability == Mutability::Immutable)
                && is_assigned(get_ci(el, &k));
            if !settled {
                assign(el, &k, sub, v, Mode::Add, ctx)?;
            }
        }
    }
    guard_value(&before, existing, def, ctx, false)
}

fn is_primary(v: &Value) -> bool {
    v.as_object()
        .and_then(|o| get_ci(o, "primary"))
        .is_some_and(|p| p == &Value::Bool(true))
}

/// RFC 7643 §2.4 / RFC 7644 §3.5.2: the values at `primaries` were just made
/// primary, so no other value may stay primary.
fn demote_other_primaries(values: &mut [Value], primaries: &[usize]) -> Result<(), PatchError> {
    let mut set: Vec<usize> = primaries
        .iter()
        .copied()
        .filter(|&i| values.get(i).is_some_and(is_primary))
        .collect();
    set.sort_unstable();
    set.dedup();
    match set.as_slice() {
        [] => Ok(()),
        [keep] => {
            for (i, v) in values.iter_mut().enumerate() {
                if i != *keep && is_primary(v) {
                    if let Value::Object(o) = v {
                        let key = key_of(o, "primary").unwrap_or_else(|| "primary".to_string());
                        o.insert(key, Value::Bool(false));
                    }
                }
            }
            Ok(())
        }
        _ => Err(invalid_value(
            "the operation makes more than one value primary (RFC 7643 §2.4)",
        )),
    }
}

/// Drops values that a filtered replace made identical to an earlier one.
fn dedupe(values: &mut Vec<Value>, def: Option<&AttributeDef>) {
    let mut kept: Vec<Value> = Vec::with_capacity(values.len());
    for v in values.drain(..) {
        if !kept.iter().any(|k| values_equal(k, &v, def)) {
            kept.push(v);
        }
    }
    *values = kept;
}

/// Lenient deviation 5: the value an `eq`-only filter describes, as in
/// `type eq "work" and display eq "Office"`.
fn seed_from_filter(expr: &Expr) -> Option<Map<String, Value>> {
    fn walk(expr: &Expr, out: &mut Map<String, Value>) -> bool {
        match expr {
            Expr::And(a, b) => walk(a, out) && walk(b, out),
            Expr::Compare(path, CompareOp::Eq, lit) if path.urn.is_none() && path.sub.is_none() => {
                let v = match lit {
                    Literal::String(s) => Value::String(s.clone()),
                    Literal::Bool(b) => Value::Bool(*b),
                    Literal::Number(n) => Value::Number(n.clone()),
                    Literal::Null => return false,
                };
                out.insert(path.name.clone(), v);
                true
            }
            _ => false,
        }
    }
    let mut out = Map::new();
    walk(expr, &mut out).then_some(out)
}

/// Checks `value` against the attribute's type (RFC 7643 §2.3), applying the
/// lenient coercions. Undefined attributes take anything.
fn conform(
    value: Value,
    def: Option<&AttributeDef>,
    name: &str,
    ctx: &Ctx<'_>,
) -> Result<Value, PatchError> {
    let Some(def) = def else {
        return Ok(value);
    };
    match value {
        Value::Null => Ok(Value::Null),
        Value::Array(items) if def.multi_valued => items
            .into_iter()
            .map(|v| conform_one(v, def, name, ctx))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
        Value::Array(_) => Err(invalid_value(format!(
            "\"{name}\" is single-valued and takes one value, not an array"
        ))),
        single => conform_one(single, def, name, ctx),
    }
}

/// One value (of a singular attribute, or one element of a multi-valued
/// one) against the attribute's type.
fn conform_one(
    value: Value,
    def: &AttributeDef,
    name: &str,
    ctx: &Ctx<'_>,
) -> Result<Value, PatchError> {
    let wrong = |expected: &str, got: &Value| {
        invalid_value(format!(
            "\"{name}\" takes {expected}, not {}",
            describe(got)
        ))
    };
    match def.kind {
        AttrType::Boolean => match value {
            Value::Bool(_) => Ok(value),
            // Lenient deviation 3.
            Value::String(ref s) if ctx.lenient && s.eq_ignore_ascii_case("true") => {
                Ok(Value::Bool(true))
            }
            Value::String(ref s) if ctx.lenient && s.eq_ignore_ascii_case("false") => {
                Ok(Value::Bool(false))
            }
            other => Err(wrong("a boolean", &other)),
        },
        AttrType::String | AttrType::Reference | AttrType::Binary => match value {
            Value::String(_) => Ok(value),
            other => Err(wrong("a string", &other)),
        },
        AttrType::DateTime => match value {
            Value::String(ref s) if ctx.lenient || parse_datetime(s).is_some() => Ok(value),
            other => Err(wrong("an RFC 3339 dateTime string", &other)),
        },
        AttrType::Integer => match value {
            Value::Number(ref n) if n.is_i64() || n.is_u64() => Ok(value),
            other => Err(wrong("an integer", &other)),
        },
        AttrType::Decimal => match value {
            Value::Number(_) => Ok(value),
            other => Err(wrong("a number", &other)),
        },
        AttrType::Complex => match value {
            Value::Object(fields) => {
                let mut out = Map::new();
                for (k, v) in fields {
                    let sub = def.sub_attribute(&k);
                    let v = conform(v, sub, &k, ctx)?;
                    out.insert(k, v);
                }
                Ok(Value::Object(out))
            }
            // Lenient deviation 4.
            scalar @ (Value::String(_) | Value::Number(_) | Value::Bool(_))
                if ctx.lenient && def.sub_attribute("value").is_some() =>
            {
                let mut out = Map::new();
                out.insert("value".to_string(), scalar);
                Ok(Value::Object(out))
            }
            other => Err(wrong("a complex value (a JSON object)", &other)),
        },
    }
}

fn describe(v: &Value) -> String {
    let kind = match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    };
    let text = v.to_string();
    if text.len() <= 40 {
        format!("{kind} ({text})")
    } else {
        kind.to_string()
    }
}

/// Whether a definition constrains changes: its own mutability or
/// `required`, or a sub-attribute's (for singular complex attributes, which
/// are compared sub-attribute by sub-attribute).
fn needs_guard(def: &AttributeDef) -> bool {
    matches!(def.mutability, Mutability::ReadOnly | Mutability::Immutable)
        || def.required
        || (def.is_complex() && !def.multi_valued && def.sub_attributes.iter().any(needs_guard))
}

/// The attributes an operation could violate the mutability or `required`
/// of, and the extension URNs present, before the operation ran.
struct Snapshot<'s> {
    schema: &'s ResourceSchema,
    guarded: Map<String, Value>,
    extensions: Vec<String>,
}

impl<'s> Snapshot<'s> {
    fn take(doc: &Map<String, Value>, schema: &'s ResourceSchema) -> Self {
        let mut guarded = Map::new();
        for def in schema.attributes().iter().chain(schema.extensions()) {
            if needs_guard(def) {
                if let Some(key) = key_of(doc, &def.name) {
                    if let Some(v) = doc.get(&key) {
                        guarded.insert(key, v.clone());
                    }
                }
            }
        }
        Snapshot {
            schema,
            guarded,
            extensions: extension_keys(doc),
        }
    }

    /// Fails if the operation changed what it may not; in lenient mode puts
    /// back `readOnly` values a value object changed.
    fn guard(
        &self,
        doc: &mut Map<String, Value>,
        ctx: &Ctx<'_>,
        targets_read_only: bool,
    ) -> Result<(), PatchError> {
        guard(
            &self.guarded,
            doc,
            self.schema.attributes(),
            ctx,
            targets_read_only,
        )?;
        guard(
            &self.guarded,
            doc,
            self.schema.extensions(),
            ctx,
            targets_read_only,
        )
    }

    /// Keeps `schemas` listing the extensions the resource has (RFC 7643 §3).
    fn sync_schemas(&self, doc: &mut Map<String, Value>) {
        let now = extension_keys(doc);
        let added: Vec<String> = now
            .iter()
            .filter(|k| !self.extensions.iter().any(|b| b.eq_ignore_ascii_case(k)))
            .cloned()
            .collect();
        let removed: Vec<&String> = self
            .extensions
            .iter()
            .filter(|b| !now.iter().any(|k| k.eq_ignore_ascii_case(b)))
            .collect();
        if added.is_empty() && removed.is_empty() {
            return;
        }
        let Some(key) = key_of(doc, "schemas") else {
            return;
        };
        let Some(Value::Array(schemas)) = doc.get_mut(&key) else {
            return;
        };
        let listed = |schemas: &[Value], urn: &str| {
            schemas
                .iter()
                .any(|s| s.as_str().is_some_and(|s| s.eq_ignore_ascii_case(urn)))
        };
        for urn in added {
            if !listed(schemas, &urn) {
                schemas.push(Value::String(urn));
            }
        }
        schemas.retain(|s| {
            !s.as_str()
                .is_some_and(|s| removed.iter().any(|r| r.eq_ignore_ascii_case(s)))
        });
    }
}

/// Top-level keys that are extension URNs with a value.
fn extension_keys(doc: &Map<String, Value>) -> Vec<String> {
    doc.iter()
        .filter(|(k, v)| starts_with_ignore_case(k, "urn:") && is_assigned(Some(v)))
        .map(|(k, _)| k.clone())
        .collect()
}

/// Compares `after` with `before` for each attribute in `defs` that
/// [`needs_guard`]: `readOnly` ones must not change, `immutable` ones must
/// not change once assigned, `required` ones must not become unassigned.
/// In lenient mode, a `readOnly` change that the path did not name is undone
/// instead (lenient deviation 8).
fn guard(
    before: &Map<String, Value>,
    after: &mut Map<String, Value>,
    defs: &[AttributeDef],
    ctx: &Ctx<'_>,
    targets_read_only: bool,
) -> Result<(), PatchError> {
    for def in defs.iter().filter(|d| needs_guard(d)) {
        let b = get_ci(before, &def.name);
        if same_state(b, get_ci(after, &def.name), Some(def)) {
            continue;
        }
        match def.mutability {
            Mutability::ReadOnly if ctx.lenient && !targets_read_only => {
                let key = key_of(after, &def.name);
                match (b, key) {
                    (Some(b), Some(key)) => {
                        after.insert(key, b.clone());
                    }
                    (Some(b), None) => {
                        after.insert(def.name.clone(), b.clone());
                    }
                    (None, Some(key)) => {
                        after.remove(&key);
                    }
                    (None, None) => {}
                }
                continue;
            }
            Mutability::ReadOnly => {
                return Err(mutability(format!(
                    "\"{}\" is readOnly (RFC 7643 §2.2)",
                    def.name
                )))
            }
            Mutability::Immutable if is_assigned(b) => {
                return Err(mutability(format!(
                    "\"{}\" is immutable and already has a value (RFC 7643 §2.2)",
                    def.name
                )))
            }
            _ => {}
        }
        let a = get_ci(after, &def.name);
        if def.required && is_assigned(b) && !is_assigned(a) {
            return Err(mutability(format!(
                "\"{}\" is required and cannot be removed (RFC 7644 §3.5.2.2)",
                def.name
            )));
        }
        if def.is_complex() && !def.multi_valued && a.is_some_and(Value::is_object) {
            let empty = Map::new();
            let b = b.and_then(Value::as_object).unwrap_or(&empty);
            if let Some(key) = key_of(after, &def.name) {
                if let Some(Value::Object(a)) = after.get_mut(&key) {
                    guard(b, a, &def.sub_attributes, ctx, targets_read_only)?;
                }
                if !is_assigned(after.get(&key)) {
                    after.remove(&key);
                }
            }
        }
    }
    Ok(())
}

/// [`guard`] for one value of a multi-valued complex attribute, whose
/// sub-attributes carry the constraints (a Group member's `value`).
fn guard_value(
    before: &Value,
    after: &mut Value,
    def: Option<&AttributeDef>,
    ctx: &Ctx<'_>,
    targets_read_only: bool,
) -> Result<(), PatchError> {
    let (Some(def), Value::Object(b), Value::Object(a)) = (def, before, after) else {
        return Ok(());
    };
    guard(b, a, &def.sub_attributes, ctx, targets_read_only)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::schema::{
        common_attributes, ENTERPRISE_USER_SCHEMA, GROUP_SCHEMA, USER_SCHEMA,
    };
    use serde_json::json;

    const EXT: &str = ENTERPRISE_USER_SCHEMA;
    const BABS: &str = "2819c223-7f76-453a-919d-413861904646";
    const JAMES: &str = "08e1d05d-121c-4561-8b96-473d93df9210";

    fn request(ops: Value) -> Value {
        json!({"schemas": [PATCH_OP_SCHEMA], "Operations": ops})
    }

    fn run(
        resource: &Value,
        ops: Value,
        schema: &ResourceSchema,
        compat: Compat,
    ) -> Result<Value, PatchError> {
        apply(resource, &request(ops), schema, &PatchOptions { compat })
    }

    fn user_schema() -> &'static ResourceSchema {
        ResourceSchema::for_type("User")
    }

    fn group_schema() -> &'static ResourceSchema {
        ResourceSchema::for_type("Group")
    }

    /// Applies `ops` in both modes, which must agree.
    fn ok(resource: &Value, ops: Value, schema: &ResourceSchema) -> Value {
        let strict = run(resource, ops.clone(), schema, Compat::Strict)
            .unwrap_or_else(|e| panic!("strict: {e}"));
        let lenient =
            run(resource, ops, schema, Compat::Lenient).unwrap_or_else(|e| panic!("lenient: {e}"));
        assert_eq!(strict, lenient, "strict and lenient agree");
        strict
    }

    fn lenient(resource: &Value, ops: Value, schema: &ResourceSchema) -> Value {
        run(resource, ops, schema, Compat::Lenient).unwrap_or_else(|e| panic!("lenient: {e}"))
    }

    fn strict_err(resource: &Value, ops: Value, schema: &ResourceSchema) -> PatchError {
        match run(resource, ops, schema, Compat::Strict) {
            Ok(v) => panic!("strict should fail, got {v:#}"),
            Err(e) => e,
        }
    }

    fn lenient_err(resource: &Value, ops: Value, schema: &ResourceSchema) -> PatchError {
        match run(resource, ops, schema, Compat::Lenient) {
            Ok(v) => panic!("lenient should fail, got {v:#}"),
            Err(e) => e,
        }
    }

    /// Fails in both modes with the same error.
    fn both_err(resource: &Value, ops: Value, schema: &ResourceSchema) -> PatchError {
        let s = strict_err(resource, ops.clone(), schema);
        let l = lenient_err(resource, ops, schema);
        assert_eq!(s, l, "strict and lenient fail alike");
        s
    }

    fn user() -> Value {
        json!({
            "schemas": [USER_SCHEMA, EXT],
            "id": BABS,
            "externalId": "bjensen",
            "meta": {
                "resourceType": "User",
                "created": "2010-01-23T04:56:22Z",
                "lastModified": "2011-05-13T04:42:34Z",
                "version": "W/\"3694e05e9dff591\""
            },
            "userName": "bjensen@example.com",
            "name": {"familyName": "Jensen", "givenName": "Barbara"},
            "nickName": "Babs",
            "active": true,
            "emails": [
                {"value": "bjensen@example.com", "type": "work", "primary": true},
                {"value": "babs@jensen.org", "type": "home"}
            ],
            "addresses": [
                {
                    "type": "work",
                    "streetAddress": "100 Universal City Plaza",
                    "locality": "Hollywood",
                    "region": "CA",
                    "postalCode": "91608",
                    "country": "USA",
                    "primary": true
                },
                {
                    "type": "home",
                    "streetAddress": "456 Hollywood Blvd",
                    "locality": "Hollywood",
                    "region": "CA",
                    "postalCode": "91608",
                    "country": "USA"
                }
            ],
            "groups": [{"value": "e9e30dba-f08f-4109-8486-d5c6a331660a", "display": "Tour Guides"}],
            EXT: {
                "employeeNumber": "701984",
                "department": "Tour Operations",
                "manager": {"value": "26118915-6090-4610-87e4-49d8ca9f808d", "displayName": "John Smith"}
            }
        })
    }

    fn group() -> Value {
        json!({
            "schemas": [GROUP_SCHEMA],
            "id": "e9e30dba-f08f-4109-8486-d5c6a331660a",
            "displayName": "Tour Guides",
            "members": [
                {"value": BABS, "$ref": format!("https://example.com/v2/Users/{BABS}"), "display": "Babs Jensen"}
            ],
            "meta": {"resourceType": "Group", "lastModified": "2011-05-13T04:42:34Z"}
        })
    }

    fn member(id: &str, display: &str) -> Value {
        json!({"display": display, "$ref": format!("https://example.com/v2/Users/{id}"), "value": id})
    }

    // ---- RFC 7644 §3.5.2.1 add: the RFC's examples ----

    #[test]
    fn rfc7644_3_5_2_1_add_member_to_group() {
        let g = ok(
            &group(),
            json!([{"op": "add", "path": "members", "value": [member(JAMES, "James Smith")]}]),
            group_schema(),
        );
        assert_eq!(g["members"].as_array().map(Vec::len), Some(2));
        assert_eq!(g["members"][1], member(JAMES, "James Smith"));
    }

    #[test]
    fn rfc7644_3_5_2_1_adding_an_existing_member_changes_nothing() {
        let ops = json!([{"op": "add", "path": "members", "value": [member(BABS, "Babs Jensen")]}]);
        assert_eq!(ok(&group(), ops, group_schema()), group());
        // The member is identified by `value` however little of it is sent.
        let ops = json!([{"op": "add", "path": "members", "value": [{"value": BABS}]}]);
        assert_eq!(ok(&group(), ops, group_schema()), group());
    }

    #[test]
    fn rfc7644_3_5_2_1_add_without_path_adds_attributes() {
        let u = ok(
            &user(),
            json!([{"op": "add", "value": {
                "emails": [{"value": "babs@jensen.org", "type": "home"}, {"value": "babs@example.org", "type": "other"}],
                "nickname": "Barbie"
            }}]),
            user_schema(),
        );
        // One new email (the home one was already there); the existing
        // nickName is replaced, keeping its spelling.
        assert_eq!(u["emails"].as_array().map(Vec::len), Some(3));
        assert_eq!(u["emails"][2]["value"], "babs@example.org");
        assert_eq!(u["nickName"], "Barbie");
        assert!(u.get("nickname").is_none());
    }

    #[test]
    fn add_of_a_new_attribute_uses_the_schema_spelling() {
        let mut r = user();
        r.as_object_mut().map(|o| o.remove("nickName"));
        let u = ok(
            &r,
            json!([{"op": "add", "value": {"NICKNAME": "Babs"}}]),
            user_schema(),
        );
        assert_eq!(u["nickName"], "Babs");
        let u = ok(
            &r,
            json!([{"op": "add", "path": "Title", "value": "Guide"}]),
            user_schema(),
        );
        assert_eq!(u["title"], "Guide");
    }

    #[test]
    fn add_to_a_complex_attribute_merges_sub_attributes() {
        let u = ok(
            &user(),
            json!([{"op": "add", "path": "name", "value": {"givenName": "Babs", "middleName": "Jane"}}]),
            user_schema(),
        );
        assert_eq!(
            u["name"],
            json!({"familyName": "Jensen", "givenName": "Babs", "middleName": "Jane"})
        );
    }

    #[test]
    fn add_to_a_singular_attribute_replaces_it() {
        let u = ok(
            &user(),
            json!([{"op": "add", "path": "active", "value": false}]),
            user_schema(),
        );
        assert_eq!(u["active"], false);
    }

    #[test]
    fn add_of_a_sub_attribute_creates_the_complex_attribute() {
        let mut r = user();
        r.as_object_mut().map(|o| o.remove("name"));
        let u = ok(
            &r,
            json!([{"op": "add", "path": "name.givenName", "value": "Babs"}]),
            user_schema(),
        );
        assert_eq!(u["name"], json!({"givenName": "Babs"}));
    }

    #[test]
    fn add_of_one_value_to_a_multi_valued_attribute_appends_it() {
        let u = ok(
            &user(),
            json!([{"op": "add", "path": "emails", "value": {"value": "b@x.org", "type": "other"}}]),
            user_schema(),
        );
        assert_eq!(u["emails"][2], json!({"value": "b@x.org", "type": "other"}));
    }

    #[test]
    fn add_of_an_empty_array_adds_nothing_and_null_unassigns() {
        assert_eq!(
            ok(
                &user(),
                json!([{"op": "add", "path": "emails", "value": []}]),
                user_schema()
            ),
            user()
        );
        let u = ok(
            &user(),
            json!([{"op": "add", "path": "nickName", "value": null}]),
            user_schema(),
        );
        assert!(u.get("nickName").is_none());
    }

    #[test]
    fn add_of_a_duplicate_merges_into_the_existing_value() {
        // Same address under the attribute's caseExact (emails.value is not),
        // so the value is updated, not appended.
        let u = ok(
            &user(),
            json!([{"op": "add", "path": "emails", "value": [{"value": "BJensen@Example.com", "display": "Work"}]}]),
            user_schema(),
        );
        assert_eq!(u["emails"].as_array().map(Vec::len), Some(2));
        assert_eq!(u["emails"][0]["display"], "Work");
        assert_eq!(u["emails"][0]["type"], "work");
    }

    #[test]
    fn add_duplicate_detection_honours_case_exact() {
        let schema = ResourceSchema::new(
            "Device",
            None,
            vec![AttributeDef::complex(
                "keys",
                vec![AttributeDef::new("value", AttrType::String).with_case_exact()],
            )
            .with_multi_valued()],
            Vec::new(),
        );
        let r = json!({"keys": [{"value": "AbC"}]});
        let d = ok(
            &r,
            json!([{"op": "add", "path": "keys", "value": [{"value": "abc"}, {"value": "AbC"}]}]),
            &schema,
        );
        assert_eq!(d["keys"], json!([{"value": "AbC"}, {"value": "abc"}]));
    }

    #[test]
    fn add_of_values_without_a_value_sub_attribute_dedupes_on_all_of_them() {
        let home = user()["addresses"][1].clone();
        let u = ok(
            &user(),
            json!([{"op": "add", "path": "addresses", "value": [home]}]),
            user_schema(),
        );
        assert_eq!(u, user());
        let u = ok(
            &user(),
            json!([{"op": "add", "path": "addresses", "value": [{"type": "other", "locality": "Hollywood"}]}]),
            user_schema(),
        );
        assert_eq!(u["addresses"].as_array().map(Vec::len), Some(3));
    }

    #[test]
    fn add_through_a_filter_sets_the_sub_attribute_of_matching_values() {
        let u = ok(
            &user(),
            json!([{"op": "add", "path": "emails[type eq \"work\"].display", "value": "Office"}]),
            user_schema(),
        );
        assert_eq!(u["emails"][0]["display"], "Office");
        assert!(u["emails"][1].get("display").is_none());
    }

    #[test]
    fn add_through_a_filter_without_sub_attribute_merges_into_matching_values() {
        let u = ok(
            &user(),
            json!([{"op": "add", "path": "emails[type eq \"home\"]", "value": {"display": "Home"}}]),
            user_schema(),
        );
        assert_eq!(
            u["emails"][1],
            json!({"value": "babs@jensen.org", "type": "home", "display": "Home"})
        );
    }

    #[test]
    fn add_through_a_filter_that_matches_nothing_is_no_target_in_strict_mode() {
        let ops =
            json!([{"op": "add", "path": "emails[type eq \"other\"].value", "value": "o@x.org"}]);
        let e = strict_err(&user(), ops, user_schema());
        assert_eq!(e.scim_type, ScimType::NoTarget);
        assert_eq!(e.operation, Some(0));
    }

    #[test]
    fn entra_add_through_an_eq_filter_creates_the_value_in_lenient_mode() {
        let ops =
            json!([{"op": "Add", "path": "emails[type eq \"other\"].value", "value": "o@x.org"}]);
        let u = lenient(&user(), ops, user_schema());
        assert_eq!(u["emails"][2], json!({"type": "other", "value": "o@x.org"}));
        // And on a resource with no such attribute at all.
        let ops = json!([{"op": "Add", "path": "phoneNumbers[type eq \"work\"].value", "value": "555-0100"}]);
        let u = lenient(&user(), ops, user_schema());
        assert_eq!(
            u["phoneNumbers"],
            json!([{"type": "work", "value": "555-0100"}])
        );
        // Several eq terms, no sub-attribute.
        let ops = json!([{"op": "add", "path": "addresses[type eq \"other\" and country eq \"NL\"]", "value": {"locality": "Delft"}}]);
        let u = lenient(&user(), ops, user_schema());
        assert_eq!(
            u["addresses"][2],
            json!({"type": "other", "country": "NL", "locality": "Delft"})
        );
        // A filter that does not describe one value cannot create one.
        let ops =
            json!([{"op": "add", "path": "emails[type co \"oth\"].value", "value": "o@x.org"}]);
        assert_eq!(
            lenient_err(&user(), ops, user_schema()).scim_type,
            ScimType::NoTarget
        );
        let ops = json!([{"op": "add", "path": "emails[type eq \"a\" or type eq \"b\"].value", "value": "o@x.org"}]);
        assert_eq!(
            lenient_err(&user(), ops, user_schema()).scim_type,
            ScimType::NoTarget
        );
    }

    #[test]
    fn entra_created_primary_value_demotes_the_others() {
        let ops = json!([{"op": "Add", "path": "emails[type eq \"other\"]", "value": {"value": "o@x.org", "primary": "True"}}]);
        let u = lenient(&user(), ops, user_schema());
        assert_eq!(u["emails"][2]["primary"], true);
        assert_eq!(u["emails"][0]["primary"], false);
    }

    #[test]
    fn path_less_add_takes_sub_paths_and_extension_keys() {
        let u = ok(
            &user(),
            json!([{"op": "add", "value": {
                "name.middleName": "Jane",
                format!("{EXT}:costCenter"): "4130",
                EXT: {"division": "Theme Park", "manager": {"value": "m2"}}
            }}]),
            user_schema(),
        );
        assert_eq!(u["name"]["middleName"], "Jane");
        assert_eq!(u[EXT]["costCenter"], "4130");
        assert_eq!(u[EXT]["division"], "Theme Park");
        assert_eq!(u[EXT]["employeeNumber"], "701984");
        // The manager merged: its readOnly displayName stays.
        assert_eq!(
            u[EXT]["manager"],
            json!({"value": "m2", "displayName": "John Smith"})
        );
    }

    #[test]
    fn path_less_value_keys_cannot_carry_filters() {
        let e = both_err(
            &user(),
            json!([{"op": "add", "value": {"emails[type eq \"work\"].value": "x@y"}}]),
            user_schema(),
        );
        assert_eq!(e.scim_type, ScimType::InvalidPath);
    }

    // ---- Schema extensions ----

    #[test]
    fn adding_an_extension_attribute_lists_the_extension_in_schemas() {
        let mut r = user();
        if let Some(o) = r.as_object_mut() {
            o.remove(EXT);
            o.insert("schemas".into(), json!([USER_SCHEMA]));
        }
        let u = ok(
            &r,
            json!([{"op": "add", "path": format!("{EXT}:department"), "value": "Sales"}]),
            user_schema(),
        );
        assert_eq!(u[EXT], json!({"department": "Sales"}));
        assert_eq!(u["schemas"], json!([USER_SCHEMA, EXT]));
        // Adding more does not list it twice.
        let u2 = ok(
            &u,
            json!([{"op": "add", "path": format!("{EXT}:division"), "value": "East"}]),
            user_schema(),
        );
        assert_eq!(u2["schemas"], json!([USER_SCHEMA, EXT]));
        // Removing its last attribute removes the extension and its URN.
        let u3 = ok(
            &u,
            json!([{"op": "remove", "path": format!("{EXT}:department")}]),
            user_schema(),
        );
        assert!(u3.get(EXT).is_none());
        assert_eq!(u3["schemas"], json!([USER_SCHEMA]));
    }

    #[test]
    fn a_bare_extension_urn_path_targets_the_whole_extension() {
        let u = ok(
            &user(),
            json!([{"op": "add", "path": EXT, "value": {"costCenter": "4130"}}]),
            user_schema(),
        );
        assert_eq!(u[EXT]["costCenter"], "4130");
        assert_eq!(u[EXT]["employeeNumber"], "701984");
        let u = ok(
            &user(),
            json!([{"op": "remove", "path": EXT}]),
            user_schema(),
        );
        assert!(u.get(EXT).is_none());
        assert_eq!(u["schemas"], json!([USER_SCHEMA]));
    }

    #[test]
    fn extension_sub_attribute_paths() {
        let u = ok(
            &user(),
            json!([{"op": "replace", "path": format!("{EXT}:manager.value"), "value": "m2"}]),
            user_schema(),
        );
        assert_eq!(u[EXT]["manager"]["value"], "m2");
        let u = ok(
            &user(),
            json!([{"op": "remove", "path": format!("{EXT}:manager")}]),
            user_schema(),
        );
        assert!(u[EXT].get("manager").is_none());
    }

    #[test]
    fn unknown_extensions_are_kept_as_objects() {
        let urn = "urn:acme:scim:ext:1.0:User";
        let u = ok(
            &user(),
            json!([{"op": "add", "path": format!("{urn}:badges"), "value": [{"type": "door", "value": "B-1"}]}]),
            user_schema(),
        );
        assert_eq!(u[urn]["badges"], json!([{"type": "door", "value": "B-1"}]));
        assert_eq!(u["schemas"], json!([USER_SCHEMA, EXT, urn]));
        // Value filters on extension attributes.
        let u = ok(
            &u,
            json!([{"op": "replace", "path": format!("{urn}:badges[type eq \"door\"].value"), "value": "B-2"}]),
            user_schema(),
        );
        assert_eq!(u[urn]["badges"], json!([{"type": "door", "value": "B-2"}]));
        let u = ok(
            &u,
            json!([{"op": "remove", "path": format!("{urn}:badges[value eq \"b-2\"]")}]),
            user_schema(),
        );
        assert!(u.get(urn).is_none());
        assert_eq!(u["schemas"], json!([USER_SCHEMA, EXT]));
    }

    #[test]
    fn core_schema_urn_qualified_paths_reach_core_attributes() {
        let u = ok(
            &user(),
            json!([{"op": "replace", "path": format!("{USER_SCHEMA}:name.givenName"), "value": "Babs"}]),
            user_schema(),
        );
        assert_eq!(u["name"]["givenName"], "Babs");
        assert!(u.get(USER_SCHEMA).is_none());
    }

    // ---- RFC 7644 §3.5.2.2 remove: the RFC's examples ----

    #[test]
    fn rfc7644_3_5_2_2_remove_a_single_member() {
        let mut g = group();
        g["members"] = json!([member(BABS, "Babs Jensen"), member(JAMES, "James Smith")]);
        let out = ok(
            &g,
            json!([{"op": "remove", "path": format!("members[value eq \"{BABS}\"]")}]),
            group_schema(),
        );
        assert_eq!(out["members"], json!([member(JAMES, "James Smith")]));
    }

    #[test]
    fn rfc7644_3_5_2_2_remove_all_members() {
        let out = ok(
            &group(),
            json!([{"op": "remove", "path": "members"}]),
            group_schema(),
        );
        assert!(out.get("members").is_none());
    }

    #[test]
    fn rfc7644_3_5_2_2_remove_by_complex_filter() {
        let u = ok(
            &user(),
            json!([{"op": "remove", "path": "emails[type eq \"work\" and value ew \"example.com\"]"}]),
            user_schema(),
        );
        assert_eq!(
            u["emails"],
            json!([{"value": "babs@jensen.org", "type": "home"}])
        );
    }

    #[test]
    fn rfc7644_3_5_2_2_remove_all_then_add_replaces_members() {
        let out = ok(
            &group(),
            json!([
                {"op": "remove", "path": "members"},
                {"op": "add", "path": "members", "value": [member(BABS, "Babs Jensen"), member(JAMES, "James Smith")]}
            ]),
            group_schema(),
        );
        assert_eq!(
            out["members"],
            json!([member(BABS, "Babs Jensen"), member(JAMES, "James Smith")])
        );
    }

    #[test]
    fn remove_without_a_path_is_no_target() {
        let e = both_err(&user(), json!([{"op": "remove"}]), user_schema());
        assert_eq!(e.scim_type, ScimType::NoTarget);
    }

    #[test]
    fn removing_the_last_value_unassigns_the_attribute() {
        let out = ok(
            &group(),
            json!([{"op": "remove", "path": format!("members[value eq \"{BABS}\"]")}]),
            group_schema(),
        );
        assert!(out.get("members").is_none());
    }

    #[test]
    fn remove_of_a_sub_attribute_of_matching_values() {
        let u = ok(
            &user(),
            json!([{"op": "remove", "path": "emails[type eq \"work\"].primary"}]),
            user_schema(),
        );
        assert_eq!(
            u["emails"][0],
            json!({"value": "bjensen@example.com", "type": "work"})
        );
        // Without a filter: from every value.
        let u = ok(
            &user(),
            json!([{"op": "remove", "path": "emails.type"}]),
            user_schema(),
        );
        assert_eq!(
            u["emails"],
            json!([{"value": "bjensen@example.com", "primary": true}, {"value": "babs@jensen.org"}])
        );
    }

    #[test]
    fn a_value_left_with_no_sub_attributes_is_removed() {
        let r = json!({"schemas": [USER_SCHEMA], "userName": "u", "emails": [{"value": "a@x"}, {"value": "b@x", "type": "home"}]});
        let u = ok(
            &r,
            json!([{"op": "remove", "path": "emails[value eq \"a@x\"].value"}]),
            user_schema(),
        );
        assert_eq!(u["emails"], json!([{"value": "b@x", "type": "home"}]));
    }

    #[test]
    fn remove_of_a_complex_sub_attribute() {
        let u = ok(
            &user(),
            json!([{"op": "remove", "path": "name.givenName"}]),
            user_schema(),
        );
        assert_eq!(u["name"], json!({"familyName": "Jensen"}));
        // Removing the last sub-attribute unassigns the complex attribute.
        let u = ok(
            &u,
            json!([{"op": "remove", "path": "NAME.FAMILYNAME"}]),
            user_schema(),
        );
        assert!(u.get("name").is_none());
    }

    #[test]
    fn remove_of_an_absent_attribute_is_a_no_op() {
        assert_eq!(
            ok(
                &user(),
                json!([{"op": "remove", "path": "title"}]),
                user_schema()
            ),
            user()
        );
        assert_eq!(
            ok(
                &user(),
                json!([{"op": "remove", "path": "x509Certificates"}]),
                user_schema()
            ),
            user()
        );
        assert_eq!(
            ok(
                &user(),
                json!([{"op": "remove", "path": "nosuch.sub"}]),
                user_schema()
            ),
            user()
        );
        assert_eq!(
            ok(
                &user(),
                json!([{"op": "remove", "path": "phoneNumbers.type"}]),
                user_schema()
            ),
            user()
        );
    }

    #[test]
    fn remove_through_a_filter_that_matches_nothing() {
        let ops = json!([{"op": "remove", "path": "members[value eq \"nobody\"]"}]);
        let e = strict_err(&group(), ops.clone(), group_schema());
        assert_eq!(e.scim_type, ScimType::NoTarget);
        assert!(e.detail.contains("members"), "{e}");
        // Lenient: an idempotent no-op.
        assert_eq!(lenient(&group(), ops, group_schema()), group());
        let ops = json!([{"op": "remove", "path": "phoneNumbers[type eq \"fax\"]"}]);
        assert_eq!(
            strict_err(&user(), ops.clone(), user_schema()).scim_type,
            ScimType::NoTarget
        );
        assert_eq!(lenient(&user(), ops, user_schema()), user());
    }

    #[test]
    fn removing_a_required_attribute_is_a_mutability_error() {
        let e = both_err(
            &user(),
            json!([{"op": "remove", "path": "userName"}]),
            user_schema(),
        );
        assert_eq!(e.scim_type, ScimType::Mutability);
        assert!(e.detail.contains("required"), "{e}");
        // Unassigning it any other way is the same.
        let e = both_err(
            &user(),
            json!([{"op": "replace", "path": "userName", "value": null}]),
            user_schema(),
        );
        assert_eq!(e.scim_type, ScimType::Mutability);
        let e = both_err(
            &user(),
            json!([{"op": "replace", "value": {"schemas": []}}]),
            user_schema(),
        );
        assert_eq!(e.scim_type, ScimType::Mutability);
    }

    #[test]
    fn required_follows_the_8_7_1_schema_over_the_prose() {
        // Group displayName: §4.2 prose says REQUIRED, §8.7.1 "required": false.
        let g = ok(
            &group(),
            json!([{"op": "remove", "path": "displayName"}]),
            group_schema(),
        );
        assert!(g.get("displayName").is_none());
        // manager.value: §8.7.1 "required": false (its description says
        // "REQUIRED.", §4.3's prose RECOMMENDED).
        let u = ok(
            &user(),
            json!([{"op": "remove", "path": format!("{EXT}:manager.value")}]),
            user_schema(),
        );
        assert_eq!(u[EXT]["manager"], json!({"displayName": "John Smith"}));
    }

    #[test]
    fn removing_a_read_only_attribute_is_a_mutability_error() {
        for path in [
            "id",
            "meta",
            "meta.lastModified",
            "groups",
            format!("{EXT}:manager.displayName").as_str(),
        ] {
            let e = both_err(
                &user(),
                json!([{"op": "remove", "path": path}]),
                user_schema(),
            );
            assert_eq!(e.scim_type, ScimType::Mutability, "{path}");
        }
        let e = both_err(
            &group(),
            json!([{"op": "remove", "path": "id"}]),
            group_schema(),
        );
        assert_eq!(e.scim_type, ScimType::Mutability);
    }

    // ---- RFC 7644 §3.5.2.3 replace: the RFC's examples ----

    #[test]
    fn rfc7644_3_5_2_3_replace_all_members() {
        let out = ok(
            &group(),
            json!([{"op": "replace", "path": "members", "value": [member(BABS, "Babs Jensen"), member(JAMES, "James Smith")]}]),
            group_schema(),
        );
        assert_eq!(
            out["members"],
            json!([member(BABS, "Babs Jensen"), member(JAMES, "James Smith")])
        );
    }

    #[test]
    fn rfc7644_3_5_2_3_replace_a_work_address() {
        let address = json!({
            "type": "work",
            "streetAddress": "911 Universal City Plaza",
            "locality": "Hollywood",
            "region": "CA",
            "postalCode": "91608",
            "country": "US",
            "formatted": "911 Universal City Plaza\nHollywood, CA 91608 US",
            "primary": true
        });
        let u = ok(
            &user(),
            json!([{"op": "replace", "path": "addresses[type eq \"work\"]", "value": address}]),
            user_schema(),
        );
        assert_eq!(u["addresses"][0], address);
        assert_eq!(u["addresses"][1], user()["addresses"][1]);
    }

    #[test]
    fn rfc7644_3_5_2_3_replace_a_sub_attribute_of_matching_values() {
        let u = ok(
            &user(),
            json!([{"op": "replace", "path": "addresses[type eq \"work\"].streetAddress", "value": "1010 Broadway Ave"}]),
            user_schema(),
        );
        assert_eq!(u["addresses"][0]["streetAddress"], "1010 Broadway Ave");
        assert_eq!(u["addresses"][0]["locality"], "Hollywood");
        assert_eq!(u["addresses"][1], user()["addresses"][1]);
    }

    #[test]
    fn rfc7644_3_5_2_3_replace_without_path() {
        let u = ok(
            &user(),
            json!([{"op": "replace", "value": {
                "emails": [
                    {"value": "bjensen@example.com", "type": "work", "primary": true},
                    {"value": "babs@jensen.org", "type": "home"}
                ],
                "nickname": "Babs"
            }}]),
            user_schema(),
        );
        assert_eq!(u, user());
        let u = ok(
            &user(),
            json!([{"op": "replace", "value": {"emails": [{"value": "new@example.com", "type": "work"}], "nickname": "B"}}]),
            user_schema(),
        );
        assert_eq!(
            u["emails"],
            json!([{"value": "new@example.com", "type": "work"}])
        );
        assert_eq!(u["nickName"], "B");
        assert_eq!(u["name"], user()["name"], "other attributes are unaffected");
    }

    #[test]
    fn replace_of_an_absent_attribute_adds_it() {
        let u = ok(
            &user(),
            json!([{"op": "replace", "path": "title", "value": "Guide"}]),
            user_schema(),
        );
        assert_eq!(u["title"], "Guide");
        let u = ok(
            &user(),
            json!([{"op": "replace", "path": "phoneNumbers", "value": [{"value": "555"}]}]),
            user_schema(),
        );
        assert_eq!(u["phoneNumbers"], json!([{"value": "555"}]));
    }

    #[test]
    fn replace_of_a_complex_attribute_leaves_unspecified_sub_attributes() {
        let u = ok(
            &user(),
            json!([{"op": "replace", "path": "name", "value": {"givenName": "Babs"}}]),
            user_schema(),
        );
        assert_eq!(
            u["name"],
            json!({"familyName": "Jensen", "givenName": "Babs"})
        );
        let u = ok(
            &user(),
            json!([{"op": "replace", "path": "name", "value": {"givenName": null}}]),
            user_schema(),
        );
        assert_eq!(u["name"], json!({"familyName": "Jensen"}));
    }

    #[test]
    fn replace_through_a_filter_that_matches_nothing_is_no_target() {
        // Both modes: §3.5.2.3 says SHALL.
        let ops =
            json!([{"op": "replace", "path": "emails[type eq \"other\"].value", "value": "x@y"}]);
        let e = both_err(&user(), ops, user_schema());
        assert_eq!(e.scim_type, ScimType::NoTarget);
        let ops = json!([{"op": "replace", "path": "phoneNumbers[type eq \"work\"]", "value": {"value": "1"}}]);
        assert_eq!(
            both_err(&user(), ops, user_schema()).scim_type,
            ScimType::NoTarget
        );
    }

    #[test]
    fn replace_with_null_or_empty_array_unassigns() {
        let u = ok(
            &user(),
            json!([{"op": "replace", "path": "emails", "value": []}]),
            user_schema(),
        );
        assert!(u.get("emails").is_none());
        let u = ok(
            &user(),
            json!([{"op": "replace", "path": "nickName", "value": null}]),
            user_schema(),
        );
        assert!(u.get("nickName").is_none());
    }

    #[test]
    fn replace_of_every_value_sub_attribute() {
        let u = ok(
            &user(),
            json!([{"op": "replace", "path": "emails.type", "value": "other"}]),
            user_schema(),
        );
        assert_eq!(u["emails"][0]["type"], "other");
        assert_eq!(u["emails"][1]["type"], "other");
        let e = both_err(
            &user(),
            json!([{"op": "replace", "path": "phoneNumbers.type", "value": "x"}]),
            user_schema(),
        );
        assert_eq!(e.scim_type, ScimType::NoTarget);
    }

    #[test]
    fn replace_through_a_filter_merges_into_matching_values() {
        // §3.5.2.3: "Sub-attributes that are not specified in the value
        // parameter are left unchanged".
        let u = ok(
            &user(),
            json!([{"op": "replace", "path": "addresses[type eq \"work\"]", "value": {"streetAddress": "1010 Broadway Ave"}}]),
            user_schema(),
        );
        let mut work = user()["addresses"][0].clone();
        work["streetAddress"] = json!("1010 Broadway Ave");
        assert_eq!(u["addresses"], json!([work, user()["addresses"][1]]));
        // Every matching value, and `null` unassigns a sub-attribute.
        let u = ok(
            &user(),
            json!([{"op": "replace", "path": "addresses[locality eq \"Hollywood\"]", "value": {"region": null, "country": "US"}}]),
            user_schema(),
        );
        for a in u["addresses"].as_array().expect("addresses") {
            assert!(a.get("region").is_none(), "{a}");
            assert_eq!(a["country"], "US");
            assert_eq!(a["postalCode"], "91608");
        }
        // A member's immutable `value` is left as it is, so this is no
        // rewrite of the member.
        let ops = json!([{"op": "replace", "path": format!("members[value eq \"{BABS}\"]"), "value": {"display": "Barbara"}}]);
        let g = ok(&group(), ops, group_schema());
        let mut babs = member(BABS, "Barbara");
        babs["$ref"] = group()["members"][0]["$ref"].clone();
        assert_eq!(g["members"], json!([babs]));
        // Lenient: a bare value of a complex attribute is its `value`.
        let u = lenient(
            &user(),
            json!([{"op": "replace", "path": "emails[type eq \"home\"]", "value": "babs@example.net"}]),
            user_schema(),
        );
        assert_eq!(
            u["emails"][1],
            json!({"value": "babs@example.net", "type": "home"})
        );
    }

    #[test]
    fn replace_through_a_filter_collapses_values_made_identical() {
        let r = json!({"schemas": [USER_SCHEMA], "userName": "u", "emails": [
            {"value": "a@x", "type": "work"}, {"value": "b@x", "type": "work"}, {"value": "c@x", "type": "home"}
        ]});
        let u = ok(
            &r,
            json!([{"op": "replace", "path": "emails[type eq \"work\"]", "value": {"value": "w@x", "type": "work"}}]),
            user_schema(),
        );
        assert_eq!(
            u["emails"],
            json!([{"value": "w@x", "type": "work"}, {"value": "c@x", "type": "home"}])
        );
    }

    #[test]
    fn replace_of_a_filtered_value_takes_one_value() {
        let e = both_err(
            &user(),
            json!([{"op": "replace", "path": "emails[type eq \"work\"]", "value": [{"value": "a@x"}]}]),
            user_schema(),
        );
        assert_eq!(e.scim_type, ScimType::InvalidValue);
    }

    #[test]
    fn filters_in_paths_may_be_compound_and_nested() {
        let u = ok(
            &user(),
            json!([{"op": "replace", "path": "emails[type eq \"work\" and not (value ew \"@jensen.org\")].display", "value": "W"}]),
            user_schema(),
        );
        assert_eq!(u["emails"][0]["display"], "W");
        assert!(u["emails"][1].get("display").is_none());
        let r = json!({"devices": [
            {"kind": "laptop", "ports": [{"type": "usb"}, {"type": "hdmi"}]},
            {"kind": "phone", "ports": [{"type": "usb-c"}]}
        ]});
        let d = ok(
            &r,
            json!([{"op": "replace", "path": "devices[ports[type eq \"hdmi\"] or kind eq \"tablet\"].kind", "value": "workstation"}]),
            ResourceSchema::for_type("Device"),
        );
        assert_eq!(d["devices"][0]["kind"], "workstation");
        assert_eq!(d["devices"][1]["kind"], "phone");
    }

    // ---- Case rules ----

    #[test]
    fn attribute_names_match_case_insensitively_and_keep_the_resource_spelling() {
        let r = json!({"schemas": [USER_SCHEMA], "UserName": "u", "Name": {"GivenName": "B"}, "Emails": [{"Value": "a@x", "Type": "work"}]});
        let u = ok(
            &r,
            json!([
                {"op": "replace", "path": "username", "value": "v"},
                {"op": "replace", "path": "name.givenname", "value": "C"},
                {"op": "replace", "path": "emails[TYPE eq \"WORK\"].VALUE", "value": "b@x"}
            ]),
            user_schema(),
        );
        assert_eq!(
            u,
            json!({"schemas": [USER_SCHEMA], "UserName": "v", "Name": {"GivenName": "C"}, "Emails": [{"Value": "b@x", "Type": "work"}]})
        );
    }

    #[test]
    fn filters_in_paths_compare_under_case_exact() {
        // `id` and `externalId` are caseExact; a custom multi-valued
        // attribute with a caseExact value shows the difference in a path.
        let schema = ResourceSchema::new(
            "Device",
            None,
            vec![AttributeDef::complex(
                "keys",
                vec![AttributeDef::new("value", AttrType::String).with_case_exact()],
            )
            .with_multi_valued()],
            Vec::new(),
        );
        let r = json!({"keys": [{"value": "AbC"}, {"value": "abc"}]});
        let d = ok(
            &r,
            json!([{"op": "remove", "path": "keys[value eq \"abc\"]"}]),
            &schema,
        );
        assert_eq!(d["keys"], json!([{"value": "AbC"}]));
        // emails.value is not caseExact.
        let u = ok(
            &user(),
            json!([{"op": "remove", "path": "emails[value eq \"BJENSEN@EXAMPLE.COM\"]"}]),
            user_schema(),
        );
        assert_eq!(u["emails"].as_array().map(Vec::len), Some(1));
    }

    // ---- primary ----

    #[test]
    fn adding_a_primary_value_demotes_the_previous_primary() {
        let u = ok(
            &user(),
            json!([{"op": "add", "path": "emails", "value": [{"value": "new@example.com", "type": "work", "primary": true}]}]),
            user_schema(),
        );
        assert_eq!(u["emails"][0]["primary"], false);
        assert_eq!(u["emails"][2]["primary"], true);
        // Values that had no `primary` do not gain one.
        assert!(u["emails"][1].get("primary").is_none());
    }

    #[test]
    fn replacing_primary_through_a_filter_demotes_the_others() {
        let u = ok(
            &user(),
            json!([{"op": "replace", "path": "emails[type eq \"home\"].primary", "value": true}]),
            user_schema(),
        );
        assert_eq!(u["emails"][0]["primary"], false);
        assert_eq!(u["emails"][1]["primary"], true);
        let u = ok(
            &user(),
            json!([{"op": "replace", "path": "addresses[type eq \"home\"]", "value": {"type": "home", "locality": "LA", "primary": true}}]),
            user_schema(),
        );
        assert_eq!(u["addresses"][0]["primary"], false);
        assert_eq!(u["addresses"][1]["primary"], true);
    }

    #[test]
    fn merging_a_primary_into_an_existing_value_demotes_the_others() {
        let u = ok(
            &user(),
            json!([{"op": "add", "path": "emails", "value": [{"value": "babs@jensen.org", "primary": true}]}]),
            user_schema(),
        );
        assert_eq!(u["emails"][0]["primary"], false);
        assert_eq!(u["emails"][1]["primary"], true);
        assert_eq!(u["emails"].as_array().map(Vec::len), Some(2));
    }

    #[test]
    fn two_primary_values_are_invalid() {
        let ops = json!([{"op": "add", "path": "emails", "value": [
            {"value": "a@x", "primary": true}, {"value": "b@x", "primary": true}
        ]}]);
        assert_eq!(
            both_err(&user(), ops, user_schema()).scim_type,
            ScimType::InvalidValue
        );
        let ops = json!([{"op": "replace", "path": "emails", "value": [
            {"value": "a@x", "primary": true}, {"value": "b@x", "primary": true}
        ]}]);
        assert_eq!(
            both_err(&user(), ops, user_schema()).scim_type,
            ScimType::InvalidValue
        );
        // A filter that makes two values primary.
        let ops = json!([{"op": "replace", "path": "emails[value pr].primary", "value": true}]);
        assert_eq!(
            both_err(&user(), ops, user_schema()).scim_type,
            ScimType::InvalidValue
        );
    }

    #[test]
    fn setting_primary_false_demotes_nothing_else() {
        let u = ok(
            &user(),
            json!([{"op": "replace", "path": "emails[type eq \"work\"].primary", "value": false}]),
            user_schema(),
        );
        assert_eq!(u["emails"][0]["primary"], false);
        assert!(u["emails"][1].get("primary").is_none());
    }

    // ---- Mutability ----

    #[test]
    fn modifying_read_only_attributes_is_a_mutability_error() {
        for (path, value) in [
            ("id", json!("other")),
            ("meta.lastModified", json!("2020-01-01T00:00:00Z")),
            ("meta", json!({"version": "W/\"x\""})),
            ("groups", json!([{"value": "g2"}])),
        ] {
            for op in ["add", "replace"] {
                let e = both_err(
                    &user(),
                    json!([{"op": op, "path": path, "value": value}]),
                    user_schema(),
                );
                assert_eq!(e.scim_type, ScimType::Mutability, "{op} {path}");
            }
        }
        let e = both_err(
            &user(),
            json!([{"op": "replace", "path": "groups[display eq \"Tour Guides\"].display", "value": "X"}]),
            user_schema(),
        );
        assert_eq!(e.scim_type, ScimType::Mutability);
    }

    #[test]
    fn read_only_attributes_set_to_their_current_value_are_accepted() {
        let u = ok(
            &user(),
            json!([{"op": "replace", "path": "id", "value": BABS}]),
            user_schema(),
        );
        assert_eq!(u, user());
        let u = ok(
            &user(),
            json!([{"op": "replace", "value": {"id": BABS, "active": false}}]),
            user_schema(),
        );
        assert_eq!(u["active"], false);
    }

    #[test]
    fn immutable_attributes_take_a_first_value_only() {
        let mut attrs = common_attributes();
        attrs.push(
            AttributeDef::new("serialNumber", AttrType::String)
                .with_mutability(Mutability::Immutable),
        );
        let schema = ResourceSchema::new("Device", None, attrs, Vec::new());
        let d = ok(
            &json!({}),
            json!([{"op": "add", "path": "serialNumber", "value": "SN1"}]),
            &schema,
        );
        assert_eq!(d["serialNumber"], "SN1");
        // The same value again changes nothing; under caseExact: false
        // another spelling is the same value, so it is accepted too.
        assert_eq!(
            ok(
                &d,
                json!([{"op": "replace", "path": "serialNumber", "value": "SN1"}]),
                &schema
            ),
            d
        );
        ok(
            &d,
            json!([{"op": "replace", "path": "serialNumber", "value": "sn1"}]),
            &schema,
        );
        for ops in [
            json!([{"op": "replace", "path": "serialNumber", "value": "SN2"}]),
            json!([{"op": "add", "path": "serialNumber", "value": "SN2"}]),
            json!([{"op": "remove", "path": "serialNumber"}]),
            json!([{"op": "replace", "value": {"serialNumber": "SN2"}}]),
        ] {
            assert_eq!(both_err(&d, ops, &schema).scim_type, ScimType::Mutability);
        }
    }

    #[test]
    fn group_members_are_added_and_removed_but_not_rewritten() {
        let ops = json!([{"op": "replace", "path": format!("members[value eq \"{BABS}\"].value"), "value": JAMES}]);
        let e = both_err(&group(), ops, group_schema());
        assert_eq!(e.scim_type, ScimType::Mutability);
        assert!(e.detail.contains("immutable"), "{e}");
        let ops = json!([{"op": "replace", "path": format!("members[value eq \"{BABS}\"]"), "value": {"value": JAMES}}]);
        assert_eq!(
            both_err(&group(), ops, group_schema()).scim_type,
            ScimType::Mutability
        );
        let ops = json!([{"op": "remove", "path": format!("members[value eq \"{BABS}\"].$ref")}]);
        assert_eq!(
            both_err(&group(), ops, group_schema()).scim_type,
            ScimType::Mutability
        );
        // Sub-attributes the schema does not define are not constrained.
        let ops = json!([{"op": "replace", "path": format!("members[value eq \"{BABS}\"].display"), "value": "Babs"}]);
        assert_eq!(
            ok(&group(), ops, group_schema())["members"][0]["display"],
            "Babs"
        );
    }

    #[test]
    fn write_only_attributes_can_be_set() {
        let u = ok(
            &user(),
            json!([{"op": "replace", "path": "password", "value": "t1meMa$heen"}]),
            user_schema(),
        );
        assert_eq!(u["password"], "t1meMa$heen");
    }

    #[test]
    fn path_less_replace_with_read_only_keys() {
        let ops = json!([{"op": "replace", "value": {
            "id": "something-else",
            "meta": {"lastModified": "2030-01-01T00:00:00Z"},
            "groups": [],
            "active": false
        }}]);
        // Strict: the RFC forbids it.
        assert_eq!(
            strict_err(&user(), ops.clone(), user_schema()).scim_type,
            ScimType::Mutability
        );
        // Lenient: the readOnly keys are ignored, the rest applies.
        let u = lenient(&user(), ops, user_schema());
        let mut expected = user();
        expected["active"] = json!(false);
        assert_eq!(u, expected);
    }

    #[test]
    fn read_only_sub_attributes_inside_a_value() {
        let ops = json!([{"op": "replace", "path": format!("{EXT}:manager"), "value": {"value": "m2", "displayName": "Boss"}}]);
        assert_eq!(
            strict_err(&user(), ops.clone(), user_schema()).scim_type,
            ScimType::Mutability
        );
        let u = lenient(&user(), ops, user_schema());
        assert_eq!(
            u[EXT]["manager"],
            json!({"value": "m2", "displayName": "John Smith"})
        );
        // Naming the readOnly sub-attribute in the path fails in both.
        let ops = json!([{"op": "replace", "path": format!("{EXT}:manager.displayName"), "value": "Boss"}]);
        assert_eq!(
            both_err(&user(), ops, user_schema()).scim_type,
            ScimType::Mutability
        );
    }

    // ---- Atomicity and sequencing ----

    #[test]
    fn a_failing_operation_fails_the_whole_request() {
        let before = user();
        let ops = json!([
            {"op": "replace", "path": "nickName", "value": "B"},
            {"op": "remove", "path": "emails"},
            {"op": "replace", "path": "id", "value": "x"}
        ]);
        let e = both_err(&before, ops, user_schema());
        assert_eq!(e.operation, Some(2));
        assert_eq!(e.scim_type, ScimType::Mutability);
        assert_eq!(before, user(), "the input is untouched");
    }

    #[test]
    fn operations_apply_in_order_each_to_the_previous_result() {
        let u = ok(
            &user(),
            json!([
                {"op": "add", "path": "title", "value": "Guide"},
                {"op": "replace", "path": "title", "value": "Senior Guide"},
                {"op": "add", "path": "emails", "value": [{"value": "c@x", "type": "other"}]},
                {"op": "remove", "path": "emails[type eq \"other\"]"},
                {"op": "remove", "path": "nickName"}
            ]),
            user_schema(),
        );
        let mut expected = user();
        expected["title"] = json!("Senior Guide");
        expected.as_object_mut().map(|o| o.remove("nickName"));
        assert_eq!(u, expected);
    }

    // ---- Error types ----

    #[test]
    fn scim_types_have_the_rfc_tokens() {
        assert_eq!(ScimType::InvalidSyntax.as_str(), "invalidSyntax");
        assert_eq!(ScimType::InvalidPath.as_str(), "invalidPath");
        assert_eq!(ScimType::NoTarget.as_str(), "noTarget");
        assert_eq!(ScimType::InvalidFilter.as_str(), "invalidFilter");
        assert_eq!(ScimType::InvalidValue.as_str(), "invalidValue");
        assert_eq!(ScimType::Mutability.as_str(), "mutability");
        assert_eq!(ScimType::NoTarget.to_string(), "noTarget");
    }

    #[test]
    fn errors_display_type_operation_and_detail() {
        let e = both_err(
            &user(),
            json!([{"op": "replace", "path": "id", "value": "x"}]),
            user_schema(),
        );
        assert_eq!(
            e.to_string(),
            format!("mutability in operation 0: {}", e.detail)
        );
        let e = both_err(&user(), json!({}), user_schema());
        assert_eq!(e.operation, None);
        assert!(e.to_string().starts_with("invalidSyntax: "), "{e}");
    }

    #[test]
    fn malformed_requests_are_invalid_syntax() {
        let r = user();
        let s = user_schema();
        for req in [
            json!("not an object"),
            json!({"schemas": [PATCH_OP_SCHEMA]}),
            json!({"schemas": [PATCH_OP_SCHEMA], "Operations": {}}),
            json!({"schemas": [PATCH_OP_SCHEMA], "Operations": []}),
            json!({"schemas": [PATCH_OP_SCHEMA], "Operations": ["add"]}),
            json!({"schemas": [PATCH_OP_SCHEMA], "Operations": [{"path": "title"}]}),
            json!({"schemas": [PATCH_OP_SCHEMA], "Operations": [{"op": 1}]}),
            json!({"schemas": [PATCH_OP_SCHEMA], "Operations": [{"op": "move", "path": "title"}]}),
        ] {
            for compat in [Compat::Strict, Compat::Lenient] {
                let e = apply(&r, &req, s, &PatchOptions { compat })
                    .expect_err("malformed request fails");
                assert_eq!(e.scim_type, ScimType::InvalidSyntax, "{req} {compat:?}");
            }
        }
        let e = apply(
            &json!([]),
            &request(json!([{"op": "add", "value": {}}])),
            s,
            &PatchOptions::default(),
        )
        .expect_err("the resource must be an object");
        assert_eq!(e.scim_type, ScimType::InvalidSyntax);
    }

    #[test]
    fn malformed_paths_are_invalid_path() {
        for path in [
            "",
            "name.",
            "1abc",
            "name.givenName.x",
            "emails]",
            "emails value",
            "name[givenName eq \"x\"]",
            "userName.x",
        ] {
            let e = both_err(
                &user(),
                json!([{"op": "replace", "path": path, "value": "x"}]),
                user_schema(),
            );
            assert_eq!(e.scim_type, ScimType::InvalidPath, "{path}: {e}");
        }
        let e = both_err(&user(), json!([{"op": "remove", "path": 7}]), user_schema());
        assert_eq!(e.scim_type, ScimType::InvalidPath);
    }

    #[test]
    fn malformed_filters_in_paths_are_invalid_filter() {
        for path in [
            "emails[type]",
            "emails[type eq \"work\"",
            "emails[type xx \"work\"]",
            "emails[type eq work]",
            "emails[]",
        ] {
            let e = both_err(
                &user(),
                json!([{"op": "remove", "path": path}]),
                user_schema(),
            );
            assert_eq!(e.scim_type, ScimType::InvalidFilter, "{path}: {e}");
            assert!(e.detail.contains("position"), "{e}");
        }
    }

    #[test]
    fn values_of_the_wrong_type_are_invalid_value() {
        for (path, value) in [
            ("active", json!("yes")),
            ("active", json!(1)),
            ("userName", json!(42)),
            ("userName", json!(["a", "b"])),
            ("name", json!("Barbara Jensen")),
            ("emails", json!(["a@x"])),
            ("emails", json!([{"value": 5}])),
            ("emails[type eq \"work\"].primary", json!("sometimes")),
        ] {
            let e = strict_err(
                &user(),
                json!([{"op": "replace", "path": path, "value": value}]),
                user_schema(),
            );
            assert_eq!(e.scim_type, ScimType::InvalidValue, "{path} = {value}: {e}");
        }
        for ops in [
            json!([{"op": "add", "path": "title"}]),
            json!([{"op": "replace"}]),
            json!([{"op": "add", "value": "not an object"}]),
            json!([{"op": "add", "value": ["a"]}]),
        ] {
            assert_eq!(
                both_err(&user(), ops.clone(), user_schema()).scim_type,
                ScimType::InvalidValue,
                "{ops}"
            );
        }
    }

    #[test]
    fn integer_decimal_and_date_time_values_are_checked() {
        let mut attrs = common_attributes();
        attrs.extend([
            AttributeDef::new("count", AttrType::Integer),
            AttributeDef::new("ratio", AttrType::Decimal),
            AttributeDef::new("since", AttrType::DateTime),
        ]);
        let schema = ResourceSchema::new("Device", None, attrs, Vec::new());
        let d = ok(
            &json!({}),
            json!([{"op": "add", "value": {"count": 3, "ratio": 0.5, "since": "2024-01-01T00:00:00Z"}}]),
            &schema,
        );
        assert_eq!(
            d,
            json!({"count": 3, "ratio": 0.5, "since": "2024-01-01T00:00:00Z"})
        );
        for (path, value) in [
            ("count", json!(1.5)),
            ("count", json!("3")),
            ("ratio", json!("0.5")),
            ("since", json!("yesterday")),
        ] {
            let e = strict_err(
                &json!({}),
                json!([{"op": "add", "path": path, "value": value}]),
                &schema,
            );
            assert_eq!(e.scim_type, ScimType::InvalidValue, "{path}");
        }
    }

    #[test]
    fn a_filter_on_a_singular_attribute_is_invalid_path() {
        let e = both_err(
            &user(),
            json!([{"op": "replace", "path": "nickName[value eq \"Babs\"]", "value": "B"}]),
            user_schema(),
        );
        assert_eq!(e.scim_type, ScimType::InvalidPath);
    }

    // ---- Compatibility modes ----

    #[test]
    fn default_options_are_lenient() {
        assert_eq!(PatchOptions::default().compat, Compat::Lenient);
        assert_eq!(PatchOptions::lenient(), PatchOptions::default());
        assert_eq!(PatchOptions::strict().compat, Compat::Strict);
    }

    #[test]
    fn entra_capitalised_op_names() {
        let ops = json!([
            {"op": "Replace", "path": "nickName", "value": "B"},
            {"op": "Add", "path": "title", "value": "T"},
            {"op": "REMOVE", "path": "externalId"}
        ]);
        let e = strict_err(&user(), ops.clone(), user_schema());
        assert_eq!(e.scim_type, ScimType::InvalidSyntax);
        assert!(e.detail.contains("\"Replace\""), "{e}");
        let u = lenient(&user(), ops, user_schema());
        assert_eq!((&u["nickName"], &u["title"]), (&json!("B"), &json!("T")));
        assert!(u.get("externalId").is_none());
    }

    #[test]
    fn entra_remove_with_a_value_removes_only_the_listed_members() {
        let mut g = group();
        g["members"] = json!([member(BABS, "Babs Jensen"), member(JAMES, "James Smith")]);
        let ops = json!([{"op": "Remove", "path": "members", "value": [{"value": BABS}]}]);
        let out = lenient(&g, ops.clone(), group_schema());
        assert_eq!(out["members"], json!([member(JAMES, "James Smith")]));
        // Strict refuses rather than remove every member.
        let ops = json!([{"op": "remove", "path": "members", "value": [{"value": BABS}]}]);
        assert_eq!(
            strict_err(&g, ops, group_schema()).scim_type,
            ScimType::InvalidValue
        );
        // Removing the last listed member unassigns the attribute; listing an
        // absent member is a no-op.
        let ops = json!([{"op": "Remove", "path": "members", "value": [{"value": BABS}, {"value": "nobody"}]}]);
        assert!(lenient(&group(), ops, group_schema())
            .get("members")
            .is_none());
        let ops = json!([{"op": "Remove", "path": "members", "value": [{"value": "nobody"}]}]);
        assert_eq!(lenient(&group(), ops, group_schema()), group());
        // A null value is no value, in both modes.
        let ops = json!([{"op": "remove", "path": "members", "value": null}]);
        assert!(ok(&group(), ops, group_schema()).get("members").is_none());
    }

    #[test]
    fn entra_boolean_strings() {
        for (text, expected) in [("False", false), ("TRUE", true), ("false", false)] {
            let ops = json!([{"op": "Replace", "path": "active", "value": text}]);
            assert_eq!(lenient(&user(), ops, user_schema())["active"], expected);
            let ops = json!([{"op": "replace", "path": "active", "value": text}]);
            assert_eq!(
                strict_err(&user(), ops, user_schema()).scim_type,
                ScimType::InvalidValue
            );
        }
        // Inside value objects too.
        let ops = json!([{"op": "Replace", "value": {"active": "False"}}]);
        assert_eq!(lenient(&user(), ops, user_schema())["active"], false);
        let ops = json!([{"op": "add", "path": "emails", "value": [{"value": "n@x", "primary": "True"}]}]);
        let u = lenient(&user(), ops, user_schema());
        assert_eq!(u["emails"][2]["primary"], true);
        assert_eq!(u["emails"][0]["primary"], false);
    }

    #[test]
    fn entra_manager_as_a_bare_id() {
        let path = format!("{EXT}:manager");
        let ops =
            json!([{"op": "Add", "path": path, "value": "2c2f6fb8-254f-492e-b7fe-c09c5a61c8a2"}]);
        let u = lenient(&user(), ops, user_schema());
        assert_eq!(
            u[EXT]["manager"],
            json!({"value": "2c2f6fb8-254f-492e-b7fe-c09c5a61c8a2", "displayName": "John Smith"})
        );
        let ops =
            json!([{"op": "add", "path": path, "value": "2c2f6fb8-254f-492e-b7fe-c09c5a61c8a2"}]);
        assert_eq!(
            strict_err(&user(), ops, user_schema()).scim_type,
            ScimType::InvalidValue
        );
    }

    #[test]
    fn lenient_operations_key_and_missing_schemas() {
        let req = json!({"operations": [{"OP": "replace", "Path": "nickName", "Value": "B"}]});
        let u =
            apply(&user(), &req, user_schema(), &PatchOptions::lenient()).expect("lenient accepts");
        assert_eq!(u["nickName"], "B");
        let e = apply(&user(), &req, user_schema(), &PatchOptions::strict())
            .expect_err("strict refuses");
        assert_eq!(e.scim_type, ScimType::InvalidSyntax);
        let req = json!({"schemas": [PATCH_OP_SCHEMA], "operations": [{"op": "replace", "path": "nickName", "value": "B"}]});
        let e = apply(&user(), &req, user_schema(), &PatchOptions::strict())
            .expect_err("strict refuses");
        assert!(e.detail.contains("Operations"), "{e}");
    }

    #[test]
    fn an_entra_user_update_applies_in_lenient_mode() {
        // The shape Entra ID sends for a user update.
        let req = json!({
            "schemas": [PATCH_OP_SCHEMA],
            "Operations": [
                {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "barbara.jensen@example.com"},
                {"op": "Replace", "path": "name.familyName", "value": "Jensen-Smith"},
                {"op": "Add", "path": "phoneNumbers[type eq \"mobile\"].value", "value": "+1 555 0100"},
                {"op": "Add", "path": format!("{EXT}:department"), "value": "Sales"},
                {"op": "Replace", "path": "active", "value": "False"}
            ]
        });
        let u = apply(&user(), &req, user_schema(), &PatchOptions::default()).expect("applies");
        assert_eq!(u["emails"][0]["value"], "barbara.jensen@example.com");
        assert_eq!(u["name"]["familyName"], "Jensen-Smith");
        assert_eq!(
            u["phoneNumbers"],
            json!([{"type": "mobile", "value": "+1 555 0100"}])
        );
        assert_eq!(u[EXT]["department"], "Sales");
        assert_eq!(u["active"], false);
        let e = apply(&user(), &req, user_schema(), &PatchOptions::strict())
            .expect_err("strict refuses");
        assert_eq!(e.operation, Some(0));
    }

    // ---- Resources without a known schema ----

    #[test]
    fn unknown_resource_types_are_patched_permissively() {
        let schema = ResourceSchema::for_type("Device");
        let d = json!({"schemas": ["urn:acme:Device"], "id": "d1", "serial": "SN1", "tags": ["a"], "owner": {"name": "x"}});
        let out = ok(
            &d,
            json!([
                {"op": "add", "path": "tags", "value": "b"},
                {"op": "add", "path": "tags", "value": ["A"]},
                {"op": "replace", "path": "owner", "value": {"email": "o@x"}},
                {"op": "add", "path": "ports", "value": [{"type": "usb"}]},
                {"op": "replace", "path": "urn:acme:Device:serial", "value": "SN2"},
                {"op": "remove", "path": "tags[value eq \"A\"]"}
            ]),
            schema,
        );
        assert_eq!(
            out,
            json!({"schemas": ["urn:acme:Device"], "id": "d1", "serial": "SN2", "tags": ["b"],
                   "owner": {"name": "x", "email": "o@x"}, "ports": [{"type": "usb"}]})
        );
        // Common attributes keep their rules.
        assert_eq!(
            both_err(
                &d,
                json!([{"op": "replace", "path": "id", "value": "d2"}]),
                schema
            )
            .scim_type,
            ScimType::Mutability
        );
    }

    #[test]
    fn undefined_attributes_of_known_types_are_accepted() {
        let u = ok(
            &user(),
            json!([{"op": "add", "path": "costCentre", "value": "CC-1"}, {"op": "add", "path": "name.nickname", "value": "B"}]),
            user_schema(),
        );
        assert_eq!(u["costCentre"], "CC-1");
        assert_eq!(u["name"]["nickname"], "B");
    }

    #[test]
    fn lenient_bare_values_become_values_of_multi_valued_complex_attributes() {
        let ops = json!([{"op": "Add", "path": "members", "value": [JAMES]}]);
        let g = lenient(&group(), ops, group_schema());
        assert_eq!(g["members"][1], json!({"value": JAMES}));
        let ops = json!([{"op": "add", "path": "members", "value": [JAMES]}]);
        assert_eq!(
            strict_err(&group(), ops, group_schema()).scim_type,
            ScimType::InvalidValue
        );
    }

    #[test]
    fn entra_add_of_null_through_an_unmatched_filter_adds_nothing() {
        let ops =
            json!([{"op": "Add", "path": "phoneNumbers[type eq \"work\"].value", "value": null}]);
        assert_eq!(lenient(&user(), ops, user_schema()), user());
    }

    #[test]
    fn strict_mode_requires_the_patch_op_schema() {
        let req = json!({"schemas": [USER_SCHEMA], "Operations": [{"op": "add", "path": "title", "value": "T"}]});
        let e = apply(&user(), &req, user_schema(), &PatchOptions::strict())
            .expect_err("strict refuses");
        assert_eq!(e.scim_type, ScimType::InvalidSyntax);
        assert!(e.detail.contains(PATCH_OP_SCHEMA), "{e}");
        let u =
            apply(&user(), &req, user_schema(), &PatchOptions::lenient()).expect("lenient accepts");
        assert_eq!(u["title"], "T");
    }

    #[test]
    fn path_errors_name_the_path_and_position() {
        let e = both_err(
            &user(),
            json!([{"op": "remove", "path": "name..x"}]),
            user_schema(),
        );
        assert_eq!(e.scim_type, ScimType::InvalidPath);
        assert!(
            e.detail.starts_with("invalid path \"name..x\" at position"),
            "{e}"
        );
        let e = both_err(
            &user(),
            json!([{"op": "remove", "path": "emails[type eq]"}]),
            user_schema(),
        );
        assert!(
            e.detail
                .starts_with("invalid filter in path \"emails[type eq]\" at position 14"),
            "{e}"
        );
    }

    #[test]
    fn simple_multi_valued_attributes_are_selected_through_value() {
        let r = json!({"schemas": [USER_SCHEMA, EXT], "userName": "u", EXT: {"department": "D"}});
        let u = ok(
            &r,
            json!([{"op": "remove", "path": format!("schemas[value eq \"{EXT}\"]")}]),
            user_schema(),
        );
        assert_eq!(u["schemas"], json!([USER_SCHEMA]));
        // The erratum's form: a multi-valued attribute of simple values.
        let d = json!({"tags": ["a", "b", "c"]});
        let d = ok(
            &d,
            json!([{"op": "remove", "path": "tags[value sw \"b\" or value eq \"C\"]"}]),
            ResourceSchema::for_type("Device"),
        );
        assert_eq!(d["tags"], json!(["a"]));
    }

    #[test]
    fn re_adding_a_member_keeps_its_immutable_sub_attributes() {
        let ops = json!([{"op": "add", "path": "members", "value": [
            {"value": BABS, "$ref": format!("/Users/{BABS}"), "type": "User"}
        ]}]);
        let g = ok(&group(), ops, group_schema());
        assert_eq!(g["members"].as_array().map(Vec::len), Some(1));
        assert_eq!(
            g["members"][0]["$ref"],
            format!("https://example.com/v2/Users/{BABS}")
        );
        // An immutable sub-attribute it did not have is filled in.
        assert_eq!(g["members"][0]["type"], "User");
    }

    #[test]
    fn entra_remove_may_list_members_by_bare_id() {
        let ops = json!([{"op": "Remove", "path": "members", "value": [BABS]}]);
        assert!(lenient(&group(), ops, group_schema())
            .get("members")
            .is_none());
    }
}
