//! `scimtrail backtest --rules FILE`: runs the detector's rules engine over
//! the enriched topic (or an exported file) and prints the alerts it would
//! have raised — how an operator tests a rule before enabling it.
//!
//! The engine is the detector's own ([`scimtrail_detector::rules::Engine`]),
//! fed every event once per partitioning its rules use, as the detector's
//! repartition task does. Alerts that wait on event time are flushed at the
//! end of the input, so the last burst of an export is reported too.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::scan::Scan;
use scimtrail_core::config::CommonConfig;
use scimtrail_core::schema::avro::Codecs;
use scimtrail_core::schema::{Alert, EnrichedAuditEvent, Framing};
use scimtrail_detector::rules::{Engine, EngineMetrics, EngineOptions, Partitioning, RuleSet};

#[derive(clap::Args, Debug)]
pub struct BacktestArgs {
    /// Rules file to test (docs/rules.md); default: the built-in default pack.
    #[arg(long)]
    rules: Option<PathBuf>,
    /// Read this export instead of Kafka: JSON lines of EnrichedAuditEvents,
    /// as written by `scimtrail tail audit.enriched.v1 --values-only` or plain.
    #[arg(long)]
    file: Option<PathBuf>,
    /// Only events at or after this event time (RFC 3339).
    #[arg(long)]
    from: Option<chrono::DateTime<chrono::Utc>>,
    /// Only events at or before this event time (RFC 3339).
    #[arg(long)]
    to: Option<chrono::DateTime<chrono::Utc>>,
    /// The detector's `allowed_lateness_secs` (fractions allowed).
    #[arg(long, default_value_t = 2.0)]
    lateness_secs: f64,
    /// Print JSON lines (one alert each) instead of a table.
    #[arg(long)]
    json: bool,
}

impl BacktestArgs {
    pub fn has_file(&self) -> bool {
        self.file.is_some()
    }
}

/// Feeds events to the engine and collects alerts.
pub struct Backtest {
    engine: Engine,
    partitionings: Vec<Partitioning>,
    alerts: Vec<Alert>,
    events: u64,
    since_commit: u64,
    /// Newest event time per source (enriched) partition. As in the
    /// detector, the engine's clock is the minimum over them: reading a
    /// topic interleaves its partitions unevenly, and an event of a partition
    /// read behind the others is not late.
    sources: BTreeMap<i32, i64>,
    /// Sources whose input ended: they no longer hold the clock back.
    done: std::collections::BTreeSet<i32>,
    /// How many sources the input has: until each has delivered, there is
    /// no clock (the first to deliver may be far ahead of the others).
    expected: usize,
}

impl Backtest {
    pub fn new(rules: RuleSet, lateness_secs: f64, expected_sources: usize) -> Self {
        let partitionings = rules.partitionings();
        let engine = Engine::new(
            Arc::new(rules),
            EngineOptions {
                allowed_lateness_ms: (lateness_secs.max(0.0) * 1000.0).round() as i64,
                ..EngineOptions::default()
            },
            EngineMetrics::new(&prometheus::Registry::new()),
        );
        Backtest {
            engine,
            partitionings,
            alerts: Vec::new(),
            events: 0,
            since_commit: 0,
            sources: BTreeMap::new(),
            done: Default::default(),
            expected: expected_sources,
        }
    }

    pub fn feed(&mut self, event: &EnrichedAuditEvent) {
        let time = event.event.event_time;
        let source = event.chain.as_ref().map_or(-1, |c| c.partition);
        let newest = self.sources.entry(source).or_insert(time);
        *newest = (*newest).max(time);
        let clock = self.clock().unwrap_or(i64::MIN);
        for p in &self.partitionings {
            if let Some(key) = p.key_of(event) {
                let alerts = self.engine.process_at(0, &p.id, &key, event, clock);
                self.alerts.extend(alerts);
            }
        }
        self.events += 1;
        self.since_commit += 1;
        if self.since_commit >= 1000 {
            self.engine.commit();
            self.engine.take_changes();
            self.since_commit = 0;
        }
    }

    /// The engine's clock: the minimum over the sources still delivering,
    /// once all have been heard from.
    fn clock(&self) -> Option<i64> {
        let heard = self.sources.len()
            + self
                .done
                .iter()
                .filter(|p| !self.sources.contains_key(p))
                .count();
        if heard < self.expected {
            return None;
        }
        self.sources
            .iter()
            .filter(|(p, _)| !self.done.contains(p))
            .map(|(_, t)| *t)
            .min()
    }

    /// Source partition `partition` has no more events.
    pub fn source_done(&mut self, partition: i32) {
        self.done.insert(partition);
        if let Some(clock) = self.clock() {
            for p in &self.partitionings {
                let alerts = self.engine.advance_watermark(0, &p.id, clock);
                self.alerts.extend(alerts);
            }
        }
    }

    /// Flushes alerts waiting on event time, and returns all alerts.
    pub fn finish(mut self) -> Vec<Alert> {
        for p in &self.partitionings {
            let alerts = self.engine.advance_watermark(0, &p.id, i64::MAX / 4);
            self.alerts.extend(alerts);
        }
        self.engine.commit();
        self.alerts
    }
}

pub async fn run(common: Option<&CommonConfig>, args: BacktestArgs) -> anyhow::Result<()> {
    let rules = match &args.rules {
        Some(path) => RuleSet::load(path)?,
        None => RuleSet::default_pack(),
    };
    let started = Instant::now();
    let from = args.from.map(|t| t.timestamp_millis());
    let to = args.to.map(|t| t.timestamp_millis());
    let in_range = move |e: &EnrichedAuditEvent| {
        from.is_none_or(|f| e.event.event_time >= f) && to.is_none_or(|t| e.event.event_time <= t)
    };
    let mut bt = Backtest::new(rules, args.lateness_secs, 0);
    let mut skipped = 0u64;
    let progress = indicatif::ProgressBar::new_spinner();
    progress.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {pos} events, {per_sec} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    progress.enable_steady_tick(Duration::from_millis(200));
    match (&args.file, common) {
        (Some(path), _) => {
            // An export interleaves the topic's partitions in whatever order
            // they were read: learn which partitions it holds first, so no
            // event is judged against a clock that only one of them set.
            let open = || {
                std::fs::File::open(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
            };
            let mut sources = std::collections::BTreeSet::new();
            for line in std::io::BufReader::new(open()?).lines() {
                if let Ok(e) = parse_export_line(&line?) {
                    sources.insert(e.chain.as_ref().map_or(-1, |c| c.partition));
                }
            }
            bt.expected = sources.len();
            let file = open()?;
            for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
                let line = line?;
                if line.trim().is_empty() {
                    continue;
                }
                // Exports of a topic can hold other records (dead letters,
                // junk a test planted): skip them, say how many.
                let event = match parse_export_line(&line) {
                    Ok(e) => e,
                    Err(e) => {
                        skipped += 1;
                        if skipped <= 3 {
                            progress.suspend(|| {
                                eprintln!("{}:{}: skipped: {e}", path.display(), n + 1)
                            });
                        }
                        continue;
                    }
                };
                if in_range(&event) {
                    bt.feed(&event);
                    progress.inc(1);
                }
            }
        }
        (None, Some(common)) => {
            let framing = Framing::from_config(&common.schema_registry)?;
            let topics = common.topics.clone();
            let codecs =
                tokio::task::spawn_blocking(move || Codecs::new(framing, &topics)).await??;
            let common = common.clone();
            let pb = progress.clone();
            bt = tokio::task::spawn_blocking(move || {
                crate::scan::enriched_topic(&common, &codecs, args.from, "backtest", &mut |s| {
                    match s {
                        Scan::Partitions(n) => bt.expected = n,
                        Scan::Event(e) => {
                            if in_range(e) {
                                bt.feed(e);
                                pb.inc(1);
                            }
                        }
                        Scan::Done(p) => bt.source_done(p),
                    }
                })
                .map(|_| bt)
            })
            .await??;
        }
        (None, None) => anyhow::bail!("no Kafka configuration and no --file"),
    }
    if skipped > 0 {
        eprintln!("{skipped} line(s) were not EnrichedAuditEvents and were skipped");
    }
    let events = bt.events;
    let alerts = bt.finish();
    progress.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    for a in &alerts {
        if args.json {
            println!("{}", serde_json::to_string(a)?);
        } else {
            let when = chrono::DateTime::from_timestamp_millis(a.last_event_time)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                .unwrap_or_default();
            let key: Vec<String> = a
                .group_key
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            println!(
                "{when}  {:<8} {:<34} {:<40} {}",
                format!("{:?}", a.severity).to_uppercase(),
                a.rule_id,
                key.join(","),
                a.summary
            );
        }
    }
    let mut by_rule: BTreeMap<&str, usize> = BTreeMap::new();
    for a in &alerts {
        *by_rule.entry(a.rule_id.as_str()).or_default() += 1;
    }
    eprintln!(
        "{} alert(s) from {events} events in {secs:.1}s ({:.0} events/s){}",
        alerts.len(),
        events as f64 / secs.max(1e-9),
        if by_rule.is_empty() {
            String::new()
        } else {
            format!(
                ": {}",
                by_rule
                    .iter()
                    .map(|(r, n)| format!("{r} {n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    );
    Ok(())
}

/// One line of an export: an EnrichedAuditEvent as JSON, possibly wrapped as
/// `scimtrail tail` prints it.
pub fn parse_export_line(line: &str) -> anyhow::Result<EnrichedAuditEvent> {
    let v: Value = serde_json::from_str(line)?;
    let inner = if let Some(d) = v.get("decoded") {
        d.get("value").cloned().unwrap_or(Value::Null)
    } else if v.get("type").is_some() && v.get("value").is_some() {
        v["value"].clone()
    } else {
        v
    };
    Ok(serde_json::from_value(inner)?)
}
