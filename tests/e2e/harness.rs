//! The harness behind the end-to-end tests: the real service binaries (two
//! instances of each stage) against a real Kafka broker, real HTTP webhooks,
//! with topics and consumer groups named uniquely per test.
//!
//! The broker comes from `SCIMTRAIL_TEST_BROKERS`; when unset, the harness
//! starts one with `scripts/kafka` on port 19092. The binaries come from
//! `target/debug` (`cargo build --workspace --bins`, which `scripts/test` runs).

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Router;
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::message::OwnedMessage;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use serde_json::Value;

/// End-to-end tests share two cores; running them one at a time keeps their
/// timings meaningful.
pub static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// The broker under test.
pub fn brokers() -> String {
    static BROKERS: OnceLock<String> = OnceLock::new();
    BROKERS
        .get_or_init(|| {
            if let Ok(b) = std::env::var("SCIMTRAIL_TEST_BROKERS") {
                return b;
            }
            let status = Command::new(repo_root().join("scripts/kafka"))
                .arg("start")
                .env("KAFKA_PORT", "19092")
                .status()
                .expect("run scripts/kafka");
            assert!(status.success(), "scripts/kafka start failed");
            "127.0.0.1:19092".to_string()
        })
        .clone()
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|p| {
            if p.is_absolute() {
                p
            } else {
                repo_root().join(p)
            }
        })
        .unwrap_or_else(|| repo_root().join("target"))
}

pub fn bin(name: &str) -> PathBuf {
    let p = target_dir().join("debug").join(name);
    assert!(
        p.exists(),
        "{} is missing: run `cargo build --workspace --bins` (scripts/test does)",
        p.display()
    );
    p
}

/// Unique names for one test's topics and groups.
#[derive(Debug, Clone)]
pub struct Names {
    pub prefix: String,
    pub raw: String,
    pub events: String,
    pub enriched: String,
    pub alerts: String,
    pub dlq: String,
    pub checkpoints: String,
}

impl Names {
    pub fn new(test: &str) -> Self {
        let prefix = format!(
            "e2e-{test}-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        Names {
            raw: format!("{prefix}.raw"),
            events: format!("{prefix}.events"),
            enriched: format!("{prefix}.enriched"),
            alerts: format!("{prefix}.alerts"),
            dlq: format!("{prefix}.dlq"),
            checkpoints: format!("{prefix}.checkpoints"),
            prefix,
        }
    }

    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("SCIMTRAIL__KAFKA__BROKERS", brokers()),
            ("SCIMTRAIL__KAFKA__GROUP_PREFIX", self.prefix.clone()),
            ("SCIMTRAIL__KAFKA__BATCH_MAX_WAIT_MS", "50".into()),
            // A killed member is noticed in seconds rather than the default 45.
            (
                "SCIMTRAIL__KAFKA__CONSUMER_PROPERTIES__SESSION_TIMEOUT_MS",
                "6000".into(),
            ),
            (
                "SCIMTRAIL__KAFKA__CONSUMER_PROPERTIES__HEARTBEAT_INTERVAL_MS",
                "1000".into(),
            ),
            // Lag gauges appear with the first statistics report.
            ("SCIMTRAIL__KAFKA__STATISTICS_INTERVAL_MS", "2000".into()),
            ("SCIMTRAIL__TOPICS__RAW", self.raw.clone()),
            ("SCIMTRAIL__TOPICS__EVENTS", self.events.clone()),
            ("SCIMTRAIL__TOPICS__ENRICHED", self.enriched.clone()),
            ("SCIMTRAIL__TOPICS__ALERTS", self.alerts.clone()),
            ("SCIMTRAIL__TOPICS__DLQ", self.dlq.clone()),
            ("SCIMTRAIL__TOPICS__CHECKPOINTS", self.checkpoints.clone()),
            (
                "SCIMTRAIL__TOPICS__INTERNAL_PREFIX",
                format!("{}.internal.", self.prefix),
            ),
            ("SCIMTRAIL__TOPICS__PARTITIONS", "3".into()),
            ("SCIMTRAIL__ADMIN__LISTEN", "127.0.0.1:0".into()),
            ("SCIMTRAIL__LOG__LEVEL", "info".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    pub fn group(&self, stage: &str) -> String {
        format!("{}-{stage}", self.prefix)
    }
}

/// A running service process.
pub struct Service {
    pub name: String,
    binary: String,
    env: Vec<(String, String)>,
    log: PathBuf,
    child: Mutex<Option<Child>>,
    spawned_at_line: usize,
}

impl Service {
    pub fn spawn(binary: &str, name: &str, env: Vec<(String, String)>, log_dir: &Path) -> Service {
        let mut s = Service {
            name: name.to_string(),
            binary: binary.to_string(),
            env,
            log: log_dir.join(format!("{name}.log")),
            child: Mutex::new(None),
            spawned_at_line: 0,
        };
        s.start();
        s
    }

    fn start(&mut self) {
        self.spawned_at_line = std::fs::read_to_string(&self.log)
            .map(|s| s.lines().count())
            .unwrap_or(0);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open service log");
        let child = Command::new(bin(&self.binary))
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn service");
        *self.child.lock().expect("lock") = Some(child);
    }

    /// The admin address the service logged at start (it binds port 0).
    pub async fn admin_addr(&self) -> SocketAddr {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(text) = std::fs::read_to_string(&self.log) {
                for line in text.lines().skip(self.spawned_at_line) {
                    let Ok(v) = serde_json::from_str::<Value>(line) else {
                        continue;
                    };
                    if v["message"] == "admin server listening" {
                        if let Some(addr) = v["addr"].as_str().and_then(|a| a.parse().ok()) {
                            return addr;
                        }
                    }
                }
            }
            assert!(
                Instant::now() < deadline,
                "{} did not log its admin address; see {}",
                self.name,
                self.log.display()
            );
            let exited = self
                .child
                .lock()
                .expect("lock")
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if let Some(status) = exited {
                panic!(
                    "{} exited with {status} at start; see {}",
                    self.name,
                    self.log.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn wait_ready(&self) {
        let addr = self.admin_addr().await;
        let url = format!("http://{addr}/readyz");
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Ok(r) = reqwest::get(&url).await {
                if r.status().is_success() {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "{} not ready within 90 s; see {}",
                self.name,
                self.log.display()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub async fn metrics(&self) -> String {
        let addr = self.admin_addr().await;
        reqwest::get(format!("http://{addr}/metrics"))
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text")
    }

    /// SIGKILL: no drain, no goodbye.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.lock().expect("lock").take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait for a clean exit; returns whether it exited 0.
    pub fn terminate(&mut self, timeout: Duration) -> bool {
        let Some(mut c) = self.child.lock().expect("lock").take() else {
            return true;
        };
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status();
        let deadline = Instant::now() + timeout;
        loop {
            match c.try_wait() {
                Ok(Some(status)) => return status.success(),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                _ => {
                    let _ = c.kill();
                    let _ = c.wait();
                    return false;
                }
            }
        }
    }

    pub fn restart(&mut self) {
        self.kill9();
        self.start();
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// One webhook call as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Received {
    pub webhook_id: Option<String>,
    pub body: Value,
}

#[derive(Clone, Default)]
struct ReceiverState {
    calls: Arc<Mutex<Vec<Received>>>,
    /// Answer 500 to this many calls first (to exercise retries).
    fail_first: Arc<Mutex<usize>>,
}

/// A real HTTP server receiving webhooks.
pub struct Receiver {
    pub url: String,
    state: ReceiverState,
}

async fn receive(State(s): State<ReceiverState>, headers: HeaderMap, body: Bytes) -> StatusCode {
    {
        let mut fail = s.fail_first.lock().expect("lock");
        if *fail > 0 {
            *fail -= 1;
            return StatusCode::INTERNAL_SERVER_ERROR;
        }
    }
    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let webhook_id = headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    s.calls
        .lock()
        .expect("lock")
        .push(Received { webhook_id, body });
    StatusCode::NO_CONTENT
}

impl Receiver {
    pub async fn start(fail_first: usize) -> Receiver {
        let state = ReceiverState::default();
        *state.fail_first.lock().expect("lock") = fail_first;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let app = Router::new().fallback(receive).with_state(state.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver {
            url: format!("http://{addr}/hooks/scimtrail"),
            state,
        }
    }

    pub fn calls(&self) -> Vec<Received> {
        self.state.calls.lock().expect("lock").clone()
    }

    pub fn failures_left(&self) -> usize {
        *self.state.fail_first.lock().expect("lock")
    }

    /// Waits for at least `n` calls, then `settle` more to catch duplicates.
    pub async fn wait_for(&self, n: usize, timeout: Duration, settle: Duration) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        while self.calls().len() < n {
            assert!(
                Instant::now() < deadline,
                "receiver got {} of {n} webhook calls in {timeout:?}",
                self.calls().len()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::sleep(settle).await;
        self.calls()
    }
}

/// Which stages a pipeline runs.
#[derive(Debug, Clone, Copy)]
pub struct Stages {
    pub ingest: bool,
    pub enricher: bool,
    pub detector: bool,
    pub sink: bool,
}

impl Stages {
    pub const ALL: Stages = Stages {
        ingest: true,
        enricher: true,
        detector: true,
        sink: true,
    };
}

/// A whole pipeline: topics, two instances of each stage, a receiver.
pub struct Pipeline {
    pub names: Names,
    pub services: Vec<Service>,
    pub receiver: Receiver,
    pub log_dir: PathBuf,
    /// Verifies the enricher's chain checkpoints.
    pub checkpoint_key: ed25519_dalek::VerifyingKey,
}

impl Pipeline {
    pub async fn start(
        test: &str,
        stages: Stages,
        instances: usize,
        fail_first: usize,
    ) -> Pipeline {
        Self::start_with(test, stages, instances, fail_first, Vec::new()).await
    }

    /// [`Pipeline::start`] with extra environment for every service.
    pub async fn start_with(
        test: &str,
        stages: Stages,
        instances: usize,
        fail_first: usize,
        extra_env: Vec<(String, String)>,
    ) -> Pipeline {
        let names = Names::new(test);
        let log_dir = target_dir().join("e2e-logs").join(&names.prefix);
        std::fs::create_dir_all(&log_dir).expect("log dir");
        let out = Command::new(bin("scimtrail"))
            .args(["topics", "ensure"])
            .envs(names.env())
            .output()
            .expect("run scimtrail topics ensure");
        assert!(
            out.status.success(),
            "topics ensure failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let receiver = Receiver::start(fail_first).await;
        // A fresh checkpoint signing key per test, as `openssl genpkey
        // -algorithm ed25519` would write it.
        let signing = ed25519_dalek::SigningKey::from_bytes(&rand_seed());
        let key_file = log_dir.join("checkpoint-key.pem");
        {
            use ed25519_dalek::pkcs8::{spki::der::pem::LineEnding, EncodePrivateKey};
            let pem = signing.to_pkcs8_pem(LineEnding::LF).expect("pem");
            std::fs::write(&key_file, pem.as_bytes()).expect("write key");
        }
        let mut services = Vec::new();
        for i in 1..=instances {
            let mut env = names.env();
            env.push((
                "SCIMTRAIL__KAFKA__INSTANCE_ID".into(),
                format!("{}-{i}", names.prefix),
            ));
            env.push(("SCIMTRAIL__SINK__WEBHOOKS".into(), receiver.url.clone()));
            env.push(("SCIMTRAIL__SINK__INITIAL_BACKOFF_MS".into(), "100".into()));
            env.push(("SCIMTRAIL__SINK__MAX_BACKOFF_MS".into(), "400".into()));
            env.push((
                "SCIMTRAIL__ENRICHER__CHECKPOINT_KEY_FILE".into(),
                key_file.display().to_string(),
            ));
            env.push((
                "SCIMTRAIL__ENRICHER__CHECKPOINT_EVERY_EVENTS".into(),
                "10".into(),
            ));
            env.extend(extra_env.iter().cloned());
            for (on, stage) in [
                (stages.ingest, "ingest"),
                (stages.enricher, "enricher"),
                (stages.detector, "detector"),
                (stages.sink, "sink"),
            ] {
                if on {
                    services.push(Service::spawn(
                        &format!("scimtrail-{stage}"),
                        &format!("{stage}-{i}"),
                        env.clone(),
                        &log_dir,
                    ));
                }
            }
        }
        for s in &services {
            s.wait_ready().await;
        }
        Pipeline {
            names,
            services,
            receiver,
            log_dir,
            checkpoint_key: signing.verifying_key(),
        }
    }

    /// Starts instance `i` of `stage` with the same settings as its first
    /// instance: a scale-out, which rebalances the stage's partitions.
    pub fn scale_out(&mut self, stage: &str, i: usize) {
        let prefix = self.names.prefix.clone();
        let template = self.service(&format!("{stage}-1"));
        let mut env = template.env.clone();
        for (k, v) in env.iter_mut() {
            if k == "SCIMTRAIL__KAFKA__INSTANCE_ID" {
                *v = format!("{prefix}-{i}");
            }
        }
        let binary = template.binary.clone();
        let s = Service::spawn(&binary, &format!("{stage}-{i}"), env, &self.log_dir);
        self.services.push(s);
    }

    pub fn service(&mut self, name: &str) -> &mut Service {
        self.services
            .iter_mut()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no service {name}"))
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "service logs of the failed test: {}",
                self.log_dir.display()
            );
        }
    }
}

/// Produces records (key, value) in order and waits for every acknowledgement.
pub async fn produce(topic: &str, records: &[(Option<String>, Vec<u8>)]) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("partitioner", "murmur2_random")
        .set("enable.idempotence", "true")
        .create()
        .expect("producer");
    for (key, value) in records {
        let mut r: FutureRecord<'_, String, Vec<u8>> = FutureRecord::to(topic).payload(value);
        if let Some(k) = key {
            r = r.key(k);
        }
        producer
            .send(r, Duration::from_secs(30))
            .await
            .expect("produce");
    }
}

/// Reads `topic` (read_committed) from the beginning until `expected` records
/// arrived, then `settle` longer to catch duplicates.
pub async fn consume(
    topic: &str,
    expected: usize,
    timeout: Duration,
    settle: Duration,
) -> Vec<OwnedMessage> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("group.id", format!("e2e-reader-{}", uuid::Uuid::new_v4()))
        .set("isolation.level", "read_committed")
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let mut out = Vec::new();
    let deadline = Instant::now() + timeout;
    let mut settle_until: Option<Instant> = None;
    loop {
        let now = Instant::now();
        if settle_until.is_some_and(|s| now >= s) {
            break;
        }
        if settle_until.is_none() && now >= deadline {
            panic!(
                "{topic}: got {} of {expected} records within {timeout:?}",
                out.len()
            );
        }
        if let Ok(Ok(m)) = tokio::time::timeout(Duration::from_millis(200), consumer.recv()).await {
            out.push(m.detach());
        }
        if out.len() >= expected && settle_until.is_none() {
            settle_until = Some(Instant::now() + settle);
        }
    }
    out
}

/// Committed offsets of `group` on `topic`, and the topic's end offsets.
pub fn offsets(
    group: &str,
    topic: &str,
    partitions: i32,
) -> (BTreeMap<i32, i64>, BTreeMap<i32, i64>) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("group.id", group)
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let committed = consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .expect("committed offsets");
    let mut c = BTreeMap::new();
    let mut e = BTreeMap::new();
    for el in committed.elements() {
        c.insert(
            el.partition(),
            match el.offset() {
                Offset::Offset(o) => o,
                _ => -1,
            },
        );
        let (_, high) = consumer
            .fetch_watermarks(topic, el.partition(), Duration::from_secs(10))
            .expect("watermarks");
        e.insert(el.partition(), high);
    }
    (c, e)
}

/// Records of `topic` that `group` has not yet processed: read_committed from
/// the group's committed offsets. Committed offsets can sit below the high
/// watermark by the transaction markers that follow the last record, so the
/// check reads instead of comparing numbers.
pub async fn unprocessed(group: &str, topic: &str, partitions: i32) -> usize {
    let (committed, end) = offsets(group, topic, partitions);
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("group.id", format!("e2e-lag-{}", uuid::Uuid::new_v4()))
        .set("isolation.level", "read_committed")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for (p, c) in &committed {
        let start = if *c < 0 {
            Offset::Beginning
        } else {
            Offset::Offset(*c)
        };
        tpl.add_partition_offset(topic, *p, start).expect("offset");
        assert!(
            *c <= end[p],
            "committed offset {c} beyond the end {} of {topic}/{p}",
            end[p]
        );
    }
    consumer.assign(&tpl).expect("assign");
    let mut n = 0;
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_millis(200), consumer.recv()).await {
            n += 1;
        }
    }
    n
}

/// Header values of a record as strings.
pub fn headers(m: &OwnedMessage) -> HashMap<String, String> {
    use rdkafka::message::Headers;
    m.headers()
        .map(|h| {
            h.iter()
                .map(|x| {
                    (
                        x.key.to_string(),
                        String::from_utf8_lossy(x.value.unwrap_or_default()).into_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Synthetic raw traffic from `scimtrail gen --stdout`, reproducible.
pub fn generate(args: &[&str]) -> Vec<Value> {
    let out = Command::new(bin("scimtrail"))
        .arg("gen")
        .arg("--stdout")
        .args(args)
        .env("SCIMTRAIL__KAFKA__BROKERS", brokers())
        .output()
        .expect("run scimtrail gen");
    assert!(
        out.status.success(),
        "gen failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("gen prints JSON lines"))
        .collect()
}

/// Verifies that the enriched records of each partition, in log order, form
/// one intact hash chain from sequence 0; returns the chain length per
/// partition. Records with key `skip_key` (planted poison) are left out.
pub fn verify_chains(records: &[OwnedMessage], skip_key: &[u8]) -> BTreeMap<i32, usize> {
    let codecs = scimtrail_core::schema::avro::Codecs::single_object().expect("codecs");
    let mut by_partition: BTreeMap<i32, Vec<(i64, scimtrail_core::schema::EnrichedAuditEvent)>> =
        BTreeMap::new();
    for m in records {
        if m.key() == Some(skip_key) {
            continue;
        }
        let e = codecs
            .enriched
            .decode(m.payload().expect("payload"))
            .expect("enriched decodes");
        by_partition
            .entry(m.partition())
            .or_default()
            .push((m.offset(), e));
    }
    let mut lengths = BTreeMap::new();
    for (partition, mut events) in by_partition {
        events.sort_by_key(|(offset, _)| *offset);
        for (_, e) in &events {
            assert_eq!(
                e.chain.as_ref().map(|c| c.partition),
                Some(partition),
                "link names its partition"
            );
        }
        let head = scimtrail_core::chain::verify(None, events.iter().map(|(_, e)| e))
            .unwrap_or_else(|b| panic!("chain of partition {partition} broken: {b:?}"));
        assert_eq!(head.map(|h| h.sequence + 1), Some(events.len() as i64));
        lengths.insert(partition, events.len());
    }
    lengths
}

/// The verifier of docs/enricher.md, in Python, run over the enriched events of
/// one partition: an independent implementation of the chain format.
pub fn verify_chain_with_python(
    records: &[OwnedMessage],
    partition: i32,
    skip_key: &[u8],
) -> usize {
    let codecs = scimtrail_core::schema::avro::Codecs::single_object().expect("codecs");
    let mut events: Vec<(i64, String)> = records
        .iter()
        .filter(|m| m.partition() == partition && m.key() != Some(skip_key))
        .map(|m| {
            let e = codecs
                .enriched
                .decode(m.payload().expect("payload"))
                .expect("decodes");
            (m.offset(), serde_json::to_string(&e).expect("json"))
        })
        .collect();
    events.sort();
    let dir = std::env::temp_dir().join(format!("scimtrail-chain-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let lines: Vec<String> = events.into_iter().map(|(_, j)| j).collect();
    std::fs::write(dir.join("events.jsonl"), lines.join("\n")).expect("write events");
    // The verifier an analyst would copy from docs/enricher.md, run as is:
    // if the documentation drifts from the format, this fails.
    let doc = std::fs::read_to_string(repo_root().join("docs/enricher.md")).expect("docs");
    let code = doc
        .split("```python\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("a python block in docs/enricher.md");
    let script =
        format!("{code}\nimport sys\nprint(verify([json.loads(l) for l in open(sys.argv[1])]))\n");
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(dir.join("events.jsonl"))
        .output()
        .expect("run python3");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "python verifier failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("count")
}

fn rand_seed() -> [u8; 32] {
    let a = uuid::Uuid::new_v4().into_bytes();
    let b = uuid::Uuid::new_v4().into_bytes();
    let mut seed = [0u8; 32];
    seed[..16].copy_from_slice(&a);
    seed[16..].copy_from_slice(&b);
    seed
}

/// Checks every checkpoint: signed by `key`, and naming the head hash of the
/// chain link at its sequence in the enriched records. Returns how many there
/// were per partition.
pub fn verify_checkpoints(
    checkpoints: &[OwnedMessage],
    enriched: &[OwnedMessage],
    key: &ed25519_dalek::VerifyingKey,
    skip_key: &[u8],
) -> BTreeMap<i32, usize> {
    let codecs = scimtrail_core::schema::avro::Codecs::single_object().expect("codecs");
    let mut links: HashMap<(i32, i64), String> = HashMap::new();
    for m in enriched.iter().filter(|m| m.key() != Some(skip_key)) {
        let e = codecs
            .enriched
            .decode(m.payload().expect("payload"))
            .expect("decodes");
        let link = e.chain.expect("chained");
        links.insert((link.partition, link.sequence), link.hash);
    }
    let mut counts = BTreeMap::new();
    for m in checkpoints {
        let cp = codecs
            .checkpoint
            .decode(m.payload().expect("payload"))
            .expect("checkpoint decodes");
        assert!(
            scimtrail_core::chain::verify_checkpoint(&cp, key),
            "bad signature on {cp:?}"
        );
        assert_eq!(
            links.get(&(cp.partition, cp.sequence)),
            Some(&cp.head_hash),
            "checkpoint {}/{} names a head the chain does not have",
            cp.partition,
            cp.sequence
        );
        *counts.entry(cp.partition).or_default() += 1;
    }
    counts
}
