//! `scimtrail-ingest`: validates captured SCIM exchanges and normalizes them into AuditEvents. See the crate's `lib.rs`.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    scimtrail_core::app::service_main(
        "scimtrail-ingest",
        "Validates captured SCIM exchanges and normalizes them into AuditEvents.",
        scimtrail_ingest::check_config,
        scimtrail_ingest::run,
    )
    .await
}
