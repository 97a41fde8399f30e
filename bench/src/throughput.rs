//! `scimtrail-bench enricher`: the enricher's sustained throughput on a real
//! broker, against a passthrough baseline run by the same exactly-once runner.
//!
//! **Method.** Fresh, uniquely named topics (input, passthrough output,
//! enriched output, changelog (compacted), dead letters), all with the same
//! partition count. The input is produced once ([`crate::corpus`]), and a
//! throwaway passthrough run over its first events warms the broker up.
//! Then, one after the other in this process against the same broker:
//!
//! - **B1, the baseline**: the shared runner with a [`Passthrough`] stage
//!   (each record copied to the output on its partition number), consumer
//!   group A;
//! - **the enricher**: the same runner, client settings and input with the
//!   real [`Enricher`] stage (state, changelog, hash chain), consumer group B.
//!
//! Each run is watched from outside through what counts, the group's
//! committed offsets (polled every [`POLL`]): the rate is the events
//! committed between the first observed commit and the commit of the last
//! input offset, divided by the time between the two. Start-up (client
//! creation, `init_transactions`, joining the group, the assignment, the
//! enricher's state restore) and the first batch are before the first
//! commit and so excluded; so is shutdown, after the last. The ratio of the
//! two rates is what the goal is about: the cost of enriching, with Kafka's
//! cost the same on both sides.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use scimtrail_core::admin::Health;
use scimtrail_core::config::KafkaConfig;
use scimtrail_core::kafka::{TopicSpec, TopicStatus};
use scimtrail_core::metrics::RunnerMetrics;
use scimtrail_core::runner::{self, RunnerSpec, Stage};
use scimtrail_core::schema::avro::Codecs;
use scimtrail_enricher::{Enricher, EnricherConfig};

use crate::corpus::{self, CorpusStats};
use crate::host::{self, CpuClock, CpuUse, Memory};
use crate::metrics;
use crate::progress::Progress;
use crate::report::{Goal, Report};
use crate::stages::{Passthrough, StageTimes, Timed};

/// How often the committed offsets are read: the resolution of the start and
/// end of each measurement (an error of at most this on each side).
pub const POLL: Duration = Duration::from_millis(20);

pub const GOAL: Goal = Goal {
    metric: "ratio",
    comparison: ">=",
    threshold: 0.7,
    description: "the enricher sustains at least 70% of the events/s of the exactly-once passthrough baseline (B1) on the same input, broker and runner settings",
};

#[derive(clap::Args, Debug)]
pub struct EnricherArgs {
    /// Input events to produce and process.
    #[arg(long, default_value_t = 200_000)]
    events: u64,
    #[command(flatten)]
    common: KafkaRunArgs,
}

/// What every benchmark on a broker takes: where, what input, where the
/// result goes.
#[derive(clap::Args, Debug)]
pub struct KafkaRunArgs {
    /// Kafka bootstrap servers.
    #[arg(
        long,
        env = "SCIMTRAIL_BENCH_BROKERS",
        default_value = "127.0.0.1:9092"
    )]
    pub brokers: String,
    /// Directory of the result file.
    #[arg(long, default_value = "bench/results")]
    pub out: PathBuf,
    /// Seed of the traffic generator: the same seed gives the same input.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Partitions of every topic.
    #[arg(long, default_value_t = 3)]
    pub partitions: i32,
    /// The `scimtrail` CLI whose `gen` makes the traffic (default: next to
    /// this binary).
    #[arg(long)]
    pub gen_bin: Option<PathBuf>,
    /// Kafka version to record (default: `<kafka.version>` of
    /// scripts/kafka-pom.xml, what scripts/kafka runs).
    #[arg(long)]
    pub kafka_version: Option<String>,
    /// Events a throwaway passthrough run commits before B1, to warm the
    /// broker up (0: none).
    #[arg(long, default_value_t = 5_000)]
    pub warmup_events: u64,
    /// Give up when nothing is committed for this many seconds.
    #[arg(long, default_value_t = 180)]
    pub stall_timeout_secs: u64,
}

impl KafkaRunArgs {
    /// The `scimtrail` CLI to generate traffic with.
    pub fn gen_bin(&self) -> anyhow::Result<PathBuf> {
        match &self.gen_bin {
            Some(p) => Ok(p.clone()),
            None => std::env::current_exe()?
                .parent()
                .map(|d| d.join("scimtrail"))
                .ok_or_else(|| anyhow::anyhow!("cannot locate this binary's directory")),
        }
    }
}

/// The runner's batching and transaction settings a result records.
#[derive(Debug, Serialize)]
pub struct RunnerSettings {
    batch_max_messages: usize,
    batch_max_wait_ms: u64,
    transaction_timeout_ms: u64,
    statistics_interval_ms: u64,
}

impl RunnerSettings {
    pub fn of(kafka: &KafkaConfig) -> Self {
        RunnerSettings {
            batch_max_messages: kafka.batch_max_messages,
            batch_max_wait_ms: kafka.batch_max_wait_ms,
            transaction_timeout_ms: kafka.transaction_timeout_ms,
            statistics_interval_ms: kafka.statistics_interval_ms,
        }
    }
}

#[derive(Debug, Serialize)]
struct Parameters {
    events: u64,
    warmup_events: u64,
    seed: u64,
    partitions: i32,
    brokers: String,
    topics: Topics,
    /// The runner's batching and transaction settings (the services'
    /// defaults), the same for both runs.
    #[serde(flatten)]
    runner: RunnerSettings,
    /// Enricher configuration: the defaults (snapshots on, no role directory,
    /// no checkpoint signing key).
    enricher_config: &'static str,
    poll_interval_ms: u64,
    build_profile: &'static str,
}

#[derive(Debug, Clone, Serialize)]
struct Topics {
    input: String,
    passthrough: String,
    enriched: String,
    changelog: String,
    dlq: String,
}

#[derive(Debug, Serialize)]
struct Figures {
    b1_events_per_second: f64,
    enricher_events_per_second: f64,
    ratio: f64,
    /// Resident memory of this process around the enricher run.
    enricher_rss_before_bytes: u64,
    enricher_rss_at_end_bytes: u64,
    enricher_hwm_bytes: u64,
    input: CorpusStats,
    /// The throwaway passthrough run before B1 (not measured).
    warmup: Option<Phase>,
    b1: Phase,
    enricher: Phase,
    /// Whether VmHWM was reset before each run (else it is the process peak).
    peak_reset_per_run: bool,
}

/// One measured run.
#[derive(Debug, Serialize)]
pub struct Phase {
    name: &'static str,
    group_id: String,
    /// Events (input offsets) committed when the run was stopped.
    events: u64,
    /// From the runner's start to the first observed commit: excluded.
    startup_seconds: f64,
    /// Events already committed at the first observed commit: excluded.
    events_in_first_commit: u64,
    /// Events and seconds from the first observed commit to the last.
    measured_events: u64,
    measured_seconds: f64,
    pub events_per_second: f64,
    /// From the cancel to the runner's return: excluded.
    shutdown_seconds: f64,
    transactions_committed: u64,
    transactions_aborted: u64,
    dead_letters: u64,
    /// Mean time of one batch from its transaction's begin to its commit,
    /// (the stage's processing, the sends and the commit) and mean records
    /// per transaction.
    batch_seconds_avg: f64,
    records_per_transaction: f64,
    /// Time inside the stage itself and what it asked to produce.
    stage: StageTimes,
    /// Mean time inside the stage per record, and wall time per event of the
    /// measured window (1 / events per second), in microseconds; their
    /// quotient is the share of the wall time spent inside the stage.
    stage_us_per_event: f64,
    wall_us_per_event: f64,
    stage_share_of_wall: f64,
    memory_before: Memory,
    /// At the last commit, with the stage (and its state) still alive.
    memory_at_end: Memory,
    /// Resources in the enricher's state at the end (enricher only).
    resources_tracked: Option<f64>,
    /// CPU use over the measured window (this process; the whole machine).
    cpu: CpuUse,
    loadavg_before: Option<[f64; 3]>,
    loadavg_after: Option<[f64; 3]>,
    /// Reads of the committed offsets that failed (retried; a lasting
    /// failure ends the run at the stall timeout).
    offset_read_errors: u64,
    /// Committed events after each ~second of the run, from its start.
    timeline: Vec<(f64, u64)>,
}

/// Runs the benchmark and writes its result file.
pub fn run(args: EnricherArgs) -> anyhow::Result<()> {
    let started_at = chrono::Utc::now();
    if args.events == 0 || args.common.partitions < 1 {
        anyhow::bail!("--events and --partitions must be positive");
    }
    let gen_bin = args.common.gen_bin()?;
    let run_id = short_id();
    let kafka = KafkaConfig {
        brokers: args.common.brokers.clone(),
        // Part of the transactional id: distinct per run so no earlier run
        // can be fenced or fence this one.
        instance_id: Some(format!("bench-{run_id}")),
        ..KafkaConfig::default()
    };
    let topics = Topics {
        input: format!("bench.{run_id}.events"),
        passthrough: format!("bench.{run_id}.passthrough"),
        enriched: format!("bench.{run_id}.enriched"),
        changelog: format!("bench.{run_id}.enricher-state"),
        dlq: format!("bench.{run_id}.dlq"),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;

    eprintln!(
        "bench: run {run_id} on {}, {} events, {} partitions",
        args.common.brokers, args.events, args.common.partitions
    );
    create_topics(&rt, &kafka, &topics, args.common.partitions)?;
    let input = corpus::produce(
        &kafka,
        &topics.input,
        &gen_bin,
        args.events,
        args.common.seed,
    )?;
    let ends = input_ends(&kafka, &topics.input, args.common.partitions)?;
    let target: u64 = ends.iter().map(|(_, high)| *high as u64).sum();
    if target != input.events {
        anyhow::bail!(
            "the input topic holds {target} records, but {} were produced",
            input.events
        );
    }
    eprintln!(
        "bench: input ready: {} events, avg {:.0} B (min {}, max {}) in {:.1}s",
        input.events,
        input.payload_bytes_avg,
        input.payload_bytes_min,
        input.payload_bytes_max,
        input.seconds
    );

    // Both measured runs find the broker equally warm (JIT, page cache,
    // transaction coordinator), not only the second.
    let warmup = if args.common.warmup_events > 0 {
        let (stage, clock) = Timed::new(Passthrough::new(topics.passthrough.clone()));
        let setup = PhaseSetup {
            name: "warmup",
            group_id: format!("bench-{run_id}-warmup"),
            kafka: &kafka,
            input: &topics.input,
            dlq: &topics.dlq,
            ends: &ends,
            stop_at: Some(args.common.warmup_events),
            stall: Duration::from_secs(args.common.stall_timeout_secs),
        };
        Some(run_phase(&rt, setup, stage, move || clock.snapshot())?)
    } else {
        None
    };
    let peak_reset_per_run = host::reset_peak();
    let b1 = {
        let (stage, clock) = Timed::new(Passthrough::new(topics.passthrough.clone()));
        let setup = PhaseSetup {
            name: "b1-passthrough",
            group_id: format!("bench-{run_id}-a"),
            kafka: &kafka,
            input: &topics.input,
            dlq: &topics.dlq,
            ends: &ends,
            stop_at: None,
            stall: Duration::from_secs(args.common.stall_timeout_secs),
        };
        run_phase(&rt, setup, stage, move || clock.snapshot())?
    };
    host::reset_peak();
    let enricher = {
        let codecs = Codecs::single_object()?;
        let registry = prometheus::Registry::new();
        let stage = Enricher::new(
            EnricherConfig::default(),
            codecs,
            topics.enriched.clone(),
            topics.changelog.clone(),
            &registry,
        );
        let (stage, clock) = Timed::new(stage);
        let setup = PhaseSetup {
            name: "enricher",
            group_id: format!("bench-{run_id}-b"),
            kafka: &kafka,
            input: &topics.input,
            dlq: &topics.dlq,
            ends: &ends,
            stop_at: None,
            stall: Duration::from_secs(args.common.stall_timeout_secs),
        };
        let mut phase = run_phase(&rt, setup, stage, move || clock.snapshot())?;
        phase.resources_tracked = metrics::gauge(&registry, "scimtrail_enricher_resources_tracked");
        phase
    };

    let ratio = if b1.events_per_second > 0.0 {
        enricher.events_per_second / b1.events_per_second
    } else {
        0.0
    };
    let pass = GOAL.met_by(ratio);
    eprintln!(
        "bench: B1 {:.0} events/s, enricher {:.0} events/s, ratio {ratio:.3} (goal >= {}): {}; enricher RSS {:.1} -> {:.1} MiB (peak {:.1} MiB)",
        b1.events_per_second,
        enricher.events_per_second,
        GOAL.threshold,
        if pass { "PASS" } else { "FAIL" },
        mib(enricher.memory_before.rss_bytes),
        mib(enricher.memory_at_end.rss_bytes),
        mib(enricher.memory_at_end.hwm_bytes),
    );
    let figures = Figures {
        b1_events_per_second: b1.events_per_second,
        enricher_events_per_second: enricher.events_per_second,
        ratio,
        enricher_rss_before_bytes: enricher.memory_before.rss_bytes,
        enricher_rss_at_end_bytes: enricher.memory_at_end.rss_bytes,
        enricher_hwm_bytes: enricher.memory_at_end.hwm_bytes,
        input,
        warmup,
        b1,
        enricher,
        peak_reset_per_run,
    };
    let report = Report {
        benchmark: "enricher",
        started_at,
        finished_at: chrono::Utc::now(),
        goal: GOAL,
        pass,
        other_goals: Vec::new(),
        parameters: Parameters {
            events: args.events,
            warmup_events: args.common.warmup_events,
            seed: args.common.seed,
            partitions: args.common.partitions,
            brokers: args.common.brokers.clone(),
            topics,
            runner: RunnerSettings::of(&kafka),
            enricher_config: "EnricherConfig::default()",
            poll_interval_ms: POLL.as_millis() as u64,
            build_profile: crate::BUILD_PROFILE,
        },
        figures,
        code: host::Code::probe(),
        machine: host::Machine::probe(),
        kafka_version: host::kafka_version(args.common.kafka_version.as_deref()),
    };
    let path = report.write(&args.common.out)?;
    eprintln!("bench: result written to {}", path.display());
    Ok(())
}

/// Eight hex digits, unique enough to keep runs' topics and groups apart.
pub fn short_id() -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    id.chars().take(8).collect()
}

fn create_topics(
    rt: &tokio::runtime::Runtime,
    kafka: &KafkaConfig,
    topics: &Topics,
    partitions: i32,
) -> anyhow::Result<()> {
    let spec = |name: &str, compact: bool| TopicSpec {
        name: name.to_string(),
        partitions,
        replication_factor: 1,
        settings: if compact {
            // As the enricher service creates its changelog.
            [("cleanup.policy".to_string(), "compact".to_string())].into()
        } else {
            Default::default()
        },
    };
    let specs = [
        spec(&topics.input, false),
        spec(&topics.passthrough, false),
        spec(&topics.enriched, false),
        spec(&topics.changelog, true),
        spec(&topics.dlq, false),
    ];
    let created = rt.block_on(scimtrail_core::kafka::ensure_topics(kafka, &specs))?;
    for (name, status) in created {
        if status != TopicStatus::Created {
            anyhow::bail!("topic {name} already existed: {status:?}; the bench needs fresh topics");
        }
    }
    Ok(())
}

/// (partition, high watermark) of each input partition: the committed
/// offsets a run has to reach.
pub fn input_ends(
    kafka: &KafkaConfig,
    topic: &str,
    partitions: i32,
) -> anyhow::Result<Vec<(i32, i64)>> {
    let consumer: BaseConsumer = scimtrail_core::kafka::base_config(kafka)?.create()?;
    (0..partitions)
        .map(|p| {
            let (low, high) = consumer.fetch_watermarks(topic, p, Duration::from_secs(10))?;
            if low != 0 {
                anyhow::bail!("{topic}/{p} starts at offset {low}, not 0");
            }
            Ok((p, high))
        })
        .collect()
}

/// Reads a consumer group's committed offsets without joining the group.
pub struct CommittedWatch {
    consumer: BaseConsumer,
    partitions: TopicPartitionList,
}

impl CommittedWatch {
    pub fn new(
        kafka: &KafkaConfig,
        group_id: &str,
        topic: &str,
        ends: &[(i32, i64)],
    ) -> anyhow::Result<Self> {
        let mut config = scimtrail_core::kafka::base_config(kafka)?;
        // read_uncommitted: a read_committed client asks for stable offsets
        // and waits out every open transaction, which would delay each read;
        // committed offsets are only ever the transactions' committed ones.
        config
            .set("group.id", group_id)
            .set("isolation.level", "read_uncommitted")
            .set("enable.auto.commit", "false");
        let consumer: BaseConsumer = config.create()?;
        let mut partitions = TopicPartitionList::new();
        for (p, _) in ends {
            partitions.add_partition(topic, *p);
        }
        Ok(CommittedWatch {
            consumer,
            partitions,
        })
    }

    /// Input offsets committed by the group, summed over partitions.
    pub fn committed(&self) -> anyhow::Result<u64> {
        let tpl = self
            .consumer
            .committed_offsets(self.partitions.clone(), Duration::from_secs(10))?;
        Ok(tpl
            .elements()
            .iter()
            .map(|e| match e.offset() {
                Offset::Offset(o) if o > 0 => o as u64,
                _ => 0,
            })
            .sum())
    }
}

pub struct PhaseSetup<'a> {
    pub name: &'static str,
    pub group_id: String,
    pub kafka: &'a KafkaConfig,
    /// The input topic and the dead-letter topic of the run.
    pub input: &'a str,
    pub dlq: &'a str,
    pub ends: &'a [(i32, i64)],
    /// Stop once this many events are committed (default: all of the input).
    pub stop_at: Option<u64>,
    pub stall: Duration,
}

/// Runs `stage` in the runner until the group has committed every input
/// offset, watching the committed offsets.
pub fn run_phase<S: Stage + 'static>(
    rt: &tokio::runtime::Runtime,
    setup: PhaseSetup<'_>,
    stage: S,
    stage_times: impl Fn() -> StageTimes,
) -> anyhow::Result<Phase> {
    let all: u64 = setup.ends.iter().map(|(_, h)| *h as u64).sum();
    let target = setup.stop_at.map_or(all, |n| n.min(all));
    let watch = CommittedWatch::new(setup.kafka, &setup.group_id, setup.input, setup.ends)?;
    let registry = prometheus::Registry::new();
    // Metric names take the stage (`scimtrail_bench_…`), series the task.
    let metrics = RunnerMetrics::new(&registry, "bench");
    let spec = RunnerSpec {
        task: setup.name.into(),
        stage: setup.name.into(),
        group_id: setup.group_id.clone(),
        input_topics: vec![setup.input.to_string()],
        dlq_topic: setup.dlq.to_string(),
    };
    let health = Health::new().task(setup.name);
    let shutdown = CancellationToken::new();
    // Stops the runner on every way out of here, errors included: dropping
    // the runtime waits for the runner's thread, so one left running would
    // hang the process.
    let _stop_runner = shutdown.clone().drop_guard();
    let memory_before = Memory::now()?;
    eprintln!("bench: {}: starting (group {})", setup.name, setup.group_id);
    let started = Instant::now();
    let handle = rt.spawn(runner::spawn(
        spec,
        setup.kafka.clone(),
        stage,
        metrics.clone(),
        Arc::clone(&health),
        shutdown.clone(),
    ));

    let loadavg_before = host::loadavg();
    let mut progress = Progress::new(setup.name, "events committed", target);
    let mut first: Option<(Instant, u64, CpuClock)> = None;
    let mut offset_read_errors = 0u64;
    let mut last_count = 0u64;
    let mut last_move = started;
    let mut timeline = Vec::new();
    let mut next_sample = Duration::ZERO;
    let (ended, memory_at_end, cpu_at_end) = loop {
        if handle.is_finished() {
            let outcome = rt.block_on(handle);
            anyhow::bail!(
                "{}: the runner stopped after {last_count} of {target} events: {outcome:?}",
                setup.name
            );
        }
        let count = match watch.committed() {
            Ok(c) => c,
            Err(e) => {
                // The group coordinator may still be loading, or moving:
                // said once, counted always.
                if offset_read_errors == 0 {
                    tracing::warn!(message = "cannot read committed offsets; retrying", phase = setup.name, error = %e);
                }
                offset_read_errors += 1;
                last_count
            }
        };
        let now = Instant::now();
        if count != last_count {
            last_count = count;
            last_move = now;
        }
        if count > 0 && first.is_none() {
            first = Some((now, count, CpuClock::now()));
        }
        let since = now.duration_since(started);
        if since >= next_sample {
            timeline.push(((since.as_secs_f64() * 1000.0).round() / 1000.0, count));
            next_sample += Duration::from_secs(1);
        }
        if count >= target {
            // Before shutdown, while the stage still holds its state.
            break (now, Memory::now()?, CpuClock::now());
        }
        progress.update(count);
        if now.duration_since(last_move) > setup.stall {
            shutdown.cancel();
            let outcome = rt.block_on(handle);
            anyhow::bail!(
                "{}: committed offsets stuck at {count} of {target} for {:?} (runner: {outcome:?})",
                setup.name,
                setup.stall
            );
        }
        std::thread::sleep(POLL);
    };
    progress.finish(last_count);
    timeline.push((ended.duration_since(started).as_secs_f64(), last_count));
    let stopping = Instant::now();
    shutdown.cancel();
    rt.block_on(handle)
        .map_err(|e| anyhow::anyhow!("{}: runner task: {e}", setup.name))??;
    let shutdown_seconds = stopping.elapsed().as_secs_f64();

    let loadavg_after = host::loadavg();
    let (first_at, first_count, cpu_at_first) = first.unwrap_or((ended, last_count, cpu_at_end));
    let measured_events = last_count - first_count;
    let measured_seconds = ended.duration_since(first_at).as_secs_f64();
    let events_per_second = if measured_seconds > 0.0 {
        measured_events as f64 / measured_seconds
    } else {
        0.0
    };
    let stage = stage_times();
    let task = setup.name;
    let committed = metrics
        .transactions
        .with_label_values(&[task, "committed"])
        .get();
    let batches = metrics.batch_seconds.with_label_values(&[task]);
    let phase = Phase {
        name: setup.name,
        group_id: setup.group_id,
        events: last_count,
        startup_seconds: first_at.duration_since(started).as_secs_f64(),
        events_in_first_commit: first_count,
        measured_events,
        measured_seconds,
        events_per_second,
        shutdown_seconds,
        transactions_committed: committed,
        transactions_aborted: metrics
            .transactions
            .with_label_values(&[task, "aborted"])
            .get(),
        dead_letters: metrics::counter_total(&registry, "scimtrail_bench_dead_letters_total"),
        batch_seconds_avg: if batches.get_sample_count() > 0 {
            batches.get_sample_sum() / batches.get_sample_count() as f64
        } else {
            0.0
        },
        records_per_transaction: if committed > 0 {
            last_count as f64 / committed as f64
        } else {
            0.0
        },
        stage_us_per_event: stage_us_per_event(&stage),
        wall_us_per_event: if events_per_second > 0.0 {
            1e6 / events_per_second
        } else {
            0.0
        },
        stage_share_of_wall: stage_us_per_event(&stage) * events_per_second / 1e6,
        stage,
        memory_before,
        memory_at_end,
        resources_tracked: None,
        cpu: cpu_at_first.until(&cpu_at_end, measured_seconds),
        loadavg_before,
        loadavg_after,
        offset_read_errors,
        timeline,
    };
    eprintln!(
        "bench: {}: {:.0} events/s ({} events in {:.2}s after a {:.2}s start-up; {} transactions, {} aborted); stage {:.1} us/event; CPU: this process {:.0}%, machine {:.0}% busy",
        phase.name,
        phase.events_per_second,
        phase.measured_events,
        phase.measured_seconds,
        phase.startup_seconds,
        phase.transactions_committed,
        phase.transactions_aborted,
        phase.stage_us_per_event,
        percent(phase.cpu.process_seconds, phase.cpu.machine_capacity_seconds),
        percent(phase.cpu.machine_busy_seconds, phase.cpu.machine_capacity_seconds),
    );
    Ok(phase)
}

pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / 1024.0 / 1024.0
}

pub fn percent(part: f64, whole: f64) -> f64 {
    if whole > 0.0 {
        part * 100.0 / whole
    } else {
        0.0
    }
}

pub fn stage_us_per_event(t: &StageTimes) -> f64 {
    if t.processed > 0 {
        t.process_seconds * 1e6 / t.processed as f64
    } else {
        0.0
    }
}
