//! Per-partition hash chains over the enriched audit stream.
//!
//! Every `audit.enriched.v1` partition has exactly one writer (the enricher
//! instance that owns the same-numbered input partition), and its events form
//! one chain: event *n* carries `sequence = n`, the previous event's hash, and
//!
//! ```text
//! hash = SHA-256( prev_hash (32 bytes) ‖ JCS(event with chain = null) )
//! ```
//!
//! where JCS is the RFC 8785 canonical JSON of the event: the record as a JSON
//! object with the Avro field names, unions as their plain value or `null`,
//! enums as their symbol, timestamps as integers (milliseconds). The first
//! event's `prev_hash` is 32 zero bytes. Editing, deleting, inserting or
//! reordering any event breaks every link after it.
//!
//! Every N events or T seconds the writer also signs a [`ChainCheckpoint`]
//! of a partition's head with Ed25519, so a chain rebuilt from its start by
//! someone without the key is detected too.

use sha2::{Digest, Sha256};

use crate::schema::{ChainCheckpoint, ChainLink, EnrichedAuditEvent};

/// `prev_hash` of the first event of a chain.
pub const GENESIS: [u8; 32] = [0; 32];

#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    #[error("cannot canonicalize the event: {0}")]
    Canonical(String),
    #[error("`{field}` is not 64 hex characters: {value}")]
    BadHex { field: &'static str, value: String },
}

/// The last link of a chain: what the next event links to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    pub sequence: i64,
    pub hash: [u8; 32],
}

impl Head {
    /// The head a chain has after `link`.
    pub fn of(link: &ChainLink) -> Result<Self, ChainError> {
        Ok(Head {
            sequence: link.sequence,
            hash: parse_hash("hash", &link.hash)?,
        })
    }
}

/// The RFC 8785 canonical JSON the hash covers: the event without `chain`,
/// and without any member whose value is `null` or `[]`, at any depth.
///
/// Leaving out empty members is what lets the schema grow: a field added
/// later with a `null` or `[]` default is absent from the canonical form of
/// an event written before it existed, whichever schema version decodes it,
/// so old chains keep verifying.
pub fn canonical_bytes(event: &EnrichedAuditEvent) -> Result<Vec<u8>, ChainError> {
    let mut value =
        serde_json::to_value(event).map_err(|e| ChainError::Canonical(e.to_string()))?;
    if let serde_json::Value::Object(map) = &mut value {
        map.remove("chain");
    }
    prune_empty(&mut value);
    // For this data serde_json writes RFC 8785 already: its maps are sorted
    // (BTreeMap; the `preserve_order` feature is off, which
    // `serde_json_output_is_jcs` checks), the keys are ASCII field names so
    // code-point and UTF-16 order agree, every number is an integer, and
    // strings are escaped as ECMAScript's JSON.stringify does. Skipping
    // serde_jcs's re-sort saves a third of the hashing time.
    serde_json::to_vec(&value).map_err(|e| ChainError::Canonical(e.to_string()))
}

fn prune_empty(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            map.retain(|_, v| {
                prune_empty(v);
                !(v.is_null() || v.as_array().is_some_and(Vec::is_empty))
            });
        }
        Value::Array(items) => items.iter_mut().for_each(prune_empty),
        _ => {}
    }
}

/// SHA-256(prev ‖ canonical bytes of `event`).
pub fn link_hash(prev: &[u8; 32], event: &EnrichedAuditEvent) -> Result<[u8; 32], ChainError> {
    let mut h = Sha256::new();
    h.update(prev);
    h.update(canonical_bytes(event)?);
    Ok(h.finalize().into())
}

/// Links `event` after `head` (a new chain when `None`) in `partition`, and
/// returns the new head.
pub fn append(
    head: Option<Head>,
    partition: i32,
    event: &mut EnrichedAuditEvent,
) -> Result<Head, ChainError> {
    let (sequence, prev) = match head {
        Some(h) => (h.sequence + 1, h.hash),
        None => (0, GENESIS),
    };
    let hash = link_hash(&prev, event)?;
    event.chain = Some(ChainLink {
        partition,
        sequence,
        prev_hash: hex::encode(prev),
        hash: hex::encode(hash),
    });
    Ok(Head { sequence, hash })
}

fn parse_hash(field: &'static str, value: &str) -> Result<[u8; 32], ChainError> {
    let bad = || ChainError::BadHex {
        field,
        value: value.chars().take(80).collect(),
    };
    let bytes = hex::decode(value).map_err(|_| bad())?;
    bytes.try_into().map_err(|_| bad())
}

/// Why a sequence of events is not an intact chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Break {
    /// An event has no chain link.
    Unchained { index: usize },
    /// `sequence` is not the previous one + 1 (a gap, duplicate or reorder).
    Sequence {
        index: usize,
        expected: i64,
        found: i64,
    },
    /// `prev_hash` is not the previous event's hash (an insertion, deletion or fork).
    PrevHash { index: usize },
    /// `hash` does not match the event's content (an edit).
    Hash { index: usize },
    /// A hash field is malformed.
    Malformed { index: usize },
}

/// Checks that `events` (in log order) are consecutive links, starting after
/// `head` (or at the chain's start when `None`). Returns the head after the
/// last event, or the first break.
pub fn verify<'a>(
    head: Option<Head>,
    events: impl IntoIterator<Item = &'a EnrichedAuditEvent>,
) -> Result<Option<Head>, Break> {
    let mut head = head;
    for (index, e) in events.into_iter().enumerate() {
        let link = e.chain.as_ref().ok_or(Break::Unchained { index })?;
        let (expected, prev) = match head {
            Some(h) => (h.sequence + 1, h.hash),
            None => (0, GENESIS),
        };
        if link.sequence != expected {
            return Err(Break::Sequence {
                index,
                expected,
                found: link.sequence,
            });
        }
        let claimed_prev =
            parse_hash("prev_hash", &link.prev_hash).map_err(|_| Break::Malformed { index })?;
        if claimed_prev != prev {
            return Err(Break::PrevHash { index });
        }
        let claimed = parse_hash("hash", &link.hash).map_err(|_| Break::Malformed { index })?;
        let actual = link_hash(&prev, e).map_err(|_| Break::Malformed { index })?;
        if claimed != actual {
            return Err(Break::Hash { index });
        }
        head = Some(Head {
            sequence: link.sequence,
            hash: actual,
        });
    }
    Ok(head)
}

/// Signs chain checkpoints with an Ed25519 key.
pub struct Signer {
    key: ed25519_dalek::SigningKey,
    key_id: String,
}

/// Id of a public key: the first 16 hex characters of SHA-256 over its 32 bytes.
pub fn key_id(public: &ed25519_dalek::VerifyingKey) -> String {
    hex::encode(&Sha256::digest(public.as_bytes())[..8])
}

/// The bytes a checkpoint's signature covers: its JCS with `signature` empty.
pub fn checkpoint_message(cp: &ChainCheckpoint) -> Result<Vec<u8>, ChainError> {
    let mut unsigned = cp.clone();
    unsigned.signature = String::new();
    serde_jcs::to_vec(&unsigned).map_err(|e| ChainError::Canonical(e.to_string()))
}

impl Signer {
    pub fn new(key: ed25519_dalek::SigningKey) -> Self {
        let key_id = key_id(&key.verifying_key());
        Signer { key, key_id }
    }

    /// Reads a PKCS#8 PEM Ed25519 private key (as `openssl genpkey -algorithm
    /// ed25519` writes it).
    pub fn from_pem_file(path: &std::path::Path) -> Result<Self, String> {
        use ed25519_dalek::pkcs8::DecodePrivateKey;
        let pem = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let key = ed25519_dalek::SigningKey::from_pkcs8_pem(&pem).map_err(|e| {
            format!(
                "{} is not a PKCS#8 PEM Ed25519 private key: {e}",
                path.display()
            )
        })?;
        Ok(Signer::new(key))
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    pub fn verifying_key(&self) -> ed25519_dalek::VerifyingKey {
        self.key.verifying_key()
    }

    /// A signed checkpoint of `head` in `topic`/`partition` at `time_ms`.
    pub fn checkpoint(
        &self,
        topic: &str,
        partition: i32,
        head: Head,
        time_ms: i64,
    ) -> Result<ChainCheckpoint, ChainError> {
        use ed25519_dalek::Signer as _;
        let mut cp = ChainCheckpoint {
            topic: topic.to_string(),
            partition,
            sequence: head.sequence,
            head_hash: hex::encode(head.hash),
            time: time_ms,
            key_id: self.key_id.clone(),
            signature: String::new(),
        };
        let signature = self.key.sign(&checkpoint_message(&cp)?);
        cp.signature = hex::encode(signature.to_bytes());
        Ok(cp)
    }
}

/// Whether `cp` is signed by `public` (and names that key).
pub fn verify_checkpoint(cp: &ChainCheckpoint, public: &ed25519_dalek::VerifyingKey) -> bool {
    let Ok(bytes) = hex::decode(&cp.signature) else {
        return false;
    };
    let Ok(bytes) = <[u8; 64]>::try_from(bytes.as_slice()) else {
        return false;
    };
    let Ok(message) = checkpoint_message(cp) else {
        return false;
    };
    cp.key_id == key_id(public)
        && public
            .verify_strict(&message, &ed25519_dalek::Signature::from_bytes(&bytes))
            .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::fixtures;

    fn chain(n: usize) -> Vec<EnrichedAuditEvent> {
        let mut head = None;
        (0..n)
            .map(|i| {
                let mut e = fixtures::enriched(fixtures::audit_event(&format!("e{i}")));
                head = Some(append(head, 0, &mut e).expect("append"));
                e
            })
            .collect()
    }

    #[test]
    fn the_hash_format_is_pinned() {
        // Any change here breaks every chain already written: the schema
        // grows only by fields defaulting to null or [], which the canonical
        // form leaves out. The expected hash was computed independently with
        // the Python of docs/enricher.md (json with sorted keys and no
        // whitespace equals JCS for this ASCII, integer-only event).
        let e = fixtures::enriched(fixtures::audit_event("e0"));
        let canonical = String::from_utf8(canonical_bytes(&e).expect("jcs")).expect("utf8");
        assert!(
            canonical
                .starts_with(r#"{"enriched_time":3,"event":{"action":"PATCH","event_id":"e0""#),
            "{canonical}"
        );
        assert_eq!(
            hex::encode(link_hash(&GENESIS, &e).expect("hash")),
            "7cba49d8d5cc2fece83c2156b5d5c2d43c23782c04ef2587bf4749c1f8801d9b"
        );
    }

    #[test]
    fn serde_json_output_is_jcs() {
        let mut e = fixtures::enriched(fixtures::audit_event("e\u{1f}\"\\ ü 😀"));
        e.before = Some("{\"b\":1,\"a\":\"\\n\u{7f}\"}".into());
        e.event.request.body = Some("line\nbreak\ttab\u{0}nul \u{2028}".into());
        let mut value = serde_json::to_value(&e).expect("json");
        prune_empty(&mut value);
        assert_eq!(
            serde_json::to_vec(&value).expect("json"),
            serde_jcs::to_vec(&value).expect("jcs")
        );
    }

    #[test]
    fn fields_added_with_empty_defaults_leave_old_hashes_intact() {
        // An event as a writer without the newer fields wrote it, decoded by
        // a reader that has them (serde defaults fill them in).
        let e = fixtures::enriched(fixtures::audit_event("e0"));
        let mut old = serde_json::to_value(&e).expect("json");
        for newer in [
            "actor",
            "flags",
            "privileged",
            "memberships",
            "drift",
            "trace",
        ] {
            old.as_object_mut().expect("object").remove(newer);
        }
        let decoded: EnrichedAuditEvent = serde_json::from_value(old).expect("decode");
        assert_eq!(
            link_hash(&GENESIS, &decoded).expect("hash"),
            link_hash(&GENESIS, &e).expect("hash")
        );
    }

    #[test]
    fn checkpoints_are_signed_and_tampering_is_detected() {
        let signer = Signer::new(ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]));
        let head = Head {
            sequence: 41,
            hash: [9u8; 32],
        };
        let cp = signer
            .checkpoint("audit.enriched.v1", 2, head, 1_000)
            .expect("sign");
        assert_eq!(cp.key_id.len(), 16);
        assert!(verify_checkpoint(&cp, &signer.verifying_key()));
        let mut rolled_back = cp.clone();
        rolled_back.sequence = 40;
        assert!(!verify_checkpoint(&rolled_back, &signer.verifying_key()));
        let other = Signer::new(ed25519_dalek::SigningKey::from_bytes(&[8u8; 32]));
        assert!(
            !verify_checkpoint(&cp, &other.verifying_key()),
            "unknown key"
        );
    }

    #[test]
    fn signing_keys_load_from_pkcs8_pem() {
        use ed25519_dalek::pkcs8::{spki::der::pem::LineEnding, EncodePrivateKey};
        let key = ed25519_dalek::SigningKey::from_bytes(&[3u8; 32]);
        let pem = key.to_pkcs8_pem(LineEnding::LF).expect("pem");
        let f = tempfile::NamedTempFile::new().expect("tempfile");
        std::fs::write(f.path(), pem.as_bytes()).expect("write");
        let signer = Signer::from_pem_file(f.path()).expect("loads");
        assert_eq!(signer.verifying_key(), key.verifying_key());
        std::fs::write(f.path(), "not a key").expect("write");
        assert!(Signer::from_pem_file(f.path()).is_err());
    }

    #[test]
    fn an_intact_chain_verifies() {
        let c = chain(20);
        let head = verify(None, &c).expect("intact").expect("head");
        assert_eq!(head.sequence, 19);
        // And continues from its head.
        assert_eq!(
            verify(None, &c[..10]).expect("prefix").map(|h| h.sequence),
            Some(9)
        );
        let mid = Head::of(c[9].chain.as_ref().expect("link")).expect("head");
        assert!(verify(Some(mid), &c[10..]).is_ok());
    }

    #[test]
    fn every_kind_of_tampering_is_found_at_its_position() {
        let c = chain(10);
        let mut edited = c.clone();
        edited[4].event.principal.id = "mallory".into();
        assert_eq!(verify(None, &edited), Err(Break::Hash { index: 4 }));

        let mut deleted = c.clone();
        deleted.remove(4);
        assert_eq!(
            verify(None, &deleted),
            Err(Break::Sequence {
                index: 4,
                expected: 4,
                found: 5
            })
        );

        let mut inserted = c.clone();
        inserted.insert(4, c[7].clone());
        assert!(matches!(
            verify(None, &inserted),
            Err(Break::Sequence { index: 4, .. })
        ));

        let mut swapped = c.clone();
        swapped.swap(3, 4);
        assert!(matches!(
            verify(None, &swapped),
            Err(Break::Sequence { index: 3, .. })
        ));

        let mut relinked = c.clone();
        relinked[6].chain.as_mut().expect("link").prev_hash = hex::encode([7u8; 32]);
        assert_eq!(verify(None, &relinked), Err(Break::PrevHash { index: 6 }));

        let mut unchained = c;
        unchained[2].chain = None;
        assert_eq!(verify(None, &unchained), Err(Break::Unchained { index: 2 }));
    }
}
