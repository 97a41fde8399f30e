//! SCIM filters (RFC 7644 §3.4.2.2): parsing, canonical display, and
//! evaluation over any JSON value.
//!
//! ```text
//! FILTER    = attrExp / logExp / valuePath / *1"not" "(" FILTER ")"
//! valuePath = attrPath "[" valFilter "]"
//! attrExp   = (attrPath SP "pr") / (attrPath SP compareOp SP compValue)
//! logExp    = FILTER SP ("and" / "or") SP FILTER
//! compValue = false / null / true / number / string
//! ```
//!
//! `and` binds tighter than `or`; both associate to the left. Operators and
//! keywords are case-insensitive, as are attribute names (RFC 7643 §2.1).
//! Value paths may appear anywhere a filter may, including inside another
//! value path's brackets.
//!
//! Evaluation rules, where the RFC leaves room:
//!
//! - strings compare case-insensitively unless the attribute is `caseExact`;
//!   `gt`/`ge`/`lt`/`le` on strings are lexicographic on that form;
//! - `dateTime` attributes compare as instants. An attribute the lookup does
//!   not define compares as an instant when both sides parse as RFC 3339, so
//!   schema-less views of events still order timestamps correctly;
//! - booleans support only `eq` and `ne`; numbers compare numerically and do
//!   not support `co`/`sw`/`ew`; a value of another JSON type than the
//!   literal never matches (and so always matches `ne`);
//! - `eq null` matches an unassigned attribute (absent, null, empty array:
//!   RFC 7643 §2.5), `ne null` an assigned one, and no other operator
//!   matches `null`;
//! - `ne` on an absent attribute matches: there is no value equal to the
//!   literal. On a multi-valued attribute it matches if any value differs,
//!   the RFC's "any value matches" rule applied to `ne`;
//! - a multi-valued attribute matches if any value matches; a multi-valued
//!   complex attribute without a sub-attribute (`emails co "x"`) compares
//!   each value's `value` sub-attribute;
//! - `pr` means assigned and not an empty array or object.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use serde_json::{Map, Value};

use super::path::AttrPath;
use super::schema::{
    starts_with_ignore_case, AttrType, AttributeDef, AttributeLookup, CORE_SCHEMA_PREFIX,
};
use super::value::{cmp_numbers, fold, get_ci, is_assigned, parse_datetime};

/// Nesting limit for parentheses, `not` and value paths: filters arrive from
/// the network, and recursion must not overflow the stack.
const MAX_DEPTH: usize = 64;

/// A filter that did not parse: where (byte offset into the text) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at position {position}: {message}")]
pub struct FilterError {
    pub position: usize,
    pub message: String,
}

impl FilterError {
    pub(crate) fn new(position: usize, message: impl Into<String>) -> Self {
        FilterError {
            position,
            message: message.into(),
        }
    }
}

/// A comparison operator of `attrExp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CompareOp {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
    Gt,
    Ge,
    Lt,
    Le,
}

impl CompareOp {
    fn parse(word: &str) -> Option<CompareOp> {
        use CompareOp::*;
        Some(match word.to_ascii_lowercase().as_str() {
            "eq" => Eq,
            "ne" => Ne,
            "co" => Co,
            "sw" => Sw,
            "ew" => Ew,
            "gt" => Gt,
            "ge" => Ge,
            "lt" => Lt,
            "le" => Le,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        use CompareOp::*;
        match self {
            Eq => "eq",
            Ne => "ne",
            Co => "co",
            Sw => "sw",
            Ew => "ew",
            Gt => "gt",
            Ge => "ge",
            Lt => "lt",
            Le => "le",
        }
    }
}

/// A `compValue`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Literal {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
}

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Literal::Null => f.write_str("null"),
            Literal::Bool(b) => write!(f, "{b}"),
            Literal::Number(n) => write!(f, "{n}"),
            // JSON string syntax, which is what the grammar takes back.
            Literal::String(s) => write!(f, "{}", Value::String(s.clone())),
        }
    }
}

/// The filter syntax tree. Parentheses leave no node: `(a)` is `a`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Present(AttrPath),
    Compare(AttrPath, CompareOp, Literal),
    /// `attr[filter]`: some value of `attr` matches `filter`, whose attribute
    /// paths are relative to that value.
    ValuePath(AttrPath, Box<Expr>),
}

/// A parsed SCIM filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    expr: Expr,
}

impl Filter {
    pub fn parse(text: &str) -> Result<Filter, FilterError> {
        let mut p = Parser::new(text);
        p.skip_ws();
        if p.at_end() {
            return Err(FilterError::new(0, "empty filter"));
        }
        let expr = p.or_expr()?;
        p.skip_ws();
        p.expect_end("`and`, `or` or the end of the filter")?;
        Ok(Filter { expr })
    }

    pub fn from_expr(expr: Expr) -> Filter {
        Filter { expr }
    }

    pub fn expr(&self) -> &Expr {
        &self.expr
    }

    /// Whether `value` (a resource or a complex value) matches.
    pub fn matches(&self, value: &Value, attrs: &dyn AttributeLookup) -> bool {
        eval(&self.expr, value, Scope::Root, attrs)
    }

    /// Whether `element`, one value of the multi-valued attribute
    /// `attribute`, matches: the filter's attribute paths are sub-attributes
    /// of `attribute` (the `[...]` of a value path). A simple (non-object)
    /// value is matched through the name `value`.
    pub fn matches_element(
        &self,
        element: &Value,
        attribute: &AttrPath,
        attrs: &dyn AttributeLookup,
    ) -> bool {
        eval(&self.expr, element, Scope::Within(attribute), attrs)
    }
}

impl FromStr for Filter {
    type Err = FilterError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Filter::parse(text)
    }
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.expr)
    }
}

impl fmt::Display for Expr {
    /// Canonical form: lower-case keywords and operators, single spaces,
    /// parentheses only where the tree needs them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let grouped = |f: &mut fmt::Formatter<'_>, e: &Expr, wrap: bool| {
            if wrap {
                write!(f, "({e})")
            } else {
                write!(f, "{e}")
            }
        };
        match self {
            Expr::Or(l, r) => {
                grouped(f, l, false)?;
                f.write_str(" or ")?;
                // Left-associative: a right operand that is itself an `or`
                // came from parentheses and keeps them.
                grouped(f, r, matches!(**r, Expr::Or(..)))
            }
            Expr::And(l, r) => {
                grouped(f, l, matches!(**l, Expr::Or(..)))?;
                f.write_str(" and ")?;
                grouped(f, r, matches!(**r, Expr::Or(..) | Expr::And(..)))
            }
            Expr::Not(e) => write!(f, "not ({e})"),
            Expr::Present(p) => write!(f, "{p} pr"),
            Expr::Compare(p, op, lit) => write!(f, "{p} {} {lit}", op.as_str()),
            Expr::ValuePath(p, e) => write!(f, "{p}[{e}]"),
        }
    }
}

/// Recursive-descent parser over the filter text, shared with the PATCH
/// path parser.
pub(super) struct Parser<'a> {
    src: &'a str,
    pos: usize,
    depth: usize,
}

fn is_path_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'$' | b':' | b'.')
}

impl<'a> Parser<'a> {
    pub(super) fn new(src: &'a str) -> Self {
        Parser {
            src,
            pos: 0,
            depth: 0,
        }
    }

    pub(super) fn pos(&self) -> usize {
        self.pos
    }

    pub(super) fn peek(&self) -> Option<u8> {
        self.src.as_bytes().get(self.pos).copied()
    }

    pub(super) fn bump(&mut self) {
        self.pos += 1;
    }

    fn at_end(&self) -> bool {
        self.pos >= self.src.len()
    }

    pub(super) fn skip_ws(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_whitespace()) {
            self.pos += 1;
        }
    }

    /// Fails unless the whole text is consumed; `wanted` describes what
    /// could have come next, for the message.
    pub(super) fn expect_end(&self, wanted: &str) -> Result<(), FilterError> {
        if self.at_end() {
            return Ok(());
        }
        Err(FilterError::new(
            self.pos,
            format!("expected {wanted}, found `{}`", self.snippet()),
        ))
    }

    /// A few characters from the current position, for error messages.
    fn snippet(&self) -> &'a str {
        let rest = &self.src[self.pos..];
        let end = rest.char_indices().nth(12).map_or(rest.len(), |(i, _)| i);
        &rest[..end]
    }

    /// The maximal run of attribute-path characters at the current position.
    pub(super) fn take_name_chars(&mut self) -> &'a str {
        let start = self.pos;
        while self.peek().is_some_and(is_path_char) {
            self.pos += 1;
        }
        &self.src[start..self.pos]
    }

    /// The path-character word at the current position, not consumed.
    fn word(&self) -> &'a str {
        let rest = &self.src.as_bytes()[self.pos..];
        let len = rest.iter().take_while(|b| is_path_char(**b)).count();
        &self.src[self.pos..self.pos + len]
    }

    fn enter(&mut self) -> Result<(), FilterError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(FilterError::new(
                self.pos,
                format!("filter nests deeper than {MAX_DEPTH} levels"),
            ));
        }
        Ok(())
    }

    /// Consumes keyword `kw` (case-insensitive) if it is the next word. The
    /// grammar wants a space after it; a parenthesis is taken too, and the
    /// end of the text, so that the error is about the missing operand.
    fn keyword(&mut self, kw: &str) -> bool {
        let word = self.word();
        let boundary = self
            .src
            .as_bytes()
            .get(self.pos + word.len())
            .is_none_or(|b| b.is_ascii_whitespace() || *b == b'(');
        if word.eq_ignore_ascii_case(kw) && boundary {
            self.pos += word.len();
            true
        } else {
            false
        }
    }

    pub(super) fn or_expr(&mut self) -> Result<Expr, FilterError> {
        let mut left = self.and_expr()?;
        loop {
            let save = self.pos;
            self.skip_ws();
            if self.keyword("or") {
                self.skip_ws();
                let right = self.and_expr()?;
                left = Expr::Or(Box::new(left), Box::new(right));
            } else {
                self.pos = save;
                return Ok(left);
            }
        }
    }

    fn and_expr(&mut self) -> Result<Expr, FilterError> {
        let mut left = self.unary()?;
        loop {
            let save = self.pos;
            self.skip_ws();
            if self.keyword("and") {
                self.skip_ws();
                let right = self.unary()?;
                left = Expr::And(Box::new(left), Box::new(right));
            } else {
                self.pos = save;
                return Ok(left);
            }
        }
    }

    fn unary(&mut self) -> Result<Expr, FilterError> {
        self.skip_ws();
        if self.peek() == Some(b'(') {
            return self.group();
        }
        let word = self.word();
        if word.eq_ignore_ascii_case("not") {
            // `not` is a keyword only before a parenthesis; otherwise it is
            // an attribute that happens to be called "not".
            let after = self.pos + word.len();
            let rest = self.src[after..].trim_start();
            if rest.starts_with('(') {
                self.pos = self.src.len() - rest.len();
                let inner = self.group()?;
                return Ok(Expr::Not(Box::new(inner)));
            }
        }
        self.attr_expr()
    }

    /// `"(" FILTER ")"`, at an opening parenthesis.
    fn group(&mut self) -> Result<Expr, FilterError> {
        self.enclosed('(', ')')
    }

    /// A filter between `open` (at the current position) and `close`.
    fn enclosed(&mut self, open_char: char, close: char) -> Result<Expr, FilterError> {
        let open = self.pos;
        self.bump();
        self.enter()?;
        self.skip_ws();
        let inner = self.or_expr()?;
        self.skip_ws();
        if self.peek() != Some(close as u8) {
            return Err(FilterError::new(
                self.pos,
                if self.at_end() {
                    format!("unclosed `{open_char}` opened at position {open}")
                } else {
                    format!(
                        "expected `and`, `or` or `{close}`, found `{}`",
                        self.snippet()
                    )
                },
            ));
        }
        self.bump();
        self.depth -= 1;
        Ok(inner)
    }

    pub(super) fn attr_path(&mut self) -> Result<AttrPath, FilterError> {
        let at = self.pos;
        let token = self.take_name_chars();
        if token.is_empty() {
            return Err(FilterError::new(
                at,
                if self.at_end() {
                    "expected an attribute name, found the end of the text".to_string()
                } else {
                    format!("expected an attribute name, found `{}`", self.snippet())
                },
            ));
        }
        AttrPath::from_token(token, at)
    }

    /// `"[" valFilter "]"`, at the opening bracket.
    pub(super) fn value_filter(&mut self) -> Result<Expr, FilterError> {
        self.enclosed('[', ']')
    }

    fn attr_expr(&mut self) -> Result<Expr, FilterError> {
        let path = self.attr_path()?;
        if self.peek() == Some(b'[') {
            if path.sub.is_some() {
                return Err(FilterError::new(
                    self.pos,
                    "a value filter must follow a multi-valued attribute, not a sub-attribute",
                ));
            }
            let inner = self.value_filter()?;
            return Ok(Expr::ValuePath(path, Box::new(inner)));
        }
        let before_space = self.pos;
        self.skip_ws();
        if self.pos == before_space || self.at_end() {
            return Err(FilterError::new(
                self.pos,
                format!("expected an operator (`eq`, `co`, `pr`, …) after `{path}`"),
            ));
        }
        let op_at = self.pos;
        let op_word = self.word();
        if op_word.eq_ignore_ascii_case("pr") {
            self.pos += op_word.len();
            self.expect_boundary()?;
            return Ok(Expr::Present(path));
        }
        let Some(op) = CompareOp::parse(op_word) else {
            return Err(FilterError::new(
                op_at,
                format!(
                    "unknown operator `{}`; expected eq, ne, co, sw, ew, gt, ge, lt, le or pr",
                    if op_word.is_empty() {
                        self.snippet()
                    } else {
                        op_word
                    }
                ),
            ));
        };
        self.pos += op_word.len();
        let before_value = self.pos;
        self.skip_ws();
        if self.pos == before_value || self.at_end() {
            return Err(FilterError::new(
                self.pos,
                format!("expected a value after `{}`", op.as_str()),
            ));
        }
        let lit = self.literal()?;
        self.expect_boundary()?;
        Ok(Expr::Compare(path, op, lit))
    }

    /// After an operand: whitespace, a closing bracket or the end.
    fn expect_boundary(&self) -> Result<(), FilterError> {
        match self.peek() {
            None | Some(b')' | b']') => Ok(()),
            Some(b) if b.is_ascii_whitespace() => Ok(()),
            Some(_) => Err(FilterError::new(
                self.pos,
                format!("unexpected `{}`", self.snippet()),
            )),
        }
    }

    fn literal(&mut self) -> Result<Literal, FilterError> {
        let at = self.pos;
        match self.peek() {
            Some(b'"') => {
                let bytes = self.src.as_bytes();
                let mut i = at + 1;
                // Quotes and backslashes are ASCII, so never inside a
                // multi-byte UTF-8 sequence: a byte scan is safe.
                loop {
                    match bytes.get(i) {
                        None => {
                            return Err(FilterError::new(at, "unterminated string"));
                        }
                        Some(b'\\') => i += 2,
                        Some(b'"') => break,
                        Some(_) => i += 1,
                    }
                }
                let text = &self.src[at..=i];
                let s: String = serde_json::from_str(text)
                    .map_err(|e| FilterError::new(at, format!("invalid string {text}: {e}")))?;
                self.pos = i + 1;
                Ok(Literal::String(s))
            }
            Some(b'-' | b'0'..=b'9') => {
                let len = self.src.as_bytes()[at..]
                    .iter()
                    .take_while(|b| {
                        b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E')
                    })
                    .count();
                let text = &self.src[at..at + len];
                let n: serde_json::Number = serde_json::from_str(text)
                    .map_err(|_| FilterError::new(at, format!("invalid number `{text}`")))?;
                self.pos += len;
                Ok(Literal::Number(n))
            }
            _ => {
                let word = self.word();
                let lit = if word.eq_ignore_ascii_case("true") {
                    Literal::Bool(true)
                } else if word.eq_ignore_ascii_case("false") {
                    Literal::Bool(false)
                } else if word.eq_ignore_ascii_case("null") {
                    Literal::Null
                } else {
                    return Err(FilterError::new(
                        at,
                        format!(
                            "expected a value (a \"quoted string\", a number, true, false or null), found `{}`",
                            self.snippet()
                        ),
                    ));
                };
                self.pos += word.len();
                Ok(lit)
            }
        }
    }
}

/// Where a filter is being evaluated: on a resource, on a value of a
/// multi-valued attribute (inside `[...]`), or somewhere no schema path
/// describes (a value path nested in another).
#[derive(Clone, Copy)]
enum Scope<'p> {
    Root,
    Within(&'p AttrPath),
    Unknown,
}

impl<'p> Scope<'p> {
    fn def<'a>(self, path: &AttrPath, attrs: &'a dyn AttributeLookup) -> Option<&'a AttributeDef> {
        match self {
            Scope::Root => attrs.attribute(path),
            Scope::Within(parent) if path.sub.is_none() => attrs.attribute(&AttrPath {
                urn: parent.urn.clone(),
                name: parent.name.clone(),
                sub: Some(path.name.clone()),
            }),
            _ => None,
        }
    }

    /// The scope of a value path's brackets.
    fn enter(self, path: &'p AttrPath) -> Scope<'p> {
        match self {
            Scope::Root => Scope::Within(path),
            _ => Scope::Unknown,
        }
    }
}

fn eval(expr: &Expr, node: &Value, scope: Scope<'_>, attrs: &dyn AttributeLookup) -> bool {
    match expr {
        Expr::And(a, b) => eval(a, node, scope, attrs) && eval(b, node, scope, attrs),
        Expr::Or(a, b) => eval(a, node, scope, attrs) || eval(b, node, scope, attrs),
        Expr::Not(e) => !eval(e, node, scope, attrs),
        Expr::Present(path) => present(node, path, scope),
        Expr::Compare(path, op, lit) => compare(node, path, *op, lit, scope, attrs),
        Expr::ValuePath(path, inner) => {
            let Some(v) = attribute_value(node, path, scope) else {
                return false;
            };
            let inner_scope = scope.enter(path);
            match v {
                Value::Array(items) => items.iter().any(|el| eval(inner, el, inner_scope, attrs)),
                other => eval(inner, other, inner_scope, attrs),
            }
        }
    }
}

/// The value of `path`'s attribute (not its sub-attribute) in `node`.
fn attribute_value<'v>(node: &'v Value, path: &AttrPath, scope: Scope<'_>) -> Option<&'v Value> {
    let obj = match node {
        Value::Object(obj) => obj,
        // A simple value of a multi-valued attribute is its own `value`.
        other if !matches!(scope, Scope::Root) && path.name.eq_ignore_ascii_case("value") => {
            return Some(other);
        }
        _ => return None,
    };
    lookup_in(obj, path)
}

fn lookup_in<'v>(obj: &'v Map<String, Value>, path: &AttrPath) -> Option<&'v Value> {
    let Some(urn) = &path.urn else {
        return get_ci(obj, &path.name);
    };
    if let Some(Value::Object(ext)) = get_ci(obj, urn) {
        return get_ci(ext, &path.name);
    }
    if path.sub.is_none() {
        // `urn:…:User` split at its last colon: the extension object itself.
        if let Some(v) = get_ci(obj, &format!("{urn}:{}", path.name)) {
            return Some(v);
        }
    }
    // A core attribute may be qualified by its schema URN (RFC 7644 §3.10).
    if starts_with_ignore_case(urn, CORE_SCHEMA_PREFIX) {
        return get_ci(obj, &path.name);
    }
    None
}

/// The values (each element of a multi-valued attribute, flattened) that a
/// comparison on `path` looks at, and whether they are the implicit `value`
/// sub-attribute of complex values.
fn candidates<'v>(node: &'v Value, path: &AttrPath, scope: Scope<'_>) -> (Vec<&'v Value>, bool) {
    let Some(base) = attribute_value(node, path, scope) else {
        return (Vec::new(), false);
    };
    if !node.is_object() {
        // A simple value of a multi-valued attribute, as its own `value`.
        let values = if base.is_null() {
            Vec::new()
        } else {
            vec![base]
        };
        return (values, false);
    }
    let items: Vec<&Value> = match base {
        Value::Array(a) => a.iter().collect(),
        other => vec![other],
    };
    let mut out = Vec::new();
    let mut implicit = false;
    for item in items {
        let v = match (&path.sub, item) {
            (Some(sub), Value::Object(o)) => get_ci(o, sub),
            (Some(_), _) => None,
            (None, Value::Object(o)) => {
                implicit = true;
                get_ci(o, "value")
            }
            (None, other) => Some(other),
        };
        match v {
            Some(Value::Array(a)) => out.extend(a.iter().filter(|v| !v.is_null())),
            Some(Value::Null) | None => {}
            Some(v) => out.push(v),
        }
    }
    (out, implicit)
}

fn present(node: &Value, path: &AttrPath, scope: Scope<'_>) -> bool {
    let Some(base) = attribute_value(node, path, scope) else {
        return false;
    };
    match &path.sub {
        None => is_assigned(Some(base)),
        Some(sub) => {
            let has = |v: &Value| v.as_object().is_some_and(|o| is_assigned(get_ci(o, sub)));
            match base {
                Value::Array(items) => items.iter().any(has),
                other => has(other),
            }
        }
    }
}

fn compare(
    node: &Value,
    path: &AttrPath,
    op: CompareOp,
    lit: &Literal,
    scope: Scope<'_>,
    attrs: &dyn AttributeLookup,
) -> bool {
    if *lit == Literal::Null {
        return match op {
            CompareOp::Eq => !present(node, path, scope),
            CompareOp::Ne => present(node, path, scope),
            _ => false,
        };
    }
    let (values, implicit) = candidates(node, path, scope);
    let def = if implicit {
        scope.def(&path.clone().with_sub("value"), attrs)
    } else {
        scope.def(path, attrs)
    };
    if op == CompareOp::Ne {
        return values.is_empty()
            || values
                .iter()
                .any(|v| !matches_op(v, CompareOp::Eq, lit, def));
    }
    values.iter().any(|v| matches_op(v, op, lit, def))
}

fn ordering_matches(op: CompareOp, ord: Ordering) -> bool {
    match op {
        CompareOp::Eq => ord == Ordering::Equal,
        CompareOp::Ne => ord != Ordering::Equal,
        CompareOp::Gt => ord == Ordering::Greater,
        CompareOp::Ge => ord != Ordering::Less,
        CompareOp::Lt => ord == Ordering::Less,
        CompareOp::Le => ord != Ordering::Greater,
        CompareOp::Co | CompareOp::Sw | CompareOp::Ew => false,
    }
}

fn matches_op(value: &Value, op: CompareOp, lit: &Literal, def: Option<&AttributeDef>) -> bool {
    match (value, lit) {
        (Value::String(a), Literal::String(b)) => {
            let ordered = !matches!(op, CompareOp::Co | CompareOp::Sw | CompareOp::Ew);
            let may_be_instant = match def {
                Some(d) => d.kind == AttrType::DateTime,
                None => true,
            };
            if ordered && may_be_instant {
                if let (Some(x), Some(y)) = (parse_datetime(a), parse_datetime(b)) {
                    return ordering_matches(op, x.cmp(&y));
                }
            }
            if def.is_some_and(|d| d.case_exact) {
                string_matches(a, b, op)
            } else {
                string_matches(&fold(a), &fold(b), op)
            }
        }
        (Value::Number(a), Literal::Number(b)) => {
            cmp_numbers(a, b).is_some_and(|ord| ordering_matches(op, ord))
        }
        (Value::Bool(a), Literal::Bool(b)) => match op {
            CompareOp::Eq => a == b,
            CompareOp::Ne => a != b,
            _ => false,
        },
        _ => false,
    }
}

fn string_matches(a: &str, b: &str, op: CompareOp) -> bool {
    match op {
        CompareOp::Co => a.contains(b),
        CompareOp::Sw => a.starts_with(b),
        CompareOp::Ew => a.ends_with(b),
        _ => ordering_matches(op, a.cmp(b)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::schema::{NoSchema, ResourceSchema, ENTERPRISE_USER_SCHEMA};
    use serde_json::json;

    fn parse(text: &str) -> Filter {
        Filter::parse(text).unwrap_or_else(|e| panic!("`{text}` parses: {e}"))
    }

    fn err(text: &str) -> FilterError {
        match Filter::parse(text) {
            Ok(f) => panic!("`{text}` should not parse, got {f}"),
            Err(e) => e,
        }
    }

    fn attr(name: &str) -> AttrPath {
        name.parse().expect("test attribute path parses")
    }

    fn cmp(path: &str, op: CompareOp, lit: Literal) -> Expr {
        Expr::Compare(attr(path), op, lit)
    }

    fn pr(path: &str) -> Expr {
        Expr::Present(attr(path))
    }

    fn and(a: Expr, b: Expr) -> Expr {
        Expr::And(Box::new(a), Box::new(b))
    }

    fn or(a: Expr, b: Expr) -> Expr {
        Expr::Or(Box::new(a), Box::new(b))
    }

    fn s(v: &str) -> Literal {
        Literal::String(v.to_string())
    }

    /// Barbara Jensen, after RFC 7643 §8.2 (userName shortened).
    fn bjensen() -> Value {
        json!({
            "schemas": [
                "urn:ietf:params:scim:schemas:core:2.0:User",
                ENTERPRISE_USER_SCHEMA
            ],
            "id": "2819c223-7f76-453a-919d-413861904646",
            "externalId": "Bjensen-701984",
            "userName": "bjensen",
            "name": {
                "formatted": "Ms. Barbara J Jensen, III",
                "familyName": "Jensen",
                "givenName": "Barbara"
            },
            "displayName": "Babs Jensen",
            "nickName": "",
            "title": "Tour Guide",
            "userType": "Employee",
            "active": true,
            "emails": [
                {"value": "bjensen@example.com", "type": "work", "primary": true},
                {"value": "babs@jensen.org", "type": "home"}
            ],
            "ims": [{"value": "someaimhandle", "type": "aim"}],
            "x509Certificates": [],
            "meta": {
                "resourceType": "User",
                "created": "2010-01-23T04:56:22Z",
                "lastModified": "2011-05-13T04:42:34Z",
                "version": "W/\"a330bc54f0671c9\""
            },
            ENTERPRISE_USER_SCHEMA: {
                "employeeNumber": "701984",
                "costCenter": "4130",
                "department": "Tour Operations",
                "manager": {
                    "value": "26118915-6090-4610-87e4-49d8ca9f808d",
                    "displayName": "John Smith"
                }
            }
        })
    }

    fn user_matches(text: &str) -> bool {
        parse(text).matches(&bjensen(), ResourceSchema::for_type("User"))
    }

    /// Every filter example of RFC 7644 §3.4.2.2, with whether bjensen
    /// matches it.
    const RFC_EXAMPLES: [(&str, bool); 17] = [
        (r#"userName eq "bjensen""#, true),
        (r#"name.familyName co "O'Malley""#, false),
        (r#"userName sw "J""#, false),
        (
            r#"urn:ietf:params:scim:schemas:core:2.0:User:userName sw "J""#,
            false,
        ),
        ("title pr", true),
        (r#"meta.lastModified gt "2011-05-13T04:42:34Z""#, false),
        (r#"meta.lastModified ge "2011-05-13T04:42:34Z""#, true),
        (r#"meta.lastModified lt "2011-05-13T04:42:34Z""#, false),
        (r#"meta.lastModified le "2011-05-13T04:42:34Z""#, true),
        (r#"title pr and userType eq "Employee""#, true),
        (r#"title pr or userType eq "Intern""#, true),
        (
            r#"schemas eq "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User""#,
            true,
        ),
        (
            r#"userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")"#,
            true,
        ),
        (
            r#"userType ne "Employee" and not (emails co "example.com" or emails.value co "example.org")"#,
            false,
        ),
        (
            r#"userType eq "Employee" and (emails.type eq "work")"#,
            true,
        ),
        (
            r#"userType eq "Employee" and emails[type eq "work" and value co "@example.com"]"#,
            true,
        ),
        (
            r#"emails[type eq "work" and value co "@example.com"] or ims[type eq "xmpp" and value co "@foo.com"]"#,
            true,
        ),
    ];

    #[test]
    fn rfc7644_3_4_2_2_examples_parse_and_display_canonically() {
        for (text, _) in RFC_EXAMPLES {
            let f = parse(text);
            assert_eq!(
                parse(&f.to_string()),
                f,
                "{text} re-parses from its display"
            );
        }
        // Already canonical, except the redundant parentheses of one example.
        for i in [0, 1, 4, 5, 9, 10, 11, 12, 13, 15, 16] {
            assert_eq!(parse(RFC_EXAMPLES[i].0).to_string(), RFC_EXAMPLES[i].0);
        }
        assert_eq!(
            parse(RFC_EXAMPLES[14].0).to_string(),
            r#"userType eq "Employee" and emails.type eq "work""#
        );
    }

    #[test]
    fn rfc7644_3_4_2_2_examples_evaluate_against_bjensen() {
        for (text, expected) in RFC_EXAMPLES {
            assert_eq!(user_matches(text), expected, "{text}");
        }
    }

    #[test]
    fn rfc7644_3_4_2_2_example_trees() {
        assert_eq!(
            parse(r#"userName eq "bjensen""#).expr(),
            &cmp("userName", CompareOp::Eq, s("bjensen"))
        );
        assert_eq!(
            parse(RFC_EXAMPLES[13].0).expr(),
            &and(
                cmp("userType", CompareOp::Ne, s("Employee")),
                Expr::Not(Box::new(or(
                    cmp("emails", CompareOp::Co, s("example.com")),
                    cmp("emails.value", CompareOp::Co, s("example.org")),
                ))),
            )
        );
        assert_eq!(
            parse(RFC_EXAMPLES[16].0).expr(),
            &or(
                Expr::ValuePath(
                    attr("emails"),
                    Box::new(and(
                        cmp("type", CompareOp::Eq, s("work")),
                        cmp("value", CompareOp::Co, s("@example.com")),
                    )),
                ),
                Expr::ValuePath(
                    attr("ims"),
                    Box::new(and(
                        cmp("type", CompareOp::Eq, s("xmpp")),
                        cmp("value", CompareOp::Co, s("@foo.com")),
                    )),
                ),
            )
        );
    }

    #[test]
    fn and_binds_tighter_than_or() {
        assert_eq!(
            parse("a pr or b pr and c pr").expr(),
            &or(pr("a"), and(pr("b"), pr("c")))
        );
        assert_eq!(
            parse("a pr and b pr or c pr").expr(),
            &or(and(pr("a"), pr("b")), pr("c"))
        );
        assert_eq!(
            parse("(a pr or b pr) and c pr").expr(),
            &and(or(pr("a"), pr("b")), pr("c"))
        );
        // Evaluated, not just parsed: false or (true and false) is false.
        let v = json!({"b": "x"});
        assert!(!parse("a pr or b pr and c pr").matches(&v, &NoSchema));
        assert!(parse("(a pr or b pr) and not (c pr)").matches(&v, &NoSchema));
    }

    #[test]
    fn and_and_or_associate_to_the_left() {
        assert_eq!(
            parse("a pr or b pr or c pr").expr(),
            &or(or(pr("a"), pr("b")), pr("c"))
        );
        assert_eq!(
            parse("a pr and b pr and c pr").expr(),
            &and(and(pr("a"), pr("b")), pr("c"))
        );
    }

    #[test]
    fn display_keeps_only_the_parentheses_the_tree_needs() {
        for (text, canonical) in [
            ("a pr or (b pr or c pr)", "a pr or (b pr or c pr)"),
            ("(a pr or b pr) or c pr", "a pr or b pr or c pr"),
            ("a pr and (b pr and c pr)", "a pr and (b pr and c pr)"),
            (
                "(a pr or b pr) and (c pr or d pr)",
                "(a pr or b pr) and (c pr or d pr)",
            ),
            ("((a pr))", "a pr"),
            ("NOT(a pr)", "not (a pr)"),
            ("not (a pr and b pr) or c pr", "not (a pr and b pr) or c pr"),
            ("x[a eq 1 or (b eq 2)]", "x[a eq 1 or b eq 2]"),
            ("a pr and(b pr or c pr)", "a pr and (b pr or c pr)"),
            ("  a   pr   and\tb pr ", "a pr and b pr"),
        ] {
            let f = parse(text);
            assert_eq!(f.to_string(), canonical, "{text}");
            assert_eq!(parse(canonical), f, "{canonical}");
        }
    }

    #[test]
    fn keywords_and_operators_are_case_insensitive() {
        let f = parse(r#"userName EQ "bjensen" AND title Pr Or NOT (userType Ne "Employee")"#);
        assert_eq!(
            f.to_string(),
            r#"userName eq "bjensen" and title pr or not (userType ne "Employee")"#
        );
        assert!(f.matches(&bjensen(), &NoSchema));
        assert_eq!(
            parse("active eq TRUE").expr(),
            &cmp("active", CompareOp::Eq, Literal::Bool(true))
        );
        assert_eq!(
            parse("title eq Null").expr(),
            &cmp("title", CompareOp::Eq, Literal::Null)
        );
    }

    #[test]
    fn keywords_need_word_boundaries() {
        // "order" and "andrew" are attributes, not `or`/`and`.
        assert_eq!(
            parse("order pr or andrew pr").expr(),
            &or(pr("order"), pr("andrew"))
        );
        // An attribute called "not" is fine when no parenthesis follows.
        assert_eq!(
            parse(r#"not eq "x""#).expr(),
            &cmp("not", CompareOp::Eq, s("x"))
        );
    }

    #[test]
    fn string_literals_take_json_escapes() {
        let f = parse(r#"displayName eq "a \"q\" \\ \u00e9\n\/""#);
        assert_eq!(
            f.expr(),
            &cmp("displayName", CompareOp::Eq, s("a \"q\" \\ é\n/"))
        );
        assert_eq!(parse(&f.to_string()), f);
        assert!(f.matches(&json!({"displayName": "A \"Q\" \\ É\n/"}), &NoSchema));
        // Non-ASCII text passes through unescaped and folds case.
        let f = parse(r#"name.familyName eq "Müller-Łukasz" "#);
        assert!(f.matches(&json!({"name": {"familyName": "MÜLLER-łukasz"}}), &NoSchema));
        // Brackets and keywords inside strings are text.
        let f = parse(r#"title eq "a ] or (b) and [c""#);
        assert!(f.matches(&json!({"title": "A ] OR (B) AND [C"}), &NoSchema));
    }

    #[test]
    fn numbers_booleans_and_null_literals() {
        let n = |t: &str| serde_json::from_str::<serde_json::Number>(t).expect("number");
        assert_eq!(
            parse("x eq 42").expr(),
            &cmp("x", CompareOp::Eq, Literal::Number(n("42")))
        );
        assert_eq!(
            parse("x gt -1.5").expr(),
            &cmp("x", CompareOp::Gt, Literal::Number(n("-1.5")))
        );
        assert_eq!(
            parse("x lt 1e3").expr(),
            &cmp("x", CompareOp::Lt, Literal::Number(n("1e3")))
        );
        assert_eq!(
            parse("x eq false").expr(),
            &cmp("x", CompareOp::Eq, Literal::Bool(false))
        );
        for text in ["x eq 42", "x gt -1.5", "x lt 1e3", "x eq 0.25", "x ne null"] {
            let f = parse(text);
            assert_eq!(parse(&f.to_string()), f, "{text}");
        }
    }

    #[test]
    fn attribute_paths_with_sub_attributes_and_schema_urns() {
        assert_eq!(
            parse(&format!(
                r#"{ENTERPRISE_USER_SCHEMA}:employeeNumber eq "701984""#
            ))
            .expr(),
            &Expr::Compare(
                AttrPath {
                    urn: Some(ENTERPRISE_USER_SCHEMA.to_string()),
                    name: "employeeNumber".into(),
                    sub: None
                },
                CompareOp::Eq,
                s("701984")
            )
        );
        let f = parse(&format!(r#"{ENTERPRISE_USER_SCHEMA}:manager.value eq "x""#));
        let Expr::Compare(path, ..) = f.expr() else {
            panic!("a comparison");
        };
        assert_eq!(path.name, "manager");
        assert_eq!(path.sub.as_deref(), Some("value"));
        assert_eq!(parse("$ref pr").expr(), &pr("$ref"));
        assert_eq!(
            parse("meta.lastModified pr").expr(),
            &Expr::Present(AttrPath::new("meta").with_sub("lastModified"))
        );
    }

    #[test]
    fn parse_errors_carry_position_and_message() {
        for (text, position, needle) in [
            ("", 0, "empty"),
            ("   ", 0, "empty"),
            ("userName", 8, "operator"),
            ("userName eq", 11, "value"),
            (r#"userName xx "a""#, 9, "unknown operator"),
            (r#"userName eq "abc"#, 12, "unterminated"),
            (r#"userName eq "a\qb""#, 12, "invalid string"),
            ("userName eq bjensen", 12, "expected a value"),
            ("userName eq 12abc", 14, "unexpected"),
            ("userName eq 1.2.3", 12, "invalid number"),
            (r#"userName eq"x""#, 11, "value"),
            ("(userName pr", 12, "unclosed `(`"),
            ("userName pr)", 11, "expected `and`, `or` or the end"),
            ("userName pr and", 15, "attribute name"),
            ("userName pr or ", 15, "attribute name"),
            (
                r#"userName eq "a" xor title pr"#,
                16,
                "expected `and`, `or`",
            ),
            (r#"emails[type eq "work""#, 21, "unclosed `[`"),
            (
                r#"emails[type eq "work")"#,
                21,
                "expected `and`, `or` or `]`",
            ),
            ("name.givenName.x pr", 0, "more than one sub-attribute"),
            ("name.givenName[x pr]", 14, "value filter"),
            ("1abc pr", 0, "not an attribute name"),
            ("urn:acme: pr", 9, "after the schema URN"),
            ("not (a pr", 9, "unclosed"),
        ] {
            let e = err(text);
            assert_eq!(e.position, position, "position for `{text}`: {e}");
            assert!(e.message.contains(needle), "message for `{text}`: {e}");
        }
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let text = format!("{}a pr{}", "(".repeat(10_000), ")".repeat(10_000));
        assert!(err(&text).message.contains("nests deeper"));
        let text = format!("{}a pr{}", "not (".repeat(10_000), ")".repeat(10_000));
        assert!(err(&text).message.contains("nests deeper"));
        let text = format!("{}a pr{}", "x[".repeat(10_000), "]".repeat(10_000));
        assert!(err(&text).message.contains("nests deeper"));
        // Within the limit is fine.
        let text = format!("{}a pr{}", "(".repeat(60), ")".repeat(60));
        assert_eq!(parse(&text).expr(), &pr("a"));
    }

    #[test]
    fn from_str_is_parse() {
        let f: Filter = r#"userName eq "x""#.parse().expect("parses");
        assert_eq!(f, parse(r#"userName eq "x""#));
        assert!("userName eq".parse::<Filter>().is_err());
    }

    #[test]
    fn attribute_names_are_case_insensitive() {
        assert!(user_matches(r#"USERNAME eq "bjensen""#));
        assert!(user_matches(r#"Name.FamilyName eq "jensen""#));
        assert!(user_matches(r#"EMAILS[TYPE eq "work"]"#));
    }

    #[test]
    fn strings_compare_case_insensitively_unless_case_exact() {
        // userName is caseExact false; id and externalId are caseExact.
        assert!(user_matches(r#"userName eq "BJensen""#));
        assert!(user_matches(r#"userName sw "BJ""#));
        assert!(user_matches(r#"emails.value ew "@EXAMPLE.COM""#));
        assert!(user_matches(r#"externalId eq "Bjensen-701984""#));
        assert!(!user_matches(r#"externalId eq "bjensen-701984""#));
        assert!(!user_matches(r#"externalId co "bjensen""#));
        assert!(!user_matches(
            r#"id eq "2819C223-7F76-453A-919D-413861904646""#
        ));
        assert!(user_matches(r#"externalId ne "bjensen-701984""#));
        // Without a schema everything is case-insensitive.
        assert!(parse(r#"externalId eq "bjensen-701984""#).matches(&bjensen(), &NoSchema));
    }

    #[test]
    fn ordering_on_strings_is_lexicographic_on_the_folded_form() {
        assert!(user_matches(r#"userName gt "Apple""#));
        assert!(user_matches(r#"userName lt "C""#));
        assert!(user_matches(r#"title ge "tour guide""#));
        assert!(user_matches(r#"title le "TOUR GUIDE""#));
        assert!(!user_matches(r#"title gt "tour guide""#));
    }

    #[test]
    fn date_times_compare_as_instants() {
        // 06:42:34+02:00 is the same instant as 04:42:34Z.
        assert!(user_matches(
            r#"meta.lastModified eq "2011-05-13T06:42:34+02:00""#
        ));
        assert!(!user_matches(
            r#"meta.lastModified gt "2011-05-13T06:42:34+02:00""#
        ));
        // Lexicographically "2011-05-13T06…" sorts after "…T04…"; as
        // instants they are equal.
        assert!(!user_matches(
            r#"meta.lastModified lt "2011-05-13T06:42:34+02:00""#
        ));
        assert!(user_matches(
            r#"meta.lastModified gt "2011-05-13T05:42:34+02:00""#
        ));
        assert!(!user_matches(
            r#"meta.created lt "2010-01-23T04:56:22.000Z""#
        ));
        assert!(user_matches(
            r#"meta.created lt "2010-01-23T04:56:22.001Z""#
        ));
        // Undefined attributes holding instants compare as instants too.
        let event = json!({"occurredAt": "2024-03-01T10:00:00+01:00"});
        assert!(parse(r#"occurredAt eq "2024-03-01T09:00:00Z""#).matches(&event, &NoSchema));
        assert!(parse(r#"occurredAt lt "2024-03-01T09:30:00Z""#).matches(&event, &NoSchema));
        // Strings that are not instants compare as text.
        assert!(parse(r#"occurredAt sw "2024-03""#).matches(&event, &NoSchema));
        assert!(parse(r#"occurredAt gt "2024-02""#).matches(&event, &NoSchema));
    }

    #[test]
    fn booleans_support_only_eq_and_ne() {
        assert!(user_matches("active eq true"));
        assert!(user_matches("active ne false"));
        assert!(!user_matches("active gt false"));
        assert!(!user_matches("active co true"));
        // A string is not a boolean.
        assert!(!user_matches(r#"active eq "true""#));
    }

    #[test]
    fn numbers_compare_numerically() {
        let v = json!({"loginCount": 12, "score": 2.5, "big": 18446744073709551615u64});
        let m = |t: &str| parse(t).matches(&v, &NoSchema);
        assert!(m("loginCount gt 9"));
        assert!(m("loginCount eq 12.0"));
        assert!(m("score ge 2.5"));
        assert!(m("score lt 3"));
        assert!(m("big gt 1"));
        assert!(!m("loginCount co 1"));
        assert!(!m(r#"loginCount eq "12""#));
        assert!(m(r#"loginCount ne "12""#));
    }

    #[test]
    fn null_matches_unassigned_attributes() {
        let v = json!({"title": null, "emails": [], "nickName": "", "name": {}});
        let m = |t: &str| parse(t).matches(&v, &NoSchema);
        assert!(m("title eq null"));
        assert!(m("missing eq null"));
        assert!(m("emails eq null"));
        assert!(m("name eq null"));
        assert!(!m("nickName eq null"));
        assert!(m("nickName ne null"));
        assert!(!m("title ne null"));
        assert!(!m("title gt null"));
    }

    #[test]
    fn present_means_assigned_and_not_empty() {
        assert!(user_matches("title pr"));
        assert!(user_matches("nickName pr"), "an empty string is a value");
        assert!(!user_matches("x509Certificates pr"));
        assert!(!user_matches("nosuch pr"));
        assert!(user_matches("emails.type pr"));
        assert!(!user_matches("emails.display pr"));
        assert!(user_matches("name pr"));
        assert!(!parse("name pr").matches(&json!({"name": {}}), &NoSchema));
        assert!(!parse("title pr").matches(&json!({"title": null}), &NoSchema));
    }

    #[test]
    fn ne_on_an_absent_attribute_matches() {
        assert!(user_matches(r#"nosuch ne "x""#));
        assert!(!user_matches(r#"nosuch eq "x""#));
    }

    #[test]
    fn multi_valued_attributes_match_if_any_value_matches() {
        assert!(user_matches(r#"emails.type eq "home""#));
        assert!(user_matches(r#"emails.type eq "work""#));
        assert!(!user_matches(r#"emails.type eq "other""#));
        // Without a sub-attribute, each value's `value` is compared.
        assert!(user_matches(r#"emails co "jensen.org""#));
        assert!(user_matches(r#"emails eq "BABS@jensen.org""#));
        // `ne`: some value differs.
        assert!(user_matches(r#"emails.type ne "work""#));
        // Primitive multi-valued attributes compare each element.
        assert!(user_matches(r#"schemas ew ":core:2.0:User""#));
    }

    #[test]
    fn value_paths_select_within_one_value() {
        // Both conditions must hold for the same email.
        assert!(!user_matches(
            r#"emails[type eq "home" and value co "example.com"]"#
        ));
        assert!(user_matches(
            r#"emails[type eq "home" and value co "jensen.org"]"#
        ));
        assert!(user_matches("emails[primary eq true]"));
        assert!(user_matches(r#"emails[not (type eq "work")]"#));
        assert!(!user_matches(r#"nosuch[type eq "work"]"#));
        // Inside a larger filter, on either side.
        assert!(user_matches(
            r#"title pr and emails[type eq "work"] and active eq true"#
        ));
        assert!(user_matches(
            r#"nosuch pr or (emails[type eq "work"] and not (ims[type eq "xmpp"]))"#
        ));
    }

    #[test]
    fn value_paths_nest() {
        let v = json!({
            "devices": [
                {"kind": "laptop", "ports": [{"type": "usb"}, {"type": "hdmi"}]},
                {"kind": "phone", "ports": [{"type": "usb-c"}]}
            ]
        });
        let m = |t: &str| parse(t).matches(&v, &NoSchema);
        assert!(m(r#"devices[kind eq "laptop" and ports[type eq "hdmi"]]"#));
        assert!(!m(r#"devices[kind eq "phone" and ports[type eq "hdmi"]]"#));
        let f = parse(r#"devices[kind eq "laptop" and ports[type eq "hdmi"]]"#);
        assert_eq!(parse(&f.to_string()), f);
    }

    #[test]
    fn filters_on_extension_attributes() {
        let ext = ENTERPRISE_USER_SCHEMA;
        assert!(user_matches(&format!(
            r#"{ext}:employeeNumber eq "701984""#
        )));
        assert!(user_matches(&format!(
            r#"{ext}:department co "operations""#
        )));
        assert!(user_matches(&format!(
            r#"{ext}:manager.value eq "26118915-6090-4610-87e4-49d8ca9f808d""#
        )));
        assert!(user_matches(&format!(
            r#"{ext}:manager.displayName sw "john""#
        )));
        assert!(user_matches(&format!(
            r#"{ext}:manager eq "26118915-6090-4610-87e4-49d8ca9f808d""#
        )));
        assert!(user_matches(&format!("{ext} pr")));
        // An unqualified name does not reach into the extension.
        assert!(!user_matches(r#"employeeNumber eq "701984""#));
        // A URN the resource does not have matches nothing.
        assert!(!user_matches(
            r#"urn:acme:ext:1.0:User:employeeNumber eq "701984""#
        ));
    }

    #[test]
    fn matches_takes_a_complex_value_as_root() {
        let email = json!({"value": "bjensen@example.com", "type": "work"});
        assert!(parse(r#"type eq "WORK" and value ew "example.com""#).matches(&email, &NoSchema));
    }

    #[test]
    fn matches_element_uses_the_attribute_schema_and_simple_values() {
        let user = ResourceSchema::for_type("User");
        let email = json!({"value": "bjensen@example.com"});
        assert!(parse(r#"value eq "Bjensen@Example.com""#).matches_element(
            &email,
            &attr("emails"),
            user
        ));
        // A simple value is its own `value`.
        assert!(parse(r#"value eq "urn:a:b""#).matches_element(
            &json!("URN:A:B"),
            &attr("schemas"),
            user
        ));
        assert!(!parse(r#"type eq "x""#).matches_element(&json!("x"), &attr("schemas"), user));
    }

    #[test]
    fn audit_event_views_filter_without_a_schema() {
        let event = json!({
            "operation": "PATCH",
            "resourceType": "Group",
            "actor": {"client": "Entra ID", "ip": "10.0.0.7"},
            "changes": [
                {"path": "members", "op": "add", "value": "2819c223"},
                {"path": "displayName", "op": "replace"}
            ]
        });
        let m = |t: &str| parse(t).matches(&event, &NoSchema);
        assert!(m(r#"operation eq "patch" and actor.client sw "entra""#));
        assert!(m(r#"changes[op eq "add" and path eq "MEMBERS"]"#));
        assert!(!m(r#"changes[op eq "remove"]"#));
        assert!(m(r#"changes.path eq "displayName""#));
    }

    #[test]
    fn control_characters_round_trip_through_display() {
        let f = parse(r#"title eq "tab\there\u0001 \"x\"""#);
        assert_eq!(
            f.expr(),
            &cmp("title", CompareOp::Eq, s("tab\there\u{1} \"x\""))
        );
        assert_eq!(parse(&f.to_string()), f);
    }

    #[test]
    fn null_simple_values_are_unassigned() {
        let schemas = attr("schemas");
        assert!(!parse(r#"value eq "x""#).matches_element(&Value::Null, &schemas, &NoSchema));
        assert!(parse(r#"value ne "x""#).matches_element(&Value::Null, &schemas, &NoSchema));
        assert!(!parse("value pr").matches_element(&Value::Null, &schemas, &NoSchema));
    }
}
