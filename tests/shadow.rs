//! End-to-end shadow runs with the real binary, real models and real services.
//!
//! 1. Replay (ClickHouse 18.16 server): simulated `intent` traffic whose logged outputs are the
//!    real production model's (all-MiniLM-L6-v2 + LogisticRegression), plus ground-truth
//!    outcomes for a share of it, is replayed by `vigil shadow run` against the LinearSVC head
//!    and the paraphrase-MiniLM-L3-v2 encoder. The replay is interrupted after two pages and
//!    resumed; its totals must equal an uninterrupted run's. The L3 candidate must be flagged
//!    (rejected, less accurate with confidence), the SVC head must mostly agree, and the results
//!    must be visible through `GET /v1/shadow/runs[/{id}]` (viewer token) .
//! 2. Drift → trigger (embedded chDB): drift injected into the traffic makes `vigil analyze` fire,
//!    and `vigil shadow triggers`, run twice, files exactly one retraining request, delivered once
//!    to a webhook receiver (a TcpListener in this test) and once to a Kafka topic (Tansu); the
//!    request's training set exports as JSONL.
//!
//! 3. Live shadow (Tansu + ClickHouse 18.16): the same kind of traffic produced to a
//!    2-partition Kafka topic is replayed by `vigil shadow live`, stopped after 128 events and
//!    resumed from its checkpoint (topic offsets included); the live totals must equal a store
//!    replay of the same events, so nothing was counted twice or missed.
//!
//! Needs `bash scripts/services/up.sh` and `bash scripts/models/fetch.sh`.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use serde_json::Value;
use vigil_shadow_runner::traffic::{inference_json, truth_json, IntentTraffic};
use vigil_shadow_runner::{default_models_dir, Device, LoadedModel, ModelSpec};

/// Events replayed by the test (the documented 10k run is in docs/benchmarks.md; this machine
/// has 2 cores and each event is encoded by two encoders).
const REPLAY_EVENTS: usize = 1500;
const PAGE: usize = 256;

fn require_models() -> std::path::PathBuf {
    let dir = default_models_dir();
    for m in [
        "all-MiniLM-L6-v2",
        "paraphrase-MiniLM-L3-v2",
        "intent-heads",
    ] {
        assert!(
            dir.join(m).exists(),
            "model {m} missing in {}: run `bash scripts/models/fetch.sh`",
            dir.display()
        );
    }
    dir
}

const SHADOW_MODELS: &str = vigil_shadow_runner::traffic::INTENT_SHADOW_MODELS;

fn run_ok(cmd: &mut std::process::Command) -> String {
    let out = cmd.output().expect("run vigil");
    assert!(
        out.status.success(),
        "vigil failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// `candidates` of a `vigil shadow run --format json` report, by candidate id.
fn summary<'a>(report: &'a Value, candidate: &str) -> &'a Value {
    report["candidates"]
        .as_array()
        .expect("candidates")
        .iter()
        .find(|c| c[0] == candidate)
        .map(|c| &c[1])
        .unwrap_or_else(|| panic!("no {candidate} in {report}"))
}

/// Writes `n` intent requests with production's real answers, and truth for ~40% of them.
fn write_traffic(
    dir: &Path,
    n: usize,
    start: i64,
) -> (std::path::PathBuf, std::path::PathBuf, usize) {
    let spec = ModelSpec::from_toml(vigil_shadow_runner::traffic::INTENT_PRODUCTION)
        .expect("spec")
        .resolve_paths(&default_models_dir());
    let production = LoadedModel::load(&spec, &Device::Cpu).expect("load production");
    let mut traffic = IntentTraffic::new(11);
    let reqs: Vec<_> = (0..n).map(|_| traffic.next_request()).collect();
    let texts: Vec<&str> = reqs.iter().map(|r| r.text.as_str()).collect();
    let preds = production
        .run(&texts)
        .expect("run production")
        .predictions
        .expect("head");
    let (inf_path, out_path) = (dir.join("inference.ndjson"), dir.join("outcomes.ndjson"));
    let mut inf = std::fs::File::create(&inf_path).expect("create");
    let mut outc = std::fs::File::create(&out_path).expect("create");
    let mut labelled = 0;
    for (i, (req, pred)) in reqs.iter().zip(&preds).enumerate() {
        let ts_ms = start * 1000 + i as i64 * 2000;
        let id = format!("e{i:05}");
        let unit = format!("u{}", i % 97);
        writeln!(
            inf,
            "{}",
            inference_json(
                &id,
                ts_ms,
                "intent",
                "l6+logreg",
                &unit,
                req,
                (&pred.label, pred.score),
                9.0
            )
        )
        .expect("write");
        if i % 5 < 2 {
            writeln!(
                outc,
                "{}",
                truth_json(&id, ts_ms + 1000, "intent", &unit, req.intent)
            )
            .expect("write");
            labelled += 1;
        }
    }
    (inf_path, out_path, labelled)
}

/// A store holding `n` intent requests (production's real answers) and their truth outcomes,
/// and a `vigil.toml` with `sections` and the shadow registry. Returns the config, the
/// inference file and how many requests are labelled.
fn store_with_traffic(
    dir: &Path,
    url: &str,
    n: usize,
    start: i64,
    sections: &str,
) -> (std::path::PathBuf, std::path::PathBuf, usize) {
    let (inf, outc, labelled) = write_traffic(dir, n, start);
    let config = dir.join("vigil.toml");
    std::fs::write(
        &config,
        format!("[store]\nurl = \"{url}\"\n\n{sections}\n{SHADOW_MODELS}"),
    )
    .expect("config");
    for (file, kind) in [(&inf, "inference"), (&outc, "outcome")] {
        run_ok(vigil().arg("--config").arg(&config).args([
            "ingest",
            "--file",
            file.to_str().expect("utf8"),
            "--kind",
            kind,
        ]));
    }
    (config, inf, labelled)
}

#[test]
fn replay_flags_the_l3_candidate_resumes_and_shows_in_the_api() {
    require_models();
    let db = unique("shadow_replay");
    let url = clickhouse_url(&db);
    let tmp = tempfile::tempdir().expect("tmp");
    let start = chrono::Utc::now().timestamp() - 7200;
    let port = free_port();
    let (config, _, labelled) = store_with_traffic(
        tmp.path(),
        &url,
        REPLAY_EVENTS,
        start,
        &format!(
            "[http]\nbind = \"127.0.0.1:{port}\"\n\n[[auth.tokens]]\nname = \"ui\"\ntoken = \"view-secret\"\nrole = \"viewer\"\n\n[shadow]\npage_size = {PAGE}\nthreads = 2\nbucket = \"1h\"\nmin_labelled = 100"
        ),
    );
    let cli = |args: &[&str]| {
        let mut c = vigil();
        c.arg("--config").arg(&config).args(args);
        run_ok(&mut c)
    };

    // Interrupted after two pages, then resumed.
    let part = json(&cli(&["shadow", "run", "--format", "json", "--pages", "2"]));
    let job = part["job_id"].as_str().expect("job id").to_string();
    assert_eq!(part["processed"], (2 * PAGE) as u64, "{part}");
    let resumed = json(&cli(&[
        "shadow", "run", "--format", "json", "--resume", &job,
    ]));
    assert_eq!(resumed["job_id"], job.as_str());
    assert_eq!(resumed["processed"], REPLAY_EVENTS as u64, "{resumed}");
    assert_eq!(resumed["this_run"], (REPLAY_EVENTS - 2 * PAGE) as u64);

    let svc = summary(&resumed, "intent@l6+svc");
    let l3 = summary(&resumed, "intent@l3+logreg");
    eprintln!("l6+svc: {svc}\nl3+logreg: {l3}");
    // The replayed production model reproduces every logged label.
    assert_eq!(svc["replay_agreement"], 1.0, "{svc}");
    // Two real heads over the same encoder: mostly, not always, the same label.
    let a = svc["agreement"].as_f64().expect("agreement");
    assert!(a > 0.75 && a < 0.995, "l6+svc agreement {a}");
    assert_eq!(
        svc["cosine_mean"].as_f64().map(|c| c > 0.9999),
        Some(true),
        "{svc}"
    );
    assert_ne!(svc["verdict"], "rejected", "{svc}");
    // The L3 encoder into the L6 head: flagged, and less accurate with confidence.
    assert!(l3["agreement"].as_f64().expect("agreement") < 0.6, "{l3}");
    assert_eq!(l3["verdict"], "rejected", "{l3}");
    assert_eq!(l3["labelled"], labelled as u64);
    let high = l3["accuracy_delta"]["high"].as_f64().expect("ci");
    assert!(high < 0.0, "L3 must be worse with confidence: {l3}");
    assert!(l3["f1_delta"]["high"].as_f64().expect("ci") < 0.0, "{l3}");

    // Resumed == uninterrupted (same job totals as a fresh run of the same candidate).
    let fresh = json(&cli(&[
        "shadow",
        "run",
        "--format",
        "json",
        "--candidate",
        "l6+svc",
    ]));
    let f = summary(&fresh, "intent@l6+svc");
    for k in [
        "n",
        "agreement",
        "labelled",
        "score_delta_mean",
        "replay_agreement",
    ] {
        assert_eq!(f[k], svc[k], "{k}: fresh {f} vs resumed {svc}");
    }
    assert_eq!(f["accuracy_delta"]["delta"], svc["accuracy_delta"]["delta"]);

    // The report reads the stored totals back.
    let report = json(&cli(&[
        "shadow", "report", "--run", &job, "--format", "json",
    ]));
    assert_eq!(report["run"]["status"], "done");
    assert_eq!(
        report["totals"].as_array().map(Vec::len),
        Some(2),
        "{report}"
    );
    // Hourly buckets: how many depends on where the replayed window falls on the clock, but per
    // candidate they must add up to the run's total.
    for candidate in ["intent@l6+svc", "intent@l3+logreg"] {
        let in_buckets: u64 = report["buckets"]
            .as_array()
            .expect("buckets")
            .iter()
            .filter(|b| b["candidate"] == candidate)
            .map(|b| b["n"].as_u64().unwrap_or(0))
            .sum();
        assert_eq!(in_buckets, REPLAY_EVENTS as u64, "{candidate}: {report}");
    }
    let table = cli(&["shadow", "report", "--run", &job]);
    assert!(
        table.contains("intent@l3+logreg") && table.contains("rejected"),
        "{table}"
    );

    // And through the API, for viewers only.
    let served = Served::start(&config, &tmp.path().join("serve.log"), &["--no-kafka"]);
    let client = reqwest::blocking::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    assert!(
        wait_for(Duration::from_secs(60), || client
            .get(format!("{base}/v1/shadow/runs"))
            .send()
            .is_ok()),
        "vigil serve did not start: {}",
        served.log_text()
    );
    let anon = client
        .get(format!("{base}/v1/shadow/runs"))
        .send()
        .expect("get");
    assert_eq!(anon.status().as_u16(), 401);
    let runs: Value = client
        .get(format!("{base}/v1/shadow/runs"))
        .bearer_auth("view-secret")
        .send()
        .and_then(|r| r.json())
        .expect("runs");
    assert!(
        runs["runs"]
            .as_array()
            .is_some_and(|r| r.iter().any(|j| j["job_id"] == job.as_str())),
        "{runs}"
    );
    let one: Value = client
        .get(format!("{base}/v1/shadow/runs/{job}"))
        .bearer_auth("view-secret")
        .send()
        .and_then(|r| r.json())
        .expect("run");
    let l3_row = one["totals"]
        .as_array()
        .and_then(|t| t.iter().find(|r| r["candidate"] == "intent@l3+logreg"))
        .unwrap_or_else(|| panic!("{one}"));
    assert_eq!(l3_row["verdict"], "rejected");
    assert_eq!(l3_row["n"], REPLAY_EVENTS as u64);
    let missing = client
        .get(format!("{base}/v1/shadow/runs/no-such-job"))
        .bearer_auth("view-secret")
        .send()
        .expect("get");
    assert_eq!(missing.status().as_u16(), 404);
    served.terminate();
}

/// A minimal HTTP receiver: records each request body, answers 200.
fn webhook_receiver() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let seen = bodies.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut len = 0usize;
            let mut line = String::new();
            while reader.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
                if line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
                line.clear();
            }
            let mut body = vec![0u8; len];
            if reader.read_exact(&mut body).is_ok() {
                seen.lock()
                    .expect("lock")
                    .push(String::from_utf8_lossy(&body).into_owned());
            }
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
        }
    });
    (format!("http://{addr}/hooks/retrain"), bodies)
}

/// Every message of `topic` (from the beginning) that arrives within `wait`.
fn consume_all(brokers: &str, topic: &str, wait: Duration) -> Vec<(String, String)> {
    use rdkafka::config::ClientConfig;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::Message;
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", unique("shadow_reader"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    // Assign the (single) partition from the beginning: no group rebalance to wait for.
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, rdkafka::Offset::Beginning)
        .expect("partition");
    consumer.assign(&tpl).expect("assign");
    let mut out = Vec::new();
    let deadline = std::time::Instant::now() + wait;
    while std::time::Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(250)) {
            let key = m
                .key()
                .map(|k| String::from_utf8_lossy(k).into_owned())
                .unwrap_or_default();
            let payload = m
                .payload()
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .unwrap_or_default();
            out.push((key, payload));
        }
    }
    out
}

#[test]
fn injected_drift_files_exactly_one_retraining_request_to_webhook_and_kafka() {
    require_chdb();
    let brokers = kafka_brokers();
    let topic = unique("vigil_retraining");
    create_topic(&brokers, &topic, 1);
    let (hook, bodies) = webhook_receiver();
    let tmp = tempfile::tempdir().expect("tmp");
    let store = format!("chdb://{}", tmp.path().join("store").display());

    // Two quiet reference hours, then one drifted hour (longer, travel-heavy requests). The
    // logged label is the request's intent: this path runs no model, only the analyzer.
    let h0 = (chrono::Utc::now().timestamp() / 3600 - 6) * 3600;
    let mut traffic = IntentTraffic::new(5);
    let mut inf = String::new();
    let mut outc = String::new();
    let per_hour = 600;
    for hour in 0..3 {
        traffic.set_drift(hour == 2);
        for i in 0..per_hour {
            let req = traffic.next_request();
            let ts_ms = (h0 + hour * 3600) * 1000 + i * 3600 * 1000 / per_hour;
            let id = format!("d{hour}-{i:04}");
            inf.push_str(&inference_json(
                &id,
                ts_ms,
                "intent",
                "l6+logreg",
                "u1",
                &req,
                (req.intent, 0.9),
                9.0,
            ));
            inf.push('\n');
            if hour == 2 && i % 2 == 0 {
                outc.push_str(&truth_json(&id, ts_ms + 1000, "intent", "u1", req.intent));
                outc.push('\n');
            }
        }
    }
    let (inf_path, out_path) = (tmp.path().join("inf.ndjson"), tmp.path().join("out.ndjson"));
    std::fs::write(&inf_path, inf).expect("write");
    std::fs::write(&out_path, outc).expect("write");
    let rfc = |s: i64| {
        chrono::DateTime::from_timestamp(s, 0)
            .expect("time")
            .to_rfc3339()
    };
    let config = tmp.path().join("vigil.toml");
    std::fs::write(
        &config,
        format!(
            r#"[store]
url = "{store}"

[[monitors]]
name = "intent-inputs"
model = "intent"
columns = ["n_words", "channel"]
reference = {{ from = "{from}", to = "{to}" }}
window = "1h"
min_rows = 100

[[alert_routes]]
name = "ml-team"
email = {{ smtp_url = "smtp://127.0.0.1:2525", from = "vigil@example.com", to = ["ml@example.com"] }}

[shadow]
webhook_url = "{hook}"
kafka_topic = "{topic}"
kafka_brokers = "{brokers}"
alert_route = "ml-team"

[[shadow.triggers]]
name = "intent-input-drift"
model = "intent"
kind = "drift"
monitor = "intent-inputs"
"#,
            from = rfc(h0),
            to = rfc(h0 + 7200),
        ),
    )
    .expect("config");
    let cli = |args: &[&str]| {
        let mut c = vigil();
        c.arg("--config").arg(&config).args(args);
        run_ok(&mut c)
    };
    cli(&["ingest", "--file", inf_path.to_str().expect("utf8")]);
    cli(&[
        "ingest",
        "--file",
        out_path.to_str().expect("utf8"),
        "--kind",
        "outcome",
    ]);

    // Before the analyzer has said anything, the rule is quiet.
    let quiet = json(&cli(&["shadow", "triggers", "--format", "json"]));
    assert_eq!(quiet[0]["outcome"], "quiet", "{quiet}");

    // The analyzer fires on the drifted hour.
    let analyzed = json(&cli(&[
        "analyze",
        "--at",
        &rfc(h0 + 3 * 3600),
        "--format",
        "json",
    ]));
    assert_eq!(analyzed[0]["verdict"], "drift", "{analyzed}");

    // Evaluated twice: one request.
    let first = json(&cli(&["shadow", "triggers", "--format", "json"]));
    assert_eq!(first[0]["outcome"], "filed", "{first}");
    let request = &first[0]["request"];
    let id = request["request_id"].as_str().expect("id").to_string();
    assert_eq!(request["reason"], "drift");
    assert_eq!(request["webhook_status"], "delivered", "{request}");
    assert_eq!(request["kafka_status"], "delivered", "{request}");
    assert_eq!(request["dataset_since"], (h0 + 7200) as u64);
    assert_eq!(request["dataset_until"], (h0 + 3 * 3600) as u64);
    // E-mail is queued once in the alerting outbox (sent by the alerting delivery loop).
    assert_eq!(
        request["email_status"],
        format!("queued: retrain:{id}:ml-team:email").as_str(),
        "{request}"
    );
    let queued = cli(&[
        "sql",
        &format!("SELECT count() FROM vigil.alert_notifications WHERE incident_id = '{id}'"),
        "--output",
        "TSV",
    ]);
    assert_eq!(queued.trim(), "1");
    let second = json(&cli(&["shadow", "triggers", "--format", "json"]));
    assert_eq!(second[0]["outcome"], "already_open", "{second}");
    assert_eq!(second[0]["request_id"], id.as_str());

    // Delivered once to the webhook ...
    std::thread::sleep(Duration::from_millis(500));
    let got = bodies.lock().expect("lock").clone();
    assert_eq!(got.len(), 1, "webhook bodies: {got:?}");
    let body = json(&got[0]);
    assert_eq!(body["request_id"], id.as_str());
    assert_eq!(body["model"], "intent");
    assert_eq!(body["evidence"]["monitor"], "intent-inputs");
    assert!(
        body["evidence"]["columns"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c == "n_words")),
        "{body}"
    );
    // ... and once to the Kafka topic.
    let messages = consume_all(&brokers, &topic, Duration::from_secs(8));
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert_eq!(messages[0].0, id);
    assert_eq!(json(&messages[0].1)["request_id"], id.as_str());

    // The request's training set: the drifted hour, with ground truth where it exists.
    let out = tmp.path().join("train.jsonl");
    let msg = cli(&[
        "shadow",
        "export",
        "--request",
        &id,
        "--out",
        out.to_str().expect("utf8"),
    ]);
    assert!(
        msg.contains(&format!("wrote {per_hour} rows ({} with", per_hour / 2)),
        "{msg}"
    );
    let lines: Vec<Value> = std::fs::read_to_string(&out)
        .expect("read")
        .lines()
        .map(json)
        .collect();
    assert_eq!(lines.len(), per_hour as usize);
    assert!(lines[0]["input"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(
        lines[0]["label"].is_string() && lines[1]["label"].is_null(),
        "{} / {}",
        lines[0],
        lines[1]
    );

    // Closed, the same evidence files nothing new (a later drifted window would).
    cli(&["shadow", "close", "--request", &id]);
    let after = json(&cli(&["shadow", "triggers", "--format", "json"]));
    assert_eq!(after[0]["outcome"], "already_handled", "{after}");
    assert_eq!(bodies.lock().expect("lock").len(), 1);
}

const LIVE_EVENTS: usize = 300;

#[test]
fn live_shadow_from_kafka_resumes_at_its_offsets_and_matches_a_store_replay() {
    require_models();
    let brokers = kafka_brokers();
    let topic = unique("shadow_live");
    create_topic(&brokers, &topic, 2);
    let url = clickhouse_url(&unique("shadow_live"));
    let tmp = tempfile::tempdir().expect("tmp");
    let start = chrono::Utc::now().timestamp() - 3600;
    // Truth labels are looked up in the store (they arrive after the inferences); the same
    // inferences go to the store too, for the replay to compare with.
    let (config, inf, labelled) = store_with_traffic(
        tmp.path(),
        &url,
        LIVE_EVENTS,
        start,
        &format!(
            "[kafka]\nbrokers = \"{brokers}\"\ninference_topic = \"{topic}\"\n\n[shadow]\npage_size = 64\nthreads = 2\nbucket = \"1h\"\nmin_labelled = 50"
        ),
    );
    let cli = |args: &[&str]| {
        let mut c = vigil();
        c.arg("--config").arg(&config).args(args);
        run_ok(&mut c)
    };
    let mut payloads: Vec<Vec<u8>> = std::fs::read_to_string(&inf)
        .expect("read traffic")
        .lines()
        .map(|l| l.as_bytes().to_vec())
        .collect();
    // Noise on the topic: another model's event and a malformed one are skipped, not errors.
    payloads.insert(10, br#"{"event_id":"x1","ts":1,"model":"other"}"#.to_vec());
    payloads.insert(20, b"not json".to_vec());
    produce(&brokers, &topic, &payloads);

    let first = json(&cli(&[
        "shadow",
        "live",
        "--candidate",
        "l6+svc",
        "--max-events",
        "128",
        "--format",
        "json",
    ]));
    let job = first["job_id"].as_str().expect("job id").to_string();
    assert_eq!(first["processed"], 128, "{first}");
    let resumed = json(&cli(&[
        "shadow",
        "live",
        "--resume",
        &job,
        "--idle-exit",
        "3s",
        "--format",
        "json",
    ]));
    assert_eq!(resumed["processed"], LIVE_EVENTS as u64, "{resumed}");
    assert_eq!(resumed["this_run"], (LIVE_EVENTS - 128) as u64, "{resumed}");
    let live = summary(&resumed, "intent@l6+svc");
    assert_eq!(live["labelled"], labelled as u64, "{live}");
    assert_eq!(live["replay_agreement"], 1.0, "{live}");

    let replay = json(&cli(&[
        "shadow",
        "run",
        "--candidate",
        "l6+svc",
        "--format",
        "json",
    ]));
    let stored = summary(&replay, "intent@l6+svc");
    for k in ["n", "agreement", "labelled", "replay_agreement"] {
        assert_eq!(live[k], stored[k], "{k}: live {live} vs store {stored}");
    }
    // Sums in a different order (partitions interleave): equal up to rounding.
    for k in ["score_delta_mean", "cosine_mean"] {
        let (a, b) = (live[k].as_f64().expect(k), stored[k].as_f64().expect(k));
        assert!((a - b).abs() <= 1e-9 * b.abs().max(1.0), "{k}: {a} vs {b}");
    }
    assert_eq!(
        live["accuracy_delta"]["delta"], stored["accuracy_delta"]["delta"],
        "{live} vs {stored}"
    );
    let report = json(&cli(&[
        "shadow", "report", "--run", &job, "--format", "json",
    ]));
    assert_eq!(report["run"]["status"], "stopped", "{report}");
    assert_eq!(report["run"]["skipped"], 2, "{report}");
    // Hourly buckets add up to the run (the first stop's snapshot of the open bucket was
    // replaced, not added to).
    let in_buckets: u64 = report["buckets"]
        .as_array()
        .expect("buckets")
        .iter()
        .map(|b| b["n"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(in_buckets, LIVE_EVENTS as u64, "{report}");
}
