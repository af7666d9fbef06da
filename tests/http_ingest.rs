//! HTTP ingest into embedded chDB, through the real `vigil serve` binary: per-item results,
//! hostile payloads into dead letters with reasons, auth, 413, and valid events unaffected.

mod common;

use common::*;
use std::time::Duration;
use vigil_collector::simulate::TrafficSimulator;
use vigil_store::{queries, Store};

const HOSTILE: usize = 1000;
const VALID: usize = 5000;

#[test]
fn http_to_chdb_with_hostile_payloads() {
    require_chdb();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let url = format!("chdb://{}", data.display());
    let port = free_port();
    let config = write_config(dir.path(), &url, port, None);
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("\n[[auth.tokens]]\nname = \"producer\"\nrole = \"ingest\"\ntoken_env = \"TEST_INGEST_TOKEN\"\n\n[[auth.tokens]]\nname = \"dash\"\nrole = \"viewer\"\ntoken = \"viewer-secret\"\n");
    std::fs::write(&config, text).unwrap();
    let log = dir.path().join("serve.log");
    std::env::set_var("TEST_INGEST_TOKEN", "ingest-secret");
    let served = Served::start(&config, &log, &[]);
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    assert!(
        wait_for(Duration::from_secs(60), || client
            .get(format!("{base}/healthz"))
            .send()
            .is_ok_and(|r| r.status().is_success())),
        "server never became healthy; log:\n{}",
        served.log_text()
    );
    let post = |path: &str, body: Vec<u8>, token: Option<&str>| {
        let mut req = client.post(format!("{base}{path}")).body(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().expect("request");
        let status = resp.status().as_u16();
        let json: serde_json::Value = resp.json().unwrap_or(serde_json::Value::Null);
        (status, json)
    };
    let now = chrono::Utc::now().timestamp_millis();
    let mut sim = TrafficSimulator::new(3, "http");

    // Auth: no token 401, wrong role 403; nothing is stored for refused requests.
    let one = sim.inference(now).json.into_bytes();
    assert_eq!(post("/v1/events", one.clone(), None).0, 401);
    assert_eq!(
        post("/v1/events", one.clone(), Some("viewer-secret")).0,
        403
    );
    assert_eq!(post("/v1/events", one, Some("nope")).0, 401);

    // Valid events as a JSON array and as NDJSON.
    let valid: Vec<String> = (0..VALID).map(|_| sim.inference(now).json).collect();
    let (status, reply) = post(
        "/v1/events",
        format!("[{}]", valid[..2500].join(",")).into_bytes(),
        Some("ingest-secret"),
    );
    assert_eq!(
        (status, reply["accepted"].as_u64()),
        (200, Some(2500)),
        "{reply}"
    );
    let (status, reply) = post(
        "/v1/events",
        valid[2500..].join("\n").into_bytes(),
        Some("ingest-secret"),
    );
    assert_eq!(
        (status, reply["accepted"].as_u64()),
        (200, Some(2500)),
        "{reply}"
    );

    // Hostile payloads one per request (each is a whole body), plus mixed batches with per-item
    // results: 1000 hostile payloads in total.
    let mut hostile_sent = 0;
    let mut expected_dead = 0;
    let mut kinds_seen = std::collections::BTreeSet::new();
    for i in 0..100 {
        let bad = sim.hostile(i, now);
        let (status, reply) = post("/v1/events", bad, Some("ingest-secret"));
        assert!(
            status == 400,
            "hostile kind {} answered {status}: {reply}",
            i % TrafficSimulator::HOSTILE_KINDS
        );
        kinds_seen.insert(i % TrafficSimulator::HOSTILE_KINDS);
        hostile_sent += 1;
        // A top-level array (`[1,2,3]`) is a batch of three bad items, each kept on its own.
        expected_dead += if i % TrafficSimulator::HOSTILE_KINDS == 16 {
            3
        } else {
            1
        };
    }
    // Items of an NDJSON batch cannot contain raw newlines; the deep and huge kinds are covered
    // above. Mixed batches: 10 valid + 10 hostile per request.
    let mut i = 100;
    while hostile_sent < HOSTILE {
        let mut body = Vec::new();
        let mut expected_bad = 0;
        for k in 0..20 {
            if k % 2 == 0 {
                body.extend_from_slice(sim.inference(now).json.as_bytes());
            } else {
                let bad = sim.hostile(i, now);
                i += 1;
                if bad.contains(&b'\n') || bad.is_empty() {
                    continue;
                }
                body.extend_from_slice(&bad);
                expected_bad += 1;
            }
            body.push(b'\n');
        }
        let (status, reply) = post("/v1/events", body, Some("ingest-secret"));
        assert_eq!(status, 207, "{reply}");
        assert_eq!(reply["accepted"].as_u64(), Some(10), "{reply}");
        assert_eq!(reply["rejected"].as_u64(), Some(expected_bad), "{reply}");
        for e in reply["errors"].as_array().unwrap() {
            assert!(!e["reason"].as_str().unwrap_or("").is_empty());
            assert!(
                e["index"].as_u64().unwrap() % 2 == 1,
                "only odd items are bad: {e}"
            );
        }
        hostile_sent += expected_bad as usize;
        expected_dead += expected_bad as usize;
    }

    // Too large: 413 with a message, before parsing.
    let huge = vec![b' '; (64 << 20) + 10];
    assert_eq!(post("/v1/events", huge, Some("ingest-secret")).0, 413);

    // Outcomes and exposures have their own endpoints.
    let inf = sim.inference(now);
    let (status, _) = post(
        "/v1/outcomes",
        sim.outcome(&inf, now).into_bytes(),
        Some("ingest-secret"),
    );
    assert_eq!(status, 200);
    let exposure = format!(
        r#"{{"event_id":"x-1","ts":{now},"experiment":"exp","variant":"b","unit_id":"u1"}}"#
    );
    assert_eq!(
        post(
            "/v1/exposures",
            exposure.into_bytes(),
            Some("ingest-secret")
        )
        .0,
        200
    );

    let metrics = client
        .get(format!("{base}/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        metrics.contains("vigil_events_rejected_total{source=\"http\",kind=\"inference\"}"),
        "{metrics}"
    );
    served.terminate();

    // Read back from the store after the server released the chDB directory.
    let rt = runtime();
    let store = rt.block_on(Store::open(&url)).unwrap();
    let totals = rt.block_on(queries::table_counts(&store)).unwrap();
    assert!(hostile_sent >= HOSTILE);
    assert_eq!(
        totals.dead_letters as usize, expected_dead,
        "every hostile payload is a dead letter"
    );
    assert!(totals.inference as usize >= VALID, "{totals:?}");
    assert_eq!(totals.outcomes, 1);
    assert_eq!(totals.exposures, 1);
    let summary = rt.block_on(queries::dead_letter_summary(&store)).unwrap();
    assert!(summary.iter().all(|s| !s.example_reason.is_empty()));
    let fields: std::collections::BTreeSet<&str> =
        summary.iter().map(|s| s.field.as_str()).collect();
    for f in [
        "features.age",
        "$",
        "latency_ms",
        "event_id",
        "features",
        "ts",
        "surprise",
    ] {
        assert!(
            fields.iter().any(|x| x.starts_with(f)),
            "no dead letter names {f}: {fields:?}"
        );
    }
    // Invalid UTF-8 is kept losslessly (base64) and huge payloads keep their size.
    #[derive(clickhouse::Row, serde::Deserialize)]
    struct Enc {
        b64: u64,
        biggest: u64,
    }
    let enc = rt
        .block_on(store.fetch::<Enc>(&format!(
            "SELECT toUInt64(countIf(payload_encoding = 'base64')) AS b64, toUInt64(max(payload_bytes)) AS biggest FROM {}",
            store.table("dead_letters")
        )))
        .unwrap();
    assert!(enc[0].b64 > 0);
    assert!(enc[0].biggest > 1_000_000);
    assert_eq!(kinds_seen.len(), TrafficSimulator::HOSTILE_KINDS);
}
