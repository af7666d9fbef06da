//! The OpenAI-compatible gateway routes through the real `vigil serve` binary, in front of
//! simulated OpenAI-compatible servers (`vigil_experimenter::simulated_llm`, which follows the
//! protocol facts: vLLM's usage chunk only when asked, llama.cpp's `timings`, TGI's missing
//! streamed usage), called by the official `openai` Python SDK (tests/llm/openai_client.py,
//! installed by `bash scripts/llm/setup.sh`) and by plain HTTP. Rows are read back from the
//! embedded store after the server stops.

mod common;

use common::sdk::{sdk, sdk_python};
use common::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::time::Duration;
use vigil_experimenter::simulated_llm::{self, SimulatedModel, UsageFlavour};

fn model(name: &str, backend: &str, flavour: UsageFlavour, style: &str) -> SimulatedModel {
    SimulatedModel {
        first_token_ms: 20,
        chunk_ms: 2,
        max_tokens_default: 12,
        style: style.into(),
        ..SimulatedModel::new(name, backend, flavour)
    }
}

fn write_config(path: &Path, store: &str, port: u16, sim: &str) {
    let text = format!(
        r#"[store]
url = "{store}"

[collector]
batch_max_rows = 20000
batch_max_wait_ms = 200

[http]
bind = "127.0.0.1:{port}"
ack_timeout_ms = 5000
{TOKENS}

[[experiments]]
key = "assistant-ft"
model = "assistant"
hash_version = 2
arms = [{{ name = "control", model_version = "ft-1" }}, {{ name = "treatment", model_version = "ft-2" }}]
[experiments.analysis]
primary = {{ metric = "thumbs_up", type = "proportion" }}
guardrails = [{{ metric = "ttft" }}, {{ metric = "error_rate" }}]
min_units_per_arm = 100

[[experiments]]
key = "fallback-test"
model = "fallback-bot"
hash_version = 2
arms = [{{ name = "control", model_version = "alive" }}, {{ name = "treatment", model_version = "dead" }}]

[gateway]
timeout_ms = 5000
shadow_concurrency = 8

[[gateway.models]]
name = "assistant"
api = "openai"
control = "ft-1"
versions = [
  {{ version = "ft-1", url = "{sim}/ft1/v1", backend_model = "qwen-ft-1", price_input_per_1k = 0.5, price_output_per_1k = 1.5 }},
  {{ version = "ft-2", url = "{sim}/ft2/v1", backend_model = "qwen-ft-2", price_input_per_1k = 0.5, price_output_per_1k = 1.5 }},
  {{ version = "ft-3", url = "{sim}/ft3/v1", backend_model = "qwen-ft-3", price_input_per_1k = 0.25, price_output_per_1k = 0.75 }},
]
shadows = [{{ version = "ft-3", share = 1.0 }}]

[[gateway.models]]
name = "tgi-bot"
api = "openai"
control = "t1"
versions = [{{ version = "t1", url = "{sim}/tgi/v1/", backend_model = "tgi-model", stream_options = false }}]

[[gateway.models]]
name = "fallback-bot"
api = "openai"
control = "alive"
versions = [
  {{ version = "alive", url = "{sim}/ft1/v1", backend_model = "qwen-ft-1" }},
  {{ version = "dead", url = "http://127.0.0.1:9/v1", backend_model = "gone" }},
]
"#
    );
    std::fs::write(path, text).expect("write config");
}

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

fn chat(c: &reqwest::blocking::Client, base: &str, body: Value) -> reqwest::blocking::Response {
    c.post(format!("{base}/v1/chat/completions"))
        .bearer_auth("ingest-secret")
        .json(&body)
        .send()
        .expect("chat request")
}

fn header(r: &reqwest::blocking::Response, name: &str) -> String {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

#[derive(clickhouse::Row, serde::Deserialize, Debug)]
struct Recorded {
    event_id: String,
    version: String,
    unit_id: String,
    label: Option<String>,
    error: String,
    input: String,
    output: String,
    prompt_tokens: Option<u32>,
    completion_tokens: Option<u32>,
    tokens_estimated: u8,
    ttft_ms: Option<f64>,
    streamed: u8,
    cost: Option<f64>,
}

#[test]
fn openai_sdk_through_the_gateway() {
    require_chdb();
    sdk_python();
    let (sim, llm, _sim_server) = simulated_llm::spawn(vec![
        model("ft1", "qwen-ft-1", UsageFlavour::Vllm, "plain"),
        model("ft2", "qwen-ft-2", UsageFlavour::LlamaCpp, "friendly"),
        model("ft3", "qwen-ft-3", UsageFlavour::Vllm, "concise"),
        model("tgi", "tgi-model", UsageFlavour::Tgi, "plain"),
    ])
    .expect("simulated LLM servers");
    let dir = tempfile::tempdir().unwrap();
    let url = format!("chdb://{}", dir.path().join("data").display());
    let port = free_port();
    let config = dir.path().join("vigil.toml");
    write_config(&config, &url, port, &sim);
    let served = Served::start(&config, &dir.path().join("serve.log"), &["--no-kafka"]);
    let base = format!("http://127.0.0.1:{port}");
    let c = client();
    assert!(
        wait_for(Duration::from_secs(60), || c
            .get(format!("{base}/healthz"))
            .send()
            .is_ok_and(|r| r.status().is_success())),
        "server never became healthy; log:\n{}",
        served.log_text()
    );
    let via = format!("{base}/v1");

    // GET /v1/models through the SDK lists the OpenAI-compatible models only.
    let models = sdk(&["models", "--base", &via, "--api-key", "ingest-secret"]);
    assert_eq!(
        models["ids"],
        json!(["assistant", "fallback-bot", "tgi-bot"]),
        "{models}"
    );

    // Streamed and not: what the SDK gets through vigil equals what it gets from the backend
    // directly — content, chunks and usage — whether or not the client asked for usage. The
    // user `u-ctl` is in the control arm (ft-1, vLLM flavour).
    let user = (0..)
        .map(|i| format!("u-{i}"))
        .find(|u| {
            let r = chat(
                &c,
                &base,
                json!({"model": "assistant", "user": u, "max_tokens": 1, "messages": [{"role": "user", "content": "pick"}]}),
            );
            header(&r, "x-vigil-model-version") == "ft-1"
        })
        .unwrap();
    let direct_ft1 = format!("{sim}/ft1/v1");
    for include_usage in [false, true] {
        let mut args = vec![
            "compare",
            "--direct",
            &direct_ft1,
            "--via",
            &via,
            "--model-direct",
            "qwen-ft-1",
            "--model-via",
            "assistant",
            "--user",
            &user,
            "--api-key",
            "ingest-secret",
            "--messages-json",
            r#"[{"role":"system","content":"You are helpful."},{"role":"user","content":"Tell me about vigil and streaming"}]"#,
        ];
        if include_usage {
            args.push("--include-usage");
        }
        let out = sdk(&args);
        for kind in ["stream", "nonstream"] {
            let (d, v) = (&out["direct"][kind], &out["via"][kind]);
            for field in [
                "content",
                "finish_reason",
                "usage",
                "chunk_count",
                "content_chunk_count",
            ] {
                assert_eq!(
                    d[field], v[field],
                    "{kind} {field} differs (include_usage={include_usage}): {out}"
                );
            }
            assert!(
                !v["content"].as_str().unwrap_or_default().is_empty(),
                "{out}"
            );
            assert_eq!(v["headers"]["x-vigil-model-version"], "ft-1", "{out}");
            assert!(
                v["headers"]["x-vigil-event-id"]
                    .as_str()
                    .is_some_and(|s| !s.is_empty()),
                "{out}"
            );
        }
        assert_eq!(
            out["via"]["stream"]["usage"].is_null(),
            !include_usage,
            "usage reaches the client exactly when asked: {out}"
        );
        assert_eq!(
            out["via"]["stream"]["headers"]["content-type"]
                .as_str()
                .unwrap_or_default()
                .split(';')
                .next(),
            Some("text/event-stream")
        );
        assert_eq!(out["via"]["stream"]["headers"]["x-accel-buffering"], "no");
    }
    // llama.cpp flavour (ft-2) with its `timings`, and legacy completions, also identical.
    let user2 = (0..)
        .map(|i| format!("w-{i}"))
        .find(|u| {
            let r = chat(
                &c,
                &base,
                json!({"model": "assistant", "user": u, "max_tokens": 1, "messages": [{"role": "user", "content": "pick"}]}),
            );
            header(&r, "x-vigil-model-version") == "ft-2"
        })
        .unwrap();
    let out = sdk(&[
        "completions",
        "--direct",
        &format!("{sim}/ft2/v1"),
        "--via",
        &via,
        "--model-direct",
        "qwen-ft-2",
        "--model-via",
        "assistant",
        "--user",
        &user2,
        "--api-key",
        "ingest-secret",
        "--prompt",
        "Once upon a time in a gateway",
    ]);
    for kind in ["stream", "nonstream"] {
        for field in ["content", "finish_reason", "usage", "chunk_count"] {
            assert_eq!(
                out["direct"][kind][field], out["via"][kind][field],
                "completions {kind} {field}: {out}"
            );
        }
    }
    // Embeddings pass through too.
    let emb = sdk(&[
        "embeddings",
        "--base",
        &via,
        "--model",
        "assistant",
        "--input",
        "hello",
        "--api-key",
        "ingest-secret",
    ]);
    assert_eq!(emb["dims"], 16, "{emb}");

    // TGI sends no usage in streams: the gateway does not ask (stream_options = false) and
    // counts the tokens itself; the client still gets what TGI sent.
    let tgi = sdk(&[
        "compare",
        "--direct",
        &format!("{sim}/tgi/v1"),
        "--via",
        &via,
        "--model-direct",
        "tgi-model",
        "--model-via",
        "tgi-bot",
        "--user",
        "tgi-user",
        "--api-key",
        "ingest-secret",
    ]);
    assert_eq!(
        tgi["direct"]["stream"]["content"],
        tgi["via"]["stream"]["content"]
    );
    assert!(tgi["via"]["stream"]["usage"].is_null(), "{tgi}");

    // A client that goes away mid-stream cancels the generation upstream.
    let before = llm.stats("ft1").unwrap();
    let mut r = chat(
        &c,
        &base,
        json!({"model": "assistant", "user": &user, "stream": true, "max_tokens": 200,
               "messages": [{"role": "user", "content": "a long answer please [[slow-first:50]]"}]}),
    );
    let cancelled_id = header(&r, "x-vigil-event-id");
    let mut buf = [0u8; 512];
    let n = r.read(&mut buf).expect("first bytes");
    assert!(n > 0);
    drop(r);
    assert!(
        wait_for(Duration::from_secs(10), || llm
            .stats("ft1")
            .unwrap()
            .streams_cancelled
            > before.streams_cancelled),
        "the backend stream was not cancelled: {:?}",
        llm.stats("ft1")
    );

    // An upstream that dies mid-stream: the client's stream ends with an error event, the
    // inference is recorded as failed.
    let r = chat(
        &c,
        &base,
        json!({"model": "assistant", "user": &user, "stream": true,
               "messages": [{"role": "user", "content": "break please [[die-after:3]]"}]}),
    );
    let died_id = header(&r, "x-vigil-event-id");
    let text = r.text().unwrap_or_default();
    assert!(text.contains("\"error\""), "{text}");
    assert!(!text.contains("[DONE]"), "{text}");

    // Fallback before the first byte: a unit assigned to the dead version gets control's
    // stream, marked as a fallback.
    let dead_unit = (0..)
        .map(|i| format!("f-{i}"))
        .find(|u| {
            let a: Value = c
                .get(format!("{base}/v1/assign"))
                .query(&[("experiment", "fallback-test"), ("unit", u)])
                .bearer_auth("viewer-secret")
                .send()
                .unwrap()
                .json()
                .unwrap();
            a["model_version"] == "dead"
        })
        .unwrap();
    let r = chat(
        &c,
        &base,
        json!({"model": "fallback-bot", "user": dead_unit, "stream": true,
               "messages": [{"role": "user", "content": "hello"}]}),
    );
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(header(&r, "x-vigil-fallback"), "true");
    assert_eq!(header(&r, "x-vigil-model-version"), "alive");
    assert!(r.text().unwrap().ends_with("data: [DONE]\n\n"));

    // Errors are OpenAI-shaped: unknown model, bad body, missing token.
    let r = chat(&c, &base, json!({"model": "nope", "messages": []}));
    assert_eq!(r.status().as_u16(), 404);
    let e: Value = r.json().unwrap();
    assert_eq!(e["error"]["code"], "model_not_found", "{e}");
    let r = c
        .post(format!("{base}/v1/chat/completions"))
        .bearer_auth("ingest-secret")
        .body("{not json")
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let r = c
        .post(format!("{base}/v1/chat/completions"))
        .json(&json!({"model": "assistant"}))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);

    // A/B on feedback: 2,000 users, each one request; thumbs up with probability 0.30 on
    // ft-1 and 0.45 on ft-2 (the simulated truth), posted as outcomes linked by the event id.
    let mut served_by: BTreeMap<String, u64> = BTreeMap::new();
    let mut feedback = Vec::new();
    let mut rng_state = 42u64;
    let mut uniform = move || {
        rng_state = rng_state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (rng_state >> 11) as f64 / (1u64 << 53) as f64
    };
    for i in 0..2000 {
        let unit = format!("ab-{i}");
        let r = chat(
            &c,
            &base,
            json!({"model": "assistant", "user": unit, "max_tokens": 4,
                   "messages": [{"role": "user", "content": format!("question {i}")}]}),
        );
        assert_eq!(r.status().as_u16(), 200);
        let version = header(&r, "x-vigil-model-version");
        let id = header(&r, "x-vigil-event-id");
        *served_by.entry(version.clone()).or_default() += 1;
        let p = if version == "ft-2" { 0.45 } else { 0.30 };
        let up = uniform() < p;
        feedback.push(
            json!({"event_id": format!("fb-{i}"), "ts": chrono::Utc::now().timestamp_millis(),
            "unit_id": unit, "model": "assistant", "inference_id": id, "name": "thumbs_up",
            "value": if up { 1.0 } else { 0.0 }}),
        );
    }
    let r = c
        .post(format!("{base}/v1/outcomes"))
        .bearer_auth("ingest-secret")
        .json(&feedback)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "{}", r.text().unwrap_or_default());
    assert!(served_by.len() == 2, "{served_by:?}");
    let mut analysis = Value::Null;
    assert!(
        wait_for(Duration::from_secs(30), || {
            analysis = c
                .get(format!("{base}/v1/experiments/assistant-ft/analysis"))
                .bearer_auth("viewer-secret")
                .send()
                .and_then(|r| r.json())
                .unwrap_or(Value::Null);
            analysis["comparisons"]["treatment"]["units"]
                .as_u64()
                .unwrap_or(0)
                > 900
        }),
        "no analysis: {analysis}"
    );
    let t = &analysis["comparisons"]["treatment"];
    let (cm, tm) = (
        t["control_mean"].as_f64().unwrap(),
        t["mean"].as_f64().unwrap(),
    );
    assert!((cm - 0.30).abs() < 0.05 && (tm - 0.45).abs() < 0.05, "{t}");
    let ci = &t["frequentist"]["ci"];
    let (lo, hi) = (ci[0].as_f64().unwrap(), ci[1].as_f64().unwrap());
    assert!(
        lo > 0.0 && lo < 0.5 && hi > 0.5,
        "relative lift 0.5 inside ({lo}, {hi}): {t}"
    );
    let guardrails: Vec<&str> = analysis["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "guardrail")
        .filter_map(|m| m["metric"].as_str())
        .collect();
    assert_eq!(guardrails, ["ttft", "error_rate"], "{analysis}");

    // Mirrored copies to ft-3 were answered before the server stops.
    assert!(wait_for(Duration::from_secs(20), || llm
        .stats("ft3")
        .unwrap()
        .requests
        >= 2000));
    std::thread::sleep(Duration::from_secs(2));
    served.terminate();

    let rt = runtime();
    let store = rt.block_on(vigil_store::Store::open(&url)).unwrap();
    let rows: Vec<Recorded> = rt
        .block_on(store.fetch(&format!(
            "SELECT event_id, version, unit_id, label, \
             arrayStringConcat(arrayFilter((v, n) -> n = 'error', attr_values, attr_names), '') AS error, \
             input, output, prompt_tokens, completion_tokens, tokens_estimated, ttft_ms, streamed, cost \
             FROM {} FINAL",
            store.table("inference_events")
        )))
        .unwrap();
    let by_id: BTreeMap<&str, &Recorded> = rows.iter().map(|r| (r.event_id.as_str(), r)).collect();
    // Usage recorded whether or not the client asked (vLLM: asked for by the gateway).
    let streamed_ft1: Vec<&Recorded> = rows
        .iter()
        .filter(|r| r.version == "ft-1" && r.streamed == 1 && r.label.as_deref() == Some("stop"))
        .collect();
    assert!(streamed_ft1.len() >= 2, "{streamed_ft1:?}");
    for r in &streamed_ft1 {
        assert!(
            r.prompt_tokens.is_some() && r.completion_tokens.unwrap_or(0) > 0,
            "{r:?}"
        );
        assert_eq!(r.tokens_estimated, 0, "{r:?}");
        assert!(r.ttft_ms.is_some_and(|t| t >= 15.0), "{r:?}");
        assert!(r.cost.is_some_and(|c| c > 0.0), "{r:?}");
        assert!(r.input.contains("user: Tell me about vigil"), "{r:?}");
        assert!(!r.output.is_empty(), "{r:?}");
    }
    // TGI: counted, marked as estimated.
    let tgi_rows: Vec<&Recorded> = rows
        .iter()
        .filter(|r| r.version == "t1" && r.streamed == 1)
        .collect();
    assert!(!tgi_rows.is_empty());
    for r in tgi_rows {
        assert_eq!(r.tokens_estimated, 1, "{r:?}");
        assert_eq!(r.completion_tokens, Some(12), "one token per chunk: {r:?}");
    }
    let cancelled = by_id[cancelled_id.as_str()];
    assert_eq!(
        cancelled.label.as_deref(),
        Some("client_cancelled"),
        "{cancelled:?}"
    );
    let died = by_id[died_id.as_str()];
    assert!(
        died.label.is_none()
            && (died.error.contains("before [DONE]") || died.error.contains("broke off")),
        "{died:?}"
    );
    // Sticky: every request of a unit was served by one version.
    let mut versions_of: BTreeMap<&str, std::collections::BTreeSet<&str>> = BTreeMap::new();
    for r in rows
        .iter()
        .filter(|r| r.unit_id.starts_with("ab-") || r.unit_id.starts_with("u-"))
    {
        versions_of
            .entry(&r.unit_id)
            .or_default()
            .insert(&r.version);
    }
    assert!(versions_of.values().all(|v| v.len() == 1));

    // Feedback outcomes join their inferences.
    #[derive(clickhouse::Row, serde::Deserialize)]
    struct Joined {
        n: u64,
    }
    let joined: Vec<Joined> = rt
        .block_on(store.fetch(&format!(
            "SELECT toUInt64(count()) AS n FROM {} AS o FINAL \
             ALL INNER JOIN (SELECT event_id AS inference_id, unit_id AS i_unit FROM {} FINAL) AS i \
             USING inference_id WHERE o.name = 'thumbs_up' AND o.unit_id = i_unit",
            store.table("outcome_events"),
            store.table("inference_events")
        )))
        .unwrap();
    assert_eq!(joined[0].n, 2000);

    // Shadow copies of ft-3 kept with text, tokens and cost next to the served answer.
    #[derive(clickhouse::Row, serde::Deserialize, Debug)]
    struct Shadow {
        n: u64,
        with_text: u64,
        with_tokens: u64,
        with_cost: u64,
    }
    let s: Vec<Shadow> = rt
        .block_on(store.fetch(&format!(
            "SELECT toUInt64(count()) AS n, toUInt64(countIf(text != '')) AS with_text, \
             toUInt64(countIf(isNotNull(completion_tokens))) AS with_tokens, toUInt64(countIf(cost > 0)) AS with_cost \
             FROM {} WHERE model = 'assistant' AND version = 'ft-3' AND status = 200 \
             AND position(output, '\"embedding\"') = 0",
            store.table("shadow_responses")
        )))
        .unwrap();
    assert!(s[0].n >= 2000, "{s:?}");
    assert_eq!(
        (s[0].with_text, s[0].with_tokens, s[0].with_cost),
        (s[0].n, s[0].n, s[0].n),
        "{s:?}"
    );
}

/// Sticky assignment by the body's `user`: 20,000 users through `/v1/chat/completions`, each
/// twice; every user gets one version both times, and the split passes the SRM check.
#[test]
fn assignment_by_user_is_sticky_and_balanced() {
    require_chdb();
    let (sim, _llm, _sim_server) = simulated_llm::spawn(vec![
        SimulatedModel {
            first_token_ms: 0,
            chunk_ms: 0,
            ..model("ft1", "qwen-ft-1", UsageFlavour::Vllm, "plain")
        },
        SimulatedModel {
            first_token_ms: 0,
            chunk_ms: 0,
            ..model("ft2", "qwen-ft-2", UsageFlavour::Vllm, "plain")
        },
        model("ft3", "qwen-ft-3", UsageFlavour::Vllm, "plain"),
        model("tgi", "tgi-model", UsageFlavour::Tgi, "plain"),
    ])
    .expect("simulated LLM servers");
    let dir = tempfile::tempdir().unwrap();
    let url = format!("chdb://{}", dir.path().join("data").display());
    let port = free_port();
    let config = dir.path().join("vigil.toml");
    write_config(&config, &url, port, &sim);
    // No mirroring here: the point is assignment.
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("share = 1.0", "share = 0.0");
    std::fs::write(&config, text).unwrap();
    let served = Served::start(&config, &dir.path().join("serve.log"), &["--no-kafka"]);
    let base = format!("http://127.0.0.1:{port}");
    assert!(
        wait_for(Duration::from_secs(60), || client()
            .get(format!("{base}/healthz"))
            .send()
            .is_ok_and(|r| r.status().is_success())),
        "server never became healthy; log:\n{}",
        served.log_text()
    );
    const USERS: usize = 20_000;
    let counts: Vec<(u64, u64, u64)> = std::thread::scope(|s| {
        (0..4)
            .map(|t| {
                let base = base.clone();
                s.spawn(move || {
                    let c = client();
                    let (mut a, mut b, mut flips) = (0, 0, 0);
                    for i in (t..USERS).step_by(4) {
                        let body = json!({"model": "assistant", "user": format!("user-{i}"), "max_tokens": 1,
                                          "messages": [{"role": "user", "content": "hi"}]});
                        let v1 = header(&chat(&c, &base, body.clone()), "x-vigil-model-version");
                        let v2 = header(&chat(&c, &base, body), "x-vigil-model-version");
                        if v1 != v2 {
                            flips += 1;
                        }
                        match v1.as_str() {
                            "ft-1" => a += 1,
                            "ft-2" => b += 1,
                            other => panic!("served by {other:?}"),
                        }
                    }
                    (a, b, flips)
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().unwrap())
            .collect()
    });
    served.terminate();
    let (a, b, flips) = counts
        .iter()
        .fold((0, 0, 0), |acc, x| (acc.0 + x.0, acc.1 + x.1, acc.2 + x.2));
    assert_eq!(flips, 0, "a user changed versions");
    assert_eq!(a + b, USERS as u64);
    let e = USERS as f64 / 2.0;
    let chi2 = ((a as f64 - e).powi(2) + (b as f64 - e).powi(2)) / e;
    use statrs::distribution::{ChiSquared, ContinuousCDF};
    let p = ChiSquared::new(1.0).unwrap().sf(chi2);
    assert!(p > 0.001, "SRM: {a} vs {b}, p = {p}");
}
