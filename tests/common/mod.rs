//! Shared helpers for the end-to-end tests: where the real services are, and how to run vigil.
//!
//! Services come from `scripts/services/up.sh` (the README's test command starts them). A missing
//! service fails the test with the command that starts it: integration tests never skip.
#![allow(dead_code)]

pub mod backend;
pub mod browser;
pub mod fixtures;
pub mod sdk;

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn clickhouse_http() -> String {
    std::env::var("VIGIL_TEST_CLICKHOUSE").unwrap_or_else(|_| "127.0.0.1:18123".into())
}

/// A ClickHouse-server store URL for a fresh database named after the test.
pub fn clickhouse_url(db: &str) -> String {
    require_clickhouse();
    format!("clickhouse://{}/{db}", clickhouse_http())
}

pub fn kafka_brokers() -> String {
    let b = std::env::var("VIGIL_TEST_KAFKA").unwrap_or_else(|_| "127.0.0.1:19092".into());
    let addr = b.split(',').next().unwrap_or_default().to_string();
    if std::net::TcpStream::connect_timeout(
        &addr.parse().expect("VIGIL_TEST_KAFKA host:port"),
        Duration::from_secs(2),
    )
    .is_err()
    {
        panic!("no Kafka-protocol broker at {b}: start it with `bash scripts/services/tansu.sh start` (or scripts/services/up.sh)");
    }
    b
}

pub fn require_clickhouse() {
    let url = format!("http://{}/ping", clickhouse_http());
    let ok = std::process::Command::new("curl")
        .args(["-fsS", "--max-time", "3", &url])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        panic!("no ClickHouse server at {url}: start it with `bash scripts/services/clickhouse.sh start` (or scripts/services/up.sh)");
    }
}

/// The chDB library must be installed; the error says how.
pub fn require_chdb() {
    let path = std::env::var_os("VIGIL_CHDB_LIB")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let cache = std::env::var_os("VIGIL_CACHE_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    std::env::var_os("XDG_CACHE_HOME")
                        .map(|x| PathBuf::from(x).join("vigil"))
                        .unwrap_or_else(|| {
                            PathBuf::from(std::env::var("HOME").unwrap_or_default())
                                .join(".cache/vigil")
                        })
                });
            cache
                .join("chdb")
                .join(vigil_store::CHDB_VERSION)
                .join("libchdb.so")
        });
    if !path.exists() {
        panic!(
            "chDB library missing at {}: install it with `bash scripts/services/chdb.sh install`",
            path.display()
        );
    }
}

/// A name unique to this test run (database, topic, group names).
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}_{}_{}_{}",
        std::process::id(),
        chrono::Utc::now().timestamp_millis() % 100_000_000,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A port nothing listens on, for a service a test starts as another process.
///
/// Chosen below the kernel's ephemeral range (32768–60999 by default) rather than by binding
/// port 0: a port handed out by `bind(0)` and released comes from the range outgoing
/// connections take their local ports from, and with tests running in parallel one of their
/// connections took such a port before the service could listen on it ("Address already in
/// use"). Ports here are only ever taken by someone listening, which the bind below checks.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    // Each test binary starts at its own offset (its pid), so parallel binaries rarely probe
    // the same ports; within a binary the counter never repeats one.
    const LOW: u32 = 20_000;
    const SPAN: u32 = 12_000;
    let start = std::process::id().wrapping_mul(97) % SPAN;
    for _ in 0..SPAN {
        let port = (LOW + (start + NEXT.fetch_add(1, Ordering::Relaxed)) % SPAN) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in {LOW}..{}", LOW + SPAN)
}

pub fn vigil() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_vigil"));
    c.env("VIGIL_LOG", "info,librdkafka=warn,rdkafka=warn");
    c
}

/// A `vigil serve` child process; killed on drop.
pub struct Served {
    pub child: Child,
    pub log: PathBuf,
}

impl Served {
    pub fn start(config: &Path, log: &Path, args: &[&str]) -> Served {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("log file");
        let err = out.try_clone().expect("log file");
        let child = vigil()
            .arg("--config")
            .arg(config)
            .arg("serve")
            .args(args)
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .expect("start vigil serve");
        Served {
            child,
            log: log.to_path_buf(),
        }
    }

    /// SIGKILL: no flush, no goodbye.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait for a clean exit.
    pub fn terminate(mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                assert!(
                    status.success(),
                    "vigil serve exited with {status}; log:\n{}",
                    self.log_text()
                );
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("vigil serve did not stop within 60 s after SIGTERM");
    }

    pub fn log_text(&self) -> String {
        let f = std::fs::File::open(&self.log).map(BufReader::new);
        match f {
            Ok(r) => r
                .lines()
                .map_while(Result::ok)
                .collect::<Vec<_>>()
                .join("\n"),
            Err(_) => String::new(),
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `f` until it returns true or `timeout` passes.
pub fn wait_for(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}

/// Opens the store at `url` once a `vigil serve` child has created its schema; `None` before.
pub fn open_when_migrated(rt: &tokio::runtime::Runtime, url: &str) -> Option<vigil_store::Store> {
    rt.block_on(vigil_store::Store::open(url))
        .ok()
        .filter(|s| rt.block_on(s.schema_version()).unwrap_or(0) >= 1)
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// Writes a config file for `vigil serve`.
pub fn write_config(
    dir: &Path,
    store_url: &str,
    http_port: u16,
    kafka: Option<(&str, &str, &str)>,
) -> PathBuf {
    let mut text = format!(
        "[store]\nurl = \"{store_url}\"\n\n[collector]\nbatch_max_rows = 20000\nbatch_max_wait_ms = 200\nretry_max_ms = 1000\n\n[http]\nbind = \"127.0.0.1:{http_port}\"\nack_timeout_ms = 5000\n"
    );
    if let Some((brokers, topic, group)) = kafka {
        text.push_str(&format!(
            "\n[kafka]\nbrokers = \"{brokers}\"\ngroup_id = \"{group}\"\ninference_topic = \"{topic}\"\noutcome_topic = \"\"\nexposure_topic = \"\"\nchunk_rows = 5000\n\n[kafka.properties]\n\"session.timeout.ms\" = \"6000\"\n\"heartbeat.interval.ms\" = \"500\"\n"
        ));
    }
    let path = dir.join("vigil.toml");
    std::fs::write(&path, text).expect("write config");
    path
}

/// Produces `payloads` to `topic` (keys spread them over partitions) and waits for acks.
pub fn produce(brokers: &str, topic: &str, payloads: &[Vec<u8>]) {
    use rdkafka::config::ClientConfig;
    use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("acks", "all")
        .set("linger.ms", "10")
        .set("message.max.bytes", "20000000")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .expect("producer");
    for (i, p) in payloads.iter().enumerate() {
        let key = i.to_string();
        let mut rec = BaseRecord::to(topic)
            .payload(p.as_slice())
            .key(key.as_str());
        loop {
            match producer.send(rec) {
                Ok(()) => break,
                Err((_, r)) => {
                    rec = r;
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
    }
    producer.flush(Duration::from_secs(120)).expect("flush");
}

pub fn create_topic(brokers: &str, topic: &str, partitions: i32) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    use rdkafka::config::ClientConfig;
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("admin");
    let rt = runtime();
    let res = rt
        .block_on(admin.create_topics(
            &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        ))
        .expect("create topic");
    for r in res {
        r.expect("topic created");
    }
}

/// `[[auth.tokens]]` for tests: `dash` (viewer, `viewer-secret`), `app` (ingest,
/// `ingest-secret`), `ops` (admin, `admin-secret`).
pub const TOKENS: &str = r#"
[[auth.tokens]]
name = "dash"
role = "viewer"
token = "viewer-secret"

[[auth.tokens]]
name = "app"
role = "ingest"
token = "ingest-secret"

[[auth.tokens]]
name = "ops"
role = "admin"
token = "admin-secret"
"#;
