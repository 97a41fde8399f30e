//! The detector's two exactly-once tasks, wired as `scimtrail_detector::run`
//! wires them, but in this process and on the bench's topics, so the bench
//! can watch them: `repartition` ([`ByKey`]: enriched → by-key topic, group
//! `<prefix>-detector-repartition`) and `rules` ([`Evaluate`]: by-key →
//! alerts and the state changelog, group `<prefix>-detector-rules`), each in
//! the shared runner with the detector's runner metrics and one [`Rules`]
//! handle between them. The internal topics are created as the detector
//! creates them: the by-key topic with the topics' settings, the changelog
//! compacted (without `retention.ms`), both with `topics.partitions`
//! partitions. What `run` does besides (the admin server, the rules file
//! watcher, signal handling) is not part of what is measured.
//!
//! Each stage is wrapped in [`Timed`], which only counts its time.

use std::sync::Arc;
use std::time::Instant;

use prometheus::Registry;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use scimtrail_core::admin::Health;
use scimtrail_core::config::{KafkaConfig, TopicsConfig};
use scimtrail_core::kafka::{TopicSpec, TopicStatus};
use scimtrail_core::metrics::RunnerMetrics;
use scimtrail_core::runner::{self, RunnerError, RunnerSpec};
use scimtrail_core::schema::avro::Codecs;
use scimtrail_core::schema::Framing;
use scimtrail_detector::evaluate::{self, Evaluate};
use scimtrail_detector::reload::Rules;
use scimtrail_detector::repartition::ByKey;
use scimtrail_detector::rules::{EngineMetrics, EngineOptions, RuleSet};
use scimtrail_detector::{DetectorConfig, BY_KEY, SERVICE};

use crate::stages::{StageClock, Timed};

/// Task names, as the detector names them (metric labels, health).
pub const REPARTITION: &str = "repartition";
pub const RULES: &str = "rules";

/// The detector's internal topics on `topics`: (by-key, changelog).
pub fn internal_topics(topics: &TopicsConfig) -> (String, String) {
    (
        topics.internal(BY_KEY),
        topics.internal(evaluate::CHANGELOG),
    )
}

/// Creates the by-key topic and the changelog as `scimtrail_detector::run`
/// does; both must be new.
pub fn create_internal_topics(
    rt: &tokio::runtime::Runtime,
    kafka: &KafkaConfig,
    topics: &TopicsConfig,
) -> anyhow::Result<()> {
    let (by_key, changelog) = internal_topics(topics);
    let mut compacted = topics.settings.clone();
    compacted.insert("cleanup.policy".into(), "compact".into());
    compacted.remove("retention.ms");
    let specs = [
        TopicSpec {
            name: by_key,
            partitions: topics.partitions,
            replication_factor: topics.replication_factor,
            settings: topics.settings.clone(),
        },
        TopicSpec {
            name: changelog,
            partitions: topics.partitions,
            replication_factor: topics.replication_factor,
            settings: compacted,
        },
    ];
    let created = rt.block_on(scimtrail_core::kafka::ensure_topics(kafka, &specs))?;
    for (name, status) in created {
        if status != TopicStatus::Created {
            anyhow::bail!("topic {name} already existed: {status:?}; the bench needs fresh topics");
        }
    }
    Ok(())
}

/// A running detector (both tasks) and what the bench reads of it.
pub struct Detector {
    pub repartition_group: String,
    pub rules_group: String,
    pub by_key: String,
    pub changelog: String,
    pub registry: Registry,
    pub metrics: RunnerMetrics,
    pub repartition_clock: Arc<StageClock>,
    pub rules_clock: Arc<StageClock>,
    pub started: Instant,
    shutdown: CancellationToken,
    repartition: Option<JoinHandle<Result<(), RunnerError>>>,
    rules: Option<JoinHandle<Result<(), RunnerError>>>,
}

/// The engine options the detector derives from its configuration.
pub fn engine_options(config: &DetectorConfig) -> EngineOptions {
    EngineOptions {
        allowed_lateness_ms: config.allowed_lateness_ms(),
        max_evidence: config.max_evidence,
        max_keys: config.max_keys,
    }
}

impl Detector {
    /// Starts both tasks on `topics` (their `enriched` topic is the input,
    /// alerts go to `alerts`), with `rules` and the options of `config`.
    /// The internal topics must exist ([`create_internal_topics`]).
    pub fn spawn(
        rt: &tokio::runtime::Runtime,
        kafka: &KafkaConfig,
        topics: &TopicsConfig,
        rules: RuleSet,
        config: &DetectorConfig,
    ) -> anyhow::Result<Detector> {
        let (by_key, changelog) = internal_topics(topics);
        // As the detector reads it: the partition count of the enriched topic
        // is the number of sources every by-key partition waits for.
        let sources =
            scimtrail_core::kafka::partition_counts(kafka, std::slice::from_ref(&topics.enriched))?
                .get(&topics.enriched)
                .copied()
                .unwrap_or(0);
        let codecs = Codecs::new(Framing::SingleObject, topics)?;
        let rules = Rules::new(rules);
        let registry = Registry::new();
        let metrics = RunnerMetrics::new(&registry, SERVICE);
        let health = Health::new();
        let shutdown = CancellationToken::new();
        let repartition_group = format!("{}-{SERVICE}-repartition", kafka.group_prefix);
        let rules_group = format!("{}-{SERVICE}-rules", kafka.group_prefix);

        let (by_key_stage, repartition_clock) = Timed::new(ByKey::new(
            codecs.enriched.clone(),
            by_key.clone(),
            rules.clone(),
        ));
        let (evaluate_stage, rules_clock) = Timed::new(Evaluate::new(
            codecs,
            topics.alerts.clone(),
            changelog.clone(),
            rules,
            engine_options(config),
            EngineMetrics::new(&registry),
            usize::try_from(sources).unwrap_or(0),
        ));
        let started = Instant::now();
        let repartition = rt.spawn(runner::spawn(
            RunnerSpec {
                task: REPARTITION.into(),
                stage: SERVICE.into(),
                group_id: repartition_group.clone(),
                input_topics: vec![topics.enriched.clone()],
                dlq_topic: topics.dlq.clone(),
            },
            kafka.clone(),
            by_key_stage,
            metrics.clone(),
            health.task(REPARTITION),
            shutdown.clone(),
        ));
        let rules = rt.spawn(runner::spawn(
            RunnerSpec {
                task: RULES.into(),
                stage: SERVICE.into(),
                group_id: rules_group.clone(),
                input_topics: vec![by_key.clone()],
                dlq_topic: topics.dlq.clone(),
            },
            kafka.clone(),
            evaluate_stage,
            metrics.clone(),
            health.task(RULES),
            shutdown.clone(),
        ));
        Ok(Detector {
            repartition_group,
            rules_group,
            by_key,
            changelog,
            registry,
            metrics,
            repartition_clock,
            rules_clock,
            started,
            shutdown,
            repartition: Some(repartition),
            rules: Some(rules),
        })
    }

    /// Whether both tasks have partitions assigned (and their state restored).
    pub fn assigned(&self) -> bool {
        [REPARTITION, RULES].iter().all(|t| {
            self.metrics
                .assigned_partitions
                .with_label_values(&[t])
                .get()
                > 0
        })
    }

    /// An error if either task has stopped (a running detector never does).
    pub fn check_running(&mut self, rt: &tokio::runtime::Runtime) -> anyhow::Result<()> {
        for (name, slot) in [
            (REPARTITION, &mut self.repartition),
            (RULES, &mut self.rules),
        ] {
            if slot.as_ref().is_some_and(JoinHandle::is_finished) {
                let outcome = slot.take().map(|h| rt.block_on(h));
                self.shutdown.cancel();
                anyhow::bail!("the detector's {name} task stopped: {outcome:?}");
            }
        }
        Ok(())
    }

    /// Stops both tasks (each commits the batch in hand) and waits for them;
    /// returns the seconds it took.
    pub fn stop(mut self, rt: &tokio::runtime::Runtime) -> anyhow::Result<f64> {
        let stopping = Instant::now();
        self.shutdown.cancel();
        for (name, slot) in [
            (REPARTITION, &mut self.repartition),
            (RULES, &mut self.rules),
        ] {
            if let Some(h) = slot.take() {
                rt.block_on(h)
                    .map_err(|e| anyhow::anyhow!("{name} task: {e}"))??;
            }
        }
        Ok(stopping.elapsed().as_secs_f64())
    }

    /// Records of committed transactions of `task` (the runner observes each
    /// record's latency right after its transaction commits).
    pub fn committed_records(&self, task: &str) -> u64 {
        self.metrics
            .record_latency
            .with_label_values(&[task])
            .get_sample_count()
    }

    /// Records `task` sent to the dead-letter topic (all reasons).
    pub fn dead_letters(&self, task: &str) -> u64 {
        prometheus::core::Collector::collect(&self.metrics.dead_letters)
            .iter()
            .flat_map(|f| f.get_metric().iter())
            .filter(|m| m.get_label().iter().any(|l| l.value() == task))
            .map(|m| m.get_counter().get_value())
            .sum::<f64>() as u64
    }

    /// Records `task` wrote to `topic` in committed transactions.
    pub fn produced(&self, task: &str, topic: &str) -> u64 {
        self.metrics
            .produced
            .with_label_values(&[task, topic])
            .get()
    }
}

impl Drop for Detector {
    /// Stops the tasks on every way out, errors included: dropping the
    /// runtime waits for the runners' threads, so one left running would hang
    /// the process.
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
