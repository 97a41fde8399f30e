//! `scimtrail gen`: synthetic traffic to the raw topic, at a chosen rate, with
//! an optional burst from one principal.

use std::time::{Duration, Instant};

use chrono::Utc;
use rdkafka::error::KafkaError;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use serde_json::Value;

use scimtrail_core::config::CommonConfig;

use crate::gen::{GenConfig, Generator};

#[derive(clap::Args, Debug)]
pub struct GenArgs {
    /// Exchanges per second (ordinary traffic).
    #[arg(long, default_value_t = 5.0)]
    rate: f64,
    /// Stop after this many ordinary exchanges (0: no limit).
    #[arg(long, default_value_t = 0)]
    count: u64,
    /// Stop after this many seconds (0: no limit).
    #[arg(long, default_value_t = 0)]
    duration: u64,
    /// Seed of the generator: the same seed gives the same traffic.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Share of exchanges that fail (4xx/5xx), 0.0 to 1.0.
    #[arg(long, default_value_t = 0.05)]
    failure_ratio: f64,
    /// Principal that makes a burst of changes (e.g. `okta-provisioner`).
    #[arg(long)]
    burst_principal: Option<String>,
    /// Changes in the burst.
    #[arg(long, default_value_t = 30)]
    burst_size: usize,
    /// Event-time span of the burst, in seconds.
    #[arg(long, default_value_t = 20)]
    burst_within: u64,
    /// Ordinary exchanges before the burst.
    #[arg(long, default_value_t = 10)]
    burst_after: u64,
    /// Event time of the first exchange as RFC 3339 (default: now). With an
    /// explicit start, times advance by `--step-ms` per exchange instead of
    /// following the wall clock, so a run is reproducible.
    #[arg(long)]
    start: Option<String>,
    /// Event-time step between exchanges in milliseconds (with `--start`).
    #[arg(long, default_value_t = 1000)]
    step_ms: i64,
    /// Print the records as JSON lines instead of producing them.
    #[arg(long)]
    stdout: bool,
}

pub async fn run(common: &CommonConfig, args: GenArgs) -> anyhow::Result<()> {
    if !args.rate.is_finite() || args.rate <= 0.0 {
        anyhow::bail!("--rate must be positive");
    }
    let (start, step) = match &args.start {
        Some(s) => (
            chrono::DateTime::parse_from_rfc3339(s)
                .map_err(|e| anyhow::anyhow!("--start `{s}` is not RFC 3339: {e}"))?
                .with_timezone(&Utc),
            chrono::Duration::milliseconds(args.step_ms),
        ),
        None => (
            Utc::now(),
            chrono::Duration::milliseconds((1000.0 / args.rate) as i64),
        ),
    };
    let mut generator = Generator::new(GenConfig {
        seed: args.seed,
        start,
        step,
        failure_ratio: args.failure_ratio,
    });
    let producer: Option<FutureProducer> = if args.stdout {
        None
    } else {
        Some(scimtrail_core::kafka::producer_config(&common.kafka)?.create()?)
    };
    let topic = common.topics.raw.clone();
    let interval = Duration::from_secs_f64(1.0 / args.rate);
    let started = Instant::now();
    let mut sent = 0u64;
    let mut burst_done = args.burst_principal.is_none();
    let mut next_at = Instant::now();
    let mut pending = Vec::new();
    // SIGTERM/SIGINT stop the traffic after what was sent is acknowledged.
    let stop = scimtrail_core::shutdown::on_signal();
    while !stop.is_cancelled() {
        if args.count > 0 && sent >= args.count && burst_done {
            break;
        }
        if args.duration > 0 && started.elapsed() >= Duration::from_secs(args.duration) {
            break;
        }
        let burst_due = sent >= args.burst_after || (args.count > 0 && sent >= args.count);
        let batch: Vec<Value> = if !burst_done && burst_due {
            burst_done = true;
            let p = args.burst_principal.clone().unwrap_or_default();
            eprintln!("gen: burst of {} changes by {p}", args.burst_size);
            generator.burst(
                &p,
                args.burst_size,
                chrono::Duration::seconds(args.burst_within as i64),
            )
        } else {
            sent += 1;
            vec![generator.next_event()]
        };
        for record in batch {
            match &producer {
                None => println!("{record}"),
                Some(p) => pending.push(send(p, &topic, &record).await?),
            }
        }
        // Records are paced at --rate whatever their event times are.
        next_at += interval;
        let wait = next_at
            .checked_duration_since(Instant::now())
            .unwrap_or_default();
        // Confirm deliveries while idle (or when many are in flight), so a
        // broker problem surfaces promptly as an error.
        if pending.len() >= 1000 || wait >= Duration::from_millis(20) {
            confirm(&mut pending).await?;
        }
        if !wait.is_zero() {
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stop.cancelled() => {}
            }
        }
    }
    confirm(&mut pending).await?;
    if let Some(p) = &producer {
        p.flush(Duration::from_secs(30))?;
    }
    eprintln!(
        "gen: {sent} exchanges{}",
        if args.burst_principal.is_some() {
            " and a burst"
        } else {
            ""
        }
    );
    Ok(())
}

/// Enqueues one record, waiting while the local queue is full.
async fn send(p: &FutureProducer, topic: &str, record: &Value) -> anyhow::Result<DeliveryFuture> {
    let key = scimtrail_core::schema::raw::record_key(record);
    let payload = record.to_string();
    loop {
        match p.send_result(FutureRecord::to(topic).key(&key).payload(&payload)) {
            Ok(delivery) => return Ok(delivery),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err((e, _)) => anyhow::bail!("produce to {topic}: {e}"),
        }
    }
}

/// Waits until Kafka acknowledged every enqueued record.
async fn confirm(pending: &mut Vec<DeliveryFuture>) -> anyhow::Result<()> {
    for delivery in pending.drain(..) {
        match delivery.await {
            Ok(Ok(_)) => {}
            Ok(Err((e, _))) => anyhow::bail!("record not delivered: {e}"),
            Err(_) => anyhow::bail!("producer closed before delivery"),
        }
    }
    Ok(())
}
