//! vigil on a real ClickHouse cluster: 2 shards × 2 replicas of ClickHouse 18.16 with ZooKeeper
//! (`scripts/services/cluster.sh`, started by the README's test command), several collectors,
//! and nodes that crash.
//!
//! - migrations create every table on every node, through one node;
//! - an event acknowledged over HTTP is visible through every node's `Distributed` tables the
//!   moment the acknowledgement arrives (`insert_distributed_sync=1` + `insert_quorum=2`);
//! - two collectors in one Kafka consumer group over 6 partitions store every event exactly
//!   once when one of them is killed with -9 mid-stream, and in another run when a replica is;
//! - with a node list in the store URL, killing the node in use moves requests to the next one
//!   without losing or duplicating events, and `/metrics` says so (and passes `promtool check
//!   metrics`).
//!
//! The tests crash shared nodes, so they take turns (one lock) and bring the cluster back
//! (`cluster.sh start`) before they end.

mod common;

use common::fixtures::*;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};
use vigil_collector::simulate::TrafficSimulator;
use vigil_store::{queries, ClusterOptions, Store, StoreUrl};

/// Tables written by the collector: each has a `_local` replicated table on every node.
const INGEST_TABLES: [&str; 3] = ["inference_events", "outcome_events", "ingest_offsets"];

static CLUSTER: Mutex<()> = Mutex::new(());

/// One test at a time on the cluster; a failed test must not block the others, and a node it
/// left dead is started again first (`cluster.sh start` leaves running nodes alone).
fn lock() -> MutexGuard<'static, ()> {
    let turn = CLUSTER.lock().unwrap_or_else(|p| p.into_inner());
    restart_cluster();
    turn
}

/// The nodes' `host:port` (HTTP), node 1 first.
fn nodes() -> Vec<String> {
    let list = std::env::var("VIGIL_TEST_CLUSTER").unwrap_or_else(|_| {
        "127.0.0.1:18201,127.0.0.1:18202,127.0.0.1:18203,127.0.0.1:18204".into()
    });
    let nodes: Vec<String> = list.split(',').map(str::to_string).collect();
    for n in &nodes {
        if node_query(n, "SELECT 1").is_err() {
            panic!("no ClickHouse cluster node at {n}: start it with `bash scripts/services/cluster.sh start` (or scripts/services/up.sh)");
        }
    }
    nodes
}

fn cluster_name() -> String {
    std::env::var("VIGIL_TEST_CLUSTER_NAME").unwrap_or_else(|_| "vigil".into())
}

fn cluster_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/services/cluster.sh")
}

/// `kill -9` of node `n` (1-based), as a crash.
fn kill_node(n: usize) {
    let st = Command::new("bash")
        .arg(cluster_script())
        .args(["kill", &n.to_string()])
        .status()
        .expect("cluster.sh kill");
    assert!(st.success(), "cluster.sh kill {n} failed");
}

/// Starts whatever node is down and waits until the cluster answers again.
fn restart_cluster() {
    let st = Command::new("bash")
        .arg(cluster_script())
        .arg("start")
        .status()
        .expect("cluster.sh start");
    assert!(st.success(), "cluster.sh start failed");
}

/// One query straight to one node over HTTP (no vigil code in between).
fn node_query(node: &str, sql: &str) -> Result<String, String> {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "60", "--fail-with-body"])
        .arg(format!("http://{node}/?wait_end_of_query=1"))
        .arg("--data-binary")
        .arg(sql)
        .output()
        .map_err(|e| e.to_string())?;
    let body = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if out.status.success() {
        Ok(body)
    } else {
        Err(format!("{body} {}", String::from_utf8_lossy(&out.stderr)))
    }
}

fn node_count(node: &str, sql: &str) -> u64 {
    node_query(node, sql)
        .unwrap_or_else(|e| panic!("{node}: {sql}: {e}"))
        .parse()
        .unwrap_or_else(|e| panic!("{node}: {sql}: {e}"))
}

/// Waits until every replica has fetched what its shard holds (reads through any node are then
/// complete without a quorum). A replica restarted after `kill -9` first waits for its old
/// ZooKeeper session to expire (~10 s) and only then loads its queue, so `SYSTEM SYNC REPLICA`
/// alone can return at once with nothing fetched: wait until it is active and writable first.
fn sync_replicas(nodes: &[String], db: &str, tables: &[&str]) {
    for n in nodes {
        for t in tables {
            let state = format!(
                "SELECT is_readonly = 0 AND active_replicas = total_replicas AND queue_size = 0 \
                 FROM system.replicas WHERE database = '{db}' AND table = '{t}_local'"
            );
            let ready = wait_for(Duration::from_secs(120), || {
                node_query(n, &state).is_ok_and(|r| r == "1")
            });
            assert!(
                ready,
                "{n}: replica of {t} never became active and caught up"
            );
            node_query(n, &format!("SYSTEM SYNC REPLICA `{db}`.{t}_local"))
                .unwrap_or_else(|e| panic!("{n}: sync {t}: {e}"));
        }
    }
}

/// `clickhouse://n1,n2,…/db` over `nodes`.
fn url_of(nodes: &[String], db: &str) -> String {
    format!("clickhouse://{}/{db}", nodes.join(","))
}

fn open(rt: &tokio::runtime::Runtime, url: &str) -> Store {
    let mut parsed: StoreUrl = url.parse().expect("store url");
    if let StoreUrl::Server { cluster, .. } = &mut parsed {
        *cluster = Some(ClusterOptions {
            name: cluster_name(),
            insert_quorum: 1,
            insert_quorum_timeout_ms: None,
        });
    }
    rt.block_on(Store::open_url(&parsed)).expect("open store")
}

/// A `vigil serve` configuration on the cluster.
fn cluster_config(
    dir: &Path,
    url: &str,
    http_port: u16,
    kafka: Option<(&str, &str, &str)>,
    quorum: u32,
) -> PathBuf {
    let path = write_config(dir, url, http_port, kafka);
    let text = std::fs::read_to_string(&path).unwrap().replacen(
        "[store]\n",
        &format!(
            "[store]\ncluster = \"{}\"\ninsert_quorum = {quorum}\ninsert_quorum_timeout_ms = 20000\n",
            cluster_name()
        ),
        1,
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn http_client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

fn wait_healthy(client: &reqwest::blocking::Client, base: &str, served: &Served) {
    assert!(
        wait_for(Duration::from_secs(120), || client
            .get(format!("{base}/healthz"))
            .send()
            .is_ok_and(|r| r.status().is_success())),
        "vigil serve never became healthy; log:\n{}",
        served.log_text()
    );
}

/// Migrations through node 1 create every table on every node, once; an event acknowledged over
/// HTTP is in every node's `Distributed` table when the 200 arrives.
#[test]
fn acknowledged_events_are_visible_through_every_node() {
    let _turn = lock();
    let nodes = nodes();
    let db = unique("cl_ack");
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    // Only node 1 in the URL: the other nodes must learn everything through the cluster.
    let config = cluster_config(
        dir.path(),
        &url_of(&nodes[..1], &db),
        port,
        None,
        2, // both replicas of a shard hold an insert before it is acknowledged
    );
    let log = dir.path().join("serve.log");
    let served = Served::start(&config, &log, &["--no-kafka"]);
    let base = format!("http://127.0.0.1:{port}");
    let client = http_client();
    wait_healthy(&client, &base, &served);

    // Migrate: the same tables on every node, each `_local` replicated, each other Distributed.
    let tables = |n: &str| {
        node_query(
            n,
            &format!(
                "SELECT engine, count() FROM system.tables WHERE database = '{db}' GROUP BY engine ORDER BY engine"
            ),
        )
        .unwrap()
    };
    let on_node1 = tables(&nodes[0]);
    assert!(
        on_node1.contains("Distributed") && on_node1.contains("ReplicatedReplacingMergeTree"),
        "{on_node1}"
    );
    for n in &nodes[1..] {
        assert_eq!(tables(n), on_node1, "node {n} has other tables than node 1");
    }
    let versions = format!("SELECT max(version), count() FROM `{db}`.schema_migrations");
    let applied = node_query(&nodes[0], &versions).unwrap();
    for n in &nodes {
        assert_eq!(
            node_query(n, &versions).unwrap(),
            applied,
            "every migration recorded once, visible on {n}"
        );
    }

    let mut sim = TrafficSimulator::new(21, &db);
    let now = chrono::Utc::now().timestamp_millis();
    let mut total = 0u64;
    for batch in 0..30 {
        let events: Vec<_> = (0..40).map(|_| sim.inference(now - 1000 + batch)).collect();
        let body = events
            .iter()
            .map(|e| e.json.as_str())
            .collect::<Vec<_>>()
            .join("\n");
        let resp = client
            .post(format!("{base}/v1/events"))
            .body(body)
            .send()
            .expect("post events");
        assert_eq!(resp.status().as_u16(), 200, "{:?}", resp.text());
        total += events.len() as u64;
        // The moment the 200 arrives: every node's Distributed table has the batch.
        let ids = events
            .iter()
            .map(|e| format!("'{}'", e.event_id))
            .collect::<Vec<_>>()
            .join(",");
        for n in &nodes {
            let sql =
                format!("SELECT count() FROM `{db}`.inference_events WHERE event_id IN ({ids})");
            assert_eq!(
                node_count(n, &sql),
                events.len() as u64,
                "batch {batch} acknowledged but not all visible through {n}"
            );
        }
    }
    for n in &nodes {
        assert_eq!(
            node_count(
                n,
                &format!("SELECT count() FROM `{db}`.inference_events FINAL")
            ),
            total,
            "{n}"
        );
    }
    served.terminate();
}

/// The Kafka path with two collectors in one consumer group: `victim` is killed mid-stream
/// (a collector, or a ClickHouse replica); every event ends up stored exactly once and the
/// stored progress equals the topic's end offsets.
fn two_collectors_survive(prefix: &str, victim: Victim) {
    const EVENTS: usize = 60_000;
    const PARTITIONS: i32 = 6;
    let _turn = lock();
    let nodes = nodes();
    let brokers = kafka_brokers();
    let db = unique(prefix);
    let topic = unique(&format!("vigil-{prefix}"));
    let group = unique("g");
    create_topic(&brokers, &topic, PARTITIONS);
    let now = chrono::Utc::now().timestamp_millis();
    let mut sim = TrafficSimulator::new(5, &db);
    let payloads: Vec<Vec<u8>> = (0..EVENTS)
        .map(|i| sim.inference(now - 60_000 + i as i64).json.into_bytes())
        .collect();

    // Collector A writes through node 1, B through node 2 (each fails over to the others).
    let dir = tempfile::tempdir().unwrap();
    let rotated = |first: usize| -> Vec<String> {
        (0..nodes.len())
            .map(|i| nodes[(first + i) % nodes.len()].clone())
            .collect()
    };
    let mut served = Vec::new();
    for (i, first) in [0usize, 1].into_iter().enumerate() {
        let d = dir.path().join(format!("c{i}"));
        std::fs::create_dir_all(&d).unwrap();
        let config = cluster_config(
            &d,
            &url_of(&rotated(first), &db),
            free_port(),
            Some((&brokers, &topic, &group)),
            1,
        );
        served.push(Served::start(&config, &d.join("serve.log"), &["--no-http"]));
        if i == 0 {
            // One migration at a time: B starts once A has created the schema.
            let rt = runtime();
            assert!(
                wait_for(Duration::from_secs(120), || open_when_migrated(
                    &rt,
                    &url_of(&nodes, &db)
                )
                .is_some()),
                "collector A never migrated; log:\n{}",
                served[0].log_text()
            );
        }
    }
    produce(&brokers, &topic, &payloads);

    let rt = runtime();
    let store = open(&rt, &url_of(&nodes, &db));
    let physical = || {
        rt.block_on(queries::count_physical_rows(&store, "inference_events"))
            .unwrap_or(0)
    };
    let reached = wait_for(Duration::from_secs(240), || physical() >= 20_000);
    let logs = |served: &[Served]| {
        served
            .iter()
            .map(|s| s.log_text())
            .collect::<Vec<_>>()
            .join("\n----\n")
    };
    assert!(
        reached,
        "collectors never reached 20000 rows; logs:\n{}",
        logs(&served)
    );
    let killed_at = Instant::now();
    match victim {
        Victim::Collector => served.remove(0).kill9(),
        Victim::Replica(n) => kill_node(n),
    }
    // Done when every event is stored and the stored progress has caught up with the topic: the
    // killed collector may have stored a batch's rows but not its progress, which the survivor
    // re-reads (de-duplicated) once the group has moved the partition to it.
    let complete = wait_for(Duration::from_secs(300), || {
        rt.block_on(queries::count_events(&store, "inference_events"))
            .unwrap_or(0)
            >= EVENTS as u64
            && rt
                .block_on(queries::stored_offsets(&store, &group))
                .is_ok_and(|o| o.iter().map(|o| o.next_offset).sum::<i64>() >= EVENTS as i64)
    });
    assert!(
        complete,
        "not all events arrived after the kill; logs:\n{}",
        logs(&served)
    );
    println!(
        "{prefix}: all {EVENTS} events stored {:.1} s after the kill",
        killed_at.elapsed().as_secs_f64()
    );
    for s in served {
        s.terminate();
    }
    if let Victim::Replica(_) = victim {
        restart_cluster();
    }
    sync_replicas(&nodes, &db, &INGEST_TABLES);

    let store = open(&rt, &url_of(&nodes, &db));
    assert_eq!(
        rt.block_on(queries::count_events(&store, "inference_events"))
            .unwrap(),
        EVENTS as u64,
        "every query sees each event once"
    );
    assert_eq!(
        rt.block_on(queries::count_distinct_events(&store, "inference_events"))
            .unwrap(),
        EVENTS as u64,
        "no event is missing"
    );
    for n in &nodes {
        for sql in [
            format!("SELECT count() FROM `{db}`.inference_events FINAL"),
            format!("SELECT uniqExact(event_id) FROM `{db}`.inference_events"),
        ] {
            assert_eq!(node_count(n, &sql), EVENTS as u64, "{n}: {sql}");
        }
    }
    // Each shard holds its share, both replicas alike.
    let local = |n: &String| {
        node_count(
            n,
            &format!("SELECT uniqExact(event_id) FROM `{db}`.inference_events_local"),
        )
    };
    let (s1, s2) = (local(&nodes[0]), local(&nodes[2]));
    // A replica back from a crash converges; give it time, then require equality.
    wait_for(Duration::from_secs(60), || {
        local(&nodes[1]) == s1 && local(&nodes[3]) == s2
    });
    assert_eq!(local(&nodes[1]), s1, "replicas of shard 1 agree");
    assert_eq!(local(&nodes[3]), s2, "replicas of shard 2 agree");
    assert_eq!(s1 + s2, EVENTS as u64, "shards are disjoint and complete");
    assert!(
        s1 > EVENTS as u64 / 3 && s2 > EVENTS as u64 / 3,
        "{s1} / {s2}"
    );

    let offsets = rt
        .block_on(queries::stored_offsets(&store, &group))
        .unwrap();
    assert_eq!(offsets.len(), PARTITIONS as usize, "{offsets:?}");
    assert_eq!(
        offsets.iter().map(|o| o.next_offset).sum::<i64>(),
        EVENTS as i64,
        "stored progress equals the topic's end offsets: {offsets:?}"
    );
}

enum Victim {
    Collector,
    /// Node number (1-based) of the ClickHouse replica to kill.
    Replica(usize),
}

#[test]
fn kafka_two_collectors_one_killed() {
    two_collectors_survive("cl_kc", Victim::Collector);
}

#[test]
fn kafka_two_collectors_replica_killed() {
    // Node 4: the second replica of shard 2, a node neither collector writes through first.
    two_collectors_survive("cl_kr", Victim::Replica(4));
}

/// `clickhouse://node1,node2/db`: node 1 dies while producers send; requests move to node 2,
/// every acknowledged event is stored once, and `/metrics` shows the node in use and the
/// failover (valid for Prometheus' own checker).
#[test]
fn failover_to_the_next_node_of_the_url() {
    let _turn = lock();
    let nodes = nodes();
    let db = unique("cl_fo");
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = url_of(&nodes[..2], &db);
    let config = cluster_config(dir.path(), &url, port, None, 1);
    let log = dir.path().join("serve.log");
    let served = Served::start(&config, &log, &["--no-kafka"]);
    let base = format!("http://127.0.0.1:{port}");
    let client = http_client();
    wait_healthy(&client, &base, &served);
    let metrics = || {
        client
            .get(format!("{base}/metrics"))
            .send()
            .and_then(|r| r.text())
            .expect("/metrics")
    };
    let in_use = |text: &str, node: &str| {
        text.contains(&format!(
            "vigil_store_node_in_use{{node=\"http://{node}\"}} 1\n"
        ))
    };
    assert!(in_use(&metrics(), &nodes[0]), "{}", metrics());

    let mut sim = TrafficSimulator::new(8, &db);
    let now = chrono::Utc::now().timestamp_millis();
    let mut acknowledged = Vec::new();
    for batch in 0..60 {
        if batch == 20 {
            kill_node(1);
        }
        let events: Vec<_> = (0..100)
            .map(|_| sim.inference(now - 2000 + batch))
            .collect();
        let body = events
            .iter()
            .map(|e| e.json.as_str())
            .collect::<Vec<_>>()
            .join("\n");
        // A producer retries what is not acknowledged; failover should make that rare.
        let mut tries = 0;
        loop {
            tries += 1;
            let resp = client
                .post(format!("{base}/v1/events"))
                .body(body.clone())
                .send();
            match resp {
                Ok(r) if r.status().as_u16() == 200 => break,
                other => {
                    assert!(
                        tries < 20,
                        "batch {batch} never acknowledged: {other:?}; log:\n{}",
                        served.log_text()
                    );
                    std::thread::sleep(Duration::from_millis(500));
                }
            }
        }
        acknowledged.extend(events.into_iter().map(|e| e.event_id));
    }
    let text = metrics();
    assert!(
        in_use(&text, &nodes[1]) && !in_use(&text, &nodes[0]),
        "node 2 in use after node 1 died:\n{text}"
    );
    let failovers: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("vigil_store_failovers_total "))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no vigil_store_failovers_total in\n{text}"));
    assert!(failovers >= 1, "{text}");
    let promtool = Command::new("sh")
        .arg("-c")
        .arg("promtool check metrics")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(text.as_bytes())?;
            c.wait_with_output()
        })
        .expect("promtool (bash scripts/services/promtool.sh install)");
    assert!(
        promtool.status.success() && promtool.stdout.is_empty() && promtool.stderr.is_empty(),
        "promtool check metrics: {}{}\n{text}",
        String::from_utf8_lossy(&promtool.stdout),
        String::from_utf8_lossy(&promtool.stderr)
    );
    served.terminate();

    // Every acknowledged event once, through the surviving nodes, then through all.
    let rt = runtime();
    let store = open(&rt, &url_of(&nodes[1..], &db));
    let n = acknowledged.len() as u64;
    assert_eq!(
        rt.block_on(queries::count_events(&store, "inference_events"))
            .unwrap(),
        n
    );
    assert_eq!(
        rt.block_on(queries::count_distinct_events(&store, "inference_events"))
            .unwrap(),
        n
    );
    restart_cluster();
    sync_replicas(&nodes, &db, &["inference_events"]);
    for node in &nodes {
        assert_eq!(
            node_count(
                node,
                &format!("SELECT count() FROM `{db}`.inference_events FINAL")
            ),
            n,
            "{node} after node 1 came back"
        );
    }
}

/// One store loaded for the equivalence test: its URL, database and configuration.
struct Loaded {
    name: &'static str,
    db: String,
    config: PathBuf,
    /// The same configuration without `[[monitors]]`, for `vigil serve` (so its monitor task
    /// judges no new window while the pages are read).
    serve_config: PathBuf,
    port: u16,
}

impl Loaded {
    fn vigil(&self, args: &[&str]) -> String {
        let out = vigil()
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .output()
            .expect("run vigil");
        assert!(
            out.status.success(),
            "{}: vigil {args:?} failed:\n{}{}",
            self.name,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).replace(&self.db, "DB")
    }
}

/// Removes what legitimately differs between two servers: CSRF tokens (random per process), the
/// store's own description, and the times things were processed (an incident opens when
/// `vigil alerts evaluate` runs, seconds apart on the two stores): any time from `processed_from`
/// on. Every event of the test is older, so the times of data are all compared.
fn normalize(page: &str, db: &str, processed_from: i64) -> String {
    let mut out = mask_times(&page.replace(db, "DB"), processed_from);
    for key in ["name=\"csrf\" value=\"", "data-csrf=\"", "content=\""] {
        let mut rest = out.as_str();
        let mut cleaned = String::with_capacity(out.len());
        while let Some(i) = rest.find(key) {
            cleaned.push_str(&rest[..i + key.len()]);
            rest = &rest[i + key.len()..];
            let end = rest.find('"').unwrap_or(rest.len());
            if key != "content=\"" || rest[..end].len() == 64 {
                cleaned.push('…');
            } else {
                cleaned.push_str(&rest[..end]);
            }
            rest = &rest[end..];
        }
        cleaned.push_str(rest);
        out = cleaned;
    }
    // "ClickHouse server 18.16.1 at http://… (database …[, cluster …])"
    while let Some(i) = out.find("ClickHouse server ") {
        let end = out[i..].find(')').map_or(out.len(), |e| i + e + 1);
        out.replace_range(i..end, "STORE");
    }
    out
}

/// Replaces `YYYY-MM-DDTHH:MM:SS…` and `YYYY-MM-DD HH:MM:SS` times from `from` on by `PROCESSED`.
fn mask_times(s: &str, from: i64) -> String {
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    let b = s.as_bytes();
    while i < b.len() {
        if i + 19 <= b.len() && s.is_char_boundary(i) && s.is_char_boundary(i + 19) {
            let cand = &s[i..i + 19];
            let shaped = cand.bytes().enumerate().all(|(k, c)| match k {
                4 | 7 => c == b'-',
                10 => c == b'T' || c == b' ',
                13 | 16 => c == b':',
                _ => c.is_ascii_digit(),
            });
            if shaped {
                let t = chrono::NaiveDateTime::parse_from_str(
                    &cand.replace('T', " "),
                    "%Y-%m-%d %H:%M:%S",
                )
                .map(|t| t.and_utc().timestamp());
                if t.is_ok_and(|t| t >= from) {
                    out.push_str("PROCESSED");
                    i += 19;
                    continue;
                }
            }
        }
        let ch = s[i..].chars().next().unwrap();
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

/// The single node's URL, or the cluster's over every node.
fn url_of_store(l: &Loaded, nodes: &[String]) -> String {
    if l.name == "cluster" {
        url_of(nodes, &l.db)
    } else {
        clickhouse_url(&l.db)
    }
}

/// What the gateway's mirror records when candidate `v3` of the LLM answers every other
/// request that v1 served (`llm_files`' event ids), slower and longer.
fn mirrored_answers(first_event: i64) -> Vec<vigil_store::rows::ShadowResponseRow> {
    (0..200)
        .filter(|i| i % 2 == 0 && i % 10 != 9)
        .map(|i| {
            let ts = first_event as u64 * 1000 + i * 50;
            vigil_store::rows::ShadowResponseRow {
                request_id: format!("llm-v1-{i}"),
                ts: (ts / 1000) as u32,
                ts_ms: ts,
                model: "assistant".into(),
                version: "v3".into(),
                served_version: "v1".into(),
                unit_id: format!("chat-user-{}", i % 40),
                output: format!("{{\"answer\":\"answer {i} (v3)\"}}"),
                latency_ms: 900.0 + (i % 13) as f64 * 35.0,
                status: if i % 20 == 0 { 500 } else { 200 },
                error: String::new(),
                text: format!("answer {i} (v3)"),
                prompt_tokens: Some(20 + (i % 30) as u32),
                completion_tokens: Some(60 + (i % 50) as u32),
                cost: Some(0.00005 + i as f64 * 1e-7),
            }
        })
        .collect()
}

/// Splits text into numbers and the text between them.
fn tokens(s: &str) -> Vec<(bool, &str)> {
    let b = s.as_bytes();
    let (mut out, mut i, mut text_from) = (Vec::new(), 0, 0);
    while i < b.len() {
        let starts_number = b[i].is_ascii_digit()
            && (i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_'));
        if !starts_number {
            i += 1;
            continue;
        }
        let mut j = i;
        while j < b.len() && (b[j].is_ascii_digit() || b[j] == b'.') {
            j += 1;
        }
        if j < b.len() && (b[j] == b'e' || b[j] == b'E') {
            let mut k = j + 1;
            if k < b.len() && (b[k] == b'-' || b[k] == b'+') {
                k += 1;
            }
            if k < b.len() && b[k].is_ascii_digit() {
                j = k;
                while j < b.len() && b[j].is_ascii_digit() {
                    j += 1;
                }
            }
        }
        out.push((false, &s[text_from..i]));
        out.push((true, &s[i..j]));
        text_from = j;
        i = j;
    }
    out.push((false, &s[text_from..]));
    out
}

/// Equal answers: the same text, and numbers equal up to floating-point summation order
/// (relative 1e-9, or one unit of the last printed decimal where rounding for display flips). A sum over shards adds in another order than a sum over one table, so
/// `avg(latency)` may differ in the 15th digit; anything more is a wrong answer.
fn assert_same(single: &str, cluster: &str, what: &str) {
    let (a, b) = (tokens(single), tokens(cluster));
    let same = a.len() == b.len()
        && a.iter().zip(&b).all(|((num, x), (_, y))| {
            x == y
                || (*num && {
                    match (x.parse::<f64>(), y.parse::<f64>()) {
                        (Ok(fx), Ok(fy)) => {
                            // A value printed with d decimals may round either way when the two
                            // sums straddle a rounding boundary (an SVG coordinate 169.0 vs 169.1):
                            // one unit of the last printed decimal. Integers must match.
                            let unit = match (x.split_once('.'), y.split_once('.')) {
                                (Some((_, dx)), Some((_, dy))) if dx.len() == dy.len() => {
                                    10f64.powi(-(dx.len() as i32)) * 1.000001
                                }
                                _ => 0.0,
                            };
                            (fx - fy).abs() <= (1e-9 * fx.abs().max(fy.abs())).max(unit)
                        }
                        _ => false,
                    }
                })
        });
    if !same {
        let at = single
            .chars()
            .zip(cluster.chars())
            .take_while(|(x, y)| x == y)
            .count();
        let from = at.saturating_sub(200);
        panic!(
            "{what}: single node and cluster differ at char {at}:\n single: …{}\ncluster: …{}",
            single.chars().skip(from).take(600).collect::<String>(),
            cluster.chars().skip(from).take(600).collect::<String>()
        );
    }
}

/// The same events loaded into the single-node server and into the cluster give the same
/// answer to every question a user asks: `vigil status`, KPIs, the monitors' results and the
/// alerts they raise, the A/B analysis, the mirrored-shadow comparison, and every dashboard
/// page (HTML and each chart's CSV: overview, ROI, drift, fairness, experiments, LLM, alerts,
/// shadow), up to the last digits of floating-point sums (see [`assert_same`]).
#[test]
fn single_node_and_cluster_give_the_same_answers() {
    let _turn = lock();
    let nodes = nodes();
    let dir = tempfile::tempdir().unwrap();
    let (events, outcomes) = simulated_traffic(dir.path(), 8000);
    let (exposures, conversions) = experiment_files(dir.path(), 800);
    let (llm_events, llm_feedback, _) = llm_files(dir.path(), 200);
    let end = (chrono::Utc::now().timestamp() + 60).to_string();
    // Every event is older than this; what happens later is processing.
    let processed_from = chrono::Utc::now().timestamp() + 1;
    let shared = shared_config();
    let setups = [
        ("single", clickhouse_url(&unique("eq_single")), None),
        ("cluster", String::new(), Some(cluster_name())),
    ];
    let mut loaded = Vec::new();
    for (name, url, cluster) in setups {
        let db = if url.is_empty() {
            unique("eq_cluster")
        } else {
            url.rsplit('/').next().unwrap().to_string()
        };
        let url = if url.is_empty() {
            url_of(&nodes, &db)
        } else {
            url
        };
        let port = free_port();
        let store = match &cluster {
            None => format!("[store]\nurl = \"{url}\"\n"),
            // A quorum of both replicas: every read, through any node, sees every write.
            Some(c) => format!(
                "[store]\nurl = \"{url}\"\ncluster = \"{c}\"\ninsert_quorum = 2\ninsert_quorum_timeout_ms = 20000\n"
            ),
        };
        let http = format!("[http]\nbind = \"127.0.0.1:{port}\"\n");
        let config = dir.path().join(format!("{name}.toml"));
        std::fs::write(&config, format!("{store}{http}{shared}")).unwrap();
        let monitors_at = shared.find("[[monitors]]").unwrap();
        let serve_config = dir.path().join(format!("{name}-serve.toml"));
        std::fs::write(
            &serve_config,
            format!("{store}{http}{}", &shared[..monitors_at]),
        )
        .unwrap();
        loaded.push(Loaded {
            name,
            db,
            config,
            serve_config,
            port,
        });
    }

    // Load both the same way.
    let mut first_event = None;
    for l in &loaded {
        l.vigil(&["migrate"]);
        for (file, kind) in [
            (&events, "inference"),
            (&outcomes, "outcome"),
            (&exposures, "exposure"),
            (&conversions, "outcome"),
            (&llm_events, "inference"),
            (&llm_feedback, "outcome"),
        ] {
            l.vigil(&["ingest", "--kind", kind, "--file", file.to_str().unwrap()]);
        }
        let first: i64 = *first_event.get_or_insert_with(|| {
            l.vigil(&[
                "sql",
                &format!("SELECT toUInt32(min(ts)) FROM `{}`.inference_events", l.db),
                "--output",
                "TabSeparated",
            ])
            .trim()
            .parse()
            .expect("first event time")
        });
        for at in [first + 8, first + 12, first + 16, first + 20] {
            let at = chrono::DateTime::from_timestamp(at, 0)
                .unwrap()
                .to_rfc3339();
            l.vigil(&["analyze", "--at", &at]);
        }
        l.vigil(&["alerts", "evaluate"]);
        l.vigil(&["rollup"]);
        // The gateway's mirror: a candidate v3 answered every other v1 request of the LLM.
        let rt = runtime();
        let store = open(&rt, &url_of_store(l, &nodes));
        rt.block_on(store.insert(&mirrored_answers(first_event.unwrap())))
            .expect("insert shadow responses");
        if l.name == "cluster" {
            sync_replicas(&nodes, &l.db, &["shadow_responses"]);
        }
    }

    // Command-line answers.
    let since = chrono::DateTime::from_timestamp(first_event.unwrap() - 3600, 0)
        .unwrap()
        .to_rfc3339();
    let until = chrono::DateTime::from_timestamp(end.parse().unwrap(), 0)
        .unwrap()
        .to_rfc3339();
    let questions: Vec<Vec<String>> = vec![
        vec!["status".into(), "--format".into(), "json".into()],
        vec![
            "kpi".into(),
            "--since".into(),
            since.clone(),
            "--until".into(),
            until.clone(),
            "--bucket".into(),
            "15m".into(),
            "--conversion".into(),
            "conversion".into(),
            "--format".into(),
            "json".into(),
        ],
        vec![
            "ab".into(),
            "analyze".into(),
            "--experiment".into(),
            "churn-v2".into(),
        ],
        vec!["alerts".into(), "list".into()],
        vec![
            "shadow".into(),
            "mirrored".into(),
            "--model".into(),
            "assistant".into(),
            "--since".into(),
            since.clone(),
            "--until".into(),
            until.clone(),
        ],
        vec![
            "sql".into(),
            "SELECT monitor, model, version, window_start, window_end, column, method, score, threshold, verdict, reference_rows, current_rows FROM DB.monitor_results FINAL ORDER BY monitor, window_end, column".into(),
            "--output".into(),
            "TabSeparated".into(),
        ],
    ];
    let mut compared = 0;
    for q in &questions {
        let answers: Vec<String> = loaded
            .iter()
            .map(|l| {
                let args: Vec<String> = q
                    .iter()
                    .map(|a| a.replace("DB", &format!("`{}`", l.db)))
                    .collect();
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                normalize(&l.vigil(&args), &l.db, processed_from)
            })
            .collect();
        assert!(
            answers[0].len() > 40,
            "vigil {q:?} answered almost nothing: {}",
            answers[0]
        );
        assert_same(&answers[0], &answers[1], &format!("vigil {q:?}"));
        compared += 1;
    }

    // Every page and every chart's CSV, from a `vigil serve` on each store.
    let served: Vec<Served> = loaded
        .iter()
        .map(|l| {
            Served::start(
                &l.serve_config,
                &dir.path().join(format!("{}-serve.log", l.name)),
                &["--no-kafka"],
            )
        })
        .collect();
    let client = http_client();
    for (l, s) in loaded.iter().zip(&served) {
        wait_healthy(&client, &format!("http://127.0.0.1:{}", l.port), s);
    }
    let pages = [
        "/ui/",
        "/ui/roi",
        "/ui/drift?model=churn&column=monthly_spend",
        "/ui/fairness?model=churn",
        "/ui/experiments?experiment=churn-v2",
        "/ui/llm",
        "/ui/alerts",
        "/ui/shadow",
    ];
    let get = |l: &Loaded, path: &str| -> String {
        let r = client
            .get(format!("http://127.0.0.1:{}{path}", l.port))
            .send()
            .unwrap_or_else(|e| panic!("{}: {path}: {e}", l.name));
        assert_eq!(r.status().as_u16(), 200, "{}: {path}", l.name);
        normalize(&r.text().unwrap(), &l.db, processed_from)
    };
    let mut csvs = 0;
    for page in pages {
        let sep = if page.contains('?') { '&' } else { '?' };
        let path = format!("{page}{sep}range=24h&end={end}");
        let html: Vec<String> = loaded.iter().map(|l| get(l, &path)).collect();
        println!(
            "{path}: {} empty states",
            html[0].matches("class=\"empty\"").count()
        );
        assert_same(&html[0], &html[1], &path);
        compared += 1;
        for link in html[0].split("href=\"").skip(1) {
            let link = &link[..link.find('"').unwrap()];
            if !link.contains("/csv?") {
                continue;
            }
            let link = link.replace("&amp;", "&");
            let data: Vec<String> = loaded.iter().map(|l| get(l, &link)).collect();
            assert!(data[0].lines().count() > 1, "{link} has no rows");
            assert_same(&data[0], &data[1], &link);
            csvs += 1;
        }
    }
    println!("{compared} answers and {csvs} chart CSVs equal on one node and on the cluster");
    assert!(csvs >= 10, "only {csvs} charts compared");
    for s in served {
        s.terminate();
    }
}
