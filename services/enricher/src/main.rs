use std::path::PathBuf;

use clap::Parser;

/// scimtrail-enricher: attribute-level before/after for every SCIM change.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// TOML configuration file (also `SCIMTRAIL_CONFIG`); env vars `SCIMTRAIL__…` override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Validate the configuration and exit (0: valid) without connecting to anything.
    #[arg(long)]
    check_config: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.check_config {
        return scimtrail_enricher::check_config(args.config);
    }
    scimtrail_enricher::run(args.config).await
}
