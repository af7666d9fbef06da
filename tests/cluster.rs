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
/// complete without a quorum).
fn sync_replicas(nodes: &[String], db: &str, tables: &[&str]) {
    for n in nodes {
        for t in tables {
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
    let complete = wait_for(Duration::from_secs(300), || {
        rt.block_on(queries::count_events(&store, "inference_events"))
            .unwrap_or(0)
            >= EVENTS as u64
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
