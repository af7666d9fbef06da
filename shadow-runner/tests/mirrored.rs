//! The gateway-mirror source against the ClickHouse 18.16 server: shadow responses joined with the
//! inferences production served for the same requests (pushdown). Needs
//! `bash scripts/services/up.sh` (fails naming it when the server is missing).

use vigil_shadow_runner::replay::mirrored::compare_mirrored;
use vigil_shadow_runner::traffic::{inference_json, IntentTraffic};
use vigil_store::event::{parse_event, EventKind, EventTime, Limits};
use vigil_store::rows::{RowBatch, ShadowResponseRow, SourceCoord};
use vigil_store::Store;

fn server() -> String {
    let host = std::env::var("VIGIL_TEST_CLICKHOUSE").unwrap_or_else(|_| "127.0.0.1:18123".into());
    let ok = std::net::TcpStream::connect(&host).is_ok();
    assert!(
        ok,
        "no ClickHouse server at {host}: start it with `bash scripts/services/up.sh`"
    );
    host
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirrored_answers_on_the_clickhouse_server() {
    let db = format!("shadow_mirror_{}", std::process::id());
    let store = Store::open(&format!("clickhouse://{}/{db}", server()))
        .await
        .expect("open");
    exercise(store, &db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirrored_answers_on_embedded_chdb() {
    let dir = std::env::temp_dir().join(format!("vigil-shadow-mirror-{}", std::process::id()));
    let store = Store::open(&format!("chdb://{}?database=mirror", dir.display()))
        .await
        .expect("open chDB store (install it with `bash scripts/services/chdb.sh install`)");
    exercise(store, "mirror").await;
    let _ = std::fs::remove_dir_all(&dir);
}

async fn exercise(store: Store, db: &str) {
    store.migrate(None).await.expect("migrate");
    let t0: i64 = 1_790_000_000;
    let mut traffic = IntentTraffic::new(9);
    let mut batch = RowBatch::default();
    let mut responses = Vec::new();
    let coord = SourceCoord {
        source: "test".into(),
        partition: -1,
        offset: 0,
    };
    // 100 served requests; candidate `v2` answered 90 of them (60 with the served label, 30
    // with another), 10 timed out; 5 mirrored requests have no served inference in the store.
    for i in 0..105i64 {
        let req = traffic.next_request();
        let id = format!("r{i}");
        let ts_ms = (t0 + i) * 1000;
        if i < 100 {
            let json = inference_json(
                &id,
                ts_ms,
                "intent",
                "v1",
                "u",
                &req,
                ("balance", 0.75),
                10.0,
            );
            let event = parse_event(
                EventKind::Inference,
                json.as_bytes(),
                &Limits::default(),
                EventTime(ts_ms),
            )
            .expect("valid");
            batch.push_event(event, &coord);
        }
        let (status, output) = match i {
            0..=59 => (200, r#"{"label":"balance","score":0.5}"#.to_string()),
            60..=89 => (200, r#"{"label":"transfer","score":0.25}"#.to_string()),
            90..=99 => (0, String::new()),
            _ => (200, r#"{"label":"balance","score":0.5}"#.to_string()),
        };
        responses.push(ShadowResponseRow {
            request_id: id,
            ts: (t0 + i) as u32,
            ts_ms: ts_ms as u64,
            model: "intent".into(),
            version: "v2".into(),
            served_version: "v1".into(),
            unit_id: "u".into(),
            output,
            latency_ms: 20.0 + (i % 10) as f64,
            status,
            error: String::new(),
            ..Default::default()
        });
    }
    store
        .insert(&batch.inference)
        .await
        .expect("insert inferences");
    store.insert(&responses).await.expect("insert responses");

    let rows = compare_mirrored(&store, "intent", t0 as u32, (t0 + 200) as u32)
        .await
        .expect("compare");
    store
        .execute(&format!("DROP DATABASE IF EXISTS `{db}`"))
        .await
        .expect("drop");
    assert_eq!(rows.len(), 1, "{rows:?}");
    let r = &rows[0];
    assert_eq!(r.candidate, "v2");
    assert_eq!((r.requests, r.answered, r.matched), (105, 95, 100));
    // Answered and matched: 90 (0..=89); 60 agree.
    assert!((r.agreement - 60.0 / 90.0).abs() < 1e-9, "{r:?}");
    // Score deltas: 60 × (0.5 − 0.75) and 30 × (0.25 − 0.75) over 90.
    let want = (60.0 * -0.25 + 30.0 * -0.5) / 90.0;
    assert!((r.score_delta_mean - want).abs() < 1e-6, "{r:?}");
    assert!(
        r.cand_latency_p50 >= 20.0 && r.cand_latency_p95 <= 29.0,
        "{r:?}"
    );
    assert!((r.served_latency_p50 - 10.0).abs() < 1e-9, "{r:?}");
}
