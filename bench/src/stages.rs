//! The stages the throughput benchmark runs: the passthrough baseline, and a
//! wrapper that times any stage without changing what it does.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use scimtrail_core::runner::{InputRecord, Output, Stage, StageError, Tail};

/// The baseline: each record copied unchanged (key, value) to `output_topic`
/// on the partition number it was read from, as the enricher writes its
/// events. Run by the same exactly-once runner with the same client
/// settings, it costs everything the enricher costs except enriching: the
/// consumer, the transactions, the producer and the broker.
pub struct Passthrough {
    output_topic: String,
}

impl Passthrough {
    pub fn new(output_topic: String) -> Self {
        Passthrough { output_topic }
    }
}

impl Stage for Passthrough {
    fn process(
        &mut self,
        record: &InputRecord<'_>,
        out: &mut Vec<Output>,
    ) -> Result<(), StageError> {
        out.push(Output {
            topic: self.output_topic.clone(),
            key: record.key.map(<[u8]>::to_vec),
            payload: record.payload.map(<[u8]>::to_vec),
            partition: Some(record.partition),
            headers: Vec::new(),
        });
        Ok(())
    }
}

/// Time a stage spent, shared between the runner's thread and the bench.
#[derive(Debug, Default)]
pub struct StageClock {
    process_ns: AtomicU64,
    processed: AtomicU64,
    outputs: AtomicU64,
    output_bytes: AtomicU64,
    resume_ns: AtomicU64,
}

/// A snapshot of a [`StageClock`].
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct StageTimes {
    /// Calls of `Stage::process` (records processed, including any processed
    /// again after an aborted transaction).
    pub processed: u64,
    /// Wall time inside `Stage::process`, in seconds.
    pub process_seconds: f64,
    /// Records the stage asked the runner to produce, and their value bytes.
    pub outputs: u64,
    pub output_bytes: u64,
    /// Wall time inside `Stage::resume` (state restore at assignment).
    pub resume_seconds: f64,
}

impl StageClock {
    pub fn snapshot(&self) -> StageTimes {
        let secs = |a: &AtomicU64| a.load(Ordering::Relaxed) as f64 / 1e9;
        StageTimes {
            processed: self.processed.load(Ordering::Relaxed),
            process_seconds: secs(&self.process_ns),
            outputs: self.outputs.load(Ordering::Relaxed),
            output_bytes: self.output_bytes.load(Ordering::Relaxed),
            resume_seconds: secs(&self.resume_ns),
        }
    }
}

/// `S`, with the time spent in `process` and `resume` counted in a
/// [`StageClock`]. Every other hook (`idle` included: the detector's rules
/// stage emits alerts there) is passed through untouched, so the stage
/// behaves exactly as it does in its service; the clock costs two
/// `Instant::now()` per record (tens of nanoseconds).
pub struct Timed<S> {
    inner: S,
    clock: Arc<StageClock>,
}

impl<S: Stage> Timed<S> {
    pub fn new(inner: S) -> (Self, Arc<StageClock>) {
        let clock = Arc::new(StageClock::default());
        (
            Timed {
                inner,
                clock: clock.clone(),
            },
            clock,
        )
    }
}

fn nanos_since(t: Instant) -> u64 {
    u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

impl<S: Stage> Stage for Timed<S> {
    fn process(
        &mut self,
        record: &InputRecord<'_>,
        out: &mut Vec<Output>,
    ) -> Result<(), StageError> {
        let before = out.len();
        let started = Instant::now();
        let result = self.inner.process(record, out);
        self.clock
            .process_ns
            .fetch_add(nanos_since(started), Ordering::Relaxed);
        self.clock.processed.fetch_add(1, Ordering::Relaxed);
        let added = out.get(before..).unwrap_or_default();
        self.clock
            .outputs
            .fetch_add(added.len() as u64, Ordering::Relaxed);
        let bytes: usize = added
            .iter()
            .map(|o| o.payload.as_ref().map_or(0, Vec::len))
            .sum();
        self.clock
            .output_bytes
            .fetch_add(bytes as u64, Ordering::Relaxed);
        result
    }

    fn commit(&mut self) {
        self.inner.commit();
    }

    fn abort(&mut self) {
        self.inner.abort();
    }

    fn partitions_assigned(&mut self, partitions: &[(String, i32)]) {
        self.inner.partitions_assigned(partitions);
    }

    fn output_rejected(&mut self) {
        self.inner.output_rejected();
    }

    fn resumes_from(&self) -> Option<String> {
        self.inner.resumes_from()
    }

    fn resume(&mut self, partition: i32, tail: &mut dyn Tail) -> Result<(), String> {
        let started = Instant::now();
        let result = self.inner.resume(partition, tail);
        self.clock
            .resume_ns
            .fetch_add(nanos_since(started), Ordering::Relaxed);
        result
    }

    fn partitions_revoked(&mut self, partitions: &[(String, i32)]) {
        self.inner.partitions_revoked(partitions);
    }

    fn idle(&mut self, out: &mut Vec<Output>) {
        self.inner.idle(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record<'a>(partition: i32, key: &'a [u8], payload: &'a [u8]) -> InputRecord<'a> {
        InputRecord {
            topic: "in",
            partition,
            offset: 7,
            key: Some(key),
            payload: Some(payload),
            timestamp: None,
        }
    }

    #[test]
    fn passthrough_copies_key_and_value_to_the_same_partition() {
        let mut stage = Passthrough::new("out".into());
        let mut out = Vec::new();
        stage
            .process(&record(2, b"k", b"value"), &mut out)
            .expect("processed");
        assert_eq!(
            out,
            vec![Output {
                topic: "out".into(),
                key: Some(b"k".to_vec()),
                payload: Some(b"value".to_vec()),
                partition: Some(2),
                headers: Vec::new(),
            }]
        );
    }

    /// Emits one record from `idle`, as the detector's rules stage does.
    struct Idler;

    impl Stage for Idler {
        fn process(&mut self, _: &InputRecord<'_>, _: &mut Vec<Output>) -> Result<(), StageError> {
            Ok(())
        }

        fn idle(&mut self, out: &mut Vec<Output>) {
            out.push(Output::keyed("alerts", "k", b"late alert".to_vec()));
        }
    }

    #[test]
    fn timed_passes_idle_through() {
        let (mut stage, _) = Timed::new(Idler);
        let mut out = Vec::new();
        stage.idle(&mut out);
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn timed_counts_records_and_only_the_outputs_of_each_call() {
        let (mut stage, clock) = Timed::new(Passthrough::new("out".into()));
        let mut out = Vec::new();
        stage
            .process(&record(0, b"a", b"12345"), &mut out)
            .expect("first");
        stage
            .process(&record(1, b"b", b"123"), &mut out)
            .expect("second");
        let t = clock.snapshot();
        assert_eq!(t.processed, 2);
        assert_eq!(t.outputs, 2);
        assert_eq!(t.output_bytes, 8);
        assert_eq!(out.len(), 2);
    }
}
