//! Continuous monitors against both backends (ClickHouse 18.16 server and chDB 26.x): simulated
//! traffic goes straight into the store, monitors read it back through the pushdown queries.
//!
//! - a drift injected into the stream is detected in the first drifted window;
//! - a no-drift stream of the same size raises nothing over 50 consecutive windows;
//! - pushdown scores equal the scores computed from the raw rows (exact counts), and binned
//!   counts stay within the documented error bound;
//! - results are written to `monitor_results` and read back; a thin window is
//!   `insufficient_data`; `run_due` evaluates a window once.

mod common;

use vigil_analyzer::drift::{column_drift, ColumnSample, NumericCounts};
use vigil_analyzer::monitor::{
    self, DueOutcome, MonitorConfig, ReferenceConfig, Verdict, DATASET_COLUMN,
};
use vigil_collector::simulate::TrafficSimulator;
use vigil_store::event::{parse_event, EventKind, EventTime, Limits};
use vigil_store::rows::{InferenceRow, RowBatch, SourceCoord};
use vigil_store::Store;

const WINDOW: u32 = 3600;
/// Quiet windows after the reference hour.
const QUIET_WINDOWS: u32 = 50;
/// Events per window (both models; churn gets half). With ~2000 churn rows per window against
/// ~8000 reference rows, the quiet windows' largest distance is about 0.07 (seeded, so fixed).
const PER_WINDOW: usize = 4000;
const COLUMNS: [&str; 5] = [
    "monthly_spend",
    "support_tickets",
    "plan",
    "tenure_months",
    "prediction.score",
];

/// `n` simulated events spread evenly over `[from, from + WINDOW)`.
fn traffic(sim: &mut TrafficSimulator, from: u32, n: usize) -> Vec<InferenceRow> {
    let coord = SourceCoord {
        source: "test".into(),
        partition: -1,
        offset: 0,
    };
    let mut batch = RowBatch::default();
    for i in 0..n {
        let ts_ms = from as i64 * 1000 + (i as i64 * WINDOW as i64 * 1000) / n as i64;
        let inf = sim.inference(ts_ms);
        let event = parse_event(
            EventKind::Inference,
            inf.json.as_bytes(),
            &Limits::default(),
            EventTime(ts_ms + 60_000),
        )
        .expect("simulated events are valid");
        batch.push_event(event, &coord);
    }
    batch.inference
}

fn monitor(name: &str, t0: u32, min_rows: u64, max_distinct: u64) -> MonitorConfig {
    let rfc = |s: u32| {
        chrono::DateTime::from_timestamp(s as i64, 0)
            .expect("time")
            .to_rfc3339()
    };
    MonitorConfig {
        name: name.into(),
        model: "churn".into(),
        version: None,
        columns: COLUMNS.iter().map(|c| c.to_string()).collect(),
        reference: ReferenceConfig {
            from: Some(rfc(t0)),
            to: Some(rfc(t0 + WINDOW)),
            trailing: None,
            file: None,
        },
        window: "1h".into(),
        min_rows,
        stattest: None,
        stattest_threshold: None,
        num_stattest: None,
        num_stattest_threshold: None,
        cat_stattest: None,
        cat_stattest_threshold: None,
        per_column_stattest: Default::default(),
        per_column_stattest_threshold: Default::default(),
        drift_share: 0.5,
        max_distinct,
        health: None,
        ..Default::default()
    }
}

/// Values of a numerical column of churn rows in `[from, to)`, straight from the rows.
fn raw_numeric(rows: &[InferenceRow], column: &str, from: u32, to: u32) -> NumericCounts {
    let values: Vec<f64> = rows
        .iter()
        .filter(|r| r.model == "churn" && r.ts >= from && r.ts < to)
        .filter_map(|r| {
            if column == "prediction.score" {
                r.score
            } else {
                let i = r.num_names.iter().position(|n| n == column)?;
                Some(r.num_values[i])
            }
        })
        .collect();
    let integer = values.iter().all(|v| v.fract() == 0.0);
    NumericCounts::from_values(&values)
        .expect("finite")
        .with_integer_type(integer)
}

async fn exercise(store: Store) {
    store.migrate(None).await.expect("migrate");
    let t0 = 1_790_000_000 / WINDOW * WINDOW;
    let mut sim = TrafficSimulator::new(7, "mon");
    let mut rows = traffic(&mut sim, t0, 4 * PER_WINDOW); // reference hour: ~8000 churn rows
    for k in 1..=QUIET_WINDOWS {
        rows.extend(traffic(&mut sim, t0 + k * WINDOW, PER_WINDOW));
    }
    sim.set_drift(true);
    let drift_start = t0 + (QUIET_WINDOWS + 1) * WINDOW;
    rows.extend(traffic(&mut sim, drift_start, PER_WINDOW));
    let thin_start = drift_start + WINDOW;
    rows.extend(traffic(&mut sim, thin_start, 20));
    for chunk in rows.chunks(20_000) {
        store.insert(chunk).await.expect("insert");
    }
    // A replayed chunk must not change any count (tables are read with FINAL).
    store.insert(&rows[..500]).await.expect("insert duplicates");

    let m = monitor("churn-inputs", t0, 100, 20_000);

    // Pushdown with exact counts reproduces the statistics on the raw rows.
    let first_end = t0 + 2 * WINDOW;
    let run = monitor::evaluate(&store, &m, first_end, first_end)
        .await
        .expect("evaluate");
    for c in run.columns.iter().filter(|c| c.column != "plan") {
        let r = raw_numeric(&rows, &c.column, t0, t0 + WINDOW);
        let cur = raw_numeric(&rows, &c.column, first_end - WINDOW, first_end);
        let exact = column_drift(
            &c.column,
            &ColumnSample::Numerical(r),
            &ColumnSample::Numerical(cur),
            None,
            None,
        )
        .expect("exact drift");
        assert_eq!(c.method, exact.method.name(), "{}", c.column);
        assert!(
            (c.score - exact.score).abs() < 1e-12,
            "{}: pushdown {} vs exact {}",
            c.column,
            c.score,
            exact.score
        );
        assert_eq!(
            (c.reference_rows, c.current_rows),
            (exact.reference_rows, exact.current_rows)
        );
    }
    assert!(
        run.columns[0].reference_rows > 1000,
        "defaults are distances: {run:?}"
    );

    // Binned pushdown (forced by a tiny distinct budget) stays within the documented bound:
    // each value moves by at most half a bin, so the normed Wasserstein distance moves by at
    // most about width / std.
    let binned = monitor::evaluate(
        &store,
        &monitor("binned", t0, 100, 10),
        first_end,
        first_end,
    )
    .await
    .expect("binned evaluate");
    for (b, e) in binned.columns.iter().zip(&run.columns) {
        match b.reduction {
            monitor::pushdown::Reduction::Binned { width } => {
                let std = raw_numeric(&rows, &b.column, t0, t0 + WINDOW).std();
                assert_eq!(b.method, "wasserstein", "{}", b.column);
                let bound = 2.0 * width / std + 1e-9;
                assert!(
                    (b.score - e.score).abs() <= bound,
                    "{}: binned {} vs exact {} (bound {bound})",
                    b.column,
                    b.score,
                    e.score
                );
            }
            _ => assert_eq!(b.score, e.score, "{}", b.column),
        }
    }
    assert!(binned
        .columns
        .iter()
        .any(|c| matches!(c.reduction, monitor::pushdown::Reduction::Binned { .. })));

    // No drift: 50 consecutive windows stay quiet.
    for k in 1..=QUIET_WINDOWS {
        let end = t0 + (k + 1) * WINDOW;
        let run = monitor::evaluate_and_store(&store, &m, end, end)
            .await
            .expect("quiet window");
        assert_eq!(run.verdict, Verdict::Ok, "window {k}: {run:#?}");
        for c in &run.columns {
            assert_eq!(c.verdict, Verdict::Ok, "window {k}, {}: {c:?}", c.column);
        }
    }

    // Drift injected: detected in its first window.
    let drift_end = drift_start + WINDOW;
    let run = monitor::evaluate_and_store(&store, &m, drift_end, drift_end)
        .await
        .expect("drift window");
    assert_eq!(run.verdict, Verdict::Drift, "{run:#?}");
    for col in ["monthly_spend", "support_tickets", "plan"] {
        let c = run
            .columns
            .iter()
            .find(|c| c.column == col)
            .expect("column");
        assert_eq!(c.verdict, Verdict::Drift, "{c:?}");
    }
    let tenure = run
        .columns
        .iter()
        .find(|c| c.column == "tenure_months")
        .expect("tenure");
    assert_eq!(
        tenure.verdict,
        Verdict::Ok,
        "tenure is not shifted: {tenure:?}"
    );

    // Results are stored and read back: one row per column plus the dataset row per window.
    let stored = monitor::stored_results(&store, "churn-inputs", 0, u32::MAX)
        .await
        .expect("read results");
    assert_eq!(
        stored.len(),
        (QUIET_WINDOWS as usize + 1) * (COLUMNS.len() + 1)
    );
    let last: Vec<_> = stored
        .iter()
        .filter(|r| r.window_end == drift_end)
        .collect();
    assert_eq!(last.len(), COLUMNS.len() + 1);
    let ds = last
        .iter()
        .find(|r| r.column == DATASET_COLUMN)
        .expect("dataset row");
    assert_eq!(
        (ds.verdict.as_str(), ds.drift, ds.dataset_drift),
        ("drift", 1, 1)
    );
    assert!(ds.drift_share >= 0.5 && ds.method == "share");
    let spend = last
        .iter()
        .find(|r| r.column == "monthly_spend")
        .expect("spend row");
    assert_eq!(
        (spend.method.as_str(), spend.verdict.as_str()),
        ("wasserstein", "drift")
    );
    assert_eq!(spend.threshold, 0.1);
    assert_eq!(spend.window_start, drift_start);
    assert!(stored
        .iter()
        .filter(|r| r.window_end < drift_end)
        .all(|r| r.verdict == "ok" && r.drift == 0 && r.dataset_drift == 0));

    // `run_due` at a time inside the next window evaluates the thin window, once.
    let at = thin_start + WINDOW + 5;
    let outcomes = monitor::run_due(&store, std::slice::from_ref(&m), None, at, at)
        .await
        .expect("run due");
    let DueOutcome::Ran(thin) = &outcomes[0] else {
        panic!("thin window not evaluated: {outcomes:?}")
    };
    assert_eq!(thin.window_end, thin_start + WINDOW);
    assert_eq!(thin.verdict, Verdict::InsufficientData);
    assert!(thin
        .columns
        .iter()
        .all(|c| c.verdict == Verdict::InsufficientData && c.current_rows < 100));
    let again = monitor::run_due(
        &store,
        std::slice::from_ref(&m),
        Some("churn-inputs"),
        at,
        at,
    )
    .await
    .expect("run due again");
    assert!(matches!(again[0], DueOutcome::UpToDate { .. }), "{again:?}");
    assert!(
        monitor::run_due(&store, std::slice::from_ref(&m), Some("nope"), at, at)
            .await
            .is_err()
    );
    let thin_rows = monitor::stored_results(&store, "churn-inputs", thin_start + WINDOW, u32::MAX)
        .await
        .expect("read thin");
    assert_eq!(thin_rows.len(), COLUMNS.len() + 1);
    assert!(thin_rows.iter().all(|r| r.verdict == "insufficient_data"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitors_on_clickhouse_server() {
    let store = Store::open(&common::clickhouse_url(&common::unique("monitors")))
        .await
        .expect("open server store");
    exercise(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitors_on_embedded_chdb() {
    common::require_chdb();
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!(
        "chdb://{}?database={}",
        dir.path().display(),
        common::unique("monitors")
    );
    let store = Store::open(&url).await.expect("open chdb store");
    exercise(store).await;
}

/// `vigil analyze` end to end: `[[monitors]]` from vigil.toml, an empty store reports
/// insufficient data (as JSON), the same window is not evaluated twice, and a bad monitor
/// fails `config check` naming it.
#[test]
fn analyze_command_runs_configured_monitors() {
    common::require_chdb();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("vigil.toml");
    let monitors = "[[monitors]]\nname = \"churn-inputs\"\nmodel = \"churn\"\ncolumns = [\"plan\", \"prediction.score\"]\nwindow = \"1h\"\nmin_rows = 50\nreference = { trailing = \"24h\" }\n";
    std::fs::write(
        &config,
        format!(
            "[store]\nurl = \"chdb://{}\"\n\n{monitors}",
            dir.path().join("data").display()
        ),
    )
    .expect("write config");
    let analyze = |format: &str| {
        let out = common::vigil()
            .arg("--config")
            .arg(&config)
            .args([
                "analyze",
                "--at",
                "2026-11-22T10:30:00Z",
                "--format",
                format,
            ])
            .output()
            .expect("run vigil analyze");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let first: serde_json::Value = serde_json::from_str(&analyze("json")).expect("JSON output");
    assert_eq!(first[0]["status"], "ran", "{first}");
    assert_eq!(first[0]["verdict"], "insufficient_data", "{first}");
    assert_eq!(first[0]["window_end"], 1_795_341_600u32, "{first}");
    assert_eq!(first[0]["columns"][1]["verdict"], "insufficient_data");
    let second = analyze("table");
    assert!(second.contains("already evaluated"), "{second}");

    std::fs::write(&config, monitors.replace("\"1h\"", "\"1 fortnight\"")).expect("write");
    let out = common::vigil()
        .arg("--config")
        .arg(&config)
        .args(["config", "check"])
        .output()
        .expect("run config check");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("churn-inputs") && err.contains("fortnight"),
        "{err}"
    );
}

/// `vigil serve` with `[[monitors]]` evaluates them on schedule: the first tick fires at start,
/// so the latest window's results (here: insufficient data, the store is empty) appear at once.
#[test]
fn serve_runs_monitors_on_schedule() {
    let db = common::unique("monsched");
    let url = common::clickhouse_url(&db);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = common::write_config(dir.path(), &url, common::free_port(), None);
    let mut text = std::fs::read_to_string(&config).expect("read config");
    text.push_str("\n[[monitors]]\nname = \"sched\"\nmodel = \"churn\"\ncolumns = [\"plan\"]\nwindow = \"1h\"\nreference = { trailing = \"24h\" }\n");
    std::fs::write(&config, text).expect("write config");
    let served = common::Served::start(&config, &dir.path().join("serve.log"), &["--no-kafka"]);
    let rt = common::runtime();
    let store = rt.block_on(Store::open(&url)).expect("open store");
    let found = common::wait_for(std::time::Duration::from_secs(60), || {
        rt.block_on(monitor::stored_results(&store, "sched", 0, u32::MAX))
            .map(|rows| rows.len() == 2)
            .unwrap_or(false)
    });
    let log = served.log_text();
    served.terminate();
    assert!(found, "no scheduled monitor results; log:\n{log}");
    let rows = rt
        .block_on(monitor::stored_results(&store, "sched", 0, u32::MAX))
        .expect("read results");
    assert!(
        rows.iter().all(|r| r.verdict == "insufficient_data"),
        "{rows:?}"
    );
    let now = chrono::Utc::now().timestamp() as u32;
    let end = rows[0].window_end;
    assert!(
        end.is_multiple_of(3600) && end <= now && now - end < 3600 + 120,
        "latest complete window: {end} at {now}"
    );
}

/// A training snapshot (CSV) as the reference: a quiet window stays quiet, a drifted one is
/// flagged, on the server backend (the snapshot path is backend-independent).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_file_as_reference() {
    let store = Store::open(&common::clickhouse_url(&common::unique("snapshot")))
        .await
        .expect("open server store");
    store.migrate(None).await.expect("migrate");
    let t0: u32 = 1_790_006_400;
    let mut sim = TrafficSimulator::new(77, "snap");
    // The snapshot: 8,000 events' worth of churn rows, written as CSV, never stored.
    let training = traffic(&mut sim, t0 - 10 * WINDOW, 16_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("training.csv");
    let mut csv = COLUMNS.join(",") + "\n";
    for r in training.iter().filter(|r| r.model == "churn") {
        let cell = |c: &str| -> String {
            if c == "prediction.score" {
                return r.score.map(|s| s.to_string()).unwrap_or_default();
            }
            if let Some(i) = r.num_names.iter().position(|n| n == c) {
                return r.num_values[i].to_string();
            }
            r.cat_names
                .iter()
                .position(|n| n == c)
                .map(|i| r.cat_values[i].clone())
                .unwrap_or_default()
        };
        csv.push_str(
            &COLUMNS
                .iter()
                .map(|c| cell(c))
                .collect::<Vec<_>>()
                .join(","),
        );
        csv.push('\n');
    }
    std::fs::write(&path, csv).expect("write snapshot");
    let mut m = monitor("snapshot", t0, 100, 20_000);
    m.reference = ReferenceConfig {
        file: Some(path.display().to_string()),
        ..Default::default()
    };

    store
        .insert(&traffic(&mut sim, t0, PER_WINDOW))
        .await
        .expect("insert quiet window");
    sim.set_drift(true);
    store
        .insert(&traffic(&mut sim, t0 + WINDOW, PER_WINDOW))
        .await
        .expect("insert drifted window");

    let quiet = monitor::evaluate(&store, &m, t0 + WINDOW, t0 + WINDOW)
        .await
        .expect("quiet window");
    assert!(
        quiet.columns.iter().all(|c| c.verdict == Verdict::Ok),
        "{:?}",
        quiet.columns
    );
    assert!(
        quiet.columns.iter().all(|c| c.reference_rows >= 7_000),
        "{:?}",
        quiet.columns
    );
    let drifted = monitor::evaluate(&store, &m, t0 + 2 * WINDOW, t0 + 2 * WINDOW)
        .await
        .expect("drifted window");
    assert_eq!(drifted.verdict, Verdict::Drift, "{:?}", drifted.columns);
    let spend = drifted
        .columns
        .iter()
        .find(|c| c.column == "monthly_spend")
        .expect("monthly_spend");
    assert_eq!(spend.verdict, Verdict::Drift);

    // A snapshot without a monitored column is a configuration error that names it.
    std::fs::write(&path, "monthly_spend\n1.0\n").expect("rewrite snapshot");
    let err = monitor::evaluate(&store, &m, t0 + WINDOW, t0 + WINDOW)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("no column `support_tickets`"),
        "{err}"
    );
}
