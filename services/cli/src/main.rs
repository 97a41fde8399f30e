//! `scimtrail`: the operator CLI.
//!
//! - `topics ensure` creates the pipeline's topics from config;
//! - `gen` produces realistic synthetic SCIM traffic in the raw contract;
//! - `tail TOPIC` prints any topic as JSON lines, decoding Avro;
//! - `receive` is a small webhook receiver that prints each alert;
//! - `trace` prints an attribute's history across systems;
//! - `backtest` runs rules over past events and prints the alerts they would raise.
//!
//! Kafka settings come from the same configuration as the services (file and
//! `SCIMTRAIL__KAFKA__…`/`SCIMTRAIL__TOPICS__…` env vars), so the CLI always
//! talks to the same cluster and topics they do.

mod backtest;
mod gen;
mod receive;
mod scan;
mod tail;
mod topics;
mod trace;
mod traffic;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use scimtrail_core::config::{CommonConfig, ConfigError, LoadOptions, Validate};

#[derive(Parser)]
#[command(name = "scimtrail", version, about = "Operate a scimtrail pipeline")]
struct Cli {
    /// TOML configuration file with the services' `[kafka]` and `[topics]` sections
    /// (also `SCIMTRAIL_CONFIG`); env vars `SCIMTRAIL__…` override it.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Manage the pipeline's topics.
    Topics {
        #[command(subcommand)]
        action: TopicsAction,
    },
    /// Produce synthetic SCIM traffic (the raw contract) to the raw topic.
    Gen(traffic::GenArgs),
    /// Print a topic as JSON lines, decoding Avro.
    Tail(tail::TailArgs),
    /// Receive webhooks and print each one as a JSON line.
    Receive(receive::ReceiveArgs),
    /// Print an attribute's history across systems, from the enriched topic.
    Trace(trace::TraceArgs),
    /// Run rules over the enriched topic or an export and print the alerts they would raise.
    Backtest(backtest::BacktestArgs),
}

#[derive(Subcommand)]
enum TopicsAction {
    /// Create the topics that do not exist yet (idempotent) and report the others.
    Ensure,
}

/// The CLI has no section of its own.
#[derive(Debug, Default, serde::Deserialize)]
struct NoSection {}

impl Validate for NoSection {
    fn validate(&self) -> Result<(), ConfigError> {
        Ok(())
    }
}

fn load_common(file: Option<PathBuf>) -> anyhow::Result<CommonConfig> {
    let file = file.or_else(|| std::env::var_os("SCIMTRAIL_CONFIG").map(PathBuf::from));
    let cfg = scimtrail_core::config::load::<NoSection>(LoadOptions {
        section: "cli",
        default_admin_listen: "127.0.0.1:0",
        file: file.as_deref(),
    })?;
    Ok(cfg.common)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // Receiving webhooks, and backtesting an export, need no Kafka configuration.
    if let Command::Receive(args) = cli.command {
        return receive::run(args).await;
    }
    if let Command::Backtest(args) = &cli.command {
        if args.has_file() {
            let Command::Backtest(args) = cli.command else {
                unreachable!("matched above")
            };
            return backtest::run(None, args).await;
        }
    }
    let common = load_common(cli.config)?;
    let mut log = common.log.clone();
    log.format = scimtrail_core::config::LogFormat::Text;
    if std::env::var_os("RUST_LOG").is_none() {
        log.level = "warn".into();
    }
    scimtrail_core::telemetry::init(&log);
    match cli.command {
        Command::Topics {
            action: TopicsAction::Ensure,
        } => topics::ensure(&common).await,
        Command::Gen(args) => traffic::run(&common, args).await,
        Command::Tail(args) => tail::run(&common, args).await,
        Command::Trace(args) => trace::run(&common, args).await,
        Command::Backtest(args) => backtest::run(Some(&common), args).await,
        Command::Receive(_) => Ok(()),
    }
}
