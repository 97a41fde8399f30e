//! `scimtrail-bench detector`: the detector's throughput with the default
//! rule pack against a passthrough baseline run by the same exactly-once
//! runner, and its alert latency at a paced 1,000 events/s.
//!
//! **Throughput.** Realistic enriched events ([`crate::enriched`]) are
//! produced once to a fresh input topic. Then, one after the other in this
//! process against the same broker and input: a throwaway passthrough run
//! warms the broker up; **B1** is the runner with a [`Passthrough`] stage
//! (consumer group A); **the detector** is both its tasks, `repartition` and
//! `rules` with `RuleSet::default_pack()` and the detector's default
//! options, wired as `scimtrail_detector::run` wires them
//! ([`crate::detector_tasks`]), on the same input. B1 is measured as in the
//! enricher benchmark ([`crate::throughput`]). The detector is measured end
//! to end: from the first observed commit of the repartition group on the
//! input (as B1's window starts) until the rules task has committed every
//! record repartition wrote to the by-key topic, read from the runner's
//! metrics (records of committed transactions) every [`POLL`] and checked
//! afterwards against the rules group's committed offsets. Its events/s are
//! the input events in that window over its length; the ratio to B1's is
//! what the goal is about.
//!
//! **Latency** at a paced rate, per setting of the lateness and the runner's
//! batch wait: see [`crate::latency`].

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Serialize;

use scimtrail_core::config::{KafkaConfig, TopicsConfig};
use scimtrail_core::kafka::{TopicSpec, TopicStatus};
use scimtrail_detector::rules::RuleSet;
use scimtrail_detector::DetectorConfig;

use crate::detector_tasks::{self, Detector, REPARTITION, RULES};
use crate::enriched::{self, EnrichedStats};
use crate::host::{self, CpuClock, CpuUse, Memory};
use crate::latency::{self, LatencyRun, Plan};
use crate::progress::Progress;
use crate::report::{Goal, Report, Verdict};
use crate::stages::{Passthrough, StageTimes, Timed};
use crate::throughput::{self, CommittedWatch, Phase, PhaseSetup, POLL};
use crate::txn_probe::{self, TxnProbe};

pub const GOAL: Goal = Goal {
    metric: "ratio",
    comparison: ">=",
    threshold: 0.8,
    description: "the detector (both tasks, default rule pack) sustains at least 80% of the events/s of the exactly-once passthrough baseline (B1) on the same input, broker and runner settings, end to end: until the rules task has committed everything",
};

#[derive(clap::Args, Debug)]
pub struct DetectorArgs {
    /// Input events to generate, enrich and produce (the throughput input;
    /// the latency runs send its first events again).
    #[arg(long, default_value_t = 100_000)]
    events: u64,
    #[command(flatten)]
    common: throughput::KafkaRunArgs,
    /// Skip the throughput runs (warm-up, B1, detector); only the latency
    /// runs.
    #[arg(long)]
    skip_throughput: bool,
    /// Small transactions the transaction probe commits each way (0: no
    /// probe).
    #[arg(long, default_value_t = 50)]
    txn_probe_transactions: usize,
    /// Events per second the latency runs send.
    #[arg(long, default_value_t = 1000)]
    latency_rate: u64,
    /// Measured seconds of each latency run.
    #[arg(long, default_value_t = 60)]
    latency_seconds: u64,
    /// Seconds each latency run sends before its measured window.
    #[arg(long, default_value_t = 5)]
    latency_warmup_seconds: u64,
    /// The latency runs, comma separated, each `LATENESS_MS:BATCH_WAIT_MS:RULES`:
    /// the detector's `allowed_lateness_secs` in ms, the runner's
    /// `batch_max_wait_ms` of both tasks, and the rules: `probe` (the probe
    /// rule alone) or `default` (the default pack and the probe); `none` for
    /// no latency runs.
    #[arg(
        long,
        default_value = "0:100:probe,0:5:probe,2000:100:probe,2000:5:probe,0:5:default,2000:100:default"
    )]
    latency_settings: String,
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
    /// defaults), the same for B1 and the detector.
    #[serde(flatten)]
    runner: throughput::RunnerSettings,
    /// What the input's enricher ran with, and the detector's rules and options.
    enricher_config: &'static str,
    enricher_roles: &'static str,
    detector_rules: &'static str,
    detector_config: DetectorOptions,
    latency_rate: u64,
    latency_seconds: u64,
    latency_warmup_seconds: u64,
    latency_settings: Vec<latency::Setting>,
    /// The probe rule (alone, or appended to the default pack).
    latency_probe_rule: &'static str,
    latency_observer_fetch_wait_ms: u64,
    txn_probe_transactions: usize,
    poll_interval_ms: u64,
    build_profile: &'static str,
}

#[derive(Debug, Serialize)]
struct DetectorOptions {
    allowed_lateness_ms: i64,
    max_evidence: usize,
    max_keys: usize,
}

#[derive(Debug, Clone, Serialize)]
struct Topics {
    input: String,
    passthrough: String,
    by_key: String,
    changelog: String,
    alerts: String,
    dlq: String,
}

#[derive(Debug, Serialize)]
struct Figures {
    b1_events_per_second: Option<f64>,
    detector_events_per_second: Option<f64>,
    ratio: Option<f64>,
    /// Alerts the default pack raised over the throughput input.
    alerts_raised: Option<u64>,
    /// The best p99 over the complete latency runs with the default pack
    /// (what ships; the goal's figure), and which setting gave it. With no
    /// complete run, the best over the incomplete ones, which is then a
    /// lower bound (`latency_p99_is_lower_bound`).
    latency_p99_ms_best: Option<f64>,
    latency_best_setting: Option<String>,
    latency_p99_is_lower_bound: bool,
    /// The same over the runs with the probe rule alone: what the two hops
    /// cost with almost no rule work.
    latency_p99_ms_best_probe_only: Option<f64>,
    latency_best_setting_probe_only: Option<String>,
    input: EnrichedStats,
    /// The throwaway passthrough run before B1 (not measured).
    warmup: Option<Phase>,
    b1: Option<Phase>,
    detector: Option<DetectorPhase>,
    /// What one small transaction costs, step by step ([`txn_probe`]).
    transaction_probe: Option<TxnProbe>,
    latency: Vec<LatencyRun>,
}

/// The detector's throughput run.
#[derive(Debug, Serialize)]
struct DetectorPhase {
    repartition_group: String,
    rules_group: String,
    /// Input events.
    events: u64,
    /// From the tasks' start to the repartition group's first observed
    /// commit: excluded.
    startup_seconds: f64,
    /// Input events already committed by repartition then: excluded.
    events_in_first_commit: u64,
    /// From that first commit until the rules task committed its last
    /// record: the window, and the input events per second over it.
    measured_events: u64,
    measured_seconds: f64,
    events_per_second: f64,
    /// The repartition task alone: input events per second until it had
    /// committed all of the input.
    repartition_events_per_second: f64,
    /// From repartition's last commit to the rules task's: the rules task's
    /// backlog when its input stopped growing.
    rules_drain_seconds: f64,
    shutdown_seconds: f64,
    /// Records written to the by-key topic (one per event and partitioning
    /// the event has values for) and per input event.
    by_key_records: u64,
    fan_out: f64,
    /// The rules group's committed offsets equal the by-key topic's last
    /// committed record + 1 on every partition (read after the run).
    rules_offsets_verified: bool,
    repartition: TaskFigures,
    rules: TaskFigures,
    /// Alerts (by rule) and other engine figures of the rules task.
    alerts_by_rule: BTreeMap<String, u64>,
    alerts_suppressed: u64,
    late_events: u64,
    state_keys: Option<f64>,
    state_shed: u64,
    changelog_records: u64,
    memory_before: Memory,
    memory_at_end: Memory,
    cpu: CpuUse,
    loadavg_before: Option<[f64; 3]>,
    loadavg_after: Option<[f64; 3]>,
    offset_read_errors: u64,
    /// Each ~second from the start: (seconds, input events committed by
    /// repartition, by-key records committed by rules).
    timeline: Vec<(f64, u64, u64)>,
}

/// One task's work over the whole run, from the runner's metrics.
#[derive(Debug, Serialize)]
struct TaskFigures {
    transactions_committed: u64,
    transactions_aborted: u64,
    /// Input records of committed transactions.
    records: u64,
    records_per_transaction: f64,
    /// Mean time from a batch's processing start to its commit.
    batch_seconds_avg: f64,
    dead_letters: u64,
    /// Time inside the stage, and per input record in microseconds.
    stage: StageTimes,
    stage_us_per_record: f64,
    /// Bytes the stage asked to produce per input record (for `rules`:
    /// alerts and the state changelog).
    output_bytes_per_record: f64,
}

impl TaskFigures {
    fn of(d: &Detector, task: &str, stage: StageTimes) -> TaskFigures {
        let m = &d.metrics;
        let committed = m.transactions.with_label_values(&[task, "committed"]).get();
        let batches = m.batch_seconds.with_label_values(&[task]);
        let records = d.committed_records(task);
        let dead_letters = d.dead_letters(task);
        TaskFigures {
            transactions_committed: committed,
            transactions_aborted: m.transactions.with_label_values(&[task, "aborted"]).get(),
            records,
            records_per_transaction: ratio(records as f64, committed as f64),
            batch_seconds_avg: ratio(batches.get_sample_sum(), batches.get_sample_count() as f64),
            dead_letters,
            stage_us_per_record: throughput::stage_us_per_event(&stage),
            output_bytes_per_record: ratio(stage.output_bytes as f64, stage.processed as f64),
            stage,
        }
    }
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        0.0
    }
}

/// Runs the benchmark and writes its result file.
pub fn run(args: DetectorArgs) -> anyhow::Result<()> {
    let started_at = chrono::Utc::now();
    if args.events == 0 || args.common.partitions < 1 || args.latency_rate == 0 {
        anyhow::bail!("--events, --partitions and --latency-rate must be positive");
    }
    let settings = latency::parse_settings(&args.latency_settings)?;
    let gen_bin = args.common.gen_bin()?;
    let run_id = throughput::short_id();
    let kafka = KafkaConfig {
        brokers: args.common.brokers.clone(),
        // Part of the transactional ids: distinct per run so no earlier run
        // can be fenced or fence this one.
        instance_id: Some(format!("bench-{run_id}")),
        group_prefix: format!("bench-{run_id}"),
        ..KafkaConfig::default()
    };
    let prefix = format!("bench.{run_id}.");
    let topics_config = TopicsConfig {
        enriched: format!("{prefix}enriched"),
        alerts: format!("{prefix}alerts"),
        dlq: format!("{prefix}dlq"),
        internal_prefix: prefix.clone(),
        partitions: args.common.partitions,
        replication_factor: 1,
        ..TopicsConfig::default()
    };
    let (by_key, changelog) = detector_tasks::internal_topics(&topics_config);
    let topics = Topics {
        input: topics_config.enriched.clone(),
        passthrough: format!("{prefix}passthrough"),
        by_key,
        changelog,
        alerts: topics_config.alerts.clone(),
        dlq: topics_config.dlq.clone(),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let plan_window = Duration::from_secs(args.latency_seconds);
    let plan_warmup = Duration::from_secs(args.latency_warmup_seconds);
    let keep = settings
        .iter()
        .map(|s| {
            let secs = (plan_warmup + plan_window + s.cooldown()).as_secs_f64();
            (secs * args.latency_rate as f64).ceil() as u64
        })
        .max()
        .unwrap_or(0);
    if keep > args.events {
        anyhow::bail!(
            "the latency runs send {keep} events ({}/s for {} s and a warm-up and cool-down), more than --events {}",
            args.latency_rate,
            args.latency_seconds,
            args.events
        );
    }

    eprintln!(
        "bench: run {run_id} on {}, {} events, {} partitions",
        args.common.brokers, args.events, args.common.partitions
    );
    create_topics(&rt, &kafka, &topics, args.common.partitions)?;
    detector_tasks::create_internal_topics(&rt, &kafka, &topics_config)?;
    let (input, kept) = enriched::produce(
        &kafka,
        &topics.input,
        args.common.partitions,
        &gen_bin,
        args.events,
        args.common.seed,
        usize::try_from(keep)?,
    )?;
    let ends = throughput::input_ends(&kafka, &topics.input, args.common.partitions)?;
    let target: u64 = ends.iter().map(|(_, high)| *high as u64).sum();
    if target != input.corpus.events {
        anyhow::bail!(
            "the input topic holds {target} records, but {} were produced",
            input.corpus.events
        );
    }
    eprintln!(
        "bench: input ready: {} enriched events, avg {:.0} B (min {}, max {}), enricher {:.0} us/event, in {:.1}s; flags {:?}, {} with an actor",
        input.corpus.events,
        input.corpus.payload_bytes_avg,
        input.corpus.payload_bytes_min,
        input.corpus.payload_bytes_max,
        input.enricher_us_per_event,
        input.corpus.seconds,
        input.by_flag,
        input.with_actor,
    );

    let stall = Duration::from_secs(args.common.stall_timeout_secs);
    let (warmup, b1, detector) = if args.skip_throughput {
        (None, None, None)
    } else {
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
                stall,
            };
            Some(throughput::run_phase(&rt, setup, stage, move || {
                clock.snapshot()
            })?)
        } else {
            None
        };
        host::reset_peak();
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
                stall,
            };
            throughput::run_phase(&rt, setup, stage, move || clock.snapshot())?
        };
        host::reset_peak();
        let detector = run_detector(&rt, &kafka, &topics_config, &ends, stall)?;
        (warmup, Some(b1), Some(detector))
    };

    let transaction_probe = if args.txn_probe_transactions > 0 {
        Some(txn_probe::run(
            &rt,
            &kafka,
            &run_id,
            args.txn_probe_transactions,
        )?)
    } else {
        None
    };
    let mut runs = Vec::new();
    let plan = Plan {
        run_id: &run_id,
        kafka: &kafka,
        partitions: args.common.partitions,
        rate: args.latency_rate,
        warmup: plan_warmup,
        window: plan_window,
        events: &kept,
    };
    for (i, setting) in settings.iter().enumerate() {
        runs.push(latency::run(&rt, &plan, i, *setting)?);
    }
    drop(kept);

    let ratio = match (&b1, &detector) {
        (Some(b), Some(d)) if b.events_per_second > 0.0 => {
            Some(d.events_per_second / b.events_per_second)
        }
        _ => None,
    };
    let throughput_pass = ratio.is_some_and(|r| GOAL.met_by(r));
    let best_of = |rules: latency::RulesChoice, complete: bool| {
        runs.iter()
            .filter(|r| r.setting.rules == rules && r.complete == complete && r.alerts.count > 0)
            .min_by(|a, b| a.alerts.p99_ms.total_cmp(&b.alerts.p99_ms))
    };
    let complete_best = best_of(latency::RulesChoice::DefaultPack, true);
    let latency_p99_is_lower_bound = complete_best.is_none();
    let best = complete_best.or_else(|| best_of(latency::RulesChoice::DefaultPack, false));
    let best_probe = best_of(latency::RulesChoice::Probe, true);
    let latency_best = best.map(|r| r.alerts.p99_ms);
    let latency_pass =
        !latency_p99_is_lower_bound && latency_best.is_some_and(|p| latency::GOAL.met_by(p));
    if let (Some(b), Some(d), Some(r)) = (&b1, &detector, ratio) {
        eprintln!(
            "bench: B1 {:.0} events/s, detector {:.0} events/s, ratio {r:.3} (goal >= {}): {}; {} alerts",
            b.events_per_second,
            d.events_per_second,
            GOAL.threshold,
            if throughput_pass { "PASS" } else { "FAIL" },
            d.alerts_by_rule.values().sum::<u64>(),
        );
    }
    for r in &runs {
        eprintln!(
            "bench: latency ({}): p50 {:.1} / p90 {:.1} / p99 {:.1} / max {:.1} ms over {} alerts: {}",
            r.label,
            r.alerts.p50_ms,
            r.alerts.p90_ms,
            r.alerts.p99_ms,
            r.alerts.max_ms,
            r.alerts.count,
            if r.pass { "PASS" } else { "FAIL" }
        );
    }
    let figures = Figures {
        b1_events_per_second: b1.as_ref().map(|b| b.events_per_second),
        detector_events_per_second: detector.as_ref().map(|d| d.events_per_second),
        ratio,
        alerts_raised: detector.as_ref().map(|d| d.alerts_by_rule.values().sum()),
        latency_p99_ms_best: latency_best,
        latency_best_setting: best.map(|r| r.label.clone()),
        latency_p99_is_lower_bound,
        latency_p99_ms_best_probe_only: best_probe.map(|r| r.alerts.p99_ms),
        latency_best_setting_probe_only: best_probe.map(|r| r.label.clone()),
        input,
        warmup,
        b1,
        detector,
        transaction_probe,
        latency: runs,
    };
    let defaults = DetectorConfig::default();
    let report = Report {
        benchmark: "detector",
        started_at,
        finished_at: chrono::Utc::now(),
        goal: GOAL,
        pass: throughput_pass && latency_pass,
        other_goals: vec![Verdict {
            goal: latency::GOAL,
            value: latency_best,
            pass: latency_pass,
        }],
        parameters: Parameters {
            events: args.events,
            warmup_events: args.common.warmup_events,
            seed: args.common.seed,
            partitions: args.common.partitions,
            brokers: args.common.brokers.clone(),
            topics,
            runner: throughput::RunnerSettings::of(&kafka),
            enricher_config:
                "EnricherConfig::default() with privileged.groups = [admins, org-owners]",
            enricher_roles: enriched::ROLES,
            detector_rules: "RuleSet::default_pack()",
            detector_config: DetectorOptions {
                allowed_lateness_ms: defaults.allowed_lateness_ms(),
                max_evidence: defaults.max_evidence,
                max_keys: defaults.max_keys,
            },
            latency_rate: args.latency_rate,
            latency_seconds: args.latency_seconds,
            latency_warmup_seconds: args.latency_warmup_seconds,
            latency_settings: settings,
            latency_probe_rule: latency::PROBE_RULE.trim(),
            latency_observer_fetch_wait_ms: latency::OBSERVER_FETCH_WAIT_MS,
            txn_probe_transactions: args.txn_probe_transactions,
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

/// The bench's own topics: the input, the passthrough output, the alerts and
/// dead letters (the detector's internal topics are created as it creates
/// them, [`detector_tasks::create_internal_topics`]).
fn create_topics(
    rt: &tokio::runtime::Runtime,
    kafka: &KafkaConfig,
    topics: &Topics,
    partitions: i32,
) -> anyhow::Result<()> {
    let specs: Vec<TopicSpec> = [
        &topics.input,
        &topics.passthrough,
        &topics.alerts,
        &topics.dlq,
    ]
    .iter()
    .map(|name| TopicSpec {
        name: name.to_string(),
        partitions,
        replication_factor: 1,
        settings: Default::default(),
    })
    .collect();
    for (name, status) in rt.block_on(scimtrail_core::kafka::ensure_topics(kafka, &specs))? {
        if status != TopicStatus::Created {
            anyhow::bail!("topic {name} already existed: {status:?}; the bench needs fresh topics");
        }
    }
    Ok(())
}

/// Runs both detector tasks over the whole input, watching the repartition
/// group's committed offsets and the rules task's committed records.
fn run_detector(
    rt: &tokio::runtime::Runtime,
    kafka: &KafkaConfig,
    topics: &TopicsConfig,
    ends: &[(i32, i64)],
    stall: Duration,
) -> anyhow::Result<DetectorPhase> {
    let all: u64 = ends.iter().map(|(_, h)| *h as u64).sum();
    let config = DetectorConfig::default();
    let memory_before = Memory::now()?;
    eprintln!("bench: detector: starting both tasks (default pack)");
    let mut detector = Detector::spawn(rt, kafka, topics, RuleSet::default_pack(), &config)?;
    let watch = CommittedWatch::new(kafka, &detector.repartition_group, &topics.enriched, ends)?;
    let started = detector.started;
    let loadavg_before = host::loadavg();
    let mut progress = Progress::new("detector", "input events committed by repartition", all);
    let mut first: Option<(Instant, u64, CpuClock)> = None;
    let mut repartition_done: Option<Instant> = None;
    let mut offset_read_errors = 0u64;
    let mut last = (0u64, 0u64);
    let mut last_move = Instant::now();
    let mut timeline = Vec::new();
    let mut next_sample = Duration::ZERO;
    let (ended, memory_at_end, cpu_at_end, by_key_target) = loop {
        detector.check_running(rt)?;
        let count = match watch.committed() {
            Ok(c) => c,
            Err(e) => {
                if offset_read_errors == 0 {
                    tracing::warn!(message = "cannot read committed offsets; retrying", error = %e);
                }
                offset_read_errors += 1;
                last.0
            }
        };
        let rules = detector.committed_records(RULES);
        let now = Instant::now();
        if (count, rules) != last {
            last = (count, rules);
            last_move = now;
        }
        if count > 0 && first.is_none() {
            first = Some((now, count, CpuClock::now()));
        }
        if count >= all && repartition_done.is_none() {
            repartition_done = Some(now);
            eprintln!(
                "bench: detector: repartition committed all {all} input events after {:.1}s; rules has committed {rules} by-key records",
                now.duration_since(started).as_secs_f64()
            );
        }
        let since = now.duration_since(started);
        if since >= next_sample {
            timeline.push((
                (since.as_secs_f64() * 1000.0).round() / 1000.0,
                count,
                rules,
            ));
            next_sample += Duration::from_secs(1);
        }
        if repartition_done.is_some() {
            // Stable once repartition has committed everything: it counts
            // what its committed transactions wrote.
            let target = detector.produced(REPARTITION, &detector.by_key);
            if rules >= target {
                break (now, Memory::now()?, CpuClock::now(), target);
            }
        }
        progress.update(count);
        if now.duration_since(last_move) > stall {
            anyhow::bail!(
                "detector: nothing committed for {stall:?} (repartition {count} of {all} input events, rules {rules} by-key records)"
            );
        }
        std::thread::sleep(POLL);
    };
    progress.finish(last.0);
    timeline.push((ended.duration_since(started).as_secs_f64(), last.0, last.1));
    let loadavg_after = host::loadavg();
    let (first_at, first_count, cpu_at_first) = first.unwrap_or((ended, all, cpu_at_end));
    let repartition_done = repartition_done.unwrap_or(ended);
    let measured_events = all - first_count;
    let measured_seconds = ended.duration_since(first_at).as_secs_f64();
    let repartition_seconds = repartition_done.duration_since(first_at).as_secs_f64();

    let engine = |name: &str| crate::metrics::counter_total(&detector.registry, name);
    let alerts_by_rule = by_label(
        &detector.registry,
        "scimtrail_detector_alerts_total",
        "rule",
    );
    let repartition = TaskFigures::of(
        &detector,
        REPARTITION,
        detector.repartition_clock.snapshot(),
    );
    let rules = TaskFigures::of(&detector, RULES, detector.rules_clock.snapshot());
    let changelog_records = detector.produced(RULES, &detector.changelog);
    let alerts_suppressed = engine("scimtrail_detector_alerts_suppressed_total");
    let late_events = engine("scimtrail_detector_late_events_total");
    let state_shed = engine("scimtrail_detector_state_shed_total");
    let state_keys = crate::metrics::gauge(&detector.registry, "scimtrail_detector_window_keys");
    let (repartition_group, rules_group, by_key) = (
        detector.repartition_group.clone(),
        detector.rules_group.clone(),
        detector.by_key.clone(),
    );
    let shutdown_seconds = detector.stop(rt)?;
    let rules_offsets_verified =
        verify_rules_offsets(kafka, &rules_group, &by_key, topics.partitions)?;

    let phase = DetectorPhase {
        repartition_group,
        rules_group,
        events: all,
        startup_seconds: first_at.duration_since(started).as_secs_f64(),
        events_in_first_commit: first_count,
        measured_events,
        measured_seconds,
        events_per_second: ratio(measured_events as f64, measured_seconds),
        repartition_events_per_second: ratio(measured_events as f64, repartition_seconds),
        rules_drain_seconds: ended.duration_since(repartition_done).as_secs_f64(),
        shutdown_seconds,
        by_key_records: by_key_target,
        fan_out: ratio(by_key_target as f64, all as f64),
        rules_offsets_verified,
        repartition,
        rules,
        alerts_by_rule,
        alerts_suppressed,
        late_events,
        state_keys,
        state_shed,
        changelog_records,
        memory_before,
        memory_at_end,
        cpu: cpu_at_first.until(&cpu_at_end, measured_seconds),
        loadavg_before,
        loadavg_after,
        offset_read_errors,
        timeline,
    };
    eprintln!(
        "bench: detector: {:.0} events/s end to end ({} events in {:.2}s after a {:.2}s start-up); repartition alone {:.0} events/s, then {:.2}s until rules caught up; {} by-key records ({:.2} per event); {} alerts; rules {:.1} us/record, repartition {:.1} us/event; CPU: this process {:.0}%, machine {:.0}% busy",
        phase.events_per_second,
        phase.measured_events,
        phase.measured_seconds,
        phase.startup_seconds,
        phase.repartition_events_per_second,
        phase.rules_drain_seconds,
        phase.by_key_records,
        phase.fan_out,
        phase.alerts_by_rule.values().sum::<u64>(),
        phase.rules.stage_us_per_record,
        phase.repartition.stage_us_per_record,
        throughput::percent(phase.cpu.process_seconds, phase.cpu.machine_capacity_seconds),
        throughput::percent(phase.cpu.machine_busy_seconds, phase.cpu.machine_capacity_seconds),
    );
    Ok(phase)
}

/// A counter family's values by one label.
fn by_label(registry: &prometheus::Registry, name: &str, label: &str) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for f in registry.gather().iter().filter(|f| f.name() == name) {
        for m in f.get_metric() {
            if let Some(l) = m.get_label().iter().find(|l| l.name() == label) {
                *out.entry(l.value().to_string()).or_default() +=
                    m.get_counter().get_value() as u64;
            }
        }
    }
    out
}

/// Whether the rules group committed, on every by-key partition, the offset
/// after the last committed record (what it had to read). The last records
/// are found by reading the partitions' tails `read_committed` until nothing
/// more comes for a second: the offsets after them hold transaction
/// markers, which consumers skip.
fn verify_rules_offsets(
    kafka: &KafkaConfig,
    group: &str,
    topic: &str,
    partitions: i32,
) -> anyhow::Result<bool> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::{Message, Offset, TopicPartitionList};

    let mut config = scimtrail_core::kafka::base_config(kafka)?;
    config
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed");
    let consumer: BaseConsumer = config.create()?;
    let mut all = TopicPartitionList::new();
    for p in 0..partitions {
        all.add_partition(topic, p);
    }
    let committed = consumer.committed_offsets(all, Duration::from_secs(10))?;
    let mut tails = TopicPartitionList::new();
    for p in 0..partitions {
        let (_, high) = consumer.fetch_watermarks(topic, p, Duration::from_secs(10))?;
        // One marker per transaction follows its records on each partition
        // it wrote to: the last record is within the last few offsets.
        tails.add_partition_offset(topic, p, Offset::Offset((high - 1000).max(0)))?;
    }
    consumer.assign(&tails)?;
    let mut last: BTreeMap<i32, i64> = BTreeMap::new();
    let mut quiet_since = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(60);
    while quiet_since.elapsed() < Duration::from_secs(1) && Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                last.insert(m.partition(), m.offset());
                quiet_since = Instant::now();
            }
            Some(Err(e)) => anyhow::bail!("reading {topic}: {e}"),
            None => {}
        }
    }
    let mut ok = true;
    for p in 0..partitions {
        let got = committed
            .find_partition(topic, p)
            .map(|e| e.offset())
            .unwrap_or(Offset::Invalid);
        let fine = match last.get(&p) {
            Some(o) => got == Offset::Offset(o + 1),
            // Nothing to read: nothing committed either.
            None => !matches!(got, Offset::Offset(o) if o > 0),
        };
        if !fine {
            tracing::warn!(message = "rules group's committed offset differs from the end of its input", partition = p, last = ?last.get(&p), got = ?got);
            ok = false;
        }
    }
    Ok(ok)
}
