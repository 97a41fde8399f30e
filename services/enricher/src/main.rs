//! `scimtrail-enricher`: computes the attribute-level before/after of every SCIM change. See the crate's `lib.rs`.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    scimtrail_core::app::service_main(
        "scimtrail-enricher",
        "Computes the attribute-level before/after of every SCIM change.",
        scimtrail_enricher::check_config,
        scimtrail_enricher::run,
    )
    .await
}
