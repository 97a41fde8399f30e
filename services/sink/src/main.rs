//! `scimtrail-sink`: delivers alerts to webhooks, retrying until they are acknowledged. See the crate's `lib.rs`.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    scimtrail_core::app::service_main(
        "scimtrail-sink",
        "Delivers alerts to webhooks, retrying until they are acknowledged.",
        scimtrail_sink::check_config,
        scimtrail_sink::run,
    )
    .await
}
