//! `scimtrail-bench enricher-state`: the enricher's memory per resource, no
//! Kafka involved.
//!
//! **Method.** N creations of distinct ~1 KB SCIM Users ([`crate::users`])
//! go straight through the enricher's own code path
//! (`Enricher::enrich_with_state`, which `Enricher::enrich` and the stage's
//! `process` call), with `Stage::commit` every [`COMMIT_EVERY`] events as the
//! runner commits its transactions, so the state is what a service holding N
//! resources holds. Each enriched event is dropped at once. The process's
//! resident memory (`VmRSS`, and the peak `VmHWM`) is read before the first
//! event and after the last; their difference over N is the cost of one
//! resource: its packed state, its key, the map's slot and the allocator's
//! overhead and fragmentation.

use std::path::PathBuf;
use std::time::Instant;

use serde::Serialize;

use scimtrail_core::runner::Stage;
use scimtrail_core::schema::avro::Codecs;
use scimtrail_enricher::enrich::StateChange;
use scimtrail_enricher::state::{Known, Packed};
use scimtrail_enricher::{Enricher, EnricherConfig};

use crate::host::{self, Memory};
use crate::progress::Progress;
use crate::report::{Goal, Report};
use crate::users::Users;

/// Events per `Stage::commit`: the order of a runner batch (500 by default).
const COMMIT_EVERY: u64 = 1000;

/// The goal is stated for a million resources.
const GOAL_RESOURCES: u64 = 1_000_000;
const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

pub const GOAL: Goal = Goal {
    metric: "rss_for_1m_bytes",
    comparison: "<=",
    threshold: GIB,
    description: "the enricher holds the state of 1,000,000 SCIM Users of ~1 KB in at most 1 GiB resident memory (peak VmHWM of the process; projected from bytes per resource when fewer resources are fed)",
};

#[derive(clap::Args, Debug)]
pub struct StateArgs {
    /// Distinct resources to create.
    #[arg(long, default_value_t = GOAL_RESOURCES)]
    resources: u64,
    /// Seed of the user generator: the same seed gives the same users.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Directory of the result file.
    #[arg(long, default_value = "bench/results")]
    out: PathBuf,
}

#[derive(Debug, Serialize)]
struct Parameters {
    resources: u64,
    seed: u64,
    commit_every: u64,
    partitions: i32,
    enricher_config: &'static str,
    build_profile: &'static str,
}

#[derive(Debug, Serialize)]
struct Figures {
    /// The goal's figure: measured VmHWM when 1,000,000 resources were fed,
    /// else `rss_before + bytes_per_resource × 1,000,000`.
    rss_for_1m_bytes: f64,
    rss_for_1m_is_projection: bool,
    memory_before: Memory,
    memory_after: Memory,
    /// (VmRSS after − VmRSS before) / resources.
    bytes_per_resource: f64,
    /// (VmHWM after − VmRSS before) / resources.
    peak_bytes_per_resource: f64,
    /// Mean size of the resources fed (the JSON the service provider
    /// returned), and of their packed state as stored (zstd JSON with lineage).
    resource_json_bytes_avg: f64,
    packed_state_bytes_avg: f64,
    resources_tracked: Option<f64>,
    seconds: f64,
    events_per_second: f64,
    /// Time inside `enrich_with_state` only (generation excluded).
    enrich_us_per_event: f64,
    peak_reset: bool,
    /// What the packed state is made of, over the first resources.
    composition: Composition,
}

/// The packed state of the first [`COMPOSITION_SAMPLE`] resources taken
/// apart: the resource itself against the lineage kept with it.
#[derive(Debug, Default, Serialize)]
struct Composition {
    sampled: u64,
    /// JSON of the whole stored state (resource and lineage), unpacked.
    known_json_bytes_avg: f64,
    /// JSON of the lineage alone, and its entries (attribute → setter).
    lineage_json_bytes_avg: f64,
    lineage_entries_avg: f64,
    /// The packed size the resource would have without its lineage.
    resource_only_packed_bytes_avg: f64,
}

/// Resources whose state is taken apart for [`Composition`].
const COMPOSITION_SAMPLE: u64 = 1000;

impl Composition {
    fn add(&mut self, packed: &Packed) -> anyhow::Result<()> {
        let known = packed.unpack()?;
        self.sampled += 1;
        self.known_json_bytes_avg += serde_json::to_vec(&known)?.len() as f64;
        self.lineage_json_bytes_avg += serde_json::to_vec(&known.lineage)?.len() as f64;
        self.lineage_entries_avg += known.lineage.len() as f64;
        let bare = Known {
            resource: known.resource,
            lineage: Default::default(),
        };
        self.resource_only_packed_bytes_avg += Packed::pack(&bare)?.as_bytes().len() as f64;
        Ok(())
    }

    fn finish(mut self) -> Self {
        if self.sampled > 0 {
            let n = self.sampled as f64;
            self.known_json_bytes_avg /= n;
            self.lineage_json_bytes_avg /= n;
            self.lineage_entries_avg /= n;
            self.resource_only_packed_bytes_avg /= n;
        }
        self
    }
}

pub fn run(args: StateArgs) -> anyhow::Result<()> {
    let started_at = chrono::Utc::now();
    if args.resources == 0 {
        anyhow::bail!("--resources must be positive");
    }
    let partitions = 3;
    let registry = prometheus::Registry::new();
    let mut enricher = Enricher::new(
        EnricherConfig::default(),
        Codecs::single_object()?,
        "bench.enriched".into(),
        "bench.enricher-state".into(),
        &registry,
    );
    let mut users = Users::new(args.seed);
    // Warm up what is allocated once (codecs, metrics, the allocator's
    // arenas) on a separate enricher, so "before" is the steady base.
    {
        let mut warm = Enricher::new(
            EnricherConfig::default(),
            Codecs::single_object()?,
            "warm".into(),
            "warm".into(),
            &prometheus::Registry::new(),
        );
        for _ in 0..100 {
            warm.enrich(Users::new(u64::MAX).next_create().event, 0);
        }
    }
    let peak_reset = host::reset_peak();
    let memory_before = Memory::now()?;
    eprintln!(
        "bench: enricher-state: {} resources, RSS before {:.1} MiB",
        args.resources,
        mib(memory_before.rss_bytes)
    );
    let mut progress = Progress::new("enricher-state", "resources", args.resources);
    let started = Instant::now();
    let mut json_bytes = 0u64;
    let mut packed_bytes = 0u64;
    let mut packed_count = 0u64;
    let mut enrich_ns = 0u128;
    let mut composition = Composition::default();
    for i in 0..args.resources {
        let created = users.next_create();
        json_bytes += created.resource_json_bytes as u64;
        let partition = (i % partitions as u64) as i32;
        let t = Instant::now();
        let (_enriched, change) = enricher.enrich_with_state(created.event, partition);
        enrich_ns += t.elapsed().as_nanos();
        if let StateChange::Put(packed) = change {
            packed_bytes += packed.as_bytes().len() as u64;
            packed_count += 1;
            if i < COMPOSITION_SAMPLE {
                composition.add(&packed)?;
            }
        }
        if (i + 1) % COMMIT_EVERY == 0 {
            enricher.commit();
            progress.update(i + 1);
        }
    }
    enricher.commit();
    let seconds = started.elapsed().as_secs_f64();
    progress.finish(args.resources);
    let memory_after = Memory::now()?;
    let n = args.resources as f64;
    let growth = host::Growth::of(
        &memory_before,
        &memory_after,
        args.resources,
        GOAL_RESOURCES,
    );
    let figures = Figures {
        rss_for_1m_bytes: growth.for_goal_bytes,
        rss_for_1m_is_projection: growth.is_projection,
        memory_before,
        memory_after,
        bytes_per_resource: growth.bytes_per_unit,
        peak_bytes_per_resource: growth.peak_bytes_per_unit,
        resource_json_bytes_avg: json_bytes as f64 / n,
        packed_state_bytes_avg: if packed_count > 0 {
            packed_bytes as f64 / packed_count as f64
        } else {
            0.0
        },
        resources_tracked: crate::metrics::gauge(&registry, "scimtrail_enricher_resources_tracked"),
        seconds,
        events_per_second: n / seconds,
        enrich_us_per_event: enrich_ns as f64 / 1e3 / n,
        peak_reset,
        composition: composition.finish(),
    };
    let pass = GOAL.met_by(figures.rss_for_1m_bytes);
    eprintln!(
        "bench: enricher-state: RSS {:.1} -> {:.1} MiB (peak {:.1} MiB), {:.0} B/resource, resources avg {:.0} B JSON / {:.0} B packed; {} 1M resources: {:.1} MiB (goal <= 1024 MiB): {}",
        mib(figures.memory_before.rss_bytes),
        mib(figures.memory_after.rss_bytes),
        mib(figures.memory_after.hwm_bytes),
        figures.bytes_per_resource,
        figures.resource_json_bytes_avg,
        figures.packed_state_bytes_avg,
        if growth.is_projection { "projected for" } else { "measured at" },
        figures.rss_for_1m_bytes / 1024.0 / 1024.0,
        if pass { "PASS" } else { "FAIL" }
    );
    let report = Report {
        benchmark: "enricher-state",
        started_at,
        finished_at: chrono::Utc::now(),
        goal: GOAL,
        pass,
        other_goals: Vec::new(),
        parameters: Parameters {
            resources: args.resources,
            seed: args.seed,
            commit_every: COMMIT_EVERY,
            partitions,
            enricher_config: "EnricherConfig::default()",
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

fn mib(bytes: u64) -> f64 {
    bytes as f64 / 1024.0 / 1024.0
}
