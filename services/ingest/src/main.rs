use std::path::PathBuf;

use clap::Parser;

/// scimtrail-ingest: validates captured SCIM exchanges and normalizes them into AuditEvents.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// TOML configuration file (also `SCIMTRAIL_CONFIG`); env vars `SCIMTRAIL__…` override it.
    #[arg(long)]
    config: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    scimtrail_ingest::run(args.config).await
}
