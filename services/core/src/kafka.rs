//! Kafka client construction and topic management.
//!
//! Every client starts from [`base_config`]: the brokers, the settings scimtrail
//! relies on, then the operator's librdkafka pass-through properties applied
//! last, so TLS, SASL and tuning need no code change.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

use crate::config::{ClientKind, ConfigError, KafkaConfig, TopicsConfig};

#[derive(Debug, thiserror::Error)]
pub enum KafkaSetupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("kafka: {context}: {source}")]
    Kafka {
        context: String,
        #[source]
        source: KafkaError,
    },
    #[error("topic `{topic}`: {reason}")]
    Topic { topic: String, reason: String },
}

impl KafkaSetupError {
    pub fn kafka(context: impl Into<String>, source: KafkaError) -> Self {
        KafkaSetupError::Kafka {
            context: context.into(),
            source,
        }
    }
}

/// Brokers plus the operator's pass-through properties (applied last), for
/// admin and metadata clients.
pub fn base_config(cfg: &KafkaConfig) -> Result<ClientConfig, ConfigError> {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &cfg.brokers);
    apply(&mut c, cfg, ClientKind::Admin)?;
    Ok(c)
}

/// Applies the operator's properties for `kind`; called last so they win.
pub fn apply(c: &mut ClientConfig, cfg: &KafkaConfig, kind: ClientKind) -> Result<(), ConfigError> {
    for (k, v) in cfg.librdkafka_properties(kind)? {
        c.set(k, v);
    }
    Ok(())
}

/// A consumer in `group_id`; `settings` are scimtrail's own and come before
/// the operator's properties.
pub fn consumer_config(
    cfg: &KafkaConfig,
    group_id: &str,
    settings: &[(&str, &str)],
) -> Result<ClientConfig, ConfigError> {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &cfg.brokers)
        .set("group.id", group_id)
        .set("client.id", format!("{group_id}-{}", cfg.instance_id()))
        // Feeds the consumer-lag gauges.
        .set(
            "statistics.interval.ms",
            cfg.statistics_interval_ms.to_string(),
        );
    for (k, v) in settings {
        c.set(*k, *v);
    }
    apply(&mut c, cfg, ClientKind::Consumer)?;
    Ok(c)
}

/// Consumer settings for an exactly-once loop: read_committed, no automatic
/// commits (offsets are committed inside the producer's transaction).
pub fn transactional_consumer_config(
    cfg: &KafkaConfig,
    group_id: &str,
) -> Result<ClientConfig, ConfigError> {
    consumer_config(
        cfg,
        group_id,
        &[
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
            ("isolation.level", "read_committed"),
            ("auto.offset.reset", "earliest"),
            ("enable.partition.eof", "false"),
        ],
    )
}

/// Settings of a plain (non-transactional, idempotent) producer.
pub fn producer_config(cfg: &KafkaConfig) -> Result<ClientConfig, ConfigError> {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &cfg.brokers)
        .set("partitioner", "murmur2_random")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5");
    apply(&mut c, cfg, ClientKind::Producer)?;
    Ok(c)
}

/// Transactional producer settings. The transactional id is stable per instance
/// and loop, so a restarted instance fences its predecessor and aborts its open
/// transaction immediately instead of stalling read_committed readers until the
/// transaction times out.
pub fn transactional_producer_config(
    cfg: &KafkaConfig,
    transactional_id: &str,
) -> Result<ClientConfig, ConfigError> {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &cfg.brokers);
    // Java clients hash keys with murmur2; matching them keeps a key on the same
    // partition whichever client produced it.
    c.set("partitioner", "murmur2_random")
        .set("transactional.id", transactional_id)
        .set("enable.idempotence", "true")
        .set(
            "transaction.timeout.ms",
            cfg.transaction_timeout_ms.to_string(),
        )
        .set("linger.ms", "5")
        .set("client.id", transactional_id);
    apply(&mut c, cfg, ClientKind::Producer)?;
    Ok(c)
}

/// Settings of a topic to create.
#[derive(Debug, Clone)]
pub struct TopicSpec {
    pub name: String,
    pub partitions: i32,
    pub replication_factor: i32,
    pub settings: BTreeMap<String, String>,
}

/// What [`ensure_topics`] found or did for one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicStatus {
    Created,
    Exists { partitions: i32 },
}

/// The public topics, with the configured partitions and settings. The DLQ keeps
/// the original bytes for replay, so it is created with the same settings.
pub fn pipeline_topics(t: &TopicsConfig) -> Vec<TopicSpec> {
    t.all()
        .iter()
        .map(|name| TopicSpec {
            name: name.to_string(),
            partitions: t.partitions,
            replication_factor: t.replication_factor,
            settings: t.settings.clone(),
        })
        .collect()
}

/// Creates the topics that do not exist yet; existing topics are left as they
/// are and reported with their partition count.
pub async fn ensure_topics(
    cfg: &KafkaConfig,
    specs: &[TopicSpec],
) -> Result<Vec<(String, TopicStatus)>, KafkaSetupError> {
    let admin: AdminClient<DefaultClientContext> = base_config(cfg)?
        .create()
        .map_err(|e| KafkaSetupError::kafka("create admin client", e))?;
    let new: Vec<NewTopic<'_>> = specs
        .iter()
        .map(|s| {
            let mut t = NewTopic::new(
                &s.name,
                s.partitions,
                TopicReplication::Fixed(s.replication_factor),
            );
            for (k, v) in &s.settings {
                t = t.set(k, v);
            }
            t
        })
        .collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = admin
        .create_topics(new.iter(), &opts)
        .await
        .map_err(|e| KafkaSetupError::kafka("create topics", e))?;
    let mut created = HashMap::new();
    for r in results {
        match r {
            Ok(name) => {
                created.insert(name, true);
            }
            Err((name, RDKafkaErrorCode::TopicAlreadyExists)) => {
                created.insert(name, false);
            }
            Err((name, code)) => {
                return Err(KafkaSetupError::Topic {
                    topic: name,
                    reason: format!("cannot create: {code}"),
                })
            }
        }
    }
    let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
    let counts = {
        let cfg = cfg.clone();
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        tokio::task::spawn_blocking(move || partition_counts(&cfg, &names))
            .await
            .map_err(|e| KafkaSetupError::Topic {
                topic: "*".into(),
                reason: format!("metadata task failed: {e}"),
            })??
    };
    Ok(specs
        .iter()
        .map(|s| {
            let status = if created.get(&s.name).copied().unwrap_or(false) {
                TopicStatus::Created
            } else {
                TopicStatus::Exists {
                    partitions: counts.get(&s.name).copied().unwrap_or(0),
                }
            };
            (s.name.clone(), status)
        })
        .collect())
}

/// Partition counts of the given topics (blocking). A topic that does not exist
/// is an error naming it.
pub fn partition_counts(
    cfg: &KafkaConfig,
    topics: &[String],
) -> Result<HashMap<String, i32>, KafkaSetupError> {
    let consumer: BaseConsumer = base_config(cfg)?
        .create()
        .map_err(|e| KafkaSetupError::kafka("create metadata client", e))?;
    let mut out = HashMap::new();
    for topic in topics {
        // Freshly created topics can take a moment to appear in metadata.
        let mut last_err = None;
        for _ in 0..20 {
            match consumer.fetch_metadata(Some(topic), Duration::from_secs(10)) {
                Ok(md) => {
                    let Some(t) = md.topics().iter().find(|t| t.name() == topic) else {
                        last_err = Some("absent from metadata".to_string());
                        continue;
                    };
                    if let Some(err) = t.error() {
                        last_err = Some(format!("{:?}", RDKafkaErrorCode::from(err)));
                        std::thread::sleep(Duration::from_millis(250));
                        continue;
                    }
                    out.insert(topic.clone(), t.partitions().len() as i32);
                    last_err = None;
                    break;
                }
                Err(e) => return Err(KafkaSetupError::kafka(format!("metadata of {topic}"), e)),
            }
        }
        if let Some(reason) = last_err {
            return Err(KafkaSetupError::Topic {
                topic: topic.clone(),
                reason: format!(
                    "not available: {reason} (create it with `scimtrail topics ensure`)"
                ),
            });
        }
    }
    Ok(out)
}

/// Context of a consumer that reads to the end of partitions with
/// `enable.partition.eof`: librdkafka also reports each end of partition as
/// a client-level error, which the default context logs at error level;
/// reaching the end is what such a reader is for, so only real errors are
/// logged.
pub struct EndOfPartitionIsNotAnError;

impl rdkafka::ClientContext for EndOfPartitionIsNotAnError {
    fn error(&self, error: KafkaError, reason: &str) {
        let end_of_partition = matches!(
            error,
            KafkaError::PartitionEOF(_) | KafkaError::Global(RDKafkaErrorCode::PartitionEOF)
        );
        if !end_of_partition {
            tracing::error!(message = "librdkafka error", error = %error, reason);
        }
    }
}

impl rdkafka::consumer::ConsumerContext for EndOfPartitionIsNotAnError {}

/// Called with each record's key and payload (`None`: a tombstone).
pub type VisitRecord<'a> = dyn FnMut(Option<&[u8]>, Option<&[u8]>) + 'a;

/// Reads the last committed records of one partition, for a stage that must
/// continue what it wrote before (a hash chain) after a restart or a
/// rebalance. Only committed records are returned (read_committed), so the
/// records of an aborted or still open transaction are never continued from.
pub struct PartitionTail {
    consumer: BaseConsumer<EndOfPartitionIsNotAnError>,
    timeout: Duration,
}

impl PartitionTail {
    pub fn new(cfg: &KafkaConfig, group_id: &str) -> Result<Self, KafkaSetupError> {
        let consumer: BaseConsumer<EndOfPartitionIsNotAnError> = consumer_config(
            cfg,
            &format!("{group_id}-tail"),
            &[
                ("enable.auto.commit", "false"),
                ("isolation.level", "read_committed"),
                ("enable.partition.eof", "true"),
                ("statistics.interval.ms", "0"),
            ],
        )?
        .create_with_context(EndOfPartitionIsNotAnError)
        .map_err(|e| KafkaSetupError::kafka("create tail reader", e))?;
        Ok(PartitionTail {
            consumer,
            timeout: Duration::from_millis(cfg.operation_timeout_ms),
        })
    }

    /// The committed record payloads among the last `span` offsets of
    /// `topic`/`partition`, in log order, and whether that reached back to the
    /// partition's first offset.
    pub fn last(
        &self,
        topic: &str,
        partition: i32,
        span: i64,
    ) -> Result<(Vec<Vec<u8>>, bool), KafkaSetupError> {
        let ctx = || format!("tail of {topic}/{partition}");
        let (low, high) = self
            .consumer
            .fetch_watermarks(topic, partition, self.timeout)
            .map_err(|e| KafkaSetupError::kafka(ctx(), e))?;
        let start = low.max(high - span.max(1));
        if high <= low {
            return Ok((Vec::new(), true));
        }
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, partition, Offset::Offset(start))
            .map_err(|e| KafkaSetupError::kafka(ctx(), e))?;
        self.consumer
            .assign(&tpl)
            .map_err(|e| KafkaSetupError::kafka(ctx(), e))?;
        let deadline = std::time::Instant::now() + self.timeout;
        let mut records = Vec::new();
        let result = loop {
            if std::time::Instant::now() >= deadline {
                break Err(KafkaSetupError::Topic {
                    topic: topic.to_string(),
                    reason: format!(
                        "partition {partition}: no end of committed data within {:?}",
                        self.timeout
                    ),
                });
            }
            match self.consumer.poll(Duration::from_millis(200)) {
                None => {}
                Some(Ok(m)) => {
                    if let Some(p) = m.payload() {
                        records.push(p.to_vec());
                    }
                }
                // The end of what a read_committed consumer may read.
                Some(Err(KafkaError::PartitionEOF(_))) => break Ok(()),
                Some(Err(e)) => break Err(KafkaSetupError::kafka(ctx(), e)),
            }
        };
        let _ = self.consumer.unassign();
        result.map(|()| (records, start == low))
    }

    /// Reads every committed record of `topic`/`partition` from its first
    /// offset to its committed end, handing each key and payload (`None` for a
    /// tombstone) to `f`: the restore of state kept in a compacted changelog.
    /// Fails only when no record arrives for the operation timeout, so a long
    /// changelog is read to its end however long that takes. Returns the
    /// number of records read.
    pub fn scan(
        &self,
        topic: &str,
        partition: i32,
        f: &mut VisitRecord<'_>,
    ) -> Result<u64, KafkaSetupError> {
        let ctx = || format!("scan of {topic}/{partition}");
        let (low, high) = self
            .consumer
            .fetch_watermarks(topic, partition, self.timeout)
            .map_err(|e| KafkaSetupError::kafka(ctx(), e))?;
        if high <= low {
            return Ok(0);
        }
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, partition, Offset::Offset(low))
            .map_err(|e| KafkaSetupError::kafka(ctx(), e))?;
        self.consumer
            .assign(&tpl)
            .map_err(|e| KafkaSetupError::kafka(ctx(), e))?;
        let mut idle_since = std::time::Instant::now();
        let mut read = 0u64;
        let result = loop {
            if idle_since.elapsed() >= self.timeout {
                break Err(KafkaSetupError::Topic {
                    topic: topic.to_string(),
                    reason: format!(
                        "partition {partition}: no record and no end of committed data within {:?}",
                        self.timeout
                    ),
                });
            }
            match self.consumer.poll(Duration::from_millis(200)) {
                None => {}
                Some(Ok(m)) => {
                    idle_since = std::time::Instant::now();
                    read += 1;
                    f(m.key(), m.payload());
                }
                Some(Err(KafkaError::PartitionEOF(_))) => break Ok(read),
                Some(Err(e)) => break Err(KafkaSetupError::kafka(ctx(), e)),
            }
        };
        let _ = self.consumer.unassign();
        result
    }
}
