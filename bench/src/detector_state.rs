//! `scimtrail-bench detector-state`: the detector's memory per key of rule
//! state, no Kafka involved.
//!
//! **Method.** N events, each of a distinct key, go straight through the
//! detector's rules engine (`Engine::process`, which the rules task calls for
//! every re-keyed record), with `Engine::commit` and `Engine::take_changes`
//! (the changelog entries, encoded and dropped) every [`COMMIT_EVERY`] events
//! as the runner commits its transactions. All events fall within one
//! window, so at the end every key holds an open window: the state a detector
//! holding N keys holds. The process's resident memory (`VmRSS`, and the peak
//! `VmHWM`) is read before the first event and after the last.
//!
//! Two workloads (`--workload`):
//! - `resource-windows` (the goal's): one `threshold` rule grouped by
//!   resource (`target.system, resource.type, resource.id`, 10 minute
//!   window): one key per resource a connector touched, the high-cardinality
//!   case;
//! - `principal-three-rules`: a threshold window, a `new_value` seen value
//!   and a `sequence` step per principal, every string unique: for sizing a
//!   deployment whose rules group by a field with many values.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;

use scimtrail_core::schema::{fixtures, EnrichedAuditEvent, EventFlag};
use scimtrail_detector::rules::{Engine, EngineMetrics, EngineOptions, RuleSet};

use crate::host::{self, Memory};
use crate::progress::Progress;
use crate::report::{Goal, Report};

/// Events per `Engine::commit`: the order of a runner batch (500 by default).
const COMMIT_EVERY: u64 = 1000;
const GOAL_KEYS: u64 = 1_000_000;
const MIB: f64 = 1024.0 * 1024.0;

pub const GOAL: Goal = Goal {
    metric: "rss_for_1m_bytes",
    comparison: "<=",
    threshold: 512.0 * MIB,
    description: "the detector holds 1,000,000 distinct keys with an open window each in at most 512 MiB resident memory (peak VmHWM of the process; projected from bytes per key when fewer keys are fed)",
};

#[derive(clap::ValueEnum, Clone, Copy, Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Workload {
    ResourceWindows,
    PrincipalThreeRules,
}

#[derive(clap::Args, Debug)]
pub struct DetectorStateArgs {
    /// Distinct keys (one event each).
    #[arg(long, default_value_t = GOAL_KEYS)]
    keys: u64,
    #[arg(long, value_enum, default_value_t = Workload::ResourceWindows)]
    workload: Workload,
    /// Directory of the result file.
    #[arg(long, default_value = "bench/results")]
    out: PathBuf,
}

const RESOURCE_WINDOWS: &str = r#"
rules:
  - id: changes-per-resource
    title: Many changes to one resource
    severity: medium
    description: More than 5 changes to one resource within 10 minutes.
    group_by: [target.system, resource.type, resource.id]
    threshold: {more_than: 5, window: 10m}
"#;

const PRINCIPAL_THREE_RULES: &str = r#"
rules:
  - id: burst
    title: Burst
    severity: high
    description: More than 20 changes by one principal within 10 minutes.
    threshold: {more_than: 20, window: 10m}
  - id: new-ip
    title: New source IP
    severity: low
    description: A principal acting from an IP it has not used within a day.
    new_value: {field: source.ip, lookback: 1d}
  - id: rename-then-deactivate
    title: Renamed then deactivated
    severity: high
    description: An identity change followed by a deactivation within the hour.
    group_by: [principal.id]
    match:
      sequence:
        first: 'flags eq "IDENTITY_CHANGE"'
        then: 'flags eq "DEACTIVATED"'
        within: 1h
"#;

#[derive(Debug, Serialize)]
struct Parameters {
    keys: u64,
    workload: Workload,
    rules: &'static str,
    commit_every: u64,
    partitions: i32,
    allowed_lateness_ms: i64,
    build_profile: &'static str,
}

#[derive(Debug, Serialize)]
struct Figures {
    /// The goal's figure: measured VmHWM when 1,000,000 keys were fed, else
    /// `rss_before + peak_bytes_per_key × 1,000,000`.
    rss_for_1m_bytes: f64,
    rss_for_1m_is_projection: bool,
    memory_before: Memory,
    memory_after: Memory,
    /// (VmRSS after − VmRSS before) / keys.
    bytes_per_key: f64,
    /// (VmHWM after − VmRSS before) / keys.
    peak_bytes_per_key: f64,
    keys_held: usize,
    /// Mean size of a changelog entry (what `detector-state` stores per key).
    changelog_entry_bytes_avg: f64,
    seconds: f64,
    events_per_second: f64,
    peak_reset: bool,
}

/// Event `i`: a UUID-like id, as raw exchanges have, and all within 50 s so
/// that every window is still open at the end.
fn event(workload: Workload, i: u64) -> EnrichedAuditEvent {
    let mut a = fixtures::audit_event(&format!("{i:08x}-7f76-453a-919d-413861904646"));
    a.event_time = 1_772_582_400_000 + (i / 20) as i64;
    a.target.system = "github-enterprise".into();
    let mut e = match workload {
        Workload::ResourceWindows => {
            a.principal.id = "okta-provisioner".into();
            a.resource.id = Some(format!("2819c223-{i:08x}-4a3b-b5f1-0e6d8c1a9f12"));
            fixtures::enriched(a)
        }
        Workload::PrincipalThreeRules => {
            a.principal.id = format!("principal-{i:07}@example.com");
            a.source.ip = Some(format!("10.{}.{}.{}", i % 200, (i / 200) % 200, i % 7));
            fixtures::enriched(a)
        }
    };
    if matches!(workload, Workload::PrincipalThreeRules) {
        e.flags.push(EventFlag::IdentityChange);
    }
    e
}

pub fn run(args: DetectorStateArgs) -> anyhow::Result<()> {
    let started_at = chrono::Utc::now();
    if args.keys == 0 {
        anyhow::bail!("--keys must be positive");
    }
    let rules_yaml = match args.workload {
        Workload::ResourceWindows => RESOURCE_WINDOWS,
        Workload::PrincipalThreeRules => PRINCIPAL_THREE_RULES,
    };
    let rules = RuleSet::parse(rules_yaml, "bench")?;
    let partitionings = rules.partitionings();
    let partitions = 3;
    let lateness = 0;
    let new_engine = |registry: &prometheus::Registry| {
        Engine::new(
            Arc::new(rules.clone()),
            EngineOptions {
                allowed_lateness_ms: lateness,
                max_evidence: 20,
                max_keys: usize::MAX,
            },
            EngineMetrics::new(registry),
        )
    };
    // Warm up what is allocated once (the rules, metrics, the allocator's
    // arenas) on a separate engine, so "before" is the steady base.
    {
        let mut warm = new_engine(&prometheus::Registry::new());
        for i in 0..1000 {
            let e = event(args.workload, u64::MAX - i);
            for p in &partitionings {
                if let Some(k) = p.key_of(&e) {
                    warm.process(0, &p.id, &k, &e);
                }
            }
        }
        warm.commit();
        warm.take_changes();
    }
    let registry = prometheus::Registry::new();
    let mut engine = new_engine(&registry);
    let peak_reset = host::reset_peak();
    let memory_before = Memory::now()?;
    eprintln!(
        "bench: detector-state: {} keys ({:?}), RSS before {:.1} MiB",
        args.keys,
        args.workload,
        memory_before.rss_bytes as f64 / MIB
    );
    let mut progress = Progress::new("detector-state", "keys", args.keys);
    let started = Instant::now();
    let (mut entry_bytes, mut entries) = (0u64, 0u64);
    let mut flush = |engine: &mut Engine| {
        engine.commit();
        for (_, v) in engine.take_changes() {
            if let Some(v) = v {
                entry_bytes += v.len() as u64;
                entries += 1;
            }
        }
    };
    for i in 0..args.keys {
        let e = event(args.workload, i);
        let partition = (i % partitions as u64) as i32;
        for p in &partitionings {
            if let Some(k) = p.key_of(&e) {
                engine.process(partition, &p.id, &k, &e);
            }
        }
        if (i + 1) % COMMIT_EVERY == 0 {
            flush(&mut engine);
            progress.update(i + 1);
        }
    }
    flush(&mut engine);
    let seconds = started.elapsed().as_secs_f64();
    progress.finish(args.keys);
    let memory_after = Memory::now()?;
    let n = args.keys as f64;
    let growth = host::Growth::of(&memory_before, &memory_after, args.keys, GOAL_KEYS);
    let figures = Figures {
        rss_for_1m_bytes: growth.for_goal_bytes,
        rss_for_1m_is_projection: growth.is_projection,
        memory_before,
        memory_after,
        bytes_per_key: growth.bytes_per_unit,
        peak_bytes_per_key: growth.peak_bytes_per_unit,
        keys_held: engine.state_keys(),
        changelog_entry_bytes_avg: if entries > 0 {
            entry_bytes as f64 / entries as f64
        } else {
            0.0
        },
        seconds,
        events_per_second: n / seconds,
        peak_reset,
    };
    let pass = GOAL.met_by(figures.rss_for_1m_bytes);
    eprintln!(
        "bench: detector-state: RSS {:.1} -> {:.1} MiB (peak {:.1} MiB), {:.0} B/key, {} keys held, changelog entries avg {:.0} B; {} 1M keys: {:.1} MiB (goal <= 512 MiB): {}",
        figures.memory_before.rss_bytes as f64 / MIB,
        figures.memory_after.rss_bytes as f64 / MIB,
        figures.memory_after.hwm_bytes as f64 / MIB,
        figures.bytes_per_key,
        figures.keys_held,
        figures.changelog_entry_bytes_avg,
        if growth.is_projection { "projected for" } else { "measured at" },
        figures.rss_for_1m_bytes / MIB,
        if pass { "PASS" } else { "FAIL" }
    );
    let report = Report {
        benchmark: "detector-state",
        started_at,
        finished_at: chrono::Utc::now(),
        goal: GOAL,
        other_goals: Vec::new(),
        pass,
        parameters: Parameters {
            keys: args.keys,
            workload: args.workload,
            rules: rules_yaml,
            commit_every: COMMIT_EVERY,
            partitions,
            allowed_lateness_ms: lateness,
            build_profile: crate::BUILD_PROFILE,
        },
        figures,
        code: host::Code::probe(),
        machine: host::Machine::probe(),
        kafka_version: None,
    };
    let path = report.write(&args.out)?;
    eprintln!("bench: result written to {}", path.display());
    Ok(())
}
