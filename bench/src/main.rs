//! `scimtrail-bench`: reproducible benchmarks of the enricher and the
//! detector.
//!
//! - `enricher`: sustained events/s of the enricher stage in the exactly-once
//!   runner on a real broker, against a passthrough baseline (B1) run by the
//!   same runner on the same input ([`throughput`]);
//! - `enricher-state`: resident memory per resource of the enricher's state,
//!   without Kafka ([`state`]);
//! - `detector`: events/s of the detector's two tasks with the default rule
//!   pack against the same baseline, and its alert latency at a paced rate
//!   ([`detector`], [`latency`]).
//!
//! Each writes a JSON result file (figures, goal, verdict, parameters, git
//! commit, machine, Kafka version) to `bench/results/`; see bench/README.md.
//! The exit status is 0 whether or not the goal is met: a benchmark reports,
//! the result file says pass or fail.

mod corpus;
mod detector;
mod detector_state;
mod detector_tasks;
mod enriched;
mod host;
mod latency;
mod metrics;
mod progress;
mod report;
mod stages;
mod state;
mod throughput;
mod txn_probe;
mod users;

use clap::{Parser, Subcommand};

/// Recorded with every result: figures from a debug build mean little.
#[cfg(debug_assertions)]
pub const BUILD_PROFILE: &str = "debug";
#[cfg(not(debug_assertions))]
pub const BUILD_PROFILE: &str = "release";

#[derive(Parser)]
#[command(
    name = "scimtrail-bench",
    version,
    about = "Benchmarks of the scimtrail enricher and detector"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Enricher events/s against the exactly-once passthrough baseline (needs Kafka).
    Enricher(throughput::EnricherArgs),
    /// Resident memory per resource of the enricher's state (no Kafka).
    EnricherState(state::StateArgs),
    /// Detector events/s (default pack) against the passthrough baseline, and alert latency at 1,000 events/s (needs Kafka).
    Detector(detector::DetectorArgs),
    /// Resident memory per key of the detector's rule state (no Kafka).
    DetectorState(detector_state::DetectorStateArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // Warnings only (RUST_LOG overrides): the runner's per-rebalance info
    // lines would drown the progress lines.
    scimtrail_core::telemetry::init(&scimtrail_core::config::LogConfig {
        level: "warn".into(),
        format: scimtrail_core::config::LogFormat::Text,
    });
    if BUILD_PROFILE == "debug" {
        eprintln!("bench: warning: this is a debug build; measure with --release");
    }
    match cli.command {
        Command::Enricher(args) => throughput::run(args),
        Command::EnricherState(args) => state::run(args),
        Command::Detector(args) => detector::run(args),
        Command::DetectorState(args) => detector_state::run(args),
    }
}
