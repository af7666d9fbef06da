//! Exactly-once ingest from Kafka into the ClickHouse server across `kill -9` of the collector.
//!
//! 200k events go to a 3-partition topic; `vigil serve` is SIGKILLed twice mid-stream and
//! restarted. Afterwards every query sees each event exactly once, and the store's progress
//! table matches the partitions' high watermarks.

mod common;

use common::*;
use std::time::Duration;
use vigil_collector::simulate::TrafficSimulator;
use vigil_store::{queries, Store};

const EVENTS: usize = 200_000;

#[test]
fn exactly_once_across_kill_9() {
    let brokers = kafka_brokers();
    let db = unique("eo");
    let url = clickhouse_url(&db);
    let topic = unique("vigil-eo");
    let group = unique("g");
    create_topic(&brokers, &topic, 3);

    let now = chrono::Utc::now().timestamp_millis();
    let mut sim = TrafficSimulator::new(11, &db);
    let payloads: Vec<Vec<u8>> = (0..EVENTS)
        .map(|i| {
            sim.inference(now - 60_000 + (i as i64 % 60_000))
                .json
                .into_bytes()
        })
        .collect();
    produce(&brokers, &topic, &payloads);

    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &url,
        free_port(),
        Some((&brokers, &topic, &group)),
    );
    let log = dir.path().join("serve.log");
    let rt = runtime();
    // The first run creates the schema; open the store after it has.
    let physical = |store: &Store| {
        rt.block_on(queries::count_physical_rows(store, "inference_events"))
            .unwrap_or(0)
    };

    let mut store: Option<Store> = None;
    for kill_at in [50_000u64, 130_000] {
        let served = Served::start(&config, &log, &["--no-http"]);
        let reached = wait_for(Duration::from_secs(180), || {
            if store.is_none() {
                store = open_when_migrated(&rt, &url);
            }
            store.as_ref().is_some_and(|s| physical(s) >= kill_at)
        });
        assert!(
            reached,
            "collector never reached {kill_at} rows; log:\n{}",
            served.log_text()
        );
        served.kill9();
    }
    let store = store.expect("store opened");
    let served = Served::start(&config, &log, &["--no-http"]);
    let complete = wait_for(Duration::from_secs(240), || {
        rt.block_on(queries::count_events(&store, "inference_events"))
            .unwrap_or(0)
            >= EVENTS as u64
    });
    // Give a straggling duplicate batch the chance to land before the final checks.
    std::thread::sleep(Duration::from_secs(2));
    served.terminate();
    assert!(
        complete,
        "not all events arrived; log:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );

    let deduped = rt
        .block_on(queries::count_events(&store, "inference_events"))
        .unwrap();
    let distinct = rt
        .block_on(queries::count_distinct_events(&store, "inference_events"))
        .unwrap();
    let physical_rows = physical(&store);
    println!(
        "physical rows {physical_rows} (replayed duplicates: {}), de-duplicated {deduped}",
        physical_rows - deduped
    );
    assert_eq!(deduped, EVENTS as u64, "every query sees each event once");
    assert_eq!(distinct, EVENTS as u64, "no event is missing");

    // Aggregates through FINAL agree with the de-duplicated count.
    let by_version = rt
        .block_on(queries::counts_by_version(&store, 0, u32::MAX))
        .unwrap();
    assert_eq!(
        by_version.iter().map(|v| v.events).sum::<u64>(),
        EVENTS as u64
    );

    // The store's progress equals the topic's end offsets.
    let offsets = rt
        .block_on(queries::stored_offsets(&store, &group))
        .unwrap();
    assert_eq!(offsets.len(), 3, "{offsets:?}");
    assert_eq!(
        offsets.iter().map(|o| o.next_offset).sum::<i64>(),
        EVENTS as i64,
        "{offsets:?}"
    );

    // No dead letters: every event was valid.
    assert_eq!(
        rt.block_on(queries::count_physical_rows(&store, "dead_letters"))
            .unwrap(),
        0
    );
}

/// 1,000 malformed or hostile Kafka messages between valid ones: each becomes a dead letter with
/// its reason and coordinates, and the valid events are all stored.
#[test]
fn hostile_kafka_messages_become_dead_letters() {
    let brokers = kafka_brokers();
    let db = unique("hostile");
    let url = clickhouse_url(&db);
    let topic = unique("vigil-hostile");
    let group = unique("g");
    create_topic(&brokers, &topic, 3);
    let now = chrono::Utc::now().timestamp_millis();
    let mut sim = TrafficSimulator::new(9, &db);
    let mut payloads = Vec::new();
    for i in 0..1000 {
        payloads.push(sim.hostile(i, now));
        for _ in 0..5 {
            payloads.push(sim.inference(now).json.into_bytes());
        }
    }
    produce(&brokers, &topic, &payloads);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &url,
        free_port(),
        Some((&brokers, &topic, &group)),
    );
    let log = dir.path().join("serve.log");
    let served = Served::start(&config, &log, &["--no-http"]);
    let rt = runtime();
    let mut store: Option<Store> = None;
    let done = wait_for(Duration::from_secs(120), || {
        if store.is_none() {
            store = open_when_migrated(&rt, &url);
        }
        store.as_ref().is_some_and(|s| {
            rt.block_on(queries::count_events(s, "inference_events"))
                .unwrap_or(0)
                >= 5000
                && rt
                    .block_on(queries::count_physical_rows(s, "dead_letters"))
                    .unwrap_or(0)
                    >= 1000
        })
    });
    served.terminate();
    assert!(
        done,
        "log:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let store = store.unwrap();
    assert_eq!(
        rt.block_on(queries::count_events(&store, "inference_events"))
            .unwrap(),
        5000
    );
    #[derive(clickhouse::Row, serde::Deserialize)]
    struct Dead {
        n: u64,
        coords: u64,
        empty_reasons: u64,
    }
    let dead = rt
        .block_on(store.fetch::<Dead>(&format!(
            "SELECT toUInt64(count()) AS n, toUInt64(uniqExact(src_partition, src_offset)) AS coords,
                    toUInt64(countIf(reason = '')) AS empty_reasons
             FROM {} WHERE source = {}",
            store.table("dead_letters"),
            vigil_store::sql_string(&format!("kafka:{topic}"))
        )))
        .unwrap();
    assert_eq!(
        dead[0].coords, 1000,
        "each hostile message is kept with its own coordinates"
    );
    assert_eq!(dead[0].n, 1000);
    assert_eq!(dead[0].empty_reasons, 0);
}
