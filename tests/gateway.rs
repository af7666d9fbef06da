//! The prediction gateway through the real `vigil serve` binary, with real backend processes
//! (small HTTP servers on their own threads and ports): `/v1/assign` weights and CLI parity,
//! routing by assignment, hot reload under load (SIGHUP and `POST /v1/admin/reload`) without a
//! failed request, fallback to control when a backend dies, and shadow responses stored in
//! `shadow_responses` (read back from embedded chDB after the server stops).

mod common;

use common::backend::Backend;
use common::*;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Writes vigil.toml: store, HTTP, tokens, one experiment on `ranker`, and the gateway section.
fn write(
    path: &Path,
    store: &str,
    port: u16,
    experiment: &str,
    versions: [&str; 3],
    shadow_share: f64,
) {
    let text = format!(
        r#"[store]
url = "{store}"

[collector]
batch_max_rows = 20000
batch_max_wait_ms = 200
retry_max_ms = 1000

[http]
bind = "127.0.0.1:{port}"
ack_timeout_ms = 5000
{TOKENS}
{experiment}

[gateway]
timeout_ms = 2000

[gateway.breaker]
failures = 3
cooldown_ms = 60000

[[gateway.models]]
name = "ranker"
control = "v1"
fallback_to_control = true
versions = [
  {{ version = "v1", url = "{}" }},
  {{ version = "v2", url = "{}" }},
  {{ version = "v3", url = "{}" }},
]
shadows = [{{ version = "v3", share = {shadow_share} }}]
"#,
        versions[0], versions[1], versions[2]
    );
    std::fs::write(path, text).expect("write config");
}

fn experiment(status: &str, weights: [f64; 2]) -> String {
    format!(
        r#"
[[experiments]]
key = "ranker-v2"
model = "ranker"
hash_version = 2
status = "{status}"

[[experiments.arms]]
name = "control"
model_version = "v1"
weight = {}

[[experiments.arms]]
name = "treatment"
model_version = "v2"
weight = {}
"#,
        weights[0], weights[1]
    )
}

const THREE_ARMS: &str = r#"
[[experiments]]
key = "ranker-v2"
model = "ranker"
hash_version = 2
coverage = 0.9

[[experiments.arms]]
name = "control"
model_version = "v1"
weight = 0.2

[[experiments.arms]]
name = "treatment"
model_version = "v2"
weight = 0.3

[[experiments.arms]]
name = "candidate"
model_version = "v3"
weight = 0.5
"#;

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(16)
        .build()
        .expect("client")
}

fn wait_healthy(c: &reqwest::blocking::Client, base: &str, served: &Served) {
    assert!(
        wait_for(Duration::from_secs(60), || c
            .get(format!("{base}/healthz"))
            .send()
            .is_ok_and(|r| r.status().is_success())),
        "server never became healthy; log:\n{}",
        served.log_text()
    );
}

fn assign(c: &reqwest::blocking::Client, base: &str, unit: &str) -> serde_json::Value {
    let r = c
        .get(format!("{base}/v1/assign"))
        .query(&[("experiment", "ranker-v2"), ("unit", unit)])
        .bearer_auth("viewer-secret")
        .send()
        .expect("assign");
    assert_eq!(r.status().as_u16(), 200);
    r.json().expect("assign json")
}

#[test]
fn assign_endpoint_honours_weights_and_matches_the_cli() {
    require_chdb();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("chdb://{}", dir.path().join("data").display());
    let port = free_port();
    let config = dir.path().join("vigil.toml");
    let dead = "http://127.0.0.1:9/predict";
    write(&config, &url, port, THREE_ARMS, [dead, dead, dead], 0.0);
    let served = Served::start(&config, &dir.path().join("serve.log"), &["--no-kafka"]);
    let base = format!("http://127.0.0.1:{port}");
    let c = client();
    wait_healthy(&c, &base, &served);

    // Auth: viewer role needed.
    let r = c
        .get(format!("{base}/v1/assign?experiment=ranker-v2&unit=u"))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = c
        .get(format!("{base}/v1/assign?experiment=nope&unit=u"))
        .bearer_auth("viewer-secret")
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);

    // 100k units, 4 client threads: counts per variation (-1 = not covered).
    const UNITS: usize = 100_000;
    let counts: Vec<[u64; 4]> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let base = base.clone();
                s.spawn(move || {
                    let c = client();
                    let mut n = [0u64; 4];
                    for i in (t..UNITS).step_by(4) {
                        let a = assign(&c, &base, &format!("user-{i}"));
                        let v = a["variation"].as_i64().expect("variation");
                        n[(v + 1) as usize] += 1;
                    }
                    n
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut total = [0u64; 4];
    for c in counts {
        for i in 0..4 {
            total[i] += c[i];
        }
    }
    // Expected: 10% uncovered, then 0.9 × (0.2, 0.3, 0.5).
    let expected = [0.1, 0.18, 0.27, 0.45].map(|p| p * UNITS as f64);
    let chi2: f64 = total
        .iter()
        .zip(expected)
        .map(|(&o, e)| (o as f64 - e).powi(2) / e)
        .sum();
    use statrs::distribution::{ChiSquared, ContinuousCDF};
    let p = ChiSquared::new(3.0).unwrap().sf(chi2);
    assert!(p > 0.001, "SRM: counts {total:?}, chi2 {chi2}, p {p}");

    // Identical to `vigil assign` for a sample of units (ASCII and not).
    for unit in [
        "user-1",
        "user-77",
        "ユーザー",
        "émile",
        "42",
        "user-99999",
        "a b",
    ] {
        let http = assign(&c, &base, unit);
        let out = vigil()
            .arg("--config")
            .arg(&config)
            .args(["assign", "--experiment", "ranker-v2", "--unit", unit])
            .output()
            .expect("vigil assign");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let cli: serde_json::Value = serde_json::from_slice(&out.stdout).expect("cli json");
        for k in ["hash", "variation", "in_experiment", "arm", "model_version"] {
            assert_eq!(
                http[k], cli[k],
                "{k} differs for unit {unit:?}: {http} vs {cli}"
            );
        }
        assert_eq!(http["experiment"], "ranker-v2");
        assert_eq!(http["unit"], unit);
    }
    served.terminate();
}

fn predict(
    c: &reqwest::blocking::Client,
    base: &str,
    unit: &str,
) -> Result<(u16, String, String, serde_json::Value), String> {
    let r = c
        .post(format!("{base}/v1/predict/ranker"))
        .bearer_auth("ingest-secret")
        .header("x-vigil-unit", unit)
        .header("content-type", "application/json")
        .body(r#"{"features":{"x":1.5}}"#)
        .send()
        .map_err(|e| e.to_string())?;
    let status = r.status().as_u16();
    let h = |n: &str| {
        r.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let (version, variant) = (h("x-vigil-model-version"), h("x-vigil-variant"));
    let body: serde_json::Value = r.json().map_err(|e| e.to_string())?;
    Ok((status, version, variant, body))
}

fn gateway_metric(c: &reqwest::blocking::Client, base: &str, prefix: &str) -> u64 {
    let text = c
        .get(format!("{base}/metrics/gateway"))
        .send()
        .and_then(|r| r.text())
        .unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[test]
fn gateway_routes_reloads_falls_back_and_mirrors() {
    require_chdb();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("chdb://{}", dir.path().join("data").display());
    let port = free_port();
    let config = dir.path().join("vigil.toml");
    let (b1, b2, b3) = (
        Backend::start("v1"),
        Backend::start("v2"),
        Backend::start("v3"),
    );
    let urls = [b1.url(), b2.url(), b3.url()];
    let urls = [urls[0].as_str(), urls[1].as_str(), urls[2].as_str()];
    write(
        &config,
        &url,
        port,
        &experiment("running", [0.5, 0.5]),
        urls,
        1.0,
    );
    let served = Served::start(&config, &dir.path().join("serve.log"), &["--no-kafka"]);
    let base = format!("http://127.0.0.1:{port}");
    let c = client();
    wait_healthy(&c, &base, &served);

    // 1. Routing follows the assignment, and the answer comes from that version's backend.
    let mut by_version = std::collections::BTreeMap::new();
    for i in 0..200 {
        let unit = format!("unit-{i}");
        let want = assign(&c, &base, &unit);
        let (status, version, variant, body) = predict(&c, &base, &unit).unwrap();
        assert_eq!(status, 200, "{body}");
        assert_eq!(version, want["model_version"].as_str().unwrap());
        assert_eq!(variant, want["arm"].as_str().unwrap());
        assert_eq!(
            body["version"],
            version.as_str(),
            "served by the right backend"
        );
        *by_version.entry(version).or_insert(0) += 1;
    }
    assert_eq!(by_version.len(), 2, "{by_version:?}");
    // No unit id: 400 naming the header. Wrong role: 403.
    let r = c
        .post(format!("{base}/v1/predict/ranker"))
        .bearer_auth("ingest-secret")
        .body("{}")
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert!(r.text().unwrap().contains("x-vigil-unit"));
    let r = c
        .post(format!("{base}/v1/admin/reload"))
        .bearer_auth("viewer-secret")
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    // Unit id from the body works too.
    let r = c
        .post(format!("{base}/v1/predict/ranker"))
        .bearer_auth("ingest-secret")
        .body(r#"{"unit_id":"unit-3","x":1}"#)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);

    // 2. Hot reload under load: 4 threads send requests throughout; not one may fail.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let load: Vec<_> = (0..4)
        .map(|t| {
            let (base, stop, ok, failed) = (base.clone(), stop.clone(), ok.clone(), failed.clone());
            std::thread::spawn(move || {
                let c = client();
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    match predict(&c, &base, &format!("load-{t}-{i}")) {
                        Ok((200, _, _, _)) => ok.fetch_add(1, Ordering::Relaxed),
                        other => {
                            eprintln!("failed request: {other:?}");
                            failed.fetch_add(1, Ordering::Relaxed)
                        }
                    };
                    i += 1;
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    // Pause the experiment through the admin endpoint: everyone gets control.
    write(
        &config,
        &url,
        port,
        &experiment("paused", [0.5, 0.5]),
        urls,
        1.0,
    );
    let r = c
        .post(format!("{base}/v1/admin/reload"))
        .bearer_auth("admin-secret")
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "{:?}", r.text());
    for i in 0..50 {
        let (_, version, _, _) = predict(&c, &base, &format!("unit-{i}")).unwrap();
        assert_eq!(version, "v1", "paused experiment serves control");
    }
    std::thread::sleep(Duration::from_millis(500));
    // An invalid file is rejected and the routing stays.
    std::fs::write(&config, "[gateway]\nbogus = 1\n").unwrap();
    let r = c
        .post(format!("{base}/v1/admin/reload"))
        .bearer_auth("admin-secret")
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 422);
    // Everyone to treatment, through SIGHUP.
    write(
        &config,
        &url,
        port,
        &experiment("running", [0.0, 1.0]),
        urls,
        1.0,
    );
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &served.child.id().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    assert!(
        wait_for(Duration::from_secs(10), || predict(&c, &base, "unit-0")
            .is_ok_and(|r| r.1 == "v2")),
        "SIGHUP reload not applied; log:\n{}",
        served.log_text()
    );
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    for t in load {
        t.join().unwrap();
    }
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "requests failed during reloads"
    );
    assert!(
        ok.load(Ordering::Relaxed) > 50,
        "too little load to mean anything"
    );
    assert_eq!(gateway_metric(&c, &base, "vigil_gateway_reloads_total"), 2);
    assert_eq!(
        gateway_metric(&c, &base, "vigil_gateway_reload_failures_total"),
        1
    );

    // 3. Kill the treatment backend: every request falls back to control, none fails.
    b2.kill();
    for i in 0..50 {
        let (status, version, variant, body) = predict(&c, &base, &format!("after-{i}")).unwrap();
        assert_eq!((status, version.as_str()), (200, "v1"), "{body}");
        assert_eq!(
            variant, "treatment",
            "assignment unchanged, served by control"
        );
        assert_eq!(body["version"], "v1");
    }
    assert!(
        gateway_metric(
            &c,
            &base,
            "vigil_gateway_backend_errors_total{model=\"ranker\",version=\"v2\""
        ) >= 50,
        "errors counted per version"
    );
    assert!(
        gateway_metric(&c, &base, "vigil_gateway_backend_errors_total{model=\"ranker\",version=\"v2\",kind=\"circuit_open\"") > 0,
        "the circuit opened after 3 failures"
    );

    // 4. Mirrored responses: wait until every mirrored copy is answered, then stop and read back.
    let mirrored = || gateway_metric(&c, &base, "vigil_gateway_shadow_responses_total");
    let mut last = u64::MAX;
    while mirrored() != last {
        last = mirrored();
        std::thread::sleep(Duration::from_millis(500));
    }
    let dropped = gateway_metric(&c, &base, "vigil_gateway_shadow_dropped_total");
    let records_dropped = gateway_metric(&c, &base, "vigil_gateway_records_dropped_total");
    assert_eq!(records_dropped, 0);
    assert!(last > 200, "mirrored {last} (dropped {dropped})");
    served.terminate();
    b1.kill();
    b3.kill();

    let rt = runtime();
    let store = rt.block_on(vigil_store::Store::open(&url)).unwrap();
    #[derive(clickhouse::Row, serde::Deserialize, Debug)]
    struct Shadow {
        n: u64,
        v3: u64,
        ok: u64,
        answered_by_v3: u64,
    }
    let s = rt
        .block_on(store.fetch::<Shadow>(&format!(
            "SELECT toUInt64(count()) AS n, toUInt64(countIf(version = 'v3')) AS v3, toUInt64(countIf(status = 200)) AS ok, toUInt64(countIf(position(output, '\"version\":\"v3\"') > 0)) AS answered_by_v3 FROM {}",
            store.table("shadow_responses")
        )))
        .unwrap();
    let s = &s[0];
    assert_eq!(s.n, last, "every mirrored response is stored: {s:?}");
    assert_eq!((s.v3, s.ok, s.answered_by_v3), (s.n, s.n, s.n), "{s:?}");
    let totals = rt
        .block_on(vigil_store::queries::table_counts(&store))
        .unwrap();
    assert!(totals.inference >= 300, "{totals:?}");
    assert!(totals.exposures >= 200, "{totals:?}");
    // Inference rows carry the request's features, so monitors can watch gateway traffic.
    #[derive(clickhouse::Row, serde::Deserialize)]
    struct Features {
        with_x: u64,
        without: u64,
        n: u64,
    }
    let f = rt
        .block_on(store.fetch::<Features>(&format!(
            "SELECT toUInt64(countIf(num_names = ['x'] AND num_values = [1.5])) AS with_x,
                    toUInt64(countIf(empty(num_names) AND empty(cat_names))) AS without,
                    toUInt64(count()) AS n
             FROM {} FINAL WHERE source = 'gateway'",
            store.table("inference_events")
        )))
        .unwrap();
    // Exactly one request in this test (unit id in the body) sent no features.
    assert!(f[0].n >= 300, "{} inference rows", f[0].n);
    assert_eq!(
        (f[0].with_x, f[0].without),
        (f[0].n - 1, 1),
        "features recorded"
    );
}
