//! SCIM 2.0 semantics as pure functions over `serde_json::Value`: no I/O, no
//! Kafka, so every stage (the enricher replaying PATCH requests, the detector
//! evaluating rules) shares one reading of the RFCs.
//!
//! - [`filter`]: RFC 7644 §3.4.2.2 filters — parse, display, evaluate;
//! - [`path`]: attribute paths and the RFC 7644 §3.5.2 PATCH `path` grammar;
//! - [`schema`]: attribute definitions and the RFC 7643 User, Group and
//!   Enterprise User schemas;
//! - [`patch`]: the RFC 7644 §3.5.2 PATCH engine (`add`, `remove`, `replace`).

pub mod filter;
pub mod patch;
pub mod path;
pub mod schema;
mod value;

pub use filter::{Filter, FilterError};
pub use patch::{apply, Compat, PatchError, PatchOptions, ScimType};
pub use path::{AttrPath, PatchPath, PathError};
pub use schema::{AttrType, AttributeDef, AttributeLookup, Mutability, NoSchema, ResourceSchema};
