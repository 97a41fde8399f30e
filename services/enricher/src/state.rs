//! What the enricher remembers of each resource, and how it is kept.
//!
//! **Durability.** Every change to a resource's state is written, in the same
//! transaction as the enriched event it belongs to, to the compacted changelog
//! topic `<internal_prefix>enricher-state` (key: the resource key, value: the
//! packed [`Known`]; a tombstone when the resource is deleted), on the
//! partition with the number of the input partition. When an instance is
//! assigned a partition it reads that changelog partition to its committed
//! end before it processes a record, so a restart, a crash or a rebalance
//! loses no state and the first change after it is not `partial`.
//!
//! **Memory.** The state is held packed: the JSON of [`Known`] compressed with
//! zstd (a SCIM User of ~1 KB packs to roughly a third of that). It is
//! unpacked only for the event that touches it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use scimtrail_core::schema::attribute_of;

/// Name, after the internal prefix, of the state changelog topic.
pub const CHANGELOG: &str = "enricher-state";

/// zstd level: 3 is zstd's default, a good ratio at well over 100 MB/s.
const LEVEL: i32 = 3;

/// A resource as last known, with the origin of each attribute.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(into = "Stored", from = "Stored")]
pub struct Known {
    pub resource: Value,
    /// Attribute (a change path without value filters) → the event that last
    /// set it.
    pub lineage: BTreeMap<String, Origin>,
}

/// How a [`Known`] is written: one event sets many attributes (a create sets
/// all of them), so each origin is stored once and attributes name it by
/// index. This halves a typical User's state.
#[derive(Serialize, Deserialize)]
struct Stored {
    resource: Value,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    origins: Vec<Origin>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    lineage: BTreeMap<String, usize>,
}

impl From<Known> for Stored {
    fn from(k: Known) -> Stored {
        let mut origins: Vec<Origin> = Vec::new();
        let lineage = k
            .lineage
            .into_iter()
            .map(|(attr, origin)| {
                let i = match origins.iter().position(|o| *o == origin) {
                    Some(i) => i,
                    None => {
                        origins.push(origin);
                        origins.len() - 1
                    }
                };
                (attr, i)
            })
            .collect();
        Stored {
            resource: k.resource,
            origins,
            lineage,
        }
    }
}

impl From<Stored> for Known {
    fn from(s: Stored) -> Known {
        // An index out of range can only come from a foreign writer: that
        // attribute's lineage is unknown, the rest stands.
        let lineage = s
            .lineage
            .into_iter()
            .filter_map(|(attr, i)| s.origins.get(i).map(|o| (attr, o.clone())))
            .collect();
        Known {
            resource: s.resource,
            lineage,
        }
    }
}

/// The event that set an attribute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    pub event_id: String,
    pub event_time: i64,
    pub source_system: String,
    pub principal_id: String,
}

thread_local! {
    static COMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Compressor<'static>>> =
        std::cell::RefCell::new(zstd::bulk::Compressor::new(LEVEL).ok());
}

/// A [`Known`] as stored: zstd-compressed JSON, also the changelog's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packed(Box<[u8]>);

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot pack the resource state: {0}")]
    Pack(String),
    #[error("cannot unpack the resource state: {0}")]
    Unpack(String),
}

impl Packed {
    pub fn pack(known: &Known) -> Result<Packed, StateError> {
        let json = serde_json::to_vec(known).map_err(|e| StateError::Pack(e.to_string()))?;
        // One compression context per thread: creating one per call was a
        // measurable share of the enricher's time (bench/README.md).
        let bytes = COMPRESSOR
            .with(|c| match &mut *c.borrow_mut() {
                Some(c) => c.compress(&json),
                None => zstd::bulk::compress(&json, LEVEL),
            })
            .map_err(|e| StateError::Pack(e.to_string()))?;
        Ok(Packed(bytes.into_boxed_slice()))
    }

    pub fn unpack(&self) -> Result<Known, StateError> {
        // Whole-buffer decompression and parsing: a JSON reader over the
        // streaming decoder reads byte by byte.
        let json =
            zstd::stream::decode_all(&self.0[..]).map_err(|e| StateError::Unpack(e.to_string()))?;
        serde_json::from_slice(&json).map_err(|e| StateError::Unpack(e.to_string()))
    }

    /// Bytes as read from the changelog; checked when unpacked.
    pub fn from_bytes(bytes: &[u8]) -> Packed {
        Packed(bytes.into())
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn packed_state_round_trips_and_is_smaller_than_its_json() {
        let resource = json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "id": "2819c223-7f76-453a-919d-413861904646",
            "userName": "bjensen@example.com",
            "name": {"givenName": "Barbara", "familyName": "Jensen", "formatted": "Ms. Barbara J Jensen III"},
            "emails": [{"value": "bjensen@example.com", "type": "work", "primary": true},
                       {"value": "babs@jensen.org", "type": "home"}],
            "phoneNumbers": [{"value": "555-555-8377", "type": "work"}],
            "active": true, "title": "Tour Guide", "locale": "en-US", "timezone": "America/Los_Angeles",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"employeeNumber": "701984", "department": "Tour Operations"}
        });
        let mut lineage = BTreeMap::new();
        lineage.insert(
            "title".to_string(),
            Origin {
                event_id: "e1".into(),
                event_time: 1,
                source_system: "okta".into(),
                principal_id: "okta-provisioner".into(),
            },
        );
        let known = Known { resource, lineage };
        let packed = Packed::pack(&known).expect("pack");
        assert_eq!(packed.unpack().expect("unpack"), known);
        let json_len = serde_json::to_vec(&known).expect("json").len();
        assert!(
            packed.as_bytes().len() < json_len,
            "{} >= {json_len}",
            packed.as_bytes().len()
        );
        assert!(Packed::from_bytes(b"not zstd").unpack().is_err());
    }
}
