//! Typed, layered configuration shared by every service.
//!
//! Sources, later ones winning: built-in defaults, an optional TOML file
//! (`--config FILE` or `SCIMTRAIL_CONFIG`), then environment variables
//! `SCIMTRAIL__SECTION__KEY` (double underscores separate levels, e.g.
//! `SCIMTRAIL__KAFKA__BROKERS`). Every section rejects unknown keys, and
//! [`Validate`] checks values once at start-up, so a typo or a bad value stops the
//! service with an error that names the key instead of surfacing later.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Deserialize;

/// Env var prefix; `SCIMTRAIL__KAFKA__BROKERS` sets `kafka.brokers`.
pub const ENV_PREFIX: &str = "SCIMTRAIL";

/// The sections every service understands, besides its own.
pub const COMMON_SECTIONS: &[&str] = &["kafka", "topics", "admin", "log", "schema_registry"];

/// Every service's own section. One configuration file (or one set of
/// environment variables) can serve the whole pipeline: a service ignores the
/// other services' sections, and only a name that is nobody's is an error.
pub const SERVICE_SECTIONS: &[&str] = &["ingest", "enricher", "detector", "sink", "cli"];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: cannot load: {0}")]
    Load(#[from] config::ConfigError),
    #[error("configuration key `{key}`: {reason}")]
    Invalid { key: String, reason: String },
    #[error("configuration key `{0}` is not known (known top-level sections: {1})")]
    UnknownSection(String, String),
}

impl ConfigError {
    pub fn invalid(key: impl Into<String>, reason: impl Into<String>) -> Self {
        ConfigError::Invalid {
            key: key.into(),
            reason: reason.into(),
        }
    }
}

/// A configuration section that can check its own values.
pub trait Validate {
    fn validate(&self) -> Result<(), ConfigError>;
}

/// Kafka connection and client behaviour.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// Bootstrap servers, comma separated (`bootstrap.servers`).
    #[serde(default = "default_brokers")]
    pub brokers: String,
    /// Stable name of this instance. It becomes part of the transactional id, so a
    /// restarted instance fences its previous incarnation and aborts its open
    /// transaction at once; give every replica a distinct, stable value (the pod
    /// name of a StatefulSet). Defaults to the host name.
    #[serde(default)]
    pub instance_id: Option<String>,
    /// Prefix of every consumer group id (`<prefix>-<stage>`).
    #[serde(default = "default_group_prefix")]
    pub group_prefix: String,
    /// Upper bound on the messages processed in one transaction.
    #[serde(default = "default_batch_max_messages")]
    pub batch_max_messages: usize,
    /// Longest time a batch stays open waiting for more messages, in milliseconds.
    /// Bounds the latency a transaction adds.
    #[serde(default = "default_batch_max_wait_ms")]
    pub batch_max_wait_ms: u64,
    /// `transaction.timeout.ms` of the transactional producer.
    #[serde(default = "default_transaction_timeout_ms")]
    pub transaction_timeout_ms: u64,
    /// Time allowed for transactional API calls (init, commit, abort, send offsets).
    #[serde(default = "default_operation_timeout_ms")]
    pub operation_timeout_ms: u64,
    /// How often consumers report statistics (consumer lag), in milliseconds;
    /// 0 turns the reports, and the lag gauges, off.
    #[serde(default = "default_statistics_interval_ms")]
    pub statistics_interval_ms: u64,
    /// librdkafka properties applied last to every client, so TLS, SASL and tuning
    /// need no code change, e.g. `security.protocol = "SASL_SSL"`. From the
    /// environment: `SCIMTRAIL__KAFKA__PROPERTIES__SECURITY_PROTOCOL=SASL_SSL`
    /// (underscores in the name become dots).
    #[serde(default)]
    pub properties: serde_json::Map<String, serde_json::Value>,
    /// librdkafka properties for consumers only, applied after `properties`
    /// (e.g. `session.timeout.ms`).
    #[serde(default)]
    pub consumer_properties: serde_json::Map<String, serde_json::Value>,
    /// librdkafka properties for producers only, applied after `properties`
    /// (e.g. `compression.type`).
    #[serde(default)]
    pub producer_properties: serde_json::Map<String, serde_json::Value>,
}

/// librdkafka properties the delivery guarantees depend on: pass-through
/// properties may not override them.
const RESERVED_PROPERTIES: &[(&str, &str)] = &[
    ("bootstrap.servers", "use kafka.brokers"),
    (
        "group.id",
        "consumer groups are named by kafka.group_prefix",
    ),
    (
        "transactional.id",
        "derived from the group and kafka.instance_id",
    ),
    (
        "enable.idempotence",
        "exactly-once needs the idempotent producer",
    ),
    ("isolation.level", "stages read only committed records"),
    (
        "enable.auto.commit",
        "offsets are committed with the output, never on a timer",
    ),
    (
        "enable.auto.offset.store",
        "offsets are stored only after processing",
    ),
];

/// Which kind of client a set of pass-through properties is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientKind {
    Consumer,
    Producer,
    Admin,
}

fn default_brokers() -> String {
    "127.0.0.1:9092".into()
}
fn default_group_prefix() -> String {
    "scimtrail".into()
}
fn default_batch_max_messages() -> usize {
    500
}
fn default_batch_max_wait_ms() -> u64 {
    100
}
fn default_transaction_timeout_ms() -> u64 {
    60_000
}
fn default_operation_timeout_ms() -> u64 {
    30_000
}
fn default_statistics_interval_ms() -> u64 {
    10_000
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            brokers: default_brokers(),
            instance_id: None,
            group_prefix: default_group_prefix(),
            batch_max_messages: default_batch_max_messages(),
            batch_max_wait_ms: default_batch_max_wait_ms(),
            transaction_timeout_ms: default_transaction_timeout_ms(),
            operation_timeout_ms: default_operation_timeout_ms(),
            statistics_interval_ms: default_statistics_interval_ms(),
            properties: serde_json::Map::new(),
            consumer_properties: serde_json::Map::new(),
            producer_properties: serde_json::Map::new(),
        }
    }
}

impl KafkaConfig {
    /// The instance id, falling back to the host name.
    pub fn instance_id(&self) -> String {
        if let Some(id) = &self.instance_id {
            return id.clone();
        }
        std::env::var("HOSTNAME")
            .ok()
            .filter(|h| !h.is_empty())
            .or_else(|| {
                std::fs::read_to_string("/etc/hostname")
                    .ok()
                    .map(|s| s.trim().to_string())
            })
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "scimtrail".into())
    }

    /// librdkafka pass-through properties as flat `name = value` pairs.
    ///
    /// Nested tables (TOML `security.protocol = …` parses as a nested key) are
    /// joined with dots, and underscores become dots because environment variable
    /// names cannot contain dots; no librdkafka property uses underscores.
    pub fn librdkafka_properties(
        &self,
        kind: ClientKind,
    ) -> Result<BTreeMap<String, String>, ConfigError> {
        let mut out = BTreeMap::new();
        flatten_properties("kafka.properties", "", &self.properties, &mut out)?;
        match kind {
            ClientKind::Consumer => flatten_properties(
                "kafka.consumer_properties",
                "",
                &self.consumer_properties,
                &mut out,
            )?,
            ClientKind::Producer => flatten_properties(
                "kafka.producer_properties",
                "",
                &self.producer_properties,
                &mut out,
            )?,
            ClientKind::Admin => {}
        }
        Ok(out)
    }
}

fn flatten_properties(
    section: &str,
    prefix: &str,
    map: &serde_json::Map<String, serde_json::Value>,
    out: &mut BTreeMap<String, String>,
) -> Result<(), ConfigError> {
    for (k, v) in map {
        let name = if prefix.is_empty() {
            k.replace('_', ".")
        } else {
            format!("{prefix}.{}", k.replace('_', "."))
        };
        match v {
            serde_json::Value::Object(inner) => flatten_properties(section, &name, inner, out)?,
            serde_json::Value::String(s) => {
                out.insert(name, s.clone());
            }
            serde_json::Value::Bool(b) => {
                out.insert(name, b.to_string());
            }
            serde_json::Value::Number(n) => {
                out.insert(name, n.to_string());
            }
            other => {
                return Err(ConfigError::invalid(
                    format!("{section}.{name}"),
                    format!("must be a string, number or boolean, not {other}"),
                ))
            }
        }
    }
    Ok(())
}

impl Validate for KafkaConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.brokers.trim().is_empty() {
            return Err(ConfigError::invalid("kafka.brokers", "must not be empty"));
        }
        if self.group_prefix.trim().is_empty() {
            return Err(ConfigError::invalid(
                "kafka.group_prefix",
                "must not be empty",
            ));
        }
        if self.batch_max_messages == 0 {
            return Err(ConfigError::invalid(
                "kafka.batch_max_messages",
                "must be at least 1",
            ));
        }
        if self.operation_timeout_ms == 0 || self.transaction_timeout_ms == 0 {
            return Err(ConfigError::invalid(
                "kafka.transaction_timeout_ms",
                "timeouts must be positive",
            ));
        }
        if let Some(id) = &self.instance_id {
            if id.trim().is_empty() {
                return Err(ConfigError::invalid(
                    "kafka.instance_id",
                    "must not be empty when set",
                ));
            }
        }
        for kind in [ClientKind::Consumer, ClientKind::Producer] {
            for name in self.librdkafka_properties(kind)?.keys() {
                if let Some(why) = RESERVED_PROPERTIES
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, why)| why)
                {
                    return Err(ConfigError::invalid(
                        format!("kafka.properties.{name}"),
                        format!("is set by scimtrail and cannot be overridden: {why}"),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Topic names and the settings `scimtrail topics ensure` creates them with.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicsConfig {
    /// Captured SCIM exchanges, JSON (the raw contract).
    #[serde(default = "default_raw")]
    pub raw: String,
    /// Normalized `AuditEvent`s, Avro.
    #[serde(default = "default_events")]
    pub events: String,
    /// `EnrichedAuditEvent`s, Avro.
    #[serde(default = "default_enriched")]
    pub enriched: String,
    /// `Alert`s, Avro.
    #[serde(default = "default_alerts")]
    pub alerts: String,
    /// Dead letters: the original bytes, the reason in headers.
    #[serde(default = "default_dlq")]
    pub dlq: String,
    /// Signed chain checkpoints (`ChainCheckpoint`), Avro.
    #[serde(default = "default_checkpoints")]
    pub checkpoints: String,
    /// Prefix of internal topics (the detector's repartition topics).
    #[serde(default = "default_internal_prefix")]
    pub internal_prefix: String,
    /// Partitions of every topic created. The pipeline keeps events of one resource
    /// on one partition number end to end, so all topics share this count.
    #[serde(default = "default_partitions")]
    pub partitions: i32,
    /// Replication factor of every topic created.
    #[serde(default = "default_replication_factor")]
    pub replication_factor: i32,
    /// Extra topic-level settings for created topics, e.g. `retention.ms`.
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
}

fn default_raw() -> String {
    "scim.raw.v1".into()
}
fn default_events() -> String {
    "audit.events.v1".into()
}
fn default_enriched() -> String {
    "audit.enriched.v1".into()
}
fn default_alerts() -> String {
    "audit.alerts.v1".into()
}
fn default_dlq() -> String {
    "audit.dlq.v1".into()
}
fn default_checkpoints() -> String {
    "audit.checkpoints.v1".into()
}
fn default_internal_prefix() -> String {
    "scimtrail-internal.".into()
}
fn default_partitions() -> i32 {
    3
}
fn default_replication_factor() -> i32 {
    1
}

impl Default for TopicsConfig {
    fn default() -> Self {
        TopicsConfig {
            raw: default_raw(),
            events: default_events(),
            enriched: default_enriched(),
            alerts: default_alerts(),
            dlq: default_dlq(),
            checkpoints: default_checkpoints(),
            internal_prefix: default_internal_prefix(),
            partitions: default_partitions(),
            replication_factor: default_replication_factor(),
            settings: BTreeMap::new(),
        }
    }
}

impl TopicsConfig {
    /// The public topics, in pipeline order.
    pub fn all(&self) -> [&str; 6] {
        [
            &self.raw,
            &self.events,
            &self.enriched,
            &self.alerts,
            &self.dlq,
            &self.checkpoints,
        ]
    }

    /// Name of an internal topic owned by one stage.
    pub fn internal(&self, name: &str) -> String {
        format!("{}{name}", self.internal_prefix)
    }
}

impl Validate for TopicsConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        for (key, name) in [
            ("topics.raw", &self.raw),
            ("topics.events", &self.events),
            ("topics.enriched", &self.enriched),
            ("topics.alerts", &self.alerts),
            ("topics.dlq", &self.dlq),
            ("topics.checkpoints", &self.checkpoints),
        ] {
            if name.is_empty() || name.len() > 249 {
                return Err(ConfigError::invalid(key, "must be 1 to 249 characters"));
            }
            if !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
            {
                return Err(ConfigError::invalid(
                    key,
                    format!(
                        "`{name}` is not a legal Kafka topic name (letters, digits, `.`, `_`, `-`)"
                    ),
                ));
            }
        }
        let mut names: Vec<&str> = self.all().to_vec();
        names.sort_unstable();
        names.dedup();
        if names.len() != self.all().len() {
            return Err(ConfigError::invalid(
                "topics",
                "every topic needs a distinct name",
            ));
        }
        if self.partitions < 1 {
            return Err(ConfigError::invalid(
                "topics.partitions",
                "must be at least 1",
            ));
        }
        if self.replication_factor < 1 {
            return Err(ConfigError::invalid(
                "topics.replication_factor",
                "must be at least 1",
            ));
        }
        Ok(())
    }
}

/// The admin HTTP server (`/metrics`, `/healthz`, `/readyz`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Listen address. Port 0 picks a free port (logged at start).
    pub listen: SocketAddr,
}

/// Logging.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// `tracing` filter directive, e.g. `info` or `info,scimtrail_core=debug`.
    /// `RUST_LOG` overrides it when set.
    #[serde(default = "default_log_level")]
    pub level: String,
    /// `json` (one JSON object per line, the default) or `text` for humans.
    #[serde(default)]
    pub format: LogFormat,
}

fn default_log_level() -> String {
    "info".into()
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: default_log_level(),
            format: LogFormat::Json,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Json,
    Text,
}

/// Avro framing: with a registry URL, the Confluent wire format (magic byte and
/// schema id); without, Avro single-object encoding (fingerprint header).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchemaRegistryConfig {
    /// Base URL of a Confluent-compatible schema registry, e.g. `http://registry:8081`.
    #[serde(default)]
    pub url: Option<String>,
}

impl Validate for SchemaRegistryConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if let Some(url) = &self.url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(ConfigError::invalid(
                    "schema_registry.url",
                    format!("`{url}` must start with http:// or https://"),
                ));
            }
        }
        Ok(())
    }
}

/// The sections every service shares.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommonConfig {
    #[serde(default)]
    pub kafka: KafkaConfig,
    #[serde(default)]
    pub topics: TopicsConfig,
    pub admin: AdminConfig,
    #[serde(default)]
    pub log: LogConfig,
    #[serde(default)]
    pub schema_registry: SchemaRegistryConfig,
}

impl Validate for CommonConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        self.kafka.validate()?;
        self.topics.validate()?;
        self.schema_registry.validate()
    }
}

/// A service's full configuration: the shared sections and its own.
#[derive(Debug, Clone)]
pub struct ServiceConfig<S> {
    pub common: CommonConfig,
    pub stage: S,
}

/// How to load one service's configuration.
pub struct LoadOptions<'a> {
    /// Name of the service's own section, e.g. `detector`.
    pub section: &'a str,
    /// Default admin listen address.
    pub default_admin_listen: &'a str,
    /// Optional TOML file.
    pub file: Option<&'a Path>,
}

/// Loads and validates a service's configuration from defaults, the optional file
/// and `SCIMTRAIL__…` environment variables.
pub fn load<S>(opts: LoadOptions<'_>) -> Result<ServiceConfig<S>, ConfigError>
where
    S: DeserializeOwned + Default + Validate,
{
    let env = config::Environment::with_prefix(ENV_PREFIX)
        .prefix_separator("__")
        .separator("__")
        .try_parsing(true);
    load_from(opts, env)
}

/// [`load`] with an explicit environment source; lets tests inject variables.
pub fn load_from<S>(
    opts: LoadOptions<'_>,
    env: config::Environment,
) -> Result<ServiceConfig<S>, ConfigError>
where
    S: DeserializeOwned + Default + Validate,
{
    let mut builder =
        config::Config::builder().set_default("admin.listen", opts.default_admin_listen)?;
    if let Some(file) = opts.file {
        if !file.exists() {
            return Err(ConfigError::invalid(
                "--config",
                format!("file {} does not exist", file.display()),
            ));
        }
        builder = builder.add_source(config::File::from(file).format(config::FileFormat::Toml));
    }
    let raw = builder.add_source(env).build()?;

    // Each section rejects unknown keys itself; the top level is checked here
    // because the shared and the service's sections are deserialized apart.
    let table = raw
        .clone()
        .try_deserialize::<BTreeMap<String, config::Value>>()?;
    for key in table.keys() {
        let known = COMMON_SECTIONS.contains(&key.as_str())
            || SERVICE_SECTIONS.contains(&key.as_str())
            || key == opts.section;
        if !known {
            let mut all: Vec<&str> = COMMON_SECTIONS.to_vec();
            all.extend_from_slice(SERVICE_SECTIONS);
            return Err(ConfigError::UnknownSection(key.clone(), all.join(", ")));
        }
    }

    let common_table: BTreeMap<String, config::Value> = table
        .into_iter()
        .filter(|(k, _)| COMMON_SECTIONS.contains(&k.as_str()))
        .collect();
    let common: CommonConfig = config::Config::builder()
        .add_source(TableSource(common_table))
        .build()?
        .try_deserialize()?;
    let stage: S = match raw.get::<config::Value>(opts.section) {
        Ok(v) => v
            .try_deserialize()
            .map_err(|e| prefix_key(e, opts.section))?,
        Err(config::ConfigError::NotFound(_)) => S::default(),
        Err(e) => return Err(e.into()),
    };
    common.validate()?;
    stage.validate()?;
    Ok(ServiceConfig { common, stage })
}

fn prefix_key(e: config::ConfigError, section: &str) -> ConfigError {
    ConfigError::invalid(section, e.to_string())
}

/// Feeds an already-built table back into a `config::Config`.
#[derive(Debug, Clone)]
struct TableSource(BTreeMap<String, config::Value>);

impl config::Source for TableSource {
    fn clone_into_box(&self) -> Box<dyn config::Source + Send + Sync> {
        Box::new(self.clone())
    }
    fn collect(&self) -> Result<config::Map<String, config::Value>, config::ConfigError> {
        Ok(self.0.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[derive(Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Demo {
        #[serde(default)]
        threshold: u32,
    }
    impl Validate for Demo {
        fn validate(&self) -> Result<(), ConfigError> {
            if self.threshold > 100 {
                return Err(ConfigError::invalid(
                    "demo.threshold",
                    "must be at most 100",
                ));
            }
            Ok(())
        }
    }

    fn env(vars: &[(&str, &str)]) -> config::Environment {
        let map = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<std::collections::HashMap<_, _>>();
        config::Environment::with_prefix(ENV_PREFIX)
            .prefix_separator("__")
            .separator("__")
            .try_parsing(true)
            .source(Some(map))
    }

    fn opts(file: Option<&Path>) -> LoadOptions<'_> {
        LoadOptions {
            section: "demo",
            default_admin_listen: "127.0.0.1:9100",
            file,
        }
    }

    #[test]
    fn defaults_need_no_file_or_env() {
        let cfg: ServiceConfig<Demo> = load_from(opts(None), env(&[])).expect("defaults load");
        assert_eq!(cfg.common.kafka.brokers, "127.0.0.1:9092");
        assert_eq!(cfg.common.topics.enriched, "audit.enriched.v1");
        assert_eq!(cfg.common.topics.partitions, 3);
        assert_eq!(cfg.common.admin.listen.port(), 9100);
        assert_eq!(cfg.stage.threshold, 0);
    }

    #[test]
    fn env_overrides_file_which_overrides_defaults() {
        let mut f = tempfile::NamedTempFile::with_suffix(".toml").expect("tempfile");
        writeln!(
            f,
            "[kafka]\nbrokers = \"file:9092\"\ngroup_prefix = \"from-file\"\n[demo]\nthreshold = 5\n[kafka.properties]\nsecurity.protocol = \"SSL\""
        )
        .expect("write");
        let cfg: ServiceConfig<Demo> = load_from(
            opts(Some(f.path())),
            env(&[
                ("SCIMTRAIL__KAFKA__BROKERS", "env:9092"),
                ("SCIMTRAIL__DEMO__THRESHOLD", "7"),
                ("SCIMTRAIL__KAFKA__PROPERTIES__SASL_MECHANISM", "PLAIN"),
                (
                    "SCIMTRAIL__KAFKA__CONSUMER_PROPERTIES__SESSION_TIMEOUT_MS",
                    "6000",
                ),
            ]),
        )
        .expect("load");
        assert_eq!(cfg.common.kafka.brokers, "env:9092");
        assert_eq!(cfg.common.kafka.group_prefix, "from-file");
        assert_eq!(cfg.stage.threshold, 7);
        let props = cfg
            .common
            .kafka
            .librdkafka_properties(ClientKind::Admin)
            .expect("props");
        assert_eq!(
            props.get("security.protocol").map(String::as_str),
            Some("SSL")
        );
        assert_eq!(
            props.get("sasl.mechanism").map(String::as_str),
            Some("PLAIN")
        );
        assert!(!props.contains_key("session.timeout.ms"));
        let consumer = cfg
            .common
            .kafka
            .librdkafka_properties(ClientKind::Consumer)
            .expect("props");
        assert_eq!(
            consumer.get("session.timeout.ms").map(String::as_str),
            Some("6000")
        );
        assert_eq!(
            consumer.get("security.protocol").map(String::as_str),
            Some("SSL")
        );
        let producer = cfg
            .common
            .kafka
            .librdkafka_properties(ClientKind::Producer)
            .expect("props");
        assert!(!producer.contains_key("session.timeout.ms"));
    }

    #[test]
    fn unknown_key_in_a_section_is_named() {
        let err = load_from::<Demo>(opts(None), env(&[("SCIMTRAIL__KAFKA__BROKRES", "x")]))
            .expect_err("typo must fail");
        assert!(err.to_string().contains("brokres"), "{err}");
    }

    #[test]
    fn unknown_top_level_section_is_named() {
        let err = load_from::<Demo>(opts(None), env(&[("SCIMTRAIL__DETECTR__X", "1")]))
            .expect_err("unknown section must fail");
        assert!(err.to_string().contains("`detectr`"), "{err}");
    }

    #[test]
    fn other_services_sections_are_ignored() {
        let cfg: ServiceConfig<Demo> = load_from(
            opts(None),
            env(&[
                ("SCIMTRAIL__SINK__WEBHOOKS", "http://x"),
                ("SCIMTRAIL__DEMO__THRESHOLD", "3"),
            ]),
        )
        .expect("a shared environment works for every service");
        assert_eq!(cfg.stage.threshold, 3);
    }

    #[test]
    fn invalid_value_names_the_key() {
        let err = load_from::<Demo>(opts(None), env(&[("SCIMTRAIL__TOPICS__PARTITIONS", "0")]))
            .expect_err("zero partitions");
        assert!(err.to_string().contains("topics.partitions"), "{err}");
        let err = load_from::<Demo>(opts(None), env(&[("SCIMTRAIL__DEMO__THRESHOLD", "1000")]))
            .expect_err("stage validation");
        assert!(err.to_string().contains("demo.threshold"), "{err}");
        let err = load_from::<Demo>(
            opts(None),
            env(&[("SCIMTRAIL__TOPICS__ALERTS", "bad topic")]),
        )
        .expect_err("illegal topic");
        assert!(err.to_string().contains("topics.alerts"), "{err}");
    }

    #[test]
    fn delivery_critical_properties_cannot_be_overridden() {
        let err = load_from::<Demo>(
            opts(None),
            env(&[(
                "SCIMTRAIL__KAFKA__CONSUMER_PROPERTIES__ENABLE_AUTO_COMMIT",
                "true",
            )]),
        )
        .expect_err("reserved");
        assert!(err.to_string().contains("enable.auto.commit"), "{err}");
    }

    #[test]
    fn wrong_type_names_the_key() {
        let err = load_from::<Demo>(opts(None), env(&[("SCIMTRAIL__DEMO__THRESHOLD", "many")]))
            .expect_err("not a number");
        assert!(
            err.to_string().contains("demo") || err.to_string().contains("threshold"),
            "{err}"
        );
    }

    #[test]
    fn missing_file_is_reported() {
        let err = load_from::<Demo>(opts(Some(Path::new("/nonexistent/x.toml"))), env(&[]))
            .expect_err("missing file");
        assert!(err.to_string().contains("/nonexistent/x.toml"), "{err}");
    }
}
