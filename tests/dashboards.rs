//! The web UI end to end, in a real headless Chromium driven over WebDriver (chromedriver +
//! fantoccini), against simulated traffic in an embedded chDB store, with exact numbers and
//! roles. (`tests/demo.rs` drives the pages of a running `vigil demo`.)
//!
//! The demo's simulator writes traffic (churn and fraud models, v1 and v2, drift injected),
//! loaded with `vigil ingest`; the test adds an A/B experiment's exposures and conversions and
//! an LLM's requests with feedback (the LLM page),
//! runs the monitors over a few windows with `vigil analyze --at`, computes the expected ROI
//! numbers from the store with its own SQL, then starts `vigil serve` with role tokens and
//! drives every page. Screenshots go to `target/screenshots/roles/`.
//!
//! Needs `bash scripts/services/chromium.sh install` and `bash scripts/services/chdb.sh install`.

mod common;

use common::browser::{self, attr_f64, js, visit, wait_css};
use common::fixtures::*;
use common::*;
use fantoccini::{Client, Locator};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const TOKENS: &str = r#"
[auth]
tokens = [
  { name = "ana", role = "viewer", token = "viewer-secret-1" },
  { name = "olga", role = "operator", token = "operator-secret-2" },
  { name = "adam", role = "admin", token = "admin-secret-3" },
]
"#;

fn run_ok(cmd: &mut Command, what: &str) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{what} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Per version of fraud: (units, Σv, Σv², inferences, Σcost, costed inferences), computed by
/// this test from per-unit rows, independently of the dashboards' aggregate SQL.
fn expected_fraud_totals(dir: &Path, config: &Path) -> BTreeMap<String, [f64; 6]> {
    let sql = format!(
        "SELECT version, unit_id, count() AS inferences, sum(ifNull(cost, 0)) AS spent,
                countIf(isNotNull(cost)) AS costed,
                sum(w) AS worth
         FROM (SELECT event_id, version, unit_id, cost FROM vigil.inference_events FINAL WHERE model = 'fraud') AS i
         ANY LEFT JOIN (
             SELECT inference_id AS event_id, sumIf(value, name = 'fraud_confirmed') * ({FRAUD_VALUE}) AS w
             FROM vigil.outcome_events FINAL WHERE model = 'fraud' AND inference_id != '' GROUP BY inference_id
         ) AS o USING event_id
         GROUP BY version, unit_id"
    );
    let tsv = run_ok(
        vigil().current_dir(dir).arg("--config").arg(config).args([
            "sql",
            &sql,
            "--output",
            "TabSeparated",
        ]),
        "vigil sql",
    );
    let mut out: BTreeMap<String, [f64; 6]> = BTreeMap::new();
    for line in tsv.lines().filter(|l| !l.is_empty()) {
        let f: Vec<&str> = line.split('\t').collect();
        assert_eq!(f.len(), 6, "{line}");
        let num = |s: &str| s.parse::<f64>().expect("number");
        let v = num(f[5]);
        let t = out.entry(f[0].to_string()).or_default();
        t[0] += 1.0;
        t[1] += v;
        t[2] += v * v;
        t[3] += num(f[2]);
        t[4] += num(f[3]);
        t[5] += num(f[4]);
    }
    out
}

fn screenshot_dir() -> PathBuf {
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots/roles");
    std::fs::create_dir_all(&d).expect("screenshot dir");
    d
}

async fn login(c: &Client, base: &str, token: &str) {
    c.goto(&format!("{base}/ui/login"))
        .await
        .expect("login page");
    c.find(Locator::Id("token"))
        .await
        .expect("token field")
        .send_keys(token)
        .await
        .expect("type token");
    c.find(Locator::Id("login"))
        .await
        .expect("sign-in button")
        .click()
        .await
        .expect("sign in");
    wait_css(c, "#whoami, #login-error").await;
}

async fn logout(c: &Client) {
    c.find(Locator::Css("form.user button"))
        .await
        .expect("sign-out button")
        .click()
        .await
        .expect("sign out");
    wait_css(c, "#token").await;
}

#[test]
fn dashboards_in_headless_chromium() {
    require_chdb();
    browser::require_chromium();
    let dir = tempfile::tempdir().unwrap();
    let shared = shared_config();
    let demo_cfg = dir.path().join("demo.toml");
    std::fs::write(&demo_cfg, &shared).unwrap();
    let port = free_port();
    let serve_cfg = dir.path().join("serve.toml");
    std::fs::write(
        &serve_cfg,
        format!("{TOKENS}\n[http]\nbind = \"127.0.0.1:{port}\"\n{shared}"),
    )
    .unwrap();

    // 1. Simulated traffic (the demo's simulator, drift injected half-way), the experiment's
    // data, and monitor results for a few windows.
    let (events, outcomes) = simulated_traffic(dir.path(), 16_000);
    let (exposures, conversions) = experiment_files(dir.path(), 1500);
    let (llm_events, llm_feedback, llm_expected) = llm_files(dir.path(), 200);
    for (file, kind) in [
        (&events, "inference"),
        (&outcomes, "outcome"),
        (&exposures, "exposure"),
        (&conversions, "outcome"),
        (&llm_events, "inference"),
        (&llm_feedback, "outcome"),
    ] {
        run_ok(
            vigil()
                .current_dir(dir.path())
                .arg("--config")
                .arg(&demo_cfg)
                .args(["ingest", "--kind", kind, "--file"])
                .arg(file),
            "vigil ingest",
        );
    }
    // Monitor windows aligned on the first event (drift starts 8 s after it).
    let first = run_ok(
        vigil()
            .current_dir(dir.path())
            .arg("--config")
            .arg(&demo_cfg)
            .args([
                "sql",
                "SELECT toUInt32(min(ts)) FROM vigil.inference_events",
                "--output",
                "TabSeparated",
            ]),
        "vigil sql",
    );
    let first: i64 = first.trim().parse().expect("first event time");
    for at in [first + 8, first + 12, first + 16, first + 20] {
        let at = chrono::DateTime::from_timestamp(at, 0)
            .unwrap()
            .to_rfc3339();
        run_ok(
            vigil()
                .current_dir(dir.path())
                .arg("--config")
                .arg(&demo_cfg)
                .args(["analyze", "--at", &at]),
            "vigil analyze",
        );
    }
    let expected = expected_fraud_totals(dir.path(), &demo_cfg);
    let (ctl, trt) = (&expected["v1"], &expected["v2"]);
    let uplift = trt[1] / trt[0] - ctl[1] / ctl[0];
    let cpk = |x: &[f64; 6], gpu: f64| x[4] / x[3] * 1000.0 + gpu * GPU_HOUR_COST;
    let incremental_cost = (cpk(trt, GPU_HOURS_V2) - cpk(ctl, 0.0)) * trt[3] / 1000.0;
    let expected_value = uplift * trt[0] - incremental_cost;

    // 2. `vigil serve` with role tokens on the same store.
    let log = dir.path().join("serve.log");
    let out = std::fs::File::create(&log).unwrap();
    let served = Served {
        child: vigil()
            .current_dir(dir.path())
            .arg("--config")
            .arg(&serve_cfg)
            .args(["serve", "--no-kafka"])
            .stdout(Stdio::from(out.try_clone().unwrap()))
            .stderr(Stdio::from(out))
            .spawn()
            .expect("start vigil serve"),
        log: log.clone(),
    };
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    assert!(
        wait_for(Duration::from_secs(60), || http
            .get(format!("{base}/ui/login"))
            .send()
            .map(|r| r.status().is_success())
            .unwrap_or(false)),
        "dashboards did not come up; log:\n{}",
        served.log_text()
    );
    // Before listening the server built every page, in rounds until the store was warm: at
    // least two (the second shows whether the first was still cold), every page each round.
    let log_text = served.log_text();
    let warmed = log_text
        .lines()
        .find(|l| l.contains("dashboards warmed up"))
        .unwrap_or_else(|| panic!("no warm-up line in the log:\n{log_text}"));
    let field = |name: &str| {
        let rest = &warmed[warmed.find(&format!("{name}=")).expect(name) + name.len() + 1..];
        rest.split_whitespace().next().unwrap_or("").to_string()
    };
    let list = &warmed[warmed.find("rounds=[").expect("rounds") + 8..];
    let rounds = list[..list.find(']').expect("]")]
        .split(',')
        .filter(|r| !r.trim().is_empty())
        .count();
    assert!(
        (2..=vigil_dashboards::pages::WARM_ROUNDS).contains(&rounds),
        "{warmed}"
    );
    assert_eq!(field("failed"), "0", "{warmed}");
    assert_eq!(
        field("pages"),
        (rounds * vigil_dashboards::html::NAV.len()).to_string(),
        "{warmed}"
    );
    // Without a session every page and action is refused on the server.
    let r = http.get(format!("{base}/ui/roi")).send().unwrap();
    assert_eq!(r.status().as_u16(), 303);
    let r = http
        .post(format!("{base}/ui/experiments/churn-v2/promote"))
        .form(&[
            ("csrf", "x"),
            ("arm", "treatment"),
            ("reason", "r"),
            ("confirm", "yes"),
        ])
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);

    // 3. Chromium.
    let rt = runtime();
    rt.block_on(async {
        let browser = browser::start(1280, 1600).await;
        let c = browser.client.clone();

        // The error hook works (so "no errors" below can fail).
        login(&c, &base, "wrong-token").await;
        let err = js(&c, "return document.getElementById('login-error').textContent").await;
        assert!(err.as_str().unwrap_or("").contains("Unknown token"), "{err}");
        js(&c, "console.error('probe'); return null").await;
        assert_eq!(js(&c, "return window.__errors").await, serde_json::json!(["probe"]));

        // 4. A viewer sees every page with data.
        login(&c, &base, "viewer-secret-1").await;
        assert_eq!(js(&c, "return document.getElementById('whoami').dataset.role").await, "viewer");
        let q = "?range=all";
        let pages = [
            ("/ui/", "overview", true),
            ("/ui/roi", "roi", true),
            ("/ui/drift?model=churn&column=monthly_spend", "drift", true),
            ("/ui/fairness?model=churn", "fairness", true),
            ("/ui/experiments?experiment=churn-v2", "experiments", true),
            ("/ui/llm?model=assistant", "llm", true),
            ("/ui/alerts", "alerts", false),
            ("/ui/shadow", "shadow", false),
        ];
        for (path, shot, charts) in pages {
            let sep = if path.contains('?') { "&range=all" } else { q };
            let points = visit(&c, &base, &format!("{path}{sep}"), &screenshot_dir(), shot).await;
            if charts {
                assert!(points > 0, "{path}: no chart data points drawn");
            }
        }
        // Specific content: drift heat map cells, a distribution, the SRM banner, lifts.
        c.goto(&format!("{base}/ui/drift?model=churn&column=monthly_spend&range=all")).await.unwrap();
        let cells = js(&c, "return document.querySelectorAll('#drift-heatmap-churn .cell').length").await;
        assert!(cells.as_u64().unwrap_or(0) >= 10, "heat map cells: {cells}");
        let breaches = js(&c, "return document.querySelectorAll('#drift-heatmap-churn .breach').length").await;
        assert!(breaches.as_u64().unwrap_or(0) >= 1, "the injected drift shows in the heat map");
        let bars = js(&c, "return document.querySelectorAll('#distribution-churn-monthly_spend .bar').length").await;
        assert!(bars.as_u64().unwrap_or(0) >= 10, "distribution bars: {bars}");
        c.goto(&format!("{base}/ui/experiments?experiment=churn-v2&range=all")).await.unwrap();
        assert_eq!(js(&c, "return document.getElementById('srm').dataset.mismatch").await, "false");
        assert_eq!(attr_f64(&c, "#arm-treatment", "data-units").await, 1500.0);
        let lift = attr_f64(&c, "#lifts .lift", "data-value").await;
        assert!((lift - 1.0).abs() < 1e-9, "conversion 10 % → 20 % is a +100 % lift, page says {lift}");
        assert_eq!(js(&c, "return document.getElementById('decision-treatment').dataset.verdict").await, "ship");
        assert!(js(&c, "return document.getElementById('promote-form')").await.is_null(), "viewers get no promote button");
        // CSV export of a chart.
        let csv = js(&c, "return fetch(document.querySelector('a.csv').href).then(r => r.text())").await;
        assert!(csv.as_str().unwrap_or("").starts_with("until,arm,units,lift"), "{csv}");

        // The LLM page: requests, error and positive-feedback rates per version as ingested.
        c.goto(&format!("{base}/ui/llm?model=assistant&range=all")).await.unwrap();
        for (version, [requests, failed, answered, positive]) in &llm_expected {
            let row = format!("#llm-assistant-{version}");
            assert_eq!(attr_f64(&c, &row, "data-requests").await, *requests as f64);
            let rates = js(
                &c,
                &format!(
                    "return Array.from(document.querySelector({row:?}).closest('tr').querySelectorAll('.rate')).map(e => +e.dataset.value)"
                ),
            )
            .await;
            let got: Vec<f64> = rates
                .as_array()
                .map(|a| a.iter().filter_map(|x| x.as_f64()).collect())
                .unwrap_or_default();
            let want = [
                *failed as f64 / *requests as f64,
                *positive as f64 / *answered as f64,
            ];
            assert_eq!(got, want, "{version}: error and feedback rates");
        }
        let reasons = js(&c, "return document.querySelector('#llm-finish-reasons thead').textContent").await;
        for r in ["stop", "length", "(failed)"] {
            assert!(reasons.as_str().unwrap_or("").contains(r), "finish reasons: {reasons}");
        }
        let no_neg = js(&c, "return document.querySelector('main').textContent.includes('-0.0')").await;
        assert_eq!(no_neg, false, "a signed zero on the LLM page");

        // 5. ROI numbers equal the ones computed from the store here.
        c.goto(&format!("{base}/ui/roi?range=all")).await.unwrap();
        let shown = attr_f64(&c, "#roi-fraud-v2", "data-incremental-value").await;
        assert!(
            (shown - expected_value).abs() <= 1e-6 * expected_value.abs().max(1.0),
            "ROI page says {shown}, the store says {expected_value}"
        );
        let units = attr_f64(&c, "#roi-fraud-v2", "data-units").await;
        assert_eq!(units, trt[0]);
        let shown_cost = attr_f64(&c, "#roi-fraud-v2", "data-incremental-cost").await;
        assert!((shown_cost - incremental_cost).abs() < 1e-9, "{shown_cost} vs {incremental_cost}");
        let (lo, hi) = (
            attr_f64(&c, "#roi-fraud-v2", "data-ci-low").await,
            attr_f64(&c, "#roi-fraud-v2", "data-ci-high").await,
        );
        assert!(lo < shown && shown < hi, "interval [{lo}, {hi}] around {shown}");
        let cost1k = attr_f64(&c, "#cost1k-fraud-v1", "data-value").await;
        assert!((cost1k - cpk(ctl, 0.0)).abs() < 1e-9, "{cost1k}");

        // 6. A viewer cannot promote: the server refuses a hand-made request with a valid session
        // and CSRF token.
        let status = js(
            &c,
            "var csrf = document.querySelector('input[name=csrf]').value;
             return fetch('/ui/experiments/churn-v2/promote', {method: 'POST',
                 body: new URLSearchParams({csrf: csrf, arm: 'treatment', reason: 'sneaky', confirm: 'yes'})})
               .then(r => r.status);",
        )
        .await;
        assert_eq!(status, 403);
        // And a forged request without the session's CSRF token is refused too.
        let status = js(
            &c,
            "return fetch('/ui/experiments/churn-v2/promote', {method: 'POST',
                 body: new URLSearchParams({csrf: 'forged', arm: 'treatment', reason: 'x', confirm: 'yes'})})
               .then(r => r.status);",
        )
        .await;
        assert_eq!(status, 403);
        c.goto(&format!("{base}/ui/?range=all")).await.unwrap();
        logout(&c).await;

        // 6b. Viewers get no acknowledge buttons; an operator acknowledges the drift alert the monitors raised (viewers cannot).
        login(&c, &base, "viewer-secret-1").await;
        c.goto(&format!("{base}/ui/alerts?range=all")).await.unwrap();
        let none = js(&c, "return document.querySelectorAll('button.ack').length").await;
        assert_eq!(none, 0, "viewers see no acknowledge button");
        logout(&c).await;
        login(&c, &base, "operator-secret-2").await;
        c.goto(&format!("{base}/ui/alerts?range=all")).await.unwrap();
        let buttons = js(&c, "return document.querySelectorAll('button.ack').length").await;
        assert!(buttons.as_u64().unwrap_or(0) >= 1, "no open incident to acknowledge");
        c.find(Locator::Css("button.ack")).await.unwrap().click().await.unwrap();
        wait_css(&c, "#action-result").await;
        let ok = js(&c, "var e = document.getElementById('action-result'); return [e.dataset.ok, e.textContent]").await;
        assert_eq!(ok[0], "true", "acknowledge failed: {ok}");
        c.goto(&format!("{base}/ui/alerts?range=all")).await.unwrap();
        let acked = js(&c, "return document.getElementById('incidents').textContent").await;
        assert!(acked.as_str().unwrap_or("").contains("acked by olga"), "{acked}");
        logout(&c).await;

        // 7. An admin promotes through the UI, with a confirmation that states the change.
        login(&c, &base, "admin-secret-3").await;
        c.goto(&format!("{base}/ui/experiments?experiment=churn-v2&range=all")).await.unwrap();
        let shot = c.screenshot().await.unwrap();
        std::fs::write(screenshot_dir().join("experiments-admin.png"), shot).unwrap();
        c.find(Locator::Id("promote-reason")).await.unwrap().send_keys("v2 converts twice as often").await.unwrap();
        c.find(Locator::Id("promote")).await.unwrap().click().await.unwrap();
        wait_css(&c, "#confirm-text").await;
        let text = js(&c, "return document.getElementById('confirm-text').textContent").await;
        let text = text.as_str().unwrap_or("").to_string();
        assert!(text.contains("`churn` will serve version `v2`") && text.contains("adam"), "{text}");
        let shot = c.screenshot().await.unwrap();
        std::fs::write(screenshot_dir().join("promote-confirm.png"), shot).unwrap();
        c.find(Locator::Id("confirm-yes")).await.unwrap().click().await.unwrap();
        wait_css(&c, "#action-result").await;
        let ok = js(&c, "var e = document.getElementById('action-result'); return e ? [e.dataset.ok, e.textContent] : null").await;
        assert_eq!(ok[0], "true", "promotion failed: {ok}");
        // The route flipped: the overview now marks v2 as churn's production version.
        c.goto(&format!("{base}/ui/?range=all")).await.unwrap();
        let prod = js(
            &c,
            "return Array.from(document.querySelectorAll('#versions tr')).filter(r => r.textContent.includes('production')).map(r => r.cells[0].textContent + '/' + r.cells[1].textContent.split(' ')[0])",
        )
        .await;
        assert_eq!(prod, serde_json::json!(["churn/v2"]), "{prod}");
        let png = c.screenshot().await.unwrap();
        std::fs::write(screenshot_dir().join("overview-after-promotion.png"), png).unwrap();
        // A phone-sized screen still renders the ROI page without errors.
        c.set_window_size(390, 844).await.unwrap();
        visit(&c, &base, "/ui/roi?range=all", &screenshot_dir(), "roi-phone").await;
        c.close().await.unwrap();
    });
    served.terminate();
    // Independently of the UI: the store's deployment audit trail has the promotion by adam.
    let rows = run_ok(
        vigil()
            .current_dir(dir.path())
            .arg("--config")
            .arg(&demo_cfg)
            .args([
                "sql",
                "SELECT model, from_version, to_version, actor, reason FROM vigil.deployments ORDER BY ts_ms",
                "--output",
                "TabSeparated",
            ]),
        "vigil sql",
    );
    assert_eq!(
        rows.trim(),
        "churn\tv1\tv2\tadam\tv2 converts twice as often",
        "deployments: {rows}"
    );

    // 8. Every query of the Grafana dashboards runs on this store (macros expanded to literals)
    // and returns rows for one of the demo's models (outcomes exist for fraud, monitors for
    // churn). Through `vigil sql` child processes: chDB stays out of the test process.
    let now = chrono::Utc::now().timestamp() as u32;
    for (file, json) in vigil_dashboards::grafana::DASHBOARDS {
        for (title, sql) in vigil_dashboards::grafana::queries(json).expect("dashboard JSON") {
            let [churn, fraud] = ["churn", "fraud"].map(|m| {
                vigil_dashboards::grafana::expand(&sql, "vigil", m, now - 3600, now + 60, 5)
            });
            let rows = run_ok(
                vigil()
                    .current_dir(dir.path())
                    .arg("--config")
                    .arg(&demo_cfg)
                    .args([
                        "sql",
                        &format!(
                            "SELECT (SELECT count() FROM ({churn})) + (SELECT count() FROM ({fraud}))"
                        ),
                        "--output",
                        "TabSeparated",
                    ]),
                &format!("{file} / {title}"),
            );
            let rows: u64 = rows.trim().parse().expect("row count");
            assert!(
                rows > 0,
                "{file} / {title}: no rows for either model\n{sql}"
            );
        }
    }
}
