//! Semantic comparison of the gateway's mirrored LLM answers (`shadow_responses.text`) with the
//! answers production served (`inference_events.output`), on the ClickHouse 18.16 server and on
//! embedded chDB, with the real sentence encoder. Needs `bash scripts/services/up.sh`,
//! `bash scripts/services/chdb.sh install` and `bash scripts/models/fetch.sh`.

use vigil_shadow_runner::llm::{compare_mirrored_llm, LlmPolicy};
use vigil_shadow_runner::{default_models_dir, Device, SentenceEncoder};
use vigil_store::event::{parse_event, EventKind, EventTime, Limits};
use vigil_store::rows::{RowBatch, ShadowResponseRow, SourceCoord};
use vigil_store::Store;

const ANSWERS: &[&str] = &[
    "To reset your password, open Settings, choose Security and click Reset password.",
    "You can export invoices from the Billing page with the Download CSV button.",
    "Cancel the premium plan under Account, then Subscription, then Cancel.",
    "Two-factor authentication is enabled from Security settings with an authenticator app.",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirrored_llm_answers_on_the_clickhouse_server() {
    let host = std::env::var("VIGIL_TEST_CLICKHOUSE").unwrap_or_else(|_| "127.0.0.1:18123".into());
    assert!(
        std::net::TcpStream::connect(&host).is_ok(),
        "no ClickHouse server at {host}: start it with `bash scripts/services/up.sh`"
    );
    let db = format!("shadow_mirror_llm_{}", std::process::id());
    let store = Store::open(&format!("clickhouse://{host}/{db}"))
        .await
        .expect("open");
    exercise(&store).await;
    store
        .execute(&format!("DROP DATABASE IF EXISTS `{db}`"))
        .await
        .expect("drop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirrored_llm_answers_on_embedded_chdb() {
    let dir = tempfile_dir();
    let store = Store::open(&format!("chdb://{}?database=mirror", dir.display()))
        .await
        .expect("open chDB store (install it with `bash scripts/services/chdb.sh install`)");
    exercise(&store).await;
    let _ = std::fs::remove_dir_all(&dir);
}

fn tempfile_dir() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("vigil-shadow-mirror-llm-{}", std::process::id()))
}

async fn exercise(store: &Store) {
    store.migrate(None).await.expect("migrate");
    let t0: i64 = 1_790_000_000;
    let coord = SourceCoord {
        source: "test".into(),
        partition: -1,
        offset: 0,
    };
    let mut batch = RowBatch::default();
    let mut responses = Vec::new();
    // 40 served LLM requests; `same` mirrors production's answer (one mirror timed out), `away`
    // answers with a refusal.
    for i in 0..40i64 {
        let id = format!("q{i}");
        let ts_ms = (t0 + i) * 1000;
        let answer = ANSWERS[i as usize % ANSWERS.len()];
        let json = serde_json::json!({
            "event_id": id, "ts": ts_ms, "model": "assistant", "version": "v1", "unit_id": "u",
            "input": format!("question {i}"), "latency_ms": 500.0, "cost": 0.002,
            "generation": {"output": answer, "prompt_tokens": 10, "completion_tokens": 20,
                           "ttft_ms": 100.0, "finish_reason": "stop"}
        })
        .to_string();
        let event = parse_event(
            EventKind::Inference,
            json.as_bytes(),
            &Limits::default(),
            EventTime(ts_ms),
        )
        .expect("valid");
        batch.push_event(event, &coord);
        for (version, text, status) in [
            ("same", answer, if i == 39 { 0 } else { 200 }),
            ("away", "I'm sorry, but I cannot help with that.", 200),
        ] {
            let ok = status == 200;
            responses.push(ShadowResponseRow {
                request_id: id.clone(),
                ts: (t0 + i) as u32,
                ts_ms: ts_ms as u64,
                model: "assistant".into(),
                version: version.into(),
                served_version: "v1".into(),
                unit_id: "u".into(),
                output: if ok {
                    format!(r#"{{"choices":[{{"message":{{"content":"{text}"}}}}]}}"#)
                } else {
                    String::new()
                },
                latency_ms: 250.0,
                status,
                error: if ok { String::new() } else { "timeout".into() },
                text: if ok { text.into() } else { String::new() },
                prompt_tokens: Some(10),
                completion_tokens: ok.then_some(if version == "same" { 20 } else { 10 }),
                cost: ok.then_some(0.001),
            });
        }
    }
    store
        .insert(&batch.inference)
        .await
        .expect("insert inferences");
    store.insert(&responses).await.expect("insert responses");

    let encoder =
        SentenceEncoder::load(&default_models_dir().join("all-MiniLM-L6-v2"), &Device::Cpu)
            .expect("all-MiniLM-L6-v2 (bash scripts/models/fetch.sh)");
    let rows = compare_mirrored_llm(
        store,
        "assistant",
        (t0 as u32, (t0 + 100) as u32),
        &encoder,
        &LlmPolicy::default(),
    )
    .await
    .expect("compare");
    assert_eq!(rows.len(), 2, "{rows:?}");
    let (away, same) = (&rows[0].1, &rows[1].1);
    assert_eq!((rows[0].0.as_str(), rows[1].0.as_str()), ("away", "same"));
    assert_eq!((same.requests, same.errors, same.answered), (40, 1, 39));
    assert!(same.similarity_low > 0.999, "{same:?}");
    assert_eq!(same.token_ratio, 1.0);
    assert!((same.latency_delta_ms + 250.0).abs() < 1e-9, "{same:?}");
    assert!((same.cost_delta + 0.001).abs() < 1e-12, "{same:?}");
    assert_eq!(same.prod_ttft_ms, 100.0);
    assert_eq!(same.verdict, "equivalent", "{same:?}");
    assert_eq!((away.requests, away.errors, away.answered), (40, 0, 40));
    assert_eq!(away.cand_refusal_rate, 1.0);
    assert_eq!(away.token_ratio, 0.5);
    assert!(away.similarity_high < 0.5, "{away:?}");
    assert_eq!(away.verdict, "rejected", "{away:?}");
}
