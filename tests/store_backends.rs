//! The store's two backends against real engines: ClickHouse 18.16 (server) and chDB 26.x.
//! Every typed query runs on both, so the SQL stays inside their common subset.

mod common;

use vigil_store::queries;
use vigil_store::rows::*;
use vigil_store::Store;

fn inference(id: &str, ts: u32, model: &str, version: &str, score: Option<f64>) -> InferenceRow {
    InferenceRow {
        event_id: id.into(),
        ts,
        ts_ms: ts as u64 * 1000 + 123,
        model: model.into(),
        version: version.into(),
        unit_id: "u-é'\"\\\n😀".into(),
        num_names: vec!["age".into()],
        num_values: vec![31.5],
        cat_names: vec!["plan".into()],
        cat_values: vec!["pro".into()],
        score,
        label: score.map(|s| if s > 0.5 { "yes".into() } else { "no".into() }),
        latency_ms: Some(10.0),
        cost: None,
        attr_names: vec![],
        attr_values: vec![],
        experiment: String::new(),
        variant: String::new(),
        input: "héllo 世界".into(),
        source: "test".into(),
        src_partition: 0,
        src_offset: 1,
        ingested_at: ts,
        ..Default::default()
    }
}

async fn exercise(store: Store) {
    let first = store.migrate(None).await.expect("migrate");
    let all: Vec<u32> = vigil_store::schema::migrations(&Default::default())
        .iter()
        .map(|m| m.version)
        .collect();
    assert_eq!(first, all, "fresh database gets every migration, in order");
    let again = store.migrate(None).await.expect("migrate again");
    assert!(again.is_empty(), "migrations are idempotent");
    assert_eq!(
        store.schema_version().await.unwrap(),
        all.last().copied().unwrap_or(0)
    );

    let t0 = 1_790_000_000u32; // 2026-09-21
    let rows = vec![
        inference("a", t0, "churn", "v1", Some(0.9)),
        inference("b", t0 + 30, "churn", "v1", Some(0.1)),
        inference("c", t0 + 70, "churn", "v2", None),
        inference("d", t0 + 10, "fraud", "v1", Some(0.5)),
    ];
    store.insert(&rows).await.expect("insert");
    // A replay of the same event must not count twice.
    store.insert(&rows[..1]).await.expect("insert duplicate");
    assert_eq!(
        queries::count_physical_rows(&store, "inference_events")
            .await
            .unwrap(),
        5
    );
    assert_eq!(
        queries::count_events(&store, "inference_events")
            .await
            .unwrap(),
        4
    );
    assert_eq!(
        queries::count_distinct_events(&store, "inference_events")
            .await
            .unwrap(),
        4
    );

    let by_version = queries::counts_by_version(&store, t0, t0 + 3600)
        .await
        .unwrap();
    assert_eq!(by_version.len(), 3, "{by_version:?}");
    assert_eq!(
        (
            by_version[0].model.as_str(),
            by_version[0].version.as_str(),
            by_version[0].events
        ),
        ("churn", "v1", 2)
    );
    assert!((by_version[0].mean_score - 0.5).abs() < 1e-12);
    assert_eq!(by_version[1].events, 1);
    assert_eq!(by_version[1].mean_score, 0.0, "all-null scores read as 0");
    assert_eq!(by_version[0].last_ts, t0 + 30);

    let buckets = queries::time_buckets(&store, "churn", 60, t0 - 3600, t0 + 3600)
        .await
        .unwrap();
    let start = t0 / 60 * 60;
    let got: Vec<(u32, &str, u64)> = buckets
        .iter()
        .map(|b| (b.bucket, b.version.as_str(), b.events))
        .collect();
    let mut expected = vec![];
    for r in rows.iter().filter(|r| r.model == "churn") {
        let b = r.ts / 60 * 60;
        match expected
            .iter_mut()
            .find(|(eb, ev, _): &&mut (u32, &str, u64)| *eb == b && *ev == r.version)
        {
            Some(e) => e.2 += 1,
            None => expected.push((b, r.version.as_str(), 1)),
        }
    }
    expected.sort();
    assert_eq!(got, expected);
    assert!(got.iter().all(|(b, _, _)| *b >= start));

    let outcome = OutcomeRow {
        event_id: "o1".into(),
        ts: t0,
        ts_ms: t0 as u64 * 1000,
        unit_id: "u".into(),
        model: "churn".into(),
        inference_id: "a".into(),
        name: "churned".into(),
        value: 1.0,
        source: "t".into(),
        src_partition: -1,
        src_offset: 0,
        ingested_at: t0,
    };
    store.insert(&[outcome]).await.unwrap();
    let exposure = ExposureRow {
        event_id: "x1".into(),
        ts: t0,
        ts_ms: t0 as u64 * 1000,
        experiment: "exp".into(),
        variant: "b".into(),
        unit_id: "u".into(),
        model: "churn".into(),
        version: "v2".into(),
        attr_names: vec!["region".into()],
        attr_values: vec!["eu".into()],
        source: "t".into(),
        src_partition: -1,
        src_offset: 0,
        ingested_at: t0,
    };
    store.insert(&[exposure]).await.unwrap();
    let coord = SourceCoord {
        source: "kafka:t".into(),
        partition: 2,
        offset: 99,
    };
    let dead = vec![
        DeadLetterRow::new(
            vigil_store::event::EventKind::Inference,
            &coord,
            "features.age",
            "must be a finite number",
            b"{\"x\":NaN}",
        ),
        DeadLetterRow::new(
            vigil_store::event::EventKind::Inference,
            &coord,
            "$",
            "not valid JSON",
            &[0xff, 0x00, 0x41],
        ),
    ];
    store.insert(&dead).await.unwrap();
    let totals = queries::table_counts(&store).await.unwrap();
    assert_eq!(
        (
            totals.inference,
            totals.outcomes,
            totals.exposures,
            totals.dead_letters
        ),
        (4, 1, 1, 2)
    );
    let summary = queries::dead_letter_summary(&store).await.unwrap();
    assert_eq!(summary.len(), 2);
    assert!(summary
        .iter()
        .any(|s| s.field == "features.age" && s.count == 1 && s.example_reason.contains("finite")));

    let offsets = vec![
        IngestOffsetRow {
            consumer_group: "g".into(),
            topic: "t".into(),
            partition: 0,
            next_offset: 10,
            written_at: t0,
        },
        IngestOffsetRow {
            consumer_group: "g".into(),
            topic: "t".into(),
            partition: 0,
            next_offset: 25,
            written_at: t0,
        },
        IngestOffsetRow {
            consumer_group: "g".into(),
            topic: "t".into(),
            partition: 1,
            next_offset: 7,
            written_at: t0,
        },
        IngestOffsetRow {
            consumer_group: "other".into(),
            topic: "t".into(),
            partition: 0,
            next_offset: 99,
            written_at: t0,
        },
    ];
    store.insert(&offsets).await.unwrap();
    let resume = queries::stored_offsets(&store, "g").await.unwrap();
    assert_eq!(
        resume,
        vec![
            queries::StoredOffset {
                topic: "t".into(),
                partition: 0,
                next_offset: 25
            },
            queries::StoredOffset {
                topic: "t".into(),
                partition: 1,
                next_offset: 7
            },
        ]
    );

    // Strings survive the round trip byte for byte (quotes, backslashes, newlines, emoji).
    #[derive(clickhouse::Row, serde::Deserialize)]
    struct Back {
        unit_id: String,
        input: String,
        payload: String,
    }
    let back = store
        .fetch::<Back>(&format!(
            "SELECT toString(i.unit_id) AS unit_id, toString(i.input) AS input,
                    toString((SELECT any(payload) FROM {} WHERE payload_encoding = 'base64')) AS payload
             FROM {} AS i WHERE event_id = 'b'",
            store.table("dead_letters"),
            store.table("inference_events")
        ))
        .await
        .unwrap();
    assert_eq!(back[0].unit_id, "u-é'\"\\\n😀");
    assert_eq!(back[0].input, "héllo 世界");
    assert_eq!(back[0].payload, "/wBB");

    // A bad query reports the engine's message and the SQL.
    let err = store
        .execute("SELECT no_such_column FROM system.one")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no_such_column"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clickhouse_server_backend() {
    let store = Store::open(&common::clickhouse_url(&common::unique("store")))
        .await
        .expect("open server store");
    assert!(
        store.describe().contains("18.16") || std::env::var("VIGIL_TEST_CLICKHOUSE").is_ok(),
        "{}",
        store.describe()
    );
    server_statements_carry_priorities(&store).await;
    exercise(store).await;
}

#[derive(clickhouse::Row, serde::Deserialize)]
struct N {
    n: u64,
}

/// On a server, readers' statements carry query priority 1 and background ones 2, which the
/// server pauses while a reader runs (0, the default, would take no part in priorities).
async fn server_statements_carry_priorities(store: &Store) {
    let priority = |s: Store| async move {
        s.fetch::<N>("SELECT toUInt64(value) AS n FROM system.settings WHERE name = 'priority'")
            .await
            .expect("priority")[0]
            .n
    };
    assert_eq!(priority(store.clone()).await, 1, "a reader's priority");
    assert_eq!(
        priority(store.background()).await,
        2,
        "the compactor's priority"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_chdb_backend() {
    common::require_chdb();
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "chdb://{}?database={}",
        dir.path().display(),
        common::unique("store")
    );
    let store = Store::open(&url).await.expect("open chdb store");
    assert!(
        store.describe().contains("chDB 26."),
        "{}",
        store.describe()
    );
    readers_pass_background_statements(&store).await;
    merges_run_at_low_priority(&store).await;
    exercise(store).await;
}

/// The embedded store's part merges run below the readers' priority (`MERGE_NICE`): a table
/// of six parts is merged in the background, and the merge threads that did it carry the
/// nice value once the store has run a statement after them.
async fn merges_run_at_low_priority(store: &Store) {
    let table = store.table("merge_nice_probe");
    store
        .execute(&format!(
            "CREATE DATABASE IF NOT EXISTS `{}`",
            store.database()
        ))
        .await
        .expect("create database");
    store
        .execute(&format!(
            "CREATE TABLE IF NOT EXISTS {table} (n UInt64) ENGINE = MergeTree ORDER BY n"
        ))
        .await
        .expect("create");
    for i in 0..6 {
        store
            .execute(&format!(
                "INSERT INTO {table} SELECT number + {i} * 100000 FROM numbers(100000)"
            ))
            .await
            .expect("insert");
    }
    let parts = format!(
        "SELECT toUInt64(count()) AS n FROM system.parts WHERE active
         AND database = '{}' AND table = 'merge_nice_probe'",
        store.database()
    );
    let mut merged = false;
    for _ in 0..600 {
        if store.fetch::<N>(&parts).await.expect("parts")[0].n == 1 {
            merged = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(merged, "the six parts were never merged");
    // The store looks for merge threads at most once a second, before a statement.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    store.fetch::<N>(&parts).await.expect("parts");
    let nice: Vec<i64> = std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .flatten()
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm"))
                .is_ok_and(|c| c.trim_end() == "MergeMutate")
        })
        .filter_map(|t| {
            let stat = std::fs::read_to_string(t.path().join("stat")).ok()?;
            // After the command name: state is field 3, nice field 19.
            stat[stat.rfind(')')? + 2..]
                .split(' ')
                .nth(16)?
                .parse()
                .ok()
        })
        .collect();
    assert!(!nice.is_empty(), "no merge threads");
    assert!(
        nice.iter()
            .all(|n| *n == i64::from(vigil_store::backend::chdb::MERGE_NICE)),
        "merge threads' nice values: {nice:?}"
    );
}

/// On the embedded store a background statement (the rollup compactor's) runs on a second
/// chDB connection to the same path, with half the threads and at nice 19: a reader's query
/// is answered while it runs. With one shared connection the reader could only run before or
/// after it, and would never see it in `system.processes`.
async fn readers_pass_background_statements(store: &Store) {
    let setting = |s: Store, name: &'static str| async move {
        s.fetch::<N>(&format!("SELECT toUInt64(getSetting('{name}')) AS n"))
            .await
            .expect(name)[0]
            .n
    };
    let (fg, bg) = (
        setting(store.clone(), "max_threads").await,
        setting(store.background(), "max_threads").await,
    );
    assert_eq!(bg, (fg / 2).max(1), "foreground {fg}, background {bg}");
    assert_eq!(setting(store.clone(), "os_thread_priority").await, 0);
    assert_eq!(
        setting(store.background(), "os_thread_priority").await,
        19,
        "the background connection's nice"
    );
    // Three seconds of background work (sleepEachRow: 0.5 s for each of 6 rows).
    let background = store.background();
    let slow = tokio::spawn(async move {
        background
            .fetch::<N>("SELECT toUInt64(sum(sleepEachRow(0.5))) AS n FROM numbers(6)")
            .await
            .expect("background statement")
    });
    let mut seen = false;
    for _ in 0..300 {
        let running = store
            .fetch::<N>(
                "SELECT toUInt64(count()) AS n FROM system.processes
                 WHERE query LIKE '%sleepEachRow(0.5)%' AND query NOT LIKE '%system.processes%'",
            )
            .await
            .expect("processes")[0]
            .n;
        if running == 1 {
            seen = true;
            break;
        }
        assert!(!slow.is_finished(), "the background statement ended unseen");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(
        seen,
        "a reader never ran while the background statement did"
    );
    assert_eq!(slow.await.expect("join")[0].n, 0);
}
