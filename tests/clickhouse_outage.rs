//! The ClickHouse server stops for 20 s while events stream in from Kafka: nothing is lost,
//! HTTP ingest answers 503 with Retry-After meanwhile, and ingestion resumes by itself.
//!
//! Uses a private ClickHouse server (own ports and data directory) so other tests are unaffected.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use vigil_collector::simulate::TrafficSimulator;
use vigil_store::{queries, Store};

const EVENTS: usize = 90_000;

struct PrivateClickHouse {
    dir: PathBuf,
    http: u16,
    tcp: u16,
}

impl PrivateClickHouse {
    fn script() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/services/clickhouse.sh")
    }
    fn run(&self, action: &str) {
        let status = Command::new("bash")
            .arg(Self::script())
            .arg(action)
            .env("VIGIL_SERVICES_DIR", &self.dir)
            .env("VIGIL_CH_HTTP_PORT", self.http.to_string())
            .env("VIGIL_CH_TCP_PORT", self.tcp.to_string())
            .status()
            .expect("run clickhouse.sh");
        assert!(status.success(), "clickhouse.sh {action} failed");
    }
}

impl Drop for PrivateClickHouse {
    fn drop(&mut self) {
        self.run("stop");
    }
}

#[test]
fn clickhouse_down_for_20s_loses_nothing() {
    require_clickhouse(); // the binary is installed and works
    let brokers = kafka_brokers();
    let dir = tempfile::tempdir().unwrap();
    let ch = PrivateClickHouse {
        dir: dir.path().join("services"),
        http: free_port(),
        tcp: free_port(),
    };
    ch.run("start");
    let db = unique("outage");
    let url = format!("clickhouse://127.0.0.1:{}/{db}", ch.http);
    let topic = unique("vigil-outage");
    create_topic(&brokers, &topic, 3);
    let http_port = free_port();
    let config = write_config(
        dir.path(),
        &url,
        http_port,
        Some((&brokers, &topic, &unique("g"))),
    );
    let log = dir.path().join("serve.log");
    let served = Served::start(&config, &log, &[]);

    // Stream events for ~40 s from another thread.
    let now = chrono::Utc::now().timestamp_millis();
    let mut sim = TrafficSimulator::new(5, &db);
    let payloads: Vec<Vec<u8>> = (0..EVENTS)
        .map(|_| sim.inference(now).json.into_bytes())
        .collect();
    let producer = {
        let (brokers, topic) = (brokers.clone(), topic.clone());
        std::thread::spawn(move || {
            for chunk in payloads.chunks(EVENTS / 40) {
                produce(&brokers, &topic, chunk);
                std::thread::sleep(Duration::from_millis(1000));
            }
        })
    };

    let rt = runtime();
    let mut store: Option<Store> = None;
    let started = wait_for(Duration::from_secs(60), || {
        if store.is_none() {
            store = open_when_migrated(&rt, &url);
        }
        store.as_ref().is_some_and(|s| {
            rt.block_on(queries::count_physical_rows(s, "inference_events"))
                .unwrap_or(0)
                > 5_000
        })
    });
    assert!(started, "ingest never started; log:\n{}", served.log_text());
    let store = store.unwrap();

    ch.run("stop");
    let down_at = Instant::now();
    // While the store is down, HTTP ingest pushes back instead of buffering without bound.
    let client = reqwest::blocking::Client::new();
    let mut saw_503 = false;
    while down_at.elapsed() < Duration::from_secs(20) {
        let body = sim.inference(chrono::Utc::now().timestamp_millis()).json;
        let sent = client
            .post(format!("http://127.0.0.1:{http_port}/v1/events"))
            .body(body)
            .timeout(Duration::from_secs(35))
            .send();
        eprintln!("during outage: {:?}", sent.as_ref().map(|r| r.status()));
        if let Ok(resp) = sent {
            if resp.status().as_u16() == 503 {
                assert!(
                    resp.headers().contains_key("retry-after"),
                    "503 carries Retry-After"
                );
                saw_503 = true;
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let remaining = Duration::from_secs(20).saturating_sub(down_at.elapsed());
    std::thread::sleep(remaining);
    ch.run("start");
    producer.join().expect("producer thread");

    let complete = wait_for(Duration::from_secs(180), || {
        rt.block_on(queries::count_events(&store, "inference_events"))
            .unwrap_or(0)
            >= EVENTS as u64
    });
    let metrics = client
        .get(format!("http://127.0.0.1:{http_port}/metrics"))
        .send()
        .and_then(|r| r.text())
        .unwrap_or_default();
    served.terminate();
    assert!(
        complete,
        "events lost after the outage; log:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    assert!(
        saw_503,
        "HTTP ingest should answer 503 while the store is down"
    );
    // HTTP events answered 503 were never accepted; Kafka's must all be there, exactly once.
    let kafka_rows = rt
        .block_on(store.fetch::<Count>(&format!(
            "SELECT toUInt64(count()) AS n FROM {} FINAL WHERE source LIKE 'kafka:%'",
            store.table("inference_events")
        )))
        .unwrap();
    assert_eq!(kafka_rows[0].n, EVENTS as u64);
    let errors: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("vigil_insert_errors_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    assert!(
        errors > 0,
        "inserts failed and were retried during the outage:\n{metrics}"
    );
}

#[derive(clickhouse::Row, serde::Deserialize)]
struct Count {
    n: u64,
}
