//! `vigil demo` as a new user meets it: the default run (its default duration and rate) in a
//! child process, then every page in headless Chromium while the demo keeps serving. Checks
//! each user's story on the demo's own data — the A/B decision and promotion, the drift
//! incident and its e-mail, ROI with an interval, mirrored shadow answers and the retraining
//! request — and that no page shows a negative share or a "−0.00". Screenshots go to
//! `target/screenshots/demo/` (or `$VIGIL_SCREENSHOTS`; `scripts/screenshots.sh` regenerates
//! docs/screenshots/ with it).
//!
//! Needs `bash scripts/services/chromium.sh install` and `bash scripts/services/chdb.sh install`.

mod common;

use common::browser::{self, attr_f64, js, screenshot, visit, wait_css};
use common::*;
use fantoccini::{Client, Locator};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

fn screenshot_dir() -> PathBuf {
    std::env::var_os("VIGIL_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots/demo"))
}

/// The demo child; interrupted (Ctrl-C) and reaped on drop.
struct Demo {
    child: Child,
    log: PathBuf,
}

impl Demo {
    fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn interrupt(&mut self) -> std::process::ExitStatus {
        let _ = std::process::Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        for _ in 0..600 {
            if let Ok(Some(s)) = self.child.try_wait() {
                return s;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "vigil demo did not stop within 60 s of Ctrl-C:\n{}",
            self.output()
        );
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Visible text of the page without experiment effects (lift tables, decisions, charts of lifts
/// and differences: signed by nature); shares, counts and amounts never print as negative zero
/// or a negative share.
async fn text_without_effects(c: &Client) -> String {
    js(
        c,
        "var b = document.body.cloneNode(true);
         b.querySelectorAll('#lifts, #sequential, .effect, svg, [id^=decision-]').forEach(e => e.remove());
         return b.innerText;",
    )
    .await
    .as_str()
    .unwrap_or_default()
    .to_string()
}

fn assert_no_negative_shares(page: &str, text: &str) {
    for bad in ["−0.00", "-0.00", "−0.0 ", "-0.0 "] {
        assert!(!text.contains(bad), "{page} shows `{bad}`:\n{text}");
    }
    // A negative percentage outside experiment effects: a negative share.
    let chars: Vec<char> = text.chars().collect();
    for (i, ch) in chars.iter().enumerate() {
        if (*ch == '−' || *ch == '-') && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit()) {
            let rest: String = chars[i + 1..].iter().take(16).collect();
            let num: String = rest
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.')
                .collect();
            let after = rest[num.len()..].trim_start();
            let before_ok = i == 0 || !chars[i - 1].is_alphanumeric();
            assert!(
                !(before_ok && after.starts_with('%')),
                "{page} shows a negative percentage `{ch}{num} %`:\n{text}"
            );
        }
    }
}

async fn production_of(c: &Client, base: &str, model: &str) -> String {
    c.goto(&format!("{base}/ui/")).await.unwrap();
    let prod = js(
        c,
        "return Array.from(document.querySelectorAll('#versions tr')).filter(r => r.textContent.includes('production')).map(r => r.cells[0].textContent + '/' + r.cells[1].textContent.split(' ')[0])",
    )
    .await;
    prod.as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str())
        .find_map(|s| s.strip_prefix(&format!("{model}/")).map(str::to_owned))
        .unwrap_or_default()
}

/// Fills a reason, clicks `button`, confirms, and returns the action result text.
/// `shot`: a screenshot of the confirmation, saved under that name.
async fn act(
    c: &Client,
    reason_id: &str,
    button_id: &str,
    reason: &str,
    shot: Option<&str>,
) -> String {
    c.find(Locator::Id(reason_id))
        .await
        .unwrap()
        .send_keys(reason)
        .await
        .unwrap();
    c.find(Locator::Id(button_id))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_css(c, "#confirm-text").await;
    if let Some(name) = shot {
        screenshot(c, &screenshot_dir(), name).await;
    }
    c.find(Locator::Id("confirm-yes"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_css(c, "#action-result").await;
    let ok = js(
        c,
        "var e = document.getElementById('action-result'); return [e.dataset.ok, e.textContent]",
    )
    .await;
    assert_eq!(ok[0], "true", "{button_id} failed: {ok}");
    ok[1].as_str().unwrap_or_default().to_string()
}

#[test]
fn the_default_demo_tells_every_story() {
    require_chdb();
    browser::require_chromium();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = free_port();
    let log = dir.path().join("demo.log");
    let out = std::fs::File::create(&log).unwrap();
    let mut demo = Demo {
        child: vigil()
            .current_dir(dir.path())
            .env("VIGIL_LOG", "warn")
            .arg("--store")
            .arg(format!("chdb://{}", data.display()))
            .args([
                "demo",
                "--keep-serving",
                "--bind",
                &format!("127.0.0.1:{port}"),
            ])
            .stdout(Stdio::from(out.try_clone().unwrap()))
            .stderr(Stdio::from(out))
            .spawn()
            .expect("start vigil demo"),
        log,
    };
    // The default run is 90 s; allow for a slow machine.
    assert!(
        wait_for(Duration::from_secs(400), || demo
            .output()
            .contains("traffic finished")),
        "the demo did not finish its default run:\n{}",
        demo.output()
    );
    let printed = demo.output();
    // It printed the tour and the milestones as they happened.
    for want in [
        "What happens when:",
        "ALERT opened: churn / churn-inputs",
        "e-mail delivered:",
        "webhook `alerts` received",
        "experiment churn-v2: treatment → ship",
        "shadow answers kept",
        "retraining request filed for churn (drift)",
        // The assistant's LLM shadow run (scripts/test.sh installs its sentence encoder).
        "LLM shadow run (assistant",
        "assistant@v3",
    ] {
        assert!(
            printed.contains(want),
            "demo output lacks `{want}`:\n{printed}"
        );
    }
    // The e-mail of the churn incident is in the mailbox and names the model and a drifted column.
    let mailbox = data.join("demo/mailbox");
    let mails: Vec<String> = std::fs::read_dir(&mailbox)
        .unwrap_or_else(|e| panic!("{}: {e}", mailbox.display()))
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect();
    assert!(
        mails.iter().any(|m| m.contains("churn")
            && [
                "monthly_spend",
                "support_tickets",
                "plan",
                "prediction.score"
            ]
            .iter()
            .any(|c| m.contains(c))),
        "no e-mail names churn and a drifted column: {mails:?}"
    );
    // One incident per model and rule: anti-fatigue holds over the whole run.
    let incidents = printed
        .matches("ALERT opened: churn / churn-inputs")
        .count();
    assert_eq!(
        incidents, 1,
        "one drift incident for churn, not one per window:\n{printed}"
    );

    let base = format!("http://127.0.0.1:{port}");
    let shots = screenshot_dir();
    let http = reqwest::blocking::Client::new();
    let r = http.get(format!("{base}/ui/overview")).send().unwrap();
    assert!(
        r.status().is_success(),
        "/ui/overview answers {}",
        r.status()
    );
    let rt = runtime();
    rt.block_on(async {
        let b = browser::start(1280, 1600).await;
        let c = &b.client;
        let pages = [
            ("/ui/", "overview"),
            ("/ui/roi", "roi"),
            ("/ui/drift?model=churn&column=monthly_spend", "drift"),
            ("/ui/fairness?model=churn", "fairness"),
            ("/ui/experiments?experiment=churn-v2", "experiments"),
            ("/ui/experiments?experiment=fraud-v2", "experiments-fraud"),
            ("/ui/llm?model=assistant", "llm"),
            ("/ui/alerts", "alerts"),
            ("/ui/shadow", "shadow"),
        ];
        for (path, shot) in pages {
            visit(c, &base, path, &shots, shot).await;
            assert_no_negative_shares(path, &text_without_effects(c).await);
        }
        // Overview: both experiments running, the incident counted.
        c.goto(&format!("{base}/ui/")).await.unwrap();
        assert!(attr_f64(c, "#kpi-experiments", "data-value").await >= 2.0);
        assert!(attr_f64(c, "#kpi-alerts", "data-value").await >= 1.0);
        // Experiments: ship for churn v2, no call for fraud v2.
        c.goto(&format!("{base}/ui/experiments?experiment=churn-v2")).await.unwrap();
        assert_eq!(js(c, "return document.getElementById('decision-treatment').dataset.verdict").await, "ship");
        c.goto(&format!("{base}/ui/experiments?experiment=fraud-v2")).await.unwrap();
        let fraud = js(c, "return document.getElementById('decision-treatment').dataset.verdict").await;
        assert!(fraud == "keeprunning" || fraud == "inconclusive", "fraud v2 is no better, yet: {fraud}");
        // LLM: both assistant versions served with a first-token time, and v2's answers liked
        // more (42 % vs 30 % in the simulation) — the test's decision is not a guardrail stop.
        c.goto(&format!("{base}/ui/llm?model=assistant")).await.unwrap();
        for v in ["v1", "v2"] {
            let n = js(c, &format!("var e = document.getElementById('llm-assistant-{v}'); return e ? Number(e.dataset.requests) : 0")).await;
            assert!(n.as_f64().unwrap_or(0.0) > 100.0, "assistant {v} requests: {n}");
        }
        let verdict = js(c, "var e = document.getElementById('llm-decision-assistant-v2-treatment'); return e ? e.dataset.verdict : ''").await;
        assert!(verdict != "rollback", "assistant-v2 verdict: {verdict}");
        // ROI: churn v2's value with an interval above zero.
        c.goto(&format!("{base}/ui/roi")).await.unwrap();
        let value = attr_f64(c, "#roi-churn-v2", "data-incremental-value").await;
        let low = attr_f64(c, "#roi-churn-v2", "data-ci-low").await;
        assert!(value > 0.0 && low > 0.0, "churn v2 ROI {value} (95 % from {low})");
        // Drift: the injected drift shows in the heat map.
        c.goto(&format!("{base}/ui/drift?model=churn&column=monthly_spend")).await.unwrap();
        let breaches = js(c, "return document.querySelectorAll('#drift-heatmap-churn .breach').length").await;
        assert!(breaches.as_u64().unwrap_or(0) >= 1, "drifted cells: {breaches}");
        // Alerts: the churn drift incident is listed.
        c.goto(&format!("{base}/ui/alerts")).await.unwrap();
        let incidents = js(c, "return document.getElementById('incidents').textContent").await;
        assert!(incidents.as_str().unwrap_or("").contains("churn-inputs"), "{incidents}");
        // Shadow: mirrored answers of candidate v3, and the retraining request.
        c.goto(&format!("{base}/ui/shadow")).await.unwrap();
        let mirrored = js(c, "var t = document.getElementById('shadow-responses'); return t ? t.textContent : ''").await;
        assert!(mirrored.as_str().unwrap_or("").contains("v3"), "mirrored rows: {mirrored}");
        let requests = js(c, "var t = document.getElementById('retraining-requests'); return t ? t.textContent : ''").await;
        assert!(requests.as_str().unwrap_or("").contains("drift"), "retraining requests: {requests}");
        // The LLM shadow run is shown as one: a similarity interval and a verdict, no accuracy.
        let llm = js(c, "var t = document.querySelector('table[id^=\"shadow-llm-\"]'); return t ? t.textContent : ''").await;
        let llm = llm.as_str().unwrap_or("");
        assert!(
            llm.contains("assistant@v3")
                && ["equivalent", "different", "inconclusive", "rejected"].iter().any(|v| llm.contains(v))
                && !llm.contains("NaN"),
            "LLM shadow run table: {llm}"
        );

        // Promote churn v2 through the UI: the route flips, the overview shows it and the audit trail.
        c.goto(&format!("{base}/ui/experiments?experiment=churn-v2")).await.unwrap();
        screenshot(c, &shots, "experiments-admin").await;
        let said = act(c, "promote-reason", "promote", "v2 keeps more customers", Some("promote-confirm")).await;
        assert!(said.contains("churn"), "{said}");
        assert_eq!(production_of(c, &base, "churn").await, "v2");
        let trail = js(c, "var t = document.getElementById('deployments'); return t ? t.textContent : ''").await;
        assert!(trail.as_str().unwrap_or("").contains("v2 keeps more customers"), "audit trail: {trail}");
        screenshot(c, &shots, "overview-after-promotion").await;
        // The gateway serves v2 to churn's users now.
        let served = reqwest::Client::new()
            .post(format!("{base}/v1/predict/churn"))
            .header("x-vigil-unit", "user-after-promotion")
            .json(&serde_json::json!({"features": {"tenure_months": 3, "monthly_spend": 80.0, "support_tickets": 2, "plan": "pro"}}))
            .send()
            .await
            .unwrap();
        assert_eq!(served.headers()["x-vigil-model-version"], "v2");
        // And rolling back works the same way.
        c.goto(&format!("{base}/ui/experiments?experiment=churn-v2")).await.unwrap();
        act(c, "rollback-reason", "rollback", "checking the rollback", None).await;
        assert_eq!(production_of(c, &base, "churn").await, "v1");
        // A phone-sized screen still renders the ROI page without errors.
        c.set_window_size(390, 844).await.unwrap();
        visit(c, &base, "/ui/roi", &shots, "roi-phone").await;
        c.clone().close().await.unwrap();
    });
    let status = demo.interrupt();
    assert!(
        status.success(),
        "Ctrl-C must stop the demo cleanly: {status}\n{}",
        demo.output()
    );
    assert!(demo.output().contains("stopped."), "{}", demo.output());
}
