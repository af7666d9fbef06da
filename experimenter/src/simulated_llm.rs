//! A simulated OpenAI-compatible LLM server, for the gateway's demo, integration tests and
//! benchmarks: it behaves like vLLM, llama.cpp's server or TGI closely enough to exercise
//! everything the gateway passes through and records (SSE framing, keep-alive comments, the
//! usage chunk and its absence, llama.cpp's `timings`, time to first token), without a GPU.
//!
//! Routes, for every [`SimulatedModel`] `name` (see [`SimulatedLlm::configure`]):
//! - `POST /{name}/v1/chat/completions`: `chat.completion` or, with `"stream": true`, SSE
//!   `chat.completion.chunk`s: a `{"role":"assistant","content":""}` delta, one chunk per
//!   token (the last with `finish_reason`), the usage chunk where the flavour sends one, and
//!   `data: [DONE]`.
//! - `POST /{name}/v1/completions`: the same with `text_completion` objects (`choices[0].text`).
//! - `POST /{name}/v1/embeddings`: deterministic 16-dimensional unit vectors hashed from the
//!   inputs.
//! - `GET /{name}/v1/models`: an OpenAI list holding `backend_model`.
//! - `GET /{name}/stats`: the model's [`StreamStats`] as JSON.
//!
//! Generation is deterministic: the text depends only on the prompt (the messages' contents),
//! the model's `style` and the completion length, so the same request gives byte-identical
//! content and chunking whether sent directly or through a proxy. A token is one
//! whitespace-separated word. Usage: `prompt_tokens` = words of the prompt + 3 per message,
//! `completion_tokens` = content chunks. The request's `model` must equal `backend_model`
//! (404 otherwise), which lets tests prove the gateway rewrote it.
//!
//! Failure injection by markers in the prompt text, so tests reach them through a gateway:
//! - `[[status:503]]` (any 400-599): that status with an OpenAI-style error, before the `model`
//!   check and before any output.
//! - `[[die-after:N]]`: after N content chunks the connection is cut (no `[DONE]`); a non-streamed
//!   request has its connection dropped instead of an answer. No effect if the answer is shorter.
//! - `[[slow-first:MS]]`: overrides `first_token_ms`.
//!
//! [`spawn`] runs a server on `127.0.0.1:0` in a background thread for tests and benchmarks.

use std::collections::HashMap;
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::http::StatusCode;
use actix_web::web::{self, Bytes};
use actix_web::{App, HttpResponse, HttpServer};
use serde_json::{json, Value};

/// How a simulated server reports usage in streams (the engines differ; see the protocol facts).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UsageFlavour {
    /// vLLM: a final usage chunk (`"choices": []`) only when `stream_options.include_usage`.
    Vllm,
    /// llama.cpp's server: like vLLM, and the final content chunk carries a `timings` object.
    LlamaCpp,
    /// TGI: never sends usage in streams, even when asked.
    Tgi,
}

/// One simulated model version, served under `/{name}/v1/...`.
#[derive(Clone, Debug)]
pub struct SimulatedModel {
    /// The path segment it is served under.
    pub name: String,
    /// The model id it reports in responses and in `GET /v1/models`, and expects in requests.
    pub backend_model: String,
    pub flavour: UsageFlavour,
    /// Delay before the first content chunk.
    pub first_token_ms: u64,
    /// Delay between content chunks.
    pub chunk_ms: u64,
    /// Natural completion length; a smaller `max_tokens` cuts it (`finish_reason: "length"`).
    pub max_tokens_default: u32,
    /// A word mixed into generated text so versions answer differently.
    pub style: String,
}

impl SimulatedModel {
    /// A model with the given identity and quick defaults: 100 ms to the first token, 10 ms
    /// between tokens, 16 tokens, style `"plain"`.
    pub fn new(name: &str, backend_model: &str, flavour: UsageFlavour) -> Self {
        SimulatedModel {
            name: name.to_string(),
            backend_model: backend_model.to_string(),
            flavour,
            first_token_ms: 100,
            chunk_ms: 10,
            max_tokens_default: 16,
            style: "plain".to_string(),
        }
    }
}

/// Counters per model. `requests` counts every POST; a stream ends exactly one of completed
/// (sent `[DONE]`), cancelled (the client went away) or cut by an injected failure.
#[derive(Clone, Copy, Debug, Default, serde::Serialize, PartialEq)]
pub struct StreamStats {
    pub requests: u64,
    pub streams_started: u64,
    pub streams_completed: u64,
    pub streams_cancelled: u64,
    pub failures_injected: u64,
}

type Counters = Mutex<StreamStats>;

fn bump(counters: &Counters, field: fn(&mut StreamStats) -> &mut u64) {
    *field(&mut counters.lock().unwrap_or_else(|e| e.into_inner())) += 1;
}

fn snapshot(counters: &Counters) -> StreamStats {
    *counters.lock().unwrap_or_else(|e| e.into_inner())
}

struct ModelState {
    model: SimulatedModel,
    counters: Arc<Counters>,
}

/// The simulated server: its models and their counters. Mount it with [`Self::configure`].
pub struct SimulatedLlm {
    models: HashMap<String, Arc<ModelState>>,
}

impl SimulatedLlm {
    /// Panics if two models share a `name`.
    pub fn new(models: Vec<SimulatedModel>) -> Arc<Self> {
        let mut map = HashMap::new();
        for model in models {
            let name = model.name.clone();
            let state = ModelState {
                model,
                counters: Arc::default(),
            };
            assert!(
                map.insert(name.clone(), Arc::new(state)).is_none(),
                "duplicate simulated model {name}"
            );
        }
        Arc::new(SimulatedLlm { models: map })
    }

    /// Mounts every model's routes (see the module documentation).
    pub fn configure(self: &Arc<Self>, cfg: &mut web::ServiceConfig) {
        for state in self.models.values() {
            cfg.service(
                web::scope(&format!("/{}", state.model.name))
                    .app_data(web::Data::from(state.clone()))
                    .app_data(web::PayloadConfig::new(16 << 20))
                    .route("/v1/chat/completions", web::post().to(chat))
                    .route("/v1/completions", web::post().to(completions))
                    .route("/v1/embeddings", web::post().to(embeddings))
                    .route("/v1/models", web::get().to(list_models))
                    .route("/stats", web::get().to(stats)),
            );
        }
    }

    /// The counters of model `name`, or `None` if there is no such model.
    pub fn stats(&self, name: &str) -> Option<StreamStats> {
        Some(snapshot(&self.models.get(name)?.counters))
    }
}

/// Stops the server started by [`spawn`] when dropped (waiting up to 5 s for it to exit).
pub struct ServerHandle {
    inner: actix_web::dev::ServerHandle,
    exited: mpsc::Receiver<()>,
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        // `stop` sends the command at once; its future only waits for the completion.
        std::mem::drop(self.inner.stop(false));
        let _ = self.exited.recv_timeout(Duration::from_secs(5));
    }
}

/// Binds `127.0.0.1:0` and serves `models` from a background thread with its own actix
/// `System`. Returns the base URL `http://127.0.0.1:PORT`, the server (for its stats) and a
/// handle that stops it on drop.
pub fn spawn(
    models: Vec<SimulatedModel>,
) -> std::io::Result<(String, Arc<SimulatedLlm>, ServerHandle)> {
    let llm = SimulatedLlm::new(models);
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let url = format!("http://{}", listener.local_addr()?);
    let (handle_tx, handle_rx) = mpsc::channel();
    let (exited_tx, exited) = mpsc::channel::<()>();
    let app_llm = llm.clone();
    std::thread::Builder::new()
        .name("simulated-llm".into())
        .spawn(move || {
            // Dropped when the thread ends, which wakes `ServerHandle::drop`.
            let _exited = exited_tx;
            actix_web::rt::System::new().block_on(async move {
                let server = HttpServer::new(move || {
                    let llm = app_llm.clone();
                    App::new().configure(move |cfg| llm.configure(cfg))
                })
                .workers(2)
                // As vLLM (uvicorn) does: every token leaves at once.
                .tcp_nodelay(true)
                .shutdown_timeout(1)
                .disable_signals()
                .listen(listener);
                match server {
                    Ok(server) => {
                        let server = server.run();
                        let _ = handle_tx.send(Ok(server.handle()));
                        let _ = server.await;
                    }
                    Err(e) => {
                        let _ = handle_tx.send(Err(e));
                    }
                }
            })
        })?;
    let inner = handle_rx
        .recv()
        .map_err(|_| std::io::Error::other("simulated LLM thread exited"))??;
    Ok((url, llm, ServerHandle { inner, exited }))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Chat,
    Completion,
    Embedding,
}

async fn chat(state: web::Data<ModelState>, body: Bytes) -> HttpResponse {
    handle(&state, Kind::Chat, &body).await
}

async fn completions(state: web::Data<ModelState>, body: Bytes) -> HttpResponse {
    handle(&state, Kind::Completion, &body).await
}

async fn embeddings(state: web::Data<ModelState>, body: Bytes) -> HttpResponse {
    handle(&state, Kind::Embedding, &body).await
}

async fn list_models(state: web::Data<ModelState>) -> HttpResponse {
    let id = &state.model.backend_model;
    HttpResponse::Ok().json(json!({"object": "list", "data": [
        {"id": id, "object": "model", "created": 0, "owned_by": "vigil-simulated"}
    ]}))
}

async fn stats(state: web::Data<ModelState>) -> HttpResponse {
    HttpResponse::Ok().json(snapshot(&state.counters))
}

/// An OpenAI-style error (`type` "server_error" for 5xx, else "invalid_request_error").
fn error(status: StatusCode, message: String, code: Option<&str>) -> HttpResponse {
    let kind = match status.is_server_error() {
        true => "server_error",
        false => "invalid_request_error",
    };
    HttpResponse::build(status)
        .json(json!({"error": {"message": message, "type": kind, "param": null, "code": code}}))
}

/// What the server reads from a request.
struct Request {
    model: Option<String>,
    /// The rendered prompt: the messages' contents (or the prompts) joined by newlines.
    prompt: String,
    /// Each input separately (embeddings).
    inputs: Vec<String>,
    prompt_tokens: u64,
    max_tokens: Option<u64>,
    stream: bool,
    include_usage: bool,
}

fn words(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

/// A string, or an array of strings; `None` otherwise.
fn strings(value: Option<&Value>) -> Option<Vec<String>> {
    match value? {
        Value::String(s) => Some(vec![s.clone()]),
        Value::Array(items) => items.iter().map(|v| v.as_str().map(String::from)).collect(),
        _ => None,
    }
}

/// A message's content: a string, or the texts of an array of content parts.
fn content_text(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => {
            let texts: Vec<&str> = parts
                .iter()
                .filter_map(|p| p.get("text")?.as_str())
                .collect();
            texts.join(" ")
        }
        _ => String::new(),
    }
}

fn parse(kind: Kind, body: &[u8]) -> Result<Request, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("invalid JSON body: {e}"))?;
    if !v.is_object() {
        return Err("the request body must be a JSON object".into());
    }
    let (inputs, messages) = match kind {
        Kind::Chat => {
            let messages = v
                .get("messages")
                .and_then(Value::as_array)
                .filter(|m| !m.is_empty());
            let messages = messages.ok_or("`messages` must be a non-empty array")?;
            let contents = messages
                .iter()
                .map(|m| content_text(m.get("content")))
                .collect();
            (contents, messages.len() as u64)
        }
        Kind::Completion => (
            strings(v.get("prompt")).ok_or("`prompt` must be a string or an array of strings")?,
            0,
        ),
        Kind::Embedding => (
            strings(v.get("input")).ok_or("`input` must be a string or an array of strings")?,
            0,
        ),
    };
    let max_tokens = match v
        .get("max_completion_tokens")
        .or_else(|| v.get("max_tokens"))
    {
        None | Some(Value::Null) => None,
        Some(n) => Some(
            n.as_u64()
                .ok_or("`max_tokens` must be a non-negative integer")?,
        ),
    };
    let prompt = inputs.join("\n");
    Ok(Request {
        model: v.get("model").and_then(Value::as_str).map(String::from),
        prompt_tokens: inputs.iter().map(|s| words(s)).sum::<u64>() + 3 * messages,
        prompt,
        inputs,
        max_tokens,
        stream: v.get("stream").and_then(Value::as_bool).unwrap_or(false),
        include_usage: v
            .pointer("/stream_options/include_usage")
            .and_then(Value::as_bool)
            .unwrap_or(false),
    })
}

/// The number in the first `[[name:N]]` of `text`.
fn marker(text: &str, name: &str) -> Option<u64> {
    let open = format!("[[{name}:");
    let rest = &text[text.find(&open)? + open.len()..];
    rest[..rest.find("]]")?].trim().parse().ok()
}

fn fnv64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

const VOCAB: &[&str] = &[
    "the", "model", "answer", "is", "a", "short", "note", "on", "your", "question", "with", "some",
    "detail", "and", "context", "we", "can", "say", "that", "it", "depends", "data", "shows",
    "clear", "results", "for", "this", "case", "overall", "in", "practice", "so",
];

/// The `n` tokens of the answer to `prompt` in `style`; the answer ends with "." if `natural_end`.
fn generate(prompt: &str, style: &str, n: usize, natural_end: bool) -> Vec<String> {
    let style: String = style.split_whitespace().collect::<Vec<_>>().join("-");
    let style = if style.is_empty() {
        "plain".to_string()
    } else {
        style
    };
    let mut seed = fnv64(prompt.as_bytes()) ^ fnv64(style.as_bytes()).rotate_left(17);
    (0..n)
        .map(|i| {
            let word = if i % 6 == 2 {
                style.as_str()
            } else {
                VOCAB[(splitmix(&mut seed) % VOCAB.len() as u64) as usize]
            };
            let end = if natural_end && i + 1 == n { "." } else { "" };
            format!("{}{word}{end}", if i == 0 { "" } else { " " })
        })
        .collect()
}

/// A deterministic 16-dimensional unit vector for `text`.
fn embed(text: &str) -> Vec<f64> {
    let mut seed = fnv64(text.as_bytes());
    let v: Vec<f64> = (0..16)
        .map(|_| (splitmix(&mut seed) >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0)
        .collect();
    let norm = v
        .iter()
        .map(|x| x * x)
        .sum::<f64>()
        .sqrt()
        .max(f64::MIN_POSITIVE);
    v.into_iter().map(|x| x / norm).collect()
}

async fn handle(state: &ModelState, kind: Kind, body: &[u8]) -> HttpResponse {
    let counters = &state.counters;
    bump(counters, |s| &mut s.requests);
    let req = match parse(kind, body) {
        Ok(req) => req,
        Err(message) => return error(StatusCode::BAD_REQUEST, message, None),
    };
    let injected = marker(&req.prompt, "status")
        .and_then(|c| StatusCode::from_u16(u16::try_from(c).ok()?).ok());
    if let Some(status) = injected.filter(|s| s.is_client_error() || s.is_server_error()) {
        bump(counters, |s| &mut s.failures_injected);
        let message = format!("injected failure: status {}", status.as_u16());
        return error(status, message, Some("injected_failure"));
    }
    let m = &state.model;
    if req.model.as_deref() != Some(m.backend_model.as_str()) {
        let message = format!(
            "The model `{}` does not exist (this server serves `{}`)",
            req.model.as_deref().unwrap_or(""),
            m.backend_model
        );
        return error(StatusCode::NOT_FOUND, message, Some("model_not_found"));
    }
    if kind == Kind::Embedding {
        let data: Vec<Value> = req
            .inputs
            .iter()
            .enumerate()
            .map(|(i, text)| json!({"object": "embedding", "index": i, "embedding": embed(text)}))
            .collect();
        let usage = json!({"prompt_tokens": req.prompt_tokens, "total_tokens": req.prompt_tokens});
        return HttpResponse::Ok().json(
            json!({"object": "list", "data": data, "model": m.backend_model, "usage": usage}),
        );
    }
    let natural = m.max_tokens_default as u64;
    let n = req.max_tokens.map_or(natural, |max| max.min(natural)) as usize;
    let cut = (n as u64) < natural;
    let prefix = if kind == Kind::Chat {
        "chatcmpl"
    } else {
        "cmpl"
    };
    let plan = Plan {
        kind,
        id: format!("{prefix}-{:016x}", fnv64(body)),
        created: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        model: m.backend_model.clone(),
        flavour: m.flavour,
        tokens: generate(&req.prompt, &m.style, n, !cut),
        finish: if cut { "length" } else { "stop" },
        prompt_tokens: req.prompt_tokens,
        first_token_ms: marker(&req.prompt, "slow-first").unwrap_or(m.first_token_ms),
        chunk_ms: m.chunk_ms,
        die_after: marker(&req.prompt, "die-after")
            .map(|k| k as usize)
            .filter(|&k| k < n),
        usage_chunk: req.stream && req.include_usage && m.flavour != UsageFlavour::Tgi,
    };
    if req.stream {
        stream_response(counters.clone(), plan)
    } else {
        whole_response(counters, plan).await
    }
}

/// Everything needed to produce one completion.
struct Plan {
    kind: Kind,
    id: String,
    created: u64,
    model: String,
    flavour: UsageFlavour,
    tokens: Vec<String>,
    finish: &'static str,
    prompt_tokens: u64,
    first_token_ms: u64,
    chunk_ms: u64,
    /// Cut after this many content chunks (only if fewer than the answer has).
    die_after: Option<usize>,
    /// Whether the stream ends with a usage chunk (every other chunk then has `"usage": null`).
    usage_chunk: bool,
}

impl Plan {
    fn usage(&self) -> Value {
        let (prompt, completion) = (self.prompt_tokens, self.tokens.len() as u64);
        json!({
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion
        })
    }

    /// llama.cpp's non-standard `timings`, from the nominal delays.
    fn timings(&self) -> Value {
        let n = self.tokens.len() as u64;
        let predicted_ms = (self.chunk_ms * n) as f64;
        let per_second = if predicted_ms > 0.0 {
            n as f64 * 1000.0 / predicted_ms
        } else {
            0.0
        };
        json!({
            "prompt_n": self.prompt_tokens, "prompt_ms": self.first_token_ms as f64,
            "predicted_n": n, "predicted_ms": predicted_ms, "predicted_per_second": per_second,
            "cache_n": 0
        })
    }

    /// A response object: `chunk` for a streamed event.
    fn object(&self, chunk: bool, choices: Value) -> Value {
        let object = match (self.kind, chunk) {
            (Kind::Chat, true) => "chat.completion.chunk",
            (Kind::Chat, false) => "chat.completion",
            _ => "text_completion",
        };
        json!({
            "id": self.id, "object": object, "created": self.created, "model": self.model,
            "choices": choices
        })
    }

    fn event(&self, choices: Value, usage: Value, timings: bool) -> Bytes {
        let mut v = self.object(true, choices);
        if self.usage_chunk {
            v["usage"] = usage;
        }
        if timings {
            v["timings"] = self.timings();
        }
        Bytes::from(format!("data: {v}\n\n"))
    }

    /// Content chunk `i`; the last carries `finish_reason` (and llama.cpp's `timings`).
    fn content_chunk(&self, i: usize) -> Bytes {
        let finish = (i + 1 >= self.tokens.len()).then_some(self.finish);
        let token = self.tokens.get(i).map_or("", String::as_str);
        let choice = match self.kind {
            Kind::Chat if self.tokens.is_empty() => choice("delta", json!({}), finish),
            Kind::Chat => choice("delta", json!({ "content": token }), finish),
            _ => choice("text", json!(token), finish),
        };
        let timings = finish.is_some() && self.flavour == UsageFlavour::LlamaCpp;
        self.event(json!([choice]), Value::Null, timings)
    }

    /// When a keep-alive comment is due (halfway to the first token, if that is >= 50 ms away).
    fn keep_alive_ms(&self) -> Option<u64> {
        (self.first_token_ms >= 50).then_some(self.first_token_ms / 2)
    }
}

/// One choice: `value` under `key` (`delta`, `message` or `text`), and the `finish_reason`.
fn choice(key: &str, value: Value, finish: Option<&str>) -> Value {
    json!({"index": 0, key: value, "logprobs": null, "finish_reason": finish})
}

/// Counts the stream as cancelled when dropped before it completed or was cut on purpose.
struct StreamGuard {
    counters: Arc<Counters>,
    ended: bool,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        if !self.ended {
            bump(&self.counters, |s| &mut s.streams_cancelled);
        }
    }
}

#[derive(Clone, Copy)]
enum Step {
    Role,
    KeepAlive,
    Token(usize),
    Usage,
    Done,
    End,
}

struct StreamState {
    plan: Plan,
    step: Step,
    guard: StreamGuard,
}

fn die_after() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::ConnectionAborted,
        "injected [[die-after]]",
    )
}

async fn sleep_ms(ms: u64) {
    if ms > 0 {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
}

/// Produces the next SSE event, after its delay.
async fn next_event(mut st: StreamState) -> Option<(Result<Bytes, std::io::Error>, StreamState)> {
    let p = &st.plan;
    let (item, next) = match st.step {
        Step::Role => {
            let choice = choice("delta", json!({"role": "assistant", "content": ""}), None);
            let next = match p.keep_alive_ms() {
                Some(_) => Step::KeepAlive,
                None => Step::Token(0),
            };
            (Ok(p.event(json!([choice]), Value::Null, false)), next)
        }
        Step::KeepAlive => {
            sleep_ms(p.keep_alive_ms().unwrap_or(0)).await;
            (Ok(Bytes::from_static(b": keep-alive\n\n")), Step::Token(0))
        }
        Step::Token(i) => {
            let first = p.first_token_ms - p.keep_alive_ms().unwrap_or(0);
            sleep_ms(if i == 0 { first } else { p.chunk_ms }).await;
            if p.die_after == Some(i) {
                st.guard.ended = true;
                bump(&st.guard.counters, |s| &mut s.failures_injected);
                (Err(die_after()), Step::End)
            } else {
                let next = if i + 1 < p.tokens.len() {
                    Step::Token(i + 1)
                } else if p.usage_chunk {
                    Step::Usage
                } else {
                    Step::Done
                };
                (Ok(p.content_chunk(i)), next)
            }
        }
        Step::Usage => (Ok(p.event(json!([]), p.usage(), false)), Step::Done),
        Step::Done => {
            st.guard.ended = true;
            bump(&st.guard.counters, |s| &mut s.streams_completed);
            (Ok(Bytes::from_static(b"data: [DONE]\n\n")), Step::End)
        }
        Step::End => return None,
    };
    st.step = next;
    Some((item, st))
}

fn stream_response(counters: Arc<Counters>, plan: Plan) -> HttpResponse {
    bump(&counters, |s| &mut s.streams_started);
    let step = match plan.kind {
        Kind::Chat => Step::Role,
        _ if plan.keep_alive_ms().is_some() => Step::KeepAlive,
        _ => Step::Token(0),
    };
    let id = plan.id.clone();
    let guard = StreamGuard {
        counters,
        ended: false,
    };
    let state = StreamState { plan, step, guard };
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .insert_header(("x-request-id", id))
        .streaming(futures::stream::unfold(state, next_event))
}

async fn whole_response(counters: &Counters, plan: Plan) -> HttpResponse {
    let n = plan.tokens.len() as u64;
    if let Some(k) = plan.die_after {
        sleep_ms(plan.first_token_ms + plan.chunk_ms * k as u64).await;
        bump(counters, |s| &mut s.failures_injected);
        // A body that fails at once: actix drops the connection.
        let body = futures::stream::once(async { Err::<Bytes, _>(die_after()) });
        return HttpResponse::Ok().streaming(body);
    }
    sleep_ms(plan.first_token_ms + plan.chunk_ms * n.saturating_sub(1)).await;
    let text = json!(plan.tokens.concat());
    let message = json!({"role": "assistant", "content": text});
    let choice = match plan.kind {
        Kind::Chat => choice("message", message, Some(plan.finish)),
        _ => choice("text", text, Some(plan.finish)),
    };
    let mut v = plan.object(false, json!([choice]));
    v["usage"] = plan.usage();
    if plan.flavour == UsageFlavour::LlamaCpp {
        v["timings"] = plan.timings();
    }
    HttpResponse::Ok()
        .insert_header(("x-request-id", plan.id))
        .json(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(name: &str, flavour: UsageFlavour) -> SimulatedModel {
        let backend = format!("{name}-backend");
        let fast = SimulatedModel {
            first_token_ms: 0,
            chunk_ms: 1,
            max_tokens_default: 8,
            ..SimulatedModel::new(name, &backend, flavour)
        };
        SimulatedModel {
            style: "concise".into(),
            ..fast
        }
    }

    /// A streamed chat request for model `name`'s backend, with `extra` fields merged in.
    fn chat(name: &str, prompt: &str, extra: Value) -> Value {
        let messages =
            json!([{"role": "system", "content": "be brief"}, {"role": "user", "content": prompt}]);
        let mut body =
            json!({"model": format!("{name}-backend"), "messages": messages, "stream": true});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    }

    async fn post(url: &str, body: &Value) -> reqwest::Response {
        reqwest::Client::new()
            .post(url)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    async fn post_json(url: &str, body: &Value) -> (u16, Value) {
        let resp = post(url, body).await;
        (resp.status().as_u16(), resp.json().await.unwrap())
    }

    /// POSTs `body` and reads the whole SSE answer: its `data:` payloads (`"[DONE]"` as a
    /// string), the raw text, and whether the body ended cleanly.
    async fn sse(url: &str, body: &Value) -> (Vec<Value>, String, bool) {
        let mut resp = post(url, body).await;
        assert_eq!(resp.headers()["content-type"], "text/event-stream");
        assert_eq!(resp.headers()["cache-control"], "no-cache");
        let mut raw = Vec::new();
        let clean = loop {
            match resp.chunk().await {
                Ok(Some(b)) => raw.extend_from_slice(&b),
                Ok(None) => break true,
                Err(_) => break false,
            }
        };
        let raw = String::from_utf8(raw).unwrap();
        let data = raw.split("\n\n").filter_map(|e| e.strip_prefix("data: "));
        let events = data
            .map(|d| serde_json::from_str(d).unwrap_or(json!(d)))
            .collect();
        (events, raw, clean)
    }

    fn contents(events: &[Value]) -> Vec<&str> {
        let deltas = events
            .iter()
            .filter_map(|e| e.pointer("/choices/0/delta/content")?.as_str());
        deltas.filter(|c| !c.is_empty()).collect()
    }

    #[tokio::test]
    async fn vllm_streams_are_deterministic_and_send_usage_only_when_asked() {
        let (base, llm, _server) = spawn(vec![model("a", UsageFlavour::Vllm)]).unwrap();
        let url = format!("{base}/a/v1/chat/completions");
        let (first, _, clean) = sse(&url, &chat("a", "what is drift", json!({}))).await;
        let (second, _, _) = sse(&url, &chat("a", "what is drift", json!({}))).await;
        assert!(clean);
        assert_eq!(
            (contents(&first), &first[0]["id"]),
            (contents(&second), &second[0]["id"])
        );
        assert_eq!(
            first[0]["choices"][0]["delta"],
            json!({"role": "assistant", "content": ""})
        );
        assert_eq!(contents(&first).len(), 8);
        assert_eq!(contents(&first)[2], " concise");
        assert_eq!(
            first[first.len() - 2]["choices"][0]["finish_reason"],
            "stop"
        );
        assert_eq!(first[first.len() - 1], "[DONE]");
        assert!(first.iter().all(|e| e.get("usage").is_none()));

        let asked = chat(
            "a",
            "what is drift",
            json!({"stream_options": {"include_usage": true}}),
        );
        let (events, _, _) = sse(&url, &asked).await;
        assert_eq!(contents(&events), contents(&first));
        let usage = &events[events.len() - 2];
        assert_eq!(usage["choices"], json!([]));
        // 5 words of prompt, 3 per message.
        assert_eq!(
            usage["usage"],
            json!({"prompt_tokens": 11, "completion_tokens": 8, "total_tokens": 19})
        );
        assert!(events[..events.len() - 2]
            .iter()
            .all(|e| e["usage"].is_null()));

        let (_, whole) =
            post_json(&url, &chat("a", "what is drift", json!({"stream": false}))).await;
        assert_eq!(
            whole["choices"][0]["message"]["content"],
            contents(&first).concat()
        );
        assert_eq!(whole["usage"]["completion_tokens"], 8);
        let expected = StreamStats {
            requests: 4,
            streams_started: 3,
            streams_completed: 3,
            ..Default::default()
        };
        assert_eq!(llm.stats("a"), Some(expected));
        let stats = reqwest::get(format!("{base}/a/stats")).await.unwrap();
        assert_eq!(stats.json::<Value>().await.unwrap()["requests"], 4);
    }

    #[tokio::test]
    async fn tgi_never_streams_usage_and_llamacpp_sends_timings() {
        let models = vec![
            model("t", UsageFlavour::Tgi),
            model("l", UsageFlavour::LlamaCpp),
        ];
        let (base, _llm, _server) = spawn(models).unwrap();
        let asked = json!({"stream_options": {"include_usage": true}});
        let tgi = format!("{base}/t/v1/chat/completions");
        let (events, _, _) = sse(&tgi, &chat("t", "hi", asked.clone())).await;
        assert!(events.iter().all(|e| e.get("usage").is_none()));
        let (_, whole) = post_json(&tgi, &chat("t", "hi", json!({"stream": false}))).await;
        assert_eq!(whole["usage"]["completion_tokens"], 8);

        let url = format!("{base}/l/v1/chat/completions");
        let (events, _, _) = sse(&url, &chat("l", "hi", json!({}))).await;
        let last = &events[events.len() - 2];
        assert_eq!(last["choices"][0]["finish_reason"], "stop");
        assert_eq!(last["timings"]["predicted_n"], 8);
        assert!(events.iter().all(|e| e.get("usage").is_none()));
        let (events, _, _) = sse(&url, &chat("l", "hi", asked)).await;
        assert_eq!(events[events.len() - 2]["usage"]["completion_tokens"], 8);
        assert!(events[events.len() - 3]["timings"].is_object());
    }

    #[tokio::test]
    async fn max_tokens_cuts_with_length_and_keep_alive_precedes_first_token() {
        let slow = SimulatedModel {
            first_token_ms: 60,
            ..model("s", UsageFlavour::Vllm)
        };
        let (base, _llm, _server) = spawn(vec![slow]).unwrap();
        let url = format!("{base}/s/v1/chat/completions");
        let (events, raw, _) = sse(&url, &chat("s", "q", json!({"max_tokens": 3}))).await;
        assert_eq!(contents(&events).len(), 3);
        assert_eq!(
            events[events.len() - 2]["choices"][0]["finish_reason"],
            "length"
        );
        // The role chunk, the keep-alive comment, then the first token.
        let blocks: Vec<&str> = raw.split("\n\n").collect();
        assert_eq!(blocks[1], ": keep-alive");
        assert!(blocks[2].contains(contents(&events)[0]));

        let body = json!({"model": "s-backend", "prompt": "q", "max_tokens": 2});
        let (_, whole) = post_json(&format!("{base}/s/v1/completions"), &body).await;
        assert_eq!(whole["object"], "text_completion");
        assert_eq!(whole["choices"][0]["finish_reason"], "length");
        let text = whole["choices"][0]["text"].as_str().unwrap();
        assert_eq!(text.split_whitespace().count(), 2);
    }

    #[tokio::test]
    async fn injected_failures() {
        let (base, llm, _server) = spawn(vec![model("a", UsageFlavour::Vllm)]).unwrap();
        let url = format!("{base}/a/v1/chat/completions");
        let (events, raw, clean) = sse(&url, &chat("a", "x [[die-after:3]]", json!({}))).await;
        assert!(!clean);
        assert_eq!(contents(&events).len(), 3);
        assert!(!raw.contains("[DONE]"));

        let (status, error) = post_json(&url, &chat("a", "[[status:503]]", json!({}))).await;
        assert_eq!(
            (status, &error["error"]["type"]),
            (503, &json!("server_error"))
        );

        let body = chat("a", "[[die-after:1]]", json!({"stream": false}));
        let cut = match reqwest::Client::new().post(&url).json(&body).send().await {
            Ok(resp) => resp.bytes().await.is_err(),
            Err(_) => true,
        };
        assert!(cut);
        let expected = StreamStats {
            requests: 3,
            streams_started: 1,
            failures_injected: 3,
            ..Default::default()
        };
        assert_eq!(llm.stats("a"), Some(expected));
    }

    #[tokio::test]
    async fn client_disconnect_is_counted_as_cancelled() {
        let long = SimulatedModel {
            chunk_ms: 20,
            max_tokens_default: 200,
            ..model("a", UsageFlavour::Vllm)
        };
        let (base, llm, _server) = spawn(vec![long]).unwrap();
        let mut resp = post(
            &format!("{base}/a/v1/chat/completions"),
            &chat("a", "q", json!({})),
        )
        .await;
        resp.chunk().await.unwrap().unwrap();
        drop(resp);
        for _ in 0..250 {
            if llm.stats("a").unwrap().streams_cancelled > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let expected = StreamStats {
            requests: 1,
            streams_started: 1,
            streams_cancelled: 1,
            ..Default::default()
        };
        assert_eq!(llm.stats("a"), Some(expected));
    }

    #[tokio::test]
    async fn validation_models_and_embeddings() {
        let (base, _llm, _server) = spawn(vec![model("a", UsageFlavour::Vllm)]).unwrap();
        let url = format!("{base}/a/v1/chat/completions");
        let (status, error) =
            post_json(&url, &json!({"model": "b", "messages": [{"content": "q"}]})).await;
        assert_eq!(
            (status, &error["error"]["code"]),
            (404, &json!("model_not_found"))
        );
        let (status, error) = post_json(&url, &json!({"model": "a-backend"})).await;
        assert_eq!(
            (status, &error["error"]["type"]),
            (400, &json!("invalid_request_error"))
        );
        let resp = reqwest::Client::new()
            .post(&url)
            .body("{not json")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400);

        let models: Value = reqwest::get(format!("{base}/a/v1/models"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(models["data"][0]["id"], "a-backend");

        let body = json!({"model": "a-backend", "input": ["one two", "three"]});
        let (_, first) = post_json(&format!("{base}/a/v1/embeddings"), &body).await;
        let (_, second) = post_json(&format!("{base}/a/v1/embeddings"), &body).await;
        assert_eq!(first, second);
        assert_eq!(
            first["usage"],
            json!({"prompt_tokens": 3, "total_tokens": 3})
        );
        let v: Vec<f64> = serde_json::from_value(first["data"][1]["embedding"].clone()).unwrap();
        assert_eq!(v.len(), 16);
        assert!((v.iter().map(|x| x * x).sum::<f64>() - 1.0).abs() < 1e-9);
    }
}
