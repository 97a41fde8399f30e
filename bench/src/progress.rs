//! Progress lines on stderr, at most one every two seconds, so a long run
//! shows it is alive without flooding a CI log (a redrawn bar would fill a
//! non-terminal log with control characters).

use std::time::{Duration, Instant};

pub struct Progress {
    label: String,
    unit: &'static str,
    total: u64,
    started: Instant,
    last_at: Instant,
    last_done: u64,
    every: Duration,
}

impl Progress {
    pub fn new(label: impl Into<String>, unit: &'static str, total: u64) -> Self {
        let now = Instant::now();
        Progress {
            label: label.into(),
            unit,
            total,
            started: now,
            last_at: now,
            last_done: 0,
            every: Duration::from_secs(2),
        }
    }

    /// Reports `done` of the total when the last line is old enough.
    pub fn update(&mut self, done: u64) {
        if self.last_at.elapsed() >= self.every {
            self.print(done);
        }
    }

    /// Reports `done` whatever the time since the last line, unless the last
    /// line already said it.
    pub fn finish(&mut self, done: u64) {
        if done != self.last_done || self.last_at == self.started {
            self.print(done);
        }
    }

    fn print(&mut self, done: u64) {
        let now = Instant::now();
        let window = now.duration_since(self.last_at).as_secs_f64();
        let recent = if window > 0.0 {
            done.saturating_sub(self.last_done) as f64 / window
        } else {
            0.0
        };
        let elapsed = now.duration_since(self.started).as_secs_f64();
        let eta = if recent > 0.0 && done < self.total {
            format!(", ~{:.0}s left", (self.total - done) as f64 / recent)
        } else {
            String::new()
        };
        let pct = if self.total > 0 {
            done as f64 * 100.0 / self.total as f64
        } else {
            100.0
        };
        eprintln!(
            "[{}] {done}/{} {} ({pct:.0}%), {recent:.0}/s now, {elapsed:.1}s elapsed{eta}",
            self.label, self.total, self.unit
        );
        self.last_at = now;
        self.last_done = done;
    }
}
