//! Files that services reload while they run (the enricher's role directory,
//! the detector's rules).
//!
//! A [`Reloadable`] holds the value in use; [`Reloadable::watch`] re-reads
//! the file when its modification time changes (and, if asked, on SIGHUP).
//! A file that loads replaces the value whole; one that does not is
//! **rejected** with an error log line naming the problem and
//! `<metric>{result="rejected"}`, and the value in use stays: a typo never
//! leaves a service without its directory or its rules.

use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use prometheus::IntCounterVec;
use tokio_util::sync::CancellationToken;

/// The value in use, swapped whole on reload; cheap to clone and share
/// between tasks.
#[derive(Debug)]
pub struct Reloadable<T> {
    current: Arc<RwLock<Arc<T>>>,
    /// Bumped on every replacement, so a hot loop can check for a new value
    /// without taking the lock.
    generation: Arc<AtomicU64>,
}

impl<T> Clone for Reloadable<T> {
    fn clone(&self) -> Self {
        Reloadable {
            current: Arc::clone(&self.current),
            generation: Arc::clone(&self.generation),
        }
    }
}

impl<T: Default + Send + Sync + 'static> Default for Reloadable<T> {
    fn default() -> Self {
        Reloadable::new(T::default())
    }
}

/// How a file is watched.
#[derive(Debug, Clone)]
pub struct Watch {
    /// What the file is, for log lines: `"role directory"`, `"rules file"`.
    pub what: &'static str,
    /// How often its modification time is checked.
    pub every: Duration,
    /// Also reload on SIGHUP, changed or not.
    pub on_sighup: bool,
}

impl<T: Send + Sync + 'static> Reloadable<T> {
    pub fn new(value: T) -> Self {
        Reloadable {
            current: Arc::new(RwLock::new(Arc::new(value))),
            generation: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The value in use.
    pub fn current(&self) -> Arc<T> {
        self.snapshot().0
    }

    /// The value in use and its generation, read together.
    pub fn snapshot(&self) -> (Arc<T>, u64) {
        // A writer cannot panic while holding the lock (it only swaps an
        // Arc), so a poisoned lock still holds a whole value.
        let guard = match self.current.read() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        (Arc::clone(&guard), self.generation.load(Ordering::Acquire))
    }

    /// The value in use if it was replaced since generation `*seen`, which
    /// then becomes the current generation: a stage's per-record check.
    pub fn if_changed(&self, seen: &mut u64) -> Option<Arc<T>> {
        if !self.changed_since(*seen) {
            return None;
        }
        let (value, generation) = self.snapshot();
        *seen = generation;
        Some(value)
    }

    /// Has the value been replaced since generation `seen`?
    pub fn changed_since(&self, seen: u64) -> bool {
        self.generation.load(Ordering::Acquire) != seen
    }

    pub fn replace(&self, value: T) {
        let mut guard = match self.current.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        *guard = Arc::new(value);
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Loads `path` with `load`: replaces the value if it loads, else keeps
    /// it; logs and counts the outcome. Returns whether it was replaced.
    pub fn reload<E: Display>(
        &self,
        path: &Path,
        what: &str,
        load: impl Fn(&Path) -> Result<T, E>,
        reloads: &IntCounterVec,
    ) -> bool {
        match load(path) {
            Ok(value) => {
                tracing::info!(message = %format!("{what} reloaded"), file = %path.display());
                self.replace(value);
                reloads.with_label_values(&["ok"]).inc();
                true
            }
            Err(e) => {
                tracing::error!(
                    message = %format!("{what} rejected; the one in use stays"),
                    file = %path.display(),
                    error = %e,
                );
                reloads.with_label_values(&["rejected"]).inc();
                false
            }
        }
    }

    /// Reloads `path` when its modification time changes (or on SIGHUP with
    /// `watch.on_sighup`), until `shutdown`. `reloads` counts outcomes by
    /// `result` (`ok`, `rejected`).
    pub fn watch<E: Display + 'static>(
        &self,
        path: PathBuf,
        watch: Watch,
        load: fn(&Path) -> Result<T, E>,
        reloads: IntCounterVec,
        shutdown: CancellationToken,
    ) -> std::io::Result<tokio::task::JoinHandle<()>> {
        let value = self.clone();
        let mut hup = if watch.on_sighup {
            Some(tokio::signal::unix::signal(
                tokio::signal::unix::SignalKind::hangup(),
            )?)
        } else {
            None
        };
        // The file as loaded at start-up: a change made before the task
        // first runs is still a change.
        let mut seen = modified(&path);
        Ok(tokio::spawn(async move {
            loop {
                let sighup = async {
                    match hup.as_mut() {
                        Some(h) => h.recv().await,
                        None => std::future::pending().await,
                    }
                };
                let forced = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(watch.every) => false,
                    _ = sighup => true,
                };
                let now = modified(&path);
                if !forced && now == seen {
                    continue;
                }
                seen = now;
                value.reload(&path, watch.what, load, &reloads);
            }
        }))
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(path: &Path) -> Result<u32, String> {
        let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
        text.trim().parse().map_err(|e| format!("{e}"))
    }

    #[tokio::test]
    async fn reloads_on_change_and_keeps_the_value_on_a_bad_file() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("n");
        std::fs::write(&path, "1").expect("write");
        let value = Reloadable::new(parse(&path).expect("parses"));
        let reloads =
            IntCounterVec::new(prometheus::Opts::new("r", "r"), &["result"]).expect("metric");
        let stop = CancellationToken::new();
        let task = value
            .watch(
                path.clone(),
                Watch {
                    what: "number",
                    every: Duration::from_millis(20),
                    on_sighup: false,
                },
                parse,
                reloads.clone(),
                stop.clone(),
            )
            .expect("watch");
        // Modification times can be coarse: make each write visibly newer.
        let touch = |text: &str, secs: u64| {
            std::fs::write(&path, text).expect("write");
            let f = std::fs::File::options()
                .write(true)
                .open(&path)
                .expect("open");
            f.set_modified(SystemTime::now() + Duration::from_secs(secs))
                .expect("mtime");
        };
        let wait_for = |result: &'static str| {
            let reloads = reloads.clone();
            async move {
                for _ in 0..300 {
                    if reloads.with_label_values(&[result]).get() >= 1 {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                panic!("no {result} reload");
            }
        };
        let (_, generation) = value.snapshot();
        touch("2", 10);
        wait_for("ok").await;
        assert_eq!(*value.current(), 2);
        assert!(value.changed_since(generation));
        let (_, generation) = value.snapshot();
        touch("two", 20);
        wait_for("rejected").await;
        assert_eq!(*value.current(), 2);
        assert!(!value.changed_since(generation));
        stop.cancel();
        task.await.expect("task ends on shutdown");
    }
}
