//! The admin HTTP server every service runs: `/metrics` (Prometheus text format),
//! `/healthz` (the process and its loops are alive) and `/readyz` (the service
//! has joined its consumer group and is not blocked on Kafka).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use prometheus::Registry;
use tokio_util::sync::CancellationToken;

/// How long a loop may go without a heartbeat before `/healthz` fails. Loops
/// beat at least once per poll (≤ 1 s); a minute covers a slow commit.
const STALL_AFTER_MS: i64 = 60_000;

/// Health of one loop, shared between the loop's thread and the admin server.
#[derive(Debug)]
pub struct TaskHealth {
    name: String,
    ready: AtomicBool,
    backpressure: AtomicBool,
    last_beat_ms: AtomicI64,
}

impl TaskHealth {
    pub fn beat(&self) {
        self.last_beat_ms.store(now_ms(), Ordering::Relaxed);
    }
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }
    pub fn set_backpressure(&self, on: bool) {
        self.backpressure.store(on, Ordering::Relaxed);
    }
}

/// Health of the whole service: the conjunction of its tasks.
#[derive(Debug, Clone, Default)]
pub struct Health {
    tasks: Arc<Mutex<Vec<Arc<TaskHealth>>>>,
}

impl Health {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a task; the service is ready only when every task is.
    pub fn task(&self, name: &str) -> Arc<TaskHealth> {
        let t = Arc::new(TaskHealth {
            name: name.to_string(),
            ready: AtomicBool::new(false),
            backpressure: AtomicBool::new(false),
            last_beat_ms: AtomicI64::new(now_ms()),
        });
        if let Ok(mut tasks) = self.tasks.lock() {
            tasks.push(t.clone());
        }
        t
    }

    fn check(&self, readiness: bool) -> (bool, String) {
        let Ok(tasks) = self.tasks.lock() else {
            return (false, "health state poisoned".into());
        };
        let now = now_ms();
        let mut ok = true;
        let mut lines = Vec::new();
        for t in tasks.iter() {
            let stalled = now - t.last_beat_ms.load(Ordering::Relaxed) > STALL_AFTER_MS;
            let ready = t.ready.load(Ordering::Relaxed);
            let bp = t.backpressure.load(Ordering::Relaxed);
            let task_ok = !stalled && (!readiness || (ready && !bp));
            ok &= task_ok;
            lines.push(format!(
                "{}: {}{}{}",
                t.name,
                if task_ok { "ok" } else { "not ok" },
                if stalled { " (stalled)" } else { "" },
                match (readiness, ready, bp) {
                    (true, false, _) => " (waiting for partition assignment)",
                    (true, true, true) => " (backpressure: producer queue full)",
                    _ => "",
                }
            ));
        }
        (ok, lines.join("\n") + "\n")
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[derive(Clone)]
struct AdminState {
    registry: Registry,
    health: Health,
}

/// Binds the admin server and serves it until `shutdown` is cancelled.
/// Returns the bound address (useful with port 0).
pub async fn serve(
    listen: SocketAddr,
    registry: Registry,
    health: Health,
    shutdown: CancellationToken,
) -> std::io::Result<SocketAddr> {
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(AdminState { registry, health });
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    tracing::info!(message = "admin server listening", addr = %addr);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await
        {
            tracing::error!(message = "admin server failed", error = %e);
        }
    });
    Ok(addr)
}

async fn metrics(State(s): State<AdminState>) -> ([(&'static str, &'static str); 1], String) {
    (
        [("content-type", "text/plain; version=0.0.4")],
        crate::metrics::render(&s.registry),
    )
}

async fn healthz(State(s): State<AdminState>) -> (StatusCode, String) {
    let (ok, body) = s.health.check(false);
    (
        if ok {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        },
        body,
    )
}

async fn readyz(State(s): State<AdminState>) -> (StatusCode, String) {
    let (ok, body) = s.health.check(true);
    (
        if ok {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        },
        body,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_when_every_task_is_ready_and_unblocked() {
        let h = Health::new();
        let a = h.task("a");
        let b = h.task("b");
        assert!(h.check(false).0, "alive from the start");
        assert!(!h.check(true).0);
        a.set_ready(true);
        assert!(!h.check(true).0, "b not ready yet");
        b.set_ready(true);
        assert!(h.check(true).0);
        b.set_backpressure(true);
        let (ok, body) = h.check(true);
        assert!(!ok);
        assert!(body.contains("backpressure"), "{body}");
    }

    #[test]
    fn stalled_task_fails_liveness() {
        let h = Health::new();
        let a = h.task("a");
        a.last_beat_ms
            .store(now_ms() - STALL_AFTER_MS - 1, Ordering::Relaxed);
        let (ok, body) = h.check(false);
        assert!(!ok);
        assert!(body.contains("stalled"), "{body}");
    }
}
