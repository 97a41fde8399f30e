//! `scimtrail tail TOPIC`: prints records as JSON lines. Avro records are
//! recognised by their framing and decoded as whichever scimtrail type matches;
//! JSON is printed as is; dead letters show their reason headers.

use std::time::{Duration, Instant};

use base64::Engine;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Headers;
use rdkafka::Message;
use serde_json::{json, Value};

use scimtrail_core::config::CommonConfig;
use scimtrail_core::schema::avro::Codecs;
use scimtrail_core::schema::Framing;

#[derive(clap::Args, Debug)]
pub struct TailArgs {
    /// Topic to print.
    topic: String,
    /// Start at the beginning of the topic instead of the end.
    #[arg(long)]
    from_beginning: bool,
    /// Stop after this many records.
    #[arg(long)]
    max: Option<u64>,
    /// Stop when no record arrived for this many seconds.
    #[arg(long)]
    idle_exit: Option<u64>,
    /// Print only the decoded value, not the Kafka coordinates.
    #[arg(long)]
    values_only: bool,
}

pub fn decode_value(codecs: &Codecs, payload: &[u8]) -> Value {
    if let Ok(v) = codecs.enriched.decode(payload) {
        return json!({"type": "EnrichedAuditEvent", "value": v});
    }
    if let Ok(v) = codecs.audit_event.decode(payload) {
        return json!({"type": "AuditEvent", "value": v});
    }
    if let Ok(v) = codecs.alert.decode(payload) {
        return json!({"type": "Alert", "value": v});
    }
    if let Ok(v) = serde_json::from_slice::<Value>(payload) {
        return json!({"type": "json", "value": v});
    }
    match std::str::from_utf8(payload) {
        Ok(s) => json!({"type": "text", "value": s}),
        Err(_) => {
            json!({"type": "bytes", "value": base64::engine::general_purpose::STANDARD.encode(payload)})
        }
    }
}

pub async fn run(common: &CommonConfig, args: TailArgs) -> anyhow::Result<()> {
    let framing = Framing::from_config(&common.schema_registry)?;
    let topics = common.topics.clone();
    let codecs = tokio::task::spawn_blocking(move || Codecs::new(framing, &topics)).await??;
    let group = format!("scimtrail-tail-{}", uuid::Uuid::new_v4());
    let cc = scimtrail_core::kafka::consumer_config(
        &common.kafka,
        &group,
        &[
            ("enable.auto.commit", "false"),
            ("isolation.level", "read_committed"),
            (
                "auto.offset.reset",
                if args.from_beginning {
                    "earliest"
                } else {
                    "latest"
                },
            ),
        ],
    )?;
    let consumer: StreamConsumer = cc.create()?;
    consumer.subscribe(&[&args.topic])?;
    let mut n = 0u64;
    let mut last = Instant::now();
    loop {
        if args.max.is_some_and(|m| n >= m) {
            break;
        }
        let msg = match tokio::time::timeout(Duration::from_millis(500), consumer.recv()).await {
            Err(_) => {
                if args
                    .idle_exit
                    .is_some_and(|s| last.elapsed() >= Duration::from_secs(s))
                {
                    break;
                }
                continue;
            }
            Ok(Err(e)) => {
                eprintln!("tail: {e}");
                continue;
            }
            Ok(Ok(m)) => m,
        };
        last = Instant::now();
        n += 1;
        let decoded = decode_value(&codecs, msg.payload().unwrap_or_default());
        let line = if args.values_only {
            decoded
        } else {
            let headers: serde_json::Map<String, Value> = msg
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|x| {
                            (
                                x.key.to_string(),
                                Value::String(
                                    String::from_utf8_lossy(x.value.unwrap_or_default())
                                        .into_owned(),
                                ),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            json!({
                "topic": msg.topic(),
                "partition": msg.partition(),
                "offset": msg.offset(),
                "key": msg.key().map(|k| String::from_utf8_lossy(k).into_owned()),
                "headers": headers,
                "decoded": decoded,
            })
        };
        println!("{line}");
    }
    Ok(())
}
