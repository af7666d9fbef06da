//! The OpenAI-compatible gateway routes in front of a REAL llama.cpp server: llama-cpp-python's
//! `python -m llama_cpp.server` with the tiny random-weights GGUF of scripts/llm/tiny_gguf.py,
//! started by `bash scripts/llm/llama-server.sh start 18091 tiny` (scripts/test.sh and
//! scripts/services/up.sh do it). The official `openai` Python SDK (tests/llm/openai_client.py,
//! `bash scripts/llm/setup.sh`) calls the server directly and through `vigil serve`: at
//! temperature 0 both must see the same answer, chunk for chunk. llama-cpp-python ignores
//! `stream_options.include_usage`, so a stream carries no usage either way, and vigil records it
//! as estimated (one completion token per content chunk); non-streamed answers carry usage and
//! are recorded as reported. Rows are read back from the embedded store after the server stops.

mod common;

use common::sdk::{sdk, sdk_python};
use common::*;
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

/// The model alias the llama.cpp server is started with.
const ALIAS: &str = "tiny";
/// Tokens per request: small, so the whole test stays a few seconds of generation.
const MAX_TOKENS: &str = "24";

/// The llama.cpp server's `/v1` base URL; fails (integration tests never skip) with the command
/// that starts it when nothing serving model `tiny` answers there.
fn require_llama() -> String {
    let addr = std::env::var("VIGIL_TEST_LLAMA").unwrap_or_else(|_| "127.0.0.1:18091".into());
    let url = format!("http://{addr}/v1/models");
    let answer = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
        .get(&url)
        .send()
        .and_then(|r| r.error_for_status())
        .and_then(|r| r.json::<Value>());
    let start = "start it with `bash scripts/llm/llama-server.sh start 18091 tiny` \
                 (or run scripts/test.sh, which starts every service)";
    match answer {
        Ok(v) => {
            let ids: Vec<&str> = v["data"]
                .as_array()
                .map(|d| d.iter().filter_map(|m| m["id"].as_str()).collect())
                .unwrap_or_default();
            assert!(
                ids.contains(&ALIAS),
                "the server at {url} does not serve model `{ALIAS}` (it lists {ids:?}): {start}"
            );
        }
        Err(e) => panic!("no llama.cpp server at {url} ({e}): {start}"),
    }
    format!("http://{addr}/v1")
}

fn write_config(path: &Path, store: &str, port: u16, llama: &str) {
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

[[gateway.models]]
name = "tiny-bot"
api = "openai"
control = "t1"
versions = [{{ version = "t1", url = "{llama}", backend_model = "{ALIAS}" }}]
"#
    );
    std::fs::write(path, text).expect("write config");
}

/// What the SDK saw of one answer through vigil; the recorded row must say the same.
#[derive(Debug)]
struct Seen {
    what: String,
    event_id: String,
    streamed: bool,
    content: String,
    finish_reason: String,
    content_chunks: u64,
    usage: Value,
}

#[derive(clickhouse::Row, serde::Deserialize, Debug)]
struct Recorded {
    event_id: String,
    model: String,
    version: String,
    unit_id: String,
    label: Option<String>,
    error: String,
    output: String,
    prompt_tokens: Option<u32>,
    completion_tokens: Option<u32>,
    tokens_estimated: u8,
    ttft_ms: Option<f64>,
    finish_reason: String,
    streamed: u8,
}

#[test]
fn llama_cpp_through_the_gateway() {
    require_chdb();
    let llama = require_llama();
    sdk_python();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("chdb://{}", dir.path().join("data").display());
    let port = free_port();
    let config = dir.path().join("vigil.toml");
    write_config(&config, &url, port, &llama);
    let served = Served::start(&config, &dir.path().join("serve.log"), &["--no-kafka"]);
    let base = format!("http://127.0.0.1:{port}");
    let c = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    assert!(
        wait_for(Duration::from_secs(60), || c
            .get(format!("{base}/healthz"))
            .send()
            .is_ok_and(|r| r.status().is_success())),
        "server never became healthy; log:\n{}",
        served.log_text()
    );
    let via = format!("{base}/v1");

    // Chat and legacy completions, streamed and not, with and without include_usage: through
    // vigil the SDK gets exactly what it gets from llama.cpp directly.
    let mut seen: Vec<Seen> = Vec::new();
    for (sub, extra) in [
        (
            "compare",
            [
                "--messages-json",
                r#"[{"role":"system","content":"You are helpful."},{"role":"user","content":"Tell me about the gateway and streaming"}]"#,
            ],
        ),
        ("completions", ["--prompt", "Once upon a time in a gateway"]),
    ] {
        for include_usage in [false, true] {
            let mut args = vec![
                sub,
                "--direct",
                &llama,
                "--via",
                &via,
                "--model-direct",
                ALIAS,
                "--model-via",
                "tiny-bot",
                "--user",
                "llama-user",
                "--api-key",
                "ingest-secret",
                "--max-tokens",
                MAX_TOKENS,
                "--temperature",
                "0",
            ];
            args.extend(extra);
            if include_usage {
                args.push("--include-usage");
            }
            let out = sdk(&args);
            let what = format!("{sub} include_usage={include_usage}");
            for kind in ["stream", "nonstream"] {
                let (d, v) = (&out["direct"][kind], &out["via"][kind]);
                for field in [
                    "content",
                    "finish_reason",
                    "usage",
                    "chunk_count",
                    "content_chunk_count",
                ] {
                    assert_eq!(d[field], v[field], "{what} {kind}: {field} differs: {out}");
                }
                assert!(
                    !v["content"].as_str().unwrap_or_default().is_empty(),
                    "{what} {kind}: no content: {out}"
                );
                assert!(
                    v["finish_reason"].is_string(),
                    "{what} {kind}: no finish_reason: {out}"
                );
                assert_eq!(v["headers"]["x-vigil-model-version"], "t1", "{out}");
                let event_id = v["headers"]["x-vigil-event-id"]
                    .as_str()
                    .filter(|s| !s.is_empty())
                    .unwrap_or_else(|| panic!("{what} {kind}: no x-vigil-event-id: {out}"))
                    .to_owned();
                seen.push(Seen {
                    what: format!("{what} {kind}"),
                    event_id,
                    streamed: kind == "stream",
                    content: v["content"].as_str().unwrap_or_default().to_owned(),
                    finish_reason: v["finish_reason"].as_str().unwrap_or_default().to_owned(),
                    content_chunks: v["content_chunk_count"].as_u64().unwrap_or(0),
                    usage: v["usage"].clone(),
                });
            }
            // llama-cpp-python ignores stream_options.include_usage: no usage in the stream,
            // whether the client asked or not (vigil asks on the client's behalf, too).
            assert!(
                out["direct"]["stream"]["usage"].is_null()
                    && out["via"]["stream"]["usage"].is_null(),
                "{what}: a streamed usage from llama-cpp-python: {out}"
            );
            let usage = &out["via"]["nonstream"]["usage"];
            assert!(
                usage["completion_tokens"].as_u64().is_some_and(|n| n > 0)
                    && usage["prompt_tokens"].as_u64().is_some_and(|n| n > 0),
                "{what}: non-streamed answer without usage: {out}"
            );
            // Greedy: the same text streamed or not, and every token of the tiny model is a
            // printable piece, so one content chunk per token — what vigil's count relies on.
            assert_eq!(
                out["via"]["stream"]["content"], out["via"]["nonstream"]["content"],
                "{what}: {out}"
            );
            assert_eq!(
                out["via"]["stream"]["content_chunk_count"], usage["completion_tokens"],
                "{what}: {out}"
            );
            assert_eq!(
                out["via"]["stream"]["headers"]["content-type"]
                    .as_str()
                    .unwrap_or_default()
                    .split(';')
                    .next(),
                Some("text/event-stream"),
                "{out}"
            );
        }
    }
    served.terminate();

    let rt = runtime();
    let store = rt.block_on(vigil_store::Store::open(&url)).unwrap();
    let rows: Vec<Recorded> = rt
        .block_on(store.fetch(&format!(
            "SELECT event_id, model, version, unit_id, label, \
             arrayStringConcat(arrayFilter((v, n) -> n = 'error', attr_values, attr_names), '') AS error, \
             output, prompt_tokens, completion_tokens, tokens_estimated, ttft_ms, finish_reason, streamed \
             FROM {} FINAL",
            store.table("inference_events")
        )))
        .unwrap();
    assert_eq!(
        rows.len(),
        seen.len(),
        "one row per request through vigil: {rows:#?}"
    );
    for s in &seen {
        let r = rows
            .iter()
            .find(|r| r.event_id == s.event_id)
            .unwrap_or_else(|| panic!("{}: no row {}: {rows:#?}", s.what, s.event_id));
        let ctx = format!("{}: {r:?} vs {s:?}", s.what);
        assert_eq!(
            (r.model.as_str(), r.version.as_str(), r.unit_id.as_str()),
            ("tiny-bot", "t1", "llama-user"),
            "{ctx}"
        );
        assert_eq!(r.error, "", "{ctx}");
        assert_eq!(r.output, s.content, "{ctx}");
        assert_eq!(r.finish_reason, s.finish_reason, "{ctx}");
        assert_eq!(r.label.as_deref(), Some(s.finish_reason.as_str()), "{ctx}");
        assert_eq!(r.streamed, u8::from(s.streamed), "{ctx}");
        // Time to first token is a stream's; a non-streamed answer has only its latency.
        assert_eq!(r.ttft_ms.is_some_and(|t| t > 0.0), s.streamed, "{ctx}");
        if s.streamed {
            // No usage from llama-cpp-python in a stream: counted, one token per content chunk.
            assert_eq!(r.tokens_estimated, 1, "{ctx}");
            assert_eq!(
                r.completion_tokens.map(u64::from),
                Some(s.content_chunks),
                "one token per chunk: {ctx}"
            );
            assert!(r.prompt_tokens.is_some_and(|n| n > 0), "{ctx}");
        } else {
            // The server's own usage, as the SDK saw it.
            assert_eq!(r.tokens_estimated, 0, "{ctx}");
            assert_eq!(
                r.completion_tokens.map(u64::from),
                s.usage["completion_tokens"].as_u64(),
                "{ctx}"
            );
            assert_eq!(
                r.prompt_tokens.map(u64::from),
                s.usage["prompt_tokens"].as_u64(),
                "{ctx}"
            );
        }
    }
}
