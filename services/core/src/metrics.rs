//! Prometheus metrics. Names follow `scimtrail_<stage>_<noun>_<unit>`, counters
//! end in `_total`, and label values come from bounded sets (topic names, outcome
//! enums), never from event data.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// Creates a registry for one service.
pub fn registry() -> Registry {
    Registry::new()
}

/// Renders the registry in the Prometheus text format.
pub fn render(registry: &Registry) -> String {
    let mut buf = Vec::new();
    let encoder = TextEncoder::new();
    if let Err(e) = encoder.encode(&registry.gather(), &mut buf) {
        tracing::error!(message = "cannot encode metrics", error = %e);
    }
    String::from_utf8(buf).unwrap_or_default()
}

fn name(stage: &str, noun: &str) -> String {
    format!("scimtrail_{stage}_{noun}")
}

/// Registers a collector; a duplicate registration is a programming error that
/// is reported once rather than crashing a running service.
pub fn register<C: prometheus::core::Collector + Clone + 'static>(registry: &Registry, c: C) -> C {
    if let Err(e) = registry.register(Box::new(c.clone())) {
        tracing::error!(message = "metric registered twice", error = %e);
    }
    c
}

/// Metrics of one consume → transform → produce loop ("task"). A service running
/// several loops (the detector) distinguishes them by the `task` label.
#[derive(Clone)]
pub struct RunnerMetrics {
    pub consumed: IntCounterVec,
    pub produced: IntCounterVec,
    pub dead_letters: IntCounterVec,
    pub transactions: IntCounterVec,
    pub batch_seconds: HistogramVec,
    pub rebalances: IntCounterVec,
    pub assigned_partitions: IntGaugeVec,
    pub backpressure: IntGaugeVec,
    pub consumer_lag: IntGaugeVec,
    pub record_latency: HistogramVec,
}

impl RunnerMetrics {
    pub fn new(registry: &Registry, stage: &str) -> Self {
        let counter = |noun: &str, help: &str, labels: &[&str]| {
            register(
                registry,
                IntCounterVec::new(Opts::new(name(stage, noun), help), labels)
                    .unwrap_or_else(|e| panic!("static metric definition {noun}: {e}")),
            )
        };
        let gauge = |noun: &str, help: &str| {
            register(
                registry,
                IntGaugeVec::new(Opts::new(name(stage, noun), help), &["task"])
                    .unwrap_or_else(|e| panic!("static metric definition {noun}: {e}")),
            )
        };
        RunnerMetrics {
            consumed: counter(
                "records_consumed_total",
                "Records read from the input topics.",
                &["task", "topic"],
            ),
            produced: counter(
                "records_produced_total",
                "Records written to output topics, counted when their transaction commits.",
                &["task", "topic"],
            ),
            dead_letters: counter(
                "dead_letters_total",
                "Input records routed to the dead-letter topic, by reason kind.",
                &["task", "reason"],
            ),
            transactions: counter(
                "transactions_total",
                "Kafka transactions by outcome (committed, aborted).",
                &["task", "outcome"],
            ),
            batch_seconds: register(
                registry,
                HistogramVec::new(
                    HistogramOpts::new(
                        name(stage, "batch_duration_seconds"),
                        "Time from the first record of a batch to its transaction's commit.",
                    )
                    .buckets(vec![
                        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                    ]),
                    &["task"],
                )
                .unwrap_or_else(|e| panic!("static metric definition: {e}")),
            ),
            rebalances: counter(
                "rebalances_total",
                "Consumer group rebalances seen, by kind (assign, revoke).",
                &["task", "kind"],
            ),
            assigned_partitions: gauge(
                "assigned_partitions",
                "Input partitions currently assigned to this instance.",
            ),
            backpressure: gauge(
                "backpressure",
                "1 while the producer queue is full and the loop waits for Kafka.",
            ),
            consumer_lag: consumer_lag_gauge(registry, stage),
            record_latency: record_latency_histogram(registry, stage),
        }
    }
}

/// `scimtrail_<stage>_consumer_lag{task,topic,partition}`: records between the
/// consumer's position and the end of the partition (the last stable offset for
/// read_committed consumers), from librdkafka's statistics.
pub fn consumer_lag_gauge(registry: &Registry, stage: &str) -> IntGaugeVec {
    register(
        registry,
        IntGaugeVec::new(
            Opts::new(
                name(stage, "consumer_lag"),
                "Records not yet consumed per assigned partition (librdkafka statistics).",
            ),
            &["task", "topic", "partition"],
        )
        .unwrap_or_else(|e| panic!("static metric consumer_lag: {e}")),
    )
}

/// `scimtrail_<stage>_record_latency_seconds{task}`: from an input record's Kafka
/// timestamp to the commit (or delivery) of what it produced; summed over the
/// stages, the pipeline's end-to-end latency.
pub fn record_latency_histogram(registry: &Registry, stage: &str) -> HistogramVec {
    register(
        registry,
        HistogramVec::new(
            HistogramOpts::new(
                name(stage, "record_latency_seconds"),
                "Time from an input record's Kafka timestamp to the commit or delivery of its output.",
            )
            .buckets(vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0]),
            &["task"],
        )
        .unwrap_or_else(|e| panic!("static metric record_latency_seconds: {e}")),
    )
}

/// Updates the lag gauge from a librdkafka statistics report. Partitions the
/// consumer does not fetch (lag unknown) are removed, so a revoked partition
/// does not keep reporting its last lag.
pub fn record_consumer_lag(gauge: &IntGaugeVec, task: &str, stats: &rdkafka::Statistics) {
    for (topic, t) in &stats.topics {
        for (id, p) in &t.partitions {
            if *id < 0 {
                continue; // librdkafka's internal "unassigned" partition
            }
            let partition = id.to_string();
            // Transactional loops commit through the producer, so the
            // consumer's own committed offset is only known from the last
            // assignment; the stored offset (set after each commit) is current.
            let lag = [p.consumer_lag, p.consumer_lag_stored]
                .into_iter()
                .filter(|l| *l >= 0)
                .min();
            if let (Some(lag), "active") = (lag, p.fetch_state.as_str()) {
                gauge
                    .with_label_values(&[task, topic.as_str(), partition.as_str()])
                    .set(lag);
            } else {
                let _ = gauge.remove_label_values(&[task, topic.as_str(), partition.as_str()]);
            }
        }
    }
}

/// `scimtrail_build_info{service,version} 1`.
pub fn build_info(registry: &Registry, service: &str) {
    let g = register(
        registry,
        IntGaugeVec::new(
            Opts::new(
                "scimtrail_build_info",
                "Always 1; labels carry the service and its version.",
            ),
            &["service", "version"],
        )
        .unwrap_or_else(|e| panic!("static metric build_info: {e}")),
    );
    g.with_label_values(&[service, env!("CARGO_PKG_VERSION")])
        .set(1);
}

/// A gauge without labels.
pub fn gauge(registry: &Registry, stage: &str, noun: &str, help: &str) -> IntGauge {
    register(
        registry,
        IntGauge::new(name(stage, noun), help)
            .unwrap_or_else(|e| panic!("static metric {noun}: {e}")),
    )
}

/// A counter family.
pub fn counter_vec(
    registry: &Registry,
    stage: &str,
    noun: &str,
    help: &str,
    labels: &[&str],
) -> IntCounterVec {
    register(
        registry,
        IntCounterVec::new(Opts::new(name(stage, noun), help), labels)
            .unwrap_or_else(|e| panic!("static metric {noun}: {e}")),
    )
}

/// A histogram without labels.
pub fn histogram(
    registry: &Registry,
    stage: &str,
    noun: &str,
    help: &str,
    buckets: Vec<f64>,
) -> Histogram {
    register(
        registry,
        Histogram::with_opts(HistogramOpts::new(name(stage, noun), help).buckets(buckets))
            .unwrap_or_else(|e| panic!("static metric {noun}: {e}")),
    )
}

/// A counter without labels.
pub fn counter(registry: &Registry, stage: &str, noun: &str, help: &str) -> prometheus::IntCounter {
    register(
        registry,
        prometheus::IntCounter::new(name(stage, noun), help)
            .unwrap_or_else(|e| panic!("static metric {noun}: {e}")),
    )
}
