//! Text monitors end to end on embedded chDB, with the real sentence encoder
//! (all-MiniLM-L6-v2 in candle; `bash scripts/models/fetch.sh`):
//!
//! - intent traffic (the shadow runner's generator) for two models, one window of reference
//!   and six more; `assistant`'s prompts shift topic from window 4 on (the generator's drift
//!   switch), `assistant-calm`'s never do;
//! - every window is judged by `run_due_with` (what `vigil analyze` and `vigil serve` run) and
//!   then the alert rules (the defaults), window after window;
//! - the shift raises a text-drift incident naming the model, the monitor and the column
//!   `input` (`embedding:distance`); the calm model raises none over the same windows, and
//!   neither raises anything before the shift;
//! - each sampled text is encoded once: the fixed reference's embeddings come from the cache
//!   in every later pass;
//! - a training snapshot file of texts works as the reference too;
//! - the drift page shows the latest window's example texts.

mod common;

use std::path::Path;
use std::sync::Arc;

use vigil_analyzer::alerting::{self, AlertContext};
use vigil_analyzer::monitor::text::SharedEncoder;
use vigil_analyzer::monitor::{self, DueOutcome, MonitorConfig, ReferenceConfig, TextMonitoring};
use vigil_shadow_runner::traffic::{inference_json, IntentTraffic};
use vigil_store::event::{parse_event, EventKind, EventTime, Limits};
use vigil_store::rows::{InferenceRow, RowBatch, SourceCoord};
use vigil_store::Store;

const WINDOW: u32 = 3600;
/// Events per model and window.
const PER_WINDOW: usize = 150;
/// Texts sampled per side: small enough to keep the test well under a minute on two cores.
const SAMPLE: u64 = 120;
/// Windows after the reference (window 0); the shift starts at `SHIFT_FROM`.
const WINDOWS: u32 = 6;
const SHIFT_FROM: u32 = 4;

/// Intent-traffic inference events (JSON) of `model`, `PER_WINDOW` per window for windows
/// `0..=windows`; topics shift from `SHIFT_FROM` on when `shift`.
fn events(model: &str, seed: u64, t0: u32, windows: u32, shift: bool) -> Vec<(i64, String)> {
    let mut traffic = IntentTraffic::new(seed);
    let mut out = Vec::new();
    for k in 0..=windows {
        traffic.set_drift(shift && k >= SHIFT_FROM.min(windows));
        for i in 0..PER_WINDOW {
            let ts_ms = (t0 + k * WINDOW) as i64 * 1000
                + (i as i64 * WINDOW as i64 * 1000) / PER_WINDOW as i64;
            let req = traffic.next_request();
            let id = format!("{model}-{k}-{i}");
            let json = inference_json(
                &id,
                ts_ms,
                model,
                "v1",
                &format!("u{i}"),
                &req,
                (req.intent, 0.9),
                20.0,
            );
            out.push((ts_ms, json));
        }
    }
    out
}

fn rows(model: &str, seed: u64, t0: u32, shift: bool) -> Vec<InferenceRow> {
    let coord = SourceCoord {
        source: "test".into(),
        partition: -1,
        offset: 0,
    };
    let mut batch = RowBatch::default();
    for (ts_ms, json) in events(model, seed, t0, WINDOWS, shift) {
        let event = parse_event(
            EventKind::Inference,
            json.as_bytes(),
            &Limits::default(),
            EventTime(ts_ms + 60_000),
        )
        .expect("generated events are valid");
        batch.push_event(event, &coord);
    }
    batch.inference
}

fn rfc(s: u32) -> String {
    chrono::DateTime::from_timestamp(s as i64, 0)
        .expect("time")
        .to_rfc3339()
}

fn text_monitor(name: &str, model: &str, t0: u32) -> MonitorConfig {
    MonitorConfig {
        name: name.into(),
        model: model.into(),
        texts: vec!["input".into()],
        window: "1h".into(),
        reference: ReferenceConfig {
            from: Some(rfc(t0)),
            to: Some(rfc(t0 + WINDOW)),
            ..Default::default()
        },
        sample_size: Some(SAMPLE),
        ..Default::default()
    }
}

fn encoders() -> TextMonitoring {
    TextMonitoring::new(Box::new(|dir| {
        vigil_shadow_runner::encoder::load_text_encoder(dir.map(Path::new))
            .map(|e| Arc::new(e) as SharedEncoder)
            .map_err(|e| format!("{e:#}"))
    }))
}

/// `&`, `<`, `>`, `"` as the page escapes them.
fn escaped(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_shift_in_prompts_raises_a_text_drift_incident_and_the_page_shows_examples() {
    common::require_chdb();
    let models = vigil_shadow_runner::default_models_dir().join("all-MiniLM-L6-v2");
    assert!(
        models.join("config.json").exists(),
        "the sentence encoder is missing in {}: run `bash scripts/models/fetch.sh`",
        models.display()
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!(
        "chdb://{}?database={}",
        dir.path().join("data").display(),
        common::unique("textmon")
    );
    let store = Store::open(&url).await.expect("open chdb store");
    store.migrate(None).await.expect("migrate");
    let t0 = 1_790_000_000 / WINDOW * WINDOW;
    let mut all = rows("assistant", 5, t0, true);
    all.extend(rows("assistant-calm", 5, t0, false));
    store.insert(&all).await.expect("insert");

    let monitors = vec![
        text_monitor("prompts", "assistant", t0),
        text_monitor("prompts-calm", "assistant-calm", t0),
    ];
    monitor::validate_monitors(&monitors).expect("valid monitors");
    let ctx = AlertContext {
        alerting: Default::default(),
        routes: vec![],
        rules: vec![],
        monitors: monitors.clone(),
    };
    let texts = encoders();
    let mut fired_at = None;
    for k in 1..=WINDOWS {
        let at = t0 + (k + 1) * WINDOW;
        let outcomes = monitor::run_due_with(&store, &monitors, None, at, at, &texts)
            .await
            .expect("monitors run");
        for o in &outcomes {
            let DueOutcome::Ran(run) = o else {
                panic!("window {k} was not evaluated: {o:?}");
            };
            let input = run
                .columns
                .iter()
                .find(|c| c.column == "input")
                .expect("an input row");
            eprintln!(
                "window {k} {}: {} = {:.4} (threshold {}) {:?}; descriptors drifted: {:?}",
                run.model,
                input.method,
                input.score,
                input.threshold,
                input.verdict,
                run.columns
                    .iter()
                    .filter(|c| c.verdict == monitor::Verdict::Drift && c.column != "input")
                    .map(|c| c.column.as_str())
                    .collect::<Vec<_>>()
            );
            assert_eq!(input.method, "embedding:distance");
            assert_eq!(input.current_rows, SAMPLE);
            assert_eq!(input.reference_rows, SAMPLE);
            assert!(run.columns.iter().any(|c| c.column == "input:chars"));
            // The encoder's vocabulary gives the out-of-vocabulary descriptor.
            assert!(run.columns.iter().any(|c| c.column == "input:oov_percent"));
            if run.model == "assistant" && k >= SHIFT_FROM {
                assert_eq!(input.verdict, monitor::Verdict::Drift, "window {k}");
            } else {
                assert_eq!(
                    input.verdict,
                    monitor::Verdict::Ok,
                    "window {k} {}",
                    run.model
                );
            }
        }
        alerting::evaluate::evaluate(&store, &ctx)
            .await
            .expect("alert rules");
        let open = alerting::db::incidents(&store, "")
            .await
            .expect("incidents");
        if k < SHIFT_FROM {
            assert!(open.is_empty(), "window {k}, before the shift: {open:?}");
        }
        if fired_at.is_none() && !open.is_empty() {
            fired_at = Some(k);
        }
    }
    let incidents = alerting::db::incidents(&store, "")
        .await
        .expect("incidents");
    assert!(
        incidents.iter().all(|i| i.model == "assistant"),
        "the calm model raised an incident: {incidents:?}"
    );
    assert_eq!(incidents.len(), 1, "{incidents:?}");
    let i = &incidents[0];
    assert_eq!((i.monitor.as_str(), i.kind.as_str()), ("prompts", "drift"));
    let input = i
        .columns
        .iter()
        .find(|c| c.column == "input")
        .unwrap_or_else(|| panic!("the incident does not name `input`: {i:?}"));
    assert_eq!(input.method, "embedding:distance");
    // The default rule fires on 2 of the last 3 windows: the second shifted window.
    assert_eq!(fired_at, Some(SHIFT_FROM + 1));

    // Every sampled text was encoded once: the reference (window 0) once per model, then
    // each window's current sample; every later pass found the reference in the cache.
    let stats = texts.stats();
    eprintln!("embedding cache: {stats:?}");
    assert_eq!(stats.encoded, 2 * (SAMPLE + u64::from(WINDOWS) * SAMPLE));
    assert_eq!(stats.hits, 2 * (u64::from(WINDOWS) - 1) * SAMPLE);

    // A training snapshot file of texts as the reference (same generator, another seed): the
    // calm window is ok, the shifted one drifts; the current samples come from the cache.
    let snapshot = dir.path().join("training.csv");
    let mut csv = String::from("input\n");
    let mut traffic = IntentTraffic::new(77);
    for _ in 0..300 {
        csv.push_str(&format!(
            "\"{}\"\n",
            traffic.next_request().text.replace('"', "\"\"")
        ));
    }
    std::fs::write(&snapshot, csv).expect("write snapshot");
    let last_end = t0 + (WINDOWS + 1) * WINDOW;
    for (model, drift) in [("assistant", true), ("assistant-calm", false)] {
        let mut m = text_monitor("prompts-file", model, t0);
        m.reference = ReferenceConfig {
            file: Some(snapshot.display().to_string()),
            ..Default::default()
        };
        let run = monitor::evaluate_with(&store, &m, last_end, last_end, &texts)
            .await
            .expect("file reference");
        let input = run
            .columns
            .iter()
            .find(|c| c.column == "input")
            .expect("input row");
        eprintln!("file reference, {model}: {input:?}");
        assert_eq!(input.reference_rows, SAMPLE);
        assert_eq!(input.verdict == monitor::Verdict::Drift, drift, "{input:?}");
    }
    let after = texts.stats();
    assert_eq!(after.encoded, stats.encoded + SAMPLE, "{after:?}");

    // The drift page shows the latest window's examples, escaped.
    let examples =
        monitor::text::latest_examples(&store, "assistant", Some("input"), last_end + 60)
            .await
            .expect("examples");
    assert!(examples.iter().all(|e| e.window_end == last_end));
    for kind in monitor::text::EXAMPLE_KINDS {
        assert!(
            examples.iter().any(|e| e.kind == kind),
            "no {kind} example: {examples:?}"
        );
    }
    let changed = examples
        .iter()
        .find(|e| e.kind == "most_changed")
        .expect("a most changed example");
    let state = Arc::new(
        vigil_dashboards::DashboardState::new(
            store.clone(),
            vigil_store::auth::Authenticator::open(),
            Default::default(),
            vec![],
            Arc::new(vigil_dashboards::Unavailable),
        )
        .with_monitors(monitors.clone()),
    );
    let app = actix_web::test::init_service(
        actix_web::App::new().configure(|c| vigil_dashboards::configure(c, state.clone())),
    )
    .await;
    let req = actix_web::test::TestRequest::get()
        .uri(&format!(
            "/ui/drift?model=assistant&column=input&range=24h&end={}",
            last_end + 60
        ))
        .to_request();
    let resp = actix_web::test::call_service(&app, req).await;
    assert!(resp.status().is_success(), "{}", resp.status());
    let body = actix_web::test::read_body(resp).await;
    let page = String::from_utf8_lossy(&body);
    assert!(page.contains("Example texts: input"), "{page}");
    assert!(page.contains("Most changed"), "{page}");
    assert!(
        page.contains(&escaped(&changed.text)),
        "the page lacks the most changed example {:?}",
        changed.text
    );
    eprintln!(
        "examples: {:#?}",
        examples
            .iter()
            .map(|e| (e.kind.as_str(), e.text.as_str()))
            .collect::<Vec<_>>()
    );
}

/// The binary: `vigil config check` names a text monitor's bad key; `vigil ingest` + `vigil
/// analyze` judge a text monitor (the encoder loaded by the binary on first use) and store
/// its `input` row and examples.
#[test]
fn vigil_analyze_runs_a_text_monitor() {
    common::require_chdb();
    let dir = tempfile::tempdir().expect("tempdir");
    let t0 = 1_790_000_000 / WINDOW * WINDOW;
    // Window 0 (the reference) and window 1, shifted.
    let file = dir.path().join("events.ndjson");
    let lines: Vec<String> = events("assistant", 9, t0, 1, true)
        .into_iter()
        .map(|(_, j)| j)
        .collect();
    std::fs::write(&file, lines.join("\n") + "\n").expect("write events");
    let config = dir.path().join("vigil.toml");
    let write = |extra: &str| {
        std::fs::write(
            &config,
            format!(
                "[store]\nurl = \"chdb://{}\"\n\n[[monitors]]\nname = \"prompts\"\nmodel = \"assistant\"\ntexts = [\"input\"]\nwindow = \"1h\"\nsample_size = 100\nreference = {{ from = \"{}\", to = \"{}\" }}\n{extra}",
                dir.path().join("data").display(),
                rfc(t0),
                rfc(t0 + WINDOW)
            ),
        )
        .expect("write config")
    };
    let run = |args: &[&str]| {
        common::vigil()
            .arg("--config")
            .arg(&config)
            .args(args)
            .output()
            .expect("run vigil")
    };
    write("embedding_method = \"ratio\"\nembedding_dist = \"cosine\"\n");
    let out = run(&["config", "check"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("prompts") && err.contains("embedding_dist does not apply"),
        "{err}"
    );
    write("");
    let out = run(&["config", "check"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let file_arg = file.display().to_string();
    let out = run(&["ingest", "--file", &file_arg]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let at = rfc(t0 + 2 * WINDOW);
    let out = run(&["analyze", "--at", &at, "--format", "json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let input = v[0]["columns"]
        .as_array()
        .expect("columns")
        .iter()
        .find(|c| c["column"] == "input")
        .unwrap_or_else(|| panic!("no input row: {v}"))
        .clone();
    eprintln!("vigil analyze: {input}");
    assert_eq!(input["method"], "embedding:distance", "{input}");
    assert_eq!(input["verdict"], "drift", "{input}");
    assert_eq!(input["current_rows"], 100, "{input}");
    assert_eq!(v[0]["examples"].as_array().map(Vec::len), Some(9), "{v}");
}
