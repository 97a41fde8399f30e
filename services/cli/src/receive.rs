//! `scimtrail receive`: a webhook receiver for local use and demos. Prints each
//! request as one JSON line on stdout and answers 200.

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, Uri};
use axum::Router;
use serde_json::{json, Value};

#[derive(clap::Args, Debug)]
pub struct ReceiveArgs {
    /// Port to listen on.
    #[arg(long, default_value_t = 8088)]
    port: u16,
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1")]
    bind: std::net::IpAddr,
}

async fn handle(method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> &'static str {
    let parsed: Value = serde_json::from_slice(&body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
    let header = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let line = json!({
        "received_at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "method": method.as_str(),
        "path": uri.path(),
        "webhook_id": header("webhook-id"),
        "body": parsed,
    });
    println!("{line}");
    "ok"
}

pub async fn run(args: ReceiveArgs) -> anyhow::Result<()> {
    let addr = SocketAddr::new(args.bind, args.port);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    eprintln!("receive: listening on http://{}", listener.local_addr()?);
    let app = Router::new().fallback(handle);
    axum::serve(listener, app)
        .with_graceful_shutdown(scimtrail_core::shutdown::on_signal().cancelled_owned())
        .await?;
    Ok(())
}
