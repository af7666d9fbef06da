//! Headless Chromium over WebDriver (Debian's chromium + chromedriver, driven by fantoccini) for
//! the browser tests, and the page checks they share.

use fantoccini::{Client, ClientBuilder, Locator};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub fn require_chromium() -> (PathBuf, PathBuf) {
    let find = |name: &str| {
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
            .map(|d| d.join(name))
            .find(|p| p.exists())
    };
    match (find("chromium"), find("chromedriver")) {
        (Some(c), Some(d)) => (c, d),
        _ => panic!(
            "chromium and chromedriver are needed: install them with `bash scripts/services/chromium.sh install`"
        ),
    }
}

/// A chromedriver process and a session on it; the process is killed on drop.
pub struct Browser {
    driver: Child,
    _profile: tempfile::TempDir,
    pub client: Client,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Starts chromedriver on a free port and opens a headless session with a fresh profile.
pub async fn start(width: u32, height: u32) -> Browser {
    let (chromium, chromedriver) = require_chromium();
    let port = super::free_port();
    let driver = Command::new(&chromedriver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let profile = tempfile::tempdir().expect("profile dir");
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": chromium,
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--no-first-run", format!("--window-size={width},{height}"),
                     format!("--user-data-dir={}", profile.path().display())]
        }),
    );
    let mut client = None;
    for _ in 0..50 {
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        match ClientBuilder::new(connector)
            .capabilities(caps.clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
        {
            Ok(c) => {
                client = Some(c);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    Browser {
        driver,
        _profile: profile,
        client: client.expect("chromedriver session"),
    }
}

pub async fn js(c: &Client, script: &str) -> serde_json::Value {
    c.execute(script, vec![])
        .await
        .unwrap_or_else(|e| panic!("script {script}: {e}"))
}

pub async fn attr_f64(c: &Client, selector: &str, attr: &str) -> f64 {
    let v = js(
        c,
        &format!("var e = document.querySelector({selector:?}); return e ? e.getAttribute({attr:?}) : null;"),
    )
    .await;
    v.as_str()
        .unwrap_or_else(|| panic!("no {attr} on {selector}"))
        .parse()
        .unwrap_or_else(|_| panic!("{selector} {attr} is not a number: {v}"))
}

pub async fn screenshot(c: &Client, dir: &Path, name: &str) {
    std::fs::create_dir_all(dir).expect("screenshot dir");
    let png = c.screenshot().await.expect("screenshot");
    std::fs::write(dir.join(format!("{name}.png")), png).expect("write screenshot");
}

/// Loads a page, checks it has no script or console errors nor an error box, saves a
/// screenshot `shot` in `dir`, and returns the number of drawn data points (circles, cells,
/// bars with class `pt`).
pub async fn visit(c: &Client, base: &str, path: &str, dir: &Path, shot: &str) -> u64 {
    c.goto(&format!("{base}{path}")).await.expect("goto");
    let title = js(c, "return document.title").await;
    let errors = js(c, "return window.__errors || null").await;
    assert_eq!(
        errors,
        serde_json::json!([]),
        "console/script errors on {path} ({title})"
    );
    let page_error = js(
        c,
        "var e = document.getElementById('page-error'); return e ? e.textContent : null;",
    )
    .await;
    assert!(page_error.is_null(), "{path}: {page_error}");
    screenshot(c, dir, shot).await;
    js(c, "return document.querySelectorAll('svg .pt').length")
        .await
        .as_u64()
        .unwrap_or(0)
}

/// Waits (up to 15 s) for an element after a click that navigates.
pub async fn wait_css(c: &Client, css: &str) {
    c.wait()
        .at_most(Duration::from_secs(15))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no `{css}` after navigation: {e}"));
}
