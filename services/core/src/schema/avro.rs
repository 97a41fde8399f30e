//! Avro encoding of the records on the audit topics.
//!
//! Two framings, chosen by `schema_registry.url`:
//! - **single-object encoding** (no registry): `C3 01`, the schema's 8-byte
//!   CRC-64-AVRO (Rabin) fingerprint, then the Avro binary datum;
//! - **Confluent wire format** (registry set): magic byte `0`, the 4-byte
//!   big-endian schema id the registry assigned, then the datum. The writer
//!   registers its schema under `<topic>-value` at start-up; readers fetch
//!   unknown writer schemas by id and resolve them against their own schema, so
//!   compatible schema evolution is transparent.
//!
//! Decoding accepts both framings regardless of the configured one, so a
//! migration from one to the other needs no stop of the pipeline.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};

use apache_avro::headers::{HeaderBuilder, RabinFingerprintHeader};
use apache_avro::Schema;
use serde::de::DeserializeOwned;
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("schema does not parse: {0}")]
    Schema(String),
    #[error("record does not match schema {schema}: {detail}")]
    Encode { schema: String, detail: String },
    #[error("empty payload")]
    Empty,
    #[error("payload is not Avro in a known framing (first byte 0x{0:02x}; expected 0xc3 single-object or 0x00 Confluent)")]
    UnknownFraming(u8),
    #[error("single-object fingerprint {got} is not the fingerprint of {schema} ({want}); written with another schema version")]
    UnknownFingerprint {
        schema: String,
        got: String,
        want: String,
    },
    #[error("Confluent-framed payload but no schema_registry.url is configured to resolve schema id {0}")]
    NoRegistry(u32),
    #[error("payload too short for its framing")]
    Truncated,
    #[error("cannot decode {schema}: {detail}")]
    Decode { schema: String, detail: String },
    #[error("schema registry: {0}")]
    Registry(String),
    #[error("schema registry unavailable: {0}")]
    RegistryUnavailable(String),
}

impl CodecError {
    /// Whether trying again later can succeed: the registry could not be asked.
    /// Everything else is a property of the bytes.
    pub fn is_transient(&self) -> bool {
        matches!(self, CodecError::RegistryUnavailable(_))
    }
}

/// Largest allocation a decoded length prefix may ask for. apache-avro's own
/// default (512 MiB) lets a corrupt array or map length in one record take the
/// process down before the record can be dead-lettered.
pub const MAX_ALLOCATION_BYTES: usize = 16 * 1024 * 1024;

/// How records are framed on the wire.
#[derive(Clone)]
pub enum Framing {
    SingleObject,
    Confluent(Arc<RegistryClient>),
}

impl Framing {
    /// The framing configured by `schema_registry.url`.
    pub fn from_config(cfg: &crate::config::SchemaRegistryConfig) -> Result<Self, CodecError> {
        match &cfg.url {
            None => Ok(Framing::SingleObject),
            Some(url) => Ok(Framing::Confluent(Arc::new(RegistryClient::new(url)?))),
        }
    }
}

/// Encoder/decoder of one record type against its schema.
pub struct AvroCodec<T> {
    schema: Schema,
    /// `schema` with every named-type reference replaced by its definition,
    /// for the schema-aware serializer (which cannot look names up).
    inlined: Arc<Schema>,
    /// Earlier versions of the schema by their single-object header, so
    /// records written before an upgrade still decode (schemas/history/).
    earlier: Arc<Vec<(Vec<u8>, Schema)>>,
    name: String,
    header: Vec<u8>,
    framing: Framing,
    /// The id the registry assigned to our schema (Confluent framing only).
    schema_id: Option<u32>,
    _t: PhantomData<fn() -> T>,
}

impl<T> Clone for AvroCodec<T> {
    fn clone(&self) -> Self {
        AvroCodec {
            schema: self.schema.clone(),
            inlined: Arc::clone(&self.inlined),
            earlier: Arc::clone(&self.earlier),
            name: self.name.clone(),
            header: self.header.clone(),
            framing: self.framing.clone(),
            schema_id: self.schema_id,
            _t: PhantomData,
        }
    }
}

/// `schema` with each reference to a named type (a record, enum or fixed
/// defined earlier in the schema) replaced by a copy of its definition.
fn inline_refs(schema: &Schema) -> Result<Schema, CodecError> {
    use apache_avro::schema::{ArraySchema, MapSchema, Name, ResolvedSchema, UnionSchema};
    fn walk(s: &Schema, names: &HashMap<Name, Schema>, depth: usize) -> Result<Schema, CodecError> {
        if depth > 64 {
            return Err(CodecError::Schema(
                "recursive schemas are not supported".into(),
            ));
        }
        Ok(match s {
            Schema::Ref { name } => match names.get(name) {
                Some(def) => walk(def, names, depth + 1)?,
                None => return Err(CodecError::Schema(format!("unknown type {name}"))),
            },
            Schema::Array(a) => Schema::Array(ArraySchema {
                items: Box::new(walk(&a.items, names, depth + 1)?),
                attributes: a.attributes.clone(),
            }),
            Schema::Map(m) => Schema::Map(MapSchema {
                types: Box::new(walk(&m.types, names, depth + 1)?),
                attributes: m.attributes.clone(),
            }),
            Schema::Union(u) => Schema::Union(
                UnionSchema::new(
                    u.variants()
                        .iter()
                        .map(|v| walk(v, names, depth + 1))
                        .collect::<Result<_, _>>()?,
                )
                .map_err(|e| CodecError::Schema(e.to_string()))?,
            ),
            Schema::Record(r) => {
                let mut r = r.clone();
                for f in r.fields.iter_mut() {
                    f.schema = walk(&f.schema, names, depth + 1)?;
                }
                Schema::Record(r)
            }
            other => other.clone(),
        })
    }
    let resolved =
        ResolvedSchema::try_from(schema).map_err(|e| CodecError::Schema(e.to_string()))?;
    let names: HashMap<Name, Schema> = resolved
        .get_names()
        .iter()
        .map(|(n, s)| (n.clone(), (*s).clone()))
        .collect();
    walk(schema, &names, 0)
}

impl<T: Serialize + DeserializeOwned> AvroCodec<T> {
    /// A codec with single-object framing.
    pub fn new(avsc: &str) -> Result<Self, CodecError> {
        // Process-wide and settable once; every codec is built before decoding.
        apache_avro::util::max_allocation_bytes(MAX_ALLOCATION_BYTES);
        let schema = Schema::parse_str(avsc).map_err(|e| CodecError::Schema(e.to_string()))?;
        let name = match &schema {
            Schema::Record(r) => r.name.fullname(None),
            other => format!("{other:?}"),
        };
        let header = RabinFingerprintHeader::from_schema(&schema).build_header();
        let inlined = Arc::new(inline_refs(&schema)?);
        let mut earlier = Vec::new();
        for (_, text) in super::history::HISTORY {
            let old = Schema::parse_str(text).map_err(|e| CodecError::Schema(e.to_string()))?;
            if matches!(&old, Schema::Record(r) if r.name.fullname(None) == name) {
                earlier.push((
                    RabinFingerprintHeader::from_schema(&old).build_header(),
                    old,
                ));
            }
        }
        Ok(AvroCodec {
            schema,
            inlined,
            earlier: Arc::new(earlier),
            name,
            header,
            framing: Framing::SingleObject,
            schema_id: None,
            _t: PhantomData,
        })
    }

    /// A codec with the given framing; for Confluent framing registers the schema
    /// under `subject` (blocking HTTP: call it from a blocking context).
    pub fn with_framing(avsc: &str, framing: Framing, subject: &str) -> Result<Self, CodecError> {
        let mut codec = Self::new(avsc)?;
        if let Framing::Confluent(registry) = &framing {
            codec.schema_id = Some(registry.register(subject, &codec.schema)?);
        }
        codec.framing = framing;
        Ok(codec)
    }

    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// Full name of the record type, e.g. `dev.scimtrail.v1.AuditEvent`.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn encode(&self, record: &T) -> Result<Vec<u8>, CodecError> {
        let err = |e: apache_avro::Error| CodecError::Encode {
            schema: self.name.clone(),
            detail: e.to_string(),
        };
        // Straight from the record to bytes against the schema: going through
        // `to_value` and `resolve` rebuilt the schema's name table on every
        // call and was a third of the enricher's time (bench/README.md). The
        // golden-bytes tests pin that both give the same bytes.
        let mut datum = Vec::with_capacity(512);
        apache_avro::write_avro_datum_ref(&self.inlined, record, &mut datum).map_err(err)?;
        let mut out = match self.schema_id {
            Some(id) => {
                let mut v = Vec::with_capacity(5 + datum.len());
                v.push(0);
                v.extend_from_slice(&id.to_be_bytes());
                v
            }
            None => {
                let mut v = Vec::with_capacity(self.header.len() + datum.len());
                v.extend_from_slice(&self.header);
                v
            }
        };
        out.extend_from_slice(&datum);
        Ok(out)
    }

    pub fn decode(&self, bytes: &[u8]) -> Result<T, CodecError> {
        let derr = |e: apache_avro::Error| CodecError::Decode {
            schema: self.name.clone(),
            detail: e.to_string(),
        };
        let first = *bytes.first().ok_or(CodecError::Empty)?;
        let value = match first {
            0xC3 => {
                let n = self.header.len();
                if bytes.len() < n {
                    return Err(CodecError::Truncated);
                }
                // The writer's schema: ours, or an earlier version of it,
                // resolved to ours (the schemas evolve backward-compatibly).
                let writer = if bytes[..n] == self.header[..] {
                    None
                } else {
                    match self.earlier.iter().find(|(h, _)| bytes[..n] == h[..]) {
                        Some((_, old)) => Some(old),
                        None => {
                            return Err(CodecError::UnknownFingerprint {
                                schema: self.name.clone(),
                                got: hex::encode(bytes.get(2..n).unwrap_or_default()),
                                want: hex::encode(&self.header[2..]),
                            })
                        }
                    }
                };
                let mut rest = EofGuard::new(&bytes[n..]);
                let v = match writer {
                    None => apache_avro::from_avro_datum(&self.schema, &mut rest, None),
                    Some(old) => apache_avro::from_avro_datum(old, &mut rest, Some(&self.schema)),
                }
                .map_err(derr)?;
                rest.finish(&self.name)?;
                v
            }
            0x00 => {
                if bytes.len() < 5 {
                    return Err(CodecError::Truncated);
                }
                let id = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
                let mut rest = EofGuard::new(&bytes[5..]);
                let v = if Some(id) == self.schema_id {
                    apache_avro::from_avro_datum(&self.schema, &mut rest, None).map_err(derr)?
                } else {
                    let Framing::Confluent(registry) = &self.framing else {
                        return Err(CodecError::NoRegistry(id));
                    };
                    let writer = registry.schema_by_id(id)?;
                    apache_avro::from_avro_datum(&writer, &mut rest, Some(&self.schema))
                        .map_err(derr)?
                };
                rest.finish(&self.name)?;
                v
            }
            other => return Err(CodecError::UnknownFraming(other)),
        };
        apache_avro::from_value::<T>(&value).map_err(derr)
    }
}

/// A reader over one datum's bytes that remembers whether the decoder asked for
/// more than there was. apache-avro fills a record's remaining fields with
/// their defaults when it meets the end of the input, which would turn a
/// truncated record into a plausible but wrong one; a complete datum never
/// reads past its end, so any such attempt means truncation.
struct EofGuard<'a> {
    rest: &'a [u8],
    overran: bool,
}

impl<'a> EofGuard<'a> {
    fn new(rest: &'a [u8]) -> Self {
        EofGuard {
            rest,
            overran: false,
        }
    }

    fn finish(self, schema: &str) -> Result<(), CodecError> {
        if self.overran {
            return Err(CodecError::Truncated);
        }
        if !self.rest.is_empty() {
            return Err(CodecError::Decode {
                schema: schema.to_string(),
                detail: format!("{} trailing bytes after the datum", self.rest.len()),
            });
        }
        Ok(())
    }
}

impl std::io::Read for EofGuard<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.len() > self.rest.len() {
            self.overran = true;
        }
        self.rest.read(buf)
    }
}

/// A minimal client of the Confluent Schema Registry REST API: register a schema
/// under a subject, fetch a schema by id. Fetched schemas are cached for the
/// life of the process (ids are immutable).
pub struct RegistryClient {
    base: String,
    /// `base` without credentials, for errors and logs.
    shown: String,
    http: reqwest::blocking::Client,
    cache: Mutex<HashMap<u32, Schema>>,
}

impl RegistryClient {
    pub fn new(base: &str) -> Result<Self, CodecError> {
        let http = reqwest::blocking::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .map_err(|e| CodecError::Registry(e.to_string()))?;
        let base = base.trim_end_matches('/').to_string();
        let shown = match reqwest::Url::parse(&base) {
            Ok(mut u) if !u.username().is_empty() || u.password().is_some() => {
                let _ = u.set_username("");
                let _ = u.set_password(None);
                u.to_string().trim_end_matches('/').to_string()
            }
            Ok(_) => base.clone(),
            Err(e) => {
                return Err(CodecError::Registry(format!(
                    "schema_registry.url is not a URL: {e}"
                )))
            }
        };
        Ok(RegistryClient {
            shown,
            base,
            http,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// Registers `schema` under `subject` (idempotent on the registry's side) and
    /// returns its id.
    pub fn register(&self, subject: &str, schema: &Schema) -> Result<u32, CodecError> {
        #[derive(serde::Deserialize)]
        struct Id {
            id: u32,
        }
        let url = format!("{}/subjects/{subject}/versions", self.base);
        let shown = format!("{}/subjects/{subject}/versions", self.shown);
        let body = serde_json::json!({ "schema": schema.canonical_form() });
        let resp = self
            .http
            .post(&url)
            .header("content-type", "application/vnd.schemaregistry.v1+json")
            .json(&body)
            .send()
            .map_err(|e| {
                CodecError::RegistryUnavailable(format!("POST {shown}: {}", e.without_url()))
            })?;
        let status = resp.status();
        if status.is_server_error() {
            return Err(CodecError::RegistryUnavailable(format!(
                "POST {shown}: {status}"
            )));
        }
        if !status.is_success() {
            let text = resp.text().unwrap_or_default();
            return Err(CodecError::Registry(format!(
                "POST {shown}: {status}: {text}"
            )));
        }
        let id: Id = resp.json().map_err(|e| {
            CodecError::Registry(format!("POST {shown}: bad answer: {}", e.without_url()))
        })?;
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(id.id, schema.clone());
        }
        Ok(id.id)
    }

    /// The schema registered with `id`.
    pub fn schema_by_id(&self, id: u32) -> Result<Schema, CodecError> {
        if let Some(s) = self.cache.lock().ok().and_then(|c| c.get(&id).cloned()) {
            return Ok(s);
        }
        #[derive(serde::Deserialize)]
        struct SchemaText {
            schema: String,
        }
        let url = format!("{}/schemas/ids/{id}", self.base);
        let shown = format!("{}/schemas/ids/{id}", self.shown);
        let resp = self.http.get(&url).send().map_err(|e| {
            CodecError::RegistryUnavailable(format!("GET {shown}: {}", e.without_url()))
        })?;
        if resp.status().is_server_error() {
            return Err(CodecError::RegistryUnavailable(format!(
                "GET {shown}: {}",
                resp.status()
            )));
        }
        if !resp.status().is_success() {
            return Err(CodecError::Registry(format!(
                "GET {shown}: {}",
                resp.status()
            )));
        }
        let text: SchemaText = resp.json().map_err(|e| {
            CodecError::Registry(format!("GET {shown}: bad answer: {}", e.without_url()))
        })?;
        let schema = Schema::parse_str(&text.schema)
            .map_err(|e| CodecError::Registry(format!("schema {id} does not parse: {e}")))?;
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(id, schema.clone());
        }
        Ok(schema)
    }
}

/// Codecs for the three Avro record types, built once per service.
#[derive(Clone)]
pub struct Codecs {
    pub audit_event: AvroCodec<super::AuditEvent>,
    pub enriched: AvroCodec<super::EnrichedAuditEvent>,
    pub alert: AvroCodec<super::Alert>,
    pub checkpoint: AvroCodec<super::ChainCheckpoint>,
}

impl Codecs {
    /// Builds the codecs; with a registry, registers each schema under
    /// `<topic>-value` (blocking: call from a blocking context).
    pub fn new(framing: Framing, topics: &crate::config::TopicsConfig) -> Result<Self, CodecError> {
        Ok(Codecs {
            audit_event: AvroCodec::with_framing(
                super::AUDIT_EVENT_AVSC,
                framing.clone(),
                &format!("{}-value", topics.events),
            )?,
            enriched: AvroCodec::with_framing(
                super::ENRICHED_AUDIT_EVENT_AVSC,
                framing.clone(),
                &format!("{}-value", topics.enriched),
            )?,
            alert: AvroCodec::with_framing(
                super::ALERT_AVSC,
                framing.clone(),
                &format!("{}-value", topics.alerts),
            )?,
            checkpoint: AvroCodec::with_framing(
                super::CHAIN_CHECKPOINT_AVSC,
                framing,
                &format!("{}-value", topics.checkpoints),
            )?,
        })
    }

    /// Single-object codecs (no registry).
    pub fn single_object() -> Result<Self, CodecError> {
        Self::new(
            Framing::SingleObject,
            &crate::config::TopicsConfig::default(),
        )
    }
}
