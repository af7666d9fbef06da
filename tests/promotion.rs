//! A/B analysis from the store, decisions and promotion, end to end: simulated traffic through
//! the real gateway (`vigil serve`) with a true +5 % revenue lift on one arm and none on an A/A
//! experiment, outcomes ingested over HTTP into the ClickHouse server, `vigil ab analyze
//! --experiment` computing the decision from the store (ship vs. not ship), promotion through
//! the API flipping the route at once and moving the alias on a real MLflow server, and
//! `vigil rollback` (CLI, straight to the store) restoring both.

mod common;

use common::backend::Backend;
use common::*;
use rand::{Rng, SeedableRng};
use std::path::Path;
use std::time::Duration;

fn mlflow_url() -> String {
    std::env::var("VIGIL_MLFLOW_URL").unwrap_or_else(|_| {
        format!(
            "http://127.0.0.1:{}",
            std::env::var("VIGIL_MLFLOW_PORT").unwrap_or_else(|_| "15000".into())
        )
    })
}

fn require_mlflow(c: &reqwest::blocking::Client) {
    let ok = c
        .get(format!("{}/health", mlflow_url()))
        .send()
        .is_ok_and(|r| r.status().is_success());
    assert!(
        ok,
        "no MLflow server at {}: start it with `bash scripts/services/mlflow.sh start` (the README's test command does)",
        mlflow_url()
    );
}

fn mlflow_post(
    c: &reqwest::blocking::Client,
    path: &str,
    body: serde_json::Value,
) -> serde_json::Value {
    let r = c
        .post(format!("{}/api/2.0/mlflow/{path}", mlflow_url()))
        .json(&body)
        .send()
        .expect("mlflow request");
    let status = r.status();
    let v: serde_json::Value = r.json().unwrap_or_default();
    assert!(status.is_success(), "mlflow {path}: {status} {v}");
    v
}

fn mlflow_alias(c: &reqwest::blocking::Client, name: &str) -> Option<String> {
    let r = c
        .get(format!(
            "{}/api/2.0/mlflow/registered-models/alias",
            mlflow_url()
        ))
        .query(&[("name", name), ("alias", "champion")])
        .send()
        .expect("mlflow alias");
    if !r.status().is_success() {
        return None;
    }
    let v: serde_json::Value = r.json().ok()?;
    v["model_version"]["version"].as_str().map(str::to_owned)
}

fn write_config(
    path: &Path,
    store: &str,
    port: u16,
    backends: &[(&str, String)],
    registered: &str,
    extra: &str,
) {
    let url = |v: &str| {
        backends
            .iter()
            .find(|(n, _)| *n == v)
            .map(|(_, u)| u.clone())
            .expect("backend")
    };
    let text = format!(
        r#"[store]
url = "{store}"

[collector]
batch_max_wait_ms = 200

[http]
bind = "127.0.0.1:{port}"

{TOKENS}

[[experiments]]
key = "ranker-lift"
model = "ranker"
hash_version = 2
arms = [{{ name = "control", model_version = "ranker@1" }}, {{ name = "treatment", model_version = "ranker@2" }}]
[experiments.analysis]
primary = {{ metric = "revenue", type = "mean" }}
guardrails = [{{ metric = "latency" }}]
min_units_per_arm = 1000

[[experiments]]
key = "scorer-aa"
model = "scorer"
hash_version = 2
arms = [{{ name = "control", model_version = "scorer@1" }}, {{ name = "copy", model_version = "scorer@2" }}]
[experiments.analysis]
primary = {{ metric = "revenue", type = "mean" }}
min_units_per_arm = 1000

[gateway]
deployment_poll_ms = 300

[[gateway.models]]
name = "ranker"
control = "ranker@1"
versions = [{{ version = "ranker@1", url = "{r1}" }}, {{ version = "ranker@2", url = "{r2}" }}]

[[gateway.models]]
name = "scorer"
control = "scorer@1"
versions = [{{ version = "scorer@1", url = "{s1}" }}, {{ version = "scorer@2", url = "{s2}" }}]

[mlflow]
tracking_uri = "{mlflow}"

[mlflow.models.ranker]
name = "{registered}"
"#,
        r1 = url("ranker@1"),
        r2 = url("ranker@2"),
        s1 = url("scorer@1"),
        s2 = url("scorer@2"),
        mlflow = mlflow_url(),
    ) + extra;
    std::fs::write(path, text).expect("write config");
}

/// Sends one prediction for `unit`; returns (arm, served version).
fn predict(c: &reqwest::blocking::Client, base: &str, model: &str, unit: &str) -> (String, String) {
    let r = c
        .post(format!("{base}/v1/predict/{model}"))
        .header("x-vigil-unit", unit)
        .bearer_auth("ingest-secret")
        .body(r#"{"features":{"x":1.0}}"#)
        .send()
        .expect("predict");
    assert_eq!(r.status().as_u16(), 200);
    let h = |n: &str| {
        r.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    (h("x-vigil-variant"), h("x-vigil-model-version"))
}

/// Revenue per unit: Normal(mean, 3) via Box–Muller, from a seeded generator.
fn revenue(rng: &mut rand::rngs::StdRng, mean: f64) -> f64 {
    let (u1, u2): (f64, f64) = (rng.gen::<f64>().max(1e-12), rng.gen());
    mean + 3.0 * (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

fn vigil_json(config: &Path, args: &[&str]) -> serde_json::Value {
    let out = vigil()
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .expect("run vigil");
    assert!(
        out.status.success(),
        "vigil {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "vigil {args:?}: not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// Four model backends and `vigil serve` on a fresh ClickHouse database, with the experiments
/// of [`write_config`] and `extra` configuration appended.
struct Rig {
    backends: Vec<Backend>,
    dir: tempfile::TempDir,
    db: String,
    store_url: String,
    config: std::path::PathBuf,
    base: String,
    served: Served,
}

impl Rig {
    fn start(
        c: &reqwest::blocking::Client,
        prefix: &str,
        registered: &str,
        scorer2_delay: Duration,
        extra: &str,
    ) -> Rig {
        let backends = vec![
            Backend::start("ranker@1"),
            Backend::start("ranker@2"),
            Backend::start("scorer@1"),
            Backend::start_with_delay("scorer@2", scorer2_delay),
        ];
        let named: Vec<(&str, String)> = ["ranker@1", "ranker@2", "scorer@1", "scorer@2"]
            .into_iter()
            .zip(backends.iter().map(Backend::url))
            .collect();
        let dir = tempfile::tempdir().expect("tempdir");
        let db = unique(prefix);
        let store_url = clickhouse_url(&db);
        let port = free_port();
        let config = dir.path().join("vigil.toml");
        write_config(&config, &store_url, port, &named, registered, extra);
        let served = Served::start(&config, &dir.path().join("serve.log"), &["--no-kafka"]);
        let base = format!("http://127.0.0.1:{port}");
        wait_healthy(c, &base, &served);
        Rig {
            backends,
            dir,
            db,
            store_url,
            config,
            base,
            served,
        }
    }

    fn stop(self) {
        self.served.terminate();
        drop(self.backends);
        drop(self.dir);
    }
}

/// A registered model with versions 1 and 2, champion = 1.
fn register_model(c: &reqwest::blocking::Client) -> String {
    let registered = unique("ranker");
    mlflow_post(
        c,
        "registered-models/create",
        serde_json::json!({"name": registered}),
    );
    for _ in 0..2 {
        mlflow_post(
            c,
            "model-versions/create",
            serde_json::json!({"name": registered, "source": "s3://vigil-test-models/ranker"}),
        );
    }
    mlflow_post(
        c,
        "registered-models/alias",
        serde_json::json!({"name": registered, "alias": "champion", "version": "1"}),
    );
    registered
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

fn history(c: &reqwest::blocking::Client, base: &str, model: &str) -> serde_json::Value {
    c.get(format!("{base}/v1/deployments?model={model}"))
        .bearer_auth("viewer-secret")
        .send()
        .expect("deployments")
        .json()
        .expect("deployments json")
}

#[test]
fn a_ramp_advances_while_latency_holds_and_rolls_back_when_it_fails() {
    require_clickhouse();
    let c = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    require_mlflow(&c);
    let registered = register_model(&c);
    // scorer@2 answers 40 ms slower than everything else.
    let rig = Rig::start(
        &c,
        "ramp",
        &registered,
        Duration::from_millis(40),
        "\n[gateway.ramp]\nstages = [0.3, 0.6, 1.0]\nstep_seconds = 1\nmin_requests = 30\n",
    );
    let (base, served) = (rig.base.as_str(), &rig.served);

    // Some experiment traffic, so that there is an analysis to record as evidence.
    for i in 0..100 {
        predict(&c, base, "ranker", &format!("pre-{i}"));
        predict(&c, base, "scorer", &format!("pre-{i}"));
    }
    for key in ["ranker-lift", "scorer-aa"] {
        assert!(
            wait_for(Duration::from_secs(30), || c
                .get(format!("{base}/v1/experiments/{key}/analysis"))
                .bearer_auth("viewer-secret")
                .send()
                .is_ok_and(|r| r.status().is_success())),
            "no analysis for {key}; log:\n{}",
            served.log_text()
        );
    }

    // Steady traffic on both models while the ramps run.
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            let c = reqwest::blocking::Client::new();
            let mut i = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                predict(&c, base, "ranker", &format!("r-{i}"));
                predict(&c, base, "scorer", &format!("s-{i}"));
                i += 1;
            }
        });
        for (key, arm) in [("ranker-lift", "treatment"), ("scorer-aa", "copy")] {
            let r = c
                .post(format!("{base}/v1/experiments/{key}/promote"))
                .bearer_auth("admin-secret")
                .json(&serde_json::json!({"force": true, "ramp": true, "arm": arm}))
                .send()
                .expect("promote");
            let status = r.status();
            let body: serde_json::Value = r.json().unwrap_or_default();
            assert_eq!(status.as_u16(), 200, "{key}: {body}");
            assert_eq!(body["deployment"]["action"], "ramp");
            assert_eq!(body["deployment"]["rollout_share"], 0.3);
        }
        let last_action = |model: &str| -> String {
            history(&c, base, model)["history"]
                .as_array()
                .and_then(|h| h.last())
                .and_then(|r| r["action"].as_str())
                .unwrap_or_default()
                .to_string()
        };
        let done = wait_for(Duration::from_secs(90), || {
            last_action("ranker") == "promote" && last_action("scorer") == "ramp_rollback"
        });
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(
            done,
            "ramps did not finish: ranker {:#}, scorer {:#}; log:\n{}",
            history(&c, base, "ranker"),
            history(&c, base, "scorer"),
            served.log_text()
        );
    });

    let steps = |model: &str| -> Vec<(String, f64)> {
        history(&c, base, model)["history"]
            .as_array()
            .expect("history")
            .iter()
            .map(|r| {
                (
                    r["action"].as_str().unwrap_or_default().to_string(),
                    r["rollout_share"].as_f64().unwrap_or(-1.0),
                )
            })
            .collect()
    };
    assert_eq!(
        steps("ranker"),
        vec![
            ("ramp".to_string(), 0.3),
            ("ramp".to_string(), 0.6),
            ("promote".to_string(), 1.0)
        ]
    );
    assert_eq!(
        steps("scorer"),
        vec![
            ("ramp".to_string(), 0.3),
            ("ramp_rollback".to_string(), 0.0)
        ]
    );
    let scorer = history(&c, base, "scorer");
    assert!(
        scorer["history"][1]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("latency"),
        "{scorer:#}"
    );
    assert_eq!(
        history(&c, base, "ranker")["production"]["ranker"],
        "ranker@2"
    );
    for i in 0..50 {
        assert_eq!(
            predict(&c, base, "ranker", &format!("end-{i}")).1,
            "ranker@2"
        );
        assert_eq!(
            predict(&c, base, "scorer", &format!("end-{i}")).1,
            "scorer@1"
        );
    }
    // The alias moved only when the ramp reached 100 %.
    assert_eq!(mlflow_alias(&c, &registered).as_deref(), Some("2"));
    rig.stop();
}

#[test]
fn a_five_percent_lift_ships_is_promoted_and_rolled_back() {
    require_clickhouse();
    let c = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    require_mlflow(&c);

    let registered = register_model(&c);

    let rig = Rig::start(&c, "promo", &registered, Duration::ZERO, "");
    let (base, served, config) = (rig.base.as_str(), &rig.served, rig.config.as_path());
    let (db, store_url) = (rig.db.as_str(), rig.store_url.as_str());

    // Traffic: 8,000 units on the real experiment, 4,000 on the A/A one, 4 client threads.
    const LIFT_UNITS: usize = 8_000;
    const AA_UNITS: usize = 4_000;
    let arms: Vec<(String, String, String)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|t| {
                s.spawn(move || {
                    let c = reqwest::blocking::Client::new();
                    let mut out = Vec::new();
                    for i in (t..LIFT_UNITS + AA_UNITS).step_by(4) {
                        let (model, unit) = if i < LIFT_UNITS {
                            ("ranker", format!("user-{i}"))
                        } else {
                            ("scorer", format!("visitor-{i}"))
                        };
                        let (arm, _) = predict(&c, base, model, &unit);
                        out.push((model.to_string(), unit, arm));
                    }
                    out
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("client thread"))
            .collect()
    });
    let treated = arms.iter().filter(|(_, _, a)| a == "treatment").count();
    assert!(
        (3_700..4_300).contains(&treated),
        "treatment got {treated} of {LIFT_UNITS} units"
    );

    // Outcomes: revenue 10 ± 3 per unit, 10.5 (+5 %) for the treatment; none for A/A copies.
    let mut rng = rand::rngs::StdRng::seed_from_u64(20261122);
    let now_ms = chrono::Utc::now().timestamp_millis() + 1_000;
    let lines: Vec<String> = arms
        .iter()
        .enumerate()
        .map(|(i, (model, unit, arm))| {
            let mean = if arm == "treatment" { 10.5 } else { 10.0 };
            serde_json::json!({
                "event_id": format!("rev-{i}"),
                "ts": now_ms,
                "unit_id": unit,
                "model": model,
                "name": "revenue",
                "value": revenue(&mut rng, mean),
            })
            .to_string()
        })
        .collect();
    for chunk in lines.chunks(2_000) {
        let r = c
            .post(format!("{base}/v1/outcomes"))
            .bearer_auth("ingest-secret")
            .header("content-type", "application/x-ndjson")
            .body(chunk.join("\n"))
            .send()
            .expect("outcomes");
        assert!(r.status().is_success(), "outcomes: {}", r.status());
    }

    // Wait until every exposure and outcome is stored.
    let rt = runtime();
    let store = rt
        .block_on(vigil_store::Store::open(store_url))
        .expect("open store");
    let count = |sql: String| -> u64 {
        #[derive(serde::Deserialize, clickhouse::Row)]
        struct N {
            n: u64,
        }
        rt.block_on(store.fetch::<N>(&sql))
            .map(|r| r.first().map(|x| x.n).unwrap_or(0))
            .unwrap_or(0)
    };
    assert!(
        wait_for(Duration::from_secs(60), || {
            count(format!(
                "SELECT toUInt64(uniqExact(unit_id)) AS n FROM `{db}`.exposure_events FINAL WHERE experiment IN ('ranker-lift', 'scorer-aa')"
            )) == (LIFT_UNITS + AA_UNITS) as u64
                && count(format!(
                    "SELECT toUInt64(count()) AS n FROM `{db}`.outcome_events FINAL"
                )) == (LIFT_UNITS + AA_UNITS) as u64
        }),
        "not everything was stored; log:\n{}",
        served.log_text()
    );

    // The analysis from the store: the +5 % arm ships, the A/A copy does not.
    let lift = vigil_json(
        config,
        &[
            "ab",
            "analyze",
            "--experiment",
            "ranker-lift",
            "--format",
            "json",
        ],
    );
    assert_eq!(
        lift["decisions"]["treatment"]["verdict"], "ship",
        "{lift:#}"
    );
    assert_eq!(lift["winner"], "treatment");
    let seq = &lift["comparisons"]["treatment"]["sequential"];
    let expected = seq["expected"].as_f64().expect("lift");
    assert!((0.03..0.07).contains(&expected), "lift {expected}");
    assert!(seq["ci"][0].as_f64().unwrap() > 0.0, "{seq}");
    assert!(lift["srm_p_value"].as_f64().unwrap() > 0.001);
    assert!(
        lift["comparisons"]["treatment"]["bayesian"]["chance_to_win"]
            .as_f64()
            .unwrap()
            > 0.99
    );
    // The latency guardrail was evaluated on the served requests (ratio per unit).
    let guard = &lift["metrics"][1];
    assert_eq!(guard["metric"], "latency");
    assert!(
        guard["harm_p_values"]["treatment"].as_f64().is_some(),
        "{guard}"
    );

    let aa = vigil_json(
        config,
        &[
            "ab",
            "analyze",
            "--experiment",
            "scorer-aa",
            "--format",
            "json",
        ],
    );
    let verdict = aa["decisions"]["copy"]["verdict"]
        .as_str()
        .unwrap_or_default();
    assert!(
        verdict != "ship" && verdict != "rollback",
        "A/A verdict {verdict}: {aa:#}"
    );
    assert!(aa["winner"].is_null());
    // Promoting the A/A experiment is refused with the reason.
    let out = vigil()
        .arg("--config")
        .arg(config)
        .args(["promote", "--experiment", "scorer-aa"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no arm to promote"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Promotion through the API: viewers are refused, admins flip the route at once.
    let promote = |token: &str| {
        c.post(format!("{base}/v1/experiments/ranker-lift/promote"))
            .bearer_auth(token)
            .json(&serde_json::json!({"reason": "lift +5% with guardrails holding"}))
            .send()
            .expect("promote")
    };
    assert_eq!(promote("viewer-secret").status().as_u16(), 403);
    let r = promote("admin-secret");
    let status = r.status();
    let body: serde_json::Value = r.json().unwrap_or_default();
    assert_eq!(status.as_u16(), 200, "{body}");
    assert_eq!(body["deployment"]["to_version"], "ranker@2");
    assert_eq!(body["deployment"]["actor"], "ops");
    for i in 0..200 {
        let (arm, version) = predict(&c, base, "ranker", &format!("after-{i}"));
        assert_eq!(
            version, "ranker@2",
            "unit after-{i} went to {version} ({arm})"
        );
    }
    assert_eq!(mlflow_alias(&c, &registered).as_deref(), Some("2"));
    // A second promotion of the same version is a conflict, not a duplicate record.
    assert_eq!(promote("admin-secret").status().as_u16(), 409);

    // Rollback from the CLI, straight to the store: the gateway follows within its poll.
    let out = vigil()
        .arg("--config")
        .arg(config)
        .args([
            "rollback", "--model", "ranker", "--by", "oncall", "--reason", "test",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        wait_for(Duration::from_secs(10), || {
            let c = reqwest::blocking::Client::new();
            (0..50).all(|i| predict(&c, base, "ranker", &format!("rb-{i}")).1 == "ranker@1")
        }),
        "routing did not follow the rollback; log:\n{}",
        served.log_text()
    );
    assert_eq!(mlflow_alias(&c, &registered).as_deref(), Some("1"));

    // The audit trail: who, what, why, and the statistics it rested on.
    let history: serde_json::Value = c
        .get(format!("{base}/v1/deployments?model=ranker"))
        .bearer_auth("viewer-secret")
        .send()
        .unwrap()
        .json()
        .unwrap();
    let rows = history["history"].as_array().expect("history");
    assert_eq!(rows.len(), 2, "{history:#}");
    assert_eq!(rows[0]["action"], "promote");
    assert_eq!(rows[0]["reason"], "lift +5% with guardrails holding");
    assert!(rows[0]["evidence"]
        .as_str()
        .unwrap()
        .contains("\"verdict\":\"ship\""));
    assert_eq!(rows[0]["mlflow"], format!("{registered}@champion -> 2"));
    assert_eq!(rows[1]["action"], "rollback");
    assert_eq!(rows[1]["actor"], "oncall");
    assert_eq!(history["production"]["ranker"], "ranker@1");

    rig.stop();
}
