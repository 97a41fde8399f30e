//! `scimtrail-detector`: raises alerts from real-time rules over the enriched audit stream. See the crate's `lib.rs`.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    scimtrail_core::app::service_main(
        "scimtrail-detector",
        "Raises alerts from real-time rules over the enriched audit stream.",
        scimtrail_detector::check_config,
        scimtrail_detector::run,
    )
    .await
}
