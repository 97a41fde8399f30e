//! Shared plumbing for every scimtrail service.
//!
//! A service crate holds only its stage; everything a stage needs to run as a
//! well-behaved member of a Kafka consumer group lives here:
//!
//! - [`config`]: typed, layered configuration (defaults → TOML file → `SCIMTRAIL__…` env vars),
//!   validated once at start-up with errors that name the key;
//! - [`telemetry`]: structured JSON logs via `tracing`;
//! - [`metrics`]: the Prometheus registry and the metric families shared by all stages;
//! - [`admin`]: the `/metrics`, `/healthz`, `/readyz` HTTP server;
//! - [`shutdown`]: SIGTERM/SIGINT handling;
//! - [`kafka`]: client construction, librdkafka pass-through, topic management;
//! - [`runner`]: the exactly-once consume → transform → produce loop and the [`runner::Stage`] trait;
//! - [`state`]: keyed stage state that rolls back with an aborted transaction;
//! - [`schema`]: the wire contract — raw JSON records, Avro types and their codec;
//! - [`scim`]: SCIM 2.0 semantics — filters, PATCH paths, resource schemas and the
//!   RFC 7644 PATCH engine, as pure functions over JSON.

pub mod admin;
pub mod app;
pub mod chain;
pub mod config;
pub mod dlq;
pub mod kafka;
pub mod metrics;
pub mod reload;
pub mod runner;
pub mod schema;
pub mod scim;
pub mod shutdown;
pub mod state;
pub mod telemetry;
