//! End-to-end tests: the four services as real processes, two instances each,
//! on a real Kafka broker with three partitions per topic, delivering to a real
//! HTTP receiver. See `harness.rs`.

mod detector;
mod enricher;
mod harness;
mod pipeline;
