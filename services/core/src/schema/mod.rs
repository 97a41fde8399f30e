//! The wire contract between services.
//!
//! - [`raw`]: the JSON records on `scim.raw.v1` (`schemas/scim-raw.schema.json`);
//! - [`types`]: Rust types of the Avro records (`schemas/*.avsc`);
//! - [`avro`]: encoding and decoding, with single-object or Confluent framing.
//!
//! The `.avsc` files are the source of truth: they are compiled into the binaries
//! and parsed once.

pub mod avro;
pub mod raw;
pub mod types;

pub use avro::{AvroCodec, CodecError, Framing};
pub use types::{
    Alert, AttributeChange, AuditAction, AuditEvent, ChangeKind, EnrichedAuditEvent, Outcome,
    Principal, Request, Resource, Response, ScimError, Severity, Source, Target,
};

/// `schemas/audit_event.avsc`.
pub const AUDIT_EVENT_AVSC: &str = include_str!("../../../../schemas/audit_event.avsc");
/// `schemas/enriched_audit_event.avsc`.
pub const ENRICHED_AUDIT_EVENT_AVSC: &str =
    include_str!("../../../../schemas/enriched_audit_event.avsc");
/// `schemas/alert.avsc`.
pub const ALERT_AVSC: &str = include_str!("../../../../schemas/alert.avsc");
/// `schemas/scim-raw.schema.json`.
pub const RAW_JSON_SCHEMA: &str = include_str!("../../../../schemas/scim-raw.schema.json");
