use std::path::PathBuf;

use clap::Parser;

/// scimtrail-detector: real-time rules over the enriched audit stream.
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
    scimtrail_detector::run(args.config).await
}
