//! The wire contract between services.
//!
//! - [`raw`]: the JSON records on `scim.raw.v1` (`schemas/scim-raw.schema.json`);
//! - [`types`]: Rust types of the Avro records (`schemas/*.avsc`);
//! - [`avro`]: encoding and decoding, with single-object or Confluent framing.
//!
//! The `.avsc` files are the source of truth: they are compiled into the binaries
//! and parsed once.

pub mod avro;
pub mod history;
pub mod raw;
pub mod types;

pub use avro::{AvroCodec, CodecError, Framing};
pub use types::{
    attribute_of, Actor, Alert, AttributeChange, AttributeOrigin, AuditAction, AuditEvent,
    ChainCheckpoint, ChainLink, ChangeKind, EnrichedAuditEvent, EventFlag, MembershipChange,
    Outcome, Principal, Request, Resource, Response, ScimError, Severity, Source, Target, Trace,
};

/// `schemas/audit_event.avsc`.
pub const AUDIT_EVENT_AVSC: &str = include_str!("../../../../schemas/audit_event.avsc");
/// `schemas/enriched_audit_event.avsc`.
pub const ENRICHED_AUDIT_EVENT_AVSC: &str =
    include_str!("../../../../schemas/enriched_audit_event.avsc");
/// `schemas/alert.avsc`.
pub const ALERT_AVSC: &str = include_str!("../../../../schemas/alert.avsc");
/// `schemas/chain_checkpoint.avsc`.
pub const CHAIN_CHECKPOINT_AVSC: &str = include_str!("../../../../schemas/chain_checkpoint.avsc");
/// `schemas/scim-raw.schema.json`.
pub const RAW_JSON_SCHEMA: &str = include_str!("../../../../schemas/scim-raw.schema.json");

/// Sample records for tests, here and in the service crates.
#[doc(hidden)]
pub mod fixtures {
    use super::*;

    /// A successful SCIM write: `okta-provisioner` patching User `u1` in `gh`.
    /// Tests override the fields they are about.
    pub fn audit_event(event_id: &str) -> AuditEvent {
        AuditEvent {
            event_id: event_id.into(),
            event_time: 1,
            ingest_time: 2,
            action: AuditAction::Patch,
            outcome: Outcome::Success,
            principal: Principal {
                id: "okta-provisioner".into(),
                kind: "service".into(),
            },
            source: Source {
                system: "okta".into(),
                ip: None,
                user_agent: None,
            },
            target: Target {
                system: "gh".into(),
                base_url: None,
            },
            resource: Resource {
                kind: "User".into(),
                id: Some("u1".into()),
                external_id: None,
                user_name: None,
                display_name: None,
            },
            request: Request {
                method: "PATCH".into(),
                path: "/Users/u1".into(),
                body: None,
            },
            response: None,
            error: None,
            correlation_id: None,
        }
    }

    /// [`audit_event`] wrapped as an enriched event without changes.
    pub fn enriched(event: AuditEvent) -> EnrichedAuditEvent {
        EnrichedAuditEvent {
            event,
            enriched_time: 3,
            changes: Vec::new(),
            partial: false,
            before: None,
            after: None,
            chain: None,
            actor: None,
            flags: Vec::new(),
            privileged: Vec::new(),
            memberships: Vec::new(),
            drift: Vec::new(),
            trace: None,
        }
    }
}
