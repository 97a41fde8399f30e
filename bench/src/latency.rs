//! The detector's alert latency at a paced input rate: from the produce of
//! the event that crosses a rule to the moment the alert is visible to a
//! `read_committed` consumer of the alerts topic, i.e. committed.
//!
//! **Method.** Per setting (allowed lateness, the runner's
//! `batch_max_wait_ms`, the rules), on fresh topics: the detector's two tasks
//! ([`crate::detector_tasks`]) start with the given lateness and either the
//! probe rule alone ([`PROBE_RULE`]: every successful delete is its own
//! alert, so a known set of events cross; what the two hops cost with
//! almost no rule work) or the default pack plus the probe (what ships);
//! an observer thread reads the
//! alerts topic (`read_committed`, `fetch.wait.max.ms` [`OBSERVER_FETCH_WAIT_MS`],
//! no consumer group) and stamps each alert when it arrives. Once both tasks
//! have their partitions, this thread produces the enriched events of the
//! throughput input in order at a fixed rate, each with `event_time` set to
//! the wall clock of its send and on the partition its chain link names
//! (`linger.ms` 0, so the bench's own batching adds nothing): a warm-up (not
//! counted), the measured window, then a cool-down of the lateness plus a
//! second, so every event of the window is followed by later events, as in a
//! steady stream. (The hash chain of the re-timed events is not recomputed;
//! the detector does not verify it.)
//!
//! Each alert's crossing event is the last of its evidence when that event's
//! time is the alert's `last_event_time` (latency: arrival − send, both
//! monotonic clock); otherwise (a threshold alert whose evidence list was cut
//! at `max_evidence`) it is found by `last_event_time`, which is its send
//! time to the millisecond. Alerts whose crossing event was sent in the
//! window are counted; the run ends when every probe alert of the window has
//! arrived (or nothing has moved for [`DRAIN_STALL`], or [`DRAIN_MAX`] has
//! passed: the missing ones are then reported and the run does not pass).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::BaseProducer;
use rdkafka::{Message, Offset, TopicPartitionList};
use serde::Serialize;

use scimtrail_core::config::{KafkaConfig, TopicsConfig};
use scimtrail_core::kafka::{TopicSpec, TopicStatus};
use scimtrail_core::schema::avro::Codecs;
use scimtrail_core::schema::{Alert, AuditAction, Outcome};
use scimtrail_detector::rules::{RuleSet, DEFAULT_PACK};
use scimtrail_detector::DetectorConfig;

use crate::corpus::{self, Deliveries};
use crate::detector_tasks::{self, Detector, REPARTITION, RULES};
use crate::enriched::Kept;
use crate::host::{self, CpuClock, CpuUse};
use crate::report::Goal;
use crate::stages::StageTimes;

pub const GOAL: Goal = Goal {
    metric: "latency_p99_ms_best",
    comparison: "<=",
    threshold: 50.0,
    description: "at 1,000 events/s with the default rule pack, the 99th percentile of the time from the produce of the event that crosses a rule to the alert's commit (visible to a read_committed consumer) is at most 50 ms, with the best of the settings measured (figures.latency_best_setting)",
};

/// Id of the probe rule.
pub const PROBE: &str = "bench.latency";

/// Appended to the default pack for the latency runs: every successful
/// delete alerts on its own (one key per resource, and a resource is deleted
/// once), so the alerts expected are known from what was sent.
pub const PROBE_RULE: &str = r#"
  - id: bench.latency
    title: Bench latency probe
    severity: info
    description: Every successful delete; the benchmark's probe of the alert latency.
    where: 'action eq "DELETE" and outcome eq "SUCCESS"'
    group_by: [target.system, resource.type, resource.id]
    match: {}
"#;

/// The observer's `fetch.wait.max.ms`: the most it adds to a measurement
/// (the broker answers a fetch at once when committed data is there).
pub const OBSERVER_FETCH_WAIT_MS: u64 = 5;

/// Width of the slices of [`LatencyRun::timeline`].
pub const SLICE: Duration = Duration::from_secs(5);

/// How long the end of a run waits for missing probe alerts while neither
/// they nor the rules task's commits move, and at most in all.
pub const DRAIN_STALL: Duration = Duration::from_secs(30);
pub const DRAIN_MAX: Duration = Duration::from_secs(120);

/// The rules a latency run evaluates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RulesChoice {
    /// The probe rule alone.
    Probe,
    /// The default pack and the probe rule.
    DefaultPack,
}

impl RulesChoice {
    pub fn rules(self) -> anyhow::Result<RuleSet> {
        let text = match self {
            RulesChoice::Probe => format!("version: 1\nrules:{PROBE_RULE}"),
            RulesChoice::DefaultPack => format!("{}{PROBE_RULE}", DEFAULT_PACK.trim_end()),
        };
        RuleSet::parse(&text, self.name()).map_err(|e| anyhow::anyhow!("the latency rules: {e}"))
    }

    fn name(self) -> &'static str {
        match self {
            RulesChoice::Probe => "probe",
            RulesChoice::DefaultPack => "default",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            RulesChoice::Probe => "probe rule only",
            RulesChoice::DefaultPack => "default pack + probe",
        }
    }
}

/// One latency run's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Setting {
    /// `detector.allowed_lateness_secs`, in milliseconds.
    pub allowed_lateness_ms: u64,
    /// `kafka.batch_max_wait_ms` of both tasks.
    pub batch_max_wait_ms: u64,
    pub rules: RulesChoice,
}

impl Setting {
    pub fn label(&self) -> String {
        format!(
            "lateness {} ms, batch wait {} ms, {}",
            self.allowed_lateness_ms,
            self.batch_max_wait_ms,
            self.rules.describe()
        )
    }

    /// Events keep coming this long after the window, so the window's last
    /// alerts are released by later events, not by the idle timer.
    pub fn cooldown(&self) -> Duration {
        Duration::from_millis(self.allowed_lateness_ms + 1000)
    }
}

/// `LATENESS_MS:WAIT_MS:RULES` (RULES `probe` or `default`), comma
/// separated; empty or `none`: no runs.
pub fn parse_settings(text: &str) -> anyhow::Result<Vec<Setting>> {
    let text = text.trim();
    if text.is_empty() || text == "none" {
        return Ok(Vec::new());
    }
    text.split(',')
        .map(|one| {
            let parts: Vec<&str> = one.trim().split(':').map(str::trim).collect();
            let [l, w, r] = parts.as_slice() else {
                anyhow::bail!(
                    "latency setting {one:?}: expected LATENESS_MS:BATCH_WAIT_MS:RULES (RULES: probe or default)"
                );
            };
            let n = |s: &str| {
                s.parse::<u64>()
                    .map_err(|e| anyhow::anyhow!("latency setting {one:?}: {e}"))
            };
            let rules = match *r {
                "probe" => RulesChoice::Probe,
                "default" => RulesChoice::DefaultPack,
                other => anyhow::bail!(
                    "latency setting {one:?}: rules {other:?}: use probe or default"
                ),
            };
            let setting = Setting {
                allowed_lateness_ms: n(l)?,
                batch_max_wait_ms: n(w)?,
                rules,
            };
            if setting.allowed_lateness_ms > 3_600_000 {
                anyhow::bail!("latency setting {one:?}: the lateness is at most 3,600,000 ms");
            }
            Ok(setting)
        })
        .collect()
}

/// What every latency run shares.
pub struct Plan<'a> {
    pub run_id: &'a str,
    pub kafka: &'a KafkaConfig,
    pub partitions: i32,
    pub rate: u64,
    pub warmup: Duration,
    pub window: Duration,
    pub events: &'a [Kept],
}

impl Plan<'_> {
    /// Events a run with `setting` sends.
    pub fn events_needed(&self, setting: &Setting) -> u64 {
        let secs = (self.warmup + self.window + setting.cooldown()).as_secs_f64();
        (secs * self.rate as f64).ceil() as u64
    }
}

/// Latency percentiles, in milliseconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Percentiles {
    pub count: u64,
    pub mean_ms: f64,
    pub min_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Percentiles {
    /// Nearest-rank percentiles of `values` (milliseconds).
    pub fn of(mut values: Vec<f64>) -> Percentiles {
        if values.is_empty() {
            return Percentiles::default();
        }
        values.sort_by(f64::total_cmp);
        let n = values.len();
        let rank = |p: f64| {
            let i = ((p / 100.0) * n as f64).ceil() as usize;
            values.get(i.clamp(1, n) - 1).copied().unwrap_or(f64::NAN)
        };
        Percentiles {
            count: n as u64,
            mean_ms: values.iter().sum::<f64>() / n as f64,
            min_ms: values.first().copied().unwrap_or(f64::NAN),
            p50_ms: rank(50.0),
            p90_ms: rank(90.0),
            p99_ms: rank(99.0),
            max_ms: values.last().copied().unwrap_or(f64::NAN),
        }
    }
}

/// One task's work over the measured window, from the runner's metrics.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Hop {
    pub transactions_committed: u64,
    pub transactions_aborted: u64,
    /// Input records in committed transactions.
    pub records: u64,
    pub records_per_transaction: f64,
    /// Mean time from a batch's processing start to its commit (the batch
    /// wait before it is not included).
    pub batch_ms_avg: f64,
    /// Mean time from an input record's Kafka timestamp to the commit of its
    /// transaction (for `repartition`: from the bench's send; for `rules`:
    /// from the by-key record's creation during the repartition batch).
    pub record_latency_ms_avg: f64,
    /// Share of those records whose latency was within each bucket bound.
    pub record_latency_share_within_ms: BTreeMap<String, f64>,
    /// Records sent to the dead-letter topic (e.g. an output over Kafka's
    /// record size limit).
    pub dead_letters: u64,
    /// Time inside the stage per input record, and the bytes it asked to
    /// produce per input record.
    pub stage_us_per_record: f64,
    pub output_bytes_per_record: f64,
}

/// A snapshot of one task's metrics.
#[derive(Debug, Clone, Default)]
struct HopSnapshot {
    committed: u64,
    aborted: u64,
    batches: u64,
    batch_sum: f64,
    records: u64,
    latency_sum: f64,
    buckets: Vec<(f64, u64)>,
    dead_letters: u64,
    stage: StageTimes,
}

impl HopSnapshot {
    fn take(d: &Detector, task: &str, stage: StageTimes) -> HopSnapshot {
        let m = &d.metrics;
        let batch = m.batch_seconds.with_label_values(&[task]);
        let lat = m.record_latency.with_label_values(&[task]);
        let buckets = prometheus::core::Metric::metric(&lat)
            .get_histogram()
            .get_bucket()
            .iter()
            .map(|b| (b.upper_bound(), b.cumulative_count()))
            .collect();
        HopSnapshot {
            committed: m.transactions.with_label_values(&[task, "committed"]).get(),
            aborted: m.transactions.with_label_values(&[task, "aborted"]).get(),
            batches: batch.get_sample_count(),
            batch_sum: batch.get_sample_sum(),
            records: lat.get_sample_count(),
            latency_sum: lat.get_sample_sum(),
            buckets,
            dead_letters: d.dead_letters(task),
            stage,
        }
    }

    fn until(&self, later: &HopSnapshot) -> Hop {
        let records = later.records.saturating_sub(self.records);
        let committed = later.committed.saturating_sub(self.committed);
        let batches = later.batches.saturating_sub(self.batches);
        let share = later
            .buckets
            .iter()
            .zip(self.buckets.iter().chain(std::iter::repeat(&(0.0, 0))))
            .filter(|((bound, _), _)| *bound <= 1.0)
            .map(|((bound, after), (_, before))| {
                let n = after.saturating_sub(*before);
                (
                    format!("{}", (bound * 1000.0).round()),
                    if records > 0 {
                        n as f64 / records as f64
                    } else {
                        0.0
                    },
                )
            })
            .collect();
        Hop {
            transactions_committed: committed,
            transactions_aborted: later.aborted.saturating_sub(self.aborted),
            records,
            records_per_transaction: ratio(records as f64, committed as f64),
            batch_ms_avg: ratio(later.batch_sum - self.batch_sum, batches as f64) * 1000.0,
            record_latency_ms_avg: ratio(later.latency_sum - self.latency_sum, records as f64)
                * 1000.0,
            record_latency_share_within_ms: share,
            dead_letters: later.dead_letters.saturating_sub(self.dead_letters),
            stage_us_per_record: ratio(
                (later.stage.process_seconds - self.stage.process_seconds) * 1e6,
                later.stage.processed.saturating_sub(self.stage.processed) as f64,
            ),
            output_bytes_per_record: ratio(
                later
                    .stage
                    .output_bytes
                    .saturating_sub(self.stage.output_bytes) as f64,
                later.stage.processed.saturating_sub(self.stage.processed) as f64,
            ),
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

/// Alerts of one slice of the window (by the send time of their crossing
/// event): shows whether the latency holds or grows as the run goes on.
#[derive(Debug, Clone, Serialize)]
pub struct Slice {
    /// Seconds from the window's start.
    pub from_seconds: f64,
    pub alerts: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// Records waiting when the window ended.
#[derive(Debug, Clone, Serialize)]
pub struct Backlog {
    /// Sent but not yet committed by repartition.
    pub repartition_input_records: u64,
    /// Written to the by-key topic but not yet committed by rules.
    pub rules_by_key_records: u64,
}

/// The result of one run.
#[derive(Debug, Serialize)]
pub struct LatencyRun {
    pub setting: Setting,
    pub label: String,
    /// p99 of `alerts` within the goal, and every probe alert arrived.
    pub pass: bool,
    /// Every probe alert of the window arrived. When not, each missing one
    /// is counted in the percentiles with the time until the observer
    /// stopped: they are then lower bounds.
    pub complete: bool,
    /// Every alert whose crossing event was sent in the measured window.
    pub alerts: Percentiles,
    /// Those of the probe rule alone.
    pub probe_alerts: Percentiles,
    /// Those of the default pack's rules, by rule.
    pub alerts_by_rule: BTreeMap<String, u64>,
    /// How the crossing events were found: by the last evidence id, or by
    /// `last_event_time`.
    pub crossing_by_id: u64,
    pub crossing_by_time: u64,
    /// Alerts seen over the whole run (warm-up and cool-down included), and
    /// those whose crossing event could not be found.
    pub alerts_seen_total: u64,
    pub alerts_unmatched: u64,
    /// Probe alerts expected from the window's events, and those missing
    /// when the run ended (0 unless the wait gave up).
    pub probe_expected: u64,
    pub probe_missing: u64,
    pub events_sent: u64,
    pub events_in_window: u64,
    pub window_seconds: f64,
    /// Events per second actually sent in the window.
    pub send_rate: f64,
    /// How far sends fell behind their schedule (pacing accuracy).
    pub send_behind_schedule_ms_p99: f64,
    pub send_behind_schedule_ms_max: f64,
    /// From the start of both tasks until both had their partitions.
    pub startup_seconds: f64,
    /// From the last send (after the cool-down) until the last probe alert
    /// of the window arrived.
    pub drain_seconds: f64,
    pub shutdown_seconds: f64,
    /// Each task's work over the window.
    pub repartition: Hop,
    pub rules: Hop,
    pub backlog_at_window_end: Backlog,
    /// Records each task sent to the dead-letter topic over the whole run
    /// (the window's are in `repartition` and `rules`).
    pub dead_letters_whole_run: BTreeMap<String, u64>,
    /// The window in slices of [`SLICE`].
    pub timeline: Vec<Slice>,
    pub cpu: CpuUse,
    pub loadavg_before: Option<[f64; 3]>,
    pub loadavg_after: Option<[f64; 3]>,
    pub topics: TopicsUsed,
}

#[derive(Debug, Clone, Serialize)]
pub struct TopicsUsed {
    pub input: String,
    pub by_key: String,
    pub changelog: String,
    pub alerts: String,
    pub repartition_group: String,
    pub rules_group: String,
}

/// An alert as the observer saw it arrive.
struct Seen {
    at: Instant,
    wall_ms: i64,
    alert: Alert,
}

/// One sent event.
struct Sent {
    at: Instant,
    event_time: i64,
    in_window: bool,
}

/// Runs the detector with `setting` at the plan's rate and measures.
pub fn run(
    rt: &tokio::runtime::Runtime,
    plan: &Plan<'_>,
    index: usize,
    setting: Setting,
) -> anyhow::Result<LatencyRun> {
    let label = setting.label();
    let needed = plan.events_needed(&setting);
    if needed > plan.events.len() as u64 {
        anyhow::bail!(
            "latency run ({label}) sends {needed} events but only {} were generated: raise --events",
            plan.events.len()
        );
    }
    let prefix = format!("bench.{}.lat{index}.", plan.run_id);
    let topics = TopicsConfig {
        enriched: format!("{prefix}enriched"),
        alerts: format!("{prefix}alerts"),
        dlq: format!("{prefix}dlq"),
        internal_prefix: prefix.clone(),
        partitions: plan.partitions,
        replication_factor: 1,
        ..TopicsConfig::default()
    };
    let kafka = KafkaConfig {
        batch_max_wait_ms: setting.batch_max_wait_ms,
        group_prefix: format!("bench-{}-lat{index}", plan.run_id),
        ..plan.kafka.clone()
    };
    let specs: Vec<TopicSpec> = [&topics.enriched, &topics.alerts, &topics.dlq]
        .iter()
        .map(|name| TopicSpec {
            name: name.to_string(),
            partitions: plan.partitions,
            replication_factor: 1,
            settings: Default::default(),
        })
        .collect();
    for (name, status) in rt.block_on(scimtrail_core::kafka::ensure_topics(&kafka, &specs))? {
        if status != TopicStatus::Created {
            anyhow::bail!("topic {name} already existed: {status:?}; the bench needs fresh topics");
        }
    }
    detector_tasks::create_internal_topics(rt, &kafka, &topics)?;

    let stop = Arc::new(AtomicBool::new(false));
    // Crossing event ids of the probe alerts seen, as they arrive.
    let probes_seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let observer = observe(
        &kafka,
        &topics.alerts,
        plan.partitions,
        Arc::clone(&stop),
        Arc::clone(&probes_seen),
    )?;
    let config = DetectorConfig {
        allowed_lateness_secs: setting.allowed_lateness_ms as f64 / 1000.0,
        ..DetectorConfig::default()
    };
    eprintln!("bench: latency ({label}): starting the detector");
    let mut detector = Detector::spawn(rt, &kafka, &topics, setting.rules.rules()?, &config)?;
    let used = TopicsUsed {
        input: topics.enriched.clone(),
        by_key: detector.by_key.clone(),
        changelog: detector.changelog.clone(),
        alerts: topics.alerts.clone(),
        repartition_group: detector.repartition_group.clone(),
        rules_group: detector.rules_group.clone(),
    };
    let ready_by = Instant::now() + Duration::from_secs(120);
    while !detector.assigned() {
        detector.check_running(rt)?;
        if Instant::now() > ready_by {
            anyhow::bail!("latency ({label}): the detector got no partitions within 120 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let startup_seconds = detector.started.elapsed().as_secs_f64();

    let codecs = Codecs::single_object()?;
    let producer: BaseProducer<Deliveries> = scimtrail_core::kafka::producer_config(&kafka)?
        // Each event goes out at once: the bench's batching is not measured.
        .set("linger.ms", "0")
        .create_with_context(Deliveries::default())?;
    let warmup_n = (plan.warmup.as_secs_f64() * plan.rate as f64).round() as u64;
    let window_n = (plan.window.as_secs_f64() * plan.rate as f64).round() as u64;
    let interval_ns = 1e9 / plan.rate as f64;
    let mut sent: HashMap<String, Sent> = HashMap::with_capacity(needed as usize);
    let mut behind = Vec::with_capacity(window_n as usize);
    let mut probe_ids: Vec<String> = Vec::new();
    let loadavg_before = host::loadavg();
    let mut window_start: Option<Marks> = None;
    let mut window_end: Option<Marks> = None;
    eprintln!(
        "bench: latency ({label}): sending {needed} events at {}/s ({:.0} s warm-up, {:.0} s measured, {:.1} s cool-down)",
        plan.rate,
        plan.warmup.as_secs_f64(),
        plan.window.as_secs_f64(),
        setting.cooldown().as_secs_f64()
    );
    let start = Instant::now() + Duration::from_millis(10);
    for (i, kept) in plan.events.iter().take(needed as usize).enumerate() {
        let i = i as u64;
        let due = start + Duration::from_nanos((i as f64 * interval_ns) as u64);
        if i == warmup_n {
            window_start = Some(Marks::take(&detector, i));
        }
        if i == warmup_n + window_n {
            window_end = Some(Marks::take(&detector, i));
        }
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        let mut event = kept.event.clone();
        let wall = chrono::Utc::now().timestamp_millis();
        event.event.event_time = wall;
        let bytes = codecs.enriched.encode(&event)?;
        let at = Instant::now();
        corpus::send(
            &producer,
            &topics.enriched,
            &kept.key,
            Some(kept.partition),
            &bytes,
        )?;
        let in_window = (warmup_n..warmup_n + window_n).contains(&i);
        if in_window {
            behind.push(at.saturating_duration_since(due).as_secs_f64() * 1000.0);
            if is_probe(&event) {
                probe_ids.push(event.event.event_id.clone());
            }
        }
        sent.insert(
            event.event.event_id.clone(),
            Sent {
                at,
                event_time: wall,
                in_window,
            },
        );
        if i % 1000 == 999 {
            detector.check_running(rt)?;
        }
    }
    let sent_end = Instant::now();
    let window_end = match window_end {
        Some(w) => w,
        None => Marks::take(&detector, needed),
    };
    corpus::flush(&producer)?;
    let Some(window_start) = window_start else {
        anyhow::bail!("latency ({label}): the window never started");
    };
    let window_seconds = window_end.at.duration_since(window_start.at).as_secs_f64();

    // Every probe alert of the window, however long the lateness or a
    // backlog makes it wait, as long as something moves.
    let probe_expected = probe_ids.len() as u64;
    let mut waiting: HashSet<&String> = probe_ids.iter().collect();
    let mut moved = (
        Instant::now(),
        waiting.len(),
        detector.committed_records(RULES),
    );
    eprintln!(
        "bench: latency ({label}): waiting for {} of {probe_expected} probe alerts of the window",
        waiting.len()
    );
    loop {
        if let Ok(mut arrived) = probes_seen.lock() {
            for id in arrived.drain(..) {
                waiting.remove(&id);
            }
        }
        if waiting.is_empty() {
            break;
        }
        let now = (waiting.len(), detector.committed_records(RULES));
        if now != (moved.1, moved.2) {
            moved = (Instant::now(), now.0, now.1);
        } else if moved.0.elapsed() > DRAIN_STALL {
            eprintln!(
                "bench: latency ({label}): {} probe alerts still missing after {DRAIN_STALL:?} without progress",
                waiting.len()
            );
            break;
        }
        if sent_end.elapsed() > DRAIN_MAX {
            eprintln!(
                "bench: latency ({label}): {} probe alerts still missing {DRAIN_MAX:?} after the last send",
                waiting.len()
            );
            break;
        }
        detector.check_running(rt)?;
        std::thread::sleep(Duration::from_millis(20));
    }
    let drain_seconds = sent_end.elapsed().as_secs_f64();
    let loadavg_after = host::loadavg();
    let dead_letters =
        BTreeMap::from([REPARTITION, RULES].map(|t| (t.to_string(), detector.dead_letters(t))));
    let shutdown_seconds = detector.stop(rt)?;
    stop.store(true, Ordering::Relaxed);
    let seen = observer
        .join()
        .map_err(|_| anyhow::anyhow!("the alert observer panicked"))??;
    let observed_until = Instant::now();

    // Match each alert to its crossing event.
    let window_times = window_start.wall_ms..window_end.wall_ms;
    let mut all: Vec<(Instant, f64)> = Vec::new();
    let mut probes = Vec::new();
    let mut by_rule: BTreeMap<String, u64> = BTreeMap::new();
    let (mut by_id, mut by_time, mut unmatched) = (0u64, 0u64, 0u64);
    let sent_times: HashSet<i64> = sent.values().map(|e| e.event_time).collect();
    let mut probe_arrived: HashSet<&str> = HashSet::new();
    for s in &seen {
        let a = &s.alert;
        let crossing = a
            .evidence_event_ids
            .last()
            .and_then(|id| sent.get(id))
            .filter(|e| e.event_time == a.last_event_time);
        let (sent_at, latency_ms) = match crossing {
            Some(e) if e.in_window => {
                by_id += 1;
                (
                    e.at,
                    s.at.saturating_duration_since(e.at).as_secs_f64() * 1000.0,
                )
            }
            Some(_) => continue,
            None if window_times.contains(&a.last_event_time) => {
                by_time += 1;
                let ms = (s.wall_ms - a.last_event_time) as f64;
                let back = Duration::from_secs_f64((ms.max(0.0)) / 1000.0);
                (s.at.checked_sub(back).unwrap_or(s.at), ms)
            }
            None => {
                if !sent_times.contains(&a.last_event_time) {
                    unmatched += 1;
                }
                continue;
            }
        };
        all.push((sent_at, latency_ms));
        *by_rule.entry(a.rule_id.clone()).or_default() += 1;
        if a.rule_id == PROBE {
            probes.push(latency_ms);
            if let Some(id) = a.evidence_event_ids.last() {
                probe_arrived.insert(id.as_str());
            }
        }
    }
    // A probe alert that never arrived took at least until the observer
    // stopped: counted as that, so the percentiles are lower bounds rather
    // than flattered by its absence.
    let mut probe_missing = 0u64;
    for id in &probe_ids {
        if probe_arrived.contains(id.as_str()) {
            continue;
        }
        let Some(e) = sent.get(id) else { continue };
        probe_missing += 1;
        let at_least = observed_until.saturating_duration_since(e.at).as_secs_f64() * 1000.0;
        all.push((e.at, at_least));
        probes.push(at_least);
    }
    let timeline = slices(&all, window_start.at, window_seconds);
    let alerts = Percentiles::of(all.iter().map(|(_, l)| *l).collect());
    let complete = probe_missing == 0;
    let pass = complete && alerts.count > 0 && GOAL.met_by(alerts.p99_ms);
    let result = LatencyRun {
        setting,
        label: label.clone(),
        pass,
        complete,
        probe_alerts: Percentiles::of(probes),
        alerts,
        alerts_by_rule: by_rule,
        crossing_by_id: by_id,
        crossing_by_time: by_time,
        alerts_seen_total: seen.len() as u64,
        alerts_unmatched: unmatched,
        probe_expected,
        probe_missing,
        events_sent: sent.len() as u64,
        events_in_window: window_n,
        window_seconds,
        send_rate: ratio(window_n as f64, window_seconds),
        send_behind_schedule_ms_p99: Percentiles::of(behind.clone()).p99_ms,
        send_behind_schedule_ms_max: behind.iter().copied().fold(0.0, f64::max),
        startup_seconds,
        drain_seconds,
        shutdown_seconds,
        repartition: window_start.repartition.until(&window_end.repartition),
        rules: window_start.rules.until(&window_end.rules),
        backlog_at_window_end: Backlog {
            repartition_input_records: window_end
                .sent
                .saturating_sub(window_end.repartition.records),
            rules_by_key_records: window_end
                .by_key_written
                .saturating_sub(window_end.rules.records),
        },
        dead_letters_whole_run: dead_letters,
        timeline,
        cpu: window_start.cpu.until(&window_end.cpu, window_seconds),
        loadavg_before,
        loadavg_after,
        topics: used,
    };
    eprintln!(
        "bench: latency ({label}): {} alerts, p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms (goal p99 <= {} ms): {}; probe alerts {} of {} expected; backlog at the window's end: {} input, {} by-key records",
        result.alerts.count,
        result.alerts.p50_ms,
        result.alerts.p90_ms,
        result.alerts.p99_ms,
        result.alerts.max_ms,
        GOAL.threshold,
        if result.pass { "PASS" } else { "FAIL" },
        probe_expected - probe_missing,
        probe_expected,
        result.backlog_at_window_end.repartition_input_records,
        result.backlog_at_window_end.rules_by_key_records,
    );
    Ok(result)
}

/// The alerts of each [`SLICE`] of the window, by the send time of their
/// crossing event.
fn slices(alerts: &[(Instant, f64)], start: Instant, window_seconds: f64) -> Vec<Slice> {
    // The window is its nominal length plus a few microseconds.
    let n = (window_seconds / SLICE.as_secs_f64() - 1e-3)
        .ceil()
        .max(1.0) as usize;
    let mut buckets: Vec<Vec<f64>> = vec![Vec::new(); n];
    for (at, ms) in alerts {
        let i = (at.saturating_duration_since(start).as_secs_f64() / SLICE.as_secs_f64()) as usize;
        if let Some(b) = buckets.get_mut(i.min(n - 1)) {
            b.push(*ms);
        }
    }
    buckets
        .into_iter()
        .enumerate()
        .map(|(i, b)| {
            let p = Percentiles::of(b);
            Slice {
                from_seconds: (i as f64) * SLICE.as_secs_f64(),
                alerts: p.count,
                p50_ms: p.p50_ms,
                p99_ms: p.p99_ms,
                max_ms: p.max_ms,
            }
        })
        .collect()
}

/// Whether the probe rule alerts on `event`.
fn is_probe(event: &scimtrail_core::schema::EnrichedAuditEvent) -> bool {
    let e = &event.event;
    e.action == AuditAction::Delete && e.outcome == Outcome::Success && e.resource.id.is_some()
}

/// The start or end of the window: clocks, both tasks' metrics and how far
/// the input had come.
struct Marks {
    at: Instant,
    wall_ms: i64,
    repartition: HopSnapshot,
    rules: HopSnapshot,
    cpu: CpuClock,
    /// Events sent so far, and by-key records repartition had committed.
    sent: u64,
    by_key_written: u64,
}

impl Marks {
    fn take(d: &Detector, sent: u64) -> Marks {
        Marks {
            at: Instant::now(),
            wall_ms: chrono::Utc::now().timestamp_millis(),
            repartition: HopSnapshot::take(d, REPARTITION, d.repartition_clock.snapshot()),
            rules: HopSnapshot::take(d, RULES, d.rules_clock.snapshot()),
            cpu: CpuClock::now(),
            sent,
            by_key_written: d.produced(REPARTITION, &d.by_key),
        }
    }
}

/// Reads the alerts topic from the start, `read_committed`, stamping each
/// alert as it arrives, until `stop`.
fn observe(
    kafka: &KafkaConfig,
    topic: &str,
    partitions: i32,
    stop: Arc<AtomicBool>,
    probes: Arc<Mutex<Vec<String>>>,
) -> anyhow::Result<JoinHandle<anyhow::Result<Vec<Seen>>>> {
    let mut config = scimtrail_core::kafka::base_config(kafka)?;
    config
        .set("group.id", format!("{topic}-observer"))
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .set("fetch.wait.max.ms", OBSERVER_FETCH_WAIT_MS.to_string())
        .set("enable.partition.eof", "false");
    let consumer: BaseConsumer = config.create()?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    let codecs = Codecs::single_object()?;
    Ok(std::thread::spawn(move || {
        let mut seen = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let Some(polled) = consumer.poll(Duration::from_millis(20)) else {
                continue;
            };
            let at = Instant::now();
            let wall_ms = chrono::Utc::now().timestamp_millis();
            let message = match polled {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(message = "alert observer: consumer error", error = %e);
                    continue;
                }
            };
            let Some(payload) = message.payload() else {
                continue;
            };
            let alert = codecs.alert.decode(payload)?;
            if alert.rule_id == PROBE {
                if let (Some(id), Ok(mut probes)) = (alert.evidence_event_ids.last(), probes.lock())
                {
                    probes.push(id.clone());
                }
            }
            seen.push(Seen { at, wall_ms, alert });
        }
        Ok(seen)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_parse_and_none_means_no_runs() {
        assert_eq!(
            parse_settings("0:100:probe, 2000:5:default").expect("parses"),
            vec![
                Setting {
                    allowed_lateness_ms: 0,
                    batch_max_wait_ms: 100,
                    rules: RulesChoice::Probe,
                },
                Setting {
                    allowed_lateness_ms: 2000,
                    batch_max_wait_ms: 5,
                    rules: RulesChoice::DefaultPack,
                }
            ]
        );
        assert!(parse_settings("none").expect("parses").is_empty());
        assert!(parse_settings("").expect("parses").is_empty());
        assert!(parse_settings("5").is_err());
        assert!(parse_settings("0:5").is_err());
        assert!(parse_settings("a:b:probe").is_err());
        assert!(parse_settings("0:5:all").is_err());
    }

    #[test]
    fn slices_split_the_window_by_send_time() {
        let start = Instant::now();
        let at = |s: u64| start + Duration::from_secs(s);
        let alerts = [(at(1), 10.0), (at(2), 30.0), (at(7), 50.0), (at(12), 70.0)];
        let s = slices(&alerts, start, 10.0);
        assert_eq!(s.len(), 2);
        assert_eq!((s[0].alerts, s[0].max_ms), (2, 30.0));
        // Past the window's end: counted in the last slice.
        assert_eq!((s[1].alerts, s[1].max_ms), (2, 70.0));
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let p = Percentiles::of((1..=100).map(f64::from).collect());
        assert_eq!(p.count, 100);
        assert_eq!(p.p50_ms, 50.0);
        assert_eq!(p.p90_ms, 90.0);
        assert_eq!(p.p99_ms, 99.0);
        assert_eq!(p.max_ms, 100.0);
        assert_eq!(p.min_ms, 1.0);
        let one = Percentiles::of(vec![7.0]);
        assert_eq!((one.p50_ms, one.p99_ms), (7.0, 7.0));
        assert_eq!(Percentiles::of(Vec::new()).count, 0);
    }

    #[test]
    fn the_probe_rule_joins_the_default_pack_or_stands_alone() {
        let rules = RulesChoice::DefaultPack.rules().expect("valid rules");
        assert!(rules.rule(PROBE).is_some());
        assert!(rules.rule("burst.principal").is_some());
        // Same partitioning as a default rule: no extra fan-out.
        let pack = RuleSet::default_pack();
        assert_eq!(rules.partitionings(), pack.partitionings());
        let alone = RulesChoice::Probe.rules().expect("valid rules");
        assert_eq!(alone.rules().count(), 1);
        assert_eq!(alone.partitionings().len(), 1);
    }
}
