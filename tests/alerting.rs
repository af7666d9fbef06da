//! Alerting end to end (issue #4), against the real ClickHouse 18.16 server and a real SMTP
//! server (aiosmtpd, started privately per test by `scripts/services/smtp.sh`):
//!
//! - `drift_in_three_columns_mails_one_incident_then_resolves`: simulated traffic in the store,
//!   `vigil analyze` window after window; an injected shift in 3 columns opens exactly one
//!   incident within two windows and sends one message (both recipients, plain + HTML parts,
//!   the 3 columns, a chart); ack; two clear windows resolve it with a resolve message; a
//!   silence keeps the next incident quiet; `vigil alerts test` sends a test message.
//! - `smtp_down_while_firing_is_delivered_once_across_a_restart`: the alert fires while the SMTP
//!   server is down; `vigil serve` retries, is killed with SIGKILL, the server comes up, a new
//!   `vigil serve` delivers it exactly once; also the alerts HTTP API with roles.
//! - `quiet_stream_500_windows_20_columns_raises_nothing`: the pure engine with the default
//!   rules over 500 quiet windows × 20 columns scored by the real drift statistics: no alert;
//!   then a shift in 3 columns: exactly one incident within two windows.

mod common;

use common::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use vigil_collector::simulate::TrafficSimulator;
use vigil_store::event::{parse_event, EventKind, EventTime, Limits};
use vigil_store::rows::{InferenceRow, RowBatch, SourceCoord};

const WINDOW: u32 = 3600;
const PER_WINDOW: usize = 2000;

/// A private SMTP sink on its own port; stopped on drop.
struct PrivateSmtp {
    dir: PathBuf,
    port: u16,
    mail: PathBuf,
}

impl PrivateSmtp {
    fn new(root: &Path) -> PrivateSmtp {
        PrivateSmtp {
            dir: root.join("services"),
            port: free_port(),
            mail: root.join("mail"),
        }
    }
    fn run(&self, action: &str) {
        let status = Command::new("bash")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/services/smtp.sh"))
            .arg(action)
            .env("VIGIL_SERVICES_DIR", &self.dir)
            .env("VIGIL_SMTP_PORT", self.port.to_string())
            .env("VIGIL_SMTP_DIR", &self.mail)
            .status()
            .expect("run scripts/services/smtp.sh");
        assert!(
            status.success(),
            "scripts/services/smtp.sh {action} failed (it installs aiosmtpd from PyPI into a venv)"
        );
    }
    /// Received messages (the sink's JSON summaries), oldest first.
    fn messages(&self) -> Vec<serde_json::Value> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.mail)
            .map(|d| {
                d.filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "json"))
                    .filter(|p| {
                        !p.file_name()
                            .is_some_and(|n| n.to_string_lossy().starts_with('.'))
                    })
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        files
            .iter()
            .map(|p| {
                serde_json::from_str(&std::fs::read_to_string(p).expect("read message summary"))
                    .expect("message summary is JSON")
            })
            .collect()
    }
}

impl Drop for PrivateSmtp {
    fn drop(&mut self) {
        self.run("stop");
    }
}

fn subjects(msgs: &[serde_json::Value]) -> Vec<String> {
    msgs.iter()
        .map(|m| m["subject"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn part<'a>(m: &'a serde_json::Value, content_type: &str) -> Option<&'a serde_json::Value> {
    m["parts"]
        .as_array()?
        .iter()
        .find(|p| p["content_type"] == content_type)
}

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

fn rfc(s: u32) -> String {
    chrono::DateTime::from_timestamp(s as i64, 0)
        .expect("time")
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// `vigil.toml` with one monitor (4 churn features, hourly), one e-mail route, fast retries.
fn config(dir: &Path, url: &str, smtp_port: u16, t0: u32, monitors: bool, extra: &str) -> PathBuf {
    let mut text = format!(
        r#"[store]
url = "{url}"

[alerting]
dashboard_url = "http://vigil.example.com"
runbook_url = "http://wiki.example.com/runbooks/drift"
deliver_every = "1s"
retry_base = "1s"
retry_max = "2s"
send_timeout = "5s"

[[alert_routes]]
name = "oncall"
email = {{ smtp_url = "smtp://127.0.0.1:{smtp_port}", from = "vigil@example.com", to = ["oncall@example.com", "ml-team@example.com"] }}
{extra}
"#
    );
    if monitors {
        text.push_str(&format!(
            r#"
[[monitors]]
name = "churn-inputs"
model = "churn"
columns = ["tenure_months", "monthly_spend", "support_tickets", "plan"]
window = "1h"
min_rows = 100
reference = {{ from = "{}", to = "{}" }}
"#,
            rfc(t0),
            rfc(t0 + WINDOW)
        ));
    }
    let path = dir.join(if monitors { "vigil.toml" } else { "serve.toml" });
    std::fs::write(&path, text).expect("write config");
    path
}

/// Inserts the reference hour, `quiet` quiet windows, `drift` drifted windows and `after` quiet
/// windows; returns t0.
fn seed(url: &str, quiet: u32, drift: u32, after: u32) -> u32 {
    let rt = runtime();
    let store = rt
        .block_on(vigil_store::Store::open(url))
        .expect("open store");
    rt.block_on(store.migrate(None)).expect("migrate");
    let t0 = 1_790_000_000 / WINDOW * WINDOW;
    let mut sim = TrafficSimulator::new(11, "alert");
    let mut rows = traffic(&mut sim, t0, 4 * PER_WINDOW);
    let mut k = 1;
    for phase in [(quiet, false), (drift, true), (after, false)] {
        sim.set_drift(phase.1);
        for _ in 0..phase.0 {
            rows.extend(traffic(&mut sim, t0 + k * WINDOW, PER_WINDOW));
            k += 1;
        }
    }
    for chunk in rows.chunks(20_000) {
        rt.block_on(store.insert(chunk)).expect("insert");
    }
    t0
}

fn vigil_ok(config: &Path, args: &[&str]) -> String {
    let out = vigil()
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .expect("run vigil");
    assert!(
        out.status.success(),
        "vigil {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `vigil analyze` at the end of window `k` (window k covers `[t0 + k·W, t0 + (k+1)·W)`).
fn analyze(config: &Path, t0: u32, k: u32) {
    vigil_ok(config, &["analyze", "--at", &rfc(t0 + (k + 1) * WINDOW)]);
}

fn incidents(config: &Path, state: Option<&str>) -> Vec<serde_json::Value> {
    let mut args = vec!["alerts", "list", "--format", "json"];
    if let Some(s) = state {
        args.extend(["--state", s]);
    }
    serde_json::from_str(&vigil_ok(config, &args)).expect("alerts list is JSON")
}

#[test]
fn drift_in_three_columns_mails_one_incident_then_resolves() {
    let dir = tempfile::tempdir().expect("tempdir");
    let smtp = PrivateSmtp::new(dir.path());
    smtp.run("start");
    let url = clickhouse_url(&unique("alerting"));
    // Windows 1–8 quiet, 9–11 drift (monthly_spend, support_tickets, plan), 12–14 quiet,
    // 15–16 drift again (under a silence).
    let t0 = seed(&url, 8, 3, 3);
    {
        // The second drift episode.
        let rt = runtime();
        let store = rt.block_on(vigil_store::Store::open(&url)).expect("open");
        let mut sim = TrafficSimulator::new(12, "alert2");
        sim.set_drift(true);
        let mut rows = traffic(&mut sim, t0 + 15 * WINDOW, PER_WINDOW);
        rows.extend(traffic(&mut sim, t0 + 16 * WINDOW, PER_WINDOW));
        rt.block_on(store.insert(&rows)).expect("insert");
    }
    let cfg = config(dir.path(), &url, smtp.port, t0, true, "");

    for k in 1..=8 {
        analyze(&cfg, t0, k);
    }
    assert!(smtp.messages().is_empty(), "quiet windows sent mail");
    assert!(incidents(&cfg, None).is_empty());

    analyze(&cfg, t0, 9); // first drifted window: persistence (2 of 3) holds it back
    assert!(
        smtp.messages().is_empty(),
        "fired on a single window: {:?}",
        subjects(&smtp.messages())
    );
    analyze(&cfg, t0, 10); // second drifted window: one incident, one message
    let msgs = smtp.messages();
    assert_eq!(
        subjects(&msgs),
        vec!["[vigil][warning] churn: input drift in 3 columns"]
    );
    let m = &msgs[0];
    let mut rcpt: Vec<&str> = m["rcpt_tos"]
        .as_array()
        .expect("rcpt")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    rcpt.sort();
    assert_eq!(rcpt, vec!["ml-team@example.com", "oncall@example.com"]);
    assert_eq!(m["from"], "vigil@example.com");
    let text = part(m, "text/plain").expect("plain part")["text"]
        .as_str()
        .expect("text")
        .to_string();
    let html = part(m, "text/html").expect("html part")["text"]
        .as_str()
        .expect("html")
        .to_string();
    for col in ["monthly_spend", "support_tickets", "plan"] {
        assert!(text.contains(col), "{col} missing in:\n{text}");
        assert!(html.contains(col), "{col} missing in HTML");
    }
    assert!(!text.contains("tenure_months"), "{text}");
    assert!(text.contains("http://wiki.example.com/runbooks/drift"));
    assert!(text.contains("http://vigil.example.com/monitors/churn-inputs"));
    assert!(html.contains("<table") && html.contains("cid:chart"));
    let chart = part(m, "image/png").expect("chart part");
    assert_eq!(chart["png"], true);
    assert_eq!(chart["content_id"], "<chart>");
    assert!(part(m, "multipart/alternative").is_some());

    let open = incidents(&cfg, Some("firing"));
    assert_eq!(open.len(), 1, "{open:#?}");
    assert_eq!(open[0]["columns"].as_array().map(Vec::len), Some(3));
    let id = open[0]["id"].as_str().expect("id").to_string();

    analyze(&cfg, t0, 11); // third drifted window: same incident, no new message
    assert_eq!(smtp.messages().len(), 1, "{:?}", subjects(&smtp.messages()));

    let acked = vigil_ok(&cfg, &["alerts", "ack", &id, "--by", "alice"]);
    assert!(acked.contains("acknowledged by alice"), "{acked}");
    assert_eq!(incidents(&cfg, Some("acknowledged")).len(), 1);

    analyze(&cfg, t0, 12); // clear window 1 of 2 (hysteresis)
    assert_eq!(smtp.messages().len(), 1);
    analyze(&cfg, t0, 13); // clear window 2: resolved, with a message
    let msgs = smtp.messages();
    assert_eq!(
        subjects(&msgs),
        vec![
            "[vigil][warning] churn: input drift in 3 columns",
            "[vigil][warning] churn: resolved: input drift in 3 columns"
        ]
    );
    let resolved_text = part(&msgs[1], "text/plain").expect("plain")["text"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(resolved_text.starts_with("RESOLVED"), "{resolved_text}");
    let all = incidents(&cfg, None);
    assert_eq!(all.len(), 1);
    assert_eq!(all[0]["state"], "resolved");
    assert_eq!(all[0]["acked_by"], "alice");

    // History: fired → acknowledged (alice) → resolved.
    let rt = runtime();
    let store = rt.block_on(vigil_store::Store::open(&url)).expect("open");
    let history = rt
        .block_on(vigil_analyzer::alerting::db::events(&store, Some(&id)))
        .expect("events");
    let kinds: Vec<(&str, &str)> = history
        .iter()
        .map(|e| (e.event.as_str(), e.actor.as_str()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("fired", "vigil"),
            ("acknowledged", "alice"),
            ("resolved", "vigil")
        ]
    );

    // A silence keeps the next incident out of the inbox (still recorded).
    let s = vigil_ok(
        &cfg,
        &[
            "alerts",
            "silence",
            "--model",
            "churn",
            "--for",
            "2h",
            "--reason",
            "planned migration",
        ],
    );
    assert!(
        s.contains("silence") && s.contains("planned migration"),
        "{s}"
    );
    analyze(&cfg, t0, 14);
    analyze(&cfg, t0, 15);
    analyze(&cfg, t0, 16);
    assert_eq!(smtp.messages().len(), 2, "{:?}", subjects(&smtp.messages()));
    let firing = incidents(&cfg, Some("firing"));
    assert_eq!(firing.len(), 1, "{firing:#?}");
    assert_eq!(firing[0]["silenced"], true);

    // `vigil alerts test --route oncall` sends a test message through the route.
    let out = vigil_ok(&cfg, &["alerts", "test", "--route", "oncall"]);
    assert!(out.contains("test message sent"), "{out}");
    let msgs = smtp.messages();
    assert_eq!(msgs.len(), 3);
    assert_eq!(
        msgs[2]["subject"],
        "[vigil][test] route oncall: test message"
    );
    let bad = vigil()
        .arg("--config")
        .arg(&cfg)
        .args(["alerts", "test", "--route", "nope"])
        .output()
        .expect("run vigil");
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("no alert route named `nope`"));
}

const HEALTH_WINDOW: u32 = 300;
const HEALTH_PER_WINDOW: usize = 400;

/// One health window of churn traffic: latencies spread over 40..=`slowest` ms, `errors`
/// events without a prediction (failed inferences), ingest lag 5 s, `plan` missing in every
/// 50th event.
fn health_rows(t0: u32, k: u32, slowest: f64, errors: usize) -> Vec<InferenceRow> {
    let start = t0 + k * HEALTH_WINDOW;
    (0..HEALTH_PER_WINDOW)
        .map(|i| {
            let ts = start + (i as u32 * HEALTH_WINDOW) / HEALTH_PER_WINDOW as u32;
            let failed = i < errors;
            let (cat_names, cat_values) = if i % 50 == 7 {
                (vec![], vec![])
            } else {
                (vec!["plan".to_string()], vec!["pro".to_string()])
            };
            InferenceRow {
                event_id: format!("h-{k}-{i}"),
                ts,
                ts_ms: ts as u64 * 1000,
                model: "churn".into(),
                version: "v1".into(),
                unit_id: format!("u{i}"),
                num_names: vec!["monthly_spend".into()],
                num_values: vec![30.0 + i as f64],
                cat_names,
                cat_values,
                score: (!failed).then_some(0.4),
                label: None,
                // A permutation of 40..=slowest, so p95 is known exactly.
                latency_ms: Some(
                    40.0 + ((i * 7919) % HEALTH_PER_WINDOW) as f64 * (slowest - 40.0)
                        / (HEALTH_PER_WINDOW - 1) as f64,
                ),
                cost: None,
                attr_names: vec![],
                attr_values: vec![],
                experiment: String::new(),
                variant: String::new(),
                input: String::new(),
                source: "test".into(),
                src_partition: -1,
                src_offset: -1,
                ingested_at: ts + 5,
                ..Default::default()
            }
        })
        .collect()
}

/// ClickHouse's `quantileExact(0.95)`: the element at index ⌊0.95·n⌋ of the sorted values.
fn p95(rows: &[InferenceRow]) -> f64 {
    let mut v: Vec<f64> = rows.iter().filter_map(|r| r.latency_ms).collect();
    v.sort_by(f64::total_cmp);
    v[(0.95 * v.len() as f64) as usize]
}

/// A health monitor (p95 latency, error rate, ingest lag, missing `plan`) over 5-minute windows
/// on the real ClickHouse server: its numbers are exact (duplicated events count once), two
/// breached windows open one incident that lists both breached checks in one message, and two
/// healthy windows resolve it with a resolve message.
#[test]
fn health_checks_breach_mail_one_incident_then_resolve() {
    let dir = tempfile::tempdir().expect("tempdir");
    let smtp = PrivateSmtp::new(dir.path());
    smtp.run("start");
    let url = clickhouse_url(&unique("health"));
    let t0 = 1_790_000_000 / HEALTH_WINDOW * HEALTH_WINDOW;
    // Windows 0–3 healthy (p95 ≈ 143 ms, 0.5% errors), 4–5 slow (p95 ≈ 476 ms) and failing
    // (5% errors), 6–7 healthy again.
    let windows: Vec<Vec<InferenceRow>> = (0..8)
        .map(|k| {
            if k == 4 || k == 5 {
                health_rows(t0, k, 500.0, 20)
            } else {
                health_rows(t0, k, 150.0, 2)
            }
        })
        .collect();
    {
        let rt = runtime();
        let store = rt.block_on(vigil_store::Store::open(&url)).expect("open");
        rt.block_on(store.migrate(None)).expect("migrate");
        for w in &windows {
            rt.block_on(store.insert(w)).expect("insert");
        }
        // A replayed batch: the same events again must not change any number.
        rt.block_on(store.insert(&windows[4]))
            .expect("insert duplicates");
    }
    let monitor = r#"
[[monitors]]
name = "churn-health"
model = "churn"
window = "5m"
min_rows = 50
columns = ["plan", "monthly_spend"]
health = { latency_p95_ms = 250, error_rate = 0.02, ingest_lag_p95 = "1m", missing_share = 0.05 }
"#;
    let cfg = config(dir.path(), &url, smtp.port, t0, false, monitor);
    let at = |k: u32| rfc(t0 + (k + 1) * HEALTH_WINDOW);
    let analyze_json = |k: u32| -> serde_json::Value {
        serde_json::from_str(&vigil_ok(
            &cfg,
            &["analyze", "--at", &at(k), "--format", "json"],
        ))
        .expect("analyze --format json")
    };

    for k in 0..4 {
        analyze_json(k);
    }
    assert!(smtp.messages().is_empty(), "healthy windows sent mail");

    // Window 4: breached, and its numbers are exactly the events' (the duplicates count once).
    let out = analyze_json(4);
    let text = out.to_string();
    let rt = runtime();
    let store = rt.block_on(vigil_store::Store::open(&url)).expect("open");
    let rows = rt
        .block_on(vigil_analyzer::monitor::stored_results(
            &store,
            "churn-health",
            t0 + 5 * HEALTH_WINDOW,
            t0 + 5 * HEALTH_WINDOW,
        ))
        .expect("stored results");
    let score = |c: &str| {
        rows.iter()
            .find(|r| r.column == c)
            .unwrap_or_else(|| panic!("no {c} row in {rows:#?}\n{text}"))
    };
    assert_eq!(score("latency_p95_ms").score, p95(&windows[4]));
    assert_eq!(score("latency_p95_ms").verdict, "drift");
    assert_eq!(score("error_rate").score, 20.0 / 400.0);
    assert_eq!(score("error_rate").verdict, "drift");
    assert_eq!(score("ingest_lag_p95_s").score, 5.0);
    assert_eq!(score("ingest_lag_p95_s").verdict, "ok");
    assert_eq!(score("missing_share:plan").score, 8.0 / 400.0);
    assert_eq!(score("missing_share:monthly_spend").score, 0.0);
    assert_eq!(score("*").verdict, "drift");
    assert_eq!(score("*").current_rows, 400);
    assert!(
        smtp.messages().is_empty(),
        "fired on one window (persistence is 2 of 3)"
    );

    analyze_json(5); // second breached window: one incident, one message with both checks
    let msgs = smtp.messages();
    assert_eq!(
        subjects(&msgs),
        vec!["[vigil][warning] churn: health: 2 checks breached (error_rate, latency_p95_ms)"]
    );
    let body = part(&msgs[0], "text/plain").expect("plain part")["text"]
        .as_str()
        .expect("text")
        .to_string();
    assert!(body.contains("error rate 5.0% > 2.0%"), "{body}");
    assert!(body.contains("p95 latency"), "{body}");
    assert!(!body.contains("missing_share"), "{body}");
    assert!(part(&msgs[0], "text/html").is_some());
    let open = incidents(&cfg, Some("firing"));
    assert_eq!(open.len(), 1, "{open:#?}");
    assert_eq!(open[0]["rule"], "default-health");

    analyze_json(6); // healthy 1 of 2 (hysteresis)
    assert_eq!(smtp.messages().len(), 1);
    analyze_json(7); // healthy 2 of 2: resolved
    let msgs = smtp.messages();
    assert_eq!(
        subjects(&msgs)[1],
        "[vigil][warning] churn: resolved: health: 2 checks breached (error_rate, latency_p95_ms)"
    );
    assert_eq!(incidents(&cfg, None)[0]["state"], "resolved");
}

#[test]
fn smtp_down_while_firing_is_delivered_once_across_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let smtp = PrivateSmtp::new(dir.path()); // not started yet: the server is down
    let url = clickhouse_url(&unique("alertdown"));
    let t0 = seed(&url, 6, 2, 0);
    let cfg = config(dir.path(), &url, smtp.port, t0, true, "");
    for k in 1..=8 {
        analyze(&cfg, t0, k); // fires at window 8; the delivery attempt fails
    }
    let outbox = |cfg: &Path| -> Vec<serde_json::Value> {
        serde_json::from_str(&vigil_ok(cfg, &["alerts", "outbox", "--format", "json"]))
            .expect("outbox JSON")
    };
    let o = outbox(&cfg);
    assert_eq!(o.len(), 1, "{o:#?}");
    assert_eq!(o[0]["status"], "pending");
    assert_eq!(o[0]["attempts"], 1);
    assert!(
        o[0]["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("SMTP"),
        "{o:#?}"
    );

    // `vigil serve` (no monitors: it only delivers) keeps retrying while the server is down.
    let http_port = free_port();
    let extra = format!(
        "[http]\nbind = \"127.0.0.1:{http_port}\"\n\n[[auth.tokens]]\nname = \"viewer-1\"\nrole = \"viewer\"\ntoken = \"view-secret\"\n\n[[auth.tokens]]\nname = \"bob\"\nrole = \"operator\"\ntoken = \"op-secret\"\n"
    );
    let serve_cfg = config(dir.path(), &url, smtp.port, t0, false, &extra);
    let log = dir.path().join("serve.log");
    let served = Served::start(&serve_cfg, &log, &["--no-kafka"]);
    let retried = wait_for(Duration::from_secs(60), || {
        outbox(&cfg)[0]["attempts"].as_u64().unwrap_or(0) >= 3
    });
    assert!(
        retried,
        "no retries; outbox {:#?}; log:\n{}",
        outbox(&cfg),
        served.log_text()
    );
    assert_eq!(outbox(&cfg)[0]["status"], "pending");
    served.kill9(); // a crash, not a clean stop

    smtp.run("start");
    let served = Served::start(&serve_cfg, &log, &["--no-kafka"]);
    let delivered = wait_for(Duration::from_secs(60), || !smtp.messages().is_empty());
    assert!(delivered, "not delivered; log:\n{}", served.log_text());
    // Several more delivery ticks, then a restart: still exactly one message.
    std::thread::sleep(Duration::from_secs(4));

    // The alerts HTTP API: viewer reads, operator acknowledges, viewer may not.
    let client = reqwest::blocking::Client::new();
    let base = format!("http://127.0.0.1:{http_port}");
    let list: serde_json::Value = client
        .get(format!("{base}/v1/alerts?state=firing"))
        .bearer_auth("view-secret")
        .send()
        .expect("GET /v1/alerts")
        .json()
        .expect("JSON");
    let id = list[0]["id"].as_str().expect("incident id").to_string();
    let no_auth = client.get(format!("{base}/v1/alerts")).send().expect("GET");
    assert_eq!(no_auth.status().as_u16(), 401);
    let forbidden = client
        .post(format!("{base}/v1/alerts/{id}/ack"))
        .bearer_auth("view-secret")
        .send()
        .expect("POST ack");
    assert_eq!(forbidden.status().as_u16(), 403);
    let acked: serde_json::Value = client
        .post(format!("{base}/v1/alerts/{id}/ack"))
        .bearer_auth("op-secret")
        .send()
        .expect("POST ack")
        .json()
        .expect("JSON");
    assert_eq!(acked["state"], "acknowledged");
    assert_eq!(acked["acked_by"], "bob");
    let unknown = client
        .post(format!("{base}/v1/alerts/nope/ack"))
        .bearer_auth("op-secret")
        .send()
        .expect("POST ack");
    assert_eq!(unknown.status().as_u16(), 404);
    let silence = client
        .post(format!("{base}/v1/silences"))
        .bearer_auth("op-secret")
        .json(&serde_json::json!({"model": "churn", "for": "30m", "reason": "deploy"}))
        .send()
        .expect("POST silence");
    assert_eq!(silence.status().as_u16(), 201);

    served.terminate();
    let served = Served::start(&serve_cfg, &log, &["--no-kafka"]);
    std::thread::sleep(Duration::from_secs(4));
    served.terminate();
    let msgs = smtp.messages();
    assert_eq!(
        subjects(&msgs),
        vec!["[vigil][warning] churn: input drift in 3 columns"],
        "log:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let o = outbox(&cfg);
    assert_eq!(o[0]["status"], "delivered");
    assert!(o[0]["attempts"].as_u64().unwrap_or(0) >= 4, "{o:#?}");
}

/// The pure engine with the default rules over simulated monitor results computed by the real
/// drift statistics (`vigil_analyzer::drift`), as `vigil analyze` would store them.
#[test]
fn quiet_stream_500_windows_20_columns_raises_nothing() {
    use rand::{Rng, SeedableRng};
    use vigil_analyzer::alerting::config::{default_rules, RuleKind};
    use vigil_analyzer::alerting::engine::{
        self, Baseline, ColumnScore, GroupKey, GroupState, Transition, WindowResults,
    };
    use vigil_analyzer::drift::{column_drift, CategoryCounts, ColumnSample, NumericCounts};

    const COLUMNS: usize = 20;
    const REF_ROWS: usize = 10_000;
    const ROWS: usize = 1000;
    const CATS: [&str; 5] = ["a", "b", "c", "d", "e"];
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    let normal = |rng: &mut rand::rngs::StdRng| -> f64 {
        let (u, v): (f64, f64) = (rng.gen_range(1e-12..1.0), rng.gen());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    };
    // Columns 0–13 numerical (some integer-valued), 14–19 categorical; `shift` moves a column.
    let sample = |rng: &mut rand::rngs::StdRng, col: usize, n: usize, shift: bool| {
        if col < 14 {
            let v: Vec<f64> = (0..n)
                .map(|_| {
                    let x = 10.0 * col as f64 + (1.0 + col as f64) * normal(rng);
                    let x = if shift { x + 1.0 + col as f64 } else { x };
                    if col.is_multiple_of(3) {
                        x.round()
                    } else {
                        x
                    }
                })
                .collect();
            ColumnSample::Numerical(
                NumericCounts::from_values(&v)
                    .expect("finite")
                    .with_integer_type(col.is_multiple_of(3)),
            )
        } else {
            let v: Vec<&str> = (0..n)
                .map(|_| {
                    if shift && rng.gen_bool(0.3) {
                        "e"
                    } else {
                        CATS[rng.gen_range(0..4)]
                    }
                })
                .collect();
            ColumnSample::Categorical(CategoryCounts::from_values(&v))
        }
    };
    let reference: Vec<ColumnSample> = (0..COLUMNS)
        .map(|c| sample(&mut rng, c, REF_ROWS, false))
        .collect();
    let score = |c: usize, cur: &ColumnSample| -> ColumnScore {
        let d = column_drift(&format!("c{c:02}"), &reference[c], cur, None, None).expect("drift");
        ColumnScore {
            column: d.column,
            method: d.method.name().to_string(),
            score: d.score,
            threshold: d.threshold,
            verdict: if d.drift { "drift" } else { "ok" }.into(),
        }
    };
    // Learned thresholds: the statistic of 10 window-sized chunks drawn like the reference,
    // each against the whole reference.
    let mut baselines = BTreeMap::new();
    for c in 0..COLUMNS {
        let scores: Vec<f64> = (0..10)
            .map(|_| score(c, &sample(&mut rng, c, ROWS, false)).score)
            .collect();
        baselines.insert(
            format!("c{c:02}"),
            Baseline::learn(&scores).expect("10 chunks"),
        );
    }
    let rules = default_rules();
    let drift_rule = rules
        .iter()
        .find(|r| r.kind == RuleKind::Drift)
        .expect("default drift rule");
    let key = GroupKey {
        monitor: "m".into(),
        model: "churn".into(),
        version: String::new(),
    };
    let mut state = GroupState::default();
    let mut history: Vec<WindowResults> = Vec::new();
    let mut transitions = Vec::new();
    let mut raw_drift_verdicts = 0;
    let mut max_score: f64 = 0.0;
    let shifted = [2usize, 7, 15];
    for w in 1..=503u32 {
        let drifting = w > 500;
        let columns: Vec<ColumnScore> = (0..COLUMNS)
            .map(|c| {
                let cur = sample(&mut rng, c, ROWS, drifting && shifted.contains(&c));
                score(c, &cur)
            })
            .collect();
        if !drifting {
            raw_drift_verdicts += columns.iter().filter(|c| c.verdict == "drift").count();
            max_score = columns.iter().map(|c| c.score).fold(max_score, f64::max);
        }
        history.push(WindowResults {
            window_end: w * WINDOW,
            columns,
            dataset_verdict: "ok".into(),
        });
        if history.len() > 8 {
            history.remove(0);
        }
        for rule in &rules {
            if let Some(t) = engine::step(
                rule,
                &key,
                &history,
                &baselines,
                &state,
                3600,
                false,
                w * WINDOW,
            ) {
                if rule.name == drift_rule.name {
                    transitions.push((w, t.clone()));
                    engine::apply(&mut state, &t);
                }
            }
        }
    }
    eprintln!(
        "500 quiet windows × {COLUMNS} columns: largest distance {max_score:.4}, {raw_drift_verdicts} raw column verdicts over the method threshold"
    );
    let fired: Vec<(u32, &engine::Incident)> = transitions
        .iter()
        .filter_map(|(w, t)| match t {
            Transition::Fired(i) => Some((*w, i)),
            _ => None,
        })
        .collect();
    assert_eq!(fired.len(), 1, "{transitions:#?}");
    let (at, inc) = fired[0];
    assert!(at <= 502, "fired at window {at}, later than two windows");
    let mut cols: Vec<&str> = inc.columns.iter().map(|c| c.column.as_str()).collect();
    cols.sort();
    assert_eq!(cols, vec!["c02", "c07", "c15"]);
}

/// Requests a webhook receiver saw: (path, idempotency key, body).
type Seen = std::sync::Arc<std::sync::Mutex<Vec<(String, String, String)>>>;

/// A webhook receiver on 127.0.0.1: answers 500 to the first request on `/flaky`, 200 to every
/// other; records (path, idempotency key, body). Serves until the test process ends.
fn webhook_receiver() -> (u16, Seen) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind receiver");
    let port = listener.local_addr().expect("addr").port();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        let mut flaky_failed = false;
        for stream in listener.incoming().take(50) {
            let Ok(mut s) = stream else { continue };
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            // Read headers, then the body by Content-Length.
            let (head, body) = loop {
                let Ok(n) = s.read(&mut chunk) else {
                    break (String::new(), String::new());
                };
                if n == 0 {
                    break (String::new(), String::new());
                }
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf).to_string();
                if let Some(i) = text.find("\r\n\r\n") {
                    let head = text[..i].to_string();
                    let len: usize = head
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse().ok())?
                        })
                        .unwrap_or(0);
                    if buf.len() >= i + 4 + len {
                        break (
                            head,
                            String::from_utf8_lossy(&buf[i + 4..i + 4 + len]).to_string(),
                        );
                    }
                }
            };
            let path = head
                .split_whitespace()
                .nth(1)
                .unwrap_or_default()
                .to_string();
            let key = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("idempotency-key")
                        .then(|| v.trim().to_string())
                })
                .unwrap_or_default();
            let status = if path == "/flaky" && !flaky_failed {
                flaky_failed = true;
                "500 Internal Server Error"
            } else {
                "200 OK"
            };
            log.lock().expect("lock").push((path, key, body));
            let _ = s.write_all(
                format!("HTTP/1.1 {status}\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
                    .as_bytes(),
            );
        }
    });
    (port, seen)
}

#[test]
fn webhooks_generic_and_slack() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = clickhouse_url(&unique("alerthook"));
    let (port, seen) = webhook_receiver();
    let extra = format!(
        "\n[[alert_routes]]\nname = \"hook\"\nwebhook = {{ url = \"http://127.0.0.1:{port}/flaky\" }}\n\n[[alert_routes]]\nname = \"chat\"\nwebhook = {{ url = \"http://127.0.0.1:{port}/slack\", format = \"slack\" }}\n"
    );
    let cfg = config(dir.path(), &url, free_port(), 0, false, &extra);
    let out = vigil_ok(&cfg, &["alerts", "test", "--route", "chat"]);
    assert!(out.contains("1 channel(s)"), "{out}");
    // The first POST to /flaky gets a 500: the test command says so and exits 1 …
    let failed = vigil()
        .arg("--config")
        .arg(&cfg)
        .args(["alerts", "test", "--route", "hook"])
        .output()
        .expect("run vigil");
    assert_eq!(failed.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&failed.stderr).contains("500"),
        "{}",
        String::from_utf8_lossy(&failed.stderr)
    );
    // … and the next one goes through.
    vigil_ok(&cfg, &["alerts", "test", "--route", "hook"]);
    let seen = seen.lock().expect("lock").clone();
    assert_eq!(seen.len(), 3, "{seen:#?}");
    let slack: serde_json::Value = serde_json::from_str(&seen[0].2).expect("slack JSON");
    assert_eq!(seen[0].0, "/slack");
    assert!(
        slack["text"]
            .as_str()
            .unwrap_or_default()
            .starts_with("*[vigil][test] route chat: test message*"),
        "{slack}"
    );
    let generic: serde_json::Value = serde_json::from_str(&seen[2].2).expect("generic JSON");
    assert_eq!(generic["event"], "test");
    assert_eq!(generic["route"], "hook");
    assert!(
        seen.iter().all(|(_, key, _)| key.ends_with(":webhook")),
        "{seen:#?}"
    );
    assert_ne!(seen[1].1, seen[2].1, "each test message has its own key");
}

/// Every alerting query on both backends (ClickHouse 18.16 server and chDB 26.x): latest
/// state by `argMax`, the outbox's due/retry bookkeeping, silences and history.
async fn alert_queries(store: vigil_store::Store) {
    use vigil_analyzer::alerting::engine::{FiredColumn, Incident, IncidentState};
    use vigil_analyzer::alerting::render::Notification;
    use vigil_analyzer::alerting::{cli, db, outbox, AlertingConfig, RouteConfig};
    store.migrate(None).await.expect("migrate");
    let mut inc = Incident {
        id: "r:m:churn:all:7200".into(),
        rule: "r".into(),
        kind: "drift".into(),
        monitor: "m".into(),
        model: "churn".into(),
        version: String::new(),
        severity: "critical".into(),
        state: IncidentState::Firing,
        silenced: false,
        opened_at: 7300,
        first_window_end: 7200,
        last_window_end: 7200,
        clear_windows: 0,
        columns: vec![FiredColumn {
            column: "plan".into(),
            method: "jensenshannon".into(),
            score: 0.3,
            threshold: 0.1,
            window_end: 7200,
        }],
        acked_by: String::new(),
        acked_at: 0,
        resolved_at: 0,
    };
    db::put_incident(&store, &inc).await.expect("put");
    db::add_event(&store, &inc, "fired", "vigil", "1 column")
        .await
        .expect("event");
    let acked = cli::ack(&store, &inc.id, "carol").await.expect("ack");
    assert_eq!(acked.state, IncidentState::Acknowledged);
    inc = acked;
    inc.state = IncidentState::Resolved;
    inc.last_window_end = 14_400;
    db::put_incident(&store, &inc).await.expect("put resolved");
    let all = cli::list(&store, None).await.expect("list");
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].state, IncidentState::Resolved);
    assert_eq!(all[0].acked_by, "carol");
    assert_eq!(all[0].columns.len(), 1);
    assert!(cli::list(&store, Some("firing"))
        .await
        .expect("list")
        .is_empty());
    assert!(matches!(
        cli::ack(&store, &inc.id, "x").await,
        Err(vigil_analyzer::alerting::AlertError::AlreadyResolved(_))
    ));
    let g = db::group_incidents(&store, "r", "m", "churn", "")
        .await
        .expect("group");
    assert_eq!(g.len(), 1);
    let h = db::events(&store, Some(&inc.id)).await.expect("events");
    assert_eq!(
        h.iter().map(|e| e.event.as_str()).collect::<Vec<_>>(),
        vec!["fired", "acknowledged"]
    );

    // Outbox: enqueue once per key; a failed attempt stays pending with a later retry.
    let route: RouteConfig = serde_json::from_value(serde_json::json!({
        "name": "oncall",
        "email": {"smtp_url": format!("smtp://127.0.0.1:{}", free_port()),
                  "from": "vigil@example.com", "to": ["a@example.com"]}
    }))
    .expect("route");
    let routes = vec![route];
    let n = Notification {
        subject: "s".into(),
        text: "t".into(),
        html: "<p>h</p>".into(),
        idempotency_key: "k1".into(),
        ..Default::default()
    };
    let keys = outbox::enqueue(&store, &routes, "oncall", "", "custom", &n)
        .await
        .expect("enqueue");
    assert_eq!(keys, vec!["k1:oncall:email".to_string()]);
    assert!(outbox::enqueue(&store, &routes, "oncall", "", "custom", &n)
        .await
        .expect("enqueue again")
        .is_empty());
    let cfg = AlertingConfig {
        retry_base: "1h".into(),
        retry_max: "2h".into(),
        send_timeout: "2s".into(),
        ..Default::default()
    };
    let r = outbox::deliver_due(&store, &cfg, &routes, None, false)
        .await
        .expect("deliver");
    assert_eq!(r.retrying.len(), 1, "{r:?}");
    let rows = outbox::list(&store, None).await.expect("outbox");
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].status.as_str(), rows[0].attempts), ("pending", 1));
    assert!(rows[0].next_attempt_at > db::now_secs() + 3000);
    assert!(outbox::due(&store, db::now_secs())
        .await
        .expect("due")
        .is_empty());

    let s = cli::silence(&store, "churn", None, "2h", "deploy", "dave")
        .await
        .expect("silence");
    let active = db::active_silences(&store, db::now_secs())
        .await
        .expect("active");
    assert_eq!(active.len(), 1);
    assert_eq!(active[0].id, s.id);
    assert!(db::silenced_by(&active, "churn", "any-monitor"));
    assert!(db::active_silences(&store, s.ends_at + 1)
        .await
        .expect("later")
        .is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alert_queries_on_clickhouse_server() {
    let store = vigil_store::Store::open(&clickhouse_url(&unique("alertq")))
        .await
        .expect("open server store");
    alert_queries(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alert_queries_on_embedded_chdb() {
    require_chdb();
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!(
        "chdb://{}?database={}",
        dir.path().display(),
        unique("alertq")
    );
    let store = vigil_store::Store::open(&url)
        .await
        .expect("open chdb store");
    assert!(
        store.describe().contains("chDB 26."),
        "{}",
        store.describe()
    );
    alert_queries(store).await;
}
