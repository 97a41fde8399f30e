use std::path::PathBuf;

use clap::Parser;

/// scimtrail-enricher: attribute-level before/after for every SCIM change.
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
    scimtrail_enricher::run(args.config).await
}
